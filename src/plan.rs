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
//! ([`PredictedAccounts`]): the look-up that finds a sender's previous writer also finds or
//! gives its id.
//!
//! The engine uses a plan twice: a block whose longest chain of hinted dependencies covers
//! most of its transactions is run on the sequential path (Block-STM would only re-execute
//! it transaction after transaction, on every core), and a transaction's first incarnation
//! waits for its hinted predecessor instead of running into its writes and being aborted.

use revm::context::TxEnv;
use std::hash::BuildHasher;

use revm::primitives::map::{AddressMap, FbBuildHasher, HashMap};
use revm::primitives::{Address, B256, TxKind, keccak256};

use crate::location::{PredictedAccounts, TxAccounts};
use crate::types::TxIdx;

/// ERC-20 `transfer(address,uint256)`.
const TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
/// ERC-20 `transferFrom(address,address,uint256)`.
const TRANSFER_FROM: [u8; 4] = [0x23, 0xb8, 0x72, 0xdd];
/// ERC-20 `approve(address,uint256)`.
const APPROVE: [u8; 4] = [0x09, 0x5e, 0xa7, 0xb3];

/// A storage slot as the hints name it: an ERC-20 holder's balance, an allowance (keyed by
/// a hash of owner and spender), or an access-list slot.
type Slot = (Address, B256);

/// The plan of one block (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BlockPlan {
    /// Per transaction, the latest earlier transaction it probably depends on.
    predecessor: Vec<Option<TxIdx>>,
    /// Transactions on the longest chain of hinted dependencies.
    critical_path: usize,
    /// The accounts the block names, with their location ids.
    predicted: PredictedAccounts,
}

impl BlockPlan {
    /// The plan of `txs`, whose fees go to `beneficiary` (fees are credited lazily by the
    /// engine, so paying them is not a dependency).
    pub(crate) fn new(txs: &[TxEnv], beneficiary: Address) -> Self {
        let mut builder = PlanBuilder::new(txs.len(), beneficiary);
        for (position, tx) in txs.iter().enumerate() {
            builder.add(position as TxIdx, tx, beneficiary);
        }
        builder.finish()
    }

    /// The latest earlier transaction `tx` probably depends on, if any.
    pub(crate) fn predecessor(&self, tx: TxIdx) -> Option<TxIdx> {
        self.predecessor.get(tx as usize).copied().flatten()
    }

    /// Transactions on the longest chain of hinted dependencies (1 when none depends on
    /// another; the block's size when each depends on the one before).
    pub(crate) fn critical_path(&self) -> usize {
        self.critical_path
    }

    /// The accounts the block names, with their location ids (taken once, for the block's
    /// location index).
    pub(crate) fn take_predicted(&mut self) -> PredictedAccounts {
        std::mem::take(&mut self.predicted)
    }

    /// Whether the hints say the block is mostly one chain: its longest chain holds more
    /// than half of its transactions, so that no schedule could overlap much of it.
    pub(crate) fn is_mostly_dependent(&self) -> bool {
        self.critical_path * 2 > self.predecessor.len()
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
    /// Per account named by the block, its location id and the latest transaction that
    /// changes its balance or nonce.
    accounts: PredictedAccounts,
    /// Per slot (by its [`SlotKeys::fingerprint`]), the latest transaction that writes it.
    slot_writer: HashMap<u64, TxIdx>,
    slot_keys: SlotKeys,
    /// Per contract, the latest transaction that wrote anything of it (an opaque call to it
    /// depends on that one).
    last_contract_writer: AddressMap<TxIdx>,
    /// Per contract, the latest opaque call to it (anything of the contract may have changed).
    last_opaque_call: AddressMap<TxIdx>,
    predecessor: Vec<Option<TxIdx>>,
    /// Per transaction, the length of the longest hinted chain ending with it.
    depth: Vec<u32>,
    /// The longest chain so far.
    deepest: u32,
}

impl PlanBuilder {
    fn new(txs: usize, beneficiary: Address) -> Self {
        Self {
            accounts: PredictedAccounts::new(beneficiary, txs),
            slot_writer: HashMap::default(),
            slot_keys: SlotKeys::default(),
            last_contract_writer: AddressMap::default(),
            last_opaque_call: AddressMap::default(),
            predecessor: Vec::with_capacity(txs),
            depth: Vec::with_capacity(txs),
            deepest: 0,
        }
    }

    fn add(&mut self, tx: TxIdx, env: &TxEnv, beneficiary: Address) {
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
        let sender = self.accounts.account(env.caller);
        let caller = (env.caller, sender.id);
        if env.caller != beneficiary {
            depend(sender.writer.replace(tx), &self.depth);
        }
        let mut recipient = None;
        if let TxKind::Call(to) = env.kind {
            let recipient_account = self.accounts.account(to);
            if !env.value.is_zero() && to != beneficiary {
                // A credit: later spenders of `to` wait for it; it waits for nobody.
                recipient_account.writer = Some(tx);
            }
            recipient = Some((to, recipient_account.id));
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
        self.accounts.push_tx(TxAccounts {
            caller,
            to: recipient,
        });
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
            self.accounts.account(item.address);
        }
        self.predecessor.push(latest);
        self.depth.push(depth + 1);
        self.deepest = self.deepest.max(depth + 1);
    }

    /// Sizes the slot map once for the rest of the block (two slots per ERC-20 transfer), so
    /// that blocks with slot hints do not rehash as they grow and blocks without allocate
    /// nothing.
    fn reserve_slots(&mut self, tx: TxIdx) {
        let remaining = self.predecessor.capacity().saturating_sub(tx as usize);
        self.slot_writer.reserve(remaining * 2);
    }

    fn finish(self) -> BlockPlan {
        BlockPlan {
            critical_path: self.deepest as usize,
            predecessor: self.predecessor,
            predicted: self.accounts,
        }
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

    #[test]
    fn malformed_erc20_calldata_is_an_opaque_call() {
        let mut short = TRANSFER.to_vec();
        short.extend_from_slice(&[0u8; 40]);
        let txs = vec![call(1, 0xc0, short.clone()), call(2, 0xc0, short)];
        let plan = BlockPlan::new(&txs, BENEFICIARY);
        assert_eq!(plan.predecessor(1), Some(0));
    }
}
