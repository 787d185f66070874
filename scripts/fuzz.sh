#!/usr/bin/env bash
# Runs cargo-fuzz targets (fuzz/fuzz_targets/) one after another, each for
# SECONDS, and prints executions and crashes per target.
#
#   scripts/fuzz.sh [TARGET...] SECONDS     (no TARGET: all of them)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz passes nightly
# flags (-Z sanitizer=address); on a stable toolchain RUSTC_BOOTSTRAP=1
# lets rustc accept them. The round-trip targets link the fixtures' C
# command-line readers, built by fuzz/build.rs with the system's cc (gcc).
# The round-trip targets (*_cmdline, unikraft_firecracker) run without
# AddressSanitizer (-s none): what they exercise is safe Rust and the C
# readers, which are not instrumented either way, and ASan's allocator made
# them 10-40x slower (rumprun_cmdline: ~1 k against ~12 k executions/s);
# the others keep ASan. FUZZ_SANITIZER=address|none overrides for all.
# Each target starts from the committed seeds in
# fuzz/seeds/TARGET and keeps what it finds in fuzz/corpus/TARGET (ignored
# by git); a crash is saved under fuzz/artifacts/TARGET and makes the script
# exit non-zero after the remaining targets ran.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
if [ $# -lt 1 ]; then
  echo "usage: $0 [TARGET...] SECONDS" >&2
  exit 2
fi
secs=${*: -1}
targets=("${@:1:$#-1}")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1
sanitizer() {
  if [ -n "${FUZZ_SANITIZER:-}" ]; then echo "$FUZZ_SANITIZER"; return; fi
  case $1 in *_cmdline | unikraft_firecracker) echo none ;; *) echo address ;; esac
}
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  san=$(sanitizer "$t")
  cargo fuzz build -O -s "$san" "$t" >/dev/null
  log=$(mktemp)
  set +e
  cargo fuzz run -O -s "$san" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -close_fd_mask=3 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  echo "$t (-s $san): ${execs:-?} executions in ${secs} s, crashes: ${crashes}, exit ${rc}"
  if [ "$rc" -ne 0 ]; then
    failed=1
    tail -n 30 "$log" >&2
  fi
  rm -f "$log"
done
exit $failed
