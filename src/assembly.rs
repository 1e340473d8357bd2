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

/// A share of the assembly work.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// An account (an index into the written accounts), assembled whole.
    Account(usize),
    /// A range of the written slots of an account too heavy for one participant (a token
    /// contract with a slot per holder): `split` indexes the block's split accounts.
    Slots {
        split: usize,
        range: std::ops::Range<usize>,
    },
}

/// The block's assembly work cut into pieces (accounts in order; an account whose written
/// slots exceed half a participant's share cut into ranges of slots) and the pieces split
/// into at most `threads` consecutive ranges of about equal work. Work is an account's
/// location, its slots and, for the beneficiary, the fees it folds (`lane_entries` of an
/// account id): a token contract with thousands of written slots weighs as much as
/// thousands of senders, and so does the beneficiary of thousands of transactions. Returns
/// the pieces, their ranges, and the split accounts (indexes into `accounts`).
fn plan_parts(
    accounts: &[(Address, AccountLocations)],
    threads: usize,
    lane_entries: impl Fn(LocId) -> usize,
) -> (Vec<Piece>, Vec<std::ops::Range<usize>>, Vec<usize>) {
    let work = |(_, locations): &(Address, AccountLocations)| {
        let lane = locations.account.map_or(0, &lane_entries);
        1 + locations.slots.len() + lane / LANE_ENTRIES_PER_ACCOUNT
    };
    let total: usize = accounts.iter().map(work).sum();
    let parts = total.div_ceil(MIN_WORK_PER_PART).clamp(1, threads.max(1));
    let per_part = total.div_ceil(parts).max(1);
    let max_slots = if parts > 1 {
        (per_part / 2).max(MIN_WORK_PER_PART)
    } else {
        usize::MAX
    };
    let (mut pieces, mut weights, mut split) = (Vec::new(), Vec::new(), Vec::new());
    for (position, account) in accounts.iter().enumerate() {
        let slots = account.1.slots.len();
        if slots <= max_slots {
            pieces.push(Piece::Account(position));
            weights.push(work(account));
            continue;
        }
        for start in (0..slots).step_by(max_slots) {
            let range = start..(start + max_slots).min(slots);
            weights.push(range.len());
            pieces.push(Piece::Slots {
                split: split.len(),
                range,
            });
        }
        split.push(position);
    }
    let ranges = split_by_work(&weights, parts, per_part);
    (pieces, ranges, split)
}

/// Splits pieces of work `weights` into at most `parts` consecutive ranges of about
/// `per_part` each.
fn split_by_work(weights: &[usize], parts: usize, per_part: usize) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::with_capacity(parts);
    let (mut start, mut done) = (0, 0);
    for (position, weight) in weights.iter().enumerate() {
        done += weight;
        if done >= per_part * (ranges.len() + 1) && ranges.len() + 1 < parts {
            ranges.push(start..position + 1);
            start = position + 1;
        }
    }
    ranges.push(start..weights.len());
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
    let (pieces, parts, split) =
        plan_parts(&accounts, workers.threads(), |id| memory.lane_entries(id));
    // A split account's own value, computed once, here: its pieces need when its storage was
    // wiped, and the caller completes its change from them.
    let headers = split
        .iter()
        .map(|&position| {
            let (address, locations) = &accounts[position];
            account_header(storage, memory, *address, locations.account)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| BlockError::storage(error.tx as usize, error.source))?;
    // The part with the most pieces is built in the block's map, sized for all accounts; the
    // caller moves the others' entries in. Parts fill their maps in parallel, so the caller's
    // serial share is the other parts' entries only, each moved once.
    let largest = (0..parts.len())
        .max_by_key(|part| parts[*part].len())
        .expect("split_by_work returns at least one part");
    let assembled: Vec<Mutex<Option<AssembledPart<S::Error>>>> =
        (0..parts.len()).map(|_| Mutex::new(None)).collect();
    let shared = Shared {
        storage,
        memory,
        accounts: &accounts,
        split: &split,
        headers: &headers,
    };
    workers
        .run(parts.len(), &|part| {
            let capacity = if part == largest {
                accounts.len()
            } else {
                parts[part].len()
            };
            let result = shared.assemble_part(&pieces[parts[part].clone()], capacity);
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
    let mut split_slots: Vec<Vec<U256Map<SlotChange>>> = vec![Vec::new(); split.len()];
    for (split, slots) in std::mem::take(&mut block.slices) {
        split_slots[split].push(slots);
    }
    for part in parts {
        block.changes.accounts.extend(part.changes.accounts);
        block.changes.contracts.extend(part.changes.contracts);
        block.vanished.extend(part.vanished);
        for (split, slots) in part.slices {
            split_slots[split].push(slots);
        }
    }
    for ((position, header), slices) in split.iter().zip(headers).zip(split_slots) {
        let slots = merge_slot_maps(slices);
        let address = accounts[*position].0;
        block.insert(address, finish(header, slots));
    }
    Ok((block.changes, block.vanished))
}

/// One map of the slot changes in `maps`, which hold distinct slots: the others moved into
/// the largest.
fn merge_slot_maps(mut maps: Vec<U256Map<SlotChange>>) -> U256Map<SlotChange> {
    let Some(largest) = (0..maps.len()).max_by_key(|map| maps[*map].len()) else {
        return U256Map::default();
    };
    let mut merged = maps.swap_remove(largest);
    merged.reserve(maps.iter().map(|map| map.len()).sum());
    for map in maps {
        merged.extend(map);
    }
    merged
}

/// Every account with a written location (its own, or one of its slots), with its written
/// slots. One pass over the ids in order (the cells lie in id order, so the scan is
/// sequential in memory), hashing only written slots and, while there are any, accounts.
fn written_accounts(memory: &MvMemory, index: &LocationIndex) -> Vec<(Address, AccountLocations)> {
    let ids = (0..index.len()).map(|id| LocId(id as u32));
    // Written slots by contract, contracts in order of first sight, and where each is.
    let mut contracts: Vec<(Address, Vec<(U256, LocId)>)> = Vec::new();
    let mut positions: AddressMap<usize> = AddressMap::default();
    // Consecutive ids are often slots of one contract: found again without hashing.
    let mut last: Option<(Address, usize)> = None;
    for id in ids.clone() {
        if let Location::Storage(address, key) = index.location(id)
            && memory.is_written(id)
        {
            let position = match last {
                Some((current, position)) if current == address => position,
                _ => *positions.entry(address).or_insert_with(|| {
                    contracts.push((address, Vec::new()));
                    contracts.len() - 1
                }),
            };
            last = Some((address, position));
            contracts[position].1.push((key, id));
        }
    }
    let mut accounts = Vec::with_capacity(index.len());
    for id in ids {
        if let Location::Account(address) = index.location(id) {
            let slots = if positions.is_empty() {
                Vec::new()
            } else {
                positions
                    .remove(&address)
                    .map(|position| std::mem::take(&mut contracts[position].1))
                    .unwrap_or_default()
            };
            if !slots.is_empty() || memory.is_written(id) {
                accounts.push((
                    address,
                    AccountLocations {
                        account: Some(id),
                        slots,
                    },
                ));
            }
        }
    }
    // Slots of accounts whose own location was never indexed (rare: revm reads an account
    // before its storage).
    accounts.extend(
        contracts
            .into_iter()
            .filter(|(_, slots)| !slots.is_empty())
            .map(|(address, slots)| {
                let locations = AccountLocations {
                    account: None,
                    slots,
                };
                (address, locations)
            }),
    );
    accounts
}

/// One participant's share of the block's changes.
struct PartChanges {
    changes: StateChanges,
    /// See [`Change::Vanished`].
    vanished: Vec<Address>,
    /// The changed slots of each range of a split account's slots it assembled (by the split
    /// account's index).
    slices: Vec<(usize, U256Map<SlotChange>)>,
}

impl PartChanges {
    /// Records one account's outcome.
    fn insert(&mut self, address: Address, outcome: Option<Assembled>) {
        match outcome {
            Some(Assembled::Changed(change, contract)) => {
                if let Some((hash, code)) = contract {
                    self.changes.contracts.insert(hash, code);
                }
                self.changes.accounts.insert(address, change);
            }
            Some(Assembled::Vanished) => self.vanished.push(address),
            None => {}
        }
    }
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

/// An account's own value before and after the block.
struct AccountHeader {
    original: Option<AccountInfo>,
    info: Option<AccountInfo>,
    /// The last transaction that wiped its storage.
    wiped_at: Option<TxIdx>,
    /// Its code, when the block changed its code hash.
    contract: Option<(B256, Bytecode)>,
}

/// What every participant reads.
struct Shared<'a, S> {
    storage: &'a S,
    memory: &'a MvMemory,
    accounts: &'a [(Address, AccountLocations)],
    /// The split accounts (indexes into `accounts`) and their headers.
    split: &'a [usize],
    headers: &'a [AccountHeader],
}

impl<S: DatabaseRef> Shared<'_, S> {
    /// Assembles `pieces` into a map with room for `capacity` accounts.
    fn assemble_part(&self, pieces: &[Piece], capacity: usize) -> AssembledPart<S::Error> {
        let mut part = PartChanges {
            changes: StateChanges {
                accounts: AddressMap::with_capacity_and_hasher(capacity, Default::default()),
                contracts: B256Map::default(),
            },
            vanished: Vec::new(),
            slices: Vec::new(),
        };
        // MvMemory's pins nest in this one (see `parallel::worker`).
        let _pinned = crossbeam_epoch::pin();
        for piece in pieces {
            match piece {
                Piece::Account(position) => {
                    let (address, locations) = &self.accounts[*position];
                    let header =
                        account_header(self.storage, self.memory, *address, locations.account)?;
                    let slots = slot_changes(
                        self.storage,
                        self.memory,
                        *address,
                        &locations.slots,
                        header.wiped_at,
                    )?;
                    part.insert(*address, finish(header, slots));
                }
                Piece::Slots { split, range } => {
                    let (address, locations) = &self.accounts[self.split[*split]];
                    let slots = slot_changes(
                        self.storage,
                        self.memory,
                        *address,
                        &locations.slots[range.clone()],
                        self.headers[*split].wiped_at,
                    )?;
                    part.slices.push((*split, slots));
                }
            }
        }
        Ok(part)
    }
}

/// The account's value before the block (the base its lowest writer read) and after it (its
/// last writer's, with later credits).
fn account_header<S: DatabaseRef>(
    storage: &S,
    memory: &MvMemory,
    address: Address,
    id: Option<LocId>,
) -> Result<AccountHeader, AssemblyError<S::Error>> {
    let base = match id.and_then(|id| memory.base(id)) {
        Some(BaseValue::Account(value)) => value.info.clone(),
        // Every writer of an account or its slots read the account first, so the lowest one
        // cached its base; storage is asked only if that ever fails to hold.
        _ => storage
            .basic_ref(address)
            .map_err(|source| AssemblyError { tx: 0, source })?,
    };
    let original = base.clone().map(without_code);
    let last = id.and_then(|id| memory.final_account(id, &base));
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
    Ok(AccountHeader {
        original,
        info: info.map(without_code),
        wiped_at,
        contract,
    })
}

/// The changed slots among `slots` (written slots of `address`, with their ids): after a
/// wipe, the non-zero ones written since; otherwise those whose final value differs from the
/// pre-block one.
fn slot_changes<S: DatabaseRef>(
    storage: &S,
    memory: &MvMemory,
    address: Address,
    slots: &[(U256, LocId)],
    wiped_at: Option<TxIdx>,
) -> Result<U256Map<SlotChange>, AssemblyError<S::Error>> {
    let mut changes = U256Map::with_capacity_and_hasher(slots.len(), Default::default());
    for (key, id) in slots {
        let Some((writer, present)) = memory.final_storage(*id) else {
            continue;
        };
        match wiped_at {
            Some(wiped) => {
                if writer >= wiped && !present.is_zero() {
                    changes.insert(
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
                    changes.insert(*key, SlotChange { original, present });
                }
            }
        }
    }
    Ok(changes)
}

/// The account's outcome from its header and its changed slots.
fn finish(header: AccountHeader, slots: U256Map<SlotChange>) -> Option<Assembled> {
    let AccountHeader {
        original,
        info,
        wiped_at,
        contract,
    } = header;
    let wiped = wiped_at.is_some();
    let absent_throughout = original.is_none() && info.is_none();
    let changed = original != info || !slots.is_empty() || (wiped && !absent_throughout);
    if !changed {
        return wiped.then_some(Assembled::Vanished);
    }
    let change = AccountChange {
        original,
        info,
        storage_wiped: wiped,
        storage: slots,
    };
    Some(Assembled::Changed(change, contract))
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

    /// The work of each part: locations of whole accounts and of slot ranges.
    fn part_work(
        all: &[(Address, AccountLocations)],
        (pieces, ranges, split): &(Vec<Piece>, Vec<std::ops::Range<usize>>, Vec<usize>),
    ) -> Vec<usize> {
        ranges
            .iter()
            .map(|range| {
                pieces[range.clone()]
                    .iter()
                    .map(|piece| match piece {
                        Piece::Account(position) => 1 + all[*position].1.slots.len(),
                        Piece::Slots { split: s, range } => {
                            assert!(range.end <= all[split[*s]].1.slots.len());
                            range.len()
                        }
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn parts_cover_every_account_and_balance_heavy_ones() {
        // One token with 1,000 written slots among 1,000 senders: the token's slots are cut
        // in ranges, and the two parts carry ~1,000 locations each.
        let mut counts = vec![0; 1_000];
        counts.insert(0, 1_000);
        let all = accounts(&counts);
        let planned = plan_parts(&all, 2, no_lane);
        let (pieces, ranges, split) = &planned;
        assert_eq!(ranges.len(), 2);
        assert_contiguous(ranges, pieces.len());
        assert_eq!(split, &vec![0], "the token is split");
        let slot_ranges: Vec<_> = pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Slots { range, .. } => Some(range.clone()),
                Piece::Account(_) => None,
            })
            .collect();
        assert_eq!(slot_ranges.first().map(|r| r.start), Some(0));
        assert_eq!(slot_ranges.last().map(|r| r.end), Some(1_000));
        assert!(slot_ranges.windows(2).all(|w| w[0].end == w[1].start));
        let work = part_work(&all, &planned);
        assert_eq!(work.iter().sum::<usize>(), 2_000, "every slot once");
        assert!(work.iter().all(|w| (900..=1_100).contains(w)), "{work:?}");
        let accounts_seen = pieces
            .iter()
            .filter(|piece| matches!(piece, Piece::Account(_)))
            .count();
        assert_eq!(accounts_seen, 1_000, "every sender once, whole");

        let small = accounts(&[0; 10]);
        let (pieces, ranges, split) = plan_parts(&small, 8, no_lane);
        assert_eq!(ranges, vec![(0..10)], "little work: one part");
        assert!(split.is_empty() && pieces.len() == 10);
        let one_part = accounts(&[100]);
        let (_, ranges, split) = plan_parts(&one_part, 2, no_lane);
        assert_eq!(
            (ranges.len(), split.len()),
            (1, 0),
            "one part: nothing split"
        );
        let none = accounts(&[]);
        assert_eq!(plan_parts(&none, 4, no_lane).1, vec![(0..0)]);
        let many = accounts(&[0; 10_000]);
        let (pieces, ranges, _) = plan_parts(&many, 8, no_lane);
        assert_eq!(ranges.len(), 8);
        assert_contiguous(&ranges, pieces.len());
    }

    #[test]
    fn the_beneficiarys_fees_weigh_in_the_split() {
        // The beneficiary (id 0) folds 30,000 fees: as much work as 10,000 accounts.
        let all = accounts(&[0; 20_001]);
        let lane = |id: LocId| if id == LocId(0) { 30_000 } else { 0 };
        let (pieces, ranges, _) = plan_parts(&all, 2, lane);
        assert_contiguous(&ranges, pieces.len());
        assert_eq!(ranges[0], 0..5_001, "the beneficiary and 5,000 accounts");
        let (_, unweighted, _) = plan_parts(&all, 2, no_lane);
        assert_eq!(unweighted[0], 0..10_001);
    }
}
