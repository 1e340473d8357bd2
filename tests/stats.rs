//! `execute_with_stats`: the statistics describe what the engine did, and the output is the
//! one `execute` gives.

use blockstm_evm::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::{Options, execute_sequential, execute_with_stats};

fn forced(threads: usize) -> Options {
    Options {
        sequential_below: Some(0),
        ..Options::with_concurrency(threads)
    }
}

/// Every transaction has one finished execution per incarnation number; a new number comes
/// from an abort or from a suspension the scheduler accepted (a refused one re-executes the
/// same incarnation). So `txs + aborts <= incarnations <= txs + aborts + suspensions`.
fn assert_counts_are_consistent(kind: WorkloadKind, txs: usize, threads: usize) {
    let workload = WorkloadSpec::new(kind, txs).generate().unwrap();
    let expected = execute_sequential(&workload.storage, &workload.block).unwrap();
    let (output, stats) =
        execute_with_stats(&workload.storage, &workload.block, &forced(threads)).unwrap();
    assert!(output == expected, "{kind} differs from sequential");
    assert!(!stats.sequential, "{stats:?}");
    assert_eq!(stats.workers, threads);
    let txs = txs as u64;
    assert!(
        txs + stats.aborts <= stats.incarnations
            && stats.incarnations <= txs + stats.aborts + stats.suspensions,
        "{kind}: {stats:?}"
    );
    assert!(
        stats.validations >= txs,
        "every transaction is validated at least once: {stats:?}"
    );
    assert!(stats.aborts <= stats.validations, "{stats:?}");
    assert!(stats.execution > std::time::Duration::ZERO, "{stats:?}");
    assert!(stats.total() >= stats.execution);
}

#[test]
fn counts_are_consistent_on_independent_and_dependent_blocks() {
    for threads in [2, 4] {
        assert_counts_are_consistent(WorkloadKind::Raw, 300, threads);
        assert_counts_are_consistent(WorkloadKind::Hybrid, 200, threads);
        assert_counts_are_consistent(WorkloadKind::Chain, 200, threads);
    }
}

#[test]
fn a_small_block_runs_sequentially_and_says_so() {
    let workload = WorkloadSpec::new(WorkloadKind::Erc20, 3)
        .generate()
        .unwrap();
    let (output, stats) = execute_with_stats(
        &workload.storage,
        &workload.block,
        &Options::with_concurrency(2),
    )
    .unwrap();
    assert_eq!(
        output,
        execute_sequential(&workload.storage, &workload.block).unwrap()
    );
    assert!(stats.sequential, "{stats:?}");
    assert_eq!((stats.workers, stats.incarnations, stats.aborts), (1, 3, 0));
}

#[test]
fn a_large_blocks_teardown_is_deferred_unless_asked_not_to() {
    let workload = WorkloadSpec::new(WorkloadKind::Raw, 1_200)
        .generate()
        .unwrap();
    let (_, deferred) = execute_with_stats(&workload.storage, &workload.block, &forced(2)).unwrap();
    assert!(deferred.teardown_deferred, "{deferred:?}");
    assert_eq!(deferred.teardown, std::time::Duration::ZERO);
    let inline = Options {
        deferred_teardown: false,
        ..forced(2)
    };
    let (_, stats) = execute_with_stats(&workload.storage, &workload.block, &inline).unwrap();
    assert!(!stats.teardown_deferred, "{stats:?}");
}
