//! The committed prefix of a block: each transaction's result, fixed when the commit
//! frontier passes it, in block order, with cumulative gas (or the error that fails the
//! block), and the state its writes leave (`fold`). Only the worker holding the scheduler's
//! commit lock appends to it.

use std::time::{Duration, Instant};

use revm::context::result::{EVMError, InvalidTransaction};
use revm::database_interface::DatabaseRef;

use super::fold::CommittedState;
use crate::error::BlockError;
use crate::rules::{Rules, Tally, Verdict};
use crate::types::TxIdx;
use crate::vm::{BlockContext, ExecutedTx};

/// What the commits of one block produced so far.
pub(super) struct CommitLog {
    /// Included transactions' results and excluded ones, in block order.
    pub(super) tally: Tally,
    /// The state the committed transactions' writes leave.
    pub(super) state: CommittedState,
    /// The committed transaction that fails the block (under [`Rules::Block`], an invalid
    /// one; under any rules, a storage error): the lowest one, since commits are in order.
    pub(super) failure: Option<BlockError>,
    /// When the first transaction committed, and when the last run of commits ended.
    pub(super) first: Option<Instant>,
    pub(super) last: Option<Instant>,
    /// Summed over commits: from the end of the committed incarnation to its commit.
    pub(super) lag: Duration,
}

impl CommitLog {
    /// An empty log for a block of `txs` transactions that writes about `expected_accounts`
    /// accounts.
    pub(super) fn new(txs: usize, expected_accounts: usize) -> Self {
        Self {
            tally: Tally::with_capacity(txs),
            state: CommittedState::new(expected_accounts),
            failure: None,
            first: None,
            last: None,
            lag: Duration::ZERO,
        }
    }

    /// Adds transaction `index`'s committed output, which its incarnation produced at
    /// `finished` (committed at `now`), as `rules` judge it. Returns whether it is included
    /// (its result is the last of the tally's); when it fails the block, `failure` says so.
    pub(super) fn add<E: std::error::Error + Send + Sync + 'static>(
        &mut self,
        index: usize,
        output: Result<ExecutedTx, EVMError<E, InvalidTransaction>>,
        rules: Rules<'_>,
        finished: Instant,
        now: Instant,
    ) -> bool {
        self.first.get_or_insert(now);
        self.lag += now.saturating_duration_since(finished);
        match rules.judge(index, output) {
            Verdict::Include(result) => {
                self.tally.include(result);
                true
            }
            Verdict::Exclude(why) => {
                self.tally.exclude(index, why);
                false
            }
            Verdict::Fail(error) => {
                self.failure = Some(BlockError::from_evm(index, error));
                false
            }
        }
    }

    /// Folds the writes of `tx`, just added, into the committed state, unless the block
    /// failed; a storage failure while folding fails the block at `tx`.
    pub(super) fn fold<S>(&mut self, tx: TxIdx, context: &BlockContext<'_, S>)
    where
        S: DatabaseRef,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        if self.failure.is_some() {
            return;
        }
        if let Err(error) = self.state.fold(tx, context) {
            self.failure = Some(BlockError::storage(tx as usize, error));
        }
    }

    /// The mean time from a committed incarnation's end to its commit.
    pub(super) fn mean_lag(&self) -> Duration {
        // Every commit added one entry: a result, an exclusion or the failure.
        let commits = self.tally.len() + usize::from(self.failure.is_some());
        self.lag / commits.max(1) as u32
    }
}
