"""Stand-in programs on the simulated Windows host: the local lab's k3s.exe, containerd.exe, rke2.exe,
RKE2's install.ps1 and rke2-uninstall.ps1.

These are STAND-INS, not the real programs: none of them can be had (or run) here. A file on the
simulated disk whose content starts with the line ``#mixop-standin <kind>`` is a program the
simulator knows how to "run"; the rest of the file is a human description, plus optional
``version: X`` lines (scripts/lab.sh stamps the versions it assembled). They run where Windows would
run a program:

* a **service** starts (Start-Service, boot) whose binary path names a stand-in file;
* a **scheduled task** runs (Start-ScheduledTask, an AtStartup trigger at boot) whose action names one;
* a **command** (``win_command``: a WinRS command line, through cmd.exe unless WINRS_SKIP_CMD_SHELL) whose
  program is a stand-in file, or ``powershell.exe ... -File <stand-in .ps1> [args]``.

Kinds (tests/support/winrm_peer/README.md, "Stand-in programs"):

``k3s-agent``       k3s.exe. ``agent [--config F] [--server URL] [--token T] ...`` reads the k3s agent
                    configuration and joins this host to the cluster as a Windows node: it registers a
                    Node object with the Kubernetes API double at the server URL (the token is the bearer
                    token), checks the server's flannel backend (VXLAN with VNI 4096 on UDP 4789, k3s-io/k3s#9295),
                    creates the HNS network flannel.4096 and marks the node Ready. Runs until its task is
                    stopped (or its command ends); as a *service* it fails like the real one (k3s-io/k3s#9298).
``containerd``      containerd.exe: ``--run-service [--config F]`` as a service (fails without its config
                    file), ``--register-service``, ``--version``, ``config default``.
``ctr``             ctr.exe: ``--version`` only.
``rke2``            rke2.exe: ``agent service --add`` registers the rke2 service; the service (``agent
                    service``) joins like k3s.exe with ``C:\\etc\\rancher\\rke2\\config.yaml``; ``--version``.
``rke2-install``    RKE2's install.ps1 (``-ArtifactPath DIR``, ``-Version V``): refuses a host without the
                    Containers feature, installs rke2.exe and rke2-uninstall.ps1 in C:\\usr\\local\\bin.
``rke2-uninstall``  rke2-uninstall.ps1: removes the service, the binary and RKE2's folders.

What the programs log goes to the Application event log under their own source (``k3s``, ``rke2``,
``containerd``), where a Windows admin (and win_eventlog_info) would look.

Threads: every running stand-in is a `Proc` with its own thread. The cmdlet layer calls the hooks
below with the host lock held; they never block. A Proc takes the host lock only to read or change
the host's state, never while it talks to the API double.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import ssl
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid

from .cmdlets import SCHED_S_TASK_RUNNING, Cmdlets
from .errors import CmdletError
from .state import FsError

MARK = b"#mixop-standin"
PS_EXES = ("powershell.exe", "powershell", "pwsh.exe", "pwsh")
PS_KINDS = ("rke2-install", "rke2-uninstall")
CONTAINERD_PIPE = "containerd-containerd"
K3S_CONFIG = r"C:\etc\rancher\k3s\config.yaml"
RKE2_CONFIG = r"C:\etc\rancher\rke2\config.yaml"
RKE2_BIN = r"C:\usr\local\bin"
EMBEDDED_RUNTIME = "containerd://1.7.26-k3s1"  # what k3s/RKE2 v1.32 nodes report (as the API double does)
WINDOWS_VNI, WINDOWS_PORT = 4096, 4789
RE_TEST_PATH_PROBE = re.compile(r"^if \(Test-Path -LiteralPath '((?:[^']|'')*)'\) \{ exit 0 \} else \{ exit 1 \}\s*$")


def _log(msg: str) -> None:
    import sys
    try:
        sys.stderr.write("[winrm-peer %s] sim standin: %s\n" % (datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3], msg))
        sys.stderr.flush()
    except Exception:
        pass


# ------------------------------------------------------------------------------------------------
# Stand-in files
# ------------------------------------------------------------------------------------------------

def standin_text(fs, path: str | None) -> str | None:
    """The stand-in file's text, or None when `path` is not a stand-in (or not a file)."""
    if not path:
        return None
    try:
        if not fs.is_file(path):
            return None
        data = fs.read(path)
    except FsError:
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.startswith(MARK):
        return None
    return data[:65536].decode("utf-8", "replace")


def standin_kind(fs, path: str | None) -> str | None:
    text = standin_text(fs, path)
    if text is None:
        return None
    first = text.split("\n", 1)[0].split()
    return first[1] if len(first) >= 2 else None


def standin_meta(fs, path: str | None) -> dict:
    """``key: value`` lines of a stand-in file (e.g. ``version: v1.32.5+k3s1``)."""
    out = {}
    for line in (standin_text(fs, path) or "").splitlines()[1:]:
        m = re.match(r"^#?\s*(version)\s*:\s*(\S+)\s*$", line, re.I)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def split_cmdline(s: str) -> list[str]:
    """CommandLineToArgvW: whitespace separates, double quotes group, backslashes escape only quotes."""
    out: list[str] = []
    cur: list[str] = []
    in_q = have = False
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


def parse_flags(argv: list[str]) -> tuple[dict, list[str]]:
    """Go/urfave-cli style flags: ``--name value``, ``--name=value``, ``-n value``; a flag that is given
    several times (``--node-label``) collects a list. Returns (flags, positional)."""
    flags: dict = {}
    pos: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-") and len(a) > 1:
            name = a.lstrip("-")
            if "=" in name:
                name, value = name.split("=", 1)
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value = argv[i + 1]
                i += 1
            else:
                value = True
            if name in flags:
                flags[name] = (flags[name] if isinstance(flags[name], list) else [flags[name]]) + [value]
            else:
                flags[name] = value
        else:
            pos.append(a)
        i += 1
    return flags, pos


def parse_ps_params(argv: list[str]) -> dict:
    """A script's PowerShell parameters: ``-Name value``, ``-Name:value``, a bare ``-Switch``."""
    out: dict = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-") and len(a) > 1:
            name = a[1:]
            if ":" in name:
                name, value = name.split(":", 1)
            elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                value = argv[i + 1]
                i += 1
            else:
                value = True
            out[name.lower()] = value
        i += 1
    return out


def parse_config(text: str) -> dict:
    """The agent's config.yaml (a flat YAML mapping; lists for node-label/node-taint)."""
    try:
        import yaml
        data = yaml.safe_load(text) or {}
        return data if isinstance(data, dict) else {}
    except ImportError:  # pragma: no cover - the venv has PyYAML; keep working without it
        out: dict = {}
        for line in text.splitlines():
            m = re.match(r"^([A-Za-z0-9_-]+)\s*:\s*(.*?)\s*$", line)
            if m and not line.startswith("#"):
                v = m.group(2)
                if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                    v = v[1:-1]
                out[m.group(1)] = v
        return out
    except Exception:
        return {}


# ------------------------------------------------------------------------------------------------
# The Kubernetes API double, as an agent talks to it
# ------------------------------------------------------------------------------------------------

class Unauthorized(Exception):
    pass


class NotReachable(Exception):
    pass


def _opener():
    # Lab and test servers are on loopback or the lab bridge: never through a proxy from the environment.
    # TLS is not verified: the real agent pins the server CA through the token's CA hash (K10<hash>::...),
    # which the API double's tokens do not carry.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))


def api(method: str, url: str, token: str, body=None, ctype: str = "application/json", timeout: float = 5.0,
        agent: str = "k3s"):
    """(status, JSON body) of one request; 401 raises Unauthorized, a connection failure NotReachable."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": "Bearer " + token, "Accept": "application/json", "Content-Type": ctype,
        "User-Agent": "%s.exe/v1.32.5 (windows/amd64) kubernetes (mixop lab stand-in)" % agent})
    try:
        with _opener().open(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw = e.read() or b""
        status = e.code
    except (urllib.error.URLError, OSError, ssl.SSLError) as e:
        raise NotReachable(str(getattr(e, "reason", e)))
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = {"raw": raw[:300].decode("utf-8", "replace")}
    if status == 401:
        raise Unauthorized("401 Unauthorized")
    return status, doc


def flannel_problem(nodes: list[dict], dist: str) -> str | None:
    """Why this Windows node's flannel cannot talk to the server's, from the server node's flannel
    annotations (what flannel publishes: backend-type, backend-data {"VNI", "Port"}); None when it can.
    k3s on Windows accepts only the vxlan (or none) backend (pkg/agent/flannel/setup.go) and uses VNI
    4096 on UDP 4789, where a Linux server defaults to VNI 1 on UDP 8472 (k3s-io/k3s#9295)."""
    def role(n):
        labels = (n.get("metadata") or {}).get("labels") or {}
        return labels.get("node-role.kubernetes.io/control-plane") == "true" or \
            labels.get("node-role.kubernetes.io/master") == "true"
    servers = [n for n in nodes if role(n)] or \
        [n for n in nodes if ((n.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/os") == "linux"]
    for n in servers:
        ann = (n.get("metadata") or {}).get("annotations") or {}
        bt = ann.get("flannel.alpha.coreos.com/backend-type")
        if bt is None:
            continue
        name = n["metadata"].get("name", "server")
        fix = ('give the server a --flannel-conf with "VNI": 4096 and "Port": 4789' if dist == "k3s" else
               "RKE2's Windows agents need the server's CNI on VNI 4096, UDP 4789 (cni: calico, or cni: flannel "
               "with vni 4096 and backendPort 4789)")
        if bt != "vxlan":
            return ("unsupported flannel backend '%s' for Windows: the server %s uses flannel backend %s; Windows "
                    "nodes need vxlan with VNI 4096 on UDP 4789 (k3s-io/k3s#9295): %s" % (bt, name, bt, fix))
        try:
            data = json.loads(ann.get("flannel.alpha.coreos.com/backend-data") or "{}")
        except ValueError:
            data = {}
        vni = int(data.get("VNI") or 1)
        port = int(data.get("Port") or 8472)
        if vni != WINDOWS_VNI or port != WINDOWS_PORT:
            return ("flannel VXLAN mismatch: the server %s uses VNI %d on UDP %d, this Windows node VNI %d on UDP %d, "
                    "so pods here cannot reach pods on Linux nodes (k3s-io/k3s#9295): %s"
                    % (name, vni, port, WINDOWS_VNI, WINDOWS_PORT, fix))
        return None
    return None


# ------------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------------

class Proc:
    """One running stand-in: a service's process, a scheduled task's instance or a command's program."""

    def __init__(self, rt: "Runtime", owner: str, kind: str, exe: str, argv: list[str], cmd=None,
                 script: str | None = None):
        self.rt = rt
        self.owner = owner
        self.kind = kind
        self.exe = exe
        self.argv = list(argv)
        self.cmd = cmd
        self.script = script
        self.stop_evt = threading.Event()
        self.current = True
        self.prev: Proc | None = None
        self.thread: threading.Thread | None = None
        self.node: dict | None = None  # {"api", "token", "name"} once joined
        self.rc: int | None = None
        self.note: dict = {"standin": kind}
        self.stdin_bytes = 0
        self.started = time.time()

    # what SimHost.record expects of a program
    @property
    def session(self) -> str:
        return "standin"

    def start(self) -> None:
        self.thread = threading.Thread(target=self._main, name="standin-%s" % self.kind, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        rc = 1
        try:
            if self.prev is not None and self.prev.thread is not None and self.prev.thread is not threading.current_thread():
                self.prev.thread.join(20)
            rc = int(PROGRAMS[self.kind](self) or 0)
        except Exception:
            _log("%s (%s) crashed: %s" % (self.kind, self.owner, traceback.format_exc()))
            self.err("%s (lab stand-in) crashed: see the peer's log\r\n" % self.kind)
            rc = 1
        finally:
            self.rc = rc
            self.rt.exited(self, rc)

    @property
    def stopped(self) -> bool:
        return self.stop_evt.is_set() or (self.cmd is not None and self.cmd.removed)

    def sleep(self, seconds: float) -> bool:
        """Wait; False when the process was stopped meanwhile."""
        end = time.time() + seconds
        while not self.stopped:
            left = end - time.time()
            if left <= 0:
                return True
            self.stop_evt.wait(min(left, 0.2))
        return False

    def out(self, text: str) -> None:
        if self.cmd is not None and not self.cmd.removed:
            self.cmd.push("stdout", text.encode("utf-8"))

    def err(self, text: str) -> None:
        if self.cmd is not None and not self.cmd.removed:
            self.cmd.push("stderr", text.encode("utf-8"))

    def with_host(self, fn):
        """Run fn(ps) under the host lock and save the state."""
        with self.rt.lock:
            res = fn(Cmdlets(self.rt.state))
            self.rt.state.save()
            return res

    def event(self, source: str, entry_type: str, event_id: int, message: str) -> None:
        self.with_host(lambda ps: ps.log_event("Application", source, entry_type, event_id, message))


class Runtime:
    """The stand-in programs of one simulated host (SimHost.runtime; HostState.runtime for the hooks)."""

    def __init__(self, sim):
        self.sim = sim
        self.state = sim.state
        self.lock = sim.state.lock
        self.latest: dict[str, Proc] = {}
        self.plock = threading.Lock()

    # ---- bookkeeping ---------------------------------------------------------------------------
    def _launch(self, owner: str, kind: str, exe: str, argv: list[str], cmd=None, script=None) -> Proc:
        p = Proc(self, owner, kind, exe, argv, cmd, script)
        with self.plock:
            prev = self.latest.get(owner)
            if prev is not None and prev.current:
                prev.current = False
                prev.stop_evt.set()
            p.prev = prev
            self.latest[owner] = p
        if not owner.startswith("command:"):
            procs = self.state.data.setdefault("standin_processes", {})
            procs[owner] = {"kind": kind, "exe": exe, "argv": argv, "started": time.time(), "running": True}
        p.start()
        return p

    def _stop(self, owner: str, reason: str) -> None:
        with self.plock:
            p = self.latest.get(owner)
            if p is None or not p.current:
                return
            p.current = False
            p.stop_evt.set()
        info = self.state.data.setdefault("standin_processes", {}).get(owner)
        if info is not None:
            info.update(running=False, ended=time.time(), end_reason=reason)

    def running(self, owner: str) -> Proc | None:
        with self.plock:
            p = self.latest.get(owner)
            return p if p is not None and p.current and not p.stopped else None

    def exited(self, p: Proc, rc: int) -> None:
        """A process ended by itself (or was stopped): what Windows does about its owner."""
        with self.plock:
            was_current = p.current
            p.current = False
        if p.cmd is not None:
            self.sim.record(p)
            if not p.cmd.removed:
                p.cmd.finish(rc)
            return
        if not was_current:
            return
        with self.lock:
            info = self.state.data.setdefault("standin_processes", {}).get(p.owner)
            if info is not None:
                info.update(running=False, ended=time.time(), exit_code=rc)
            ps = Cmdlets(self.state)
            if p.owner.startswith("task:"):
                key = p.owner[5:]
                t = next((v for k, v in self.state.data["scheduled_tasks"].items() if k.lower() == key), None)
                if t is not None and t["state"] == "Running":
                    t["state"] = "Ready" if t["settings"].get("enabled", True) else "Disabled"
                    t["last_task_result"] = rc
            elif p.owner.startswith("service:"):
                s = self.state.data["services"].get(p.owner[8:])
                if s is not None and s["status"] == "Running":
                    s["status"] = "Stopped"
                    s.pop("pid", None)
                    s["exit_code"] = rc
                    if rc:
                        ps.log_event("System", "Service Control Manager", "Error", 7034,
                                     "The %s service terminated unexpectedly." % s["display_name"])
            self.state.save()

    # ---- hooks from the cmdlet layer (host lock held; never block) -------------------------------
    def service_can_start(self, ps: Cmdlets, svc: dict, exe: str) -> str | None:
        kind = standin_kind(ps.fs, exe)
        if kind is None:
            return None
        argv = split_cmdline(ps.expand_env(svc.get("binary_path_name") or ""))[1:]
        if kind == "containerd":
            flags, _ = parse_flags(argv)
            cfg = flags.get("config")
            if isinstance(cfg, str) and not ps.fs.is_file(cfg):
                ps.log_event("Application", "containerd", "Error", 1,
                             'containerd: failed to load TOML from %s: open %s: The system cannot find the file '
                             'specified.' % (cfg, cfg))
                return "1067 containerd: config file %s not found" % cfg
            if "run-service" not in flags:
                return "1053 containerd.exe runs as a service only with --run-service"
            return None
        if kind == "k3s-agent":
            # k3s.exe does not implement the service control protocol (k3s-io/k3s#9298)
            return "1053 k3s.exe cannot run as a Windows service (k3s-io/k3s#9298)"
        if kind == "rke2":
            if argv[:2] != ["agent", "service"]:
                return "1053 rke2.exe runs as a service as `rke2.exe agent service`"
            return None
        return "1053 %s (lab stand-in) is not a service program" % kind

    def service_started(self, ps: Cmdlets, svc: dict, exe: str) -> None:
        kind = standin_kind(ps.fs, exe)
        if kind is None:
            return
        argv = split_cmdline(ps.expand_env(svc.get("binary_path_name") or ""))[1:]
        self._launch("service:" + svc["name"].lower(), kind, exe, argv)

    def service_stopped(self, ps: Cmdlets, svc: dict) -> None:
        self._stop("service:" + svc["name"].lower(), "stopped")

    def task_started(self, ps: Cmdlets, key: str, task: dict, exe: str | None, args: str) -> None:
        owner = "task:" + key.lower()
        if self.running(owner) is not None:
            return  # MultipleInstances IgnoreNew: the running instance carries on
        argv = split_cmdline(args or "")
        kind = standin_kind(ps.fs, exe)
        if kind is None and exe and exe.rsplit("\\", 1)[-1].lower() in PS_EXES:
            script, sargs = _ps_file(argv)
            if script and standin_kind(ps.fs, script) in PS_KINDS:
                self._launch(owner, standin_kind(ps.fs, script), script, sargs)
            return
        if kind is not None:
            self._launch(owner, kind, exe, argv)

    def task_stopped(self, ps: Cmdlets, key: str) -> None:
        self._stop("task:" + key.lower(), "task stopped")

    def stop_all(self, reason: str) -> None:
        with self.plock:
            owners = [o for o, p in self.latest.items() if p.current and not o.startswith("command:")]
        for o in owners:
            self._stop(o, reason)

    def resume(self) -> None:
        """After a peer restart on the same state: the services and tasks the state says are running
        get their stand-in processes back (they re-register their nodes, as a restarted agent does)."""
        with self.lock:
            ps = Cmdlets(self.state)
            for s in self.state.data["services"].values():
                if s["status"] == "Running":
                    exe = ps.resolve_binary(s["binary_path_name"])
                    if standin_kind(ps.fs, exe):
                        self.service_started(ps, s, exe)
            for key, t in self.state.data["scheduled_tasks"].items():
                if t["state"] == "Running" and t["actions"]:
                    a = t["actions"][0]
                    exe = ps.resolve_binary(a["execute"])
                    if exe and "\\" not in exe:
                        exe = ps.which(exe) or exe
                    self.task_started(ps, key, t, exe, ps.expand_env(str(a.get("arguments") or "")))
            self.state.save()

    # ---- commands ------------------------------------------------------------------------------
    def start_command(self, cmd, info: dict) -> bool:
        """Take over a WinRS command that runs a stand-in (True), else leave it to record mode."""
        script = info.get("script") if info.get("powershell") else None
        if script:
            m = RE_TEST_PATH_PROBE.match(script.strip())
            if m:  # mixop's creates/removes probe (src/modules/windows/command.rs)
                with self.lock:
                    exists = Cmdlets(self.state).test_path(m.group(1).replace("''", "'"))
                self._quick(cmd, 0 if exists else 1, "sim_test_path", script)
                return True
            return False
        line = cmd.cmdline
        cwd = None
        if not getattr(cmd, "skip_cmd_shell", False):
            # cmd.exe: mixop's `chdir` is `cd /d DIR && COMMAND`
            m = re.match(r'^\s*cd\s+/d\s+("[^"]*"|\S+)\s*&&\s*(.*)$', line, re.I | re.S)
            if m:
                cwd, line = m.group(1).strip('"'), m.group(2)
            if re.search(r"[&|<>]", re.sub(r'"[^"]*"', "", line)):
                return False  # pipelines and redirections: not modelled
        argv = split_cmdline(line)
        if not argv:
            return False
        with self.lock:
            ps = Cmdlets(self.state)
            exe = self._find_program(ps, argv[0], cwd)
            if exe is None:
                return False
            base = exe.rsplit("\\", 1)[-1].lower()
            if base in SYSTEM_PROGRAMS and exe.lower().startswith("c:\\windows\\system32\\"):
                rc, out, err = getattr(ps, SYSTEM_PROGRAMS[base])(argv[1:])
                self.state.save()
                self._quick(cmd, rc, base, line, out.encode(), err.encode())
                return True
            if base in PS_EXES:
                script_path, sargs = _ps_file(argv[1:])
                if not script_path:
                    return False
                if not re.match(r"^[A-Za-z]:", script_path) and cwd:
                    script_path = cwd.rstrip("\\") + "\\" + script_path
                kind = standin_kind(ps.fs, script_path)
                if kind not in PS_KINDS:
                    return False
                self._launch("command:" + cmd.id, kind, script_path, sargs, cmd=cmd, script=line)
                return True
            kind = standin_kind(ps.fs, exe)
            if kind is None:
                return False
            self._launch("command:" + cmd.id, kind, exe, argv[1:], cmd=cmd, script=line)
            return True

    @staticmethod
    def _find_program(ps: Cmdlets, prog: str, cwd: str | None) -> str | None:
        """Where CreateProcess / cmd.exe finds the program: a path (relative to the working directory),
        else the working directory, then the machine PATH (with PATHEXT)."""
        cands = []
        if re.match(r"^[A-Za-z]:\\", prog) or prog.startswith("\\"):
            cands = [prog]
        else:
            if cwd:
                cands.append(cwd.rstrip("\\") + "\\" + prog)
            if "\\" not in prog:
                w = ps.which(prog)
                if w:
                    cands.append(w)
        for c in cands:
            for cand in (c, c + ".exe"):
                if ps.fs.is_file(cand):
                    return cand
        return None

    def _quick(self, cmd, rc: int, kind: str, script: str, out: bytes = b"", err: bytes = b"") -> None:
        p = Proc(self, "command:" + cmd.id, kind, "", [], cmd, script)
        p.rc = rc
        if out:
            cmd.push("stdout", out)
        if err:
            cmd.push("stderr", err)
        self.sim.record(p)
        cmd.finish(rc)


# Windows programs the simulator answers itself when a command runs them (the cmdlet layer's method).
SYSTEM_PROGRAMS = {"schtasks.exe": "schtasks_exe"}


def _ps_file(argv: list[str]) -> tuple[str | None, list[str]]:
    """powershell.exe's arguments: the -File script and the arguments after it."""
    value_params = ("executionpolicy", "windowstyle", "inputformat", "outputformat", "configurationname",
                    "workingdirectory", "version", "psconsolefile", "settingsfile", "custompipename")
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith(("-", "/")):
            return None, []
        name = a.lstrip("-/").lower()
        if name and "file".startswith(name):
            if i + 1 < len(argv):
                return argv[i + 1], argv[i + 2:]
            return None, []
        if name in ("ep", "ex", "ec", "e", "c") or name.startswith("en") or (name and "command".startswith(name)):
            return None, []  # -EncodedCommand / -Command: a script, not a file
        if len(name) >= 2 and any(p.startswith(name) for p in value_params):
            i += 2
            continue
        i += 1
    return None, []


# ------------------------------------------------------------------------------------------------
# The programs
# ------------------------------------------------------------------------------------------------

def _version(p: Proc, default: str) -> str:
    with p.rt.lock:
        return standin_meta(p.rt.state.fs, p.exe).get("version") or default


def _now_k3s() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _klog(level: str, msg: str) -> str:
    """A k3s/RKE2 log line (logrus text format)."""
    return 'time="%s" level=%s msg="%s"' % (_now_k3s(), level, msg.replace('"', '\\"'))


def _read_config(p: Proc, path: str, explicit: bool) -> tuple[dict | None, str | None]:
    def read(ps):
        if not ps.fs.is_file(path):
            return None
        return ps.fs.read(path).decode("utf-8", "replace")
    with p.rt.lock:
        text = read(Cmdlets(p.rt.state))
    if text is None:
        if explicit:
            return None, "open %s: The system cannot find the file specified." % path
        return {}, None
    return parse_config(text), None


def _agent_spec(dist: str, cfg: dict, flags: dict) -> dict:
    merged = dict(cfg)
    for k, v in flags.items():
        if k in ("node-label", "node-taint") and k in merged:
            merged[k] = (merged[k] if isinstance(merged[k], list) else [merged[k]]) + \
                (v if isinstance(v, list) else [v])
        else:
            merged[k] = v
    return {"dist": dist, "server": merged.get("server") or merged.get("s"),
            "token": merged.get("token") or merged.get("t"), "token_file": merged.get("token-file"),
            "node_name": merged.get("node-name"), "node_ip": merged.get("node-ip"),
            "runtime_endpoint": merged.get("container-runtime-endpoint"),
            "labels": merged.get("node-label") or [], "taints": merged.get("node-taint") or [],
            "args": merged}


def k3s_agent(p: Proc) -> int:
    argv = p.argv
    if not argv or argv[0] in ("--version", "-v", "version"):
        v = _version(p, "v1.32.5+k3s1")
        p.out("k3s version %s (mixop lab stand-in)\r\ngo version go1.23.0\r\n" % v)
        return 0
    if argv[0] != "agent":
        p.err("k3s.exe (lab stand-in): only `agent` and `--version` are modelled; k3s has no Windows server\r\n")
        return 1
    flags, _ = parse_flags(argv[1:])
    path = flags.get("config") or flags.get("c") or K3S_CONFIG
    cfg, problem = _read_config(p, path, explicit=bool(flags.get("config") or flags.get("c")))
    if problem:
        msg = "Error: failed to load config %s: %s" % (path, problem)
        p.event("k3s", "Error", 1, _klog("fatal", msg))
        p.err(_klog("fatal", msg) + "\r\n")
        return 1
    return run_agent(p, _agent_spec("k3s", cfg, {k: v for k, v in flags.items() if k not in ("config", "c")}))


def rke2(p: Proc) -> int:
    argv = p.argv
    if not argv or argv[0] in ("--version", "-v", "version"):
        v = _version(p, "v1.32.5+rke2r1")
        p.out("rke2.exe version %s (mixop lab stand-in)\r\ngo version go1.23.0\r\n" % v)
        return 0
    if argv[:3] == ["agent", "service", "--add"]:
        return _rke2_service_add(p)
    if argv[:3] == ["agent", "service", "--delete"]:
        def delete(ps):
            return ps.sc_exe(["delete", "rke2"])
        rc, out = p.with_host(delete)
        p.out(out)
        return 0 if rc == 0 else 1
    if argv[:1] != ["agent"]:
        p.err("rke2.exe (lab stand-in): only `agent`, `agent service --add|--delete` and `--version` are modelled; "
              "RKE2 servers do not run on Windows\r\n")
        return 1
    rest = argv[2:] if argv[1:2] == ["service"] else argv[1:]
    flags, _ = parse_flags(rest)
    path = flags.get("config") or flags.get("c") or RKE2_CONFIG
    cfg, problem = _read_config(p, path, explicit=bool(flags.get("config") or flags.get("c")))
    if problem:
        msg = "Error: failed to load config %s: %s" % (path, problem)
        p.event("rke2", "Error", 1, _klog("fatal", msg))
        return 1
    return run_agent(p, _agent_spec("rke2", cfg, {k: v for k, v in flags.items() if k not in ("config", "c")}))


def _rke2_service_add(p: Proc) -> int:
    def add(ps):
        if ps._find_service("rke2") is not None:
            return "service rke2 already exists"
        ps.new_service("rke2", "%s agent service" % p.exe, display_name="rke2", startup_type="Automatic",
                       description="Rancher Kubernetes Engine v2 (agent)")
        ps.log_event("Application", "rke2", "Information", 1, _klog("info", "Service rke2 installed"))
        return None
    problem = p.with_host(add)
    if problem:
        p.err(_klog("fatal", "Error: %s" % problem) + "\r\n")
        return 1
    p.out(_klog("info", "Service rke2 installed") + "\r\n")
    return 0


def containerd(p: Proc) -> int:
    argv = p.argv
    flags, pos = parse_flags(argv)
    version = _version(p, "2.3.0")
    if "version" in flags or "v" in flags:
        p.out("containerd github.com/containerd/containerd/v2 v%s (mixop lab stand-in)\r\n" % version.lstrip("v"))
        return 0
    if pos[:2] == ["config", "default"]:
        p.out("version = 3\r\nroot = 'C:\\ProgramData\\containerd\\root'\r\nstate = 'C:\\ProgramData\\containerd\\state'"
              "\r\n\r\n[grpc]\r\n  address = '\\\\.\\pipe\\containerd-containerd'\r\n")
        return 0
    if "register-service" in flags:
        cfg = flags.get("config")

        def register(ps):
            if ps._find_service("containerd") is not None:
                return "The specified service already exists."
            path = '"%s" --run-service' % p.exe + (' --config "%s"' % cfg if isinstance(cfg, str) else "")
            ps.new_service("containerd", path, display_name="containerd", startup_type="Automatic",
                           description="Container runtime")
            return None
        problem = p.with_host(register)
        if problem:
            p.err("containerd: failed to register service: %s\r\n" % problem)
            return 1
        return 0
    if "unregister-service" in flags:
        rc, out = p.with_host(lambda ps: ps.sc_exe(["delete", "containerd"]))
        return 0 if rc == 0 else 1
    # the daemon itself (a service with --run-service, or in the foreground)
    p.event("containerd", "Information", 1, "starting containerd (version v%s, lab stand-in)" % version.lstrip("v"))
    p.event("containerd", "Information", 1, "serving on \\\\.\\pipe\\%s; containerd successfully booted in 0.04s"
            % CONTAINERD_PIPE)
    while p.sleep(3600):
        pass
    p.event("containerd", "Information", 1, "Stop CRI service; containerd exited")
    return 0


def ctr(p: Proc) -> int:
    if p.argv[:1] in (["--version"], ["-v"], ["version"]):
        p.out("ctr github.com/containerd/containerd/v2 v%s (mixop lab stand-in)\r\n" % _version(p, "2.3.0").lstrip("v"))
        return 0
    p.err("ctr.exe (lab stand-in): only --version is modelled\r\n")
    return 1


def rke2_install(p: Proc) -> int:
    params = parse_ps_params(p.argv)
    art = params.get("artifactpath")
    version = params.get("version") if isinstance(params.get("version"), str) else None
    lines: list[str] = []

    def fatal(msg: str) -> int:
        lines.append("[ERROR] %s" % msg)
        lines.append("[ALT] Please visit 'https://github.com/rancher/rke2/releases' directly and download the latest "
                     "rke2..tar.gz")
        p.out("\r\n".join(lines) + "\r\n")
        return 1

    def install(ps):
        feat = ps.d["features"].get("Containers")
        if feat != "Installed":
            return "Windows feature: 'Containers' is not installed. Please run: Install-WindowsFeature -Name Containers"
        lines.append("[INFO] Windows feature: 'Containers' is installed. Installation will proceed.")
        lines.append("Using stable channel of rke2 for installation")
        if isinstance(art, str):
            src_dir = art.rstrip("\\/")
            exe_src, un_src = src_dir + "\\rke2.exe", src_dir + "\\rke2-uninstall.ps1"
            for f in (exe_src, un_src):
                if not ps.fs.is_file(f):
                    return ("Cannot find path '%s' because it does not exist. (the lab stand-in installs from an "
                            "-ArtifactPath holding rke2.exe and rke2-uninstall.ps1; the real script unpacks "
                            "rke2.windows-amd64.tar.gz)" % f)
            lines.append("[INFO] staging tarball from %s/rke2.windows-amd64.tar.gz (lab stand-in: rke2.exe)" % src_dir)
            exe_data, un_data = ps.fs.read(exe_src), ps.fs.read(un_src)
        else:
            v = version or "v1.32.5+rke2r1"
            lines.append("[INFO] using %s as release" % v)
            lines.append("[INFO] downloading tarball at https://github.com/rancher/rke2/releases/download/%s/"
                         "rke2.windows-amd64.tar.gz (lab stand-in: written, not downloaded)" % v)
            exe_data = ("#mixop-standin rke2\r\nStand-in for rke2.exe written by the lab's install.ps1 stand-in.\r\n"
                        "version: %s\r\n" % v).encode()
            un_data = b"#mixop-standin rke2-uninstall\r\n# Stand-in for rke2-uninstall.ps1.\r\n"
        if version and not re.search(rb"^version:", exe_data, re.M):
            exe_data = exe_data.rstrip(b"\r\n") + ("\r\nversion: %s\r\n" % version).encode()
        lines.append("[INFO] verifying tarball")
        lines.append("[INFO] unpacking tarball file to C:\\usr\\local")
        ps.fs.write(RKE2_BIN + "\\rke2.exe", exe_data, make_parents=True)
        ps.fs.write(RKE2_BIN + "\\rke2-uninstall.ps1", un_data, make_parents=True)
        lines.append('[INFO] install complete; you may want to run:  $env:PATH+=";C:\\usr\\local\\bin;'
                     'C:\\var\\lib\\rancher\\rke2\\bin"')
        return None

    problem = p.with_host(install)
    if problem:
        return fatal(problem)
    p.out("\r\n".join(lines) + "\r\n")
    return 0


def rke2_uninstall(p: Proc) -> int:
    def uninstall(ps):
        done = []
        s = ps._find_service("rke2")
        if s is not None:
            ps.stop_service("rke2", force=True)
            ps.sc_exe(["delete", "rke2"])
            done.append("service rke2 removed")
        for path in (RKE2_BIN + "\\rke2.exe", r"C:\var\lib\rancher\rke2", r"C:\etc\rancher\rke2",
                     RKE2_BIN + "\\rke2-uninstall.ps1"):
            if ps.fs.exists(path):
                ps.fs.remove(path, recurse=True)
                done.append("removed %s" % path)
        return done
    try:
        done = p.with_host(uninstall)
    except CmdletError as e:
        p.err("%s\r\n" % e.msg)
        return 1
    p.out("".join("[INFO] %s\r\n" % d for d in done) or "[INFO] nothing to uninstall\r\n")
    return 0


PROGRAMS = {"k3s-agent": k3s_agent, "rke2": rke2, "containerd": containerd, "ctr": ctr,
            "rke2-install": rke2_install, "rke2-uninstall": rke2_uninstall}


# ------------------------------------------------------------------------------------------------
# Joining the cluster (k3s.exe agent, the rke2 service)
# ------------------------------------------------------------------------------------------------

def _api_base(dist: str, server: str) -> str:
    """The API server for the agent's `server`: k3s serves API and supervisor on the same port (6443);
    an RKE2 agent registers through the supervisor port 9345 and talks to the API on 6443 of the same
    host. (Stand-in shortcut: any other port is taken as the API itself, so tests can point at an API
    double on a free port.)"""
    u = urllib.parse.urlsplit(server.strip())
    if dist == "rke2" and u.port == 9345:
        host = u.hostname or ""
        if ":" in host:
            host = "[%s]" % host
        return "%s://%s:6443" % (u.scheme or "https", host)
    return "%s://%s" % (u.scheme or "https", u.netloc)


def _containerd_running(ps: Cmdlets) -> bool:
    for s in ps.d["services"].values():
        if s["status"] == "Running" and standin_kind(ps.fs, ps.resolve_binary(s["binary_path_name"])) == "containerd":
            return True
    return False


def _uses_external_containerd(endpoint) -> bool:
    return isinstance(endpoint, str) and CONTAINERD_PIPE in endpoint.replace("\\", "/").lower()


def run_agent(p: Proc, spec: dict) -> int:
    dist = spec["dist"]
    src = dist

    def fatal(msg: str) -> int:
        p.event(src, "Error", 1, _klog("fatal", msg))
        p.err(_klog("fatal", msg) + "\r\n")
        return 1

    token = spec["token"]
    if not token and spec.get("token_file"):
        def read_token(ps):
            f = spec["token_file"]
            return ps.fs.read(f).decode("utf-8", "replace").strip() if ps.fs.is_file(f) else None
        with p.rt.lock:
            token = read_token(Cmdlets(p.rt.state))
    if not spec["server"]:
        return fatal("Error: --server is required")
    if not token:
        return fatal("Error: --token is required")
    token = str(token).strip()
    endpoint = spec["runtime_endpoint"]
    if _uses_external_containerd(endpoint):
        with p.rt.lock:
            up = _containerd_running(Cmdlets(p.rt.state))
        if not up:
            return fatal("Error: failed to connect to the container runtime at %s: open \\\\.\\pipe\\%s: The system "
                         "cannot find the file specified. (the containerd service is not running)"
                         % (endpoint, CONTAINERD_PIPE))
    base = _api_base(dist, str(spec["server"]))
    with p.rt.lock:
        comp = dict(p.rt.state.data["computer"])
    name = str(spec["node_name"] or comp["name"]).lower()
    ip = str(spec["node_ip"] or (comp.get("ipv4_addresses") or ["127.0.0.1"])[0])
    p.event(src, "Information", 1, _klog("info", "Starting %s agent (lab stand-in) for node %s, server %s"
                                          % (dist, name, spec["server"])))
    warned = False
    while True:
        if p.stopped:
            return 0
        try:
            _, version = api("GET", base + "/version", token, agent=dist)
            _, nodes = api("GET", base + "/api/v1/nodes", token, agent=dist)
            break
        except Unauthorized:
            return fatal("Failed to validate connection to cluster at %s: the server rejected the token "
                         "(401 Unauthorized); node %s was not registered. Check the token in the agent's config "
                         "against the server's node-token." % (spec["server"], name))
        except NotReachable as e:
            if not warned:
                p.event(src, "Warning", 2, _klog("info", "Waiting to retrieve agent configuration; server is not "
                                                          "ready: %s: %s" % (base, e)))
                warned = True
            if not p.sleep(2):
                return 0
    server_version = (version or {}).get("gitVersion") or ("v1.32.5+%s" % ("k3s1" if dist == "k3s" else "rke2r1"))
    items = (nodes or {}).get("items") or []
    problem = flannel_problem(items, dist)
    with p.rt.lock:
        node = _node_object(p.rt.state, spec, name, ip, server_version, items, token, problem)
    try:
        st, doc = api("POST", base + "/api/v1/nodes", token, node, agent=dist)
        created = st == 201
        if st == 409:
            patch = {"metadata": {"labels": node["metadata"]["labels"],
                                  "annotations": node["metadata"]["annotations"]},
                     "status": {"nodeInfo": node["status"]["nodeInfo"], "addresses": node["status"]["addresses"]}}
            api("PATCH", base + "/api/v1/nodes/" + name, token, {"metadata": patch["metadata"]},
                ctype="application/merge-patch+json", agent=dist)
            st, doc = api("PATCH", base + "/api/v1/nodes/%s/status" % name, token, {"status": patch["status"]},
                          ctype="application/merge-patch+json", agent=dist)
        if st >= 300:
            return fatal("Error: unable to register node %s with the API server: %s %s"
                         % (name, st, (doc or {}).get("message", "")))
        cur = doc or node
        cidr = (cur.get("spec") or {}).get("podCIDR") or node["spec"].get("podCIDR")
        if problem:
            if not created:  # an existing node: its Ready condition now says why
                conds = [c for c in (cur.get("status") or {}).get("conditions") or [] if c.get("type") != "Ready"]
                conds.append(_not_ready(problem))
                api("PATCH", base + "/api/v1/nodes/%s/status" % name, token, {"status": {"conditions": conds}},
                    ctype="application/merge-patch+json", agent=dist)
            p.event(src, "Error", 1, _klog("error", problem))
        else:
            api("POST", base + "/_double/nodes/%s/ready?status=True" % urllib.parse.quote(name), token, agent=dist)
    except NotReachable as e:
        return fatal("Error: lost the API server while registering node %s: %s" % (name, e))
    except Unauthorized:
        return fatal("Failed to validate connection to cluster at %s: 401 Unauthorized" % spec["server"])
    p.node = {"base": base, "token": token, "name": name}

    def network(ps):
        if ps.hns_available() and not any(n["Name"] == "flannel.%d" % WINDOWS_VNI for n in ps.d["hns_networks"]):
            gw = cidr.split("/")[0].rsplit(".", 1)[0] + ".1" if cidr else None
            ps.new_hns_network("Overlay", "flannel.%d" % WINDOWS_VNI, address_prefix=cidr, gateway=gw, vsid=WINDOWS_VNI,
                               management_ip=ip)
        info = ps.d.setdefault("standin_processes", {}).get(p.owner)
        if info is not None:
            info.update(node=name, api=base, ready=not problem, problem=problem)
    p.with_host(network)
    p.event(src, "Information", 1, _klog("info", "Node %s registered with %s (%s)%s" % (
        name, base, server_version, ": NotReady, " + problem if problem else ", Ready")))
    while p.sleep(3600):
        pass
    # Stopped: the kubelet no longer posts status (the node controller would say Unknown after its grace
    # period; the stand-in says it at once). The Node object stays until someone deletes it.
    try:
        api("POST", base + "/_double/nodes/%s/ready?status=Unknown" % urllib.parse.quote(name), token, timeout=3,
            agent=dist)
    except Exception:
        pass
    p.event(src, "Information", 1, _klog("info", "%s agent stopped" % dist))
    return 0


def _not_ready(why: str) -> dict:
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "lastHeartbeatTime": ts,
            "lastTransitionTime": ts, "message": "container runtime network not ready: NetworkReady=false "
            "reason:NetworkPluginNotReady message:" + why}


def _node_object(state, spec: dict, name: str, ip: str, version: str, nodes: list[dict], token: str,
                 problem: str | None = None) -> dict:
    """The Node a Windows Server 2022 kubelet registers (kubelet's initialNode + setNodeStatus)."""
    d = state.data
    comp = d["computer"]
    dist = spec["dist"]
    build = str(comp.get("os_version") or "10.0.20348")
    h = lambda s, n: hashlib.sha256(s.encode()).hexdigest()[:n]  # noqa: E731
    labels = {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/instance-type": dist,
        "beta.kubernetes.io/os": "windows", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name,
        "kubernetes.io/os": "windows", "node.kubernetes.io/instance-type": dist,
        "node.kubernetes.io/windows-build": build,
    }
    for lab in spec.get("labels") if isinstance(spec.get("labels"), list) else [spec.get("labels")]:
        if isinstance(lab, str) and "=" in lab:
            k, v = lab.split("=", 1)
            labels[k] = v
    args = ["agent"]
    for k, v in sorted((spec.get("args") or {}).items()):
        args += ["--" + k, "********" if k in ("token", "t") else str(v)]
    mac = "00:15:5d:%s:%s:%s" % (h(name, 2), h(name + "1", 2), h(name + "2", 2))
    ann = {
        "alpha.kubernetes.io/provided-node-ip": ip,
        "flannel.alpha.coreos.com/backend-data": json.dumps({"VNI": WINDOWS_VNI, "VtepMAC": mac}, separators=(",", ":")),
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
        "flannel.alpha.coreos.com/public-ip": ip,
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        "%s.io/hostname" % dist: name, "%s.io/internal-ip" % dist: ip,
        "%s.io/node-args" % dist: json.dumps(args), "%s.io/node-config-hash" % dist: h(name + token, 52).upper(),
        "%s.io/node-env" % dist: "{}",
    }
    used = {(n.get("spec") or {}).get("podCIDR") for n in nodes}
    cidr = next(("10.42.%d.0/24" % i for i in range(1, 255) if "10.42.%d.0/24" % i not in used
                 and not any(n["metadata"].get("name") == name for n in nodes)), None)
    existing = next((n for n in nodes if n["metadata"].get("name") == name), None)
    if existing is not None:
        cidr = (existing.get("spec") or {}).get("podCIDR") or cidr
    if _uses_external_containerd(spec.get("runtime_endpoint")):
        runtime = "containerd://" + _containerd_version(state).lstrip("v")
    else:
        runtime = EMBEDDED_RUNTIME
    mem_ki = int(comp.get("memory_mb") or 8192) * 1024
    cpu = str(comp.get("logical_processors") or 2)
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    conds = []
    for typ, reason, msg in (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                             ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                             ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available")):
        conds.append({"type": typ, "status": "False", "reason": reason, "message": msg, "lastHeartbeatTime": ts,
                      "lastTransitionTime": ts})
    conds.append(_not_ready(problem or "Network plugin returns error: cni plugin not initialized"))
    spec_obj = {"providerID": "%s://%s" % (dist, name)}
    if cidr:
        spec_obj.update(podCIDR=cidr, podCIDRs=[cidr])
    taints = []
    for t in spec.get("taints") if isinstance(spec.get("taints"), list) else [spec.get("taints")]:
        m = re.match(r"^([^=:]+)(?:=([^:]*))?:(\w+)$", str(t or ""))
        if m:
            taints.append({"key": m.group(1), "value": m.group(2) or "", "effect": m.group(3)} if m.group(2)
                          else {"key": m.group(1), "effect": m.group(3)})
    if taints:
        spec_obj["taints"] = taints
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": ann},
        "spec": spec_obj,
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "capacity": {"cpu": cpu, "ephemeral-storage": "133703676Ki", "memory": "%dKi" % mem_ki, "pods": "110"},
            "allocatable": {"cpu": cpu, "ephemeral-storage": "123222016863", "memory": "%dKi" % (mem_ki - 102400),
                            "pods": "110"},
            "conditions": conds,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64", "bootID": str(d["boot"].get("count") or 1),
                "containerRuntimeVersion": runtime,
                "kernelVersion": "%s.%s" % (build, comp.get("ubr", 2849)),
                "kubeProxyVersion": version, "kubeletVersion": version, "machineID": comp["name"].upper(),
                "operatingSystem": "windows",
                "osImage": str(comp.get("os_caption") or "Windows Server 2022 Datacenter").replace("Microsoft ", "", 1),
                "systemUUID": str(uuid.UUID(h("sys" + name, 32))).upper(),
            },
        },
    }


def _containerd_version(state) -> str:
    ps = Cmdlets(state)
    for s in state.data["services"].values():
        exe = ps.resolve_binary(s["binary_path_name"])
        if standin_kind(ps.fs, exe) == "containerd":
            return standin_meta(ps.fs, exe).get("version") or "2.3.0"
    return "2.3.0"


__all__ = ["Runtime", "standin_kind", "standin_meta", "flannel_problem", "SCHED_S_TASK_RUNNING"]
