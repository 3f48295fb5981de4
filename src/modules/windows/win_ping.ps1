param($Mixop)
# win_ping: proves the PowerShell host answers; `data: crash` fails on purpose, as Ansible's.
$data = [string]$Mixop.args.data
if ($data -eq 'crash') { throw 'boom' }
return @{ ping = $data }
