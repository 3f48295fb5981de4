param($Mixop)
# win_copy / win_template. probe: what is at each path asked about (SHA-1 only when the size
# matches what would be written; the content for --diff when small), and every entry under each
# tree root. apply: create directories, back up the file about to be replaced (Ansible's
# Backup-File name), copy files on the host (remote_src). Content from the controller is not
# sent through this script: the connection uploads it (atomic, hash-checked) after apply.
$a = $Mixop.args

function Get-MixopSha1([string]$Path) {
    return (Get-FileHash -LiteralPath $Path -Algorithm SHA1).Hash.ToLowerInvariant()
}

function Get-MixopEntry($Query) {
    $path = [string]$Query.path
    $item = Get-Item -LiteralPath $path -Force -ErrorAction SilentlyContinue
    if ($null -eq $item) { return @{ path = $path; exists = $false } }
    $entry = @{ path = $path; exists = $true; is_dir = [bool]$item.PSIsContainer; full = [string]$item.FullName }
    if (-not $entry.is_dir) {
        $entry.size = [long]$item.Length
        $sameSize = ($null -eq $Query.expect_size) -or ([long]$Query.expect_size -eq $entry.size)
        if ($Query.checksum -and $sameSize) { $entry.checksum = Get-MixopSha1 $item.FullName }
        if ($null -ne $Query.content -and $entry.size -le [long]$Query.content) {
            $entry.content_b64 = [Convert]::ToBase64String([IO.File]::ReadAllBytes($item.FullName))
        }
    }
    return $entry
}

function Get-MixopTree([string]$Root) {
    $item = Get-Item -LiteralPath $Root -Force -ErrorAction SilentlyContinue
    if ($null -eq $item) { return @{ root = $Root; exists = $false; is_dir = $false; entries = @() } }
    if (-not $item.PSIsContainer) { return @{ root = $Root; exists = $true; is_dir = $false; entries = @() } }
    $base = $item.FullName.TrimEnd('\') + '\'
    $entries = @(Get-ChildItem -LiteralPath $item.FullName -Recurse -Force | ForEach-Object {
        $rel = $_.FullName.Substring($base.Length)
        if ($_.PSIsContainer) {
            @{ rel = $rel; is_dir = $true }
        } else {
            @{ rel = $rel; is_dir = $false; size = [long]$_.Length; checksum = (Get-MixopSha1 $_.FullName) }
        }
    })
    return @{ root = $Root; exists = $true; is_dir = $true; entries = $entries }
}

if ($Mixop.phase -eq 'probe') {
    $paths = @(foreach ($q in @($a.paths)) { if ($null -ne $q) { Get-MixopEntry $q } })
    $trees = @(foreach ($t in @($a.trees)) { if ($null -ne $t) { Get-MixopTree ([string]$t) } })
    return @{ paths = $paths; trees = $trees }
}

$p = $Mixop.plan
foreach ($d in @($p.mkdirs)) {
    # .NET resolves a relative path against the process directory, not PowerShell's location.
    if ($null -ne $d) { $null = [IO.Directory]::CreateDirectory($ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath([string]$d)) }
}
$backup = $null
if ($p.backup) {
    $file = [string]$p.backup
    $backup = '{0}.{1}.{2}.bak' -f $file, $PID, [DateTime]::Now.ToString('yyyyMMdd-HHmmss')
    Copy-Item -LiteralPath $file -Destination $backup -Force
}
foreach ($c in @($p.copies)) {
    if ($null -ne $c) { Copy-Item -LiteralPath ([string]$c.from) -Destination ([string]$c.to) -Force }
}
return @{ backup_file = $backup }
