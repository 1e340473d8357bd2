//! The results phase: the last incarnation of each transaction, in block order, turned into
//! results with cumulative gas (or the lowest failing transaction's error).

use crossbeam_utils::CachePadded;
use revm::context::result::EVMError;

use super::worker::TxSlot;
use crate::error::BlockError;
use crate::output::TxResult;
use crate::rules::{Exclusion, Rules};
use crate::sync::Mutex;

/// Included transactions' results in block order, and the excluded ones with why.
pub(super) type Tally = (Vec<TxResult>, Vec<(usize, Exclusion)>);

/// The run's [`Tally`], or the lowest failing transaction's error (under [`Rules::Block`], any
/// invalid one).
pub(super) fn results<E: std::error::Error + Send + Sync + 'static>(
    slots: Vec<CachePadded<Mutex<TxSlot<'_, E>>>>,
    rules: Rules<'_>,
) -> Result<Tally, BlockError> {
    let mut results = Vec::with_capacity(slots.len());
    let mut excluded = Vec::new();
    let mut cumulative_gas_used = 0u64;
    for (index, slot) in slots.into_iter().enumerate() {
        let slot = CachePadded::into_inner(slot)
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = match slot.output {
            Some(Ok(result)) if !result.is_success() && rules.drops_reverted(index) => {
                excluded.push((index, Exclusion::Reverted(result)));
                continue;
            }
            Some(Ok(result)) => result,
            Some(Err(EVMError::Transaction(reason))) if rules.excludes_invalid() => {
                excluded.push((index, Exclusion::Invalid(reason)));
                continue;
            }
            Some(Err(error)) => return Err(BlockError::from_evm(index, error)),
            None => unreachable!("the scheduler finished with transaction {index} never executed"),
        };
        cumulative_gas_used += result.tx_gas_used();
        results.push(TxResult {
            result,
            cumulative_gas_used,
        });
    }
    Ok((results, excluded))
}
