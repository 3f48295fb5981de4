param($Mixop)
# win_get_url: probe reports what is at dest (and at dest\<name from the URL>, and the parent
# directory) with its checksum; in check mode it may also download to a temporary file to tell
# whether the content would change (as ansible.windows.win_get_url does), then deletes it.
# apply downloads (System.Net.WebRequest, as Ansible's WebRequest utilities) into a temporary
# file beside dest, checks the checksum, and moves it into place unless dest already has the
# same content. Credentials and headers arrive in the request, never on a command line.
$a = $Mixop.args

function Get-MixopHash([string]$Path, [string]$Algorithm) {
    return (Get-FileHash -LiteralPath $Path -Algorithm $Algorithm.ToUpperInvariant()).Hash.ToLowerInvariant()
}

function Get-MixopEntry([string]$Path, [string]$Algorithm) {
    $item = Get-Item -LiteralPath $Path -Force -ErrorAction SilentlyContinue
    if ($null -eq $item) { return @{ path = $Path; exists = $false } }
    $e = @{ path = $Path; exists = $true; is_dir = [bool]$item.PSIsContainer }
    if (-not $e.is_dir) {
        $e.size = [long]$item.Length
        $e.checksum = Get-MixopHash $item.FullName $Algorithm
    }
    return $e
}

function Invoke-MixopDownload($Web, [string]$OutFile) {
    [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
    $req = [Net.WebRequest]::Create([string]$Web.url)
    $req.Timeout = [int]$Web.timeout * 1000
    if ($req -is [Net.HttpWebRequest]) {
        $req.UserAgent = [string]$Web.http_agent
        $req.AllowAutoRedirect = $true
        if (-not $Web.validate_certs) { $req.ServerCertificateValidationCallback = { $true } }
    }
    foreach ($h in @($Web.headers)) {
        if ($null -eq $h) { continue }
        $hn = [string]$h.name
        $hv = [string]$h.value
        # Restricted headers go through their properties.
        if ($hn -eq 'Accept') { $req.Accept = $hv }
        elseif ($hn -eq 'Content-Type') { $req.ContentType = $hv }
        elseif ($hn -eq 'Referer') { $req.Referer = $hv }
        elseif ($hn -eq 'User-Agent') { $req.UserAgent = $hv }
        else { $req.Headers.Add($hn, $hv) }
    }
    if ($Web.url_username) {
        if ($Web.force_basic_auth) {
            $pair = '{0}:{1}' -f [string]$Web.url_username, [string]$Web.url_password
            $req.Headers.Add('Authorization', 'Basic ' + [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($pair)))
        } else {
            $req.Credentials = New-Object Net.NetworkCredential([string]$Web.url_username, [string]$Web.url_password)
        }
    }
    try {
        $resp = $req.GetResponse()
    } catch [Net.WebException] {
        throw ("Error downloading '{0}': {1}" -f [string]$Web.shown_url, $_.Exception.Message)
    }
    try {
        $in = $resp.GetResponseStream()
        $out = [IO.File]::Create($OutFile)
        try { $in.CopyTo($out) } finally { $out.Dispose(); $in.Dispose() }
        $code = 0
        if ($resp -is [Net.HttpWebResponse]) { $code = [int]$resp.StatusCode }
        return @{ status_code = $code; size = [long](Get-Item -LiteralPath $OutFile -Force).Length }
    } finally {
        $resp.Dispose()
    }
}

$alg = [string]$a.algorithm
if ($Mixop.phase -eq 'probe') {
    $r = @{ dest = (Get-MixopEntry ([string]$a.dest) $alg) }
    if ($a.joined) { $r.joined = Get-MixopEntry ([string]$a.joined) $alg }
    if ($a.parent) { $r.parent = Get-MixopEntry ([string]$a.parent) $alg }
    if ($null -ne $a.fetch) {
        $tmp = [IO.Path]::GetTempFileName()
        try {
            $got = Invoke-MixopDownload $a.fetch $tmp
            $got.checksum = Get-MixopHash $tmp $alg
            $r.fetched = $got
        } finally {
            Remove-Item -LiteralPath $tmp -Force -ErrorAction SilentlyContinue
        }
    }
    return $r
}

$p = $Mixop.plan
$path = [string]$p.path
# .NET resolves a relative path against the process directory, not PowerShell's location.
$full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($path)
$tmp = $full + '.mixop-' + [Guid]::NewGuid().ToString('N') + '.tmp'
try {
    $got = Invoke-MixopDownload $p.web $tmp
    $sum = Get-MixopHash $tmp $alg
    if ($p.checksum -and $sum -ne [string]$p.checksum) {
        throw ("The checksum for {0} did not match '{1}', it was '{2}'" -f [string]$p.web.shown_url, [string]$p.checksum, $sum)
    }
    $changed = $true
    if (Test-Path -LiteralPath $full -PathType Leaf) {
        if ((Get-MixopHash $full $alg) -eq $sum) { $changed = $false }
    }
    if ($changed) { Move-Item -LiteralPath $tmp -Destination $full -Force }
} finally {
    if (Test-Path -LiteralPath $tmp) { Remove-Item -LiteralPath $tmp -Force }
}
return @{ changed = $changed; status_code = $got.status_code; size = $got.size; checksum_src = $sum; checksum_dest = $sum }
