//! Output assembly of the parallel engine: the block's [`StateChanges`] read straight from
//! multi-version memory once every transaction is final, in parallel over accounts.
//!
//! For every written location the final value is its highest writer's (with trailing fees
//! credited), and the pre-block value is the base the lowest writer read. The rules match
//! [`StateCache::into_changes`](crate::state_cache) exactly: an account appears when its info
//! or a slot differs from before the block, or its storage was wiped; after a wipe, only slots
//! written at or after the last wipe count, against zero.

use std::sync::{Mutex, PoisonError};

use revm::bytecode::Bytecode;
use revm::database_interface::DatabaseRef;
use revm::primitives::map::{AddressMap, B256Map, U256Map};
use revm::primitives::{Address, B256, KECCAK_EMPTY, U256};
use revm::state::AccountInfo;

use crate::error::BlockError;
use crate::location::{LocId, Location, LocationIndex};
use crate::mv_memory::{AccountValue, BaseValue, MvMemory, TxIdx};
use crate::output::{AccountChange, SlotChange, StateChanges};
use crate::parallel::Workers;

/// The written locations of one account.
#[derive(Default)]
struct AccountLocations {
    account: Option<LocId>,
    slots: Vec<(U256, LocId)>,
}

/// A storage failure while loading a pre-block value MvMemory did not cache.
struct AssemblyError<E> {
    tx: TxIdx,
    source: E,
}

fn without_code(mut info: AccountInfo) -> AccountInfo {
    info.code = None;
    info.account_id = None;
    info
}

/// Accounts below which one more assembly participant costs more (a dispatch and a wake-up)
/// than it saves.
const MIN_ACCOUNTS_PER_PART: usize = 256;

/// The block's state changes, computed by up to `workers.threads()` participants.
pub(crate) fn state_changes<S: DatabaseRef + Sync>(
    storage: &S,
    memory: &MvMemory,
    index: &LocationIndex,
    workers: &Workers<'_>,
) -> Result<StateChanges, BlockError> {
    let entries = index.entries();
    let mut by_account: AddressMap<AccountLocations> =
        AddressMap::with_capacity_and_hasher(entries.len(), Default::default());
    for (location, id) in entries {
        match location {
            Location::Account(address) => by_account.entry(address).or_default().account = Some(id),
            Location::Storage(address, key) if memory.is_written(id) => {
                by_account.entry(address).or_default().slots.push((key, id))
            }
            Location::Storage(..) => {}
        }
    }
    let accounts: Vec<(Address, AccountLocations)> = by_account
        .into_iter()
        .filter(|(_, locations)| {
            !locations.slots.is_empty() || locations.account.is_some_and(|id| memory.is_written(id))
        })
        .collect();
    let parts = accounts
        .len()
        .div_ceil(MIN_ACCOUNTS_PER_PART)
        .clamp(1, workers.threads());
    let chunk = accounts.len().div_ceil(parts).max(1);
    let assembled: Vec<Mutex<Option<AssembledPart<S::Error>>>> =
        (0..parts).map(|_| Mutex::new(None)).collect();
    workers
        .run(parts, &|part| {
            let mine = accounts.chunks(chunk).nth(part).unwrap_or(&[]);
            let result = assemble_part(storage, memory, mine);
            *assembled[part]
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(result);
        })
        .map_err(|message| BlockError::WorkerPanicked { message })?;
    let mut changes = StateChanges {
        accounts: AddressMap::with_capacity_and_hasher(accounts.len(), Default::default()),
        contracts: B256Map::default(),
    };
    for part in assembled {
        let part = part
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .expect("every assembly participant stores its part");
        let part = part.map_err(|error| BlockError::storage(error.tx as usize, error.source))?;
        for (address, change, contract) in part {
            if let Some((hash, code)) = contract {
                changes.contracts.insert(hash, code);
            }
            changes.accounts.insert(address, change);
        }
    }
    Ok(changes)
}

type AssembledPart<E> = Result<Vec<Assembled>, AssemblyError<E>>;

type Assembled = (Address, AccountChange, Option<(B256, Bytecode)>);

fn assemble_part<S: DatabaseRef>(
    storage: &S,
    memory: &MvMemory,
    accounts: &[(Address, AccountLocations)],
) -> Result<Vec<Assembled>, AssemblyError<S::Error>> {
    let mut out = Vec::with_capacity(accounts.len());
    for (address, locations) in accounts {
        if let Some(assembled) = account_change(storage, memory, *address, locations)? {
            out.push(assembled);
        }
    }
    Ok(out)
}

fn account_change<S: DatabaseRef>(
    storage: &S,
    memory: &MvMemory,
    address: Address,
    locations: &AccountLocations,
) -> Result<Option<Assembled>, AssemblyError<S::Error>> {
    let base = match locations.account.and_then(|id| memory.base(id)) {
        Some(BaseValue::Account(value)) => value.info.clone(),
        // Every writer of an account or its slots read the account first, so the lowest one
        // cached its base; storage is asked only if that ever fails to hold.
        _ => storage
            .basic_ref(address)
            .map_err(|source| AssemblyError { tx: 0, source })?,
    };
    let original = base.clone().map(without_code);
    let last = locations
        .account
        .and_then(|id| memory.final_account(id, &base));
    let (info, wiped_at) = match last {
        Some(AccountValue { info, wiped_at }) => (info, wiped_at),
        None => (original.clone(), None),
    };
    let contract = info.as_ref().and_then(|info| {
        let changed_code = info.code_hash != KECCAK_EMPTY
            && original.as_ref().map(|o| o.code_hash) != Some(info.code_hash);
        changed_code
            .then(|| info.code.clone().map(|code| (info.code_hash, code)))
            .flatten()
    });
    let info = info.map(without_code);
    let mut slots = U256Map::default();
    for (key, id) in &locations.slots {
        let Some((writer, present)) = memory.final_storage(*id) else {
            continue;
        };
        match wiped_at {
            Some(wiped) => {
                if writer >= wiped && !present.is_zero() {
                    slots.insert(
                        *key,
                        SlotChange {
                            original: U256::ZERO,
                            present,
                        },
                    );
                }
            }
            None => {
                let original = match memory.base(*id) {
                    Some(BaseValue::Storage(value)) => *value,
                    _ => storage
                        .storage_ref(address, *key)
                        .map_err(|source| AssemblyError { tx: writer, source })?,
                };
                if present != original {
                    slots.insert(*key, SlotChange { original, present });
                }
            }
        }
    }
    let wiped = wiped_at.is_some();
    let absent_throughout = original.is_none() && info.is_none();
    let changed = original != info || !slots.is_empty() || (wiped && !absent_throughout);
    Ok(changed.then(|| {
        (
            address,
            AccountChange {
                original,
                info,
                storage_wiped: wiped,
                storage: slots,
            },
            contract,
        )
    }))
}
