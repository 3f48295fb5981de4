#!/usr/bin/env bash
# The local lab the README's main job runs against (inventories/lab.yml):
#   lab1   a Linux host: network namespace 10.231.0.10 with a real OpenSSH sshd (tests/lab)
#   win1   a simulated Windows Server 2022 worker: the project's WinRM peer in simulator mode
#   win2   on 127.0.0.1:55985 and :55986 (NTLM + message encryption, like a default host)
# The server stand-ins run inside lab1 with Debian's python3 (python3-cryptography,
# python3-yaml: scripts/setup.sh), since the virtualenv's interpreter lives under /root, which a
# lab host does not see.
# plus the artifact folder (.lab/artifacts) with stand-ins for what cannot be had here: the k3s
# and RKE2 server binaries and install scripts, k3s.exe, containerd for Windows.
#
#   scripts/lab.sh up       bring it up (fresh: Windows hosts back to their initial state)
#   scripts/lab.sh down     remove it
#   scripts/lab.sh status
#   scripts/lab.sh artifacts DIR   only assemble the artifact stand-ins in DIR (the tests do)
#   scripts/lab.sh install-double HOSTDIR   copy the API double into a lab host's /opt
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
lab="$root/.lab"
py="${MIXOP_VENV:-$root/.venv}/bin/python"
peer="$root/tests/support/winrm_peer/peer.py"
# The API double runs inside lab1, which sees its own /opt, /tmp, /root and /home only (a clone
# of this repository may live in any of those): `install_double` copies it into lab1's /opt.
double_in_lab=/opt/mixop-kube-double/server.py
k3s_version=v1.32.5+k3s1
rke2_version=v1.32.5+rke2r1
containerd_version=2.3.0
windows_hosts=(win1:55985 win2:55986)

say() { printf '%s\n' "lab: $*" >&2; }

peer_down() {
  local name=$1 pidf="$lab/$1/peer.pid"
  if [ -f "$pidf" ]; then
    local pid
    pid=$(cat "$pidf")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidf"
  fi
}

# What a fresh Windows Server 2022 worker looks like to the simulator.
sim_init() {
  local name=$1
  cat <<EOF
{"computer": {"name": "$(echo "$name" | tr a-z A-Z)", "memory_mb": 8192, "logical_processors": 4,
              "ipv4_addresses": ["127.0.0.1"]}}
EOF
}

assemble_artifacts() {
  local a="${1:-$lab/artifacts}" s="$root/tests/support/standins"
  rm -rf "$a.new"
  mkdir -p "$a.new/k3s" "$a.new/rke2" "$a.new/containerd"
  local dist version
  for dist in k3s rke2; do
    version=$k3s_version
    [ $dist = rke2 ] && version=$rke2_version
    sed -e "s#@DIST@#$dist#" -e "s#@VERSION@#$version#" -e "s#@PYTHON@#/usr/bin/python3#" \
      -e "s#@DOUBLE@#$double_in_lab#" "$s/linux/server" > "$a.new/$dist/$dist"
    cp "$s/linux/$dist-install.sh" "$a.new/$dist/install.sh"
  done
  # The Windows stand-ins (tests/support/winrm_peer/README.md, "Stand-in programs") carry the
  # version this folder was assembled with. RKE2's Windows files go to rke2/windows/, apart from
  # the Linux server's rke2 and install.sh (playbooks/tasks/windows-rke2.yml copies only that).
  { cat "$s/windows/k3s.exe"; printf 'version: %s\n' "$k3s_version"; } > "$a.new/k3s/k3s.exe"
  mkdir -p "$a.new/rke2/windows"
  { cat "$s/windows/rke2.exe"; printf 'version: %s\n' "$rke2_version"; } > "$a.new/rke2/windows/rke2.exe"
  cp "$s/windows/rke2-install.ps1" "$a.new/rke2/windows/install.ps1"
  cp "$s/windows/rke2-uninstall.ps1" "$a.new/rke2/windows/rke2-uninstall.ps1"
  chmod 755 "$a.new"/k3s/* "$a.new"/rke2/rke2 "$a.new"/rke2/install.sh 2>/dev/null || true
  # containerd's Windows release archive has bin/containerd.exe, bin/ctr.exe, ...
  local t
  t=$(mktemp -d)
  mkdir -p "$t/bin"
  { cat "$s/windows/containerd.exe"; printf 'version: %s\n' "$containerd_version"; } > "$t/bin/containerd.exe"
  { cat "$s/windows/ctr.exe"; printf 'version: %s\n' "$containerd_version"; } > "$t/bin/ctr.exe"
  tar -czf "$a.new/containerd/containerd-$containerd_version-windows-amd64.tar.gz" -C "$t" bin
  rm -rf "$t"
  cat > "$a.new/README" <<EOF
Artifacts for the local lab (scripts/lab.sh). These are STAND-INS, not the real programs:
k3s $k3s_version and RKE2 $rke2_version servers serve the project's Kubernetes API double;
k3s.exe, rke2/windows/ (rke2.exe, install.ps1, rke2-uninstall.ps1) and containerd.exe are
understood by the simulated Windows workers (tests/support/winrm_peer/README.md, "Stand-in programs").
EOF
  rm -rf "$a"
  mv "$a.new" "$a"
}

# install_double HOSTDIR: the Kubernetes API double into a lab host's /opt (HOSTDIR/opt).
install_double() {
  local d="$1/opt/mixop-kube-double"
  rm -rf "$d"
  mkdir -p "$d"
  cp -r "$root/tests/support/kube_double/." "$d/"
  rm -rf "$d/__pycache__"
}

up() {
  [ "$(id -u)" = 0 ] || { echo "lab: needs root (network namespaces)" >&2; exit 1; }
  mkdir -p "$lab"
  chmod 700 "$lab"
  say "Linux server lab1 (network namespace with sshd) ..."
  tests/lab/up.sh 1 -q >/dev/null
  # No systemd runs inside a lab host: its systemctl is the project's test double, which
  # here also runs a unit's ExecStart (the k3s/RKE2 stand-ins serve the API double).
  tests/lab/ctl.sh exec lab1 -- sh -c 'mkdir -p /etc/fake-systemd && touch /etc/fake-systemd/run-services'
  install -m 0755 tests/fixtures/fake-systemctl tests/lab/state/hosts/lab1/usr-local-bin/systemctl
  install_double "$root/tests/lab/state/hosts/lab1"
  say "artifact stand-ins in .lab/artifacts ..."
  assemble_artifacts
  if [ ! -s "$lab/win-password" ]; then
    (umask 077; "$py" -c 'import secrets; print("Lab-" + secrets.token_urlsafe(12))' > "$lab/win-password")
  fi
  local pw
  pw=$(cat "$lab/win-password")
  for hp in "${windows_hosts[@]}"; do
    local name=${hp%%:*} port=${hp##*:}
    say "simulated Windows Server 2022 worker $name on 127.0.0.1:$port ..."
    peer_down "$name"
    rm -rf "$lab/$name"
    mkdir -p "$lab/$name"
    sim_init "$name" > "$lab/$name/init.json"
    rm -f "$lab/$name/port"
    # The users file keeps the password off the command line.
    (umask 077; printf 'Administrator:%s\n' "$pw" > "$lab/$name/users")
    setsid "$py" "$peer" --listen "127.0.0.1:$port" --port-file "$lab/$name/port" \
      --users-file "$lab/$name/users" --mode sim --state-dir "$lab/$name/state" \
      --sim-init "$lab/$name/init.json" --control --control-port-file "$lab/$name/control-port" \
      </dev/null >>"$lab/$name/peer.log" 2>&1 &
    echo $! > "$lab/$name/peer.pid"
  done
  for hp in "${windows_hosts[@]}"; do
    local name=${hp%%:*}
    for _ in $(seq 100); do [ -s "$lab/$name/port" ] && break; sleep 0.1; done
    [ -s "$lab/$name/port" ] || { echo "lab: $name did not start; see $lab/$name/peer.log" >&2; tail -n 20 "$lab/$name/peer.log" >&2; exit 1; }
  done
  say "up: lab1 (10.231.0.10, ssh), win1 (127.0.0.1:55985, winrm), win2 (127.0.0.1:55986, winrm)"
}

down() {
  for hp in "${windows_hosts[@]}"; do peer_down "${hp%%:*}"; done
  tests/lab/down.sh -q 2>/dev/null || true
  say "down"
}

status() {
  tests/lab/ctl.sh status 2>/dev/null || echo "lab1: down"
  for hp in "${windows_hosts[@]}"; do
    local name=${hp%%:*} port=${hp##*:} st=down
    [ -f "$lab/$name/peer.pid" ] && kill -0 "$(cat "$lab/$name/peer.pid")" 2>/dev/null && st=up
    echo "$name 127.0.0.1:$port winrm (simulated) $st"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  install-double) [ -n "${2:-}" ] || { echo "usage: scripts/lab.sh install-double HOSTDIR" >&2; exit 5; }
    install_double "$2" ;;
  artifacts) [ -n "${2:-}" ] || { echo "usage: scripts/lab.sh artifacts DIR" >&2; exit 5; }
    mkdir -p "$(dirname "$2")"; assemble_artifacts "$(cd "$(dirname "$2")" && pwd)/$(basename "$2")" ;;
  *) echo "usage: scripts/lab.sh up|down|status|artifacts DIR" >&2; exit 5 ;;
esac
