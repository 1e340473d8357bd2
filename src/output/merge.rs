//! Chaining state changes: the changes of two consecutive runs (the second over the state the
//! first left) as one run's changes, in the same canonical form the executors produce.

use revm::primitives::map::{B256Set, Entry};

use revm::primitives::{Address, KECCAK_EMPTY, U256};

use super::{AccountChange, StateChanges};

impl StateChanges {
    /// Appends `later`, the changes of a run over the state these changes leave, so that
    /// `self` becomes the net changes of both runs relative to the state before the first
    /// (what one run over all their transactions returns).
    ///
    /// ```
    /// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
    /// use blockstm_evm::{execute_sequential, Block};
    /// use blockstm_evm::builder::OverlayStorage;
    ///
    /// let workload = WorkloadSpec::new(WorkloadKind::Erc20, 40).generate().unwrap();
    /// let (first, second) = workload.block.txs.split_at(20);
    /// let part = |txs: &[_]| Block { txs: txs.to_vec(), ..workload.block.clone() };
    /// let mut changes = execute_sequential(&workload.storage, &part(first)).unwrap().state;
    /// let after_first = OverlayStorage::new(&workload.storage, &changes);
    /// let later = execute_sequential(&after_first, &part(second)).unwrap().state;
    /// changes.append(later);
    /// assert_eq!(changes, execute_sequential(&workload.storage, &workload.block).unwrap().state);
    /// ```
    ///
    /// One case is not told apart: an account absent before `later`'s run that the run
    /// created and destroyed (it appears in neither part) and that a still later run brings
    /// back without creating it (a plain transfer) keeps `storage_wiped == false` where one
    /// run over everything says `true`; the state it describes is the same. The block builder
    /// tracks such accounts and is exact.
    pub fn append(&mut self, later: StateChanges) {
        self.append_accounts(later, &[]);
        self.retain_changed();
    }

    /// [`append`](Self::append) without pruning: accounts back to where they started stay
    /// (with the fact that their storage was wiped), as does every code any part deployed,
    /// so that reads over these changes and later appends find them. `vanished`: accounts
    /// that `later`'s run created and destroyed (absent before and after it).
    pub(crate) fn append_accounts(&mut self, later: StateChanges, vanished: &[Address]) {
        self.accounts.reserve(later.accounts.len());
        for (address, change) in later.accounts {
            match self.accounts.entry(address) {
                // Unchanged before: `later`'s originals are the first run's too.
                Entry::Vacant(entry) => {
                    entry.insert(change);
                }
                Entry::Occupied(mut entry) => entry.get_mut().then(change),
            }
        }
        for address in vanished {
            let wiped = AccountChange {
                original: None,
                info: None,
                storage_wiped: true,
                storage: Default::default(),
            };
            match self.accounts.entry(*address) {
                Entry::Vacant(entry) => {
                    entry.insert(wiped);
                }
                Entry::Occupied(mut entry) => entry.get_mut().then(wiped),
            }
        }
        for (hash, code) in later.contracts {
            self.contracts.entry(hash).or_insert(code);
        }
    }

    /// Drops the accounts that do not differ from before the first run, and keeps the code
    /// of exactly the accounts whose code hash changed, as the executors do.
    pub(crate) fn retain_changed(&mut self) {
        self.accounts.retain(|_, change| change.differs());
        let accounts = &self.accounts;
        let changed_hashes: B256Set = accounts
            .values()
            .filter_map(|change| {
                let info = change.info.as_ref()?;
                let original_hash = change.original.as_ref().map(|o| o.code_hash);
                (info.code_hash != KECCAK_EMPTY && original_hash != Some(info.code_hash))
                    .then_some(info.code_hash)
            })
            .collect();
        self.contracts
            .retain(|hash, _| changed_hashes.contains(hash));
    }
}

impl AccountChange {
    /// Applies `later`, this account's change in a following run.
    fn then(&mut self, later: AccountChange) {
        self.info = later.info;
        if later.storage_wiped {
            // Wiped again: only what `later` left counts (originals zero, values non-zero).
            self.storage_wiped = true;
            self.storage = later.storage;
        } else if self.storage_wiped {
            for (key, slot) in later.storage {
                if slot.present == U256::ZERO {
                    self.storage.remove(&key);
                } else {
                    self.storage.insert(
                        key,
                        super::SlotChange {
                            original: U256::ZERO,
                            present: slot.present,
                        },
                    );
                }
            }
        } else {
            for (key, slot) in later.storage {
                match self.storage.entry(key) {
                    Entry::Occupied(mut entry) => {
                        entry.get_mut().present = slot.present;
                        if slot.present == entry.get().original {
                            entry.remove();
                        }
                    }
                    // Unchanged by the first run: `later`'s original is the first run's too.
                    Entry::Vacant(entry) => {
                        entry.insert(slot);
                    }
                }
            }
        }
    }

    /// Whether the account differs from before the first run, by the executors' rule.
    fn differs(&self) -> bool {
        let absent_throughout = self.original.is_none() && self.info.is_none();
        self.original != self.info
            || !self.storage.is_empty()
            || (self.storage_wiped && !absent_throughout)
    }
}
