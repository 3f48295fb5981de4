"""win_copy (win_template runs the same script).

probe  args {"dest", "paths": [{"path", "checksum": bool, "expect_size": int?, "content": int?}],
             "trees": [root, ...]} ->
       {"paths": [{"path", "exists", "is_dir", "full", "size", "checksum" (SHA-1, only when asked and the
                   size is expect_size), "content_b64" (files up to `content` bytes)}],
        "trees": [{"root", "exists", "is_dir", "entries": [{"rel", "is_dir", "size", "checksum"}]}]}
       (Get-Item -LiteralPath -Force -ErrorAction SilentlyContinue, Get-FileHash -Algorithm SHA1,
        [IO.File]::ReadAllBytes, Get-ChildItem -LiteralPath -Recurse -Force)
apply  plan {"mkdirs": [...], "backup": path?, "copies": [{"from", "to"}]} -> {"backup_file": path?}
       ([IO.Directory]::CreateDirectory, Copy-Item -LiteralPath -Destination -Force; the backup is named
        "<file>.<pid>.<yyyyMMdd-HHmmss>.bak" like Ansible's Backup-File)
Content from the controller arrives through the connection's upload script (sim/transfer.py), not here.
"""

import base64
import random
import time

from .. import fileops
from ..errors import CmdletError


def _exists(ps, path: str) -> bool:
    try:
        return ps.test_path(path)
    except CmdletError:
        return False


def _entry(ctx, q: dict) -> dict:
    ps = ctx.ps
    path = str(q.get("path") if q.get("path") is not None else "")
    if not _exists(ps, path):
        return {"path": path, "exists": False}
    item = ps.get_item(path)
    e = {"path": path, "exists": True, "is_dir": bool(item["PSIsContainer"]), "full": item["FullName"]}
    if not e["is_dir"]:
        e["size"] = item["Length"]
        same = q.get("expect_size") is None or int(q["expect_size"]) == e["size"]
        if q.get("checksum") and same:
            e["checksum"] = fileops.sha1(ps, path)
        if q.get("content") is not None and e["size"] <= int(q["content"]):
            e["content_b64"] = base64.b64encode(fileops.read_all_bytes(ps, path)).decode()
    return e


def _tree(ctx, root: str) -> dict:
    ps = ctx.ps
    if not _exists(ps, root):
        return {"root": root, "exists": False, "is_dir": False, "entries": []}
    if not ps.get_item(root)["PSIsContainer"]:
        return {"root": root, "exists": True, "is_dir": False, "entries": []}
    entries = []
    for rel, is_dir in fileops.walk(ps, root):
        if is_dir:
            entries.append({"rel": rel, "is_dir": True})
        else:
            full = root.rstrip("\\/") + "\\" + rel
            entries.append({"rel": rel, "is_dir": False, "size": ps.get_item(full)["Length"],
                            "checksum": fileops.sha1(ps, full)})
    return {"root": root, "exists": True, "is_dir": True, "entries": entries}


def probe(ctx):
    paths = [_entry(ctx, q) for q in (ctx.arg("paths") or []) if q is not None]
    trees = [_tree(ctx, str(t)) for t in (ctx.arg("trees") or []) if t is not None]
    return {"paths": paths, "trees": trees}


def apply(ctx):
    plan = ctx.plan or {}
    ps = ctx.ps
    for d in plan.get("mkdirs") or []:
        if d is not None:
            fileops.create_directory(ps, str(d))
    backup = None
    if plan.get("backup"):
        f = str(plan["backup"])
        backup = "%s.%d.%s.bak" % (f, random.randrange(1000, 20000) * 4, time.strftime("%Y%m%d-%H%M%S"))
        ps.copy_item(f, backup, force=True)
    for c in plan.get("copies") or []:
        if c is not None:
            ps.copy_item(str(c["from"]), str(c["to"]), force=True)
    return {"backup_file": backup}
