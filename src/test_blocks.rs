//! Small generated blocks for the engine's unit tests (the harness crate's generators are
//! not visible to them: they link a separate copy of this crate).

use revm::bytecode::Bytecode;
use revm::context::{BlockEnv, TxEnv};
use revm::primitives::hardfork::SpecId;
use revm::primitives::{Address, Bytes, TxKind, U256};

use crate::block::Block;
use crate::storage::InMemoryStorage;

/// Storage slots each call to [`slot_writers`]' contract writes.
pub(crate) const SLOTS_PER_CALL: usize = 12;

const CONTRACT: Address = Address::repeat_byte(0xc0);

/// A sender per transaction, each funded with 1,000 ether.
fn sender(i: usize) -> Address {
    let mut bytes = [0x11u8; 20];
    bytes[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    Address::from(bytes)
}

fn funded_senders(txs: usize) -> InMemoryStorage {
    let mut storage = InMemoryStorage::new();
    for i in 0..txs {
        storage.insert_account(sender(i), U256::from(10u128.pow(21)), 0, None);
    }
    storage
}

fn block(txs: Vec<TxEnv>) -> Block {
    let env = BlockEnv {
        number: U256::from(1),
        beneficiary: Address::repeat_byte(0xbe),
        gas_limit: 1_000_000_000,
        ..BlockEnv::default()
    };
    Block::new(env, SpecId::PRAGUE, txs)
}

/// `txs` independent plain transfers: every location they touch is predicted by the plan.
pub(crate) fn transfers(txs: usize) -> (InMemoryStorage, Block) {
    let block = block(
        (0..txs)
            .map(|i| TxEnv {
                caller: sender(i),
                kind: TxKind::Call(Address::repeat_byte(0x22)),
                value: U256::from(1),
                gas_limit: 21_000,
                gas_price: 10,
                ..TxEnv::default()
            })
            .collect(),
    );
    (funded_senders(txs), block)
}

/// The slot writers' code: per slot, SSTORE(calldata[0..32] + i, 1), i.e. PUSH1 1, PUSH1 i,
/// PUSH1 0, CALLDATALOAD, ADD, SSTORE; then STOP.
fn slot_writer_code() -> Vec<u8> {
    let mut code = Vec::new();
    for i in 0..SLOTS_PER_CALL as u8 {
        code.extend_from_slice(&[0x60, 0x01, 0x60, i, 0x60, 0x00, 0x35, 0x01, 0x55]);
    }
    code.push(0x00);
    code
}

/// Sender `i`'s call to `contract`, writing the slots its calldata keys.
fn slot_writer_call(i: usize, contract: Address) -> TxEnv {
    TxEnv {
        caller: sender(i),
        kind: TxKind::Call(contract),
        data: Bytes::from(U256::from(i * 1_000).to_be_bytes::<32>().to_vec()),
        gas_limit: 1_000_000,
        gas_price: 10,
        ..TxEnv::default()
    }
}

/// `txs` calls to one contract that writes [`SLOTS_PER_CALL`] fresh storage slots per call
/// (keyed by calldata): locations the plan cannot predict.
pub(crate) fn slot_writers(txs: usize) -> (InMemoryStorage, Block) {
    let mut storage = funded_senders(txs);
    storage.insert_account(
        CONTRACT,
        U256::ZERO,
        1,
        Some(Bytecode::new_raw(slot_writer_code().into())),
    );
    let block = block((0..txs).map(|i| slot_writer_call(i, CONTRACT)).collect());
    (storage, block)
}

/// [`slot_writers`] on a contract that the block's first transaction creates (its storage
/// starts wiped in the block), followed by `calls` calls to it.
pub(crate) fn created_slot_writers(calls: usize) -> (InMemoryStorage, Block) {
    let runtime = slot_writer_code();
    let length = u8::try_from(runtime.len()).expect("the runtime fits a PUSH1 length");
    // CODECOPY(0, 12, length); RETURN(0, length); then the runtime (at offset 12).
    let mut init = vec![
        0x60, length, 0x60, 12, 0x60, 0x00, 0x39, 0x60, length, 0x60, 0x00, 0xf3,
    ];
    init.extend_from_slice(&runtime);
    let creator = sender(calls);
    let contract = creator.create(0);
    let mut txs = vec![TxEnv {
        caller: creator,
        kind: TxKind::Create,
        data: Bytes::from(init),
        gas_limit: 1_000_000,
        gas_price: 10,
        ..TxEnv::default()
    }];
    txs.extend((0..calls).map(|i| slot_writer_call(i, contract)));
    (funded_senders(calls + 1), block(txs))
}
