param($Mixop)
# win_group: probe finds the local group by name (case-insensitive, no wildcards); apply creates,
# describes or removes it with the LocalAccounts cmdlets.
$name = [string]$Mixop.args.name
if ($Mixop.phase -eq 'probe') {
    $group = @(Get-LocalGroup | Where-Object { $_.Name -eq $name })
    if ($group.Count -eq 0) { return @{ exists = $false } }
    return @{ exists = $true; description = [string]$group[0].Description }
}
$p = $Mixop.plan
if ($p.action -eq 'create') {
    $params = @{ Name = $name }
    if ($null -ne $p.description) { $params.Description = [string]$p.description }
    $null = New-LocalGroup @params
} elseif ($p.action -eq 'set_description') {
    Set-LocalGroup -Name $name -Description ([string]$p.description)
} elseif ($p.action -eq 'remove') {
    Remove-LocalGroup -Name $name
}
return @{ action = [string]$p.action }
