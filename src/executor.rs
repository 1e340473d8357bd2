//! [`Executor`]: the engine with its persistent worker pool, built once and reused for every
//! block. The free [`execute`](crate::execute) uses a process-wide default built on first use.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use bumpalo::Bump;
use revm::database_interface::DatabaseRef;

use crate::block::Block;
use crate::error::BlockError;
use crate::output::BlockOutput;
use crate::parallel::{Options, execute_on};
use crate::pool::{PoolOptions, PoolPlan, WorkerPool};
use crate::stats::ExecutionStats;
use crate::vm::VmBuffers;

/// A parallel executor with its own worker pool (see [`crate::pool`]).
///
/// ```
/// use blockstm_evm::{Executor, Options, execute_sequential, pool::PoolOptions};
/// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
///
/// let executor = Executor::new(&PoolOptions { workers_per_node: Some(2), ..PoolOptions::default() })?;
/// let workload = WorkloadSpec::new(WorkloadKind::Erc20, 100).generate().unwrap();
/// for _ in 0..3 {
///     let output = executor.execute(&workload.storage, &workload.block, &Options::default())?;
///     assert_eq!(output, execute_sequential(&workload.storage, &workload.block)?);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Executor {
    pub(crate) pool: WorkerPool,
    /// Worker `i`'s arena and buffers, kept across blocks (their memory stays on `i`'s node).
    states: Mutex<Vec<WorkerState>>,
    /// Locations the last block met during execution (beyond those its plan predicted), per
    /// 100 transactions, plus one (zero: no block yet). Sizes the next block's location table:
    /// consecutive blocks of a chain are alike.
    unpredicted_per_100_txs: AtomicUsize,
}

impl Executor {
    /// Builds the pool: workers placed by the hwloc topology (`hwloc` feature) or one node of
    /// `available_parallelism` threads, per `options`. Fails only if a thread cannot start.
    pub fn new(options: &PoolOptions) -> std::io::Result<Self> {
        Self::with_plan(PoolPlan::detect(options))
    }

    /// Builds the pool for an explicit plan.
    pub fn with_plan(plan: PoolPlan) -> std::io::Result<Self> {
        let pool = WorkerPool::new(plan)?;
        let states = (0..pool.workers())
            .map(|_| WorkerState::default())
            .collect();
        Ok(Self {
            pool,
            states: Mutex::new(states),
            unpredicted_per_100_txs: AtomicUsize::new(0),
        })
    }

    /// The process-wide executor that [`execute`](crate::execute) uses, built on first use
    /// with default [`PoolOptions`]; `None` if its threads could not start (blocks then run
    /// on threads spawned per block).
    pub fn global() -> Option<&'static Executor> {
        static GLOBAL: OnceLock<Option<Executor>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| match Executor::new(&PoolOptions::default()) {
                Ok(executor) => Some(executor),
                Err(error) => {
                    tracing::warn!(%error, "no worker pool; blocks spawn their own threads");
                    None
                }
            })
            .as_ref()
    }

    /// Executes `block` on this executor's pool, as [`execute`](crate::execute) does.
    /// `options.concurrency` above the pool's size runs on threads spawned for the block.
    pub fn execute<S>(
        &self,
        storage: &S,
        block: &Block,
        options: &Options,
    ) -> Result<BlockOutput, BlockError>
    where
        S: DatabaseRef + Sync,
    {
        execute_on(Some(self), storage, block, options).map(|(output, _)| output)
    }

    /// Executes `block` like [`Executor::execute`] and also returns the block's
    /// [`ExecutionStats`].
    pub fn execute_with_stats<S>(
        &self,
        storage: &S,
        block: &Block,
        options: &Options,
    ) -> Result<(BlockOutput, ExecutionStats), BlockError>
    where
        S: DatabaseRef + Sync,
    {
        execute_on(Some(self), storage, block, options)
    }

    /// Number of pool workers.
    pub fn workers(&self) -> usize {
        self.pool.workers()
    }

    /// The pool's layout.
    pub fn plan(&self) -> &PoolPlan {
        self.pool.plan()
    }

    /// Dispatches an empty job to `workers` pool workers and waits for them: the pool's bare
    /// dispatch and wake-up cost, for benchmarks.
    pub fn pool_run_empty(&self, workers: usize) {
        let _ = self.pool.run(workers, &|_| {});
    }

    /// How many locations a block of `txs` transactions is expected to meet during execution,
    /// from the last block's density (`None` before the first block).
    pub(crate) fn expected_unpredicted(&self, txs: usize) -> Option<usize> {
        match self.unpredicted_per_100_txs.load(Ordering::Relaxed) {
            0 => None,
            density => Some(txs.saturating_mul(density - 1) / 100),
        }
    }

    /// Records how many locations a block of `txs` transactions met during execution.
    pub(crate) fn record_unpredicted(&self, txs: usize, unpredicted: usize) {
        let density = unpredicted.saturating_mul(100) / txs.max(1);
        self.unpredicted_per_100_txs
            .store(density.saturating_add(1), Ordering::Relaxed);
    }

    /// The first `count` workers' states, their arenas reset (a concurrent block gets fresh
    /// ones).
    pub(crate) fn take_worker_states(&self, count: usize) -> Vec<WorkerState> {
        let mut kept = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        (0..count)
            .map(|i| match kept.get_mut(i) {
                Some(state) => {
                    let mut state = std::mem::take(state);
                    state.arena.reset();
                    state
                }
                None => WorkerState::default(),
            })
            .collect()
    }

    /// Gives the workers' states back for the next block.
    pub(crate) fn return_worker_states(&self, states: Vec<WorkerState>) {
        let mut kept = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        for (slot, state) in kept.iter_mut().zip(states) {
            *slot = state;
        }
    }
}

/// What a pool worker keeps from one block to the next: its read-set arena and the VM's
/// buffers, allocated by the worker itself (so on its node) and reused, not reallocated.
#[derive(Default)]
pub(crate) struct WorkerState {
    pub(crate) arena: Bump,
    pub(crate) buffers: VmBuffers,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::topology::fallback;
    use crate::storage::InMemoryStorage;
    use crate::test_blocks;

    fn two_workers() -> Executor {
        let options = PoolOptions {
            workers_per_node: Some(2),
            ..PoolOptions::default()
        };
        Executor::with_plan(fallback(&options, "test".to_owned())).unwrap()
    }

    /// Runs `(storage, block)` on `executor` with the engine forced on, and checks its output
    /// against the sequential one.
    fn run_forced_and_compare(executor: &Executor, (storage, block): (InMemoryStorage, Block)) {
        let forced = Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(2)
        };
        let output = executor.execute(&storage, &block, &forced).unwrap();
        assert_eq!(output, crate::execute_sequential(&storage, &block).unwrap());
    }

    #[test]
    fn vm_buffers_are_kept_empty_with_their_capacity_across_blocks() {
        let executor = two_workers();
        run_forced_and_compare(&executor, test_blocks::slot_writers(64));
        let states = executor.take_worker_states(2);
        assert!(states.iter().all(|state| state.buffers.is_empty()));
        // Which workers executed depends on the schedule; at least one did.
        assert!(
            states.iter().any(|state| state.buffers.has_capacity()),
            "a worker kept its buffers' allocations"
        );
    }

    #[test]
    fn the_location_hint_follows_the_last_block_and_a_wrong_one_costs_only_time() {
        let executor = two_workers();
        assert_eq!(executor.expected_unpredicted(100), None, "no block yet");
        // Transfers meet no location beyond the plan's; the slot writers meet a dozen each:
        // they run with a table sized for none, and the transfers after them with one sized
        // for a dozen per transaction.
        let mut hints = Vec::new();
        run_forced_and_compare(&executor, test_blocks::transfers(200));
        hints.push(executor.expected_unpredicted(200).unwrap());
        run_forced_and_compare(&executor, test_blocks::slot_writers(200));
        hints.push(executor.expected_unpredicted(200).unwrap());
        run_forced_and_compare(&executor, test_blocks::transfers(200));
        hints.push(executor.expected_unpredicted(200).unwrap());
        assert_eq!(hints[0], 0, "transfers: every account predicted");
        assert!(
            hints[1] >= 200 * test_blocks::SLOTS_PER_CALL,
            "the slot writers meet many slots: {hints:?}"
        );
        assert_eq!(hints[2], 0);
    }

    #[test]
    fn arenas_are_kept_for_their_worker_and_reset() {
        let executor = two_workers();
        let states = executor.take_worker_states(2);
        states[1].arena.alloc_slice_fill_copy(100_000, 0u8);
        executor.return_worker_states(states);
        let again = executor.take_worker_states(2);
        assert!(
            again[1].arena.chunk_capacity() >= 100_000,
            "worker 1's chunk is kept, and reset to empty"
        );
        assert!(
            again[0].arena.chunk_capacity() < 100_000,
            "worker 0's arena is its own"
        );
    }
}
