#!/usr/bin/env bash
# Bounded resources (issue 10): the controller's peak RSS and wall time where memory could grow
# without bound. Prints a markdown table; not a timed test.
#
#   bench/bounded.sh                 # every case
#   CASES="output copy" bench/bounded.sh   # only these: fanout output copy
#   LAB_HOSTS=224 WIN_HOSTS=32       # the fan-out: lab hosts (<= 245) + simulated Windows hosts
#   FANOUT_TIMEOUT=60                # the fan-out's SSH connect timeout (ansible_timeout): 224
#                                    # handshakes at once on 2 busy cores outlast the default 10 s
#   BIG_MB=1536 CGROUP_MB=200        # the copy: file size, and the memory mixop is given
#   OUT_MB=1024                      # what each host prints in the output case
#   MIXOP_BIN=path/to/mixop          # default: $CARGO_TARGET_DIR/release/mixop, else debug
#   KEEP=1                           # keep the work dir (every run's output)
#
# Cases:
#   fanout  one play on LAB_HOSTS lab hosts (SSH) + WIN_HOSTS WinRM peers (sh mode, NTLM +
#           message encryption) at once (forks default: every host), every connection held
#           for the whole play: a command on each Linux host, a win_command on each Windows one.
#   output  a command printing OUT_MB of output on an SSH lab host, the local connection and a
#           WinRM peer: mixop stops it at its capture cap (64 MiB) and fails the task.
#   copy    mixop in a memory cgroup limited to CGROUP_MB (v1 memory.limit_in_bytes, or v2
#           memory.max; swap off) copies a BIG_MB file to a lab host over SSH (SFTP), then
#           fetches it back; both checked by SHA-256.
# "peak RSS" is /usr/bin/time's %M of mixop; "cgroup peak" is the cgroup's own peak usage
# (includes the page cache mixop's file I/O charges to it, which the kernel reclaims at need).
#
# Needs root (the lab, cgroups), the repo's venv (the WinRM peer) and /usr/bin/time.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
mixop=${MIXOP_BIN:-}
if [ -z "$mixop" ]; then
  if [ -x "$target/release/mixop" ]; then mixop=$target/release/mixop; else mixop=$target/debug/mixop; fi
fi
venv=${MIXOP_VENV:-$root/.venv}
cases=${CASES:-fanout output copy}
lab_hosts=${LAB_HOSTS:-224} win_hosts=${WIN_HOSTS:-32} fan_timeout=${FANOUT_TIMEOUT:-60}
big_mb=${BIG_MB:-1536} cgroup_mb=${CGROUP_MB:-200} out_mb=${OUT_MB:-1024}
[ "$(id -u)" -eq 0 ] || { echo "bounded: needs root (lab, cgroups)" >&2; exit 1; }
[ -x "$mixop" ] || { echo "bounded: no mixop binary at $mixop (cargo build)" >&2; exit 1; }

work=$(mktemp -d /tmp/mixop-bounded.XXXXXX)
peers=() cg=""
cleanup() {
  local p
  for p in "${peers[@]}"; do kill "$p" 2>/dev/null; done
  "$root/tests/lab/down.sh" --state "$work/lab" -q >/dev/null 2>&1
  if [ -n "$cg" ] && [ -d "$cg" ]; then
    cat "$cg/cgroup.procs" 2>/dev/null | while read -r p; do echo "$p" >/sys/fs/cgroup/memory/cgroup.procs 2>/dev/null; done
    rmdir "$cg" 2>/dev/null
  fi
  if [ "${KEEP:-}" = 1 ]; then say "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "bounded: $*" >&2; }
rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); }

# timed OUT CMD...: runs CMD under /usr/bin/time; sets t_wall (s) t_rss (MB) t_rc.
timed() {
  local out=$1
  shift
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$out" 2>&1
  t_rc=$?
  read -r t_wall kb < <(tail -1 "$work/time")
  t_rss=$(( ${kb:-0} / 1024 ))
}

# up_lab N: lab1..labN; writes $work/lab/hosts.tsv (name, address).
up_lab() {
  say "bringing up $1 lab hosts"
  "$root/tests/lab/up.sh" "$1" --net auto -q --state "$work/lab" --owner $$ --timeout 120 >/dev/null \
    || { say "tests/lab/up.sh $1 failed"; exit 1; }
}
lab1_addr() { grep -v '^#' "$work/lab/hosts.tsv" | awk -F'\t' 'NR == 1 {print $2}'; }
lab_vars() {
  printf '  vars: {ansible_user: root, ansible_ssh_private_key_file: %s, mixop_known_hosts_file: %s}\n' \
    "$work/lab/id_ed25519" "$work/lab/known_hosts"
}
# start_peers N: N WinRM peers in sh mode on loopback; their ports in $work/peer-*/port.
start_peers() {
  local i
  for ((i = 1; i <= $1; i++)); do
    mkdir -p "$work/peer-$i"
    "$venv/bin/python" "$root/tests/support/winrm_peer/peer.py" --listen 127.0.0.1:0 \
      --port-file "$work/peer-$i/port" --users vagrant:vagrant --mode sh \
      2>"$work/peer-$i/log" &
    peers+=($!)
  done
  for ((i = 1; i <= $1; i++)); do
    local t=0
    until [ -s "$work/peer-$i/port" ]; do
      sleep 0.1; t=$((t + 1))
      [ $t -lt 600 ] || { say "WinRM peer $i did not start: $(tail -3 "$work/peer-$i/log")"; exit 1; }
    done
  done
}
win_host() { # NAME I
  printf '        %s: {ansible_host: 127.0.0.1, ansible_port: %s, ansible_connection: winrm, ansible_user: vagrant, ansible_password: vagrant, ansible_winrm_transport: ntlm, ansible_winrm_scheme: http}\n' \
    "$1" "$(cat "$work/peer-$2/port")"
}

case_fanout() {
  local n=$((lab_hosts + win_hosts)) i
  up_lab "$lab_hosts"
  start_peers "$win_hosts"
  {
    echo "all:"
    lab_vars
    printf '  children:\n    lab:\n      vars: {ansible_timeout: %s}\n' "$fan_timeout"
    echo "      hosts:"
    while IFS=$'\t' read -r h a _; do printf '        %s: {ansible_host: %s}\n' "$h" "$a"; done < <(grep -v '^#' "$work/lab/hosts.tsv")
    echo "    windows:"
    echo "      hosts:"
    for ((i = 1; i <= win_hosts; i++)); do win_host "win$i" "$i"; done
  } >"$work/fanout.yml"
  cat >"$work/fanout-pb.yml" <<'EOF'
- hosts: all
  gather_facts: false
  tasks:
    - command: echo hello
      when: "'lab' in group_names"
    - win_command: echo hello
      when: "'windows' in group_names"
    - command: "echo {{ inventory_hostname }}"
      when: "'lab' in group_names"
    - win_command: "echo {{ inventory_hostname }}"
      when: "'windows' in group_names"
EOF
  say "fanout: $n hosts"
  timed "$work/fanout.out" "$mixop" run "$work/fanout-pb.yml" -i "$work/fanout.yml"
  local ok
  ok=$(grep -cE '^(lab|win)[0-9]+ +: ok=2 +changed=2 +unreachable=0 +failed=0' "$work/fanout.out")
  row "$n hosts at once ($lab_hosts lab SSH + $win_hosts WinRM peers), 2 commands each" \
    "$t_rss" "$t_wall" "exit $t_rc, $ok of $n hosts ok=2 changed=2" \
    "$(( t_rss * 1024 / n )) KB per host"
  [ "$ok" -eq "$n" ] || say "fanout: not every host finished, see $(tail -5 "$work/fanout.out")"
  "$root/tests/lab/down.sh" --state "$work/lab" -q >/dev/null 2>&1
  for i in "${peers[@]}"; do kill "$i" 2>/dev/null; done
  peers=()
}

case_output() {
  local bytes=$((out_mb * 1024 * 1024)) where
  up_lab 1
  start_peers 1
  local cmd="yes | head -c $bytes"
  {
    echo "all:"
    lab_vars
    echo "  hosts:"
    printf '    lab1: {ansible_host: %s}\n' "$(lab1_addr)"
    echo "    local1: {ansible_connection: local}"
    echo "  children:"
    echo "    windows:"
    echo "      hosts:"
    win_host win1 1
  } >"$work/output.yml"
  for where in lab1 local1 win1; do
    local module=shell arg="$cmd"
    if [ "$where" = win1 ]; then module=win_command arg="sh -c \"$cmd\""; fi
    cat >"$work/output-pb.yml" <<EOF
- hosts: $where
  gather_facts: false
  tasks:
    - $module: '$arg'
EOF
    say "output: $out_mb MB on $where"
    timed "$work/output-$where.out" "$mixop" run "$work/output-pb.yml" -i "$work/output.yml"
    local what
    what=$(grep -m1 -oE 'produced more than .*' "$work/output-$where.out" | head -c 120)
    local conn=SSH
    [ "$where" = local1 ] && conn=local
    [ "$where" = win1 ] && conn=WinRM
    row "a command printing $out_mb MB on $conn" "$t_rss" "$t_wall" "exit $t_rc, task failed: ${what:-see the log}" ""
  done
  "$root/tests/lab/down.sh" --state "$work/lab" -q >/dev/null 2>&1
  kill "${peers[@]}" 2>/dev/null
  peers=()
}

# in_cgroup CMD...: CMD inside a fresh memory cgroup limited to CGROUP_MB.
make_cgroup() {
  if [ -d /sys/fs/cgroup/memory ] && [ -w /sys/fs/cgroup/memory ]; then
    cg=/sys/fs/cgroup/memory/mixop-bounded-$$
    mkdir "$cg" && echo $((cgroup_mb * 1024 * 1024)) >"$cg/memory.limit_in_bytes"
    cg_peak() { echo $(( $(cat "$cg/memory.max_usage_in_bytes") / 1048576 )); }
    cg_reset() { echo 0 >"$cg/memory.max_usage_in_bytes"; }
    cg_oom() { grep -c . <(grep -E '^oom_kill [1-9]' "$cg/memory.oom_control") ; }
  elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    cg=/sys/fs/cgroup/mixop-bounded-$$
    mkdir "$cg" && echo $((cgroup_mb * 1024 * 1024)) >"$cg/memory.max"
    cg_peak() { echo $(( $(cat "$cg/memory.peak" 2>/dev/null || echo 0) / 1048576 )); }
    cg_reset() { :; }
    cg_oom() { awk '$1 == "oom_kill" {print $2}' "$cg/memory.events"; }
  else
    say "no memory cgroup available"; exit 1
  fi
}

case_copy() {
  up_lab 1
  make_cgroup
  local addr sum back
  addr=$(lab1_addr)
  say "copy: writing a $big_mb MB file"
  head -c $((big_mb * 1024 * 1024)) /dev/urandom >"$work/big.bin"
  sum=$(sha256sum "$work/big.bin" | cut -d' ' -f1)
  {
    echo "all:"
    lab_vars
    echo "  hosts:"
    printf '    lab1: {ansible_host: %s}\n' "$addr"
  } >"$work/copy.yml"
  cat >"$work/copy-pb.yml" <<EOF
- hosts: lab1
  gather_facts: false
  tasks:
    - copy: {src: $work/big.bin, dest: /opt/big.bin}
EOF
  cat >"$work/fetch-pb.yml" <<EOF
- hosts: lab1
  gather_facts: false
  tasks:
    - fetch: {src: /opt/big.bin, dest: $work/fetched/}
EOF
  local pb what
  for pb in copy fetch; do
    cg_reset
    say "copy: $pb of $big_mb MB with memory limited to $cgroup_mb MB"
    timed "$work/$pb.out" sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
      "$mixop" run "$work/$pb-pb.yml" -i "$work/copy.yml"
    if [ "$pb" = copy ]; then
      back=$("$root/tests/lab/ctl.sh" --state "$work/lab" exec lab1 -- sha256sum /opt/big.bin | cut -d' ' -f1)
      what="a $big_mb MB file to an SSH host (SFTP)"
    else
      back=$(sha256sum "$work/fetched/lab1/opt/big.bin" 2>/dev/null | cut -d' ' -f1)
      what="a fetch of it back"
    fi
    local check="SHA-256 differs"
    [ "$back" = "$sum" ] && check="SHA-256 equal"
    row "$what, mixop limited to $cgroup_mb MB" "$t_rss" "$t_wall" \
      "exit $t_rc, $check, OOM kills $(cg_oom)" "cgroup peak $(cg_peak) MB (page cache included)"
  done
  rm -f "$work/big.bin"
  rm -rf "$work/fetched"
  "$root/tests/lab/down.sh" --state "$work/lab" -q >/dev/null 2>&1
}

for c in $cases; do
  case $c in
    fanout) case_fanout ;;
    output) case_output ;;
    copy) case_copy ;;
    *) say "unknown case $c (fanout output copy)"; exit 2 ;;
  esac
done

echo
echo "mixop: $mixop ($(basename "$(dirname "$mixop")") build); $(nproc) cores; $(date -u +%Y-%m-%d)"
echo
echo "| case | peak RSS (MB) | wall (s) | outcome | note |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
