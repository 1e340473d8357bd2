//! Latency of small blocks: the persistent pool against threads spawned per block and
//! against the sequential path, on the same ERC-20 blocks of 1, 16 and 128 transactions;
//! plus the pool's bare dispatch and wake-up (an empty job on every worker).
//!
//! `cargo bench --bench pool`. Results go to `BENCHMARKS.md` (pool section).

use blockstm_evm::pool::PoolOptions;
use blockstm_evm::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::{Executor, Options, execute_sequential, execute_with_spawned_threads};
use criterion::{Criterion, criterion_group, criterion_main};

fn small_blocks(c: &mut Criterion) {
    let executor = Executor::new(&PoolOptions::default()).expect("the pool starts");
    let threads = executor.workers().min(2);
    let options = Options {
        sequential_below: 0,
        ..Options::with_concurrency(threads)
    };

    let mut dispatch = c.benchmark_group("pool_dispatch");
    dispatch.bench_function(format!("empty_job_{threads}_workers"), |b| {
        b.iter(|| executor.pool_run_empty(threads))
    });
    dispatch.finish();

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
            b.iter(|| executor.execute(storage, block, &options))
        });
        group.bench_function(format!("{txs}_txs/spawned_threads"), |b| {
            b.iter(|| execute_with_spawned_threads(storage, block, &options))
        });
    }
    group.finish();
}

criterion_group!(benches, small_blocks);
criterion_main!(benches);
