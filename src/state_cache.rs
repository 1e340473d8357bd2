//! The state of a block in progress: a cache over the pre-block storage into which each
//! executed transaction's changes are committed in order, and from which the block's net
//! [`StateChanges`] are read at the end.
//!
//! The sequential reference executes against it directly. [`AccountCommit`] is the single
//! definition of how one transaction's revm state diff becomes block state (self-destruct,
//! creation, EIP-161 deletion of touched empty accounts): the parallel engine's write sets
//! (`vm`) apply the same rules, and its commit frontier folds them into the same output form
//! (`parallel::fold`, through [`loaded`] and [`wipe_storage`]) and settles it with the same
//! [`net_changes`].

use revm::bytecode::Bytecode;
use revm::database_interface::{Database, DatabaseRef};
use revm::primitives::hardfork::SpecId;
use revm::primitives::map::{AddressMap, B256Map, Entry, U256Map};
use revm::primitives::{Address, B256, KECCAK_EMPTY, StorageKey, StorageValue, U256};
use revm::state::{Account, AccountInfo, EvmState};

use crate::output::{AccountChange, SlotChange, StateChanges};

/// How a touched account of a transaction's state diff lands in the block's state: the one
/// rule set (self-destruct, creation, EIP-161) that every path applies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AccountCommit {
    /// The account exists afterwards.
    pub(crate) exists: bool,
    /// Its storage is cleared first (self-destruct, creation).
    pub(crate) wipes_storage: bool,
    /// Its changed slots are kept.
    pub(crate) keeps_slot_writes: bool,
}

impl AccountCommit {
    /// The rule for `account`, or `None` when the transaction did not touch it.
    pub(crate) fn of(account: &Account, delete_touched_empty: bool) -> Option<Self> {
        if !account.is_touched() {
            return None;
        }
        if account.is_selfdestructed() {
            return Some(Self {
                exists: false,
                wipes_storage: true,
                keeps_slot_writes: false,
            });
        }
        let wipes_storage = account.is_created();
        if delete_touched_empty && account.is_empty() {
            return Some(Self {
                exists: false,
                wipes_storage,
                keeps_slot_writes: false,
            });
        }
        Some(Self {
            exists: true,
            wipes_storage,
            keeps_slot_writes: true,
        })
    }
}

/// Credits the beneficiary's fee to its entry in a transaction's state diff, as revm's
/// `reward_beneficiary` does inside the transaction (touch, then add unless it overflows).
/// The commit rules ([`AccountCommit`]) apply afterwards; `mv_memory::apply_credit` is the
/// same credit applied to a committed account value, rules included.
pub(crate) fn credit_in_state_diff(account: &mut Account, fee: U256) {
    account.mark_touch();
    if let Some(balance) = account.info.balance.checked_add(fee) {
        account.info.balance = balance;
    }
}

/// One account as the block has seen it so far, kept in its output form so that the block's
/// changes are read off in place at the end ([`StateCache::into_changes`]): `original` is the
/// account before the block and `info` now (code never attached: it lives in
/// [`StateCache::codes`]); `storage` holds every slot read or written so far; `storage_wiped`
/// says the storage was cleared during the block, after which unknown slots read as zero and
/// every cached slot's `original` is zero.
type CachedAccount = AccountChange;

/// An account as first loaded: unchanged so far (`info` equal to `original`, no slots).
pub(crate) fn loaded(info: Option<AccountInfo>) -> CachedAccount {
    let info = info.map(without_code);
    AccountChange {
        original: info.clone(),
        info,
        storage_wiped: false,
        storage: U256Map::default(),
    }
}

/// Clears an account's storage (self-destruct, creation): the slots cached so far are
/// dropped, and those written from now on start at zero.
pub(crate) fn wipe_storage(account: &mut CachedAccount) {
    account.storage.clear();
    account.storage_wiped = true;
}

/// Reduces a cached account to its net change over the block, in place: drops the slots
/// back at their original value and says whether anything observable changed.
fn settle(account: &mut CachedAccount) -> Change {
    // After a wipe every cached original is zero (see `CachedAccount`), so one rule serves.
    debug_assert!(
        !account.storage_wiped || account.storage.values().all(|s| s.original == U256::ZERO)
    );
    account
        .storage
        .retain(|_, slot| slot.present != slot.original);
    let info_changed = account.original != account.info;
    let absent_throughout = account.original.is_none() && account.info.is_none();
    if info_changed || !account.storage.is_empty() || (account.storage_wiped && !absent_throughout)
    {
        Change::Changed
    } else if account.storage_wiped {
        Change::Vanished
    } else {
        Change::Unchanged
    }
}

/// What the block did to one account, as the output sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// A net change.
    Changed,
    /// Absent before and after, wiped in between (created and destroyed): no net change, but
    /// a block that continues this one must know that its storage was wiped.
    Vanished,
    /// Nothing.
    Unchanged,
}

fn without_code(mut info: AccountInfo) -> AccountInfo {
    info.code = None;
    info.account_id = None;
    info
}

/// A block's state so far, over the pre-block storage `S`.
pub(crate) struct StateCache<'s, S> {
    storage: &'s S,
    accounts: AddressMap<CachedAccount>,
    /// Every code loaded or deployed so far, by hash.
    codes: B256Map<Bytecode>,
    /// EIP-161 (Spurious Dragon): touched empty accounts are deleted.
    delete_touched_empty: bool,
}

impl<'s, S: DatabaseRef> StateCache<'s, S> {
    /// An empty cache over `storage` for a block of `txs` transactions of fork `spec`.
    pub(crate) fn new(storage: &'s S, spec: SpecId, txs: usize) -> Self {
        Self {
            storage,
            // Most transactions touch two or three accounts: size once, never rehash.
            accounts: AddressMap::with_capacity_and_hasher(txs * 3, Default::default()),
            codes: B256Map::default(),
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
                entry.insert(loaded(info))
            }
        })
    }

    /// Commits one transaction's state diff, as revm returned it, on top of the block so far.
    pub(crate) fn commit_tx(&mut self, changes: EvmState) -> Result<(), S::Error> {
        let delete_touched_empty = self.delete_touched_empty;
        for (address, account) in changes {
            let Some(commit) = AccountCommit::of(&account, delete_touched_empty) else {
                continue;
            };
            if let Some(code) = &account.info.code
                && account.info.code_hash != KECCAK_EMPTY
            {
                self.codes
                    .entry(account.info.code_hash)
                    .or_insert_with(|| code.clone());
            }
            let cached = self.account(address)?;
            if commit.wipes_storage {
                wipe_storage(cached);
            }
            if !commit.exists {
                cached.info = None;
                continue;
            }
            let wiped = cached.storage_wiped;
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
            cached.info = Some(without_code(account.info));
        }
        Ok(())
    }

    /// The block's net state changes (see [`net_changes`]).
    pub(crate) fn into_changes(self) -> (StateChanges, Vec<Address>) {
        net_changes(self.accounts, &self.codes)
    }
}

/// The block's net state changes from its accounts in output form (each as
/// [`StateCache`] keeps them: the original, the info now, the written slots and whether the
/// storage was wiped), in place. `contracts` holds the code (looked up in `codes`) of every
/// account whose code hash the block changed. Also returns the accounts that vanished
/// ([`Change::Vanished`]). The sequential path and the parallel engine's commit fold both end
/// here, so that the two agree on what changed.
pub(crate) fn net_changes(
    mut accounts: AddressMap<AccountChange>,
    codes: &B256Map<Bytecode>,
) -> (StateChanges, Vec<Address>) {
    let mut vanished = Vec::new();
    // In place: no second map, no rehash of the block's accounts.
    accounts.retain(|address, account| match settle(account) {
        Change::Changed => true,
        Change::Vanished => {
            vanished.push(*address);
            false
        }
        Change::Unchanged => false,
    });
    let mut contracts = B256Map::default();
    for change in accounts.values() {
        add_deployed_code(change, codes, &mut contracts);
    }
    let changes = StateChanges {
        accounts,
        contracts,
    };
    (changes, vanished)
}

/// Adds to `contracts` the code (looked up in `codes`) that `change` deploys: its code hash
/// after the block when that is not empty and differs from before.
fn add_deployed_code(
    change: &AccountChange,
    codes: &B256Map<Bytecode>,
    contracts: &mut B256Map<Bytecode>,
) {
    let Some(info) = &change.info else { return };
    let original_hash = change.original.as_ref().map(|o| o.code_hash);
    if info.code_hash != KECCAK_EMPTY
        && original_hash != Some(info.code_hash)
        && let Some(code) = codes.get(&info.code_hash)
    {
        contracts.insert(info.code_hash, code.clone());
    }
}

/// [`net_changes`] for a map where only some accounts can be short of a net change: those
/// in `candidates` (an account whose info, at its last write, was back at its original, or
/// one of whose slots was, or whose storage was wiped; repeats allowed). Every other account
/// is changed and keeps each slot, so only the candidates are settled, and only the code of
/// the `deployed` accounts (each account whose code hash a write changed; repeats allowed) is
/// looked at: the cost is that of the candidates, not of the block's accounts. Gives what
/// [`net_changes`] gives for such a map.
pub(crate) fn net_changes_of_candidates(
    mut accounts: AddressMap<AccountChange>,
    codes: &B256Map<Bytecode>,
    candidates: &[Address],
    deployed: &[Address],
) -> (StateChanges, Vec<Address>) {
    let mut vanished = Vec::new();
    for address in candidates {
        // Gone already when it appears twice and was dropped the first time.
        let Some(account) = accounts.get_mut(address) else {
            continue;
        };
        match settle(account) {
            Change::Changed => {}
            Change::Vanished => {
                vanished.push(*address);
                accounts.remove(address);
            }
            Change::Unchanged => {
                accounts.remove(address);
            }
        }
    }
    let mut contracts = B256Map::default();
    for change in deployed.iter().filter_map(|address| accounts.get(address)) {
        add_deployed_code(change, codes, &mut contracts);
    }
    let changes = StateChanges {
        accounts,
        contracts,
    };
    (changes, vanished)
}

impl<S: DatabaseRef> Database for StateCache<'_, S> {
    type Error = S::Error;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        let current = self.account(address)?.info.clone();
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
        let value = if account.storage_wiped {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn info(balance: u64, code_hash: B256) -> AccountInfo {
        AccountInfo {
            balance: U256::from(balance),
            code_hash,
            ..AccountInfo::default()
        }
    }

    #[test]
    fn settling_the_candidates_gives_the_net_changes_of_the_whole_map() {
        let address = Address::with_last_byte;
        let code = Bytecode::new_raw(vec![0x60, 0x00].into());
        let mut accounts = AddressMap::default();
        let mut candidates = Vec::new();
        // 1: changed balance, not a candidate.
        let mut changed = loaded(Some(info(1, KECCAK_EMPTY)));
        changed.info = Some(info(2, KECCAK_EMPTY));
        accounts.insert(address(1), changed);
        // 2: balance back at its original: unchanged.
        accounts.insert(address(2), loaded(Some(info(5, KECCAK_EMPTY))));
        candidates.push(address(2));
        // 3: one slot back at its original, one changed: kept with the changed slot only.
        let mut slots = loaded(Some(info(3, KECCAK_EMPTY)));
        let slot = |original: u64, present: u64| SlotChange {
            original: U256::from(original),
            present: U256::from(present),
        };
        slots.storage.insert(U256::from(1), slot(7, 7));
        slots.storage.insert(U256::from(2), slot(7, 8));
        accounts.insert(address(3), slots);
        candidates.extend([address(3), address(3)]);
        // 4: created and destroyed: vanished.
        let mut vanishing = loaded(None);
        wipe_storage(&mut vanishing);
        accounts.insert(address(4), vanishing);
        candidates.push(address(4));
        // 5: deployed code; 6: deployed, then its code hash changed back.
        let mut deployed_account = loaded(None);
        deployed_account.info = Some(info(0, code.hash_slow()));
        accounts.insert(address(5), deployed_account);
        let mut codes = B256Map::default();
        codes.insert(code.hash_slow(), code.clone());
        let other = B256::repeat_byte(0x77);
        let mut redeployed = loaded(Some(info(0, other)));
        redeployed.info = Some(info(1, other));
        accounts.insert(address(6), redeployed);
        let deployed = [address(5), address(6)];

        let (expected, mut expected_vanished) = net_changes(accounts.clone(), &codes);
        let (actual, mut actual_vanished) =
            net_changes_of_candidates(accounts, &codes, &candidates, &deployed);
        expected_vanished.sort();
        actual_vanished.sort();
        assert_eq!(actual, expected);
        assert_eq!(actual_vanished, expected_vanished);
        assert_eq!(actual_vanished, vec![address(4)]);
        let kept: std::collections::BTreeSet<_> = actual.accounts.keys().copied().collect();
        assert_eq!(kept, [1, 3, 5, 6].map(address).into_iter().collect());
        assert_eq!(actual.accounts[&address(3)].storage.len(), 1);
        assert_eq!(actual.contracts.len(), 1);
    }
}
