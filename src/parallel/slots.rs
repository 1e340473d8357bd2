//! [`TxSlot`]: each transaction's last incarnation (what it read and produced) while the
//! block runs, and [`RecycledSlots`]: a finished block's slots kept for the next block, so
//! that the workers do not touch fresh pages for them (on raw transfers, faulting in a
//! block's freshly allocated slots took 7.7% of the workers' samples; see BENCHMARKS.md).

use std::any::Any;
use std::time::Instant;

use crossbeam_utils::CachePadded;
use revm::context::result::{EVMError, InvalidTransaction};

use crate::mv_memory::Read;
use crate::segmented_vec::SegmentedVec;
use crate::sync::Mutex;
use crate::types::Incarnation;
use crate::vm::ExecutedTx;

/// The last incarnation of one transaction: which one, what it read (in its worker's arena),
/// what it produced and when it finished. Its commit takes it whole, leaving the default.
pub(super) struct TxSlot<'a, E> {
    pub(super) incarnation: Incarnation,
    pub(super) reads: &'a [Read<'a>],
    pub(super) output: Option<Result<ExecutedTx, EVMError<E, InvalidTransaction>>>,
    pub(super) finished: Option<Instant>,
}

impl<E> Default for TxSlot<'_, E> {
    fn default() -> Self {
        Self {
            incarnation: 0,
            reads: &[],
            output: None,
            finished: None,
        }
    }
}

/// A block's slots, one per transaction, padded so that workers finishing neighbouring
/// transactions do not share a cache line.
pub(super) type Slots<'a, E> = SegmentedVec<CachePadded<Mutex<TxSlot<'a, E>>>>;

/// The slots of a block whose every transaction committed (so every slot is back to its
/// default: it borrows nothing), kept for the next block over the same storage type.
pub(crate) struct RecycledSlots(Box<dyn Any + Send>);

impl RecycledSlots {
    /// Keeps `slots`, a block's slots after every one of its transactions committed.
    ///
    /// # Safety
    ///
    /// Every slot of `slots` is in its default state: no `reads` borrow of the block's
    /// arenas is left in it. A commit takes its slot whole and a committed transaction is
    /// never executed again (the scheduler's invariant, checked by the loom models), so this
    /// holds once every transaction committed.
    pub(super) unsafe fn keep<E: Send + Sync + 'static>(slots: Slots<'_, E>) -> Self {
        // SAFETY: `Slots<'static, E>` differs from `Slots<'_, E>` only in the lifetime of
        // `reads`, and (the caller's promise) no slot holds a borrow with that lifetime.
        let slots: Slots<'static, E> = unsafe { slots.cast_lifetimes() };
        Self(Box::new(slots))
    }

    /// The kept slots, for a block over the same storage type (`None` for another one, whose
    /// slots differ in layout).
    pub(super) fn reuse<'a, E: Send + Sync + 'static>(self) -> Option<Slots<'a, E>> {
        let slots = *self.0.downcast::<Slots<'static, E>>().ok()?;
        // SAFETY: every slot is in its default state (see `keep`), so it holds no borrow
        // that the shorter lifetime could outlive.
        Some(unsafe { slots.cast_lifetimes() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::lock;
    use std::convert::Infallible;

    #[test]
    fn kept_slots_are_reused_only_by_the_same_storage_error_type() {
        let slots: Slots<'_, Infallible> = SegmentedVec::with_capacity(100);
        let first = slots.get(0) as *const _ as usize;
        // SAFETY: fresh slots are all default.
        let kept = unsafe { RecycledSlots::keep(slots) };
        let again: Slots<'_, Infallible> = kept.reuse().expect("same type");
        assert_eq!(again.get(0) as *const _ as usize, first, "the same memory");
        assert!(lock(again.get(99)).output.is_none());
        // SAFETY: as above.
        let kept = unsafe { RecycledSlots::keep(again) };
        assert!(kept.reuse::<std::fmt::Error>().is_none(), "another layout");
    }
}
