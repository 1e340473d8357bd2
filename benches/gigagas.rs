//! Blocks of about one gigagas (10^9 gas) of each generated workload, sequential against the
//! parallel engine on the worker pool, in gas per second.
//!
//! For each kind in `WorkloadKind::ALL` the gas per transaction is taken from a 100-transaction
//! block of that kind, and the benchmarked block (seed 1) has as many transactions as make
//! 1 Ggas, at most 50,000; the bench prints each block's real size and gas. Group
//! `gigagas/<kind>`, two functions:
//! - `sequential`: `execute_sequential`;
//! - `parallel`: `Executor::execute` on a default pool built once, at
//!   `BLOCKSTM_BENCH_THREADS` workers (default: the pool's size capped at 2).
//!
//! Throughput is in gas: criterion's "elements" are gas, so "Melem/s" is Mgas/s. Before it is
//! timed, each block runs once on both engines and the bench panics if the outputs differ.
//! After the groups the bench prints a summary (medians, seq/par, Ggas/s of each) and writes
//! it to `target/criterion/blockstm-summary-gigagas.json` (see `common`).
//!
//! `cargo bench --bench gigagas` (a few minutes on 2 cores), or
//! `scripts/bench.sh --criterion gigagas`, which also rewrites the table in `BENCHMARKS.md`.
//! Under `cargo test --benches` each block is the 100-transaction sample.

mod common;

use std::time::Duration;

use blockstm_cli::workloads::{Workload, WorkloadKind, WorkloadSpec};
use blockstm_evm::execute_sequential;
use common::{BlockCase, Engine, Summary};

/// The gas each block aims at.
const TARGET_GAS: u64 = 1_000_000_000;
/// The most transactions a block gets, whatever its gas (raw and chain transfers of 21,000
/// gas reach 1 Ggas at 47,620).
const MAX_TXS: usize = 50_000;
/// Size of the block the gas per transaction is measured on.
const SAMPLE_TXS: usize = 100;

const WARM_UP: Duration = Duration::from_secs(1);
const MEASUREMENT: Duration = Duration::from_secs(5);

/// Whether criterion will measure (`cargo bench`): not under `cargo test --benches`
/// (no `--bench` argument, or `--test`) nor `--list`, where each benchmark runs once or not
/// at all and small blocks do.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    has("--bench") && !has("--test") && !has("--list")
}

fn generate(kind: WorkloadKind, txs: usize) -> Workload {
    WorkloadSpec::new(kind, txs)
        .generate()
        .unwrap_or_else(|error| panic!("{kind} block of {txs} transactions: {error}"))
}

/// Transactions for about [`TARGET_GAS`] of `kind`, from a [`SAMPLE_TXS`] block's gas.
fn gigagas_txs(kind: WorkloadKind) -> usize {
    let sample = generate(kind, SAMPLE_TXS);
    let gas = execute_sequential(&sample.storage, &sample.block)
        .unwrap_or_else(|error| panic!("{kind} sample block: {error}"))
        .gas_used();
    let per_tx = (gas / SAMPLE_TXS as u64).max(1);
    let txs = usize::try_from(TARGET_GAS.div_ceil(per_tx))
        .unwrap_or(MAX_TXS)
        .min(MAX_TXS);
    println!("gigagas/{kind}: {per_tx} gas per transaction -> {txs} transactions");
    txs
}

fn main() {
    let mut criterion = common::criterion(WARM_UP, MEASUREMENT);
    let engine = Engine::new();
    let mut summary = Summary::new("gigagas");
    let full_size = measuring();
    for kind in WorkloadKind::ALL {
        let txs = if full_size {
            gigagas_txs(kind)
        } else {
            SAMPLE_TXS
        };
        let workload = generate(kind, txs);
        let case = BlockCase {
            group: format!("gigagas/{kind}"),
            case: kind.name().to_owned(),
            storage: &workload.storage,
            block: &workload.block,
        };
        common::bench_block(&mut criterion, &engine, &case, &mut summary);
    }
    criterion.final_summary();
    summary.report(engine.threads);
}
