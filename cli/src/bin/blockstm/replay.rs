//! `blockstm replay`: real mainnet blocks, sequential against parallel, checked against their
//! headers (gas used, logs bloom, receipts root from Byzantium on).

use std::path::PathBuf;
use std::process::ExitCode;

use blockstm_cli::replay::{MainnetData, ReplayError};
use blockstm_evm::{ExecutionStats, Executor, Options, execute, execute_sequential};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::stats_row::StatsRow;
use crate::timing::{median_ms, timed};

/// Arguments of `blockstm replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Folder with `blocks/<n>/`, `bytecodes.json.gz` and `block_hashes.json`.
    #[arg(default_value = "../shared/mainnet")]
    dir: PathBuf,
    /// Worker threads of the parallel engine (default: all available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed runs per block and engine, after one untimed warm-up; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print one JSON object per block per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Run the parallel side with `execute`'s default options (small blocks and blocks the
    /// plan finds mostly dependent take the sequential path) instead of forcing the
    /// parallel engine on every block.
    #[arg(long)]
    default_options: bool,
    /// Replay only this block (repeatable; default: every block in the folder).
    #[arg(long = "block", value_name = "NUMBER")]
    blocks: Vec<u64>,
    /// Also report the engine's statistics of each block's parallel run with the median time
    /// (a `stats` object in `--json`, a line under the row in the table).
    #[arg(long)]
    stats: bool,
}

/// One block's row (`--json` prints it as is: these field names are a contract).
#[derive(Debug, Serialize)]
struct Row {
    block: u64,
    fork: String,
    txs: usize,
    gas: Option<u64>,
    seq_ms: Option<f64>,
    par_ms: Option<f64>,
    speedup: Option<f64>,
    equal: Option<bool>,
    gas_match: Option<bool>,
    bloom_match: Option<bool>,
    receipts_root_match: Option<bool>,
    error: Option<String>,
    /// What the parallel side ran: `parallel`, `sequential` (below the threshold) or
    /// `contained` (the plan found the block mostly dependent).
    path: Option<&'static str>,
    /// With `--stats`: the engine's statistics of the parallel run with the median time.
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<StatsRow>,
}

impl Row {
    fn passed(&self) -> bool {
        self.error.is_none()
            && self.equal == Some(true)
            && self.gas_match == Some(true)
            && self.bloom_match == Some(true)
            && self.receipts_root_match != Some(false)
    }
}

pub fn run(args: &ReplayArgs) -> Result<ExitCode, String> {
    if args.runs == 0 || args.runs > 1_000 {
        return Err(format!(
            "--runs must be between 1 and 1000, got {}",
            args.runs
        ));
    }
    let data = MainnetData::load(&args.dir).map_err(|e: ReplayError| e.to_string())?;
    let mut numbers = data.block_numbers().map_err(|e| e.to_string())?;
    if let Some(missing) = args.blocks.iter().find(|n| !numbers.contains(n)) {
        return Err(format!("block {missing} is not in {}", args.dir.display()));
    }
    if !args.blocks.is_empty() {
        numbers.retain(|n| args.blocks.contains(n));
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let options = if args.default_options {
        Options::with_concurrency(threads)
    } else {
        Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(threads)
        }
    };
    let progress = ProgressBar::new(numbers.len() as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} block {msg}",
        )
        .expect("static template"),
    );
    if !args.json {
        println!(
            "{:>9} {:<16} {:>5} {:>10} {:>8} {:>8} {:>7} {:>5} {:>5} {:>5} {:>8} {:<10}",
            "block",
            "fork",
            "txs",
            "gas",
            "seq ms",
            "par ms",
            "speedup",
            "equal",
            "gas",
            "bloom",
            "receipts",
            "path"
        );
    }
    let (mut passed, mut failed) = (0, 0);
    for number in numbers {
        progress.set_message(number.to_string());
        let row = replay_block(&data, number, &options, args.runs, args.stats);
        if row.passed() {
            passed += 1;
        } else {
            failed += 1;
        }
        progress.suspend(|| print_row(&row, args.json));
        progress.inc(1);
    }
    progress.finish_and_clear();
    println!("{passed} passed, {failed} failed, 0 skipped");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn replay_block(
    data: &MainnetData,
    number: u64,
    options: &Options,
    runs: usize,
    with_stats: bool,
) -> Row {
    let mut row = Row {
        block: number,
        fork: String::new(),
        txs: 0,
        gas: None,
        seq_ms: None,
        par_ms: None,
        speedup: None,
        equal: None,
        gas_match: None,
        bloom_match: None,
        receipts_root_match: None,
        error: None,
        path: None,
        stats: None,
    };
    let block = match data.block(number) {
        Ok(block) => block,
        Err(error) => {
            row.error = Some(error.to_string());
            return row;
        }
    };
    row.fork = format!("{:?}", block.spec);
    row.txs = block.block.txs.len();
    // Warm-up: the first block that needs them loads the KZG setup and precompile tables.
    let sequential = execute_sequential(&block.storage, &block.block);
    let parallel = Executor::global()
        .execute_with_stats(&block.storage, &block.block, options)
        .map(|(output, stats)| {
            row.path = Some(path_name(&stats));
            output
        });
    let (mut seq_times, mut par_times) = (Vec::new(), Vec::new());
    let mut par_stats = Vec::new();
    for _ in 0..runs {
        seq_times.push(timed(|| execute_sequential(&block.storage, &block.block)).0);
        if with_stats {
            let (elapsed, outcome) = timed(|| {
                Executor::global().execute_with_stats(&block.storage, &block.block, options)
            });
            par_times.push(elapsed);
            if let Ok((_, stats)) = outcome {
                par_stats.push((elapsed, stats));
            }
        } else {
            par_times.push(timed(|| execute(&block.storage, &block.block, options)).0);
        }
    }
    if !par_stats.is_empty() {
        par_stats.sort_by_key(|(elapsed, _)| *elapsed);
        row.stats = Some(StatsRow::new(&par_stats[par_stats.len() / 2].1));
    }
    let (seq_ms, par_ms) = (median_ms(&mut seq_times), median_ms(&mut par_times));
    row.seq_ms = Some(seq_ms);
    row.par_ms = Some(par_ms);
    row.speedup = Some(seq_ms / par_ms);
    match (sequential, parallel) {
        (Ok(sequential), Ok(parallel)) => {
            let check = block.check(&sequential);
            row.gas = Some(sequential.gas_used());
            row.equal = Some(parallel == sequential);
            row.gas_match = Some(check.gas);
            row.bloom_match = Some(check.bloom);
            row.receipts_root_match = check.receipts_root;
        }
        (Err(error), _) => row.error = Some(format!("sequential: {error}")),
        (_, Err(error)) => row.error = Some(format!("parallel: {error}")),
    }
    row
}

fn path_name(stats: &ExecutionStats) -> &'static str {
    if stats.contained {
        "contained"
    } else if stats.sequential {
        "sequential"
    } else {
        "parallel"
    }
}

fn print_row(row: &Row, json: bool) {
    if json {
        println!("{}", serde_json::to_string(row).expect("rows serialize"));
        return;
    }
    let flag = |value: Option<bool>| value.map_or("-", |v| if v { "yes" } else { "NO" });
    let number = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    println!(
        "{:>9} {:<16} {:>5} {:>10} {:>8} {:>8} {:>7} {:>5} {:>5} {:>5} {:>8} {:<10}{}",
        row.block,
        row.fork,
        row.txs,
        row.gas.map_or_else(|| "-".to_owned(), |g| g.to_string()),
        number(row.seq_ms),
        number(row.par_ms),
        number(row.speedup),
        flag(row.equal),
        flag(row.gas_match),
        flag(row.bloom_match),
        flag(row.receipts_root_match),
        row.path.unwrap_or("-"),
        row.error
            .as_ref()
            .map_or_else(String::new, |e| format!("  error: {e}")),
    );
    if let Some(stats) = &row.stats {
        stats.print();
    }
}
