#!/usr/bin/env bash
# Tear a lab down: kill its sshds and anchors (their mount namespaces go with them), delete
# its namespaces, veths and bridge. Idempotent; fine when nothing is up. Keys and the hosts'
# files/logs stay in the state dir (up.sh wipes the host dirs when it starts again).
#   down.sh [--state DIR]    the lab of that state dir (default $MIXOP_LAB_STATE or tests/lab/state)
#   down.sh --net 10.231.X   whatever runs on that net, whoever started it
#   down.sh --all            every mixop lab on this machine
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

state=${MIXOP_LAB_STATE:-} nets=() all=''
while [ $# -gt 0 ]; do
  case "$1" in
    --state) state=${2:?}; shift 2 ;;
    --state=*) state=${1#*=}; shift ;;
    --net) nets+=("${2:?}"); shift 2 ;;
    --net=*) nets+=("${1#*=}"); shift ;;
    --all) all=1; shift ;;
    -q) LAB_QUIET=1; shift ;;
    *) echo "usage: down.sh [--state DIR | --net 10.231.X | --all] [-q]" >&2; exit 2 ;;
  esac
done
lab_need_root
mkdir -p "$LAB_REG"
exec 8>"$LAB_REG/registry.lock"
flock -w 120 8 || lab_die "timed out waiting for $LAB_REG/registry.lock"

xs=()
if [ -n "$all" ]; then
  for f in "$LAB_REG"/net-*.env; do [ -f "$f" ] && { f=${f##*/net-}; xs+=("${f%.env}"); }; done
  while read -r b; do xs+=("${b#mixopbr}"); done < <(ip -o link show type bridge 2>/dev/null |
    awk -F': ' '{print $2}' | grep -E '^mixopbr[0-9]+$' || true)
  while read -r ns; do ns=${ns%%-lab*}; ns=${ns#mixop}; xs+=("${ns:-0}"); done < <(ip netns list 2>/dev/null |
    awk '{print $1}' | grep -E '^mixop[0-9]*-lab[0-9]+$' || true)
  for p in $(pgrep -f '^mixop-lab-anchor net=' 2>/dev/null || true); do
    a=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) || continue
    a=${a#*net=}; xs+=("${a%% *}")
  done
elif [ ${#nets[@]} -gt 0 ]; then
  for net in "${nets[@]}"; do lab_set_net "$net"; xs+=("$LAB_X"); done
else
  state=$(cd "${state:-$LAB_DEFAULT_STATE}" 2>/dev/null && pwd -P) || state=''
  if [ -n "$state" ]; then
    if [ -f "$state/lab.env" ]; then
      x=$(. "$state/lab.env"; echo "$LAB_NET"); xs+=("${x#10.231.}")
    fi
    # Nets registered to this state dir (e.g. up.sh crashed before writing lab.env).
    for f in "$LAB_REG"/net-*.env; do
      [ -f "$f" ] && [ "$(. "$f"; echo "$STATE")" = "$state" ] && { f=${f##*/net-}; xs+=("${f%.env}"); }
    done
  fi
fi

done_any=''
for x in $(printf '%s\n' "${xs[@]}" | sort -un); do
  lab_set_net "$x"
  exec 7>"$LAB_REG/net-$x.lock"; flock -w 120 7 || lab_die "timed out waiting for net $LAB_NET lock"
  owner_state=''
  [ -f "$LAB_REG/net-$x.env" ] && owner_state=$(. "$LAB_REG/net-$x.env"; echo "$STATE")
  lab_kill_net
  exec 7>&-
  for s in "$owner_state" "$state"; do
    [ -n "$s" ] && [ -f "$s/lab.env" ] && [ "$(. "$s/lab.env"; echo "$LAB_NET")" = "$LAB_NET" ] && lab_mark_down "$s"
  done
  lab_log "lab on $LAB_NET.0/24 is down"
  done_any=1
done
[ -n "$done_any" ] || lab_log "nothing to tear down"
exit 0
