#!/usr/bin/env bash
# The main job: builds the release binary and runs the built-in benchmark (every generated
# workload, sequential vs parallel, with a verdict that the outputs are equal).
# Extra arguments go to `blockstm bench` (e.g. --workload erc20 --threads 2 --json).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --bin blockstm -- bench "$@"
