"""The simulated Windows host joining the (stand-in) Kubernetes cluster: the stand-in programs of
tests/support/winrm_peer/sim/standins.py (the lab's k3s.exe, containerd.exe, RKE2's install.ps1, rke2.exe
and rke2-uninstall.ps1) against the project's Kubernetes API double on loopback.

Each test starts its own simulated host (``peer.py --mode sim`` on port 0) and its own API double
(``kube_double/server.py --listen 127.0.0.1:0``). The host is set up over the wire (pywinrm: the
``sim_cmdlet`` diagnostic module through the PowerShell host protocol, and plain WinRS commands for
what ``win_command`` runs), and the results are checked as data: the Node objects in the double, the
host's state (``GET /sim/state``: services, tasks, event log, HNS networks).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from test_winrm_sim import PS, SimPeer, HostClient, enc, ok, protocol

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOUBLE = os.path.join(ROOT, "tests", "support", "kube_double", "server.py")
STANDINS = os.path.join(ROOT, "tests", "support", "standins", "windows")
sys.path.insert(0, os.path.join(ROOT, "tests", "support", "winrm_peer"))

from sim import standins  # noqa: E402

K3S_EXE = r"C:\k3s\k3s.exe"
K3S_CONFIG = r"C:\etc\rancher\k3s\config.yaml"
CTD_DIR = r"C:\Program Files\containerd"
CTD_SERVICE_PATH = r'"%s\bin\containerd.exe" --run-service --config "%s\config.toml"' % (CTD_DIR, CTD_DIR)


def standin(name: str) -> str:
    with open(os.path.join(STANDINS, name), encoding="utf-8") as fh:
        return fh.read()


class Double:
    """The Kubernetes API double, as the lab's server stand-in runs it (one Linux server node carrying
    flannel's backend annotations)."""

    def __init__(self, tmp, dist="k3s", vni=4096, port=4789, backend="vxlan"):
        self.dir = str(tmp)
        os.makedirs(self.dir, exist_ok=True)
        scenario = {"distribution": dist, "podReadyDelay": 0.2, "systemPods": False, "nodes": [{
            "name": "lab1", "os": "linux", "roles": ["control-plane", "master"], "ip": "10.231.0.10",
            "annotations": {"flannel.alpha.coreos.com/backend-type": backend,
                            "flannel.alpha.coreos.com/backend-data":
                                json.dumps({"VNI": vni, "VtepMAC": "02:42:0a:e7:00:0a", "Port": port})}}]}
        with open(os.path.join(self.dir, "scenario.yaml"), "w") as fh:
            yaml.safe_dump(scenario, fh)
        self.log = open(os.path.join(self.dir, "double.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, DOUBLE, "--listen", "127.0.0.1:0", "--state-dir", self.dir,
                                      "--scenario", os.path.join(self.dir, "scenario.yaml")],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 20
        while not os.path.exists(os.path.join(self.dir, "port")):
            assert self.proc.poll() is None and time.time() < deadline, "the API double did not start"
            time.sleep(0.05)
        self.port = int(open(os.path.join(self.dir, "port")).read())
        self.token = open(os.path.join(self.dir, "token")).read().strip()
        self.url = "https://127.0.0.1:%d" % self.port

    def get(self, path: str):
        ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))
        req = urllib.request.Request(self.url + path, headers={"Authorization": "Bearer " + self.token})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
        try:
            with opener.open(req, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def node(self, name: str):
        return self.get("/api/v1/nodes/" + name)

    def wait_node(self, name: str, ready: str | None = "True", timeout: float = 15):
        deadline = time.time() + timeout
        n = None
        while time.time() < deadline:
            n = self.node(name)
            if n is not None and (ready is None or ready_of(n) == ready):
                return n
            time.sleep(0.1)
        raise AssertionError("node %s not %s in time: %s" % (name, ready, json.dumps(n)[:2000]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def ready_of(node: dict) -> str | None:
    return next((c["status"] for c in node["status"].get("conditions") or [] if c["type"] == "Ready"), None)


def ready_message(node: dict) -> str:
    return next((c.get("message", "") for c in node["status"].get("conditions") or [] if c["type"] == "Ready"), "")


@pytest.fixture
def lab(tmp_path):
    made = []

    def peer(name="win1", features=None, seed=None, **init):
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        state = {"computer": {"name": name.upper(), "ipv4_addresses": ["10.231.0.21"]},
                 "features": features or {"Containers": "Installed"}, "seed_files": seed or {}}
        state.update(init)
        with open(d / "init.json", "w") as fh:
            json.dump(state, fh)
        p = SimPeer(d, d / "state", "--sim-init", str(d / "init.json"))
        made.append(p)
        return p

    def double(**kw):
        d = Double(tmp_path / ("double%d" % len(made)), **kw)
        made.append(d)
        return d

    yield peer, double
    for m in made:
        m.stop()
    for m in made:
        if isinstance(m, SimPeer):
            assert "Traceback" not in m.log(), m.log()


def k3s_config(double: Double, token=None, node="win1", endpoint=True) -> str:
    cfg = {"server": double.url, "token": token or double.token, "node-ip": "10.231.0.21", "node-name": node,
           "flannel-backend": "vxlan", "data-dir": r"C:\var\lib\rancher\k3s"}
    if endpoint:
        cfg["container-runtime-endpoint"] = "npipe:////./pipe/containerd-containerd"
    return yaml.safe_dump(cfg)


def k3s_seed(double: Double, **kw) -> dict:
    return {K3S_EXE: standin("k3s.exe") + "version: v1.32.5+k3s1\n", K3S_CONFIG: k3s_config(double, **kw),
            CTD_DIR + r"\bin\containerd.exe": standin("containerd.exe") + "version: 2.3.0\n",
            CTD_DIR + r"\config.toml": "version = 3\n"}


AGENT_TASK = ("Register-ScheduledTask", {
    "TaskName": "k3s-agent", "Description": "k3s agent (mixop)",
    "Action": {"execute": K3S_EXE, "arguments": "agent --config " + K3S_CONFIG},
    "Trigger": {"type": "AtStartup", "enabled": True},
    "Principal": {"user_id": "SYSTEM", "logon_type": "ServiceAccount", "run_level": "Highest"},
    "Settings": {"restart_count": 999, "restart_interval": "PT1M", "execution_time_limit": "PT0S", "enabled": True}})
CONTAINERD_SERVICE = ("New-Service", {"Name": "containerd", "BinaryPathName": CTD_SERVICE_PATH,
                                      "DisplayName": "containerd container runtime", "StartupType": "Automatic"})


def events(peer: SimPeer, source: str, log: str = "Application") -> list[dict]:
    return [e for e in peer.state()["event_log"][log] if e["source"] == source]


def wait_for(pred, timeout=10, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("no %s in %ss" % (what, timeout))


def cmd(peer: SimPeer, line: str, skip_cmd_shell=False) -> tuple[int, str, str]:
    """A WinRS command line, as win_command sends it."""
    p = protocol(peer)
    shell = p.open_shell(codepage=65001, env_vars=None)
    try:
        cid = p.run_command(shell, line)
        out, err, rc = p.get_command_output(shell, cid)
        p.cleanup_command(shell, cid)
    finally:
        p.close_shell(shell)
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# k3s.exe
# --------------------------------------------------------------------------------------------

def test_k3s_agent_task_joins_a_ready_windows_node_and_stops_with_its_task(lab):
    peer, double = lab
    api = double()
    host = peer(seed=k3s_seed(api))
    c = HostClient(host)
    ok(c.cmdlets(CONTAINERD_SERVICE, ("Start-Service", {"Name": "containerd"}), AGENT_TASK,
                 ("Start-ScheduledTask", {"TaskName": "k3s-agent"})))
    node = api.wait_node("win1")
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/os"] == "windows" and labels["kubernetes.io/arch"] == "amd64"
    assert labels["kubernetes.io/hostname"] == "win1"
    assert labels["node.kubernetes.io/windows-build"] == "10.0.20348"
    assert labels["node.kubernetes.io/instance-type"] == "k3s"
    info = node["status"]["nodeInfo"]
    assert info["osImage"] == "Windows Server 2022 Datacenter" and info["operatingSystem"] == "windows"
    assert info["kernelVersion"] == "10.0.20348.2849"
    assert info["containerRuntimeVersion"] == "containerd://2.3.0"
    assert info["kubeletVersion"] == api.get("/version")["gitVersion"] == "v1.32.5+k3s1"
    assert {"type": "InternalIP", "address": "10.231.0.21"} in node["status"]["addresses"]
    ann = node["metadata"]["annotations"]
    assert json.loads(ann["flannel.alpha.coreos.com/backend-data"])["VNI"] == 4096
    assert "********" in ann["k3s.io/node-args"] and api.token not in json.dumps(node)
    assert node["spec"]["podCIDR"].startswith("10.42.")
    st = host.state()
    assert st["scheduled_tasks"]["\\k3s-agent"]["state"] == "Running"
    nets = wait_for(lambda: host.state()["hns_networks"], what="HNS network")
    assert [(n["Name"], n["Type"], n["Subnets"][0]["AddressPrefix"]) for n in nets] == [
        ("flannel.4096", "Overlay", node["spec"]["podCIDR"])]
    wait_for(lambda: any("registered" in e["message"] for e in events(host, "k3s")), what="k3s registered entry")
    assert any("successfully booted" in e["message"] for e in events(host, "containerd"))
    # Stopping the task stops the agent: the node stays (NotReady/Unknown) until someone deletes it.
    ok(c.cmdlets(("Stop-ScheduledTask", {"TaskName": "k3s-agent"})))
    api.wait_node("win1", ready="Unknown")
    t = host.state()["scheduled_tasks"]["\\k3s-agent"]
    assert (t["state"], t["last_task_result"]) == ("Ready", 0x41306)
    c.close()
    # At boot: containerd (automatic) starts, the AtStartup task runs, the agent re-joins.
    host.reboot_and_wait()
    api.wait_node("win1", ready="True")
    st = host.state()
    assert st["services"]["containerd"]["status"] == "Running"
    assert st["scheduled_tasks"]["\\k3s-agent"]["state"] == "Running"
    assert [n["Name"] for n in st["hns_networks"]] == ["flannel.4096"]  # recreated (HNS networks do not persist)


def test_k3s_agent_with_a_wrong_token_registers_nothing_and_says_so(lab):
    peer, double = lab
    api = double()
    host = peer(seed=k3s_seed(api, token="K10" + "0" * 64 + "::server:wrong", endpoint=False))
    c = HostClient(host)
    ok(c.cmdlets(AGENT_TASK, ("Start-ScheduledTask", {"TaskName": "k3s-agent"})))
    errors = wait_for(lambda: [e for e in events(host, "k3s") if e["entry_type"] == "Error"], what="k3s error")
    assert "401 Unauthorized" in errors[0]["message"] and "token" in errors[0]["message"]
    assert api.node("win1") is None
    t = wait_for(lambda: (lambda t: t if t["state"] == "Ready" else None)(host.state()["scheduled_tasks"]["\\k3s-agent"]),
                 what="task end")
    assert t["last_task_result"] == 1
    # what win_eventlog_info's script asks for: Get-EventLog -Source k3s -EntryType Error -Newest 5
    res = ok(c.request("win_eventlog_info", "probe", {"log": "Application", "source": ["k3s"],
                                                        "entry_type": ["Error"], "newest": 5}))
    assert len(res["entries"]) == 1 and "401 Unauthorized" in res["entries"][0]["message"]
    assert res["entries"][0]["entry_type"] == "Error" and res["entries"][0]["time_generated"].endswith("Z")
    # No entries at all is an empty list, not Get-EventLog's "No matches found".
    assert ok(c.request("win_eventlog_info", "probe", {"log": "Application", "source": ["nothing"],
                                                        "newest": 5})) == {"entries": []}
    bad = c.request("win_eventlog_info", "probe", {"log": "NoSuchLog", "newest": 5})
    assert bad["ok"] is False and "does not exist" in bad["msg"]
    c.close()


def test_vni_mismatch_registers_a_not_ready_node_that_explains_itself(lab):
    peer, double = lab
    api = double(vni=1, port=8472)  # a default Linux k3s server (k3s-io/k3s#9295)
    host = peer(seed=k3s_seed(api, endpoint=False))
    c = HostClient(host)
    ok(c.cmdlets(AGENT_TASK, ("Start-ScheduledTask", {"TaskName": "k3s-agent"})))
    node = api.wait_node("win1", ready="False")
    time.sleep(0.3)  # nothing flips it to Ready later
    node = api.node("win1")
    msg = ready_message(node)
    assert ready_of(node) == "False"
    assert "VNI 1 on UDP 8472" in msg and "VNI 4096 on UDP 4789" in msg and "k3s-io/k3s#9295" in msg, msg
    assert any(t["key"] == "node.kubernetes.io/not-ready" for t in node["spec"].get("taints") or [])
    assert any("k3s-io/k3s#9295" in e["message"] for e in events(host, "k3s") if e["entry_type"] == "Error")
    c.close()


def test_host_gw_server_and_missing_containerd(lab):
    peer, double = lab
    api = double(backend="host-gw")
    host = peer(seed=k3s_seed(api))
    c = HostClient(host)
    # containerd's pipe as the runtime endpoint, but the service is not running: the agent fails
    ok(c.cmdlets(AGENT_TASK, ("Start-ScheduledTask", {"TaskName": "k3s-agent"})))
    err = wait_for(lambda: [e for e in events(host, "k3s") if e["entry_type"] == "Error"], what="k3s error")
    assert "containerd-containerd" in err[0]["message"] and "not running" in err[0]["message"]
    assert api.node("win1") is None
    # containerd without its --config file does not start (and says why)
    ok(c.cmdlets(("Remove-Item", {"Path": CTD_DIR + r"\config.toml"}), CONTAINERD_SERVICE))
    res = c.cmdlets(("Start-Service", {"Name": "containerd"}))
    assert res["ok"] is False and "cannot be started" in res["msg"]
    assert any("config.toml" in e["message"] and e["entry_type"] == "Error" for e in events(host, "containerd"))
    assert any(e["event_id"] == 7000 for e in events(host, "Service Control Manager", "System"))
    ok(c.cmdlets(("Set-Content", {"Path": CTD_DIR + r"\config.toml", "Value": "version = 3"}),
                 ("Start-Service", {"Name": "containerd"}), ("Start-ScheduledTask", {"TaskName": "k3s-agent"})))
    node = api.wait_node("win1", ready="False")
    assert "unsupported flannel backend 'host-gw' for Windows" in ready_message(node)
    c.close()


def test_k3s_exe_as_a_service_fails_and_commands_run_the_standin(lab):
    peer, double = lab
    api = double()
    host = peer(seed=k3s_seed(api, endpoint=False))
    c = HostClient(host)
    res = c.cmdlets(("New-Service", {"Name": "k3s", "BinaryPathName": K3S_EXE + " agent"}),
                    ("Start-Service", {"Name": "k3s"}))
    assert res["ok"] is False and "cannot be started" in res["msg"]  # k3s-io/k3s#9298
    sysev = events(host, "Service Control Manager", "System")
    assert [e["event_id"] for e in sysev][-2:] == [7009, 7000] and "timely fashion" in sysev[-1]["message"]
    c.close()
    rc, out, _ = cmd(host, K3S_EXE + " --version")
    assert rc == 0 and "k3s version v1.32.5+k3s1" in out
    rc, out, _ = cmd(host, r"cd /d C:\k3s && k3s.exe --version")
    assert rc == 0 and "k3s version" in out
    # mixop's creates/removes probe is answered from the simulated disk
    probe = "if (Test-Path -LiteralPath '%s') { exit 0 } else { exit 1 }"
    assert cmd(host, PS + enc(probe % K3S_EXE))[0] == 0
    assert cmd(host, PS + enc(probe % r"C:\nope.exe"))[0] == 1
    # a program that is not a stand-in is still record mode's (rc 0, no output)
    assert cmd(host, "whoami /all") == (0, "", "")


# --------------------------------------------------------------------------------------------
# RKE2
# --------------------------------------------------------------------------------------------

RKE2_ART = r"C:\rke2-artifacts"
INSTALL = "powershell.exe -NoProfile -ExecutionPolicy Bypass -File %s\\install.ps1 -Version v1.32.5+rke2r1 " \
          "-ArtifactPath %s" % (RKE2_ART, RKE2_ART)


def test_rke2_install_needs_containers_then_the_service_joins_and_uninstalls(lab):
    peer, double = lab
    api = double(dist="rke2")
    seed = {RKE2_ART + r"\install.ps1": standin("rke2-install.ps1"), RKE2_ART + r"\rke2.exe": standin("rke2.exe"),
            RKE2_ART + r"\rke2-uninstall.ps1": standin("rke2-uninstall.ps1"),
            r"C:\etc\rancher\rke2\config.yaml": yaml.safe_dump({"server": api.url, "token": api.token,
                                                                 "node-name": "win2"})}
    host = peer("win2", features={"Containers": "Available"}, seed=seed)
    rc, out, _ = cmd(host, INSTALL)
    assert rc == 1, out
    assert "[ERROR] Windows feature: 'Containers' is not installed. Please run: Install-WindowsFeature -Name " \
           "Containers" in out
    assert not os.path.exists(host.fs_path(r"C:\usr\local\bin\rke2.exe"))
    c = HostClient(host)
    ok(c.cmdlets(("Install-WindowsFeature", {"Name": "Containers"})))
    c.close()
    rc, out, _ = cmd(host, INSTALL)
    assert rc == 1, "InstallPending is not Installed: the restart comes first"
    host.reboot_and_wait()
    rc, out, _ = cmd(host, INSTALL)
    assert rc == 0 and "install complete" in out, out
    exe = open(host.fs_path(r"C:\usr\local\bin\rke2.exe")).read()
    assert exe.startswith("#mixop-standin rke2") and "version: v1.32.5+rke2r1" in exe
    assert os.path.exists(host.fs_path(r"C:\usr\local\bin\rke2-uninstall.ps1"))
    rc, out, _ = cmd(host, r"C:\usr\local\bin\rke2.exe agent service --add")
    assert rc == 0, out
    svc = host.state()["services"]["rke2"]
    assert (svc["binary_path_name"], svc["start_mode"]) == (r"C:\usr\local\bin\rke2.exe agent service", "auto")
    assert cmd(host, r"C:\usr\local\bin\rke2.exe agent service --add")[0] == 1  # already there
    c = HostClient(host)
    ok(c.cmdlets(("Start-Service", {"Name": "rke2"})))
    node = api.wait_node("win2")
    assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "rke2"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.32.5+rke2r1"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert "rke2.io/node-args" in node["metadata"]["annotations"]
    c.close()
    rc, out, _ = cmd(host, r"powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\usr\local\bin\rke2-uninstall.ps1")
    assert rc == 0, out
    st = host.state()
    assert "rke2" not in st["services"]
    for p in (r"C:\usr\local\bin\rke2.exe", r"C:\etc\rancher\rke2", r"C:\usr\local\bin\rke2-uninstall.ps1"):
        assert not os.path.exists(host.fs_path(p)), p
    api.wait_node("win2", ready="Unknown")  # the node stays until teardown deletes it


def test_rke2_api_address_and_flannel_rules():
    assert standins._api_base("rke2", "https://10.231.0.10:9345") == "https://10.231.0.10:6443"
    assert standins._api_base("k3s", "https://10.231.0.10:6443/") == "https://10.231.0.10:6443"
    assert standins._api_base("rke2", "https://127.0.0.1:40001") == "https://127.0.0.1:40001"

    def server(bt, data):
        return [{"metadata": {"name": "lab1", "labels": {"node-role.kubernetes.io/control-plane": "true"},
                              "annotations": {"flannel.alpha.coreos.com/backend-type": bt,
                                              "flannel.alpha.coreos.com/backend-data": json.dumps(data)}}}]
    assert standins.flannel_problem(server("vxlan", {"VNI": 4096, "Port": 4789}), "k3s") is None
    assert "VNI 1 on UDP 8472" in standins.flannel_problem(server("vxlan", {"VNI": 1}), "k3s")
    assert "cni: calico" in standins.flannel_problem(server("vxlan", {"VNI": 4096, "Port": 8472}), "rke2")
    assert "unsupported flannel backend 'wireguard-native'" in standins.flannel_problem(server("wireguard-native", {}),
                                                                                         "k3s")
    assert standins.flannel_problem([], "k3s") is None


# --------------------------------------------------------------------------------------------
# HNS and scheduled-task handlers
# --------------------------------------------------------------------------------------------

def test_hns_and_task_stat_handlers(lab):
    peer, _ = lab
    host = peer(features={"Containers": "Available"})
    c = HostClient(host)
    # No HostNetworkingService module without the Containers feature: nothing to remove.
    assert ok(c.request("win_hns_network", "probe", {"name": "flannel.4096"})) == {"available": False,
                                                                                    "networks": []}
    bad = c.cmdlets(("Get-HnsNetwork", {}))
    assert bad["ok"] is False and bad["exception"] == "System.Management.Automation.CommandNotFoundException"
    c.close()
    host.post("sim/patch", {"features": {"Containers": "Installed"}})
    c = HostClient(host)
    net = ok(c.cmdlets(("New-HnsNetwork", {"Type": "Overlay", "Name": "vxlan0", "AddressPrefix": "10.42.3.0/24"})))
    nid = net["results"][0]["ID"]
    found = ok(c.request("win_hns_network", "probe", {"name": "VXLAN0"}))
    assert found == {"available": True, "networks": [{"id": nid, "name": "vxlan0", "type": "Overlay"}]}
    assert ok(c.request("win_hns_network", "apply", {"name": "vxlan0"}, plan={"remove": [nid.lower()]})) == {
        "removed": [nid]}
    assert host.state()["hns_networks"] == []
    ok(c.cmdlets(AGENT_TASK))
    stat = ok(c.request("win_scheduled_task_stat", "probe", {"name": "K3S-AGENT", "path": "\\"}))
    assert stat["folder_task_names"] == ["k3s-agent"]
    t = stat["task"]
    assert (t["state"], t["last_run_time"], t["last_task_result"]) == ("Ready", None, 0x41303)
    assert t["actions"][0]["execute"] == K3S_EXE and t["triggers"][0]["type"] == "MSFT_TaskBootTrigger"
    assert t["principal"]["logon_type"] == "ServiceAccount" and t["settings"]["RestartCount"] == 999
    assert ok(c.request("win_scheduled_task_stat", "probe", {"name": "nope", "path": "\\"}))["task"] is None
    assert ok(c.request("win_scheduled_task_stat", "probe", {"path": "\\other\\"})) == {"folder_task_names": [],
                                                                                       "task": None}
    c.close()
