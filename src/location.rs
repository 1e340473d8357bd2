//! Memory locations and their dense ids.
//!
//! A [`Location`] is what a transaction reads or writes: an account's basic info (balance,
//! nonce, code hash) or one storage slot. Each gets a dense [`LocId`] so that MvMemory keeps
//! its cells in an array and read sets hold plain integers. The accounts the block names
//! before it runs (the beneficiary, id 0, then senders, recipients and access-list addresses:
//! [`PredictedAccounts`]) get their ids in the block's plan, in the same pass that finds the
//! plan's dependencies (which it keeps by these ids), and are looked up during execution in
//! that map, read-only (no lock, no shared write); locations met during execution are added on the
//! fly to a lock-free table ([`id_table`]: one compare-and-swap per new location). An id, once
//! given, never changes for the rest of the block. Each transaction's plan keeps the ids of
//! its sender and recipient ([`TxAccounts`]), so that its incarnations resolve the accounts
//! they read most without a look-up at all. Accounts that a large block names only after its
//! planned prefix are given their ids by the planner through the same table, while the
//! workers run (see `plan`).

mod id_table;

use std::sync::OnceLock;

use revm::primitives::map::AddressMap;
use revm::primitives::{Address, U256};

use self::id_table::{IdTable, Slot};
use crate::segmented_vec::SegmentedVec;
use crate::sync::{AtomicUsize, Ordering};
use crate::types::LocId;

/// A memory location of the EVM state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Location {
    /// Balance, nonce and code hash of an account (and whether it exists).
    Account(Address),
    /// One storage slot.
    Storage(Address, U256),
}

/// The ids of the accounts one transaction surely touches (their addresses are the
/// transaction's own), found once per transaction (in the plan) so that its incarnations
/// resolve them without a look-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxAccounts {
    /// The sender's.
    pub(crate) caller: LocId,
    /// The recipient's, for a call (`None` for a creation).
    pub(crate) to: Option<LocId>,
}

/// The accounts a block names before it runs, with dense ids in order of first mention (the
/// beneficiary first: [`LocationIndex::BENEFICIARY`]). Built by the plan in one pass over the
/// block (or its prefix); read-only once the index holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PredictedAccounts {
    accounts: AddressMap<LocId>,
    /// Each predicted id's address, by id.
    addresses: Vec<Address>,
}

impl PredictedAccounts {
    /// The beneficiary alone, with room for the accounts of `txs` transactions.
    pub(crate) fn new(beneficiary: Address, txs: usize) -> Self {
        let mut predicted = Self {
            accounts: AddressMap::with_capacity_and_hasher(txs * 2 + 1, Default::default()),
            addresses: Vec::with_capacity(txs * 2 + 1),
        };
        let id = predicted.account(beneficiary);
        debug_assert_eq!(id, LocationIndex::BENEFICIARY);
        predicted
    }

    /// `address`'s id, giving it the next one on first mention.
    pub(crate) fn account(&mut self, address: Address) -> LocId {
        let next = self.addresses.len();
        *self.accounts.entry(address).or_insert_with(|| {
            self.addresses.push(address);
            LocId(u32::try_from(next).expect("fewer than 2^32 locations in a block"))
        })
    }

    fn id(&self, address: &Address) -> Option<LocId> {
        self.accounts.get(address).copied()
    }

    /// Number of dense ids given.
    pub(crate) fn len(&self) -> usize {
        self.addresses.len()
    }
}

/// What a block's location index leaves for the next block: its id table and location
/// records, emptied ([`LocationIndex::into_recycled`]).
pub(crate) struct RecycledIndex {
    ids: IdTable,
    locations: SegmentedVec<OnceLock<Location>>,
}

/// The block's location index: location to id, concurrently extensible.
pub(crate) struct LocationIndex {
    /// Ids `0..predicted.len()`: read-only.
    predicted: PredictedAccounts,
    /// Locations met during execution, with ids from `predicted.len()` on.
    ids: IdTable,
    next: AtomicUsize,
    /// Each id's location from `predicted.len()` on, set by the thread that gave the id before
    /// the id is published in the table: the table compares locations here, and the commit
    /// fold reads the location of each id a transaction wrote.
    locations: SegmentedVec<OnceLock<Location>>,
}

impl LocationIndex {
    /// The beneficiary's id: it is predicted first.
    pub(crate) const BENEFICIARY: LocId = LocId(0);

    /// An index holding the `predicted` accounts, with room for about `expected` locations
    /// met during execution.
    #[cfg(any(test, loom))]
    pub(crate) fn new(predicted: PredictedAccounts, expected: usize) -> Self {
        Self::recycling(predicted, expected, None)
    }

    /// [`new`](Self::new), on an earlier block's `recycled` index when there is one: its
    /// table and location records are reused, emptied, so that a block's first sight of a
    /// location does not fault fresh pages in.
    pub(crate) fn recycling(
        predicted: PredictedAccounts,
        expected: usize,
        recycled: Option<RecycledIndex>,
    ) -> Self {
        let first_unpredicted = predicted.len();
        let (ids, locations) = match recycled {
            Some(RecycledIndex { ids, locations }) => {
                (IdTable::recycling(expected, ids), locations)
            }
            // Buckets of locations are allocated by the workers that first give an id in them.
            None => (IdTable::new(expected), SegmentedVec::with_capacity(0)),
        };
        Self {
            predicted,
            ids,
            next: AtomicUsize::new(first_unpredicted),
            locations,
        }
    }

    /// Empties this index for another block, keeping its table's and location records'
    /// allocations. Costs a pass over the table and the records given.
    pub(crate) fn into_recycled(self) -> RecycledIndex {
        let unpredicted = self.unpredicted();
        let Self {
            mut ids,
            mut locations,
            ..
        } = self;
        ids.reset();
        locations.reset(unpredicted);
        RecycledIndex { ids, locations }
    }

    /// Number of ids given to locations met during execution (not predicted by the plan).
    pub(crate) fn unpredicted(&self) -> usize {
        self.len() - self.predicted.len()
    }

    /// An index holding the accounts `block_txs` name, with `beneficiary` first (the plan's).
    #[cfg(test)]
    pub(crate) fn predicted(beneficiary: Address, block_txs: &[revm::context::TxEnv]) -> Self {
        let mut plan = crate::plan::BlockPlan::new(block_txs, beneficiary);
        Self::new(plan.take_predicted(), block_txs.len() * 4)
    }

    /// The id of `location`, giving it the next free id on first sight.
    pub(crate) fn id(&self, location: Location) -> LocId {
        if let Location::Account(address) = &location
            && let Some(id) = self.predicted.id(address)
        {
            return id;
        }
        let unpredicted = |id: LocId| self.locations.get(id.index() - self.predicted.len());
        let is_location = |id: LocId| unpredicted(id).get() == Some(&location);
        match self
            .ids
            .find_or_claim(self.ids.hash(&location), is_location)
        {
            Slot::Found(id) => id,
            Slot::Claimed(claim) => {
                // Relaxed: ids only need to be unique; `publish` releases the location.
                let id = self.next.fetch_add(1, Ordering::Relaxed);
                let id = LocId(u32::try_from(id).expect("fewer than 2^32 locations in a block"));
                // Only this thread sets it, and only here: the id is new.
                let _ = unpredicted(id).set(location);
                claim.publish(id);
                id
            }
        }
    }

    /// The id of `location`, if it has one (never gives one).
    pub(crate) fn find(&self, location: Location) -> Option<LocId> {
        if let Location::Account(address) = &location
            && let Some(id) = self.predicted.id(address)
        {
            return Some(id);
        }
        let unpredicted = |id: LocId| self.locations.get(id.index() - self.predicted.len());
        let is_location = |id: LocId| unpredicted(id).get() == Some(&location);
        self.ids.find(self.ids.hash(&location), is_location)
    }

    /// Number of ids given so far. Once the block's workers are joined, every id below it
    /// has its location (see [`Self::location`]).
    pub(crate) fn len(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    /// The location of `id`, an id this index gave (for the commit fold).
    pub(crate) fn location(&self, id: LocId) -> Location {
        match self.predicted.addresses.get(id.index()) {
            Some(address) => Location::Account(*address),
            None => *self
                .locations
                .get(id.index() - self.predicted.len())
                .get()
                .expect("a location is recorded before its id is published"),
        }
    }
}

#[cfg(test)]
mod tests {
    use revm::context::TxEnv;
    use revm::primitives::TxKind;

    use super::*;

    #[test]
    fn predicted_locations_get_the_lowest_dense_ids() {
        let (a, b, beneficiary) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(9),
        );
        let txs = vec![
            TxEnv {
                caller: a,
                kind: TxKind::Call(b),
                ..TxEnv::default()
            },
            TxEnv {
                caller: b,
                kind: TxKind::Call(a),
                ..TxEnv::default()
            },
        ];
        let index = LocationIndex::predicted(beneficiary, &txs);
        assert_eq!(index.len(), 3);
        assert_eq!(index.id(Location::Account(beneficiary)), LocId(0));
        assert_eq!(index.id(Location::Account(a)), LocId(1));
        assert_eq!(index.id(Location::Account(b)), LocId(2));
        let slot = Location::Storage(a, U256::from(7));
        assert_eq!(index.find(slot), None, "find gives no id");
        assert_eq!(index.len(), 3);
        assert_eq!(index.id(slot), LocId(3));
        assert_eq!(index.id(slot), LocId(3), "ids are stable");
        assert_eq!(index.len(), 4);
        assert_eq!(index.find(slot), Some(LocId(3)));
        assert_eq!(index.find(Location::Account(b)), Some(LocId(2)));
        assert_eq!(index.find(Location::Account(Address::repeat_byte(5))), None);
        assert_eq!(index.find(Location::Storage(a, U256::from(8))), None);
    }

    #[test]
    fn a_transactions_accounts_come_from_the_plan_and_agree_with_the_map() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let call = TxEnv {
            caller: a,
            kind: TxKind::Call(b),
            ..TxEnv::default()
        };
        let create = TxEnv {
            caller: b,
            kind: TxKind::Create,
            ..TxEnv::default()
        };
        let mut plan = crate::plan::BlockPlan::new(&[call, create], Address::ZERO);
        let index = LocationIndex::new(plan.take_predicted(), 8);
        let first = plan.planned(0).unwrap().accounts;
        assert_eq!(first.caller, index.id(Location::Account(a)));
        assert_eq!(first.to, Some(index.id(Location::Account(b))));
        let created = plan.planned(1).unwrap().accounts;
        assert_eq!(created.caller, first.to.unwrap());
        assert_eq!(created.to, None);
        assert_eq!(
            index.id(Location::Account(Address::ZERO)),
            LocationIndex::BENEFICIARY
        );
        // An account met during execution gets the next id after the predicted ones, and
        // its location is recorded for the commit fold.
        let other = Address::repeat_byte(3);
        assert_eq!(index.id(Location::Account(other)), LocId(3));
        assert_eq!(index.location(LocId(3)), Location::Account(other));
        assert_eq!(index.location(LocId(1)), Location::Account(a));
        assert_eq!(index.len(), 4);
    }

    #[test]
    fn access_list_addresses_are_predicted_and_their_slots_indexed_on_the_fly() {
        let (a, b, listed) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(7),
        );
        let tx = TxEnv {
            caller: a,
            kind: TxKind::Call(b),
            access_list: vec![revm::context_interface::transaction::AccessListItem {
                address: listed,
                storage_keys: vec![revm::primitives::B256::with_last_byte(5)],
            }]
            .into(),
            ..TxEnv::default()
        };
        let index = LocationIndex::predicted(Address::ZERO, &[tx]);
        assert_eq!(index.len(), 4, "beneficiary, sender, recipient, listed");
        assert_eq!(index.id(Location::Account(listed)), LocId(3));
        let slot = Location::Storage(listed, U256::from(5));
        assert_eq!(index.id(slot), LocId(4));
        assert_eq!(index.location(LocId(4)), slot);
    }

    #[test]
    fn a_recycled_index_forgets_the_last_blocks_locations() {
        let slot = |key: u64| Location::Storage(Address::repeat_byte(1), U256::from(key));
        let first = LocationIndex::predicted(Address::ZERO, &[]);
        let first_ids: Vec<LocId> = (0..300).map(|key| first.id(slot(key))).collect();
        assert_eq!(first_ids[299], LocId(300));
        let recycled = first.into_recycled();
        // The next block names another account first: its ids start after it.
        let txs = [TxEnv {
            caller: Address::repeat_byte(7),
            kind: TxKind::Create,
            ..TxEnv::default()
        }];
        let mut plan = crate::plan::BlockPlan::new(&txs, Address::ZERO);
        let index = LocationIndex::recycling(plan.take_predicted(), 10, Some(recycled));
        assert_eq!(index.len(), 2);
        assert!((0..300).all(|key| index.find(slot(key)).is_none()));
        assert_eq!(index.id(slot(299)), LocId(2));
        assert_eq!(index.location(LocId(2)), slot(299));
        assert_eq!(index.id(slot(0)), LocId(3));
        assert_eq!(index.location(LocId(3)), slot(0));
        assert_eq!(index.find(slot(299)), Some(LocId(2)));
        assert_eq!(index.unpredicted(), 2);
    }

    #[test]
    fn concurrent_first_sightings_agree_on_one_id() {
        let index = LocationIndex::predicted(Address::ZERO, &[]);
        let ids: Vec<Vec<LocId>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..500u64)
                            .map(|i| index.id(Location::Storage(Address::ZERO, U256::from(i))))
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(index.len(), 501);
        let mut sorted = ids[0].clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 500, "ids are unique");
    }
}
