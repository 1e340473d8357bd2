//! The persistent, NUMA-aware worker pool the engine runs blocks on.
//!
//! - [`topology`]: where workers go ([`PoolPlan`]): grouped by NUMA node from the hwloc
//!   topology (`hwloc` feature), one worker per physical core first; without hwloc, one node
//!   of `available_parallelism` workers pinned to the process's CPUs in order.
//! - [`workers`]: the threads ([`WorkerPool`]): pinned with core_affinity, parked between
//!   blocks, worker `i` always participant `i`; a block runs on the first `k` workers
//!   (node by node) and the caller waits for them; finished blocks' structures are dropped
//!   by idle workers.

pub mod topology;
pub mod workers;

pub use topology::{NodePlan, PlanSource, PoolOptions, PoolPlan};
pub use workers::{WorkerContext, WorkerPool};
