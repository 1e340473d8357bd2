//! Multi-version memory: for every location, the values written by each transaction's latest
//! incarnation, so that transaction `j` reads what the highest writer below `j` wrote.
//!
//! One cache-line-padded [`Cell`] per [`LocId`], in an append-only array (ids never move).
//! A cell holds its versions by transaction index (the first writer's entry in the cell
//! itself, the others in a lock-free skip list: see `versions`) and caches the location's
//! pre-block value on first read. A transaction's entry is never replaced or removed once
//! inserted: its content is one atomic pointer, swapped whole (old contents are reclaimed
//! through crossbeam-epoch), and a location the transaction no longer writes becomes a
//! tombstone. Replacing entries would open a window in which a reader sees neither the old nor
//! the new entry and silently reads a lower version.
//!
//! Invariants:
//! - A transaction's entries are written only by the worker executing it (`record`) or by the
//!   validator that aborted it (`mark_estimates`); the scheduler never lets both run at once.
//! - An `Estimate` entry stands for a write that an aborted incarnation made and that its next
//!   incarnation will probably make again: readers wait for it instead of guessing.
//! - `Credit` entries are lazy: "touch the account and add this amount", resolved on read.
//!   The beneficiary's fees and the value of plain transfers to accounts without code are
//!   written this way, so that they do not serialise the block (see `vm`).

use std::sync::OnceLock;

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned};
use crossbeam_utils::CachePadded;
use revm::primitives::U256;
use revm::state::AccountInfo;
use smallvec::SmallVec;

use crate::segmented_vec::SegmentedVec;
use crate::types::{Incarnation, LocId, TxIdx, Version};

mod credit;
mod fee_lane;
mod loom_hooks;
mod read;
mod versions;

use crate::sync::{AtomicU32, Mutex, Ordering, lock};
pub(crate) use credit::{Credit, apply_credit};
use fee_lane::FeeLane;
#[cfg(all(loom, test))]
pub(crate) use loom_hooks::CellMutation;
use loom_hooks::{Hooks, MapAccess};
pub(crate) use read::{AccountDigest, Read, ReadOrigin, ReadResult};
use versions::{Found, Versions};

/// The value of an account location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccountValue {
    /// `None`: the account does not exist. Code is attached when the account has code.
    pub(crate) info: Option<AccountInfo>,
    /// The last transaction that wiped the account's storage (self-destruct, creation):
    /// storage slots not written since then read as zero.
    pub(crate) wiped_at: Option<TxIdx>,
}

/// What a transaction writes to a location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WriteValue {
    Account(AccountValue),
    Storage(U256),
    /// Touch the account and credit this amount (EIP-161 applies), on top of the value below.
    Credit(U256),
}

/// The pre-block value of a location, as storage returned it.
#[derive(Clone, Debug)]
pub(crate) enum BaseValue {
    Account(AccountValue),
    Storage(U256),
}

#[derive(Debug)]
enum EntryData {
    Estimate,
    Written(WriteValue),
    /// The transaction's latest incarnation does not write here.
    Absent,
}

#[derive(Debug)]
struct EntryState {
    incarnation: Incarnation,
    data: EntryData,
}

/// One transaction's entry at one location: an atomically replaceable [`EntryState`].
struct Entry(Atomic<EntryState>);

impl Entry {
    /// The current state, valid while `guard` is pinned.
    fn load<'g>(&self, guard: &'g Guard) -> &'g EntryState {
        // Acquire: pairs with the AcqRel swap in `MvMemory::write`, so the state's contents
        // are visible.
        let state = self.0.load(std::sync::atomic::Ordering::Acquire, guard);
        // SAFETY: the pointer is never null (set at construction, only swapped for non-null
        // ones), and a state swapped out is destroyed only after every guard pinned before
        // the swap is gone (`defer_destroy`), so it lives at least as long as `guard`.
        unsafe { state.deref() }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: an entry is dropped only with its cell's versions (we never remove entries),
        // when no reader can hold a reference into it any more; `unprotected` is sound without
        // concurrent access.
        unsafe {
            let guard = epoch::unprotected();
            drop(
                self.0
                    .load(std::sync::atomic::Ordering::Relaxed, guard)
                    .into_owned(),
            );
        }
    }
}

/// One location's versions and base value. Both are allocated on first use, so that a cell
/// is a few words (one cache line with its padding), most cells, read but never written,
/// allocate no version, and most written ones hold a single (solo) entry and no ordered map.
#[derive(Default)]
struct Cell {
    versions: Versions,
    base: OnceLock<Box<BaseValue>>,
    /// Entries that are not lazy credits (plain values and estimates), counted
    /// conservatively: raised before such an entry appears, lowered after it is gone. Zero
    /// means "only credits on top of the base value", which lets a credited account's code
    /// be checked without walking thousands of credits (an exchange's deposit address).
    plain_entries: AtomicU32,
    /// Announces version-map accesses to loom; empty without loom (see `loom_hooks`).
    map_access: MapAccess,
}

impl EntryData {
    /// Whether this entry counts in [`Cell::plain_entries`].
    fn is_plain(&self) -> bool {
        !matches!(
            self,
            EntryData::Absent | EntryData::Written(WriteValue::Credit(_))
        )
    }
}

/// The block's multi-version memory.
pub(crate) struct MvMemory {
    cells: SegmentedVec<CachePadded<Cell>>,
    /// Locations each transaction's last incarnation wrote, sorted.
    last_writes: Vec<CachePadded<Mutex<Vec<LocId>>>>,
    delete_touched_empty: bool,
    /// The location whose lazy credits (the beneficiary's fees) live in a dense per-
    /// transaction lane instead of its cell's skip list (see `fee_lane`).
    fee_lane: Option<(LocId, FeeLane)>,
    /// Whether a location's first writer keeps its entry in the cell (see `versions`); off
    /// only in tests, to exercise the skip list alone.
    solo_entries: bool,
    /// The loom models' deliberate protocol errors; empty without loom (see `loom_hooks`).
    hooks: Hooks,
}

impl MvMemory {
    /// Memory for `txs` transactions, with cells preallocated for `locations` ids.
    pub(crate) fn new(txs: usize, locations: usize, delete_touched_empty: bool) -> Self {
        Self {
            cells: SegmentedVec::with_capacity(locations),
            last_writes: (0..txs)
                .map(|_| CachePadded::new(Mutex::new(Vec::new())))
                .collect(),
            delete_touched_empty,
            fee_lane: None,
            solo_entries: true,
            hooks: Hooks::default(),
        }
    }

    /// This memory with the lazy credits written at `location` (the beneficiary: one fee per
    /// transaction) kept in a dense lane, one slot per transaction, instead of the location's
    /// skip list. Plain values written there still go to the skip list; reads merge both.
    /// Credits to `location` must never be read as [`ReadOrigin::NoCode`] (the lane keeps no
    /// plain-entry count), which holds for the beneficiary: transfers to it are not lazy.
    pub(crate) fn with_fee_lane(mut self, location: LocId) -> Self {
        let txs = self.last_writes.len();
        self.fee_lane = Some((location, FeeLane::new(txs)));
        self
    }

    /// This memory with every entry in its location's skip list (no solo entries), for tests
    /// that compare the two representations.
    #[cfg(test)]
    pub(crate) fn without_solo_entries(mut self) -> Self {
        self.solo_entries = false;
        self
    }

    #[inline]
    fn cell(&self, location: LocId) -> &Cell {
        self.cells.get(location.index())
    }

    /// The cached pre-block value of `location`, if some reader loaded it.
    pub(crate) fn base(&self, location: LocId) -> Option<&BaseValue> {
        self.cell(location).base.get().map(|base| &**base)
    }

    /// Caches the pre-block value of `location`; returns the cached one if another reader
    /// got there first (both read the same storage, so they agree).
    pub(crate) fn set_base(&self, location: LocId, value: BaseValue) -> &BaseValue {
        self.cell(location).base.get_or_init(|| Box::new(value))
    }

    /// The value the last writer left at an account location, with the credits written after
    /// it applied on top of it (or of `base`, the pre-block value, when only credits were
    /// written); `None` when no transaction's final incarnation writes it.
    pub(crate) fn final_account(
        &self,
        location: LocId,
        base: &Option<AccountInfo>,
    ) -> Option<AccountValue> {
        if let Some(lane) = self.lane_at(location) {
            return self.final_account_with_lane(location, lane, base);
        }
        let guard = epoch::pin();
        // Forward: each step is O(1), where stepping back in a skip list is a search. A
        // credited account's cell holds one credit per crediting transaction.
        let mut credits: SmallVec<[Credit; 4]> = SmallVec::new();
        let mut start = None;
        let mut written = false;
        for (writer, state) in self.cell(location).versions.ascending(&guard) {
            match &state.data {
                EntryData::Absent => continue,
                EntryData::Written(WriteValue::Credit(amount)) => credits.push((writer, *amount)),
                EntryData::Written(WriteValue::Account(value)) => {
                    start = Some(value);
                    credits.clear();
                }
                EntryData::Written(WriteValue::Storage(_)) | EntryData::Estimate => {
                    unreachable!("after execution, account cells hold account values and credits")
                }
            }
            written = true;
        }
        if !written {
            return None;
        }
        let value = start.cloned().unwrap_or_else(|| AccountValue {
            info: base.clone(),
            wiped_at: None,
        });
        Some(self.apply_credits(value, &credits))
    }

    /// Whether any transaction ever wrote `location` in this block.
    pub(crate) fn is_written(&self, location: LocId) -> bool {
        self.cell(location).versions.is_written()
            || self.lane_at(location).is_some_and(FeeLane::is_written)
    }

    /// Entries that [`final_account`](Self::final_account) may walk at `location` beside its
    /// skip list: the block's transactions at the fee lane's location, else none.
    pub(crate) fn lane_entries(&self, location: LocId) -> usize {
        self.lane_at(location).map_or(0, FeeLane::len)
    }

    /// The last writer and value at a storage location; `None` when no transaction's final
    /// incarnation writes it.
    pub(crate) fn final_storage(&self, location: LocId) -> Option<(TxIdx, U256)> {
        let guard = epoch::pin();
        // The last entry is the answer unless a transaction stopped writing here (rare).
        for (writer, state) in self.cell(location).versions.below(TxIdx::MAX, &guard) {
            match &state.data {
                EntryData::Written(WriteValue::Storage(value)) => return Some((writer, *value)),
                EntryData::Absent => {}
                EntryData::Written(_) | EntryData::Estimate => {
                    unreachable!("after execution, storage cells hold storage values")
                }
            }
        }
        None
    }

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
        let mut locations: Vec<LocId> = writes.iter().map(|(location, _)| *location).collect();
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
        *previous = locations;
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
    fn write_versions(
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

/// A storage value, for the parts' tests.
#[cfg(test)]
fn storage(value: u64) -> WriteValue {
    WriteValue::Storage(U256::from(value))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

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
