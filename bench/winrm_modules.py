#!/usr/bin/env python3
"""A 20-task Windows module play: mixop's one PowerShell process per host against Ansible's
pattern (one powershell.exe per task), on the project's simulated Windows hosts.

Both sides send the *same* requests: mixop runs the play; its requests (module, phase, script,
arguments, plan) are read back from the simulator's scripts.jsonl and replayed with pywinrm, each
as its own powershell.exe (the one-shot wrapper, src/powershell/oneshot.ps1 — what mixop falls back
to, and what Ansible does for every task). The simulator charges the same start cost for every
powershell.exe (--start-ms, default 300 ms: a warm process on a real host costs a few hundred ms,
a cold one seconds; ansible/ansible#8865, #58259, ansible.windows#644). Hosts run in parallel on
both sides (threads for pywinrm, as Ansible's forks).

    .venv/bin/python bench/winrm_modules.py --mixop target/release/mixop [--hosts 1 8] [--runs 3]

Prints a table: wall time (median of --runs) and WinRS Command messages per host.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "tests", "support", "winrm_peer", "peer.py")
PS = os.path.join(ROOT, "src", "powershell")
USER, PASSWORD = "Administrator", "Bench-Passw0rd"

PLAY = """- hosts: windows
  gather_facts: false
  tasks:
{tasks}
"""
TASKS = (
    ["    - win_ping:"] * 4
    + ["    - win_stat: path='C:\\\\Windows\\\\System32\\\\drivers\\\\etc\\\\hosts'"] * 6
    + ["    - win_stat: path='C:\\\\nope\\\\missing.txt'"] * 4
    + ["    - win_feature: name=Telnet-Client state=absent"] * 3
    + ["    - win_feature: name=Containers state=present"] * 3
)


def start_peer(tmp: str, name: str, start_ms: int) -> dict:
    d = os.path.join(tmp, name)
    os.makedirs(d)
    port_file, cport_file = os.path.join(d, "port"), os.path.join(d, "cport")
    cmd = [sys.executable, PEER, "--listen", "127.0.0.1:0", "--port-file", port_file,
           "--users", "%s:%s" % (USER, PASSWORD), "--mode", "sim", "--state-dir", os.path.join(d, "state"),
           "--pwsh-start-ms", str(start_ms), "--control", "--control-port-file", cport_file]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "peer.log"), "wb"))
    deadline = time.time() + 20
    while time.time() < deadline:
        if os.path.exists(port_file) and os.path.exists(cport_file):
            return {"proc": proc, "port": int(open(port_file).read()), "cport": int(open(cport_file).read()),
                    "dir": d}
        if proc.poll() is not None:
            raise SystemExit("peer exited early, see %s/peer.log" % d)
        time.sleep(0.05)
    raise SystemExit("peer did not start")


def control(peer: dict, op: str, method: str = "POST"):
    req = urllib.request.Request("http://127.0.0.1:%d/%s" % (peer["cport"], op), method=method,
                                 data=b"{}" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def commands(peer: dict) -> int:
    return int(control(peer, "stats", "GET").get("requests_by_action", {}).get("Command", 0))


def one_shot_launch() -> tuple[str, bytes]:
    """What src/powershell/mod.rs `launch(Launch::OneShot)` builds, from the same files."""
    loader = open(os.path.join(PS, "loader.ps1")).read().replace("# MARKER", "# mixop-psoneshot v1", 1)
    script = open(os.path.join(PS, "wrapper.ps1")).read() + "\n" + open(os.path.join(PS, "oneshot.ps1")).read()
    enc = base64.b64encode(loader.encode("utf-16-le")).decode()
    cmdline = "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand " + enc
    return cmdline, base64.b64encode(script.encode()) + b"\n"


def frame(payload: dict) -> bytes:
    b = base64.b64encode(json.dumps(payload).encode())
    return b"MIXOP1 REQ %d %d\n" % (payload["id"], len(b)) + b + b"\n"


def requests_of(peer: dict) -> list[dict]:
    """The requests of the last mixop run on this host, ready to replay."""
    out = []
    state = os.path.join(peer["dir"], "state")
    with open(os.path.join(state, "scripts.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            script = open(os.path.join(state, "scripts", r["script_sha256"] + ".ps1")).read()
            out.append({"id": len(out) + 1, "module": r["module"], "phase": r["phase"], "script": script,
                        "script_sha256": r["script_sha256"], "args": r.get("args") or {},
                        "plan": r.get("plan"), "check_mode": bool(r.get("check_mode")), "env": r.get("env") or {}})
    return out


def replay(peer: dict, reqs: list[dict], errors: list) -> None:
    """Ansible's pattern: every request is its own powershell.exe on the host's one shell."""
    import winrm

    cmdline, first = one_shot_launch()
    p = winrm.Protocol(endpoint="http://127.0.0.1:%d/wsman" % peer["port"], transport="ntlm",
                       username=USER, password=PASSWORD, message_encryption="auto")
    shell = p.open_shell(codepage=65001)
    try:
        for r in reqs:
            cid = p.run_command(shell, cmdline, console_mode_stdin=False)
            p.send_command_input(shell, cid, first + frame(r), end=True)
            out, err, rc = p.get_command_output(shell, cid)
            p.cleanup_command(shell, cid)
            if rc != 0 or b"MIXOP1 RES" not in out:
                errors.append("rc %d: %s" % (rc, err[:200]))
    finally:
        p.close_shell(shell)


def median_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixop", default=os.path.join(ROOT, "target", "release", "mixop"))
    ap.add_argument("--hosts", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--start-ms", type=int, default=300)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-winmod-")
    peers = []
    rows = []
    try:
        with open(os.path.join(tmp, "play.yml"), "w") as f:
            f.write(PLAY.format(tasks="\n".join(TASKS)))
        for n in a.hosts:
            while len(peers) < n:
                peers.append(start_peer(tmp, "win%d" % (len(peers) + 1), a.start_ms))
            use = peers[:n]
            inv = os.path.join(tmp, "inv%d.yml" % n)
            with open(inv, "w") as f:
                f.write("all:\n  children:\n    windows:\n      vars: {ansible_connection: winrm, ansible_host: "
                        "127.0.0.1, ansible_user: %s, ansible_password: %s}\n      hosts:\n" % (USER, PASSWORD))
                for i, p in enumerate(use):
                    f.write("        win%d: {ansible_port: %d}\n" % (i + 1, p["port"]))

            def run_mixop():
                r = subprocess.run([a.mixop, "run", os.path.join(tmp, "play.yml"), "-i", inv],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise SystemExit("mixop failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])

            run_mixop()  # first run installs Containers; measured runs change nothing
            for p in use:
                control(p, "reset_stats")
                os.truncate(os.path.join(p["dir"], "state", "scripts.jsonl"), 0)
            t_mixop = median_of(a.runs, run_mixop)
            mixop_cmds = commands(use[0]) / a.runs
            reqs = requests_of(use[0])
            per_run = len(reqs) // a.runs
            reqs = reqs[:per_run]
            for p in use:
                control(p, "reset_stats")

            def run_pywinrm():
                errors: list = []
                threads = [threading.Thread(target=replay, args=(p, reqs, errors)) for p in use]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                if errors:
                    raise SystemExit("pywinrm replay failed: %s" % errors[:3])

            t_pyw = median_of(a.runs, run_pywinrm)
            pyw_cmds = commands(use[0]) / a.runs
            rows.append((n, len(TASKS), per_run, t_mixop, mixop_cmds, t_pyw, pyw_cmds))
    finally:
        for p in peers:
            p["proc"].terminate()
    print()
    print("| hosts | tasks | requests/host | mixop wall (s) | mixop Commands/host | pywinrm one powershell.exe per "
          "request, wall (s) | pywinrm Commands/host | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for n, tasks, reqs, tm, cm, tp, cp in rows:
        print("| %d | %d | %d | %.2f | %.0f | %.2f | %.0f | %.1fx |" % (n, tasks, reqs, tm, cm, tp, cp, tp / tm))
    print("\nsimulated powershell.exe start cost: %d ms; median of %d runs; the play changes nothing "
          "(second and later runs)." % (a.start_ms, a.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
