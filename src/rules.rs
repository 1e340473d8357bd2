//! What a run does with a transaction that cannot go into the block: fail the block
//! ([`execute`](crate::execute)) or leave the transaction out (the block builder).

use revm::context::result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction};
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

/// What a run does with one transaction's outcome (see [`Rules::judge`]).
#[derive(Debug)]
pub(crate) enum Verdict<E> {
    /// It goes into the block with this result (its writes are committed).
    Include(ExecutionResult<HaltReason>),
    /// It is left out and writes nothing.
    Exclude(Exclusion),
    /// The run fails at it.
    Fail(EVMError<E, InvalidTransaction>),
}

impl Rules<'_> {
    /// The verdict on transaction `index`'s outcome, in block order: the one decision the
    /// sequential path and the parallel engine's commits share.
    pub(crate) fn judge<E>(
        &self,
        index: usize,
        outcome: Result<ExecutionResult<HaltReason>, EVMError<E, InvalidTransaction>>,
    ) -> Verdict<E> {
        match outcome {
            Ok(result) if !result.is_success() && self.drops_reverted(index) => {
                Verdict::Exclude(Exclusion::Reverted(result))
            }
            Ok(result) => Verdict::Include(result),
            // revm rejected it before touching any state.
            Err(EVMError::Transaction(reason)) if self.excludes_invalid() => {
                Verdict::Exclude(Exclusion::Invalid(reason))
            }
            Err(error) => Verdict::Fail(error),
        }
    }
}

/// The included transactions' results so far, with cumulative gas counted over them alone,
/// and the excluded ones: what a run's verdicts add up to, in block order.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) results: Vec<TxResult>,
    /// `(position in the run's block, why)`, in block order.
    pub(crate) excluded: Vec<(usize, Exclusion)>,
    cumulative_gas_used: u64,
}

impl Tally {
    /// An empty tally with room for `txs` results.
    pub(crate) fn with_capacity(txs: usize) -> Self {
        Self {
            results: Vec::with_capacity(txs),
            ..Self::default()
        }
    }

    /// Adds the next included transaction's result; returns it as recorded.
    pub(crate) fn include(&mut self, result: ExecutionResult<HaltReason>) -> &TxResult {
        self.cumulative_gas_used += result.tx_gas_used();
        self.results.push(TxResult {
            result,
            cumulative_gas_used: self.cumulative_gas_used,
        });
        self.results.last().expect("just pushed")
    }

    /// Records that transaction `index` is left out, and why.
    pub(crate) fn exclude(&mut self, index: usize, why: Exclusion) {
        self.excluded.push((index, why));
    }

    /// Transactions judged so far.
    pub(crate) fn len(&self) -> usize {
        self.results.len() + self.excluded.len()
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

#[cfg(test)]
mod tests {
    use revm::context::result::ResultGas;
    use revm::primitives::Bytes;

    use super::*;

    fn reverted() -> ExecutionResult<HaltReason> {
        ExecutionResult::Revert {
            gas: ResultGas::default(),
            logs: Vec::new(),
            output: Bytes::new(),
        }
    }

    type Outcome =
        Result<ExecutionResult<HaltReason>, EVMError<std::io::Error, InvalidTransaction>>;

    fn invalid() -> Outcome {
        Err(EVMError::Transaction(InvalidTransaction::NonceTooHigh {
            tx: 2,
            state: 1,
        }))
    }

    fn ok(result: ExecutionResult<HaltReason>) -> Outcome {
        Ok(result)
    }

    fn storage_failure() -> Outcome {
        Err(EVMError::Database(std::io::Error::other("disk")))
    }

    #[test]
    fn a_block_includes_reverts_and_fails_on_invalid_while_a_build_leaves_both_out() {
        let block = Rules::Block;
        assert!(matches!(
            block.judge(0, ok(reverted())),
            Verdict::Include(_)
        ));
        assert!(matches!(
            block.judge(0, invalid()),
            Verdict::Fail(EVMError::Transaction(_))
        ));
        let drop_if_reverted = [true, false];
        let build = Rules::Build {
            drop_if_reverted: &drop_if_reverted,
        };
        assert!(matches!(
            build.judge(0, ok(reverted())),
            Verdict::Exclude(Exclusion::Reverted(_))
        ));
        assert!(matches!(
            build.judge(1, ok(reverted())),
            Verdict::Include(_)
        ));
        assert!(matches!(
            build.judge(1, invalid()),
            Verdict::Exclude(Exclusion::Invalid(InvalidTransaction::NonceTooHigh { .. }))
        ));
        // The storage failing fails any run.
        assert!(matches!(
            build.judge(1, storage_failure()),
            Verdict::Fail(EVMError::Database(_))
        ));
        let mut tally = Tally::with_capacity(2);
        tally.include(reverted());
        tally.exclude(1, Exclusion::Reverted(reverted()));
        assert_eq!(
            (tally.results.len(), tally.excluded.len(), tally.len()),
            (1, 1, 2)
        );
    }
}
