//! `blockstm bench --builder`: the block builder against `execute` on the same workloads.
//!
//! The mempool is the workload's block plus, after every 50th transaction, a replay of an
//! earlier one (invalid: its nonce is used up; the last ones may also find the block full),
//! all offered at once. The builder must leave exactly the replays out, so the block it builds is the workload's block and its output
//! must equal `execute`'s. Reported per workload: the builder's time from creation to
//! `finish` (throughput), the time to its first committed outcome (latency), and `execute`'s
//! time on the block, whose results all arrive at its end. Every timed run starts on an idle
//! pool (an earlier run's deferred teardown finished).

use std::sync::Arc;
use std::time::{Duration, Instant};

use blockstm_cli::workloads::Workload;
use blockstm_evm::builder::{BlockBuilder, BuilderOptions, Candidate};
use blockstm_evm::{BlockError, Executor, Options, execute, execute_sequential};
use indicatif::ProgressBar;
use serde::Serialize;

use crate::bench::BenchError;
use crate::timing::{median_ms, timed};

/// One candidate in this many is a replay.
const REPLAY_EVERY: usize = 50;

/// One row of `bench --builder` (`--json` prints it as is: these field names are a contract).
#[derive(Debug, Serialize)]
pub(crate) struct BuilderRow {
    workload: String,
    /// Candidates offered.
    candidates: usize,
    /// Candidates included (the workload's transactions).
    included: usize,
    /// Candidates left out (the replays).
    excluded: usize,
    gas: u64,
    threads: usize,
    runs: usize,
    /// Median of `execute_sequential` on the block.
    seq_ms: f64,
    /// Median of `execute` on the block: its first (and every) result arrives then.
    execute_ms: f64,
    /// Median time from creating the builder and offering every candidate to `finish`.
    build_ms: f64,
    /// Median time from creating the builder to its first committed outcome.
    first_commit_ms: f64,
    /// `execute_ms / build_ms`: the builder's throughput relative to `execute`.
    build_vs_execute: f64,
    /// `seq_ms / build_ms`.
    build_speedup: f64,
    /// Builder throughput in Ggas/s.
    build_ggas_per_s: f64,
    /// Rounds and rounds on the parallel engine, in the median build.
    rounds: usize,
    parallel_rounds: usize,
    /// The builder's block and output equal the workload's block and `execute`'s output.
    pub(crate) equal: bool,
    seed: u64,
}

/// The mempool for `workload`: its transactions with replays mixed in, and the replays'
/// candidate numbers.
fn mempool(workload: &Workload) -> (Vec<Candidate>, Vec<usize>) {
    let txs = &workload.block.txs;
    let mut candidates = Vec::with_capacity(txs.len() + txs.len() / REPLAY_EVERY);
    let mut replays = Vec::with_capacity(txs.len() / REPLAY_EVERY);
    for (index, tx) in txs.iter().enumerate() {
        candidates.push(Candidate::new(tx.clone()));
        if index % REPLAY_EVERY == REPLAY_EVERY - 1 {
            replays.push(candidates.len());
            candidates.push(Candidate::new(txs[index / 2].clone()));
        }
    }
    (candidates, replays)
}

/// What one build measured.
struct Build {
    total: Duration,
    first_commit: Duration,
    built: blockstm_evm::builder::BuiltBlock,
}

pub(crate) fn bench_builder(
    workload: &Workload,
    threads: usize,
    runs: usize,
    sequential_below: Option<usize>,
    progress: &ProgressBar,
) -> Result<BuilderRow, BenchError> {
    let kind = workload.spec.kind;
    let error = |source: BlockError| BenchError::Execution {
        workload: kind,
        source,
    };
    let options = Options {
        sequential_below,
        ..Options::with_concurrency(threads)
    };
    let builder_options = BuilderOptions {
        execution: options.clone(),
        ..BuilderOptions::default()
    };
    let storage = Arc::new(workload.storage.clone());
    let (candidates, replays) = mempool(workload);
    let build = || -> Result<Build, BlockError> {
        let candidates = candidates.clone();
        let started = Instant::now();
        let mut builder = BlockBuilder::new(
            storage.clone(),
            workload.block.env.clone(),
            workload.block.cfg.clone(),
            builder_options.clone(),
        )
        .map_err(|e| BlockError::WorkerPanicked {
            message: format!("the builder's thread did not start: {e}"),
        })?;
        builder.extend(candidates);
        let first = builder.wait_committed();
        let first_commit = started.elapsed();
        drop(first);
        let built = builder.finish()?;
        Ok(Build {
            total: started.elapsed(),
            first_commit,
            built,
        })
    };
    // Warm-up of both, and the verdict.
    let reference = execute(&*storage, &workload.block, &options).map_err(error)?;
    let warm = build().map_err(error)?;
    // A replay is invalid, or over the gas limit when the block is already full.
    let replays_only = warm
        .built
        .excluded
        .iter()
        .map(|(candidate, _)| *candidate)
        .eq(replays.iter().copied());
    let mut equal = warm.built.block.txs == workload.block.txs
        && warm.built.output == reference
        && replays_only;
    if !equal {
        eprintln!(
            "{kind}: same transactions {}, same results {}, same state {}, exactly the \
             replays left out {replays_only}",
            warm.built.block.txs == workload.block.txs,
            warm.built.output.results == reference.results,
            warm.built.output.state == reference.state,
        );
    }
    let excluded = warm.built.excluded.len();
    drop(warm);
    let (mut seq_times, mut execute_times) = (Vec::new(), Vec::new());
    let (mut build_times, mut first_times, mut builds) = (Vec::new(), Vec::new(), Vec::new());
    // Each timed run starts on an idle pool: no earlier run's deferred teardown still going.
    let settle = || {
        let executor = Executor::global();
        executor.pool_run_empty(executor.workers());
    };
    for _ in 0..runs {
        settle();
        let (elapsed, output) = timed(|| execute_sequential(&*storage, &workload.block));
        equal &= output.map_err(error)? == reference;
        seq_times.push(elapsed);
        settle();
        let (elapsed, output) = timed(|| execute(&*storage, &workload.block, &options));
        equal &= output.map_err(error)? == reference;
        execute_times.push(elapsed);
        settle();
        let run = build().map_err(error)?;
        equal &= run.built.output == reference;
        build_times.push(run.total);
        first_times.push(run.first_commit);
        builds.push((run.total, run.built.stats));
        progress.inc(1);
    }
    builds.sort_by_key(|(total, _)| *total);
    let median_stats = builds.swap_remove(builds.len() / 2).1;
    let seq_ms = median_ms(&mut seq_times);
    let execute_ms = median_ms(&mut execute_times);
    let build_ms = median_ms(&mut build_times);
    let gas = reference.gas_used();
    Ok(BuilderRow {
        workload: kind.to_string(),
        candidates: candidates.len(),
        included: workload.block.txs.len(),
        excluded,
        gas,
        threads,
        runs,
        seq_ms,
        execute_ms,
        build_ms,
        first_commit_ms: median_ms(&mut first_times),
        build_vs_execute: execute_ms / build_ms,
        build_speedup: seq_ms / build_ms,
        build_ggas_per_s: gas as f64 / (build_ms / 1e3) / 1e9,
        rounds: median_stats.rounds,
        parallel_rounds: median_stats.parallel_rounds,
        equal,
        seed: workload.spec.seed,
    })
}

pub(crate) fn print_header() {
    println!(
        "{:<8} {:>7} {:>6} {:>7} {:>9} {:>10} {:>9} {:>12} {:>9} {:>8} {:>7} {:>6}",
        "workload",
        "txs",
        "left",
        "threads",
        "seq ms",
        "execute ms",
        "build ms",
        "1st commit",
        "build/ex",
        "speedup",
        "rounds",
        "equal"
    );
}

pub(crate) fn print_row(row: &BuilderRow) {
    println!(
        "{:<8} {:>7} {:>6} {:>7} {:>9.2} {:>10.2} {:>9.2} {:>9.3} ms {:>9.2} {:>8.2} {:>3}/{:<3} {:>6}",
        row.workload,
        row.included,
        row.excluded,
        row.threads,
        row.seq_ms,
        row.execute_ms,
        row.build_ms,
        row.first_commit_ms,
        row.build_vs_execute,
        row.build_speedup,
        row.parallel_rounds,
        row.rounds,
        if row.equal { "yes" } else { "NO" },
    );
}
