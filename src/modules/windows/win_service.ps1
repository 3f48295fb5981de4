param($Mixop)
# win_service: probe reports the service (Get-Service, Win32_Service, its registry key); apply
# carries out the plan Rust made (src/modules/windows/win_service.rs): New-Service,
# Win32_Service.Change for the account and password, Set-Service, sc.exe with the argument strings
# the plan holds, then Start/Stop/Restart-Service. The password comes from the request's secrets
# ($Mixop.secrets, never logged with the args) and never leaves this script.
$a = $Mixop.args

function Get-MixopService([string]$Name) {
    # Get-Service -Name treats [ ] * ? as wildcards: match the names exactly instead.
    $found = @(Get-Service | Where-Object { $_.ServiceName -eq $Name -or $_.DisplayName -eq $Name })
    if ($found.Count -eq 0) { $found = @(Get-Service -Name $Name -ErrorAction SilentlyContinue) }
    if ($found.Count -eq 0) { return @{ exists = $false; computer = [string]$env:COMPUTERNAME } }
    $svc = $found[0]
    $n = [string]$svc.ServiceName
    $wql = "Name='{0}'" -f $n.Replace('\', '\\').Replace("'", "\'")
    $wmi = Get-CimInstance -ClassName Win32_Service -Filter $wql
    $key = Get-ItemProperty -LiteralPath "HKLM:\SYSTEM\CurrentControlSet\Services\$n" -ErrorAction SilentlyContinue
    $failure = $null
    $command = $null
    $reboot = $null
    $nonCrash = $null
    if ($null -ne $key) {
        if ($null -ne $key.FailureActions) { $failure = [Convert]::ToBase64String([byte[]]$key.FailureActions) }
        if ($null -ne $key.FailureCommand) { $command = [string]$key.FailureCommand }
        if ($null -ne $key.RebootMessage) { $reboot = [string]$key.RebootMessage }
        if ($null -ne $key.FailureActionsOnNonCrashFailures) { $nonCrash = [bool]$key.FailureActionsOnNonCrashFailures }
    }
    return @{
        exists = $true
        computer = [string]$env:COMPUTERNAME
        name = $n
        display_name = [string]$svc.DisplayName
        description = [string]$wmi.Description
        path = [string]$wmi.PathName
        start_mode = [string]$wmi.StartMode
        delayed = [bool]$wmi.DelayedAutoStart
        state = [string]$svc.Status
        username = [string]$wmi.StartName
        dependencies = @($svc.ServicesDependedOn | ForEach-Object { [string]$_.ServiceName })
        depended_by = @($svc.DependentServices | ForEach-Object { [string]$_.ServiceName })
        can_pause_and_continue = [bool]$svc.CanPauseAndContinue
        failure_actions = $failure
        failure_command = $command
        failure_reboot_msg = $reboot
        failure_non_crash = $nonCrash
    }
}

# sc.exe with an argument string built by mixop (Windows quoting rules), not re-quoted by PowerShell.
function Invoke-MixopSc([string]$Arguments) {
    $psi = New-Object -TypeName System.Diagnostics.ProcessStartInfo
    $psi.FileName = Join-Path -Path $env:SystemRoot -ChildPath 'System32\sc.exe'
    $psi.Arguments = $Arguments
    $psi.UseShellExecute = $false
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.CreateNoWindow = $true
    $proc = [System.Diagnostics.Process]::Start($psi)
    $out = $proc.StandardOutput.ReadToEnd()
    $err = $proc.StandardError.ReadToEnd()
    $proc.WaitForExit()
    return @{ arguments = $Arguments; rc = [int]$proc.ExitCode; output = ($out + $err).Trim() }
}

if ($Mixop.phase -eq 'probe') {
    return Get-MixopService ([string]$a.name)
}

$p = $Mixop.plan
$name = [string]$p.name
$result = @{}

if ($null -ne $p.create) {
    $c = $p.create
    $params = @{ Name = $name; BinaryPathName = [string]$c.path; StartupType = [string]$c.startup_type }
    if ($c.display_name) { $params.DisplayName = [string]$c.display_name }
    if ($c.description) { $params.Description = [string]$c.description }
    $deps = @($c.dependencies | Where-Object { $_ })
    if ($deps.Count -gt 0) { $params.DependsOn = [string[]]$deps }
    $null = New-Service @params
}

if ($null -ne $p.account) {
    $wql = "Name='{0}'" -f $name.Replace('\', '\\').Replace("'", "\'")
    $wmi = Get-CimInstance -ClassName Win32_Service -Filter $wql
    $change = @{}
    if ($null -ne $p.account.start_name) { $change.StartName = [string]$p.account.start_name }
    switch ([string]$p.account.password) {
        'set' { $change.StartPassword = [string]$Mixop.secrets.password }
        'empty' { $change.StartPassword = '' }
    }
    $answer = Invoke-CimMethod -InputObject $wmi -MethodName Change -Arguments $change
    $result.change_rc = [int]$answer.ReturnValue
    if ($result.change_rc -ne 0) {
        $result.after = Get-MixopService $name
        return $result
    }
}

if ($null -ne $p.description) { Set-Service -Name $name -Description ([string]$p.description) }
if ($null -ne $p.display_name) { Set-Service -Name $name -DisplayName ([string]$p.display_name) }

if ($p.delete -and [string]$p.state -eq 'stop') {
    Get-Service | Where-Object { $_.ServiceName -eq $name } | Stop-Service -Force:([bool]$p.force)
}

foreach ($arguments in @($p.sc | Where-Object { $_ })) {
    $sc = Invoke-MixopSc ([string]$arguments)
    if ($sc.rc -ne 0) {
        $result.sc_error = $sc
        $result.after = Get-MixopService $name
        return $result
    }
}

if ($p.state -and -not $p.delete) {
    $svc = Get-Service | Where-Object { $_.ServiceName -eq $name }
    try {
        switch ([string]$p.state) {
            'start' { $svc | Start-Service }
            'stop' { $svc | Stop-Service -Force:([bool]$p.force) }
            'restart' { $svc | Restart-Service -Force:([bool]$p.force) }
        }
    } catch {
        if ([string]$p.state -eq 'stop') { throw }
        # What Windows said: the Win32 error is the innermost exception.
        $messages = @()
        $e = $_.Exception
        while ($null -ne $e) {
            $messages += [string]$e.Message
            $e = $e.InnerException
        }
        $result.start_error = $messages
    }
}

$result.after = Get-MixopService $name
return $result
