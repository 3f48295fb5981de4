"""win_scheduled_task: mirrors src/modules/windows/win_scheduled_task.ps1.

probe  args {"name", "path"?} -> {"state": "Ready"|"Running"|"Disabled"|null, "task": null | {"description",
       "actions": [{"path", "arguments", "working_directory"}], "triggers": [{"type" (boot, logon, once, daily),
       "enabled", "delay", "start_boundary"}], "user", "logon_type", "run_level", "enabled", "restart_count",
       "restart_interval", "execution_time_limit", "start_when_available"}}   (Get-ScheduledTask)
apply  plan {"action": "register", "task": {<the definition above>}} -> Register-ScheduledTask -Force with
       New-ScheduledTaskAction / -Trigger / -SettingsSet / -Principal (or -User/-Password); or
       {"action": "unregister"} -> Unregister-ScheduledTask. Answers as probe, afterwards.
"""

_KINDS = {"MSFT_TaskBootTrigger": "boot", "MSFT_TaskLogonTrigger": "logon", "MSFT_TaskTimeTrigger": "once",
          "MSFT_TaskDailyTrigger": "daily"}


def _path(ctx):
    p = str(ctx.arg("path") or "\\")
    if not p.startswith("\\"):
        p = "\\" + p
    return p if p.endswith("\\") else p + "\\"


def _task(ctx):
    name = str(ctx.arg("name", required=True))
    tasks = [t for t in ctx.ps.get_scheduled_task(task_path=_path(ctx)) if t["TaskName"] == name]
    if not tasks:
        return {"task": None, "state": None}
    t = tasks[0]
    s = t["Settings"]
    return {"state": t["State"], "task": {
        "description": t.get("Description") or "",
        "actions": [{"path": a["Execute"], "arguments": a.get("Arguments"),
                     "working_directory": a.get("WorkingDirectory")} for a in t["Actions"]],
        "triggers": [{"type": _KINDS.get(tr["CimClass"], tr["CimClass"]), "enabled": bool(tr.get("Enabled", True)),
                      "delay": tr.get("Delay") or None, "start_boundary": tr.get("StartBoundary") or None}
                     for tr in t["Triggers"]],
        "user": t["Principal"].get("UserId") or "", "logon_type": t["Principal"].get("LogonType") or "",
        "run_level": t["Principal"].get("RunLevel") or "", "enabled": bool(s.get("Enabled", True)),
        "restart_count": int(s.get("RestartCount") or 0), "restart_interval": s.get("RestartInterval") or None,
        "execution_time_limit": s.get("ExecutionTimeLimit") or None,
        "start_when_available": bool(s.get("StartWhenAvailable"))}}


def probe(ctx):
    return _task(ctx)


def apply(ctx):
    ps = ctx.ps
    plan = ctx.plan or {}
    name, path = str(ctx.arg("name", required=True)), _path(ctx)
    if plan.get("action") == "unregister":
        ps.unregister_scheduled_task(name, path)
        return _task(ctx)
    d = plan.get("task") or {}
    actions = [ps.new_scheduled_task_action(a["path"], a.get("arguments") or None, a.get("working_directory") or None)
               for a in d.get("actions") or []]
    triggers = []
    for tr in d.get("triggers") or []:
        kind = tr.get("type")
        t = ps.new_scheduled_task_trigger(at_startup=kind == "boot", at_log_on=kind == "logon", once=kind == "once",
                                          daily=kind == "daily", at=tr.get("start_boundary"))
        if tr.get("delay"):
            t["delay"] = tr["delay"]
        if tr.get("enabled") is False:
            t["enabled"] = False
        triggers.append(t)
    settings = ps.new_scheduled_task_settings_set(
        restart_count=int(d.get("restart_count") or 0), restart_interval=d.get("restart_interval"),
        execution_time_limit=d.get("execution_time_limit") or "PT72H",
        start_when_available=bool(d.get("start_when_available")), disable=d.get("enabled") is False)
    principal = None
    if ctx.arg("password") and d.get("logon_type") == "Password":
        principal = ps.new_scheduled_task_principal(d.get("user"), "Password", d.get("run_level") or "Limited")
    elif d.get("user"):
        principal = ps.new_scheduled_task_principal(d["user"], d.get("logon_type") or "Interactive",
                                                    d.get("run_level") or "Limited")
    ps.register_scheduled_task(name, action=actions, trigger=triggers or None, principal=principal,
                               settings=settings, task_path=path, description=d.get("description") or None,
                               force=True)
    return _task(ctx)
