//! Memory locations and their dense ids.
//!
//! A [`Location`] is what a transaction reads or writes: an account's basic info (balance,
//! nonce, code hash) or one storage slot. Each gets a dense [`LocId`] so that MvMemory keeps
//! its cells in an array and read sets hold plain integers. Locations the block predicts
//! (senders, recipients, access lists) are indexed by the workers as they start, each for its
//! share of the transactions, ahead of execution; the beneficiary is id 0; locations met during
//! execution are added on the fly. An id, once given, never changes for the rest of the block.

use dashmap::DashMap;
use revm::context::TxEnv;
use revm::primitives::{Address, TxKind, U256};

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

/// Shards of the location map (a power of two).
const SHARDS: usize = 256;

/// The block's location index: location to id, concurrently extensible.
pub(crate) struct LocationIndex {
    ids: DashMap<Location, LocId, FastBuildHasher>,
    next: AtomicUsize,
}

impl LocationIndex {
    /// An empty index with room for about `capacity` locations, holding `beneficiary` (id 0).
    pub(crate) fn new(beneficiary: Address, capacity: usize) -> Self {
        let index = Self {
            // Many shards: two workers rarely share a shard's lock word (a read lock still
            // writes it), which would bounce its cache line between cores.
            ids: DashMap::with_capacity_and_hasher_and_shard_amount(
                capacity,
                FastBuildHasher::default(),
                SHARDS,
            ),
            next: AtomicUsize::new(0),
        };
        index.id(Location::Account(beneficiary));
        index
    }

    /// An index holding the locations `block_txs` predict, with `beneficiary` first.
    #[cfg(test)]
    pub(crate) fn predicted(beneficiary: Address, block_txs: &[TxEnv]) -> Self {
        let index = Self::new(beneficiary, block_txs.len() * 4);
        block_txs.iter().for_each(|tx| index.predict(tx));
        index
    }

    /// Indexes the locations `tx` will surely touch: its sender, its recipient and its
    /// EIP-2930 access list. Workers call it for their share of the block as they start.
    pub(crate) fn predict(&self, tx: &TxEnv) {
        self.id(Location::Account(tx.caller));
        if let TxKind::Call(to) = tx.kind {
            self.id(Location::Account(to));
        }
        for item in tx.access_list.iter() {
            self.id(Location::Account(item.address));
            for key in &item.storage_keys {
                self.id(Location::Storage(item.address, (*key).into()));
            }
        }
    }

    /// The id of `location`, giving it the next free id on first sight.
    pub(crate) fn id(&self, location: Location) -> LocId {
        if let Some(id) = self.ids.get(&location) {
            return *id;
        }
        *self.ids.entry(location).or_insert_with(|| {
            // Relaxed: ids only need to be unique; the map's shard lock publishes them.
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            LocId(u32::try_from(id).expect("fewer than 2^32 locations in a block"))
        })
    }

    /// Every location with its id (for output assembly, after execution).
    pub(crate) fn entries(&self) -> Vec<(Location, LocId)> {
        self.ids
            .iter()
            .map(|entry| (*entry.key(), *entry.value()))
            .collect()
    }

    /// Number of ids given so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.next.load(Ordering::Relaxed)
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
