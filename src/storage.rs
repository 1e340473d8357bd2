//! Pre-block state held in memory: [`InMemoryStorage`], a [`DatabaseRef`] for tests,
//! benchmarks and replays, buildable from a genesis-like JSON document.

mod genesis;

pub use genesis::GenesisError;

use revm::bytecode::Bytecode;
use revm::database_interface::{DBErrorMarker, DatabaseRef};
use revm::primitives::map::HashMap;
use revm::primitives::{Address, B256, KECCAK_EMPTY, StorageKey, StorageValue, U256, keccak256};
use revm::state::AccountInfo;

/// An error of [`InMemoryStorage`]: its content is inconsistent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// An account's code hash names code that the storage does not hold.
    #[error("no code stored for code hash {0}")]
    MissingCode(B256),
}

impl DBErrorMarker for StorageError {}

/// One account in [`InMemoryStorage`].
#[derive(Clone, Debug, Default)]
struct StoredAccount {
    info: AccountInfo,
    storage: HashMap<U256, U256>,
}

/// Pre-block state in memory: accounts with their storage, code by hash, and block hashes.
///
/// ```
/// use blockstm_evm::InMemoryStorage;
/// use blockstm_evm::revm::primitives::{Address, U256};
/// use blockstm_evm::revm::DatabaseRef;
///
/// let mut storage = InMemoryStorage::new();
/// let alice = Address::repeat_byte(0xa1);
/// storage.insert_account(alice, U256::from(1_000), 0, None);
/// assert_eq!(storage.basic_ref(alice).unwrap().unwrap().balance, U256::from(1_000));
/// ```
#[derive(Clone, Debug, Default)]
pub struct InMemoryStorage {
    accounts: HashMap<Address, StoredAccount>,
    codes: HashMap<B256, Bytecode>,
    block_hashes: HashMap<u64, B256>,
}

impl InMemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a genesis-like JSON document: `{address: {balance, nonce, code, storage}}`.
    /// See [`GenesisError`] for what is rejected.
    pub fn from_genesis_json(json: &str) -> Result<Self, GenesisError> {
        genesis::parse(json)
    }

    /// Inserts (or replaces) an account; `code` is analysed and stored by its hash.
    pub fn insert_account(
        &mut self,
        address: Address,
        balance: U256,
        nonce: u64,
        code: Option<Bytecode>,
    ) {
        let code_hash = match code {
            Some(code) if !code.is_empty() => {
                let hash = code.hash_slow();
                self.codes.entry(hash).or_insert(code);
                hash
            }
            _ => KECCAK_EMPTY,
        };
        let account = self.accounts.entry(address).or_default();
        account.info = AccountInfo {
            balance,
            nonce,
            code_hash,
            code: None,
            ..AccountInfo::default()
        };
    }

    /// Sets one storage slot of an account, creating an empty account if there is none.
    pub fn set_storage(&mut self, address: Address, slot: U256, value: U256) {
        let account = self.accounts.entry(address).or_default();
        if value.is_zero() {
            account.storage.remove(&slot);
        } else {
            account.storage.insert(slot, value);
        }
    }

    /// Adds `amount` to an account's balance, creating the account if there is none.
    pub fn add_balance(&mut self, address: Address, amount: U256) {
        let account = self.accounts.entry(address).or_default();
        account.info.code = None;
        account.info.balance = account.info.balance.saturating_add(amount);
    }

    /// Stores code by its hash, without attaching it to an account.
    pub fn insert_code(&mut self, code: Bytecode) -> B256 {
        let hash = code.hash_slow();
        self.codes.entry(hash).or_insert(code);
        hash
    }

    /// Records the hash of block `number` for the BLOCKHASH opcode.
    pub fn insert_block_hash(&mut self, number: u64, hash: B256) {
        self.block_hashes.insert(number, hash);
    }

    /// Number of accounts held.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }
}

impl DatabaseRef for InMemoryStorage {
    type Error = StorageError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self
            .accounts
            .get(&address)
            .map(|account| account.info.clone()))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        self.codes
            .get(&code_hash)
            .cloned()
            .ok_or(StorageError::MissingCode(code_hash))
    }

    fn storage_ref(&self, address: Address, key: StorageKey) -> Result<StorageValue, Self::Error> {
        Ok(self
            .accounts
            .get(&address)
            .and_then(|account| account.storage.get(&key).copied())
            .unwrap_or_default())
    }

    /// Unknown block hashes follow the convention of revm's test databases and the Ethereum
    /// state tests: `keccak256` of the block number in decimal.
    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        Ok(self
            .block_hashes
            .get(&number)
            .copied()
            .unwrap_or_else(|| keccak256(number.to_string().as_bytes())))
    }
}
