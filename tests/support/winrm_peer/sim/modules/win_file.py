"""win_file.

probe  args {"path", "state"} -> {"exists": false} | {"exists": true, "is_dir", "full", "attributes"}
       (Get-Item -LiteralPath -Force -ErrorAction SilentlyContinue)
apply  plan {"op": "mkdir" | "create" | "touch" | "remove"} -> {"op"}
       mkdir: [IO.Directory]::CreateDirectory (parents too); create: [IO.File]::Open(CreateNew) (fails when
       the file exists or its directory is missing); touch: LastWriteTime/LastAccessTime = now;
       remove: Remove-Item -LiteralPath -Recurse -Force
"""

from .. import fileops
from ..errors import CmdletError


def probe(ctx):
    path = str(ctx.arg("path", required=True))
    ps = ctx.ps
    try:
        exists = ps.test_path(path)
    except CmdletError:
        exists = False
    if not exists:
        return {"exists": False}
    item = ps.get_item(path)
    return {"exists": True, "is_dir": bool(item["PSIsContainer"]), "full": item["FullName"],
            "attributes": item["Attributes"]}


def apply(ctx):
    path = str(ctx.arg("path", required=True))
    op = str((ctx.plan or {}).get("op"))
    ps = ctx.ps
    if op == "mkdir":
        fileops.create_directory(ps, path)
    elif op == "create":
        fileops.create_new_file(ps, path)
    elif op == "touch":
        fileops.set_times(ps, path)
    elif op == "remove":
        ps.remove_item(path, recurse=True, force=True)
    return {"op": op}
