//! The state of a block in progress: a cache over the pre-block storage into which each
//! executed transaction's changes are committed in order, and from which the block's net
//! [`StateChanges`] are read at the end.
//!
//! The sequential reference executes against it directly. Its commit rules are the single
//! definition of how one transaction's revm state diff becomes block state (self-destruct,
//! creation, EIP-161 deletion of touched empty accounts), so any other path that assembles a
//! block's state must go through [`StateCache::commit_tx`] as well.

use std::collections::BTreeMap;

use revm::bytecode::Bytecode;
use revm::database_interface::{Database, DatabaseRef};
use revm::primitives::hardfork::SpecId;
use revm::primitives::map::{Entry, HashMap};
use revm::primitives::{Address, B256, KECCAK_EMPTY, StorageKey, StorageValue, U256};
use revm::state::{AccountInfo, EvmState};

use crate::output::{AccountChange, SlotChange, StateChanges};

/// One account as the block has seen it so far.
#[derive(Debug)]
struct CachedAccount {
    /// Before the block (`None`: did not exist). Code is never attached.
    original: Option<AccountInfo>,
    /// Now. Code is never attached: it lives in [`StateCache::codes`].
    current: Option<AccountInfo>,
    /// Slots read or written so far.
    storage: HashMap<U256, SlotChange>,
    /// Storage was cleared during the block: unknown slots read as zero.
    wiped: bool,
}

impl CachedAccount {
    fn loaded(info: Option<AccountInfo>) -> Self {
        let info = info.map(without_code);
        Self {
            original: info.clone(),
            current: info,
            storage: HashMap::default(),
            wiped: false,
        }
    }

    fn wipe_storage(&mut self) {
        self.storage.clear();
        self.wiped = true;
    }

    /// The account's net change over the block, or `None` when nothing observable changed.
    fn into_change(self) -> Option<AccountChange> {
        let storage: BTreeMap<U256, SlotChange> = self
            .storage
            .into_iter()
            .filter(|(_, slot)| {
                if self.wiped {
                    slot.present != U256::ZERO
                } else {
                    slot.present != slot.original
                }
            })
            .map(|(key, slot)| {
                let original = if self.wiped {
                    U256::ZERO
                } else {
                    slot.original
                };
                (
                    key,
                    SlotChange {
                        original,
                        present: slot.present,
                    },
                )
            })
            .collect();
        let info_changed = self.original != self.current;
        let absent_throughout = self.original.is_none() && self.current.is_none();
        let changed = info_changed || !storage.is_empty() || (self.wiped && !absent_throughout);
        changed.then_some(AccountChange {
            original: self.original,
            info: self.current,
            storage_wiped: self.wiped,
            storage,
        })
    }
}

fn without_code(mut info: AccountInfo) -> AccountInfo {
    info.code = None;
    info.account_id = None;
    info
}

/// A block's state so far, over the pre-block storage `S`.
pub(crate) struct StateCache<'s, S> {
    storage: &'s S,
    accounts: HashMap<Address, CachedAccount>,
    /// Every code loaded or deployed so far, by hash.
    codes: HashMap<B256, Bytecode>,
    /// Hashes of code deployed during the block.
    new_codes: Vec<B256>,
    /// EIP-161 (Spurious Dragon): touched empty accounts are deleted.
    delete_touched_empty: bool,
}

impl<'s, S: DatabaseRef> StateCache<'s, S> {
    /// An empty cache over `storage` for a block of fork `spec`.
    pub(crate) fn new(storage: &'s S, spec: SpecId) -> Self {
        Self {
            storage,
            accounts: HashMap::default(),
            codes: HashMap::default(),
            new_codes: Vec::new(),
            delete_touched_empty: spec.is_enabled_in(SpecId::SPURIOUS_DRAGON),
        }
    }

    fn account(&mut self, address: Address) -> Result<&mut CachedAccount, S::Error> {
        Ok(match self.accounts.entry(address) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let info = self.storage.basic_ref(address)?;
                if let Some(code) = info.as_ref().and_then(|i| i.code.clone())
                    && !code.is_empty()
                {
                    self.codes
                        .entry(info.as_ref().map_or(KECCAK_EMPTY, |i| i.code_hash))
                        .or_insert(code);
                }
                entry.insert(CachedAccount::loaded(info))
            }
        })
    }

    /// Commits one transaction's state diff, as revm returned it, on top of the block so far.
    pub(crate) fn commit_tx(&mut self, changes: EvmState) -> Result<(), S::Error> {
        let delete_touched_empty = self.delete_touched_empty;
        for (address, account) in changes {
            if !account.is_touched() {
                continue;
            }
            if let Some(code) = &account.info.code
                && account.info.code_hash != KECCAK_EMPTY
                && !self.codes.contains_key(&account.info.code_hash)
            {
                self.codes.insert(account.info.code_hash, code.clone());
                self.new_codes.push(account.info.code_hash);
            }
            let cached = self.account(address)?;
            if account.is_selfdestructed() {
                cached.current = None;
                cached.wipe_storage();
                continue;
            }
            if account.is_created() {
                cached.wipe_storage();
            }
            if delete_touched_empty && account.is_empty() {
                cached.current = None;
                continue;
            }
            let wiped = cached.wiped;
            for (key, slot) in account.storage {
                if !slot.is_changed() {
                    continue;
                }
                let present = slot.present_value();
                cached
                    .storage
                    .entry(key)
                    .and_modify(|s| s.present = present)
                    // Not cached yet: this transaction read it first, so its original value is
                    // the pre-block value (or zero after a wipe).
                    .or_insert(SlotChange {
                        original: if wiped {
                            U256::ZERO
                        } else {
                            slot.original_value()
                        },
                        present,
                    });
            }
            cached.current = Some(without_code(account.info));
        }
        Ok(())
    }

    /// The block's net state changes.
    pub(crate) fn into_changes(self) -> StateChanges {
        let accounts = self
            .accounts
            .into_iter()
            .filter_map(|(address, account)| account.into_change().map(|c| (address, c)))
            .collect();
        let mut codes = self.codes;
        let contracts = self
            .new_codes
            .into_iter()
            .filter_map(|hash| codes.remove(&hash).map(|code| (hash, code)))
            .collect();
        StateChanges {
            accounts,
            contracts,
        }
    }
}

impl<S: DatabaseRef> Database for StateCache<'_, S> {
    type Error = S::Error;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        let current = self.account(address)?.current.clone();
        Ok(current.map(|mut info| {
            if info.code_hash != KECCAK_EMPTY {
                info.code = self.codes.get(&info.code_hash).cloned();
            }
            info
        }))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        if let Some(code) = self.codes.get(&code_hash) {
            return Ok(code.clone());
        }
        let code = self.storage.code_by_hash_ref(code_hash)?;
        self.codes.insert(code_hash, code.clone());
        Ok(code)
    }

    fn storage(&mut self, address: Address, key: StorageKey) -> Result<StorageValue, Self::Error> {
        let storage = self.storage;
        let account = self.account(address)?;
        if let Some(slot) = account.storage.get(&key) {
            return Ok(slot.present);
        }
        let value = if account.wiped {
            U256::ZERO
        } else {
            storage.storage_ref(address, key)?
        };
        account.storage.insert(
            key,
            SlotChange {
                original: value,
                present: value,
            },
        );
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        self.storage.block_hash_ref(number)
    }
}
