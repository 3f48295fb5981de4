# Shared helpers for tests/lab/{up,down,ctl}.sh. Sourced, not executed.
# shellcheck shell=bash

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_DEFAULT_STATE="$LAB_DIR/state"
# Machine-wide registry: which state dir owns which subnet, plus lock files.
# Kept under /run so it never outlives a reboot (nor do the namespaces it describes).
LAB_REG=/run/mixop-lab
LAB_STAGE="$LAB_REG/stage"   # empty mount point used while a host's mounts are set up

lab_die() { echo "lab: error: $*" >&2; exit 1; }
lab_log() { [ -n "${LAB_QUIET:-}" ] || echo "lab: $*" >&2; }

lab_need_root() {
  [ "$(id -u)" = 0 ] || lab_die "must run as root (namespaces, mounts, veths)"
}

# lab_set_net NET: NET is "10.231.X" (or just "X"); sets every name that derives from it.
# The subnet index X (0..255) is the lab's identity: bridge, veths, namespaces and the
# registry entry all carry it, so two labs with different X never share a kernel object.
lab_set_net() {
  local net=$1 x
  case "$net" in
    10.231.*) x=${net#10.231.}; x=${x%%/*}; x=${x%.0} ;;
    *) x=$net ;;
  esac
  [[ "$x" =~ ^[0-9]{1,3}$ ]] && [ "$x" -le 255 ] ||
    lab_die "bad --net '$net': expected 10.231.X with X in 0..255 (the lab's dedicated range)"
  x=$((10#$x))
  LAB_X=$x
  LAB_NET="10.231.$x"
  LAB_BRIDGE="mixopbr$x"
  LAB_GW="$LAB_NET.1"
  if [ "$x" = 0 ]; then LAB_NSPREFIX=mixop; else LAB_NSPREFIX="mixop$x"; fi
  LAB_VETH="mx${x}h"   # root-side veth of host K is mx${x}h${K}; inside the host it is eth0
}

lab_ns()   { echo "$LAB_NSPREFIX-$1"; }                 # lab3 -> mixop-lab3
lab_k()    { local h=$1; echo "${h#lab}"; }
lab_ip()   { echo "$LAB_NET.$((9 + $(lab_k "$1")))"; }   # lab1 -> 10.231.X.10
lab_hdir() { echo "$LAB_STATE/hosts/$1"; }

# lab_load_state DIR: read DIR/lab.env written by up.sh. Returns 1 when there is none.
lab_load_state() {
  LAB_STATE=$1
  [ -f "$LAB_STATE/lab.env" ] || return 1
  # shellcheck disable=SC1091
  . "$LAB_STATE/lab.env"
  lab_set_net "$LAB_NET"
}

lab_abs() { mkdir -p "$1" && (cd "$1" && pwd -P); }

# Process start time (clock ticks since boot), to tell a live owner from a reused pid.
lab_starttime() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo "${20}"
}

# lab_owner_alive FILE: the registry entry's owner process still exists.
lab_owner_alive() {
  local f=$1 OWNER_PID='' OWNER_START='' STATE='' st
  # shellcheck disable=SC1090
  . "$f" 2>/dev/null || return 1
  [ -n "$OWNER_PID" ] || return 1
  st=$(lab_starttime "$OWNER_PID") || return 1
  [ "$st" = "$OWNER_START" ]
}

# lab_alive PID: the process exists and is not a zombie (killed lab processes are orphans;
# their reaper may take a while to collect them).
lab_alive() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [ "${s:0:1}" != Z ]
}

# lab_kill_net: kill every process of lab X (anything inside its network namespaces and
# the per-host anchors found by their marker), delete namespaces, veths, bridge.
# Works from names alone, so a lab whose state dir is gone can still be torn down.
lab_kill_net() {
  local x=$LAB_X nsl=() inodes=() pids=() ns i p
  mapfile -t nsl < <(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${LAB_NSPREFIX}-lab[0-9]+\$" || true)
  for ns in "${nsl[@]}"; do
    i=$(stat -L -c %i "/run/netns/$ns" 2>/dev/null) && inodes+=("$i")
  done
  # Anchors carry argv[0] "mixop-lab-anchor net=X host=labK" (also found if their netns
  # file was removed by hand).
  for p in $(pgrep -f "^mixop-lab-anchor net=$x " 2>/dev/null || true); do
    i=$(readlink "/proc/$p/ns/net" 2>/dev/null) && { i=${i#net:[}; inodes+=("${i%]}"); }
  done
  # Links up first, so the controller's side of open connections sees them close (an ssh
  # ControlMaster left talking to a vanished host would hang on the next run).
  ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^${LAB_VETH}[0-9]+\$" |
    sed 's/^/link set up dev /' | ip -force -batch - >/dev/null 2>&1 || true
  if [ ${#inodes[@]} -gt 0 ]; then
    # One pass over /proc for all namespaces (ip netns pids would scan once per netns).
    mapfile -t pids < <(find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/net' -printf '%h %l\n' 2>/dev/null |
      awk -v want=" ${inodes[*]} " '{ ino=$2; gsub(/[^0-9]/, "", ino); if (index(want, " " ino " ")) { split($1, a, "/"); print a[3] } }')
  fi
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local t
    for t in $(seq 1 40); do
      local alive=()
      for p in "${pids[@]}"; do lab_alive "$p" && alive+=("$p"); done
      [ ${#alive[@]} -eq 0 ] && break
      pids=("${alive[@]}")
      [ "$t" = 20 ] && kill -KILL "${pids[@]}" 2>/dev/null
      sleep 0.05
    done
  fi
  {
    for ns in "${nsl[@]}"; do echo "netns del $ns"; done
    ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
      grep -E "^${LAB_VETH}[0-9]+\$" | sed 's/^/link del /' || true
    ip link show "$LAB_BRIDGE" >/dev/null 2>&1 && echo "link del $LAB_BRIDGE"
  } > "$LAB_REG/.batch.$$"
  # (deleting a netns already takes its veth with it: errors here are expected)
  [ -s "$LAB_REG/.batch.$$" ] && { ip -force -batch "$LAB_REG/.batch.$$" >/dev/null 2>&1 || true; }
  rm -f "$LAB_REG/.batch.$$" "$LAB_REG/net-$x.env"
  return 0
}

# lab_mark_down STATE: the state dir no longer describes a running lab.
lab_mark_down() {
  [ -f "$1/lab.env" ] && mv -f "$1/lab.env" "$1/lab.env.down"
  return 0
}

# lab_start_sshd HOST: start the host's sshd inside its namespaces (entered through the
# anchor's pid) and wait until it accepts TCP on port 22. Used by up.sh and ctl.sh start.
lab_start_sshd() {
  local h=$1 hdir ip anchor pid t deadline
  hdir=$(lab_hdir "$h"); ip=$(lab_ip "$h")
  anchor=$(cat "$hdir/run/anchor.pid" 2>/dev/null) && lab_alive "$anchor" ||
    { echo "lab: $h: host anchor is not running" >&2; return 1; }
  rm -f "$hdir/run/sshd.pid"
  # setsid: sshd leaves our session and process group, so a Ctrl-C aimed at the test run
  # does not kill it (down.sh does). Lock fds are closed so sshd never holds a lab lock.
  setsid nsenter -t "$anchor" --net --mount --uts -- /usr/sbin/sshd -D -E /var/log/sshd.log \
    </dev/null >>"$hdir/init.log" 2>&1 7>&- 8>&- 9>&- &
  pid=$!
  deadline=$((SECONDS + ${LAB_TIMEOUT:-30}))
  for ((t = 0; ; t++)); do
    if (exec 3<>"/dev/tcp/$ip/22") 2>/dev/null; then return 0; fi
    if ! lab_alive "$pid"; then
      echo "lab: $h: sshd exited; last lines of $hdir/var/log/sshd.log and init.log:" >&2
      tail -n 5 "$hdir/var/log/sshd.log" "$hdir/init.log" >&2 2>/dev/null
      return 1
    fi
    [ "$SECONDS" -lt "$deadline" ] || { echo "lab: $h: sshd not accepting on $ip:22 after ${LAB_TIMEOUT:-30}s" >&2; return 1; }
    sleep 0.02
  done
}

# lab_sshd_pid HOST: pid of the listening sshd, if running.
lab_sshd_pid() {
  local p
  p=$(cat "$(lab_hdir "$1")/run/sshd.pid" 2>/dev/null) && lab_alive "$p" && echo "$p"
}
