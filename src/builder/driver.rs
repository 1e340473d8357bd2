//! The builder's driver thread: takes rounds of candidates from the inbox, runs each as a
//! block over the state the earlier rounds left, and publishes the outcomes in order.

use std::sync::Arc;
use std::time::Instant;

use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::primitives::eip4844::{
    GAS_PER_BLOB, MAX_BLOB_GAS_PER_BLOCK_CANCUN, MAX_BLOB_GAS_PER_BLOCK_PRAGUE,
};
use revm::primitives::hardfork::SpecId;

use super::{
    BuildStats, BuilderOptions, BuilderStorage, Decision, Exclusion, Outcome, Shared, lock,
};
use crate::block::Block;
use crate::error::BlockError;
use crate::executor::Executor;
use crate::options::Options;
use crate::output::{StateChanges, TxResult};
use crate::rules::{Rules, RunOutput};

use super::overlay::OverlayStorage;

/// The driver's inputs, moved onto its thread.
pub(super) struct Driver<S> {
    pub(super) shared: Arc<Shared>,
    pub(super) executor: Option<Arc<Executor>>,
    pub(super) storage: S,
    pub(super) env: BlockEnv,
    pub(super) cfg: CfgEnv,
    pub(super) options: BuilderOptions,
}

/// What the driver hands back when the inbox is closed and empty.
pub(super) struct Finished {
    /// The included transactions, in order.
    pub(super) txs: Vec<TxEnv>,
    /// Net changes over all rounds.
    pub(super) state: StateChanges,
    pub(super) stats: BuildStats,
}

/// One candidate of a round: run it, or already excluded by the gas rules.
enum Entry {
    Run,
    Excluded(Exclusion),
}

/// The candidates one round takes.
struct Round {
    /// The transactions to run, in candidate order.
    txs: Vec<TxEnv>,
    /// Per transaction: leave it out if it reverts.
    drop_if_reverted: Vec<bool>,
    /// Per transaction: its candidate number.
    numbers: Vec<usize>,
    /// Every candidate taken, run or already excluded, in order.
    entries: Vec<(usize, Entry)>,
    /// Candidates still waiting after this round's.
    waiting: usize,
}

/// The block's gas so far.
struct GasUsed {
    gas: u64,
    blob_gas: u64,
}

impl<S: BuilderStorage> Driver<S> {
    pub(super) fn run(self) -> Result<Finished, BlockError> {
        // Wakes `wait_committed` callers however the driver ends, panics included.
        let _stopped = StopOnDrop(&self.shared);
        self.rounds()
    }

    fn rounds(&self) -> Result<Finished, BlockError> {
        let executor = match &self.executor {
            Some(executor) => &**executor,
            None => Executor::global(),
        };
        let max_blob_gas = self
            .options
            .max_blob_gas
            .unwrap_or_else(|| default_max_blob_gas(self.cfg.spec));
        let mut state = StateChanges::default();
        let mut txs = Vec::new();
        let mut used = GasUsed {
            gas: 0,
            blob_gas: 0,
        };
        let mut stats = BuildStats::default();
        let mut round_size = self.options.first_round.max(1);
        // A round's structures are freed before its outcomes are published: deferred to a
        // pool worker, their freeing would hold that worker while the next round waits.
        let execution = Options {
            deferred_teardown: false,
            ..self.options.execution.clone()
        };
        while let Some(Round {
            txs: round_txs,
            drop_if_reverted,
            numbers,
            entries,
            waiting,
        }) = self.next_round(round_size, &used, max_blob_gas)
        {
            let started = Instant::now();
            stats.rounds += 1;
            stats.largest_round = stats.largest_round.max(entries.len());
            let block = Block {
                env: self.env.clone(),
                cfg: self.cfg.clone(),
                txs: round_txs,
            };
            let run = if block.txs.is_empty() {
                None
            } else {
                let overlay = OverlayStorage::new(&self.storage, &state);
                let rules = Rules::Build {
                    drop_if_reverted: &drop_if_reverted,
                };
                let (run, run_stats) = executor
                    .run(&overlay, &block, &execution, rules, None)
                    .map_err(|error| error.with_index(|position| numbers[position]))?;
                if !run_stats.sequential {
                    stats.parallel_rounds += 1;
                }
                Some(run)
            };
            let mut decisions = Vec::with_capacity(entries.len());
            let mut ran = block.txs.into_iter().enumerate();
            let RunOutput {
                results,
                excluded,
                state: round_state,
                vanished,
            } = run.unwrap_or_default();
            let mut results = results.into_iter();
            let mut excluded = excluded.into_iter().peekable();
            let gas_before = used.gas;
            for (candidate, entry) in entries {
                let outcome = match entry {
                    // Decided at the round's start; the gas left is reported as of its turn.
                    Entry::Excluded(Exclusion::OverGasLimit { gas_limit, .. }) => {
                        Outcome::Excluded(Exclusion::OverGasLimit {
                            gas_limit,
                            available: self.env.gas_limit.saturating_sub(used.gas),
                        })
                    }
                    Entry::Excluded(Exclusion::OverBlobGasLimit { blob_gas, .. }) => {
                        Outcome::Excluded(Exclusion::OverBlobGasLimit {
                            blob_gas,
                            available: max_blob_gas.saturating_sub(used.blob_gas),
                        })
                    }
                    Entry::Excluded(reason) => Outcome::Excluded(reason),
                    Entry::Run => {
                        let (position, tx) = ran.next().expect("one run per entry");
                        match excluded.next_if(|(at, _)| *at == position) {
                            Some((_, reason)) => Outcome::Excluded(reason),
                            None => {
                                let result = results.next().expect("a result per included");
                                used.gas = gas_before + result.cumulative_gas_used;
                                used.blob_gas += blob_gas(&tx);
                                txs.push(tx);
                                Outcome::Included {
                                    position: txs.len() - 1,
                                    result: TxResult {
                                        cumulative_gas_used: used.gas,
                                        ..result
                                    },
                                }
                            }
                        }
                    }
                };
                decisions.push(Decision { candidate, outcome });
            }
            // Room for this round's accounts and, at about two per candidate, those of the
            // candidates already waiting: the map then grows (and moves its entries) about
            // once per burst of arrivals instead of at every round.
            let needed = state.accounts.len() + round_state.accounts.len();
            if needed > state.accounts.capacity() {
                state
                    .accounts
                    .reserve(round_state.accounts.len() + waiting * ACCOUNTS_PER_CANDIDATE);
            }
            state.append_accounts(round_state, &vanished);
            stats.busy += started.elapsed();
            {
                let mut log = lock(&self.shared.log);
                log.decisions.reserve(decisions.len() + waiting);
                log.decisions.extend(decisions);
            }
            self.shared.decided.notify_all();
            round_size = round_size
                .saturating_mul(2)
                .min(self.options.max_round.max(1));
        }
        state.retain_changed();
        Ok(Finished { txs, state, stats })
    }

    /// Waits for candidates and takes the next round: up to `round_size` candidates whose gas
    /// limits all fit in the gas left, plus those before them that cannot fit at all
    /// (excluded). `None` once the inbox is closed and empty.
    fn next_round(&self, round_size: usize, used: &GasUsed, max_blob_gas: u64) -> Option<Round> {
        let mut inbox = lock(&self.shared.inbox);
        while inbox.pending.is_empty() && !inbox.closed {
            inbox = self
                .shared
                .arrived
                .wait(inbox)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if inbox.pending.is_empty() {
            return None;
        }
        let available = self.env.gas_limit.saturating_sub(used.gas);
        let blob_available = max_blob_gas.saturating_sub(used.blob_gas);
        let (mut planned, mut planned_blob) = (0u64, 0u64);
        let expected = round_size.min(inbox.pending.len());
        let mut round = Round {
            txs: Vec::with_capacity(expected),
            drop_if_reverted: Vec::with_capacity(expected),
            numbers: Vec::with_capacity(expected),
            entries: Vec::with_capacity(expected),
            waiting: 0,
        };
        while round.txs.len() < round_size {
            let Some((_, front)) = inbox.pending.front() else {
                break;
            };
            let gas_limit = front.tx.gas_limit;
            let blob = blob_gas(&front.tx);
            let entry = if gas_limit > available {
                Entry::Excluded(Exclusion::OverGasLimit {
                    gas_limit,
                    available,
                })
            } else if blob > blob_available {
                Entry::Excluded(Exclusion::OverBlobGasLimit {
                    blob_gas: blob,
                    available: blob_available,
                })
            } else if planned.saturating_add(gas_limit) > available
                || planned_blob.saturating_add(blob) > blob_available
            {
                // Whether it fits depends on this round's results: it waits for the next.
                break;
            } else {
                planned += gas_limit;
                planned_blob += blob;
                Entry::Run
            };
            let (number, candidate) = inbox.pending.pop_front().expect("front exists");
            if matches!(entry, Entry::Run) {
                round.txs.push(candidate.tx);
                round.numbers.push(number);
                round
                    .drop_if_reverted
                    .push(candidate.drop_if_reverted || self.options.drop_reverted);
            }
            round.entries.push((number, entry));
        }
        round.waiting = inbox.pending.len();
        Some(round)
    }
}

/// Accounts a candidate changes, for sizing the block's account map ahead (sender,
/// recipient and sometimes a third; the beneficiary is shared).
const ACCOUNTS_PER_CANDIDATE: usize = 2;

/// Gas of the transaction's blobs.
fn blob_gas(tx: &TxEnv) -> u64 {
    GAS_PER_BLOB * tx.blob_hashes.len() as u64
}

/// The most blob gas a block of fork `spec` may use (mainnet's blob schedule).
fn default_max_blob_gas(spec: SpecId) -> u64 {
    if spec.is_enabled_in(SpecId::PRAGUE) {
        MAX_BLOB_GAS_PER_BLOCK_PRAGUE
    } else if spec.is_enabled_in(SpecId::CANCUN) {
        MAX_BLOB_GAS_PER_BLOCK_CANCUN
    } else {
        u64::MAX
    }
}

/// Marks the log stopped and wakes its waiters when dropped.
struct StopOnDrop<'a>(&'a Shared);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        lock(&self.0.log).stopped = true;
        self.0.decided.notify_all();
    }
}
