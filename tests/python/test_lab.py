"""Tests of the Linux test lab (tests/lab): real sshd hosts in network namespaces.

Starts its own 3-host lab in a temp state dir on a free subnet (--net auto, so it can run
beside other labs) and tears it down in a finalizer. Needs root, OpenSSH, sshpass.
    .venv/bin/python -m pytest -q tests/python/test_lab.py
"""
import os
import re
import shutil
import socket
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "tests" / "lab"
VENV_BIN = ROOT / ".venv" / "bin"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces, mounts)"),
    pytest.mark.skipif(shutil.which("sshd", path="/usr/sbin:/usr/bin") is None, reason="no sshd"),
]


def run(cmd, check=True, timeout=60, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd!r} -> rc={r.returncode}\nstdout:{r.stdout}\nstderr:{r.stderr}")
    return r


class Lab:
    def __init__(self, state: Path, nhosts: int, extra=()):
        self.state = state
        out = run([str(LAB / "up.sh"), str(nhosts), "--state", str(state), "--net", "auto", *extra],
                  timeout=120)
        self.inventory = Path(out.stdout.strip().splitlines()[-1])
        assert self.inventory == state / "inventory.yml"
        self.hosts = {}
        for line in (state / "hosts.tsv").read_text().splitlines():
            if line.startswith("#"):
                continue
            name, ip, ns = line.split("\t")
            self.hosts[name] = {"ip": ip, "ns": ns}
        env = dict(l.split("=", 1) for l in (state / "lab.env").read_text().splitlines()
                   if "=" in l and not l.startswith("#"))
        self.net = env["LAB_NET"]
        self.index = int(self.net.rsplit(".", 1)[1])
        self.key = state / "id_ed25519"
        self.known_hosts = state / "known_hosts"

    def down(self):
        return run([str(LAB / "down.sh"), "--state", str(self.state)], timeout=120)

    def ctl(self, *args, check=True):
        return run([str(LAB / "ctl.sh"), "--state", str(self.state), *args], check=check)

    def ssh_args(self, user="root", key=True):
        a = ["ssh", "-F", "/dev/null", "-o", f"UserKnownHostsFile={self.known_hosts}",
             "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]
        if key:
            a += ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(self.key)]
        return a

    def ssh(self, host, command, user="root", check=True):
        return run(self.ssh_args(user) + [f"{user}@{self.hosts[host]['ip']}", command], check=check)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, request):
    state = tmp_path_factory.mktemp("lab")
    lab = None
    # Finalizer first, so a half-started lab is torn down too.
    request.addfinalizer(lambda: run([str(LAB / "down.sh"), "--state", str(state)], check=False))
    lab = Lab(state, 3, extra=["--no-sftp", "lab3"])
    return lab


def connect(ip, timeout=1.0):
    with socket.create_connection((ip, 22), timeout=timeout) as s:
        return s.recv(64)


def test_inventory_and_files(lab):
    inv = lab.inventory.read_text()
    for name in ("lab1", "lab2", "lab3"):
        assert f"        {name}:\n          ansible_host: {lab.hosts[name]['ip']}\n" in inv
    assert "ansible_user: root" in inv
    assert f'ansible_ssh_private_key_file: "{lab.key}"' in inv
    assert f"-o UserKnownHostsFile={lab.known_hosts}" in inv
    assert f'mixop_known_hosts_file: "{lab.known_hosts}"' in inv
    assert lab.net.startswith("10.231.") and lab.index != 0
    kh = lab.known_hosts.read_text()
    for name, h in lab.hosts.items():
        assert f"{name},{h['ip']} ssh-ed25519 " in kh


def test_root_ssh_gets_hostname(lab):
    for name in lab.hosts:
        assert lab.ssh(name, "hostname; id -u").stdout.split() == [name, "0"]


def test_host_key_is_per_host(lab):
    keys = {l.split()[2] for l in lab.known_hosts.read_text().splitlines() if "ssh-ed25519" in l}
    assert len(keys) == 3
    # and the key file a host serves is its own, not the controller's
    served = lab.ctl("exec", "lab1", "--", "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]
    assert served in keys
    if Path("/etc/ssh/ssh_host_ed25519_key.pub").exists():
        assert served != Path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[1]


@pytest.mark.parametrize("directory", ["/opt", "/tmp", "/usr/local/bin", "/etc/rancher",
                                       "/var/lib/rancher", "/root", "/home/labuser"])
def test_files_are_private_to_a_host(lab, directory):
    name = f"mixop-lab-probe-{uuid.uuid4().hex}"
    path = f"{directory}/{name}"
    lab.ssh("lab1", f"mkdir -p {directory} && echo from-lab1 > {path}")
    assert lab.ssh("lab1", f"cat {path}").stdout == "from-lab1\n"
    assert lab.ctl("exec", "lab1", "--", "cat", path).stdout == "from-lab1\n"
    r = lab.ssh("lab2", f"test -e {path}", check=False)
    assert r.returncode == 1, r
    r = lab.ctl("exec", "lab2", "--", "test", "-e", path, check=False)
    assert r.returncode == 1
    assert not os.path.exists(path), f"{path} leaked to the controller"


def test_rancher_dirs_can_be_removed(lab):
    # /etc and /var are copy-on-write overlays: an uninstall may delete whole directories.
    lab.ssh("lab1", "mkdir -p /etc/rancher/k3s /var/lib/rancher/k3s && rm -rf /etc/rancher /var/lib/rancher"
                    " && test ! -e /etc/rancher && test ! -e /var/lib/rancher")


def test_labuser_password_and_sudo(lab):
    if shutil.which("sshpass") is None:
        pytest.skip("sshpass not installed (scripts/setup.sh installs it)")
    ip = lab.hosts["lab2"]["ip"]
    base = ["sshpass", "-p", "labpass"] + lab.ssh_args(key=False) + [
        "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password", f"labuser@{ip}"]
    r = run(base + ["hostname; id -un; echo labpass | sudo -S -p '' id -u"])
    assert r.stdout.split() == ["lab2", "labuser", "0"]
    # a password is required: non-interactive sudo fails, a wrong one is rejected
    assert run(base + ["sudo -n true"], check=False).returncode != 0
    assert run(base + ["echo wrong | sudo -S -p '' true"], check=False).returncode != 0
    # keyboard-interactive works too (through PAM)
    kbd = ["sshpass", "-p", "labpass"] + lab.ssh_args(key=False) + [
        "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=keyboard-interactive",
        f"labuser@{ip}", "id -un"]
    assert run(kbd).stdout.strip() == "labuser"
    # and a wrong password is refused
    bad = ["sshpass", "-p", "nope"] + lab.ssh_args(key=False) + [
        "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
        "-o", "NumberOfPasswordPrompts=1", f"labuser@{ip}", "true"]
    assert run(bad, check=False).returncode != 0


def test_root_password_login_refused(lab):
    if shutil.which("sshpass") is None:
        pytest.skip("sshpass not installed")
    ip = lab.hosts["lab1"]["ip"]
    r = run(["sshpass", "-p", "labpass"] + lab.ssh_args(key=False) + [
        "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1", f"root@{ip}", "true"],
        check=False)
    assert r.returncode != 0


def test_nopass_sudo_n(lab):
    r = lab.ssh("lab1", "id -un; sudo -n id -u", user="nopass")
    assert r.stdout.split() == ["nopass", "0"]


def test_no_sftp_host_refuses_subsystem(lab):
    base = ["sftp", "-F", "/dev/null", "-o", f"UserKnownHostsFile={lab.known_hosts}",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(lab.key), "-b", "-"]
    ok = run(base + [f"root@{lab.hosts['lab1']['ip']}"], input="ls /\n", check=False)
    assert ok.returncode == 0, ok.stderr
    r = run(base + [f"root@{lab.hosts['lab3']['ip']}"], input="ls /\n", check=False)
    assert r.returncode != 0
    assert "subsystem request failed" in r.stderr


def test_stop_and_start(lab):
    ip = lab.hosts["lab2"]["ip"]
    assert connect(ip).startswith(b"SSH-2.0-")
    lab.ctl("stop", "lab2")
    try:
        with pytest.raises(ConnectionRefusedError):
            connect(ip)
        assert "sshd:stopped" in lab.ctl("status").stdout.splitlines()[1]
        # the host itself (namespaces, files) is still there
        assert lab.ctl("exec", "lab2", "--", "hostname").stdout.strip() == "lab2"
    finally:
        lab.ctl("start", "lab2")
    assert connect(ip).startswith(b"SSH-2.0-")
    assert lab.ssh("lab2", "hostname").stdout.strip() == "lab2"


def test_link_down_and_up(lab):
    ip = lab.hosts["lab2"]["ip"]
    lab.ctl("link-down", "lab2")
    try:
        with pytest.raises((socket.timeout, TimeoutError, OSError)) as e:
            connect(ip, timeout=0.5)
        assert not isinstance(e.value, ConnectionRefusedError)
    finally:
        lab.ctl("link-up", "lab2")
    assert connect(ip, timeout=5).startswith(b"SSH-2.0-")


def test_ctl_addr(lab):
    assert lab.ctl("addr", "lab3").stdout.strip() == lab.hosts["lab3"]["ip"]
    assert lab.ctl("addr", "lab9", check=False).returncode != 0


def test_hosts_reach_each_other_but_nothing_else(lab):
    # lab1 reaches lab2 (needed for ProxyJump and agent->server traffic) ...
    lab.ssh("lab1", f"exec 3<>/dev/tcp/{lab.hosts['lab2']['ip']}/22")
    # ... and has no route out of the lab's /24
    routes = lab.ctl("exec", "lab1", "--", "ip", "-4", "route").stdout
    assert "default" not in routes
    assert routes.strip() == f"{lab.net}.0/24 dev eth0 proto kernel scope link src {lab.hosts['lab1']['ip']}"


def test_ansible_playbook_against_inventory(lab, tmp_path):
    playbook = tmp_path / "hostname.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: lab
          gather_facts: false
          tasks:
            - command: hostname
              register: h
            - assert:
                that: h.stdout == inventory_hostname
    """))
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\n")  # nobody's ansible.cfg but ours
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="True",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_CONFIG=str(cfg))
    r = run([str(VENV_BIN / "ansible-playbook"), "-i", str(lab.inventory), str(playbook)],
            env=env, cwd=tmp_path, check=False, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in lab.hosts:
        assert re.search(rf"^{name}\s+: ok=2\s+changed=1\s+unreachable=0\s+failed=0", r.stdout, re.M), r.stdout


# --- lifecycle: separate small labs --------------------------------------------------------

def kernel_objects(index):
    prefix = "mixop" if index == 0 else f"mixop{index}"
    ns = [l.split()[0] for l in run(["ip", "netns", "list"]).stdout.splitlines()
          if re.match(rf"^{prefix}-lab\d+$", l.split()[0])]
    links = [l.split(": ")[1].split("@")[0] for l in run(["ip", "-o", "link", "show"]).stdout.splitlines()]
    links = [l for l in links if l == f"mixopbr{index}" or re.match(rf"^mx{index}h\d+$", l)]
    procs = run(["pgrep", "-f", f"^mixop-lab-anchor net={index} "], check=False).stdout.split()
    return ns, links, procs


def test_down_leaves_nothing_behind(tmp_path):
    lab = Lab(tmp_path / "state", 2)
    ns, links, procs = kernel_objects(lab.index)
    assert len(ns) == 2 and len(links) == 3 and len(procs) == 2
    sshd = [int((lab.state / "hosts" / h / "run" / "sshd.pid").read_text()) for h in lab.hosts]
    anchors = [int(p) for p in procs]
    lab.down()
    assert kernel_objects(lab.index) == ([], [], [])
    for pid in sshd + anchors:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", pid
    assert not Path(f"/run/mixop-lab/net-{lab.index}.env").exists()
    with pytest.raises(OSError):
        connect(lab.hosts["lab1"]["ip"], timeout=0.5)
    # idempotent: nothing up is fine
    r = lab.down()
    assert "nothing to tear down" in r.stderr


def test_up_is_idempotent_and_cleans_leftovers(tmp_path):
    state = tmp_path / "state"
    lab = Lab(state, 2)
    try:
        lab.ssh("lab1", "echo x > /opt/marker")
        first_key = (state / "keys" / "lab1" / "ssh_host_ed25519_key.pub").read_text()
        # A second up on the same state dir (e.g. after a crashed run) replaces the lab:
        # fresh host files, same keys, same number of objects.
        lab2 = Lab(state, 2)
        assert lab2.index == lab.index
        assert (state / "keys" / "lab1" / "ssh_host_ed25519_key.pub").read_text() == first_key
        assert lab2.ssh("lab1", "test -e /opt/marker", check=False).returncode == 1
        ns, links, procs = kernel_objects(lab.index)
        assert (len(ns), len(links), len(procs)) == (2, 3, 2)
        # Another state dir may not take a net whose owner (this pytest process) is alive.
        other = tmp_path / "other"
        r = run([str(LAB / "up.sh"), "1", "--state", str(other), "--net", lab.net], check=False)
        assert r.returncode != 0 and "in use" in r.stderr
        # ... but takes it over when that lab is a leftover (its owner is dead).
        owner = subprocess.Popen(["sleep", "600"])
        run([str(LAB / "up.sh"), "2", "--state", str(state), "--net", lab.net, "--owner", str(owner.pid)])
        owner.kill(); owner.wait()
        r = run([str(LAB / "up.sh"), "1", "--state", str(other), "--net", lab.net])
        assert "taking over" in r.stderr
        assert not (state / "lab.env").exists()  # the old lab was marked down
        ns, links, procs = kernel_objects(lab.index)
        assert (len(ns), len(links), len(procs)) == (1, 2, 1)
        run([str(LAB / "down.sh"), "--state", str(other)])
    finally:
        run([str(LAB / "down.sh"), "--state", str(state)], check=False)
        run([str(LAB / "down.sh"), "--state", str(tmp_path / "other")], check=False)
    assert kernel_objects(lab.index) == ([], [], [])
