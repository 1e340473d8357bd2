//! The write path: publishing an incarnation's writes ([`MvMemory::record`]) and turning an
//! aborted incarnation's writes into estimates ([`MvMemory::mark_estimates`]).
//!
//! Called by the worker that executed the incarnation (`record`) and by the validator that
//! aborted it (`mark_estimates`); the scheduler never lets both run for one transaction at
//! once, so a transaction's entries have one writer at a time.
//!
//! The entry publication protocol, which readers rely on:
//! - A transaction's entry, once inserted, stays: later writes swap its state in place
//!   (`swap_entry_state`), and a location the transaction no longer writes gets an `Absent`
//!   state (a tombstone). A reader therefore never falls through to a lower version while a
//!   writer replaces an entry.
//! - [`Cell::plain_entries`] is conservative: raised before a plain entry is published,
//!   lowered after it is gone, so that a reader that found a plain entry never hears "only
//!   credits" afterwards.
//! - `record` publishes the new values before it drops the previous incarnation's stale
//!   entries.

use crossbeam_epoch::{self as epoch, Guard, Owned};
use smallvec::SmallVec;

use super::versions::Found;
use super::{Cell, EntryData, EntryState, Incarnation, LocId, MvMemory, TxIdx, WriteValue};
use crate::sync::{Ordering, lock};

impl MvMemory {
    /// Publishes the writes of incarnation `incarnation` of `tx` and drops the entries of
    /// its previous incarnation that this one did not write again. Returns whether it wrote
    /// a location the previous incarnation had not (then higher transactions must be
    /// revalidated).
    pub(crate) fn record(
        &self,
        tx: TxIdx,
        incarnation: Incarnation,
        writes: Vec<(LocId, WriteValue)>,
    ) -> bool {
        let mut locations: SmallVec<[LocId; 8]> =
            writes.iter().map(|(location, _)| *location).collect();
        locations.sort_unstable();
        let guard = epoch::pin();
        for (location, value) in writes {
            self.write(location, tx, incarnation, EntryData::Written(value), &guard);
        }
        // New values visible, stale entries of the previous incarnation not yet dropped.
        crate::stress::point();
        let mut previous = lock(&self.last_writes[tx as usize]);
        let wrote_new = locations
            .iter()
            .any(|location| previous.binary_search(location).is_err());
        for location in previous.iter() {
            if locations.binary_search(location).is_err() {
                self.write(*location, tx, incarnation, EntryData::Absent, &guard);
            }
        }
        // Refilled in place: the list keeps its allocation from block to block.
        previous.clear();
        previous.extend_from_slice(&locations);
        wrote_new
    }

    /// Sets `tx`'s entry at `location`, in place when it exists.
    fn write(
        &self,
        location: LocId,
        tx: TxIdx,
        incarnation: Incarnation,
        data: EntryData,
        guard: &Guard,
    ) {
        match self.lane_at(location) {
            Some(lane) => self.write_with_lane(location, lane, tx, incarnation, data, guard),
            None => self.write_versions(location, tx, incarnation, data, guard),
        }
    }

    /// Sets `tx`'s entry among `location`'s versions, in place when it exists.
    pub(super) fn write_versions(
        &self,
        location: LocId,
        tx: TxIdx,
        incarnation: Incarnation,
        data: EntryData,
        guard: &Guard,
    ) {
        let cell = self.cell(location);
        let state = EntryState { incarnation, data };
        // Only `tx`'s executor or its aborting validator writes `tx`'s entry, never both at
        // once, so the entry's existence and old state cannot change under us.
        match cell.versions.find(tx, guard) {
            None => self.publish_entry(cell, tx, state, guard),
            Some(found) => self.swap_entry_state(cell, found, tx, state, guard),
        }
    }

    /// Gives `tx`, which has no entry at `cell` yet, one holding `state`: counted (when
    /// plain) before it is published.
    fn publish_entry(&self, cell: &Cell, tx: TxIdx, state: EntryState, guard: &Guard) {
        let solo = self.solo_entries;
        // A loom mutation may make the write itself, the wrong way (see `loom_hooks`).
        let Some(state) = self
            .hooks
            .publish_before_count(cell, tx, state, solo, guard)
        else {
            return;
        };
        // SeqCst on the counter: a reader that sees zero must not miss a plain entry that is
        // already visible, so raising happens before publishing and lowering after removal.
        if state.data.is_plain() {
            cell.plain_entries.fetch_add(1, Ordering::SeqCst);
        }
        // Counted, not yet published: readers must cope with the count running ahead.
        crate::stress::point();
        cell.map_access.announce_write();
        cell.versions.insert(tx, state, solo, guard);
    }

    /// Replaces the state of `tx`'s entry `found` with `state`, in place: the count is raised
    /// before a plain state is published and lowered after a plain one is gone.
    fn swap_entry_state(
        &self,
        cell: &Cell,
        found: Found<'_>,
        tx: TxIdx,
        state: EntryState,
        guard: &Guard,
    ) {
        let old_plain = found.entry().load(guard).data.is_plain();
        let new_plain = state.data.is_plain();
        let solo = self.solo_entries;
        // A loom mutation may make the write itself, the wrong way (see `loom_hooks`).
        let Some((found, state)) = self
            .hooks
            .remove_then_insert(cell, found, tx, state, solo, guard)
        else {
            return;
        };
        // SeqCst on the counter: as in `publish_entry`.
        if new_plain && !old_plain {
            cell.plain_entries.fetch_add(1, Ordering::SeqCst);
        }
        cell.map_access.announce_write();
        // AcqRel: Release publishes the new state to readers; Acquire orders the swap after
        // the previous writer's, whose state we free.
        let old = found.entry().0.swap(
            Owned::new(state),
            std::sync::atomic::Ordering::AcqRel,
            guard,
        );
        // SAFETY: `old` is no longer reachable from the cell; readers that loaded it hold
        // guards pinned before this point, and `defer_destroy` waits for them.
        unsafe { guard.defer_destroy(old) };
        crate::stress::point();
        if old_plain && !new_plain {
            cell.plain_entries.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Turns every entry of `tx`'s last incarnation into an `Estimate`: it was aborted.
    pub(crate) fn mark_estimates(&self, tx: TxIdx, incarnation: Incarnation) {
        let written = lock(&self.last_writes[tx as usize]);
        let guard = epoch::pin();
        for location in written.iter() {
            // Readers may see some of the aborted writes marked and others not yet.
            crate::stress::point();
            self.write(*location, tx, incarnation, EntryData::Estimate, &guard);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use revm::primitives::U256;

    use super::*;
    use crate::mv_memory::{ReadResult, storage};
    use crate::types::Version;

    #[derive(Debug, Clone)]
    enum Op {
        Record {
            tx: TxIdx,
            locations: Vec<u32>,
            value: u64,
        },
        Estimate {
            tx: TxIdx,
        },
        Read {
            tx: TxIdx,
            location: u32,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..8u32, prop::collection::vec(0..4u32, 0..3), any::<u64>()).prop_map(
                |(tx, locations, value)| Op::Record {
                    tx,
                    locations,
                    value
                }
            ),
            (0..8u32).prop_map(|tx| Op::Estimate { tx }),
            (0..9u32, 0..4u32).prop_map(|(tx, location)| Op::Read { tx, location }),
        ]
    }

    proptest! {
        /// MvMemory agrees with a plain model: per location a `BTreeMap` of tx -> value.
        #[test]
        fn matches_a_btreemap_model(ops in prop::collection::vec(op(), 1..60), solo_entries in any::<bool>()) {
            let memory = MvMemory::new(8, 4, true);
            let memory = if solo_entries { memory } else { memory.without_solo_entries() };
            // location -> tx -> (incarnation, Some(value) | None for estimate)
            let mut model: BTreeMap<u32, BTreeMap<TxIdx, (Incarnation, Option<u64>)>> = BTreeMap::new();
            let mut incarnations = [0u32; 8];
            let mut written: BTreeMap<TxIdx, Vec<u32>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Record { tx, mut locations, value } => {
                        locations.sort();
                        locations.dedup();
                        incarnations[tx as usize] += 1;
                        let incarnation = incarnations[tx as usize];
                        let writes = locations.iter().map(|l| (LocId(*l), storage(value))).collect();
                        let previous = written.insert(tx, locations.clone()).unwrap_or_default();
                        let expected_new = locations.iter().any(|l| !previous.contains(l));
                        prop_assert_eq!(memory.record(tx, incarnation, writes), expected_new);
                        for l in previous { model.entry(l).or_default().remove(&tx); }
                        for l in &locations { model.entry(*l).or_default().insert(tx, (incarnation, Some(value))); }
                    }
                    Op::Estimate { tx } => {
                        let incarnation = incarnations[tx as usize];
                        memory.mark_estimates(tx, incarnation);
                        for l in written.get(&tx).cloned().unwrap_or_default() {
                            model.entry(l).or_default().insert(tx, (incarnation, None));
                        }
                    }
                    Op::Read { tx, location } => {
                        let expected = model.get(&location).and_then(|m| m.range(..tx).next_back());
                        let actual = memory.read(LocId(location), tx);
                        match (expected, actual) {
                            (None, ReadResult::Base) => {}
                            (Some((writer, (_, None))), ReadResult::Blocked(blocking)) => prop_assert_eq!(*writer, blocking),
                            (Some((writer, (incarnation, Some(value)))), ReadResult::Written { version, value: read }) => {
                                prop_assert_eq!(version, Version { tx: *writer, incarnation: *incarnation });
                                prop_assert_eq!(read, storage(*value));
                            }
                            (expected, actual) => prop_assert!(false, "model {:?}, memory {:?}", expected, actual),
                        }
                    }
                }
            }
            // The final value at each location without estimates: its last writer's.
            for location in 0..4u32 {
                let entries = model.get(&location);
                if entries.is_some_and(|m| m.values().any(|(_, value)| value.is_none())) {
                    continue;
                }
                let expected = entries
                    .and_then(|m| m.iter().next_back())
                    .map(|(writer, (_, value))| (*writer, U256::from(value.expect("no estimates"))));
                prop_assert_eq!(memory.final_storage(LocId(location)), expected);
            }
        }
    }
}
