//! The parallel engine's failure modes: storage errors and worker panics end the block with
//! an error, as sequential execution would, and leave the process usable.

mod common;

use blockstm_cli::workloads::{Workload, WorkloadKind, WorkloadSpec};
use blockstm_evm::{BlockError, Options, execute, execute_sequential};
use common::{Fault, Faulty};

fn faulty(workload: &Workload, poisoned_tx: usize, fault: Fault) -> Faulty {
    let poisoned = match workload.block.txs[poisoned_tx].kind {
        blockstm_evm::revm::primitives::TxKind::Call(to) => to,
        _ => unreachable!(),
    };
    Faulty {
        inner: workload.storage.clone(),
        poisoned,
        fault,
    }
}

fn forced(threads: usize) -> Options {
    Options {
        sequential_below: Some(0),
        ..Options::with_concurrency(threads)
    }
}

#[test]
fn a_storage_error_is_reported_at_the_lowest_failing_transaction() {
    let workload = WorkloadSpec::new(WorkloadKind::Raw, 300)
        .generate()
        .unwrap();
    for k in [0, 150, 299] {
        let storage = faulty(&workload, k, Fault::Error);
        let expected = execute_sequential(&storage, &workload.block).unwrap_err();
        assert_eq!(expected.index(), Some(k));
        for threads in [2, 4, 8] {
            let actual = execute(&storage, &workload.block, &forced(threads)).unwrap_err();
            assert!(matches!(actual, BlockError::Storage { .. }), "{actual}");
            assert_eq!(actual.to_string(), expected.to_string());
        }
    }
}

#[test]
fn a_panicking_worker_fails_the_block_and_the_next_block_runs() {
    // The panic is expected: keep its message out of the test output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"storage exploded") {
            default_hook(info);
        }
    }));
    let workload = WorkloadSpec::new(WorkloadKind::Erc20, 300)
        .generate()
        .unwrap();
    let storage = faulty(&workload, 200, Fault::Panic);
    for threads in [2, 8] {
        match execute(&storage, &workload.block, &forced(threads)) {
            Err(BlockError::WorkerPanicked { message }) => assert_eq!(message, "storage exploded"),
            other => panic!("expected a worker panic, got {other:?}"),
        }
        // The process and later blocks are fine.
        let expected = execute_sequential(&workload.storage, &workload.block).unwrap();
        let again = execute(&workload.storage, &workload.block, &forced(threads)).unwrap();
        assert!(again == expected);
    }
}
