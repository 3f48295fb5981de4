"""win_unarchive.

probe  args {"src", "dest", "creates"?, "delete_archive", "format": "zip"|"tar"} ->
       {"creates": bool, "src": kind, "dest": kind, "tar_exe": bool,
        "entries": [{"name", "size"?}], "verbose": [tar -tvf lines] (tar only), "have": [{"name"} + kind]}
       kind = {"exists", "is_dir", "size"}; zip entries from [IO.Compression.ZipFile]::OpenRead (FullName,
       Length), tar names from `tar.exe -tf` (exact names, directories end in '/'); `have` is what is at
       each name under dest.
apply  plan {"extract", "delete_archive"} -> {"removed"}
       ([IO.Directory]::CreateDirectory(dest); Expand-Archive -LiteralPath -DestinationPath -Force for zip,
        `tar.exe -xf src -C dest` for tar (a non-zero exit fails the task); Remove-Item -LiteralPath -Force)
"""

from .. import fileops
from ..errors import CmdletError


def _kind(ctx, path):
    ps = ctx.ps
    try:
        exists = ps.test_path(path)
    except CmdletError:
        exists = False
    if not exists:
        return {"exists": False}
    item = ps.get_item(path)
    k = {"exists": True, "is_dir": bool(item["PSIsContainer"])}
    if not k["is_dir"]:
        k["size"] = item["Length"]
    return k


def probe(ctx):
    src = str(ctx.arg("src", required=True))
    dest = str(ctx.arg("dest", required=True))
    r = {"creates": False, "src": _kind(ctx, src), "dest": _kind(ctx, dest), "tar_exe": ctx.fs.is_file(fileops.TAR_EXE)}
    creates = ctx.arg("creates")
    if creates:
        try:
            r["creates"] = ctx.ps.test_path(str(creates))
        except CmdletError:
            r["creates"] = False
    if r["creates"] or not r["src"]["exists"] or r["src"].get("is_dir"):
        return r
    full = ctx.ps.get_item(src)["FullName"]
    if str(ctx.arg("format")) == "zip":
        entries = [{"name": e["FullName"], "size": e["Length"]} for e in fileops.zip_entries(ctx.ps, full)]
    else:
        if not r["tar_exe"]:
            return r
        rc, out, err = fileops.tar_exe(ctx.ps, ["-tf", full])
        if rc != 0:
            msg = "tar.exe could not list '%s' (exit code %d)" % (src, rc)
            raise CmdletError(msg, "System.Management.Automation.RuntimeException", "OperationStopped", msg, "throw")
        entries = [{"name": n} for n in out.splitlines() if n]
        _, verbose, _ = fileops.tar_exe(ctx.ps, ["-tvf", full])
        r["verbose"] = [v for v in verbose.splitlines() if v]
    r["entries"] = entries
    base = dest.rstrip("\\/")
    r["have"] = [dict(_kind(ctx, base + "\\" + e["name"].rstrip("/\\").replace("/", "\\")), name=e["name"])
                 for e in entries]
    return r


def apply(ctx):
    src = str(ctx.arg("src", required=True))
    dest = str(ctx.arg("dest", required=True))
    plan = ctx.plan or {}
    if plan.get("extract"):
        fileops.create_directory(ctx.ps, dest)
        if str(ctx.arg("format")) == "zip":
            fileops.expand_archive(ctx.ps, src, dest, force=True)
        else:
            rc, _out, err = fileops.tar_exe(ctx.ps, ["-xf", src, "-C", dest])
            if rc != 0:
                msg = "Error extracting '%s' to '%s' using tar.exe (rc=%d): %s" % (src, dest, rc, err.strip())
                raise CmdletError(msg, "System.Management.Automation.RuntimeException", "OperationStopped", msg,
                                  "throw")
    removed = False
    if plan.get("delete_archive"):
        ctx.ps.remove_item(src, force=True)
        removed = True
    return {"removed": removed}
