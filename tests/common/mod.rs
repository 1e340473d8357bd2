//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod universe;

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

/// The mainnet data directory (`../shared/mainnet`, or `BLOCKSTM_MAINNET_DIR`), or `None`
/// with a printed SKIP line when it is absent (`what` names the skipped test).
pub fn mainnet_dir(what: &str) -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("BLOCKSTM_MAINNET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/mainnet")
        });
    if dir.join("bytecodes.json.gz").is_file() {
        Some(dir)
    } else {
        println!(
            "SKIP {what}: no mainnet data at {} (set BLOCKSTM_MAINNET_DIR)",
            dir.display()
        );
        None
    }
}

/// The bundle revm's own `State` builds for `block`: each transaction committed in turn
/// (`transact_commit`), then `merge_transitions(BundleRetention::Reverts)`.
pub fn revm_state_bundle<S: DatabaseRef>(
    storage: &S,
    block: &Block,
) -> blockstm_evm::revm::database::BundleState {
    use blockstm_evm::revm::context::Context;
    use blockstm_evm::revm::database::states::bundle_state::BundleRetention;
    use blockstm_evm::revm::database::{State, WrapDatabaseRef};
    use blockstm_evm::revm::handler::{ExecuteCommitEvm, MainBuilder, MainContext};

    let mut state = State::builder()
        .with_database(WrapDatabaseRef(storage))
        .with_bundle_update()
        .build();
    {
        let mut evm = Context::mainnet()
            .with_db(&mut state)
            .with_block(block.env.clone())
            .with_cfg(block.cfg.clone())
            .build_mainnet();
        for (index, tx) in block.txs.iter().enumerate() {
            if let Err(error) = evm.transact_commit(tx.clone()) {
                panic!("revm failed on transaction {index}: {error}");
            }
        }
    }
    state.merge_transitions(BundleRetention::Reverts);
    state.take_bundle()
}

/// `None` when the bundles are equal (`==`, every field), else a short account of the
/// first differences (the full Debug of a block's bundle is too long to read).
pub fn bundle_difference(
    expected: &blockstm_evm::revm::database::BundleState,
    actual: &blockstm_evm::revm::database::BundleState,
) -> Option<String> {
    if expected == actual {
        return None;
    }
    let mut lines = Vec::new();
    for (address, account) in &expected.state {
        match actual.state.get(address) {
            Some(other) if other == account => {}
            Some(other) => lines.push(format!(
                "{address}: expected {:?} info {:?} {} slots, got {:?} info {:?} {} slots",
                account.status,
                account
                    .info
                    .as_ref()
                    .map(|i| (i.balance, i.nonce, i.code_hash)),
                account.storage.len(),
                other.status,
                other
                    .info
                    .as_ref()
                    .map(|i| (i.balance, i.nonce, i.code_hash)),
                other.storage.len()
            )),
            None => lines.push(format!("{address}: missing ({:?})", account.status)),
        }
    }
    for address in actual.state.keys() {
        if !expected.state.contains_key(address) {
            lines.push(format!("{address}: unexpected"));
        }
    }
    if expected.reverts != actual.reverts {
        lines.push("reverts differ".into());
    }
    if expected.contracts != actual.contracts {
        lines.push(format!(
            "contracts differ: {} expected, {} got",
            expected.contracts.len(),
            actual.contracts.len()
        ));
    }
    if (expected.state_size, expected.reverts_size) != (actual.state_size, actual.reverts_size) {
        lines.push(format!(
            "sizes differ: {:?} expected, {:?} got",
            (expected.state_size, expected.reverts_size),
            (actual.state_size, actual.reverts_size)
        ));
    }
    lines.truncate(5);
    Some(lines.join("; "))
}

/// How many accounts of the bundle had their storage wiped (revm's `wipe_storage`).
pub fn wiped_accounts(bundle: &blockstm_evm::revm::database::BundleState) -> usize {
    use blockstm_evm::revm::database::OriginalValuesKnown;
    bundle
        .to_plain_state(OriginalValuesKnown::Yes)
        .storage
        .iter()
        .filter(|storage| storage.wipe_storage)
        .count()
}
