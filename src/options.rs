//! [`Options`]: how to execute one block (workers, which path, teardown).

use std::num::NonZeroUsize;

use revm::primitives::hardfork::SpecId;

use crate::block::Block;

/// Declared work (the sum of the transactions' gas limits) from which a block smaller than
/// the default threshold still goes to the engine, from Berlin on: the replayed mainnet
/// blocks of 37-206 transactions that declare 7M gas or more all ran faster on it at two
/// workers (1.05-1.51 times, BENCHMARKS.md), the 4M-gas one did not gain.
const WORK_GAS_LIMIT: u64 = 6_000_000;
/// The mean gas limit per transaction that declared work must also reach: a block of plain
/// transfers (21,000 each) or of little more is bookkeeping-bound, however large.
const MIN_MEAN_GAS_LIMIT: u64 = 40_000;
/// The fewest transactions that go to the engine on declared work alone.
const MIN_TXS_FOR_WORK: usize = 16;

/// How to execute a block.
#[derive(Clone, Debug)]
pub struct Options {
    /// Workers for a block: pool workers, while the caller waits (on threads spawned per
    /// block, the caller is one of them). `None`: all available cores.
    pub concurrency: Option<NonZeroUsize>,
    /// Blocks with fewer transactions than this run on the sequential path, where the
    /// parallel engine's set-up and per-transaction bookkeeping would cost more than
    /// parallelism gains. `None` (the default): chosen from the worker count, see
    /// [`Options::sequential_threshold`]. `Some(0)` runs every block of two or more
    /// transactions in parallel.
    pub sequential_below: Option<usize>,
    /// Free the block's internal structures (multi-version memory, location index) after
    /// the output is returned, on an idle pool worker or a background thread (`true`, the
    /// default), or before returning (`false`: memory is back when `execute` returns).
    pub deferred_teardown: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            concurrency: None,
            sequential_below: None,
            deferred_teardown: true,
        }
    }
}

impl Options {
    /// Options with `threads` workers (at least one).
    pub fn with_concurrency(threads: usize) -> Self {
        Self {
            concurrency: NonZeroUsize::new(threads.max(1)),
            ..Self::default()
        }
    }

    /// The worker count these options give.
    pub fn threads(&self) -> usize {
        self.concurrency
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
    }

    /// The block size below which these options run the sequential path: `sequential_below`
    /// when set, else a default by worker count. The defaults come from measurement
    /// (`blockstm bench --txs N --sequential-below 0`, BENCHMARKS.md): on two workers the
    /// engine's overhead per transaction leaves nothing to gain below about 256 transactions
    /// of the generated workloads (heavier transactions gain in smaller blocks: see
    /// [`runs_in_parallel`](Self::runs_in_parallel)); more workers amortise it over smaller
    /// blocks (the thresholds above two workers follow the same cost model and are to be
    /// re-measured on a many-core machine).
    pub fn sequential_threshold(&self) -> usize {
        self.sequential_below
            .unwrap_or_else(|| match self.threads() {
                0..=2 => 256,
                3..=4 => 64,
                _ => 16,
            })
    }

    /// Whether `block` goes to the parallel engine under these options (else to the
    /// sequential path; a block the engine's plan finds mostly one chain is still run
    /// sequentially): with more than one worker, when it has at least
    /// [`sequential_threshold`](Self::sequential_threshold) transactions, or, under the
    /// default threshold only, when from Berlin on (where gas prices cold state access, so
    /// that gas tracks execution time) it has at least 16 transactions whose gas limits sum
    /// to 6,000,000 or more at a mean of 40,000 or more (declared work, not transfers).
    pub fn runs_in_parallel(&self, block: &Block) -> bool {
        let txs = block.txs.len();
        if self.threads().min(txs) <= 1 {
            return false;
        }
        if txs >= self.sequential_threshold() {
            return true;
        }
        if self.sequential_below.is_some() || txs < MIN_TXS_FOR_WORK {
            return false;
        }
        let declared = block
            .txs
            .iter()
            .fold(0u64, |sum, tx| sum.saturating_add(tx.gas_limit));
        block.spec().is_enabled_in(SpecId::BERLIN)
            && declared >= WORK_GAS_LIMIT
            && declared / txs as u64 >= MIN_MEAN_GAS_LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequential_threshold_follows_the_worker_count_unless_set() {
        let threshold = |threads| Options::with_concurrency(threads).sequential_threshold();
        assert_eq!(threshold(2), 256);
        assert_eq!(threshold(4), 64);
        assert_eq!(threshold(16), 16);
        let forced = Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(2)
        };
        assert_eq!(forced.sequential_threshold(), 0);
    }

    fn block(spec: SpecId, txs: usize, gas_limit: u64) -> Block {
        let tx = revm::context::TxEnv {
            gas_limit,
            ..Default::default()
        };
        Block::new(Default::default(), spec, vec![tx; txs])
    }

    #[test]
    fn small_blocks_go_to_the_engine_on_declared_work_from_berlin_on_under_the_default_only() {
        let two = Options::with_concurrency(2);
        // By count: 256 transfers go; 255 do not (a transfer block declares little per
        // transaction, however many).
        assert!(two.runs_in_parallel(&block(SpecId::PRAGUE, 256, 21_000)));
        assert!(!two.runs_in_parallel(&block(SpecId::PRAGUE, 255, 21_000)));
        // By work: 40 calls declaring 200,000 gas each (8M in all).
        assert!(two.runs_in_parallel(&block(SpecId::PRAGUE, 40, 200_000)));
        assert!(two.runs_in_parallel(&block(SpecId::BERLIN, 40, 200_000)));
        assert!(
            !two.runs_in_parallel(&block(SpecId::ISTANBUL, 40, 200_000)),
            "before Berlin gas does not track time"
        );
        assert!(
            !two.runs_in_parallel(&block(SpecId::PRAGUE, 20, 200_000)),
            "4M declared"
        );
        assert!(
            !two.runs_in_parallel(&block(SpecId::PRAGUE, 15, 1_000_000)),
            "too few transactions"
        );
        assert!(
            !two.runs_in_parallel(&block(SpecId::PRAGUE, 200, 39_000)),
            "light transactions"
        );
        // An explicit threshold is obeyed; one worker never goes.
        let explicit = Options {
            sequential_below: Some(256),
            ..Options::with_concurrency(2)
        };
        assert!(!explicit.runs_in_parallel(&block(SpecId::PRAGUE, 40, 200_000)));
        let forced = Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(2)
        };
        assert!(forced.runs_in_parallel(&block(SpecId::PRAGUE, 2, 21_000)));
        assert!(!forced.runs_in_parallel(&block(SpecId::PRAGUE, 1, 21_000)));
        let one = Options::with_concurrency(1);
        assert!(!one.runs_in_parallel(&block(SpecId::PRAGUE, 1_000, 200_000)));
    }
}
