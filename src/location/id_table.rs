//! The ids of locations met during execution: an open-addressing table of atomic words that
//! finds and gives ids without locks.
//!
//! Each slot is one `AtomicU64`: zero while free; `fingerprint << 32` once a thread has claimed
//! it for a location (the fingerprint is the high half of the location's hash, never zero);
//! `fingerprint << 32 | (id + 1)` once that thread has published the location's id. A new
//! location therefore costs one compare-and-swap on a slot no other thread is likely to touch,
//! where a locked map costs a lock word that every worker writes. The table keeps no keys:
//! the caller compares the location it asks for with the one recorded for a candidate id,
//! and only when the fingerprints match.
//!
//! The table is a list of tiers, each twice the size of the one before (the buckets of a
//! [`SegmentedVec`], allocated on first use). A location's place is the first slot of its
//! probe window, in the first tier whose window has one, that was free when a thread first
//! looked for it. Slots are claimed once and never freed, so every thread looking for the
//! same location walks the same windows and stops at the same slot: two threads that race
//! for a free slot meet at it (one claims it, the other finds it claimed with the same
//! fingerprint and waits for the id), and a window that is full of other locations stays
//! full, so everyone moves on to the next tier alike. The first tier is sized for the
//! locations the block is expected to meet, so later tiers stay rare.

use std::hash::BuildHasher;

use crate::segmented_vec::{BUCKETS, SegmentedVec, bucket_len};
use crate::sync::{AtomicU64, Ordering};
use crate::types::LocId;

/// Slots tried in one tier before moving to the next (linear probing).
const PROBES: usize = 16;
/// The half of a slot's word that holds the fingerprint.
const FINGERPRINT_BITS: u64 = 0xffff_ffff_0000_0000;

#[cfg(not(loom))]
type FastBuildHasher = revm::primitives::map::DefaultHashBuilder;
/// Under loom a model must take the same steps in every execution it replays: a fixed hasher.
#[cfg(loom)]
type FastBuildHasher = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// A lock-free table of ids, keyed by the caller's locations (see the module).
pub(crate) struct IdTable {
    tiers: SegmentedVec<AtomicU64>,
    /// The smallest tier in use: sized for the expected number of locations.
    first_tier: usize,
    hasher: FastBuildHasher,
}

/// The answer of [`IdTable::find_or_claim`].
pub(crate) enum Slot<'a> {
    /// The location already has this id.
    Found(LocId),
    /// The location is new: the caller gives it an id and publishes it with [`Claim::publish`].
    /// Until then, other threads asking for the same location wait.
    Claimed(Claim<'a>),
}

/// A slot claimed for a new location, waiting for its id.
#[must_use = "threads looking for the location wait until its id is published"]
pub(crate) struct Claim<'a> {
    word: &'a AtomicU64,
    fingerprint: u64,
}

impl Claim<'_> {
    /// Publishes `id` for the claimed location. Everything the caller wrote before (the
    /// location recorded for `id`) is visible to threads that find the id.
    pub(crate) fn publish(self, id: LocId) {
        // Release: pairs with the Acquire loads in `find_or_claim`.
        self.word
            .store(self.fingerprint | (u64::from(id.0) + 1), Ordering::Release);
    }
}

impl IdTable {
    /// A table whose first tier has room for about `expected` locations.
    pub(crate) fn new(expected: usize) -> Self {
        let first_tier = Self::first_tier(expected);
        let table = Self {
            tiers: SegmentedVec::with_capacity(0),
            first_tier,
            hasher: FastBuildHasher::default(),
        };
        // Allocated here, on the thread that sets the block up, rather than by the first
        // worker to meet a new location.
        table.tiers.bucket_slice(first_tier);
        // loom sees no happens-before through the bucket pointers (std atomics): a model's
        // tiers all exist before its threads start.
        #[cfg(loom)]
        for tier in first_tier + 1..first_tier + 3 {
            table.tiers.bucket_slice(tier);
        }
        table
    }

    /// [`new`](Self::new) on the tiers of an earlier table, emptied by [`Self::reset`]: a
    /// first tier sized for `expected` is allocated only if that table had none of its size.
    pub(crate) fn recycling(expected: usize, recycled: Self) -> Self {
        let table = Self {
            first_tier: Self::first_tier(expected),
            ..recycled
        };
        table.tiers.bucket_slice(table.first_tier);
        table
    }

    /// Frees every slot (keeping the tiers), for another block.
    pub(crate) fn reset(&mut self) {
        self.tiers.reset(usize::MAX);
    }

    /// The tier sized for `expected` locations: half full at `expected`, so that probe
    /// windows stay short.
    fn first_tier(expected: usize) -> usize {
        let wanted = expected.saturating_mul(2);
        (0..BUCKETS)
            .find(|&tier| bucket_len(tier) >= wanted)
            .unwrap_or(BUCKETS - 1)
    }

    /// The hash that [`Self::find_or_claim`] takes for `key`.
    pub(crate) fn hash<K: std::hash::Hash>(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Finds the id of the location with `hash`, or claims a slot for it. `is_location(id)`
    /// says whether `id` (an id found under the same fingerprint) is the location asked for.
    pub(crate) fn find_or_claim(&self, hash: u64, is_location: impl Fn(LocId) -> bool) -> Slot<'_> {
        let fingerprint = (hash & FINGERPRINT_BITS) | (1 << 32);
        self.walk(hash, |word| self.probe(word, fingerprint, &is_location))
            .expect("the last tiers hold more locations than any block can write")
    }

    /// The id of the location with `hash`, if it has one; never claims a slot. A location
    /// whose slot is claimed but not yet published is waited for.
    pub(crate) fn find(&self, hash: u64, is_location: impl Fn(LocId) -> bool) -> Option<LocId> {
        let fingerprint = (hash & FINGERPRINT_BITS) | (1 << 32);
        self.walk(hash, |word| {
            let mut spins = 0;
            // Acquire: as in `probe`.
            let mut current = word.load(Ordering::Acquire);
            // Claimed for a location with our fingerprint: wait for its id.
            while current & FINGERPRINT_BITS == fingerprint && current as u32 == 0 {
                crate::sync::backoff(&mut spins);
                current = word.load(Ordering::Acquire);
            }
            if current == 0 {
                // A location takes the first free slot of its walk: it would be here.
                return Some(None);
            }
            let id = LocId((current as u32).wrapping_sub(1));
            (current & FINGERPRINT_BITS == fingerprint && is_location(id)).then_some(Some(id))
        })
        .flatten()
    }

    /// Visits the slots a location with `hash` may hold, in the order every thread walks
    /// them (the probe window of each tier, from the first), until `visit` answers.
    fn walk<'a, R>(
        &'a self,
        hash: u64,
        mut visit: impl FnMut(&'a AtomicU64) -> Option<R>,
    ) -> Option<R> {
        for tier in self.first_tier..BUCKETS {
            let slots = self.tiers.bucket_slice(tier);
            let mask = slots.len() - 1;
            // Each tier indexes with other bits of the hash, so that locations that share a
            // window in one tier spread out in the next.
            let mut index = hash.rotate_right(7 * (tier - self.first_tier) as u32) as usize & mask;
            for _ in 0..PROBES.min(slots.len()) {
                if let Some(answer) = visit(&slots[index]) {
                    return Some(answer);
                }
                index = (index + 1) & mask;
            }
        }
        None
    }

    /// One slot of a probe: `None` when it holds another location.
    fn probe<'a>(
        &self,
        word: &'a AtomicU64,
        fingerprint: u64,
        is_location: &impl Fn(LocId) -> bool,
    ) -> Option<Slot<'a>> {
        let mut spins = 0;
        // Acquire: a published id's location (written before the Release in `publish`) is
        // visible to `is_location`.
        let mut current = word.load(Ordering::Acquire);
        loop {
            if current == 0 {
                match word.compare_exchange(0, fingerprint, Ordering::Acquire, Ordering::Acquire) {
                    Ok(_) => return Some(Slot::Claimed(Claim { word, fingerprint })),
                    Err(claimed) => {
                        current = claimed;
                        continue;
                    }
                }
            }
            if current & FINGERPRINT_BITS != fingerprint {
                return None;
            }
            let published = current as u32;
            if published == 0 {
                // Claimed for a location with our fingerprint (probably ours): its id is a
                // few instructions away.
                crate::sync::backoff(&mut spins);
                current = word.load(Ordering::Acquire);
                continue;
            }
            let id = LocId(published - 1);
            return is_location(id).then_some(Slot::Found(id));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Keys are their ids; `hash` decides where they go.
    fn id_of(table: &IdTable, key: u32, hash: u64) -> LocId {
        match table.find_or_claim(hash, |id| id.0 == key) {
            Slot::Found(id) => id,
            Slot::Claimed(claim) => {
                claim.publish(LocId(key));
                LocId(key)
            }
        }
    }

    #[test]
    fn a_full_window_sends_locations_to_the_next_tier_alike() {
        let table = IdTable::new(1);
        // Every key in the same window of the first tier, with distinct fingerprints: the
        // later ones overflow to later tiers and are still found.
        let hash = |key: u32| (u64::from(key) << 40) | 5;
        for key in 0..200 {
            assert_eq!(id_of(&table, key, hash(key)), LocId(key));
        }
        for key in 0..200 {
            assert!(
                matches!(table.find_or_claim(hash(key), |id| id.0 == key), Slot::Found(id) if id.0 == key),
                "key {key} is found where it was put"
            );
            assert_eq!(table.find(hash(key), |id| id.0 == key), Some(LocId(key)));
        }
        // Absent keys, in the same window or elsewhere, are not found and get no slot.
        assert_eq!(table.find(hash(500), |id| id.0 == 500), None);
        assert_eq!(table.find(0xdead_0000_0000_0007, |_| true), None);
        assert_eq!(
            id_of(&table, 500, hash(500)),
            LocId(500),
            "still free to claim"
        );
    }

    #[test]
    fn equal_fingerprints_are_told_apart_by_the_caller() {
        let table = IdTable::new(64);
        let same_hash = 0xabcd_0000_0000_0003;
        assert_eq!(id_of(&table, 1, same_hash), LocId(1));
        assert_eq!(id_of(&table, 2, same_hash), LocId(2));
        assert_eq!(id_of(&table, 1, same_hash), LocId(1));
        assert_eq!(id_of(&table, 2, same_hash), LocId(2));
        assert_eq!(table.find(same_hash, |id| id.0 == 2), Some(LocId(2)));
        assert_eq!(table.find(same_hash, |id| id.0 == 3), None);
    }

    #[test]
    fn racing_threads_agree_on_every_id() {
        use std::sync::OnceLock;
        use std::sync::atomic::{AtomicU32, Ordering as StdOrdering};

        const KEYS: u64 = 2_000;
        let table = IdTable::new(16);
        let next = AtomicU32::new(0);
        let keys: Vec<OnceLock<u64>> = (0..KEYS).map(|_| OnceLock::new()).collect();
        let id_of = |key: u64| {
            let is_key = |id: LocId| keys[id.index()].get() == Some(&key);
            match table.find_or_claim(table.hash(&key), is_key) {
                Slot::Found(id) => id,
                Slot::Claimed(claim) => {
                    let id = LocId(next.fetch_add(1, StdOrdering::Relaxed));
                    keys[id.index()].set(key).unwrap();
                    claim.publish(id);
                    id
                }
            }
        };
        let runs: Vec<Vec<LocId>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..KEYS).map(id_of).collect()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(runs.windows(2).all(|pair| pair[0] == pair[1]));
        assert_eq!(next.into_inner(), KEYS as u32, "one id per key");
        for (key, id) in runs[0].iter().enumerate() {
            assert_eq!(keys[id.index()].get(), Some(&(key as u64)));
        }
    }
}
