"""win_defender_exclusion: mirrors src/modules/windows/win_defender_exclusion.ps1.

probe  -> {"exclusions": {"path": [...], "process": [...], "extension": [...]}}   (Get-MpPreference)
apply  plan {"add": {"path", "process", "extension"}, "remove": {...}} -> {"exclusions": {...}} after
       Add-MpPreference / Remove-MpPreference
"""


def _lists(ctx):
    pref = ctx.ps.get_mp_preference()
    return {"path": list(pref["ExclusionPath"] or []), "process": list(pref["ExclusionProcess"] or []),
            "extension": list(pref["ExclusionExtension"] or [])}


def probe(ctx):
    return {"exclusions": _lists(ctx)}


def _clean(v):
    return [x for x in (v or []) if x]


def apply(ctx):
    plan = ctx.plan or {}
    add, remove = plan.get("add") or {}, plan.get("remove") or {}
    if any(_clean(add.get(k)) for k in ("path", "process", "extension")):
        ctx.ps.add_mp_preference(exclusion_path=_clean(add.get("path")) or None,
                                 exclusion_process=_clean(add.get("process")) or None,
                                 exclusion_extension=_clean(add.get("extension")) or None)
    if any(_clean(remove.get(k)) for k in ("path", "process", "extension")):
        ctx.ps.remove_mp_preference(exclusion_path=_clean(remove.get("path")) or None,
                                    exclusion_process=_clean(remove.get("process")) or None,
                                    exclusion_extension=_clean(remove.get("extension")) or None)
    return {"exclusions": _lists(ctx)}
