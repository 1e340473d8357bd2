//! The parallel engine's failure modes: storage errors and worker panics end the block with
//! an error, as sequential execution would, and leave the process usable.

use blockstm_evm::revm::DatabaseRef;
use blockstm_evm::revm::bytecode::Bytecode;
use blockstm_evm::revm::database_interface::DBErrorMarker;
use blockstm_evm::revm::primitives::{Address, B256, StorageKey, U256};
use blockstm_evm::revm::state::AccountInfo;
use blockstm_evm::workloads::{Workload, WorkloadKind, WorkloadSpec};
use blockstm_evm::{BlockError, InMemoryStorage, Options, execute, execute_sequential};

/// How [`Faulty`] storage misbehaves on its poisoned address.
#[derive(Clone, Copy)]
enum Fault {
    Error,
    Panic,
}

struct Faulty {
    inner: InMemoryStorage,
    poisoned: Address,
    fault: Fault,
}

#[derive(Debug, thiserror::Error)]
#[error("disk on fire")]
struct DiskError;
impl DBErrorMarker for DiskError {}

impl DatabaseRef for Faulty {
    type Error = DiskError;
    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, DiskError> {
        if address == self.poisoned {
            match self.fault {
                Fault::Error => return Err(DiskError),
                Fault::Panic => panic!("storage exploded"),
            }
        }
        Ok(self.inner.basic_ref(address).unwrap())
    }
    fn code_by_hash_ref(&self, hash: B256) -> Result<Bytecode, DiskError> {
        self.inner.code_by_hash_ref(hash).map_err(|_| DiskError)
    }
    fn storage_ref(&self, address: Address, key: StorageKey) -> Result<U256, DiskError> {
        Ok(self.inner.storage_ref(address, key).unwrap())
    }
    fn block_hash_ref(&self, number: u64) -> Result<B256, DiskError> {
        Ok(self.inner.block_hash_ref(number).unwrap())
    }
}

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
        sequential_below: 0,
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
