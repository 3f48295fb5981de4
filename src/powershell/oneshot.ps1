# One process per request (the fallback when the long-lived host cannot start).
$frame = Read-MixopFrame
if ($null -ne $frame) { Write-MixopFrame 'RES' $frame.id (Invoke-MixopFrame $frame) }
