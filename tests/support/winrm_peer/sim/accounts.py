"""Simulated local users and groups (the SAM of a stand-alone Windows Server 2022 host).

Written from Microsoft's documentation of the Microsoft.PowerShell.LocalAccounts 1.0.0.0 cmdlets
(https://learn.microsoft.com/powershell/module/microsoft.powershell.localaccounts/), the ADSI WinNT
provider's user properties (https://learn.microsoft.com/windows/win32/adsi/winnt-user-object-attributes:
PasswordExpired, IsAccountLocked), LogonUserW's documented error codes
(https://learn.microsoft.com/windows/win32/debug/system-error-codes--1300-1699-) and the default
"Password must meet complexity requirements" policy
(https://learn.microsoft.com/windows/security/threat-protection/security-policy-settings/password-must-meet-complexity-requirements).

State in ``host.json``: ``local_users`` = lower-case name -> ``{name, full_name, description, enabled, sid,
password_sha256 (null: no password), password_required, password_never_expires, user_may_change_password,
password_expired, locked, password_last_set, password_changes}``; ``local_groups`` = lower-case name ->
``{name, description, sid, builtin, members: [principal names as Windows shows them]}``. Passwords are kept only
as SHA-256. Messages and error ids not checked against a Windows host are marked "best recollection".
"""

from __future__ import annotations

import hashlib
import re
import time

from .errors import CmdletError

LA = "Microsoft.PowerShell.Commands."
DOMAIN_SID = "S-1-5-21-3623811015-3361044348-30300820"

WELL_KNOWN = {  # principals Get-LocalGroupMember shows for built-in memberships
    "nt authority\\interactive": ("NT AUTHORITY\\INTERACTIVE", "S-1-5-4", "Group"),
    "nt authority\\authenticated users": ("NT AUTHORITY\\Authenticated Users", "S-1-5-11", "Group"),
    "nt authority\\system": ("NT AUTHORITY\\SYSTEM", "S-1-5-18", "User"),
    "nt authority\\network service": ("NT AUTHORITY\\NETWORK SERVICE", "S-1-5-20", "User"),
    "nt authority\\local service": ("NT AUTHORITY\\LOCAL SERVICE", "S-1-5-19", "User"),
    "everyone": ("Everyone", "S-1-1-0", "Group"),
}

BUILTIN_GROUPS = [  # name, RID, description, members (names of local users / well-known principals)
    ("Access Control Assistance Operators", 579, "Members of this group can remotely query authorization attributes "
     "and permissions for resources on this computer.", []),
    ("Administrators", 544, "Administrators have complete and unrestricted access to the computer/domain",
     ["Administrator"]),
    ("Backup Operators", 551, "Backup Operators can override security restrictions for the sole purpose of backing up "
     "or restoring files", []),
    ("Event Log Readers", 573, "Members of this group can read event logs from local machine", []),
    ("Guests", 546, "Guests have the same access as members of the Users group by default, except for the Guest "
     "account which is further restricted", ["Guest"]),
    ("Hyper-V Administrators", 578, "Members of this group have complete and unrestricted access to all features of "
     "Hyper-V.", []),
    ("Performance Monitor Users", 558, "Members of this group can access performance counter data locally and "
     "remotely", []),
    ("Power Users", 547, "Power Users are included for backwards compatibility and possess limited administrative "
     "powers", []),
    ("Remote Desktop Users", 555, "Members in this group are granted the right to logon remotely", []),
    ("Remote Management Users", 580, "Members of this group can access WMI resources over management protocols (such "
     "as WS-Management via the Windows Remote Management service). This applies only to WMI namespaces that grant "
     "access to the user.", []),
    ("System Managed Accounts Group", 581, "Members of this group are managed by the system.", ["DefaultAccount"]),
    ("Users", 545, "Users are prevented from making accidental or intentional system-wide changes and can run most "
     "applications", ["NT AUTHORITY\\INTERACTIVE", "NT AUTHORITY\\Authenticated Users"]),
]

BUILTIN_USERS = [  # name, RID, description, enabled
    ("Administrator", 500, "Built-in account for administering the computer/domain", True),
    ("DefaultAccount", 503, "A user account managed by the system.", False),
    ("Guest", 501, "Built-in account for guest access to the computer/domain", False),
    ("WDAGUtilityAccount", 504, "A user account managed and used by the system for Windows Defender Application Guard "
     "scenarios.", False),
]

# LogonUserW results (Win32 error codes)
ERROR_LOGON_FAILURE = 1326
ERROR_ACCOUNT_RESTRICTION = 1327  # e.g. a blank password for a network logon
ERROR_PASSWORD_EXPIRED = 1330
ERROR_ACCOUNT_DISABLED = 1331
ERROR_PASSWORD_MUST_CHANGE = 1907
ERROR_ACCOUNT_LOCKED_OUT = 1909


def _sha(pw) -> str | None:
    return hashlib.sha256(str(pw).encode("utf-8")).hexdigest() if pw else None


def _user(name: str, rid: int, description: str = "", enabled: bool = True) -> dict:
    return {"name": name, "full_name": "", "description": description, "enabled": enabled,
            "sid": "%s-%d" % (DOMAIN_SID, rid), "password_sha256": None, "password_required": True,
            "password_never_expires": False, "user_may_change_password": True, "password_expired": False,
            "locked": False, "password_last_set": None, "password_changes": 0}


def normalize(d: dict) -> None:
    if "local_users" not in d:
        d["local_users"] = {n.lower(): _user(n, rid, desc, en) for n, rid, desc, en in BUILTIN_USERS}
    d["local_users"] = {(v.get("name") or k).lower(): dict(_user(v.get("name") or k, 1000), **v)
                        for k, v in d["local_users"].items()}
    if "local_groups" not in d:
        d["local_groups"] = {n.lower(): {"name": n, "description": desc, "sid": "S-1-5-32-%d" % rid, "builtin": True,
                                         "members": list(m)} for n, rid, desc, m in BUILTIN_GROUPS}
    groups = {}
    for k, v in d["local_groups"].items():
        name = v.get("name") or k
        groups[name.lower()] = dict({"name": name, "description": "", "sid": "%s-%d" % (DOMAIN_SID, 1000),
                                     "builtin": False, "members": []}, **v)
    d["local_groups"] = groups


def complex_enough(password: str, account: str) -> bool:
    """The default complexity policy: at least 6 characters, 3 of the 4 kinds, not containing the account name."""
    if len(password) < 6 or (len(account) > 2 and account.lower() in password.lower()):
        return False
    kinds = [re.search(r"[A-Z]", password), re.search(r"[a-z]", password), re.search(r"[0-9]", password),
             re.search(r"[^A-Za-z0-9]", password)]
    return sum(1 for k in kinds if k) >= 3


class Accounts:
    def __init__(self, ps):
        self.ps = ps

    @property
    def users(self) -> dict:
        return self.ps.d["local_users"]

    @property
    def groups(self) -> dict:
        return self.ps.d["local_groups"]

    @property
    def computer(self) -> str:
        return self.ps.d["computer"]["name"]

    def _next_rid(self) -> int:
        rids = [int(str(x["sid"]).rsplit("-", 1)[-1]) for x in list(self.users.values()) + list(self.groups.values())
                if str(x["sid"]).startswith(DOMAIN_SID)]
        return max([1000] + [r + 1 for r in rids if r >= 1000])

    def _user_not_found(self, name, cmd: str, cmd_type: str) -> CmdletError:
        return CmdletError("User %s was not found." % name, LA + "UserNotFoundException", "ObjectNotFound",
                           "UserNotFound," + LA + cmd_type, cmd, name)

    def _group_not_found(self, name, cmd: str, cmd_type: str) -> CmdletError:
        return CmdletError("Group %s was not found." % name, LA + "GroupNotFoundException", "ObjectNotFound",
                           "GroupNotFound," + LA + cmd_type, cmd, name)

    def _find_user(self, name, cmd: str, cmd_type: str) -> dict:
        u = self.users.get(self._local_name(name).lower())
        if u is None:
            raise self._user_not_found(name, cmd, cmd_type)
        return u

    def _find_group(self, name, cmd: str, cmd_type: str) -> dict:
        g = self.groups.get(self._local_name(name).lower())
        if g is None:
            raise self._group_not_found(name, cmd, cmd_type)
        return g

    def _local_name(self, name) -> str:
        n = str(name or "")
        if "\\" in n:
            dom, _, rest = n.partition("\\")
            if dom in (".",) or dom.lower() == self.computer.lower():
                return rest
        return n

    def _check_password(self, password, account: str, cmd: str, cmd_type: str) -> None:
        if password is not None and not complex_enough(str(password), account):
            raise CmdletError("The password does not meet the password policy requirements. Check the minimum "
                              "password length, password complexity and password history requirements.",
                              LA + "InvalidPasswordException", "InvalidArgument", "InvalidPassword," + LA + cmd_type,
                              cmd, account)

    # ---- users -------------------------------------------------------------------------------
    def _user_obj(self, u: dict) -> dict:
        expires = None
        if not u["password_never_expires"] and u["password_last_set"] is not None:
            expires = u["password_last_set"] + 42 * 86400  # default maximum password age: 42 days
        return {"Name": u["name"], "FullName": u["full_name"], "Description": u["description"],
                "Enabled": u["enabled"], "SID": u["sid"], "PrincipalSource": "Local", "ObjectClass": "User",
                "PasswordRequired": u["password_required"], "UserMayChangePassword": u["user_may_change_password"],
                "PasswordExpires": expires, "PasswordLastSet": u["password_last_set"]}

    def get_local_user(self, name=None) -> list[dict]:
        if name is None:
            return [self._user_obj(u) for u in self.users.values()]
        return [self._user_obj(self._find_user(name, "Get-LocalUser", "GetLocalUserCommand"))]

    def new_local_user(self, name, password=None, no_password=False, full_name=None, description=None,
                       password_never_expires=False, user_may_not_change_password=False, disabled=False) -> dict:
        cmd, cmd_type = "New-LocalUser", "NewLocalUserCommand"
        n = str(name)
        if n.lower() in self.users:
            raise CmdletError("User %s already exists." % n, LA + "UserExistsException", "ResourceExists",
                              "UserExists," + LA + cmd_type, cmd, n)
        if n.lower() in self.groups:
            # best recollection: NERR_GroupExists surfaces as this message
            raise CmdletError("The name %s is already in use." % n, LA + "NameInUseException", "ResourceExists",
                              "NameInUse," + LA + cmd_type, cmd, n)
        if len(n) > 20 or re.search(r'["/\\\[\]:;|=,+*?<>@]', n):
            raise CmdletError("The name %s is not valid." % n, LA + "InvalidNameException", "InvalidArgument",
                              "InvalidName," + LA + cmd_type, cmd, n)
        if password is None and not no_password:
            raise CmdletError("Parameter set cannot be resolved using the specified named parameters.",
                              "System.Management.Automation.ParameterBindingException", "InvalidArgument",
                              "AmbiguousParameterSet," + LA + cmd_type, cmd)
        self._check_password(password, n, cmd, cmd_type)
        u = _user(n, self._next_rid())
        u.update(full_name=str(full_name or ""), description=str(description or ""), enabled=not disabled,
                 password_never_expires=bool(password_never_expires),
                 user_may_change_password=not user_may_not_change_password,
                 password_required=not no_password)
        if password is not None:
            u["password_sha256"] = _sha(password)
            u["password_last_set"] = time.time()
            u["password_changes"] = 1
        self.users[n.lower()] = u
        # New local accounts join Users (NetUserAdd on a stand-alone host).
        self.groups["users"]["members"].append(n)
        return self._user_obj(u)

    def set_local_user(self, name, password=None, full_name=None, description=None, password_never_expires=None,
                       user_may_change_password=None) -> None:
        cmd, cmd_type = "Set-LocalUser", "SetLocalUserCommand"
        u = self._find_user(name, cmd, cmd_type)
        if password is not None:
            self._check_password(password, u["name"], cmd, cmd_type)
            u["password_sha256"] = _sha(password)
            u["password_last_set"] = time.time()
            u["password_changes"] = int(u.get("password_changes") or 0) + 1
            u["password_expired"] = False
        if full_name is not None:
            u["full_name"] = str(full_name)
        if description is not None:
            u["description"] = str(description)
        if password_never_expires is not None:
            u["password_never_expires"] = bool(password_never_expires)
        if user_may_change_password is not None:
            u["user_may_change_password"] = bool(user_may_change_password)

    def enable_local_user(self, name) -> None:
        self._find_user(name, "Enable-LocalUser", "EnableLocalUserCommand")["enabled"] = True

    def disable_local_user(self, name) -> None:
        self._find_user(name, "Disable-LocalUser", "DisableLocalUserCommand")["enabled"] = False

    def remove_local_user(self, name) -> None:
        cmd, cmd_type = "Remove-LocalUser", "RemoveLocalUserCommand"
        u = self._find_user(name, cmd, cmd_type)
        if int(u["sid"].rsplit("-", 1)[-1]) < 1000:
            # ERROR_SPECIAL_ACCOUNT (1371); best recollection of the exception type
            raise CmdletError("Cannot perform this operation on built-in accounts.", LA + "AccessDeniedException",
                              "PermissionDenied", "AccessDenied," + LA + cmd_type, cmd, u["name"])
        del self.users[u["name"].lower()]
        for g in self.groups.values():
            g["members"] = [m for m in g["members"] if self._local_name(m).lower() != u["name"].lower()]

    # ADSI WinNT://<computer>/<name>,user: what the LocalAccounts cmdlets do not show.
    def adsi_user(self, name) -> dict:
        u = self._find_user(name, "[ADSI]", "ADSI")
        return {"PasswordExpired": 1 if u["password_expired"] else 0, "IsAccountLocked": bool(u["locked"])}

    def adsi_user_groups(self, name) -> list[str]:
        """IADsUser.Groups(): the names of the local groups the user is a direct member of."""
        u = self._find_user(name, "Groups", "ADSI")
        return [g["name"] for g in self.groups.values()
                if any(self._local_name(m).lower() == u["name"].lower() or m == u["sid"] for m in g["members"])]

    def adsi_set_user(self, name, password_expired=None, is_account_locked=None) -> None:
        u = self._find_user(name, "SetInfo", "ADSI")
        if password_expired is not None:
            u["password_expired"] = bool(int(password_expired))
        if is_account_locked is not None:
            if is_account_locked:
                # IsAccountLocked can only be cleared (ADSI: setting it to true fails)
                raise CmdletError('Exception calling "SetInfo" with "0" argument(s): "The parameter is incorrect."',
                                  "System.Management.Automation.MethodInvocationException", "NotSpecified",
                                  "COMException", "SetInfo")
            u["locked"] = False

    def logon_user(self, name, password) -> int:
        """LogonUserW(name, '.', password, LOGON32_LOGON_NETWORK): 0 or the Win32 error code."""
        u = self.users.get(self._local_name(name).lower())
        if u is None or u["password_sha256"] != _sha(password):
            if u is not None and not password and u["password_sha256"] is None:
                return ERROR_ACCOUNT_RESTRICTION
            return ERROR_LOGON_FAILURE
        if u["locked"]:
            return ERROR_ACCOUNT_LOCKED_OUT
        if not u["enabled"]:
            return ERROR_ACCOUNT_DISABLED
        if u["password_expired"]:
            return ERROR_PASSWORD_MUST_CHANGE
        return 0

    # ---- groups ------------------------------------------------------------------------------
    def _group_obj(self, g: dict) -> dict:
        return {"Name": g["name"], "Description": g["description"], "SID": g["sid"], "PrincipalSource": "Local",
                "ObjectClass": "Group"}

    def get_local_group(self, name=None) -> list[dict]:
        if name is None:
            return [self._group_obj(g) for g in self.groups.values()]
        return [self._group_obj(self._find_group(name, "Get-LocalGroup", "GetLocalGroupCommand"))]

    def new_local_group(self, name, description=None) -> dict:
        cmd, cmd_type = "New-LocalGroup", "NewLocalGroupCommand"
        n = str(name)
        if n.lower() in self.groups:
            raise CmdletError("Group %s already exists." % n, LA + "GroupExistsException", "ResourceExists",
                              "GroupExists," + LA + cmd_type, cmd, n)
        if n.lower() in self.users:
            raise CmdletError("The name %s is already in use." % n, LA + "NameInUseException", "ResourceExists",
                              "NameInUse," + LA + cmd_type, cmd, n)
        if len(n) > 256 or re.search(r'["/\\\[\]:;|=,+*?<>]', n):
            raise CmdletError("The name %s is not valid." % n, LA + "InvalidNameException", "InvalidArgument",
                              "InvalidName," + LA + cmd_type, cmd, n)
        g = {"name": n, "description": str(description or ""), "sid": "%s-%d" % (DOMAIN_SID, self._next_rid()),
             "builtin": False, "members": []}
        self.groups[n.lower()] = g
        return self._group_obj(g)

    def set_local_group(self, name, description) -> None:
        self._find_group(name, "Set-LocalGroup", "SetLocalGroupCommand")["description"] = str(description or "")

    def remove_local_group(self, name) -> None:
        cmd, cmd_type = "Remove-LocalGroup", "RemoveLocalGroupCommand"
        g = self._find_group(name, cmd, cmd_type)
        if g.get("builtin"):
            raise CmdletError("Cannot perform this operation on built-in accounts.", LA + "AccessDeniedException",
                              "PermissionDenied", "AccessDenied," + LA + cmd_type, cmd, g["name"])
        del self.groups[g["name"].lower()]

    def _principal(self, member, cmd: str, cmd_type: str) -> tuple[str, str, str]:
        """(display name, SID, ObjectClass) of a member given by name, .\\name, COMPUTER\\name or SID."""
        m = str(member)
        for u in self.users.values():
            if self._local_name(m).lower() == u["name"].lower() or m == u["sid"]:
                return "%s\\%s" % (self.computer, u["name"]), u["sid"], "User"
        for g in self.groups.values():
            if not g.get("builtin") and (self._local_name(m).lower() == g["name"].lower() or m == g["sid"]):
                return "%s\\%s" % (self.computer, g["name"]), g["sid"], "Group"
        wk = WELL_KNOWN.get(m.lower()) or next((v for v in WELL_KNOWN.values() if v[1] == m), None)
        if wk:
            return wk
        raise CmdletError("Principal %s was not found." % m, LA + "PrincipalNotFoundException", "ObjectNotFound",
                          "PrincipalNotFound," + LA + cmd_type, cmd, m)

    def get_local_group_member(self, name) -> list[dict]:
        g = self._find_group(name, "Get-LocalGroupMember", "GetLocalGroupMemberCommand")
        out = []
        for m in g["members"]:
            try:
                disp, sid, cls = self._principal(m, "Get-LocalGroupMember", "GetLocalGroupMemberCommand")
            except CmdletError:
                continue
            out.append({"Name": disp, "SID": sid, "ObjectClass": cls, "PrincipalSource": "Local"})
        return out

    def add_local_group_member(self, name, member) -> None:
        cmd, cmd_type = "Add-LocalGroupMember", "AddLocalGroupMemberCommand"
        g = self._find_group(name, cmd, cmd_type)
        for m in member if isinstance(member, list) else [member]:
            disp, sid, _ = self._principal(m, cmd, cmd_type)
            if any(self._principal(x, cmd, cmd_type)[1] == sid for x in g["members"]):
                raise CmdletError("%s is already a member of group %s." % (disp, g["name"]),
                                  LA + "MemberExistsException", "ResourceExists", "MemberExists," + LA + cmd_type,
                                  cmd, disp)
            g["members"].append(disp.split("\\", 1)[1] if disp.startswith(self.computer + "\\") else disp)

    def remove_local_group_member(self, name, member) -> None:
        cmd, cmd_type = "Remove-LocalGroupMember", "RemoveLocalGroupMemberCommand"
        g = self._find_group(name, cmd, cmd_type)
        for m in member if isinstance(member, list) else [member]:
            disp, sid, _ = self._principal(m, cmd, cmd_type)
            keep = [x for x in g["members"] if self._principal(x, cmd, cmd_type)[1] != sid]
            if len(keep) == len(g["members"]):
                raise CmdletError("Member %s was not found in group %s." % (disp, g["name"]),
                                  LA + "MemberNotFoundException", "ObjectNotFound", "MemberNotFound," + LA + cmd_type,
                                  cmd, disp)
            g["members"] = keep
