//! The parallel engine: [`run`] executes a block with Block-STM on a group of worker threads
//! and produces the same [`RunOutput`] as the sequential reference
//! ([`run_sequential`](crate::sequential::run_sequential)).
//!
//! A block goes through named phases: the sequential path for small blocks, planning
//! (`plan`; a mostly dependent block is contained on the sequential path), set-up (location
//! index and multi-version memory), execution (workers loop on the scheduler: execute an
//! incarnation on revm over `VmDb`, publish its writes to `MvMemory`, validate others' reads;
//! see [`worker`]; between tasks the workers commit transactions in block order, which fixes
//! each one's result ([`commit`]) and folds its writes into the block's state ([`fold`],
//! with the sequential path's rules)), settling the folded state into the output (dropping
//! what ended where it began), and teardown (deferred off the caller's path for large
//! blocks).

mod commit;
mod fold;
mod retained;
mod slots;
mod teardown;
mod worker;

use std::time::{Duration, Instant};

use revm::database_interface::DatabaseRef;
use revm::primitives::hardfork::SpecId;

use crate::block::Block;
use crate::error::BlockError;
use crate::location::{LocationIndex, RecycledIndex};
use crate::mv_memory::{MvMemory, RecycledMemory};
use crate::options::Options;
use crate::plan::{BlockPlan, RecycledPlan};
use crate::pool::{BlockThreads, WorkerPool};
use crate::rules::{OnCommit, Rules, RunOutput};
use crate::scheduler::{RecycledScheduler, Scheduler};
use crate::sequential::run_sequential;
use crate::stats::{ExecutionStats, WorkerCounts};
use crate::sync::{Mutex, lock};
use crate::vm::BlockContext;
pub(crate) use retained::{RecycleSlot, Retained, WorkerState};
use slots::RecycledSlots;
pub(crate) use teardown::PendingTeardowns;
use worker::Run;

/// Blocks at least this large free their internal structures on a background thread.
const BACKGROUND_DROP_TXS: usize = 1_000;

/// Blocks at least this large are planned in two parts (see `plan`): a prefix on the
/// caller, the rest on the first worker while the others execute the prefix. Smaller blocks
/// (mainnet's among them) take well under a millisecond to plan whole.
const STREAMED_PLAN_FROM_TXS: usize = 4_096;
/// The smallest prefix of a block planned in two parts: enough transactions to judge whether
/// the block is mostly one chain.
const MIN_PLANNED_PREFIX: usize = 1_024;

/// How many of a block's `txs` transactions the caller plans before the workers start: all
/// of a small block's; a sixteenth of a large one's, at least [`MIN_PLANNED_PREFIX`]. In
/// stress mode blocks of 64 transactions and more are planned in two parts, from a prefix of
/// 16, so that the stress tests reach workers waiting for the planner.
fn planned_prefix(txs: usize) -> usize {
    let (from, min_prefix) = if crate::stress::enabled() {
        (64, 16)
    } else {
        (STREAMED_PLAN_FROM_TXS, MIN_PLANNED_PREFIX)
    };
    if txs < from {
        txs
    } else {
        (txs / 16).max(min_prefix)
    }
}

/// Runs `block` under `rules`: on the sequential path when it is small or mostly one chain,
/// else with Block-STM on `pool`'s workers (on threads spawned for the block when there is
/// no pool or it is too small), reusing what `retained` kept from earlier blocks.
pub(crate) fn run<S>(
    pool: Option<&WorkerPool>,
    retained: &Retained,
    storage: &S,
    block: &Block,
    options: &Options,
    rules: Rules<'_>,
    on_commit: Option<OnCommit<'_>>,
) -> Result<(RunOutput, ExecutionStats), BlockError>
where
    S: DatabaseRef + Sync,
{
    let started = Instant::now();
    let txs = block.txs.len();
    let threads = options.threads().min(txs);
    if !options.runs_in_parallel(block) {
        return run_sequentially(storage, block, rules, on_commit, ExecutionStats::default());
    }
    let threads = BlockThreads::new(pool, threads);
    // The workers wake while the caller plans and sets up the block.
    if let Some(pool) = threads.pool() {
        pool.expect_job(threads.threads());
    }
    let (mut plan, remaining_plan) = BlockPlan::start(
        &block.txs,
        block.env.beneficiary,
        planned_prefix(txs),
        retained.recycled_plan.take(),
    );
    let planning = started.elapsed();
    if options.sequential_below != Some(0) && plan.is_mostly_dependent() {
        if let Some(pool) = threads.pool() {
            pool.no_job_expected();
        }
        // Mostly one chain: Block-STM would re-execute it transaction after transaction on
        // every core.
        let stats = ExecutionStats {
            contained: true,
            critical_path: plan.critical_path(),
            planning,
            ..ExecutionStats::default()
        };
        retained.recycled_plan.put(Some(plan.into_recycled()));
        return run_sequentially(storage, block, rules, on_commit, stats);
    }
    let delete_touched_empty = block.spec().is_enabled_in(SpecId::SPURIOUS_DRAGON);
    let (index, memory) = set_up(
        txs,
        &mut plan,
        retained.expected_unpredicted(txs),
        (retained.recycled_index.take(), retained.recycled.take()),
        delete_touched_empty,
    );
    let mut states = retained.take_worker_states(threads.threads());
    let context = BlockContext {
        storage,
        memory: &memory,
        index: &index,
        beneficiary: block.env.beneficiary,
        delete_touched_empty,
    };
    let recycled = (
        retained.recycled_scheduler.take(),
        retained.recycled_slots.take(),
    );
    let run = Run::new(
        block,
        context,
        (&plan, remaining_plan),
        rules,
        on_commit,
        recycled,
    );
    let mut stats = ExecutionStats {
        workers: threads.threads(),
        planning,
        setup: started.elapsed() - planning,
        ..ExecutionStats::default()
    };
    stats.execution = timed(|| execute(&run, &threads, &mut states))?;
    stats.critical_path = plan.critical_path();
    let last_worker_start = WorkerCounts::record_into(&lock(&run.counts), &mut stats);
    retained.record_unpredicted(txs, index.unpredicted());
    let phase = Instant::now();
    // Moved out whole, so that the rest of the run (whose slots point into the workers'
    // arenas, handed back below) is dropped here.
    let Run {
        scheduler,
        commits,
        slots,
        ..
    } = { run };
    let mut log = commits
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if log.failure.is_none() && scheduler.all_committed() {
        // SAFETY: every transaction committed, and each commit took its slot whole.
        retained
            .recycled_slots
            .put(Some(unsafe { RecycledSlots::keep(slots) }));
    } else {
        // Before the arenas its slots point into go back to the workers.
        drop(slots);
    }
    // Short of the end only through an engine bug, reported like a worker's panic rather
    // than as a short output.
    let failure = log.failure.take().or_else(|| {
        (!scheduler.all_committed()).then(|| BlockError::WorkerPanicked {
            message: format!(
                "the workers returned with {} of {txs} transactions committed",
                scheduler.committed()
            ),
        })
    });
    // A failed block's structures are emptied and kept for the next block like a finished
    // one's: only a worker's panic (above) drops them.
    let unkept = retained.return_worker_states(states);
    let leftovers = Leftovers {
        memory: Some(memory),
        scheduler: Some(scheduler),
        recycle: retained.recycled.clone(),
        recycle_scheduler: retained.recycled_scheduler.clone(),
        recycle_index: retained.recycled_index.clone(),
        recycle_plan: retained.recycled_plan.clone(),
        index: Some(index),
        plan: Some(plan),
        unkept,
    };
    let teardown = |stats: &mut ExecutionStats| {
        tear_down(
            options,
            threads.pool(),
            &retained.teardowns,
            txs,
            leftovers,
            stats,
        );
    };
    if let Some(failure) = failure {
        teardown(&mut stats);
        return Err(failure);
    }
    stats.first_commit = log.first.map_or(Duration::ZERO, |first| first - started);
    stats.commit_lag = log.mean_lag();
    let last_commit = log.last;
    let (results, excluded) = (log.tally.results, log.tally.excluded);
    stats.results = phase.elapsed();
    let phase = Instant::now();
    let (state, vanished) = log.state.into_changes();
    stats.assembly = phase.elapsed();
    teardown(&mut stats);
    let output = RunOutput {
        results,
        excluded,
        state,
        vanished,
    };
    let returning = Instant::now();
    stats.serial = last_worker_start.map_or(Duration::ZERO, |start| start - started)
        + last_commit.map_or(Duration::ZERO, |last| returning - last);
    Ok((output, stats))
}

/// The sequential path, with `stats` of what was decided before it (planning, containment).
fn run_sequentially<S: DatabaseRef>(
    storage: &S,
    block: &Block,
    rules: Rules<'_>,
    on_commit: Option<OnCommit<'_>>,
    stats: ExecutionStats,
) -> Result<(RunOutput, ExecutionStats), BlockError> {
    let started = Instant::now();
    let output = run_sequential(storage, block, rules, on_commit)?;
    let stats = ExecutionStats {
        sequential: true,
        workers: 1,
        incarnations: block.txs.len() as u64,
        execution: started.elapsed(),
        ..stats
    };
    Ok((output, stats))
}

/// Set-up: the block's location index (the plan's accounts, and a table sized for the
/// locations met during execution: `expected_unpredicted` from the last block, else four per
/// transaction) and its multi-version memory, each on what an earlier block left
/// (`recycled`) when there is some.
fn set_up(
    txs: usize,
    plan: &mut BlockPlan,
    expected_unpredicted: Option<usize>,
    (recycled_index, recycled): (Option<RecycledIndex>, Option<RecycledMemory>),
    delete_touched_empty: bool,
) -> (LocationIndex, MvMemory) {
    let index = LocationIndex::recycling(
        plan.take_predicted(),
        expected_unpredicted.unwrap_or(txs * 4),
        recycled_index,
    );
    // Cells set up front, on this thread (the rest come in buckets that workers allocate as
    // they meet them): no more than the block is expected to use (raw transfers use two
    // per transaction), at most four per transaction, so that set-up stays short.
    let expected_locations = expected_unpredicted
        .map_or(txs * 4, |unpredicted| index.len() + unpredicted)
        .min(txs * 4);
    let memory = MvMemory::recycling(recycled, txs, expected_locations, delete_touched_empty)
        .with_fee_lane(LocationIndex::BENEFICIARY);
    (index, memory)
}

/// Execution: every participant works on the block until it is done; a worker's panic fails
/// the block.
fn execute<'a, S: DatabaseRef + Sync>(
    run: &Run<'a, S>,
    threads: &BlockThreads<'_>,
    states: &'a mut [WorkerState],
) -> Result<(), BlockError> {
    // Each worker takes its own state out of this list once.
    let handed: Vec<Mutex<Option<&'a mut WorkerState>>> = states
        .iter_mut()
        .map(|state| Mutex::new(Some(state)))
        .collect();
    let outcome = threads.run(threads.threads(), &|worker| {
        let state = lock(&handed[worker])
            .take()
            .expect("each participant takes its state once");
        run.work(&state.arena, &mut state.buffers);
    });
    if let Err(message) = outcome {
        // `work` catches the engine's panics; this one escaped it.
        lock(&run.panic).get_or_insert(message);
    }
    match lock(&run.panic).take() {
        Some(message) => Err(BlockError::WorkerPanicked { message }),
        None => Ok(()),
    }
}

/// What a block leaves once its output is built: its multi-version memory and scheduler,
/// emptied for the next block when dropped, and the rest, freed.
struct Leftovers {
    memory: Option<MvMemory>,
    scheduler: Option<Scheduler>,
    recycle: RecycleSlot<RecycledMemory>,
    recycle_scheduler: RecycleSlot<RecycledScheduler>,
    recycle_index: RecycleSlot<RecycledIndex>,
    recycle_plan: RecycleSlot<RecycledPlan>,
    /// Always `Some` until dropped.
    index: Option<LocationIndex>,
    /// Always `Some` until dropped.
    plan: Option<BlockPlan>,
    /// Worker states beyond the executor's kept workers (a block on spawned threads).
    #[expect(dead_code, reason = "held only to be freed with the rest")]
    unkept: Vec<WorkerState>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let locations = self.index.as_ref().map_or(0, LocationIndex::len);
        if let Some(memory) = self.memory.take() {
            self.recycle.recycle(memory, locations);
        }
        if let Some(index) = self.index.take() {
            self.recycle_index.recycle(index);
        }
        if let Some(plan) = self.plan.take() {
            self.recycle_plan.put(Some(plan.into_recycled()));
        }
        if let Some(scheduler) = self.scheduler.take() {
            self.recycle_scheduler.put(Some(scheduler.into_recycled()));
        }
    }
}

/// Teardown: emptying a large block's multi-version memory (dropping every version and base
/// value) takes milliseconds; unless told otherwise, it happens off the caller's path (on an
/// idle pool worker, or a thread of its own).
fn tear_down(
    options: &Options,
    pool: Option<&WorkerPool>,
    teardowns: &PendingTeardowns,
    txs: usize,
    structures: Leftovers,
    stats: &mut ExecutionStats,
) {
    if options.deferred_teardown && txs >= BACKGROUND_DROP_TXS {
        stats.teardown_deferred = true;
        // Fields drop in order: the token, last, marks the teardown finished.
        let structures = (structures, teardowns.start());
        match pool {
            Some(pool) => pool.defer_drop(Box::new(structures)),
            None => {
                std::thread::spawn(move || drop(structures));
            }
        }
    } else {
        let started = Instant::now();
        drop(structures);
        stats.teardown = started.elapsed();
    }
}

/// Runs `phase` and returns how long it took, or its error.
fn timed<E>(phase: impl FnOnce() -> Result<(), E>) -> Result<Duration, E> {
    let started = Instant::now();
    phase()?;
    Ok(started.elapsed())
}
