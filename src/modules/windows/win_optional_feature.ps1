param($Mixop)
# win_optional_feature: probe reports each DISM optional feature's state; apply enables/disables
# what the plan lists. Cmdlets as in ansible.windows.win_optional_feature (DISM module).
$a = $Mixop.args
if ($Mixop.phase -eq 'probe') {
    $features = @(foreach ($n in @($a.name)) {
        $f = $null
        try {
            $f = Get-WindowsOptionalFeature -Online -FeatureName ([string]$n)
        } catch [System.Runtime.InteropServices.COMException] {
            # An unknown name is a COMException ("Feature name X is unknown.").
            $f = $null
        }
        if ($null -eq $f) {
            @{ name = [string]$n; found = $false }
        } else {
            @{
                name = [string]$f.FeatureName; found = $true; state = [string]$f.State
                restart_required = [string]$f.RestartRequired
            }
        }
    })
    $sourceExists = $null
    if ($a.source) { $sourceExists = [bool](Test-Path -LiteralPath ([string]$a.source)) }
    return @{ features = $features; source_exists = $sourceExists }
}
$p = $Mixop.plan
$restart = $false
$enable = @($p.enable | Where-Object { $_ })
if ($enable.Count -gt 0) {
    $params = @{ Online = $true; NoRestart = $true; FeatureName = [string[]]$enable; All = [bool]$p.all }
    if ($p.source) { $params.Source = [string]$p.source }
    $r = Enable-WindowsOptionalFeature @params
    if ($r.RestartNeeded) { $restart = $true }
}
$disable = @($p.disable | Where-Object { $_ })
if ($disable.Count -gt 0) {
    $r = Disable-WindowsOptionalFeature -Online -NoRestart -FeatureName ([string[]]$disable)
    if ($r.RestartNeeded) { $restart = $true }
}
return @{ reboot_required = $restart }
