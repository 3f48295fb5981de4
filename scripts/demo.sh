#!/usr/bin/env bash
# The main job against the local lab: installs what is needed, brings up 3 lab hosts (network
# namespaces with real sshd), and runs the demo playbook twice (the second run changes nothing).
# The lab stays up for you to look at; remove it with tests/lab/down.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
cargo build --release -q
tests/lab/up.sh 3 -q >/dev/null
target/release/mixop run playbooks/lab-demo.yml -i inventories/lab.yml
target/release/mixop run playbooks/lab-demo.yml -i inventories/lab.yml
