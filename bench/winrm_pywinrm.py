#!/usr/bin/env python3
"""Per-command WinRM latency of pywinrm on one open shell.

Measures what a WinRM client pays per task once it is connected: pywinrm's
``winrm.Protocol`` opens one shell, then for every command does
run_command + get_command_output + cleanup_command (Command, Receive...,
Signal terminate). By default it starts the project's WinRM peer
(tests/support/winrm_peer/peer.py, ``--mode sh``) on a free loopback port and
runs ``true``; point it at any endpoint with ``--endpoint``.

    .venv/bin/python bench/winrm_pywinrm.py                 # 200 x `true` against a fresh peer
    .venv/bin/python bench/winrm_pywinrm.py --count 500 --json
    .venv/bin/python bench/winrm_pywinrm.py --endpoint http://127.0.0.1:5985/wsman --user vagrant --password vagrant
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "tests", "support", "winrm_peer", "peer.py")


def start_peer(user: str, password: str, https: bool) -> tuple[subprocess.Popen, str, int, str]:
    tmp = tempfile.mkdtemp(prefix="bench-winrm-")
    port_file = os.path.join(tmp, "port")
    cport_file = os.path.join(tmp, "cport")
    cmd = [sys.executable, PEER, "--listen", "127.0.0.1:0", "--port-file", port_file, "--users",
           "%s:%s" % (user, password), "--mode", "sh", "--control", "--control-port-file", cport_file]
    if https:
        cmd += ["--https", "--cert-dir", os.path.join(tmp, "certs")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "peer.log"), "wb"))
    deadline = time.time() + 15
    while time.time() < deadline:
        if os.path.exists(port_file) and os.path.exists(cport_file):
            port = int(open(port_file).read())
            cport = int(open(cport_file).read())
            scheme = "https" if https else "http"
            return proc, "%s://127.0.0.1:%d/wsman" % (scheme, port), cport, tmp
        if proc.poll() is not None:
            raise SystemExit("peer exited early, see %s/peer.log" % tmp)
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("peer did not start")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", help="existing WinRM endpoint (default: start a local peer)")
    ap.add_argument("--user", default="bench")
    ap.add_argument("--password", default="Bench-Passw0rd")
    ap.add_argument("--transport", default="ntlm")
    ap.add_argument("--https", action="store_true", help="local peer over HTTPS (no message encryption)")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--command", default="true")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()

    import winrm  # noqa: E402 - imported late so --help works without the venv

    proc = None
    cport = None
    endpoint = args.endpoint
    if not endpoint:
        proc, endpoint, cport, _tmp = start_peer(args.user, args.password, args.https)
    try:
        t0 = time.perf_counter()
        p = winrm.Protocol(endpoint, transport=args.transport, username=args.user, password=args.password,
                           server_cert_validation="ignore", read_timeout_sec=30, operation_timeout_sec=20)
        shell = p.open_shell(codepage=65001)
        t_open = time.perf_counter() - t0
        for _ in range(args.warmup):
            cid = p.run_command(shell, args.command)
            p.get_command_output(shell, cid)
            p.cleanup_command(shell, cid)
        lat = []
        rc_bad = 0
        for _ in range(args.count):
            t = time.perf_counter()
            cid = p.run_command(shell, args.command)
            _out, _err, rc = p.get_command_output(shell, cid)
            p.cleanup_command(shell, cid)
            lat.append((time.perf_counter() - t) * 1000.0)
            rc_bad += rc != 0
        p.close_shell(shell)
        stats = None
        if cport:
            with urllib.request.urlopen("http://127.0.0.1:%d/stats" % cport, timeout=5) as r:
                stats = json.load(r)
        res = {
            "client": "pywinrm %s" % getattr(winrm, "__version__", "?"),
            "endpoint": endpoint, "command": args.command, "count": args.count,
            "auth_and_open_shell_ms": round(t_open * 1000.0, 2),
            "median_ms": round(statistics.median(lat), 3), "mean_ms": round(statistics.fmean(lat), 3),
            "p90_ms": round(pct(lat, 90), 3), "p99_ms": round(pct(lat, 99), 3),
            "min_ms": round(min(lat), 3), "max_ms": round(max(lat), 3), "nonzero_rc": rc_bad,
        }
        if stats:
            res["peer"] = {k: stats.get(k) for k in ("connections_accepted", "handshakes", "shells_created",
                                                     "soap_requests", "requests_by_action")}
        if args.json:
            print(json.dumps(res))
        else:
            print("WinRM per-command latency, %s, %d x %r on one shell (%s)" % (
                res["client"], args.count, args.command, endpoint))
            print("%-22s %10s" % ("metric", "ms"))
            for k in ("auth_and_open_shell_ms", "median_ms", "mean_ms", "p90_ms", "p99_ms", "min_ms", "max_ms"):
                print("%-22s %10.2f" % (k[:-3], res[k]))
            if rc_bad:
                print("WARNING: %d commands exited non-zero" % rc_bad)
            if stats:
                print("peer: %d connection(s), %d NTLM handshake(s), %d shell(s), %d SOAP requests %s" % (
                    stats["connections_accepted"], stats["handshakes"], stats["shells_created"],
                    stats["soap_requests"], json.dumps(stats["requests_by_action"], sort_keys=True)))
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
