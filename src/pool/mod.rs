//! The persistent, NUMA-aware worker pool the engine runs blocks on.
//!
//! - `topology`: where workers go ([`PoolPlan`]): grouped by NUMA node from the hwloc
//!   topology (`hwloc` feature), one worker per physical core first; without hwloc, one node
//!   of `available_parallelism` workers pinned to the process's CPUs in order.
//! - `workers`: the threads (`WorkerPool`): pinned with core_affinity, parked between
//!   blocks, worker `i` always participant `i`; a block runs on the first `k` workers
//!   (node by node) and the caller waits for them; finished blocks' structures are dropped
//!   by idle workers.
//! - `block_threads`: one block's participants, on the pool or on threads spawned for it.

mod block_threads;
mod topology;
mod workers;

pub(crate) use block_threads::BlockThreads;
#[cfg(test)]
pub(crate) use topology::fallback;
pub use topology::{NodePlan, PlanSource, PoolOptions, PoolPlan};
pub(crate) use workers::WorkerPool;

/// Why a pool could not be built or laid out.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The operating system refused to start a worker thread.
    #[error("worker thread {worker} could not start: {source}")]
    Spawn {
        /// The worker's index.
        worker: usize,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An hwloc topology could not be built or gives no usable layout.
    #[error("hwloc topology unusable: {0}")]
    Topology(String),
}
