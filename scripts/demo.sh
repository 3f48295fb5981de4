#!/usr/bin/env bash
# The README's main job on one fresh Debian machine: installs what it needs, builds mixop once
# (the locked dependency versions; the same build the test suite uses), brings up the local lab
# (scripts/lab.sh: one Linux server with a real sshd, two simulated Windows Server 2022 workers),
# then runs the cluster bring-up and the workloads, exactly as a user would:
#   mixop run playbooks/cluster.yml -i inventories/lab.yml
#   mixop run playbooks/workloads.yml -i inventories/lab.yml
# The lab stays up afterwards; `scripts/lab.sh down` removes it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n==> %s\n' "$*"; }

step "setup: system packages and the Python virtualenv (scripts/setup.sh)"
bash scripts/setup.sh
step "build: cargo build --locked (a few minutes the first time; shared with scripts/test.sh)"
cargo build --locked --bin mixop
# Where cargo put it (a CARGO_TARGET_DIR set by the user counts, relative to the project).
target_dir="${CARGO_TARGET_DIR:-target}"
[[ "$target_dir" = /* ]] || target_dir="$root/$target_dir"
mixop="$target_dir/debug/mixop"
step "lab: scripts/lab.sh up"
bash scripts/lab.sh up
step "mixop run playbooks/cluster.yml -i inventories/lab.yml"
"$mixop" run playbooks/cluster.yml -i inventories/lab.yml
step "mixop run playbooks/workloads.yml -i inventories/lab.yml"
"$mixop" run playbooks/workloads.yml -i inventories/lab.yml
cat <<'EOF'

==> What just ran, and what was stood in
Real: mixop itself — inventory, playbooks, templates, the parallel engine, SSH (russh) to the
Linux server lab1 (a network namespace with a real OpenSSH sshd), WinRM with NTLM and message
encryption to win1/win2, the PowerShell module protocol, the node token passed from the server
to the workers through hostvars without being printed, the Kubernetes client checks.
Stood in (nothing here can run Windows, PowerShell, k3s or a Kubernetes API server):
  - win1 and win2 are simulated Windows Server 2022 hosts (the project's WinRM peer in simulator
    mode: tests/support/winrm_peer/README.md); they answer mixop's module requests as the real
    cmdlets would and keep their state in .lab/win1/state/host.json;
  - the k3s/RKE2 server, k3s.exe, rke2.exe and containerd are stand-ins
    (tests/support/standins/): they install the way the real ones do, and the "cluster" is the
    project's Kubernetes API double served on lab1:6443.
The lab is still up: run the playbooks again (a second cluster run changes nothing), try
playbooks/teardown.yml, rebuild.yml, monitoring.yml, troubleshoot.yml; remove it with
  scripts/lab.sh down
EOF
