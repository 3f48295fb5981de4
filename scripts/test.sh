#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what it needs (scripts/setup.sh),
# builds once, then runs every test — Rust unit and integration tests, the lab (network
# namespaces with real sshd), the WinRM peer and Kubernetes double checked with their reference
# clients, and the differential tests against ansible-playbook — under one runner (nextest).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
export MIXOP_VENV="$root/.venv"
# Build everything first so test time is not spent compiling inside timeouts.
cargo build --all-targets --locked -q
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --locked --no-fail-fast --test-threads 2 "$@"
else
  exec cargo test --locked --no-fail-fast "$@" -- --test-threads 2
fi
