//! The block's state as the commit frontier leaves it: each committed transaction's writes,
//! read back from multi-version memory while they are fresh and folded in block order into
//! the output's form (the form the sequential path's `StateCache` keeps), so that the block's
//! net changes are ready when the last transaction commits and no pass over multi-version
//! memory is left after execution.
//!
//! Only the holder of the scheduler's commit lock folds (through the `CommitLog`), one
//! transaction at a time, in block order: the fold sees exactly the sequence of write sets
//! that sequential execution commits, and applies them with the sequential path's rules
//! (a wipe clears the slots written before it; lazy credits resolve as `apply_credit` says;
//! the end is `state_cache::net_changes`).

use revm::bytecode::Bytecode;
use revm::database_interface::DatabaseRef;
use revm::primitives::map::{AddressMap, B256Map, Entry};
use revm::primitives::{Address, KECCAK_EMPTY, U256};
use revm::state::AccountInfo;

use crate::location::Location;
use crate::mv_memory::{AccountValue, BaseValue, WriteValue, apply_credit};
use crate::output::{AccountChange, SlotChange, StateChanges};
use crate::state_cache::{loaded, net_changes_of_candidates, wipe_storage};
use crate::types::{LocId, TxIdx};
use crate::vm::BlockContext;

/// The committed prefix's state, in output form.
pub(super) struct CommittedState {
    /// Every account a committed transaction wrote (its own location or one of its slots),
    /// as the committed prefix leaves it.
    accounts: AddressMap<AccountChange>,
    /// The code of every account whose code hash a committed write changed, by hash.
    codes: B256Map<Bytecode>,
    /// The slot writes of the transaction being folded, which go in after its account
    /// writes: a wipe it made clears the slots written before it, not its own. Kept to reuse
    /// the allocation.
    slot_writes: Vec<(Address, U256, LocId, U256)>,
    /// Accounts that may end the block short of a net change: written back to their
    /// original info, given a slot back at its original value, or wiped (the only ones the
    /// end must settle; every other account is changed and keeps each slot).
    candidates: Vec<Address>,
    /// Accounts whose code hash a write changed (the only ones whose code the output may
    /// need).
    deployed: Vec<Address>,
}

impl CommittedState {
    /// Nothing committed yet, with room for `expected_accounts` written accounts.
    pub(super) fn new(expected_accounts: usize) -> Self {
        Self {
            accounts: AddressMap::with_capacity_and_hasher(expected_accounts, Default::default()),
            codes: B256Map::default(),
            slot_writes: Vec::new(),
            candidates: Vec::new(),
            deployed: Vec::new(),
        }
    }

    /// Folds in the writes of `tx`, which just committed (every lower transaction is
    /// folded). Fails only when the pre-block value of a location it wrote is not cached in
    /// multi-version memory and the storage fails to load it.
    pub(super) fn fold<S: DatabaseRef>(
        &mut self,
        tx: TxIdx,
        context: &BlockContext<'_, S>,
    ) -> Result<(), S::Error> {
        let mut slot_writes = std::mem::take(&mut self.slot_writes);
        slot_writes.clear();
        context.memory.committed_writes(tx, |location, value| {
            match (context.index.location(location), value) {
                (Location::Storage(address, key), WriteValue::Storage(present)) => {
                    slot_writes.push((address, key, location, *present));
                    Ok(())
                }
                (Location::Account(address), value) => {
                    self.fold_account(tx, address, location, value, context)
                }
                (location, value) => {
                    unreachable!("{value:?} written at {location:?}")
                }
            }
        })?;
        // By account, so that the slots of one account (an exchange's reserves, a token's
        // two balances) share one look-up of its entry.
        slot_writes.sort_unstable_by_key(|(address, ..)| *address);
        for account_writes in slot_writes.chunk_by(|a, b| a.0 == b.0) {
            let address = account_writes[0].0;
            let account = account_entry(&mut self.accounts, address, None, context)?;
            let mut back_at_original = false;
            for (_, key, location, present) in account_writes {
                back_at_original |=
                    fold_slot((address, account), *key, *location, *present, context)?;
            }
            if back_at_original {
                self.candidates.push(address);
            }
        }
        self.slot_writes = slot_writes;
        Ok(())
    }

    /// The block's net changes and the accounts that vanished, once every transaction is
    /// folded.
    pub(super) fn into_changes(self) -> (StateChanges, Vec<Address>) {
        net_changes_of_candidates(self.accounts, &self.codes, &self.candidates, &self.deployed)
    }

    /// Folds `tx`'s value at `address`'s own location: a new value, or a lazy credit on top
    /// of the committed one.
    fn fold_account<S: DatabaseRef>(
        &mut self,
        tx: TxIdx,
        address: Address,
        location: LocId,
        value: &WriteValue,
        context: &BlockContext<'_, S>,
    ) -> Result<(), S::Error> {
        let account = account_entry(&mut self.accounts, address, Some(location), context)?;
        let value = match value {
            WriteValue::Account(value) => {
                let info = value.info.as_ref();
                if let Some(info) = info
                    && info.code_hash != KECCAK_EMPTY
                    && account.original.as_ref().map(|o| o.code_hash) != Some(info.code_hash)
                {
                    self.deployed.push(address);
                    if let Some(code) = &info.code {
                        self.codes
                            .entry(info.code_hash)
                            .or_insert_with(|| code.clone());
                    }
                }
                AccountValue {
                    info: info.map(AccountInfo::copy_without_code),
                    wiped_at: value.wiped_at,
                }
            }
            WriteValue::Credit(amount) => {
                // The committed value's own wipe is folded already: only a wipe this credit
                // makes (see `apply_credit`) matters below.
                let committed = AccountValue {
                    info: account.info.take(),
                    wiped_at: None,
                };
                apply_credit(committed, (tx, *amount), context.delete_touched_empty)
            }
            WriteValue::Storage(_) => unreachable!("a storage value at account {address}"),
        };
        // A value carries the last wipe of the account: a new one only from its wiper.
        if value.wiped_at == Some(tx) {
            wipe_storage(account);
        }
        account.info = value.info;
        if account.storage_wiped || account.info == account.original {
            self.candidates.push(address);
        }
        Ok(())
    }
}

/// Folds a write of `present` to slot `key` (at `location`) of `account` (at `address`):
/// its pre-block value is taken the first time the block writes it (zero once the
/// account's storage was wiped). Returns whether the slot is back at its pre-block value.
fn fold_slot<S: DatabaseRef>(
    (address, account): (Address, &mut AccountChange),
    key: U256,
    location: LocId,
    present: U256,
    context: &BlockContext<'_, S>,
) -> Result<bool, S::Error> {
    let wiped = account.storage_wiped;
    let back_at_original = match account.storage.entry(key) {
        Entry::Occupied(slot) => {
            let slot = slot.into_mut();
            slot.present = present;
            slot.present == slot.original
        }
        Entry::Vacant(slot) => {
            let original = if wiped {
                U256::ZERO
            } else {
                match context.memory.base(location) {
                    Some(BaseValue::Storage(value)) => *value,
                    // The writer read the slot first (gas metering loads it), so its base
                    // is cached; storage is asked only if that ever fails to hold.
                    _ => context.storage.storage_ref(address, key)?,
                }
            };
            slot.insert(SlotChange { original, present });
            present == original
        }
    };
    Ok(back_at_original)
}

/// `address`'s entry, loaded on first sight with its pre-block value (cached in
/// multi-version memory at its `location`, found in the index when not given).
fn account_entry<'m, S: DatabaseRef>(
    accounts: &'m mut AddressMap<AccountChange>,
    address: Address,
    location: Option<LocId>,
    context: &BlockContext<'_, S>,
) -> Result<&'m mut AccountChange, S::Error> {
    Ok(match accounts.entry(address) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => {
            let location = location.or_else(|| context.index.find(Location::Account(address)));
            let original = match location.and_then(|location| context.memory.base(location)) {
                Some(BaseValue::Account(value)) => {
                    value.info.as_ref().map(AccountInfo::copy_without_code)
                }
                // Every writer of an account or its slots read the account first, so its
                // base is cached; storage is asked only if that ever fails to hold.
                _ => context.storage.basic_ref(address)?,
            };
            entry.insert(loaded(original))
        }
    })
}

#[cfg(test)]
mod tests {
    use revm::primitives::map::U256Map;

    use super::*;
    use crate::location::LocationIndex;
    use crate::mv_memory::MvMemory;
    use crate::storage::InMemoryStorage;

    fn info(balance: u64) -> AccountInfo {
        AccountInfo {
            balance: U256::from(balance),
            code: None,
            ..AccountInfo::default()
        }
    }

    #[test]
    fn commits_fold_in_order_with_wipes_credits_and_fees() {
        let (a, b, beneficiary) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(9),
        );
        let mut storage = InMemoryStorage::new();
        storage.insert_account(a, U256::from(100), 0, None);
        storage.set_storage(a, U256::from(1), U256::from(5));
        storage.set_storage(a, U256::from(2), U256::from(6));
        storage.insert_account(beneficiary, U256::from(1_000), 0, None);
        let index = LocationIndex::predicted(beneficiary, &[]);
        // The slot written with the wipe gets a lower id than its account: the account's
        // write must still go first.
        let slot = |key: u64| index.id(Location::Storage(a, U256::from(key)));
        let (slot3, slot1, slot2) = (slot(3), slot(1), slot(2));
        let (account_a, account_b) = (
            index.id(Location::Account(a)),
            index.id(Location::Account(b)),
        );
        let memory = MvMemory::new(3, 16, true).with_fee_lane(LocationIndex::BENEFICIARY);
        let fee = |amount: u64| {
            (
                LocationIndex::BENEFICIARY,
                WriteValue::Credit(U256::from(amount)),
            )
        };
        // No base value is cached: the fold falls back to the storage.
        memory.record(
            0,
            0,
            vec![
                (slot1, WriteValue::Storage(U256::from(7))),
                (slot2, WriteValue::Storage(U256::from(6))),
                fee(1),
            ],
        );
        let recreated = AccountValue {
            info: Some(info(50)),
            wiped_at: Some(1),
        };
        memory.record(
            1,
            0,
            vec![
                (slot3, WriteValue::Storage(U256::from(9))),
                (account_a, WriteValue::Account(recreated)),
                fee(2),
            ],
        );
        memory.record(2, 0, vec![(account_b, WriteValue::Credit(U256::from(10)))]);
        let context = BlockContext {
            storage: &storage,
            memory: &memory,
            index: &index,
            beneficiary,
            delete_touched_empty: true,
        };
        let mut state = CommittedState::new(0);
        for tx in 0..3 {
            state.fold(tx, &context).unwrap();
        }
        let (changes, vanished) = state.into_changes();
        assert!(vanished.is_empty());
        // Slot 1 was written before the wipe (gone), slot 2 back at its value (unchanged),
        // slot 3 after it (against zero).
        let mut slots = U256Map::default();
        slots.insert(
            U256::from(3),
            SlotChange {
                original: U256::ZERO,
                present: U256::from(9),
            },
        );
        let expected_a = AccountChange {
            original: Some(info(100)),
            info: Some(info(50)),
            storage_wiped: true,
            storage: slots,
        };
        assert_eq!(changes.account(&a), Some(&expected_a));
        let expected_b = AccountChange {
            original: None,
            info: Some(info(10)),
            storage_wiped: false,
            storage: U256Map::default(),
        };
        assert_eq!(changes.account(&b), Some(&expected_b));
        assert_eq!(
            changes.info(&beneficiary),
            Some(Some(&info(1_003))),
            "both fees, from the lane"
        );
        assert_eq!(changes.accounts.len(), 3);
        assert!(changes.contracts.is_empty());
    }
}
