#!/usr/bin/env bash
# SSH benchmark (issue 3): mixop vs ansible-playbook (cold and warm ControlPersist) vs pyinfra
# vs the floor (the same round trips over open OpenSSH ControlMaster connections), on N lab
# hosts, with the 6-task playbook bench/fixtures/ssh_compare/playbook.yml.
#
#   bench/ssh_compare.sh [N...]        # default: 8 32 64
#   RUNS=5 bench/ssh_compare.sh 32     # runs per tool (default 3); the median is reported
#   KEEP=1 bench/ssh_compare.sh 8      # keep the work dir (logs of every run) for a look
#   TOOLS="mixop floor" bench/ssh_compare.sh 8   # only these (mixop ansible-cold ansible-warm
#                                      # pyinfra floor); NORESULTS=1: don't touch RESULTS.md
#   MIXOP_BIN=target/debug/mixop bench/ssh_compare.sh 8   # time that binary, build nothing
#
# For each N: brings up N lab hosts in its own state dir (torn down on exit, whatever happens),
# then for run 1..RUNS times each tool in turn (interleaved, so a change in the machine's load
# hits every tool alike). Before every run the files the playbook writes are deleted through
# the lab's state dir (not over SSH, not timed); after every run they are checked on every
# host, and on lab1 through its own namespaces (ctl.sh exec), so a tool that fails silently
# cannot look fast. Prints a markdown table per N and the targets of issue 3 at N=32, and
# appends everything, with the machine, versions and command, to bench/RESULTS.md.
#
# Memory: "peak RSS" is /usr/bin/time's %M, i.e. the largest single process among the tool and
# the descendants it waited for (not a sum). "tree peak" is the peak of the summed Pss of the
# whole process tree, sampled every 0.25 s by fixtures/ssh_compare/treemem.py, including
# Ansible's detached ssh ControlMaster daemons; sampled for ansible-playbook only (mixop and
# pyinfra are one process each; the floor's runs are too short to sample). "controller CPU"
# is user+sys of the tool and the descendants it reaped (%U+%S; Ansible's workers and ssh
# clients, the floor's ssh clients), median: on this lab the hosts' sshd and the commands
# they run use the same CPUs, so this is what the controller itself costs. "Remote processes
# per host" is how many processes the lab hosts created during the run (sshd's own
# per-connection processes, shells, the commands they run), from the kernel's fork events
# below the hosts' listening sshds (fixtures/ssh_compare/proccount.py), divided by N, median;
# "(per task)" divides that by the play's tasks (6).
#
# Needs root (the lab), the repo's .venv (ansible-core, pyinfra: scripts/setup.sh) and cargo.
# Sends traffic only to the lab's own 10.231.X.0/24 and loopback.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench=$root/bench
fx=$bench/fixtures/ssh_compare
venv=$root/.venv
mixop=${MIXOP_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/mixop}  # MIXOP_BIN: that binary, no build
runs=${RUNS:-3}
ns=("$@")
[ ${#ns[@]} -gt 0 ] || ns=(8 32 64)
for n in "${ns[@]}"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 245 ] || { echo "usage: $0 [N...] (1..245)" >&2; exit 2; }
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer" >&2; exit 2; }
command_line="RUNS=$runs ${TOOLS:+TOOLS=\"$TOOLS\" }bench/ssh_compare.sh ${ns[*]}"
[ "$(id -u)" -eq 0 ] || { echo "ssh_compare: the lab needs root" >&2; exit 1; }

work=$(mktemp -d /tmp/mixop-sshbench.XXXXXX)
state=$work/lab
mkdir -p "$work/log" "$work/ansible/home" "$work/floor-cp"
acp=$work/ansible/cp   # Ansible's ControlPath dir

close_masters() { # DIR: ask every ControlMaster listening in DIR to exit
  local s
  for s in "$1"/*; do
    [ -S "$s" ] && ssh -o ControlPath="$s" -O exit mixop-bench >/dev/null 2>&1
  done
  return 0
}
cleanup() {
  close_masters "$acp"
  close_masters "$work/floor-cp"
  "$root/tests/lab/down.sh" --state "$state" -q >/dev/null 2>&1
  if [ "${KEEP:-}" = 1 ]; then echo "ssh_compare: work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "ssh_compare: $*" >&2; }
ntasks=$(grep -c '^    - name:' "$fx/playbook.yml")  # tasks of the play, for "per task"

bash "$root/scripts/setup.sh" >/dev/null || { say "scripts/setup.sh failed"; exit 1; }

# mixop: built here; until `mixop run` works against the lab, its rows say n/a (why).
mixop_na=""
say "cargo build --release"
if [ -n "${MIXOP_BIN:-}" ]; then
  say "MIXOP_BIN=$MIXOP_BIN: not building"
elif ! (cd "$root" && cargo build --release -q) >"$work/log/build.log" 2>&1; then
  mixop_na="cargo build --release failed: $(grep -m1 '^error' "$work/log/build.log")"
  say "$mixop_na"
fi

load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

clean_files() { rm -f "$state"/hosts/lab*/tmp/mixop_bench_*; }

# verify: every host has the three files with exactly the playbook's content, and lab1 shows
# them in its own namespaces. Prints the problem and returns 1 if not.
verify() {
  local bad
  bad=$(python3 - "$state" "${hosts[@]}" <<'EOF'
import sys
state, hosts = sys.argv[1], sys.argv[2:]
want = {
    "mixop_bench_copy.txt": lambda h: "mixop ssh benchmark\n",
    "mixop_bench_template.txt": lambda h: f"host={h} uname={h}\n",
    "mixop_bench_shell.txt": lambda h: f"hello from {h}\n",
}
bad = []
for h in hosts:
    for name, content in want.items():
        try:
            got = open(f"{state}/hosts/{h}/tmp/{name}").read()
        except OSError:
            got = None
        if got != content(h):
            bad.append(f"{h}:/tmp/{name} = {got!r}")
if bad:
    print(f"{len(bad)} wrong or missing file(s), e.g. {bad[0]}")
EOF
)
  if [ -n "$bad" ]; then echo "$bad"; return 1; fi
  local got
  got=$("$root/tests/lab/ctl.sh" --state "$state" exec lab1 -- cat /tmp/mixop_bench_template.txt 2>&1)
  if [ "$got" != "host=lab1 uname=lab1" ]; then echo "lab1 (ctl.sh exec) sees: $got"; return 1; fi
}

# measure TOOL SAMPLE CMD...: one timed run. SAMPLE: "-" no tree sampling, else the marker for
# treemem.py ("" = the tree only). Sets m_time m_cpu m_rss (MB) m_tree (MB or -) m_err, and
# m_procs: processes the lab hosts started during the run, per host (proccount.py, from the
# kernel's fork events below the hosts' listening sshds; "?" if events were lost).
measure() {
  local tool=$1 sample=$2
  shift 2
  local log="$work/log/$tool.N$n.run$run.log" t0 t1 pid spid="" rc cpid
  m_err="" m_tree="-" m_procs="?"
  clean_files
  rm -f "$work/procs"
  coproc PC { exec python3 "$fx/proccount.py" "$work/procs" "${sshd_pids[@]}" 2>"$work/proccount.err"; }
  cpid=$PC_PID
  read -r -t 10 _ <&"${PC[0]}" || say "proccount.py did not start: $(cat "$work/proccount.err")"
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M %U %S' -o "$work/rss" "$@" >"$log" 2>&1 &
  pid=$!
  if [ "$sample" != "-" ]; then
    python3 "$fx/treemem.py" "$pid" "$sample" 0.25 >"$work/tree" &
    spid=$!
  fi
  wait "$pid"
  rc=$?
  t1=$(date +%s.%N)
  kill -TERM "$cpid" 2>/dev/null
  wait "$cpid" 2>/dev/null
  if [ -s "$work/procs" ]; then
    m_procs=$(awk '{ if ($4 == 0 && $3 > 0) printf "%.1f", $1/$3; else print "?" }' "$work/procs")
  fi
  if [ -n "$spid" ]; then
    wait "$spid"
    m_tree=$(awk '{printf "%.0f", $1/1024}' "$work/tree")
  fi
  m_time=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b-a}')
  m_rss=$(tail -1 "$work/rss" | awk '{printf "%.0f", $1/1024}')
  m_cpu=$(tail -1 "$work/rss" | awk '{printf "%.2f", $2+$3}')
  if [ "$rc" -ne 0 ]; then
    m_err="exit $rc: $(grep -v '^\s*$' "$log" | grep -iE -m1 'error|fatal|unreachable|not available|failed' || tail -1 "$log")"
  elif ! m_err=$(verify); then
    m_err="exit 0 but the files are wrong: $m_err"
  else
    m_err=""
  fi
  m_err=${m_err:0:200}
}

fmt_ratio() { awk -v t="$1" -v m="$2" 'BEGIN { if (t == "" || m == "" || m == 0) print "n/a"; else printf "%.1f×", t/m }'; }

declare -A med      # med[tool.N] = median seconds
declare -A mrss     # mrss[tool.N] = peak RSS MB (max over runs)
tables=""
tools=(mixop ansible-cold ansible-warm pyinfra floor)
if [ -n "${TOOLS:-}" ]; then  # a subset, for trying things out: TOOLS="mixop floor"
  read -ra want <<<"$TOOLS"
  for t in "${want[@]}"; do
    [[ " ${tools[*]} " == *" $t "* ]] || { say "TOOLS: unknown tool $t (${tools[*]})"; exit 2; }
  done
  [[ " ${want[*]} " == *" ansible-warm "* && " ${want[*]} " != *" ansible-cold "* ]] && want=(ansible-cold "${want[@]}")
  mapfile -t tools < <(for t in mixop ansible-cold ansible-warm pyinfra floor; do [[ " ${want[*]} " == *" $t "* ]] && echo "$t"; done)
fi

for n in "${ns[@]}"; do
  say "N=$n: bringing up the lab"
  close_masters "$acp"
  close_masters "$work/floor-cp"
  if ! inv=$("$root/tests/lab/up.sh" "$n" --state "$state" --net auto -q); then
    say "tests/lab/up.sh $n failed"
    exit 1
  fi
  mapfile -t hosts < <(awk -F'\t' '!/^#/ && NF >= 2 {print $1}' "$state/hosts.tsv")
  [ "${#hosts[@]}" -eq "$n" ] || { say "hosts.tsv lists ${#hosts[@]} hosts, not $n"; exit 1; }
  sshd_pids=()
  for h in "${hosts[@]}"; do
    p=$(cat "$state/hosts/$h/run/sshd.pid" 2>/dev/null) || { say "no sshd.pid for $h"; exit 1; }
    sshd_pids+=("$p")
  done

  # Ansible: temp ANSIBLE_HOME and ansible.cfg; forks=N, pipelining, default ssh_args
  # (-C -o ControlMaster=auto -o ControlPersist=60s). The lab inventory sets key + known_hosts.
  cat >"$work/ansible/ansible.cfg" <<CFG
[defaults]
forks = $n
host_key_checking = True
retry_files_enabled = False
nocolor = True

[ssh_connection]
pipelining = True
control_path_dir = $acp
CFG
  ansible_env=(env ANSIBLE_CONFIG="$work/ansible/ansible.cfg" ANSIBLE_HOME="$work/ansible/home")

  # pyinfra: inventory from hosts.tsv, strict host key checking against the lab's known_hosts.
  awk -F'\t' -v st="$state" '
    BEGIN { print "lab = [" }
    !/^#/ && NF >= 2 {
      printf "    (\"%s\", {\"ssh_hostname\": \"%s\", \"ssh_user\": \"root\", \"ssh_key\": \"%s/id_ed25519\", \"ssh_known_hosts_file\": \"%s/known_hosts\", \"ssh_strict_host_key_checking\": \"yes\"}),\n", $1, $2, st, st
    }
    END { print "]" }' "$state/hosts.tsv" >"$work/pyinfra_inventory.py"

  # The floor: open one ControlMaster per host now (not timed); they stay for all runs.
  for h in "${hosts[@]}"; do
    ssh -F "$state/ssh_config" -o ControlMaster=yes -o "ControlPath=$work/floor-cp/%C" \
      -o ControlPersist=yes -fN "$h" &
  done
  wait
  floor_na=""
  for h in "${hosts[@]}"; do
    ssh -F "$state/ssh_config" -o "ControlPath=$work/floor-cp/%C" -O check "$h" 2>/dev/null \
      || { floor_na="no ControlMaster for $h"; break; }
  done

  declare -A times=() cpus=() rss=() tree=() err=() procs=()
  [ -n "$mixop_na" ] && err[mixop]=$mixop_na
  [ -n "$floor_na" ] && err[floor]=$floor_na
  for run in $(seq 1 "$runs"); do
    say "N=$n run $run/$runs"
    for tool in "${tools[@]}"; do
      [ -n "${err[$tool]:-}" ] && continue
      case $tool in
        mixop)
          measure mixop - "$mixop" run "$fx/playbook.yml" -i "$inv" ;;
        ansible-cold)
          close_masters "$acp"
          rm -rf "$acp"
          measure ansible-cold "$acp" "${ansible_env[@]}" "$venv/bin/ansible-playbook" -i "$inv" "$fx/playbook.yml" ;;
        ansible-warm)
          # immediately after the cold run, its masters still alive
          [ -n "${err[ansible-cold]:-}" ] && { err[ansible-warm]="ansible cold run failed"; continue; }
          measure ansible-warm "$acp" "${ansible_env[@]}" "$venv/bin/ansible-playbook" -i "$inv" "$fx/playbook.yml" ;;
        pyinfra)
          measure pyinfra - "$venv/bin/pyinfra" -y --parallel "$n" "$work/pyinfra_inventory.py" "$bench/pyinfra_deploy.py" ;;
        floor)
          measure floor - "$fx/floor.sh" "$state/ssh_config" "$work/floor-cp" "${hosts[@]}" ;;
      esac
      if [ -n "$m_err" ]; then
        err[$tool]="run $run: $m_err"
        say "  $tool: FAILED: $m_err (log: $work/log/$tool.N$n.run$run.log)"
        continue
      fi
      times[$tool]="${times[$tool]:-} $m_time"
      cpus[$tool]="${cpus[$tool]:-} $m_cpu"
      [ "$m_procs" != "?" ] && procs[$tool]="${procs[$tool]:-} $m_procs"
      [ "$m_rss" -gt "${rss[$tool]:-0}" ] && rss[$tool]=$m_rss
      [ "$m_tree" != "-" ] && [ "$m_tree" -gt "${tree[$tool]:-0}" ] && tree[$tool]=$m_tree
      say "  $tool: ${m_time}s, controller CPU ${m_cpu}s, peak RSS ${m_rss} MB$([ "$m_tree" != "-" ] && echo ", tree ${m_tree} MB"), remote processes/host ${m_procs}"
    done
  done

  for tool in "${tools[@]}"; do
    if [ -z "${err[$tool]:-}" ]; then
      med[$tool.$n]=$(echo "${times[$tool]}" | median)
      mrss[$tool.$n]=${rss[$tool]}
    fi
  done
  table="### N = $n hosts"$'\n\n'
  table+="| tool | median s | runs (s) | time vs mixop | controller CPU s | peak RSS MB (largest process) | tree peak MB (Σ Pss) | remote processes per host (per task) |"$'\n'
  table+="| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"$'\n'
  for tool in "${tools[@]}"; do
    label=$tool
    case $tool in
      ansible-cold) label="ansible-playbook, cold" ;;
      ansible-warm) label="ansible-playbook, warm" ;;
      floor) label="floor (ssh over ControlMaster)" ;;
    esac
    if [ -n "${err[$tool]:-}" ]; then
      table+="| $label | n/a (${err[$tool]//|/\\|}) | | | | | | |"$'\n'
      continue
    fi
    t=${med[$tool.$n]}
    case $tool in
      ansible-*) tr_col=${tree[$tool]:-"?"} ;;
      floor) tr_col="(not sampled)" ;;
      *) tr_col="= RSS (one process)" ;;
    esac
    cpu=$(echo "${cpus[$tool]}" | median)
    pr=$(echo "${procs[$tool]:-}" | median)
    [ -n "$pr" ] && pr="$pr ($(awk -v p="$pr" -v t="$ntasks" 'BEGIN {printf "%.1f", p/t}'))" || pr="?"
    table+="| $label | $t | ${times[$tool]# } | $(fmt_ratio "$t" "${med[mixop.$n]:-}") | $cpu | ${rss[$tool]} | $tr_col | $pr |"$'\n'
  done
  echo >&2
  echo "$table" >&2
  tables+="$table"$'\n'
  unset times cpus rss tree err procs
  close_masters "$acp"
  close_masters "$work/floor-cp"
done

# ---------------------------------------------------------------------------------------
# Targets of issue 3 at N=32.
check() { # NAME VALUE-DESCRIPTION OK(0/1/"")
  local st=PASS
  [ "$3" = "" ] && st="n/a"
  [ "$3" = 0 ] && st=MISS
  targets+="- **$st** $1: $2"$'\n'
}
targets=""
m32=${med[mixop.32]:-}
if [[ " ${ns[*]} " != *" 32 "* ]]; then
  targets="- targets are checked at N=32, which was not run"$'\n'
else
  cmpx() { # OTHER_MEDIAN NEED: mixop at least NEED× faster
    if [ -z "$m32" ] || [ -z "$1" ]; then echo "n/a|"; return; fi
    awk -v o="$1" -v m="$m32" -v need="$2" 'BEGIN { r = o/m; printf "%.1f× (need ≥ %s×)|%d", r, need, (r >= need) }'
  }
  IFS='|' read -r d ok <<<"$(cmpx "${med[ansible-warm.32]:-}" 10)"
  check "mixop ≥ 10× faster than ansible-playbook warm (forks=N, pipelining, ControlPersist)" "$d" "$ok"
  IFS='|' read -r d ok <<<"$(cmpx "${med[ansible-cold.32]:-}" 10)"
  check "(same, against ansible-playbook cold)" "$d" "$ok"
  IFS='|' read -r d ok <<<"$(cmpx "${med[pyinfra.32]:-}" 3)"
  check "mixop ≥ 3× faster than pyinfra" "$d" "$ok"
  f32=${med[floor.32]:-}
  if [ -n "$m32" ] && [ -n "$f32" ]; then
    IFS='|' read -r d ok <<<"$(awk -v m="$m32" -v f="$f32" 'BEGIN { r = m/f; printf "mixop %.2f s / floor %.2f s = %.2f× (need ≤ 2×)|%d", m, f, r, (r <= 2) }')"
  else d="n/a" ok=""; fi
  check "mixop within 2× of the floor" "$d" "$ok"
  r32=${mrss[mixop.32]:-}
  if [ -n "$r32" ]; then d="$r32 MB (need ≤ 64)" ok=$([ "$r32" -le 64 ] && echo 1 || echo 0); else d="n/a" ok=""; fi
  check "mixop peak RSS ≤ 64 MB" "$d" "$ok"
  m64=${med[mixop.64]:-}
  if [ -n "$m32" ] && [ -n "$m64" ]; then
    IFS='|' read -r d ok <<<"$(awk -v a="$m32" -v b="$m64" 'BEGIN { r = b/a; printf "N=64 %.2f s / N=32 %.2f s = %.2f× (need < 2×)|%d", b, a, r, (r < 2) }')"
  elif [[ " ${ns[*]} " != *" 64 "* ]]; then d="N=64 not run" ok=""
  else d="n/a" ok=""; fi
  check "mixop at N=64 takes < 2× its time at N=32" "$d" "$ok"
fi

# ---------------------------------------------------------------------------------------
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null)
git -C "$root" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || rev+=" (+ uncommitted changes in src/)"
mixop_v=$([ -x "$mixop" ] && "$mixop" --version 2>/dev/null | head -1)
russh_v=$(awk '/^name = "russh"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' "$root/Cargo.lock")
report="## $(date -u '+%Y-%m-%d %H:%M UTC') — mixop ${rev}"$'\n\n'
report+="- command: \`$command_line\` (from the repo root)"$'\n'
report+="- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r); load average $load_start at start, $load_end at end (the machine is shared)"$'\n'
report+="- versions: ${mixop_v:-mixop (not built)} (russh ${russh_v:-none}), ansible-core $("$venv/bin/python" -c 'import ansible.release as r; print(r.__version__)'), pyinfra $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("pyinfra"))'), $("$venv/bin/python" --version), $(ssh -V 2>&1 | cut -d, -f1) (client and the lab's sshd)"$'\n'
report+="- $runs runs per tool, interleaved; wall time of the whole command; median"$'\n\n'
report+="$tables"
report+="### Targets (issue 3, at N=32)"$'\n\n'"$targets"
echo
echo "$report"
results=$bench/RESULTS.md
if [ "${NORESULTS:-}" != 1 ] && [ ! -s "$results" ]; then
  cat >"$results" <<'HDR'
# SSH benchmark results

Appended by `bench/ssh_compare.sh` (see its header for details). The same 6-task playbook
(`bench/fixtures/ssh_compare/playbook.yml`: command + register, copy with content, template,
set_fact, shell, debug; `gather_facts: false`) on N lab hosts (`tests/lab`: network
namespaces with a real OpenSSH sshd each, on this machine — controller and hosts share the
CPUs), timed with:

- **mixop**: `target/release/mixop run PLAYBOOK -i INVENTORY` (release build).
- **ansible-playbook, cold / warm**: `forks = N`, `pipelining = True`, Ansible's default
  `ssh_args` (`-C -o ControlMaster=auto -o ControlPersist=60s`); cold = ControlMaster
  daemons stopped and the ControlPath dir emptied first, warm = run again right after with the
  cold run's masters alive.
- **pyinfra** (v3, paramiko): `pyinfra -y --parallel N` with `bench/pyinfra_deploy.py`, the
  same tasks in pyinfra's idiom (the registered command is a `Command` fact).
- **floor**: `bench/fixtures/ssh_compare/floor.sh`, 6 `ssh` commands per host (hosts in
  parallel) over ControlMaster connections opened before the clock starts; 4 of them do the
  playbook's remote work, the set_fact and debug round trips are `true`.

Every run starts with the benchmark's files deleted on every host (through the lab's state
dir, not timed) and is checked afterwards on every host (exact content) and on lab1 via
`tests/lab/ctl.sh exec`; a tool that fails is reported `n/a (reason)`, never timed.
"Time vs mixop" is the tool's median divided by mixop's (> 1: mixop is faster). "Controller
CPU" is user+sys of the tool and the descendants it reaped
(`/usr/bin/time` %U+%S: Ansible's workers and ssh clients, the floor's ssh clients), median:
the lab's hosts (their sshd, shells and coreutils) run on the same CPUs as the controller, so
wall time here includes the hosts' work, and this column is what the controller alone costs. "Peak RSS" is `/usr/bin/time -f %M`: the largest single process among the tool and the descendants it
reaped — for ansible-playbook that is one process, not the sum over its forks. "Tree peak" is
the peak of the summed Pss over the whole process tree (including Ansible's detached ssh
ControlMaster daemons), sampled every 0.25 s, for ansible-playbook (the floor's runs are too
short to sample; mixop and pyinfra are one process).
HDR
fi
if [ "${NORESULTS:-}" = 1 ]; then exit 0; fi
{ echo; echo "$report"; } >>"$results"
say "appended to bench/RESULTS.md"
