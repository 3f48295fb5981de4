# MARKER
$ErrorActionPreference = 'Stop'
$u = New-Object System.Text.UTF8Encoding $false
$r = New-Object System.IO.StreamReader([Console]::OpenStandardInput(), $u)
$s = $r.ReadLine()
& ([ScriptBlock]::Create($u.GetString([Convert]::FromBase64String($s)))) $r $u
