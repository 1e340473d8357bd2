#!/usr/bin/env bash
# The tests, as README's second command and CI run them:
#  1. the crate's tests (unit, differential, conformance over ../shared, CLI, fuzz corpus
#     replay, stress mode) in release mode;
#  2. loom model checking of the scheduler and the MvMemory cell (bounded depth; see
#     loom-tests/README.md for a deeper run);
#  3. the `hwloc` worker-placement backend: installs the system library if missing
#     (scripts/install-hwloc.sh) and runs the pool tests on hwloc synthetic topologies.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release
bash scripts/loom.sh
bash scripts/install-hwloc.sh
cargo test --release --features hwloc --lib pool
cargo clippy --release --features hwloc --lib -- -D warnings
