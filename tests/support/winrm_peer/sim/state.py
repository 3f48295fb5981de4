"""The simulated host's state: ``host.json`` in the state directory, plus its disk under ``fs/``.

``host.json`` is written atomically (temporary file + rename) after every change. Its format is
documented in tests/support/winrm_peer/README.md ("Simulator state"). The disk is a directory tree:
``C:\\Foo\\Bar`` is ``<state dir>/fs/c/foo/bar`` (Windows paths are case-insensitive, so the host
path is lower case); the case a path was created with, its attributes and its creation time are
kept in ``host.json`` under ``files``.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import tempfile
import threading
import time

from . import accounts, catalog, registry

FORMAT = 1


def default_computer() -> dict:
    return {
        "name": "WIN-SIM2022",
        "domain": "WORKGROUP",
        "part_of_domain": False,
        "os_caption": "Microsoft Windows Server 2022 Datacenter",
        "os_version": "10.0.20348",
        "build_number": 20348,
        "ubr": 2849,
        "ps_version": "5.1.20348.2849",
        "os_architecture": "64-bit",
        "installation_type": "Server",
        "product_type": 3,
        "memory_mb": 8192,
        "logical_processors": 2,
        "cores": 2,
        "manufacturer": "QEMU",
        "model": "Standard PC (Q35 + ICH9, 2009)",
        "ipv4_addresses": ["192.168.56.21"],
        "ipv6_addresses": ["fe80::5054:ff:fe12:3456"],
        "interface_alias": "Ethernet",
        "prefix_length": 24,
        "virtualization_capable": True,
        "registered_owner": "Windows User",
        "user": "Administrator",
        "timezone": "UTC",
    }


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _service_defaults(name: str) -> dict:
    return {"name": name, "display_name": name, "binary_path_name": "", "start_mode": "manual",
            "status": "Stopped", "depends_on": [], "description": "", "start_name": "LocalSystem",
            "service_type": "Win32OwnProcess", "failure_actions": None, "marked_for_delete": False}


def _rule_defaults(name: str) -> dict:
    return {"name": name, "display_name": name, "description": "", "display_group": "", "direction": "Inbound",
            "action": "Allow", "protocol": "Any", "local_port": ["Any"], "remote_port": ["Any"], "program": "Any",
            "enabled": True, "profile": "Any"}


def _task_defaults(path_name: str) -> dict:
    path, _, name = path_name.rpartition("\\")
    return {"task_name": name, "task_path": (path or "") + "\\", "description": "", "state": "Ready",
            "actions": [], "triggers": [], "principal": {"user_id": "SYSTEM", "logon_type": "ServiceAccount",
                                                         "run_level": "Highest"},
            "settings": {"restart_count": 0, "restart_interval": None, "execution_time_limit": "PT72H",
                         "start_when_available": False, "allow_start_if_on_batteries": False,
                         "dont_stop_if_going_on_batteries": False, "enabled": True},
            "last_run_time": None, "last_task_result": 267011, "runs": 0}


def normalize(data: dict) -> dict:
    """Fill what a partial state (sim-init, POST /sim/state, an older host.json) leaves out."""
    d = data if isinstance(data, dict) else {}
    d["format"] = FORMAT
    d["computer"] = deep_merge(default_computer(), d.get("computer") or {})
    comp = d["computer"]
    boot = d.get("boot") or {}
    boot.setdefault("time_unix", None)
    boot.setdefault("count", 1)
    boot.setdefault("history", [])
    d["boot"] = boot
    d["reboot_pending"] = bool(d.get("reboot_pending", False))
    d.setdefault("reboot_pending_reasons", [])
    feats = {n: f["default"] for n, f in catalog.FEATURES.items()}
    for k, v in (d.get("features") or {}).items():
        canon = catalog.FEATURES_LOWER.get(k.lower())
        if canon:
            feats[canon] = v
    d["features"] = feats
    opt = {n: o["default"] for n, o in catalog.OPTIONAL_FEATURES.items() if o.get("feature") is None}
    for k, v in (d.get("optional_features") or {}).items():
        canon = catalog.OPTIONAL_LOWER.get(k.lower(), k)
        opt[canon] = v
    d["optional_features"] = opt
    if "services" not in d:
        d["services"] = {s["name"].lower(): dict(s, marked_for_delete=False) for s in catalog.DEFAULT_SERVICES}
    svcs = {}
    for k, v in (d.get("services") or {}).items():
        v = dict(v or {})
        name = v.get("name") or k
        svcs[name.lower()] = deep_merge(_service_defaults(name), v)
    d["services"] = svcs
    dfd = d.get("defender") or {}
    for k in ("exclusion_path", "exclusion_process", "exclusion_extension"):
        dfd[k] = list(dfd.get(k) or [])
    d["defender"] = dfd
    if "firewall_rules" not in d:
        d["firewall_rules"] = {r["name"]: dict(r) for r in catalog.DEFAULT_FIREWALL_RULES}
    rules = {}
    for k, v in d["firewall_rules"].items():
        name = (v or {}).get("name") or k
        r = deep_merge(_rule_defaults(name), v or {})
        for pk in ("local_port", "remote_port"):
            r[pk] = [str(x) for x in (r[pk] if isinstance(r[pk], list) else [r[pk]])] or ["Any"]
        rules[name] = r
    d["firewall_rules"] = rules
    env = d.get("environment") or {}
    if "machine" not in env:
        env["machine"] = catalog.default_machine_env(int(comp.get("logical_processors") or 2))
    env.setdefault("user", {})
    d["environment"] = env
    tasks = {}
    for k, v in (d.get("scheduled_tasks") or {}).items():
        key = k if k.startswith("\\") else "\\" + k
        tasks[key] = deep_merge(_task_defaults(key), v or {})
    d["scheduled_tasks"] = tasks
    d.setdefault("startup_runs", [])
    d.setdefault("files", {})
    # Classic event logs (Get-EventLog / Get-WinEvent) and the sources registered with them.
    logs = d.get("event_log") or {}
    for name in catalog.EVENT_LOGS:
        logs.setdefault(name, [])
    d["event_log"] = {k: list(v or []) for k, v in logs.items()}
    sources = d.get("event_sources") or {}
    for name, default in catalog.EVENT_LOGS.items():
        sources.setdefault(name, list(default))
    d["event_sources"] = {k: list(v or []) for k, v in sources.items()}
    # Host Networking Service networks (Get-HnsNetwork), and what the stand-in programs are doing.
    d["hns_networks"] = list(d.get("hns_networks") or [])
    d["standin_processes"] = dict(d.get("standin_processes") or {})
    d["registry"] = registry.normalize(d.get("registry"))
    accounts.normalize(d)
    return d


# ------------------------------------------------------------------------------------------------
# The simulated disk
# ------------------------------------------------------------------------------------------------

ILLEGAL = re.compile(r'[<>"|?*\x00-\x1f]')


class FsError(Exception):
    """kind: 'not_found' | 'dir_not_found' | 'exists' | 'is_dir' | 'not_dir' | 'illegal' | 'not_empty'."""

    def __init__(self, kind: str, message: str, path: str = ""):
        super().__init__(message)
        self.kind = kind
        self.path = path


class WinFS:
    def __init__(self, host: "HostState"):
        self.host = host
        self.root = os.path.join(host.dir, "fs")

    @property
    def meta(self) -> dict:
        return self.host.data["files"]

    # -- paths -------------------------------------------------------------------------------
    def parts(self, path: str) -> list[str]:
        """['C:', 'Foo', 'Bar'] for C:\\Foo\\Bar (relative paths start at the user's Documents)."""
        p = str(path or "").strip().replace("/", "\\")
        if p.startswith("\\\\?\\"):
            p = p[4:]
        if p.startswith("\\\\"):
            raise FsError("illegal", "UNC paths (%s) are not modelled by the simulator." % path, path)
        m = re.match(r"^([A-Za-z]):(.*)$", p)
        if m:
            drive, rest = m.group(1).upper() + ":", m.group(2)
        elif p.startswith("\\"):
            drive, rest = "C:", p
        else:
            cwd = "Users\\%s\\Documents" % self.host.data["computer"].get("user", "Administrator")
            drive, rest = "C:", cwd + "\\" + p
        out: list[str] = [drive]
        for comp in rest.split("\\"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if len(out) > 1:
                    out.pop()
                continue
            comp = comp.rstrip(" .")  # Win32 drops trailing dots and spaces
            if not comp:
                continue
            if ILLEGAL.search(comp) or ":" in comp:
                raise FsError("illegal", "Illegal characters in path.", path)
            out.append(comp)
        return out

    @staticmethod
    def key_of(parts: list[str]) -> str:
        return "\\".join(parts).lower() if len(parts) > 1 else parts[0].lower() + "\\"

    def host_path(self, parts: list[str]) -> str:
        return os.path.join(self.root, parts[0][0].lower(), *[c.lower() for c in parts[1:]])

    def display(self, parts: list[str]) -> str:
        shown = [parts[0]]
        for i in range(1, len(parts)):
            m = self.meta.get(self.key_of(parts[:i + 1]))
            shown.append(m["path"].rsplit("\\", 1)[-1] if m and m.get("path") else parts[i])
        return "\\".join(shown) if len(shown) > 1 else shown[0] + "\\"

    def resolve(self, path: str) -> tuple[list[str], str]:
        parts = self.parts(path)
        return parts, self.host_path(parts)

    # -- queries -----------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        try:
            return os.path.lexists(self.resolve(path)[1])
        except FsError:
            return False

    def is_dir(self, path: str) -> bool:
        try:
            return os.path.isdir(self.resolve(path)[1])
        except FsError:
            return False

    def is_file(self, path: str) -> bool:
        try:
            return os.path.isfile(self.resolve(path)[1])
        except FsError:
            return False

    def info(self, path: str) -> dict | None:
        """FileSystemInfo-like facts, or None when the path does not exist."""
        parts, hp = self.resolve(path)
        try:
            st = os.stat(hp)
        except OSError:
            return None
        is_dir = os.path.isdir(hp)
        m = self.meta.get(self.key_of(parts)) or {}
        attrs = m.get("attributes")
        if attrs is None:
            attrs = ["Directory"] if is_dir else ["Archive"]
        name = self.display(parts)
        leaf = name.rsplit("\\", 1)[-1] if len(parts) > 1 else name
        ext = ""
        if not is_dir and "." in leaf.strip("."):
            ext = "." + leaf.rsplit(".", 1)[-1]
        return {"full_name": name, "name": leaf, "extension": ext, "is_dir": is_dir,
                "length": 0 if is_dir else st.st_size, "attributes": attrs,
                "last_write_time": st.st_mtime, "last_access_time": st.st_atime,
                "creation_time": m.get("created", st.st_mtime), "host_path": hp}

    def read(self, path: str) -> bytes:
        parts, hp = self.resolve(path)
        if os.path.isdir(hp):
            raise FsError("is_dir", "Access to the path '%s' is denied." % self.display(parts), path)
        try:
            with open(hp, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise FsError("not_found", "Could not find file '%s'." % self.display(parts), path)

    def size_of_tree(self, path: str) -> int:
        _, hp = self.resolve(path)
        total = 0
        for base, _dirs, files in os.walk(hp):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(base, f))
                except OSError:
                    pass
        return total

    def children(self, path: str) -> list[str]:
        parts, hp = self.resolve(path)
        disp = self.display(parts).rstrip("\\")
        out = []
        for n in sorted(os.listdir(hp)):
            cparts = parts + [n]
            out.append(disp + "\\" + self.display(cparts).rsplit("\\", 1)[-1])
        return out

    # -- changes -----------------------------------------------------------------------------
    def _note(self, parts: list[str], is_dir: bool) -> None:
        key = self.key_of(parts)
        m = self.meta.get(key)
        if m is None:
            self.meta[key] = {"path": self.display(parts[:-1]).rstrip("\\") + "\\" + parts[-1] if len(parts) > 1
                              else parts[0] + "\\", "created": time.time()}

    def mkdir(self, path: str) -> str:
        """Create a directory and its parents (like New-Item -ItemType Directory -Force)."""
        parts, hp = self.resolve(path)
        for i in range(2, len(parts) + 1):
            sub = parts[:i]
            shp = self.host_path(sub)
            if os.path.isfile(shp):
                raise FsError("exists", "An item with the specified name %s already exists." % self.display(sub), path)
            if not os.path.isdir(shp):
                os.makedirs(shp, exist_ok=True)
                self._note(sub, True)
        os.makedirs(hp, exist_ok=True)
        return self.display(parts)

    def write(self, path: str, data: bytes, make_parents: bool = False) -> str:
        parts, hp = self.resolve(path)
        if len(parts) < 2:
            raise FsError("is_dir", "Access to the path '%s' is denied." % self.display(parts), path)
        parent = self.host_path(parts[:-1])
        if not os.path.isdir(parent):
            if make_parents:
                self.mkdir("\\".join(parts[:-1]))
            else:
                raise FsError("dir_not_found", "Could not find a part of the path '%s'." % self._given(parts), path)
        if os.path.isdir(hp):
            raise FsError("is_dir", "Access to the path '%s' is denied." % self.display(parts), path)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".sim-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, hp)
        self._note(parts, False)
        return self.display(parts)

    def _given(self, parts: list[str]) -> str:
        return "\\".join(parts) if len(parts) > 1 else parts[0] + "\\"

    def remove(self, path: str, recurse: bool = False) -> None:
        parts, hp = self.resolve(path)
        if not os.path.lexists(hp):
            raise FsError("not_found", "Cannot find path '%s' because it does not exist." % self._given(parts), path)
        if os.path.isdir(hp):
            if os.listdir(hp) and not recurse:
                raise FsError("not_empty", "The directory is not empty.", path)
            shutil.rmtree(hp)
        else:
            os.unlink(hp)
        key = self.key_of(parts)
        for k in [k for k in self.meta if k == key or k.startswith(key + "\\")]:
            del self.meta[k]

    def move(self, src: str, dst: str, overwrite: bool = True) -> str:
        sparts, shp = self.resolve(src)
        dparts, dhp = self.resolve(dst)
        if not os.path.lexists(shp):
            raise FsError("not_found", "Cannot find path '%s' because it does not exist." % self._given(sparts), src)
        if not os.path.isdir(self.host_path(dparts[:-1])):
            raise FsError("dir_not_found", "Could not find a part of the path '%s'." % self._given(dparts), dst)
        if os.path.isdir(dhp) and not os.path.isdir(shp):
            raise FsError("exists", "Cannot create a file when that file already exists.", dst)
        if os.path.lexists(dhp) and not overwrite:
            raise FsError("exists", "Cannot create a file when that file already exists.", dst)
        if os.path.isdir(dhp):
            shutil.rmtree(dhp)
        os.replace(shp, dhp)
        skey, dkey = self.key_of(sparts), self.key_of(dparts)
        moved = {k: v for k, v in self.meta.items() if k == skey or k.startswith(skey + "\\")}
        for k in list(self.meta):
            if k == dkey or k.startswith(dkey + "\\"):
                del self.meta[k]
        for k, v in moved.items():
            del self.meta[k]
        new_disp = self.display(dparts[:-1]).rstrip("\\") + "\\" + dparts[-1]
        for k, v in moved.items():
            suffix = v.get("path", "")[len(self.display(sparts)):] if k != skey else ""
            self.meta[dkey + k[len(skey):]] = dict(v, path=new_disp + suffix)
        if dkey not in self.meta:
            self.meta[dkey] = {"path": new_disp, "created": time.time()}
        return new_disp

    def set_attributes(self, path: str, attributes: list[str]) -> None:
        parts, hp = self.resolve(path)
        key = self.key_of(parts)
        m = self.meta.setdefault(key, {"path": self.display(parts), "created": time.time()})
        m["attributes"] = list(attributes)


# ------------------------------------------------------------------------------------------------
# host.json
# ------------------------------------------------------------------------------------------------

class HostState:
    def __init__(self, state_dir: str, init_path: str | None = None, log=None):
        self.log = log or (lambda msg: None)
        self.dir = os.path.abspath(state_dir)
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(self.dir, "host.json")
        self.lock = threading.RLock()
        self._last_text = None
        self.fs = WinFS(self)
        self.runtime = None  # sim.standins.Runtime: the stand-in programs (set by SimHost)
        if os.path.exists(self.path):
            try:
                with open(self.path, encoding="utf-8") as fh:
                    self.data = normalize(json.load(fh))
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                raise SystemExit("winrm-peer: cannot load %s: %s" % (self.path, exc))
            if init_path:
                self.log("sim: %s exists, --sim-init %s ignored (state survives restarts)" % (self.path, init_path))
            self._last_text = None
        else:
            init = {}
            if init_path:
                try:
                    with open(init_path, encoding="utf-8") as fh:
                        init = json.load(fh)
                except (OSError, ValueError) as exc:
                    raise SystemExit("winrm-peer: cannot load --sim-init %s: %s" % (init_path, exc))
                if not isinstance(init, dict):
                    raise SystemExit("winrm-peer: --sim-init %s must hold a JSON object" % init_path)
            self.data = normalize(copy.deepcopy(init))
            self.seed_disk(init.get("seed_files") or {})
        self.save()

    def seed_disk(self, extra: dict) -> None:
        fs = self.fs
        for d in catalog.SEED_DIRS:
            fs.mkdir(d)
        for f in catalog.SEED_FILES:
            if not fs.exists(f):
                fs.write(f, b"MZ\x90\x00 simulated Windows binary: " + f.rsplit("\\", 1)[-1].encode(), make_parents=True)
        for f, text in catalog.SEED_TEXT_FILES.items():
            if not fs.exists(f):
                fs.write(f, text.encode(), make_parents=True)
        for f, content in (extra or {}).items():
            if isinstance(content, dict) and "b64" in content:
                data = base64.b64decode(content["b64"])
            elif isinstance(content, dict) and content.get("dir"):
                fs.mkdir(f)
                continue
            else:
                data = str(content).encode("utf-8")
            fs.write(f, data, make_parents=True)

    def save(self) -> bool:
        """Write host.json if it changed (atomically). Returns whether it wrote."""
        with self.lock:
            text = json.dumps(self.data, indent=1, sort_keys=True, ensure_ascii=False, default=str)
            if text == self._last_text:
                return False
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".host-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text + "\n")
                os.replace(tmp, self.path)  # readers see the old or the new file, never a partial one
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            self._last_text = text
            return True

    def snapshot(self) -> dict:
        with self.lock:
            return copy.deepcopy(self.data)

    def replace(self, data: dict) -> None:
        with self.lock:
            seed = (data or {}).get("seed_files") if isinstance(data, dict) else None
            self.data = normalize(copy.deepcopy({k: v for k, v in data.items() if k != "seed_files"}))
            if seed:
                self.seed_disk(seed)
            self.save()

    def patch(self, over: dict) -> None:
        with self.lock:
            seed = over.get("seed_files")
            self.data = normalize(deep_merge(self.data, {k: v for k, v in over.items() if k != "seed_files"}))
            if seed:
                self.seed_disk(seed)
            self.save()
