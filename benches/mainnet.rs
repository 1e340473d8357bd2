//! Every real mainnet block in the data directory, sequential against the parallel engine on
//! the worker pool.
//!
//! Data: `BLOCKSTM_MAINNET_DIR`, default `../shared/mainnet` next to the crate (the layout
//! `blockstm replay` reads). Without it the bench prints one `SKIP` line and measures nothing.
//! Group `mainnet/<block number>`, two functions:
//! - `sequential`: `execute_sequential`;
//! - `parallel`: `Executor::execute` on a default pool built once, at
//!   `BLOCKSTM_BENCH_THREADS` workers (default: the pool's size capped at 2), with the engine
//!   forced on as `blockstm replay` does (most of these blocks are under `execute`'s default
//!   sequential threshold).
//!
//! Throughput is in gas (criterion's "elements"). Before it is timed, each block runs once on
//! both engines and the bench panics if the outputs differ. After the groups the bench prints
//! a summary (medians, seq/par per block, their geometric mean and the lowest) and writes it
//! to `target/criterion/blockstm-summary-mainnet.json` (see `common`).
//!
//! `cargo bench --bench mainnet` (47 blocks: a few minutes on 2 cores), or
//! `scripts/bench.sh --criterion mainnet`, which also rewrites the table in `BENCHMARKS.md`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use blockstm_cli::replay::MainnetData;
use common::{BlockCase, Engine, Summary};

const WARM_UP: Duration = Duration::from_millis(500);
const MEASUREMENT: Duration = Duration::from_millis(1500);

/// The data directory, if it holds mainnet data.
fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("BLOCKSTM_MAINNET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/mainnet"));
    dir.join("bytecodes.json.gz").is_file().then_some(dir)
}

fn main() {
    let mut criterion = common::criterion(WARM_UP, MEASUREMENT);
    let Some(dir) = data_dir() else {
        let dir = std::env::var("BLOCKSTM_MAINNET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/mainnet").into());
        println!("SKIP: mainnet data not found at {dir} (set BLOCKSTM_MAINNET_DIR)");
        return;
    };
    let engine = Engine::new();
    let mut summary = Summary::new("mainnet");
    let data = MainnetData::load(&dir)
        .unwrap_or_else(|error| panic!("mainnet data at {}: {error}", dir.display()));
    let numbers = data
        .block_numbers()
        .unwrap_or_else(|error| panic!("mainnet data at {}: {error}", dir.display()));
    assert!(!numbers.is_empty(), "no blocks under {}", dir.display());
    for number in numbers {
        let block = data
            .block(number)
            .unwrap_or_else(|error| panic!("mainnet block {number}: {error}"));
        let case = BlockCase {
            group: format!("mainnet/{number}"),
            case: number.to_string(),
            storage: &block.storage,
            block: &block.block,
        };
        common::bench_block(&mut criterion, &engine, &case, &mut summary);
    }
    criterion.final_summary();
    summary.report(engine.threads);
}
