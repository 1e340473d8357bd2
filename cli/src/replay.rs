//! Real mainnet blocks: loading the data in `../shared/mainnet` (JSON-RPC blocks, pre-states,
//! bytecodes, block hashes) into a [`Block`] and an [`InMemoryStorage`], and checking an
//! execution's output against the block's header (gas used, logs bloom, receipts root).
//!
//! Block rewards and withdrawals lie outside transaction execution: the pre-state holds every
//! account the transactions touch, so the transactions' results can be checked on their own.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use alloy_consensus::{ReceiptEnvelope, Transaction as _, TxEnvelope, TxType, Typed2718 as _};
use alloy_primitives::Bloom;
use alloy_rpc_types_eth::{Block as RpcBlock, Transaction as RpcTransaction};
use revm::bytecode::Bytecode;
use revm::context::either::Either;
use revm::context::{BlockEnv, TxEnv};
use revm::context_interface::block::BlobExcessGasAndPrice;
use revm::primitives::hardfork::SpecId;
use revm::primitives::{Address, B256, Bytes, U256};
use serde::Deserialize;

use blockstm_evm::block::Block;
use blockstm_evm::output::BlockOutput;
use blockstm_evm::storage::InMemoryStorage;

/// Why mainnet data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not the JSON it should be.
    #[error("{path}: malformed JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// serde's error.
        source: serde_json::Error,
    },
    /// The content is inconsistent (a missing bytecode, invalid code, ...).
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn read_file(path: &Path) -> Result<Vec<u8>, ReplayError> {
    std::fs::read(path).map_err(|source| ReplayError::Io {
        path: path.to_owned(),
        source,
    })
}

fn parse_json<T: for<'de> Deserialize<'de>>(path: &Path, bytes: &[u8]) -> Result<T, ReplayError> {
    serde_json::from_slice(bytes).map_err(|source| ReplayError::Json {
        path: path.to_owned(),
        source,
    })
}

/// What all blocks share: bytecodes by hash and block hashes by number.
pub struct MainnetData {
    dir: PathBuf,
    bytecodes: HashMap<B256, Bytes>,
    block_hashes: HashMap<u64, B256>,
}

impl MainnetData {
    /// Loads `bytecodes.json.gz` and `block_hashes.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ReplayError> {
        let path = dir.join("bytecodes.json.gz");
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(read_file(&path)?.as_slice())
            .read_to_end(&mut json)
            .map_err(|source| ReplayError::Io {
                path: path.clone(),
                source,
            })?;
        let bytecodes = parse_json(&path, &json)?;
        let path = dir.join("block_hashes.json");
        let hashes: HashMap<String, B256> = parse_json(&path, &read_file(&path)?)?;
        let block_hashes = hashes
            .into_iter()
            .map(|(number, hash)| {
                number
                    .parse::<u64>()
                    .map(|n| (n, hash))
                    .map_err(|_| ReplayError::Invalid {
                        path: path.clone(),
                        reason: format!("block number {number:?} is not a number"),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            dir: dir.to_owned(),
            bytecodes,
            block_hashes,
        })
    }

    /// Numbers of the blocks under `blocks/`, ascending.
    pub fn block_numbers(&self) -> Result<Vec<u64>, ReplayError> {
        let path = self.dir.join("blocks");
        let entries = std::fs::read_dir(&path).map_err(|source| ReplayError::Io {
            path: path.clone(),
            source,
        })?;
        let mut numbers: Vec<u64> = entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Loads block `number`: its transactions, environment and pre-state.
    pub fn block(&self, number: u64) -> Result<MainnetBlock, ReplayError> {
        let dir = self.dir.join("blocks").join(number.to_string());
        let path = dir.join("block.json");
        let rpc: RpcBlock<RpcTransaction> = parse_json(&path, &read_file(&path)?)?;
        let header = &rpc.header;
        let spec = spec_at(header.number, header.timestamp);
        let env = block_env(&header.inner, spec);
        let txs: Vec<TxEnv> = rpc
            .transactions
            .txns()
            .map(|tx| tx_env(tx.inner.inner(), tx.inner.signer()))
            .collect();
        let mut block = Block::new(env, spec, txs);
        block.cfg.chain_id = 1;
        let storage = self.pre_state(&dir.join("pre_state.json"))?;
        Ok(MainnetBlock {
            number: header.number,
            spec,
            block,
            storage,
            gas_used: header.gas_used,
            logs_bloom: header.logs_bloom,
            receipts_root: header.receipts_root,
        })
    }

    fn pre_state(&self, path: &Path) -> Result<InMemoryStorage, ReplayError> {
        #[derive(Deserialize)]
        struct PreAccount {
            balance: U256,
            nonce: serde_json::Value,
            code_hash: Option<B256>,
            #[serde(default)]
            storage: HashMap<U256, U256>,
        }
        let accounts: HashMap<Address, PreAccount> = parse_json(path, &read_file(path)?)?;
        let invalid = |reason: String| ReplayError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let mut storage = InMemoryStorage::new();
        for (address, account) in accounts {
            let nonce = match &account.nonce {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => {
                    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
                }
                _ => None,
            }
            .ok_or_else(|| invalid(format!("{address}: bad nonce {}", account.nonce)))?;
            let code = match account.code_hash {
                Some(hash) if hash != revm::primitives::KECCAK_EMPTY => {
                    let bytes = self.bytecodes.get(&hash).ok_or_else(|| {
                        invalid(format!("{address}: no bytecode for code hash {hash}"))
                    })?;
                    Some(
                        Bytecode::new_raw_checked(bytes.clone())
                            .map_err(|e| invalid(format!("{address}: invalid code: {e}")))?,
                    )
                }
                _ => None,
            };
            storage.insert_account(address, account.balance, nonce, code);
            for (slot, value) in account.storage {
                storage.set_storage(address, slot, value);
            }
        }
        for (number, hash) in &self.block_hashes {
            storage.insert_block_hash(*number, *hash);
        }
        Ok(storage)
    }
}

/// The mainnet fork active at a block.
pub fn spec_at(number: u64, timestamp: u64) -> SpecId {
    const BY_TIMESTAMP: [(u64, SpecId); 3] = [
        (1_746_612_311, SpecId::PRAGUE),
        (1_710_338_135, SpecId::CANCUN),
        (1_681_338_455, SpecId::SHANGHAI),
    ];
    // Forks that change no execution rule (DAO, Muir/Arrow/Gray Glacier) have no SpecId.
    const BY_NUMBER: [(u64, SpecId); 10] = [
        (15_537_394, SpecId::MERGE),
        (12_965_000, SpecId::LONDON),
        (12_244_000, SpecId::BERLIN),
        (9_069_000, SpecId::ISTANBUL),
        (7_280_000, SpecId::PETERSBURG),
        (4_370_000, SpecId::BYZANTIUM),
        (2_675_000, SpecId::SPURIOUS_DRAGON),
        (2_463_000, SpecId::TANGERINE),
        (1_150_000, SpecId::HOMESTEAD),
        (0, SpecId::FRONTIER),
    ];
    if let Some((_, spec)) = BY_TIMESTAMP.iter().find(|(start, _)| timestamp >= *start)
        && number >= 15_537_394
    {
        return *spec;
    }
    BY_NUMBER
        .iter()
        .find(|(start, _)| number >= *start)
        .map_or(SpecId::FRONTIER, |(_, spec)| *spec)
}

/// The EVM's view of a block header under `spec`.
pub fn block_env(header: &alloy_consensus::Header, spec: SpecId) -> BlockEnv {
    BlockEnv {
        number: U256::from(header.number),
        beneficiary: header.beneficiary,
        timestamp: U256::from(header.timestamp),
        gas_limit: header.gas_limit,
        basefee: header.base_fee_per_gas.unwrap_or_default(),
        difficulty: header.difficulty,
        prevrandao: spec.is_enabled_in(SpecId::MERGE).then_some(header.mix_hash),
        blob_excess_gas_and_price: spec.is_enabled_in(SpecId::CANCUN).then(|| {
            BlobExcessGasAndPrice::new_with_spec(header.excess_blob_gas.unwrap_or_default(), spec)
        }),
        ..BlockEnv::default()
    }
}

/// The revm transaction of a signed Ethereum transaction sent by `signer`.
pub fn tx_env(signed: &TxEnvelope, signer: Address) -> TxEnv {
    TxEnv {
        tx_type: signed.ty(),
        caller: signer,
        gas_limit: signed.gas_limit(),
        gas_price: signed.max_fee_per_gas(),
        gas_priority_fee: signed.max_priority_fee_per_gas(),
        kind: signed.kind(),
        value: signed.value(),
        data: signed.input().clone(),
        nonce: signed.nonce(),
        chain_id: signed.chain_id(),
        access_list: signed.access_list().cloned().unwrap_or_default(),
        blob_hashes: signed
            .blob_versioned_hashes()
            .map(<[B256]>::to_vec)
            .unwrap_or_default(),
        max_fee_per_blob_gas: signed.max_fee_per_blob_gas().unwrap_or_default(),
        authorization_list: signed
            .authorization_list()
            .map(|list| list.iter().cloned().map(Either::Left).collect())
            .unwrap_or_default(),
    }
}

/// A mainnet block ready to execute, with what its header says about the result.
pub struct MainnetBlock {
    /// Block number.
    pub number: u64,
    /// Fork.
    pub spec: SpecId,
    /// Environment and transactions.
    pub block: Block,
    /// Every account the transactions touch, before the block.
    pub storage: InMemoryStorage,
    /// The header's `gasUsed`.
    pub gas_used: u64,
    /// The header's `logsBloom`.
    pub logs_bloom: Bloom,
    /// The header's `receiptsRoot`.
    pub receipts_root: B256,
}

/// How an output compares with the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderCheck {
    /// Total gas equals `gasUsed`.
    pub gas: bool,
    /// The logs' bloom equals `logsBloom`.
    pub bloom: bool,
    /// The receipts' root equals `receiptsRoot`; `None` before Byzantium, whose receipts
    /// hold intermediate state roots that transaction execution alone does not give.
    pub receipts_root: Option<bool>,
}

impl MainnetBlock {
    /// Compares an execution's output with the header.
    pub fn check(&self, output: &BlockOutput) -> HeaderCheck {
        check_header(
            output,
            &self.block,
            self.gas_used,
            self.logs_bloom,
            self.receipts_root,
        )
    }
}

/// Compares the output of `block` with its header's `gasUsed`, `logsBloom` and, from
/// Byzantium on, `receiptsRoot` (receipts built with alloy-consensus types).
pub fn check_header(
    output: &BlockOutput,
    block: &Block,
    gas_used: u64,
    logs_bloom: Bloom,
    receipts_root: B256,
) -> HeaderCheck {
    // Unknown types count as legacy; a count mismatch gives no receipts, so no match.
    let tx_types = block
        .txs
        .iter()
        .map(|tx| TxType::try_from(tx.tx_type).unwrap_or(TxType::Legacy));
    let receipts: Vec<ReceiptEnvelope> = output.receipts(tx_types).unwrap_or_default();
    let mut bloom = Bloom::default();
    for receipt in &receipts {
        bloom.accrue_bloom(receipt.logs_bloom());
    }
    let byzantium = block.spec().is_enabled_in(SpecId::BYZANTIUM);
    HeaderCheck {
        gas: output.gas_used() == gas_used,
        bloom: bloom == logs_bloom,
        receipts_root: byzantium
            .then(|| alloy_consensus::proofs::calculate_receipt_root(&receipts) == receipts_root),
    }
}
