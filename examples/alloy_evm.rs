//! reth-style block execution through alloy-evm with the parallel engine:
//! `cargo run --release --features alloy-evm --example alloy_evm`.
//!
//! Builds alloy-evm's EVM over revm's `State` (as reth's `BasicBlockExecutor` does), executes
//! a generated block of ERC-20 transfers with `ParallelEthBlockExecutor::execute_block`, and
//! takes the bundle reth would persist.

use alloy_consensus::transaction::Recovered;
use alloy_consensus::{Signed, TxEnvelope, TxLegacy};
use alloy_evm::block::BlockExecutor;
use alloy_evm::eth::EthBlockExecutionCtx;
use alloy_evm::eth::receipt_builder::AlloyReceiptBuilder;
use alloy_evm::eth::spec::EthSpec;
use alloy_evm::{EthEvmFactory, EvmEnv, EvmFactory};
use alloy_primitives::{B256, Signature};
use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::Options;
use blockstm_evm::alloy_evm::ParallelEthBlockExecutorFactory;
use blockstm_evm::revm::database::states::bundle_state::BundleRetention;
use blockstm_evm::revm::database::{State, WrapDatabaseRef};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let workload = WorkloadSpec::new(WorkloadKind::Erc20, 2_000).generate()?;
    // Signed transactions as a node has them (here: legacy envelopes with a placeholder
    // signature; the executor takes the sender from `Recovered`).
    let txs: Vec<Recovered<TxEnvelope>> = workload
        .block
        .txs
        .iter()
        .map(|tx| {
            let legacy = TxLegacy {
                chain_id: tx.chain_id,
                nonce: tx.nonce,
                gas_price: tx.gas_price,
                gas_limit: tx.gas_limit,
                to: tx.kind,
                value: tx.value,
                input: tx.data.clone(),
            };
            let signed = Signed::new_unchecked(legacy, Signature::test_signature(), B256::ZERO);
            Recovered::new_unchecked(TxEnvelope::Legacy(signed), tx.caller)
        })
        .collect();

    // The database must be `Database + DatabaseRef + Sync`: revm's `WrapDatabaseRef<&S>`
    // over any `DatabaseRef + Sync` storage, or reth's state provider database.
    let mut state = State::builder()
        .with_database(WrapDatabaseRef(&workload.storage))
        .with_bundle_update()
        .build();
    let factory = ParallelEthBlockExecutorFactory::new(
        EthSpec::mainnet(),
        AlloyReceiptBuilder::default(),
        Options::default(),
    );
    let env = EvmEnv {
        cfg_env: workload.block.cfg.clone(),
        block_env: workload.block.env.clone(),
    };
    let evm = EthEvmFactory::default().create_evm(&mut state, env);
    let ctx = EthBlockExecutionCtx {
        parent_hash: B256::ZERO,
        // Required from Cancun on (the generated block's timestamp is past it).
        parent_beacon_block_root: Some(B256::ZERO),
        ommers: &[],
        withdrawals: None,
        extra_data: Default::default(),
        tx_count_hint: Some(txs.len()),
        slot_number: None,
    };
    let result = factory.create_executor(evm, ctx).execute_block(&txs)?;
    state.merge_transitions(BundleRetention::Reverts);
    let bundle = state.take_bundle();
    println!(
        "{} receipts, {} gas, {} accounts changed",
        result.receipts.len(),
        result.gas_used,
        bundle.state.len()
    );
    Ok(())
}
