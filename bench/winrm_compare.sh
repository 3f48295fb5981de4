#!/usr/bin/env bash
# WinRM benchmark against the project's WinRM peer (sh mode, NTLM + message encryption):
#  1. per-command cost on one shell: pywinrm (bench/winrm_pywinrm.py) vs `mixop run` of a
#     200-task play on one host (mixop's figure includes its engine: (run - 1-task run) / 199);
#  2. a whole `mixop run` of a 10-task Windows play on 1 and 8 hosts.
# Usage: bench/winrm_compare.sh [RUNS]   (median of RUNS, default 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
cd "$root"
bash scripts/setup.sh >/dev/null
cargo build --release -q
mixop="$root/target/release/mixop"
py="$root/.venv/bin/python"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start_peer() { # -> port
  local d; d=$(mktemp -d -p "$work")
  "$py" tests/support/winrm_peer/peer.py --listen 127.0.0.1:0 --port-file "$d/port" \
    --users vagrant:vagrant --mode sh >/dev/null 2>"$d/log" &
  pids+=($!)
  for _ in $(seq 1 200); do [ -s "$d/port" ] && break; sleep 0.05; done
  cat "$d/port"
}
inventory() { # file, ports...
  local f=$1; shift
  { echo "all:"; echo "  children:"; echo "    windows:"; echo "      hosts:"
    local i=1
    for p in "$@"; do
      echo "        win$i: {ansible_host: 127.0.0.1, ansible_port: $p, ansible_connection: winrm, ansible_user: vagrant, ansible_password: vagrant}"
      i=$((i+1))
    done; } > "$f"
}
play() { # file, tasks
  { echo "- hosts: windows"; echo "  tasks:"
    for _ in $(seq 1 "$2"); do echo "    - win_command: \"true\""; done; } > "$1"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
time_cmd() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@" | tail -5 >&2; exit 1; }; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'; }
med_runs() { for _ in $(seq 1 "$runs"); do time_cmd "$@"; done | median; }

p1=$(start_peer)
inventory "$work/one.yml" "$p1"
play "$work/t1.yml" 1; play "$work/t200.yml" 200; play "$work/t10.yml" 10
one=$(med_runs "$mixop" run "$work/t1.yml" -i "$work/one.yml")
many=$(med_runs "$mixop" run "$work/t200.yml" -i "$work/one.yml")
mixop_ms=$(awk -v a="$one" -v b="$many" 'BEGIN{printf "%.2f", (b-a)*1000/199}')
pyw_ms=$("$py" bench/winrm_pywinrm.py --count 200 --json | "$py" -c 'import json,sys; d=json.load(sys.stdin); print("%.2f" % d["median_ms"])')
ports=()
for _ in $(seq 1 8); do ports+=("$(start_peer)"); done
inventory "$work/eight.yml" "${ports[@]}"
t10_1=$(med_runs "$mixop" run "$work/t10.yml" -i "$work/one.yml")
t10_8=$(med_runs "$mixop" run "$work/t10.yml" -i "$work/eight.yml")
printf '\n| WinRM (peer, sh mode, NTLM + encryption), median of %s | value |\n|---|---|\n' "$runs"
printf '| pywinrm 0.5.0: per command on one shell (median of 200) | %s ms |\n' "$pyw_ms"
printf '| mixop: per task in a 200-task play on one host ((t200 - t1) / 199) | %s ms |\n' "$mixop_ms"
printf '| ratio (pywinrm / mixop) | %sx |\n' "$(awk -v a="$pyw_ms" -v b="$mixop_ms" 'BEGIN{printf "%.1f", a/b}')"
printf '| mixop run, 10-task play, 1 host (whole process) | %.3f s |\n' "$t10_1"
printf '| mixop run, 10-task play, 8 hosts (whole process) | %.3f s |\n' "$t10_8"
