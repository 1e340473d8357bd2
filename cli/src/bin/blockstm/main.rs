//! `blockstm`: benchmarks, state tests and mainnet replays of the blockstm-evm executor.

mod bench;
mod builder_bench;
mod conformance;
mod contenders;
mod memory;
mod replay;
mod stats_row;
mod timing;

/// mimalloc keeps freed memory for reuse; with the system allocator every block's large maps
/// are fresh pages, and page faults dominate both engines (as with jemalloc in reth).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mimalloc.h` (libmimalloc-sys names no constant).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed pages for reuse instead of returning them to the OS (mimalloc's default purges
/// after 10 ms): blocks executed back to back then reuse memory instead of faulting in fresh,
/// zeroed pages (with transparent huge pages, 2 MiB at a time), as a node's long-lived
/// allocator does. Measured (`perf stat -e page-faults blockstm bench --workload amm
/// --threads 2 --runs 12`): 19,000-29,000 page faults with a 1 s purge delay, about 310
/// without purging.
fn keep_freed_memory_between_blocks() {
    // SAFETY: `mi_option_set` only stores an option value; any value is valid for this option.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Block-STM parallel EVM executor: benchmarks and conformance runs.
#[derive(Debug, Parser)]
#[command(name = "blockstm", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run generated workloads sequentially and in parallel, and compare the outputs.
    Bench(bench::BenchArgs),
    /// Replay real mainnet blocks sequentially and in parallel, checked against their headers.
    Replay(replay::ReplayArgs),
    /// Run Ethereum state tests through the parallel engine and the sequential reference.
    Statetest(conformance::StateTestArgs),
    /// Run Ethereum blockchain tests through the parallel engine and the sequential reference.
    Blocktest(conformance::BlockTestArgs),
}

fn main() -> ExitCode {
    keep_freed_memory_between_blocks();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Bench(args) => bench::run(&args).map_err(|e| e.to_string()),
        Command::Replay(args) => replay::run(&args),
        Command::Statetest(args) => conformance::run_statetest(&args),
        Command::Blocktest(args) => conformance::run_blocktest(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
