//! What users run today, to bench the engine against on the same block and storage:
//!
//! - [`revm_bare`]: bare revm, a `CacheDB` over the storage and `transact_commit` per
//!   transaction, no output kept: the floor of one core;
//! - [`revm_state_bundle`]: what reth's executor does with revm, a `State` with bundle
//!   updates, each transaction committed into it, the transitions merged and the bundle
//!   taken, the results kept for the receipts;
//! - with the `alloy-evm` feature, [`alloy_evm`]: alloy-evm's `EthBlockExecutor` (the executor
//!   reth runs) and the engine's `ParallelEthBlockExecutor` on the same `State` set-up.
//!
//! Each returns the block's gas, so that a bench can check that it ran the same block.

use blockstm_evm::Block;
use blockstm_evm::revm::context::Context;
use blockstm_evm::revm::context::result::ExecutionResult;
use blockstm_evm::revm::database::states::bundle_state::BundleRetention;
use blockstm_evm::revm::database::{BundleState, CacheDB, State, WrapDatabaseRef};
use blockstm_evm::revm::handler::{ExecuteCommitEvm, MainBuilder, MainContext};
use blockstm_evm::revm::{Database, DatabaseCommit, DatabaseRef};

/// A baseline that could not run the block: which transaction, and revm's error.
#[derive(Debug, thiserror::Error)]
#[error("transaction {index}: {message}")]
pub struct BaselineError {
    /// The failing transaction's index in the block.
    pub index: usize,
    /// revm's error, as text (its type depends on the storage).
    pub message: String,
}

/// What [`revm_state_bundle`] returns: the block's gas, every transaction's result and the
/// bundle (as a reth node takes it to write the block's state).
pub struct BundleRun {
    /// Gas used by the whole block.
    pub gas: u64,
    /// revm's result of each transaction, in block order.
    pub results: Vec<ExecutionResult>,
    /// The block's state changes with their reverts.
    pub bundle: BundleState,
}

/// Runs `block` on bare revm over a `CacheDB` of `storage`; returns the block's gas.
pub fn revm_bare<S: DatabaseRef>(storage: &S, block: &Block) -> Result<u64, BaselineError> {
    let mut db = CacheDB::new(storage);
    commit_each(&mut db, block, |_| {})
}

/// Runs `block` as reth's executor does on revm: a `State` with bundle updates over `storage`,
/// one commit per transaction, then `merge_transitions` and `take_bundle`.
pub fn revm_state_bundle<S: DatabaseRef>(
    storage: &S,
    block: &Block,
) -> Result<BundleRun, BaselineError> {
    let mut state = State::builder()
        .with_database(WrapDatabaseRef(storage))
        .with_bundle_update()
        .build();
    let mut results = Vec::with_capacity(block.txs.len());
    let gas = commit_each(&mut state, block, |result| results.push(result))?;
    state.merge_transitions(BundleRetention::Reverts);
    Ok(BundleRun {
        gas,
        results,
        bundle: state.take_bundle(),
    })
}

/// Executes and commits each transaction of `block` on `db`, handing each result to `keep`;
/// returns the block's gas.
fn commit_each<DB>(
    db: &mut DB,
    block: &Block,
    mut keep: impl FnMut(ExecutionResult),
) -> Result<u64, BaselineError>
where
    DB: Database + DatabaseCommit,
{
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(block.env.clone())
        .with_cfg(block.cfg.clone())
        .build_mainnet();
    let mut gas = 0;
    for (index, tx) in block.txs.iter().enumerate() {
        let result = evm
            .transact_commit(tx.clone())
            .map_err(|error| BaselineError {
                index,
                message: error.to_string(),
            })?;
        gas += result.tx_gas_used();
        keep(result);
    }
    Ok(gas)
}

#[cfg(feature = "alloy-evm")]
pub mod alloy_evm;
