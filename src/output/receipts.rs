//! [`BlockOutput`] to alloy-consensus receipts: what a block's `receiptsRoot`, an RPC node
//! and reth's storage take.
//!
//! A receipt needs only its transaction's result (status, cumulative gas, logs) and type, so
//! the receipts are built from [`BlockOutput::results`] alone; the state changes are not
//! looked at, and [`BlockOutput::into_receipts`] hands them back untouched for
//! [`StateChanges::into_bundle_state`]. Each receipt is the one alloy-evm's
//! `AlloyReceiptBuilder` builds from the same result (`tests/alloy_evm.rs` compares them on the
//! mainnet blocks, and their trie root with the headers' `receiptsRoot`).
//!
//! The transaction types come from the caller (the block's envelopes, or `TxEnv::tx_type`):
//! revm's result does not carry them. Receipts before Byzantium (EIP-658) held an intermediate
//! state root instead of a status; like alloy-evm's builder, these receipts carry the status
//! at every fork, so only their roots from Byzantium on match a header.

use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, TxType};
use revm::primitives::Log;

use super::{BlockOutput, StateChanges, TxResult};

/// The number of transaction types given to [`BlockOutput::receipts`] or
/// [`BlockOutput::into_receipts`] differs from the number of transaction results: the types
/// are not those of the block that was executed.
///
/// ```
/// use alloy_consensus::TxType;
/// use blockstm_evm::output::TxTypeCountMismatch;
/// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
/// use blockstm_evm::{execute, Options};
///
/// let workload = WorkloadSpec::new(WorkloadKind::Raw, 3).generate().unwrap();
/// let output = execute(&workload.storage, &workload.block, &Options::default()).unwrap();
/// let error = output.receipts([TxType::Eip1559; 2]).unwrap_err();
/// assert_eq!(error, TxTypeCountMismatch { results: 3, tx_types: 2 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{tx_types} transaction types given for {results} transaction results")]
pub struct TxTypeCountMismatch {
    /// Transaction results in the output.
    pub results: usize,
    /// Transaction types given.
    pub tx_types: usize,
}

impl TxResult {
    /// The transaction's receipt without its type and bloom: EIP-658 status, cumulative gas
    /// used and logs (cloned). [`ReceiptEnvelope::from_typed`] with the transaction's type
    /// makes the typed receipt with its bloom; other chains wrap it in their own envelope.
    ///
    /// ```
    /// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
    /// use blockstm_evm::{execute, Options};
    ///
    /// let workload = WorkloadSpec::new(WorkloadKind::Erc20, 5).generate().unwrap();
    /// let output = execute(&workload.storage, &workload.block, &Options::default()).unwrap();
    /// let receipt = output.results[4].receipt();
    /// assert!(receipt.status.coerce_status());
    /// assert_eq!(receipt.cumulative_gas_used, output.gas_used());
    /// assert_eq!(receipt.logs.len(), 1, "one Transfer event");
    /// ```
    pub fn receipt(&self) -> Receipt<Log> {
        Receipt {
            status: Eip658Value::Eip658(self.is_success()),
            cumulative_gas_used: self.cumulative_gas_used,
            logs: self.logs().to_vec(),
        }
    }

    /// The receipt of [`TxResult::receipt`], moving the logs out of the result.
    ///
    /// ```
    /// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
    /// use blockstm_evm::{execute, Options};
    ///
    /// let workload = WorkloadSpec::new(WorkloadKind::Erc20, 5).generate().unwrap();
    /// let output = execute(&workload.storage, &workload.block, &Options::default()).unwrap();
    /// let result = output.results[0].clone();
    /// assert_eq!(result.clone().into_receipt(), result.receipt());
    /// ```
    pub fn into_receipt(self) -> Receipt<Log> {
        Receipt {
            status: Eip658Value::Eip658(self.is_success()),
            cumulative_gas_used: self.cumulative_gas_used,
            logs: self.result.into_logs(),
        }
    }
}

impl BlockOutput {
    /// The block's receipts, one per transaction, typed by `tx_types` (the transactions'
    /// types in block order) and with their blooms; the logs are cloned. See
    /// [`BlockOutput::into_receipts`] to move them instead.
    ///
    /// Fails when `tx_types` does not yield exactly one type per transaction.
    ///
    /// ```
    /// use alloy_consensus::{TxReceipt, TxType};
    /// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
    /// use blockstm_evm::{execute, Options};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let workload = WorkloadSpec::new(WorkloadKind::Erc20, 20).generate()?;
    /// let output = execute(&workload.storage, &workload.block, &Options::default())?;
    /// // revm's `TxEnv` keeps the type as a byte; a block's envelopes have `tx_type()`.
    /// let tx_types = workload
    ///     .block
    ///     .txs
    ///     .iter()
    ///     .map(|tx| TxType::try_from(tx.tx_type))
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// let receipts = output.receipts(tx_types)?;
    /// assert_eq!(receipts.len(), 20);
    /// assert_eq!(receipts[19].cumulative_gas_used(), output.gas_used());
    /// let root = alloy_consensus::proofs::calculate_receipt_root(&receipts);
    /// assert_ne!(root, alloy_consensus::constants::EMPTY_ROOT_HASH);
    /// # Ok(())
    /// # }
    /// ```
    pub fn receipts(
        &self,
        tx_types: impl IntoIterator<Item = TxType>,
    ) -> Result<Vec<ReceiptEnvelope>, TxTypeCountMismatch> {
        typed(self.results.iter().map(TxResult::receipt), tx_types)
    }

    /// The block's receipts as [`BlockOutput::receipts`] builds them, moving the logs, and the
    /// state changes, untouched: the two things an integrator stores for a block (the changes
    /// through [`StateChanges::into_bundle_state`]).
    ///
    /// Fails when `tx_types` does not yield exactly one type per transaction; the output is
    /// then dropped (compare the counts first to keep it).
    ///
    /// ```
    /// use alloy_consensus::{TxReceipt, TxType};
    /// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
    /// use blockstm_evm::{execute, Options};
    ///
    /// let workload = WorkloadSpec::new(WorkloadKind::Erc20, 20).generate().unwrap();
    /// let output = execute(&workload.storage, &workload.block, &Options::default()).unwrap();
    /// let expected = output.receipts([TxType::Eip1559; 20]).unwrap();
    /// let (receipts, state) = output.into_receipts([TxType::Eip1559; 20]).unwrap();
    /// assert_eq!(receipts, expected);
    /// assert!(receipts.iter().all(|receipt| receipt.status()));
    /// let bundle = state.into_bundle_state();
    /// assert_eq!(bundle.reverts.len(), 1);
    /// ```
    pub fn into_receipts(
        self,
        tx_types: impl IntoIterator<Item = TxType>,
    ) -> Result<(Vec<ReceiptEnvelope>, StateChanges), TxTypeCountMismatch> {
        let (results, state) = self.into_parts();
        let receipts = typed(results.into_iter().map(TxResult::into_receipt), tx_types)?;
        Ok((receipts, state))
    }
}

/// Pairs each receipt with its type and bloom, as alloy-evm's `AlloyReceiptBuilder` does;
/// fails, before any receipt is built, unless there is one type per receipt.
fn typed(
    receipts: impl ExactSizeIterator<Item = Receipt<Log>>,
    tx_types: impl IntoIterator<Item = TxType>,
) -> Result<Vec<ReceiptEnvelope>, TxTypeCountMismatch> {
    // Why collect: the count must be checked before the logs are cloned or moved.
    let tx_types: Vec<TxType> = tx_types.into_iter().collect();
    if tx_types.len() != receipts.len() {
        return Err(TxTypeCountMismatch {
            results: receipts.len(),
            tx_types: tx_types.len(),
        });
    }
    Ok(receipts
        .zip(tx_types)
        .map(|(receipt, tx_type)| ReceiptEnvelope::from_typed(tx_type, receipt.with_bloom()))
        .collect())
}

#[cfg(test)]
mod tests {
    use alloy_consensus::TxReceipt as _;
    use alloy_primitives::{Bloom, BloomInput};
    use revm::context::result::{
        ExecutionResult, HaltReason, OutOfGasError, Output, ResultGas, SuccessReason,
    };
    use revm::primitives::{Address, B256, Bytes, LogData};

    use super::*;

    fn log(byte: u8) -> Log {
        Log {
            address: Address::repeat_byte(byte),
            data: LogData::new_unchecked(vec![B256::repeat_byte(byte)], Bytes::new()),
        }
    }

    /// A success with one log, a revert and a halt, 21,000 gas apart.
    fn output() -> BlockOutput {
        let gas = ResultGas::default();
        let results = [
            ExecutionResult::Success {
                reason: SuccessReason::Stop,
                gas,
                logs: vec![log(0x11)],
                output: Output::Call(Bytes::new()),
            },
            ExecutionResult::Revert {
                gas,
                logs: vec![],
                output: Bytes::new(),
            },
            ExecutionResult::Halt {
                reason: HaltReason::OutOfGas(OutOfGasError::Basic),
                gas,
                logs: vec![],
            },
        ];
        BlockOutput {
            results: results
                .into_iter()
                .zip(1..)
                .map(|(result, i)| TxResult {
                    result,
                    cumulative_gas_used: 21_000 * i,
                })
                .collect(),
            state: StateChanges::default(),
        }
    }

    #[test]
    fn receipts_carry_type_status_gas_logs_and_bloom() {
        let types = [TxType::Legacy, TxType::Eip4844, TxType::Eip7702];
        let receipts = output().receipts(types).unwrap();
        assert!(matches!(receipts[0], ReceiptEnvelope::Legacy(_)));
        assert!(matches!(receipts[1], ReceiptEnvelope::Eip4844(_)));
        assert!(matches!(receipts[2], ReceiptEnvelope::Eip7702(_)));
        let statuses: Vec<bool> = receipts.iter().map(|r| r.status()).collect();
        assert_eq!(statuses, [true, false, false]);
        let gas: Vec<u64> = receipts.iter().map(|r| r.cumulative_gas_used()).collect();
        assert_eq!(gas, [21_000, 42_000, 63_000]);
        assert_eq!(receipts[0].logs(), &[log(0x11)]);
        assert!(
            receipts[0]
                .bloom()
                .contains_input(BloomInput::Raw(&[0x11; 20]))
        );
        assert!(receipts[1].logs().is_empty());
        assert_eq!(receipts[1].bloom(), Bloom::ZERO);

        let (moved, state) = output().into_receipts(types).unwrap();
        assert_eq!(moved, receipts);
        assert_eq!(state, StateChanges::default());
    }

    #[test]
    fn a_wrong_number_of_types_is_an_error() {
        for given in [0, 2, 4, 7] {
            let types = vec![TxType::Eip1559; given];
            let expected = Err(TxTypeCountMismatch {
                results: 3,
                tx_types: given,
            });
            assert_eq!(output().receipts(types.clone()), expected);
            assert_eq!(output().into_receipts(types).map(|(r, _)| r), expected);
        }
        let empty = BlockOutput {
            results: vec![],
            state: StateChanges::default(),
        };
        assert_eq!(empty.receipts([]), Ok(vec![]));
    }
}
