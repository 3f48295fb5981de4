param($Mixop)
# win_scheduled_task_stat: the tasks of a folder and, with a name, that task's definition and
# state (ScheduledTasks module). Changes nothing; Rust shapes the result as Ansible's module does.
$a = $Mixop.args
$path = [string]$a.path
if (-not $path.EndsWith('\')) { $path += '\' }
$tasks = @(Get-ScheduledTask -TaskPath $path -ErrorAction SilentlyContinue)
$result = @{ folder_task_names = @($tasks | ForEach-Object { [string]$_.TaskName }); task = $null }
if ($null -eq $a.name) { return $result }
$task = $tasks | Where-Object { [string]$_.TaskName -eq [string]$a.name } | Select-Object -First 1
if ($null -eq $task) { return $result }
$info = Get-ScheduledTaskInfo -TaskName $task.TaskName -TaskPath $task.TaskPath
function Format-Time($t) {
    if ($null -eq $t) { return $null }
    return ([DateTime]$t).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
}
$settings = @{}
foreach ($prop in $task.Settings.PSObject.Properties) {
    if ($prop.Name -in @('IdleSettings', 'NetworkSettings', 'MaintenanceSettings', 'CimClass', 'CimInstanceProperties', 'CimSystemProperties', 'PSComputerName')) { continue }
    $value = $prop.Value
    if ($value -is [Enum]) { $value = [string]$value }
    $settings[$prop.Name] = $value
}
$result.task = @{
    task_name = [string]$task.TaskName; task_path = [string]$task.TaskPath; state = [string]$task.State
    author = $task.Author; date = $task.Date; description = $task.Description; uri = $task.URI
    version = $task.Version; source = $task.Source; documentation = $task.Documentation
    security_descriptor = $task.SecurityDescriptor
    actions = @($task.Actions | ForEach-Object {
        @{ execute = $_.Execute; arguments = $_.Arguments; working_directory = $_.WorkingDirectory; id = $_.Id }
    })
    triggers = @($task.Triggers | ForEach-Object {
        @{
            type = [string]$_.CimClass.CimClassName; enabled = [bool]$_.Enabled; delay = $_.Delay
            start_boundary = $_.StartBoundary; end_boundary = $_.EndBoundary
            execution_time_limit = $_.ExecutionTimeLimit; id = $_.Id
            repetition = @{
                duration = $_.Repetition.Duration; interval = $_.Repetition.Interval
                stop_at_duration_end = [bool]$_.Repetition.StopAtDurationEnd
            }
        }
    })
    principal = @{
        user_id = $task.Principal.UserId; group_id = $task.Principal.GroupId
        display_name = $task.Principal.DisplayName; id = $task.Principal.Id
        logon_type = [string]$task.Principal.LogonType; run_level = [string]$task.Principal.RunLevel
    }
    settings = $settings
    last_run_time = (Format-Time $info.LastRunTime); last_task_result = [long]$info.LastTaskResult
    next_run_time = (Format-Time $info.NextRunTime); number_of_missed_runs = [int]$info.NumberOfMissedRuns
}
return $result
