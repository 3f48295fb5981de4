param($Mixop)
# win_firewall_rule: probe reports the rules with the task's display name (or group) and their
# filters; apply creates, sets (only the parameters the plan lists) or removes rules, then reports
# them again. NetSecurity cmdlets; names are matched literally (wildcard characters escaped).
$a = $Mixop.args

function Find-MixopRules {
    if ($a.name) {
        $pattern = [System.Management.Automation.WildcardPattern]::Escape([string]$a.name)
        return @(Get-NetFirewallRule -DisplayName $pattern -ErrorAction SilentlyContinue)
    }
    $pattern = [System.Management.Automation.WildcardPattern]::Escape([string]$a.group)
    return @(Get-NetFirewallRule -Group $pattern -ErrorAction SilentlyContinue)
}

function Get-MixopRule($Rule) {
    $ports = $Rule | Get-NetFirewallPortFilter
    $addresses = $Rule | Get-NetFirewallAddressFilter
    $app = $Rule | Get-NetFirewallApplicationFilter
    $svc = $Rule | Get-NetFirewallServiceFilter
    return @{
        id = [string]$Rule.Name
        name = [string]$Rule.DisplayName
        description = [string]$Rule.Description
        group = [string]$Rule.Group
        enabled = ([string]$Rule.Enabled -eq 'True')
        direction = [string]$Rule.Direction
        action = [string]$Rule.Action
        profile = [string]$Rule.Profile
        protocol = [string]$ports.Protocol
        local_port = @($ports.LocalPort | ForEach-Object { [string]$_ })
        remote_port = @($ports.RemotePort | ForEach-Object { [string]$_ })
        local_address = @($addresses.LocalAddress | ForEach-Object { [string]$_ })
        remote_address = @($addresses.RemoteAddress | ForEach-Object { [string]$_ })
        program = [string]$app.Program
        service = [string]$svc.Service
    }
}

function ConvertTo-MixopParameters($Object) {
    $h = @{}
    foreach ($prop in $Object.PSObject.Properties) {
        $value = $prop.Value
        if ($value -is [array]) { $value = [string[]]$value } else { $value = [string]$value }
        $h[$prop.Name] = $value
    }
    return $h
}

if ($Mixop.phase -eq 'probe') {
    return @{ rules = @(Find-MixopRules | ForEach-Object { Get-MixopRule $_ }) }
}

$p = $Mixop.plan
if ($null -ne $p.create) {
    $params = ConvertTo-MixopParameters $p.create
    $null = New-NetFirewallRule @params
}
foreach ($change in @($p.set | Where-Object { $null -ne $_ })) {
    $params = ConvertTo-MixopParameters $change.params
    if ($params.ContainsKey('Group')) {
        # Set-NetFirewallRule has no -Group: set it on the rule's CIM instance and pass that back.
        $rule = Get-NetFirewallRule -Name ([string]$change.id)
        $rule.Group = [string]$params.Group
        Set-NetFirewallRule -InputObject $rule
        $params.Remove('Group')
    }
    if ($params.Count -gt 0) { Set-NetFirewallRule -Name ([string]$change.id) @params }
}
foreach ($id in @($p.remove | Where-Object { $_ })) {
    Remove-NetFirewallRule -Name ([string]$id)
}
return @{ rules = @(Find-MixopRules | ForEach-Object { Get-MixopRule $_ }) }
