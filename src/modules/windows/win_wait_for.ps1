param($Mixop)
# win_wait_for: one look at the condition; the controller loops, sleeps and times out (the same
# loop as wait_for). A port: can a TCP connection be made within connect_timeout (TcpClient, as
# ansible.windows.win_wait_for), or for drained the remote addresses of the connections to it
# (IPGlobalProperties.GetActiveTcpConnections). A path: does it exist, and does its text match
# search_regex (-match, a .NET regular expression).
$a = $Mixop.args
if ($null -ne $a.port) {
    $port = [int]$a.port
    $hostname = [string]$a.host
    if ([string]$a.state -eq 'drained') {
        $props = [Net.NetworkInformation.IPGlobalProperties]::GetIPGlobalProperties()
        $conns = @($props.GetActiveTcpConnections() | Where-Object {
            $_.LocalEndPoint.Port -eq $port -and ($hostname -eq '0.0.0.0' -or [string]$_.LocalEndPoint.Address -eq $hostname)
        } | ForEach-Object { [string]$_.RemoteEndPoint.Address })
        return @{ exists = $true; connections = $conns }
    }
    $open = $false
    $client = New-Object Net.Sockets.TcpClient
    try {
        $pending = $client.BeginConnect($hostname, $port, $null, $null)
        if ($pending.AsyncWaitHandle.WaitOne([int]$a.connect_timeout * 1000, $false)) {
            $client.EndConnect($pending)
            $open = $true
        }
    } catch {
        $open = $false
    } finally {
        $client.Close()
    }
    return @{ exists = $open }
}
$path = [string]$a.path
if (-not (Test-Path -LiteralPath $path)) { return @{ exists = $false } }
if ($null -eq $a.search_regex) { return @{ exists = $true } }
$text = Get-Content -LiteralPath $path -Raw
return @{ exists = $true; matched = ([string]$text -match [string]$a.search_regex) }
