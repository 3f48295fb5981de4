"""win_user: mirrors src/modules/windows/win_user.ps1 (sim/accounts.py).

probe  args {"name", "test_password"}, secrets {"password"} ->
       {"exists": false, "all_groups"} | {"exists": true, "name", "fullname", "description", "enabled", "sid",
        "user_may_change_password", "password_never_expires", "password_expired", "locked", "groups",
        "all_groups", "logon_result"}
       (Get-LocalUser / Get-LocalGroup | Where-Object Name -eq; ADSI PasswordExpired, IsAccountLocked;
        IADsUser.Groups() names; LogonUserW(name, '.', password, NETWORK): 0 or the
        Win32 error)
apply  plan {"create", "remove", "password", "fullname", "description", "password_never_expires",
       "user_may_change_password", "enable", "unlock", "password_expired", "add_groups", "remove_groups"} ->
       {"sid"} | {"removed": true}
       (Remove-LocalUser; New-LocalUser -Password | -NoPassword; Set-LocalUser; Enable-/Disable-LocalUser;
        ADSI SetInfo; Add-/Remove-LocalGroupMember -Member <SID>)
"""


def _user(ctx, name):
    return [u for u in ctx.ps.accounts.get_local_user() if u["Name"].lower() == name.lower()]


def probe(ctx):
    acc = ctx.ps.accounts
    name = str(ctx.arg("name", required=True))
    all_groups = [g["Name"] for g in acc.get_local_group()]
    found = _user(ctx, name)
    if not found:
        return {"exists": False, "all_groups": all_groups}
    u = found[0]
    adsi = acc.adsi_user(u["Name"])
    groups = acc.adsi_user_groups(u["Name"])
    logon = None
    if ctx.arg("test_password"):
        logon = acc.logon_user(u["Name"], str(ctx.secrets.get("password") or ""))
    return {"exists": True, "name": u["Name"], "fullname": u["FullName"], "description": u["Description"],
            "enabled": u["Enabled"], "sid": u["SID"], "user_may_change_password": u["UserMayChangePassword"],
            "password_never_expires": u["PasswordExpires"] is None,
            "password_expired": adsi["PasswordExpired"] == 1, "locked": adsi["IsAccountLocked"],
            "groups": groups, "all_groups": all_groups, "logon_result": logon}


def apply(ctx):
    acc = ctx.ps.accounts
    name = str(ctx.arg("name", required=True))
    p = ctx.plan or {}
    if p.get("remove"):
        acc.remove_local_user(name)
        return {"removed": True}
    password = str(ctx.secrets.get("password") or "") if p.get("password") else None
    if p.get("create"):
        acc.new_local_user(name, password=password, no_password=password is None)
    elif password is not None:
        acc.set_local_user(name, password=password)
    acc.set_local_user(name, full_name=p.get("fullname"), description=p.get("description"),
                       password_never_expires=p.get("password_never_expires"),
                       user_may_change_password=p.get("user_may_change_password"))
    if p.get("enable") is True:
        acc.enable_local_user(name)
    elif p.get("enable") is False:
        acc.disable_local_user(name)
    if p.get("unlock") or p.get("password_expired") is not None:
        acc.adsi_set_user(name, password_expired=None if p.get("password_expired") is None
                          else int(bool(p["password_expired"])), is_account_locked=False if p.get("unlock") else None)
    sid = _user(ctx, name)[0]["SID"]
    for g in p.get("add_groups") or []:
        acc.add_local_group_member(str(g), sid)
    for g in p.get("remove_groups") or []:
        acc.remove_local_group_member(str(g), sid)
    return {"sid": sid}
