"""More of the simulated host's cmdlet and .NET layer, for the file, download, archive and wait
modules (win_copy, win_file, win_get_url, win_unarchive, win_wait_for). Functions take the
``Cmdlets`` object of the request (``ctx.ps``) and act on its simulated disk; like cmdlets.py they
are written from Microsoft's documentation of the real calls (links per section), not from
mixop's scripts, and fail with the ErrorRecords PowerShell would report.
"""

from __future__ import annotations

import base64
import datetime
import io
import os
import socket
import stat
import ssl
import tarfile
import time
import urllib.error
import urllib.request
import zipfile

from .errors import CmdletError, dotnet_method, path_not_found  # noqa: F401 (dotnet_method is used by handlers)
from .state import FsError

PSC = "Microsoft.PowerShell.Commands."


# ================================================================================================
# System.IO
# https://learn.microsoft.com/dotnet/api/system.io.directory.createdirectory (creates every missing
#   directory of the path; IOException when a component is a file)
# https://learn.microsoft.com/dotnet/api/system.io.file.open with FileMode.CreateNew (IOException
#   when the file exists, DirectoryNotFoundException when the directory is missing)
# https://learn.microsoft.com/dotnet/api/system.io.filesysteminfo.lastwritetime (setter)
# ================================================================================================

def create_directory(ps, path: str) -> str:
    try:
        return ps.fs.mkdir(path)
    except FsError as e:
        if e.kind == "exists":
            raise dotnet_method("CreateDirectory", 1, "System.IO.IOException",
                                "Cannot create '%s' because a file or directory with the same name already exists."
                                % path)
        raise dotnet_method("CreateDirectory", 1, "System.ArgumentException", str(e))


def create_new_file(ps, path: str) -> None:
    fs = ps.fs
    if fs.exists(path):
        raise dotnet_method("Open", 2, "System.IO.IOException", "The file '%s' already exists." % path)
    try:
        fs.write(path, b"")
    except FsError as e:
        if e.kind == "dir_not_found":
            raise dotnet_method("Open", 2, "System.IO.DirectoryNotFoundException",
                                "Could not find a part of the path '%s'." % path)
        raise dotnet_method("Open", 2, "System.IO.IOException", str(e))


def set_times(ps, path: str, when: float | None = None) -> None:
    """``$item.LastWriteTime = ...; $item.LastAccessTime = ...`` on an existing item."""
    info = ps.fs.info(path)
    if info is None:
        raise path_not_found(path, "Get-Item", PSC + "GetItemCommand")
    t = time.time() if when is None else when
    os.utime(info["host_path"], (t, t))


def read_all_bytes(ps, path: str) -> bytes:
    try:
        return ps.fs.read(path)
    except FsError as e:
        raise dotnet_method("ReadAllBytes", 1, "System.IO.FileNotFoundException", str(e))


def sha1(ps, path: str) -> str:
    return ps.get_file_hash(path, "SHA1")["Hash"].lower()


def walk(ps, root: str) -> list[tuple[str, bool]]:
    """``Get-ChildItem -LiteralPath $root -Recurse -Force``: (path relative to root, is_dir), parents first."""
    out = []
    for child in ps.fs.children(root):
        rel = child.rsplit("\\", 1)[-1]
        is_dir = ps.fs.is_dir(child)
        out.append((rel, is_dir))
        if is_dir:
            out += [(rel + "\\" + r, d) for r, d in walk(ps, child)]
    return out


# ================================================================================================
# Set-ItemProperty on the environment keys (HKLM:\System\CurrentControlSet\Control\Session Manager\
# Environment, HKCU:\Environment)
# https://learn.microsoft.com/powershell/module/microsoft.powershell.management/set-itemproperty?view=powershell-5.1
# A registry value name is case-insensitive and keeps the case it was created with; unlike
# [Environment]::SetEnvironmentVariable, an empty string is stored (not a deletion).
# ================================================================================================

def set_environment_registry_value(ps, scope: str, name: str, value: str) -> None:
    if not name:
        raise CmdletError("Cannot bind argument to parameter 'Name' because it is an empty string.",
                          "System.Management.Automation.ParameterBindingValidationException", "InvalidData",
                          "ParameterArgumentValidationErrorEmptyStringNotAllowed," + PSC + "SetItemPropertyCommand",
                          "Set-ItemProperty")
    env = ps.d["environment"]["user" if str(scope).lower() == "user" else "machine"]
    key = next((k for k in env if k.lower() == name.lower()), name)
    env[key] = str(value)


# ================================================================================================
# Expand-Archive (Microsoft.PowerShell.Archive 1.0.1.0, the version Windows PowerShell 5.1 ships)
# https://learn.microsoft.com/powershell/module/microsoft.powershell.archive/expand-archive?view=powershell-5.1
# -LiteralPath must be an existing .zip file; the destination is created when missing; an existing
# file is an error unless -Force.
# ================================================================================================

ARCHIVE_CMD = "Microsoft.PowerShell.Archive\\Expand-Archive"


def expand_archive(ps, literal_path: str, destination_path: str, force: bool = False) -> list[str]:
    fs = ps.fs
    if not fs.is_file(literal_path):
        raise CmdletError("Path '%s' either does not exist or is not a valid file system path." % literal_path,
                          "System.InvalidOperationException", "InvalidArgument",
                          "ArchiveCmdletPathNotFound,Expand-Archive", "Expand-Archive", literal_path)
    ext = os.path.splitext(literal_path)[1]
    if ext.lower() != ".zip":
        raise CmdletError("%s is not a supported archive file format. .zip is the only supported archive file "
                          "format." % ext, "System.IO.IOException", "InvalidArgument",
                          "NotSupportedArchiveFileExtension,Expand-Archive", "Expand-Archive", ext)
    try:
        zf = zipfile.ZipFile(io.BytesIO(fs.read(literal_path)))
    except zipfile.BadZipFile:
        raise CmdletError("Exception calling \"OpenRead\" with \"1\" argument(s): \"End of Central Directory record "
                          "could not be found.\"", "System.Management.Automation.MethodInvocationException",
                          "NotSpecified", "InvalidDataException,Expand-Archive", "Expand-Archive")
    create_directory(ps, destination_path)
    written = []
    for info in zf.infolist():
        name = info.filename.replace("/", "\\")
        target = destination_path.rstrip("\\/") + "\\" + name.rstrip("\\")
        if info.is_dir():
            fs.mkdir(target)
            continue
        if fs.exists(target) and not force:
            raise CmdletError("Failed to create file '%s' while expanding the archive file '%s' contents as the file "
                              "'%s' already exists. Use the -Force parameter if you want to overwrite the existing "
                              "directory '%s' contents when expanding the archive file."
                              % (target, literal_path, target, destination_path), "System.IO.IOException",
                              "ResourceExists", "ExpandArchiveFileExists,Expand-Archive", "Expand-Archive",
                              target)
        fs.write(target, zf.read(info), make_parents=True)
        written.append(target)
    return written


def zip_entries(ps, path: str) -> list[dict]:
    """``[IO.Compression.ZipFile]::OpenRead($p).Entries``: FullName and Length."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(ps.fs.read(path)))
    except (zipfile.BadZipFile, FsError) as e:
        raise dotnet_method("OpenRead", 1, "System.IO.InvalidDataException",
                            "End of Central Directory record could not be found." if isinstance(e, zipfile.BadZipFile)
                            else str(e))
    return [{"FullName": i.filename, "Length": i.file_size} for i in zf.infolist()]


# ================================================================================================
# tar.exe (bsdtar 3.x from libarchive, in %SystemRoot%\System32 since Windows 10 1803 / Server 2019)
# https://learn.microsoft.com/windows/whats-new/whats-new-windows-10-version-1803 ; bsdtar(1):
# -t lists (names as stored, directories with their trailing '/'), -v adds an ls -l style listing,
# -x extracts (compression detected automatically), -C changes directory first; entries with '..'
# are refused unless -P.
# ================================================================================================

TAR_EXE = r"C:\Windows\System32\tar.exe"


def _open_tar(ps, path: str):
    try:
        data = ps.fs.read(path)
    except FsError:
        return None, "tar.exe: Error opening archive: Failed to open '%s'\r\n" % path
    try:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:*"), None
    except tarfile.TarError:
        return None, "tar.exe: Error opening archive: Unrecognized archive format\r\n"


def _tar_name(m) -> str:
    return m.name + ("/" if m.isdir() and not m.name.endswith("/") else "")


def tar_exe(ps, argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``tar.exe <argv>``."""
    if not ps.fs.is_file(TAR_EXE):
        raise CmdletError("The term '%s' is not recognized as the name of a cmdlet, function, script file, or operable "
                          "program." % TAR_EXE, "System.Management.Automation.CommandNotFoundException",
                          "ObjectNotFound", "CommandNotFoundException", "tar", TAR_EXE)
    mode, archive, chdir = None, None, None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-") and a != "-C" and "f" in a:
            mode = "x" if "x" in a else "tv" if "v" in a else "t"
            archive = argv[i + 1] if i + 1 < len(argv) else None
            i += 2
            continue
        if a == "-C":
            chdir = argv[i + 1] if i + 1 < len(argv) else None
            i += 2
            continue
        i += 1
    if mode is None or archive is None:
        return 1, "", "tar.exe: Must specify one of -c, -r, -t, -u, -x\r\n"
    tf, err = _open_tar(ps, archive)
    if tf is None:
        return 1, "", err
    members = tf.getmembers()
    if mode in ("t", "tv"):
        lines = []
        for m in members:
            if mode == "t":
                lines.append(_tar_name(m))
            else:
                when = datetime.datetime.fromtimestamp(m.mtime, datetime.timezone.utc).strftime("%b %d  %Y")
                lines.append("%s  0 %-6s %-6s %8d %s %s" % (stat.filemode(m.mode | (stat.S_IFDIR if m.isdir() else stat.S_IFREG)), m.uname or m.uid,
                                                             m.gname or m.gid, m.size, when, _tar_name(m)))
        return 0, "".join(x + "\r\n" for x in lines), ""
    base = chdir or "."
    if not ps.fs.is_dir(base):
        return 1, "", "tar.exe: could not chdir to '%s'\r\n" % base
    errors = []
    for m in members:
        name = m.name.replace("/", "\\").lstrip("\\")
        if ".." in name.split("\\"):
            errors.append("tar.exe: %s: Path contains '..'\r\n" % m.name)
            continue
        target = base.rstrip("\\/") + "\\" + name.rstrip("\\")
        if m.isdir():
            ps.fs.mkdir(target)
        elif m.isfile():
            ps.fs.write(target, tf.extractfile(m).read(), make_parents=True)
    if errors:
        return 1, "", "".join(errors) + "tar.exe: Error exit delayed from previous errors.\r\n"
    return 0, "", ""


# ================================================================================================
# System.Net.WebRequest / HttpWebRequest (.NET Framework 4.8)
# https://learn.microsoft.com/dotnet/api/system.net.httpwebrequest : GetResponse throws WebException
#   for HTTP status >= 400 ("The remote server returned an error: (404) Not Found."), for a refused
#   connection ("Unable to connect to the remote server") and a timeout ("The operation has timed out");
#   redirects are followed (AllowAutoRedirect); Credentials answer a 401 challenge; a Basic
#   Authorization header set by hand is sent with the first request.
# ================================================================================================

REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Server Unavailable"}


def web_download(ps, web: dict) -> tuple[int, bytes]:
    """(status code, body) of a GET as the module scripts make it; failures as the script reports them."""
    url = str(web.get("url") or "")
    shown = str(web.get("shown_url") or url)

    def fail(message: str):
        msg = "Error downloading '%s': %s" % (shown, message)
        return CmdletError(msg, "System.Management.Automation.RuntimeException", "OperationStopped", msg, "throw")

    handlers = []
    headers = {"User-Agent": str(web.get("http_agent") or "ansible-httpget")}
    for h in web.get("headers") or []:
        headers[str(h.get("name"))] = str(h.get("value"))
    user = web.get("url_username")
    if user:
        password = str(web.get("url_password") or "")
        if web.get("force_basic_auth"):
            token = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode()
            headers["Authorization"] = "Basic " + token
        else:
            mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
            mgr.add_password(None, url, str(user), password)
            handlers.append(urllib.request.HTTPBasicAuthHandler(mgr))
    if url.lower().startswith("https:"):
        ctx = ssl.create_default_context()
        if not web.get("validate_certs", True):
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    if not url.lower().startswith(("http:", "https:", "ftp:", "file:")):
        raise fail("The URI prefix is not recognized.")
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, headers=headers)
    try:
        with opener.open(req, timeout=float(web.get("timeout") or 30)) as resp:
            return int(getattr(resp, "status", 200) or 200), resp.read()
    except urllib.error.HTTPError as e:
        raise fail("The remote server returned an error: (%d) %s." % (e.code, REASONS.get(e.code, e.reason)))
    except (socket.timeout, TimeoutError):
        raise fail("The operation has timed out")
    except urllib.error.URLError as e:
        if isinstance(e.reason, (socket.timeout, TimeoutError)):
            raise fail("The operation has timed out")
        if isinstance(e.reason, ssl.SSLError):
            raise fail("The underlying connection was closed: Could not establish trust relationship for the "
                       "SSL/TLS secure channel.")
        raise fail("Unable to connect to the remote server")
    except (ConnectionError, OSError):
        raise fail("Unable to connect to the remote server")


# ================================================================================================
# System.Net.Sockets.TcpClient.BeginConnect / IPGlobalProperties.GetActiveTcpConnections
# https://learn.microsoft.com/dotnet/api/system.net.sockets.tcpclient.beginconnect
# https://learn.microsoft.com/dotnet/api/system.net.networkinformation.ipglobalproperties.getactivetcpconnections
#   (every TCP connection that is not a listener, with its local and remote end points)
# The simulated host shares the test machine's loopback, so both look at real sockets.
# ================================================================================================

def tcp_connect(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, int(port)), timeout=max(0.1, float(timeout_s))):
            return True
    except OSError:
        return False


def _proc_addr(hexaddr: str) -> tuple[str, int]:
    ip, port = hexaddr.split(":")
    raw = bytes.fromhex(ip)
    if len(raw) == 4:
        addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:
        words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
        addr = socket.inet_ntop(socket.AF_INET6, words)
        if addr.startswith("::ffff:"):
            addr = addr[7:]
    return addr, int(port, 16)


def active_tcp_connections() -> list[dict]:
    out = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if len(f) < 4 or f[3] == "0A":  # 0A: LISTEN
                continue
            (la, lp), (ra, rp) = _proc_addr(f[1]), _proc_addr(f[2])
            out.append({"local_address": la, "local_port": lp, "remote_address": ra, "remote_port": rp})
    return out
