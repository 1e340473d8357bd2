//! Block building: [`BlockBuilder`] takes candidate transactions as they arrive (from a
//! mempool, a bundle relay), executes them with the parallel engine while more arrive, leaves
//! out the ones that cannot go into the block, and reports each candidate's outcome as soon as
//! it is final.
//!
//! Candidates run in *rounds* on a driver thread: a round takes the candidates waiting when
//! the previous one ends (at most [`BuilderOptions::max_round`], starting from
//! [`BuilderOptions::first_round`] so that the first outcomes come early) and executes them as
//! one block over the state the earlier rounds left ([`OverlayStorage`]), with the same engine
//! and thresholds as [`execute`](crate::execute). Inside a round an excluded candidate writes
//! nothing, so Block-STM re-executes whatever read it and later candidates see the state
//! without it, exactly as a sequential builder loop would. A round's outcomes are final when
//! it ends.
//!
//! Rules, in candidate order (what a sequential builder does):
//! - a candidate whose gas limit exceeds the gas left in the block (block gas limit minus the
//!   gas used by included candidates) is excluded ([`Exclusion::OverGasLimit`]); likewise for
//!   blob gas. A round takes candidates only while their gas limits fit in the gas left, so
//!   that this check never depends on a result of the same round;
//! - a candidate that revm rejects (nonce, balance, intrinsic gas, fork rules) is excluded
//!   ([`Exclusion::Invalid`]);
//! - a candidate that reverts or halts is included, unless it was pushed with
//!   [`Candidate::drop_if_reverted`] or [`BuilderOptions::drop_reverted`] is set
//!   ([`Exclusion::Reverted`]).
//!
//! [`BlockBuilder::finish`] returns the block of included candidates and exactly the
//! [`BlockOutput`] that [`execute`](crate::execute) returns for it.

mod driver;
mod overlay;

use std::ops::Range;
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::database_interface::DatabaseRef;

use crate::block::Block;
use crate::error::BlockError;
use crate::executor::Executor;
use crate::options::Options;
use crate::output::{BlockOutput, TxResult};
pub use crate::rules::Exclusion;
use crate::sync::{Condvar, Mutex, lock, panic_text};

pub use overlay::OverlayStorage;

/// A transaction offered to the builder.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The transaction.
    pub tx: TxEnv,
    /// Leave it out if it reverts or halts (revert protection), instead of including it.
    pub drop_if_reverted: bool,
}

impl Candidate {
    /// A candidate included even if it reverts.
    pub fn new(tx: TxEnv) -> Self {
        Self {
            tx,
            drop_if_reverted: false,
        }
    }

    /// The same candidate, left out if it reverts or halts.
    pub fn drop_if_reverted(mut self) -> Self {
        self.drop_if_reverted = true;
        self
    }
}

impl From<TxEnv> for Candidate {
    fn from(tx: TxEnv) -> Self {
        Self::new(tx)
    }
}

/// A candidate's final outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It is in the block at `position`, with this result (cumulative gas over the block).
    Included {
        /// Its index among the block's transactions.
        position: usize,
        /// Its result, as [`BlockOutput::results`] will hold it.
        result: TxResult,
    },
    /// It was left out.
    Excluded(Exclusion),
}

/// One candidate's outcome, final when reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The candidate's number: the order in which it was pushed, from 0.
    pub candidate: usize,
    /// What became of it.
    pub outcome: Outcome,
}

/// How to build.
#[derive(Clone, Debug)]
pub struct BuilderOptions {
    /// Workers and thresholds for each round, as for [`execute`](crate::execute).
    pub execution: Options,
    /// Drop every candidate that reverts or halts (as if each had
    /// [`Candidate::drop_if_reverted`]).
    pub drop_reverted: bool,
    /// Blob gas the block may use; `None`: the fork's maximum (6 blobs from Cancun, 9 from
    /// Prague; unlimited before Cancun, where revm rejects blob transactions itself).
    pub max_blob_gas: Option<u64>,
    /// Candidates in the first round; each later round may take twice as many as the one
    /// before, up to `max_round`. Small first rounds give the first outcomes early.
    pub first_round: usize,
    /// The most candidates one round takes: larger rounds amortise the engine's set-up,
    /// smaller ones report outcomes sooner.
    pub max_round: usize,
}

impl Default for BuilderOptions {
    fn default() -> Self {
        Self {
            execution: Options::default(),
            drop_reverted: false,
            max_blob_gas: None,
            first_round: 64,
            max_round: 8192,
        }
    }
}

/// What [`BlockBuilder::finish`] returns.
#[derive(Clone, Debug)]
pub struct BuiltBlock {
    /// The block of included candidates, in candidate order, under the builder's environment.
    pub block: Block,
    /// Equal to what [`execute`](crate::execute) returns for `block` on the builder's storage.
    pub output: BlockOutput,
    /// The candidate number of each of `block`'s transactions.
    pub included: Vec<usize>,
    /// The candidates left out, in candidate order, with the reason.
    pub excluded: Vec<(usize, Exclusion)>,
    /// How the build went.
    pub stats: BuildStats,
}

/// How a build went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildStats {
    /// Rounds run.
    pub rounds: usize,
    /// Rounds that ran on the parallel engine (the others were small or mostly one chain).
    pub parallel_rounds: usize,
    /// Candidates in the largest round.
    pub largest_round: usize,
    /// Time spent executing rounds (the rest of the build waited for candidates).
    pub busy: Duration,
}

/// Storage a builder can own and read from its driver thread: any `DatabaseRef` that is
/// `Send + Sync + 'static` with a `Send + Sync` error (an `Arc` of a state provider, revm's
/// `CacheDB`, [`InMemoryStorage`](crate::InMemoryStorage)).
pub trait BuilderStorage:
    DatabaseRef<Error: Send + Sync + 'static> + Send + Sync + 'static
{
}

impl<S> BuilderStorage for S where
    S: DatabaseRef<Error: Send + Sync + 'static> + Send + Sync + 'static
{
}

/// Builds a block from candidates pushed while earlier ones execute. See the [module
/// docs](self) for the rules.
///
/// ```
/// use blockstm_evm::builder::{BlockBuilder, BuilderOptions, Outcome};
/// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
/// use blockstm_evm::{execute, Options};
///
/// let workload = WorkloadSpec::new(WorkloadKind::Erc20, 300).generate().unwrap();
/// let storage = std::sync::Arc::new(workload.storage);
/// let block = workload.block;
/// let options = BuilderOptions { execution: Options::with_concurrency(2), ..BuilderOptions::default() };
/// let mut builder = BlockBuilder::new(storage.clone(), block.env.clone(), block.cfg.clone(), options)?;
/// builder.extend(block.txs.iter().cloned());
/// builder.push(block.txs[0].clone()); // a replay: its nonce is used up
/// let first = builder.wait_committed();
/// assert!(matches!(first[0].outcome, Outcome::Included { position: 0, .. }));
/// let built = builder.finish()?;
/// assert_eq!(built.included.len(), 300);
/// assert_eq!(built.excluded[0].0, 300, "the replay is left out");
/// assert_eq!(built.output, execute(&*storage, &built.block, &Options::with_concurrency(2))?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BlockBuilder {
    shared: Arc<Shared>,
    driver: Option<JoinHandle<Result<driver::Finished, BlockError>>>,
    env: BlockEnv,
    cfg: CfgEnv,
    /// Candidates pushed so far.
    pushed: usize,
    /// Decisions handed out by `committed` so far.
    delivered: usize,
}

impl std::fmt::Debug for BlockBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockBuilder")
            .field("pushed", &self.pushed)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl BlockBuilder {
    /// A builder for a block with header fields `env` and chain configuration `cfg` over
    /// `storage` (the state before the block; share it with an `Arc`), executing on the
    /// process-wide [`Executor`]. Fails only if its driver thread cannot start.
    pub fn new<S>(
        storage: S,
        env: BlockEnv,
        cfg: CfgEnv,
        options: BuilderOptions,
    ) -> std::io::Result<Self>
    where
        S: BuilderStorage,
    {
        Self::start(None, storage, env, cfg, options)
    }

    /// [`BlockBuilder::new`] on `executor`'s pool.
    pub fn on_executor<S>(
        executor: Arc<Executor>,
        storage: S,
        env: BlockEnv,
        cfg: CfgEnv,
        options: BuilderOptions,
    ) -> std::io::Result<Self>
    where
        S: BuilderStorage,
    {
        Self::start(Some(executor), storage, env, cfg, options)
    }

    fn start<S>(
        executor: Option<Arc<Executor>>,
        storage: S,
        env: BlockEnv,
        cfg: CfgEnv,
        options: BuilderOptions,
    ) -> std::io::Result<Self>
    where
        S: BuilderStorage,
    {
        let shared = Arc::new(Shared::default());
        let driver = driver::Driver {
            shared: shared.clone(),
            executor,
            storage,
            env: env.clone(),
            cfg: cfg.clone(),
            options,
        };
        let driver = std::thread::Builder::new()
            .name("blockstm-builder".to_owned())
            .spawn(move || driver.run())?;
        Ok(Self {
            shared,
            driver: Some(driver),
            env,
            cfg,
            pushed: 0,
            delivered: 0,
        })
    }

    /// Offers one candidate; returns its number. It runs in the next round (at once if the
    /// driver is idle).
    pub fn push(&mut self, candidate: impl Into<Candidate>) -> usize {
        self.extend(std::iter::once(candidate)).start
    }

    /// Offers candidates in order; returns their numbers.
    pub fn extend<C: Into<Candidate>>(
        &mut self,
        candidates: impl IntoIterator<Item = C>,
    ) -> Range<usize> {
        let first = self.pushed;
        let candidates = candidates.into_iter();
        let mut inbox = lock(&self.shared.inbox);
        inbox.pending.reserve(candidates.size_hint().0);
        for candidate in candidates {
            inbox.pending.push_back((self.pushed, candidate.into()));
            self.pushed += 1;
            // Let an idle driver start on the first ones while the rest are queued.
            if (self.pushed - first).is_multiple_of(EXTEND_CHUNK) {
                drop(inbox);
                self.shared.arrived.notify_one();
                inbox = lock(&self.shared.inbox);
            }
        }
        drop(inbox);
        self.shared.arrived.notify_one();
        first..self.pushed
    }

    /// Candidates pushed so far.
    pub fn pushed(&self) -> usize {
        self.pushed
    }

    /// The decisions made since the last call, in candidate order, without waiting: together,
    /// the calls yield the prefix of candidates whose outcome can no longer change.
    pub fn committed(&mut self) -> Vec<Decision> {
        let shared = self.shared.clone();
        let log = lock(&shared.log);
        take_new(&mut self.delivered, &log)
    }

    /// Like [`committed`](Self::committed), but waits until there is at least one new
    /// decision; returns empty only when every candidate pushed so far is decided or the
    /// build failed ([`finish`](Self::finish) then says why).
    pub fn wait_committed(&mut self) -> Vec<Decision> {
        let shared = self.shared.clone();
        let mut log = lock(&shared.log);
        while log.decisions.len() == self.delivered && self.delivered < self.pushed && !log.stopped
        {
            log = shared
                .decided
                .wait(log)
                .unwrap_or_else(PoisonError::into_inner);
        }
        take_new(&mut self.delivered, &log)
    }

    /// Waits for every pushed candidate's outcome and returns the block. Fails with the
    /// error of the first round that failed (storage, header, worker panic); its `index` is
    /// then a candidate number.
    pub fn finish(mut self) -> Result<BuiltBlock, BlockError> {
        lock(&self.shared.inbox).closed = true;
        self.shared.arrived.notify_one();
        let driver = self.driver.take().expect("finish runs once");
        let finished = match driver.join() {
            Ok(finished) => finished?,
            Err(payload) => {
                return Err(BlockError::WorkerPanicked {
                    message: panic_text(payload.as_ref()),
                });
            }
        };
        let decisions = std::mem::take(&mut lock(&self.shared.log).decisions);
        let mut results = Vec::with_capacity(finished.txs.len());
        let mut included = Vec::with_capacity(finished.txs.len());
        let mut excluded = Vec::new();
        for decision in decisions {
            match decision.outcome {
                Outcome::Included { result, .. } => {
                    results.push(result);
                    included.push(decision.candidate);
                }
                Outcome::Excluded(reason) => excluded.push((decision.candidate, reason)),
            }
        }
        Ok(BuiltBlock {
            block: Block {
                env: std::mem::take(&mut self.env),
                cfg: self.cfg.clone(),
                txs: finished.txs,
            },
            output: BlockOutput {
                results,
                state: finished.state,
            },
            included,
            excluded,
            stats: finished.stats,
        })
    }
}

impl Drop for BlockBuilder {
    /// A builder dropped unfinished stops after its current round.
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            let mut inbox = lock(&self.shared.inbox);
            inbox.closed = true;
            inbox.pending.clear();
            drop(inbox);
            self.shared.arrived.notify_one();
            let _ = driver.join();
        }
    }
}

/// Candidates `extend` queues before it lets the driver see them.
const EXTEND_CHUNK: usize = 64;

/// What the caller and the driver share.
#[derive(Default)]
struct Shared {
    inbox: Mutex<Inbox>,
    /// Signalled when candidates arrive or the inbox closes.
    arrived: Condvar,
    log: Mutex<Log>,
    /// Signalled when decisions are added or the driver stops.
    decided: Condvar,
}

/// Candidates waiting for a round.
#[derive(Default)]
struct Inbox {
    pending: std::collections::VecDeque<(usize, Candidate)>,
    /// No more candidates will come: the driver finishes the pending ones and stops.
    closed: bool,
}

/// Every decision so far, in candidate order.
#[derive(Default)]
struct Log {
    decisions: Vec<Decision>,
    /// The driver has stopped (finished or failed).
    stopped: bool,
}

/// The decisions after the first `delivered`, which then counts them too.
fn take_new(delivered: &mut usize, log: &Log) -> Vec<Decision> {
    let new = log.decisions[*delivered..].to_vec();
    *delivered = log.decisions.len();
    new
}
