//! The beneficiary's fees in multi-version memory: one entry per transaction in a dense
//! array, beside the beneficiary cell's skip list.
//!
//! Every transaction pays a fee. Kept in the beneficiary's skip list, every transaction
//! inserts a node into the one list, at its tail, where the other workers insert theirs: the
//! workers contend on the same nodes, and a block's worth of nodes is allocated and freed one
//! by one. Here a fee is an atomic pointer swap in the transaction's own slot. The
//! beneficiary's plain values (written by a transaction that touches the account itself) stay
//! in the cell's skip list; [`MvMemory`](super::MvMemory) merges the two.
//!
//! A slot follows the protocol of a skip-list entry: only the transaction's executor or its
//! aborting validator writes it, the new state is published with one swap, and the old one is
//! reclaimed through crossbeam-epoch.

use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned};

use super::{EntryData, EntryState, TxIdx};

/// Per transaction, its entry at the fee location (null: none yet).
pub(super) struct FeeLane {
    slots: Box<[Atomic<EntryState>]>,
    /// Whether any slot was ever written (output assembly asks).
    written: AtomicBool,
}

impl FeeLane {
    /// A lane for a block of `txs` transactions.
    pub(super) fn new(txs: usize) -> Self {
        Self {
            slots: (0..txs).map(|_| Atomic::null()).collect(),
            written: AtomicBool::new(false),
        }
    }

    /// `tx`'s entry, valid while `guard` is pinned.
    pub(super) fn load<'g>(&self, tx: TxIdx, guard: &'g Guard) -> Option<&'g EntryState> {
        // Acquire: pairs with the AcqRel swap in `store`, so the state's contents are visible.
        let state = self.slots[tx as usize].load(Ordering::Acquire, guard);
        // SAFETY: a non-null pointer was published by `store` and is destroyed only after
        // every guard pinned before it was swapped out is gone (`defer_destroy`), so it
        // lives at least as long as `guard`.
        unsafe { state.as_ref() }
    }

    /// Whether `tx`'s entry holds a value or an estimate (not nothing, not a dropped write).
    pub(super) fn holds(&self, tx: TxIdx, guard: &Guard) -> bool {
        self.load(tx, guard)
            .is_some_and(|state| !matches!(state.data, EntryData::Absent))
    }

    /// Publishes `state` as `tx`'s entry.
    pub(super) fn store(&self, tx: TxIdx, state: EntryState, guard: &Guard) {
        if !matches!(state.data, EntryData::Absent) {
            self.written.store(true, Ordering::Release);
        }
        // AcqRel: Release publishes the new state to readers; Acquire orders the swap after
        // the previous writer's, whose state we free.
        let old = self.slots[tx as usize].swap(Owned::new(state), Ordering::AcqRel, guard);
        if !old.is_null() {
            // SAFETY: `old` is no longer reachable from the lane; readers that loaded it hold
            // guards pinned before this point, and `defer_destroy` waits for them.
            unsafe { guard.defer_destroy(old) };
        }
    }

    /// Whether any transaction ever wrote a fee or an estimate here.
    pub(super) fn is_written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }

    /// Number of slots (the block's transactions).
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }
}

impl Drop for FeeLane {
    fn drop(&mut self) {
        // SAFETY: dropping the lane means no reader holds a reference into it any more;
        // `unprotected` is sound without concurrent access.
        let guard = unsafe { epoch::unprotected() };
        for slot in self.slots.iter() {
            let state = slot.load(Ordering::Relaxed, guard);
            if !state.is_null() {
                // SAFETY: as above; each non-null pointer is owned by its slot alone.
                drop(unsafe { state.into_owned() });
            }
        }
    }
}
