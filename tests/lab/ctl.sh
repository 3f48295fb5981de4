#!/usr/bin/env bash
# Fault and inspection helpers for a running lab.
#   ctl.sh [--state DIR] stop HOST [--kill-sessions]   stop HOST's sshd (port refuses); open
#                                                      sessions survive unless --kill-sessions
#   ctl.sh [--state DIR] start HOST                    start it again, wait until it accepts TCP
#   ctl.sh [--state DIR] link-down HOST | link-up HOST take HOST's link down/up (packets dropped,
#                                                      open connections hang rather than reset)
#   ctl.sh [--state DIR] exec HOST -- CMD...           run CMD inside HOST's namespaces (network,
#                                                      mount, hostname): sees HOST's own files
#   ctl.sh [--state DIR] addr HOST                     print HOST's address
#   ctl.sh [--state DIR] ssh HOST [CMD...]             OpenSSH as root with the lab's key/known_hosts
#   ctl.sh [--state DIR] pid HOST                      pid of the host's anchor (nsenter -t PID)
#   ctl.sh [--state DIR] status                        one line per host: name, address, sshd, link
# The state dir defaults to $MIXOP_LAB_STATE, then tests/lab/state.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
state=${MIXOP_LAB_STATE:-}
case "${1:-}" in --state) state=${2:?}; shift 2 ;; --state=*) state=${1#*=}; shift ;; esac
[ $# -ge 1 ] || usage
cmd=$1; shift
state=$(cd "${state:-$LAB_DEFAULT_STATE}" 2>/dev/null && pwd -P) || lab_die "no state dir"
lab_load_state "$state" || lab_die "no lab is up for state dir $state"

host_arg() {
  local h=${1:-}
  [[ "$h" =~ ^lab[0-9]+$ ]] && [ "$(lab_k "$h")" -ge 1 ] && [ "$(lab_k "$h")" -le "$LAB_N" ] ||
    lab_die "unknown host '$h' (this lab has lab1..lab$LAB_N)"
  echo "$h"
}
anchor_pid() {
  local p
  p=$(cat "$(lab_hdir "$1")/run/anchor.pid" 2>/dev/null) && lab_alive "$p" || lab_die "$1: host is not running"
  echo "$p"
}
netlock() { exec 9>"$LAB_REG/net-$LAB_X.lock"; flock -w 120 9 || lab_die "timed out waiting for the lab lock"; }

case "$cmd" in
  stop)
    lab_need_root
    h=$(host_arg "${1:-}"); kill_sessions=''
    [ "${2:-}" = --kill-sessions ] && kill_sessions=1
    netlock
    anchor=$(anchor_pid "$h")
    pid=$(lab_sshd_pid "$h") || true
    if [ -z "$pid" ]; then  # the pid file may lag right after a start
      sleep 0.2; pid=$(lab_sshd_pid "$h") || true
    fi
    pids=()
    [ -n "$pid" ] && pids+=("$pid")
    if [ -n "$kill_sessions" ]; then
      # every process in the host except its anchor
      for p in $(ip netns pids "$(lab_ns "$h")"); do [ "$p" = "$anchor" ] || pids+=("$p"); done
    fi
    [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 100); do
      alive=''
      for p in "${pids[@]}"; do lab_alive "$p" && alive=1; done
      [ -z "$alive" ] && break
      sleep 0.02
    done
    [ -z "$alive" ] || kill -KILL "${pids[@]}" 2>/dev/null || true
    rm -f "$(lab_hdir "$h")/run/sshd.pid"
    ;;
  start)
    lab_need_root
    h=$(host_arg "${1:-}")
    netlock
    if lab_sshd_pid "$h" >/dev/null; then exit 0; fi
    lab_start_sshd "$h"
    ;;
  link-down|link-up)
    lab_need_root
    h=$(host_arg "${1:-}")
    ip link set "$LAB_VETH$(lab_k "$h")" "${cmd#link-}"
    ;;
  exec)
    lab_need_root
    h=$(host_arg "${1:-}"); shift
    [ "${1:-}" = -- ] && shift
    [ $# -ge 1 ] || lab_die "usage: ctl.sh exec HOST -- CMD..."
    exec nsenter -t "$(anchor_pid "$h")" --net --mount --uts -- "$@"
    ;;
  addr)
    h=$(host_arg "${1:-}"); lab_ip "$h"
    ;;
  pid)
    h=$(host_arg "${1:-}"); anchor_pid "$h"
    ;;
  ssh)
    h=$(host_arg "${1:-}"); shift
    exec ssh -F "$LAB_STATE/ssh_config" "$h" "$@"
    ;;
  status)
    for ((k = 1; k <= LAB_N; k++)); do
      h=lab$k
      s=stopped; lab_sshd_pid "$h" >/dev/null && s=running
      l=$(ip -o link show "$LAB_VETH$k" 2>/dev/null | grep -q 'state UP' && echo up || echo down)
      printf '%s\t%s\tsshd:%s\tlink:%s\n' "$h" "$(lab_ip "$h")" "$s" "$l"
    done
    ;;
  *) usage ;;
esac
