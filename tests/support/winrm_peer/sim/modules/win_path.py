"""win_path.

probe  args {"name", "scope": "machine"|"user"} -> {"exists", "value"}
       (the raw REG_EXPAND_SZ value under HKLM\\...\\Session Manager\\Environment or HKCU\\Environment, read
        with DoNotExpandEnvironmentNames: the simulator stores environment values unexpanded)
apply  plan {"value"} -> {"value"}   (Set-ItemProperty -Type ExpandString, then WM_SETTINGCHANGE)
"""

from .. import fileops

SCOPES = {"machine": "Machine", "user": "User"}


def _scope(ctx) -> str:
    return SCOPES.get(str(ctx.arg("scope", "machine")).lower(), "Machine")


def probe(ctx):
    v = ctx.ps.get_environment_variable(str(ctx.arg("name", required=True)), _scope(ctx))
    return {"exists": v is not None, "value": "" if v is None else str(v)}


def apply(ctx):
    value = str((ctx.plan or {}).get("value") or "")
    fileops.set_environment_registry_value(ctx.ps, _scope(ctx), str(ctx.arg("name", required=True)), value)
    return {"value": value}
