//! Memory locations and their dense ids.
//!
//! A [`Location`] is what a transaction reads or writes: an account's basic info (balance,
//! nonce, code hash) or one storage slot. Each gets a dense [`LocId`] so that MvMemory keeps
//! its cells in an array and read sets hold plain integers. Locations the block predicts
//! (senders, recipients, access lists) are indexed by the workers as they start, each for its
//! share of the transactions, ahead of execution; the beneficiary is id 0; locations met during
//! execution are added on the fly. An id, once given, never changes for the rest of the block.
//! Each transaction keeps the ids of its sender and recipient ([`TxAccounts`]), so that its
//! incarnations resolve the accounts they read most without a look-up in the shared map.

use std::sync::OnceLock;

use dashmap::DashMap;
use revm::context::TxEnv;
use revm::primitives::{Address, TxKind, U256};

use crate::segmented_vec::SegmentedVec;
use crate::sync::{AtomicUsize, Ordering};

/// A memory location of the EVM state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Location {
    /// Balance, nonce and code hash of an account (and whether it exists).
    Account(Address),
    /// One storage slot.
    Storage(Address, U256),
}

/// Dense id of a [`Location`] within one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct LocId(pub(crate) u32);

impl LocId {
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

type FastBuildHasher = revm::primitives::map::DefaultHashBuilder;

/// Most shards of the location map (a power of two).
const MAX_SHARDS: usize = 256;
/// Expected locations per shard below [`MAX_SHARDS`]: small blocks get fewer shards, so that
/// building and dropping the map costs little.
const LOCATIONS_PER_SHARD: usize = 64;

/// The ids of the accounts one transaction surely touches, found once per transaction so
/// that its incarnations resolve them without a look-up in the shared map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxAccounts {
    /// The sender.
    pub(crate) caller: (Address, LocId),
    /// The recipient of a call (`None` for a creation).
    pub(crate) to: Option<(Address, LocId)>,
}

/// The block's location index: location to id, concurrently extensible.
pub(crate) struct LocationIndex {
    ids: DashMap<Location, LocId, FastBuildHasher>,
    next: AtomicUsize,
    /// Each id's location, set by the thread that gave the id before the id is published in
    /// the map: output assembly walks ids in order instead of the map.
    locations: SegmentedVec<OnceLock<Location>>,
    /// Per transaction, its [`TxAccounts`], set by the first worker to ask.
    tx_accounts: Vec<OnceLock<TxAccounts>>,
}

impl LocationIndex {
    /// The beneficiary's id: it is indexed first.
    pub(crate) const BENEFICIARY: LocId = LocId(0);

    /// An empty index for a block of `txs` transactions, with room for about `capacity`
    /// locations, holding `beneficiary` ([`Self::BENEFICIARY`]).
    pub(crate) fn new(beneficiary: Address, txs: usize, capacity: usize) -> Self {
        let index = Self {
            // Many shards for large blocks: two workers rarely share a shard's lock word (a
            // read lock still writes it), which would bounce its cache line between cores.
            ids: DashMap::with_capacity_and_hasher_and_shard_amount(
                capacity,
                FastBuildHasher::default(),
                (capacity / LOCATIONS_PER_SHARD)
                    .next_power_of_two()
                    .clamp(8, MAX_SHARDS),
            ),
            next: AtomicUsize::new(0),
            // Buckets are allocated by the workers that first give an id in them.
            locations: SegmentedVec::with_capacity(0),
            tx_accounts: (0..txs).map(|_| OnceLock::new()).collect(),
        };
        let id = index.id(Location::Account(beneficiary));
        debug_assert_eq!(id, Self::BENEFICIARY);
        index
    }

    /// An index holding the locations `block_txs` predict, with `beneficiary` first.
    #[cfg(test)]
    pub(crate) fn predicted(beneficiary: Address, block_txs: &[TxEnv]) -> Self {
        let index = Self::new(beneficiary, block_txs.len(), block_txs.len() * 4);
        for (position, tx) in block_txs.iter().enumerate() {
            index.tx_accounts(position, tx);
        }
        index
    }

    /// The ids of the sender and recipient of `tx`, the transaction at `position` in the
    /// block. The first call for a transaction also indexes everything it will surely touch
    /// (sender, recipient, EIP-2930 access list): workers call it for their share of the block
    /// as they start, and whoever executes a transaction first otherwise.
    pub(crate) fn tx_accounts(&self, position: usize, tx: &TxEnv) -> TxAccounts {
        *self.tx_accounts[position].get_or_init(|| self.index_tx(tx))
    }

    fn index_tx(&self, tx: &TxEnv) -> TxAccounts {
        let caller = (tx.caller, self.id(Location::Account(tx.caller)));
        let to = match tx.kind {
            TxKind::Call(to) => Some((to, self.id(Location::Account(to)))),
            TxKind::Create => None,
        };
        for item in tx.access_list.iter() {
            self.id(Location::Account(item.address));
            for key in &item.storage_keys {
                self.id(Location::Storage(item.address, (*key).into()));
            }
        }
        TxAccounts { caller, to }
    }

    /// The id of `location`, giving it the next free id on first sight.
    pub(crate) fn id(&self, location: Location) -> LocId {
        if let Some(id) = self.ids.get(&location) {
            return *id;
        }
        *self.ids.entry(location).or_insert_with(|| {
            // Relaxed: ids only need to be unique; the map's shard lock publishes them.
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            // Only this thread sets it, and only here: the id is new.
            let _ = self.locations.get(id).set(location);
            LocId(u32::try_from(id).expect("fewer than 2^32 locations in a block"))
        })
    }

    /// Number of ids given so far. Once the block's workers are joined, every id below it
    /// has its location (see [`Self::location`]).
    pub(crate) fn len(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    /// The location of `id`, an id this index gave (for output assembly, after execution).
    pub(crate) fn location(&self, id: LocId) -> Location {
        *self
            .locations
            .get(id.index())
            .get()
            .expect("a location is recorded before its id is published")
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(index.id(slot), LocId(3));
        assert_eq!(index.id(slot), LocId(3), "ids are stable");
        assert_eq!(index.len(), 4);
    }

    #[test]
    fn a_transactions_accounts_are_found_once_and_agree_with_the_map() {
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
        let index = LocationIndex::new(Address::ZERO, 2, 8);
        let first = index.tx_accounts(0, &call);
        assert_eq!(first.caller, (a, index.id(Location::Account(a))));
        assert_eq!(first.to, Some((b, index.id(Location::Account(b)))));
        assert_eq!(
            index.tx_accounts(0, &call),
            first,
            "kept for the transaction"
        );
        let created = index.tx_accounts(1, &create);
        assert_eq!(created.caller.1, first.to.unwrap().1);
        assert_eq!(created.to, None);
        assert_eq!(
            index.id(Location::Account(Address::ZERO)),
            LocationIndex::BENEFICIARY
        );
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
