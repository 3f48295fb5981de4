"""The simulated Windows host behind ``peer.py --mode sim``.

Sim mode is record mode plus this: commands whose decoded PowerShell carries the host bootstrap's
marker (``# mixop-pshost v1``) or the one-shot wrapper's (``# mixop-psoneshot v1``) become simulated
PowerShell processes speaking the frame protocol of docs/windows-protocol.md §2; mixop's upload and
download scripts (src/powershell/script.rs) act on the simulated disk; everything else goes to
record mode's rules and built-ins. The peer calls in through four hooks: `start_command`,
`start_cost_ms`, `on_reboot` and the control channel (`control_get` / `control_post`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import re
import sys
import threading
import time
import traceback

from . import modules, standins, transfer
from .cmdlets import Cmdlets
from .errors import CmdletError
from .frames import Frame, FrameReader, encode_frame
from .state import HostState

MARK_HOST = re.compile(r"^[ \t]*# mixop-pshost v1[ \t]*\r?$", re.M)
MARK_ONESHOT = re.compile(r"^[ \t]*# mixop-psoneshot v1[ \t]*\r?$", re.M)
FILETIME_EPOCH_OFFSET = 11644473600


def _log(msg: str) -> None:
    try:
        sys.stderr.write("[winrm-peer %s] sim: %s\n" % (datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3], msg))
        sys.stderr.flush()
    except Exception:
        pass


def filetime(unix_seconds: float) -> int:
    return int((unix_seconds + FILETIME_EPOCH_OFFSET) * 10_000_000)


class Context:
    """What a handler gets (see sim/modules/__init__.py)."""

    def __init__(self, sim: "SimHost", req: dict, ps: Cmdlets, session: str):
        self.sim = sim
        self.host = sim.state
        self.fs = sim.state.fs
        self.ps = ps
        self.req = req
        self.module = req.get("module")
        self.phase = req.get("phase")
        self.args = req.get("args") if isinstance(req.get("args"), dict) else {}
        self.plan = req.get("plan")
        self.check_mode = bool(req.get("check_mode", False))
        self.env = dict(req.get("env") or {})
        # Secret values (passwords) travel beside args; scripts.jsonl keeps only their names.
        self.secrets = req.get("secrets") if isinstance(req.get("secrets"), dict) else {}
        self.script = req.get("script") if isinstance(req.get("script"), str) else ""
        self.session = session
        self.warnings: list[str] = []

    def arg(self, name: str, default=None, required: bool = False):
        v = self.args.get(name, None)
        if v is None:
            if required:
                from .errors import parameter_null
                raise parameter_null(name[:1].upper() + name[1:], "$Mixop.args.%s" % name)
            return default
        return v

    def warn(self, text: str) -> None:
        self.warnings.append(str(text))


class Program:
    """A simulated process behind one WinRS command: reads the command's stdin as it arrives."""

    kind = "program"

    @property
    def session(self) -> str:
        return self.kind[4:] if self.kind.startswith("sim_") else self.kind

    def __init__(self, sim: "SimHost", cmd, script: str):
        self.sim = sim
        self.cmd = cmd
        self.script = script
        self.stdin_bytes = 0
        self.rc: int | None = None
        self.note: dict = {}

    def start(self) -> None:
        threading.Thread(target=self._main, name="sim-%s-%s" % (self.kind, self.cmd.id[:8]), daemon=True).start()

    def _main(self) -> None:
        try:
            self.run()
        except Exception:
            _log("%s crashed: %s" % (self.kind, traceback.format_exc()))
            self.finish(1)
        finally:
            self.sim.record(self)

    def run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def read_stdin(self, wait: bool = True) -> tuple[bytes, bool, bool]:
        """(new bytes, stdin closed, command gone). Consumes what it returns."""
        cmd = self.cmd
        with cmd.cond:
            while wait and not cmd.stdin_buf and not cmd.stdin_closed and not cmd.removed:
                cmd.cond.wait(0.5)
            data = bytes(cmd.stdin_buf)
            del cmd.stdin_buf[:]
            self.stdin_bytes += len(data)
            return data, cmd.stdin_closed, cmd.removed

    def wait_start_cost(self) -> bool:
        """Charge --pwsh-start-ms from the command's creation. False when the command went away."""
        until = self.cmd.created + self.sim.start_ms / 1000.0
        while not self.cmd.removed:
            left = until - time.time()
            if left <= 0:
                return True
            time.sleep(min(left, 0.05))
        return False

    def out(self, data: bytes) -> None:
        if not self.cmd.removed:
            self.cmd.push("stdout", data)

    def err(self, data: bytes) -> None:
        if not self.cmd.removed:
            self.cmd.push("stderr", data)

    def finish(self, rc: int) -> None:
        self.rc = rc
        if not self.cmd.removed:
            self.cmd.finish(rc)


class PsHost(Program):
    """The long-lived PowerShell host (``# mixop-pshost v1``) or the one-shot wrapper."""

    def __init__(self, sim: "SimHost", cmd, script: str, oneshot: bool):
        super().__init__(sim, cmd, script)
        self.oneshot = oneshot
        self.kind = "sim_oneshot" if oneshot else "sim_pshost"
        self.pid = random.randrange(1000, 20000) * 4  # Windows PIDs are multiples of 4
        self.requests = 0
        self.process_env: dict | None = None

    def run(self) -> None:
        if not self.wait_start_cost():
            return
        with self.sim.lock:
            self.process_env = Cmdlets.fresh_process_env(self.sim.state)
            comp = self.sim.state.data["computer"]
            ready = {"pid": self.pid, "ps_version": comp.get("ps_version", "5.1.20348.2849"),
                     "host": comp["name"].upper()}
        if not self.oneshot:
            self.out(encode_frame("READY", 0, ready))
        reader = FrameReader()
        while True:
            data, closed, removed = self.read_stdin()
            if removed:
                return
            frames = reader.feed(data) if data else []
            if closed:
                frames += reader.finish()
            for f in frames:
                res = self.sim.handle_frame(f, self)
                self.requests += 1
                self.out(encode_frame("RES", f.id, res))
                if self.oneshot:
                    self.finish(0)
                    return
            if closed:
                if self.oneshot:
                    res = self.sim.bad_request(0, "stdin ended before a request frame", self)
                    self.out(encode_frame("RES", 0, res))
                self.finish(0)
                return


class Transfer(Program):
    """mixop's put/get scripts against the simulated disk."""

    def __init__(self, sim: "SimHost", cmd, script: str, spec: dict):
        super().__init__(sim, cmd, script)
        self.spec = spec
        self.kind = "sim_" + spec["kind"]

    def run(self) -> None:
        if not self.wait_start_cost():
            return
        if self.spec["kind"] == "put":
            result = self.put()
            if result is None:
                return  # the process was killed mid-upload: what it wrote stays where it is
            rc, out, err = result
        else:
            with self.sim.lock:
                rc, out, err = transfer.run_get(self.sim.state.fs, self.script, self.spec)
                self.sim.state.save()
        self.note = {"path": self.spec["path"], "bytes": len(out) if self.spec["kind"] == "get" else None}
        self.out(out)
        self.err(err)
        self.finish(rc)


    def put(self):
        """The upload, written as stdin arrives; None when the command went away first."""
        put = transfer.Put(self.sim.state.fs, self.script, self.spec)
        with self.sim.lock:
            result = put.open()
            self.sim.state.save()
        while result is None:
            data, closed, removed = self.read_stdin()
            if removed:
                if put.fh is not None:
                    put.fh.close()
                return None
            with self.sim.lock:
                result = put.feed(data) if data else None
                if result is None and closed:
                    result = put.finish()
                if result is not None:
                    self.sim.state.save()
        return result


class SimHost:
    def __init__(self, peer, args):
        self.peer = peer
        self.args = args
        if not getattr(args, "state_dir", None):
            raise SystemExit("winrm-peer: --mode sim needs --state-dir DIR")
        self.state = HostState(args.state_dir, getattr(args, "sim_init", None), _log)
        self.lock = self.state.lock
        self.start_ms = max(0, int(getattr(args, "pwsh_start_ms", 0) or 0))
        self.scripts_path = os.path.join(self.state.dir, "scripts.jsonl")
        self.scripts_dir = os.path.join(self.state.dir, "scripts")
        self.jsonl_lock = threading.Lock()
        self._sync_boot_from_state()
        # The stand-in programs (sim/standins.py): the lab's k3s.exe, containerd.exe, RKE2 ...
        self.runtime = standins.Runtime(self)
        self.state.runtime = self.runtime
        self.runtime.resume()
        _log("simulating %s (%s, build %s) from %s" % (
            self.state.data["computer"]["name"], self.state.data["computer"]["os_caption"],
            self.state.data["computer"]["build_number"], self.state.dir))

    def _sync_boot_from_state(self) -> None:
        with self.lock:
            boot = self.state.data["boot"]
            if boot.get("time_unix"):
                with self.peer.lock:
                    self.peer.boot_time_unix = float(boot["time_unix"])
                    self.peer.boot_filetime = filetime(self.peer.boot_time_unix)
            else:
                boot["time_unix"] = self.peer.boot_time_unix
            self.state.save()

    # ---- hooks called by peer.py -------------------------------------------------------------
    def start_command(self, cmd, info: dict) -> bool:
        """Take over a command (True) or leave it to record mode (False)."""
        try:
            script = info.get("script")
            if not info.get("powershell") or not script:
                return self.runtime.start_command(cmd, info)
            if MARK_HOST.search(script):
                PsHost(self, cmd, script, oneshot=False).start()
                return True
            if MARK_ONESHOT.search(script):
                PsHost(self, cmd, script, oneshot=True).start()
                return True
            spec = transfer.recognise(script)
            if spec:
                Transfer(self, cmd, script, spec).start()
                return True
            return self.runtime.start_command(cmd, info)
        except Exception:
            _log("start_command failed (left to record mode): %s" % traceback.format_exc())
        return False

    def start_cost_ms(self, cmd, info: dict | None, delay_ms: int) -> int:
        """Record-mode commands: a powershell.exe pays its start-up cost (--pwsh-start-ms)."""
        if not self.start_ms or not (info or {}).get("powershell"):
            return delay_ms
        left = self.start_ms - (time.time() - cmd.created) * 1000.0
        return int(delay_ms + max(0.0, left))

    def on_reboot(self) -> None:
        try:
            with self.lock:
                entry = Cmdlets(self.state).boot(self.peer.boot_time_unix)
                self.state.save()
            _log("boot %d: features %s, services started %s, failed %s, tasks run %s" % (
                entry["count"], entry["features"], len(entry["services_started"]), entry["services_failed"],
                entry["tasks_run"]))
        except Exception:
            _log("reboot hook failed: %s" % traceback.format_exc())

    def control_get(self, path: str):
        path = path.strip("/")
        if path == "state":
            return self.state.snapshot()
        if path == "scripts":
            return self.read_scripts()
        if path in ("", "info"):
            return {"state_dir": self.state.dir, "modules": modules.available(), "pwsh_start_ms": self.start_ms}
        return None

    def control_post(self, path: str, body):
        path = path.strip("/")
        if path == "state":
            if not isinstance(body, dict):
                raise ValueError("POST /sim/state needs the host.json object")
            self.state.replace(body)
        elif path == "patch":
            if not isinstance(body, dict):
                raise ValueError("POST /sim/patch needs an object")
            self.state.patch(body)
        else:
            raise ValueError("unknown sim op %r (state, patch)" % path)
        self._sync_boot_from_state()
        return self.state.snapshot()

    # ---- requests ----------------------------------------------------------------------------
    def bad_request(self, rid, msg: str, prog: Program | None) -> dict:
        res = {"id": rid, "ok": False, "failed": True, "msg": "bad request: %s" % msg, "exception": "mixop.BadRequest",
               "category": "InvalidData", "line": 0, "column": 0, "script_line": "", "error_id": "BadRequest",
               "warnings": [], "duration_ms": 0}
        self.log_script({"id": rid, "session": prog.session if prog else None, "module": None, "phase": None,
                         "ok": False, "error": {"msg": res["msg"], "exception": res["exception"]}})
        return res

    def handle_frame(self, f: Frame, prog: PsHost) -> dict:
        t0 = time.monotonic()
        if f.error:
            _log("bad frame %d: %s" % (f.id, f.error))
            return self.bad_request(f.id, f.error, prog)
        req = f.payload or {}
        rid = req.get("id", f.id)
        if not isinstance(rid, int) or isinstance(rid, bool):
            rid = f.id
        module, phase = req.get("module"), req.get("phase")
        problem = None
        if not isinstance(module, str) or not module:
            problem = "'module' must be a non-empty string"
        elif phase not in modules.PHASES:
            problem = "'phase' must be one of %s, got %r" % ("/".join(modules.PHASES), phase)
        elif req.get("args") is not None and not isinstance(req.get("args"), dict):
            problem = "'args' must be an object"
        elif req.get("env") is not None and not isinstance(req.get("env"), dict):
            problem = "'env' must be an object"
        if problem:
            return self.bad_request(rid, problem, prog)
        script = req.get("script") if isinstance(req.get("script"), str) else ""
        warnings: list[str] = []
        sha = hashlib.sha256(script.encode("utf-8")).hexdigest()
        if req.get("script_sha256") and str(req["script_sha256"]).lower() != sha:
            warnings.append("script_sha256 %s does not match the script (%s)" % (req["script_sha256"], sha))
        self._keep_script(sha, script)
        env = {str(k): "" if v is None else str(v) for k, v in (req.get("env") or {}).items()}
        with self.lock:
            ps = Cmdlets(self.state, process_env=prog.process_env, request_env=env)
            ctx = Context(self, req, ps, prog.session)
            try:
                fn = modules.handler(module, phase)
                if fn is None:
                    name = modules.canonical(module)
                    if modules.load(module) is None:
                        raise CmdletError(
                            "The term '%s' is not recognized as the name of a cmdlet, function, script file, or "
                            "operable program. (winrm-peer sim: no handler for module %r in sim/modules/)"
                            % (module, module), "System.Management.Automation.CommandNotFoundException",
                            "ObjectNotFound", "CommandNotFoundException", None, module)
                    raise CmdletError("winrm-peer sim: sim/modules/%s.py has no '%s' phase" % (name, phase),
                                      "System.Management.Automation.CommandNotFoundException", "ObjectNotFound",
                                      "CommandNotFoundException", None, module)
                result = fn(ctx)
                if result is None:
                    result = {}
                json.dumps(result)  # a handler must return JSON-able data
                res = {"id": rid, "ok": True, "result": result}
            except CmdletError as e:
                res = {"id": rid, **e.as_result(script)}
            except Exception as e:
                _log("handler %s/%s failed: %s" % (module, phase, traceback.format_exc()))
                res = {"id": rid, "ok": False, "failed": True, "msg": "winrm-peer sim: handler %s/%s raised %s: %s"
                       % (module, phase, type(e).__name__, e), "exception": "mixop.SimulatorError",
                       "category": "NotSpecified", "line": 0, "column": 0, "script_line": "",
                       "error_id": "SimulatorError"}
            finally:
                try:
                    self.state.save()
                except Exception:
                    _log("cannot save host.json: %s" % traceback.format_exc())
        res["warnings"] = warnings + ctx.warnings
        res["duration_ms"] = int((time.monotonic() - t0) * 1000)
        entry = {"id": rid, "session": prog.session, "module": module, "phase": phase, "args": req.get("args"),
                 "plan": req.get("plan"), "script_sha256": req.get("script_sha256") or sha,
                 "check_mode": bool(req.get("check_mode", False)), "env": req.get("env") or {}, "ok": res["ok"]}
        if isinstance(req.get("secrets"), dict) and req["secrets"]:
            entry["secrets"] = sorted(req["secrets"])
        if res["ok"]:
            entry["result"] = res["result"]
        else:
            entry["error"] = {k: res.get(k) for k in ("msg", "exception", "category", "error_id", "line", "column")}
        if res["warnings"]:
            entry["warnings"] = res["warnings"]
        entry["duration_ms"] = res["duration_ms"]
        self.log_script(entry)
        return res

    # ---- logs --------------------------------------------------------------------------------
    def _keep_script(self, sha: str, script: str) -> None:
        if not script:
            return
        path = os.path.join(self.scripts_dir, sha + ".ps1")
        if os.path.exists(path):
            return
        try:
            os.makedirs(self.scripts_dir, exist_ok=True)
            tmp = path + ".%d.tmp" % threading.get_ident()
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(script)
            os.replace(tmp, path)
        except OSError as exc:
            _log("cannot keep script %s: %s" % (sha, exc))

    def log_script(self, entry: dict) -> None:
        now = time.time()
        line = dict({"time": now, "time_iso": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat()},
                    **entry)
        try:
            text = json.dumps(line, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = json.dumps({k: str(v) for k, v in line.items()})
        with self.jsonl_lock:
            try:
                with open(self.scripts_path, "a", encoding="utf-8") as fh:
                    fh.write(text + "\n")
            except OSError as exc:
                _log("cannot write scripts.jsonl: %s" % exc)

    def read_scripts(self) -> list[dict]:
        out = []
        with self.jsonl_lock:
            try:
                with open(self.scripts_path, encoding="utf-8") as fh:
                    for line in fh:
                        try:
                            out.append(json.loads(line))
                        except ValueError:
                            pass
            except FileNotFoundError:
                pass
        return out

    def record(self, prog: Program) -> None:
        """A record-mode style record for a command the simulator ran (GET /records, --record-log)."""
        cmd = prog.cmd
        try:
            self.peer.write_record({
                "shell_id": cmd.shell.id, "command_id": cmd.id, "user": cmd.shell.owner,
                "codepage": cmd.shell.codepage, "noprofile": cmd.shell.noprofile, "command": cmd.command,
                "arguments": cmd.arguments, "command_line": cmd.cmdline, "stdin": "", "stdin_bytes": prog.stdin_bytes,
                "script": prog.script, "script_source": "encoded", "rule": None, "builtin": prog.kind,
                "rc": prog.rc if prog.rc is not None else cmd.exit_code,
                "sim": dict(prog.note, requests=getattr(prog, "requests", None))})
        except Exception:
            _log("cannot write record: %s" % traceback.format_exc())
