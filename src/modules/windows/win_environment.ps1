param($Mixop)
# win_environment: probe reads each variable at the level ([Environment]::GetEnvironmentVariable:
# Machine is HKLM\...\Session Manager\Environment, User is HKCU\Environment); apply sets or
# removes them and, for machine and user, tells running programs (WM_SETTINGCHANGE
# "Environment"), as ansible.windows.win_environment does.
$a = $Mixop.args
$level = [EnvironmentVariableTarget]([string]$a.level)

function Send-MixopSettingChange {
    if (-not ('Mixop.EnvNotify' -as [type])) {
        Add-Type -Namespace Mixop -Name EnvNotify -MemberDefinition @'
[DllImport("user32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
public static extern IntPtr SendMessageTimeout(IntPtr hWnd, uint Msg, UIntPtr wParam, string lParam, uint fuFlags, uint uTimeout, out UIntPtr lpdwResult);
'@
    }
    $result = [UIntPtr]::Zero
    # HWND_BROADCAST, WM_SETTINGCHANGE, SMTO_ABORTIFHUNG, 5 s
    $null = [Mixop.EnvNotify]::SendMessageTimeout([IntPtr]0xffff, 0x1A, [UIntPtr]::Zero, 'Environment', 2, 5000, [ref]$result)
}

if ($Mixop.phase -eq 'probe') {
    $vars = @(foreach ($n in @($a.names)) {
        if ($null -ne $n) {
            $v = [Environment]::GetEnvironmentVariable([string]$n, $level)
            @{ name = [string]$n; exists = ($null -ne $v); value = [string]$v }
        }
    })
    return @{ variables = $vars }
}
$p = $Mixop.plan
foreach ($s in @($p.set)) {
    if ($null -ne $s) { [Environment]::SetEnvironmentVariable([string]$s.name, [string]$s.value, $level) }
}
foreach ($n in @($p.remove)) {
    # [NullString]::Value: a PowerShell $null would reach .NET as an empty string.
    if ($null -ne $n) { [Environment]::SetEnvironmentVariable([string]$n, [NullString]::Value, $level) }
}
if ($level -ne [EnvironmentVariableTarget]::Process) { Send-MixopSettingChange }
return @{ level = [string]$level }
