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
//! - [`Cell::plain_entries`] counts a cell's entries that are not credits conservatively
//!   (raised before such an entry is published, lowered after it is gone), so that "only
//!   credits" is never said of a cell whose plain entry a reader already saw.
//!
//! This file holds the cell and entry types and the constructors; the methods live with their
//! callers:
//! - `read`: what a transaction sees ([`MvMemory::read`], [`MvMemory::only_credits`]) and the
//!   re-check of its read set ([`MvMemory::validate`]); called by the VM (`vm`) and validators.
//! - `record`: publishing an incarnation's writes ([`MvMemory::record`]) and an aborted one's
//!   estimates ([`MvMemory::mark_estimates`]): the entry publication protocol.
//! - `committed`: a committed transaction's write set, read back for the commit frontier's
//!   fold of the block's state (`parallel::fold`).
//! - `final_values` (tests only): the last value at each location once every transaction is
//!   final, the oracle of the representation tests.
//! - `credit`: lazy credits and the rule that resolves them, shared by the two above.
//! - `fee_lane`: the beneficiary's fees in a dense per-transaction lane, and the merge of the
//!   lane with the cell's versions, to which reads, writes and final values at the fee location
//!   hand over.
//! - `versions`: one location's entries (the solo entry and the skip list).
//! - `loom_hooks`: what the loom models (`loom-tests/mv_memory.rs`) hook into: map-access
//!   announcements and deliberate protocol errors; empty without loom.

use std::sync::LazyLock;

use crossbeam_epoch::{self as epoch, Atomic, Guard};
use crossbeam_utils::CachePadded;
use revm::primitives::{KECCAK_EMPTY, U256};
use revm::state::AccountInfo;

use crate::once_box::OnceBox;
use crate::segmented_vec::SegmentedVec;
use crate::sync::{AtomicU32, Mutex, lock};
use crate::types::{Incarnation, LocId, TxIdx, Version};

mod committed;
mod credit;
mod fee_lane;
#[cfg(test)]
mod final_values;
mod loom_hooks;
mod read;
mod record;
mod versions;

pub(crate) use credit::{Credit, apply_credit};
use fee_lane::FeeLane;
#[cfg(all(loom, test))]
pub(crate) use loom_hooks::CellMutation;
use loom_hooks::{Hooks, MapAccess};
pub(crate) use read::{AccountDigest, Read, ReadOrigin, ReadResult};
use versions::Versions;

/// The value of an account location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccountValue {
    /// `None`: the account does not exist. Code is attached when the account has code, and
    /// only then: an account without code carries `code: None` (see [`AccountValue::info_of`]).
    pub(crate) info: Option<AccountInfo>,
    /// The last transaction that wiped the account's storage (self-destruct, creation):
    /// storage slots not written since then read as zero.
    pub(crate) wiped_at: Option<TxIdx>,
}

impl AccountValue {
    /// `info` as account values hold it: without revm's cache id, and without the code when
    /// the account has none (revm supplies the empty code itself). The empty code is one
    /// reference-counted bytecode shared by the whole process: cloning or dropping it on every
    /// value would make all workers write the same cache line.
    pub(crate) fn info_of(info: &AccountInfo) -> AccountInfo {
        let mut stored = info.copy_without_code();
        stored.account_id = None;
        if info.code_hash != KECCAK_EMPTY {
            stored.code.clone_from(&info.code);
        }
        stored
    }

    /// The info of an account that did not exist: zero balance and nonce, no code (built
    /// without touching the shared empty code, see [`info_of`](Self::info_of)).
    pub(crate) fn empty_info() -> AccountInfo {
        static EMPTY: LazyLock<AccountInfo> = LazyLock::new(|| AccountInfo {
            code: None,
            ..AccountInfo::default()
        });
        EMPTY.copy_without_code()
    }
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

/// What one transaction's entry at a location holds.
#[derive(Debug)]
enum EntryData {
    /// The transaction's last incarnation was aborted: readers wait for the next one.
    Estimate,
    /// The value the transaction's latest incarnation wrote.
    Written(WriteValue),
    /// The transaction's latest incarnation does not write here.
    Absent,
}

/// An entry's content: the incarnation that set it, and what it holds.
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
        // Acquire: pairs with the AcqRel swap in `MvMemory::swap_entry_state` (`record`), so
        // the state's contents are visible.
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
    base: OnceBox<BaseValue>,
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
    /// One cell per location id (the array's buckets are allocated on first use).
    cells: SegmentedVec<CachePadded<Cell>>,
    /// Locations each transaction's last incarnation wrote, sorted.
    last_writes: Vec<CachePadded<Mutex<Vec<LocId>>>>,
    /// Whether a touched empty account is deleted (EIP-161, Spurious Dragon on): how credits
    /// resolve.
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

/// A block's multi-version memory emptied for the next block: its cells and per-transaction
/// write lists, all back to their defaults, with their allocations (see
/// [`MvMemory::into_recycled`]).
pub(crate) struct RecycledMemory {
    cells: SegmentedVec<CachePadded<Cell>>,
    last_writes: Vec<CachePadded<Mutex<Vec<LocId>>>>,
}

impl MvMemory {
    /// Memory for `txs` transactions, with cells preallocated for `locations` ids.
    #[cfg(any(test, loom))]
    pub(crate) fn new(txs: usize, locations: usize, delete_touched_empty: bool) -> Self {
        Self::recycling(None, txs, locations, delete_touched_empty)
    }

    /// [`new`](Self::new), on an earlier block's `recycled` memory when there is one: its
    /// cells and write lists are reused, and only what this block needs beyond them is
    /// allocated.
    pub(crate) fn recycling(
        recycled: Option<RecycledMemory>,
        txs: usize,
        locations: usize,
        delete_touched_empty: bool,
    ) -> Self {
        let (cells, mut last_writes) = match recycled {
            Some(RecycledMemory { cells, last_writes }) => (cells, last_writes),
            None => (SegmentedVec::with_capacity(0), Vec::new()),
        };
        cells.reserve(locations);
        last_writes.truncate(txs);
        last_writes.resize_with(txs, || CachePadded::new(Mutex::new(Vec::new())));
        Self {
            cells,
            last_writes,
            delete_touched_empty,
            fee_lane: None,
            solo_entries: true,
            hooks: Hooks::default(),
        }
    }

    /// Empties this memory for another block: the cells of the first `locations` ids (every
    /// id the block gave) and every write list back to their defaults, keeping their
    /// allocations. Costs what dropping the block's versions and base values costs.
    pub(crate) fn into_recycled(self, locations: usize) -> RecycledMemory {
        let Self {
            mut cells,
            last_writes,
            ..
        } = self;
        cells.reset(locations);
        for writes in &last_writes {
            // Emptied, with its allocation kept: `record` refills a transaction's list.
            lock(writes).clear();
        }
        RecycledMemory { cells, last_writes }
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

    /// The cell of `location`.
    #[inline]
    fn cell(&self, location: LocId) -> &Cell {
        self.cells.get(location.index())
    }

    /// The cached pre-block value of `location`, if some reader loaded it.
    pub(crate) fn base(&self, location: LocId) -> Option<&BaseValue> {
        self.cell(location).base.get()
    }

    /// Caches the pre-block value of `location`; returns the cached one if another reader
    /// got there first (both read the same storage, so they agree).
    pub(crate) fn set_base(&self, location: LocId, value: BaseValue) -> &BaseValue {
        self.cell(location).base.get_or_init(|| value)
    }
}

/// A storage value, for the parts' tests.
#[cfg(test)]
fn storage(value: u64) -> WriteValue {
    WriteValue::Storage(U256::from(value))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn recycled_memory_starts_the_next_block_empty() {
        let memory = MvMemory::new(3, 4, true);
        let (slot, account) = (LocId(0), LocId(5));
        memory.set_base(slot, BaseValue::Storage(U256::from(9)));
        memory.record(0, 0, vec![(slot, storage(1))]);
        memory.record(1, 0, vec![(slot, storage(2)), (account, storage(3))]);
        assert!(memory.is_written(slot) && memory.is_written(account));
        let cell = memory.cell(slot) as *const Cell;
        let recycled = memory.into_recycled(6);
        let next = MvMemory::recycling(Some(recycled), 5, 4, true);
        assert_eq!(next.cell(slot) as *const Cell, cell, "the cells are reused");
        for location in [slot, LocId(1), account] {
            assert!(next.base(location).is_none());
            assert!(!next.is_written(location));
            assert_eq!(next.final_storage(location), None);
        }
        assert_eq!(next.last_writes.len(), 5);
        assert!(
            next.last_writes
                .iter()
                .all(|writes| lock(writes).is_empty())
        );
        // The new block writes as on fresh memory.
        next.record(4, 0, vec![(slot, storage(7))]);
        assert_eq!(next.final_storage(slot), Some((4, U256::from(7))));
    }
}
