//! [`StateChanges`] to revm's [`BundleState`], the form reth-style integrators persist.
//!
//! One [`TransitionAccount`] is built per changed account and revm's own
//! [`BundleState::apply_transitions_and_create_reverts`] turns them into the bundle, so the
//! statuses, storage-wipe flags and reverts are the ones revm's `State` produces when it commits
//! the block transaction by transaction and merges with `BundleRetention::Reverts`
//! (`tests/bundle.rs` checks this, bundle for bundle, on the workloads and the mainnet blocks).
//!
//! The engine records each account's net change, not the path it took, so the status is
//! inferred from the change (see [`AccountChange::destroyed_then_alive`]). The inference is exact
//! from Cancun on and on the mainnet blocks; before Cancun, an account that started empty and was
//! created, destroyed and created again within the block gets `InMemoryChange` where revm records
//! `DestroyedChanged`, and one created and destroyed in different transactions of the block is
//! left out (revm keeps it, with no info). The plain state is the same in both cases.

use revm::bytecode::Bytecode;
use revm::database::states::StorageSlot;
use revm::database::states::bundle_state::BundleRetention;
use revm::database::{AccountStatus, BundleState, TransitionAccount, TransitionState};
use revm::primitives::KECCAK_EMPTY;
use revm::primitives::map::B256Map;

use super::{AccountChange, StateChanges};

impl StateChanges {
    /// Converts to revm's [`BundleState`], consuming the changes (storage moves, nothing is
    /// cloned but new code), with one revert entry that undoes the whole block.
    ///
    /// The result equals the bundle revm's `State` builds when the block's transactions are
    /// committed into it one by one and `merge_transitions(BundleRetention::Reverts)` runs:
    /// same accounts, statuses (a wiped storage gives `wipe_storage` in the plain state and the
    /// revert), reverts and new contracts. Original values of slots in a wiped account are
    /// unknown to the executor (it never read them), as they are to revm's `State` over an
    /// empty cache, so neither restores them in the revert.
    ///
    /// ```
    /// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
    /// use blockstm_evm::{execute, Options};
    ///
    /// let workload = WorkloadSpec::new(WorkloadKind::Erc20, 50).generate().unwrap();
    /// let output = execute(&workload.storage, &workload.block, &Options::default()).unwrap();
    /// let accounts = output.state.accounts.len();
    /// let bundle = output.state.into_bundle_state();
    /// assert_eq!(bundle.state.len(), accounts);
    /// assert_eq!(bundle.reverts.len(), 1);
    /// ```
    pub fn into_bundle_state(self) -> BundleState {
        let StateChanges {
            accounts,
            contracts,
        } = self;
        let mut transitions = TransitionState::default();
        transitions.transitions.reserve(accounts.len());
        for (address, change) in accounts {
            if let Some(transition) = transition(change, &contracts) {
                transitions.transitions.insert(address, transition);
            }
        }
        let mut bundle = BundleState::default();
        bundle.apply_transitions_and_create_reverts(transitions, BundleRetention::Reverts);
        bundle
    }

    /// Converts to revm's [`BundleState`] like [`StateChanges::into_bundle_state`], cloning
    /// the changes; prefer `into_bundle_state` when the changes are no longer needed.
    ///
    /// (Until the alloy-evm work, this built the bundle with `BundleState::new`, which marks
    /// every account `Changed` and so lost wiped storage: see `tests/bundle.rs`.)
    pub fn to_bundle_state(&self) -> BundleState {
        self.clone().into_bundle_state()
    }
}

impl AccountChange {
    /// Whether the account was destroyed during the block and is alive at its end: its
    /// storage was wiped and it exists now, while before the block it had code or a nonce.
    ///
    /// Why this means "destroyed": a creation at an address with code or a nonce collides
    /// and fails, so only a SELFDESTRUCT (pre-Cancun, or in the creating transaction) can have
    /// wiped such an account; something then re-created or funded it. revm's `State` records
    /// this as `DestroyedChanged`, not as a plain creation.
    pub(crate) fn destroyed_then_alive(&self) -> bool {
        self.storage_wiped
            && self.info.is_some()
            && self
                .original
                .as_ref()
                .is_some_and(|original| !original.has_no_code_and_nonce())
    }

    /// The code to attach to the account's new info, as revm's journal does for an account
    /// whose code it loaded or deployed: `Some` when the code hash changed over the block (or
    /// the account was destroyed and re-created), so that revm's `has_new_contract` sees new
    /// code; the empty bytecode for `KECCAK_EMPTY`, else the deployed code from `contracts`.
    pub(crate) fn new_code(&self, contracts: &B256Map<Bytecode>) -> Option<Bytecode> {
        let info = self.info.as_ref()?;
        let changed = self.destroyed_then_alive()
            || self.original.as_ref().map(|original| original.code_hash) != Some(info.code_hash);
        if !changed {
            return None;
        }
        if info.code_hash == KECCAK_EMPTY {
            Some(Bytecode::default())
        } else {
            contracts.get(&info.code_hash).cloned()
        }
    }
}

/// The transition revm's `State` would have merged for this account over the block, or `None`
/// when revm records nothing (an account that neither existed before nor exists after).
fn transition(change: AccountChange, contracts: &B256Map<Bytecode>) -> Option<TransitionAccount> {
    let previous_status = match &change.original {
        None => AccountStatus::LoadedNotExisting,
        Some(original) if original.is_empty() => AccountStatus::LoadedEmptyEIP161,
        Some(_) => AccountStatus::Loaded,
    };
    // Before Spurious Dragon, touching a missing account creates it empty; revm's journal marks
    // it created (`JournalInner::finalize`). From Spurious Dragon on a touched empty account is
    // deleted, so an empty account that did not exist before only comes from the old rule.
    let materialized_empty =
        change.original.is_none() && change.info.as_ref().is_some_and(|info| info.is_empty());
    let destroyed_then_alive = change.destroyed_then_alive();
    let (status, storage_was_destroyed) = match &change.info {
        None if previous_status == AccountStatus::LoadedNotExisting => return None,
        None => (AccountStatus::Destroyed, true),
        Some(_) if destroyed_then_alive => (AccountStatus::DestroyedChanged, true),
        Some(_) if change.storage_wiped || materialized_empty => {
            (previous_status.on_created(), false)
        }
        // An existing account left empty: revm's EIP-161 touch deletes it.
        Some(info) if info.is_empty() => (AccountStatus::Destroyed, true),
        Some(_) => {
            let had_no_code_and_nonce = change
                .original
                .as_ref()
                .is_some_and(|original| original.has_no_code_and_nonce());
            (previous_status.on_changed(had_no_code_and_nonce), false)
        }
    };
    let code = change.new_code(contracts);
    let AccountChange {
        original,
        info,
        storage,
        ..
    } = change;
    let alive = info.is_some();
    let info = info.map(|mut info| {
        if code.is_some() {
            info.code = code;
        }
        info
    });
    // A destroyed account keeps no storage; revm's transition carries none either.
    let storage = if alive {
        storage
            .into_iter()
            .map(|(slot, value)| {
                (
                    slot,
                    StorageSlot::new_changed(value.original, value.present),
                )
            })
            .collect()
    } else {
        Default::default()
    };
    Some(TransitionAccount {
        info,
        status,
        previous_info: original,
        previous_status,
        storage,
        storage_was_destroyed,
    })
}
