"""win_service: mirrors src/modules/windows/win_service.ps1.

probe  args {"name"} -> {"exists": false, "computer"} or {"exists": true, "computer", "name", "display_name",
       "description", "path", "start_mode" (Win32_Service.StartMode), "delayed", "state" (ServiceControllerStatus),
       "username", "dependencies", "depended_by", "can_pause_and_continue", "failure_actions" (the registry's
       FailureActions REG_BINARY, base64), "failure_command", "failure_reboot_msg", "failure_non_crash"}
apply  plan {"name", "create": {"path", "display_name", "description", "startup_type", "dependencies"}?,
       "account": {"start_name"?, "password": "set"|"empty"|"keep"}?, "description"?, "display_name"?,
       "sc": ["<sc.exe argument string>", ...], "state": "start"|"stop"|"restart"?, "force", "delete"} ->
       {"after": <probe>, "change_rc"?, "sc_error": {"arguments", "rc", "output"}?, "start_error": [messages]?}

The sc.exe argument strings are split the way sc.exe's C runtime splits its command line
(CommandLineToArgvW rules: https://learn.microsoft.com/cpp/c-language/parsing-c-command-line-arguments).
"""

import base64

from ..errors import CmdletError


def argv(cmdline: str) -> list[str]:
    """Split a Windows command line (the arguments part) like the Microsoft C runtime does."""
    out, cur, i, n = [], [], 0, len(cmdline)
    in_arg = quoted = False
    while i < n:
        c = cmdline[i]
        if c == "\\":
            j = i
            while j < n and cmdline[j] == "\\":
                j += 1
            count = j - i
            if j < n and cmdline[j] == '"':
                cur.append("\\" * (count // 2))
                if count % 2:
                    cur.append('"')
                    i = j + 1
                else:
                    i = j
                in_arg = True
                continue
            cur.append("\\" * count)
            in_arg = True
            i = j
            continue
        if c == '"':
            if quoted and i + 1 < n and cmdline[i + 1] == '"':
                cur.append('"')  # "" inside quotes: a literal quote (post-2008 CRT)
                i += 2
                continue
            quoted = not quoted
            in_arg = True
            i += 1
            continue
        if c in " \t" and not quoted:
            if in_arg:
                out.append("".join(cur))
                cur, in_arg = [], False
            i += 1
            continue
        cur.append(c)
        in_arg = True
        i += 1
    if in_arg:
        out.append("".join(cur))
    return out


def _service(ctx, name: str) -> dict:
    ps = ctx.ps
    computer = ctx.ps.process_env.get("COMPUTERNAME", "")
    low = str(name).lower()
    found = [s for s in ps.get_service() if s["ServiceName"].lower() == low or s["DisplayName"].lower() == low]
    if not found:
        try:
            found = ps.get_service(name)
        except CmdletError:
            found = []
    if not found:
        return {"exists": False, "computer": computer}
    svc = found[0]
    n = svc["ServiceName"]
    wmi = [w for w in ps.get_cim_instance("Win32_Service") if w["Name"].lower() == n.lower()][0]
    try:
        key = ps.get_item_property_service_key(n)
    except CmdletError:
        key = None
    key = key or {}
    fa = key.get("FailureActions")
    return {
        "exists": True, "computer": computer, "name": n, "display_name": svc["DisplayName"],
        "description": wmi["Description"] or "", "path": wmi["PathName"], "start_mode": wmi["StartMode"],
        "delayed": bool(wmi["DelayedAutoStart"]), "state": svc["Status"], "username": wmi["StartName"],
        "dependencies": list(svc["ServicesDependedOn"]), "depended_by": list(svc["DependentServices"]),
        "can_pause_and_continue": bool(svc["CanPauseAndContinue"]),
        "failure_actions": base64.b64encode(fa).decode() if fa is not None else None,
        "failure_command": key.get("FailureCommand"), "failure_reboot_msg": key.get("RebootMessage"),
        "failure_non_crash": bool(key["FailureActionsOnNonCrashFailures"])
        if key.get("FailureActionsOnNonCrashFailures") is not None else None,
    }


def probe(ctx):
    return _service(ctx, ctx.arg("name", required=True))


def apply(ctx):
    ps = ctx.ps
    p = ctx.plan or {}
    name = p["name"]
    result = {}
    c = p.get("create")
    if c:
        ps.new_service(name, c["path"], display_name=c.get("display_name") or None,
                       description=c.get("description") or None, startup_type=c["startup_type"],
                       depends_on=[d for d in c.get("dependencies") or [] if d] or None)
    acct = p.get("account")
    if acct:
        pw = {"set": str(ctx.secrets.get("password") or ""), "empty": ""}.get(acct.get("password"))
        answer = ps.invoke_cim_method_win32_service_change(name, start_name=acct.get("start_name"),
                                                           start_password=pw)
        result["change_rc"] = int(answer["ReturnValue"])
        if result["change_rc"] != 0:
            result["after"] = _service(ctx, name)
            return result
    if p.get("description") is not None:
        ps.set_service(name, description=p["description"])
    if p.get("display_name") is not None:
        ps.set_service(name, display_name=p["display_name"])
    if p.get("delete") and p.get("state") == "stop":
        ps.stop_service(name, force=bool(p.get("force")))
    for arguments in [a for a in p.get("sc") or [] if a]:
        rc, out = ps.sc_exe(argv(arguments))
        if rc != 0:
            result["sc_error"] = {"arguments": arguments, "rc": rc, "output": out.strip()}
            result["after"] = _service(ctx, name)
            return result
    state = p.get("state")
    if state and not p.get("delete"):
        try:
            if state == "start":
                ps.start_service(name)
            elif state == "stop":
                ps.stop_service(name, force=bool(p.get("force")))
            elif state == "restart":
                ps.restart_service(name, force=bool(p.get("force")))
        except CmdletError as e:
            if state == "stop":
                raise
            result["start_error"] = [e.msg] + list(e.inner)
    result["after"] = _service(ctx, name)
    return result
