//! What the engine did for one block and where its time went: [`ExecutionStats`], returned
//! by [`Executor::execute_with_stats`](crate::Executor::execute_with_stats).
//!
//! Workers count in local variables and add their counts once, when they finish the block;
//! phases are timed by the calling thread (a handful of clock reads per block).

use std::time::Duration;

/// Statistics of one block's execution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecutionStats {
    /// Whether the block ran on the sequential path (one worker, or fewer transactions than
    /// [`Options::sequential_threshold`](crate::Options::sequential_threshold)). The phase
    /// times are then all in `execution`.
    pub sequential: bool,
    /// Whether the block ran on the sequential path because the plan from hints found it
    /// mostly one chain of dependent transactions (see `critical_path`): Block-STM would
    /// re-execute such a block transaction after transaction while occupying every worker.
    pub contained: bool,
    /// Transactions on the longest chain of dependencies that the hints predict (senders,
    /// credits, ERC-20 calldata, access lists, calls to one contract); 0 when no plan was
    /// made (blocks below the sequential threshold).
    pub critical_path: usize,
    /// Workers that ran the block.
    pub workers: usize,
    /// Incarnations executed to the end: first executions and re-executions. A block with no
    /// conflict has one per transaction.
    pub incarnations: u64,
    /// Incarnations stopped early on an aborted writer's estimate (the transaction waited
    /// for that writer, or was retried at once when the writer had already finished).
    pub suspensions: u64,
    /// Of the suspensions, first incarnations that waited for the predecessor the plan
    /// names before running at all.
    pub planned_waits: u64,
    /// Validations run.
    pub validations: u64,
    /// Validations that failed and aborted their incarnation.
    pub aborts: u64,
    /// Making the block's plan from hints (one pass over the transactions).
    pub planning: Duration,
    /// Setting up the block: location index, multi-version memory, scheduler, arenas.
    pub setup: Duration,
    /// From handing the block to the workers until the last one finished.
    pub execution: Duration,
    /// Collecting the per-transaction results in block order.
    pub results: Duration,
    /// Reading the block's state changes out of multi-version memory.
    pub assembly: Duration,
    /// Freeing the block's internal structures before returning; zero when the teardown is
    /// deferred (see `teardown_deferred`) or the block ran sequentially.
    pub teardown: Duration,
    /// Whether the teardown was left to an idle pool worker or a background thread.
    pub teardown_deferred: bool,
}

impl ExecutionStats {
    /// The time of all phases together.
    pub fn total(&self) -> Duration {
        self.planning + self.setup + self.execution + self.results + self.assembly + self.teardown
    }

    /// Incarnations per transaction in a block of `txs` transactions (1.0: no
    /// re-execution).
    pub fn incarnations_per_tx(&self, txs: usize) -> f64 {
        self.incarnations as f64 / txs.max(1) as f64
    }
}

/// What one worker counted; added into the block's total when the worker finishes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WorkerCounts {
    pub(crate) incarnations: u64,
    pub(crate) suspensions: u64,
    pub(crate) planned_waits: u64,
    pub(crate) validations: u64,
    pub(crate) aborts: u64,
}

impl WorkerCounts {
    /// Adds `other` into `self`.
    pub(crate) fn add(&mut self, other: &WorkerCounts) {
        self.incarnations += other.incarnations;
        self.suspensions += other.suspensions;
        self.planned_waits += other.planned_waits;
        self.validations += other.validations;
        self.aborts += other.aborts;
    }

    /// Copies the block's total counts into `stats`.
    pub(crate) fn record_into(&self, stats: &mut ExecutionStats) {
        stats.incarnations = self.incarnations;
        stats.suspensions = self.suspensions;
        stats.planned_waits = self.planned_waits;
        stats.validations = self.validations;
        stats.aborts = self.aborts;
    }
}
