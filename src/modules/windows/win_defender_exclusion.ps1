param($Mixop)
# win_defender_exclusion: probe reads Defender's exclusion lists (Get-MpPreference); apply adds and
# removes what the plan lists (Add-MpPreference / Remove-MpPreference), then reads them again.
function Get-MixopExclusions {
    $pref = Get-MpPreference
    return @{
        path = @($pref.ExclusionPath | Where-Object { $null -ne $_ } | ForEach-Object { [string]$_ })
        process = @($pref.ExclusionProcess | Where-Object { $null -ne $_ } | ForEach-Object { [string]$_ })
        extension = @($pref.ExclusionExtension | Where-Object { $null -ne $_ } | ForEach-Object { [string]$_ })
    }
}
if ($Mixop.phase -eq 'probe') {
    return @{ exclusions = Get-MixopExclusions }
}
$p = $Mixop.plan
$add = @{}
$path = @($p.add.path | Where-Object { $_ })
$process = @($p.add.process | Where-Object { $_ })
$extension = @($p.add.extension | Where-Object { $_ })
if ($path.Count -gt 0) { $add.ExclusionPath = [string[]]$path }
if ($process.Count -gt 0) { $add.ExclusionProcess = [string[]]$process }
if ($extension.Count -gt 0) { $add.ExclusionExtension = [string[]]$extension }
if ($add.Count -gt 0) { Add-MpPreference @add }
$remove = @{}
$path = @($p.remove.path | Where-Object { $_ })
$process = @($p.remove.process | Where-Object { $_ })
$extension = @($p.remove.extension | Where-Object { $_ })
if ($path.Count -gt 0) { $remove.ExclusionPath = [string[]]$path }
if ($process.Count -gt 0) { $remove.ExclusionProcess = [string[]]$process }
if ($extension.Count -gt 0) { $remove.ExclusionExtension = [string[]]$extension }
if ($remove.Count -gt 0) { Remove-MpPreference @remove }
return @{ exclusions = Get-MixopExclusions }
