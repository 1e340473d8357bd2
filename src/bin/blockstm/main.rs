//! `blockstm`: benchmarks, state tests and mainnet replays of the blockstm-evm executor.

mod bench;

/// mimalloc keeps freed memory for reuse; with the system allocator every block's large maps
/// are fresh pages, and page faults dominate both engines (as with jemalloc in reth).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Bench(args) => bench::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
