#!/usr/bin/env bash
# The tests, as README's second command and CI run them:
#  1. the crate's tests (unit, differential, conformance over ../shared, CLI, fuzz corpus
#     replay, stress mode) in release mode;
#  2. the `alloy-evm` adapter against alloy-evm's own block executor (in the engine and as the
#     bench's `reth` baseline in the CLI), and clippy with the feature (needs Rust 1.94.1,
#     alloy-evm's MSRV);
#  3. loom model checking of the scheduler and the MvMemory cell (bounded depth; see
#     loom-tests/README.md for a deeper run);
#  4. the `hwloc` worker-placement backend: installs the system library if missing
#     (scripts/install-hwloc.sh) and runs the pool tests on hwloc synthetic topologies.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release
cargo test --release --features alloy-evm --test alloy_evm
cargo clippy --release --features alloy-evm --lib --tests --examples -- -D warnings
cargo test --release -p blockstm-cli --features alloy-evm --test baselines
cargo clippy --release -p blockstm-cli --features alloy-evm --all-targets -- -D warnings
bash scripts/loom.sh
bash scripts/install-hwloc.sh
cargo test --release --features hwloc --lib pool
cargo clippy --release --features hwloc --lib -- -D warnings
