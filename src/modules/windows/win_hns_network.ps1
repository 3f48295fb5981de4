param($Mixop)
# win_hns_network: probe lists the HNS networks with the name; apply removes the ones the plan
# lists (HostNetworkingService module). A host without the module (no Containers feature) has none.
$a = $Mixop.args
if ($null -eq (Get-Command Get-HnsNetwork -ErrorAction SilentlyContinue)) {
    return @{ available = $false; networks = @() }
}
if ($Mixop.phase -eq 'probe') {
    $name = [string]$a.name
    $networks = @(Get-HnsNetwork | Where-Object { [string]$_.Name -eq $name } | ForEach-Object {
        @{ id = [string]$_.ID; name = [string]$_.Name; type = [string]$_.Type }
    })
    return @{ available = $true; networks = $networks }
}
$ids = @($Mixop.plan.remove | ForEach-Object { ([string]$_).ToLowerInvariant() })
$removed = @()
foreach ($network in @(Get-HnsNetwork)) {
    $id = [string]$network.ID
    if ($ids -contains $id.ToLowerInvariant()) {
        $network | Remove-HnsNetwork
        $removed += $id
    }
}
return @{ removed = $removed }
