param($Mixop)
# win_scheduled_task: probe reports the task's definition and state; apply registers the plan's
# whole definition (Register-ScheduledTask -Force) or unregisters the task, then reports again.
# ScheduledTasks cmdlets (Windows Server 2012 and later).
$a = $Mixop.args
$taskPath = if ($a.path) { [string]$a.path } else { '\' }
if (-not $taskPath.StartsWith('\')) { $taskPath = '\' + $taskPath }
if (-not $taskPath.EndsWith('\')) { $taskPath = $taskPath + '\' }
$taskName = [string]$a.name

function Get-MixopTask {
    $t = Get-ScheduledTask -TaskPath $taskPath -ErrorAction SilentlyContinue |
        Where-Object { $_.TaskName -eq $taskName } | Select-Object -First 1
    if ($null -eq $t) { return @{ task = $null; state = $null } }
    $kinds = @{
        MSFT_TaskBootTrigger = 'boot'; MSFT_TaskLogonTrigger = 'logon'
        MSFT_TaskTimeTrigger = 'once'; MSFT_TaskDailyTrigger = 'daily'
    }
    $triggers = @(foreach ($tr in @($t.Triggers)) {
        if ($null -eq $tr) { continue }
        $kind = $kinds[[string]$tr.CimClass.CimClassName]
        if (-not $kind) { $kind = [string]$tr.CimClass.CimClassName }
        @{
            type = $kind; enabled = [bool]$tr.Enabled
            delay = if ($tr.PSObject.Properties['Delay'] -and $tr.Delay) { [string]$tr.Delay } else { $null }
            start_boundary = if ($tr.StartBoundary) { [string]$tr.StartBoundary } else { $null }
        }
    })
    $actions = @(foreach ($ac in @($t.Actions)) {
        if ($null -eq $ac) { continue }
        @{ path = [string]$ac.Execute; arguments = $ac.Arguments; working_directory = $ac.WorkingDirectory }
    })
    $s = $t.Settings
    return @{
        state = [string]$t.State
        task = @{
            description = [string]$t.Description
            actions = $actions
            triggers = $triggers
            user = [string]$t.Principal.UserId
            logon_type = [string]$t.Principal.LogonType
            run_level = [string]$t.Principal.RunLevel
            enabled = [bool]$s.Enabled
            restart_count = [int]$s.RestartCount
            restart_interval = if ($s.RestartInterval) { [string]$s.RestartInterval } else { $null }
            execution_time_limit = if ($s.ExecutionTimeLimit) { [string]$s.ExecutionTimeLimit } else { $null }
            start_when_available = [bool]$s.StartWhenAvailable
        }
    }
}

if ($Mixop.phase -eq 'probe') { return Get-MixopTask }

$p = $Mixop.plan
if ($p.action -eq 'unregister') {
    Unregister-ScheduledTask -TaskPath $taskPath -TaskName $taskName -Confirm:$false
    return Get-MixopTask
}
$d = $p.task
$actions = @(foreach ($ac in @($d.actions)) {
    $params = @{ Execute = [string]$ac.path }
    if ($ac.arguments) { $params.Argument = [string]$ac.arguments }
    if ($ac.working_directory) { $params.WorkingDirectory = [string]$ac.working_directory }
    New-ScheduledTaskAction @params
})
$triggers = @(foreach ($tr in @($d.triggers)) {
    if ($null -eq $tr) { continue }
    $t = switch ([string]$tr.type) {
        'boot' { New-ScheduledTaskTrigger -AtStartup }
        'logon' { New-ScheduledTaskTrigger -AtLogOn }
        'once' { New-ScheduledTaskTrigger -Once -At ([datetime][string]$tr.start_boundary) }
        'daily' { New-ScheduledTaskTrigger -Daily -At ([datetime][string]$tr.start_boundary) }
    }
    if ($tr.delay) { $t.Delay = [string]$tr.delay }
    if ($tr.enabled -eq $false) { $t.Enabled = $false }
    $t
})
$settingsParams = @{ RestartCount = [int]$d.restart_count }
if ($d.restart_interval) { $settingsParams.RestartInterval = [System.Xml.XmlConvert]::ToTimeSpan([string]$d.restart_interval) }
if ($d.execution_time_limit) { $settingsParams.ExecutionTimeLimit = [System.Xml.XmlConvert]::ToTimeSpan([string]$d.execution_time_limit) }
if ($d.start_when_available) { $settingsParams.StartWhenAvailable = $true }
if ($d.enabled -eq $false) { $settingsParams.Disable = $true }
$register = @{
    TaskName = $taskName; TaskPath = $taskPath; Action = $actions
    Settings = (New-ScheduledTaskSettingsSet @settingsParams); Force = $true
}
if ($triggers.Count -gt 0) { $register.Trigger = $triggers }
if ($d.description) { $register.Description = [string]$d.description }
if ($a.password -and [string]$d.logon_type -eq 'Password') {
    # A user's password: -User/-Password (a principal object cannot carry one).
    $register.User = [string]$d.user; $register.Password = [string]$a.password
    $register.RunLevel = if ($d.run_level) { [string]$d.run_level } else { 'Limited' }
} elseif ($d.user) {
    $logon = if ($d.logon_type) { [string]$d.logon_type } else { 'Interactive' }
    $runLevel = if ($d.run_level) { [string]$d.run_level } else { 'Limited' }
    $register.Principal = New-ScheduledTaskPrincipal -UserId ([string]$d.user) -LogonType $logon -RunLevel $runLevel
}
$null = Register-ScheduledTask @register
return Get-MixopTask
