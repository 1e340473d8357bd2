//! The sequential reference executor: a plain loop over revm that commits each transaction
//! into a `StateCache` over the storage. Every other path is tested against it.

use revm::context::result::EVMError;
use revm::database_interface::DatabaseRef;
use revm::handler::ExecuteEvm;

use crate::block::Block;
use crate::error::BlockError;
use crate::evm::block_evm;
use crate::output::{BlockOutput, TxResult};
use crate::rules::{Exclusion, OnCommit, Rules, RunOutput};
use crate::state_cache::StateCache;

/// Executes `block` on `storage` one transaction after the other, as revm does.
///
/// Returns the first error met (the lowest failing index); no state is returned for a failed
/// block. Fees are credited to the beneficiary inside each transaction, as revm does it.
///
/// ```
/// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
/// use blockstm_evm::execute_sequential;
///
/// let workload = WorkloadSpec::new(WorkloadKind::Erc20, 10).generate().unwrap();
/// let output = execute_sequential(&workload.storage, &workload.block).unwrap();
/// assert!(output.results.iter().all(|r| r.is_success()));
/// ```
pub fn execute_sequential<S>(storage: &S, block: &Block) -> Result<BlockOutput, BlockError>
where
    S: DatabaseRef,
{
    run_sequential(storage, block, Rules::Block, None).map(RunOutput::into_block_output)
}

/// Runs `block` one transaction after the other under `rules`: the sequential path of both
/// [`execute_sequential`] and the block builder's rounds. `on_commit` sees each included
/// transaction's result as soon as it is committed.
pub(crate) fn run_sequential<S>(
    storage: &S,
    block: &Block,
    rules: Rules<'_>,
    on_commit: Option<OnCommit<'_>>,
) -> Result<RunOutput, BlockError>
where
    S: DatabaseRef,
{
    let mut evm = block_evm(
        StateCache::new(storage, block.spec(), block.txs.len()),
        block,
    );
    let mut results = Vec::with_capacity(block.txs.len());
    let mut excluded = Vec::new();
    let mut cumulative_gas_used = 0u64;
    for (index, tx) in block.txs.iter().enumerate() {
        let executed = match evm.transact(tx.clone()) {
            Ok(executed) => executed,
            // Building: an invalid candidate is left out; revm has not touched the state.
            Err(EVMError::Transaction(reason)) if rules.excludes_invalid() => {
                excluded.push((index, Exclusion::Invalid(reason)));
                continue;
            }
            Err(error) => return Err(BlockError::from_evm(index, error)),
        };
        if !executed.result.is_success() && rules.drops_reverted(index) {
            // Its state diff is simply not committed.
            excluded.push((index, Exclusion::Reverted(executed.result)));
            continue;
        }
        evm.ctx
            .journaled_state
            .database
            .commit_tx(executed.state)
            .map_err(|error| BlockError::storage(index, error))?;
        cumulative_gas_used += executed.result.tx_gas_used();
        let result = TxResult {
            result: executed.result,
            cumulative_gas_used,
        };
        if let Some(on_commit) = on_commit {
            on_commit(index, &result);
        }
        results.push(result);
    }
    let (state, vanished) = evm.ctx.journaled_state.database.into_changes();
    Ok(RunOutput {
        results,
        excluded,
        state,
        vanished,
    })
}
