//! The loom models' hooks into the cell protocol (`loom-tests/mv_memory.rs`): the
//! announcements that let loom see version-map accesses, and the deliberate protocol errors
//! ([`CellMutation`]) that the models must catch.
//!
//! The hot path calls these hooks at the steps they concern; without `cfg(loom)` each one is
//! empty (or hands its arguments straight back) and inlines to nothing, so that the protocol
//! reads in one place and a normal build holds no mutation.

use crossbeam_epoch::Guard;

use super::versions::Found;
use super::{Cell, EntryState, TxIdx};
#[cfg(loom)]
use crate::sync::Ordering;

/// A deliberate error in the cell protocol, for the loom tests to show that they catch it.
#[cfg(loom)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum CellMutation {
    /// The real protocol.
    #[default]
    None,
    /// A transaction's first entry at a location is published before
    /// [`Cell::plain_entries`] counts it: a reader can find a plain entry while the count
    /// says "only credits".
    PublishBeforeCount,
    /// An entry is replaced by removing its node and inserting a new one (with the count
    /// updated in between), instead of swapping its state in place: the window the module
    /// doc warns about, in which a reader falls through to a lower version.
    RemoveThenInsert,
}

/// Under loom only: stands for the version map's own synchronisation, which loom cannot see
/// (crossbeam is not loom-aware). Every access to the map that another thread could observe
/// comes right after an access to this atomic (a load for a read, an increment for a write),
/// so that loom explores the interleavings of map accesses and sees the happens-before edges
/// the map's Release/Acquire give (see `loom-tests/README.md`). Empty without loom.
#[derive(Default)]
pub(super) struct MapAccess {
    #[cfg(loom)]
    counter: crate::sync::AtomicUsize,
}

impl MapAccess {
    /// Announces to loom a read of the version map (the read runs in the same model step).
    #[inline(always)]
    pub(super) fn announce_read(&self) {
        // SeqCst: the map's operations are modelled as one total order of steps.
        #[cfg(loom)]
        self.counter.load(Ordering::SeqCst);
    }

    /// Announces to loom a change to the version map (made in the same model step).
    #[inline(always)]
    pub(super) fn announce_write(&self) {
        // SeqCst: as in `announce_read`.
        #[cfg(loom)]
        self.counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// The mutation switched on for one memory (under loom; empty otherwise).
#[derive(Default)]
pub(super) struct Hooks {
    #[cfg(loom)]
    pub(super) mutation: CellMutation,
}

impl Hooks {
    /// The start of `tx`'s first write at `cell`. Under [`CellMutation::PublishBeforeCount`]
    /// it publishes the entry before counting it, and returns `None`: the write is done.
    /// Otherwise it hands `state` back for the real protocol.
    #[inline(always)]
    #[cfg_attr(not(loom), allow(unused_variables))]
    pub(super) fn publish_before_count(
        &self,
        cell: &Cell,
        tx: TxIdx,
        state: EntryState,
        solo_entries: bool,
        guard: &Guard,
    ) -> Option<EntryState> {
        #[cfg(loom)]
        if self.mutation == CellMutation::PublishBeforeCount {
            let new_plain = state.data.is_plain();
            cell.map_access.announce_write();
            cell.versions.insert(tx, state, solo_entries, guard);
            if new_plain {
                cell.plain_entries.fetch_add(1, Ordering::SeqCst);
            }
            return None;
        }
        Some(state)
    }

    /// The start of a later write of `tx` at `cell`, whose entry is `found`. Under
    /// [`CellMutation::RemoveThenInsert`] it removes the entry and inserts `state` anew (the
    /// count updated in between), and returns `None`: the write is done. Otherwise it hands
    /// `found` and `state` back for the real protocol.
    #[inline(always)]
    #[cfg_attr(not(loom), allow(unused_variables))]
    pub(super) fn remove_then_insert<'a>(
        &self,
        cell: &Cell,
        found: Found<'a>,
        tx: TxIdx,
        state: EntryState,
        solo_entries: bool,
        guard: &Guard,
    ) -> Option<(Found<'a>, EntryState)> {
        #[cfg(loom)]
        if self.mutation == CellMutation::RemoveThenInsert {
            // Broken on purpose, memory-safe all the same: a removed entry is destroyed only
            // once no reader can hold it.
            let old_plain = found.entry().load(guard).data.is_plain();
            let new_plain = state.data.is_plain();
            cell.map_access.announce_write();
            cell.versions.remove(found, guard);
            if old_plain {
                cell.plain_entries.fetch_sub(1, Ordering::SeqCst);
            }
            if new_plain {
                cell.plain_entries.fetch_add(1, Ordering::SeqCst);
            }
            cell.map_access.announce_write();
            cell.versions.insert(tx, state, solo_entries, guard);
            return None;
        }
        Some((found, state))
    }
}

#[cfg(all(loom, test))]
impl super::MvMemory {
    /// Memory like [`MvMemory::new`](super::MvMemory::new)'s, with `mutation` switched on.
    pub(crate) fn with_mutation(
        txs: usize,
        locations: usize,
        delete_touched_empty: bool,
        mutation: CellMutation,
    ) -> Self {
        Self {
            hooks: Hooks { mutation },
            ..Self::new(txs, locations, delete_touched_empty)
        }
    }
}
