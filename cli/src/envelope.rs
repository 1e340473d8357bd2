//! Transactions as alloy-evm's block executors take them: [`test_envelope`] wraps a revm
//! `TxEnv` of the generated workloads in a signed-looking `TxEnvelope`.

use alloy_consensus::{Signed, TxEip1559, TxEnvelope, TxLegacy};
use alloy_primitives::{B256, Signature};
use blockstm_evm::revm::context::TxEnv;

/// A signed-looking envelope carrying what `tx` says, with a test signature (the executors
/// take the sender from the caller they are given, never from the signature); `None` for
/// types other than legacy (0) and EIP-1559 (2).
pub fn test_envelope(tx: &TxEnv) -> Option<TxEnvelope> {
    let signature = Signature::test_signature();
    Some(match tx.tx_type {
        2 => TxEnvelope::Eip1559(Signed::new_unchecked(
            TxEip1559 {
                chain_id: tx.chain_id.unwrap_or(1),
                nonce: tx.nonce,
                gas_limit: tx.gas_limit,
                max_fee_per_gas: tx.gas_price,
                max_priority_fee_per_gas: tx.gas_priority_fee.unwrap_or_default(),
                to: tx.kind,
                value: tx.value,
                access_list: tx.access_list.clone(),
                input: tx.data.clone(),
            },
            signature,
            B256::ZERO,
        )),
        0 => TxEnvelope::Legacy(Signed::new_unchecked(
            TxLegacy {
                chain_id: tx.chain_id,
                nonce: tx.nonce,
                gas_price: tx.gas_price,
                gas_limit: tx.gas_limit,
                to: tx.kind,
                value: tx.value,
                input: tx.data.clone(),
            },
            signature,
            B256::ZERO,
        )),
        _ => return None,
    })
}
