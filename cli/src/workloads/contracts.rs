//! The workloads' Solidity contracts, as compiled by `contracts/compile.js`: runtime code,
//! storage layout, and the calldata and storage-slot helpers the generators need.
//!
//! The compiled artifacts (`contracts/build/*.json`) are committed, so building the crate
//! needs no Solidity compiler.

use std::sync::OnceLock;

use revm::bytecode::Bytecode;
use revm::primitives::{Address, B256, Bytes, U256, keccak256};
use serde::Deserialize;

use super::WorkloadError;

/// A compiled contract artifact as `contracts/compile.js` writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Artifact {
    contract: String,
    runtime: String,
    storage_layout: Vec<StorageEntry>,
}

#[derive(Debug, Deserialize)]
struct StorageEntry {
    label: String,
    slot: u64,
}

/// A contract ready for the generators: its analysed runtime code and where its state lives.
#[derive(Debug)]
pub struct Contract {
    name: String,
    code: Bytecode,
    layout: Vec<StorageEntry>,
}

impl Contract {
    /// Parses an artifact (`{contract, runtime, storageLayout}`); bad JSON or hex is an error.
    pub fn from_artifact_json(json: &str) -> Result<Self, WorkloadError> {
        let artifact: Artifact = serde_json::from_str(json)
            .map_err(|e| WorkloadError::Contract(format!("malformed artifact: {e}")))?;
        let name = artifact.contract;
        let bytes: Bytes = artifact.runtime.parse().map_err(|e| {
            WorkloadError::Contract(format!("{name}: runtime code is not valid hex: {e}"))
        })?;
        if bytes.is_empty() {
            return Err(WorkloadError::Contract(format!(
                "{name}: runtime code is empty"
            )));
        }
        let code = Bytecode::new_raw_checked(bytes)
            .map_err(|e| WorkloadError::Contract(format!("{name}: invalid bytecode: {e}")))?;
        Ok(Self {
            name,
            code,
            layout: artifact.storage_layout,
        })
    }

    /// The contract's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Analysed runtime code.
    pub fn code(&self) -> &Bytecode {
        &self.code
    }

    /// The slot of state variable `label`.
    pub fn slot(&self, label: &str) -> Result<U256, WorkloadError> {
        self.layout
            .iter()
            .find(|entry| entry.label == label)
            .map(|entry| U256::from(entry.slot))
            .ok_or_else(|| {
                WorkloadError::Contract(format!("{}: no state variable {label:?}", self.name))
            })
    }
}

static TOKEN: OnceLock<Result<Contract, WorkloadError>> = OnceLock::new();
static PAIR: OnceLock<Result<Contract, WorkloadError>> = OnceLock::new();

/// OpenZeppelin's ERC-20 (`contracts/src/Token.sol`).
pub fn token() -> Result<&'static Contract, WorkloadError> {
    TOKEN
        .get_or_init(|| {
            Contract::from_artifact_json(include_str!("../../contracts/build/Token.json"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The constant-product pool (`contracts/src/Pair.sol`).
pub fn pair() -> Result<&'static Contract, WorkloadError> {
    PAIR.get_or_init(|| {
        Contract::from_artifact_json(include_str!("../../contracts/build/Pair.json"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Slot of `mapping[key]` for a mapping declared at `slot` (Solidity's layout rule).
pub fn mapping_slot(key: Address, slot: U256) -> U256 {
    let mut preimage = [0u8; 64];
    preimage[12..32].copy_from_slice(key.as_slice());
    preimage[32..].copy_from_slice(&slot.to_be_bytes::<32>());
    U256::from_be_bytes(keccak256(preimage).0)
}

/// Slot of `mapping[outer][inner]` for a nested mapping declared at `slot`.
pub fn nested_mapping_slot(outer: Address, inner: Address, slot: U256) -> U256 {
    mapping_slot(inner, mapping_slot(outer, slot))
}

/// A Solidity short string (< 32 bytes) as stored in one slot: bytes left-aligned, length*2
/// in the lowest byte.
pub fn short_string_slot_value(text: &str) -> U256 {
    assert!(text.len() < 32, "short strings only");
    let mut word = [0u8; 32];
    word[..text.len()].copy_from_slice(text.as_bytes());
    word[31] = (text.len() * 2) as u8;
    U256::from_be_bytes(word)
}

/// Calldata for `signature` with already-encoded 32-byte arguments.
pub fn calldata(signature: &str, words: &[B256]) -> Bytes {
    let mut data = Vec::with_capacity(4 + 32 * words.len());
    data.extend_from_slice(&keccak256(signature.as_bytes())[..4]);
    for word in words {
        data.extend_from_slice(word.as_slice());
    }
    data.into()
}

/// An ABI word holding an address.
pub fn word_address(address: Address) -> B256 {
    address.into_word()
}

/// An ABI word holding an unsigned integer.
pub fn word_u256(value: U256) -> B256 {
    B256::from(value.to_be_bytes::<32>())
}

/// An ABI word holding a bool.
pub fn word_bool(value: bool) -> B256 {
    word_u256(U256::from(value as u8))
}

/// Calldata of ERC-20 `transfer(to, amount)`.
pub fn erc20_transfer(to: Address, amount: U256) -> Bytes {
    calldata(
        "transfer(address,uint256)",
        &[word_address(to), word_u256(amount)],
    )
}

/// Calldata of ERC-20 `balanceOf(owner)`.
pub fn erc20_balance_of(owner: Address) -> Bytes {
    calldata("balanceOf(address)", &[word_address(owner)])
}

/// Calldata of `Pair.swap(amountIn, minAmountOut, zeroForOne, to)`.
pub fn pair_swap(amount_in: U256, min_amount_out: U256, zero_for_one: bool, to: Address) -> Bytes {
    calldata(
        "swap(uint256,uint256,bool,address)",
        &[
            word_u256(amount_in),
            word_u256(min_amount_out),
            word_bool(zero_for_one),
            word_address(to),
        ],
    )
}

/// The pool's output for `amount_in` after its 0.3% fee (the contract's `getAmountOut`).
pub fn pair_amount_out(amount_in: U256, reserve_in: U256, reserve_out: U256) -> U256 {
    let with_fee = amount_in * U256::from(997);
    with_fee * reserve_out / (reserve_in * U256::from(1000) + with_fee)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_artifacts_load_with_their_layouts() {
        let token = token().unwrap();
        assert_eq!(token.slot("_balances").unwrap(), U256::from(0));
        assert_eq!(token.slot("_allowances").unwrap(), U256::from(1));
        assert_eq!(token.slot("_totalSupply").unwrap(), U256::from(2));
        let pair = pair().unwrap();
        assert_eq!(pair.slot("reserve1").unwrap(), U256::from(3));
        assert!(pair.slot("nope").is_err());
    }

    #[test]
    fn malformed_artifacts_are_errors_not_panics() {
        let bad_hex = r#"{"contract":"X","runtime":"0x6zz","storageLayout":[]}"#;
        let error = Contract::from_artifact_json(bad_hex)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not valid hex"), "{error}");
        let empty = r#"{"contract":"X","runtime":"0x","storageLayout":[]}"#;
        assert!(
            Contract::from_artifact_json(empty)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(Contract::from_artifact_json("{").is_err());
    }

    #[test]
    fn selectors_match_the_erc20_standard() {
        assert_eq!(
            &erc20_transfer(Address::ZERO, U256::ZERO)[..4],
            &[0xa9, 0x05, 0x9c, 0xbb]
        );
        assert_eq!(
            &erc20_balance_of(Address::ZERO)[..4],
            &[0x70, 0xa0, 0x82, 0x31]
        );
    }
}
