"""win_stat: probe {path, get_checksum, checksum_algorithm} -> {"stat": {...}} with the keys
ansible.windows.win_stat returns (exists, attributes, isarchive, isdir, ishidden, isjunction, islnk,
isreadonly, isreg, isshared, nlink, hlnk_targets, creationtime, lastaccesstime, lastwritetime (Unix
seconds), path, filename, owner; files add extension, size, checksum; directories the total size of
their files). A missing path is {"stat": {"exists": false}}. Links, junctions and shares are not
modelled (always false)."""


def probe(ctx):
    path = ctx.arg("path", required=True)
    get_checksum = ctx.arg("get_checksum", True)
    algorithm = ctx.arg("checksum_algorithm", "sha1")
    ps = ctx.ps
    if not ps.test_path(path):
        return {"stat": {"exists": False}}
    item = ps.get_item(path)
    attrs = [a.strip() for a in item["Attributes"].split(",")]
    stat = {
        "exists": True, "attributes": item["Attributes"], "isarchive": "Archive" in attrs, "isdir": False,
        "ishidden": "Hidden" in attrs, "isjunction": False, "islnk": False, "isreadonly": "ReadOnly" in attrs,
        "isreg": False, "isshared": False, "nlink": 1, "hlnk_targets": [],
        "creationtime": item["CreationTimeUnix"], "lastaccesstime": item["LastAccessTimeUnix"],
        "lastwritetime": item["LastWriteTimeUnix"], "path": item["FullName"], "filename": item["Name"],
        "owner": "BUILTIN\\Administrators",
    }
    if item["PSIsContainer"]:
        stat["isdir"] = True
        stat["size"] = ctx.fs.size_of_tree(path)
    else:
        stat["extension"] = item["Extension"]
        stat["isreg"] = True
        stat["size"] = item["Length"]
        if get_checksum:
            stat["checksum"] = ps.get_file_hash(path, algorithm)["Hash"].lower()
    return {"stat": stat}
