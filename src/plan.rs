//! A block's plan from hints: which earlier transaction each transaction probably depends on,
//! found from what the transactions say about themselves before any of them runs.
//!
//! Hints are the sender (its balance and nonce), the recipient of a plain transfer (a credit,
//! which does not conflict with other credits), the calldata of the common ERC-20 calls
//! (`transfer`, `transferFrom`, `approve`: the holder balances and allowance they touch), the
//! EIP-2930 access list, and, for any other call, the called contract as a whole. A plan is
//! only advice: a wrong hint costs time (a transaction waits for a predecessor it did not
//! need, or runs too early and is re-executed), never correctness, which validation keeps.
//!
//! The same pass gives the accounts the block names their dense location ids
//! ([`PredictedAccounts`]); an account's previous writer is kept by that id, so one look-up
//! per account serves both.
//!
//! The engine uses a plan twice: a block whose longest chain of hinted dependencies covers
//! most of its transactions is run on the sequential path (Block-STM would only re-execute
//! it transaction after transaction, on every core), and a transaction's first incarnation
//! waits for its hinted predecessor instead of running into its writes and being aborted.
//!
//! A large block is planned in two parts, so that planning is not a serial phase: the caller
//! plans a prefix ([`BlockPlan::start`]: enough to judge whether the block is mostly one
//! chain, and the accounts whose ids the location index starts with), and the first worker
//! plans the rest ([`RemainingPlan::finish`]) while the others execute the prefix. Each
//! transaction's [`PlannedTx`] is published once, in block order; a worker that reaches a
//! transaction not yet planned waits for it ([`BlockPlan::wait_planned`]). Accounts first
//! named after the prefix get their ids from the location index, as accounts met during
//! execution do, so that the planner and the workers agree on every id.

use std::hash::BuildHasher;

use revm::context::TxEnv;
use revm::primitives::map::{AddressMap, FbBuildHasher, HashMap};
use revm::primitives::{Address, B256, TxKind, keccak256};

use crate::location::{Location, LocationIndex, PredictedAccounts, TxAccounts};
use crate::segmented_vec::SegmentedVec;
use crate::sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::types::{LocId, TxIdx};

/// ERC-20 `transfer(address,uint256)`.
const TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
/// ERC-20 `transferFrom(address,address,uint256)`.
const TRANSFER_FROM: [u8; 4] = [0x23, 0xb8, 0x72, 0xdd];
/// ERC-20 `approve(address,uint256)`.
const APPROVE: [u8; 4] = [0x09, 0x5e, 0xa7, 0xb3];

/// A storage slot as the hints name it: an ERC-20 holder's balance, an allowance (keyed by
/// a hash of owner and spender), or an access-list slot.
type Slot = (Address, B256);

/// What the plan says of one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PlannedTx {
    /// The ids of its sender and recipient.
    pub(crate) accounts: TxAccounts,
    /// The latest earlier transaction it probably depends on, if any.
    pub(crate) predecessor: Option<TxIdx>,
}

/// The plan of one block (see the module documentation), shared by the planner, which
/// publishes each transaction's [`PlannedTx`] once, and the workers, which read them.
pub(crate) struct BlockPlan {
    /// The prefix's plans, made before any worker runs (read-only while they do).
    prefix_txs: Vec<PlannedTx>,
    /// Per transaction after the prefix (at its position less the prefix's length), its
    /// plan once published.
    rest: SegmentedVec<PublishedPlan>,
    /// Transactions planned by [`Self::start`], before any worker runs.
    prefix: usize,
    /// Transactions in the block.
    txs: usize,
    /// The longest chain of hinted dependencies within the prefix.
    prefix_critical_path: usize,
    /// The longest chain of the whole block, once it is planned (the prefix's until then).
    critical_path: AtomicUsize,
    /// The accounts the prefix names, with their location ids (taken once, for the block's
    /// location index).
    predicted: PredictedAccounts,
    /// Accounts the whole block probably names: the prefix's, in proportion.
    expected_accounts: usize,
}

/// What a block's plan leaves for the next block: the buckets of the plans published after
/// its prefix, emptied ([`BlockPlan::into_recycled`]).
pub(crate) struct RecycledPlan {
    rest: SegmentedVec<PublishedPlan>,
}

/// A [`PlannedTx`] published once after the prefix, by the planner, to the workers: two
/// plain stores, the second with release ordering, instead of a `OnceLock`'s two
/// read-modify-writes (`OnceLock::set` was a fifth of the plan's second part on ERC-20
/// transfers).
#[derive(Default)]
struct PublishedPlan {
    /// The sender's id in the low half, the recipient's in the high half ([`NO_RECIPIENT`]
    /// for a creation).
    accounts: AtomicU64,
    /// 0 until published; then 1 for no predecessor, `predecessor + 2` for one.
    published: AtomicU32,
}

/// The recipient half of [`PublishedPlan::accounts`] for a creation (no location has this
/// id: ids are dense from zero).
const NO_RECIPIENT: u32 = u32::MAX;

impl PublishedPlan {
    /// Publishes `planned` (once).
    fn publish(&self, planned: PlannedTx) {
        let to = planned.accounts.to.map_or(NO_RECIPIENT, |to| to.0);
        debug_assert_ne!(planned.accounts.caller.0, NO_RECIPIENT);
        let accounts = u64::from(planned.accounts.caller.0) | (u64::from(to) << 32);
        // Relaxed: published by the release store below.
        self.accounts.store(accounts, Ordering::Relaxed);
        let published = planned.predecessor.map_or(1, |predecessor| predecessor + 2);
        debug_assert_eq!(self.published.load(Ordering::Relaxed), 0, "published once");
        // Release: a reader that sees it published (acquire) sees the accounts stored above.
        self.published.store(published, Ordering::Release);
    }

    /// The published plan, if it is.
    #[inline]
    fn get(&self) -> Option<PlannedTx> {
        // Acquire: pairs with `publish`'s release store.
        let published = self.published.load(Ordering::Acquire);
        if published == 0 {
            return None;
        }
        let accounts = self.accounts.load(Ordering::Relaxed);
        let to = (accounts >> 32) as u32;
        Some(PlannedTx {
            accounts: TxAccounts {
                caller: LocId(accounts as u32),
                to: (to != NO_RECIPIENT).then_some(LocId(to)),
            },
            predecessor: (published > 1).then(|| published - 2),
        })
    }
}

/// The part of a block's plan after its prefix: planned on a worker by
/// [`RemainingPlan::finish`] while the other workers execute.
pub(crate) struct RemainingPlan<'t> {
    builder: PlanBuilder,
    txs: &'t [TxEnv],
    beneficiary: Address,
}

impl BlockPlan {
    /// The plan of `txs`, whose fees go to `beneficiary` (fees are credited lazily by the
    /// engine, so paying them is not a dependency), planned whole.
    #[cfg(test)]
    pub(crate) fn new(txs: &[TxEnv], beneficiary: Address) -> Self {
        Self::start(txs, beneficiary, txs.len(), None).0
    }

    /// The plan of the first `prefix` transactions of `txs`, and what remains to plan of the
    /// others (`None` when the prefix is the whole block); the plans published after the
    /// prefix go in the `recycled` records of an earlier block when there are some.
    pub(crate) fn start(
        txs: &[TxEnv],
        beneficiary: Address,
        prefix: usize,
        recycled: Option<RecycledPlan>,
    ) -> (Self, Option<RemainingPlan<'_>>) {
        let prefix = prefix.min(txs.len());
        let mut plan = Self {
            prefix_txs: Vec::with_capacity(prefix),
            rest: recycled.map_or_else(|| SegmentedVec::with_capacity(0), |r| r.rest),
            prefix,
            txs: txs.len(),
            prefix_critical_path: 0,
            critical_path: AtomicUsize::new(0),
            predicted: PredictedAccounts::default(),
            expected_accounts: 0,
        };
        let mut builder = PlanBuilder::new(txs.len(), prefix, beneficiary);
        for (position, tx) in txs[..prefix].iter().enumerate() {
            let planned = builder.add(position as TxIdx, tx, beneficiary, None);
            plan.prefix_txs.push(planned);
        }
        plan.prefix_critical_path = builder.deepest as usize;
        // Relaxed: read by this thread, or after the workers are joined.
        plan.critical_path
            .store(builder.deepest as usize, Ordering::Relaxed);
        let named = builder.accounts.len();
        plan.expected_accounts = named * txs.len() / prefix.max(1);
        // The index gets the prefix's accounts; the rest of the plan finds their ids there
        // (and gives new accounts theirs), its writers being kept by id.
        plan.predicted = std::mem::take(&mut builder.accounts);
        if prefix == txs.len() {
            return (plan, None);
        }
        let remaining = RemainingPlan {
            builder,
            txs,
            beneficiary,
        };
        (plan, Some(remaining))
    }

    /// What the plan says of `tx`, once published.
    #[inline]
    pub(crate) fn planned(&self, tx: TxIdx) -> Option<PlannedTx> {
        match self.prefix_txs.get(tx as usize) {
            Some(planned) => Some(*planned),
            None => self.rest.get(tx as usize - self.prefix).get(),
        }
    }

    /// What the plan says of `tx`, waiting for it to be published unless `give_up` says so
    /// (the block was abandoned; `None` then).
    pub(crate) fn wait_planned(&self, tx: TxIdx, give_up: impl Fn() -> bool) -> Option<PlannedTx> {
        let backoff = crossbeam_utils::Backoff::new();
        loop {
            if let Some(planned) = self.planned(tx) {
                return Some(planned);
            }
            if give_up() {
                return None;
            }
            backoff.snooze();
        }
    }

    /// The latest earlier transaction `tx` probably depends on, if any (`None` too while
    /// `tx` is not planned).
    #[cfg(test)]
    pub(crate) fn predecessor(&self, tx: TxIdx) -> Option<TxIdx> {
        self.planned(tx).and_then(|planned| planned.predecessor)
    }

    /// Transactions on the longest chain of hinted dependencies (1 when none depends on
    /// another; the block's size when each depends on the one before): of the whole block
    /// once it is planned, of the prefix before.
    pub(crate) fn critical_path(&self) -> usize {
        self.critical_path.load(Ordering::Relaxed)
    }

    /// The accounts the prefix names, with their location ids (taken once, for the block's
    /// location index).
    pub(crate) fn take_predicted(&mut self) -> PredictedAccounts {
        std::mem::take(&mut self.predicted)
    }

    /// About how many accounts the block names (the prefix's count, in proportion).
    pub(crate) fn expected_accounts(&self) -> usize {
        self.expected_accounts
    }

    /// Whether the hints say the block is mostly one chain: the longest chain of its prefix
    /// holds more than half of the prefix's transactions, so that no schedule could overlap
    /// much of it. Judged on the prefix, before any worker runs.
    pub(crate) fn is_mostly_dependent(&self) -> bool {
        self.prefix_critical_path * 2 > self.prefix
    }

    /// Empties the plans published after the prefix, keeping their buckets for another
    /// block.
    pub(crate) fn into_recycled(self) -> RecycledPlan {
        let mut rest = self.rest;
        rest.reset(self.txs - self.prefix);
        RecycledPlan { rest }
    }

    /// Publishes the plan of `tx`, a transaction after the prefix.
    fn publish(&self, tx: TxIdx, planned: PlannedTx) {
        self.rest.get(tx as usize - self.prefix).publish(planned);
    }
}

impl RemainingPlan<'_> {
    /// Plans the transactions after the prefix into `plan`, in block order, giving the
    /// accounts first named there their ids in `index` (the block's location index, which
    /// workers extend meanwhile).
    pub(crate) fn finish(mut self, plan: &BlockPlan, index: &LocationIndex) {
        for (position, tx) in self.txs.iter().enumerate().skip(plan.prefix) {
            let planned = self
                .builder
                .add(position as TxIdx, tx, self.beneficiary, Some(index));
            plan.publish(position as TxIdx, planned);
        }
        // Relaxed: read after the workers are joined.
        plan.critical_path
            .store(self.builder.deepest as usize, Ordering::Relaxed);
    }
}

/// A slot's 64-bit fingerprint, by which the plan keys slots: hashing a 52-byte slot through
/// the generic byte path was half of an ERC-20 block's planning; the fixed-size hashers of
/// its two parts are word by word. Two slots with one fingerprint (about one pair in 2^64)
/// only make a transaction wait for another it did not need: a plan is advice.
#[derive(Default)]
struct SlotKeys {
    contracts: FbBuildHasher<20>,
    keys: FbBuildHasher<32>,
}

impl SlotKeys {
    fn fingerprint(&self, (contract, key): &Slot) -> u64 {
        self.contracts.hash_one(contract) ^ self.keys.hash_one(key).rotate_left(32)
    }
}

/// Builds a [`BlockPlan`] in one pass over the transactions, in block order.
struct PlanBuilder {
    /// The accounts named before the workers start, with their dense location ids (the
    /// location index's after that).
    accounts: PredictedAccounts,
    /// Per account location id, the latest transaction that changes the account's balance
    /// or nonce.
    writers: Vec<Option<TxIdx>>,
    /// Per slot (by its [`SlotKeys::fingerprint`]), the latest transaction that writes it.
    slot_writer: HashMap<u64, TxIdx>,
    slot_keys: SlotKeys,
    /// Per contract, the latest transaction that wrote anything of it (an opaque call to it
    /// depends on that one).
    last_contract_writer: AddressMap<TxIdx>,
    /// Per contract, the latest opaque call to it (anything of the contract may have changed).
    last_opaque_call: AddressMap<TxIdx>,
    /// Transactions the maps were sized for.
    sized_for: usize,
    /// Per transaction, the length of the longest hinted chain ending with it.
    depth: Vec<u32>,
    /// The longest chain so far.
    deepest: u32,
}

impl PlanBuilder {
    /// A builder for a block of `txs` transactions whose maps are sized for the first
    /// `sized_for` (the part planned before the workers start: growing them later is the
    /// planning worker's time, not the caller's).
    fn new(txs: usize, sized_for: usize, beneficiary: Address) -> Self {
        Self {
            accounts: PredictedAccounts::new(beneficiary, sized_for),
            writers: Vec::with_capacity(sized_for * 2 + 1),
            sized_for,
            slot_writer: HashMap::default(),
            slot_keys: SlotKeys::default(),
            last_contract_writer: AddressMap::default(),
            last_opaque_call: AddressMap::default(),
            depth: Vec::with_capacity(txs),
            deepest: 0,
        }
    }

    /// `address`'s id: on first mention, the next dense id before the block runs (`index`
    /// is `None`), or its id in the running block's `index`.
    fn account(&mut self, address: Address, index: Option<&LocationIndex>) -> LocId {
        match index {
            None => self.accounts.account(address),
            Some(index) => index.id(Location::Account(address)),
        }
    }

    /// The latest writer of the account with id `id`.
    fn writer(&mut self, id: LocId) -> &mut Option<TxIdx> {
        if id.index() >= self.writers.len() {
            self.writers.resize(id.index() + 1, None);
        }
        &mut self.writers[id.index()]
    }

    /// Plans transaction `tx` (`env`); accounts named first get their ids as
    /// [`Self::account`] says.
    fn add(
        &mut self,
        tx: TxIdx,
        env: &TxEnv,
        beneficiary: Address,
        index: Option<&LocationIndex>,
    ) -> PlannedTx {
        // A beneficiary that sends (a mining pool paying out) reads every fee paid before it:
        // it depends on all earlier transactions, the latest of which it names.
        let pays_out = env.caller == beneficiary && tx > 0;
        let mut latest: Option<TxIdx> = pays_out.then(|| tx - 1);
        let mut depth = if pays_out { self.deepest } else { 0 };
        // Each map's `insert` returns the previous writer: one look-up per hint, which both
        // names the dependency (of a read-write hint) and records this transaction.
        let mut depend = |on: Option<TxIdx>, depths: &[u32]| {
            if let Some(on) = on.filter(|on| *on != tx) {
                latest = Some(latest.map_or(on, |l| l.max(on)));
                depth = depth.max(depths[on as usize]);
            }
        };
        // The sender's balance and nonce: read and written.
        let sender = self.account(env.caller, index);
        if env.caller != beneficiary {
            let previous = self.writer(sender).replace(tx);
            depend(previous, &self.depth);
        }
        let mut recipient = None;
        if let TxKind::Call(to) = env.kind {
            let recipient_id = self.account(to, index);
            if !env.value.is_zero() && to != beneficiary {
                // A credit: later spenders of `to` wait for it; it waits for nobody.
                *self.writer(recipient_id) = Some(tx);
            }
            recipient = Some(recipient_id);
            match erc20_slots(to, env) {
                Some(slots) if !slots.is_empty() => {
                    depend(self.last_opaque_call.get(&to).copied(), &self.depth);
                    if self.slot_writer.capacity() == 0 {
                        self.reserve_slots(tx);
                    }
                    for slot in slots {
                        let key = self.slot_keys.fingerprint(&slot);
                        depend(self.slot_writer.insert(key, tx), &self.depth);
                    }
                    self.last_contract_writer.insert(to, tx);
                }
                Some(_) => {
                    // A plain transfer: a credit, which does not read the recipient's balance.
                }
                None => {
                    depend(self.last_contract_writer.insert(to, tx), &self.depth);
                    self.last_opaque_call.insert(to, tx);
                }
            }
        }
        // After the call's hints: a call to a contract named in the access list still finds
        // the contract's previous writer.
        for item in env.access_list.iter() {
            if self.slot_writer.capacity() == 0 {
                self.reserve_slots(tx);
            }
            for slot in &item.storage_keys {
                let key = self.slot_keys.fingerprint(&(item.address, *slot));
                depend(self.slot_writer.insert(key, tx), &self.depth);
            }
            self.last_contract_writer.insert(item.address, tx);
            self.account(item.address, index);
        }
        self.depth.push(depth + 1);
        self.deepest = self.deepest.max(depth + 1);
        PlannedTx {
            accounts: TxAccounts {
                caller: sender,
                to: recipient,
            },
            predecessor: latest,
        }
    }

    /// Sizes the slot map once for the rest of the block, or of the part it was sized for
    /// (two slots per ERC-20 transfer), so that blocks with slot hints do not rehash as they
    /// grow and blocks without allocate nothing.
    fn reserve_slots(&mut self, tx: TxIdx) {
        let until = if (tx as usize) < self.sized_for {
            self.sized_for
        } else {
            self.depth.capacity()
        };
        let remaining = until.saturating_sub(tx as usize);
        self.slot_writer.reserve(remaining * 2);
    }
}

/// The storage a call touches when its calldata is a well-formed ERC-20 call: holder
/// balances and allowances of `token`. `Some(empty)` for a call without calldata (a plain
/// transfer); `None` for any other call (opaque).
fn erc20_slots(token: Address, env: &TxEnv) -> Option<smallvec::SmallVec<[Slot; 3]>> {
    let data = env.data.as_ref();
    if data.is_empty() {
        return Some(smallvec::SmallVec::new());
    }
    let word = |i: usize| data.get(4 + 32 * i..4 + 32 * (i + 1));
    let address = |i: usize| word(i).map(|w| Address::from_slice(&w[12..]));
    let holder = |holder: Address| (token, holder.into_word());
    let allowance = |owner: Address, spender: Address| {
        let mut pair = [0u8; 40];
        pair[..20].copy_from_slice(owner.as_slice());
        pair[20..].copy_from_slice(spender.as_slice());
        (token, keccak256(pair))
    };
    let selector: [u8; 4] = data.get(..4)?.try_into().ok()?;
    let slots = match (selector, data.len()) {
        (TRANSFER, 68) => smallvec::smallvec![holder(env.caller), holder(address(0)?)],
        (TRANSFER_FROM, 100) => {
            let from = address(0)?;
            smallvec::smallvec![
                holder(from),
                holder(address(1)?),
                allowance(from, env.caller)
            ]
        }
        (APPROVE, 68) => smallvec::smallvec![allowance(env.caller, address(0)?)],
        _ => return None,
    };
    Some(slots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::primitives::{Bytes, U256};

    fn transfer(from: u8, to: u8, value: u64) -> TxEnv {
        TxEnv {
            caller: Address::repeat_byte(from),
            kind: TxKind::Call(Address::repeat_byte(to)),
            value: U256::from(value),
            ..TxEnv::default()
        }
    }

    fn call(from: u8, to: u8, data: Vec<u8>) -> TxEnv {
        TxEnv {
            caller: Address::repeat_byte(from),
            kind: TxKind::Call(Address::repeat_byte(to)),
            data: Bytes::from(data),
            ..TxEnv::default()
        }
    }

    fn erc20_transfer(from: u8, token: u8, to: u8) -> TxEnv {
        let mut data = TRANSFER.to_vec();
        data.extend_from_slice(Address::repeat_byte(to).into_word().as_slice());
        data.extend_from_slice(&[0u8; 32]);
        call(from, token, data)
    }

    const BENEFICIARY: Address = Address::repeat_byte(0xbe);

    #[test]
    fn independent_transfers_have_no_predecessor() {
        let txs: Vec<TxEnv> = (1..=10).map(|i| transfer(i, 100 + i, 5)).collect();
        let plan = BlockPlan::new(&txs, BENEFICIARY);
        assert!((0..10).all(|tx| plan.predecessor(tx).is_none()));
        assert_eq!(plan.critical_path(), 1);
        assert!(!plan.is_mostly_dependent());
    }

    #[test]
    fn a_chain_of_payments_is_one_chain() {
        // 1 pays 2, 2 pays 3, ...: each sender spends what the previous one sent it.
        let txs: Vec<TxEnv> = (1..=20).map(|i| transfer(i, i + 1, 5)).collect();
        let plan = BlockPlan::new(&txs, BENEFICIARY);
        assert_eq!(plan.predecessor(0), None);
        assert!((1..20).all(|tx| plan.predecessor(tx) == Some(tx - 1)));
        assert_eq!(plan.critical_path(), 20);
        assert!(plan.is_mostly_dependent());
    }

    #[test]
    fn credits_to_one_address_do_not_depend_on_each_other_but_its_spending_does() {
        let mut txs: Vec<TxEnv> = (1..=5).map(|i| transfer(i, 0x77, 5)).collect();
        txs.push(transfer(0x77, 0x78, 1));
        let plan = BlockPlan::new(&txs, BENEFICIARY);
        assert!((0..5).all(|tx| plan.predecessor(tx).is_none()));
        assert_eq!(
            plan.predecessor(5),
            Some(4),
            "the spender waits for the last credit"
        );
        assert_eq!(plan.critical_path(), 2);
    }

    #[test]
    fn fees_to_the_beneficiary_are_not_dependencies() {
        let txs = vec![transfer(1, 2, 5), transfer(3, 4, 5), transfer(5, 0xbe, 5)];
        let plan = BlockPlan::new(&txs, BENEFICIARY);
        assert!((0..3).all(|tx| plan.predecessor(tx).is_none()));
    }

    #[test]
    fn a_beneficiary_paying_out_depends_on_every_earlier_fee() {
        // A mining pool's payouts from its coinbase address: each reads all fees before it.
        let mut txs = vec![transfer(1, 2, 5)];
        txs.extend((0..10).map(|i| transfer(0xbe, 0x10 + i, 5)));
        let plan = BlockPlan::new(&txs, BENEFICIARY);
        assert_eq!(plan.predecessor(0), None);
        assert!((1..11).all(|tx| plan.predecessor(tx) == Some(tx - 1)));
        assert_eq!(plan.critical_path(), 11);
        assert!(plan.is_mostly_dependent());
    }

    #[test]
    fn erc20_transfers_depend_on_shared_holders_only() {
        let txs = vec![
            erc20_transfer(1, 0xc0, 2),
            erc20_transfer(3, 0xc0, 4),
            erc20_transfer(2, 0xc0, 5), // spends what tx 0 sent it
            erc20_transfer(6, 0xc1, 1), // another token
        ];
        let plan = BlockPlan::new(&txs, BENEFICIARY);
        assert_eq!(plan.predecessor(1), None);
        assert_eq!(plan.predecessor(2), Some(0));
        assert_eq!(plan.predecessor(3), None);
        assert_eq!(plan.critical_path(), 2);
    }

    #[test]
    fn opaque_calls_to_one_contract_form_a_chain_and_order_around_erc20_calls() {
        let swap = |from| call(from, 0xd0, vec![1, 2, 3, 4, 5]);
        let txs = vec![
            swap(1),
            swap(2),
            erc20_transfer(3, 0xd0, 4), // the contract is also a token: after the swap
            swap(5),                    // anything may have changed: after the transfer
        ];
        let plan = BlockPlan::new(&txs, BENEFICIARY);
        assert_eq!(plan.predecessor(1), Some(0));
        assert_eq!(plan.predecessor(2), Some(1));
        assert_eq!(plan.predecessor(3), Some(2));
        assert_eq!(plan.critical_path(), 4);
    }

    #[test]
    fn access_lists_name_slots_and_keep_the_called_contracts_order() {
        use revm::context_interface::transaction::{AccessList, AccessListItem};
        let with_list = |mut tx: TxEnv, address: u8, slot: u8| {
            tx.access_list = AccessList(vec![AccessListItem {
                address: Address::repeat_byte(address),
                storage_keys: vec![B256::repeat_byte(slot)],
            }]);
            tx
        };
        let txs = vec![
            call(1, 0xd0, vec![9; 8]),
            // Calls the same contract and names it in its access list: still after tx 0.
            with_list(call(2, 0xd0, vec![9; 8]), 0xd0, 7),
            // Only shares the access-list slot with tx 1.
            with_list(transfer(3, 4, 1), 0xd0, 7),
            with_list(transfer(5, 6, 1), 0xd0, 8),
        ];
        let plan = BlockPlan::new(&txs, BENEFICIARY);
        assert_eq!(plan.predecessor(1), Some(0));
        assert_eq!(plan.predecessor(2), Some(1));
        assert_eq!(plan.predecessor(3), None, "another slot");
        assert_eq!(plan.critical_path(), 3);
    }

    /// A block of every kind of hint, over few enough accounts that they repeat: transfers,
    /// ERC-20 calls, opaque calls, creations, access lists and payouts by the beneficiary.
    fn mixed_block(txs: usize) -> Vec<TxEnv> {
        use revm::context_interface::transaction::{AccessList, AccessListItem};
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below) as u8
        };
        (0..txs)
            .map(|_| {
                let (from, to) = (next(60) + 1, next(60) + 1);
                match next(6) {
                    0 => transfer(from, to, 1),
                    1 => erc20_transfer(from, 0xc0 + next(3), to),
                    2 => call(from, 0xd0 + next(2), vec![7; 9]),
                    3 => TxEnv {
                        kind: TxKind::Create,
                        ..transfer(from, to, 0)
                    },
                    4 => {
                        let mut tx = transfer(from, to, 0);
                        tx.access_list = AccessList(vec![AccessListItem {
                            address: Address::repeat_byte(0xa0 + next(3)),
                            storage_keys: vec![B256::repeat_byte(next(4))],
                        }]);
                        tx
                    }
                    _ => transfer(0xbe, to, 1),
                }
            })
            .collect()
    }

    #[test]
    fn a_block_planned_in_two_parts_gets_the_whole_blocks_plan_and_consistent_ids() {
        let txs = mixed_block(400);
        let whole = BlockPlan::new(&txs, BENEFICIARY);
        for prefix in [1, 37, 399] {
            let (mut plan, remaining) = BlockPlan::start(&txs, BENEFICIARY, prefix, None);
            let index = LocationIndex::new(plan.take_predicted(), 1_000);
            assert!(plan.planned(prefix as TxIdx).is_none(), "not planned yet");
            // The rest is planned on another thread while this one waits for each in order.
            let planned: Vec<PlannedTx> = std::thread::scope(|scope| {
                scope.spawn(|| remaining.expect("a remainder").finish(&plan, &index));
                (0..txs.len() as TxIdx)
                    .map(|tx| plan.wait_planned(tx, || false).unwrap())
                    .collect()
            });
            assert_eq!(
                plan.critical_path(),
                whole.critical_path(),
                "prefix {prefix}"
            );
            for (tx, planned) in planned.iter().enumerate() {
                let expected = whole.planned(tx as TxIdx).unwrap();
                assert_eq!(planned.predecessor, expected.predecessor, "tx {tx}");
                let (caller, to) = (planned.accounts.caller, planned.accounts.to);
                let env = &txs[tx];
                let to_address = match env.kind {
                    TxKind::Call(to) => Some(to),
                    TxKind::Create => None,
                };
                assert_eq!(to.is_some(), to_address.is_some());
                // Every id is the index's id of that account, whoever gave it.
                for (address, id) in std::iter::once((env.caller, caller)).chain(to_address.zip(to))
                {
                    assert_eq!(index.location(id), Location::Account(address));
                    assert_eq!(index.find(Location::Account(address)), Some(id));
                }
                if tx < prefix {
                    assert_eq!(planned.accounts, expected.accounts, "dense ids as before");
                }
            }
        }
    }

    #[test]
    fn a_published_plan_reads_back_as_it_was_published() {
        let cell = PublishedPlan::default();
        assert_eq!(cell.get(), None, "not published yet");
        let cases = [
            (LocId(0), None, None),
            (LocId(7), Some(LocId(0)), Some(0)),
            (
                LocId(u32::MAX - 1),
                Some(LocId(u32::MAX - 1)),
                Some(TxIdx::MAX - 2),
            ),
        ];
        for (caller, to, predecessor) in cases {
            let planned = PlannedTx {
                accounts: TxAccounts { caller, to },
                predecessor,
            };
            let cell = PublishedPlan::default();
            cell.publish(planned);
            assert_eq!(cell.get(), Some(planned));
        }
    }

    #[test]
    fn a_two_part_plan_judges_the_chain_on_its_prefix() {
        // A chain of payments, then independent transfers: the prefix is one chain.
        let mut txs: Vec<TxEnv> = (1..=20).map(|i| transfer(i, i + 1, 5)).collect();
        txs.extend((0..60).map(|i| transfer(100 + i, 200 - i, 5)));
        let (prefix_plan, _) = BlockPlan::start(&txs, BENEFICIARY, 20, None);
        assert!(prefix_plan.is_mostly_dependent());
        assert!(!BlockPlan::new(&txs, BENEFICIARY).is_mostly_dependent());
        let (plan, _) = BlockPlan::start(&txs, BENEFICIARY, 39, None);
        assert!(plan.is_mostly_dependent(), "20 of 39");
        let (plan, _) = BlockPlan::start(&txs, BENEFICIARY, 40, None);
        assert!(
            !plan.is_mostly_dependent(),
            "20 of 40 is not more than half"
        );
    }

    #[test]
    fn a_waiter_gives_up_when_told() {
        let txs = mixed_block(10);
        let (plan, _remaining) = BlockPlan::start(&txs, BENEFICIARY, 4, None);
        assert!(plan.wait_planned(3, || true).is_some(), "planned: no wait");
        assert_eq!(plan.wait_planned(4, || true), None);
    }

    #[test]
    fn malformed_erc20_calldata_is_an_opaque_call() {
        let mut short = TRANSFER.to_vec();
        short.extend_from_slice(&[0u8; 40]);
        let txs = vec![call(1, 0xc0, short.clone()), call(2, 0xc0, short)];
        let plan = BlockPlan::new(&txs, BENEFICIARY);
        assert_eq!(plan.predecessor(1), Some(0));
    }
}
