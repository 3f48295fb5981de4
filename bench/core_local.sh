#!/usr/bin/env bash
# Core benchmark: a 100-task playbook on `localhost` (connection local) — command, copy,
# template, set_fact mixed — run by mixop and by ansible-playbook. Median of RUNS runs each,
# printed as a table. Usage: bench/core_local.sh [RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
bash "$root/scripts/setup.sh" >/dev/null
cargo build --release -q --manifest-path "$root/Cargo.toml"
mixop="$root/target/release/mixop"
venv="$root/.venv"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/templates" "$work/out"
echo 'value={{ counter }} host={{ inventory_hostname }}' > "$work/templates/t.j2"
cat > "$work/inventory.yml" <<INV
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: $venv/bin/python
INV
{
  echo "- hosts: localhost"
  echo "  gather_facts: false"
  echo "  tasks:"
  for i in $(seq 1 25); do
    echo "    - command: echo $i"
    echo "      changed_when: false"
    echo "    - copy: {content: 'item $i', dest: '$work/out/copy-$i.txt'}"
    echo "    - set_fact: {counter: $i}"
    echo "    - template: {src: t.j2, dest: '$work/out/tmpl-$i.txt'}"
  done
} > "$work/pb.yml"
export ANSIBLE_HOME="$work/ansible-home" ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_RETRY_FILES_ENABLED=0

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
time_runs() { # label, command...
  local label=$1; shift
  local times=()
  for _ in $(seq 1 "$runs"); do
    rm -rf "$work/out"/*
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "$label failed" >&2; "$@" | tail -20 >&2; exit 1; }
    t1=$(date +%s.%N)
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
  done
  printf '%s\n' "${times[@]}" | median
}
m=$(time_runs mixop "$mixop" run "$work/pb.yml" -i "$work/inventory.yml")
a=$(time_runs ansible "$venv/bin/ansible-playbook" -i "$work/inventory.yml" "$work/pb.yml")
printf '\n| tool (100 local tasks, median of %s) | seconds |\n|---|---|\n' "$runs"
printf '| mixop %s | %.3f |\n' "$("$mixop" --version | cut -d' ' -f2)" "$m"
printf '| ansible-playbook %s | %.3f |\n' "$("$venv/bin/ansible-playbook" --version | head -1 | grep -o '[0-9.]*' | head -1)" "$a"
printf '| ratio (ansible / mixop) | %.1fx |\n' "$(awk -v a="$a" -v m="$m" 'BEGIN{print a/m}')"
