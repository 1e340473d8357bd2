//! Output assembly of the parallel engine: the block's [`StateChanges`] read straight from
//! multi-version memory once every transaction is final, in parallel over accounts.
//!
//! For every written location the final value is its highest writer's (with trailing fees
//! credited), and the pre-block value is the base the lowest writer read. The rules match
//! [`StateCache::into_changes`](crate::state_cache) exactly: an account appears when its info
//! or a slot differs from before the block, or its storage was wiped; after a wipe, only slots
//! written at or after the last wipe count, against zero.
//!
//! Steps: one scan of the location ids in order finds the written accounts and slots (the
//! index records each id's location); the accounts are split into ranges of about equal work
//! and assembled by the block's workers on the pool, each into a map of its own; the caller
//! moves the smaller parts into the largest one.

use std::sync::PoisonError;

use revm::bytecode::Bytecode;
use revm::database_interface::DatabaseRef;
use revm::primitives::map::{AddressMap, B256Map, U256Map};
use revm::primitives::{Address, B256, KECCAK_EMPTY, U256};
use revm::state::AccountInfo;

use crate::error::BlockError;
use crate::location::{Location, LocationIndex};
use crate::mv_memory::{AccountValue, BaseValue, MvMemory};
use crate::output::{AccountChange, SlotChange, StateChanges};
use crate::pool::BlockThreads;
#[cfg(doc)]
use crate::state_cache::Change;
use crate::sync::{Mutex, lock};
use crate::types::{LocId, TxIdx};

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

/// Work (locations to assemble) below which one more assembly participant costs more (a
/// dispatch and a wake-up) than it saves.
const MIN_WORK_PER_PART: usize = 256;

/// Fee-lane entries that cost about as much to fold as one account costs to assemble
/// (measured on raw transfers: 10,000 fees took 0.8 ms, 10,000 accounts 2.2-2.8 ms).
const LANE_ENTRIES_PER_ACCOUNT: usize = 3;

/// Splits `accounts` into at most `threads` consecutive ranges of about equal work (an
/// account's location, its slots and, for the beneficiary, the fees it folds: `lane_entries`
/// of an account id): a token contract with thousands of written slots weighs as much as
/// thousands of senders, and so does the beneficiary of thousands of transactions.
fn split_by_work(
    accounts: &[(Address, AccountLocations)],
    threads: usize,
    lane_entries: impl Fn(LocId) -> usize,
) -> Vec<std::ops::Range<usize>> {
    let work = |(_, locations): &(Address, AccountLocations)| {
        let lane = locations.account.map_or(0, &lane_entries);
        1 + locations.slots.len() + lane / LANE_ENTRIES_PER_ACCOUNT
    };
    let total: usize = accounts.iter().map(work).sum();
    let parts = total.div_ceil(MIN_WORK_PER_PART).clamp(1, threads.max(1));
    let per_part = total.div_ceil(parts).max(1);
    let mut ranges = Vec::with_capacity(parts);
    let (mut start, mut done) = (0, 0);
    for (position, account) in accounts.iter().enumerate() {
        done += work(account);
        if done >= per_part * (ranges.len() + 1) && ranges.len() + 1 < parts {
            ranges.push(start..position + 1);
            start = position + 1;
        }
    }
    ranges.push(start..accounts.len());
    ranges
}

/// The block's state changes, computed by up to `workers.threads()` participants, and the
/// accounts that vanished (created and destroyed, see [`Change::Vanished`]).
pub(crate) fn state_changes<S: DatabaseRef + Sync>(
    storage: &S,
    memory: &MvMemory,
    index: &LocationIndex,
    workers: &BlockThreads<'_>,
) -> Result<(StateChanges, Vec<Address>), BlockError> {
    let accounts = written_accounts(memory, index);
    let parts = split_by_work(&accounts, workers.threads(), |id| memory.lane_entries(id));
    // The part with the most accounts is built in the block's map, sized for all of them;
    // the caller moves the others' entries in. Parts fill their maps in parallel, so the
    // caller's serial share is the other parts' entries only, each moved once.
    let largest = (0..parts.len())
        .max_by_key(|part| parts[*part].len())
        .expect("split_by_work returns at least one part");
    let assembled: Vec<Mutex<Option<AssembledPart<S::Error>>>> =
        (0..parts.len()).map(|_| Mutex::new(None)).collect();
    workers
        .run(parts.len(), &|part| {
            let mine = &accounts[parts[part].clone()];
            let capacity = if part == largest {
                accounts.len()
            } else {
                mine.len()
            };
            let result = assemble_part(storage, memory, mine, capacity);
            *lock(&assembled[part]) = Some(result);
        })
        .map_err(|message| BlockError::WorkerPanicked { message })?;
    let mut parts: Vec<PartChanges> = Vec::with_capacity(assembled.len());
    for part in assembled {
        let part = part
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .expect("every assembly participant stores its part");
        parts.push(part.map_err(|error| BlockError::storage(error.tx as usize, error.source))?);
    }
    let mut block = parts.swap_remove(largest);
    for part in parts {
        block.changes.accounts.extend(part.changes.accounts);
        block.changes.contracts.extend(part.changes.contracts);
        block.vanished.extend(part.vanished);
    }
    Ok((block.changes, block.vanished))
}

/// Every account with a written location (its own, or one of its slots), with its written
/// slots. One pass over the ids in order (the cells lie in id order, so the scan is
/// sequential in memory), hashing only written slots and, while there are any, accounts.
fn written_accounts(memory: &MvMemory, index: &LocationIndex) -> Vec<(Address, AccountLocations)> {
    let ids = (0..index.len()).map(|id| LocId(id as u32));
    let mut slots: AddressMap<Vec<(U256, LocId)>> = AddressMap::default();
    for id in ids.clone() {
        if let Location::Storage(address, key) = index.location(id)
            && memory.is_written(id)
        {
            slots.entry(address).or_default().push((key, id));
        }
    }
    let mut accounts = Vec::new();
    for id in ids {
        if let Location::Account(address) = index.location(id) {
            let account_slots = if slots.is_empty() {
                Vec::new()
            } else {
                slots.remove(&address).unwrap_or_default()
            };
            if !account_slots.is_empty() || memory.is_written(id) {
                accounts.push((
                    address,
                    AccountLocations {
                        account: Some(id),
                        slots: account_slots,
                    },
                ));
            }
        }
    }
    // Slots of accounts whose own location was never indexed (rare: revm reads an account
    // before its storage).
    accounts.extend(slots.into_iter().map(|(address, slots)| {
        (
            address,
            AccountLocations {
                account: None,
                slots,
            },
        )
    }));
    accounts
}

/// One participant's share of the block's changes.
struct PartChanges {
    changes: StateChanges,
    /// See [`Change::Vanished`].
    vanished: Vec<Address>,
}

type AssembledPart<E> = Result<PartChanges, AssemblyError<E>>;

/// One account's outcome, unless it did not change.
// Moved once per account and consumed at once: boxing would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Assembled {
    /// Its change, and its code when the block changed its code hash.
    Changed(AccountChange, Option<(B256, Bytecode)>),
    /// See [`Change::Vanished`].
    Vanished,
}

/// Assembles `accounts` into a map with room for `capacity` accounts.
fn assemble_part<S: DatabaseRef>(
    storage: &S,
    memory: &MvMemory,
    accounts: &[(Address, AccountLocations)],
    capacity: usize,
) -> AssembledPart<S::Error> {
    let mut part = PartChanges {
        changes: StateChanges {
            accounts: AddressMap::with_capacity_and_hasher(capacity, Default::default()),
            contracts: B256Map::default(),
        },
        vanished: Vec::new(),
    };
    // MvMemory's pins nest in this one (see `parallel::worker`).
    let _pinned = crossbeam_epoch::pin();
    for (address, locations) in accounts {
        match account_change(storage, memory, *address, locations)? {
            Some(Assembled::Changed(change, contract)) => {
                if let Some((hash, code)) = contract {
                    part.changes.contracts.insert(hash, code);
                }
                part.changes.accounts.insert(*address, change);
            }
            Some(Assembled::Vanished) => part.vanished.push(*address),
            None => {}
        }
    }
    Ok(part)
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
    let mut slots = U256Map::with_capacity_and_hasher(locations.slots.len(), Default::default());
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
    if !changed {
        return Ok(wiped.then_some(Assembled::Vanished));
    }
    let change = AccountChange {
        original,
        info,
        storage_wiped: wiped,
        storage: slots,
    };
    Ok(Some(Assembled::Changed(change, contract)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(slot_counts: &[usize]) -> Vec<(Address, AccountLocations)> {
        slot_counts
            .iter()
            .enumerate()
            .map(|(i, slots)| {
                let locations = AccountLocations {
                    account: Some(LocId(i as u32)),
                    slots: (0..*slots).map(|k| (U256::from(k), LocId(0))).collect(),
                };
                (Address::with_last_byte(i as u8), locations)
            })
            .collect()
    }

    fn no_lane(_: LocId) -> usize {
        0
    }

    fn assert_contiguous(ranges: &[std::ops::Range<usize>], len: usize) {
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(len));
        assert!(
            ranges.windows(2).all(|w| w[0].end == w[1].start),
            "{ranges:?}"
        );
    }

    #[test]
    fn parts_cover_every_account_and_balance_heavy_ones() {
        // One token with 1,000 written slots among 1,000 senders: two parts of ~1,000 each.
        let mut counts = vec![0; 1_000];
        counts.insert(0, 1_000);
        let all = accounts(&counts);
        let ranges = split_by_work(&all, 2, no_lane);
        assert_eq!(ranges.len(), 2);
        assert_contiguous(&ranges, all.len());
        assert_eq!(ranges[0], 0..1, "the token alone is half the work");

        let small = accounts(&[0; 10]);
        assert_eq!(
            split_by_work(&small, 8, no_lane),
            vec![(0..10)],
            "little work: one part"
        );
        let none = accounts(&[]);
        assert_eq!(split_by_work(&none, 4, no_lane), vec![(0..0)]);
        let many = accounts(&[0; 10_000]);
        let ranges = split_by_work(&many, 8, no_lane);
        assert_eq!(ranges.len(), 8);
        assert_contiguous(&ranges, many.len());
    }

    #[test]
    fn the_beneficiarys_fees_weigh_in_the_split() {
        // The beneficiary (id 0) folds 30,000 fees: as much work as 10,000 accounts.
        let all = accounts(&[0; 20_001]);
        let lane = |id: LocId| if id == LocId(0) { 30_000 } else { 0 };
        let ranges = split_by_work(&all, 2, lane);
        assert_contiguous(&ranges, all.len());
        assert_eq!(ranges[0], 0..5_001, "the beneficiary and 5,000 accounts");
        let unweighted = split_by_work(&all, 2, no_lane);
        assert_eq!(unweighted[0], 0..10_001);
    }
}
