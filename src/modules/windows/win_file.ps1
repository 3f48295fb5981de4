param($Mixop)
# win_file: probe reports what is at the path; apply creates the directory (with its parents),
# creates an empty file or updates its timestamps (touch), or removes the path with everything
# under it, as ansible.windows.win_file does.
$a = $Mixop.args
$path = [string]$a.path
if ($Mixop.phase -eq 'probe') {
    $item = Get-Item -LiteralPath $path -Force -ErrorAction SilentlyContinue
    if ($null -eq $item) { return @{ exists = $false } }
    return @{
        exists = $true; is_dir = [bool]$item.PSIsContainer; full = [string]$item.FullName
        attributes = [string]$item.Attributes
    }
}
# .NET resolves a relative path against the process directory, not PowerShell's location.
$full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($path)
$op = [string]$Mixop.plan.op
if ($op -eq 'mkdir') {
    $null = [IO.Directory]::CreateDirectory($full)
} elseif ($op -eq 'create') {
    [IO.File]::Open($full, [IO.FileMode]::CreateNew).Dispose()
} elseif ($op -eq 'touch') {
    $now = Get-Date
    $item = Get-Item -LiteralPath $path -Force
    $item.LastWriteTime = $now
    $item.LastAccessTime = $now
} elseif ($op -eq 'remove') {
    Remove-Item -LiteralPath $path -Recurse -Force
}
return @{ op = $op }
