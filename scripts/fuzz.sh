#!/usr/bin/env bash
# Coverage-guided fuzzing of what mixop parses from files and peers (fuzz/: cargo-fuzz targets;
# what each feeds is in src/fuzzing.rs). Not part of the test suite: it runs each target for a
# fixed budget, then minimises its corpus (fuzz/corpus/<target>, kept in the repository) and prints
# a table. A crash, hang (>10 s) or out-of-memory input is copied to fuzz/regressions/<target>/,
# which tests/fuzz_regressions.rs replays on every test run — so it fails until the bug is fixed.
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
# Needs a nightly toolchain (libFuzzer's instrumentation) and cargo-fuzz (installed if missing).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
budget=${1:-60}
shift || true
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: needs a nightly Rust toolchain: rustup toolchain install nightly" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked -q || exit 2
fi
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$root/fuzz/target}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
echo "fuzz: building ${targets[*]} (release, instrumented)"
cargo +nightly fuzz build -O || exit 2
rows=()
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "regressions/$t" "artifacts/$t"
  before=$(find "corpus/$t" -type f | wc -l)
  log=$(mktemp)
  echo "fuzz: $t for ${budget}s"
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$budget" -timeout=10 \
    -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 -close_fd_mask=3 >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  found=0
  for a in artifacts/"$t"/*; do
    [ -f "$a" ] || continue
    cp "$a" "regressions/$t/" && rm "$a" && found=$((found + 1))
  done
  if [ $rc -ne 0 ] && [ $found -eq 0 ]; then
    echo "fuzz: $t stopped with $rc and kept no input; its output:" >&2
    tail -30 "$log" >&2
  fi
  [ $rc -eq 0 ] || failed=1
  cargo +nightly fuzz cmin -O "$t" "corpus/$t" >/dev/null 2>&1 || true
  after=$(find "corpus/$t" -type f | wc -l)
  rows+=("$(printf '%-14s %12s %10s %8s -> %-6s %s' "$t" "${execs:-?}" "${rate:-?}" "$before" "$after" \
    "$([ $found -gt 0 ] && echo "$found new in fuzz/regressions/$t" || { [ $rc -eq 0 ] && echo ok || echo "exit $rc"; })")")
  rm -f "$log"
done
printf '\n%-14s %12s %10s %18s %s\n' target executions "exec/s" "corpus files" result
printf '%s\n' "${rows[@]}"
exit $failed
