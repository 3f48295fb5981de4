"""The WinRM peer's Windows host simulator (``peer.py --mode sim``), driven by the reference clients.

Every test starts its own simulated hosts on port 0 with a state directory under tmp_path and talks
to them with pywinrm's ``Protocol`` or pypsrp's ``WinRS``/``Process``: a minimal PowerShell host
bootstrap (only its marker line matters to the simulator) is started with ``-EncodedCommand``, REQ
frames go in over stdin (Send) and RES frames come back on stdout (Receive), as in
docs/windows-protocol.md. The state is then checked as data (``GET /sim/state``, ``host.json``,
``scripts.jsonl`` and the simulated disk under ``<state>/fs``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest
import winrm
from pypsrp.shell import Process, SignalCode, WinRS
from pypsrp.wsman import WSMan
from winrm.exceptions import WinRMOperationTimeoutError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEER_DIR = os.path.join(ROOT, "tests", "support", "winrm_peer")
PEER = os.environ.get("WINRM_PEER") or os.path.join(PEER_DIR, "peer.py")
PS_RS = os.path.join(ROOT, "src", "connection", "winrm", "ps.rs")
sys.path.insert(0, PEER_DIR)

from sim.frames import KINDS, FrameReader, encode_frame, parse_frames  # noqa: E402

USER, PASSWORD = "vagrant", "S1m:pass"
PS = "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand "
HOST_BOOTSTRAP = "# mixop-pshost v1\nparam()\n# (the simulator only looks at the marker line)\n"
ONESHOT_BOOTSTRAP = "# mixop-psoneshot v1\n"


def enc(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode()


class SimPeer:
    def __init__(self, tmp, state_dir, *extra: str):
        os.makedirs(str(tmp), exist_ok=True)
        self.tmp = str(tmp)
        self.state_dir = str(state_dir)
        self.port_file = os.path.join(self.tmp, "port")
        self.cport_file = os.path.join(self.tmp, "cport")
        for f in (self.port_file, self.cport_file):
            if os.path.exists(f):
                os.unlink(f)
        self.log_path = os.path.join(self.tmp, "peer.log")
        args = [sys.executable, PEER, "--listen", "127.0.0.1:0", "--port-file", self.port_file, "--control",
                "--control-port-file", self.cport_file, "--users", "%s:%s" % (USER, PASSWORD), "--mode", "sim",
                "--state-dir", self.state_dir, "--reboot-down", "1", "--reboot-delay-cap", "0.3"] + list(extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "ab"))
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.exists(self.port_file) and os.path.exists(self.cport_file):
                self.port = int(open(self.port_file).read())
                self.cport = int(open(self.cport_file).read())
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("peer did not start:\n" + open(self.log_path).read())

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/wsman" % self.port

    def get(self, path: str):
        with urllib.request.urlopen("http://127.0.0.1:%d/%s" % (self.cport, path), timeout=10) as r:
            return json.load(r)

    def post(self, op: str, body=None) -> dict:
        req = urllib.request.Request("http://127.0.0.1:%d/%s" % (self.cport, op),
                                     data=json.dumps(body if body is not None else {}).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            res = json.load(r)
        assert res["ok"], res
        return res

    def state(self) -> dict:
        return self.get("sim/state")

    def fs_path(self, winpath: str) -> str:
        drive, rest = winpath.split(":", 1)
        return os.path.join(self.state_dir, "fs", drive.lower(), *[p.lower() for p in rest.split("\\") if p])

    def reboot_and_wait(self, trigger=None) -> None:
        boot0 = self.get("stats")["boot_time_filetime"]
        if trigger is None:
            self.post("reboot", {"down_seconds": 1})
        else:
            trigger()
        deadline = time.time() + 15
        while time.time() < deadline:
            st = self.get("stats")
            if st["up"] and st["boot_time_filetime"] != boot0:
                return
            time.sleep(0.1)
        raise AssertionError("no reboot:\n" + self.log())

    def log(self) -> str:
        return open(self.log_path, errors="replace").read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def sim(tmp_path):
    peers = []

    def make(*extra, state_dir=None, name=None):
        n = name or "p%d" % len(peers)
        p = SimPeer(tmp_path / n, state_dir or (tmp_path / n / "state"), *extra)
        peers.append(p)
        return p

    yield make
    for p in peers:
        p.stop()
    for p in peers:
        assert "Traceback" not in p.log(), p.log()


def protocol(peer: SimPeer) -> winrm.Protocol:
    return winrm.Protocol(peer.url, transport="ntlm", username=USER, password=PASSWORD, read_timeout_sec=30,
                          operation_timeout_sec=20)


class HostClient:
    """The controller side of the PowerShell host over pywinrm: Send REQ frames, Receive RES frames."""

    def __init__(self, peer: SimPeer, script: str = HOST_BOOTSTRAP):
        self.p = protocol(peer)
        self.shell = self.p.open_shell(codepage=65001)
        self.t0 = time.monotonic()
        self.cid = self.p.run_command(self.shell, PS + enc(script))
        self.reader = FrameReader(accept=KINDS)
        self.frames: list = []
        self.done = False
        self.rc = None
        self.next_id = 1

    def next_frame(self):
        while not self.frames and not self.done:
            try:
                out, _err, rc, done = self.p.get_command_output_raw(self.shell, self.cid)
            except WinRMOperationTimeoutError:
                continue
            self.frames += self.reader.feed(out)
            if done:
                self.done, self.rc = True, rc
        return self.frames.pop(0) if self.frames else None

    def send(self, data: bytes, end: bool = False) -> None:
        self.p.send_command_input(self.shell, self.cid, data, end=end)

    def request(self, module: str, phase: str, args=None, plan=None, script: str = "", **extra) -> dict:
        rid = self.next_id
        self.next_id += 1
        req = dict({"id": rid, "module": module, "phase": phase, "script": script,
                    "script_sha256": hashlib.sha256(script.encode()).hexdigest(), "args": args or {},
                    "check_mode": False, "env": {}}, **extra)
        if plan is not None:
            req["plan"] = plan
        self.send(encode_frame("REQ", rid, req))
        f = self.next_frame()
        if f is not None and f.kind == "READY":  # not read yet by the test
            f = self.next_frame()
        assert f is not None and f.kind == "RES" and f.id == rid, f
        assert f.payload["id"] == rid
        return f.payload

    def cmdlets(self, *calls) -> dict:
        return self.request("sim_cmdlet", "run", {"calls": [{"cmdlet": c, "params": p} for c, p in calls]})

    def close(self) -> int:
        self.send(b"", end=True)
        while self.next_frame() is not None:
            pass
        self.p.cleanup_command(self.shell, self.cid)
        self.p.close_shell(self.shell)
        return self.rc


def ok(res: dict) -> dict:
    assert res["ok"] is True, res
    return res["result"]


# --------------------------------------------------------------------------------------------
# framing
# --------------------------------------------------------------------------------------------

def test_pshost_ready_then_one_res_per_req_with_frames_split_anywhere(sim):
    peer = sim()
    wsman = WSMan("127.0.0.1", port=peer.port, username=USER, password=PASSWORD, ssl=False, auth="negotiate",
                  cert_validation=False)
    reqs = [encode_frame("REQ", 1, {"id": 1, "module": "win_ping", "phase": "run", "script": "", "args": {}}),
            # CRLF line ends from the controller are fine
            encode_frame("REQ", 2, {"id": 2, "module": "ansible.windows.win_ping", "phase": "run",
                                    "args": {"data": "ünïcode ☃"}}).replace(b"\n", b"\r\n"),
            b"MIXOP1 REQ 3 8\nnot-b64!\n",  # bad payload: answered, host keeps running
            b"MIXOP1 REQ 4 4\nbnVsbA==\n",  # wrong length
            b"garbage line\n",
            encode_frame("REQ", 5, {"id": 5, "module": "win_ping", "phase": "nope"}),
            encode_frame("REQ", 6, {"id": 6, "module": "win_ping", "phase": "run", "args": {"data": "crash"},
                                    "script": "param($Mixop)\nif ($d -eq 'crash') { throw 'boom' }"}),
            encode_frame("REQ", 7, {"id": 7, "module": "win_ping", "phase": "run"})]
    data = b"".join(reqs)
    with WinRS(wsman, codepage=65001, no_profile=True) as ws:
        # pypsrp sends one rsp:Arguments per argument; the command line is the same
        proc = Process(ws, "powershell.exe", ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
                                              "-EncodedCommand", enc(HOST_BOOTSTRAP)])
        proc.begin_invoke()
        for i in range(0, len(data), 23):  # frames split at arbitrary points across Send messages
            proc.send(data[i:i + 23], end=False)
        proc.send(b"", end=True)
        proc.end_invoke()
        proc.signal(SignalCode.TERMINATE)
    assert proc.rc == 0 and proc.stderr == b""
    frames = parse_frames(proc.stdout)
    assert [f.error for f in frames] == [None] * len(frames)
    assert [(f.kind, f.id) for f in frames] == [("READY", 0), ("RES", 1), ("RES", 2), ("RES", 3), ("RES", 4),
                                                ("RES", 0), ("RES", 5), ("RES", 6), ("RES", 7)]
    assert proc.stdout.count(b"\r\n") == 0  # the host writes \n
    ready = frames[0].payload
    assert ready["ps_version"] == "5.1.20348.2849" and ready["host"] == "WIN-SIM2022" and ready["pid"] % 4 == 0
    assert frames[1].payload == {"id": 1, "ok": True, "result": {"ping": "pong"}, "warnings": [],
                                 "duration_ms": frames[1].payload["duration_ms"]}
    assert frames[2].payload["result"] == {"ping": "ünïcode ☃"}
    for f in frames[3:7]:
        assert f.payload["ok"] is False and f.payload["exception"] == "mixop.BadRequest", f.payload
    boom = frames[7].payload
    assert (boom["ok"], boom["msg"], boom["exception"], boom["line"]) == (
        False, "boom", "System.Management.Automation.RuntimeException", 2)
    assert frames[8].payload["ok"] is True
    log = [json.loads(x) for x in open(os.path.join(peer.state_dir, "scripts.jsonl"), encoding="utf-8")]
    assert len(log) == 8 and {"time", "module", "phase", "args", "plan", "script_sha256", "check_mode", "env",
                              "ok"} <= set(log[0])
    rec = [r for r in peer.get("records") if r["builtin"] == "sim_pshost"]
    assert len(rec) == 1 and rec[0]["rc"] == 0 and rec[0]["sim"]["requests"] == 8


def test_oneshot_and_unknown_module_and_pwsh_start_cost(sim):
    peer = sim("--pwsh-start-ms", "300")
    p = protocol(peer)
    shell = p.open_shell()
    t0 = time.monotonic()
    cid = p.run_command(shell, PS + enc(ONESHOT_BOOTSTRAP))
    req = {"id": 9, "module": "win_nope", "phase": "run", "script": "$x = 1\nwin_nope"}
    p.send_command_input(shell, cid, encode_frame("REQ", 9, req), end=True)
    out, err, rc = p.get_command_output(shell, cid)
    took = time.monotonic() - t0
    p.cleanup_command(shell, cid)
    frames = parse_frames(out)
    assert rc == 0 and [(f.kind, f.id) for f in frames] == [("RES", 9)]  # no READY from the one-shot
    res = frames[0].payload
    assert res["ok"] is False and res["exception"] == "System.Management.Automation.CommandNotFoundException"
    assert "win_nope" in res["msg"] and res["category"] == "ObjectNotFound"
    assert took >= 0.3
    # every other powershell.exe pays the start cost too (record mode's rules answer it)
    t0 = time.monotonic()
    r = winrm.Session(peer.url, auth=(USER, PASSWORD), transport="ntlm").run_ps("Write-Output 1")
    assert r.status_code == 0 and time.monotonic() - t0 >= 0.3
    p.close_shell(shell)
    # the host: READY only after the start cost
    h = HostClient(peer)
    ready = h.next_frame()
    assert ready.kind == "READY" and time.monotonic() - h.t0 >= 0.3
    assert h.close() == 0


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------

def test_feature_install_is_pending_until_reboot(sim):
    peer = sim()
    h = HostClient(peer)
    assert h.next_frame().kind == "READY"
    probe = ok(h.request("win_feature", "probe", {"name": ["Containers", "Hyper-V", "NoSuchFeature"]}))
    assert {f["name"]: f["install_state"] for f in probe["features"]} == {"Containers": "Available",
                                                                          "Hyper-V": "Available"}
    assert probe["reboot_pending"] is False
    res = ok(h.request("win_feature", "apply", plan={"install": ["Containers", "Telnet-Client"], "uninstall": [],
                                                     "include_management_tools": True,
                                                     "include_sub_features": False}))
    assert res["exitcode"] == "SuccessRestartRequired" and res["reboot_required"] is True and res["success"] is True
    assert {r["display_name"]: r["reboot_required"] for r in res["feature_result"]} == {"Containers": True,
                                                                                        "Telnet Client": False}
    again = ok(h.request("win_feature", "apply", plan={"install": ["Containers"], "uninstall": []}))
    assert (again["exitcode"], again["feature_result"], again["reboot_required"]) == ("NoChangeNeeded", [], False)
    probe = ok(h.request("win_feature", "probe", {"name": ["Containers", "Telnet-Client"]}))
    assert {f["name"]: f["install_state"] for f in probe["features"]} == {"Containers": "InstallPending",
                                                                          "Telnet-Client": "Installed"}
    assert probe["reboot_pending"] is True
    bad = h.request("win_feature", "apply", plan={"install": ["Containerz"]},
                    script="param($Mixop)\n$p = $Mixop.plan\nInstall-WindowsFeature -Name $p.install")
    assert bad["ok"] is False and bad["exception"] == "System.Exception" and "'Containerz'" in bad["msg"]
    assert bad["error_id"] == "NameDoesNotExist,Microsoft.Windows.ServerManager.Commands.AddWindowsFeatureCommand"
    assert (bad["line"], bad["column"], bad["script_line"]) == (3, 1, "Install-WindowsFeature -Name $p.install")
    st = peer.state()
    assert st["features"]["Containers"] == "InstallPending" and st["reboot_pending"] is True
    assert "vmcompute" not in st["services"]
    with open(os.path.join(peer.state_dir, "host.json"), encoding="utf-8") as fh:
        assert json.load(fh)["features"]["Containers"] == "InstallPending"
    boots = st["boot"]["count"]

    peer.reboot_and_wait()
    h = HostClient(peer)  # the old shell died with the reboot
    probe = ok(h.request("win_feature", "probe", {"name": ["Containers"]}))
    assert probe["features"][0]["install_state"] == "Installed" and probe["reboot_pending"] is False
    facts = ok(h.request("setup", "run", {"gather_subset": ["all", "features"]}))["ansible_facts"]
    assert {f["name"]: f["install_state"] for f in facts["ansible_windows_features"]}["Containers"] == "Installed"
    assert facts["ansible_reboot_pending"] is False
    h.close()
    st = peer.state()
    assert st["boot"]["count"] == boots + 1 and st["services"]["vmcompute"]["display_name"] == \
        "Hyper-V Host Compute Service"
    assert os.path.isfile(peer.fs_path(r"C:\Windows\System32\vmcompute.exe"))


def test_facts_stat_and_service_start_needs_its_binary(sim):
    peer = sim()
    h = HostClient(peer)
    h.next_frame()
    facts = ok(h.request("setup", "run", {"gather_subset": ["all"]}))["ansible_facts"]
    assert "ansible_windows_features" not in facts
    assert {k: facts[k] for k in ("ansible_os_family", "ansible_distribution", "ansible_distribution_version",
                                  "ansible_distribution_major_version", "ansible_kernel", "ansible_architecture",
                                  "ansible_windows_build", "ansible_os_name")} == {
        "ansible_os_family": "Windows", "ansible_distribution": "Microsoft Windows Server 2022 Datacenter",
        "ansible_distribution_version": "10.0.20348.0", "ansible_distribution_major_version": "10",
        "ansible_kernel": "10.0.20348.0", "ansible_architecture": "64-bit", "ansible_windows_build": 20348,
        "ansible_os_name": "Microsoft Windows Server 2022 Datacenter"}
    assert facts["ansible_memtotal_mb"] == 8192 and facts["ansible_processor_vcpus"] == 2
    assert facts["ansible_ip_addresses"][0] == "192.168.56.21" and facts["ansible_hostname"] == "WIN-SIM2022"

    cmd = r"C:\Windows\System32\cmd.exe"
    stat = ok(h.request("win_stat", "probe", {"path": cmd.lower(), "get_checksum": True,
                                              "checksum_algorithm": "sha256"}))["stat"]
    with open(peer.fs_path(cmd), "rb") as fh:
        data = fh.read()
    assert stat["exists"] and stat["isreg"] and not stat["isdir"] and stat["path"] == cmd
    assert (stat["filename"], stat["extension"], stat["size"]) == ("cmd.exe", ".exe", len(data))
    assert stat["checksum"] == hashlib.sha256(data).hexdigest() and stat["attributes"] == "Archive"
    assert isinstance(stat["lastwritetime"], float)
    assert ok(h.request("win_stat", "probe", {"path": r"C:\nope"}))["stat"] == {"exists": False}
    d = ok(h.request("win_stat", "probe", {"path": r"C:\Windows\System32\drivers"}))["stat"]
    assert d["isdir"] and not d["isreg"] and "extension" not in d and d["size"] > 0

    binary = r"C:\Program Files\Agent\agent.exe"
    res = h.cmdlets(("New-Service", {"Name": "agent", "BinaryPathName": '"%s" --run' % binary,
                                     "DisplayName": "Test Agent", "StartupType": "Automatic",
                                     "DependsOn": ["RpcSs"], "Description": "d"}),
                    ("Start-Service", {"Name": "agent"}))
    assert res["ok"] is False and res["exception"] == "Microsoft.PowerShell.Commands.ServiceCommandException"
    assert res["msg"] == ("Service 'Test Agent (agent)' cannot be started due to the following error: Cannot start "
                          "service agent on computer '.'.")
    assert res["error_id"] == "CouldNotStartService,Microsoft.PowerShell.Commands.StartServiceCommand"
    assert res["category"] == "OpenError"
    ok(h.cmdlets(("New-Item", {"Path": binary, "ItemType": "File", "Value": "MZ", "Force": True}),
                 ("Start-Service", {"Name": "agent"})))
    svc = ok(h.cmdlets(("Get-Service", {"Name": "AGENT"})))["results"][0][0]
    assert (svc["Status"], svc["StartType"], svc["DisplayName"], svc["ServicesDependedOn"]) == (
        "Running", "Automatic", "Test Agent", ["RpcSs"])
    res = h.cmdlets(("Set-Service", {"Name": "agent", "StartupType": "AutomaticDelayedStart"}))
    assert res["exception"] == "System.Management.Automation.ParameterBindingException"  # 5.1 has no such type
    res = ok(h.cmdlets(("sc.exe", {"argv": ["failure", "agent", "reset=", "86400", "actions=",
                                            "restart/5000/restart/5000//0"]}),
                       ("sc.exe", {"argv": ["config", "agent", "start=", "delayed-auto"]}),
                       ("sc.exe", {"argv": ["delete", "nosuch"]})))
    assert res["results"][0] == [0, "[SC] ChangeServiceConfig2 SUCCESS\r\n"]
    assert res["results"][2][0] == 1060
    st = peer.state()["services"]["agent"]
    assert st["start_mode"] == "delayed" and st["failure_actions"]["actions"][0] == {"type": "restart",
                                                                                     "delay_ms": 5000}
    res = ok(h.cmdlets(("sc.exe", {"argv": ["delete", "agent"]})))  # running: marked, gone when stopped
    assert "agent" in peer.state()["services"]
    ok(h.cmdlets(("Stop-Service", {"Name": "agent"})))
    assert "agent" not in peer.state()["services"]
    assert h.close() == 0


def test_upload_and_download_scripts_use_the_simulated_disk(sim):
    put_tpl, get_tpl = rust_script("put_script"), rust_script("get_script")
    peer = sim()
    p = protocol(peer)
    shell = p.open_shell(codepage=65001)
    h = HostClient(peer)
    h.next_frame()
    ok(h.cmdlets(("New-Item", {"Path": r"C:\Temp", "ItemType": "Directory"})))
    content = os.urandom(150000)
    dest = "c:\\Temp\\O'Brien ‘quoted’.bin"

    def put(path, data, expected=None):
        script = put_tpl.format(dest=ps_quote(path), expected=ps_quote(expected or hashlib.sha256(data).hexdigest()))
        cid = p.run_command(shell, PS + enc(script))
        lines = b"".join(base64.b64encode(data[i:i + 49152]) + b"\n" for i in range(0, len(data), 49152))
        for i in range(0, len(lines), 60000):
            p.send_command_input(shell, cid, lines[i:i + 60000], end=False)
        p.send_command_input(shell, cid, b"", end=True)
        out, err, rc = p.get_command_output(shell, cid)
        p.cleanup_command(shell, cid)
        return out, err, rc

    out, err, rc = put(dest, content)
    assert (rc, err) == (0, b"") and out == ("sha256=%s\r\n" % hashlib.sha256(content).hexdigest()).encode()
    with open(peer.fs_path(dest), "rb") as fh:
        assert fh.read() == content
    assert os.listdir(os.path.dirname(peer.fs_path(dest))) == [os.path.basename(peer.fs_path(dest))]  # no tmp left
    stat = ok(h.request("win_stat", "probe", {"path": dest, "checksum_algorithm": "sha1"}))["stat"]
    assert stat["size"] == len(content) and stat["checksum"] == hashlib.sha1(content).hexdigest()
    assert stat["path"] == "C:\\Temp\\O'Brien ‘quoted’.bin"

    out, err, rc = put(r"C:\Temp\bad.bin", b"abc", expected="00" * 32)
    assert rc == 3 and err.startswith(b"hash mismatch: received ") and not os.path.exists(
        peer.fs_path(r"C:\Temp\bad.bin"))
    out, err, rc = put(r"C:\NoSuchDir\x.bin", b"abc")
    assert rc == 1 and err.startswith(b"#< CLIXML") and b"Could not find a part of the path" in err

    def get(path):
        cid = p.run_command(shell, PS + enc(get_tpl.format(src=ps_quote(path))))
        out, err, rc = p.get_command_output(shell, cid)
        p.cleanup_command(shell, cid)
        return out, err, rc

    out, err, rc = get(dest.upper())
    lines = out.decode().split("\r\n")
    assert rc == 0 and lines[-1] == "" and lines[-2] == "sha256=" + hashlib.sha256(content).hexdigest()
    assert b"".join(base64.b64decode(x) for x in lines[:-2]) == content and len(lines) == 6
    assert get(r"C:\Temp\missing.bin")[1:] == (b"file not found: C:\\Temp\\missing.bin\r\n", 2)
    assert get(r"C:\Temp")[2] == 2  # a directory is not a leaf
    p.close_shell(shell)
    h.close()
    kinds = [r["builtin"] for r in peer.get("records")]
    assert kinds.count("sim_put") == 3 and kinds.count("sim_get") == 3


def test_state_survives_a_restart_and_can_be_set(sim, tmp_path):
    init = tmp_path / "init.json"
    init.write_text(json.dumps({"computer": {"name": "WIN-A", "ipv4_addresses": ["10.0.0.7"], "memory_mb": 4096},
                                "seed_files": {r"C:\k\agent.exe": "MZ"}}))
    state_dir = tmp_path / "shared-state"
    peer = sim("--sim-init", str(init), state_dir=state_dir, name="a")
    h = HostClient(peer)
    assert h.next_frame().payload["host"] == "WIN-A"
    ok(h.request("win_feature", "apply", plan={"install": ["Telnet-Client"], "uninstall": []}))
    ok(h.cmdlets(("Add-MpPreference", {"ExclusionPath": [r"C:\k", r"c:\K"], "ExclusionProcess": "agent.exe"}),
                 ("SetEnvironmentVariable", ["Path", r"C:\Windows\system32;C:\Windows;C:\k", "Machine"]),
                 ("New-NetFirewallRule", {"Name": "agent-in", "DisplayName": "Agent", "Protocol": "UDP",
                                          "LocalPort": ["4789"], "Direction": "Inbound", "Action": "Allow"})))
    dup = h.cmdlets(("New-NetFirewallRule", {"Name": "agent-in", "DisplayName": "Agent"}))
    assert dup["exception"] == "Microsoft.Management.Infrastructure.CimException"
    assert dup["error_id"] == "Windows System Error 183,New-NetFirewallRule"
    missing = h.cmdlets(("Get-NetFirewallRule", {"Name": "nope"}))
    assert missing["msg"].startswith("No MSFT_NetFirewallRule objects found with property 'InstanceID' equal to "
                                     "'nope'.") and missing["category"] == "ObjectNotFound"
    # the running host keeps the PATH it started with; a new process sees the machine's new one
    got = ok(h.cmdlets(("GetEnvironmentVariable", ["Path", "Process"]),
                       ("GetEnvironmentVariable", ["Path", "Machine"])))["results"]
    assert not got[0].endswith(r"C:\k") and got[1].endswith(r"C:\k")
    h.close()
    boot = peer.get("stats")["boot_time_filetime"]
    peer.stop()

    again = sim("--sim-init", str(init), state_dir=state_dir, name="b")
    assert again.get("stats")["boot_time_filetime"] == boot and again.get("stats")["mode"] == "sim"
    st = again.state()
    assert st["computer"]["name"] == "WIN-A" and st["features"]["Telnet-Client"] == "Installed"
    assert st["defender"]["exclusion_path"] == [r"C:\k"] and st["defender"]["exclusion_process"] == ["agent.exe"]
    assert st["environment"]["machine"]["Path"].endswith(r";C:\k")
    assert st["firewall_rules"]["agent-in"]["local_port"] == ["4789"]
    h = HostClient(again)
    h.next_frame()
    facts = ok(h.request("setup", "run", {}))["ansible_facts"]
    assert facts["ansible_ip_addresses"][0] == "10.0.0.7" and facts["ansible_memtotal_mb"] == 4096
    assert ok(h.request("win_stat", "probe", {"path": r"C:\K\Agent.exe"}))["stat"]["size"] == 2
    h.close()
    # POST /sim/state replaces the state (missing parts come back as a fresh host's)
    again.post("sim/state", {"computer": {"name": "WIN-B"}, "features": {"Hyper-V": "Installed"}})
    st = again.state()
    assert st["computer"]["name"] == "WIN-B" and st["features"]["Hyper-V"] == "Installed"
    assert st["features"]["Telnet-Client"] == "Available" and st["defender"]["exclusion_path"] == []
    again.post("sim/patch", {"reboot_pending": True})
    assert again.state()["reboot_pending"] is True and again.state()["computer"]["name"] == "WIN-B"


def test_reboot_by_shutdown_runs_startup_tasks_and_automatic_services(sim):
    peer = sim()
    h = HostClient(peer)
    h.next_frame()
    action = {"execute": r"C:\k\agent.exe", "arguments": "--config C:\\k\\config.yaml"}
    ok(h.cmdlets(
        ("New-Item", {"Path": r"C:\k\agent.exe", "ItemType": "File", "Value": "MZ", "Force": True}),
        ("Register-ScheduledTask", {"TaskName": "agent", "TaskPath": "\\mixop\\", "Action": action,
                                    "Trigger": {"type": "AtStartup"},
                                    "Principal": {"user_id": "SYSTEM", "logon_type": "ServiceAccount",
                                                  "run_level": "Highest"},
                                    "Settings": {"restart_count": 3, "restart_interval": "PT1M"}}),
        ("Register-ScheduledTask", {"TaskName": "ghost", "Action": {"execute": r"C:\nope\ghost.exe"},
                                    "Trigger": {"type": "AtStartup"}, "Settings": {"restart_count": 2}}),
        ("Register-ScheduledTask", {"TaskName": "script", "Action": {"execute": "powershell.exe",
                                                                     "arguments": "-File C:\\k\\missing.ps1"},
                                    "Trigger": {"type": "AtStartup"}}),
        ("New-Service", {"Name": "withbin", "BinaryPathName": r"C:\k\agent.exe svc"}),
        ("New-Service", {"Name": "nobin", "BinaryPathName": r"C:\k\gone.exe"}),
        ("New-Service", {"Name": "manual", "BinaryPathName": r"C:\k\agent.exe", "StartupType": "Manual"})))
    dup = h.cmdlets(("Register-ScheduledTask", {"TaskName": "agent", "TaskPath": "\\mixop", "Action": action}))
    assert dup["error_id"] == "HRESULT 0x800700b7,Register-ScheduledTask"
    info = ok(h.cmdlets(("Get-ScheduledTaskInfo", {"TaskName": "agent"})))["results"][0]
    assert info["LastTaskResult"] == 267011 and info["LastRunTime"] is None  # has not run yet
    h.close()

    def shutdown():
        r = winrm.Session(peer.url, auth=(USER, PASSWORD), transport="ntlm").run_cmd("shutdown", ["/r", "/t", "0"])
        assert r.status_code == 0

    peer.reboot_and_wait(shutdown)
    st = peer.state()
    runs = {r["task"]: r for r in st["startup_runs"]}
    assert runs["\\mixop\\agent"]["ok"] is True and runs["\\mixop\\agent"]["reason"] == "boot"
    assert runs["\\mixop\\agent"]["arguments"] == "--config C:\\k\\config.yaml"
    assert (runs["\\ghost"]["result_hex"], runs["\\ghost"]["attempts"]) == ("0x80070002", 3)
    assert runs["\\script"]["result"] == 0xFFFD0000
    assert st["scheduled_tasks"]["\\mixop\\agent"]["state"] == "Running"
    svcs = st["services"]
    assert (svcs["withbin"]["status"], svcs["nobin"]["status"], svcs["manual"]["status"]) == (
        "Running", "Stopped", "Stopped")
    assert svcs["winrm"]["status"] == "Running"
    last = st["boot"]["history"][-1]
    assert "nobin" in last["services_failed"] and "\\mixop\\agent" in last["tasks_run"]
    h = HostClient(peer)
    h.next_frame()
    info = ok(h.cmdlets(("Get-ScheduledTaskInfo", {"TaskName": "agent", "TaskPath": "\\mixop\\"})))["results"][0]
    assert info["LastTaskResult"] == 267009 and info["LastRunTime"]
    # the boot time the record-mode built-in reports is the simulated host's
    boot = peer.get("stats")["boot_time_filetime"]
    r = winrm.Session(peer.url, auth=(USER, PASSWORD), transport="ntlm").run_ps(
        "(Get-CimInstance Win32_OperatingSystem -Property LastBootUpTime).LastBootUpTime.ToFileTime()")
    assert int(r.std_out) == boot
    assert abs(peer.state()["boot"]["time_unix"] - (boot / 1e7 - 11644473600)) < 1
    h.close()


# --------------------------------------------------------------------------------------------
# helpers: mixop's transfer scripts, taken from the Rust source so the test follows it
# --------------------------------------------------------------------------------------------

def rust_script(fn: str) -> str:
    """The format string of ps.rs `fn` as a Python format string."""
    src = open(PS_RS, encoding="utf-8").read()
    m = re.search(r"pub fn %s\(.*?format!\(\s*r#\"(.*?)\"#," % fn, src, re.S)
    assert m, "ps.rs: %s not found" % fn
    return m.group(1)  # Rust's format! syntax ({{ }} escapes, {name} fields) is Python's str.format syntax


def ps_quote(s: str) -> str:
    """ps.rs quote(): a single-quoted literal, quote characters (' and U+2018..U+201B) doubled."""
    return "'" + "".join(c * 2 if c in "'\u2018\u2019\u201a\u201b" else c for c in s) + "'"


# --------------------------------------------------------------------------------------------
# the cmdlet layer on its own (no peer): shapes and errors the wire tests do not reach
# --------------------------------------------------------------------------------------------

def test_cmdlet_layer_shapes_and_errors(tmp_path):
    from sim.cmdlets import Cmdlets
    from sim.errors import CmdletError
    from sim.state import HostState

    host = HostState(str(tmp_path / "state"))
    ps = Cmdlets(host)

    def err(fn, *a, **k) -> CmdletError:
        with pytest.raises(CmdletError) as ei:
            fn(*a, **k)
        return ei.value

    # Server Manager / DISM
    assert ps.get_windows_feature("NET-Framework-Core")[0]["InstallState"] == "Removed"
    e = err(ps.install_windows_feature, "NET-Framework-Core")
    assert "0x800f081f" in e.msg and e.error_id.startswith("DISMAPI_Error__Failed_To_Enable_Updates,")
    res = ps.install_windows_feature("Web-Default-Doc", include_management_tools=True)
    assert [r["Name"] for r in res["FeatureResult"]] == ["Web-Server", "Web-WebServer", "Web-Common-Http",
                                                         "Web-Default-Doc", "Web-Mgmt-Tools", "Web-Mgmt-Console"]
    assert res["ExitCode"] == "Success" and res["RestartNeeded"] == "No"
    assert ps.get_windows_optional_feature("Containers")[0]["State"] == "Disabled"
    assert ps.enable_windows_optional_feature("Containers")["RestartNeeded"] is True
    assert ps.get_windows_feature("Containers")[0]["InstallState"] == "InstallPending"
    assert err(ps.get_windows_optional_feature, "Nope").msg == "Feature name Nope is unknown."
    assert ps.uninstall_windows_feature("Windows-Defender")["RestartNeeded"] == "Yes"
    ps.boot(time.time())
    assert ps.get_windows_optional_feature("Containers")[0]["State"] == "Enabled"
    e = err(ps.get_mp_preference)  # Defender removed
    assert e.exception == "Microsoft.Management.Infrastructure.CimException"
    assert err(ps.get_service, "WinDefend").error_id == \
        "NoServiceFoundForGivenName,Microsoft.PowerShell.Commands.GetServiceCommand"
    # services
    e = err(ps.stop_service, "RpcSs")
    assert e.error_id.startswith("ServiceHasDependentServices,") and "-Force" not in e.msg
    assert err(ps.set_service, "nope", startup_type="Manual").exception == "System.InvalidOperationException"
    # files
    ps.new_item(r"C:\Data\Sub", "Directory")
    ps.set_content(r"C:\Data\a.txt", ["héllo"], encoding="UTF8")
    assert ps.get_content_bytes(r"c:\data\A.TXT") == "\ufeffhéllo\r\n".encode("utf-8")
    ps.set_attributes(r"C:\Data\a.txt", "ReadOnly, Archive")
    item = ps.get_item(r"C:\DATA\a.txt")
    assert (item["FullName"], item["Attributes"], item["Mode"], item["Length"]) == (
        r"C:\Data\a.txt", "ReadOnly, Archive", "-ar---", 11)
    assert err(ps.set_content, r"C:\Data\a.txt", "x").exception == "System.UnauthorizedAccessException"
    assert err(ps.remove_item, r"C:\Data").exception == "System.Management.Automation.PSInvalidOperationException"
    assert err(ps.new_item, r"C:\Nope\x.txt").exception == "System.IO.DirectoryNotFoundException"
    assert err(ps.get_item, r"C:\Nope").error_id == "PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand"
    assert ps.get_file_hash(r"C:\Data\a.txt", "SHA1")["Hash"] == hashlib.sha1(
        "\ufeffhéllo\r\n".encode("utf-8")).hexdigest().upper()
    ps.remove_item(r"C:\Data", recurse=True, force=True)
    assert not ps.test_path(r"C:\Data") and ps.test_path(r"C:\Windows", "Container")
    # environment, firewall, tasks, CIM
    e = err(ps.set_environment_variable, "a=b", "1", "Machine")
    assert e.exception == "System.Management.Automation.MethodInvocationException" and e.error_id == "ArgumentException"
    ps.set_environment_variable("MIXOP", "1", "Machine")
    assert ps.get_environment_variable("mixop", "Machine") == "1" and ps.get_environment_variable("MIXOP") is None
    assert err(ps.new_net_firewall_rule, "icmp", protocol="ICMPv4", local_port=["80"]).error_id == \
        "Windows System Error 87,New-NetFirewallRule"
    assert err(ps.new_net_firewall_rule, "x", direction="In").exception == \
        "System.Management.Automation.ParameterBindingException"
    rule = ps.new_net_firewall_rule("Any name", profile="Private,Domain")
    assert rule["Name"].startswith("{") and rule["Profile"] == "Domain, Private" and rule["Enabled"] == "True"
    assert err(ps.unregister_scheduled_task, "nope").error_id == "CmdletizationQuery_NotFound_TaskName,Unregister-ScheduledTask"
    assert err(ps.get_cim_instance, "Win32_Bogus").error_id.startswith("HRESULT 0x80041010,")
    osi = ps.get_cim_instance("Win32_OperatingSystem")
    assert (osi["Caption"], osi["Version"], osi["BuildNumber"], osi["OSArchitecture"]) == (
        "Microsoft Windows Server 2022 Datacenter", "10.0.20348", "20348", "64-bit")
    assert ps.get_cim_instance("Win32_ComputerSystem")["NumberOfLogicalProcessors"] == 2
