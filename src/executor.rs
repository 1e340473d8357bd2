//! [`Executor`]: the engine with its persistent worker pool, built once and reused for every
//! block, and [`execute`], which runs a block on the process-wide default executor.

use std::sync::OnceLock;

use revm::database_interface::DatabaseRef;

use crate::block::Block;
use crate::error::BlockError;
use crate::options::Options;
use crate::output::BlockOutput;
use crate::output::TxResult;
use crate::parallel::{self, Retained};
use crate::pool::{PoolError, PoolOptions, PoolPlan, WorkerPool};
use crate::rules::{OnCommit, Rules, RunOutput};
use crate::stats::ExecutionStats;

/// Executes `block` on `storage` in parallel and returns exactly what
/// [`execute_sequential`](crate::execute_sequential) returns: the same results, state
/// changes, or error (the lowest failing transaction).
///
/// ```
/// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
/// use blockstm_evm::{execute, execute_sequential, Options};
///
/// let workload = WorkloadSpec::new(WorkloadKind::Amm, 200).generate().unwrap();
/// let parallel = execute(&workload.storage, &workload.block, &Options::with_concurrency(4)).unwrap();
/// assert_eq!(parallel, execute_sequential(&workload.storage, &workload.block).unwrap());
/// ```
///
/// Runs on the process-wide default executor, [`Executor::global`]; build an [`Executor`]
/// to choose the pool's size and placement, or for the block's [`ExecutionStats`].
pub fn execute<S>(storage: &S, block: &Block, options: &Options) -> Result<BlockOutput, BlockError>
where
    S: DatabaseRef + Sync,
{
    Executor::global().execute(storage, block, options)
}

/// A parallel executor with its own worker pool (see [`crate::pool`]).
///
/// ```
/// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
/// use blockstm_evm::{Executor, Options, execute_sequential, pool::PoolOptions};
///
/// let executor = Executor::new(&PoolOptions { workers_per_node: Some(2), ..PoolOptions::default() })?;
/// let workload = WorkloadSpec::new(WorkloadKind::Erc20, 100).generate().unwrap();
/// for _ in 0..3 {
///     let (output, stats) = executor.execute_with_stats(&workload.storage, &workload.block, &Options::default())?;
///     assert_eq!(output, execute_sequential(&workload.storage, &workload.block)?);
///     assert_eq!(output.results.len(), stats.incarnations as usize - stats.aborts as usize);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Executor {
    /// `None`: every block runs on threads spawned for it.
    pool: Option<WorkerPool>,
    retained: Retained,
}

impl Executor {
    /// Builds the pool: workers placed by the hwloc topology (`hwloc` feature) or one node of
    /// `available_parallelism` threads, per `options`. Fails only if a thread cannot start.
    pub fn new(options: &PoolOptions) -> Result<Self, PoolError> {
        Self::with_plan(PoolPlan::detect(options))
    }

    /// Builds the pool for an explicit plan.
    pub fn with_plan(plan: PoolPlan) -> Result<Self, PoolError> {
        let pool = WorkerPool::new(plan)?;
        Ok(Self {
            retained: Retained::new(pool.workers()),
            pool: Some(pool),
        })
    }

    /// An executor without a pool: each block runs on threads spawned for it (the caller's
    /// among them), for callers that must not keep threads between blocks, and to measure
    /// what the pool saves.
    pub fn without_pool() -> Self {
        Self {
            pool: None,
            retained: Retained::new(0),
        }
    }

    /// The process-wide executor that [`execute`] uses, built on first use with default
    /// [`PoolOptions`] (without a pool if its threads could not start: blocks then run on
    /// threads spawned per block).
    pub fn global() -> &'static Executor {
        static GLOBAL: OnceLock<Executor> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            Executor::new(&PoolOptions::default()).unwrap_or_else(|error| {
                tracing::warn!(%error, "no worker pool; blocks spawn their own threads");
                Executor::without_pool()
            })
        })
    }

    /// Executes `block` on this executor's pool, as [`execute`] does.
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
        self.execute_with_stats(storage, block, options)
            .map(|(output, _)| output)
    }

    /// Executes `block` like [`Executor::execute`] and also returns what the engine did and
    /// where its time went ([`ExecutionStats`]).
    pub fn execute_with_stats<S>(
        &self,
        storage: &S,
        block: &Block,
        options: &Options,
    ) -> Result<(BlockOutput, ExecutionStats), BlockError>
    where
        S: DatabaseRef + Sync,
    {
        self.run(storage, block, options, Rules::Block, None)
            .map(|(output, stats)| (output.into_block_output(), stats))
    }

    /// Executes `block` like [`Executor::execute_with_stats`], and hands each transaction's
    /// result to `on_commit` as soon as it is final, in block order, while the rest of the
    /// block still executes: `on_commit(index, result)` once per transaction, from the
    /// worker that committed it (or the caller's thread on the sequential path). It runs
    /// while that worker holds the commit frontier, so it should be short (send the result
    /// on a channel, say). When the block fails, the transactions before the failing one
    /// have been reported and the call returns the error.
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
    /// use blockstm_evm::{Executor, Options, TxResult};
    ///
    /// let workload = WorkloadSpec::new(WorkloadKind::Erc20, 300).generate().unwrap();
    /// let seen = Mutex::new(Vec::new());
    /// let on_commit = |index: usize, result: &TxResult| {
    ///     seen.lock().unwrap().push((index, result.cumulative_gas_used));
    /// };
    /// let (output, _) = Executor::global().execute_observed(
    ///     &workload.storage, &workload.block, &Options::default(), &on_commit)?;
    /// let seen = seen.into_inner().unwrap();
    /// assert_eq!(seen.len(), output.results.len());
    /// assert!(seen.iter().enumerate().all(|(position, (index, _))| position == *index));
    /// assert_eq!(seen.last().map(|(_, gas)| *gas), Some(output.gas_used()));
    /// # Ok::<(), blockstm_evm::BlockError>(())
    /// ```
    pub fn execute_observed<S>(
        &self,
        storage: &S,
        block: &Block,
        options: &Options,
        on_commit: &(dyn Fn(usize, &TxResult) + Sync),
    ) -> Result<(BlockOutput, ExecutionStats), BlockError>
    where
        S: DatabaseRef + Sync,
    {
        self.run(storage, block, options, Rules::Block, Some(on_commit))
            .map(|(output, stats)| (output.into_block_output(), stats))
    }

    /// Runs `block` under `rules` (the block builder's rounds run under [`Rules::Build`]),
    /// showing `on_commit` each included transaction's result as it commits.
    pub(crate) fn run<S>(
        &self,
        storage: &S,
        block: &Block,
        options: &Options,
        rules: Rules<'_>,
        on_commit: Option<OnCommit<'_>>,
    ) -> Result<(RunOutput, ExecutionStats), BlockError>
    where
        S: DatabaseRef + Sync,
    {
        parallel::run(
            self.pool.as_ref(),
            &self.retained,
            storage,
            block,
            options,
            rules,
            on_commit,
        )
    }

    /// Waits until the deferred teardown of every block this executor ran so far has
    /// finished. A large block's internal structures are freed off the caller's path
    /// ([`Options::deferred_teardown`]); a caller that times blocks one after the other, or
    /// measures memory, waits here so that the next block does not share the machine with
    /// the last one's teardown.
    pub fn wait_for_teardown(&self) {
        self.retained.teardowns.wait();
    }

    /// Number of pool workers (0 without a pool).
    pub fn workers(&self) -> usize {
        self.pool.as_ref().map_or(0, WorkerPool::workers)
    }

    /// The pool's layout (`None` without a pool).
    pub fn plan(&self) -> Option<&PoolPlan> {
        self.pool.as_ref().map(WorkerPool::plan)
    }

    /// Dispatches an empty job to `workers` pool workers and waits for them: the pool's bare
    /// dispatch and wake-up cost, for benchmarks. Does nothing without a pool.
    pub fn pool_run_empty(&self, workers: usize) {
        if let Some(pool) = &self.pool {
            let _ = pool.run(workers, &|_| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::fallback;
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
        let states = executor.retained.take_worker_states(2);
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
        assert_eq!(
            executor.retained.expected_unpredicted(100),
            None,
            "no block yet"
        );
        // Transfers meet no location beyond the plan's; the slot writers meet a dozen each:
        // they run with a table sized for none, and the transfers after them with one sized
        // for a dozen per transaction.
        let mut hints = Vec::new();
        run_forced_and_compare(&executor, test_blocks::transfers(200));
        hints.push(executor.retained.expected_unpredicted(200).unwrap());
        run_forced_and_compare(&executor, test_blocks::slot_writers(200));
        hints.push(executor.retained.expected_unpredicted(200).unwrap());
        run_forced_and_compare(&executor, test_blocks::transfers(200));
        hints.push(executor.retained.expected_unpredicted(200).unwrap());
        assert_eq!(hints[0], 0, "transfers: every account predicted");
        assert!(
            hints[1] >= 200 * test_blocks::SLOTS_PER_CALL,
            "the slot writers meet many slots: {hints:?}"
        );
        assert_eq!(hints[2], 0);
    }

    #[test]
    fn many_slots_of_one_contract_match_sequential_also_after_a_wipe() {
        // 64 calls write 768 slots of one contract, committed by both workers; once with the
        // contract created by the first call (a wipe: every slot starts at zero).
        let executor = two_workers();
        run_forced_and_compare(&executor, test_blocks::slot_writers(64));
        let (storage, block) = test_blocks::created_slot_writers(64);
        let created = block.txs[0].caller.create(0);
        run_forced_and_compare(&executor, (storage.clone(), block.clone()));
        let output = crate::execute_sequential(&storage, &block).unwrap();
        let change = output
            .state
            .account(&created)
            .expect("the contract is created");
        assert!(change.storage_wiped && change.original.is_none());
        assert_eq!(change.storage.len(), 64 * test_blocks::SLOTS_PER_CALL);
        assert!(change.storage.values().all(|slot| slot.original.is_zero()));
    }

    #[test]
    fn a_failed_block_leaves_its_emptied_memory_and_worker_states_for_the_next() {
        let executor = two_workers();
        let (storage, mut block) = test_blocks::transfers(400);
        // A nonce from the future: the block fails at transaction 300.
        block.txs[300].nonce = 7;
        let forced = Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(2)
        };
        let error = executor.execute(&storage, &block, &forced).unwrap_err();
        assert!(
            matches!(
                error,
                crate::BlockError::InvalidTransaction { index: 300, .. }
            ),
            "{error:?}"
        );
        executor.wait_for_teardown();
        assert!(executor.retained.recycled.take().is_some(), "memory kept");
        assert!(
            executor.retained.recycled_scheduler.take().is_some(),
            "scheduler kept"
        );
        assert!(
            executor.retained.recycled_slots.take().is_none(),
            "the slots of transactions that never committed still hold what they ran: freed"
        );
        let states = executor.retained.take_worker_states(2);
        assert!(
            states.iter().any(|state| state.arena.allocated_bytes() > 0),
            "the workers' read-set arenas kept"
        );
        executor.retained.return_worker_states(states);
        // The next block runs as usual.
        run_forced_and_compare(&executor, test_blocks::transfers(300));
    }

    #[test]
    fn blocks_in_a_row_reuse_the_last_ones_emptied_memory_scheduler_and_slots() {
        let executor = two_workers();
        let blocks = [
            test_blocks::slot_writers(64),
            test_blocks::transfers(200),
            test_blocks::created_slot_writers(40),
            test_blocks::slot_writers(30),
        ];
        for block in blocks {
            run_forced_and_compare(&executor, block);
            executor.wait_for_teardown();
            let recycled = executor.retained.recycled.take();
            let scheduler = executor.retained.recycled_scheduler.take();
            let slots = executor.retained.recycled_slots.take();
            assert!(recycled.is_some(), "the teardown kept the memory");
            assert!(scheduler.is_some(), "the teardown kept the scheduler state");
            assert!(slots.is_some(), "every slot emptied by its commit: kept");
            // Put back for the next block, which must find them reset.
            executor.retained.recycled.put(recycled);
            executor.retained.recycled_scheduler.put(scheduler);
            executor.retained.recycled_slots.put(slots);
        }
    }
}
