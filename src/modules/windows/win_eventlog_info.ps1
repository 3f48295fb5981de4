param($Mixop)
# win_eventlog_info: the newest entries of a classic event log (Get-EventLog). Changes nothing.
$a = $Mixop.args
$params = @{ LogName = [string]$a.log; Newest = [int]$a.newest }
if ($null -ne $a.source -and @($a.source).Count -gt 0) { $params.Source = [string[]]@($a.source) }
if ($null -ne $a.entry_type -and @($a.entry_type).Count -gt 0) { $params.EntryType = [string[]]@($a.entry_type) }
try {
    $found = @(Get-EventLog @params)
} catch {
    # Get-EventLog reports an empty result as an error ("No matches found").
    if ([string]$_.FullyQualifiedErrorId -like 'GetEventLogNoEntriesFound*') { $found = @() } else { throw }
}
$entries = @($found | ForEach-Object {
    @{
        index = [long]$_.Index
        time_generated = $_.TimeGenerated.ToUniversalTime().ToString('o')
        source = [string]$_.Source
        entry_type = [string]$_.EntryType
        event_id = [long]$_.EventID
        message = [string]$_.Message
    }
})
return @{ entries = $entries }
