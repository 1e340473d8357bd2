//! alloy-evm's `EthBlockExecutor` (what a reth node runs) and the engine's
//! `ParallelEthBlockExecutor` on the same block, each over a fresh `State` with bundle updates
//! and ending with the bundle taken, as reth does.
//!
//! The block's transactions go in with envelopes made from their `TxEnv`s and test
//! signatures: both executors take the signer from the `Recovered` wrapper and never check
//! the signature.

use std::borrow::Cow;

use alloy_consensus::TxEnvelope;
use alloy_consensus::transaction::Recovered;
use alloy_evm::block::{BlockExecutionResult, BlockExecutor};
use alloy_evm::eth::receipt_builder::AlloyReceiptBuilder;
use alloy_evm::eth::spec::EthSpec;
use alloy_evm::eth::{EthBlockExecutionCtx, EthBlockExecutor};
use alloy_evm::{EthEvmFactory, EvmEnv, EvmFactory};
use alloy_primitives::{B256, Bytes};
use blockstm_evm::Options;
use blockstm_evm::alloy_evm::ParallelEthBlockExecutorFactory;
use blockstm_evm::revm::DatabaseRef;
use blockstm_evm::revm::context::TxEnv;
use blockstm_evm::revm::database::states::bundle_state::BundleRetention;
use blockstm_evm::revm::database::{BundleState, State, WrapDatabaseRef};

use super::BaselineError;
use crate::envelope::test_envelope;

/// Which executor runs the block.
#[derive(Clone, Debug)]
pub enum AlloyExecutor {
    /// alloy-evm's `EthBlockExecutor`, one transaction after the other.
    Reth,
    /// The engine's `ParallelEthBlockExecutor` with these options.
    Parallel(Options),
}

/// A block as alloy-evm's executors take it: its environment and (`TxEnv`, envelope) pairs.
pub struct AlloyBlock {
    env: EvmEnv,
    items: Vec<(TxEnv, Recovered<TxEnvelope>)>,
}

/// What one run returns: the executor's result and the bundle taken from the `State`.
pub struct AlloyRun {
    /// Receipts, requests and gas, as the executor returned them.
    pub result: BlockExecutionResult<alloy_consensus::ReceiptEnvelope>,
    /// The block's state changes with their reverts.
    pub bundle: BundleState,
}

impl AlloyBlock {
    /// The executors' form of `block` (made once, before any timing). Errors on a
    /// transaction type without an envelope here (only legacy and EIP-1559 are made).
    pub fn new(block: &blockstm_evm::Block) -> Result<Self, BaselineError> {
        let items = block
            .txs
            .iter()
            .enumerate()
            .map(|(index, tx)| {
                let envelope = test_envelope(tx).ok_or_else(|| BaselineError {
                    index,
                    message: format!("no envelope for transaction type {}", tx.tx_type),
                })?;
                Ok((tx.clone(), Recovered::new_unchecked(envelope, tx.caller)))
            })
            .collect::<Result<_, BaselineError>>()?;
        Ok(Self {
            env: EvmEnv {
                cfg_env: block.cfg.clone(),
                block_env: block.env.clone(),
            },
            items,
        })
    }

    /// Runs the block with `executor` on a fresh `State` over `storage`, then merges the
    /// transitions and takes the bundle.
    pub fn run<S>(&self, storage: &S, executor: &AlloyExecutor) -> Result<AlloyRun, BaselineError>
    where
        S: DatabaseRef + Sync + std::fmt::Debug,
        S::Error: Send + Sync + 'static,
    {
        let mut state = State::builder()
            .with_database(WrapDatabaseRef(storage))
            .with_bundle_update()
            .build();
        let spec = EthSpec::mainnet();
        let ctx = EthBlockExecutionCtx {
            parent_hash: B256::ZERO,
            // Cancun and later need one; an empty beacon-roots contract makes the call a no-op.
            parent_beacon_block_root: Some(B256::ZERO),
            ommers: &[],
            withdrawals: Some(Cow::Owned(Vec::new())),
            extra_data: Bytes::new(),
            tx_count_hint: Some(self.items.len()),
            slot_number: None,
        };
        let evm = EthEvmFactory::default().create_evm(&mut state, self.env.clone());
        let items = self
            .items
            .iter()
            .map(|(tx, recovered)| (tx.clone(), recovered));
        let result = match executor {
            AlloyExecutor::Reth => {
                EthBlockExecutor::new(evm, ctx, &spec, AlloyReceiptBuilder::default())
                    .execute_block(items)
            }
            AlloyExecutor::Parallel(options) => ParallelEthBlockExecutorFactory::new(
                spec.clone(),
                AlloyReceiptBuilder::default(),
                options.clone(),
            )
            .create_executor(evm, ctx)
            .execute_block(items),
        }
        .map_err(|error| BaselineError {
            index: self.items.len(),
            message: error.to_string(),
        })?;
        state.merge_transitions(BundleRetention::Reverts);
        Ok(AlloyRun {
            result,
            bundle: state.take_bundle(),
        })
    }
}
