//! [`Options`]: how to execute one block (workers, the sequential threshold, teardown).

use std::num::NonZeroUsize;

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
    /// even for the heaviest generated workload; more workers amortise it over smaller
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
}
