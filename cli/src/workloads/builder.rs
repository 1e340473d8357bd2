//! Shared plumbing of the generators: accounts, tokens, pools and transactions laid out in an
//! [`InMemoryStorage`], and the block they run in.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use revm::context::{BlockEnv, TxEnv};
use revm::context_interface::block::BlobExcessGasAndPrice;
use revm::primitives::hardfork::SpecId;
use revm::primitives::map::HashMap;
use revm::primitives::{Address, B256, Bytes, TxKind, U256};

use super::WorkloadError;
use super::contracts::{
    self, Contract, mapping_slot, nested_mapping_slot, short_string_slot_value,
};
use blockstm_evm::block::Block;
use blockstm_evm::storage::InMemoryStorage;

/// The fork generated blocks run under.
pub(crate) const SPEC: SpecId = SpecId::PRAGUE;
/// Base fee of generated blocks (1 gwei).
pub(crate) const BASE_FEE: u64 = 1_000_000_000;
/// Max fee per gas of generated transactions: base fee plus the tip.
pub(crate) const MAX_FEE: u128 = 2_000_000_000;
/// Priority fee (tip) of generated transactions: every transaction pays the beneficiary.
pub(crate) const TIP: u128 = 1_000_000_000;
/// Beneficiary of generated blocks.
pub(crate) const BENEFICIARY: Address = Address::new([0xbe; 20]);
/// One ether in wei.
pub(crate) const ETHER: u128 = 1_000_000_000_000_000_000;

/// A pool laid out in storage.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pool {
    pub address: Address,
    pub token0: Address,
    pub token1: Address,
}

/// Lays out accounts and contracts and collects transactions.
pub(crate) struct Builder {
    pub rng: ChaCha8Rng,
    storage: InMemoryStorage,
    txs: Vec<TxEnv>,
    nonces: HashMap<Address, u64>,
    total_supply: HashMap<Address, U256>,
    token: &'static Contract,
    pair: &'static Contract,
}

impl Builder {
    pub fn new(seed: u64, capacity: usize) -> Result<Self, WorkloadError> {
        Ok(Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            storage: InMemoryStorage::new(),
            txs: Vec::with_capacity(capacity),
            nonces: HashMap::default(),
            total_supply: HashMap::default(),
            token: contracts::token()?,
            pair: contracts::pair()?,
        })
    }

    /// A fresh address that nothing in the block used before.
    pub fn new_address(&mut self) -> Address {
        Address::from(self.rng.random::<[u8; 20]>())
    }

    /// A fresh externally owned account holding `ether` ETH.
    pub fn funded_account(&mut self, ether: u128) -> Address {
        let address = self.new_address();
        self.storage
            .add_balance(address, U256::from(ether) * U256::from(ETHER));
        address
    }

    /// Credits `wei` to an account.
    pub fn fund_wei(&mut self, address: Address, wei: U256) {
        self.storage.add_balance(address, wei);
    }

    /// A token with no holders yet.
    pub fn deploy_token(&mut self) -> Result<Address, WorkloadError> {
        let address = self.new_address();
        let index = self.total_supply.len();
        self.storage
            .insert_account(address, U256::ZERO, 1, Some(self.token.code().clone()));
        for (label, text) in [
            ("_name", format!("Token {index}")),
            ("_symbol", format!("T{index}")),
        ] {
            let slot = self.token.slot(label)?;
            self.storage
                .set_storage(address, slot, short_string_slot_value(&text));
        }
        self.total_supply.insert(address, U256::ZERO);
        Ok(address)
    }

    /// Gives `holder` `amount` of `token`.
    pub fn mint(
        &mut self,
        token: Address,
        holder: Address,
        amount: U256,
    ) -> Result<(), WorkloadError> {
        let slot = mapping_slot(holder, self.token.slot("_balances")?);
        self.storage.set_storage(token, slot, amount);
        let supply = self.total_supply.entry(token).or_default();
        *supply += amount;
        let supply = *supply;
        self.storage
            .set_storage(token, self.token.slot("_totalSupply")?, supply);
        Ok(())
    }

    /// Lets `spender` move any amount of `owner`'s `token`.
    pub fn approve_max(
        &mut self,
        token: Address,
        owner: Address,
        spender: Address,
    ) -> Result<(), WorkloadError> {
        let slot = nested_mapping_slot(owner, spender, self.token.slot("_allowances")?);
        self.storage.set_storage(token, slot, U256::MAX);
        Ok(())
    }

    /// A pool of two fresh tokens holding the given reserves.
    pub fn deploy_pool(&mut self, reserve0: U256, reserve1: U256) -> Result<Pool, WorkloadError> {
        let token0 = self.deploy_token()?;
        let token1 = self.deploy_token()?;
        let address = self.new_address();
        self.storage
            .insert_account(address, U256::ZERO, 1, Some(self.pair.code().clone()));
        for (label, value) in [
            ("token0", token0.into_word().into()),
            ("token1", token1.into_word().into()),
            ("reserve0", reserve0),
            ("reserve1", reserve1),
        ] {
            let slot = self.pair.slot(label)?;
            self.storage.set_storage(address, slot, value);
        }
        self.mint(token0, address, reserve0)?;
        self.mint(token1, address, reserve1)?;
        Ok(Pool {
            address,
            token0,
            token1,
        })
    }

    /// Appends a transaction from `caller` (EIP-1559, nonces counted per caller).
    pub fn push_tx(
        &mut self,
        caller: Address,
        to: Address,
        value: U256,
        data: Bytes,
        gas_limit: u64,
    ) {
        let nonce = self.nonces.entry(caller).or_default();
        self.txs.push(TxEnv {
            tx_type: 2,
            caller,
            gas_limit,
            gas_price: MAX_FEE,
            gas_priority_fee: Some(TIP),
            kind: TxKind::Call(to),
            value,
            data,
            nonce: *nonce,
            chain_id: Some(1),
            ..TxEnv::default()
        });
        *nonce += 1;
    }

    /// A random amount in `[low, high)` wei.
    pub fn amount(&mut self, low: u128, high: u128) -> U256 {
        U256::from(self.rng.random_range(low..high))
    }

    /// The block: Prague rules, a gas limit that fits every transaction, and the storage.
    pub fn finish(self) -> (InMemoryStorage, Block) {
        let gas_limit = self
            .txs
            .iter()
            .map(|tx| tx.gas_limit)
            .sum::<u64>()
            .max(30_000_000);
        let env = BlockEnv {
            number: U256::from(1),
            beneficiary: BENEFICIARY,
            timestamp: U256::from(1_750_000_000u64),
            gas_limit,
            basefee: BASE_FEE,
            difficulty: U256::ZERO,
            prevrandao: Some(B256::repeat_byte(0x42)),
            blob_excess_gas_and_price: Some(BlobExcessGasAndPrice::new_with_spec(0, SPEC)),
            ..BlockEnv::default()
        };
        let mut block = Block::new(env, SPEC, self.txs);
        block.cfg.chain_id = 1;
        (self.storage, block)
    }
}
