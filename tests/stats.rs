//! `execute_with_stats`: the statistics describe what the engine did, and the output is the
//! one `execute` gives.

use blockstm_cli::workloads::{Workload, WorkloadKind, WorkloadSpec};
use blockstm_evm::{ExecutionStats, Executor, Options, execute_sequential};

fn execute_with_stats(
    storage: &blockstm_evm::InMemoryStorage,
    block: &blockstm_evm::Block,
    options: &Options,
) -> Result<(blockstm_evm::BlockOutput, ExecutionStats), blockstm_evm::BlockError> {
    Executor::global().execute_with_stats(storage, block, options)
}

fn forced(threads: usize) -> Options {
    Options {
        sequential_below: Some(0),
        ..Options::with_concurrency(threads)
    }
}

/// Runs `workload` with `execute`'s defaults at 2 workers, checks the output against the
/// sequential reference, and returns the statistics.
fn run_with_defaults(workload: &Workload) -> ExecutionStats {
    run_with(workload, &Options::with_concurrency(2))
}

/// Runs `workload` at 2 workers with the engine's size threshold alone (256 transactions,
/// no rule from declared work, so that blocks of transfers reach the plan), checks the
/// output against the sequential reference, and returns the statistics.
fn run_by_size(workload: &Workload) -> ExecutionStats {
    let by_size = Options {
        sequential_below: Some(256),
        ..Options::with_concurrency(2)
    };
    run_with(workload, &by_size)
}

fn run_with(workload: &Workload, options: &Options) -> ExecutionStats {
    let expected = execute_sequential(&workload.storage, &workload.block).unwrap();
    let (output, stats) = execute_with_stats(&workload.storage, &workload.block, options).unwrap();
    assert!(
        output == expected,
        "{} differs from sequential",
        workload.spec.kind
    );
    stats
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

#[test]
fn a_block_that_is_one_chain_is_contained_on_the_sequential_path() {
    // Each sender pays with what the previous transaction sent it.
    let workload = WorkloadSpec::new(WorkloadKind::Chain, 400)
        .generate()
        .unwrap();
    let stats = run_by_size(&workload);
    assert!(stats.contained && stats.sequential, "{stats:?}");
    assert_eq!(stats.critical_path, 400, "{stats:?}");
    assert_eq!(stats.workers, 1);

    // Forcing the engine also runs such a block in parallel.
    let expected = execute_sequential(&workload.storage, &workload.block).unwrap();
    let (output, stats) =
        execute_with_stats(&workload.storage, &workload.block, &forced(2)).unwrap();
    assert!(output == expected);
    assert!(!stats.contained && !stats.sequential, "{stats:?}");
    assert_eq!(stats.critical_path, 400);
}

#[test]
fn independent_blocks_are_not_contained_and_wait_for_no_one() {
    for kind in [WorkloadKind::Raw, WorkloadKind::Erc20] {
        let workload = WorkloadSpec::new(kind, 400).generate().unwrap();
        let stats = run_by_size(&workload);
        assert!(!stats.contained && !stats.sequential, "{kind}: {stats:?}");
        assert_eq!(stats.critical_path, 1, "{kind}: {stats:?}");
        assert_eq!(stats.planned_waits, 0, "{kind}: {stats:?}");
    }
}

#[test]
fn under_the_defaults_a_block_of_transfers_runs_sequentially_at_two_workers() {
    // Transfers only: the engine's bookkeeping would cost more than their work, so the
    // block takes the sequential path without being planned; ERC-20 calls go to the engine.
    let raw = WorkloadSpec::new(WorkloadKind::Raw, 400)
        .generate()
        .unwrap();
    let stats = run_with_defaults(&raw);
    assert!(stats.sequential && !stats.contained, "{stats:?}");
    assert_eq!(stats.planning, std::time::Duration::ZERO, "not planned");
    let erc20 = WorkloadSpec::new(WorkloadKind::Erc20, 400)
        .generate()
        .unwrap();
    let stats = run_with_defaults(&erc20);
    assert!(!stats.sequential, "{stats:?}");
}

#[test]
fn hot_swaps_wait_for_their_hinted_predecessor_instead_of_aborting() {
    // 30% of the transactions swap on one pool: a chain the plan sees, inside a block it
    // keeps parallel.
    let workload = WorkloadSpec::new(WorkloadKind::Hybrid, 600)
        .with_hot(0.3)
        .generate()
        .unwrap();
    let stats = run_with_defaults(&workload);
    assert!(!stats.contained, "{stats:?}");
    assert!(stats.critical_path > 100, "{stats:?}");
    assert!(stats.planned_waits > 0, "{stats:?}");
    assert!(stats.planned_waits <= stats.suspensions, "{stats:?}");
}
