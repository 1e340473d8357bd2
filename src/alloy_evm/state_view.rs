//! A read-only, `Sync` view of revm's [`State`] for the parallel engine.
//!
//! The engine reads its pre-state through `DatabaseRef + Sync`. revm's `State` implements
//! `DatabaseRef`, but it is not `Sync` (its `state_hook` is a `Box<dyn OnStateHook>`, `Send`
//! only), and its `DatabaseRef` reads differ from what its `Database` reads return for a
//! cached non-existent account. [`StateView`] borrows the `Sync` parts of the `State` and
//! answers every read exactly as `State`'s mutable read path (`Database`) would at this point:
//! the state the sequential executor would see, including the block's system calls committed
//! before the transactions and earlier blocks of a batch executed into the same `State`.

use revm::bytecode::Bytecode;
use revm::database::states::block_hash_cache::BlockHashCache;
use revm::database::{BundleState, CacheState, State};
use revm::database_interface::DatabaseRef;
use revm::primitives::{Address, B256, StorageKey, StorageValue};
use revm::state::AccountInfo;

/// A `Sync` view of a revm [`State`]: reads go to its cache, then (when the state uses a
/// preloaded bundle) its bundle, then its database, as `State`'s own `Database` reads do.
///
/// The view never fills the cache; the adapter commits the block's net changes afterwards.
#[derive(Debug)]
pub struct StateView<'s, X> {
    cache: &'s CacheState,
    bundle_state: &'s BundleState,
    use_preloaded_bundle: bool,
    database: &'s X,
    block_hashes: &'s BlockHashCache,
}

impl<'s, X> StateView<'s, X> {
    /// A view of `state` as it is now.
    pub fn new(state: &'s State<X>) -> Self {
        Self {
            cache: &state.cache,
            bundle_state: &state.bundle_state,
            use_preloaded_bundle: state.use_preloaded_bundle,
            database: &state.database,
            block_hashes: &state.block_hashes,
        }
    }
}

impl<X: DatabaseRef> DatabaseRef for StateView<'_, X> {
    type Error = X::Error;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        if let Some(account) = self.cache.accounts.get(&address) {
            return Ok(account.account_info());
        }
        if self.use_preloaded_bundle
            && let Some(account) = self.bundle_state.account(&address)
        {
            return Ok(account.account_info());
        }
        self.database.basic_ref(address)
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        if let Some(code) = self.cache.contracts.get(&code_hash) {
            return Ok(code.clone());
        }
        if self.use_preloaded_bundle
            && let Some(code) = self.bundle_state.contracts.get(&code_hash)
        {
            return Ok(code.clone());
        }
        self.database.code_by_hash_ref(code_hash)
    }

    fn storage_ref(&self, address: Address, key: StorageKey) -> Result<StorageValue, Self::Error> {
        // As `State::storage`: the account is looked up in the cache (or, when preloaded,
        // the bundle, which `State` would copy into the cache); a missing account reads zero;
        // a slot not cached reads zero when the account's storage is known (destroyed or
        // created in this `State`), else comes from the database.
        if let Some(account) = self.cache.accounts.get(&address) {
            let Some(plain) = &account.account else {
                return Ok(StorageValue::ZERO);
            };
            if let Some(value) = plain.storage.get(&key) {
                return Ok(*value);
            }
            if account.status.is_storage_known() {
                return Ok(StorageValue::ZERO);
            }
        } else if self.use_preloaded_bundle
            && let Some(account) = self.bundle_state.account(&address)
        {
            if account.info.is_none() {
                return Ok(StorageValue::ZERO);
            }
            // `storage_slot` is the present value, or zero when the storage is known.
            if let Some(value) = account.storage_slot(key) {
                return Ok(value);
            }
        }
        self.database.storage_ref(address, key)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        if let Some(hash) = self.block_hashes.get(number) {
            return Ok(hash);
        }
        self.database.block_hash_ref(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryStorage;
    use revm::database::WrapDatabaseRef;
    use revm::primitives::U256;

    fn is_sync<T: Sync>(_: &T) {}

    #[test]
    fn the_view_is_sync_and_reads_the_cache_before_the_database() {
        let address = Address::repeat_byte(1);
        let mut storage = InMemoryStorage::new();
        storage.insert_account(address, U256::from(5), 0, None);
        storage.set_storage(address, U256::from(1), U256::from(9));
        let mut state = State::builder()
            .with_database(WrapDatabaseRef(&storage))
            .build();
        {
            let view = StateView::new(&state);
            is_sync(&view);
            assert_eq!(
                view.basic_ref(address).unwrap().unwrap().balance,
                U256::from(5)
            );
            assert_eq!(
                view.storage_ref(address, U256::from(1)).unwrap(),
                U256::from(9)
            );
        }
        // A cached account that does not exist reads no storage, as `State` reads it.
        state.insert_not_existing(address);
        let view = StateView::new(&state);
        assert_eq!(view.basic_ref(address).unwrap(), None);
        assert_eq!(
            view.storage_ref(address, U256::from(1)).unwrap(),
            U256::ZERO
        );
    }
}
