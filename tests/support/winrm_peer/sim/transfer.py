"""mixop's own file-transfer scripts (src/powershell/script.rs `put_script` / `get_script`),
recognised by their content and run against the simulated disk.

put: base64 lines on stdin, each decoded and written, as it arrives, to the file the script opens
     with `[System.IO.File]::Create(...)` — the temporary file the script names beside the destination
     (`$tmp = $dest + '.mixop-' + [Guid]::NewGuid().ToString('N') + '.tmp'`), or the destination
     itself should a script open `$dest` — so a process killed mid-upload leaves exactly what the real
     script would: what it has written so far, where it wrote it. At the end of input: SHA-256 checked
     against the expected hash (mismatch: tmp removed, "hash mismatch: received <hex>" on stderr,
     exit 3), then `Move-Item -Force` onto the destination when the script moves it; prints
     "sha256=<hex>".
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
RE_TMP = re.compile(r"^\s*\$tmp\s*=\s*\$dest\s*\+\s*" + _LIT
                    + r"\s*\+\s*\[Guid\]::NewGuid\(\)\.ToString\('N'\)\s*\+\s*" + _LIT + r"\s*$", re.M)
RE_CREATE = re.compile(r"\[System\.IO\.File\]::Create\(\$(tmp|dest)\)")


def unquote(inner: str) -> str:
    """Undo script.rs quote(): inside a single-quoted literal a doubled quote character is one."""
    return re.sub("([%s])[%s]" % (QUOTES, QUOTES), r"\1", inner)


def recognise(script: str) -> dict | None:
    if not script:
        return None
    create = RE_CREATE.search(script)
    if create and "'sha256=' + $hash" in script and "OpenStandardInput" in script:
        m, e, t = RE_DEST.search(script), RE_EXPECT.search(script), RE_TMP.search(script)
        if m and e and (t or create.group(1) == "dest"):
            return {"kind": "put", "path": unquote(m.group(1)), "expected": unquote(e.group(1)).lower(),
                    "tmp": (unquote(t.group(1)), unquote(t.group(2))) if t else None,
                    "opens": create.group(1),
                    "moves": bool(re.search(r"Move-Item\s+-LiteralPath\s+\$tmp\s+-Destination\s+\$dest", script))}
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


class Put:
    """One upload as the script runs it: `open()` when powershell.exe has started, `feed()` with
    stdin as it arrives (each whole base64 line decoded and written at once, like `$fs.Write`), and
    `finish()` at the end of input. Each returns (exit code, stdout, stderr) when the script ends
    there, else None. The caller holds the host lock around each call."""

    def __init__(self, fs, script: str, spec: dict):
        self.fs, self.script, self.spec = fs, script, spec
        dest = spec["path"]
        if spec["opens"] == "tmp":
            pre, post = spec["tmp"]
            self.tmp = dest + pre + uuid.uuid4().hex + post
        else:
            self.tmp = dest
        self.sha = hashlib.sha256()
        self.partial = b""
        self.fh = None

    def open(self):
        try:
            self.fs.write(self.tmp, b"")  # [System.IO.File]::Create: the parent must exist
        except FsError as e:
            msg = "Could not find a part of the path '%s'." % self.tmp if e.kind == "dir_not_found" else str(e)
            inner = {"dir_not_found": "DirectoryNotFoundException", "illegal": "ArgumentException",
                     "is_dir": "UnauthorizedAccessException"}.get(e.kind, "IOException")
            return 1, b"", terminating_error(self.script, "[System.IO.File]::Create",
                                             'Exception calling "Create" with "1" argument(s): "%s"' % msg,
                                             "MethodInvocationException", inner)
        self.fh = open(self.fs.resolve(self.tmp)[1], "ab")
        return None

    def _fail(self, result):
        self.fh.close()  # the catch block: $fs.Dispose(); Remove-Item $tmp
        self.fs.remove(self.tmp)
        return result

    def feed(self, data: bytes):
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            try:
                b = base64.b64decode(line, validate=True)
            except (binascii.Error, ValueError):
                return self._fail((1, b"", terminating_error(
                    self.script, "FromBase64String",
                    'Exception calling "FromBase64String" with "1" argument(s): "The input is not a valid Base-64 '
                    'string as it contains a non-base 64 character, more than two padding characters, or an '
                    'illegal character among the padding characters. "', "MethodInvocationException",
                    "FormatException")))
            self.sha.update(b)
            self.fh.write(b)
            self.fh.flush()
        return None

    def finish(self):
        if self.partial:
            tail, self.partial = self.partial + b"\n", b""
            r = self.feed(tail)
            if r is not None:
                return r
        self.fh.close()
        digest = self.sha.hexdigest()
        if digest != self.spec["expected"]:
            self.fs.remove(self.tmp)
            return 3, b"", ("hash mismatch: received %s\r\n" % digest).encode()
        if self.spec["moves"] and self.tmp != self.spec["path"]:
            # Move-Item -LiteralPath $tmp -Destination $dest -Force: onto a file it replaces it; onto an
            # existing directory the FileSystem provider moves the item *into* it (keeping the tmp name).
            dest = self.spec["path"]
            target = dest
            if self.fs.is_dir(dest):
                target = dest.rstrip("\\/") + "\\" + self.fs.parts(self.tmp)[-1]
            try:
                self.fs.move(self.tmp, target, overwrite=True)
            except FsError as e:
                self.fs.remove(self.tmp)
                return 1, b"", terminating_error(self.script, "Move-Item", str(e), "IOException",
                                                 "MoveFileInfoItemIOError,Microsoft.PowerShell.Commands.MoveItemCommand")
        return 0, ("sha256=%s\r\n" % digest).encode(), b""


def run_put(fs, script: str, spec: dict, stdin: bytes) -> tuple[int, bytes, bytes]:
    """The whole upload at once (stdin complete). Caller holds the host lock."""
    put = Put(fs, script, spec)
    return put.open() or put.feed(stdin) or put.finish()


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
