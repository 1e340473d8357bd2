//! The location index's lock-free id table (`src/location/id_table.rs`), model-checked with
//! loom.
//!
//! Two threads meet the same two new storage slots in opposite orders on a real
//! [`LocationIndex`] whose first tier (4 slots under loom, one probe window) holds three
//! other locations: the two racing locations take its last slot and one of the next tier's.
//! Every explored execution checks that both threads get the same id for each location,
//! that the ids are new and distinct, and that each id's recorded location is the one it was
//! given for. Over all executions, each of the two locations must have been given the lower id
//! at least once (the threads raced both ways).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use revm::primitives::{Address, U256};

use super::{STACK_WORDS, explore};
use crate::location::{Location, LocationIndex, PredictedAccounts};
use crate::types::LocId;

fn slot(key: u64) -> Location {
    Location::Storage(Address::repeat_byte(7), U256::from(key))
}

#[test]
fn loom_location_ids_first_sightings_race() {
    // Which of the two locations got the lower id (4), over all executions.
    let seen = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let observed = Arc::clone(&seen);
    explore("location_ids_first_sightings_race", 0, move || {
        let index = Arc::new(LocationIndex::new(
            PredictedAccounts::new(Address::ZERO, 0),
            1,
        ));
        let filled: Vec<LocId> = (0..3).map(|key| index.id(slot(key))).collect();
        assert_eq!(filled, [LocId(1), LocId(2), LocId(3)]);
        let other = Arc::clone(&index);
        let theirs = loom::thread::Builder::new()
            .stack_size(STACK_WORDS)
            .spawn(move || [other.id(slot(10)), other.id(slot(11))])
            .expect("spawn a model thread");
        let mine = [index.id(slot(11)), index.id(slot(10))];
        let theirs = theirs.join().unwrap();
        assert_eq!(theirs, [mine[1], mine[0]], "both threads agree on each id");
        let mut ids = [mine[0].0, mine[1].0];
        ids.sort_unstable();
        assert_eq!(ids, [4, 5], "two new, distinct ids");
        assert_eq!(index.len(), 6);
        assert_eq!(index.location(theirs[0]), slot(10));
        assert_eq!(index.location(theirs[1]), slot(11));
        assert_eq!(index.id(slot(10)), theirs[0], "ids are stable");
        observed[usize::from(mine[0] == LocId(4))].store(true, Ordering::Relaxed);
    });
    assert!(
        seen.iter().all(|winner| winner.load(Ordering::Relaxed)),
        "each location won the first id in some execution"
    );
}
