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
/// Gas that a block's other transactions must declare per plain transfer (a call without
/// calldata) for the engine to gain at two workers. A transfer costs the engine about 2.6
/// times the sequential path's CPU time (`blockstm bench --workload raw`: 3.7 µs of worker
/// time against 1.4 µs), about 0.45 µs of wall time more at two workers, which heavier
/// transactions must win back; on the replayed mainnet blocks the two of 1,200+
/// transactions, mostly transfers, whose other transactions declare 5,200 and 11,400 gas per
/// transfer ran at 0.76 and 0.92 on the engine, those declaring 18,600 and 43,500 at 1.21
/// and 1.25 (BENCHMARKS.md).
const WORK_GAS_PER_TRANSFER: u64 = 15_000;
/// Workers up to which [`WORK_GAS_PER_TRANSFER`] applies: with three or more, the engine's
/// CPU per transfer is spread thin enough to gain (to be measured on a many-core machine).
const MAX_WORKERS_FOR_TRANSFER_RULE: usize = 2;

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
    /// sequentially). Never with one worker. With `sequential_below` set: when the block has
    /// at least that many transactions. Under the default
    /// ([`sequential_threshold`](Self::sequential_threshold)), from the block's declared
    /// work:
    /// - at up to two workers, a block with plain transfers (calls without calldata) goes to
    ///   the engine only if its other transactions declare at least 15,000 gas per transfer
    ///   (there the engine's bookkeeping costs more than a transfer's own work);
    /// - then a block of at least the threshold's size goes to the engine, and so does a
    ///   smaller one from Berlin on (where gas prices cold state access, so that gas tracks
    ///   execution time) with at least 16 transactions whose gas limits sum to 6,000,000 or
    ///   more at a mean of 40,000 or more (declared work, not transfers).
    pub fn runs_in_parallel(&self, block: &Block) -> bool {
        let txs = block.txs.len();
        let threads = self.threads().min(txs);
        if threads <= 1 {
            return false;
        }
        if let Some(threshold) = self.sequential_below {
            return txs >= threshold;
        }
        if threads <= MAX_WORKERS_FOR_TRANSFER_RULE && transfers_outweigh_work(block) {
            return false;
        }
        if txs >= self.sequential_threshold() {
            return true;
        }
        if txs < MIN_TXS_FOR_WORK {
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

/// Whether `block`'s plain transfers (calls without calldata) outweigh what its other
/// transactions declare, at [`WORK_GAS_PER_TRANSFER`] per transfer.
fn transfers_outweigh_work(block: &Block) -> bool {
    let (transfers, other_gas) = block.txs.iter().fold((0u64, 0u64), |(transfers, gas), tx| {
        if tx.data.is_empty() && tx.kind.is_call() {
            (transfers + 1, gas)
        } else {
            (transfers, gas.saturating_add(tx.gas_limit))
        }
    });
    transfers > 0 && other_gas < transfers.saturating_mul(WORK_GAS_PER_TRANSFER)
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

    /// A call with calldata declaring `gas_limit`.
    fn call(gas_limit: u64) -> revm::context::TxEnv {
        revm::context::TxEnv {
            gas_limit,
            data: vec![1].into(),
            ..Default::default()
        }
    }

    /// A plain transfer (no calldata).
    fn transfer() -> revm::context::TxEnv {
        revm::context::TxEnv {
            gas_limit: 21_000,
            ..Default::default()
        }
    }

    /// `txs` calls declaring `gas_limit` each.
    fn block(spec: SpecId, txs: usize, gas_limit: u64) -> Block {
        Block::new(Default::default(), spec, vec![call(gas_limit); txs])
    }

    #[test]
    fn small_blocks_go_to_the_engine_on_declared_work_from_berlin_on_under_the_default_only() {
        let two = Options::with_concurrency(2);
        // By count: 256 light calls go; 255 do not (they declare little per transaction).
        assert!(two.runs_in_parallel(&block(SpecId::PRAGUE, 256, 30_000)));
        assert!(!two.runs_in_parallel(&block(SpecId::PRAGUE, 255, 30_000)));
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

    #[test]
    fn blocks_of_transfers_go_to_the_engine_at_two_workers_only_with_enough_other_work() {
        let with = |transfers: usize, calls: usize, gas_limit: u64| {
            let mut txs = vec![transfer(); transfers];
            txs.extend(std::iter::repeat_n(call(gas_limit), calls));
            Block::new(Default::default(), SpecId::PRAGUE, txs)
        };
        let two = Options::with_concurrency(2);
        assert!(!two.runs_in_parallel(&with(1_000, 0, 0)), "transfers only");
        // 1,000 transfers want 15M declared by the rest.
        assert!(!two.runs_in_parallel(&with(1_000, 100, 149_000)));
        assert!(two.runs_in_parallel(&with(1_000, 100, 150_000)));
        // Small blocks: the transfers' rule first, then declared work.
        assert!(
            !two.runs_in_parallel(&with(100, 20, 70_000)),
            "1.4M for 1.5M"
        );
        assert!(two.runs_in_parallel(&with(100, 40, 200_000)));
        // Above two workers, and when the threshold is set, transfers go by count.
        let four = Options::with_concurrency(4);
        assert!(four.runs_in_parallel(&with(1_000, 0, 0)));
        let forced = Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(2)
        };
        assert!(forced.runs_in_parallel(&with(1_000, 0, 0)));
    }
}
