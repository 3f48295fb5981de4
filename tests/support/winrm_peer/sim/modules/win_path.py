"""win_path.

probe  args {"name", "scope": "machine"|"user"} -> {"exists", "value"}
       (the raw REG_EXPAND_SZ value under HKLM\\...\\Session Manager\\Environment or HKCU\\Environment, read
        with DoNotExpandEnvironmentNames: the simulator stores environment values unexpanded)
apply  plan {"value"} -> {"value"}   (Set-ItemProperty -Type ExpandString, then WM_SETTINGCHANGE)
"""

SCOPES = {"machine": "Machine", "user": "User"}


def _scope(ctx) -> str:
    return SCOPES.get(str(ctx.arg("scope", "machine")).lower(), "Machine")


def probe(ctx):
    v = ctx.ps.get_environment_variable(str(ctx.arg("name", required=True)), _scope(ctx))
    return {"exists": v is not None, "value": "" if v is None else str(v)}


def apply(ctx):
    value = str((ctx.plan or {}).get("value") or "")
    name = str(ctx.arg("name", required=True))
    scope = _scope(ctx)
    env = ctx.host.data["environment"][scope.lower()]
    # Set-ItemProperty keeps an existing value's name (registry names are case-insensitive) and, unlike
    # SetEnvironmentVariable, writes an empty string rather than deleting the value.
    key = next((k for k in env if k.lower() == name.lower()), name)
    env[key] = value
    ctx.host.data.setdefault("environment_broadcasts", 0)
    ctx.host.data["environment_broadcasts"] += 1
    return {"value": value}
