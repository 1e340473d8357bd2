//! Throughput of the sequential reference on each generated workload, in gas per second.
//!
//! `cargo bench --bench sequential`. The parallel engine's groups join these in the
//! performance issue; until then this is the baseline they are measured against.

use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::execute_sequential;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn sequential(c: &mut Criterion) {
    let mut group = c.benchmark_group("sequential");
    group.sample_size(10);
    for kind in WorkloadKind::ALL {
        let workload = WorkloadSpec::new(kind, kind.default_txs())
            .generate()
            .expect("default workloads generate");
        let gas = execute_sequential(&workload.storage, &workload.block)
            .expect("default workloads execute")
            .gas_used();
        group.throughput(Throughput::Elements(gas));
        group.bench_function(kind.name(), |b| {
            b.iter(|| execute_sequential(&workload.storage, &workload.block))
        });
    }
    group.finish();
}

criterion_group!(benches, sequential);
criterion_main!(benches);
