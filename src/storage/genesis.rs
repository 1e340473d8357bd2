//! Parsing a genesis-like JSON document into [`InMemoryStorage`].
//!
//! The format is the `alloc` section of a geth genesis file, or the `pre` section of an
//! Ethereum state test: `{"0xaddress": {"balance": "0x..", "nonce": "0x..", "code": "0x..",
//! "storage": {"0xslot": "0xvalue"}}}`. Every field is optional; numbers may be hex strings,
//! decimal strings or JSON integers.

use std::collections::BTreeMap;

use revm::bytecode::{Bytecode, BytecodeDecodeError};
use revm::primitives::{Address, Bytes, U256};
use serde::Deserialize;

use super::InMemoryStorage;

/// Why a genesis document was rejected.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The document is not valid JSON of the expected shape (bad hex, bad address, wrong type).
    #[error("malformed genesis JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A number does not fit where it goes (e.g. a nonce above 2^64-1).
    #[error("account {address}: {field} {value:?} is not a valid number")]
    Number {
        /// The account.
        address: Address,
        /// The field (`nonce`, `balance`, ...).
        field: &'static str,
        /// The text as found.
        value: String,
    },
    /// An account's code is not valid bytecode (e.g. a malformed EIP-7702 delegation).
    #[error("account {address}: invalid code: {source}")]
    Code {
        /// The account.
        address: Address,
        /// revm's decoding error.
        source: BytecodeDecodeError,
    },
}

/// A number given as a JSON integer, a hex string (`0x..`) or a decimal string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Integer(u64),
    Text(String),
}

impl Number {
    fn to_u256(&self) -> Option<U256> {
        match self {
            Self::Integer(value) => Some(U256::from(*value)),
            Self::Text(text) => {
                let text = text.trim();
                match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                    Some("") => Some(U256::ZERO),
                    Some(hex) => U256::from_str_radix(hex, 16).ok(),
                    None => U256::from_str_radix(text, 10).ok(),
                }
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Integer(value) => value.to_string(),
            Self::Text(text) => text.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisAccount {
    #[serde(default)]
    balance: Option<Number>,
    #[serde(default)]
    nonce: Option<Number>,
    #[serde(default)]
    code: Option<Bytes>,
    #[serde(default)]
    storage: BTreeMap<String, Number>,
}

fn number(address: Address, field: &'static str, value: &Number) -> Result<U256, GenesisError> {
    value.to_u256().ok_or_else(|| GenesisError::Number {
        address,
        field,
        value: value.describe(),
    })
}

pub(super) fn parse(json: &str) -> Result<InMemoryStorage, GenesisError> {
    let accounts: BTreeMap<Address, GenesisAccount> = serde_json::from_str(json)?;
    let mut storage = InMemoryStorage::new();
    for (address, account) in accounts {
        let balance = match &account.balance {
            Some(value) => number(address, "balance", value)?,
            None => U256::ZERO,
        };
        let nonce = match &account.nonce {
            Some(value) => {
                let nonce = number(address, "nonce", value)?;
                u64::try_from(nonce).map_err(|_| GenesisError::Number {
                    address,
                    field: "nonce",
                    value: value.describe(),
                })?
            }
            None => 0,
        };
        let code = match account.code {
            Some(bytes) if !bytes.is_empty() => Some(
                Bytecode::new_raw_checked(bytes)
                    .map_err(|source| GenesisError::Code { address, source })?,
            ),
            _ => None,
        };
        storage.insert_account(address, balance, nonce, code);
        for (slot, value) in &account.storage {
            let slot = number(address, "storage slot", &Number::Text(slot.clone()))?;
            let value = number(address, "storage value", value)?;
            storage.set_storage(address, slot, value);
        }
    }
    Ok(storage)
}

#[cfg(test)]
mod tests {
    use revm::database_interface::DatabaseRef;
    use revm::primitives::{KECCAK_EMPTY, address};

    use super::*;

    #[test]
    fn parses_every_field_in_every_number_form() {
        let storage = InMemoryStorage::from_genesis_json(
            r#"{
                "0x00000000000000000000000000000000000000aa": {
                    "balance": "0x10", "nonce": 7, "code": "0x6001600055",
                    "storage": {"0x01": "0x02", "3": "4"}
                },
                "0x00000000000000000000000000000000000000bb": {"balance": "1000"}
            }"#,
        )
        .unwrap();
        let aa = address!("0x00000000000000000000000000000000000000aa");
        let info = storage.basic_ref(aa).unwrap().unwrap();
        assert_eq!(info.balance, U256::from(16));
        assert_eq!(info.nonce, 7);
        assert_ne!(info.code_hash, KECCAK_EMPTY);
        let code = storage.code_by_hash_ref(info.code_hash).unwrap();
        assert_eq!(
            code.original_bytes().as_ref(),
            &[0x60, 0x01, 0x60, 0x00, 0x55]
        );
        assert_eq!(
            storage.storage_ref(aa, U256::from(1)).unwrap(),
            U256::from(2)
        );
        assert_eq!(
            storage.storage_ref(aa, U256::from(3)).unwrap(),
            U256::from(4)
        );
        let bb = address!("0x00000000000000000000000000000000000000bb");
        assert_eq!(
            storage.basic_ref(bb).unwrap().unwrap().balance,
            U256::from(1000)
        );
        assert_eq!(
            storage.basic_ref(bb).unwrap().unwrap().code_hash,
            KECCAK_EMPTY
        );
    }

    #[test]
    fn rejects_malformed_documents_with_a_reason() {
        let cases = [
            ("not json", "malformed genesis JSON"),
            (r#"{"0xzz": {}}"#, "malformed genesis JSON"),
            (
                r#"{"0x00000000000000000000000000000000000000aa": {"code": "0x6g"}}"#,
                "malformed genesis JSON",
            ),
            (
                r#"{"0x00000000000000000000000000000000000000aa": {"balance": "lots"}}"#,
                "balance \"lots\" is not a valid number",
            ),
            (
                r#"{"0x00000000000000000000000000000000000000aa": {"nonce": "0x10000000000000000"}}"#,
                "nonce",
            ),
            (
                r#"{"0x00000000000000000000000000000000000000aa": {"code": "0xef0100aa"}}"#,
                "invalid code",
            ),
            (
                r#"{"0x00000000000000000000000000000000000000aa": {"colour": "blue"}}"#,
                "unknown field",
            ),
        ];
        for (json, expected) in cases {
            let error = InMemoryStorage::from_genesis_json(json)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(expected),
                "{json}: got {error:?}, wanted {expected:?}"
            );
        }
    }

    #[test]
    fn missing_code_is_a_storage_error() {
        let storage = InMemoryStorage::new();
        let hash = revm::primitives::B256::repeat_byte(1);
        assert_eq!(
            storage.code_by_hash_ref(hash),
            Err(super::super::StorageError::MissingCode(hash))
        );
    }
}
