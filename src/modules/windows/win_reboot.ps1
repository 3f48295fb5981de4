param($Mixop)
# win_reboot's readiness test after a reboot (phase run). LogonUI creates this volatile key when it
# is about to show the logon prompt; the reboot command removed it (as ansible.windows does), so
# its presence means the host has finished booting. Answering at all proves that the PowerShell
# host process, which every later module task needs, starts again.
$key = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon\AutoLogonChecked'
$os = Get-CimInstance -ClassName Win32_OperatingSystem -Property LastBootUpTime
return @{
    ready = [bool](Test-Path -LiteralPath $key)
    boot_time = [string]$os.LastBootUpTime.ToFileTime()
}
