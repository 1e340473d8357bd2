//! The differential fuzz universe: bytes decode (with `arbitrary`) into a small pre-state and
//! a block of up to [`MAX_TXS`] transactions over it, which [`check`] runs through
//! `execute_sequential` and the parallel `execute` at 2, 4 and 8 threads; any difference is
//! a [`Divergence`].
//!
//! Shared, as one file, by the cargo-fuzz target (`fuzz/fuzz_targets/differential.rs`, through
//! the `blockstm-evm-fuzz` library) and by the main crate's stable test
//! `tests/fuzz_corpus.rs`, which replays the committed corpus and regressions with
//! `#[path = "../fuzz/src/universe.rs"]`. It depends on `blockstm_evm` and `arbitrary` only.
//!
//! The universe is small on purpose, so that transactions meet:
//! - four EOAs, the last of them the block's beneficiary (fees meet transfers); each funded
//!   richly, tightly (about one transaction's gas), a little, or not at all;
//! - four contracts at fixed addresses, each a program of up to [`MAX_SNIPPETS`] snippets from a
//!   menu (see [`Action`]): SSTORE/SLOAD, counters, LOG, CALL/CALLCODE/DELEGATECALL/STATICCALL
//!   with value, BALANCE/EXTCODEHASH/EXTCODESIZE, CREATE/CREATE2 of children, SELFDESTRUCT,
//!   REVERT, STOP and out-of-gas loops, each guarded by a condition on calldata or storage;
//! - an address nobody uses, the identity precompile, an existing empty account, and the
//!   addresses the contracts' and EOAs' creations land on, so that calls find the children;
//! - from Prague on, a pre-delegated EOA and EIP-7702 authorizations in transactions
//!   (valid, wrong nonce, wrong chain, bad signature, delegating to contracts, EOAs, a
//!   precompile, or clearing with the zero address).
//!
//! Transactions: calls to any address of the universe or creations (of a child or of a
//! contract's program as constructor), with value, calldata (an address or a small number,
//! then a small number), gas limits from intrinsic-only to a million, legacy/EIP-2930/EIP-1559
//! pricing, and now and then a nonce off by one or a value no one can pay (invalid
//! transactions must fail at the same index in parallel).

use std::fmt::Write as _;
use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use blockstm_evm::revm::bytecode::Bytecode;
use blockstm_evm::revm::context::either::Either;
use blockstm_evm::revm::context::{BlockEnv, TxEnv};
use blockstm_evm::revm::context_interface::transaction::{
    AccessList, AccessListItem, Authorization, RecoveredAuthority, RecoveredAuthorization,
};
use blockstm_evm::revm::primitives::hardfork::SpecId;
use blockstm_evm::revm::primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use blockstm_evm::{Block, BlockError, BlockOutput, InMemoryStorage, Options, execute};

/// The most transactions a decoded block holds.
pub const MAX_TXS: usize = 64;
/// The most snippets in one contract's program.
pub const MAX_SNIPPETS: usize = 8;
/// The thread counts the parallel engine runs at.
pub const CONCURRENCIES: [usize; 3] = [2, 4, 8];

/// The EOAs; the last is the block's beneficiary.
pub const EOAS: [Address; 4] = [
    Address::new([0xe0; 20]),
    Address::new([0xe1; 20]),
    Address::new([0xe2; 20]),
    Address::new([0xbe; 20]),
];
/// The block's beneficiary (also an EOA that sends transactions).
pub const BENEFICIARY: Address = EOAS[3];
/// The contracts, whose programs the input chooses.
pub const CONTRACTS: [Address; 4] = [
    Address::new([0xc0; 20]),
    Address::new([0xc1; 20]),
    Address::new([0xc2; 20]),
    Address::new([0xc3; 20]),
];
/// Never funded, never deployed.
pub const NOBODY: Address = Address::new([0x0d; 20]);
/// The identity precompile.
pub const PRECOMPILE: Address = Address::with_last_byte(4);
/// An empty account that exists (for EIP-161 touches).
pub const EMPTY: Address = Address::new([0xee; 20]);

/// Init code of the counting child: `SSTORE(1, 1)`, then deploy the runtime
/// `SSTORE(0, SLOAD(0) + 1); if calldata is not empty { SELFDESTRUCT(CALLER) }`.
#[rustfmt::skip]
pub const COUNTER_INIT: [u8; 31] = [
    0x60, 0x01, 0x60, 0x01, 0x55, // SSTORE(1, 1)
    0x70, // PUSH17 runtime
    0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x60, 0x00, 0x55, 0x36, 0x60, 0x0e, 0x57, 0x00, 0x5b, 0x33, 0xff,
    0x60, 0x00, 0x52, // MSTORE(0, runtime)
    0x60, 0x11, 0x60, 0x0f, 0xf3, // RETURN(15, 17)
];

/// Every address a transaction, a call or an observation can name: EOAs, contracts, the
/// special accounts, then where creations land (each contract's first two CREATEs and its
/// CREATE2 of the counting child with salt 0, and each EOA's first creation).
pub static TARGETS: LazyLock<Vec<Address>> = LazyLock::new(|| {
    let mut targets = EOAS.to_vec();
    targets.extend(CONTRACTS);
    targets.extend([NOBODY, PRECOMPILE, EMPTY]);
    let counter = keccak256(COUNTER_INIT);
    for contract in CONTRACTS {
        targets.extend([
            contract.create(1),
            contract.create(2),
            contract.create2(B256::ZERO, counter),
        ]);
    }
    targets.extend(EOAS.iter().map(|eoa| eoa.create(0)));
    targets
});

/// Forks, weighted towards the recent ones.
const FORKS: [SpecId; 16] = [
    SpecId::FRONTIER,
    SpecId::HOMESTEAD,
    SpecId::TANGERINE,
    SpecId::SPURIOUS_DRAGON,
    SpecId::BYZANTIUM,
    SpecId::PETERSBURG,
    SpecId::ISTANBUL,
    SpecId::BERLIN,
    SpecId::LONDON,
    SpecId::SHANGHAI,
    SpecId::CANCUN,
    SpecId::CANCUN,
    SpecId::PRAGUE,
    SpecId::PRAGUE,
    SpecId::PRAGUE,
    SpecId::OSAKA,
];

/// The gas price of every transaction (the EIP-1559 maximum fee) and the block's base fee.
const GAS_PRICE: u128 = 2_000;
const BASE_FEE: u64 = 1_000;

/// The decoded input: a universe and a block over it.
#[derive(Debug)]
pub struct Input {
    pub universe: Universe,
    /// The transactions.
    pub txs: Vec<TxSpec>,
}

impl Input {
    /// The universe from the front of `data`, then transactions until `data` runs out (at
    /// most [`MAX_TXS`]). Every input decodes; the last transaction may be cut short, and
    /// then takes zeros for what is missing.
    pub fn decode(data: &[u8]) -> arbitrary::Result<Self> {
        let mut u = Unstructured::new(data);
        let universe = Universe::arbitrary(&mut u)?;
        let mut txs = Vec::new();
        while !u.is_empty() && txs.len() < MAX_TXS {
            txs.push(TxSpec::arbitrary(&mut u)?);
        }
        Ok(Self { universe, txs })
    }
}

/// The pre-block state and the fork.
#[derive(Arbitrary, Debug)]
pub struct Universe {
    /// Index into the fork table (weighted towards Cancun and Prague).
    pub fork: u8,
    /// Funds of each EOA (see [`eoa_funds`]).
    pub eoa_funds: [u8; 4],
    /// The contracts' balances, storage and programs.
    pub contracts: [ContractSpec; 4],
    /// Prague on: EOA `.0` starts delegated to contract `.1`.
    pub delegated: Option<(u8, u8)>,
}

/// One contract of the universe.
#[derive(Arbitrary, Debug)]
pub struct ContractSpec {
    /// 0, a million wei or an ether.
    pub funds: u8,
    /// Pre-block values of slots 0 to 3.
    pub slots: [u8; 4],
    /// The program.
    pub code: Few<Snippet, MAX_SNIPPETS>,
}

/// Up to `N` values: a count byte (`% (N + 1)`), then the values. Unlike `Vec`'s, the
/// length costs one byte from the front, so that a short list does not swallow the input.
#[derive(Debug)]
pub struct Few<T, const N: usize>(pub Vec<T>);

impl<'a, T: Arbitrary<'a>, const N: usize> Arbitrary<'a> for Few<T, N> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let count = usize::from(u8::arbitrary(u)?) % (N + 1);
        (0..count)
            .map(|_| T::arbitrary(u))
            .collect::<arbitrary::Result<_>>()
            .map(Self)
    }
}

/// One step of a contract's program: an action taken when a condition holds.
#[derive(Arbitrary, Debug)]
pub struct Snippet {
    pub when: Condition,
    pub action: Action,
}

/// When a snippet's action runs.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Condition {
    Always,
    /// Calldata word 0 is zero (or absent).
    ArgZero,
    /// Calldata word 0 is not zero.
    ArgNonZero,
    /// The slot holds an odd value: control flow that depends on what was read.
    SlotOdd(Slot),
}

/// The menu of actions.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Action {
    /// `SSTORE(slot, value)`.
    Store { slot: Slot, value: Value },
    /// `SSTORE(slot, SLOAD(slot) + 1)`.
    Count { slot: Slot },
    /// `LOGn(SLOAD(slot))` with `topics % 5` topics.
    Log { slot: Slot, topics: u8 },
    /// A call with `value` wei (ignored by DELEGATECALL/STATICCALL), all gas or 30 000,
    /// forwarding this call's calldata or none.
    Call {
        kind: CallKind,
        target: Target,
        value: u8,
        all_gas: bool,
        forward: bool,
    },
    /// `SSTORE(slot, OP(target))`.
    Observe {
        what: Observation,
        target: Target,
        slot: Slot,
    },
    /// CREATE (no salt) or CREATE2 of a child with `value` wei; its address to `slot`.
    Create {
        child: Child,
        salt: Option<u8>,
        value: u8,
        slot: Slot,
    },
    /// `SELFDESTRUCT(target)`.
    SelfDestruct { target: Target },
    /// `REVERT(0, 0)`.
    Revert,
    /// `STOP`.
    Stop,
    /// Loop until out of gas.
    Burn,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum CallKind {
    Call,
    CallCode,
    DelegateCall,
    StaticCall,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Observation {
    Balance,
    ExtCodeHash,
    ExtCodeSize,
}

/// What a CREATE deploys.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Child {
    /// [`COUNTER_INIT`]: counts calls, self-destructs when called with data.
    Counter,
    /// Init code that reverts: the creation fails.
    Reverting,
    /// Init code that self-destructs to its creator (deleted even after Cancun).
    SelfDestructing,
    /// Init code that stops: an account with a nonce and no code.
    Empty,
}

impl Child {
    fn init_code(self) -> &'static [u8] {
        match self {
            Child::Counter => &COUNTER_INIT,
            Child::Reverting => &[0x60, 0x00, 0x60, 0x00, 0xfd],
            Child::SelfDestructing => &[0x33, 0xff],
            Child::Empty => &[0x00],
        }
    }
}

/// A value an action stores.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Value {
    Const(u8),
    /// Calldata word 1.
    Arg,
    /// `CALLVALUE`.
    Received,
    /// `BALANCE(ADDRESS)`.
    OwnBalance,
}

/// An address: one of [`TARGETS`] (below 224), else calldata word 0.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Target(pub u8);

/// A storage slot: 0 to 3 (below 224), else calldata word 0.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Slot(pub u8);

/// One transaction, before nonces are assigned.
#[derive(Arbitrary, Debug)]
pub struct TxSpec {
    /// Index into [`EOAS`].
    pub sender: u8,
    pub to: To,
    /// See [`amount`].
    pub value: u8,
    /// Calldata word 0: even, an address of [`TARGETS`]; odd, a number below 128.
    pub arg0: u8,
    /// Calldata word 1.
    pub arg1: u8,
    /// Calldata words (`% 3`).
    pub words: u8,
    /// See [`gas_limit`].
    pub gas: u8,
    /// See [`nonce_skew`].
    pub nonce: u8,
    pub fee: Fee,
    /// EIP-2930 access list entries `(target, slot)` (Berlin on).
    pub access: Few<(u8, u8), 3>,
    /// EIP-7702 authorizations (Prague on, calls only).
    pub authorizations: Few<AuthSpec, 3>,
}

/// Where a transaction goes.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum To {
    /// Index into [`TARGETS`].
    Call(u8),
    /// Deploy a child.
    CreateChild(Child),
    /// Run a contract's program (index `% 4`) as a constructor; deploys no code.
    CreateProgram(u8),
}

/// How a transaction pays.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Fee {
    Legacy,
    /// EIP-1559 (London on) with a priority fee of `tip % 8 * 250`.
    Dynamic {
        tip: u8,
    },
}

/// One EIP-7702 authorization.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct AuthSpec {
    /// `% 5`: an EOA, or (4) a contract, whose authorization is skipped; 250 and up: a
    /// signature that does not recover.
    pub authority: u8,
    /// See [`delegate`].
    pub delegate: u8,
    /// See [`nonce_skew`].
    pub nonce: u8,
    /// Below 200: chain 1; below 240: any chain (0); else a wrong chain.
    pub chain: u8,
}

/// An EOA's pre-block balance.
fn eoa_funds(choice: u8) -> U256 {
    match choice {
        0..=215 => U256::from(10u128.pow(21)),
        // About one transaction's maximum fee at 200 000 gas.
        216..=231 => U256::from(500_000_000u64),
        232..=247 => U256::from(10u128.pow(17)),
        _ => U256::ZERO,
    }
}

/// A transaction's value.
fn amount(choice: u8) -> U256 {
    match choice {
        0..=99 => U256::ZERO,
        100..=199 => U256::from(choice),
        200..=239 => U256::from(10u128.pow(18)),
        240..=254 => U256::from(10u128.pow(15)),
        // More than any EOA holds: the transaction is invalid.
        255 => U256::from(10u128.pow(22)),
    }
}

fn gas_limit(choice: u8) -> u64 {
    match choice {
        0..=191 => 200_000,
        192..=223 => 60_000,
        224..=243 => 1_000_000,
        244..=251 => 30_000,
        // Too little for calldata, an access list or a creation: often invalid.
        _ => 21_000,
    }
}

/// Mostly the expected nonce; now and then one too high or one too low.
fn nonce_skew(choice: u8) -> i64 {
    match choice {
        0..=251 => 0,
        252 | 253 => 1,
        _ => -1,
    }
}

/// What an authorization delegates to: a contract, an EOA, the precompile, or the zero
/// address (clears a delegation).
fn delegate(choice: u8) -> Address {
    match choice % 10 {
        i @ 0..=3 => CONTRACTS[i as usize],
        i @ 4..=7 => EOAS[i as usize - 4],
        8 => PRECOMPILE,
        _ => Address::ZERO,
    }
}

/// A tiny assembler.
#[derive(Default)]
struct Asm(Vec<u8>);

impl Asm {
    fn op(&mut self, op: u8) -> &mut Self {
        self.0.push(op);
        self
    }

    /// The shortest PUSH of `value` (never PUSH0, which Shanghai introduced).
    fn push(&mut self, value: u64) -> &mut Self {
        let bytes = value.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
        self.push_bytes(&bytes[skip..])
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> &mut Self {
        debug_assert!((1..=32).contains(&bytes.len()));
        self.0.push(0x5f + bytes.len() as u8);
        self.0.extend_from_slice(bytes);
        self
    }

    /// `CALLDATALOAD(offset)`.
    fn calldata(&mut self, offset: u64) -> &mut Self {
        self.push(offset).op(0x35)
    }

    /// PUSH2 with a placeholder; returns where to patch.
    fn push_label(&mut self) -> usize {
        self.0.extend_from_slice(&[0x61, 0, 0]);
        self.0.len() - 2
    }

    /// A JUMPDEST here, patched into the label at `at`.
    fn land(&mut self, at: usize) {
        let here = self.0.len() as u16;
        self.0[at..at + 2].copy_from_slice(&here.to_be_bytes());
        self.op(0x5b);
    }

    fn target(&mut self, target: Target) -> &mut Self {
        if target.0 >= 224 {
            return self.calldata(0);
        }
        let address = TARGETS[target.0 as usize % TARGETS.len()];
        self.push_bytes(address.as_slice())
    }

    fn slot(&mut self, slot: Slot) -> &mut Self {
        if slot.0 >= 224 {
            return self.calldata(0);
        }
        self.push(u64::from(slot.0 % 4))
    }

    fn value(&mut self, value: Value) -> &mut Self {
        match value {
            Value::Const(c) => self.push(u64::from(c)),
            Value::Arg => self.calldata(32),
            Value::Received => self.op(0x34),
            Value::OwnBalance => self.op(0x30).op(0x31),
        }
    }

    fn snippet(&mut self, snippet: &Snippet) {
        // Push "skip the action" and jump over it when true.
        let skip = match snippet.when {
            Condition::Always => None,
            Condition::ArgZero => {
                self.calldata(0);
                Some(self.push_label())
            }
            Condition::ArgNonZero => {
                self.calldata(0).op(0x15);
                Some(self.push_label())
            }
            Condition::SlotOdd(slot) => {
                self.slot(slot).op(0x54).push(1).op(0x16).op(0x15);
                Some(self.push_label())
            }
        };
        if skip.is_some() {
            self.op(0x57); // JUMPI
        }
        self.action(snippet.action);
        if let Some(at) = skip {
            self.land(at);
        }
    }

    fn action(&mut self, action: Action) {
        match action {
            Action::Store { slot, value } => {
                self.value(value).slot(slot).op(0x55);
            }
            Action::Count { slot } => {
                self.slot(slot)
                    .op(0x54)
                    .push(1)
                    .op(0x01)
                    .slot(slot)
                    .op(0x55);
            }
            Action::Log { slot, topics } => {
                self.slot(slot).op(0x54).push(0).op(0x52);
                let topics = topics % 5;
                for topic in 0..topics {
                    self.push(u64::from(topic) + 1);
                }
                self.push(32).push(0).op(0xa0 + topics);
            }
            Action::Call {
                kind,
                target,
                value,
                all_gas,
                forward,
            } => {
                if forward {
                    // CALLDATACOPY(0, 0, CALLDATASIZE)
                    self.op(0x36).push(0).push(0).op(0x37);
                }
                self.push(0).push(0); // return data: none
                if forward {
                    self.op(0x36).push(0);
                } else {
                    self.push(0).push(0);
                }
                let opcode = match kind {
                    CallKind::Call => 0xf1,
                    CallKind::CallCode => 0xf2,
                    CallKind::DelegateCall => 0xf4,
                    CallKind::StaticCall => 0xfa,
                };
                if matches!(kind, CallKind::Call | CallKind::CallCode) {
                    self.push(u64::from(value));
                }
                self.target(target);
                if all_gas {
                    self.op(0x5a);
                } else {
                    self.push(30_000);
                }
                self.op(opcode).op(0x50);
            }
            Action::Observe { what, target, slot } => {
                let opcode = match what {
                    Observation::Balance => 0x31,
                    Observation::ExtCodeHash => 0x3f,
                    Observation::ExtCodeSize => 0x3b,
                };
                self.target(target).op(opcode).slot(slot).op(0x55);
            }
            Action::Create {
                child,
                salt,
                value,
                slot,
            } => {
                let init = child.init_code();
                // MSTORE(0, init): the code ends at byte 32.
                self.push_bytes(init).push(0).op(0x52);
                let (size, offset) = (init.len() as u64, 32 - init.len() as u64);
                match salt {
                    None => {
                        self.push(size).push(offset).push(u64::from(value)).op(0xf0);
                    }
                    Some(salt) => {
                        self.push(u64::from(salt % 2))
                            .push(size)
                            .push(offset)
                            .push(u64::from(value))
                            .op(0xf5);
                    }
                }
                self.slot(slot).op(0x55);
            }
            Action::SelfDestruct { target } => {
                self.target(target).op(0xff);
            }
            Action::Revert => {
                self.push(0).push(0).op(0xfd);
            }
            Action::Stop => {
                self.op(0x00);
            }
            Action::Burn => {
                let start = self.0.len() as u64;
                self.op(0x5b).push(start).op(0x56);
            }
        }
    }
}

/// The bytecode of a program.
pub fn assemble(code: &[Snippet]) -> Vec<u8> {
    let mut asm = Asm::default();
    for snippet in code {
        asm.snippet(snippet);
    }
    asm.op(0x00);
    asm.0
}

/// A decoded case: the pre-state and the block.
pub struct Case {
    pub input: Input,
    pub storage: InMemoryStorage,
    pub block: Block,
}

/// Decodes `data`; `None` when it holds no transaction.
pub fn decode(data: &[u8]) -> Option<Case> {
    let input = Input::decode(data)
        .ok()
        .filter(|input| !input.txs.is_empty())?;
    let universe = &input.universe;
    let spec = FORKS[universe.fork as usize % FORKS.len()];
    let programs: Vec<Vec<u8>> = universe
        .contracts
        .iter()
        .map(|c| assemble(&c.code.0))
        .collect();

    let mut storage = InMemoryStorage::new();
    for (eoa, funds) in EOAS.iter().zip(universe.eoa_funds) {
        storage.insert_account(*eoa, eoa_funds(funds), 0, None);
    }
    if let Some((eoa, contract)) = universe.delegated.filter(|_| spec >= SpecId::PRAGUE) {
        let eoa = eoa as usize % EOAS.len();
        let code = Bytecode::new_eip7702(CONTRACTS[contract as usize % CONTRACTS.len()]);
        let balance = eoa_funds(universe.eoa_funds[eoa]);
        storage.insert_account(EOAS[eoa], balance, 0, Some(code));
    }
    for ((address, spec), program) in CONTRACTS.iter().zip(&universe.contracts).zip(&programs) {
        let balance = match spec.funds % 3 {
            0 => U256::ZERO,
            1 => U256::from(1_000_000),
            _ => U256::from(10u128.pow(18)),
        };
        let code = Bytecode::new_raw(Bytes::copy_from_slice(program));
        storage.insert_account(*address, balance, 1, Some(code));
        for (slot, value) in spec.slots.iter().enumerate() {
            if *value != 0 {
                storage.set_storage(*address, U256::from(slot), U256::from(*value));
            }
        }
    }
    storage.insert_account(EMPTY, U256::ZERO, 0, None);

    let mut nonces = [0u64; EOAS.len()];
    let txs = input
        .txs
        .iter()
        .map(|tx| transaction(spec, tx, &programs, &mut nonces))
        .collect();
    let env = BlockEnv {
        number: U256::from(1),
        beneficiary: BENEFICIARY,
        gas_limit: 30_000_000,
        basefee: BASE_FEE,
        ..BlockEnv::default()
    };
    let block = Block::new(env, spec, txs);
    Some(Case {
        input,
        storage,
        block,
    })
}

fn transaction(spec: SpecId, tx: &TxSpec, programs: &[Vec<u8>], nonces: &mut [u64]) -> TxEnv {
    let sender = tx.sender as usize % EOAS.len();
    let nonce = nonces[sender].saturating_add_signed(nonce_skew(tx.nonce));
    nonces[sender] += 1;

    let (kind, data) = match tx.to {
        To::Call(target) => {
            let target = TARGETS[target as usize % TARGETS.len()];
            let mut data = vec![0u8; 64];
            if tx.arg0.is_multiple_of(2) {
                let pick = TARGETS[(tx.arg0 / 2) as usize % TARGETS.len()];
                data[12..32].copy_from_slice(pick.as_slice());
            } else {
                data[31] = tx.arg0 >> 1;
            }
            data[63] = tx.arg1;
            data.truncate(32 * (tx.words as usize % 3));
            (TxKind::Call(target), data)
        }
        To::CreateChild(child) => (TxKind::Create, child.init_code().to_vec()),
        To::CreateProgram(index) => (
            TxKind::Create,
            programs[index as usize % programs.len()].clone(),
        ),
    };

    let mut authorizations = Vec::new();
    if spec >= SpecId::PRAGUE && kind.is_call() {
        for auth in &tx.authorizations.0 {
            let authority = match auth.authority % 5 {
                i @ 0..=3 => EOAS[i as usize],
                _ => CONTRACTS[0],
            };
            let expected = match EOAS.iter().position(|eoa| *eoa == authority) {
                Some(i) => {
                    let n = nonces[i];
                    nonces[i] += 1;
                    n
                }
                None => 1,
            };
            let chain_id = match auth.chain {
                0..=199 => 1,
                200..=239 => 0,
                _ => 5,
            };
            let authorization = Authorization {
                chain_id: U256::from(chain_id),
                address: delegate(auth.delegate),
                nonce: expected.saturating_add_signed(nonce_skew(auth.nonce)),
            };
            let recovered = if auth.authority >= 250 {
                RecoveredAuthority::Invalid
            } else {
                RecoveredAuthority::Valid(authority)
            };
            authorizations.push(Either::Right(RecoveredAuthorization::new_unchecked(
                authorization,
                recovered,
            )));
        }
    }

    let access_list = if spec >= SpecId::BERLIN {
        let mut items: Vec<AccessListItem> = Vec::new();
        for (target, slot) in &tx.access.0 {
            let address = TARGETS[*target as usize % TARGETS.len()];
            let key = B256::with_last_byte(slot % 4);
            match items.iter_mut().find(|item| item.address == address) {
                Some(item) => item.storage_keys.push(key),
                None => items.push(AccessListItem {
                    address,
                    storage_keys: vec![key],
                }),
            }
        }
        AccessList(items)
    } else {
        AccessList::default()
    };

    let dynamic = match tx.fee {
        Fee::Dynamic { tip } if spec >= SpecId::LONDON => Some(u128::from(tip % 8) * 250),
        _ if !authorizations.is_empty() => Some(500),
        _ => None,
    };
    let tx_type = if !authorizations.is_empty() {
        4
    } else if dynamic.is_some() {
        2
    } else if !access_list.0.is_empty() {
        1
    } else {
        0
    };
    TxEnv {
        tx_type,
        caller: EOAS[sender],
        gas_limit: gas_limit(tx.gas),
        gas_price: GAS_PRICE,
        gas_priority_fee: dynamic,
        kind,
        value: amount(tx.value),
        data: Bytes::from(data),
        nonce,
        chain_id: Some(1),
        access_list,
        authorization_list: authorizations,
        ..TxEnv::default()
    }
}

/// What a case did sequentially (for choosing seeds).
#[derive(Debug)]
pub struct Summary {
    pub spec: SpecId,
    pub txs: usize,
    /// Transactions that succeeded; `None` when the block failed.
    pub succeeded: Option<usize>,
}

/// Why the parallel engine disagreed with the sequential one.
#[derive(Debug)]
pub struct Divergence {
    pub threads: usize,
    pub report: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "parallel execution at {} threads differs from sequential:\n{}",
            self.threads, self.report
        )
    }
}

/// Decodes `data` and compares the engines at [`CONCURRENCIES`]; `Ok(None)` when `data`
/// decodes to nothing.
pub fn check(data: &[u8]) -> Result<Option<Summary>, Divergence> {
    match decode(data) {
        Some(case) => compare(&case, &CONCURRENCIES).map(Some),
        None => Ok(None),
    }
}

/// Runs `case` sequentially and in parallel at each of `threads`.
pub fn compare(case: &Case, threads: &[usize]) -> Result<Summary, Divergence> {
    let expected = blockstm_evm::execute_sequential(&case.storage, &case.block);
    for &threads in threads {
        let options = Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(threads)
        };
        let actual = execute(&case.storage, &case.block, &options);
        if let Some(report) = difference(&expected, &actual) {
            return Err(Divergence { threads, report });
        }
    }
    Ok(Summary {
        spec: case.block.spec(),
        txs: case.block.txs.len(),
        succeeded: expected
            .ok()
            .map(|output| output.results.iter().filter(|r| r.is_success()).count()),
    })
}

/// A readable account of how `actual` differs from `expected`; `None` when equal.
pub fn difference(
    expected: &Result<BlockOutput, BlockError>,
    actual: &Result<BlockOutput, BlockError>,
) -> Option<String> {
    let mut report = String::new();
    match (expected, actual) {
        (Ok(expected), Ok(actual)) => {
            if expected == actual {
                return None;
            }
            if expected.results.len() != actual.results.len() {
                let _ = writeln!(
                    report,
                    "{} results, parallel {}",
                    expected.results.len(),
                    actual.results.len()
                );
            }
            for (index, (e, a)) in expected.results.iter().zip(&actual.results).enumerate() {
                if e != a {
                    let _ = writeln!(
                        report,
                        "tx {index}:\n  sequential {e:?}\n  parallel   {a:?}"
                    );
                }
            }
            let mut addresses: Vec<&Address> = expected
                .state
                .accounts
                .keys()
                .chain(actual.state.accounts.keys())
                .collect();
            addresses.sort();
            addresses.dedup();
            for address in addresses {
                let e = expected.state.accounts.get(address);
                let a = actual.state.accounts.get(address);
                if e != a {
                    let _ = writeln!(
                        report,
                        "account {address}:\n  sequential {e:?}\n  parallel   {a:?}"
                    );
                }
            }
            if expected.state.contracts != actual.state.contracts {
                let mut e: Vec<_> = expected.state.contracts.keys().collect();
                let mut a: Vec<_> = actual.state.contracts.keys().collect();
                e.sort();
                a.sort();
                let _ = writeln!(report, "contracts: sequential {e:?}, parallel {a:?}");
            }
        }
        (Err(e), Err(a)) if e.index() == a.index() && e.to_string() == a.to_string() => {
            return None;
        }
        (expected, actual) => {
            let _ = writeln!(
                report,
                "sequential {:?}\nparallel   {:?}",
                expected.as_ref().map(summary),
                actual.as_ref().map(summary)
            );
        }
    }
    Some(report)
}

/// One line about an output.
fn summary(output: &BlockOutput) -> String {
    format!(
        "{} results, {} gas, {} accounts changed",
        output.results.len(),
        output.gas_used(),
        output.state.accounts.len()
    )
}
