"""win_environment.

probe  args {"level": "machine"|"user"|"process", "names": [...]} ->
       {"variables": [{"name", "exists", "value"}]}   ([Environment]::GetEnvironmentVariable(name, level))
apply  plan {"set": [{"name", "value"}], "remove": [name]} -> {"level"}
       ([Environment]::SetEnvironmentVariable(name, value, level); removal passes [NullString]::Value;
        machine/user changes are broadcast with WM_SETTINGCHANGE, which has no effect on the model)
"""

LEVELS = {"machine": "Machine", "user": "User", "process": "Process"}


def _level(ctx) -> str:
    return LEVELS.get(str(ctx.arg("level", required=True)).lower(), str(ctx.arg("level")))


def probe(ctx):
    level = _level(ctx)
    out = []
    for n in ctx.arg("names") or []:
        if n is None:
            continue
        v = ctx.ps.get_environment_variable(str(n), level)
        out.append({"name": str(n), "exists": v is not None, "value": "" if v is None else str(v)})
    return {"variables": out}


def apply(ctx):
    level = _level(ctx)
    plan = ctx.plan or {}
    for s in plan.get("set") or []:
        ctx.ps.set_environment_variable(str(s["name"]), str(s["value"]), level)
    for n in plan.get("remove") or []:
        ctx.ps.set_environment_variable(str(n), None, level)
    return {"level": level}
