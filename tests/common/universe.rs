//! A small universe of accounts and contracts for generated blocks (proptest strategies):
//! four funded EOAs (one of them the beneficiary, so fees meet transfers), and contracts that
//! store, call with value, read BALANCE/EXTCODEHASH, self-destruct, revert, loop until out of
//! gas, and CREATE/CREATE2 children that count in storage and self-destruct when called with
//! data. From Prague on, transactions may carry EIP-7702 authorizations that delegate an EOA
//! to one of the contracts. Some generated transactions are invalid (too much value, a skewed
//! nonce).

use blockstm_evm::revm::bytecode::Bytecode;
use blockstm_evm::revm::context::either::Either;
use blockstm_evm::revm::context::{BlockEnv, TxEnv};
use blockstm_evm::revm::context_interface::transaction::{
    Authorization, RecoveredAuthority, RecoveredAuthorization,
};
use blockstm_evm::revm::primitives::hardfork::SpecId;
use blockstm_evm::revm::primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use blockstm_evm::{Block, InMemoryStorage};
use proptest::prelude::*;

pub const EOAS: [Address; 4] = [
    Address::new([0xe0; 20]),
    Address::new([0xe1; 20]),
    Address::new([0xe2; 20]),
    Address::new([0xbe; 20]), // the beneficiary
];
pub const BENEFICIARY: Address = EOAS[3];
/// Never funded, never deployed.
pub const NOBODY: Address = Address::new([0x0d; 20]);
/// A precompile (identity).
pub const PRECOMPILE: Address =
    Address::new([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);

pub const STORE: Address = Address::new([0xc1; 20]);
pub const CALLER: Address = Address::new([0xc2; 20]);
pub const INSPECT: Address = Address::new([0xc3; 20]);
pub const DESTRUCT: Address = Address::new([0xc4; 20]);
pub const REVERT: Address = Address::new([0xc5; 20]);
pub const LOOP: Address = Address::new([0xc6; 20]);
pub const FACTORY: Address = Address::new([0xc7; 20]);
pub const FACTORY2: Address = Address::new([0xc8; 20]);
/// An empty account that exists (for EIP-161 touches).
pub const EMPTY: Address = Address::new([0xee; 20]);

/// Init code of the children: `SSTORE(1, 1)`, then deploy the runtime
/// `SSTORE(0, SLOAD(0) + 1); if calldata is not empty { SELFDESTRUCT(CALLER) }`.
#[rustfmt::skip]
pub const CHILD_INIT: [u8; 31] = [
    0x60, 0x01, 0x60, 0x01, 0x55, // SSTORE(1, 1)
    0x70, // PUSH17 runtime
    0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x60, 0x00, 0x55, 0x36, 0x60, 0x0e, 0x57, 0x00, 0x5b, 0x33, 0xff,
    0x60, 0x00, 0x52, // MSTORE(0, runtime)
    0x60, 0x11, 0x60, 0x0f, 0xf3, // RETURN(15, 17)
];

#[rustfmt::skip]
pub fn contracts() -> Vec<(Address, Vec<u8>)> {
    let mut create = vec![0x7e];
    create.extend_from_slice(&CHILD_INIT);
    // MSTORE(0, init); CREATE(0, 1, 31); SSTORE(0, address)
    create.extend_from_slice(&[0x60, 0x00, 0x52, 0x60, 0x1f, 0x60, 0x01, 0x60, 0x00, 0xf0, 0x60, 0x00, 0x55, 0x00]);
    let mut create2 = vec![0x7e];
    create2.extend_from_slice(&CHILD_INIT);
    // MSTORE(0, init); CREATE2(0, 1, 31, salt = calldata[0]); SSTORE(0, address)
    create2.extend_from_slice(&[
        0x60, 0x00, 0x52, 0x60, 0x00, 0x35, 0x60, 0x1f, 0x60, 0x01, 0x60, 0x00, 0xf5, 0x60, 0x00, 0x55, 0x00,
    ]);
    vec![
        // SSTORE(cd[0], cd[32]); LOG0(SLOAD(cd[0]))
        (STORE, vec![0x60, 0x20, 0x35, 0x60, 0x00, 0x35, 0x55, 0x60, 0x00, 0x35, 0x54, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xa0, 0x00]),
        // CALL(gas, cd[0], cd[32], 0, 0, 0, 0)
        (CALLER, vec![0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x20, 0x35, 0x60, 0x00, 0x35, 0x5a, 0xf1, 0x50, 0x00]),
        // SSTORE(0, BALANCE(cd[0])); SSTORE(1, EXTCODEHASH(cd[0]))
        (INSPECT, vec![0x60, 0x00, 0x35, 0x31, 0x60, 0x00, 0x55, 0x60, 0x00, 0x35, 0x3f, 0x60, 0x01, 0x55, 0x00]),
        // SSTORE(7, 7); SELFDESTRUCT(cd[0])
        (DESTRUCT, vec![0x60, 0x07, 0x60, 0x07, 0x55, 0x60, 0x00, 0x35, 0xff]),
        // SSTORE(0, 1); REVERT(0, 0)
        (REVERT, vec![0x60, 0x01, 0x60, 0x00, 0x55, 0x60, 0x00, 0x60, 0x00, 0xfd]),
        // loop forever
        (LOOP, vec![0x5b, 0x60, 0x00, 0x56]),
        (FACTORY, create),
        (FACTORY2, create2),
    ]
}

pub fn child2(salt: u8) -> Address {
    FACTORY2.create2(B256::with_last_byte(salt), keccak256(CHILD_INIT))
}

pub fn targets() -> Vec<Address> {
    let mut targets: Vec<Address> = EOAS.to_vec();
    targets.extend(contracts().iter().map(|(address, _)| *address));
    targets.extend([
        NOBODY,
        PRECOMPILE,
        EMPTY,
        FACTORY.create(1),
        FACTORY.create(2),
        child2(0),
        child2(1),
    ]);
    targets
}

pub fn storage() -> InMemoryStorage {
    let mut storage = InMemoryStorage::new();
    for eoa in EOAS {
        storage.insert_account(eoa, U256::from(10u128.pow(21)), 0, None);
    }
    for (address, code) in contracts() {
        storage.insert_account(
            address,
            U256::from(1_000_000),
            1,
            Some(Bytecode::new_raw(code.into())),
        );
        storage.set_storage(address, U256::from(1), U256::from(11));
    }
    storage.insert_account(EMPTY, U256::ZERO, 0, None);
    storage
}

/// One generated transaction, before nonces are assigned.
#[derive(Clone, Debug)]
pub struct TxSpec {
    pub sender: usize,
    pub target: usize,
    pub value: u128,
    pub arg0: u8,
    pub arg1: u64,
    pub gas_limit: u64,
    pub nonce_skew: i8,
    /// Prague only: an EIP-7702 authorization of EOA `.0` delegating to contract `.1`.
    pub delegate: Option<(usize, usize)>,
}

pub fn tx_spec() -> impl Strategy<Value = TxSpec> {
    (
        0..EOAS.len(),
        0..targets().len(),
        // 10^22 is more than any EOA holds: an invalid transaction (lack of funds).
        prop_oneof![
            10 => Just(0u128),
            10 => 1..1_000u128,
            10 => Just(10u128.pow(18)),
            1 => Just(10u128.pow(22)),
        ],
        0..4u8,
        0..4u64,
        prop_oneof![4 => Just(200_000u64), 1 => Just(21_000u64), 1 => Just(60_000u64)],
        prop_oneof![30 => Just(0i8), 1 => Just(1i8), 1 => Just(-1i8)],
        prop_oneof![
            4 => Just(None),
            1 => (0..EOAS.len(), 0..contracts().len()).prop_map(Some)
        ],
    )
        .prop_map(
            |(sender, target, value, arg0, arg1, gas_limit, nonce_skew, delegate)| TxSpec {
                sender,
                target,
                value,
                arg0,
                arg1,
                gas_limit,
                nonce_skew,
                delegate,
            },
        )
}

pub fn spec_id() -> impl Strategy<Value = SpecId> {
    prop_oneof![
        Just(SpecId::TANGERINE),
        Just(SpecId::BYZANTIUM),
        Just(SpecId::ISTANBUL),
        Just(SpecId::SHANGHAI),
        Just(SpecId::CANCUN),
        Just(SpecId::PRAGUE),
    ]
}

pub fn build_block(spec: SpecId, specs: &[TxSpec]) -> Block {
    let targets = targets();
    let mut nonces = [0u64; EOAS.len()];
    let txs = specs
        .iter()
        .map(|s| {
            let nonce = nonces[s.sender].saturating_add_signed(s.nonce_skew.into());
            nonces[s.sender] += 1;
            let mut authorizations = Vec::new();
            if let Some((authority, contract)) = s.delegate.filter(|_| spec >= SpecId::PRAGUE) {
                let authorization = Authorization {
                    chain_id: U256::from(1),
                    address: contracts()[contract].0,
                    nonce: nonces[authority],
                };
                nonces[authority] += 1;
                authorizations.push(Either::Right(RecoveredAuthorization::new_unchecked(
                    authorization,
                    RecoveredAuthority::Valid(EOAS[authority]),
                )));
            }
            let target = targets[s.target];
            let mut data = vec![0u8; 64];
            // arg0 picks an address or a slot; arg1 a value.
            let pick = targets[(s.arg0 as usize * 5 + s.target) % targets.len()];
            if s.arg0 % 2 == 0 {
                data[12..32].copy_from_slice(pick.as_slice());
            } else {
                data[31] = s.arg0;
            }
            data[56..64].copy_from_slice(&s.arg1.to_be_bytes());
            // No calldata at all sometimes: children then count instead of self-destructing.
            if s.arg1 == 0 {
                data.clear();
            }
            TxEnv {
                tx_type: if authorizations.is_empty() { 0 } else { 4 },
                gas_priority_fee: (!authorizations.is_empty()).then_some(500),
                authorization_list: authorizations,
                chain_id: Some(1),
                caller: EOAS[s.sender],
                nonce,
                gas_limit: s.gas_limit,
                gas_price: 2_000,
                kind: TxKind::Call(target),
                value: U256::from(s.value),
                data: Bytes::from(data),
                ..TxEnv::default()
            }
        })
        .collect();
    let env = BlockEnv {
        number: U256::from(1),
        beneficiary: BENEFICIARY,
        gas_limit: 30_000_000,
        basefee: 1_000,
        ..BlockEnv::default()
    };
    Block::new(env, spec, txs)
}
