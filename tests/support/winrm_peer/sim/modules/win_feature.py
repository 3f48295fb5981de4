"""win_feature: Server Manager roles and features.

probe  args {"name": [names]} ->
       {"features": [{"name", "display_name", "install_state", "sub_features"}], "reboot_pending": bool}
       (Get-WindowsFeature -Name ...: names that match nothing are simply absent)
apply  plan {"install": [...], "uninstall": [...], "include_management_tools": bool,
             "include_sub_features": bool, "source": str?, "remove": bool?} ->
       {"feature_result": [{"id", "display_name", "message", "reboot_required", "skip_reason", "success"}],
        "exitcode": "Success" | "SuccessRestartRequired" | "NoChangeNeeded", "reboot_required": bool,
        "success": bool}   (Install-WindowsFeature / Uninstall-WindowsFeature, as ansible.windows.win_feature
        reports them)
"""


def _names(v):
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def probe(ctx):
    names = _names(ctx.arg("name", required=True))
    feats = ctx.ps.get_windows_feature(names)
    return {"features": [{"name": f["Name"], "display_name": f["DisplayName"], "install_state": f["InstallState"],
                          "sub_features": f["SubFeatures"]} for f in feats],
            "reboot_pending": ctx.ps.test_reboot_pending()}


def _convert(op):
    return [{"id": r["Id"], "display_name": r["DisplayName"],
             "message": [{"message_type": m.get("MessageType"), "error_code": m.get("ErrorCode"), "text": m.get("Text")}
                         for m in r["Message"]],
             "reboot_required": bool(r["RestartNeeded"]), "skip_reason": r["SkipReason"], "success": bool(r["Success"])}
            for r in op["FeatureResult"]]


def apply(ctx):
    plan = ctx.plan or {}
    results, ops = [], []
    install, uninstall = _names(plan.get("install")), _names(plan.get("uninstall"))
    if install:
        op = ctx.ps.install_windows_feature(install, include_all_sub_feature=bool(plan.get("include_sub_features")),
                                            include_management_tools=bool(plan.get("include_management_tools")),
                                            source=plan.get("source"), whatif=bool(ctx.check_mode))
        ops.append(op)
        results += _convert(op)
    if uninstall:
        op = ctx.ps.uninstall_windows_feature(uninstall,
                                              include_management_tools=bool(plan.get("include_management_tools")),
                                              remove=bool(plan.get("remove")), whatif=bool(ctx.check_mode))
        ops.append(op)
        results += _convert(op)
    codes = [op["ExitCode"] for op in ops]
    exitcode = ("SuccessRestartRequired" if "SuccessRestartRequired" in codes else
                "Success" if "Success" in codes else "NoChangeNeeded")
    return {"feature_result": results, "exitcode": exitcode,
            "reboot_required": any(op["RestartNeeded"] == "Yes" for op in ops),
            "success": all(op["Success"] for op in ops)}
