param($Mixop)
# win_path: probe reads the raw (unexpanded) value of the path-like variable from the registry,
# as ansible.windows.win_path does; apply writes the new value as REG_EXPAND_SZ and tells running
# programs (WM_SETTINGCHANGE "Environment"). The element logic is the controller's.
$a = $Mixop.args
$name = [string]$a.name
$scope = [string]$a.scope
$subkey = 'System\CurrentControlSet\Control\Session Manager\Environment'
if ($scope -eq 'user') { $subkey = 'Environment' }

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
    if ($scope -eq 'user') {
        $key = [Microsoft.Win32.Registry]::CurrentUser.OpenSubKey($subkey)
    } else {
        $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($subkey)
    }
    try {
        $value = $null
        if ($null -ne $key) {
            $value = $key.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
        }
    } finally {
        if ($null -ne $key) { $key.Dispose() }
    }
    return @{ exists = ($null -ne $value); value = [string]$value }
}
$root = 'HKLM:\'
if ($scope -eq 'user') { $root = 'HKCU:\' }
Set-ItemProperty -LiteralPath ($root + $subkey) -Name $name -Value ([string]$Mixop.plan.value) -Type ExpandString
Send-MixopSettingChange
return @{ value = [string]$Mixop.plan.value }
