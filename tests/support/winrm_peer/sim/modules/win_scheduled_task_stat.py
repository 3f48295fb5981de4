"""win_scheduled_task_stat: probe {path, name?} ->
{"folder_task_names": [..], "task": null | {"task_name", "task_path", "state", "author", "date", "description",
 "uri", "actions": [{"execute", "arguments", "working_directory", "id"}], "triggers": [{"type" (CIM class name),
 "enabled", "delay", "start_boundary", "end_boundary", "execution_time_limit", "id", "repetition"}],
 "principal": {"user_id", "group_id", "display_name", "id", "logon_type", "run_level"}, "settings": {...MSFT_TaskSettings
 properties as named there}, "last_run_time", "last_task_result", "next_run_time", "number_of_missed_runs"}}
(Get-ScheduledTask -TaskPath PATH, and Get-ScheduledTaskInfo for the named task). Changes nothing."""


def _time(iso):
    # the script's Format-Time: UTC, to the second
    return None if not iso else iso[:19] + "Z"


def probe(ctx):
    path = str(ctx.arg("path", "\\") or "\\")
    if not path.endswith("\\"):
        path += "\\"
    tasks = ctx.ps.get_scheduled_task(task_path=path)
    out = {"folder_task_names": [t["TaskName"] for t in tasks], "task": None}
    name = ctx.arg("name")
    if name is None:
        return out
    t = next((x for x in tasks if x["TaskName"].lower() == str(name).lower()), None)
    if t is None:
        return out
    info = ctx.ps.get_scheduled_task_info(t["TaskName"], t["TaskPath"])
    p = t["Principal"]
    out["task"] = {
        "task_name": t["TaskName"], "task_path": t["TaskPath"], "state": t["State"], "author": t.get("Author"),
        "date": t.get("Date"), "description": t.get("Description"), "uri": t.get("URI"),
        "actions": [{"execute": a["Execute"], "arguments": a.get("Arguments"),
                     "working_directory": a.get("WorkingDirectory"), "id": None} for a in t["Actions"]],
        "triggers": [{"type": tr.get("CimClass"), "enabled": bool(tr.get("Enabled", True)), "delay": tr.get("Delay"),
                      "start_boundary": None, "end_boundary": None, "execution_time_limit": None, "id": None,
                      "repetition": {"duration": None, "interval": None, "stop_at_duration_end": False}}
                     for tr in t["Triggers"]],
        "principal": {"user_id": p.get("UserId"), "group_id": None, "display_name": None, "id": "Author",
                      "logon_type": p.get("LogonType"), "run_level": p.get("RunLevel")},
        "version": t.get("Version"), "source": t.get("Source"), "documentation": t.get("Documentation"),
        "security_descriptor": t.get("SecurityDescriptor"),
        "settings": dict(t["Settings"]),
        "last_run_time": _time(info["LastRunTime"]), "last_task_result": info["LastTaskResult"],
        "next_run_time": _time(info["NextRunTime"]), "number_of_missed_runs": info["NumberOfMissedRuns"],
    }
    return out
