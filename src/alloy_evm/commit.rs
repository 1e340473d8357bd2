//! The block's net changes as revm [`EvmState`] commits, so that revm's `State` records what
//! it records when the transactions are committed one by one.
//!
//! `State::commit` derives each account's new status (and so the bundle's statuses, storage
//! wipes and reverts) from the flags of the committed [`Account`]: touched, created,
//! self-destructed, loaded as not existing. The engine returns net changes without flags, so
//! they are set from the change, with the same rules as
//! [`StateChanges::into_bundle_state`](crate::StateChanges::into_bundle_state):
//!
//! - gone (`info: None`) after a wipe: self-destructed; gone without a wipe: an empty account
//!   touched, which `State` deletes (EIP-161);
//! - alive after a wipe: created; if it had code or a nonce before the block, it was destroyed
//!   first (only SELFDESTRUCT can wipe such an account), so a self-destructed account is
//!   committed before the created one and `State` records `DestroyedChanged`;
//! - alive and empty, not existing before: created, as revm's journal marks an account that
//!   pre-Spurious Dragon rules materialise (`JournalInner::finalize`);
//! - new code is attached to the info, or `State` would not see the new contract.

use revm::primitives::map::AddressMap;
use revm::state::{Account, AccountStatus, EvmState, EvmStorageSlot, TransactionId};

use crate::output::{AccountChange, StateChanges};

/// The commits that apply `changes` to a revm `State`, in order: first the accounts destroyed
/// before they were re-created (often empty), then every changed account.
pub(crate) fn net_commits(changes: StateChanges) -> (EvmState, EvmState) {
    let StateChanges {
        accounts,
        contracts,
    } = changes;
    let mut destroyed = EvmState::default();
    let mut net = AddressMap::with_capacity_and_hasher(accounts.len(), Default::default());
    for (address, change) in accounts {
        if change.destroyed_then_alive() {
            let original = change.original.clone().unwrap_or_default();
            let mut account = Account::from(original.clone());
            *account.original_info_mut() = original;
            account.status = AccountStatus::Touched;
            account.mark_selfdestruct();
            destroyed.insert(address, account);
        }
        let code = change.new_code(&contracts);
        net.insert(address, account(change, code));
    }
    (destroyed, net)
}

/// The committed form of one account's net change (see the module doc for the flags).
fn account(change: AccountChange, code: Option<revm::bytecode::Bytecode>) -> Account {
    let AccountChange {
        original,
        info,
        storage_wiped,
        storage,
    } = change;
    let alive = info.is_some();
    let materialized_empty =
        original.is_none() && info.as_ref().is_some_and(|info| info.is_empty());
    let mut info = info.unwrap_or_default();
    if code.is_some() {
        info.code = code;
    }
    let mut account = Account::from(info);
    account.status = AccountStatus::Touched;
    match original {
        Some(original) => *account.original_info_mut() = original,
        None => {
            *account.original_info_mut() = Default::default();
            account.status |= AccountStatus::LoadedAsNotExisting;
        }
    }
    if !alive && storage_wiped {
        account.mark_selfdestruct();
    } else if alive && (storage_wiped || materialized_empty) {
        account.mark_created();
    }
    // A destroyed account's slots are gone with it; `State` ignores them.
    if alive {
        account.storage = storage
            .into_iter()
            .map(|(slot, value)| {
                let slot_value =
                    EvmStorageSlot::new_changed(value.original, value.present, TransactionId::ZERO);
                (slot, slot_value)
            })
            .collect();
    }
    account
}
