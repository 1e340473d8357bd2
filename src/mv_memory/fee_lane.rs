//! The beneficiary's fees in multi-version memory: one entry per transaction in a dense
//! array, beside the beneficiary cell's skip list.
//!
//! Every transaction pays a fee. Kept in the beneficiary's skip list, every transaction
//! inserts a node into the one list, at its tail, where the other workers insert theirs: the
//! workers contend on the same nodes, and a block's worth of nodes is allocated and freed one
//! by one. Here a fee is an atomic pointer swap in the transaction's own slot. The
//! beneficiary's plain values (written by a transaction that touches the account itself) stay
//! in the cell's skip list; [`MvMemory`] merges the two.
//!
//! A slot follows the protocol of a skip-list entry: only the transaction's executor or its
//! aborting validator writes it, the new state is published with one swap, and the old one is
//! reclaimed through crossbeam-epoch.
//!
//! The merge of the lane with the cell's versions lives here too: the read and the write at
//! the fee location (`read_with_lane`, `write_with_lane`), which [`MvMemory`]'s own methods
//! hand over to when the location is the lane's (the tests' final-value oracle has its own,
//! in `final_values`).

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned};
use smallvec::SmallVec;

use super::{
    Credit, EntryData, EntryState, Incarnation, LocId, MvMemory, ReadResult, TxIdx, Version,
    WriteValue,
};
#[cfg(test)]
use crate::sync::AtomicBool;
use crate::sync::Ordering;

/// Per transaction, its entry at the fee location (null: none yet).
pub(super) struct FeeLane {
    slots: Box<[Atomic<EntryState>]>,
    /// Whether any slot was ever written (the final-value oracle of the tests asks).
    #[cfg(test)]
    written: AtomicBool,
}

impl FeeLane {
    /// A lane for a block of `txs` transactions.
    pub(super) fn new(txs: usize) -> Self {
        Self {
            slots: (0..txs).map(|_| Atomic::null()).collect(),
            #[cfg(test)]
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
        #[cfg(test)]
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
    #[cfg(test)]
    pub(super) fn is_written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }

    /// Number of slots (the block's transactions).
    #[cfg(test)]
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

impl MvMemory {
    /// The fee lane, when `location` is its location.
    #[inline]
    pub(super) fn lane_at(&self, location: LocId) -> Option<&FeeLane> {
        match &self.fee_lane {
            Some((lane_location, lane)) if *lane_location == location => Some(lane),
            _ => None,
        }
    }

    /// [`read`](Self::read) at the fee lane's location: the highest plain entry below `tx`
    /// in the skip list, then the fees between it and `tx` from the lane. Each transaction's
    /// switch between the two (a fee in one incarnation, a plain value in the next) publishes
    /// the new entry before it retires the old one, which is an estimate by then (the
    /// incarnation before was aborted): a reader in between sees the estimate and waits.
    pub(super) fn read_with_lane(&self, location: LocId, lane: &FeeLane, tx: TxIdx) -> ReadResult {
        let guard = epoch::pin();
        let cell = self.cell(location);
        let plain = cell
            .versions
            .below(tx, &guard)
            .find(|(_, state)| !matches!(state.data, EntryData::Absent));
        // Fees and estimates may be published while this reader scans them.
        crate::stress::point();
        let floor = plain.map_or(0, |(writer, _)| writer + 1);
        let mut fees: SmallVec<[Credit; 4]> = SmallVec::new();
        for writer in (floor..tx).rev() {
            match lane.load(writer, &guard).map(|state| &state.data) {
                None | Some(EntryData::Absent) => {}
                Some(EntryData::Estimate) => return ReadResult::Blocked(writer),
                Some(EntryData::Written(WriteValue::Credit(fee))) => fees.push((writer, *fee)),
                Some(EntryData::Written(_)) => {
                    unreachable!("the fee lane holds lazy credits only")
                }
            }
        }
        fees.reverse();
        let Some((writer, state)) = plain else {
            return if fees.is_empty() {
                ReadResult::Base
            } else {
                ReadResult::Credited {
                    start: None,
                    credits: fees,
                }
            };
        };
        if matches!(
            lane.load(writer, &guard).map(|state| &state.data),
            Some(EntryData::Estimate)
        ) {
            return ReadResult::Blocked(writer);
        }
        match &state.data {
            EntryData::Estimate => ReadResult::Blocked(writer),
            EntryData::Written(value) if fees.is_empty() => ReadResult::Written {
                version: Version {
                    tx: writer,
                    incarnation: state.incarnation,
                },
                value: value.clone(),
            },
            EntryData::Written(WriteValue::Account(account)) => ReadResult::Credited {
                start: Some(account.clone()),
                credits: fees,
            },
            EntryData::Written(_) | EntryData::Absent => {
                unreachable!("the skip list at the fee location holds account values")
            }
        }
    }

    /// [`write`](Self::write) at the fee lane's location: fees go to the lane, plain values
    /// to the skip list, and `tx` keeps one entry holding a value: the new one is published
    /// first, then the other place's entry (an estimate by then) becomes `Absent`.
    pub(super) fn write_with_lane(
        &self,
        location: LocId,
        lane: &FeeLane,
        tx: TxIdx,
        incarnation: Incarnation,
        data: EntryData,
        guard: &Guard,
    ) {
        let in_versions = |tx| {
            self.cell(location)
                .versions
                .find(tx, guard)
                .is_some_and(|found| !matches!(found.entry().load(guard).data, EntryData::Absent))
        };
        let absent = || EntryState {
            incarnation,
            data: EntryData::Absent,
        };
        match data {
            EntryData::Written(WriteValue::Credit(_)) => {
                lane.store(tx, EntryState { incarnation, data }, guard);
                if in_versions(tx) {
                    crate::stress::point();
                    self.write_versions(location, tx, incarnation, EntryData::Absent, guard);
                }
            }
            EntryData::Written(_) => {
                self.write_versions(location, tx, incarnation, data, guard);
                if lane.holds(tx, guard) {
                    crate::stress::point();
                    lane.store(tx, absent(), guard);
                }
            }
            EntryData::Absent => {
                if lane.holds(tx, guard) {
                    lane.store(tx, absent(), guard);
                }
                if in_versions(tx) {
                    self.write_versions(location, tx, incarnation, EntryData::Absent, guard);
                }
            }
            EntryData::Estimate => {
                let (in_lane, in_versions) = (lane.holds(tx, guard), in_versions(tx));
                if in_lane || !in_versions {
                    lane.store(
                        tx,
                        EntryState {
                            incarnation,
                            data: EntryData::Estimate,
                        },
                        guard,
                    );
                }
                if in_versions {
                    self.write_versions(location, tx, incarnation, EntryData::Estimate, guard);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use revm::primitives::U256;
    use revm::state::AccountInfo;

    use super::*;
    use crate::mv_memory::{AccountDigest, AccountValue, BaseValue, Read, ReadOrigin, storage};

    /// What one transaction does at the account location in the fee-lane comparison.
    #[derive(Debug, Clone)]
    enum AccountOp {
        /// Records an incarnation: a fee, a plain balance, or nothing at the location (plus,
        /// always, a storage write elsewhere so that the record is not empty).
        Record {
            tx: TxIdx,
            write: Option<(bool, u64)>,
        },
        Estimate {
            tx: TxIdx,
        },
        Read {
            tx: TxIdx,
        },
    }

    fn account_op() -> impl Strategy<Value = AccountOp> {
        prop_oneof![
            (0..8u32, prop::option::of((any::<bool>(), 0..1_000u64)))
                .prop_map(|(tx, write)| AccountOp::Record { tx, write }),
            (0..8u32).prop_map(|tx| AccountOp::Estimate { tx }),
            (0..9u32).prop_map(|tx| AccountOp::Read { tx }),
        ]
    }

    fn balance(value: u64) -> WriteValue {
        WriteValue::Account(AccountValue {
            info: Some(AccountInfo {
                balance: U256::from(value),
                ..AccountInfo::default()
            }),
            wiped_at: None,
        })
    }

    proptest! {
        /// With the fee lane, and with the first writer's solo entry, the fee location
        /// reads, validates and resolves exactly as with every entry in its skip list,
        /// through any mix of fees, plain values, dropped writes and estimates.
        #[test]
        fn the_fee_lane_and_solo_entries_agree_with_the_skip_list(ops in prop::collection::vec(account_op(), 1..60)) {
            let fee_location = LocId(0);
            let other = LocId(1);
            let plain = MvMemory::new(8, 2, true).without_solo_entries();
            let solo = MvMemory::new(8, 2, true);
            let laned = MvMemory::new(8, 2, true).with_fee_lane(fee_location);
            let base = AccountValue { info: None, wiped_at: None };
            for memory in [&plain, &solo, &laned] {
                memory.set_base(fee_location, BaseValue::Account(base.clone()));
            }
            let mut incarnations = [0u32; 8];
            let mut estimated = [false; 8];
            for op in ops {
                match op {
                    AccountOp::Record { tx, write } => {
                        incarnations[tx as usize] += 1;
                        estimated[tx as usize] = false;
                        let mut writes = vec![(other, storage(u64::from(tx)))];
                        if let Some((fee, amount)) = write {
                            let value = if fee { WriteValue::Credit(U256::from(amount)) } else { balance(amount) };
                            writes.push((fee_location, value));
                        }
                        let incarnation = incarnations[tx as usize];
                        let wrote_new = plain.record(tx, incarnation, writes.clone());
                        prop_assert_eq!(wrote_new, solo.record(tx, incarnation, writes.clone()));
                        prop_assert_eq!(wrote_new, laned.record(tx, incarnation, writes));
                    }
                    AccountOp::Estimate { tx } => {
                        let incarnation = incarnations[tx as usize];
                        for memory in [&plain, &solo, &laned] {
                            memory.mark_estimates(tx, incarnation);
                        }
                        estimated[tx as usize] = true;
                    }
                    AccountOp::Read { tx } => {
                        let expected = format!("{:?}", plain.read(fee_location, tx));
                        for memory in [&solo, &laned] {
                            prop_assert_eq!(&expected, &format!("{:?}", memory.read(fee_location, tx)));
                        }
                        let digest = plain
                            .resolved_value(fee_location, plain.read(fee_location, tx))
                            .map(|value| AccountDigest::of(&value));
                        if let Some(digest) = digest {
                            let read = Read { location: fee_location, origin: ReadOrigin::Resolved(&digest) };
                            let valid = plain.validate(tx, std::slice::from_ref(&read));
                            prop_assert_eq!(valid, solo.validate(tx, std::slice::from_ref(&read)));
                            prop_assert_eq!(valid, laned.validate(tx, &[read]));
                        }
                        // A lazily credited recipient's read (the lane forbids it).
                        let read = Read { location: fee_location, origin: ReadOrigin::NoCode };
                        prop_assert_eq!(
                            plain.validate(tx, std::slice::from_ref(&read)),
                            solo.validate(tx, &[read])
                        );
                        prop_assert_eq!(plain.only_credits(fee_location), solo.only_credits(fee_location));
                    }
                }
                prop_assert_eq!(plain.is_written(fee_location), solo.is_written(fee_location));
                prop_assert_eq!(plain.is_written(fee_location), laned.is_written(fee_location));
            }
            if !estimated.iter().any(|e| *e) {
                let expected = plain.final_account(fee_location, &base.info);
                prop_assert_eq!(&expected, &solo.final_account(fee_location, &base.info));
                prop_assert_eq!(&expected, &laned.final_account(fee_location, &base.info));
            }
        }
    }
}
