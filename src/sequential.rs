//! The sequential reference executor: a plain loop over revm that commits each transaction
//! into a `StateCache` over the storage. Every other path is tested against it.

use revm::database_interface::DatabaseRef;
use revm::handler::ExecuteEvm;

use crate::block::Block;
use crate::error::BlockError;
use crate::evm::block_evm;
use crate::output::BlockOutput;
use crate::rules::{OnCommit, Rules, RunOutput, Tally, Verdict};
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
    let mut tally = Tally::with_capacity(block.txs.len());
    for (index, tx) in block.txs.iter().enumerate() {
        let mut state = None;
        let outcome = evm.transact(tx.clone()).map(|executed| {
            state = Some(executed.state);
            executed.result
        });
        match rules.judge(index, outcome) {
            Verdict::Include(result) => {
                let state = state.expect("an executed transaction has a state diff");
                evm.ctx
                    .journaled_state
                    .database
                    .commit_tx(state)
                    .map_err(|error| BlockError::storage(index, error))?;
                let result = tally.include(result);
                if let Some(on_commit) = on_commit {
                    on_commit(index, result);
                }
            }
            // An invalid candidate left revm's state untouched; a dropped reverted one's
            // state diff is simply not committed.
            Verdict::Exclude(why) => tally.exclude(index, why),
            Verdict::Fail(error) => return Err(BlockError::from_evm(index, error)),
        }
    }
    let (state, vanished) = evm.ctx.journaled_state.database.into_changes();
    Ok(RunOutput {
        results: tally.results,
        excluded: tally.excluded,
        state,
        vanished,
    })
}
