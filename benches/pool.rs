//! The worker pool's costs, each against its alternative on the same blocks:
//! - `pool_dispatch`: bare dispatch + wake-up + join of an empty job on every worker;
//! - `small_blocks`: ERC-20 blocks of 1, 16 and 128 transactions, sequential against the
//!   parallel engine on the pool and on threads spawned per block (both forced on with
//!   `sequential_below: Some(0)`), and against `execute`'s defaults (`default_options`);
//! - `teardown`: a 10,000-transaction ERC-20 block with its internal structures freed
//!   before `execute` returns (`inline`) or afterwards by an idle pool worker (`deferred`):
//!   latency to the output with a pause between blocks, and blocks back to back (where the
//!   deferred drop competes with the next block).
//!
//! `cargo bench --bench pool`. Results go to `BENCHMARKS.md` (pool section).

use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::pool::PoolOptions;
use blockstm_evm::{Executor, Options, execute_sequential};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

fn executor() -> (Executor, usize) {
    let executor = Executor::new(&PoolOptions::default()).expect("the pool starts");
    let threads = executor.workers().min(2);
    (executor, threads)
}

fn small_blocks(c: &mut Criterion) {
    let (executor, threads) = executor();
    let forced = Options {
        sequential_below: Some(0),
        ..Options::with_concurrency(threads)
    };
    let defaults = Options::with_concurrency(threads);

    let mut dispatch = c.benchmark_group("pool_dispatch");
    dispatch.bench_function(format!("empty_job_{threads}_workers"), |b| {
        b.iter(|| executor.pool_run_empty(threads))
    });
    dispatch.finish();

    let spawned = Executor::without_pool();
    let mut group = c.benchmark_group("small_blocks");
    for txs in [1, 16, 128] {
        let workload = WorkloadSpec::new(WorkloadKind::Erc20, txs)
            .generate()
            .expect("erc20 blocks generate");
        let (storage, block) = (&workload.storage, &workload.block);
        group.bench_function(format!("{txs}_txs/sequential"), |b| {
            b.iter(|| execute_sequential(storage, block))
        });
        group.bench_function(format!("{txs}_txs/pool"), |b| {
            b.iter(|| executor.execute(storage, block, &forced))
        });
        group.bench_function(format!("{txs}_txs/spawned_threads"), |b| {
            b.iter(|| spawned.execute(storage, block, &forced))
        });
        group.bench_function(format!("{txs}_txs/default_options"), |b| {
            b.iter(|| executor.execute(storage, block, &defaults))
        });
    }
    group.finish();
}

fn teardown(c: &mut Criterion) {
    let (executor, threads) = executor();
    let workload = WorkloadSpec::new(WorkloadKind::Erc20, 10_000)
        .generate()
        .expect("erc20 blocks generate");
    let (storage, block) = (&workload.storage, &workload.block);
    let mut group = c.benchmark_group("teardown_10000_erc20");
    group.sample_size(10);
    for deferred in [false, true] {
        let options = Options {
            deferred_teardown: deferred,
            ..Options::with_concurrency(threads)
        };
        let name = if deferred { "deferred" } else { "inline" };
        // Latency to the output, with a pause after each block (untimed) in which a deferred
        // teardown finishes: what a caller waiting for one block sees.
        group.bench_function(format!("{name}/latency"), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let start = Instant::now();
                    let output = executor.execute(storage, block, &options);
                    total += start.elapsed();
                    drop(output);
                    std::thread::sleep(PAUSE_BETWEEN_BLOCKS);
                }
                total
            })
        });
        // Blocks back to back: a deferred teardown competes with the next block.
        group.bench_function(format!("{name}/back_to_back"), |b| {
            b.iter(|| executor.execute(storage, block, &options))
        });
    }
    group.finish();
}

/// Long enough for an idle worker to free a 10,000-transaction block's structures.
const PAUSE_BETWEEN_BLOCKS: Duration = Duration::from_millis(50);

criterion_group!(benches, small_blocks, teardown);
criterion_main!(benches);
