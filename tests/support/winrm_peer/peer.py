#!/usr/bin/env python3
"""mixop's protocol-faithful WinRM peer.

Stands in for the WinRM listener of a default Windows Server 2022 host
(AllowUnencrypted=false, Basic off, Negotiate on, MaxEnvelopeSizekb=500,
MaxShellsPerUser=30) so that WinRM clients can be tested without Windows:

* HTTP with NTLM (inside the ``Negotiate`` scheme) and WinRM message
  encryption (``multipart/encrypted`` + ``application/HTTP-SPNEGO-session-encrypted``),
  the NTLM context bound to the TCP connection;
* HTTPS (self-signed CA written to ``--cert-dir``) with NTLM without message
  encryption, channel binding checked when the client sends it;
* Basic auth when enabled (over HTTP only with ``--allow-unencrypted``);
* the WinRS cmd shell operations (Create, Command, Send, Receive, Signal,
  Delete) plus WS-Man Identify, with the SOAP faults Windows really returns;
* ``--mode sh`` runs commands through ``/bin/sh -c`` here, ``--mode record``
  records the PowerShell it is sent and answers from rules, ``--mode sim`` is
  record mode plus a simulated Windows Server 2022 host (the ``sim`` package);
* fault injection and a simulated reboot, from flags or a JSON control port.

See README.md beside this file. Only binds to loopback addresses.
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime
import hashlib
import ipaddress
import json
import os
import queue
import re
import selectors
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

try:
    import spnego
    from spnego._ntlm_raw.crypto import lmowfv1, ntowfv1
    from spnego._ntlm_raw.messages import Authenticate, AvId, NTClientChallengeV2
    from spnego._spnego import NegTokenResp, unpack_token
    from spnego.channel_bindings import GssChannelBindings
except Exception as exc:  # pragma: no cover - environment problem
    sys.stderr.write("winrm-peer: pyspnego is required (%s)\n" % exc)
    raise

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cmdexe  # noqa: E402  (beside this file: cmd.exe and CommandLineToArgvW, for records)

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

NS_S = "http://www.w3.org/2003/05/soap-envelope"
NS_A = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_W = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
NS_P = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
NS_RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
NS_X = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
NS_F = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
NS_WSMID = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"
NS_CFG = "http://schemas.microsoft.com/wbem/wsman/1/config"

SHELL_CMD_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
CONFIG_URI = "http://schemas.microsoft.com/wbem/wsman/1/config"
ANON = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

ACT_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACT_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
ACT_GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
ACT_COMMAND = NS_RSP + "/Command"
ACT_SEND = NS_RSP + "/Send"
ACT_RECEIVE = NS_RSP + "/Receive"
ACT_SIGNAL = NS_RSP + "/Signal"
ACT_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
ACT_ADDR_FAULT = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault"

STATE_DONE = NS_RSP + "/CommandState/Done"
STATE_RUNNING = NS_RSP + "/CommandState/Running"

ENC_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
ENC_BOUNDARY = b"--Encrypted Boundary"
ENC_CONTENT_TYPE = 'multipart/encrypted;protocol="%s";boundary="Encrypted Boundary"' % ENC_PROTOCOL
SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"

# WSManFault codes (winerror.h) used here.
CODE_TIMED_OUT = 2150858793  # ERROR_WSMAN_OPERATION_TIMEDOUT
CODE_INVALID_SELECTORS = 2150858843  # ERROR_WSMAN_UNEXPECTED_SELECTORS (shell / command not found)
CODE_QUOTA_MAX_SHELLS = 2150859173  # ERROR_WSMAN_QUOTA_MAX_SHELLS
CODE_QUOTA_MAX_OPERATIONS = 2150859174  # ERROR_WSMAN_QUOTA_MAX_OPERATIONS (0x803381A6)
CODE_BUSY = 170  # ERROR_BUSY
CODE_INVALID_PARAMETER = 87  # ERROR_INVALID_PARAMETER
CODE_ACTION_NOT_SUPPORTED = 2150858771
CODE_DESTINATION_UNREACHABLE = 2150858770
CODE_INVALID_XML = 2150858819
CODE_MAX_ENVELOPE_SIZE = 2150858823  # requested MaxEnvelopeSize larger than the server's
CODE_MIN_ENVELOPE_SIZE = 2150858878
CODE_INVALID_XML_VALUES = 2150858838
CODE_RPC_FAILED = 1726

REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 411: "Length Required", 413: "Request Entity Too Large",
    500: "Internal Server Error", 503: "Service Unavailable",
}

FILETIME_EPOCH_OFFSET = 11644473600  # seconds between 1601-01-01 and 1970-01-01

_log_lock = threading.Lock()
VERBOSE = False


def log(msg: str) -> None:
    line = "[winrm-peer %s] %s\n" % (datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3], msg)
    with _log_lock:
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except Exception:
            pass


def vlog(msg: str) -> None:
    if VERBOSE:
        log(msg)


def filetime(unix_seconds: float) -> int:
    return int((unix_seconds + FILETIME_EPOCH_OFFSET) * 10_000_000)


def xesc(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def new_guid() -> str:
    return str(uuid.uuid4()).upper()


def parse_duration(text: str | None) -> float | None:
    """xs:duration as WS-Man uses it (PT20S, PT20.000S, PT1M30S, P0DT0H0M5S)."""
    if not text:
        return None
    m = re.fullmatch(r"\s*P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?\s*", text)
    if not m:
        return None
    d, h, mi, s = m.groups()
    return int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


def codepage_codec(cp: int) -> str:
    if cp == 65001:
        return "utf-8"
    try:
        "".encode("cp%d" % cp)
        return "cp%d" % cp
    except LookupError:
        return "utf-8"


def loopback_only(host: str) -> None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise SystemExit("winrm-peer: --listen must be a loopback address, got %r" % host)
        return
    if not ip.is_loopback:
        raise SystemExit("winrm-peer: --listen must be a loopback address, got %r" % host)


# --------------------------------------------------------------------------------------------
# PowerShell command line decoding (record mode)
# --------------------------------------------------------------------------------------------

PS_EXES = {"powershell", "powershell.exe", "pwsh", "pwsh.exe"}
PS_VALUE_PARAMS = ["executionpolicy", "windowstyle", "inputformat", "outputformat", "configurationname",
                   "workingdirectory", "version", "psconsolefile", "encodedarguments", "settingsfile",
                   "custompipename"]
PS_VALUE_ALIASES = {"ex", "ep", "w", "if", "inp", "of", "o", "config", "wd", "v", "ea", "settings"}


def split_windows_cmdline(s: str) -> list[str]:
    """Roughly CommandLineToArgvW: whitespace separates, double quotes group, \\" escapes a quote."""
    out: list[str] = []
    cur: list[str] = []
    in_q = False
    have = False
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            j = i
            while j < len(s) and s[j] == "\\":
                j += 1
            n = j - i
            if j < len(s) and s[j] == '"':
                cur.append("\\" * (n // 2))
                if n % 2:
                    cur.append('"')
                    i = j + 1
                else:
                    i = j
                have = True
                continue
            cur.append("\\" * n)
            have = True
            i = j
            continue
        if c == '"':
            in_q = not in_q
            have = True
        elif c in " \t\r\n" and not in_q:
            if have:
                out.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(c)
            have = True
        i += 1
    if have:
        out.append("".join(cur))
    return out


def decode_text(data: bytes, codec: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(codec, errors="replace")


RE_STDIN_BOOTSTRAP = re.compile(r"OpenStandardInput\(\).*ReadToEnd\(\).*\[ScriptBlock\]::Create\(", re.S | re.I)


def analyse_powershell(cmdline: str) -> dict:
    """Return {'powershell': bool, 'source': 'encoded'|'stdin'|'command'|None, 'script': str|None}."""
    toks = split_windows_cmdline(cmdline)
    idx = None
    for i, t in enumerate(toks):
        base = re.split(r"[\\/]", t)[-1].lower()
        if base in PS_EXES:
            idx = i
            break
    if idx is None:
        return {"powershell": False, "source": None, "script": None}
    args = toks[idx + 1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-":
            return {"powershell": True, "source": "stdin", "script": None}
        if not a.startswith(("-", "/")):
            return {"powershell": True, "source": "command", "script": " ".join(args[i:])}
        name = a.lstrip("-/").lower()
        if name in ("e", "ec") or (name.startswith("en") and "encodedcommand".startswith(name)):
            if i + 1 < len(args):
                try:
                    raw = base64.b64decode(args[i + 1] + "=" * (-len(args[i + 1]) % 4), validate=False)
                    script = raw.decode("utf-16-le", errors="replace")
                    if script.startswith("\ufeff"):
                        script = script[1:]
                    if RE_STDIN_BOOTSTRAP.search(script):
                        # A bootstrap that runs the script it reads from stdin (mixop's, for
                        # long scripts and for scripts kept off the command line).
                        return {"powershell": True, "source": "stdin", "script": None}
                    return {"powershell": True, "source": "encoded", "script": script}
                except Exception:
                    return {"powershell": True, "source": "encoded", "script": None}
            return {"powershell": True, "source": "encoded", "script": None}
        if name and "command".startswith(name):
            rest = args[i + 1:]
            if rest == ["-"]:
                return {"powershell": True, "source": "stdin", "script": None}
            return {"powershell": True, "source": "command", "script": " ".join(rest)}
        if name and "file".startswith(name):
            if i + 1 < len(args) and args[i + 1] == "-":
                return {"powershell": True, "source": "stdin", "script": None}
            return {"powershell": True, "source": "file", "script": None}
        if name in PS_VALUE_ALIASES or (len(name) >= 2 and any(p.startswith(name) for p in PS_VALUE_PARAMS)):
            i += 2
            continue
        i += 1
    return {"powershell": True, "source": None, "script": None}


RE_BOOT_TIME = re.compile(r"LastBootUpTime", re.I)
RE_TO_FILETIME = re.compile(r"ToFileTime\s*\(\s*\)", re.I)
RE_SHUTDOWN_R = re.compile(r"(?:^|[\s;&|'\"(])shutdown(?:\.exe)?\b[^\r\n;|]*?\s[/-]r\b", re.I)
RE_SHUTDOWN_A = re.compile(r"(?:^|[\s;&|'\"(])shutdown(?:\.exe)?\b[^\r\n;|]*?\s[/-]a\b", re.I)
RE_SHUTDOWN_T = re.compile(r"\s[/-]t\s+(\d+)", re.I)
RE_RESTART = re.compile(r"\bRestart-Computer\b", re.I)
RE_READS_STDIN = re.compile(r"\$input\b|\[Console\]::In\b|\[System\.Console\]::In\b|OpenStandardInput", re.I)


# --------------------------------------------------------------------------------------------
# Peer state
# --------------------------------------------------------------------------------------------

class Fault(Exception):
    def __init__(self, code: str, subcode: str, reason: str, wsman_code: int | None, message: str | None = None,
                 detail: str = "", action: str = ACT_FAULT, stat: str = "", provider: bool = False):
        super().__init__(reason)
        self.code = code
        self.subcode = subcode
        self.reason = reason
        self.wsman_code = wsman_code
        self.message = message if message is not None else reason
        self.detail = detail
        self.action = action
        self.stat = stat or subcode.split(":")[-1]
        # The message comes from the shell plugin (f:ProviderFault inside f:Message).
        self.provider = provider


class Injections:
    def __init__(self) -> None:
        self.drop_next = 0
        self.drop_after_processing = False
        self.delay_ms = 0
        self.http500 = 0
        # Only requests whose wsa:Action ends with this (e.g. "Receive") count against http500.
        self.http500_action = ""
        self.garbage = 0
        self.truncate = 0
        self.badsig = 0
        self.endless = 0
        self.big_mb = 0.0
        self.big_single = False
        self.send_timeout = 0
        self.send_busy = 0
        self.no_exit_code = 0
        self.http503 = 0
        self.http_status = 503

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Command:
    def __init__(self, peer: "Peer", shell: "Shell", cid: str, command: str, arguments: list[str]):
        self.peer = peer
        self.shell = shell
        self.id = cid
        self.command = command
        self.arguments = arguments
        self.cmdline = " ".join([command] + arguments) if arguments else command
        self.cond = threading.Condition()
        self.chunks: collections.deque = collections.deque()
        self.exit_code: int | None = None
        self.done = False
        self.done_delivered = False
        self.removed = False
        self.stdin_buf = bytearray()
        self.stdin_closed = False
        self.stdin_q: queue.Queue | None = None
        self.proc: subprocess.Popen | None = None
        self.single_big = False
        self.synthetic = False
        self.record_info: dict | None = None
        self.on_done = None  # callable run once when done
        self.skip_cmd_shell = False  # WINRS_SKIP_CMD_SHELL=TRUE: no cmd.exe between WinRS and the program
        self.reboot_after: float | None = None  # record mode: reboot this long after Done reaches the client
        self.created = time.time()
        self.skip_cmd_shell = False
        # record mode: what the program gets after cmd.exe (unless skipped) and CommandLineToArgvW
        self.exec_info: dict = {"argv": None, "cmd": None, "echo": None}

    # output side -------------------------------------------------------------------------
    def push(self, stream: str, data: bytes) -> None:
        if not data:
            return
        with self.cond:
            self.chunks.append((stream, bytes(data)))
            self.cond.notify_all()

    def finish(self, rc: int) -> None:
        cb = None
        with self.cond:
            if self.done:
                return
            self.exit_code = rc
            self.done = True
            cb, self.on_done = self.on_done, None
            self.cond.notify_all()
        if cb:
            try:
                cb()
            except Exception:
                log("on_done callback failed: %s" % traceback.format_exc())

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    # input side --------------------------------------------------------------------------
    def send_stdin(self, data: bytes, end: bool) -> None:
        with self.cond:
            if self.stdin_closed:
                return
            self.stdin_buf.extend(data)
            if end:
                self.stdin_closed = True
            self.cond.notify_all()
        if self.proc is not None and self.proc.stdin is not None:
            if self.stdin_q is None:
                self.stdin_q = queue.Queue()
                threading.Thread(target=self._stdin_writer, name="stdin-" + self.id[:8], daemon=True).start()
            if data:
                self.stdin_q.put(bytes(data))
            if end:
                self.stdin_q.put(None)
        elif self.peer.mode == "record":
            self.peer.record_stdin_progress(self)

    def _stdin_writer(self) -> None:
        assert self.proc is not None and self.stdin_q is not None
        pipe = self.proc.stdin
        while True:
            item = self.stdin_q.get()
            try:
                if item is None:
                    pipe.close()
                    return
                pipe.write(item)
                pipe.flush()
            except (BrokenPipeError, OSError, ValueError):
                # Process went away or closed stdin: drain silently like Windows does.
                if item is None:
                    return

    def kill(self, sig: int = signal.SIGKILL) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except (ProcessLookupError, PermissionError, OSError):
                try:
                    p.send_signal(sig)
                except Exception:
                    pass


class Shell:
    def __init__(self, sid: str, owner: str, client_ip: str, codepage: int, noprofile: bool,
                 env: dict, workdir: str | None, input_streams: str, output_streams: str, idle_timeout: str | None):
        self.id = sid
        self.owner = owner
        self.client_ip = client_ip
        self.codepage = codepage
        self.noprofile = noprofile
        self.env = env
        self.workdir = workdir
        self.input_streams = input_streams
        self.output_streams = output_streams
        self.idle_timeout = idle_timeout or "PT7200.000S"
        self.commands: dict[str, Command] = {}
        self.created = time.time()
        self.last_used = time.time()
        # Commands started here: each holds one of the user's MaxConcurrentOperationsPerUser until
        # the shell is deleted (Signal terminate does not give it back).
        self.operations = 0


class Peer:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        # --- sim mode hook: sim mode is record mode plus the simulated host in sim/ ---
        self.mode = "record" if args.mode == "sim" else args.mode
        self.sim = None  # sim.SimHost in sim mode
        # --- end sim mode hook ---
        self.lock = threading.RLock()
        self.cred_lock = threading.Lock()
        self.shells: dict[str, Shell] = {}
        self.inj = Injections()
        self.stats = self._fresh_stats()
        self.boot_time_unix = time.time() - 3600.0 - (os.getpid() % 600)
        self.boot_filetime = filetime(self.boot_time_unix)
        self.down = False
        self.down_until = 0.0
        self.coming_up = False
        self.up_timer: threading.Timer | None = None
        self.reboot_pending: threading.Timer | None = None
        self.reboot_pending_at = 0.0
        self.conns: set = set()
        self.listen_sock: socket.socket | None = None
        self.port = 0
        self.host = "127.0.0.1"
        self.ssl_ctx: ssl.SSLContext | None = None
        self.cbt_hash: bytes | None = None
        self.records: list[dict] = []
        self.rules: list[dict] = []
        self.rule_hits: dict[int, int] = collections.defaultdict(int)
        self.users: list[tuple[str | None, str, str]] = []
        self.cred_lines: set = set()
        self.stop_event = threading.Event()
        self.max_env_bytes = int(args.max_envelope_kb) * 1024
        self.record_lock = threading.Lock()

    @staticmethod
    def _fresh_stats() -> dict:
        return {
            "connections_accepted": 0, "connections_open": 0, "tls_handshake_failures": 0,
            "http_requests": 0, "auth_challenges": 0, "handshakes": 0, "auth_failures": 0,
            "unauthorized_401": 0, "basic_auths": 0, "basic_failures": 0,
            "soap_requests": 0, "requests_by_action": collections.Counter(),
            "plaintext_refused": 0, "decrypt_failures": 0, "envelope_too_large": 0,
            "faults": collections.Counter(), "shells_created": 0, "shells_deleted": 0,
            "commands_started": 0, "signals": collections.Counter(), "reboots": 0,
            "injected": collections.Counter(), "records": 0,
        }

    def bump(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key] += n

    def bump_in(self, key: str, sub: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key][sub] += n

    def snapshot(self) -> dict:
        with self.lock:
            s = {}
            for k, v in self.stats.items():
                s[k] = dict(v) if isinstance(v, collections.Counter) else v
            s["shells_open"] = len(self.shells)
            s["shells"] = [
                {"id": sh.id, "owner": sh.owner, "codepage": sh.codepage, "noprofile": sh.noprofile,
                 "commands": len(sh.commands), "operations": sh.operations,
                 "working_directory": sh.workdir} for sh in self.shells.values()]
            ops: dict = collections.Counter()
            for sh in self.shells.values():
                ops[sh.owner.lower()] += sh.operations
            s["operations"] = dict(ops)
            s["boot_time_filetime"] = self.boot_filetime
            s["up"] = not self.down
            s["reboot_pending"] = self.reboot_pending is not None
            s["mode"] = self.args.mode
            s["port"] = self.port
            s["https"] = bool(self.args.https)
            s["injections"] = self.inj.as_dict()
            return s

    # ---- users and the NTLM credential store -------------------------------------------
    def add_user(self, spec: str) -> None:
        spec = spec.strip()
        if not spec or spec.startswith("#"):
            return
        if ":" not in spec:
            raise SystemExit("winrm-peer: bad --users entry %r (want [DOMAIN\\]user:password)" % spec)
        who, password = spec.split(":", 1)
        domain = None
        if "\\" in who:
            domain, who = who.split("\\", 1)
            if domain in ("", "."):
                domain = None
        self.users.append((domain, who, password))

    def find_user(self, domain: str | None, user: str) -> tuple[str | None, str, str] | None:
        d = (domain or "").upper()
        if "@" in user and not d:
            user, d = user.split("@", 1)[0], user.split("@", 1)[1].upper()
        for u_dom, u_name, u_pw in self.users:
            if u_name.lower() != user.lower():
                continue
            # A local account (no domain configured) answers to any domain name, like a workgroup
            # host falling back to its SAM; a domain account needs its domain (or none).
            if u_dom is None or d in ("", ".", u_dom.upper()):
                return (u_dom, u_name, u_pw)
        return None

    def ensure_cred_line(self, domain: str, user: str, password: str) -> None:
        """pyspnego's acceptor looks the (domain, user) of the AUTHENTICATE up in NTLM_USER_FILE."""
        key = (domain.upper(), user.upper())
        if key in self.cred_lines:
            return
        name = ("%s\\%s" % (domain, user)) if domain else user
        line = "%s:1000:%s:%s:[U]:LCT-00000000\n" % (
            name, lmowfv1(password).hex().upper(), ntowfv1(password).hex().upper())
        with open(os.environ["NTLM_USER_FILE"], "a", encoding="utf-8") as fh:
            fh.write(line)
        self.cred_lines.add(key)

    # ---- shells --------------------------------------------------------------------------
    def get_shell(self, sid: str | None) -> Shell:
        with self.lock:
            sh = self.shells.get((sid or "").upper())
        if sh is None:
            raise shell_not_found(sid or "")
        sh.last_used = time.time()
        return sh

    def kill_all(self) -> None:
        with self.lock:
            shells = list(self.shells.values())
            self.shells.clear()
        for sh in shells:
            for c in list(sh.commands.values()):
                c.removed = True
                c.kill()
                c.finish(c.exit_code if c.exit_code is not None else 1)
                c.wake()

    # ---- record mode ---------------------------------------------------------------------
    def record_stdin_progress(self, cmd: Command) -> None:
        info = cmd.record_info
        if info and info.get("waiting_stdin") and cmd.stdin_closed:
            info["waiting_stdin"] = False
            self.complete_record(cmd)

    def write_record(self, record: dict) -> None:
        record = dict({"time": time.time(), "time_iso": datetime.datetime.now(datetime.timezone.utc).isoformat()},
                      **record)
        with self.record_lock:
            self.records.append(record)
            if self.args.record_log:
                try:
                    with open(self.args.record_log, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                except OSError as exc:
                    log("cannot write record log: %s" % exc)
        self.bump("records")
        vlog("record: %s" % json.dumps(record, ensure_ascii=False)[:400])

    def expand(self, text: str, cmd: Command, stdin_text: str, script: str | None) -> str:
        """Fill {{name}} placeholders in a rule's output (unknown names are left alone)."""
        if "{{" not in text:
            return text
        raw = bytes(cmd.stdin_buf)
        decoded = bytearray()
        for line in raw.splitlines():  # Ansible-style uploads: base64 lines on stdin
            line = line.strip()
            if line:
                try:
                    decoded.extend(base64.b64decode(line, validate=False))
                except Exception:
                    pass
        values = {
            "stdin": stdin_text, "script": script or "", "command_line": cmd.cmdline,
            "shell_id": cmd.shell.id, "command_id": cmd.id, "user": cmd.shell.owner,
            "boot_time": str(self.boot_filetime), "stdin_bytes": str(len(raw)),
            "stdin_sha1": hashlib.sha1(raw).hexdigest(), "stdin_sha256": hashlib.sha256(raw).hexdigest(),
            "stdin_b64_bytes": str(len(decoded)),
            "stdin_b64_sha1": hashlib.sha1(decoded).hexdigest(),
            "stdin_b64_sha256": hashlib.sha256(decoded).hexdigest(),
        }
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values.get(m.group(1), m.group(0)), text)

    def complete_record(self, cmd: Command) -> None:
        info = cmd.record_info or {}
        codec = codepage_codec(cmd.shell.codepage)
        stdin_text = decode_text(bytes(cmd.stdin_buf), codec) if cmd.stdin_buf else ""
        script = info.get("script")
        if info.get("source") == "stdin":
            script = stdin_text
        text = script if script is not None else cmd.cmdline
        stdout, stderr, rc, delay_ms, rule_idx = "", "", 0, 0, None
        for i, rule in enumerate(self.rules):
            try:
                pat = rule.get("match")
                if pat is not None and not re.search(pat, text, re.S | re.M):
                    continue
                cpat = rule.get("command")
                if cpat is not None and not re.search(cpat, cmd.cmdline):
                    continue
                spat = rule.get("stdin_match")
                if spat is not None and not re.search(spat, stdin_text, re.S | re.M):
                    continue
                times = rule.get("times")
                if times is not None and self.rule_hits[i] >= int(times):
                    continue
            except re.error as exc:
                log("bad rule regex %r: %s" % (rule, exc))
                continue
            self.rule_hits[i] += 1
            stdout = self.expand(str(rule.get("stdout", "") or ""), cmd, stdin_text, script)
            stderr = self.expand(str(rule.get("stderr", "") or ""), cmd, stdin_text, script)
            rc = int(rule.get("rc", 0) or 0)
            delay_ms = int(rule.get("delay_ms", 0) or 0)
            rule_idx = i
            break
        # --- sim mode hook: a powershell.exe pays its start-up cost (--pwsh-start-ms) ---
        if self.sim is not None:
            delay_ms = self.sim.start_cost_ms(cmd, info, delay_ms)
        # --- end sim mode hook ---
        out_b = stdout.encode(codec, errors="replace") if isinstance(stdout, str) else bytes(stdout)
        err_b = stderr.encode(codec, errors="replace") if isinstance(stderr, str) else bytes(stderr)
        if rule_idx is not None:
            rule = self.rules[rule_idx]
            if rule.get("stdout_b64"):
                out_b = base64.b64decode(rule["stdout_b64"])
            if rule.get("stderr_b64"):
                err_b = base64.b64decode(rule["stderr_b64"])
        builtin = None
        if RE_BOOT_TIME.search(text) and RE_TO_FILETIME.search(text):
            with self.lock:
                bt = self.boot_filetime
            out_b, err_b, rc, builtin = ("%d\r\n" % bt).encode(), b"", 0, "boot_time"
        reboot_delay = None
        if RE_SHUTDOWN_A.search(text):
            builtin = "shutdown_abort"
            if self.cancel_reboot():
                rc = rc or 0
            else:
                rc, err_b = 1116, (b"Unable to abort the system shutdown because no shutdown was in progress.(1116)\r\n")
        elif RE_SHUTDOWN_R.search(text) or RE_RESTART.search(text):
            builtin = "reboot"
            with self.lock:
                pending = self.reboot_pending is not None
            if pending and RE_SHUTDOWN_R.search(text):
                rc, err_b = 1190, b"A system shutdown has already been scheduled.(1190)\r\n"
            elif rc == 0:
                m = RE_SHUTDOWN_T.search(text)
                t = float(m.group(1)) if m else (30.0 if RE_SHUTDOWN_R.search(text) else 0.0)
                reboot_delay = min(t, float(self.args.reboot_delay_cap))
        if rule_idx is None and builtin is None and cmd.exec_info.get("echo") is not None:
            # cmd.exe's `echo` (after quote stripping, %VAR% expansion and carets).
            out_b, builtin = (cmd.exec_info["echo"] + "\r\n").encode(codec, errors="replace"), "cmd_echo"
        self.write_record({
            "shell_id": cmd.shell.id, "command_id": cmd.id, "user": cmd.shell.owner,
            "codepage": cmd.shell.codepage, "noprofile": cmd.shell.noprofile,
            "command": cmd.command, "arguments": cmd.arguments, "command_line": cmd.cmdline,
            "skip_cmd_shell": cmd.skip_cmd_shell, "working_directory": cmd.shell.workdir,
            "environment": dict(cmd.shell.env), "argv": cmd.exec_info.get("argv"), "cmd": cmd.exec_info.get("cmd"),
            "stdin": stdin_text, "stdin_bytes": len(cmd.stdin_buf),
            "script": script, "script_source": info.get("source"),
            "rule": rule_idx, "builtin": builtin, "rc": rc,
        })

        def deliver() -> None:
            if cmd.removed:
                return
            if reboot_delay is not None:
                cmd.reboot_after = reboot_delay
            cmd.push("stdout", out_b)
            cmd.push("stderr", err_b)
            cmd.finish(rc)

        if delay_ms > 0:
            t = threading.Timer(delay_ms / 1000.0, deliver)
            t.daemon = True
            t.start()
        else:
            deliver()

    # ---- reboot --------------------------------------------------------------------------
    def schedule_reboot(self, delay: float, down_seconds: float | None) -> None:
        with self.lock:
            if self.reboot_pending is not None or self.down:
                return
            t = threading.Timer(max(0.0, delay), self._pending_fire, args=(down_seconds,))
            t.daemon = True
            self.reboot_pending = t
            self.reboot_pending_at = time.time() + delay
            t.start()
        log("reboot scheduled in %.1fs" % delay)

    def _pending_fire(self, down_seconds: float | None) -> None:
        with self.lock:
            self.reboot_pending = None
        self.reboot(down_seconds)

    def cancel_reboot(self) -> bool:
        with self.lock:
            t = self.reboot_pending
            self.reboot_pending = None
        if t is None:
            return False
        t.cancel()
        log("pending reboot cancelled")
        return True

    def reboot(self, down_seconds: float | None) -> None:
        down = float(self.args.reboot_down if down_seconds is None else down_seconds)
        with self.lock:
            if self.down:
                return
            self.down = True
            self.down_until = time.time() + down
            self.stats["reboots"] += 1
            sock, self.listen_sock = self.listen_sock, None
            conns = list(self.conns)
        log("simulated reboot: listener down for %.1fs" % down)
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        for c in conns:
            c.abort()
        self.kill_all()
        with self.lock:
            # The host boots while it is down; WinRM answers only after the listener is back.
            self.boot_time_unix = time.time() + down / 2.0
            self.boot_filetime = filetime(self.boot_time_unix)
        # --- sim mode hook: the simulated host boots (pending features, services, startup tasks) ---
        if self.sim is not None:
            self.sim.on_reboot()
        # --- end sim mode hook ---
        t = threading.Timer(down, self._come_up)
        t.daemon = True
        with self.lock:
            self.up_timer = t
        t.start()

    def come_up_now(self) -> bool:
        """Ends a simulated reboot's downtime now (control op `up`); False if the host is up."""
        with self.lock:
            t, self.up_timer = self.up_timer, None
        if t is not None:
            t.cancel()
        return self._come_up()

    def _come_up(self) -> bool:
        with self.lock:
            if not self.down or self.coming_up:
                return False
            self.coming_up = True
        for attempt in range(50):
            try:
                self.bind_listener(self.port)
                break
            except OSError as exc:
                log("rebind failed (%s), retrying" % exc)
                time.sleep(0.1)
        with self.lock:
            self.down = False
            self.coming_up = False
        log("simulated reboot: listener back on port %d" % self.port)
        return True

    # ---- listener ------------------------------------------------------------------------
    def bind_listener(self, port: int) -> None:
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, port))
        s.listen(128)
        s.setblocking(False)
        self.port = s.getsockname()[1]
        with self.lock:
            self.listen_sock = s
        threading.Thread(target=self._accept_loop, args=(s,), name="accept", daemon=True).start()

    def _accept_loop(self, lsock: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        try:
            sel.register(lsock, selectors.EVENT_READ)
        except (ValueError, OSError):
            return
        while not self.stop_event.is_set():
            with self.lock:
                if self.listen_sock is not lsock:
                    break
            try:
                events = sel.select(0.2)
            except (OSError, ValueError):
                break
            if not events:
                continue
            try:
                csock, addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                break
            try:
                csock.setblocking(True)
                csock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            self.bump("connections_accepted")
            conn = Connection(self, csock, addr)
            threading.Thread(target=conn.run, name="conn-%s" % (addr[1],), daemon=True).start()
        try:
            sel.close()
        except Exception:
            pass


def shell_not_found(sid: str) -> Fault:
    return Fault(
        "s:Sender", "w:InvalidSelectors",
        "The WS-Management service cannot process the request because the request contained invalid selectors for the resource. ",
        CODE_INVALID_SELECTORS,
        "The request for the Windows Remote Shell with ShellId %s failed because the shell was not found on the "
        "server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. "
        "Provide the correct ShellId or create a new shell and retry the operation. " % sid,
        detail="<w:FaultDetail>http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors</w:FaultDetail>",
        stat="ShellNotFound")


def command_not_found() -> Fault:
    return Fault(
        "s:Sender", "w:InvalidSelectors",
        "The WS-Management service cannot process the request because the request contained invalid selectors for the resource. ",
        CODE_INVALID_SELECTORS,
        "The Windows Remote Shell received a request to perform an operation on a command identifier that does not "
        "exist. Either the command has completed execution or the client specified an invalid command identifier. ",
        detail="<w:FaultDetail>http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors</w:FaultDetail>",
        stat="CommandNotFound")


def operations_quota(limit: int, form: str) -> Fault:
    """MaxConcurrentOperationsPerUser reached: as a WSManFault, or (form "wmi") as the
    w:InternalError carrying p:MSFT_WmiError that pywinrm's test_exceptions.py records."""
    text = ("The WS-Management service cannot process the request. This user is allowed a maximum number of %d "
            "concurrent operations, which has been exceeded. Close existing operations for this user, or raise "
            "the quota for this user. " % limit)
    if form == "wmi":
        detail = ('<p:MSFT_WmiError b:IsCIM_Error="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                  'xmlns:b="http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd" '
                  'xmlns:p="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/MSFT_WmiError" '
                  'xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xsi:type="p:MSFT_WmiError_Type">'
                  '<p:CIMStatusCode xsi:type="cim:cimUnsignedInt">27</p:CIMStatusCode>'
                  '<p:CIMStatusCodeDescription xsi:type="cim:cimString" xsi:nil="true" />'
                  '<p:ErrorSource xsi:type="cim:cimString" xsi:nil="true" />'
                  '<p:ErrorSourceFormat xsi:type="cim:cimUnsignedShort">0</p:ErrorSourceFormat>'
                  '<p:ErrorType xsi:type="cim:cimUnsignedShort">0</p:ErrorType>'
                  '<p:Message xsi:type="cim:cimString">%s</p:Message>'
                  '<p:MessageID xsi:type="cim:cimString">HRESULT 0x803381a6</p:MessageID>'
                  '<p:OtherErrorSourceFormat xsi:type="cim:cimString" xsi:nil="true" />'
                  '<p:OtherErrorType xsi:type="cim:cimString" xsi:nil="true" />'
                  '<p:OwningEntity xsi:type="cim:cimString" xsi:nil="true" />'
                  '<p:PerceivedSeverity xsi:type="cim:cimUnsignedShort">0</p:PerceivedSeverity>'
                  '<p:ProbableCause xsi:type="cim:cimUnsignedShort">0</p:ProbableCause>'
                  '<p:ProbableCauseDescription xsi:type="cim:cimString" xsi:nil="true" />'
                  '<p:error_Category xsi:type="cim:cimUnsignedInt">30</p:error_Category>'
                  '<p:error_Code xsi:type="cim:cimUnsignedInt">%d</p:error_Code>'
                  '<p:error_Type xsi:type="cim:cimString">HRESULT</p:error_Type>'
                  '<p:error_WindowsErrorMessage xsi:type="cim:cimString">%s</p:error_WindowsErrorMessage>'
                  "</p:MSFT_WmiError>" % (xesc(text), CODE_QUOTA_MAX_OPERATIONS, xesc(text)))
        return Fault("s:Receiver", "w:InternalError", text, None, detail=detail, stat="QuotaMaxOperations")
    return Fault("s:Receiver", "w:QuotaLimit", text, CODE_QUOTA_MAX_OPERATIONS, stat="QuotaMaxOperations")


def invalid_parameter() -> Fault:
    """What Windows answers to a Receive without CommandId (pypsrp's test_winrs_fail_poll_process.yml)."""
    return Fault("s:Sender", "w:InvalidParameter", "The parameter is incorrect. ", CODE_INVALID_PARAMETER,
                 detail="<w:FaultDetail>http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidValue"
                        "</w:FaultDetail>", stat="InvalidParameter", provider=True)


def send_busy() -> Fault:
    """ERROR_BUSY on a Send (Ansible retries it; the shape is a best guess: a shell plugin error)."""
    return Fault("s:Receiver", "w:InternalError",
                 "The WS-Management service cannot process the request. The service encountered an internal "
                 "error. ", CODE_BUSY, "The requested resource is in use. ", stat="SendBusy", provider=True)


# What HTTP.sys itself answers (before WinRM sees the request) when nothing serves the URL (503, e.g.
# the WinRM service stopped or still starting) or it refuses the request (400).
HTTPSYS_PAGES = {
    503: ("Service Unavailable", "HTTP Error 503. The service is unavailable."),
    400: ("Bad Request - Invalid Hostname", "HTTP Error 400. The request hostname is invalid."),
    404: ("Not Found", "HTTP Error 404. The requested resource is not found."),
}


def httpsys_page(status: int) -> bytes:
    title, text = HTTPSYS_PAGES.get(status, HTTPSYS_PAGES[503])
    return ('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
            "<HTML><HEAD><TITLE>%s</TITLE>\r\n"
            '<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>\r\n'
            "<BODY><h2>%s</h2>\r\n<hr><p>%s</p>\r\n</BODY></HTML>\r\n" % (title, title, text)).encode("ascii")


def timed_out() -> Fault:
    text = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  "
    return Fault("s:Receiver", "w:TimedOut", text, CODE_TIMED_OUT, text)


def invalid_xml(detail: str) -> Fault:
    return Fault("s:Sender", "w:SchemaValidationError",
                 "The SOAP XML in the message does not match the corresponding XML schema definition. Change the XML and retry. ",
                 CODE_INVALID_XML,
                 "WinRM cannot process the request because the input XML contains a syntax error. ",
                 stat="MalformedXML")


# --------------------------------------------------------------------------------------------
# SOAP
# --------------------------------------------------------------------------------------------

ENV_OPEN = ('<s:Envelope xml:lang="en-US" xmlns:s="%s" xmlns:a="%s" xmlns:x="%s" xmlns:w="%s" xmlns:rsp="%s" '
            'xmlns:p="%s">' % (NS_S, NS_A, NS_X, NS_W, NS_RSP, NS_P))
FAULT_ENV_OPEN = ('<s:Envelope xml:lang="en-US" xmlns:s="%s" xmlns:a="%s" xmlns:x="%s" '
                  'xmlns:e="http://schemas.xmlsoap.org/ws/2004/08/eventing" '
                  'xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" xmlns:w="%s" xmlns:p="%s">'
                  % (NS_S, NS_A, NS_X, NS_W, NS_P))


def activity_id() -> str:
    return new_guid()


def soap_envelope(action: str, relates_to: str, body: str) -> bytes:
    return (ENV_OPEN + "<s:Header><a:Action>%s</a:Action><a:MessageID>uuid:%s</a:MessageID>"
            "<p:ActivityId>%s</p:ActivityId><a:To>%s</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header>"
            "<s:Body>%s</s:Body></s:Envelope>" % (action, new_guid(), activity_id(), ANON, xesc(relates_to), body)
            ).encode("utf-8")


def fault_envelope(f: Fault, relates_to: str, machine: str) -> bytes:
    wsman = ""
    if f.wsman_code is not None:
        msg = xesc(f.message)
        if f.provider:
            msg = ('<f:ProviderFault provider="Shell cmd plugin" path="%%systemroot%%\\system32\\winrscmd.dll">%s'
                   "</f:ProviderFault>" % msg)
        wsman = ('<f:WSManFault xmlns:f="%s" Code="%d" Machine="%s"><f:Message>%s</f:Message></f:WSManFault>'
                 % (NS_F, f.wsman_code, xesc(machine), msg))
    body = ("<s:Fault><s:Code><s:Value>%s</s:Value><s:Subcode><s:Value>%s</s:Value></s:Subcode></s:Code>"
            '<s:Reason><s:Text xml:lang="en-US">%s</s:Text></s:Reason><s:Detail>%s%s</s:Detail></s:Fault>'
            % (f.code, f.subcode, xesc(f.reason), f.detail, wsman))
    return (FAULT_ENV_OPEN + "<s:Header><a:Action>%s</a:Action><a:MessageID>uuid:%s</a:MessageID>"
            "<p:ActivityId>%s</p:ActivityId><a:To>%s</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header>"
            "<s:Body>%s</s:Body></s:Envelope>" % (f.action, new_guid(), activity_id(), ANON, xesc(relates_to), body)
            ).encode("utf-8")


class Req:
    """A parsed WS-Man request envelope."""

    def __init__(self, root: ET.Element):
        self.root = root
        h = root.find("{%s}Header" % NS_S)
        self.header = h if h is not None else ET.Element("none")
        b = root.find("{%s}Body" % NS_S)
        self.body = b if b is not None else ET.Element("none")

        def text(tag: str) -> str | None:
            el = self.header.find(tag)
            return el.text.strip() if el is not None and el.text is not None else None

        self.action = text("{%s}Action" % NS_A) or ""
        self.message_id = text("{%s}MessageID" % NS_A) or ""
        self.resource_uri = text("{%s}ResourceURI" % NS_W) or ""
        mes = text("{%s}MaxEnvelopeSize" % NS_W)
        try:
            self.max_envelope = int(mes) if mes else 153600
        except ValueError:
            self.max_envelope = -1
        self.op_timeout_raw = text("{%s}OperationTimeout" % NS_W)
        self.op_timeout = parse_duration(self.op_timeout_raw)
        self.selectors: dict[str, str] = {}
        for sel in self.header.findall("{%s}SelectorSet/{%s}Selector" % (NS_W, NS_W)):
            self.selectors[sel.get("Name", "")] = (sel.text or "").strip()
        self.options: dict[str, str] = {}
        for opt in self.header.findall("{%s}OptionSet/{%s}Option" % (NS_W, NS_W)):
            self.options[opt.get("Name", "").upper()] = (opt.text or "").strip()

    def short_action(self) -> str:
        if self.body.find("{%s}Identify" % NS_WSMID) is not None:
            return "Identify"
        return self.action.rsplit("/", 1)[-1] if self.action else "(none)"


def truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("true", "1", "yes")


class Soap:
    def __init__(self, peer: Peer):
        self.peer = peer

    def identify(self, relates_to: str, authenticated: bool) -> bytes:
        version = "OS: 10.0.20348 SP: 0.0 Stack: 3.0" if authenticated else "OS: 0.0.0 SP: 0.0 Stack: 3.0"
        body = ('<wsmid:IdentifyResponse xmlns:wsmid="%s"><wsmid:ProtocolVersion>%s</wsmid:ProtocolVersion>'
                "<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>"
                "<wsmid:ProductVersion>%s</wsmid:ProductVersion>" % (NS_WSMID, NS_W, version))
        if authenticated:
            body += ("<wsmid:SecurityProfiles><wsmid:SecurityProfileName>"
                     "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/spnego-kerberos"
                     "</wsmid:SecurityProfileName></wsmid:SecurityProfiles>")
        body += "</wsmid:IdentifyResponse>"
        return ('<s:Envelope xml:lang="en-US" xmlns:s="%s"><s:Header/><s:Body>%s</s:Body></s:Envelope>'
                % (NS_S, body)).encode("utf-8")

    def dispatch(self, xml: bytes, conn: "Connection") -> tuple[int, bytes, str]:
        """Return (http status, response xml, short action name)."""
        peer = self.peer
        try:
            root = ET.fromstring(xml)
            if root.tag != "{%s}Envelope" % NS_S:
                raise ET.ParseError("not a SOAP 1.2 envelope")
            req = Req(root)
        except ET.ParseError as exc:
            peer.bump_in("requests_by_action", "(malformed)")
            f = invalid_xml(str(exc))
            peer.bump_in("faults", f.stat)
            return 500, fault_envelope(f, "", conn.machine), "(malformed)"
        name = req.short_action()
        peer.bump_in("requests_by_action", name)
        try:
            if name == "Identify":
                return 200, self.identify(req.message_id, True), name
            if peer.args.reject_large_max_envelope and req.max_envelope > peer.max_env_bytes:
                raise Fault("s:Sender", "w:EncodingLimit",
                            "The WS-Management service cannot process the request because the request contained "
                            "a MaxEnvelopeSize that is larger than the service allows. ", CODE_MAX_ENVELOPE_SIZE,
                            "The maximum envelope size in the request is too large. Change the maximum envelope "
                            "size and try the request again. ", stat="MaxEnvelopeSize")
            if 0 <= req.max_envelope < 8192:
                raise Fault("s:Sender", "w:EncodingLimit",
                            "The WS-Management service cannot process the request because the envelope size in "
                            "the request is too small. ", CODE_MIN_ENVELOPE_SIZE, stat="MinEnvelopeSize")
            a = req.action
            if a == ACT_GET and req.resource_uri.lower().startswith(CONFIG_URI.lower()) and "windows/shell" not in req.resource_uri.lower():
                return 200, self.get_config(req), name
            if req.resource_uri.lower() != SHELL_CMD_URI.lower():
                raise Fault("s:Sender", "w:DestinationUnreachable",
                            "The WS-Management service cannot process the request because the resource URI is not "
                            "supported by this listener. ", CODE_DESTINATION_UNREACHABLE,
                            "The WS-Management service cannot process the request. The resource URI (%s) was not "
                            "found in the WS-Management catalog. " % req.resource_uri,
                            detail="<w:FaultDetail>http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidResourceURI</w:FaultDetail>",
                            stat="DestinationUnreachable")
            if a == ACT_CREATE:
                return 200, self.create(req, conn), name
            if a == ACT_COMMAND:
                return 200, self.command(req), name
            if a == ACT_SEND:
                return 200, self.send(req), name
            if a == ACT_RECEIVE:
                return 200, self.receive(req), name
            if a == ACT_SIGNAL:
                return 200, self.signal(req), name
            if a == ACT_DELETE:
                return 200, self.delete(req), name
            raise Fault("s:Sender", "a:ActionNotSupported",
                        "The action is not supported by the service. ", CODE_ACTION_NOT_SUPPORTED,
                        "The WS-Management service does not support the action specified in the request. ",
                        detail="<w:FaultDetail>%s</w:FaultDetail>" % xesc(a), action=ACT_ADDR_FAULT,
                        stat="ActionNotSupported")
        except Fault as f:
            peer.bump_in("faults", f.stat)
            vlog("fault %s for %s" % (f.stat, name))
            return 500, fault_envelope(f, req.message_id, conn.machine), name

    # -- operations -------------------------------------------------------------------------
    def get_config(self, req: Req) -> bytes:
        body = ('<cfg:Config xmlns:cfg="%s"><cfg:MaxEnvelopeSizekb>%d</cfg:MaxEnvelopeSizekb>'
                "<cfg:MaxTimeoutms>60000</cfg:MaxTimeoutms><cfg:MaxBatchItems>32000</cfg:MaxBatchItems>"
                "<cfg:MaxProviderRequests>4294967295</cfg:MaxProviderRequests></cfg:Config>"
                % (NS_CFG, self.peer.max_env_bytes // 1024))
        return soap_envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse", req.message_id, body)

    def create(self, req: Req, conn: "Connection") -> bytes:
        peer = self.peer
        shell_el = req.body.find("{%s}Shell" % NS_RSP)
        if shell_el is None:
            raise Fault("s:Sender", "w:SchemaValidationError",
                        "The SOAP XML in the message does not match the corresponding XML schema definition. "
                        "Change the XML and retry. ", CODE_INVALID_XML_VALUES, stat="MissingShell")

        def child(tag: str) -> str | None:
            el = shell_el.find("{%s}%s" % (NS_RSP, tag))
            return el.text.strip() if el is not None and el.text is not None else None

        env = {}
        for v in shell_el.findall("{%s}Environment/{%s}Variable" % (NS_RSP, NS_RSP)):
            env[v.get("Name", "")] = v.text or ""
        try:
            codepage = int(req.options.get("WINRS_CODEPAGE") or 437)
        except ValueError:
            codepage = 437
        noprofile = truthy(req.options.get("WINRS_NOPROFILE"))
        owner = conn.user_short or "user"
        with peer.lock:
            mine = sum(1 for s in peer.shells.values() if s.owner.lower() == owner.lower())
            if mine >= int(peer.args.max_shells):
                raise Fault("s:Receiver", "w:QuotaLimit",
                            "The WS-Management service cannot process the request. The maximum number of concurrent "
                            "shells for this user has been exceeded. Close existing shells or raise the quota for "
                            "this user. ", CODE_QUOTA_MAX_SHELLS,
                            "The WS-Management service cannot process the request. This user is allowed a maximum "
                            "number of %d concurrent shells, which has been exceeded. Close existing shells or raise "
                            "the quota for this user. " % int(peer.args.max_shells), stat="QuotaMaxShells")
            sid = (shell_el.get("ShellId") or new_guid()).upper()
            if sid in peer.shells:
                raise Fault("s:Sender", "w:AlreadyExists",
                            "The WS-Management service cannot process a Create request because the target already exists. ",
                            2150858803, stat="AlreadyExists")
            sh = Shell(sid, owner, conn.client_ip, codepage, noprofile, env, child("WorkingDirectory"),
                       child("InputStreams") or "stdin", child("OutputStreams") or "stdout stderr", child("IdleTimeOut"))
            peer.shells[sid] = sh
            peer.stats["shells_created"] += 1
        vlog("shell %s created for %s (codepage %d, noprofile %s)" % (sid, owner, codepage, noprofile))
        addr = "%s://%s/wsman" % ("https" if peer.args.https else "http", conn.host_header or "%s:%d" % (peer.host, peer.port))
        body = ("<x:ResourceCreated><a:Address>%s</a:Address><a:ReferenceParameters><w:ResourceURI>%s</w:ResourceURI>"
                '<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet></a:ReferenceParameters>'
                '</x:ResourceCreated><rsp:Shell xmlns:rsp="%s"><rsp:ShellId>%s</rsp:ShellId>'
                "<rsp:ResourceUri>%s</rsp:ResourceUri><rsp:Owner>%s</rsp:Owner><rsp:ClientIP>%s</rsp:ClientIP>"
                "<rsp:IdleTimeOut>%s</rsp:IdleTimeOut><rsp:InputStreams>%s</rsp:InputStreams>"
                "<rsp:OutputStreams>%s</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>"
                "<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>"
                % (xesc(addr), SHELL_CMD_URI, sid, NS_RSP, sid, SHELL_CMD_URI, xesc(owner), xesc(conn.client_ip),
                   xesc(sh.idle_timeout), xesc(sh.input_streams), xesc(sh.output_streams)))
        return soap_envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", req.message_id, body)

    def command(self, req: Req) -> bytes:
        peer = self.peer
        sh = peer.get_shell(req.selectors.get("ShellId"))
        cl = req.body.find("{%s}CommandLine" % NS_RSP)
        if cl is None:
            raise Fault("s:Sender", "w:SchemaValidationError",
                        "The SOAP XML in the message does not match the corresponding XML schema definition. "
                        "Change the XML and retry. ", CODE_INVALID_XML_VALUES, stat="MissingCommandLine")
        cmd_el = cl.find("{%s}Command" % NS_RSP)
        command = (cmd_el.text or "") if cmd_el is not None else ""
        command = command.strip()
        arguments = [(a.text or "") for a in cl.findall("{%s}Arguments" % NS_RSP)]
        cid = (cl.get("CommandId") or new_guid()).upper()
        cmd = Command(peer, sh, cid, command, arguments)
        with peer.lock:
            if peer.shells.get(sh.id) is not sh:
                raise shell_not_found(sh.id)
            # MaxConcurrentOperationsPerUser: every Command of the user's live shells counts, finished or
            # not, until its shell is deleted (MS-WSMV <118>: Signal terminate does not decrement it).
            used = sum(o.operations for o in peer.shells.values() if o.owner.lower() == sh.owner.lower())
            if used >= int(peer.args.max_operations):
                raise operations_quota(int(peer.args.max_operations), peer.args.operations_fault)
            sh.operations += 1
            sh.commands[cid] = cmd
            peer.stats["commands_started"] += 1
            inj = peer.inj
            endless = big = False
            big_mb, big_single = 0.0, False
            if inj.endless > 0:
                inj.endless -= 1
                endless = True
                peer.stats["injected"]["endless"] += 1
            elif inj.big_mb > 0:
                big, big_mb, big_single = True, inj.big_mb, inj.big_single
                inj.big_mb, inj.big_single = 0.0, False
                peer.stats["injected"]["big"] += 1
        vlog("command %s in shell %s: %r" % (cid, sh.id, cmd.cmdline[:200]))
        skip_cmd = truthy(req.options.get("WINRS_SKIP_CMD_SHELL"))
        cmd.skip_cmd_shell = skip_cmd  # sim mode: a command line goes through cmd.exe unless this is set
        if peer.mode != "sh":  # what the program would get on Windows (records; other modes may use it)
            env = cmdexe.default_env(sh.owner)
            env.update(sh.env)
            honoured = skip_cmd and not peer.args.ignore_skip_cmd_shell
            try:
                cmd.exec_info = cmdexe.describe(cmd.cmdline, honoured, env)
            except Exception:
                log("cannot model the command line %r: %s" % (cmd.cmdline[:200], traceback.format_exc()))
        limit = 32767 if skip_cmd else 8191
        if not peer.args.no_cmdline_limit and len(cmd.cmdline) > limit:
            # cmd.exe refuses command lines over 8191 characters (CreateProcess: 32767), reported through
            # the command's own output and exit code, as Windows does.
            msg = "The filename or extension is too long.\r\n" if skip_cmd else "The command line is too long.\r\n"
            if peer.mode == "record":
                peer.write_record({
                    "shell_id": sh.id, "command_id": cid, "user": sh.owner, "codepage": sh.codepage,
                    "noprofile": sh.noprofile, "command": command, "arguments": arguments,
                    "command_line": cmd.cmdline, "skip_cmd_shell": skip_cmd, "working_directory": sh.workdir,
                    "environment": dict(sh.env), "argv": None, "cmd": None,
                    "stdin": "", "stdin_bytes": 0, "script": None,
                    "script_source": None, "rule": None, "builtin": "command_line_too_long", "rc": 1})
            cmd.push("stderr", msg.encode())
            cmd.finish(1)
        elif endless:
            self._start_endless(cmd)
        elif big:
            self._start_big(cmd, big_mb, big_single)
        elif peer.mode == "record":
            self._start_record(cmd)
        else:
            self._start_sh(cmd)
        body = "<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse>" % cid
        return soap_envelope(NS_RSP + "/CommandResponse", req.message_id, body)

    def _start_sh(self, cmd: Command) -> None:
        sh = cmd.shell
        env = dict(os.environ)
        env.pop("NTLM_USER_FILE", None)
        env.update(sh.env)
        cwd = sh.workdir if sh.workdir and os.path.isdir(sh.workdir) else None
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", cmd.cmdline], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True, cwd=cwd, env=env, bufsize=0)
        except OSError as exc:
            # Windows answers the Command and reports the failure through the output and exit code.
            cmd.push("stderr", ("'%s' is not recognized: %s\r\n" % (cmd.command, exc)).encode())
            cmd.finish(1)
            return
        cmd.proc = proc
        threading.Thread(target=self._pump, args=(cmd, proc), name="pump-" + cmd.id[:8], daemon=True).start()

    def _pump(self, cmd: Command, proc: subprocess.Popen) -> None:
        sel = selectors.DefaultSelector()
        try:
            fds = {}
            for stream, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
                if pipe is not None:
                    os.set_blocking(pipe.fileno(), False)
                    sel.register(pipe, selectors.EVENT_READ, stream)
                    fds[stream] = pipe
            exited_at = None
            while fds:
                events = sel.select(0.1)
                for key, _ in events:
                    try:
                        data = os.read(key.fileobj.fileno(), 65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if data:
                        cmd.push(key.data, data)
                    else:
                        sel.unregister(key.fileobj)
                        fds.pop(key.data, None)
                        try:
                            key.fileobj.close()
                        except OSError:
                            pass
                if proc.poll() is not None:
                    if exited_at is None:
                        exited_at = time.monotonic()
                    elif time.monotonic() - exited_at > 0.25:
                        break  # a grandchild holds the pipes open; the process itself is done
            rc = proc.wait()
            if rc < 0:
                rc = 128 - rc
            cmd.finish(rc)
        except Exception:
            log("pump failed: %s" % traceback.format_exc())
            cmd.finish(1)
        finally:
            try:
                sel.close()
            except Exception:
                pass
            for p in (proc.stdout, proc.stderr):
                try:
                    if p is not None:
                        p.close()
                except OSError:
                    pass

    def _start_endless(self, cmd: Command) -> None:
        cmd.synthetic = True

        def run() -> None:
            n = 0
            while not cmd.removed and not cmd.done:
                n += 1
                cmd.push("stdout", ("endless output line %d\r\n" % n).encode())
                time.sleep(0.05)

        threading.Thread(target=run, name="endless", daemon=True).start()

    def _start_big(self, cmd: Command, mb: float, single: bool) -> None:
        cmd.synthetic = True
        cmd.single_big = single
        total = int(mb * 1024 * 1024)
        line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz!!\r\n"
        block = (line * (65536 // len(line) + 1))[:65536]
        sent = 0
        while sent < total:
            n = min(65536, total - sent)
            cmd.push("stdout", block[:n])
            sent += n
        cmd.finish(0)

    def _start_record(self, cmd: Command) -> None:
        info = analyse_powershell(cmd.cmdline)
        # --- sim mode hook: the PowerShell host, the one-shot wrapper and file transfers run in sim/ ---
        if self.peer.sim is not None and self.peer.sim.start_command(cmd, info):
            return
        # --- end sim mode hook ---
        script = info.get("script")
        waits = info.get("source") == "stdin" or bool(script and RE_READS_STDIN.search(script))
        info["waiting_stdin"] = waits and not cmd.stdin_closed
        cmd.record_info = info
        if not info["waiting_stdin"]:
            self.peer.complete_record(cmd)

    def send(self, req: Req) -> bytes:
        sh = self.peer.get_shell(req.selectors.get("ShellId"))
        send = req.body.find("{%s}Send" % NS_RSP)
        if send is None:
            raise Fault("s:Sender", "w:SchemaValidationError",
                        "The SOAP XML in the message does not match the corresponding XML schema definition. "
                        "Change the XML and retry. ", CODE_INVALID_XML_VALUES, stat="MissingSend")
        peer = self.peer
        with peer.lock:
            busy = peer.inj.send_busy > 0
            if busy:
                peer.inj.send_busy -= 1
                peer.stats["injected"]["send_busy"] += 1
            late = (not busy) and peer.inj.send_timeout > 0
            if late:
                peer.inj.send_timeout -= 1
                peer.stats["injected"]["send_timeout"] += 1
        if busy:
            # ERROR_BUSY: earlier input still being handed over; this input is not taken.
            raise send_busy()
        for st in send.findall("{%s}Stream" % NS_RSP):
            cid = (st.get("CommandId") or "").upper()
            cmd = sh.commands.get(cid)
            if cmd is None:
                if not cid and len(sh.commands) == 1:
                    cmd = next(iter(sh.commands.values()))
                else:
                    raise command_not_found()
            try:
                data = base64.b64decode((st.text or "").strip(), validate=False)
            except Exception:
                raise Fault("s:Sender", "w:InvalidParameter",
                            "The WS-Management service cannot process the request because the XML content has "
                            "invalid values. ", CODE_INVALID_XML_VALUES, stat="BadBase64")
            cmd.send_stdin(data, truthy(st.get("End")))
        if late:
            # The input was taken but not handed to the process within OperationTimeout (a host under
            # load): Windows answers w:TimedOut although the input is still processed (Ansible's note).
            raise timed_out()
        return soap_envelope(NS_RSP + "/SendResponse", req.message_id, "<rsp:SendResponse/>")

    def receive(self, req: Req) -> bytes:
        peer = self.peer
        sh = peer.get_shell(req.selectors.get("ShellId"))
        rcv = req.body.find("{%s}Receive" % NS_RSP)
        ds = rcv.find("{%s}DesiredStream" % NS_RSP) if rcv is not None else None
        cid = (ds.get("CommandId") or "").upper() if ds is not None else ""
        streams = ((ds.text or "") if ds is not None else "").split() or ["stdout", "stderr"]
        if not cid and not peer.args.tolerate_missing_command_id:
            # Windows answers a cmd-shell Receive without CommandId with InvalidParameter (87).
            raise invalid_parameter()
        cmd = sh.commands.get(cid)
        if cmd is None:
            if not cid and len(sh.commands) == 1:
                cmd = next(iter(sh.commands.values()))
            else:
                raise command_not_found()
        timeout = req.op_timeout if req.op_timeout is not None else 60.0
        timeout = max(0.0, min(timeout, float(peer.args.operation_timeout_cap)))
        deadline = time.monotonic() + timeout
        budget = max(4096, req.max_envelope - 1536) if req.max_envelope > 0 else 150000
        parts: list[str] = []
        with cmd.cond:
            while not cmd.chunks and not cmd.done and not cmd.removed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise timed_out()
                cmd.cond.wait(remaining)
            if cmd.removed and not cmd.chunks and not cmd.done:
                raise command_not_found()
            # Coalesce briefly so that a quick command's output and its exit arrive together.
            if not cmd.single_big:
                settle = time.monotonic() + 0.01
                while not cmd.done and sum(len(c[1]) for c in cmd.chunks) * 4 // 3 < budget:
                    left = settle - time.monotonic()
                    if left <= 0:
                        break
                    cmd.cond.wait(left)
            used = 0
            overhead = 90 + len(cmd.id)
            while cmd.chunks:
                stream, data = cmd.chunks[0]
                if stream not in streams:
                    cmd.chunks.popleft()
                    continue
                if cmd.single_big:
                    take = len(data)
                else:
                    room = (budget - used - overhead) * 3 // 4
                    room -= room % 3
                    if room <= 0:
                        break
                    take = min(len(data), room)
                piece = data[:take]
                if take < len(data):
                    cmd.chunks[0] = (stream, data[take:])
                else:
                    cmd.chunks.popleft()
                enc = base64.b64encode(piece).decode()
                parts.append('<rsp:Stream Name="%s" CommandId="%s">%s</rsp:Stream>' % (stream, cmd.id, enc))
                used += len(enc) + overhead
            finished = cmd.done and not cmd.chunks
            if finished:
                for stream in streams:
                    parts.append('<rsp:Stream Name="%s" CommandId="%s" End="true"></rsp:Stream>' % (stream, cmd.id))
                with peer.lock:
                    no_rc = peer.inj.no_exit_code > 0
                    if no_rc:
                        peer.inj.no_exit_code -= 1
                        peer.stats["injected"]["no_exit_code"] += 1
                if no_rc:
                    parts.append('<rsp:CommandState CommandId="%s" State="%s"/>' % (cmd.id, STATE_DONE))
                else:
                    parts.append('<rsp:CommandState CommandId="%s" State="%s"><rsp:ExitCode>%d</rsp:ExitCode>'
                                 "</rsp:CommandState>" % (cmd.id, STATE_DONE, cmd.exit_code or 0))
                cmd.done_delivered = True
            else:
                parts.append('<rsp:CommandState CommandId="%s" State="%s"/>' % (cmd.id, STATE_RUNNING))
            reboot_after, cmd.reboot_after = (cmd.reboot_after, None) if finished else (None, cmd.reboot_after)
        if reboot_after is not None:
            # Like `shutdown /r /t N`: the host goes down N seconds after the command returned.
            peer.schedule_reboot(max(reboot_after, 0.2), None)
        body = "<rsp:ReceiveResponse>%s</rsp:ReceiveResponse>" % "".join(parts)
        return soap_envelope(NS_RSP + "/ReceiveResponse", req.message_id, body)

    def signal(self, req: Req) -> bytes:
        peer = self.peer
        sh = peer.get_shell(req.selectors.get("ShellId"))
        sig = req.body.find("{%s}Signal" % NS_RSP)
        if sig is None:
            raise Fault("s:Sender", "w:SchemaValidationError",
                        "The SOAP XML in the message does not match the corresponding XML schema definition. "
                        "Change the XML and retry. ", CODE_INVALID_XML_VALUES, stat="MissingSignal")
        cid = (sig.get("CommandId") or "").upper()
        code_el = sig.find("{%s}Code" % NS_RSP)
        code = ((code_el.text or "") if code_el is not None else "").strip()
        kind = code.rsplit("/", 1)[-1].lower()
        peer.bump_in("signals", kind or "(none)")
        if cid:
            cmd = sh.commands.get(cid)
            if cmd is None:
                raise command_not_found()
            if cmd.reboot_after is not None and cmd.done:
                peer.schedule_reboot(max(cmd.reboot_after, 0.2), None)
                cmd.reboot_after = None
            if kind == "terminate":
                with peer.lock:
                    sh.commands.pop(cid, None)
                cmd.removed = True
                cmd.kill(signal.SIGKILL)
                if not cmd.done:
                    if cmd.proc is None:
                        cmd.finish(1 if not cmd.synthetic else 0)
                cmd.wake()
                if cmd.record_info and cmd.record_info.get("waiting_stdin"):
                    cmd.record_info["waiting_stdin"] = False
                    peer.complete_record(cmd)
            elif kind in ("ctrl_c", "ctrl_break", "crtl_c"):
                if not cmd.done:
                    cmd.kill(signal.SIGINT)
                    if cmd.proc is not None:
                        # Ctrl+C reaches the console's whole process group, also processes it starts
                        # right after: a SIGINT that lands while /bin/sh is still starting its child is
                        # only noted by sh, so interrupt again until the command is gone.
                        threading.Thread(target=self._interrupt, args=(cmd,), name="ctrl-c", daemon=True).start()
                    if cmd.proc is None:
                        if cmd.record_info and cmd.record_info.get("waiting_stdin"):
                            cmd.record_info["waiting_stdin"] = False
                            peer.complete_record(cmd)
                        cmd.finish(3221225786 if not cmd.synthetic else 0)
            else:
                raise Fault("s:Sender", "w:InvalidParameter",
                            "The WS-Management service cannot process the request because the XML content has "
                            "invalid values. ", CODE_INVALID_XML_VALUES, stat="BadSignalCode")
        return soap_envelope(NS_RSP + "/SignalResponse", req.message_id, "<rsp:SignalResponse/>")

    @staticmethod
    def _interrupt(cmd: Command) -> None:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            with cmd.cond:
                if cmd.done or cmd.removed:
                    return
                cmd.cond.wait(0.1)
                if cmd.done or cmd.removed:
                    return
            cmd.kill(signal.SIGINT)

    def delete(self, req: Req) -> bytes:
        peer = self.peer
        sid = (req.selectors.get("ShellId") or "").upper()
        with peer.lock:
            sh = peer.shells.pop(sid, None)
            if sh is not None:
                peer.stats["shells_deleted"] += 1
        if sh is None:
            raise shell_not_found(sid)
        for c in list(sh.commands.values()):
            c.removed = True
            c.kill()
            c.wake()
        sh.commands.clear()
        return soap_envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", req.message_id, "")


# --------------------------------------------------------------------------------------------
# HTTP connection
# --------------------------------------------------------------------------------------------

class HttpRequest:
    def __init__(self, method: str, target: str, version: str, headers: list[tuple[str, str]], body: bytes,
                 too_large: bool = False):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.hmap: dict[str, str] = {}
        for k, v in headers:
            lk = k.lower()
            self.hmap[lk] = (self.hmap[lk] + ", " + v) if lk in self.hmap else v
        self.body = body
        self.too_large = too_large

    def header(self, name: str, default: str = "") -> str:
        return self.hmap.get(name.lower(), default)


class CloseConnection(Exception):
    pass


class Connection:
    def __init__(self, peer: Peer, sock: socket.socket, addr):
        self.peer = peer
        self.raw = sock
        self.sock = sock
        self.addr = addr
        self.client_ip = addr[0]
        self.tls = False
        self.ctx = None  # completed NTLM/SPNEGO acceptor context
        self.pending = None  # context mid-handshake
        self.user = None  # DOMAIN\user or user
        self.user_short = None
        self.auth_via = None  # 'negotiate' | 'basic'
        self.rfile = None
        self.closed = False
        self.host_header = ""
        self.machine = peer.host

    def abort(self) -> None:
        self.closed = True
        try:
            self.raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.raw.close()
        except OSError:
            pass

    # -- framing -------------------------------------------------------------------------
    def read_request(self) -> HttpRequest | None:
        rf = self.rfile
        line = rf.readline(65537)
        while line in (b"\r\n", b"\n"):
            line = rf.readline(65537)
        if not line:
            return None
        try:
            method, target, version = line.decode("latin-1").strip().split(" ", 2)
        except ValueError:
            raise CloseConnection("bad request line %r" % line[:80])
        headers = []
        total = 0
        while True:
            h = rf.readline(65537)
            if not h:
                raise CloseConnection("eof in headers")
            total += len(h)
            if total > 65536 or len(headers) > 200:
                raise CloseConnection("headers too large")
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        req = HttpRequest(method, target, version, headers, b"")
        if req.header("expect").lower() == "100-continue":
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        # Bodies are read (and later unsealed) whole up to 64 MiB even when they exceed MaxEnvelopeSize, so the
        # NTLM sequence numbers stay in step after a 413; beyond that the connection is answered 413 and closed.
        hard_cap = 64 * 1024 * 1024
        if "chunked" in req.header("transfer-encoding").lower():
            body = bytearray()
            while True:
                sz_line = rf.readline(1024)
                if not sz_line:
                    raise CloseConnection("eof in chunked body")
                try:
                    size = int(sz_line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise CloseConnection("bad chunk size")
                if size == 0:
                    while True:
                        t = rf.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                if len(body) + size > hard_cap:
                    raise CloseConnection("body too large")
                data = rf.read(size)
                rf.readline(3)
                body.extend(data)
            req.body = bytes(body)
            return req
        cl = req.header("content-length")
        if cl:
            try:
                n = int(cl)
            except ValueError:
                raise CloseConnection("bad content-length")
            if n > hard_cap:
                req.too_large = True
                req.body = b""
                req.discard_unread = True  # type: ignore[attr-defined]
                return req
            body = rf.read(n) if n else b""
            if len(body) != n:
                raise CloseConnection("eof in body")
            req.body = body
        return req

    def send(self, status: int, headers: list[tuple[str, str]], body: bytes = b"", close: bool = False,
             content_length: int | None = None) -> None:
        delay = self.peer.inj.delay_ms
        if delay > 0:
            time.sleep(delay / 1000.0)
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, ""))]
        names = {k.lower() for k, _ in headers}
        lines.extend("%s: %s" % (k, v) for k, v in headers)
        if "server" not in names:
            lines.append("Server: Microsoft-HTTPAPI/2.0")
        lines.append("Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))
        if close:
            lines.append("Connection: close")
        lines.append("Content-Length: %d" % (len(body) if content_length is None else content_length))
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        self.sock.sendall(data)
        if close:
            raise CloseConnection("closed after %d" % status)

    def unauthorized(self, why: str) -> None:
        self.peer.bump("unauthorized_401")
        vlog("401 to %s:%s: %s" % (self.addr[0], self.addr[1], why))
        self.ctx = None
        self.pending = None
        hdrs = [("WWW-Authenticate", "Negotiate")]
        if self.peer.args.basic:
            hdrs.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        self.send(401, hdrs, b"", close=True)

    # -- main loop -----------------------------------------------------------------------
    def run(self) -> None:
        peer = self.peer
        with peer.lock:
            peer.conns.add(self)
            peer.stats["connections_open"] += 1
        try:
            if peer.ssl_ctx is not None:
                try:
                    self.raw.settimeout(10)
                    self.sock = peer.ssl_ctx.wrap_socket(self.raw, server_side=True)
                    self.sock.settimeout(None)
                    self.tls = True
                except (ssl.SSLError, OSError) as exc:
                    peer.bump("tls_handshake_failures")
                    vlog("TLS handshake failed from %s: %s" % (self.addr, exc))
                    return
            self.rfile = self.sock.makefile("rb", buffering=65536)
            idle = float(peer.args.idle_timeout)
            while not self.closed and not peer.stop_event.is_set():
                self.sock.settimeout(idle if idle > 0 else None)
                try:
                    req = self.read_request()
                except socket.timeout:
                    vlog("idle connection %s:%s closed after %.0fs" % (self.addr[0], self.addr[1], idle))
                    return
                self.sock.settimeout(None)
                if req is None:
                    return
                peer.bump("http_requests")
                host = req.header("host")
                if host:
                    self.host_header = host
                    self.machine = host.rsplit(":", 1)[0].strip("[]") if not host.startswith("[") or "]:" in host else host.strip("[]")
                self.handle(req)
                conn_hdr = req.header("connection").lower()
                if conn_hdr == "close" or (req.version == "HTTP/1.0" and conn_hdr != "keep-alive"):
                    return
        except CloseConnection as exc:
            vlog("closing %s:%s: %s" % (self.addr[0], self.addr[1], exc))
        except (ConnectionError, OSError, ssl.SSLError, ValueError) as exc:
            if not self.closed:
                vlog("connection %s:%s error: %s" % (self.addr[0], self.addr[1], exc))
        except Exception:
            log("connection handler crashed (peer keeps running): %s" % traceback.format_exc())
        finally:
            with peer.lock:
                peer.conns.discard(self)
                peer.stats["connections_open"] -= 1
            try:
                if self.rfile is not None:
                    self.rfile.close()
            except OSError:
                pass
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
            try:
                self.raw.close()
            except OSError:
                pass

    def handle(self, req: HttpRequest) -> None:
        peer = self.peer
        if req.body:
            with peer.lock:
                page = peer.inj.http503 > 0
                if page:
                    peer.inj.http503 -= 1
                    peer.stats["injected"]["http503"] += 1
                    status = int(peer.inj.http_status or 503)
            if page:
                # HTTP.sys answers by itself (WinRM never sees the request, so NTLM state is untouched).
                self.send(status, [("Content-Type", "text/html; charset=us-ascii")], httpsys_page(status),
                          close=True)
        path = urlsplit(req.target).path.rstrip("/").lower()
        if getattr(req, "discard_unread", False):
            peer.bump("envelope_too_large")
            self.send(413, [], b"", close=True)
        if path not in ("/wsman", "/wsman-anon/identify"):
            self.send(404, [("Content-Type", "text/html")], b"", close=False)
            return
        if req.method.upper() != "POST":
            self.send(405, [("Allow", "POST")], b"")
            return
        auth = req.header("authorization").strip()
        if not auth and req.header("wsmanidentify").lower() == "unauthenticated":
            self.anonymous_identify(req)
            return
        if auth:
            scheme, _, param = auth.partition(" ")
            scheme = scheme.lower()
            if scheme == "negotiate":
                self.handle_negotiate(req, param.strip())
                return
            if scheme == "basic":
                self.handle_basic(req, param.strip())
                return
            self.unauthorized("unsupported scheme %s" % scheme)
            return
        if self.ctx is not None or self.auth_via == "negotiate":
            self.handle_soap(req, [])
            return
        self.unauthorized("no Authorization header and no authenticated context on this connection")

    def anonymous_identify(self, req: HttpRequest) -> None:
        soap = Soap(self.peer)
        mid = ""
        try:
            root = ET.fromstring(req.body)
            if root.find("{%s}Body/{%s}Identify" % (NS_S, NS_WSMID)) is None:
                raise ValueError("not an Identify")
        except Exception:
            self.unauthorized("anonymous request that is not Identify")
            return
        self.peer.bump_in("requests_by_action", "Identify")
        self.send(200, [("Content-Type", SOAP_CONTENT_TYPE)], soap.identify(mid, False))

    # -- authentication ------------------------------------------------------------------
    def handle_negotiate(self, req: HttpRequest, param: str) -> None:
        peer = self.peer
        try:
            token = base64.b64decode(param, validate=True) if param else b""
        except Exception:
            self.unauthorized("bad base64 in Negotiate token")
            return
        if not token:
            self.unauthorized("empty Negotiate token")
            return
        initial = token.startswith(b"NTLMSSP\x00\x01\x00\x00\x00") or token[:1] == b"\x60"
        if initial:
            self.ctx = None
            self.auth_via = None
            try:
                self.pending = spnego.server(hostname=socket.gethostname(), service="http", protocol="negotiate")
                out = self.pending.step(token)
            except Exception as exc:
                peer.bump("auth_failures")
                self.unauthorized("cannot accept initial token: %s" % exc)
                return
            if not out:
                peer.bump("auth_failures")
                self.unauthorized("no challenge produced (Kerberos-only SPNEGO?)")
                return
            peer.bump("auth_challenges")
            self.send(401, [("WWW-Authenticate", "Negotiate " + base64.b64encode(out).decode())], b"")
            return
        if self.pending is None:
            self.unauthorized("AUTHENTICATE without a NEGOTIATE on this connection")
            return
        ctx = self.pending
        try:
            ntlm_tok = token
            if token[:1] == b"\xa1":
                resp = unpack_token(token)
                ntlm_tok = getattr(resp, "response_token", None) or b""
            auth = Authenticate.unpack(ntlm_tok)
            domain = auth.domain_name or ""
            user = auth.user_name or ""
            cbt = None
            if self.tls and peer.cbt_hash is not None and auth.nt_challenge_response and len(auth.nt_challenge_response) > 24:
                av = NTClientChallengeV2.unpack(auth.nt_challenge_response[16:]).av_pairs
                sent = av.get(AvId.channel_bindings)
                if sent and sent != b"\x00" * 16:
                    cbt = GssChannelBindings(application_data=b"tls-server-end-point:" + peer.cbt_hash)
                elif peer.args.cbt == "strict":
                    raise ValueError("client sent no channel binding and --cbt strict is set")
            found = peer.find_user(domain, user)
            if found is None:
                raise ValueError("unknown user %r\\%r" % (domain, user))
            with peer.cred_lock:
                peer.ensure_cred_line(domain, user, found[2])
                out = ctx.step(token, channel_bindings=cbt) if cbt is not None else ctx.step(token)
        except Exception as exc:
            peer.bump("auth_failures")
            self.pending = None
            self.unauthorized("NTLM authentication failed: %s" % exc)
            return
        if not ctx.complete:
            peer.bump("auth_challenges")
            self.send(401, [("WWW-Authenticate", "Negotiate " + base64.b64encode(out or b"").decode())], b"")
            return
        self.pending = None
        self.ctx = ctx
        self.auth_via = "negotiate"
        self.user = ("%s\\%s" % (domain, user)) if domain else user
        self.user_short = found[1]
        peer.bump("handshakes")
        vlog("NTLM handshake done for %s on %s:%s" % (self.user, self.addr[0], self.addr[1]))
        extra = [("WWW-Authenticate", "Negotiate " + base64.b64encode(out).decode())] if out else []
        if not req.body:
            self.send(200, extra, b"")
            return
        self.handle_soap(req, extra)

    def handle_basic(self, req: HttpRequest, param: str) -> None:
        peer = self.peer
        if not peer.args.basic:
            self.unauthorized("Basic is disabled")
            return
        if not self.tls and not peer.args.allow_unencrypted:
            peer.bump("basic_failures")
            self.unauthorized("Basic over HTTP needs AllowUnencrypted")
            return
        try:
            who, _, password = base64.b64decode(param).decode("utf-8").partition(":")
        except Exception:
            self.unauthorized("bad Basic token")
            return
        domain = None
        if "\\" in who:
            domain, who = who.split("\\", 1)
        found = peer.find_user(domain, who)
        if found is None or found[2] != password:
            peer.bump("basic_failures")
            self.unauthorized("Basic credentials rejected")
            return
        peer.bump("basic_auths")
        self.ctx = None
        self.pending = None
        self.auth_via = "basic"
        self.user = who if not domain else "%s\\%s" % (domain, who)
        self.user_short = found[1]
        self.handle_soap(req, [])
        self.auth_via = None  # Basic authenticates one request, not the connection

    # -- message encryption -----------------------------------------------------------------
    def unwrap(self, body: bytes, content_type: str) -> bytes:
        m = re.search(r'boundary="?([^";]+)"?', content_type, re.I)
        boundary = (m.group(1) if m else "Encrypted Boundary").encode()
        proto = re.search(r'protocol="?([^";]+)"?', content_type, re.I)
        if not proto or proto.group(1).lower() != ENC_PROTOCOL.lower():
            raise ValueError("unsupported encryption protocol %r" % (proto.group(1) if proto else None))
        parts = re.split(rb"--" + re.escape(boundary) + rb"\r\n", body)
        parts = [p for p in parts if p]
        if not parts or len(parts) % 2:
            raise ValueError("malformed multipart/encrypted body (%d parts)" % len(parts))
        out = bytearray()
        for i in range(0, len(parts), 2):
            hdr, payload = parts[i], parts[i + 1]
            lm = re.search(rb"Length=(\d+)", hdr)
            if b"OriginalContent" not in hdr or not lm:
                raise ValueError("missing OriginalContent/Length")
            expected = int(lm.group(1))
            end = b"--" + boundary + b"--\r\n"
            if payload.endswith(end):
                payload = payload[: -len(end)]
            prefix = b"\tContent-Type: application/octet-stream\r\n"
            if not payload.startswith(prefix):
                raise ValueError("missing octet-stream part header")
            payload = payload[len(prefix):]
            if len(payload) < 4:
                raise ValueError("short payload")
            siglen = struct.unpack("<I", payload[:4])[0]
            if siglen != 16 or len(payload) < 4 + siglen:
                raise ValueError("bad signature length %d" % siglen)
            sig = payload[4:4 + siglen]
            data = payload[4 + siglen:]
            msg = self.ctx.unwrap_winrm(sig, data)
            if len(msg) != expected:
                raise ValueError("decrypted length %d != OriginalContent Length %d" % (len(msg), expected))
            out.extend(msg)
        return bytes(out)

    def wrap(self, xml: bytes, badsig: bool = False) -> bytes:
        hdr, data, _pad = self.ctx.wrap_winrm(xml)
        if badsig:
            h = bytearray(hdr)
            h[5] ^= 0xFF
            h[9] ^= 0x55
            hdr = bytes(h)
        return (ENC_BOUNDARY + b"\r\n\tContent-Type: " + ENC_PROTOCOL.encode() + b"\r\n"
                b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(xml)).encode() +
                b"\r\n" + ENC_BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n" +
                struct.pack("<I", len(hdr)) + hdr + data + ENC_BOUNDARY + b"--\r\n")

    # -- SOAP over HTTP ------------------------------------------------------------------
    def handle_soap(self, req: HttpRequest, extra: list[tuple[str, str]]) -> None:
        peer = self.peer
        ctype = req.header("content-type")
        encrypted = ctype.lower().startswith(("multipart/encrypted", "multipart/x-multi-encrypted"))
        if req.too_large:
            peer.bump("envelope_too_large")
            self.send(413, extra, b"")
            return
        if encrypted:
            if self.ctx is None:
                peer.bump("decrypt_failures")
                self.send(400, extra, b"", close=True)
                return
            try:
                xml = self.unwrap(req.body, ctype)
            except Exception as exc:
                peer.bump("decrypt_failures")
                log("cannot unwrap encrypted request from %s:%s: %s" % (self.addr[0], self.addr[1], exc))
                self.ctx = None
                self.send(400, extra, b"", close=True)
                return
        else:
            if not req.body:
                self.send(200, extra, b"")
                return
            if self.auth_via == "negotiate" and not self.tls and not peer.args.allow_unencrypted:
                peer.bump("plaintext_refused")
                vlog("plaintext SOAP on an NTLM HTTP connection refused (AllowUnencrypted=false)")
                self.send(500, extra, b"")
                return
            xml = req.body
        if len(xml) > peer.max_env_bytes:
            peer.bump("envelope_too_large")
            self.send(413, extra, b"")
            return
        peer.bump("soap_requests")
        inj = peer.inj
        with peer.lock:
            drop = inj.drop_next > 0
            drop_after = inj.drop_after_processing
            if drop:
                inj.drop_next -= 1
                peer.stats["injected"]["drop"] += 1
            h500 = (not drop) and inj.http500 > 0
            if h500 and inj.http500_action:
                try:
                    act = Req(ET.fromstring(xml)).action
                except Exception:
                    act = ""
                h500 = act.lower().endswith("/" + inj.http500_action.lower())
            if h500:
                inj.http500 -= 1
                peer.stats["injected"]["http500"] += 1
        if drop and not drop_after:
            vlog("injected: dropping connection instead of answering")
            self.abort()
            raise CloseConnection("injected drop")
        if h500:
            f = Fault("s:Receiver", "w:InternalError",
                      "The WS-Management service cannot process the request. The service encountered an internal "
                      "error. ", CODE_RPC_FAILED, "The remote procedure call failed. ", stat="InjectedInternalError")
            try:
                mid = Req(ET.fromstring(xml)).message_id
            except Exception:
                mid = ""
            out = fault_envelope(f, mid, self.machine)
            status, name = 500, "injected"
        else:
            status, out, name = Soap(peer).dispatch(xml, self)
        if drop and drop_after:
            vlog("injected: dropping connection after processing %s" % name)
            self.abort()
            raise CloseConnection("injected drop after processing")
        with peer.lock:
            garbage = inj.garbage > 0
            if garbage:
                inj.garbage -= 1
                peer.stats["injected"]["garbage"] += 1
            trunc = (not garbage) and inj.truncate > 0
            if trunc:
                inj.truncate -= 1
                peer.stats["injected"]["truncate"] += 1
            badsig = encrypted and inj.badsig > 0
            if badsig:
                inj.badsig -= 1
                peer.stats["injected"]["badsig"] += 1
        if garbage:
            out = (b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><<garbage ' +
                   os.urandom(8).hex().encode() + b" &&& </s:Envelope")
        if encrypted:
            body = self.wrap(out, badsig=badsig)
            headers = extra + [("Content-Type", ENC_CONTENT_TYPE)]
        else:
            body = out
            headers = extra + [("Content-Type", SOAP_CONTENT_TYPE)]
        if trunc:
            body = body[: max(1, len(body) // 2)]
        self.send(status, headers, body)


# --------------------------------------------------------------------------------------------
# TLS material
# --------------------------------------------------------------------------------------------

def ensure_certs(cert_dir: str) -> tuple[str, str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    os.makedirs(cert_dir, exist_ok=True)
    ca_pem = os.path.join(cert_dir, "ca.pem")
    srv_pem = os.path.join(cert_dir, "server.pem")
    srv_key = os.path.join(cert_dir, "server.key")
    if all(os.path.exists(p) for p in (ca_pem, srv_pem, srv_key)):
        return ca_pem, srv_pem, srv_key
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mixop WinRM peer test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([
        x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1"))])
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(san, critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    with open(srv_key, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    with open(srv_pem, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(ca_pem, "wb") as fh:
        fh.write(ca.public_bytes(serialization.Encoding.PEM))
    return ca_pem, srv_pem, srv_key


def cert_end_point_hash(pem_path: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    with open(pem_path, "rb") as fh:
        cert = x509.load_pem_x509_certificate(fh.read())
    algo = cert.signature_hash_algorithm
    # RFC 5929: MD5 and SHA-1 are replaced by SHA-256.
    if algo is None or algo.name in ("md5", "sha1"):
        algo = hashes.SHA256()
    h = hashes.Hash(algo)
    from cryptography.hazmat.primitives import serialization
    h.update(cert.public_bytes(serialization.Encoding.DER))
    return h.finalize()


# --------------------------------------------------------------------------------------------
# Control channel
# --------------------------------------------------------------------------------------------

def make_control_handler(peer: Peer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # noqa: N802 - quiet
            vlog("control: " + fmt % a)

        def _reply(self, code: int, obj) -> None:
            data = json.dumps(obj, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            try:
                p = urlsplit(self.path).path.strip("/")
                if p in ("", "stats"):
                    self._reply(200, peer.snapshot())
                elif p == "records":
                    with peer.record_lock:
                        self._reply(200, list(peer.records))
                elif p == "rules":
                    self._reply(200, peer.rules)
                elif p.startswith("sim/") and peer.sim is not None:  # sim mode hook: GET /sim/state, /sim/scripts
                    res = peer.sim.control_get(p[4:])
                    self._reply(200 if res is not None else 404, res if res is not None else {"error": "unknown path %s" % p})
                else:
                    self._reply(404, {"error": "unknown path %s" % p})
            except Exception as exc:
                self._reply(500, {"error": str(exc)})

        def do_POST(self):  # noqa: N802
            try:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                body = json.loads(raw) if raw.strip() else {}
                op = urlsplit(self.path).path.strip("/")
                if not op:
                    if not isinstance(body, dict) or "op" not in body:
                        raise ValueError("POST / needs {\"op\": ...}")
                    op = body.pop("op")
                result = apply_control(peer, op, body)
                self._reply(200, {"ok": True, "op": op, "result": result, "stats": peer.snapshot()})
            except Exception as exc:
                self._reply(400, {"ok": False, "error": str(exc)})

    return Handler


def _num(body, *keys, default=None):
    if isinstance(body, (int, float)) and not isinstance(body, bool):
        return body
    if isinstance(body, dict):
        for k in keys:
            if k in body and body[k] is not None:
                return body[k]
    return default


def apply_control(peer: Peer, op: str, body) -> object:
    op = op.lower()
    if op.startswith("sim/") and peer.sim is not None:  # sim mode hook: POST /sim/state, /sim/patch
        return peer.sim.control_post(op[4:], body)
    inj = peer.inj
    with peer.lock:
        if op == "drop_next":
            inj.drop_next = int(_num(body, "n", "count", default=1))
            inj.drop_after_processing = bool(isinstance(body, dict) and body.get("after_processing"))
            return inj.as_dict()
        if op == "delay_ms":
            inj.delay_ms = int(_num(body, "ms", "delay_ms", "n", default=0))
            return inj.as_dict()
        if op in ("http500", "garbage", "truncate", "badsig", "endless", "send_timeout", "send_busy",
                  "no_exit_code"):
            setattr(inj, op, int(_num(body, "n", "count", default=1)))
            if op == "http500":
                inj.http500_action = str(body.get("action") or "") if isinstance(body, dict) else ""
            return inj.as_dict()
        if op == "http503":
            inj.http503 = int(_num(body, "n", "count", default=1))
            inj.http_status = int(body.get("status", 503)) if isinstance(body, dict) else 503
            return inj.as_dict()
        if op == "big":
            inj.big_mb = float(_num(body, "mb", "n_mb", "n", default=1))
            inj.big_single = bool(isinstance(body, dict) and body.get("single"))
            return inj.as_dict()
        if op == "reset":
            peer.inj = Injections()
            return peer.inj.as_dict()
        if op == "reset_stats":
            still_open = peer.stats["connections_open"]
            peer.stats = peer._fresh_stats()
            peer.stats["connections_open"] = still_open
            return None
        if op == "rules":
            rules = body.get("rules") if isinstance(body, dict) else body
            if not isinstance(rules, list):
                raise ValueError("rules must be a list")
            peer.rules = rules
            peer.rule_hits.clear()
            return len(rules)
        if op == "clear_records":
            with peer.record_lock:
                peer.records.clear()
            return None
    if op == "reboot":
        down = _num(body, "down_seconds", "down", default=None)
        delay = float(_num(body, "delay_seconds", "delay", default=0) or 0)
        if delay > 0:
            peer.schedule_reboot(delay, None if down is None else float(down))
        else:
            peer.reboot(None if down is None else float(down))
        return {"boot_time_filetime": peer.boot_filetime}
    if op == "up":
        return {"was_down": peer.come_up_now()}
    if op == "stats":
        return peer.snapshot()
    raise ValueError("unknown control op %r" % op)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def load_rules(path: str) -> list[dict]:
    with open(path, "r", encoding="utf-8") as fh:
        text = fh.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        import yaml  # PyYAML is in the test venv
        data = yaml.safe_load(text)
    if isinstance(data, dict):
        data = data.get("rules", [])
    if not isinstance(data, list):
        raise SystemExit("winrm-peer: --replies must hold a list of rules")
    return data


def write_atomic(path: str, text: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".port-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Protocol-faithful WinRM (WinRS) peer for tests.")
    p.add_argument("--listen", default="127.0.0.1:5985", help="loopback HOST:PORT (port 0 = any)")
    p.add_argument("--port-file", help="write the bound port here once listening")
    p.add_argument("--users", action="append", default=[], help="[DOMAIN\\]user:password (repeatable)")
    p.add_argument("--users-file", help="file with one [DOMAIN\\]user:password per line")
    p.add_argument("--https", action="store_true", help="TLS listener (NTLM without message encryption)")
    p.add_argument("--cert-dir", help="where ca.pem/server.pem/server.key live (generated if absent)")
    p.add_argument("--cbt", choices=["relaxed", "strict"], default="relaxed",
                   help="channel binding hardening over HTTPS (Windows default: relaxed)")
    p.add_argument("--cbt-cert", metavar="PEM",
                   help="expect the channel binding of this certificate instead of the listener's own "
                        "(models a TLS-terminating man in the middle)")
    p.add_argument("--allow-unencrypted", action="store_true", help="AllowUnencrypted=true")
    p.add_argument("--basic", action="store_true", help="enable Basic auth")
    p.add_argument("--mode", choices=["sh", "record", "sim"], default="sh",
                   help="sim: record mode plus a simulated Windows Server 2022 host (sim/, see README)")
    # --- sim mode hook: options of the simulated host ---
    p.add_argument("--state-dir", help="sim mode: the host's state directory (host.json, scripts.jsonl, fs/)")
    p.add_argument("--sim-init", help="sim mode: JSON merged into a new host.json (ignored when one exists)")
    p.add_argument("--pwsh-start-ms", type=int, default=0,
                   help="sim mode: milliseconds a powershell.exe takes to start (default 0)")
    # --- end sim mode hook ---
    p.add_argument("--record-log", help="record mode: append one JSON line per Command here")
    p.add_argument("--replies", help="record mode: JSON/YAML list of {match, stdout, stderr, rc} rules")
    p.add_argument("--max-envelope-kb", type=int, default=500, help="MaxEnvelopeSizekb (default 500)")
    p.add_argument("--reject-large-max-envelope", action="store_true",
                   help="fault (2150858823) when a request's w:MaxEnvelopeSize exceeds --max-envelope-kb "
                        "(unverified against Windows, so off by default)")
    p.add_argument("--no-cmdline-limit", action="store_true",
                   help="do not emulate cmd.exe's 8191-character command line limit")
    p.add_argument("--max-shells", type=int, default=30, help="MaxShellsPerUser (default 30)")
    p.add_argument("--max-operations", type=int, default=1500,
                   help="MaxConcurrentOperationsPerUser (default 1500): Commands per user on live shells; only "
                        "Delete of the shell gives them back")
    p.add_argument("--operations-fault", choices=["wsman", "wmi"], default="wsman",
                   help="shape of the quota fault 2150859174: WSManFault Code, or w:InternalError with "
                        "p:MSFT_WmiError/error_Code")
    p.add_argument("--tolerate-missing-command-id", action="store_true",
                   help="answer a Receive without CommandId for the shell's only command (Windows faults: 87)")
    p.add_argument("--ignore-skip-cmd-shell", action="store_true",
                   help="record mode: run command lines through the cmd.exe model even with "
                        "WINRS_SKIP_CMD_SHELL=TRUE (pypsrp documents the option as working only before 2012 R2)")
    p.add_argument("--operation-timeout-cap", type=float, default=60.0,
                   help="upper bound in seconds for a Receive's wait (MaxTimeoutms, default 60)")
    p.add_argument("--reboot-down", type=float, default=3.0, help="seconds the listener stays down on reboot")
    p.add_argument("--reboot-delay-cap", type=float, default=1.0,
                   help="cap in seconds on the 'shutdown /t N' delay before a simulated reboot")
    p.add_argument("--idle-timeout", type=float, default=120.0,
                   help="close keep-alive connections idle this long (HTTP.sys default 120 s; 0 = never)")
    p.add_argument("--control", action="store_true", help="open the JSON control endpoint")
    p.add_argument("--control-listen", default="127.0.0.1:0")
    p.add_argument("--control-port-file")
    # injections at start-up
    p.add_argument("--drop-next", type=int, default=0)
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--http500", type=int, default=0)
    p.add_argument("--garbage", type=int, default=0)
    p.add_argument("--truncate", type=int, default=0)
    p.add_argument("--badsig", type=int, default=0)
    p.add_argument("--endless", type=int, default=0)
    p.add_argument("--big-mb", type=float, default=0.0)
    p.add_argument("--send-timeout", type=int, default=0)
    p.add_argument("--send-busy", type=int, default=0)
    p.add_argument("--no-exit-code", type=int, default=0)
    p.add_argument("--http503", type=int, default=0)
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def split_hostport(s: str) -> tuple[str, int]:
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port or 0)


def main(argv=None) -> int:
    global VERBOSE
    args = parse_args(argv)
    VERBOSE = args.verbose
    peer = Peer(args)
    host, port = split_hostport(args.listen)
    loopback_only(host)
    peer.host = host
    for u in args.users:
        peer.add_user(u)
    if args.users_file:
        with open(args.users_file, encoding="utf-8") as fh:
            for line in fh:
                peer.add_user(line)
    if not peer.users:
        peer.add_user("vagrant:vagrant")
        log("no --users given: accepting vagrant:vagrant")
    if args.replies:
        peer.rules = load_rules(args.replies)
    # --- sim mode hook: load the simulated host ---
    if args.mode == "sim":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from sim import SimHost
        peer.sim = SimHost(peer, args)
    # --- end sim mode hook ---
    inj = peer.inj
    inj.drop_next, inj.delay_ms, inj.http500 = args.drop_next, args.delay_ms, args.http500
    inj.garbage, inj.truncate, inj.badsig, inj.endless, inj.big_mb = (
        args.garbage, args.truncate, args.badsig, args.endless, args.big_mb)
    inj.send_timeout, inj.send_busy, inj.no_exit_code, inj.http503 = (
        args.send_timeout, args.send_busy, args.no_exit_code, args.http503)

    cred_fd, cred_path = tempfile.mkstemp(prefix="winrm-peer-ntlm-", suffix=".txt")
    os.close(cred_fd)
    os.environ["NTLM_USER_FILE"] = cred_path

    if args.https:
        cert_dir = args.cert_dir or tempfile.mkdtemp(prefix="winrm-peer-certs-")
        ca, crt, key = ensure_certs(cert_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        peer.ssl_ctx = ctx
        # --cbt-cert: the binding the host expects is another certificate's, as behind a
        # TLS-terminating man in the middle that presents its own certificate to the client.
        peer.cbt_hash = cert_end_point_hash(args.cbt_cert or crt)
        log("HTTPS with CA %s" % ca)

    control_srv = None
    if args.control:
        chost, cport = split_hostport(args.control_listen)
        loopback_only(chost)
        control_srv = ThreadingHTTPServer((chost, cport), make_control_handler(peer))
        control_srv.daemon_threads = True
        threading.Thread(target=control_srv.serve_forever, name="control", daemon=True).start()
        if args.control_port_file:
            write_atomic(args.control_port_file, "%d\n" % control_srv.server_address[1])
        log("control channel on %s:%d" % (chost, control_srv.server_address[1]))

    peer.bind_listener(port)
    if args.port_file:
        write_atomic(args.port_file, "%d\n" % peer.port)
    log("listening on %s:%d (%s, mode %s%s%s)" % (
        host, peer.port, "https" if args.https else "http", args.mode,
        ", AllowUnencrypted" if args.allow_unencrypted else "", ", Basic" if args.basic else ""))

    def on_signal(signum, frame):
        peer.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not peer.stop_event.wait(0.5):
            pass
    finally:
        log("shutting down")
        peer.kill_all()
        with peer.lock:
            s = peer.listen_sock
            peer.listen_sock = None
            conns = list(peer.conns)
        if s is not None:
            try:
                s.close()
            except OSError:
                pass
        for c in conns:
            c.abort()
        if control_srv is not None:
            control_srv.shutdown()
        try:
            os.unlink(cred_path)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
