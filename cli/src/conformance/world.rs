//! [`WorldState`]: a whole account state held by the conformance harness, so that the
//! fixtures' post-state roots can be computed after a block's changes are applied to it.
//!
//! The executor returns only what a block changed ([`StateChanges`]); the fixtures state the
//! root of the whole state. The harness keeps the whole state here, builds the executor's
//! storage from it, applies the returned changes (and what lies outside transaction
//! execution: rewards, withdrawals, system calls) and computes the root with `alloy-trie`.

use std::collections::BTreeMap;

use alloy_trie::{TrieAccount, root::storage_root_unhashed};
use revm::bytecode::Bytecode;
use revm::primitives::map::B256Map;
use revm::primitives::{Address, B256, Bytes, KECCAK_EMPTY, U256};
use revm::state::{AccountInfo, EvmState};

use blockstm_evm::output::StateChanges;
use blockstm_evm::storage::InMemoryStorage;

/// One account of a [`WorldState`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorldAccount {
    /// Balance, nonce and code hash (`code` is not set; see [`WorldState::code`]).
    pub info: AccountInfo,
    /// Non-zero storage slots.
    pub storage: BTreeMap<U256, U256>,
}

/// A complete account state: every account with its storage, and code by hash.
#[derive(Clone, Debug, Default)]
pub struct WorldState {
    accounts: BTreeMap<Address, WorldAccount>,
    codes: B256Map<Bytecode>,
}

impl WorldState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts (or replaces) an account; zero slots are dropped, as a trie holds none.
    pub fn insert_account(
        &mut self,
        address: Address,
        balance: U256,
        nonce: u64,
        code: &Bytes,
        storage: impl IntoIterator<Item = (U256, U256)>,
    ) {
        let code_hash = if code.is_empty() {
            KECCAK_EMPTY
        } else {
            let bytecode = Bytecode::new_raw_checked(code.clone())
                .unwrap_or_else(|_| Bytecode::new_legacy(code.clone()));
            let hash = bytecode.hash_slow();
            self.codes.insert(hash, bytecode);
            hash
        };
        let account = WorldAccount {
            info: AccountInfo {
                balance,
                nonce,
                code_hash,
                code: None,
                ..AccountInfo::default()
            },
            storage: storage
                .into_iter()
                .filter(|(_, value)| !value.is_zero())
                .collect(),
        };
        self.accounts.insert(address, account);
    }

    /// The account at `address`, if it exists.
    pub fn account(&self, address: &Address) -> Option<&WorldAccount> {
        self.accounts.get(address)
    }

    /// All accounts, by address.
    pub fn accounts(&self) -> impl Iterator<Item = (&Address, &WorldAccount)> {
        self.accounts.iter()
    }

    /// The code with hash `code_hash`, if the state holds it.
    pub fn code(&self, code_hash: &B256) -> Option<&Bytecode> {
        self.codes.get(code_hash)
    }

    /// The state as executor storage (block hashes are left to the caller).
    pub fn to_storage(&self) -> InMemoryStorage {
        let mut storage = InMemoryStorage::new();
        for (address, account) in &self.accounts {
            let code = self.codes.get(&account.info.code_hash).cloned();
            storage.insert_account(*address, account.info.balance, account.info.nonce, code);
            for (slot, value) in &account.storage {
                storage.set_storage(*address, *slot, *value);
            }
        }
        storage
    }

    /// Applies a block's net changes, as returned by the executor.
    pub fn apply(&mut self, changes: &StateChanges) {
        for (hash, code) in &changes.contracts {
            self.codes.entry(*hash).or_insert_with(|| code.clone());
        }
        for (address, change) in &changes.accounts {
            let Some(info) = &change.info else {
                self.accounts.remove(address);
                continue;
            };
            let account = self.accounts.entry(*address).or_default();
            account.info = AccountInfo {
                code: None,
                ..info.clone()
            };
            if change.storage_wiped {
                account.storage.clear();
            }
            for (slot, value) in &change.storage {
                set_slot(&mut account.storage, *slot, value.present);
            }
        }
    }

    /// Applies the state revm returns for a call outside the block's transactions (a system
    /// call): touched accounts are written back, self-destructed ones removed, and, from
    /// Spurious Dragon on (`clear_empty`), touched empty accounts deleted (EIP-161).
    pub fn apply_evm_state(&mut self, state: &EvmState, clear_empty: bool) {
        for (address, account) in state {
            if !account.is_touched() {
                continue;
            }
            if account.is_selfdestructed() || (clear_empty && account.is_empty()) {
                self.accounts.remove(address);
                continue;
            }
            if let Some(code) = &account.info.code
                && !code.is_empty()
            {
                self.codes
                    .entry(account.info.code_hash)
                    .or_insert_with(|| code.clone());
            }
            let entry = self.accounts.entry(*address).or_default();
            if account.is_created() {
                entry.storage.clear();
            }
            entry.info = AccountInfo {
                code: None,
                ..account.info.clone()
            };
            for (slot, value) in account.changed_storage_slots() {
                set_slot(&mut entry.storage, *slot, value.present_value);
            }
        }
    }

    /// Adds `amount` to the balance at `address`, creating the account if needed (block and
    /// ommer rewards, withdrawals). A zero amount changes nothing; callers that must touch
    /// (and, under EIP-161, delete) an empty account do so themselves.
    pub fn add_balance(&mut self, address: Address, amount: U256) {
        if amount.is_zero() {
            return;
        }
        let account = self.accounts.entry(address).or_default();
        account.info.code = None;
        account.info.balance = account.info.balance.saturating_add(amount);
    }

    /// The state trie root (Merkle-Patricia, keys hashed), as a block header states it.
    pub fn state_root(&self) -> B256 {
        alloy_trie::root::state_root_unhashed(self.accounts.iter().map(|(address, account)| {
            let storage_root = storage_root_unhashed(
                account
                    .storage
                    .iter()
                    .map(|(slot, value)| (B256::from(*slot), *value)),
            );
            (
                *address,
                TrieAccount {
                    nonce: account.info.nonce,
                    balance: account.info.balance,
                    storage_root,
                    code_hash: account.info.code_hash,
                },
            )
        }))
    }
}

fn set_slot(storage: &mut BTreeMap<U256, U256>, slot: U256, value: U256) {
    if value.is_zero() {
        storage.remove(&slot);
    } else {
        storage.insert(slot, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::EMPTY_ROOT_HASH;

    #[test]
    fn empty_state_has_the_empty_root() {
        assert_eq!(WorldState::new().state_root(), EMPTY_ROOT_HASH);
    }

    #[test]
    fn zero_slots_do_not_change_the_root() {
        let alice = Address::repeat_byte(0xa1);
        let mut with_zero = WorldState::new();
        with_zero.insert_account(
            alice,
            U256::from(5),
            1,
            &Bytes::new(),
            [(U256::from(1), U256::ZERO)],
        );
        let mut without = WorldState::new();
        without.insert_account(alice, U256::from(5), 1, &Bytes::new(), []);
        assert_eq!(with_zero.state_root(), without.state_root());
        let mut with_slot = WorldState::new();
        with_slot.insert_account(
            alice,
            U256::from(5),
            1,
            &Bytes::new(),
            [(U256::from(1), U256::from(2))],
        );
        assert_ne!(with_slot.state_root(), without.state_root());
    }
}
