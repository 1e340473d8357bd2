//! The commit frontier seen from outside: `Executor::execute_observed` reports every
//! transaction once, in block order, with the result the output holds, while the block runs;
//! a failing block reports exactly the transactions before the failing one.

use std::sync::Mutex;

use blockstm_cli::workloads::{Workload, WorkloadKind, WorkloadSpec};
use blockstm_evm::pool::PoolOptions;
use blockstm_evm::{
    BlockError, BlockOutput, ExecutionStats, Executor, Options, TxResult, execute_sequential,
};

fn forced(threads: usize) -> Options {
    Options {
        sequential_below: Some(0),
        ..Options::with_concurrency(threads)
    }
}

fn executor(workers: usize) -> Executor {
    let options = PoolOptions {
        workers_per_node: Some(workers),
        ..PoolOptions::default()
    };
    Executor::new(&options).unwrap()
}

/// What `execute_observed` returned.
type Outcome = Result<(BlockOutput, ExecutionStats), BlockError>;

/// What `execute_observed` returned, and what `on_commit` saw: (index, result) in call order.
fn observed(
    executor: &Executor,
    workload: &Workload,
    options: &Options,
) -> (Outcome, Vec<(usize, TxResult)>) {
    let seen = Mutex::new(Vec::new());
    let on_commit = |index: usize, result: &TxResult| {
        seen.lock().unwrap().push((index, result.clone()));
    };
    let outcome =
        executor.execute_observed(&workload.storage, &workload.block, options, &on_commit);
    (outcome, seen.into_inner().unwrap())
}

#[test]
fn every_transaction_is_reported_once_in_block_order_with_its_final_result() {
    let executor = executor(4);
    for (kind, hot) in [
        (WorkloadKind::Raw, None),
        (WorkloadKind::Erc20, None),
        (WorkloadKind::Amm, None),
        (WorkloadKind::Hybrid, Some(0.5)),
    ] {
        let mut spec = WorkloadSpec::new(kind, 400);
        if let Some(hot) = hot {
            spec = spec.with_hot(hot);
        }
        let workload = spec.generate().unwrap();
        let expected = execute_sequential(&workload.storage, &workload.block).unwrap();
        for threads in [2, 4] {
            let (outcome, seen) = observed(&executor, &workload, &forced(threads));
            let (output, stats) = outcome.unwrap();
            assert_eq!(output, expected, "{kind:?} at {threads} threads");
            assert!(!stats.sequential, "the engine ran");
            let indices: Vec<usize> = seen.iter().map(|(index, _)| *index).collect();
            assert_eq!(
                indices,
                (0..400).collect::<Vec<_>>(),
                "{kind:?}: in order, once each"
            );
            let results: Vec<TxResult> = seen.into_iter().map(|(_, result)| result).collect();
            assert_eq!(results, expected.results, "{kind:?}: the final results");
            assert_eq!(
                stats.commits_per_worker.iter().sum::<u64>(),
                400,
                "{kind:?}: {stats:?}"
            );
            assert_eq!(stats.commits_per_worker.len(), threads);
            let total = stats.planning + stats.setup + stats.execution;
            assert!(
                stats.first_commit <= total,
                "{kind:?}: the first commit comes during execution: {stats:?}"
            );
            assert!(
                stats.serial <= stats.total() + stats.first_commit,
                "{stats:?}"
            );
        }
    }
    // The sequential path reports the same way.
    let workload = WorkloadSpec::new(WorkloadKind::Erc20, 50)
        .generate()
        .unwrap();
    let (outcome, seen) = observed(&executor, &workload, &Options::with_concurrency(1));
    let (output, stats) = outcome.unwrap();
    assert!(stats.sequential);
    assert_eq!(
        seen.into_iter()
            .map(|(_, result)| result)
            .collect::<Vec<_>>(),
        output.results
    );
}

#[test]
fn a_failing_block_reports_the_transactions_before_the_failing_one() {
    let executor = executor(2);
    let mut workload = WorkloadSpec::new(WorkloadKind::Erc20, 300)
        .generate()
        .unwrap();
    // A nonce from the future: transaction 170 is invalid, whatever ran before it.
    workload.block.txs[170].nonce += 1_000;
    let expected = execute_sequential(&workload.storage, &workload.block).unwrap_err();
    assert_eq!(expected.index(), Some(170));
    for threads in [1, 2, 4] {
        let options = if threads == 1 {
            Options::with_concurrency(1)
        } else {
            forced(threads)
        };
        let (outcome, seen) = observed(&executor, &workload, &options);
        let error = outcome.unwrap_err();
        assert_eq!(error.to_string(), expected.to_string(), "{threads} threads");
        let indices: Vec<usize> = seen.iter().map(|(index, _)| *index).collect();
        assert_eq!(indices, (0..170).collect::<Vec<_>>(), "{threads} threads");
    }
    // The executor runs the next block as usual.
    workload.block.txs[170].nonce -= 1_000;
    let (outcome, seen) = observed(&executor, &workload, &forced(2));
    assert_eq!(
        outcome.unwrap().0,
        execute_sequential(&workload.storage, &workload.block).unwrap()
    );
    assert_eq!(seen.len(), 300);
}
