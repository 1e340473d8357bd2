//! What the `gigagas` and `mainnet` benches share: the parallel engine under test, one
//! criterion group per block (the baselines `revm` and `reth`, then `sequential` and
//! `parallel`, after a check that all four ran the same block and that both engines return the
//! same output), and the summary each bench prints after its groups have run.
//!
//! The baselines are what users run today (see `blockstm_cli::baselines`): `revm` is bare revm
//! over a `CacheDB`, no output kept; `reth` is revm's `State` with bundle updates, the
//! transitions merged and the bundle taken, as reth's executor does.
//!
//! The summary reads criterion's own medians back from
//! `<criterion dir>/<group>/<function>/new/estimates.json` (criterion's directory names: `/` in
//! a group name becomes `_`), prints one row per block with the four medians, `seq/par`,
//! `revm/par` and the engines' gas per second, then the geometric means and the lowest
//! ratio, and writes the rows
//! to `<criterion dir>/blockstm-summary-<suite>.json` for `scripts/bench.sh --criterion`.
//! Only estimates written by this process count, so a group filtered out on the command line
//! (or a `--test`/`--list` run, which writes none) is reported as not measured, not with an
//! earlier run's figures.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use blockstm_cli::baselines;
use blockstm_evm::pool::PoolOptions;
use blockstm_evm::{
    Block, BlockError, BlockOutput, Executor, InMemoryStorage, Options, execute_sequential,
};
use criterion::{Criterion, Throughput};
use serde::Serialize;

/// The CLI's allocator, mimalloc, so that the suites measure what `blockstm bench` measures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (see `src/bin/blockstm/main.rs`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The function names of the baselines in each group.
const REVM: &str = "revm";
const RETH: &str = "reth";

/// Samples per benchmark function.
const SAMPLE_SIZE: usize = 10;

/// Where criterion writes its results, chosen as criterion does by default (`CRITERION_HOME`,
/// else `$CARGO_TARGET_DIR/criterion`) except that the last resort is this crate's
/// `target/criterion` rather than a `cargo metadata` call; set on the `Criterion` explicitly so
/// that the summary reads from the same place.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        PathBuf::from(home)
    } else if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        PathBuf::from(target).join("criterion")
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/criterion")
    }
}

/// A `Criterion` with ten samples per function and the suite's warm-up and measurement times
/// (command-line options apply on top). A block slower than a tenth of the measurement time is
/// sampled flat, one run per sample, and takes longer (criterion warns).
pub fn criterion(warm_up: Duration, measurement: Duration) -> Criterion {
    // As the CLI does: freed memory is kept for the next block instead of being returned to
    // the OS and faulted back in, zeroed (see BENCHMARKS.md, "Allocator").
    // SAFETY: `mi_option_set` only stores an option value; any value is valid for this one.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    Criterion::default()
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(warm_up)
        .measurement_time(measurement)
        .output_directory(&criterion_dir())
        .configure_from_args()
}

/// The parallel engine under test: a default pool built once, and the options every block
/// runs with: `threads` workers, the engine forced on (`sequential_below: Some(0)`, as the
/// replay CLI does). On a gigagas block that is what the defaults do anyway; on a mainnet block
/// under the default threshold (256 transactions at 2 workers) it measures the engine rather
/// than `execute`'s sequential fallback.
pub struct Engine {
    executor: Executor,
    options: Options,
    /// Workers per block: `BLOCKSTM_BENCH_THREADS`, else the pool's size capped at 2.
    pub threads: usize,
}

impl Engine {
    /// Starts the pool; panics if it cannot, or if `BLOCKSTM_BENCH_THREADS` is not a count.
    pub fn new() -> Self {
        let executor = Executor::new(&PoolOptions::default()).expect("the worker pool starts");
        let threads = match std::env::var("BLOCKSTM_BENCH_THREADS") {
            Ok(value) => match value.parse::<usize>() {
                Ok(threads) if threads > 0 => threads,
                _ => panic!("BLOCKSTM_BENCH_THREADS={value:?} is not a positive thread count"),
            },
            Err(_) => executor.workers().min(2),
        };
        let options = Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(threads)
        };
        Self {
            executor,
            options,
            threads,
        }
    }

    fn execute(&self, storage: &InMemoryStorage, block: &Block) -> Result<BlockOutput, BlockError> {
        self.executor.execute(storage, block, &self.options)
    }

    /// The time `iters` runs of `run` take, each timed alone: it starts once the last
    /// parallel block's deferred teardown has finished, and its output is dropped after the
    /// clock stops, so that no run pays for, or shares the machine with, another's clean-up.
    fn timed<T>(&self, iters: u64, mut run: impl FnMut() -> T) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            self.executor.wait_for_teardown();
            let start = Instant::now();
            let output = run();
            total += start.elapsed();
            drop(black_box(output));
        }
        total
    }
}

/// One block to benchmark.
pub struct BlockCase<'a> {
    /// Criterion group name, e.g. `gigagas/raw` or `mainnet/14396881`.
    pub group: String,
    /// The workload or block number, for the summary.
    pub case: String,
    /// Pre-state.
    pub storage: &'a InMemoryStorage,
    /// The block.
    pub block: &'a Block,
}

/// Runs the block once on each engine and baseline and panics unless both engines succeed with
/// the same output and the baselines use the same gas; returns the block's gas. This run also
/// warms the pool up.
fn check(engine: &Engine, case: &BlockCase<'_>) -> u64 {
    let expected = execute_sequential(case.storage, case.block)
        .unwrap_or_else(|error| panic!("{}: sequential execution failed: {error}", case.group));
    let actual = engine
        .execute(case.storage, case.block)
        .unwrap_or_else(|error| {
            panic!(
                "{}: parallel execution at {} threads failed: {error}",
                case.group, engine.threads
            )
        });
    assert!(
        actual == expected,
        "{}: PARALLEL OUTPUT DIFFERS FROM SEQUENTIAL at {} threads ({} transactions): \
         a Block-STM bug; not benchmarking a wrong engine",
        case.group,
        engine.threads,
        case.block.txs.len()
    );
    let gas = expected.gas_used();
    let revm_gas = baselines::revm_bare(case.storage, case.block)
        .unwrap_or_else(|error| panic!("{}: the revm baseline failed: {error}", case.group));
    let reth_gas = baselines::revm_state_bundle(case.storage, case.block)
        .unwrap_or_else(|error| panic!("{}: the reth baseline failed: {error}", case.group))
        .gas;
    assert!(
        revm_gas == gas && reth_gas == gas,
        "{}: the baselines used different gas (revm {revm_gas}, reth {reth_gas}, engine {gas}): \
         they did not run the same block",
        case.group
    );
    gas
}

/// Benchmarks one block in its own group: the baselines `revm` and `reth`, then `sequential`
/// (`execute_sequential`) and `parallel` (the pool engine), throughput in gas ("elements" in
/// criterion's output are gas), after [`check`]. Each run is timed alone, as in the CLI
/// ([`Engine::timed`]).
pub fn bench_block(
    criterion: &mut Criterion,
    engine: &Engine,
    case: &BlockCase<'_>,
    summary: &mut Summary,
) {
    let gas = check(engine, case);
    println!(
        "{}: {} transactions, {gas} gas; parallel output equals sequential at {} threads",
        case.group,
        case.block.txs.len(),
        engine.threads
    );
    let mut group = criterion.benchmark_group(&case.group);
    group.throughput(Throughput::Elements(gas));
    group.bench_function(REVM, |b| {
        b.iter_custom(|iters| {
            engine.timed(iters, || baselines::revm_bare(case.storage, case.block))
        })
    });
    group.bench_function(RETH, |b| {
        b.iter_custom(|iters| {
            engine.timed(iters, || {
                baselines::revm_state_bundle(case.storage, case.block)
            })
        })
    });
    group.bench_function("sequential", |b| {
        b.iter_custom(|iters| engine.timed(iters, || execute_sequential(case.storage, case.block)))
    });
    group.bench_function("parallel", |b| {
        b.iter_custom(|iters| engine.timed(iters, || engine.execute(case.storage, case.block)))
    });
    group.finish();
    summary.cases.push(Case {
        group: case.group.clone(),
        case: case.case.clone(),
        txs: case.block.txs.len(),
        gas,
    });
}

struct Case {
    group: String,
    case: String,
    txs: usize,
    gas: u64,
}

/// One row of the summary (and of its JSON file).
#[derive(Serialize)]
struct Row {
    suite: &'static str,
    group: String,
    case: String,
    txs: usize,
    gas: u64,
    /// Bare revm's median.
    revm_ns: f64,
    /// The `reth` baseline's median (revm `State`, bundle taken).
    reth_ns: f64,
    seq_ns: f64,
    par_ns: f64,
    /// `seq_ns / par_ns`.
    ratio: f64,
    /// `revm_ns / par_ns`.
    vs_revm: f64,
    threads: usize,
}

/// The blocks a suite benchmarked, summarized from criterion's estimates after they ran.
pub struct Summary {
    suite: &'static str,
    started: SystemTime,
    cases: Vec<Case>,
}

impl Summary {
    /// Created before the suite's first group: estimates older than this are ignored.
    pub fn new(suite: &'static str) -> Self {
        Self {
            suite,
            started: SystemTime::now(),
            cases: Vec::new(),
        }
    }

    /// This run's median of `group`/`function` in ns, if this process measured it.
    fn median_ns(&self, group: &str, function: &str) -> Option<f64> {
        let path = criterion_dir()
            .join(filename_safe(group))
            .join(filename_safe(function))
            .join("new/estimates.json");
        let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
        if modified < self.started {
            return None;
        }
        let estimates: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        estimates["median"]["point_estimate"].as_f64()
    }

    /// Prints the summary and writes `blockstm-summary-<suite>.json` (not when nothing was
    /// measured, so a `--test` run keeps the last real summary).
    pub fn report(&self, threads: usize) {
        let mut rows = Vec::new();
        let mut missing = Vec::new();
        for case in &self.cases {
            match (
                self.median_ns(&case.group, REVM),
                self.median_ns(&case.group, RETH),
                self.median_ns(&case.group, "sequential"),
                self.median_ns(&case.group, "parallel"),
            ) {
                (Some(revm_ns), Some(reth_ns), Some(seq_ns), Some(par_ns)) => rows.push(Row {
                    suite: self.suite,
                    group: case.group.clone(),
                    case: case.case.clone(),
                    txs: case.txs,
                    gas: case.gas,
                    revm_ns,
                    reth_ns,
                    seq_ns,
                    par_ns,
                    ratio: seq_ns / par_ns,
                    vs_revm: revm_ns / par_ns,
                    threads,
                }),
                _ => missing.push(case.group.as_str()),
            }
        }
        println!();
        println!(
            "== blockstm {} summary: criterion medians, parallel engine at {threads} threads ==",
            self.suite
        );
        if rows.is_empty() {
            println!("nothing measured (filtered out, or --test/--list): summary file not written");
            return;
        }
        if !missing.is_empty() {
            println!("not measured in this run: {}", missing.join(", "));
        }
        println!(
            "{:<20} {:>7} {:>14} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>10} {:>10}",
            "group",
            "txs",
            "gas",
            "revm ms",
            "reth ms",
            "seq ms",
            "par ms",
            "seq/par",
            "revm/par",
            "revm Ggas/s",
            "par Ggas/s"
        );
        for row in &rows {
            println!(
                "{:<20} {:>7} {:>14} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8.2} {:>8.2} {:>10.2} {:>10.2}",
                row.group,
                row.txs,
                row.gas,
                row.revm_ns / 1e6,
                row.reth_ns / 1e6,
                row.seq_ns / 1e6,
                row.par_ns / 1e6,
                row.ratio,
                row.vs_revm,
                row.gas as f64 / row.revm_ns,
                row.gas as f64 / row.par_ns,
            );
        }
        let geometric_mean = |ratio: fn(&Row) -> f64| {
            (rows.iter().map(|row| ratio(row).ln()).sum::<f64>() / rows.len() as f64).exp()
        };
        let lowest = rows
            .iter()
            .min_by(|a, b| a.ratio.total_cmp(&b.ratio))
            .expect("rows is not empty");
        println!(
            "seq/par: geometric mean {:.2} over {} groups; lowest {:.2} ({}); \
             revm/par: geometric mean {:.2}",
            geometric_mean(|row| row.ratio),
            rows.len(),
            lowest.ratio,
            lowest.group,
            geometric_mean(|row| row.vs_revm),
        );
        let path = criterion_dir().join(format!("blockstm-summary-{}.json", self.suite));
        let json = serde_json::to_string_pretty(&rows).expect("rows serialize");
        match std::fs::write(&path, json + "\n") {
            Ok(()) => println!("summary written to {}", path.display()),
            Err(error) => println!("could not write {}: {error}", path.display()),
        }
    }
}

/// The directory name criterion gives a group or function id (`report::make_filename_safe`
/// in criterion 0.7, for names short enough not to be truncated).
fn filename_safe(name: &str) -> String {
    name.replace(['?', '"', '/', '\\', '*', '<', '>', ':', '|', '^'], "_")
}
