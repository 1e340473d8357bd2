#!/usr/bin/env bash
# Loom model checking of the real scheduler and MvMemory cell (see loom-tests/README.md).
#
#   scripts/loom.sh                  CI depth: every interleaving with at most 2 preemptions
#   scripts/loom.sh 3                deeper (LOOM_MAX_PREEMPTIONS=3), much slower
#   scripts/loom.sh 3 scheduler::    only the tests whose path in loom_tests:: starts so
#                                    (e.g. mv_memory::, scheduler::loom_scheduler_counter)
# Further arguments go to the test harness.
#
# Prints, per test, the number of executions loom explored and the paths they took.
set -euo pipefail
cd "$(dirname "$0")/.."
depth="${1:-2}"
[[ $# -gt 0 ]] && shift

export RUSTFLAGS="--cfg loom"
export LOOM_MAX_PREEMPTIONS="$depth"
# `--cfg loom` changes every crate's fingerprint: build in a target directory of its own so
# that the normal build cache stays valid.
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target/loom}"
# A test binary, not a shipped one: no LTO, no debug info, dependencies at opt-level 0
# (they only need to compile: a third of the CPU time of an optimised build) except the
# code loom runs millions of times. The crate itself keeps the release opt-level.
export CARGO_PROFILE_RELEASE_LTO=false
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_INCREMENTAL=false
profile=(--config 'profile.release.package."*".opt-level=0')
for hot in loom generator crossbeam-skiplist crossbeam-epoch crossbeam-utils tracing tracing-core; do
  profile+=(--config "profile.release.package.$hot.opt-level=3")
done

# Under --cfg loom only the model tests can run (the other unit tests touch loom objects
# outside a model): the filter always starts with their module.
filter=loom_tests::
if [[ $# -gt 0 && $1 != -* ]]; then
  filter+=$1
  shift
fi
time cargo test --release --lib "${profile[@]}" -- "$filter" --show-output "$@"
