"""win_eventlog_info: probe {log, source: [..], newest, entry_type: [..]} ->
{"entries": [{"index", "time_generated" (UTC ISO 8601), "source", "entry_type", "event_id", "message"}]},
newest first: Get-EventLog -LogName -Newest [-Source] [-EntryType], whose "No matches found" error
(GetEventLogNoEntriesFound) the script turns into an empty list. A log that does not exist fails as
Get-EventLog does."""

from ..errors import CmdletError


def _list(v):
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def probe(ctx):
    try:
        found = ctx.ps.get_event_log(ctx.arg("log", "Application"), newest=int(ctx.arg("newest", 50)),
                                     source=_list(ctx.arg("source")) or None,
                                     entry_type=_list(ctx.arg("entry_type")) or None)
    except CmdletError as e:
        if not e.error_id.startswith("GetEventLogNoEntriesFound"):
            raise
        found = []
    return {"entries": [{"index": e["Index"], "time_generated": e["TimeGenerated"], "source": e["Source"],
                         "entry_type": e["EntryType"], "event_id": e["EventID"], "message": e["Message"]}
                        for e in found]}
