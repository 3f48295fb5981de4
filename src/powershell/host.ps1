# The long-lived host: READY, then one answer per request until stdin ends.
Write-MixopFrame 'READY' 0 @{ pid = $PID; ps_version = $PSVersionTable.PSVersion.ToString(); host = $env:COMPUTERNAME }
while ($null -ne ($frame = Read-MixopFrame)) {
    Write-MixopFrame 'RES' $frame.id (Invoke-MixopFrame $frame)
}
