"""win_group: mirrors src/modules/windows/win_group.ps1 (sim/accounts.py).

probe  args {"name"} -> {"exists": false} | {"exists": true, "description"}
       (Get-LocalGroup | Where-Object Name -eq: case-insensitive, no wildcards)
apply  plan {"action": "create"|"set_description"|"remove", "description"} -> {"action"}
       (New-LocalGroup -Name [-Description], Set-LocalGroup -Description, Remove-LocalGroup)
"""


def probe(ctx):
    name = str(ctx.arg("name", required=True))
    found = [g for g in ctx.ps.accounts.get_local_group() if g["Name"].lower() == name.lower()]
    if not found:
        return {"exists": False}
    return {"exists": True, "description": found[0]["Description"]}


def apply(ctx):
    name = str(ctx.arg("name", required=True))
    plan = ctx.plan or {}
    action = plan.get("action")
    if action == "create":
        ctx.ps.accounts.new_local_group(name, description=plan.get("description"))
    elif action == "set_description":
        ctx.ps.accounts.set_local_group(name, str(plan.get("description") or ""))
    elif action == "remove":
        ctx.ps.accounts.remove_local_group(name)
    return {"action": action}
