#!/usr/bin/env bash
# Runs one fuzz target for a while and records the run in fuzz/RUNS.md.
#
#   fuzz/run.sh TARGET MINUTES [--asan] [--no-record]
#
# TARGET is ingress, ingress_forged, api, wire, reassembly or stack (see
# crates/fuzz/src/lib.rs).
# The fuzzer works on fuzz/target/corpus/TARGET (kept between runs, not
# committed), starting from the committed seeds in fuzz/corpus/TARGET.
# Without --asan the targets are built with no sanitizer (synack is safe
# Rust; about five times the executions), and memory is bounded by
# -rss_limit_mb; --asan adds AddressSanitizer and -malloc_limit_mb.
# A crash leaves its input in fuzz/artifacts/TARGET/: copy it into
# fuzz/regressions/TARGET/ with the fix, and `cargo test -p synack-fuzz`
# replays it for ever after.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); it runs on the
# stable toolchain with RUSTC_BOOTSTRAP=1, set here.
set -euo pipefail
target=${1:?usage: fuzz/run.sh TARGET MINUTES [--asan] [--no-record]}
minutes=${2:?usage: fuzz/run.sh TARGET MINUTES [--asan] [--no-record]}
shift 2
sanitizer=none
record=yes
for a in "$@"; do
  case $a in
    --asan) sanitizer=address ;;
    --no-record) record=no ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
work=fuzz/target/corpus/$target
log=fuzz/target/$target-$(date -u +%Y%m%dT%H%M%S).log
mkdir -p "$work"
limits=(-rss_limit_mb=2048 -timeout=20 -print_final_stats=1)
[ "$sanitizer" = address ] && limits+=(-malloc_limit_mb=1024)
set +e
cargo fuzz run -s "$sanitizer" "$target" "$work" "fuzz/corpus/$target" -- \
  -max_total_time=$((minutes * 60)) "${limits[@]}" >"$log" 2>&1
status=$?
set -e
# (A run that stops before libFuzzer prints coverage must still be recorded.)
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
if [ $status -eq 0 ]; then
  result="no crash"
else
  result="CRASH: $(ls -t fuzz/artifacts/"$target"/ 2>/dev/null | head -1 || true)"
  grep -E "panicked|ERROR" "$log" | head -5 >&2 || true
fi
echo "$target: ${minutes} min, ${execs:-?} executions, cov ${cov:-?}, $result (log: $log)"
if [ "$record" = yes ]; then
  echo "| $(date -u +%Y-%m-%d) | $target | $minutes | ${execs:-?} | ${cov:-?} | $sanitizer | $result |" >>fuzz/RUNS.md
fi
exit $status
