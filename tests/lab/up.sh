#!/usr/bin/env bash
# Bring up a lab of N Linux "hosts" (network namespaces on a bridge, each with a real sshd
# and a private filesystem view). Idempotent: an existing lab of the same state dir is torn
# down first; keys are kept so known_hosts stays valid. See tests/lab/README.md.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat >&2 <<'EOF'
usage: up.sh N [--state DIR] [--net 10.231.X|auto] [--no-sftp HOST]... [--owner PID]
               [--force] [--timeout SECS] [-q]
  N           number of hosts, lab1..labN (1..245)
  --state     state dir (default $MIXOP_LAB_STATE or tests/lab/state)
  --net       the lab's /24 inside 10.231.0.0/16 (default 10.231.0; "auto" picks a free one
              from 10.231.1 up). Different labs need different nets and state dirs.
  --no-sftp   HOST's sshd has no sftp subsystem (repeatable)
  --owner     pid whose death marks this lab as a leftover (default: the caller, $PPID)
  --force     take over the net even if another live lab owns it
  --timeout   seconds to wait for each sshd (default 30)
Prints the inventory path on stdout.
EOF
  exit 2
}

n='' state=${MIXOP_LAB_STATE:-} net=0 owner=$PPID force='' nosftp=' '
while [ $# -gt 0 ]; do
  case "$1" in
    --state) state=${2:?}; shift 2 ;;
    --state=*) state=${1#*=}; shift ;;
    --net) net=${2:?}; shift 2 ;;
    --net=*) net=${1#*=}; shift ;;
    --no-sftp) nosftp+="${2:?} "; shift 2 ;;
    --no-sftp=*) nosftp+="${1#*=} "; shift ;;
    --owner) owner=${2:?}; shift 2 ;;
    --force) force=1; shift ;;
    --timeout) LAB_TIMEOUT=${2:?}; shift 2 ;;
    -q) LAB_QUIET=1; shift ;;
    -h|--help) usage ;;
    [0-9]*) [ -z "$n" ] || usage; n=$1; shift ;;
    *) usage ;;
  esac
done
[[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 245 ] || usage
export LAB_TIMEOUT=${LAB_TIMEOUT:-30}
lab_need_root
for c in ip nsenter unshare setsid flock ssh-keygen openssl /usr/sbin/sshd; do
  command -v "$c" >/dev/null || lab_die "missing $c (run scripts/setup.sh)"
done

t0=$(date +%s.%N)
state=$(lab_abs "${state:-$LAB_DEFAULT_STATE}")
case "$state/" in
  /etc/*|/var/*|/run/*) lab_die "state dir $state must not be under /etc, /var or /run (the hosts overlay or replace those)" ;;
esac
for h in $nosftp; do [[ "$h" =~ ^lab[0-9]+$ ]] || lab_die "--no-sftp wants a host name like lab2, got '$h'"; done
owner_start=$(lab_starttime "$owner") || lab_die "--owner $owner: no such process"

mkdir -p "$LAB_REG" "$LAB_STAGE" /opt /usr/local/bin /home

# --- Registry phase, under the machine-wide lock (fd 8) -------------------------------
exec 8>"$LAB_REG/registry.lock"
flock -w 120 8 || lab_die "timed out waiting for $LAB_REG/registry.lock"

# tear_down_net X: with X's lock held on fd 7, kill lab X; also mark its old state dir down.
tear_down_net() {
  local old=''
  lab_set_net "$1"
  if [ -f "$LAB_REG/net-$LAB_X.env" ]; then old=$(. "$LAB_REG/net-$LAB_X.env"; echo "${STATE:-}"); fi
  exec 7>"$LAB_REG/net-$LAB_X.lock"; flock -w 120 7 || lab_die "timed out waiting for net $LAB_NET lock"
  lab_kill_net
  exec 7>&-
  if [ -n "$old" ] && [ -f "$old/lab.env" ] && [ "$(. "$old/lab.env"; echo "$LAB_NET")" = "10.231.$1" ]; then
    lab_mark_down "$old"
  fi
}

if [ "$net" = auto ]; then
  x=''
  # A lab of this state dir that is still registered keeps its net (up is idempotent: the same
  # net, not a lower one that another lab freed meanwhile); otherwise the lowest free one.
  for f in "$LAB_REG"/net-*.env; do
    [ -f "$f" ] && [ "$(. "$f"; echo "$STATE")" = "$state" ] || continue
    i=${f##*/net-}; i=${i%.env}
    [[ "$i" =~ ^[0-9]+$ ]] && [ "$i" -ge 1 ] && [ "$i" -le 255 ] && { x=$i; break; }
  done
  for i in $( [ -z "$x" ] && seq 1 255); do
    f="$LAB_REG/net-$i.env"
    if [ -f "$f" ]; then
      [ "$(. "$f"; echo "$STATE")" = "$state" ] || ! lab_owner_alive "$f" || continue
    else
      ip link show "mixopbr$i" >/dev/null 2>&1 && continue   # unregistered: not ours to take
    fi
    x=$i; break
  done
  [ -n "$x" ] || lab_die "no free net in 10.231.1..255"
  net=$x
fi
lab_set_net "$net"
x=$LAB_X

f="$LAB_REG/net-$x.env"
if [ -f "$f" ]; then
  other=$(. "$f"; echo "$STATE")
  if [ "$other" != "$state" ] && lab_owner_alive "$f" && [ -z "$force" ]; then
    lab_die "net $LAB_NET is in use by the lab in $other (owner pid $(. "$f"; echo "$OWNER_PID") alive). Use another --net (or --net auto), run 'down.sh --state $other', or pass --force."
  fi
  [ "$other" = "$state" ] || lab_log "taking over net $LAB_NET from leftover lab in $other"
fi
# The previous lab of this state dir (maybe on another net), then anything left on net X.
if [ -f "$state/lab.env" ]; then
  prev=$(. "$state/lab.env"; echo "$LAB_NET")
  tear_down_net "${prev#10.231.}"
fi
tear_down_net "$x"
lab_set_net "$x"
exec 9>"$LAB_REG/net-$x.lock"; flock -w 120 9 || lab_die "timed out waiting for net $LAB_NET lock"
printf 'STATE=%q\nOWNER_PID=%s\nOWNER_START=%s\n' "$state" "$owner" "$owner_start" > "$f"
exec 8>&-   # registry done; the bring-up below holds only this net's lock (fd 9)

# --- Bring-up -------------------------------------------------------------------------
LAB_STATE=$state
hosts=()
for ((k = 1; k <= n; k++)); do hosts+=("lab$k"); done
cat > "$state/lab.env" <<EOF
# Written by tests/lab/up.sh; read by down.sh and ctl.sh.
LAB_NET=$LAB_NET
LAB_N=$n
LAB_STATE=$(printf %q "$state")
EOF
rm -f "$state/lab.env.down"

fail() {
  echo "lab: bring-up failed: $*; tearing the lab down (logs stay in $state/hosts)" >&2
  lab_kill_net; lab_mark_down "$state"; exit 1
}
trap 'fail "interrupted"' INT TERM
trap 'fail "command failed at up.sh line $LINENO"' ERR

# Deleting files is slow on this disk (~0.2 s per host dir under load): old host dirs are
# renamed into .trash (instant) and removed in the background once the lab is up.
trash() {
  local p
  mkdir -p "$state/.trash.$$"
  for p in "$@"; do [ -e "$p" ] && mv "$p" "$(mktemp -d -p "$state/.trash.$$")/"; done
  return 0
}

# Keys: the controller's, and two host keys per host, generated in parallel, kept across runs.
mkdir -p "$state/keys"
[ -f "$state/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C mixop-lab-controller -f "$state/id_ed25519" &
for h in "${hosts[@]}"; do
  for t in ed25519 ecdsa; do
    kf="$state/keys/$h/ssh_host_${t}_key"
    [ -f "$kf" ] || { mkdir -p "$state/keys/$h"; ssh-keygen -q -t $t -N '' -C "root@$h" -f "$kf" & }
  done
  if [ ! -f "$state/keys/$h/machine-id" ]; then   # per-host /etc/machine-id, stable across runs
    mkdir -p "$state/keys/$h"; read -r u < /proc/sys/kernel/random/uuid; echo "${u//-/}" > "$state/keys/$h/machine-id"
  fi
done

# Template of what every host's private directories start with.
tpl="$state/template"
trash "$tpl"
mkdir -p "$tpl"/{etc/ssh,etc/sudoers.d,etc/pam.d,var/log,.work/etc,.work/var,opt,usr-local-bin,home,root/.ssh,run/sshd}
install -d -m 1777 "$tpl/tmp"
chmod 700 "$tpl/root" "$tpl/root/.ssh"
chmod 755 "$tpl/opt" "$tpl/usr-local-bin" "$tpl/home" "$tpl/run" "$tpl/run/sshd"

# Lab users exist only inside the hosts (their /etc is an overlay): the controller's
# passwd/shadow/group plus labuser and nopass.
free_id() {  # free_id DB START: first id >= START unused in /etc/DB
  local id=$2
  while getent "$1" "$id" >/dev/null; do id=$((id + 1)); done
  echo "$id"
}
uid1=$(getent passwd labuser | cut -d: -f3 || true); uid1=${uid1:-$(free_id passwd 2001)}
uid2=$(getent passwd nopass | cut -d: -f3 || true);  uid2=${uid2:-$(free_id passwd $((uid1 + 1)))}
gid1=$(getent group labuser | cut -d: -f3 || true);  gid1=${gid1:-$(free_id group 2001)}
gid2=$(getent group nopass | cut -d: -f3 || true);   gid2=${gid2:-$(free_id group $((gid1 + 1)))}
hash1=$(openssl passwd -6 labpass)
hash2=$(openssl passwd -6 nopass)
days=$(( $(date +%s) / 86400 ))
drop='^(labuser|nopass):'
{ grep -Ev "$drop" /etc/passwd; echo "labuser:x:$uid1:$gid1:lab user:/home/labuser:/bin/bash"
  echo "nopass:x:$uid2:$gid2:lab user (NOPASSWD sudo):/home/nopass:/bin/bash"; } > "$tpl/etc/passwd"
{ grep -Ev "$drop" /etc/shadow; echo "labuser:$hash1:$days:0:99999:7:::"
  echo "nopass:$hash2:$days:0:99999:7:::"; } > "$tpl/etc/shadow"
{ grep -Ev "$drop" /etc/group; echo "labuser:x:$gid1:"; echo "nopass:x:$gid2:"; } > "$tpl/etc/group"
{ grep -Ev "$drop" /etc/gshadow 2>/dev/null || true; echo "labuser:!::"; echo "nopass:!::"; } > "$tpl/etc/gshadow"
chmod 644 "$tpl/etc/passwd" "$tpl/etc/group"; chmod 640 "$tpl/etc/shadow" "$tpl/etc/gshadow"
chgrp shadow "$tpl/etc/shadow" "$tpl/etc/gshadow" 2>/dev/null || true
cat > "$tpl/etc/sudoers.d/mixop-lab" <<'EOF'
# mixop lab users (generated by tests/lab/up.sh)
Defaults lecture=never
labuser ALL=(ALL:ALL) ALL
nopass ALL=(ALL:ALL) NOPASSWD: ALL
EOF
chmod 440 "$tpl/etc/sudoers.d/mixop-lab"
# A lean PAM stack (Debian's pulls in pam_systemd and motd scripts: slow, and useless here).
# UsePAM is needed for keyboard-interactive authentication.
cat > "$tpl/etc/pam.d/sshd" <<'EOF'
# mixop lab (generated by tests/lab/up.sh)
auth     required pam_unix.so
account  required pam_unix.so
password required pam_unix.so obscure yescrypt
session  required pam_unix.so
session  required pam_limits.so
EOF
{ echo "127.0.0.1 localhost"; echo "$LAB_GW controller"
  for h in "${hosts[@]}"; do echo "$(lab_ip "$h") $h"; done; } > "$tpl/etc/hosts.lab"

wait   # keys
pub=$(cat "$state/id_ed25519.pub")
echo "$pub" > "$tpl/root/.ssh/authorized_keys"; chmod 600 "$tpl/root/.ssh/authorized_keys"
for u in labuser nopass; do
  uid=$uid1 gid=$gid1; [ $u = nopass ] && uid=$uid2 gid=$gid2
  install -d -m 750 -o "$uid" -g "$gid" "$tpl/home/$u"
  install -d -m 700 -o "$uid" -g "$gid" "$tpl/home/$u/.ssh"
  install -m 600 -o "$uid" -g "$gid" "$state/id_ed25519.pub" "$tpl/home/$u/.ssh/authorized_keys"
  printf '%s\n' "# mixop lab: sh -c commands are what matter; keep startup quiet" > "$tpl/home/$u/.profile"
  chown "$uid:$gid" "$tpl/home/$u/.profile"
done

# Network: bridge, namespaces, veth pairs in one netlink batch (no address outside 10.231.X/24,
# no default route, no NAT).
{
  echo "link add $LAB_BRIDGE type bridge forward_delay 0"
  echo "link set $LAB_BRIDGE addrgenmode none"
  echo "addr add $LAB_GW/24 dev $LAB_BRIDGE"
  echo "link set $LAB_BRIDGE up"
  for h in "${hosts[@]}"; do
    k=$(lab_k "$h")
    echo "netns add $(lab_ns "$h")"
    echo "link add $LAB_VETH$k type veth peer name eth0 netns $(lab_ns "$h")"
    echo "link set $LAB_VETH$k addrgenmode none"
    echo "link set $LAB_VETH$k master $LAB_BRIDGE up"
  done
} > "$state/net.batch"
ip -batch "$state/net.batch" >"$state/net.log" 2>&1 || { cat "$state/net.log" >&2; fail "network setup"; }

lib=$LAB_DIR/lib
host_up() {
  local h=$1 hdir ns ip k i
  hdir=$(lab_hdir "$h"); ns=$(lab_ns "$h"); ip=$(lab_ip "$h"); k=$(lab_k "$h")
  trash "$hdir"
  cp -a "$tpl" "$hdir"
  echo "$h" > "$hdir/etc/hostname"
  { echo "127.0.1.1 $h"; cat "$tpl/etc/hosts.lab"; } > "$hdir/etc/hosts"; rm -f "$hdir/etc/hosts.lab"
  cp -p "$state/keys/$h"/ssh_host_* "$hdir/etc/ssh/"
  cp "$state/keys/$h/machine-id" "$hdir/etc/machine-id"
  {
    echo "# mixop lab host $h (generated by tests/lab/up.sh)"
    echo "AddressFamily inet"
    echo "Port 22"
    echo "HostKey /etc/ssh/ssh_host_ed25519_key"
    echo "HostKey /etc/ssh/ssh_host_ecdsa_key"
    echo "PidFile /run/sshd.pid"
    echo "PermitRootLogin prohibit-password"
    echo "PubkeyAuthentication yes"
    echo "PasswordAuthentication yes"
    echo "KbdInteractiveAuthentication yes"
    echo "UsePAM yes"
    echo "UseDNS no"
    echo "MaxSessions 64"
    echo "MaxStartups 200:30:400"
    echo "PrintMotd no"
    echo "AcceptEnv LANG LC_*"
    case "$nosftp" in
      *" $h "*) echo "# no sftp subsystem on this host (up.sh --no-sftp $h)" ;;
      *) echo "Subsystem sftp internal-sftp" ;;
    esac
  } > "$hdir/etc/ssh/sshd_config"
  ln -s var/log/sshd.log "$hdir/sshd.log"
  ip -n "$ns" -batch - >>"$hdir/init.log" 2>&1 <<EOF || { echo "lab: $h: address setup failed" >&2; return 1; }
link set lo up
link set eth0 addrgenmode none
addr add $ip/24 dev eth0
link set eth0 up
EOF
  setsid nsenter --net="/run/netns/$ns" -- unshare --mount --uts --propagation private -- \
    bash "$lib/hostinit.sh" "$hdir" "$h" "$LAB_X" </dev/null >>"$hdir/init.log" 2>&1 7>&- 8>&- 9>&- &
  for ((i = 0; i < 50 * LAB_TIMEOUT; i++)); do
    [ -f "$hdir/run/.mixop-ready" ] && break
    lab_alive $! || { echo "lab: $h: host init failed:" >&2; cat "$hdir/init.log" >&2; return 1; }
    sleep 0.02
  done
  [ -f "$hdir/run/.mixop-ready" ] || { echo "lab: $h: host init timed out" >&2; return 1; }
  lab_start_sshd "$h"
}

mkdir -p "$state/hosts"
pids=()
for h in "${hosts[@]}"; do host_up "$h" & pids+=($!); done
bad=0
for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
[ "$bad" = 0 ] || fail "$bad host(s) did not come up"
# Hosts from a previous, larger lab in this state dir are gone; drop their dirs.
for d in "$state"/hosts/lab*; do
  [ -d "$d" ] || continue; k=${d##*/lab}
  [[ "$k" =~ ^[0-9]+$ ]] && [ "$k" -gt "$n" ] && trash "$d"
done
# (this run's trash and any a killed run left; a later run makes its own .trash.PID)
setsid rm -rf "$state"/.trash.* </dev/null >/dev/null 2>&1 7>&- 8>&- 9>&- &

# Client-side files.
kh="$state/known_hosts"
{
  for h in "${hosts[@]}"; do
    for t in ed25519 ecdsa; do
      read -r typ key _ < "$state/keys/$h/ssh_host_${t}_key.pub"
      echo "$h,$(lab_ip "$h") $typ $key"
    done
  done
} > "$kh"
{
  echo "# mixop lab on $LAB_NET.0/24 (generated by tests/lab/up.sh)"
  for h in "${hosts[@]}"; do
    printf '%s\t%s\t%s\n' "$h" "$(lab_ip "$h")" "$(lab_ns "$h")"
  done
} > "$state/hosts.tsv"
{
  for h in "${hosts[@]}"; do
    echo "Host $h"
    echo "  HostName $(lab_ip "$h")"
  done
  echo "Host lab* $LAB_NET.*"
  echo "  User root"
  echo "  IdentityFile $state/id_ed25519"
  echo "  IdentitiesOnly yes"
  echo "  UserKnownHostsFile $kh"
  echo "  StrictHostKeyChecking yes"
  echo "  BatchMode yes"
} > "$state/ssh_config"
inv="$state/inventory.yml"
{
  echo "# mixop lab on $LAB_NET.0/24 (generated by tests/lab/up.sh)"
  echo "all:"
  echo "  children:"
  echo "    lab:"
  echo "      hosts:"
  for h in "${hosts[@]}"; do
    echo "        $h:"
    echo "          ansible_host: $(lab_ip "$h")"
  done
  echo "      vars:"
  echo "        ansible_user: root"
  echo "        ansible_ssh_private_key_file: \"$state/id_ed25519\""
  echo "        ansible_ssh_common_args: \"-o UserKnownHostsFile=$kh\""
  echo "        ansible_python_interpreter: /usr/bin/python3"
  echo "        mixop_known_hosts_file: \"$kh\""
  echo "        mixop_lab_net: \"$LAB_NET\""
} > "$inv"

trap - INT TERM ERR
lab_log "$n host(s) up on $LAB_NET.0/24 in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s (state: $state)"
echo "$inv"
