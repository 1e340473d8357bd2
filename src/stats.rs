//! What the engine did for one block and where its time went: [`ExecutionStats`], returned
//! by [`Executor::execute_with_stats`](crate::Executor::execute_with_stats).
//!
//! Workers count in local variables and add their counts once, when they finish the block;
//! phases are timed by the calling thread (a handful of clock reads per block).

use std::time::{Duration, Instant};

/// Statistics of one block's execution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecutionStats {
    /// Whether the block ran on the sequential path (one worker, or a block that
    /// [`Options::runs_in_parallel`](crate::Options::runs_in_parallel) keeps off the engine).
    /// The phase times are then all in `execution`.
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
    /// Making the block's plan from hints (one pass over the transactions), on the caller
    /// before the workers start: the whole plan of a small block, the prefix of a large one
    /// (whose rest a worker plans during `execution`).
    pub planning: Duration,
    /// Setting up the block: location index, multi-version memory, scheduler, arenas.
    pub setup: Duration,
    /// From handing the block to the workers until the last one finished.
    pub execution: Duration,
    /// After execution, handing over the results that the commits collected in block order
    /// (each transaction's result is fixed when it commits, during execution).
    pub results: Duration,
    /// After execution, settling the state that the commits folded (during execution) into
    /// the block's net changes: dropping what ended where it began.
    pub assembly: Duration,
    /// Freeing the block's internal structures before returning; zero when the teardown is
    /// deferred (see `teardown_deferred`) or the block ran sequentially.
    pub teardown: Duration,
    /// Whether the teardown was left to an idle pool worker or a background thread.
    pub teardown_deferred: bool,
    /// Transactions each worker committed (workers in the order they finished). Commits
    /// happen between tasks, on whichever worker finds the frontier's transaction ready.
    pub commits_per_worker: Vec<u64>,
    /// From the call until the first transaction committed.
    pub first_commit: Duration,
    /// How far the commit frontier trails execution: the mean time from the end of a
    /// committed incarnation to its commit.
    pub commit_lag: Duration,
    /// Wall time in which not every worker could work: from the call until the last worker
    /// took its first task, plus from the last commit until the call returned.
    pub serial: Duration,
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

/// What one worker counted; handed in when the worker finishes the block.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WorkerCounts {
    pub(crate) incarnations: u64,
    pub(crate) suspensions: u64,
    pub(crate) planned_waits: u64,
    pub(crate) validations: u64,
    pub(crate) aborts: u64,
    pub(crate) commits: u64,
    /// When the worker took its first task.
    pub(crate) first_task: Option<Instant>,
}

impl WorkerCounts {
    /// Copies the block's total counts over `workers` into `stats`; returns when the last
    /// worker to start took its first task.
    pub(crate) fn record_into(
        workers: &[WorkerCounts],
        stats: &mut ExecutionStats,
    ) -> Option<Instant> {
        for counts in workers {
            stats.incarnations += counts.incarnations;
            stats.suspensions += counts.suspensions;
            stats.planned_waits += counts.planned_waits;
            stats.validations += counts.validations;
            stats.aborts += counts.aborts;
        }
        stats.commits_per_worker = workers.iter().map(|counts| counts.commits).collect();
        workers.iter().filter_map(|counts| counts.first_task).max()
    }
}
