//! Loom model checking of the real scheduler and multi-version memory (see `README.md` here).
//!
//! Built only with `RUSTFLAGS="--cfg loom"` (then `crate::sync` hands out loom's atomics and
//! mutexes) and run by `scripts/loom.sh`. Each test explores every interleaving of its model
//! within a preemption bound (`LOOM_MAX_PREEMPTIONS`, [`DEFAULT_PREEMPTIONS`] when unset) and
//! prints how many executions it explored.

mod location;
mod mv_memory;
mod scheduler;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The preemption bound when `LOOM_MAX_PREEMPTIONS` is not set: what CI runs.
pub(crate) const DEFAULT_PREEMPTIONS: usize = 2;

/// Loom branch points allowed in one execution; a model that runs past it (a livelock: workers
/// spinning on a block that never finishes) fails.
const MAX_BRANCHES: usize = 50_000;

/// Stack of a model thread, in machine words (loom's default, 4 Ki words, is too small for
/// revm's 256-bit values and the skip list).
pub(crate) const STACK_WORDS: usize = 1 << 16;

/// Runs `model` in every interleaving loom explores within the preemption bound (at least
/// `min_preemptions`), and returns the number of executions it explored (also printed, for
/// the README's table).
///
/// Panics, with the failing assertion's message, in the first execution that breaks one.
pub(crate) fn explore(
    name: &str,
    min_preemptions: usize,
    model: impl Fn() + Sync + Send + 'static,
) -> usize {
    // Counted outside the model: plain std atomics are invisible to loom.
    let executions = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&executions);
    let mut builder = loom::model::Builder::new();
    let bound = builder
        .preemption_bound
        .unwrap_or(DEFAULT_PREEMPTIONS)
        .max(min_preemptions);
    builder.preemption_bound = Some(bound);
    builder.max_branches = builder.max_branches.max(MAX_BRANCHES);
    let start = Instant::now();
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        model();
    });
    let explored = executions.load(Ordering::Relaxed);
    println!(
        "loom {name}: {explored} executions (preemption bound {bound}), {:.1?}",
        start.elapsed()
    );
    explored
}
