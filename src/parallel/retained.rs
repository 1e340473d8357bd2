//! [`Retained`]: what an executor keeps from one block to the next for the engine: each
//! worker's read-set arena and VM buffers, how many locations the last block met, the
//! blocks whose deferred teardown is still running, and the last block's multi-version
//! memory and scheduler state, emptied by its teardown for the next block's set-up.

use std::sync::{Arc, PoisonError};

use bumpalo::Bump;

use super::PendingTeardowns;
use super::slots::RecycledSlots;
use crate::location::{LocationIndex, RecycledIndex};
use crate::mv_memory::{MvMemory, RecycledMemory};
use crate::plan::RecycledPlan;
use crate::scheduler::RecycledScheduler;
use crate::sync::{AtomicUsize, Mutex, Ordering, lock};
use crate::vm::VmBuffers;

/// Blocks that gave ids to more locations than this free their multi-version memory instead
/// of keeping it for the next block (a million cells are 128 MiB).
const MAX_RECYCLED_LOCATIONS: usize = 1 << 20;

/// What a pool worker keeps from one block to the next: its read-set arena and the VM's
/// buffers, allocated by the worker itself (so on its node) and reused, not reallocated.
#[derive(Default)]
pub(crate) struct WorkerState {
    pub(crate) arena: Bump,
    pub(crate) buffers: VmBuffers,
}

/// Kept across an executor's blocks.
pub(crate) struct Retained {
    /// Worker `i`'s arena and buffers, kept across blocks (their memory stays on `i`'s node).
    states: Mutex<Vec<WorkerState>>,
    /// Locations the last block met during execution (beyond those its plan predicted), per
    /// 100 transactions, plus one (zero: no block yet). Sizes the next block's location table:
    /// consecutive blocks of a chain are alike.
    unpredicted_per_100_txs: AtomicUsize,
    /// Blocks whose teardown was deferred and has not finished.
    pub(crate) teardowns: PendingTeardowns,
    /// The last torn-down block's multi-version memory, emptied for the next block.
    pub(crate) recycled: RecycleSlot<RecycledMemory>,
    /// The last torn-down block's scheduler state, reset for the next block.
    pub(crate) recycled_scheduler: RecycleSlot<RecycledScheduler>,
    /// The last torn-down block's location index, emptied for the next block.
    pub(crate) recycled_index: RecycleSlot<RecycledIndex>,
    /// The last torn-down block's published plans, emptied for the next block.
    pub(crate) recycled_plan: RecycleSlot<RecycledPlan>,
    /// The last block's per-transaction slots, each emptied by its commit.
    pub(crate) recycled_slots: RecycleSlot<RecycledSlots>,
}

/// Where a block's teardown leaves what the next block's set-up can reuse (`T`: its emptied
/// multi-version memory, its reset scheduler state). std's mutex: a teardown outlives its
/// block and is not part of what loom models.
pub(crate) struct RecycleSlot<T>(Arc<std::sync::Mutex<Option<T>>>);

impl<T> Clone for RecycleSlot<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Default for RecycleSlot<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T> RecycleSlot<T> {
    /// What an earlier block left, if its teardown has finished (a block running concurrently
    /// with another gets `None` and allocates its own).
    pub(crate) fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Keeps `recycled` for the next block.
    pub(crate) fn put(&self, recycled: Option<T>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = recycled;
    }
}

impl RecycleSlot<RecycledMemory> {
    /// Empties `memory` (which gave ids to `locations` locations) and keeps it for the next
    /// block, unless it is too large to keep.
    pub(crate) fn recycle(&self, memory: MvMemory, locations: usize) {
        if locations <= MAX_RECYCLED_LOCATIONS {
            self.put(Some(memory.into_recycled(locations)));
        }
    }
}

impl RecycleSlot<RecycledIndex> {
    /// Empties `index` and keeps it for the next block, unless it is too large to keep.
    pub(crate) fn recycle(&self, index: LocationIndex) {
        if index.len() <= MAX_RECYCLED_LOCATIONS {
            self.put(Some(index.into_recycled()));
        }
    }
}

impl Retained {
    /// Fresh states for `workers` workers, no block seen yet.
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            states: Mutex::new((0..workers).map(|_| WorkerState::default()).collect()),
            unpredicted_per_100_txs: AtomicUsize::new(0),
            teardowns: PendingTeardowns::default(),
            recycled: RecycleSlot::default(),
            recycled_scheduler: RecycleSlot::default(),
            recycled_index: RecycleSlot::default(),
            recycled_plan: RecycleSlot::default(),
            recycled_slots: RecycleSlot::default(),
        }
    }

    /// How many locations a block of `txs` transactions is expected to meet during execution,
    /// from the last block's density (`None` before the first block).
    pub(crate) fn expected_unpredicted(&self, txs: usize) -> Option<usize> {
        // Relaxed: a sizing hint; any value read is correct, only the speed differs.
        match self.unpredicted_per_100_txs.load(Ordering::Relaxed) {
            0 => None,
            density => Some(txs.saturating_mul(density - 1) / 100),
        }
    }

    /// Records how many locations a block of `txs` transactions met during execution.
    pub(crate) fn record_unpredicted(&self, txs: usize, unpredicted: usize) {
        let density = unpredicted.saturating_mul(100) / txs.max(1);
        // Relaxed: a sizing hint (see `expected_unpredicted`).
        self.unpredicted_per_100_txs
            .store(density.saturating_add(1), Ordering::Relaxed);
    }

    /// The first `count` workers' states, their arenas reset (a concurrent block gets fresh
    /// ones).
    pub(crate) fn take_worker_states(&self, count: usize) -> Vec<WorkerState> {
        let mut kept = lock(&self.states);
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

    /// Gives the workers' states back for the next block, and returns those beyond the
    /// kept workers' count (a block on spawned threads) for the caller to free.
    pub(crate) fn return_worker_states(&self, states: Vec<WorkerState>) -> Vec<WorkerState> {
        let mut kept = lock(&self.states);
        let mut states = states.into_iter();
        for (slot, state) in kept.iter_mut().zip(&mut states) {
            *slot = state;
        }
        states.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arenas_are_kept_for_their_worker_and_reset() {
        let retained = Retained::new(2);
        let states = retained.take_worker_states(2);
        states[1].arena.alloc_slice_fill_copy(100_000, 0u8);
        retained.return_worker_states(states);
        let again = retained.take_worker_states(2);
        assert!(
            again[1].arena.chunk_capacity() >= 100_000,
            "worker 1's chunk is kept, and reset to empty"
        );
        assert!(
            again[0].arena.chunk_capacity() < 100_000,
            "worker 0's arena is its own"
        );
    }

    #[test]
    fn the_density_hint_is_absent_before_the_first_block() {
        let retained = Retained::new(1);
        assert_eq!(retained.expected_unpredicted(100), None);
        retained.record_unpredicted(200, 2_400);
        assert_eq!(retained.expected_unpredicted(100), Some(1_200));
        retained.record_unpredicted(200, 0);
        assert_eq!(retained.expected_unpredicted(100), Some(0));
    }
}
