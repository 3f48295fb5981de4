"""win_optional_feature: mirrors src/modules/windows/win_optional_feature.ps1.

probe  args {"name": [names], "source"?} -> {"features": [{"name", "found", "state", "restart_required"} |
       {"name", "found": false}], "source_exists": bool | null}
       (one Get-WindowsOptionalFeature -Online -FeatureName per name; an unknown name's COMException is caught)
apply  plan {"enable": [...], "disable": [...], "all": bool, "source": str?} -> {"reboot_required": bool}
       (Enable-/Disable-WindowsOptionalFeature -Online -NoRestart: ImageObject.RestartNeeded)
"""

from ..errors import CmdletError


def _names(v):
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def probe(ctx):
    out = []
    for n in _names(ctx.arg("name", required=True)):
        try:
            f = ctx.ps.get_windows_optional_feature(n)[0]
        except CmdletError as e:
            if e.exception != "System.Runtime.InteropServices.COMException":
                raise
            out.append({"name": str(n), "found": False})
            continue
        out.append({"name": f["FeatureName"], "found": True, "state": f["State"],
                    "restart_required": f["RestartRequired"]})
    source = ctx.arg("source")
    return {"features": out, "source_exists": ctx.ps.test_path(source) if source else None}


def apply(ctx):
    plan = ctx.plan or {}
    restart = False
    enable = [x for x in _names(plan.get("enable")) if x]
    if enable:
        r = ctx.ps.enable_windows_optional_feature(enable, all=bool(plan.get("all")), source=plan.get("source"))
        restart = restart or bool(r["RestartNeeded"])
    disable = [x for x in _names(plan.get("disable")) if x]
    if disable:
        r = ctx.ps.disable_windows_optional_feature(disable)
        restart = restart or bool(r["RestartNeeded"])
    return {"reboot_required": restart}
