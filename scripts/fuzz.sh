#!/usr/bin/env bash
# Runs the differential fuzz target (fuzz/, see fuzz/README.md) for SECONDS seconds and prints
# the number of executions.
#
#   scripts/fuzz.sh [SECONDS]        # default 60
#
# Needs the nightly toolchain (cargo-fuzz builds with sanitizers); installs cargo-fuzz when it
# is missing. New inputs go to fuzz/work/<target>/ (ignored by git), seeded from the committed
# corpus fuzz/corpus/<target>/, which fuzzing never writes to. A divergence or panic stops the
# run and leaves its input in fuzz/artifacts/<target>/: minimize it with
#   (cd fuzz && cargo +nightly fuzz tmin --debug-assertions differential artifacts/differential/crash-...)
# and keep the result in fuzz/regressions/, which `cargo test --test fuzz_corpus` replays.
#
# Environment: FUZZ_TARGET (default differential), FUZZ_JOBS (parallel fuzzing processes,
# default 1), BLOCKSTM_STRESS=1 (random delays inside the engine, slower but more schedules),
# FUZZ_SANITIZER (default address; none is about twice as fast).
set -euo pipefail

seconds=${1:-60}
target=${FUZZ_TARGET:-differential}
jobs=${FUZZ_JOBS:-1}
sanitizer=${FUZZ_SANITIZER:-address}
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS]" >&2
    exit 2
fi

cd "$(dirname "$0")/../fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

mkdir -p "work/$target"
rm -f fuzz-*.log
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# -timeout: an input running a minute is a hang (the engine must never hang).
# -detect_leaks=0: crossbeam-epoch keeps deferred garbage past an input's end.
flags=(-max_total_time="$seconds" -max_len=4096 -timeout=60 -detect_leaks=0 -print_final_stats=1)
if ((jobs > 1)); then
    # Each job writes its own fuzz-N.log here.
    flags+=(-jobs="$jobs" -workers="$jobs")
fi

set +e
cargo +nightly fuzz run --debug-assertions --sanitizer "$sanitizer" "$target" \
    "work/$target" "corpus/$target" -- "${flags[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# libFuzzer's final statistics; with several jobs, one line per job (in fuzz-N.log).
stats=$(cat "$log" fuzz-*.log 2>/dev/null | grep -o 'stat::number_of_executed_units: [0-9]*' || true)
if [[ -n $stats ]]; then
    executions=$(awk '{ sum += $2 } END { print sum }' <<<"$stats")
else
    # No final statistics (killed early): the last status line's count.
    executions=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')
fi
echo "executions: ${executions:-0} in ${seconds} s (target $target, status $status)"
exit "$status"
