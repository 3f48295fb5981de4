"""win_firewall_rule: mirrors src/modules/windows/win_firewall_rule.ps1.

probe  args {"name"? , "group"?} -> {"rules": [{"id", "name", "description", "group", "enabled", "direction", "action",
       "profile", "protocol", "local_port", "remote_port", "local_address", "remote_address", "program", "service"}]}
       (Get-NetFirewallRule -DisplayName <name, matched literally> or -Group, and each rule's port, address,
       application and service filter)
apply  plan {"create": {<New-NetFirewallRule parameters>}?, "set": [{"id", "name", "params": {<Set-NetFirewallRule
       parameters>}}], "remove": [ids]} -> {"rules": [...]} as probe, afterwards
"""


from ..errors import CmdletError

# PowerShell parameter name -> the cmdlet layer's keyword
_KW = {"DisplayName": "display_name", "Direction": "direction", "Action": "action", "Enabled": "enabled",
       "Profile": "profile", "Protocol": "protocol", "LocalPort": "local_port", "RemotePort": "remote_port",
       "LocalAddress": "local_address", "RemoteAddress": "remote_address", "Program": "program", "Service": "service",
       "Description": "description", "Group": "group"}


def _rules(ctx):
    name, group = ctx.arg("name"), ctx.arg("group")
    out = []
    for r in ctx.ps.get_net_firewall_rule():
        if name:
            if r["DisplayName"].lower() != str(name).lower():
                continue
        elif (r["Group"] or "").lower() != str(group or "").lower():
            continue
        out.append({"id": r["Name"], "name": r["DisplayName"], "description": r["Description"] or "",
                    "group": r["Group"] or "", "enabled": r["Enabled"] == "True", "direction": r["Direction"],
                    "action": r["Action"], "profile": r["Profile"], "protocol": r["Protocol"],
                    "local_port": list(r["LocalPort"]), "remote_port": list(r["RemotePort"]),
                    "local_address": list(r["LocalAddress"]), "remote_address": list(r["RemoteAddress"]),
                    "program": r["Program"], "service": r["Service"]})
    return out


def _kwargs(params: dict, cmd: str) -> dict:
    out = {}
    for k, v in (params or {}).items():
        kw = _KW.get(k)
        if kw is None:
            raise CmdletError("A parameter cannot be found that matches parameter name '%s'." % k,
                              "System.Management.Automation.ParameterBindingException", "InvalidArgument",
                              "NamedParameterNotFound,%s" % cmd, cmd)
        out[kw] = v
    return out


def probe(ctx):
    return {"rules": _rules(ctx)}


def apply(ctx):
    ps = ctx.ps
    plan = ctx.plan or {}
    if plan.get("create"):
        ps.new_net_firewall_rule(**_kwargs(plan["create"], "New-NetFirewallRule"))
    for change in plan.get("set") or []:
        params = dict(change.get("params") or {})
        group = params.pop("Group", None)
        if group is not None:
            ps.set_net_firewall_rule(name=change["id"], group=group)
        if params:
            ps.set_net_firewall_rule(name=change["id"], **_kwargs(params, "Set-NetFirewallRule"))
    for rid in [x for x in plan.get("remove") or [] if x]:
        ps.remove_net_firewall_rule(name=rid)
    return {"rules": _rules(ctx)}


