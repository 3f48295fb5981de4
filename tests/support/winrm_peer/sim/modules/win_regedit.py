"""win_regedit: mirrors src/modules/windows/win_regedit.ps1 through the registry provider (sim/registry.py).

probe  args {"key": "Registry::HKEY_...\\Sub", "name": "" (the default value) | name} ->
       {"key_exists"} | {"key_exists", "value_exists", "kind", "data"}
       (Test-Path, Get-Item, RegistryKey.GetValueNames / GetValue(DoNotExpandEnvironmentNames) / GetValueKind)
apply  plan {"create_key", "set": {"name", "kind", "data", "exists"} | null, "remove_value": name | null,
       "delete_key"} -> {"key"} | {"deleted": true}
       (Remove-Item -Recurse -Force; New-Item -Force; Set-ItemProperty -Type / New-ItemProperty -PropertyType;
        Remove-ItemProperty; the cmdlets call the default value "(default)")
"""


def probe(ctx):
    key = str(ctx.arg("key", required=True))
    name = str(ctx.arg("name", ""))
    if not ctx.ps.test_path(key):
        return {"key_exists": False}
    ctx.ps.get_item(key)
    if name.lower() not in [n.lower() for n in ctx.ps.registry.get_value_names(key)]:
        return {"key_exists": True, "value_exists": False}
    kind, data = ctx.ps.registry.get_value(key, name)
    return {"key_exists": True, "value_exists": True, "kind": kind, "data": data}


def _cmdlet_name(name) -> str:
    return "(default)" if str(name or "") == "" else str(name)


def apply(ctx):
    key = str(ctx.arg("key", required=True))
    plan = ctx.plan or {}
    if plan.get("delete_key"):
        ctx.ps.remove_item(key, recurse=True, force=True)
        return {"deleted": True}
    if plan.get("create_key"):
        ctx.ps.new_item(key, force=True)
    s = plan.get("set")
    if s is not None:
        if s.get("exists"):
            ctx.ps.registry.set_item_property(key, _cmdlet_name(s.get("name")), s.get("data"), type=s.get("kind"))
        else:
            ctx.ps.registry.new_item_property(key, _cmdlet_name(s.get("name")), s.get("data"),
                                              property_type=s.get("kind"))
    if plan.get("remove_value") is not None:
        ctx.ps.registry.remove_item_property(key, _cmdlet_name(plan["remove_value"]))
    return {"key": key}
