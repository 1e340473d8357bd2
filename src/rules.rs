//! What a run does with a transaction that cannot go into the block: fail the block
//! ([`execute`](crate::execute)) or leave the transaction out (the block builder).

use revm::context::result::{ExecutionResult, HaltReason, InvalidTransaction};
use revm::primitives::Address;

use crate::output::{BlockOutput, StateChanges, TxResult};

/// Why a candidate was left out of the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exclusion {
    /// revm rejected it on the state the earlier included candidates left.
    Invalid(InvalidTransaction),
    /// It reverted or halted and was to be dropped if so; the result it had.
    Reverted(ExecutionResult<HaltReason>),
    /// Its gas limit exceeds the gas left in the block.
    OverGasLimit {
        /// The candidate's gas limit.
        gas_limit: u64,
        /// Gas left when it came up.
        available: u64,
    },
    /// Its blobs' gas exceeds the blob gas left in the block.
    OverBlobGasLimit {
        /// The candidate's blob gas.
        blob_gas: u64,
        /// Blob gas left when it came up.
        available: u64,
    },
}

/// How a run treats invalid and reverted transactions.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rules<'r> {
    /// A fixed block: the lowest invalid transaction fails it; reverted ones are included.
    Block,
    /// Building: an invalid transaction, or a reverted one whose flag is set in
    /// `drop_if_reverted`, is excluded and writes nothing, so that later transactions run on
    /// the state without it.
    Build {
        /// Per transaction: leave it out if it does not succeed.
        drop_if_reverted: &'r [bool],
    },
}

impl Rules<'_> {
    /// Whether an invalid transaction is left out rather than failing the run.
    pub(crate) fn excludes_invalid(&self) -> bool {
        matches!(self, Self::Build { .. })
    }

    /// Whether transaction `tx` is left out when it reverts or halts.
    pub(crate) fn drops_reverted(&self, tx: usize) -> bool {
        match self {
            Self::Block => false,
            Self::Build { drop_if_reverted } => drop_if_reverted.get(tx).copied().unwrap_or(false),
        }
    }
}

/// Called once per included transaction, in block order, as soon as its result is final:
/// its position in the block and its result (see
/// [`Executor::execute_observed`](crate::Executor::execute_observed)).
pub(crate) type OnCommit<'a> = &'a (dyn Fn(usize, &TxResult) + Sync);

/// What a run produced: the included transactions' results (cumulative gas counted over them
/// alone), the excluded ones (always empty under [`Rules::Block`]) and the net state changes.
#[derive(Debug, Default)]
pub(crate) struct RunOutput {
    pub(crate) results: Vec<TxResult>,
    /// `(position in the run's block, why)`, in block order.
    pub(crate) excluded: Vec<(usize, Exclusion)>,
    pub(crate) state: StateChanges,
    /// Accounts absent before and after the run that it created and destroyed (their storage
    /// was wiped): not a net change, but the builder's next round must know.
    pub(crate) vanished: Vec<Address>,
}

impl RunOutput {
    /// The [`BlockOutput`] of a run under [`Rules::Block`].
    pub(crate) fn into_block_output(self) -> BlockOutput {
        debug_assert!(self.excluded.is_empty(), "a fixed block excludes nothing");
        BlockOutput {
            results: self.results,
            state: self.state,
        }
    }
}
