//! [`OverlayStorage`]: storage as a run left it, for the next run to start from.

use revm::bytecode::Bytecode;
use revm::database_interface::DatabaseRef;
use revm::primitives::{Address, B256, StorageKey, StorageValue, U256};
use revm::state::AccountInfo;

use crate::output::StateChanges;

/// A read-only view of `base` with `changes` applied: what a block that ran on `base` and
/// returned `changes` left behind. The builder runs each round over it; any caller can use it
/// to chain blocks without writing the changes back.
///
/// ```
/// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
/// use blockstm_evm::{execute_sequential, builder::OverlayStorage};
/// use blockstm_evm::revm::DatabaseRef;
///
/// let workload = WorkloadSpec::new(WorkloadKind::Raw, 10).generate().unwrap();
/// let output = execute_sequential(&workload.storage, &workload.block).unwrap();
/// let after = OverlayStorage::new(&workload.storage, &output.state);
/// let sender = workload.block.txs[0].caller;
/// assert_eq!(after.basic_ref(sender).unwrap().unwrap().nonce, 1);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct OverlayStorage<'a, S> {
    base: &'a S,
    changes: &'a StateChanges,
}

impl<'a, S> OverlayStorage<'a, S> {
    /// `base` as `changes` left it.
    pub fn new(base: &'a S, changes: &'a StateChanges) -> Self {
        Self { base, changes }
    }
}

impl<S: DatabaseRef> DatabaseRef for OverlayStorage<'_, S> {
    type Error = S::Error;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        match self.changes.accounts.get(&address) {
            // Without code: revm asks `code_by_hash_ref` for it.
            Some(change) => Ok(change.info.clone()),
            None => self.base.basic_ref(address),
        }
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        match self.changes.contracts.get(&code_hash) {
            Some(code) => Ok(code.clone()),
            None => self.base.code_by_hash_ref(code_hash),
        }
    }

    fn storage_ref(&self, address: Address, key: StorageKey) -> Result<StorageValue, Self::Error> {
        if let Some(change) = self.changes.accounts.get(&address) {
            if let Some(slot) = change.storage.get(&key) {
                return Ok(slot.present);
            }
            if change.storage_wiped {
                return Ok(U256::ZERO);
            }
        }
        self.base.storage_ref(address, key)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        self.base.block_hash_ref(number)
    }
}
