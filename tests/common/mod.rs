//! Helpers shared by the integration tests.
#![allow(dead_code)]

use blockstm_evm::revm::DatabaseRef;
use blockstm_evm::revm::bytecode::Bytecode;
use blockstm_evm::revm::context::{BlockEnv, TxEnv};
use blockstm_evm::revm::database_interface::DBErrorMarker;
use blockstm_evm::revm::primitives::hardfork::SpecId;
use blockstm_evm::revm::primitives::{Address, B256, Bytes, StorageKey, TxKind, U256};
use blockstm_evm::revm::state::AccountInfo;
use blockstm_evm::{Block, InMemoryStorage};

/// One ether in wei.
pub const ETHER: u128 = 1_000_000_000_000_000_000;

/// An address made of one repeated byte.
pub fn addr(byte: u8) -> Address {
    Address::repeat_byte(byte)
}

/// A legacy-priced call from `caller` with `nonce`.
pub fn call(caller: Address, nonce: u64, to: Address, value: U256, data: Bytes) -> TxEnv {
    TxEnv {
        caller,
        nonce,
        gas_limit: 1_000_000,
        gas_price: 10,
        kind: TxKind::Call(to),
        value,
        data,
        ..TxEnv::default()
    }
}

/// A contract creation from `caller` with `nonce`.
pub fn create(caller: Address, nonce: u64, init_code: Vec<u8>) -> TxEnv {
    TxEnv {
        caller,
        nonce,
        gas_limit: 1_000_000,
        gas_price: 10,
        kind: TxKind::Create,
        data: init_code.into(),
        ..TxEnv::default()
    }
}

/// A block of `txs` at fork `spec` with a fixed beneficiary and a zero base fee.
pub fn block(spec: SpecId, txs: Vec<TxEnv>) -> Block {
    let env = BlockEnv {
        number: U256::from(1),
        beneficiary: addr(0xbe),
        gas_limit: 30_000_000,
        ..BlockEnv::default()
    };
    Block::new(env, spec, txs)
}

/// Storage with `accounts` funded with 100 ETH each.
pub fn funded(accounts: &[Address]) -> InMemoryStorage {
    let mut storage = InMemoryStorage::new();
    for account in accounts {
        storage.insert_account(*account, U256::from(100 * ETHER), 0, None);
    }
    storage
}

/// Runtime code from raw bytes.
pub fn code(bytes: &[u8]) -> Bytecode {
    Bytecode::new_raw(Bytes::copy_from_slice(bytes))
}

/// How [`Faulty`] storage misbehaves when asked for its poisoned account.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Returns [`DiskError`].
    Error,
    /// Panics with "storage exploded".
    Panic,
}

/// Storage that fails on one account and otherwise answers from `inner`.
pub struct Faulty {
    pub inner: InMemoryStorage,
    pub poisoned: Address,
    pub fault: Fault,
}

/// The error of [`Faulty`] storage.
#[derive(Debug, thiserror::Error)]
#[error("disk on fire")]
pub struct DiskError;

impl DBErrorMarker for DiskError {}

impl DatabaseRef for Faulty {
    type Error = DiskError;
    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, DiskError> {
        if address == self.poisoned {
            match self.fault {
                Fault::Error => return Err(DiskError),
                Fault::Panic => panic!("storage exploded"),
            }
        }
        Ok(self.inner.basic_ref(address).unwrap())
    }
    fn code_by_hash_ref(&self, hash: B256) -> Result<Bytecode, DiskError> {
        self.inner.code_by_hash_ref(hash).map_err(|_| DiskError)
    }
    fn storage_ref(&self, address: Address, key: StorageKey) -> Result<U256, DiskError> {
        Ok(self.inner.storage_ref(address, key).unwrap())
    }
    fn block_hash_ref(&self, number: u64) -> Result<B256, DiskError> {
        Ok(self.inner.block_hash_ref(number).unwrap())
    }
}
