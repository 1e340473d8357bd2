//! What an execution returns: per-transaction results and the block's net state changes.
//!
//! The sequential reference and the parallel engine build the same [`BlockOutput`], so that
//! tests compare them with `==`. The state changes are canonical (one representation per
//! outcome); they are kept in hash maps, which compare by content, because sorting a large
//! block's changes would cost more than building them. Sort the keys to print them in order.

use revm::bytecode::Bytecode;
use revm::context::result::{ExecutionResult, HaltReason, Output};
use revm::primitives::map::{AddressMap, B256Map, U256Map};
use revm::primitives::{Address, Log, U256};
use revm::state::AccountInfo;

mod bundle;
mod merge;
mod receipts;

pub use receipts::TxTypeCountMismatch;

/// The outcome of executing a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockOutput {
    /// One result per transaction, in block order.
    pub results: Vec<TxResult>,
    /// The block's net effect on state.
    pub state: StateChanges,
}

impl BlockOutput {
    /// Gas used by the whole block (the last cumulative gas, as in the header's `gasUsed`).
    pub fn gas_used(&self) -> u64 {
        self.results.last().map_or(0, |r| r.cumulative_gas_used)
    }

    /// Splits the output into its per-transaction results and its state changes, moving
    /// both (for an integrator that keeps the results for its receipts and turns the changes
    /// into a [`BundleState`](revm::database::BundleState) with
    /// [`StateChanges::into_bundle_state`]).
    ///
    /// ```
    /// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
    /// use blockstm_evm::{execute, Options};
    ///
    /// let workload = WorkloadSpec::new(WorkloadKind::Raw, 10).generate().unwrap();
    /// let output = execute(&workload.storage, &workload.block, &Options::default()).unwrap();
    /// let gas = output.gas_used();
    /// let (results, state) = output.into_parts();
    /// assert_eq!(results.len(), 10);
    /// assert_eq!(results.last().map(|r| r.cumulative_gas_used), Some(gas));
    /// let bundle = state.into_bundle_state();
    /// assert!(!bundle.state.is_empty());
    /// ```
    pub fn into_parts(self) -> (Vec<TxResult>, StateChanges) {
        (self.results, self.state)
    }
}

/// The result of one transaction: everything its receipt needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxResult {
    /// revm's result: success, revert or halt, with gas, logs and output.
    pub result: ExecutionResult<HaltReason>,
    /// Gas used by this and all earlier transactions of the block.
    pub cumulative_gas_used: u64,
}

impl TxResult {
    /// Whether the transaction succeeded (receipt status 1).
    pub fn is_success(&self) -> bool {
        self.result.is_success()
    }

    /// Gas used by this transaction, as its receipt reports it.
    pub fn gas_used(&self) -> u64 {
        self.result.tx_gas_used()
    }

    /// Logs emitted by the transaction (empty unless it succeeded).
    pub fn logs(&self) -> &[Log] {
        self.result.logs()
    }

    /// The address a contract-creating transaction created, if it succeeded.
    pub fn created_address(&self) -> Option<Address> {
        match &self.result {
            ExecutionResult::Success {
                output: Output::Create(_, address),
                ..
            } => *address,
            _ => None,
        }
    }
}

/// The net state changes of a block, relative to the storage it ran on.
///
/// An account appears when its info (balance, nonce, code hash) or any storage slot differs
/// from before the block, or when its storage was wiped (self-destruct, re-creation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateChanges {
    /// Changed accounts, by address.
    pub accounts: AddressMap<AccountChange>,
    /// Code deployed during the block (contract creation, EIP-7702 delegation), by code hash.
    pub contracts: B256Map<Bytecode>,
}

/// How one account changed over the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountChange {
    /// The account before the block (`None`: it did not exist). `code` is not set.
    pub original: Option<AccountInfo>,
    /// The account after the block (`None`: it does not exist, e.g. self-destructed or
    /// deleted as empty under EIP-161). `code` is not set: see [`StateChanges::contracts`]
    /// or the storage for the code of `code_hash`.
    pub info: Option<AccountInfo>,
    /// The account's storage was cleared during the block (self-destruct or creation): slots
    /// not listed in `storage` are zero, whatever they held before.
    pub storage_wiped: bool,
    /// Slots whose value after the block differs from before it (or, after a wipe, slots
    /// that are non-zero).
    pub storage: U256Map<SlotChange>,
}

/// One storage slot's value before and after the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotChange {
    /// Value before the block; zero when the account's storage was wiped during the block
    /// (the slot starts afresh, as in revm's `BundleState`).
    pub original: U256,
    /// Value after the block.
    pub present: U256,
}

impl StateChanges {
    /// The change of one account, if it changed.
    pub fn account(&self, address: &Address) -> Option<&AccountChange> {
        self.accounts.get(address)
    }

    /// The account's info after the block, if the block changed the account: `Some(None)`
    /// when it no longer exists, `None` when the block left it unchanged.
    pub fn info(&self, address: &Address) -> Option<Option<&AccountInfo>> {
        self.accounts
            .get(address)
            .map(|change| change.info.as_ref())
    }

    /// The slot's value after the block, if the block changed it (`None`: unchanged, or
    /// zero after a wipe).
    pub fn slot(&self, address: &Address, slot: &U256) -> Option<U256> {
        self.accounts
            .get(address)
            .and_then(|change| change.storage.get(slot))
            .map(|slot| slot.present)
    }
}
