"""mixop's own file-transfer scripts (src/connection/winrm/ps.rs `put_script` / `get_script`),
recognised by their content and run against the simulated disk.

put: base64 lines on stdin -> a temporary file beside the destination ('<dest>.mixop-<guid>.tmp'),
     SHA-256 checked against the expected hash (mismatch: tmp removed, "hash mismatch: received <hex>"
     on stderr, exit 3), then `Move-Item -Force` onto the destination; prints "sha256=<hex>".
get: missing file (or a directory: Test-Path -PathType Leaf) -> "file not found: <src>" on stderr,
     exit 2; else base64 lines of 49152 bytes and "sha256=<hex>".

A .NET failure (missing parent directory, bad base64 ...) is a terminating error of powershell.exe:
CLIXML error records on stderr and exit code 1, as Windows PowerShell writes them for -EncodedCommand.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from xml.sax.saxutils import escape

from .errors import locate
from .state import FsError

QUOTES = "'\u2018\u2019\u201a\u201b"
_LIT = r"'((?:[^%s]|[%s]{2})*)'" % (QUOTES, QUOTES)
RE_DEST = re.compile(r"^\s*\$dest\s*=\s*" + _LIT + r"\s*$", re.M)
RE_SRC = re.compile(r"^\s*\$src\s*=\s*" + _LIT + r"\s*$", re.M)
RE_EXPECT = re.compile(r"\$hash\s+-ne\s+" + _LIT)


def unquote(inner: str) -> str:
    """Undo ps.rs quote(): inside a single-quoted literal a doubled quote character is one."""
    return re.sub("([%s])[%s]" % (QUOTES, QUOTES), r"\1", inner)


def recognise(script: str) -> dict | None:
    if not script:
        return None
    if ("[System.IO.File]::Create($tmp)" in script and "'sha256=' + $hash" in script
            and "OpenStandardInput" in script):
        m, e = RE_DEST.search(script), RE_EXPECT.search(script)
        if m and e:
            return {"kind": "put", "path": unquote(m.group(1)), "expected": unquote(e.group(1)).lower()}
    if "[System.IO.File]::OpenRead($src)" in script and "ToBase64String" in script:
        m = RE_SRC.search(script)
        if m:
            return {"kind": "get", "path": unquote(m.group(1))}
    return None


def clixml_error(lines: list[str]) -> bytes:
    body = "".join('<S S="Error">%s_x000D__x000A_</S>' % escape(line) for line in lines)
    return ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">%s</Objs>'
            % body).encode("utf-8")


def terminating_error(script: str, needle: str, message: str, reason: str, error_id: str) -> bytes:
    line, col, text = locate(script, needle)
    return clixml_error([
        message,
        "At line:%d char:%d" % (line or 1, col or 1),
        "+ %s" % text,
        "+ %s" % ("~" * max(1, len(text))),
        "    + CategoryInfo          : NotSpecified: (:) [], %s" % reason,
        "    + FullyQualifiedErrorId : %s" % error_id,
    ])


def run_put(fs, script: str, spec: dict, stdin: bytes) -> tuple[int, bytes, bytes]:
    """(exit code, stdout, stderr). Caller holds the host lock."""
    dest = spec["path"]
    tmp = dest + ".mixop-" + uuid.uuid4().hex + ".tmp"
    sha = hashlib.sha256()
    chunks = []
    try:
        fs.write(tmp, b"")  # [System.IO.File]::Create($tmp): the parent must exist
    except FsError as e:
        msg = "Could not find a part of the path '%s'." % tmp if e.kind == "dir_not_found" else str(e)
        inner = {"dir_not_found": "DirectoryNotFoundException", "illegal": "ArgumentException",
                 "is_dir": "UnauthorizedAccessException"}.get(e.kind, "IOException")
        return 1, b"", terminating_error(script, "[System.IO.File]::Create",
                                         'Exception calling "Create" with "1" argument(s): "%s"' % msg,
                                         "MethodInvocationException", inner)
    for raw in stdin.split(b"\n"):
        line = raw.strip()
        if not line:
            continue
        try:
            b = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            fs.remove(tmp)
            return 1, b"", terminating_error(
                script, "FromBase64String",
                'Exception calling "FromBase64String" with "1" argument(s): "The input is not a valid Base-64 '
                'string as it contains a non-base 64 character, more than two padding characters, or an illegal '
                'character among the padding characters. "', "MethodInvocationException", "FormatException")
        sha.update(b)
        chunks.append(b)
    digest = sha.hexdigest()
    if digest != spec["expected"]:
        fs.remove(tmp)
        return 3, b"", ("hash mismatch: received %s\r\n" % digest).encode()
    fs.write(tmp, b"".join(chunks))
    # Move-Item -LiteralPath $tmp -Destination $dest -Force: onto a file it replaces it; onto an existing
    # directory the FileSystem provider moves the item *into* that directory (keeping the tmp name).
    target = dest
    if fs.is_dir(dest):
        target = dest.rstrip("\\/") + "\\" + fs.parts(tmp)[-1]
    try:
        fs.move(tmp, target, overwrite=True)
    except FsError as e:
        fs.remove(tmp)
        return 1, b"", terminating_error(script, "Move-Item", str(e), "IOException",
                                         "MoveFileInfoItemIOError,Microsoft.PowerShell.Commands.MoveItemCommand")
    return 0, ("sha256=%s\r\n" % digest).encode(), b""


def run_get(fs, script: str, spec: dict) -> tuple[int, bytes, bytes]:
    src = spec["path"]
    try:
        leaf = fs.is_file(src)
    except FsError:
        leaf = False
    if not leaf:
        return 2, b"", ("file not found: %s\r\n" % src).encode("utf-8")
    data = fs.read(src)
    out = bytearray()
    for i in range(0, len(data), 49152):
        out += base64.b64encode(data[i:i + 49152]) + b"\r\n"
    out += ("sha256=%s\r\n" % hashlib.sha256(data).hexdigest()).encode()
    return 0, bytes(out), b""
