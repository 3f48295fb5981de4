param($Mixop)
# win_unarchive: probe says whether `creates` exists, what the archive holds (.zip through
# System.IO.Compression, tar archives through the tar.exe Windows ships in System32) and what is
# at each of those names under dest; apply creates dest, extracts (Expand-Archive -Force for
# .zip, tar.exe -xf for tar) and removes the archive when asked.
$a = $Mixop.args
$src = [string]$a.src
$dest = [string]$a.dest
$tar = [IO.Path]::Combine($env:SystemRoot, 'System32', 'tar.exe')

function Get-MixopKind($Path) {
    $item = Get-Item -LiteralPath $Path -Force -ErrorAction SilentlyContinue
    if ($null -eq $item) { return @{ exists = $false } }
    $e = @{ exists = $true; is_dir = [bool]$item.PSIsContainer }
    if (-not $e.is_dir) { $e.size = [long]$item.Length }
    return $e
}

if ($Mixop.phase -eq 'probe') {
    $r = @{ creates = $false; src = (Get-MixopKind $src); dest = (Get-MixopKind $dest); tar_exe = (Test-Path -LiteralPath $tar -PathType Leaf) }
    if ($a.creates) { $r.creates = Test-Path -LiteralPath ([string]$a.creates) }
    if ($r.creates -or -not $r.src.exists -or $r.src.is_dir) { return $r }
    $full = (Get-Item -LiteralPath $src -Force).FullName
    $entries = @()
    if ([string]$a.format -eq 'zip') {
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [IO.Compression.ZipFile]::OpenRead($full)
        try {
            $entries = @(foreach ($z in $zip.Entries) { @{ name = [string]$z.FullName; size = [long]$z.Length } })
        } finally {
            $zip.Dispose()
        }
    } else {
        if (-not $r.tar_exe) { return $r }
        # tar.exe may write to stderr: under 'Stop' Windows PowerShell 5.1 would make that a
        # terminating error; the exit code says whether it failed.
        $ErrorActionPreference = 'Continue'
        $names = @(& $tar -tf $full 2>$null)
        $rc = $LASTEXITCODE
        $verbose = @(& $tar -tvf $full 2>$null)
        $ErrorActionPreference = 'Stop'
        if ($rc -ne 0) { throw "tar.exe could not list '$src' (exit code $rc)" }
        $r.verbose = $verbose
        $entries = @(foreach ($n in $names) { @{ name = [string]$n } })
    }
    $destFull = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($dest)
    $r.entries = $entries
    $r.have = @(foreach ($e in $entries) {
        $k = Get-MixopKind ([IO.Path]::Combine($destFull, $e.name.TrimEnd('/', '\')))
        $k.name = $e.name
        $k
    })
    return $r
}

$p = $Mixop.plan
if ($p.extract) {
    $destFull = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($dest)
    $null = [IO.Directory]::CreateDirectory($destFull)
    if ([string]$a.format -eq 'zip') {
        Expand-Archive -LiteralPath $src -DestinationPath $destFull -Force
    } else {
        $ErrorActionPreference = 'Continue'
        $srcFull = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($src)
        $out = (& $tar -xf $srcFull -C $destFull 2>&1 | ForEach-Object { [string]$_ }) -join ' '
        $rc = $LASTEXITCODE
        $ErrorActionPreference = 'Stop'
        if ($rc -ne 0) { throw "Error extracting '$src' to '$dest' using tar.exe (rc=$rc): $out" }
    }
}
$removed = $false
if ($p.delete_archive) {
    Remove-Item -LiteralPath $src -Force
    $removed = $true
}
return @{ removed = $removed }
