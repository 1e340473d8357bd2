//! A committed transaction's write set, read back for the commit frontier's fold of the
//! block's state (`parallel::fold`): [`MvMemory::committed_writes`].
//!
//! Once a transaction is committed no incarnation of it runs again and no validator aborts
//! it, so its entries (in its locations' versions or, at the fee location, in the lane) are
//! final: they hold exactly what its last incarnation wrote.

use crossbeam_epoch as epoch;

use super::{EntryData, LocId, MvMemory, TxIdx, WriteValue};
use crate::sync::lock;

impl MvMemory {
    /// Hands each location that committed transaction `tx` wrote, with the value it wrote,
    /// to `visit`, in location order; stops at `visit`'s first error.
    pub(crate) fn committed_writes<E>(
        &self,
        tx: TxIdx,
        mut visit: impl FnMut(LocId, &WriteValue) -> Result<(), E>,
    ) -> Result<(), E> {
        let written = lock(&self.last_writes[tx as usize]);
        let guard = epoch::pin();
        for location in written.iter() {
            let in_lane = self
                .lane_at(*location)
                .and_then(|lane| lane.load(tx, &guard))
                .filter(|state| !matches!(state.data, EntryData::Absent));
            // A transaction's entry at the fee location is in the lane or in the versions,
            // never holding a value in both (see `fee_lane`).
            let state = match in_lane {
                Some(state) => Some(state),
                None => self
                    .cell(*location)
                    .versions
                    .find(tx, &guard)
                    .map(|found| found.entry().load(&guard)),
            };
            match state.map(|state| &state.data) {
                Some(EntryData::Written(value)) => visit(*location, value)?,
                Some(EntryData::Estimate) => {
                    unreachable!("transaction {tx} is committed: its entries are not estimates")
                }
                // A location of the last write list always holds the transaction's value.
                Some(EntryData::Absent) | None => {
                    unreachable!(
                        "transaction {tx}'s last write list names a location it does not hold"
                    )
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use revm::primitives::U256;

    use super::*;
    use crate::mv_memory::storage;

    fn writes_of(memory: &MvMemory, tx: TxIdx) -> Vec<(LocId, WriteValue)> {
        let mut seen = Vec::new();
        memory
            .committed_writes(tx, |location, value| {
                seen.push((location, value.clone()));
                Ok::<_, ()>(())
            })
            .unwrap();
        seen
    }

    #[test]
    fn committed_writes_are_the_last_incarnations_values_lane_included() {
        let fee = LocId(0);
        let memory = MvMemory::new(3, 4, true).with_fee_lane(fee);
        let credit = |amount: u64| WriteValue::Credit(U256::from(amount));
        memory.record(0, 0, vec![(LocId(2), storage(1)), (fee, credit(5))]);
        memory.record(1, 0, vec![(LocId(3), storage(2)), (fee, credit(6))]);
        // Transaction 1's second incarnation drops one location and writes another.
        memory.mark_estimates(1, 0);
        memory.record(1, 1, vec![(LocId(1), storage(3)), (fee, credit(7))]);
        assert_eq!(
            writes_of(&memory, 0),
            vec![(fee, credit(5)), (LocId(2), storage(1))]
        );
        assert_eq!(
            writes_of(&memory, 1),
            vec![(fee, credit(7)), (LocId(1), storage(3))]
        );
        assert_eq!(writes_of(&memory, 2), vec![], "wrote nothing");
        // The visitor's error stops the walk.
        let mut visited = 0;
        let outcome = memory.committed_writes(1, |_, _| {
            visited += 1;
            Err("stop")
        });
        assert_eq!((outcome, visited), (Err("stop"), 1));
    }
}
