#!/usr/bin/env bash
# The main job: builds the release binary and runs the built-in benchmark (every generated
# workload, sequential vs parallel, with a verdict that the outputs are equal).
# Extra arguments go to `blockstm bench` (e.g. --workload erc20 --threads 2 --json).
#
# `scripts/bench.sh --criterion [gigagas|mainnet|all]` (default all) runs the criterion suites
# instead (`cargo bench --bench gigagas`, `cargo bench --bench mainnet`; BLOCKSTM_BENCH_THREADS
# and BLOCKSTM_MAINNET_DIR apply) and rewrites the table between `<!-- criterion:begin -->`
# and `<!-- criterion:end -->` in BENCHMARKS.md from their summary files
# (target/criterion/blockstm-summary-<suite>.json). The table holds the suites this command ran.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" != --criterion ]]; then
    cargo run --release --bin blockstm -- bench "$@"
    exit
fi

which="${2:-all}"
case "$which" in
    gigagas | mainnet) suites=("$which") ;;
    all) suites=(gigagas mainnet) ;;
    *)
        echo "usage: scripts/bench.sh --criterion [gigagas|mainnet|all]" >&2
        exit 2
        ;;
esac
if [[ $# -gt 2 ]]; then
    echo "usage: scripts/bench.sh --criterion [gigagas|mainnet|all]" >&2
    exit 2
fi

criterion_dir="${CRITERION_HOME:-${CARGO_TARGET_DIR:-target}/criterion}"
started=$(date +%s)
durations=()
for suite in "${suites[@]}"; do
    suite_start=$SECONDS
    cargo bench --bench "$suite"
    durations+=("$suite $((SECONDS - suite_start))")
done

commit=$(git rev-parse --short HEAD)
if [[ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock build.rs contracts)" ]]; then
    commit="$commit plus uncommitted changes"
fi
model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)

python3 - "$criterion_dir" "$started" "$(date -u +%F)" "$commit" "$(nproc)" "${model:-unknown CPU}" \
    "scripts/bench.sh --criterion $which" "${durations[@]}" <<'PYTHON'
import json, math, os, re, sys

criterion_dir, started, date, commit, cores, model, command, *durations = sys.argv[1:]
started = int(started)
lines = [
    f"Run {date}, commit {commit}; {cores} cores ({model}); command `{command}` "
    + "("
    + ", ".join(f"{name} suite {int(s) // 60} min {int(s) % 60} s" for name, s in (d.split() for d in durations))
    + "). Criterion medians (10 samples each); each run starts after the last parallel "
    + "block's deferred teardown and its output is dropped after the clock stops. `revm` is "
    + "bare revm (`CacheDB`, `transact_commit`, no output), `reth` revm's `State` with bundle "
    + "updates and the bundle taken (what reth's executor does), `seq` `execute_sequential`, "
    + "`par` `execute` with the engine forced on (`sequential_below: Some(0)`); every parallel "
    + "output was checked equal to sequential, and the baselines' gas equal, before timing. "
    + "The benches use the CLI's allocator (mimalloc, freed memory kept).",
    "",
    "| suite | workload or block | txs | gas | revm ms | reth ms | seq ms | par ms | seq/par | revm/par | par Ggas/s |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
notes = []
threads = set()
for name, _ in (d.split() for d in durations):
    path = os.path.join(criterion_dir, f"blockstm-summary-{name}.json")
    if not os.path.exists(path) or os.path.getmtime(path) < started:
        notes.append(f"{name}: nothing measured (no fresh {path}; see the bench's output).")
        continue
    with open(path) as f:
        rows = json.load(f)
    for r in rows:
        threads.add(r["threads"])
        lines.append(
            f"| {r['suite']} | {r['case']} | {r['txs']:,} | {r['gas']:,} | {r['revm_ns'] / 1e6:.3f} "
            f"| {r['reth_ns'] / 1e6:.3f} | {r['seq_ns'] / 1e6:.3f} | {r['par_ns'] / 1e6:.3f} "
            f"| {r['ratio']:.2f} | {r['vs_revm']:.2f} | {r['gas'] / r['par_ns']:.2f} |"
        )
    if name == "mainnet" and rows:
        mean = math.exp(sum(math.log(r["ratio"]) for r in rows) / len(rows))
        worst = min(rows, key=lambda r: r["ratio"])
        notes.append(
            f"mainnet: seq/par geometric mean {mean:.2f} over {len(rows)} blocks; "
            f"worst {worst['ratio']:.2f} (block {worst['case']}, {worst['txs']:,} txs)."
        )
lines[0] += f" Parallel threads: {', '.join(map(str, sorted(threads))) or '-'}."
block = "\n".join(lines + ([""] + notes if notes else []))

text = open("BENCHMARKS.md").read()
pattern = re.compile(r"(<!-- criterion:begin -->\n).*?(<!-- criterion:end -->)", re.S)
if not pattern.search(text):
    sys.exit("BENCHMARKS.md has no <!-- criterion:begin --> ... <!-- criterion:end --> markers")
text = pattern.sub(lambda m: m.group(1) + block + "\n" + m.group(2), text, count=1)
open("BENCHMARKS.md", "w").write(text)
print(block)
PYTHON
