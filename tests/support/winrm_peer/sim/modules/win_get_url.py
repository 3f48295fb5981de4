"""win_get_url.

probe  args {"dest", "joined"?, "parent"?, "algorithm", "fetch"?: web} ->
       {"dest": entry, "joined": entry, "parent": entry, "fetched": {"checksum", "size", "status_code"}?}
       entry = {"path", "exists", "is_dir", "size", "checksum" (Get-FileHash -Algorithm <algorithm>)};
       `fetch` (check mode) downloads to a temporary file, hashes it and deletes it: nothing changes.
apply  plan {"path", "checksum"?, "web": {"url", "shown_url", "timeout", "headers": [{"name", "value"}],
             "url_username"?, "url_password"?, "force_basic_auth", "validate_certs", "http_agent"}} ->
       {"changed", "status_code", "size", "checksum_src", "checksum_dest"}
       Downloads for real (System.Net.WebRequest in the script; urllib here) into "<path>.mixop-<guid>.tmp"
       ([IO.File]::Create: the directory must exist), checks the checksum (mismatch: the temporary file is
       removed and the script throws), then Move-Item -Force unless the file already has that content.
"""

import hashlib
import uuid

from .. import fileops
from ..errors import CmdletError


def _entry(ctx, path, alg):
    ps = ctx.ps
    try:
        exists = ps.test_path(path)
    except CmdletError:
        exists = False
    if not exists:
        return {"path": path, "exists": False}
    item = ps.get_item(path)
    e = {"path": path, "exists": True, "is_dir": bool(item["PSIsContainer"])}
    if not e["is_dir"]:
        e["size"] = item["Length"]
        e["checksum"] = ps.get_file_hash(path, alg)["Hash"].lower()
    return e


def _hash(alg: str, data: bytes) -> str:
    return hashlib.new(alg.lower(), data).hexdigest()


def probe(ctx):
    alg = str(ctx.arg("algorithm", "sha1"))
    r = {"dest": _entry(ctx, str(ctx.arg("dest", required=True)), alg)}
    if ctx.arg("joined"):
        r["joined"] = _entry(ctx, str(ctx.arg("joined")), alg)
    if ctx.arg("parent"):
        r["parent"] = _entry(ctx, str(ctx.arg("parent")), alg)
    fetch = ctx.arg("fetch")
    if fetch is not None:
        status, body = fileops.web_download(ctx.ps, fetch)
        r["fetched"] = {"checksum": _hash(alg, body), "size": len(body), "status_code": status}
    return r


def apply(ctx):
    plan = ctx.plan or {}
    alg = str(ctx.arg("algorithm", "sha1"))
    path = str(plan["path"])
    web = plan.get("web") or {}
    fs = ctx.fs
    tmp = path + ".mixop-" + uuid.uuid4().hex + ".tmp"
    status, body = fileops.web_download(ctx.ps, web)
    try:
        fs.write(tmp, body)
    except Exception as e:  # FsError: [IO.File]::Create fails
        raise fileops.dotnet_method("Create", 1, "System.IO.DirectoryNotFoundException",
                                    "Could not find a part of the path '%s'." % tmp) from e
    try:
        got = _hash(alg, body)
        want = plan.get("checksum")
        if want and got != str(want):
            msg = "The checksum for %s did not match '%s', it was '%s'" % (web.get("shown_url"), want, got)
            raise CmdletError(msg, "System.Management.Automation.RuntimeException", "OperationStopped", msg, "throw")
        changed = True
        if fs.is_file(path) and ctx.ps.get_file_hash(path, alg)["Hash"].lower() == got:
            changed = False
        if changed:
            ctx.ps.move_item(tmp, path, force=True)
    finally:
        if fs.exists(tmp):
            fs.remove(tmp)
    return {"changed": changed, "status_code": status, "size": len(body), "checksum_src": got, "checksum_dest": got}
