"""win_hns_network: HNS networks by name (HostNetworkingService module).

probe  args {"name"} -> {"available": bool, "networks": [{"id", "name", "type"}]}  (Get-HnsNetwork filtered
       by name; "available" is false, with no networks, when Get-Command finds no Get-HnsNetwork - a host
       without the Containers feature)
apply  plan {"remove": [ids]} -> {"removed": [ids]}  (Get-HnsNetwork | the listed ids | Remove-HnsNetwork)
"""


def probe(ctx):
    name = str(ctx.arg("name", required=True))
    if ctx.ps.get_command("Get-HnsNetwork") is None:
        return {"available": False, "networks": []}
    nets = [{"id": n["ID"], "name": n["Name"], "type": n["Type"]} for n in ctx.ps.get_hns_network()
            if n["Name"].lower() == name.lower()]
    return {"available": True, "networks": nets}


def apply(ctx):
    if ctx.ps.get_command("Get-HnsNetwork") is None:
        return {"available": False, "networks": []}
    ids = [str(i).lower() for i in ((ctx.plan or {}).get("remove") or [])]
    removed = []
    for n in ctx.ps.get_hns_network():
        if n["ID"].lower() in ids:
            ctx.ps.remove_hns_network([n])
            removed.append(n["ID"])
    return {"removed": removed}
