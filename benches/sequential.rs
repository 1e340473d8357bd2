//! The sequential reference against bare revm on each generated workload (default sizes), in
//! gas per second: what building the block's output costs on one core.
//!
//! One group per workload, `sequential/<kind>`, with two functions: `revm` (bare revm over a
//! `CacheDB`, `transact_commit` per transaction, no output kept; see
//! `blockstm_cli::baselines`) and `execute_sequential` (the same work plus the block's results
//! and state changes). Both are checked to use the same gas before timing.
//!
//! `cargo bench --bench sequential`. Uses the system allocator, unlike the CLI and the gigagas
//! suite: the ratio, not the absolute figure, is what this bench is for.

use blockstm_cli::baselines;
use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::execute_sequential;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn sequential(c: &mut Criterion) {
    for kind in WorkloadKind::ALL {
        let workload = WorkloadSpec::new(kind, kind.default_txs())
            .generate()
            .expect("default workloads generate");
        let gas = execute_sequential(&workload.storage, &workload.block)
            .expect("default workloads execute")
            .gas_used();
        let revm_gas = baselines::revm_bare(&workload.storage, &workload.block)
            .expect("bare revm runs the default workloads");
        assert_eq!(revm_gas, gas, "{kind}: bare revm used other gas");
        let mut group = c.benchmark_group(format!("sequential/{kind}"));
        group.sample_size(10);
        group.throughput(Throughput::Elements(gas));
        group.bench_function("revm", |b| {
            b.iter(|| baselines::revm_bare(&workload.storage, &workload.block))
        });
        group.bench_function("execute_sequential", |b| {
            b.iter(|| execute_sequential(&workload.storage, &workload.block))
        });
        group.finish();
    }
}

criterion_group!(benches, sequential);
criterion_main!(benches);
