param($Mixop)
# win_stat: one probe, the shape of ansible.windows.win_stat's `stat`.
$a = $Mixop.args
$item = Get-Item -LiteralPath ([string]$a.path) -Force -ErrorAction SilentlyContinue
if ($null -eq $item) { return @{ stat = @{ exists = $false } } }
$epoch = New-Object DateTime 1970, 1, 1, 0, 0, 0, ([DateTimeKind]::Utc)
function ConvertTo-Unix($d) { return ($d.ToUniversalTime() - $epoch).TotalSeconds }
$isdir = [bool]$item.PSIsContainer
$stat = @{
    exists = $true; path = $item.FullName; filename = $item.Name; isdir = $isdir; isreg = (-not $isdir)
    islnk = [bool]($item.Attributes -band [IO.FileAttributes]::ReparsePoint)
    attributes = [string]$item.Attributes
    lastwritetime = (ConvertTo-Unix $item.LastWriteTime)
    creationtime = (ConvertTo-Unix $item.CreationTime)
    lastaccesstime = (ConvertTo-Unix $item.LastAccessTime)
}
if ($isdir) {
    $stat.size = 0
} else {
    $stat.size = [long]$item.Length
    $stat.extension = [string]$item.Extension
    if ($a.get_checksum) {
        $stat.checksum = (Get-FileHash -LiteralPath $item.FullName -Algorithm ([string]$a.checksum_algorithm).ToUpperInvariant()).Hash.ToLowerInvariant()
    }
}
return @{ stat = $stat }
