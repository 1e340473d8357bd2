//! A location's versions: one entry per transaction whose latest incarnation wrote (or was
//! aborted writing) the location, ordered by transaction index.
//!
//! Most locations of a block have one writer (a sender's account, a recipient, a holder's
//! token balance). The first transaction to write a location keeps its entry in the cell
//! itself (the *solo* entry: one allocation, no ordered map); the others go to a lock-free skip
//! list allocated when a second writer arrives. Readers merge the two by transaction index.
//!
//! The solo entry is claimed once (a compare-and-swap from null) and then belongs to its
//! transaction for the life of the memory, like a skip-list node: its state is replaced by
//! an atomic swap, never by removal, so a reader never falls through to a lower version while
//! a writer replaces an entry. A transaction's entry is in exactly one place: its first write
//! either claims the solo slot or finds it taken and inserts into the skip list, and every
//! later write finds it there (only the transaction's executor or its aborting validator
//! writes it, never both at once).

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned};
use crossbeam_skiplist::{SkipMap, map};

use super::{Entry, EntryState, TxIdx};

/// The solo entry: its transaction and its state.
struct Solo {
    tx: TxIdx,
    entry: Entry,
}

/// A location's entries: the solo one and, from the second writer on, a skip list.
#[derive(Default)]
pub(super) struct Versions {
    solo: Atomic<Solo>,
    others: OnceLock<Box<SkipMap<TxIdx, Entry>>>,
}

/// A transaction's entry, found by [`Versions::find`].
pub(super) enum Found<'a> {
    Solo(&'a Entry),
    Listed(map::Entry<'a, TxIdx, Entry>),
}

impl Found<'_> {
    /// The entry.
    pub(super) fn entry(&self) -> &Entry {
        match self {
            Found::Solo(entry) => entry,
            Found::Listed(entry) => entry.value(),
        }
    }
}

impl Versions {
    fn solo<'a>(&'a self, guard: &'a Guard) -> Option<&'a Solo> {
        // Acquire: pairs with the compare-and-swap that published the solo entry.
        let solo = self.solo.load(Ordering::Acquire, guard);
        // SAFETY: a non-null solo was published whole by `insert`; it is freed when the
        // versions are dropped (no reader left) or, under a loom mutation only, through
        // `defer_destroy`, which waits for `guard`.
        unsafe { solo.as_ref() }
    }

    /// Whether any transaction ever had an entry here (a dropped write leaves a tombstone).
    pub(super) fn is_written(&self) -> bool {
        // SAFETY: the pointer is only compared with null, never dereferenced.
        let unprotected = unsafe { epoch::unprotected() };
        !self.solo.load(Ordering::Acquire, unprotected).is_null() || self.others.get().is_some()
    }

    /// `tx`'s entry, if it has one.
    pub(super) fn find<'a>(&'a self, tx: TxIdx, guard: &'a Guard) -> Option<Found<'a>> {
        if let Some(solo) = self.solo(guard)
            && solo.tx == tx
        {
            return Some(Found::Solo(&solo.entry));
        }
        self.others.get()?.get(&tx).map(Found::Listed)
    }

    /// Gives `tx`, which has no entry yet, one holding `state`: the solo entry when it is
    /// free and `solo_allowed`, else a node in the skip list.
    pub(super) fn insert(&self, tx: TxIdx, state: EntryState, solo_allowed: bool, guard: &Guard) {
        let entry = Entry(Atomic::new(state));
        let entry = if solo_allowed {
            let solo = Owned::new(Solo { tx, entry });
            // Release: a reader that sees the solo sees its transaction and state.
            match self.solo.compare_exchange(
                crossbeam_epoch::Shared::null(),
                solo,
                Ordering::AcqRel,
                Ordering::Acquire,
                guard,
            ) {
                Ok(_) => return,
                Err(taken) => taken.new.into_box().entry,
            }
        } else {
            entry
        };
        self.others.get_or_init(Default::default).insert(tx, entry);
    }

    /// Removes `found` (the loom mutation that replaces an entry by removal; never used
    /// otherwise: entries are never removed).
    #[cfg(loom)]
    pub(super) fn remove(&self, found: Found<'_>, guard: &Guard) {
        match found {
            Found::Listed(entry) => {
                entry.remove();
            }
            Found::Solo(_) => {
                let old = self
                    .solo
                    .swap(crossbeam_epoch::Shared::null(), Ordering::AcqRel, guard);
                // SAFETY: unreachable from the cell now; readers that loaded it hold guards
                // pinned before this point.
                unsafe { guard.defer_destroy(old) };
            }
        }
    }

    /// The entries of transactions below `tx`, highest first.
    pub(super) fn below<'a>(
        &'a self,
        tx: TxIdx,
        guard: &'a Guard,
    ) -> impl Iterator<Item = (TxIdx, &'a EntryState)> + 'a {
        let mut solo = self.solo(guard).filter(|solo| solo.tx < tx);
        let mut others = self
            .others
            .get()
            .into_iter()
            .flat_map(move |others| others.range(..tx).rev())
            .map(|entry| (*entry.key(), entry.value().load(guard)))
            .peekable();
        std::iter::from_fn(move || {
            if let Some(first) = solo
                && others.peek().is_none_or(|(other, _)| *other < first.tx)
            {
                solo = None;
                return Some((first.tx, first.entry.load(guard)));
            }
            others.next()
        })
    }

    /// Every entry, lowest transaction first.
    #[cfg(test)]
    pub(super) fn ascending<'a>(
        &'a self,
        guard: &'a Guard,
    ) -> impl Iterator<Item = (TxIdx, &'a EntryState)> + 'a {
        let mut solo = self.solo(guard);
        let mut others = self
            .others
            .get()
            .into_iter()
            .flat_map(|others| others.iter())
            .map(|entry| (*entry.key(), entry.value().load(guard)))
            .peekable();
        std::iter::from_fn(move || {
            if let Some(first) = solo
                && others.peek().is_none_or(|(other, _)| *other > first.tx)
            {
                solo = None;
                return Some((first.tx, first.entry.load(guard)));
            }
            others.next()
        })
    }
}

impl Drop for Versions {
    fn drop(&mut self) {
        // SAFETY: dropping the versions means no reader or writer can reach them any more;
        // `unprotected` is sound without concurrent access.
        unsafe {
            let guard = epoch::unprotected();
            let solo = self.solo.load(Ordering::Relaxed, guard);
            if !solo.is_null() {
                drop(solo.into_owned());
            }
        }
    }
}
