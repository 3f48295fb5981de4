param($Mixop)
# win_feature: probe reports each feature's install state; apply installs/uninstalls what the
# plan lists. Cmdlets as in ansible.windows.win_feature (ServerManager module).
$a = $Mixop.args
if ($Mixop.phase -eq 'probe') {
    # Names that match no feature are simply absent from Get-WindowsFeature's output.
    $features = @(Get-WindowsFeature -Name @($a.name) | ForEach-Object {
        @{
            name = [string]$_.Name; display_name = [string]$_.DisplayName
            install_state = [string]$_.InstallState; sub_features = @($_.SubFeatures)
        }
    })
    return @{ features = $features }
}
$p = $Mixop.plan
$results = @()
$restart = $false
$exitcode = 'NoChangeNeeded'
$success = $true
$ops = @(
    @{ names = @($p.install); install = $true },
    @{ names = @($p.uninstall); install = $false }
)
foreach ($op in $ops) {
    if ($op.names.Count -eq 0) { continue }
    if ($op.install) {
        $params = @{ Name = $op.names; IncludeAllSubFeature = [bool]$p.include_sub_features; IncludeManagementTools = [bool]$p.include_management_tools }
        if ($p.source) { $params.Source = [string]$p.source }
        $r = Install-WindowsFeature @params
    } else {
        $params = @{ Name = $op.names; IncludeManagementTools = [bool]$p.include_management_tools }
        $r = Uninstall-WindowsFeature @params
    }
    $exitcode = [string]$r.ExitCode
    if (-not $r.Success) { $success = $false }
    if ([string]$r.RestartNeeded -eq 'Yes') { $restart = $true }
    foreach ($fr in @($r.FeatureResult)) {
        $results += @{
            id = $fr.Id; display_name = [string]$fr.DisplayName; message = [string]$fr.Message
            reboot_required = [bool]$fr.RestartNeeded; skip_reason = [string]$fr.SkipReason
            success = [bool]$fr.Success
        }
    }
}
return @{ feature_result = $results; exitcode = $exitcode; reboot_required = $restart; success = $success }
