//! The block's final values once every transaction is final: the last value at each account
//! ([`MvMemory::final_account`], lazy credits applied) and storage slot
//! ([`MvMemory::final_storage`]), and whether a location was written at all
//! ([`MvMemory::is_written`]). Test-only: the oracle of the representation tests (solo
//! entries, skip list, fee lane); the engine reads each committed transaction's write set
//! instead (`committed`).
//!
//! By then no transaction writes any more and no entry is an estimate: these walks see each
//! location's final versions.

use crossbeam_epoch as epoch;
use revm::primitives::U256;
use revm::state::AccountInfo;
use smallvec::SmallVec;

use super::fee_lane::FeeLane;
use super::{AccountValue, Credit, EntryData, LocId, MvMemory, TxIdx, WriteValue, apply_credit};

impl MvMemory {
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

    /// [`final_account`](Self::final_account) at the fee lane's location: the last plain
    /// value (or `base`), with the fees of the transactions after it credited in order.
    fn final_account_with_lane(
        &self,
        location: LocId,
        lane: &FeeLane,
        base: &Option<AccountInfo>,
    ) -> Option<AccountValue> {
        let guard = epoch::pin();
        let mut last_plain = None;
        for (writer, state) in self.cell(location).versions.ascending(&guard) {
            match &state.data {
                EntryData::Absent => {}
                EntryData::Written(WriteValue::Account(value)) => {
                    last_plain = Some((writer, value));
                }
                EntryData::Written(_) | EntryData::Estimate => {
                    unreachable!("after execution, the fee location holds account values")
                }
            }
        }
        let floor = last_plain.map_or(0, |(writer, _)| writer as usize + 1);
        let mut value = last_plain.map(|(_, value)| value.clone());
        for writer in floor..lane.len() {
            let writer = writer as TxIdx;
            match lane.load(writer, &guard).map(|state| &state.data) {
                None | Some(EntryData::Absent) => {}
                Some(EntryData::Written(WriteValue::Credit(fee))) => {
                    let start = value.take().unwrap_or_else(|| AccountValue {
                        info: base.clone(),
                        wiped_at: None,
                    });
                    value = Some(apply_credit(
                        start,
                        (writer, *fee),
                        self.delete_touched_empty,
                    ));
                }
                Some(_) => unreachable!("after execution, the fee lane holds fees only"),
            }
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mv_memory::{BaseValue, storage};

    fn account(balance: u64) -> AccountValue {
        AccountValue {
            info: Some(AccountInfo {
                balance: U256::from(balance),
                ..AccountInfo::default()
            }),
            wiped_at: None,
        }
    }

    #[test]
    fn final_values_are_the_last_writers_with_later_credits_applied() {
        let memory = MvMemory::new(4, 3, true);
        let (credited, plain, slot) = (LocId(0), LocId(1), LocId(2));
        let base = account(10).info;
        memory.set_base(credited, BaseValue::Account(account(10)));
        assert!(!memory.is_written(credited));
        assert_eq!(memory.final_account(credited, &base), None);
        memory.record(0, 0, vec![(credited, WriteValue::Credit(U256::from(1)))]);
        memory.record(1, 0, vec![(plain, WriteValue::Credit(U256::from(2)))]);
        memory.record(2, 0, vec![(plain, WriteValue::Account(account(100)))]);
        memory.record(
            3,
            0,
            vec![
                (plain, WriteValue::Credit(U256::from(3))),
                (slot, storage(7)),
            ],
        );
        // Only credits: on top of the base value.
        assert_eq!(memory.final_account(credited, &base), Some(account(11)));
        // The credit before the plain value is overwritten, the one after it applies.
        assert_eq!(memory.final_account(plain, &None), Some(account(103)));
        assert_eq!(memory.final_storage(slot), Some((3, U256::from(7))));
        assert!(memory.is_written(credited) && memory.is_written(slot));
    }
}
