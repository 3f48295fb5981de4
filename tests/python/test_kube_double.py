"""Checks the Kubernetes API test double (tests/support/kube_double) with the real kubectl client.

If kubectl accepts the double for apply --server-side, get -l, wait, rollout status and describe, kube-rs
will too; these tests are what keeps mixop's k8s modules and the double from sharing a misunderstanding.
Each test starts from a double it owns (or the module's shared one) on 127.0.0.1:0 in a temp dir."""
import http.client
import json
import os
import pathlib
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVER = ROOT / "tests" / "support" / "kube_double" / "server.py"
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


def find_kubectl(minor="1.32"):
    # /usr/bin/kubectl is gcloud's dispatcher, which picks kubectl.1.NN by the server's /version; call the
    # 1.32 binary directly when it is there so the client version does not depend on what the double reports.
    pinned = "/usr/lib/google-cloud-sdk/bin/kubectl.%s" % minor
    if os.path.exists(pinned):
        return pinned
    return shutil.which("kubectl")


KUBECTL = find_kubectl()

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: default
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      nodeSelector: {{{selector}}}
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 80}}]
"""


def deployment(name, replicas=2, selector="kubernetes.io/os: windows",
               image="mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022"):
    return DEPLOYMENT.format(name=name, replicas=replicas, selector=selector, image=image)


def eventually(fn, timeout=15.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.0fs waiting for %s (last value: %r)" % (timeout, what, last))


class Double:
    def __init__(self, base, scenario=None, pod_ready_delay=0.5):
        self.dir = pathlib.Path(base)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.home = self.dir / "home"
        self.home.mkdir(exist_ok=True)
        args = [PYTHON, str(SERVER), "--listen", "127.0.0.1:0", "--state-dir", str(self.dir / "state"),
                "--pod-ready-delay", str(pod_ready_delay)]
        if scenario is not None:
            sp = self.dir / "scenario.yaml"
            sp.write_text(textwrap.dedent(scenario))
            args += ["--scenario", str(sp)]
        self.log = open(self.dir / "double.log", "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        port_file = self.dir / "state" / "port"
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError("double exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("double did not write its port file:\n" + self.log_text())
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        self.state = self.dir / "state"

    def log_text(self):
        try:
            return (self.dir / "double.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def kubectl(self, *args, kubeconfig="kubeconfig", check=True, timeout=60, stdin=None):
        env = {"HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        cmd = [KUBECTL, "--kubeconfig", str(self.state / kubeconfig)] + list(args)
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d):\nstdout: %s\nstderr: %s\ndouble log tail:\n%s" % (
                " ".join(cmd[3:]), p.returncode, p.stdout, p.stderr, self.log_text()[-1500:]))
        return p

    def kjson(self, *args, **kw):
        return json.loads(self.kubectl(*(list(args) + ["-o", "json"]), **kw).stdout)

    def apply(self, manifest, *extra):
        return self.kubectl("apply", "--server-side", "-f", "-", *extra, stdin=manifest)

    def raw(self, method, path, body=None, headers=None, cert=True):
        ctx = ssl.create_default_context(cafile=str(self.state / "ca.crt"))
        if cert:
            ctx.load_cert_chain(str(self.state / "client-admin.crt"), str(self.state / "client-admin.key"))
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=20)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    if not KUBECTL:
        pytest.fail("kubectl not found (expected /usr/bin/kubectl v1.32 in the machine image)")
    d = Double(tmp_path_factory.mktemp("kube-double"))
    yield d
    d.stop()


@pytest.fixture
def new_double(tmp_path):
    started = []

    def start(scenario=None, **kw):
        d = Double(tmp_path / ("d%d" % len(started)), scenario, **kw)
        started.append(d)
        return d
    yield start
    for d in started:
        d.stop()


def cond(obj, typ):
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == typ), None)


# ---- nodes ------------------------------------------------------------------------------------

def test_get_windows_nodes_by_label(kube):
    out = kube.kjson("get", "nodes", "-l", "kubernetes.io/os=windows")
    assert out["kind"] == "List"
    names = sorted(n["metadata"]["name"] for n in out["items"])
    assert names == ["win1", "win2"]
    for n in out["items"]:
        labels = n["metadata"]["labels"]
        assert labels["kubernetes.io/os"] == "windows"
        assert labels["node.kubernetes.io/windows-build"] == "10.0.20348"
        assert labels["kubernetes.io/arch"] == "amd64"
        ni = n["status"]["nodeInfo"]
        assert ni["osImage"] == "Windows Server 2022 Datacenter"
        assert ni["operatingSystem"] == "windows"
        assert ni["kernelVersion"].startswith("10.0.20348.")
        assert ni["containerRuntimeVersion"].startswith("containerd://1.7.")
        assert ni["kubeletVersion"].startswith("v1.32.")
        assert cond(n, "Ready")["status"] == "True"
        assert n["kind"] == "Node" and n["apiVersion"] == "v1"


@pytest.mark.parametrize("selector,expected", [
    ("kubernetes.io/os!=windows", ["lab-server"]),
    ("kubernetes.io/os in (linux,plan9)", ["lab-server"]),
    ("kubernetes.io/os notin (linux)", ["win1", "win2"]),
    ("node-role.kubernetes.io/control-plane", ["lab-server"]),
    ("!node-role.kubernetes.io/control-plane", ["win1", "win2"]),
    ("kubernetes.io/os=windows,kubernetes.io/hostname=win2", ["win2"]),
    ("kubernetes.io/os=macos", []),
])
def test_label_selector_grammar(kube, selector, expected):
    out = kube.kjson("get", "nodes", "-l", selector)
    assert sorted(n["metadata"]["name"] for n in out["items"]) == expected


def test_linux_server_node_is_a_k3s_control_plane(kube):
    n = kube.kjson("get", "node", "lab-server")
    assert n["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == "true"
    assert n["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    assert n["status"]["nodeInfo"]["kubeletVersion"].endswith("+k3s1")
    assert n["spec"]["providerID"] == "k3s://lab-server"
    table = kube.kubectl("get", "nodes").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert table[1].split()[:3] == ["lab-server", "Ready", "control-plane,master"]


def test_describe_windows_node(kube):
    out = kube.kubectl("describe", "node", "win1").stdout
    assert "Name:               win1" in out
    assert "kubernetes.io/os=windows" in out
    assert "OS Image:                   Windows Server 2022 Datacenter" in out
    assert "Operating System:           windows" in out
    assert "Kernel Version:             10.0.20348." in out
    lines = [l.split() for l in out.splitlines()]
    assert any(l[:2] == ["Ready", "True"] and "KubeletReady" in l for l in lines), out
    assert "RegisteredNode" in out and "Registered Node win1 in Controller" in out


def test_wait_for_node_that_becomes_ready(new_double):
    d = new_double("""
        nodes:
          - {name: lab-server, os: linux, roles: [control-plane, master]}
          - {name: win1, os: windows, ready: false}
          - {name: win2, os: windows, ready: false}
          - {name: win3, os: windows, readyAfter: 1}
        """)
    first = d.kjson("get", "node", "win1")
    assert cond(first, "Ready")["status"] == "False"
    assert {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"} in first["spec"]["taints"]
    # kubectl wait has read win1 (NotReady) and is waiting; only then does win1 turn Ready
    # (test-control endpoint), so the wait must have waited, however slow the machine is.
    audit = d.state / "audit.jsonl"
    seen = len(audit.read_text().splitlines())
    env = {"HOME": str(d.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    w = subprocess.Popen([KUBECTL, "--kubeconfig", str(d.state / "kubeconfig"), "wait", "--for=condition=Ready",
                          "node/win1", "--timeout=60s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)

    def read_win1():
        for line in audit.read_text().splitlines()[seen:]:
            rec = json.loads(line)
            q = rec.get("query") or {}
            if (rec["verb"] == "GET" and rec["path"] in ("/api/v1/nodes", "/api/v1/nodes/win1")
                    and q.get("watch") not in ("true", "1") and "win1" in rec["path"] + json.dumps(q)):
                return True
        return w.poll() is not None  # ended early: reported below
    eventually(read_win1, timeout=60, what="kubectl wait to read win1")
    assert w.poll() is None, "wait returned although win1 was NotReady: %s %s" % w.communicate()
    st, _, body = d.raw("POST", "/_double/nodes/win1/ready?status=True")
    assert st == 200, body
    out, err = w.communicate(timeout=60)
    assert (w.returncode, out.strip()) == (0, "node/win1 condition met"), err
    after = d.kjson("get", "node", "win1")
    assert cond(after, "Ready")["status"] == "True"
    assert "taints" not in after["spec"]
    # readyAfter: Ready on its own after a while
    p = d.kubectl("wait", "--for=condition=Ready", "node/win3", "--timeout=60s")
    assert p.stdout.strip() == "node/win3 condition met"
    # win2 never becomes Ready: kubectl wait must time out
    p = d.kubectl("wait", "--for=condition=Ready", "node/win2", "--timeout=2s", check=False)
    assert p.returncode != 0
    assert "timed out waiting for the condition" in p.stderr
    assert "NotReady" in d.kubectl("get", "node", "win2").stdout


# ---- server-side apply, rollout ----------------------------------------------------------------

def test_apply_server_side_twice_is_unchanged(kube):
    p = kube.apply(deployment("ssa"))
    assert p.stdout.strip() == "deployment.apps/ssa serverside-applied"
    kube.kubectl("rollout", "status", "deployment/ssa", "--timeout=30s")
    before = kube.kjson("get", "deployment", "ssa", "--show-managed-fields")
    p = kube.apply(deployment("ssa"))
    assert p.stdout.strip() == "deployment.apps/ssa serverside-applied"
    after = kube.kjson("get", "deployment", "ssa", "--show-managed-fields")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["metadata"]["generation"] == 1
    applied = [m for m in after["metadata"]["managedFields"] if m["manager"] == "kubectl"]
    assert [m["operation"] for m in applied] == ["Apply"]
    assert applied[0]["fieldsV1"]["f:spec"]["f:replicas"] == {}
    assert "f:status" not in applied[0]["fieldsV1"]
    # a real change bumps resourceVersion and generation
    kube.apply(deployment("ssa", replicas=3))
    changed = kube.kjson("get", "deployment", "ssa")
    assert changed["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    assert changed["metadata"]["generation"] == 2
    assert changed["spec"]["replicas"] == 3
    kube.kubectl("delete", "deployment", "ssa")


def test_rollout_status_and_pods_on_windows_nodes(kube):
    kube.apply(deployment("iis", replicas=3))
    p = kube.kubectl("rollout", "status", "deployment/iis", "--timeout=30s")
    assert 'deployment "iis" successfully rolled out' in p.stdout
    d = kube.kjson("get", "deployment", "iis")
    st = d["status"]
    assert (st["replicas"], st["readyReplicas"], st["availableReplicas"], st["updatedReplicas"]) == (3, 3, 3, 3)
    assert st["observedGeneration"] == d["metadata"]["generation"]
    assert cond(d, "Available")["status"] == "True"
    assert cond(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    pods = kube.kjson("get", "pods", "-l", "app=iis")["items"]
    assert len(pods) == 3
    for pod in pods:
        assert pod["spec"]["nodeName"] in ("win1", "win2")
        assert pod["status"]["phase"] == "Running"
        assert cond(pod, "Ready")["status"] == "True"
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    # field selectors used by mixop and kubectl describe node
    on_win1 = kube.kjson("get", "pods", "-A", "--field-selector", "spec.nodeName=win1,status.phase=Running")["items"]
    assert on_win1 and all(p["spec"]["nodeName"] == "win1" for p in on_win1)
    rs = kube.kjson("get", "replicasets", "-l", "app=iis")["items"]
    assert len(rs) == 1 and rs[0]["status"]["readyReplicas"] == 3
    kube.kubectl("delete", "deployment", "iis")


def test_describe_pod_and_events(kube):
    kube.apply(deployment("desc", replicas=1))
    kube.kubectl("rollout", "status", "deployment/desc", "--timeout=30s")
    pod = kube.kjson("get", "pods", "-l", "app=desc")["items"][0]
    name = pod["metadata"]["name"]
    out = kube.kubectl("describe", "pod", name).stdout
    assert "Status:           Running" in out
    assert "Node:             %s/" % pod["spec"]["nodeName"] in out
    assert "Node-Selectors:               kubernetes.io/os=windows" in out
    assert "Controlled By:  ReplicaSet/desc-" in out
    assert "Successfully assigned default/%s to %s" % (name, pod["spec"]["nodeName"]) in out
    assert "Started container web" in out
    events = kube.kjson("get", "events", "--field-selector", "involvedObject.name=%s" % name)["items"]
    reasons = [e["reason"] for e in events]
    for r in ("Scheduled", "Pulling", "Pulled", "Created", "Started"):
        assert r in reasons, reasons
    assert all(e["involvedObject"]["uid"] == pod["metadata"]["uid"] for e in events)
    table = kube.kubectl("get", "events").stdout.splitlines()
    assert table[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any("ScalingReplicaSet" in l and "deployment/desc" in l for l in table)
    kube.kubectl("delete", "deployment", "desc")


def test_delete_deployment_deletes_its_pods(kube):
    kube.apply(deployment("gone", replicas=2))
    kube.kubectl("rollout", "status", "deployment/gone", "--timeout=30s")
    assert len(kube.kjson("get", "pods", "-l", "app=gone")["items"]) == 2
    p = kube.kubectl("delete", "deployment", "gone")
    assert p.stdout.strip() == 'deployment.apps "gone" deleted'
    p = kube.kubectl("get", "deployment", "gone", check=False)
    assert p.returncode != 0 and 'deployments.apps "gone" not found' in p.stderr
    eventually(lambda: kube.kjson("get", "pods,replicasets", "-l", "app=gone")["items"] == [], what="pods to be deleted")


DAEMONSET = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {name}
  namespace: default
  labels: {{app: {name}}}
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      nodeSelector: {{{selector}}}
      containers:
      - name: exporter
        image: {image}
        ports: [{{containerPort: 9182, hostPort: 9182}}]
"""


def daemonset(name, selector="kubernetes.io/os: windows", image="ghcr.io/prometheus-community/windows-exporter:0.30.6"):
    return DAEMONSET.format(name=name, selector=selector, image=image)


def test_daemonset_one_pod_per_matching_node(kube):
    p = kube.apply(daemonset("exporter"))
    assert p.stdout.strip() == "daemonset.apps/exporter serverside-applied"
    p = kube.kubectl("rollout", "status", "ds/exporter", "--timeout=30s")
    assert 'daemon set "exporter" successfully rolled out' in p.stdout
    ds = kube.kjson("get", "daemonset", "exporter")
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    st = ds["status"]
    assert (st["desiredNumberScheduled"], st["currentNumberScheduled"], st["numberReady"], st["numberAvailable"],
            st["updatedNumberScheduled"], st["numberMisscheduled"]) == (2, 2, 2, 2, 2, 0)
    assert st["observedGeneration"] == ds["metadata"]["generation"] == 1
    pods = kube.kjson("get", "pods", "-l", "app=exporter")["items"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["win1", "win2"]  # not the Linux lab-server
    for pod in pods:
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("DaemonSet", "exporter", ds["metadata"]["uid"], True)
        assert pod["status"]["phase"] == "Running" and cond(pod, "Ready")["status"] == "True"
        assert pod["metadata"]["name"].startswith("exporter-")
        assert {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    table = kube.kubectl("get", "ds", "exporter").stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR", "AGE"]
    assert table[1].split()[:7] == ["exporter", "2", "2", "2", "2", "2", "kubernetes.io/os=windows"]
    # a second identical apply changes nothing
    rv = ds["metadata"]["resourceVersion"]
    kube.apply(daemonset("exporter"))
    assert kube.kjson("get", "daemonset", "exporter")["metadata"]["resourceVersion"] == rv
    # a template change replaces the pods (RollingUpdate) and rollout status waits for it
    kube.apply(daemonset("exporter", image="ghcr.io/prometheus-community/windows-exporter:0.31.0"))
    kube.kubectl("rollout", "status", "ds/exporter", "--timeout=30s")
    ds = kube.kjson("get", "daemonset", "exporter")
    assert ds["metadata"]["generation"] == ds["status"]["observedGeneration"] == 2
    pods = kube.kjson("get", "pods", "-l", "app=exporter")["items"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["win1", "win2"]
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"ghcr.io/prometheus-community/windows-exporter:0.31.0"}
    assert {p["metadata"]["labels"]["pod-template-generation"] for p in pods} == {"2"}
    p = kube.kubectl("delete", "ds", "exporter")
    assert p.stdout.strip() == 'daemonset.apps "exporter" deleted'
    eventually(lambda: kube.kjson("get", "pods", "-l", "app=exporter")["items"] == [], what="daemon pods to be deleted")


def test_daemonset_follows_node_readiness_taints_and_selector(new_double):
    d = new_double("""
        nodes:
          - {name: lab-server, os: linux, roles: [control-plane, master]}
          - {name: win1, os: windows}
          - {name: win2, os: windows, ready: false}
          - {name: win3, os: windows, taints: [{key: os, value: windows, effect: NoSchedule}]}
        """)
    d.apply(daemonset("agent"))
    d.kubectl("rollout", "status", "ds/agent", "--timeout=30s")
    # win2 is NotReady (not-ready:NoSchedule) and win3 has an untolerated taint: neither is desired
    st = d.kjson("get", "ds", "agent")["status"]
    assert (st["desiredNumberScheduled"], st["numberReady"]) == (1, 1)
    assert [p["spec"]["nodeName"] for p in d.kjson("get", "pods", "-l", "app=agent")["items"]] == ["win1"]
    # win2 turns Ready: it gets its daemon pod
    st_, _, body = d.raw("POST", "/_double/nodes/win2/ready?status=True")
    assert st_ == 200, body
    eventually(lambda: d.kjson("get", "ds", "agent")["status"]["desiredNumberScheduled"] == 2, what="win2 to be desired")
    d.kubectl("rollout", "status", "ds/agent", "--timeout=30s")
    assert sorted(p["spec"]["nodeName"] for p in d.kjson("get", "pods", "-l", "app=agent")["items"]) == ["win1", "win2"]
    # daemon pods tolerate cordoning, as on a real cluster: a cordoned node keeps (and gets) its pod
    d.kubectl("cordon", "win1")
    time.sleep(0.5)
    st = d.kjson("get", "ds", "agent")["status"]
    assert (st["desiredNumberScheduled"], st["numberReady"]) == (2, 2)
    # a DaemonSet for Linux lands only on the server
    d.apply(daemonset("linux-agent", selector="kubernetes.io/os: linux", image="busybox:1.36"))
    d.kubectl("rollout", "status", "ds/linux-agent", "--timeout=30s")
    assert [p["spec"]["nodeName"] for p in d.kjson("get", "pods", "-l", "app=linux-agent")["items"]] == ["lab-server"]


def test_server_dry_run_never_persists(kube):
    p = kube.apply(deployment("dry"), "--dry-run=server")
    assert p.stdout.strip() == "deployment.apps/dry serverside-applied (server dry run)"
    p = kube.kubectl("get", "deployment", "dry", check=False)
    assert p.returncode != 0 and "NotFound" in p.stderr
    time.sleep(0.3)
    assert kube.kjson("get", "pods", "-l", "app=dry")["items"] == []
    # dry run of a change to an existing object
    kube.apply(deployment("dry2", replicas=1))
    rv = kube.kjson("get", "deployment", "dry2")["metadata"]["resourceVersion"]
    kube.apply(deployment("dry2", replicas=5), "--dry-run=server")
    d = kube.kjson("get", "deployment", "dry2")
    assert d["spec"]["replicas"] == 1
    kube.kubectl("delete", "deployment", "dry2")
    assert rv


def test_unschedulable_deployment_stays_pending_with_failed_scheduling(kube):
    kube.apply(deployment("nowhere", replicas=2, selector="kubernetes.io/os: plan9"))
    msg = ("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
           "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")

    def failed_events():
        evs = kube.kjson("get", "events", "--field-selector", "reason=FailedScheduling")["items"]
        return [e for e in evs if e["involvedObject"]["name"].startswith("nowhere-")]
    evs = eventually(lambda: len(failed_events()) == 2 and failed_events(), what="FailedScheduling events")
    for e in evs:
        assert e["type"] == "Warning"
        assert e["message"] == msg
        assert e["source"]["component"] == "default-scheduler"
    time.sleep(1.0)  # longer than the pod ready delay: still nothing may run
    pods = kube.kjson("get", "pods", "-l", "app=nowhere")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Pending"
        assert "nodeName" not in pod["spec"]
        sc = cond(pod, "PodScheduled")
        assert (sc["status"], sc["reason"], sc["message"]) == ("False", "Unschedulable", msg)
    p = kube.kubectl("rollout", "status", "deployment/nowhere", "--timeout=2s", check=False)
    assert p.returncode != 0
    assert "0 of 2 updated replicas are available" in p.stdout
    d = kube.kjson("get", "deployment", "nowhere")
    assert cond(d, "Available")["status"] == "False"
    kube.kubectl("delete", "deployment", "nowhere")


# ---- node operations ---------------------------------------------------------------------------

def test_label_node(kube):
    p = kube.kubectl("label", "node", "win2", "mixop.dev/pool=iis")
    assert p.stdout.strip() == "node/win2 labeled"
    got = kube.kjson("get", "nodes", "-l", "mixop.dev/pool=iis")["items"]
    assert [n["metadata"]["name"] for n in got] == ["win2"]
    n = kube.kjson("get", "node", "win2", "--show-managed-fields")
    owners = [m["manager"] for m in n["metadata"]["managedFields"]
              if "f:mixop.dev/pool" in m["fieldsV1"].get("f:metadata", {}).get("f:labels", {})]
    assert owners == ["kubectl-label"]
    p = kube.kubectl("label", "node", "win2", "mixop.dev/pool-")
    assert p.stdout.strip() == "node/win2 unlabeled"
    assert kube.kjson("get", "nodes", "-l", "mixop.dev/pool")["items"] == []


def test_cordon_blocks_scheduling_and_uncordon_releases(kube):
    assert kube.kubectl("cordon", "win1").stdout.strip() == "node/win1 cordoned"
    n = kube.kjson("get", "node", "win1")
    assert n["spec"]["unschedulable"] is True
    assert "Ready,SchedulingDisabled" in kube.kubectl("get", "node", "win1").stdout
    kube.apply(deployment("pinned", replicas=1, selector="kubernetes.io/hostname: win1"))
    msg = ("0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node "
           "affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")

    def pending():
        pods = kube.kjson("get", "pods", "-l", "app=pinned")["items"]
        return pods and (cond(pods[0], "PodScheduled") or {}).get("message") == msg and pods[0]
    pod = eventually(pending, what="pinned pod to be unschedulable")
    assert pod["status"]["phase"] == "Pending"
    assert kube.kubectl("uncordon", "win1").stdout.strip() == "node/win1 uncordoned"
    assert "unschedulable" not in kube.kjson("get", "node", "win1")["spec"]
    kube.kubectl("rollout", "status", "deployment/pinned", "--timeout=30s")
    pods = kube.kjson("get", "pods", "-l", "app=pinned")["items"]
    assert [p["spec"]["nodeName"] for p in pods] == ["win1"]
    kube.kubectl("delete", "deployment", "pinned")


def test_taint_blocks_pods_without_toleration(kube):
    kube.kubectl("taint", "node", "win1", "win2", "os=windows:NoSchedule")
    try:
        kube.apply(deployment("tainted", replicas=1))
        msg = ("0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 node(s) had "
               "untolerated taint {os: windows}. preemption: 0/3 nodes are available: 3 Preemption is not "
               "helpful for scheduling.")

        def unsched():
            pods = kube.kjson("get", "pods", "-l", "app=tainted")["items"]
            return pods and (cond(pods[0], "PodScheduled") or {}).get("message") == msg
        eventually(unsched, what="taint to block scheduling")
    finally:
        kube.kubectl("taint", "node", "win1", "win2", "os=windows:NoSchedule-")
    kube.kubectl("rollout", "status", "deployment/tainted", "--timeout=30s")
    kube.kubectl("delete", "deployment", "tainted")


# ---- credentials -------------------------------------------------------------------------------

def test_token_kubeconfig_works(kube):
    out = kube.kjson("get", "nodes", "-l", "kubernetes.io/os=windows", kubeconfig="kubeconfig-token")
    assert sorted(n["metadata"]["name"] for n in out["items"]) == ["win1", "win2"]
    cfg = (kube.state / "kubeconfig").read_text()
    assert "client-certificate-data" in cfg and "certificate-authority-data" in cfg
    assert "current-context: default" in cfg and "server: https://127.0.0.1:%d" % kube.port in cfg


def test_wrong_token_is_unauthorized(kube):
    good = (kube.state / "kubeconfig-token").read_text()
    token = (kube.state / "token").read_text().strip()
    assert token in good
    (kube.state / "kubeconfig-bad").write_text(good.replace(token, "not-the-token"))
    p = kube.kubectl("get", "nodes", kubeconfig="kubeconfig-bad", check=False)
    assert p.returncode != 0
    assert "Unauthorized" in p.stderr
    status, _, body = kube.raw("GET", "/api/v1/nodes", cert=False)
    assert status == 401
    st = json.loads(body)
    assert (st["kind"], st["reason"], st["code"]) == ("Status", "Unauthorized", 401)


def test_read_only_user_is_forbidden_to_write(kube):
    assert kube.kjson("get", "nodes", kubeconfig="kubeconfig-viewer")["items"]
    p = kube.kubectl("label", "node", "win1", "x=y", kubeconfig="kubeconfig-viewer", check=False)
    assert p.returncode != 0
    assert 'nodes "win1" is forbidden: User "viewer" cannot patch resource "nodes" in API group "" at the cluster scope' in p.stderr


# ---- API mechanics kube-rs relies on -----------------------------------------------------------

def test_apply_conflict_and_force(kube):
    kube.kubectl("label", "node", "win2", "mixop.dev/owner=label")
    manifest = "apiVersion: v1\nkind: Node\nmetadata:\n  name: win2\n  labels:\n    mixop.dev/owner: mixop\n"
    p = kube.kubectl("apply", "--server-side", "--field-manager=mixop", "-f", "-", stdin=manifest, check=False)
    assert p.returncode != 0
    assert 'conflict with "kubectl-label"' in p.stderr and ".metadata.labels.mixop.dev/owner" in p.stderr
    kube.kubectl("apply", "--server-side", "--field-manager=mixop", "--force-conflicts", "-f", "-", stdin=manifest)
    n = kube.kjson("get", "node", "win2", "--show-managed-fields")
    assert n["metadata"]["labels"]["mixop.dev/owner"] == "mixop"
    mgrs = {m["manager"]: m for m in n["metadata"]["managedFields"]}
    assert "f:mixop.dev/owner" in mgrs["mixop"]["fieldsV1"]["f:metadata"]["f:labels"]
    # dropping the field from the applied configuration removes it (mixop owns it alone now)
    kube.kubectl("apply", "--server-side", "--field-manager=mixop", "-f", "-",
                 stdin="apiVersion: v1\nkind: Node\nmetadata:\n  name: win2\n  labels: {}\n")
    assert "mixop.dev/owner" not in kube.kjson("get", "node", "win2")["metadata"]["labels"]


def test_watch_stream_and_expired_resource_version(kube):
    status, _, body = kube.raw("GET", "/api/v1/namespaces/default/configmaps")
    assert status == 200
    lst = json.loads(body)
    assert lst["kind"] == "ConfigMapList"
    rv = lst["metadata"]["resourceVersion"]
    kube.kubectl("create", "configmap", "watched", "--from-literal=a=b")
    status, headers, body = kube.raw("GET", "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&resourceVersion=%s" % rv)
    assert status == 200 and headers.get("Transfer-Encoding") == "chunked"
    events = [json.loads(l) for l in body.decode().splitlines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "watched")]
    assert int(events[0]["object"]["metadata"]["resourceVersion"]) > int(rv)
    status, _, body = kube.raw("GET", "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&resourceVersion=1")
    events = [json.loads(l) for l in body.decode().splitlines()]
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert (events[0]["object"]["code"], events[0]["object"]["reason"]) == (410, "Expired")
    kube.kubectl("delete", "configmap", "watched")


def test_bad_requests_get_status_errors_not_crashes(kube):
    cases = [
        ("POST", "/api/v1/namespaces/default/configmaps", b"{not json", {"Content-Type": "application/json"}, 400),
        ("GET", "/api/v1/nodes?labelSelector=a%20in%20b", None, {}, 400),
        ("GET", "/api/v1/pods?fieldSelector=spec.bogus=1", None, {}, 400),
        ("PATCH", "/api/v1/nodes/win1", b"[]", {"Content-Type": "application/apply-patch+yaml"}, 400),
        ("PATCH", "/api/v1/nodes/win1", b"{}", {"Content-Type": "text/plain"}, 415),
        ("GET", "/api/v1/nodes/nope", None, {}, 404),
        ("GET", "/apis/nope.example.com/v1/things", None, {}, 404),
        ("POST", "/apis/apps/v1/namespaces/default/deployments",
         b'{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"bad"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"c"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}',
         {"Content-Type": "application/json"}, 422),
    ]
    for method, path, body, headers, code in cases:
        status, _, data = kube.raw(method, path, body, headers)
        assert status == code, (method, path, status, data)
        st = json.loads(data)
        assert st["kind"] == "Status" and st["code"] == code and st["status"] == "Failure"
    assert kube.raw("GET", "/version")[0] == 200
    assert kube.proc.poll() is None


def test_legacy_discovery_fallback(new_double):
    d = new_double("aggregatedDiscovery: false\n")
    out = d.kjson("get", "deployments", "-A")
    assert [i["metadata"]["name"] for i in out["items"]] == ["coredns"]
    paths = {json.loads(l)["path"] for l in (d.state / "audit.jsonl").read_text().splitlines()}
    assert "/apis/apps/v1" in paths and "/api/v1" in paths


def test_image_pull_failure_is_explained(new_double):
    d = new_double("imagePullFailures: ['registry.invalid/*']\n")
    d.apply(deployment("badimg", replicas=1, image="registry.invalid/nope:1"))

    def backoff():
        pods = d.kjson("get", "pods", "-l", "app=badimg")["items"]
        if not pods:
            return None
        w = pods[0]["status"].get("containerStatuses", [{}])[0].get("state", {}).get("waiting", {})
        return w.get("reason") == "ImagePullBackOff" and pods[0]
    pod = eventually(backoff, what="ImagePullBackOff")
    assert pod["status"]["phase"] == "Pending"
    out = d.kubectl("describe", "pod", pod["metadata"]["name"]).stdout
    assert 'Failed to pull image "registry.invalid/nope:1"' in out
    assert "ImagePullBackOff" in d.kubectl("get", "pods", "-l", "app=badimg").stdout


def test_drain_evicts_and_pods_move(kube):
    # kubectl's typed clients send protobuf bodies (Eviction, DeleteOptions, ConfigMap, Namespace)
    kube.apply(deployment("drained", replicas=2))
    kube.kubectl("rollout", "status", "deployment/drained", "--timeout=30s")
    try:
        p = kube.kubectl("drain", "win1", "--ignore-daemonsets", "--timeout=30s")
        assert "node/win1 drained" in p.stdout
        kube.kubectl("rollout", "status", "deployment/drained", "--timeout=30s")
        pods = kube.kjson("get", "pods", "-l", "app=drained")["items"]
        assert len(pods) == 2 and {p["spec"]["nodeName"] for p in pods} == {"win2"}
    finally:
        kube.kubectl("uncordon", "win1")
    kube.kubectl("delete", "deployment", "drained")
    kube.kubectl("create", "namespace", "proto")
    kube.kubectl("create", "configmap", "cm", "-n", "proto", "--from-literal=answer=42")
    assert kube.kjson("get", "configmap", "cm", "-n", "proto")["data"] == {"answer": "42"}
    kube.kubectl("delete", "namespace", "proto", "--timeout=20s")
    assert "proto" not in [n["metadata"]["name"] for n in kube.kjson("get", "namespaces")["items"]]


@pytest.mark.parametrize("minor", ["1.31", "1.33"])
def test_other_kubectl_versions_accept_the_double(kube, minor):
    k = "/usr/lib/google-cloud-sdk/bin/kubectl.%s" % minor
    if not os.path.exists(k):
        pytest.skip("kubectl %s not installed" % minor)
    env = {"HOME": str(kube.home / minor), "PATH": os.environ.get("PATH", "")}
    base = [k, "--kubeconfig", str(kube.state / "kubeconfig")]
    run = lambda *a, **kw: subprocess.run(base + list(a), capture_output=True, text=True, env=env, timeout=60, **kw)
    p = run("get", "nodes", "-l", "kubernetes.io/os=windows", "-o", "name")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["node/win1", "node/win2"]
    name = "v" + minor.replace(".", "")
    p = run("apply", "--server-side", "-f", "-", input=deployment(name, replicas=1))
    assert p.returncode == 0 and "serverside-applied" in p.stdout, p.stderr
    p = run("rollout", "status", "deployment/" + name, "--timeout=30s")
    assert p.returncode == 0 and "successfully rolled out" in p.stdout, p.stderr
    p = run("wait", "--for=condition=Available", "deployment/" + name, "--timeout=10s")
    assert p.returncode == 0, p.stderr
    assert run("delete", "deployment", name).returncode == 0
