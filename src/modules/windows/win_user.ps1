param($Mixop)
# win_user: probe reads the local user (LocalAccounts cmdlets; ADSI WinNT for password expired
# and lockout), its groups and, when asked, whether the password in $Mixop.secrets is the user's
# (a network LogonUserW, as ansible.windows.win_user tests it); apply carries out the plan. The
# password only ever comes from $Mixop.secrets.
$name = [string]$Mixop.args.name

function Get-MixopLocalUser {
    @(Get-LocalUser | Where-Object { $_.Name -eq $name })
}

if ($Mixop.phase -eq 'probe') {
    $allGroups = @(Get-LocalGroup | ForEach-Object { [string]$_.Name })
    $user = Get-MixopLocalUser
    if ($user.Count -eq 0) { return @{ exists = $false; all_groups = $allGroups } }
    $user = $user[0]
    $adsi = [ADSI]"WinNT://$env:COMPUTERNAME/$($user.Name),user"
    # IADsUser.Groups(), as Ansible reads them: Get-LocalGroupMember fails on a group holding an
    # orphaned SID (PowerShell/PowerShell#2996).
    $groups = @(foreach ($g in $adsi.Groups()) { [string]$g.GetType().InvokeMember('Name', 'GetProperty', $null, $g, $null) })
    $logon = $null
    if ($Mixop.args.test_password) {
        if (-not ('Mixop.Logon' -as [type])) {
            Add-Type -Namespace Mixop -Name Logon -MemberDefinition @'
[DllImport("advapi32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
public static extern bool LogonUserW(string user, string domain, string password, int logonType, int provider, out IntPtr token);
[DllImport("kernel32.dll")]
public static extern bool CloseHandle(IntPtr handle);
'@
        }
        $token = [IntPtr]::Zero
        # LOGON32_LOGON_NETWORK (3), LOGON32_PROVIDER_DEFAULT (0), '.': the local account database
        if ([Mixop.Logon]::LogonUserW($user.Name, '.', [string]$Mixop.secrets.password, 3, 0, [ref]$token)) {
            $logon = 0
            $null = [Mixop.Logon]::CloseHandle($token)
        } else {
            $logon = [Runtime.InteropServices.Marshal]::GetLastWin32Error()
        }
    }
    return @{
        exists = $true; name = [string]$user.Name; fullname = [string]$user.FullName
        description = [string]$user.Description; enabled = [bool]$user.Enabled; sid = [string]$user.SID
        user_may_change_password = [bool]$user.UserMayChangePassword
        password_never_expires = ($null -eq $user.PasswordExpires)
        password_expired = ([int]$adsi.PasswordExpired.Value -eq 1)
        locked = [bool]$adsi.IsAccountLocked.Value
        groups = $groups; all_groups = $allGroups; logon_result = $logon
    }
}

$p = $Mixop.plan
if ($p.remove) {
    Remove-LocalUser -Name $name
    return @{ removed = $true }
}
$password = $null
if ($p.password) { $password = ConvertTo-SecureString -String ([string]$Mixop.secrets.password) -AsPlainText -Force }
if ($p.create) {
    $params = @{ Name = $name }
    if ($null -ne $password) { $params.Password = $password } else { $params.NoPassword = $true }
    $null = New-LocalUser @params
} elseif ($null -ne $password) {
    Set-LocalUser -Name $name -Password $password
}
$set = @{}
if ($null -ne $p.fullname) { $set.FullName = [string]$p.fullname }
if ($null -ne $p.description) { $set.Description = [string]$p.description }
if ($null -ne $p.password_never_expires) { $set.PasswordNeverExpires = [bool]$p.password_never_expires }
if ($null -ne $p.user_may_change_password) { $set.UserMayChangePassword = [bool]$p.user_may_change_password }
if ($set.Count -gt 0) { Set-LocalUser -Name $name @set }
if ($p.enable -eq $true) { Enable-LocalUser -Name $name }
elseif ($p.enable -eq $false) { Disable-LocalUser -Name $name }
if ($p.unlock -or $null -ne $p.password_expired) {
    $adsi = [ADSI]"WinNT://$env:COMPUTERNAME/$name,user"
    # Only clearing a lockout is possible.
    if ($p.unlock) { $adsi.IsAccountLocked = $false }
    if ($null -ne $p.password_expired) { $adsi.PasswordExpired = [int][bool]$p.password_expired }
    $adsi.SetInfo()
}
$sid = (Get-MixopLocalUser)[0].SID
foreach ($g in @($p.add_groups)) {
    if ($null -ne $g) { Add-LocalGroupMember -Group ([string]$g) -Member $sid }
}
foreach ($g in @($p.remove_groups)) {
    if ($null -ne $g) { Remove-LocalGroupMember -Group ([string]$g) -Member $sid }
}
return @{ sid = [string]$sid }
