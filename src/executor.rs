//! [`Executor`]: the engine with its persistent worker pool, built once and reused for every
//! block. The free [`execute`](crate::execute) uses a process-wide default built on first use.

use std::sync::{Mutex, OnceLock, PoisonError};

use bumpalo::Bump;
use revm::database_interface::DatabaseRef;

use crate::block::Block;
use crate::error::BlockError;
use crate::output::BlockOutput;
use crate::parallel::{Options, execute_on};
use crate::pool::{PoolOptions, PoolPlan, WorkerPool};
use crate::stats::ExecutionStats;

/// A parallel executor with its own worker pool (see [`crate::pool`]).
///
/// ```
/// use blockstm_evm::{Executor, Options, execute_sequential, pool::PoolOptions};
/// use blockstm_evm::workloads::{WorkloadKind, WorkloadSpec};
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
    /// Worker `i`'s read-set arena, kept across blocks (its memory stays on `i`'s node).
    arenas: Mutex<Vec<Bump>>,
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
        let arenas = (0..pool.workers()).map(|_| Bump::new()).collect();
        Ok(Self {
            pool,
            arenas: Mutex::new(arenas),
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

    /// The first `count` workers' arenas, reset (a concurrent block gets fresh ones).
    pub(crate) fn take_arenas(&self, count: usize) -> Vec<Bump> {
        let mut kept = self.arenas.lock().unwrap_or_else(PoisonError::into_inner);
        (0..count)
            .map(|i| match kept.get_mut(i) {
                Some(arena) => {
                    let mut arena = std::mem::take(arena);
                    arena.reset();
                    arena
                }
                None => Bump::new(),
            })
            .collect()
    }

    /// Gives the arenas back for the next block.
    pub(crate) fn return_arenas(&self, arenas: Vec<Bump>) {
        let mut kept = self.arenas.lock().unwrap_or_else(PoisonError::into_inner);
        for (slot, arena) in kept.iter_mut().zip(arenas) {
            *slot = arena;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::topology::fallback;

    #[test]
    fn arenas_are_kept_for_their_worker_and_reset() {
        let options = PoolOptions {
            workers_per_node: Some(2),
            ..PoolOptions::default()
        };
        let executor = Executor::with_plan(fallback(&options, "test".to_owned())).unwrap();
        let arenas = executor.take_arenas(2);
        arenas[1].alloc_slice_fill_copy(100_000, 0u8);
        executor.return_arenas(arenas);
        let again = executor.take_arenas(2);
        assert!(
            again[1].chunk_capacity() >= 100_000,
            "worker 1's chunk is kept, and reset to empty"
        );
        assert!(
            again[0].chunk_capacity() < 100_000,
            "worker 0's arena is its own"
        );
    }
}
