//! `blockstm bench`: generated workloads on five engines (bare revm, reth's executor, ours
//! sequential, parallel, and parallel ending with reth's bundle), with a verdict that the
//! outputs are equal.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::contenders::{Contender, Contenders, RETH_ENGINE};
use crate::stats_row::StatsRow;
use crate::timing::median_ms;

use blockstm_cli::LatencyStorage;
use blockstm_cli::workloads::{Workload, WorkloadError, WorkloadKind, WorkloadSpec};
use blockstm_evm::revm::DatabaseRef;
use blockstm_evm::{BlockError, BlockOutput, Executor, Options};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Most microseconds of `--db-latency-us` the bench accepts.
const MAX_DB_LATENCY_US: u64 = 1_000_000;
/// Most runs per workload the bench accepts.
const MAX_RUNS: usize = 10_000;
/// Most worker threads the bench accepts.
const MAX_THREADS: usize = 4_096;

/// Which workload to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkloadChoice {
    Raw,
    Erc20,
    Amm,
    Hybrid,
    Chain,
    All,
}

impl WorkloadChoice {
    fn kinds(self) -> Vec<WorkloadKind> {
        match self {
            Self::Raw => vec![WorkloadKind::Raw],
            Self::Erc20 => vec![WorkloadKind::Erc20],
            Self::Amm => vec![WorkloadKind::Amm],
            Self::Hybrid => vec![WorkloadKind::Hybrid],
            Self::Chain => vec![WorkloadKind::Chain],
            Self::All => WorkloadKind::ALL.to_vec(),
        }
    }
}

/// Arguments of `blockstm bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workload to run.
    #[arg(long, value_enum, default_value = "all")]
    workload: WorkloadChoice,
    /// Transactions per block (default: the workload's own size).
    #[arg(long)]
    txs: Option<usize>,
    /// Worker threads of the parallel engine (default: all available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Fraction of transactions on the hot pool (hybrid only).
    #[arg(long, default_value_t = WorkloadSpec::DEFAULT_HOT)]
    hot: f64,
    /// Timed runs per workload and engine; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object per workload per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Run the parallel engine on threads spawned for each block instead of the persistent
    /// worker pool (to measure what the pool saves).
    #[arg(long)]
    spawned_threads: bool,
    /// Blocks with fewer transactions run on the sequential path (default: the engine's
    /// default for the thread count; 0 forces the parallel engine).
    #[arg(long)]
    sequential_below: Option<usize>,
    /// Also report the engine's statistics (incarnations, suspensions, validations, aborts,
    /// time per phase) of the parallel run with the median time.
    #[arg(long, conflicts_with = "spawned_threads")]
    stats: bool,
    /// Make the first read of each location (account, slot, code, block hash) take L
    /// microseconds, as from a node's disk: the reading thread sleeps (see
    /// `storage::LatencyStorage`). Every run, of either engine, starts with a cold cache.
    #[arg(long, value_name = "L")]
    db_latency_us: Option<u64>,
    /// Instead of timing, measure peak memory: each engine runs the block once in a child
    /// process of its own, which reports its resident set before and at its peak.
    #[arg(long, conflicts_with_all = ["stats", "spawned_threads", "db_latency_us"])]
    pub(crate) memory: bool,
    /// Bench the block builder against `execute`: the workload's transactions with invalid
    /// replays mixed in, offered at once; reports the builder's time to finish and to its
    /// first committed outcome (see `blockstm_evm::builder`).
    #[arg(long, conflicts_with_all = ["stats", "spawned_threads", "db_latency_us", "memory"])]
    builder: bool,
    /// Also time K blocks back to back with each engine (deferred teardowns included) and
    /// report milliseconds per block: the throughput of a node executing block after block.
    #[arg(long, value_name = "K", conflicts_with_all = ["memory", "builder"])]
    back_to_back: Option<usize>,
    /// Internal: the child process of `--memory` (runs one engine once and prints its
    /// memory figures as JSON).
    #[arg(long, hide = true, value_name = "ENGINE")]
    pub(crate) memory_probe: Option<crate::memory::Engine>,
}

/// Errors of the bench command.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("--runs must be between 1 and {MAX_RUNS}, got {0}")]
    Runs(usize),
    #[error("--threads must be between 1 and {MAX_THREADS}, got {0}")]
    Threads(usize),
    #[error("--db-latency-us must be at most {MAX_DB_LATENCY_US}, got {0}")]
    DbLatency(u64),
    #[error("memory measurement: {0}")]
    Memory(String),
    #[error("workload {workload}: execution failed: {source}")]
    Execution {
        workload: WorkloadKind,
        source: BlockError,
    },
    #[error("--back-to-back must be between 1 and {MAX_RUNS}, got {0}")]
    BackToBack(usize),
    #[error("workload {workload}: baseline {contender}: {message}")]
    Baseline {
        workload: WorkloadKind,
        contender: &'static str,
        message: String,
    },
    #[error("workload {workload}: sequential runs disagree with each other")]
    Nondeterministic { workload: WorkloadKind },
}

/// One row of the report (`--json` prints it as is: these field names are a contract).
#[derive(Debug, Serialize)]
struct Row {
    workload: String,
    txs: usize,
    gas: u64,
    threads: usize,
    runs: usize,
    seq_ms: f64,
    par_ms: Option<f64>,
    speedup: Option<f64>,
    equal: Option<bool>,
    cpu_cores: Option<f64>,
    seq_ggas_per_s: f64,
    failed_txs: usize,
    seed: u64,
    hot: Option<f64>,
    /// `pool` or `spawned_threads`: where the parallel runs ran.
    engine: &'static str,
    /// `engine`, or `sequential` when the options' rule (`Options::runs_in_parallel`) keeps
    /// the block on the sequential path, so that `par_ms` times that path; a block the
    /// engine's plan finds mostly one chain is contained there too (`--stats` says so).
    path: &'static str,
    /// With `--stats`: the engine's statistics of the parallel run with the median time.
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<StatsRow>,
    /// With `--db-latency-us`: the latency of each first read, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    db_latency_us: Option<u64>,
    /// With `--db-latency-us`: locations the sequential run read (each paid the latency).
    #[serde(skip_serializing_if = "Option::is_none")]
    db_first_reads_seq: Option<u64>,
    /// With `--db-latency-us`: locations the parallel run read (speculative reads included).
    #[serde(skip_serializing_if = "Option::is_none")]
    db_first_reads_par: Option<u64>,
    /// Bare revm (`CacheDB`, `transact_commit`, no output), median ms.
    revm_ms: f64,
    /// reth's executor (see `reth_engine`), ending with the bundle taken, median ms.
    reth_ms: f64,
    /// How `reth_ms` was run: alloy-evm's `EthBlockExecutor` (built with the `alloy-evm`
    /// feature) or revm's `State` with bundle updates and `take_bundle`.
    reth_engine: &'static str,
    /// The parallel engine ending with the same bundle as `reth_ms`: the alloy-evm adapter, or
    /// `execute` and `into_bundle_state`, median ms.
    par_bundle_ms: f64,
    /// `revm_ms / par_ms`.
    vs_revm: Option<f64>,
    /// `reth_ms / par_bundle_ms`.
    vs_reth: Option<f64>,
    /// With `--back-to-back K`: ms per block over K consecutive blocks of each engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    back_to_back: Option<BackToBack>,
}

/// Throughput over consecutive blocks (`--back-to-back`), deferred teardowns included.
#[derive(Debug, Serialize)]
struct BackToBack {
    /// Blocks run by each engine.
    blocks: usize,
    /// Milliseconds per block of each engine (total time / blocks).
    revm_ms: f64,
    reth_ms: f64,
    seq_ms: f64,
    par_ms: f64,
    par_bundle_ms: f64,
    /// `revm_ms / par_ms`.
    vs_revm: f64,
    /// `reth_ms / par_bundle_ms`.
    vs_reth: f64,
    /// `seq_ms / par_ms`.
    speedup: f64,
}

pub fn run(args: &BenchArgs) -> Result<ExitCode, BenchError> {
    if args.runs == 0 || args.runs > MAX_RUNS {
        return Err(BenchError::Runs(args.runs));
    }
    if let Some(blocks) = args.back_to_back.filter(|&k| k == 0 || k > MAX_RUNS) {
        return Err(BenchError::BackToBack(blocks));
    }
    let threads = args.threads.unwrap_or_else(default_threads);
    if threads == 0 || threads > MAX_THREADS {
        return Err(BenchError::Threads(threads));
    }
    if let Some(latency) = args.db_latency_us.filter(|&l| l > MAX_DB_LATENCY_US) {
        return Err(BenchError::DbLatency(latency));
    }
    let specs: Vec<WorkloadSpec> = args
        .workload
        .kinds()
        .into_iter()
        .map(|kind| {
            WorkloadSpec::new(kind, args.txs.unwrap_or(kind.default_txs()))
                .with_seed(args.seed)
                .with_hot(args.hot)
        })
        .collect();
    // Refuse bad parameters before spending time on any workload.
    specs.iter().try_for_each(WorkloadSpec::validate)?;
    if let Some(engine) = args.memory_probe {
        return crate::memory::probe(&specs, threads, engine);
    }
    if args.memory {
        return crate::memory::measure(&specs, threads, args.json);
    }

    let progress = ProgressBar::new((specs.len() * args.runs * Contender::ALL.len()) as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("static template"),
    );
    if args.builder {
        return run_builder(&specs, threads, args);
    }
    if !args.json {
        print_header();
    }
    let mut all_equal = true;
    for spec in &specs {
        progress.set_message(format!("generating {}", spec.kind));
        let workload = spec.generate()?;
        progress.set_message(format!("{} sequential", spec.kind));
        let row = bench_workload(&workload, threads, args, &progress)?;
        all_equal &= row.equal != Some(false);
        progress.suspend(|| {
            if args.json {
                println!("{}", serde_json::to_string(&row).expect("rows serialize"));
            } else {
                print_row(&row);
            }
        });
    }
    progress.finish_and_clear();
    if all_equal {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: parallel output differs from sequential output (rows with equal = NO)");
        Ok(ExitCode::FAILURE)
    }
}

/// `bench --builder`: one row per workload.
fn run_builder(
    specs: &[WorkloadSpec],
    threads: usize,
    args: &BenchArgs,
) -> Result<ExitCode, BenchError> {
    let progress = ProgressBar::new((specs.len() * args.runs) as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("static template"),
    );
    if !args.json {
        crate::builder_bench::print_header();
    }
    let mut all_equal = true;
    for spec in specs {
        progress.set_message(format!("generating {}", spec.kind));
        let workload = spec.generate()?;
        progress.set_message(format!(
            "{}: execute and builder ({threads} threads)",
            spec.kind
        ));
        let row = crate::builder_bench::bench_builder(
            &workload,
            threads,
            args.runs,
            args.sequential_below,
            &progress,
        )?;
        all_equal &= row.equal;
        progress.suspend(|| {
            if args.json {
                println!("{}", serde_json::to_string(&row).expect("rows serialize"));
            } else {
                crate::builder_bench::print_row(&row);
            }
        });
    }
    progress.finish_and_clear();
    if all_equal {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: the builder's block or output differs from execute's (rows with equal = NO)"
        );
        Ok(ExitCode::FAILURE)
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn bench_workload(
    workload: &Workload,
    threads: usize,
    args: &BenchArgs,
    progress: &ProgressBar,
) -> Result<Row, BenchError> {
    match args.db_latency_us {
        None => bench_on(workload, &|| &workload.storage, threads, args, progress),
        Some(latency) => {
            let latency = Duration::from_micros(latency);
            let slow = || LatencyStorage::new(&workload.storage, latency);
            bench_on(workload, &slow, threads, args, progress)
        }
    }
}

/// Storage that can count the locations read through it.
trait CountingReads {
    /// Locations read so far, when counted.
    fn first_reads(&self) -> Option<u64>;
}

impl<S> CountingReads for &S {
    fn first_reads(&self) -> Option<u64> {
        None
    }
}

impl<S> CountingReads for LatencyStorage<'_, S> {
    fn first_reads(&self) -> Option<u64> {
        Some(LatencyStorage::first_reads(self))
    }
}

/// Benches `workload` with storage made by `storage` afresh for every run (a cold cache
/// for each when it is a [`LatencyStorage`]); making it is not timed.
fn bench_on<S, F>(
    workload: &Workload,
    storage: &F,
    threads: usize,
    args: &BenchArgs,
    progress: &ProgressBar,
) -> Result<Row, BenchError>
where
    S: DatabaseRef<Error = blockstm_evm::StorageError> + Sync + CountingReads + std::fmt::Debug,
    F: Fn() -> S,
{
    let runs = args.runs;
    let spawned = Executor::without_pool();
    let executor = if args.spawned_threads {
        &spawned
    } else {
        Executor::global()
    };
    let kind = workload.spec.kind;
    let options = Options {
        sequential_below: args.sequential_below,
        ..Options::with_concurrency(threads)
    };
    let path = if options.runs_in_parallel(&workload.block) {
        "engine"
    } else {
        "sequential"
    };
    let contenders = Contenders::new(kind, &workload.block, executor, options, args.stats)
        .map_err(|error| BenchError::Baseline {
            workload: kind,
            contender: Contender::Reth.name(),
            message: error.to_string(),
        })?;
    // Warm-up runs; the sequential output is the reference the timed runs must reproduce.
    let first_storage = storage();
    let reference = contenders
        .run(Contender::Sequential, &first_storage)?
        .output
        .expect("the sequential contender returns its output");
    let db_first_reads_seq = first_storage.first_reads();
    drop(first_storage);
    // The parallel engine's warm-up also starts the pool's threads and fills its workers'
    // buffers and the allocator's pages, so that no timed run pays for set-up.
    let first_storage = storage();
    let warm = contenders.run(Contender::Parallel, &first_storage)?.output;
    let db_first_reads_par = first_storage.first_reads();
    let mut equal = warm.as_ref() == Some(&reference);
    drop((warm, first_storage));
    // The baselines' warm-up: each must have run the same block.
    contenders.check(&storage(), &reference)?;
    progress.set_message(format!("{kind}: five engines ({threads} threads)"));
    let mut times: [Vec<Duration>; Contender::ALL.len()] = Default::default();
    let mut par_stats = Vec::with_capacity(runs);
    let mut cpu = Duration::ZERO;
    // The engines take turns, each round starting with the next one, so that none always
    // finds the caches and the allocator as the same other one left them.
    for round in 0..runs {
        for turn in 0..Contender::ALL.len() {
            let position = (round + turn) % Contender::ALL.len();
            let contender = Contender::ALL[position];
            let run_storage = storage();
            let cpu_before = process_cpu_time();
            let timed = contenders.run(contender, &run_storage)?;
            match contender {
                Contender::Sequential if timed.output.as_ref() != Some(&reference) => {
                    return Err(BenchError::Nondeterministic { workload: kind });
                }
                Contender::Parallel => {
                    // Only the execution counts: the comparison below is the bench's own work.
                    cpu += process_cpu_time().saturating_sub(cpu_before);
                    equal &= timed.output.as_ref() == Some(&reference);
                    par_stats.push((timed.elapsed, timed.stats));
                }
                _ => {}
            }
            times[position].push(timed.elapsed);
            progress.inc(1);
        }
    }
    let position = |contender| {
        Contender::ALL
            .iter()
            .position(|c| *c == contender)
            .expect("every contender is in ALL")
    };
    let par_wall: Duration = times[position(Contender::Parallel)].iter().sum();
    let [revm_ms, reth_ms, seq_ms, par_ms, par_bundle_ms] = times.map(|mut t| median_ms(&mut t));
    let back_to_back = match args.back_to_back {
        Some(blocks) => {
            progress.set_message(format!("{kind}: {blocks} blocks back to back, each engine"));
            Some(back_to_back(&contenders, storage, blocks)?)
        }
        None => None,
    };
    let gas = reference.gas_used();
    par_stats.sort_by_key(|(elapsed, _)| *elapsed);
    let stats = args
        .stats
        .then(|| par_stats.swap_remove(par_stats.len() / 2).1)
        .flatten()
        .map(|stats| StatsRow::new(&stats));
    Ok(Row {
        workload: kind.to_string(),
        txs: workload.block.txs.len(),
        gas,
        threads,
        runs,
        seq_ms,
        par_ms: Some(par_ms),
        speedup: Some(seq_ms / par_ms),
        equal: Some(equal),
        cpu_cores: Some(cpu.as_secs_f64() / par_wall.as_secs_f64()),
        seq_ggas_per_s: gas as f64 / (seq_ms / 1e3) / 1e9,
        failed_txs: failed_txs(&reference),
        seed: workload.spec.seed,
        hot: (kind == WorkloadKind::Hybrid).then_some(workload.spec.hot),
        stats,
        engine: if args.spawned_threads {
            "spawned_threads"
        } else {
            "pool"
        },
        path,
        db_latency_us: args.db_latency_us,
        db_first_reads_seq,
        db_first_reads_par,
        revm_ms,
        reth_ms,
        reth_engine: RETH_ENGINE,
        par_bundle_ms,
        vs_revm: Some(revm_ms / par_ms),
        vs_reth: Some(reth_ms / par_bundle_ms),
        back_to_back,
    })
}

/// Each contender on `blocks` blocks one after the other (teardowns included: the time ends
/// when the last block's deferred teardown has finished).
fn back_to_back<S, F>(
    contenders: &Contenders<'_>,
    storage: &F,
    blocks: usize,
) -> Result<BackToBack, BenchError>
where
    S: DatabaseRef<Error = blockstm_evm::StorageError> + Sync + std::fmt::Debug,
    F: Fn() -> S,
{
    let mut per_block_ms = [0.0; Contender::ALL.len()];
    for (position, contender) in Contender::ALL.into_iter().enumerate() {
        let storages: Vec<S> = (0..blocks).map(|_| storage()).collect();
        contenders.wait_for_teardown();
        let started = Instant::now();
        for run_storage in &storages {
            drop(contenders.run_now(contender, run_storage)?);
        }
        contenders.wait_for_teardown();
        per_block_ms[position] = started.elapsed().as_secs_f64() * 1e3 / blocks as f64;
    }
    let [revm_ms, reth_ms, seq_ms, par_ms, par_bundle_ms] = per_block_ms;
    Ok(BackToBack {
        blocks,
        revm_ms,
        reth_ms,
        seq_ms,
        par_ms,
        par_bundle_ms,
        vs_revm: revm_ms / par_ms,
        vs_reth: reth_ms / par_bundle_ms,
        speedup: seq_ms / par_ms,
    })
}

/// CPU time (user + system) this process used so far.
fn process_cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes a `rusage` into the pointer it is given; it is zeroed and
    // large enough, and RUSAGE_SELF is always a valid `who`.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn failed_txs(output: &BlockOutput) -> usize {
    output.results.iter().filter(|r| !r.is_success()).count()
}

fn print_header() {
    println!(
        "{:<8} {:>7} {:>13} {:>7} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>7} {:>7} {:>10} {:>6} {:>6}",
        "workload",
        "txs",
        "gas",
        "threads",
        "revm ms",
        "reth ms",
        "seq ms",
        "par ms",
        "par+b ms",
        "speedup",
        "vs revm",
        "vs reth",
        "seq Ggas/s",
        "failed",
        "equal"
    );
}

fn print_row(row: &Row) {
    let or_dash = |value: Option<f64>, precision: usize| {
        value.map_or_else(|| "-".to_owned(), |v| format!("{v:.precision$}"))
    };
    println!(
        "{:<8} {:>7} {:>13} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>9.2} {:>7} {:>7} {:>7} {:>10.2} {:>6} {:>6}",
        row.workload,
        row.txs,
        row.gas,
        row.threads,
        row.revm_ms,
        row.reth_ms,
        row.seq_ms,
        or_dash(row.par_ms, 2),
        row.par_bundle_ms,
        or_dash(row.speedup, 2),
        or_dash(row.vs_revm, 2),
        or_dash(row.vs_reth, 2),
        row.seq_ggas_per_s,
        row.failed_txs,
        row.equal.map_or("-", |e| if e { "yes" } else { "NO" }),
    );
    if row.path == "sequential" {
        println!(
            "         the options' rule keeps this block on the sequential path \
             (--sequential-below 0 forces the engine)"
        );
    }
    if let Some(b2b) = &row.back_to_back {
        println!(
            "         back to back, {} blocks, ms per block: revm {:.2}, reth {:.2}, seq {:.2}, \
             par {:.2}, par+bundle {:.2} (vs revm {:.2}, vs reth {:.2}, speedup {:.2})",
            b2b.blocks,
            b2b.revm_ms,
            b2b.reth_ms,
            b2b.seq_ms,
            b2b.par_ms,
            b2b.par_bundle_ms,
            b2b.vs_revm,
            b2b.vs_reth,
            b2b.speedup
        );
    }
    if let (Some(latency), Some(seq), Some(par)) = (
        row.db_latency_us,
        row.db_first_reads_seq,
        row.db_first_reads_par,
    ) {
        println!(
            "         storage: {latency} µs per first read; {seq} locations read sequentially, \
             {par} in parallel"
        );
    }
    if let Some(stats) = &row.stats {
        stats.print();
    }
}
