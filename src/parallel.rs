//! The parallel executor: [`execute`] runs a block with Block-STM on a group of worker
//! threads and assembles the same [`BlockOutput`] as
//! [`execute_sequential`](crate::execute_sequential).
//!
//! Workers loop on the [`Scheduler`]: execute an incarnation (revm over [`VmDb`]), publish its
//! writes to [`MvMemory`], validate others' reads, until the scheduler says done. The output
//! is then folded in block order through the same [`StateCache`] commit rules the sequential
//! path uses, so the two agree by construction once every read is validated.

use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use bumpalo::Bump;
use crossbeam_utils::{Backoff, CachePadded};
use revm::context::result::{EVMError, InvalidTransaction};
use revm::database_interface::DatabaseRef;
use revm::primitives::hardfork::SpecId;

use crate::assembly;
use crate::block::Block;
use crate::error::BlockError;
use crate::evm::block_evm;
use crate::executor::{Executor, WorkerState};
use crate::location::LocationIndex;
use crate::mv_memory::{MvMemory, Read};
use crate::types::Version;
use crate::output::{BlockOutput, TxResult};
use crate::plan::BlockPlan;
use crate::pool::WorkerContext;
use crate::pool::workers::panic_text;
use crate::rules::{Exclusion, Rules, RunOutput};
use crate::scheduler::{Scheduler, Task};
use crate::sequential::run_sequential;
use crate::stats::{ExecutionStats, WorkerCounts};
use crate::sync::{AtomicBool, Mutex, Ordering, lock};
use crate::vm::{
    BlockContext, ExecutedTx, IncarnationOutcome, VmBuffers, VmDb, execute_incarnation,
};

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

/// Executes `block` on `storage` in parallel and returns exactly what
/// [`execute_sequential`](crate::execute_sequential) returns: the same results, state
/// changes, or error (the lowest failing transaction).
///
/// ```
/// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
/// use blockstm_evm::{execute, execute_sequential, Options};
///
/// let workload = WorkloadSpec::new(WorkloadKind::Amm, 200).generate().unwrap();
/// let parallel = execute(&workload.storage, &workload.block, &Options::with_concurrency(4)).unwrap();
/// assert_eq!(parallel, execute_sequential(&workload.storage, &workload.block).unwrap());
/// ```
///
/// Runs on the process-wide default [`Executor`] (its pool is built on first use, see
/// [`Executor::global`]); build an [`Executor`] to choose the pool's size and placement.
pub fn execute<S>(storage: &S, block: &Block, options: &Options) -> Result<BlockOutput, BlockError>
where
    S: DatabaseRef + Sync,
{
    execute_on(Executor::global(), storage, block, options).map(|(output, _)| output)
}

/// Executes `block` like [`execute`] and also returns what the engine did and where its
/// time went ([`ExecutionStats`]).
///
/// ```
/// use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
/// use blockstm_evm::{execute_with_stats, Options};
///
/// let workload = WorkloadSpec::new(WorkloadKind::Raw, 300).generate().unwrap();
/// let (output, stats) = execute_with_stats(&workload.storage, &workload.block, &Options::with_concurrency(2)).unwrap();
/// assert_eq!(output.results.len(), 300);
/// assert!(!stats.sequential);
/// assert!(stats.incarnations >= 300, "every transaction executed at least once");
/// ```
pub fn execute_with_stats<S>(
    storage: &S,
    block: &Block,
    options: &Options,
) -> Result<(BlockOutput, ExecutionStats), BlockError>
where
    S: DatabaseRef + Sync,
{
    execute_on(Executor::global(), storage, block, options)
}

/// Executes `block` like [`execute`], on threads spawned for this block alone (no pool): for
/// callers that must not keep threads between blocks, and to measure what the pool saves.
pub fn execute_with_spawned_threads<S>(
    storage: &S,
    block: &Block,
    options: &Options,
) -> Result<BlockOutput, BlockError>
where
    S: DatabaseRef + Sync,
{
    execute_on(None, storage, block, options).map(|(output, _)| output)
}

/// Executes `block` on `executor`'s pool when it has enough workers for the requested
/// concurrency, else (or without an executor) on threads spawned for the block.
pub(crate) fn execute_on<S>(
    executor: Option<&Executor>,
    storage: &S,
    block: &Block,
    options: &Options,
) -> Result<(BlockOutput, ExecutionStats), BlockError>
where
    S: DatabaseRef + Sync,
{
    run_on(executor, storage, block, options, Rules::Block)
        .map(|(output, stats)| (output.into_block_output(), stats))
}

/// Runs `block` under `rules` as [`execute_on`] runs it: on the sequential path when it is
/// small or mostly one chain, else with Block-STM.
pub(crate) fn run_on<S>(
    executor: Option<&Executor>,
    storage: &S,
    block: &Block,
    options: &Options,
    rules: Rules<'_>,
) -> Result<(RunOutput, ExecutionStats), BlockError>
where
    S: DatabaseRef + Sync,
{
    let started = Instant::now();
    let txs = block.txs.len();
    let threads = options.threads().min(txs);
    if threads <= 1 || txs < options.sequential_threshold() {
        let output = run_sequential(storage, block, rules)?;
        let stats = ExecutionStats {
            sequential: true,
            workers: 1,
            incarnations: txs as u64,
            execution: started.elapsed(),
            ..ExecutionStats::default()
        };
        return Ok((output, stats));
    }
    // A block that the hints show to be mostly one chain would be re-executed transaction
    // after transaction on every core: contain it on the sequential path.
    let mut plan = BlockPlan::new(&block.txs, block.env.beneficiary);
    let planned = started.elapsed();
    if options.sequential_below != Some(0) && plan.is_mostly_dependent() {
        let output = run_sequential(storage, block, rules)?;
        let stats = ExecutionStats {
            sequential: true,
            contained: true,
            critical_path: plan.critical_path(),
            workers: 1,
            incarnations: txs as u64,
            planning: planned,
            execution: started.elapsed() - planned,
            ..ExecutionStats::default()
        };
        return Ok((output, stats));
    }
    let spec = block.spec();
    let delete_touched_empty = spec.is_enabled_in(SpecId::SPURIOUS_DRAGON);
    // Most transactions touch three or four locations; a pool remembers how many beyond the
    // plan's its last block met.
    let hinted_unpredicted = executor.and_then(|executor| executor.expected_unpredicted(txs));
    let index = LocationIndex::new(plan.take_predicted(), hinted_unpredicted.unwrap_or(txs * 4));
    // Cells set up front, on this thread (the rest come in buckets that workers allocate as
    // they meet them): no more than the block is expected to use (raw transfers use two
    // per transaction), at most four per transaction, so that set-up stays short.
    let expected_locations = hinted_unpredicted
        .map_or(txs * 4, |unpredicted| index.len() + unpredicted)
        .min(txs * 4);
    let memory = MvMemory::new(txs, expected_locations, delete_touched_empty)
        .with_fee_lane(LocationIndex::BENEFICIARY);
    let executor = executor.filter(|executor| threads <= executor.pool.workers());
    let workers = Workers { executor, threads };
    // Per worker: an arena for the block's read sets (allocated by that worker only, freed in
    // bulk with the block) and the VM's buffers. A pool keeps worker `i`'s for worker `i`
    // across blocks.
    let mut states: Vec<WorkerState> = match executor {
        Some(executor) => executor.take_worker_states(threads),
        None => (0..threads).map(|_| WorkerState::default()).collect(),
    };
    let run = Run {
        block,
        context: BlockContext {
            storage,
            memory: &memory,
            index: &index,
            beneficiary: block.env.beneficiary,
            delete_touched_empty,
        },
        scheduler: Scheduler::new(txs),
        plan: &plan,
        rules,
        slots: (0..txs)
            .map(|_| CachePadded::new(Mutex::new(TxSlot::default())))
            .collect(),
        abandoned: AtomicBool::new(false),
        panic: Mutex::new(None),
        counts: Mutex::new(WorkerCounts::default()),
    };
    let mut stats = ExecutionStats {
        workers: threads,
        critical_path: plan.critical_path(),
        planning: planned,
        setup: started.elapsed() - planned,
        ..ExecutionStats::default()
    };
    let dispatched = Instant::now();
    {
        // Each worker takes its own state out of this list once.
        let handed: Vec<std::sync::Mutex<Option<&mut WorkerState>>> = states
            .iter_mut()
            .map(|state| std::sync::Mutex::new(Some(state)))
            .collect();
        let outcome = workers.run(threads, &|worker| {
            let state = handed[worker]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .expect("each participant takes its state once");
            run.work(&state.arena, &mut state.buffers);
        });
        if let Err(message) = outcome {
            // `work` catches the engine's panics; this one escaped it.
            lock(&run.panic).get_or_insert(message);
        }
    }
    stats.execution = dispatched.elapsed();
    if let Some(message) = lock(&run.panic).take() {
        return Err(BlockError::WorkerPanicked { message });
    }
    lock(&run.counts).record_into(&mut stats);
    if let Some(executor) = executor {
        executor.record_unpredicted(txs, index.unpredicted());
    }
    let Run { slots, .. } = run;
    let phase = Instant::now();
    let (results, excluded) = results(slots, rules)?;
    stats.results = phase.elapsed();
    let phase = Instant::now();
    let (state, vanished) = assembly::state_changes(storage, &memory, &index, &workers)?;
    stats.assembly = phase.elapsed();
    if let Some(executor) = executor {
        executor.return_worker_states(states);
        states = Vec::new();
    }
    // Freeing a large block's multi-version memory takes milliseconds: unless told
    // otherwise, do it off the caller's path (on an idle pool worker, or a thread of its own).
    if options.deferred_teardown && txs >= BACKGROUND_DROP_TXS {
        stats.teardown_deferred = true;
        match executor {
            Some(executor) => executor.pool.defer_drop(Box::new((memory, index, states))),
            None => {
                std::thread::spawn(move || drop((memory, index, states)));
            }
        }
    } else {
        let phase = Instant::now();
        drop((memory, index, states));
        stats.teardown = phase.elapsed();
    }
    let output = RunOutput {
        results,
        excluded,
        state,
        vanished,
    };
    Ok((output, stats))
}

/// Where a block's parallel phases run: on the executor's pool, or on threads spawned for
/// the block (the caller is one of them).
pub(crate) struct Workers<'e> {
    executor: Option<&'e Executor>,
    threads: usize,
}

impl Workers<'_> {
    /// The most participants a phase can have.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `job(i)` for every participant `i` in `0..participants` (at most
    /// [`threads`](Self::threads)) and waits for all of them: on the pool's first workers,
    /// or on spawned threads and the caller's; a single participant runs on the caller's
    /// thread. A panic that escapes `job` is returned as its message.
    pub(crate) fn run(
        &self,
        participants: usize,
        job: &(dyn Fn(usize) + Sync),
    ) -> Result<(), String> {
        let participants = participants.clamp(1, self.threads);
        if participants == 1 {
            return catch_unwind(AssertUnwindSafe(|| job(0))).map_err(|p| panic_text(p.as_ref()));
        }
        match self.executor {
            Some(executor) => {
                executor.pool.run(
                    participants,
                    &|worker: &mut WorkerContext| job(worker.index),
                )
            }
            None => catch_unwind(AssertUnwindSafe(|| {
                std::thread::scope(|scope| {
                    for worker in 1..participants {
                        scope.spawn(move || job(worker));
                    }
                    job(0);
                })
            }))
            .map_err(|p| panic_text(p.as_ref())),
        }
    }
}

/// Blocks at least this large free their internal structures on a background thread.
const BACKGROUND_DROP_TXS: usize = 1_000;

/// The last incarnation of one transaction: what it read (in its worker's arena) and what
/// it produced.
struct TxSlot<'a, E> {
    reads: &'a [Read<'a>],
    output: Option<Result<ExecutedTx, EVMError<E, InvalidTransaction>>>,
}

impl<E> Default for TxSlot<'_, E> {
    fn default() -> Self {
        Self {
            reads: &[],
            output: None,
        }
    }
}

/// One block's run: what the workers share.
struct Run<'a, S: DatabaseRef> {
    block: &'a Block,
    context: BlockContext<'a, S>,
    scheduler: Scheduler,
    /// Which earlier transaction each transaction probably waits for.
    plan: &'a BlockPlan,
    /// What an excluded transaction writes (nothing) and which reverted ones are excluded.
    rules: Rules<'a>,
    slots: Vec<CachePadded<Mutex<TxSlot<'a, S::Error>>>>,
    /// Set when a worker panicked: everyone stops, the block fails.
    abandoned: AtomicBool,
    panic: Mutex<Option<String>>,
    /// The workers' counts, each added once when the worker finishes.
    counts: Mutex<WorkerCounts>,
}

impl<'a, S: DatabaseRef + Sync> Run<'a, S> {
    fn work(&self, arena: &'a Bump, buffers: &mut VmBuffers) {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut counts = WorkerCounts::default();
            self.work_loop(arena, buffers, &mut counts);
            lock(&self.counts).add(&counts);
        }));
        if let Err(payload) = outcome {
            lock(&self.panic).get_or_insert_with(|| panic_text(payload.as_ref()));
            // Relaxed would do for the flag alone; SeqCst keeps it simple to reason about.
            self.abandoned.store(true, Ordering::SeqCst);
        }
    }

    fn work_loop(&self, arena: &'a Bump, buffers: &mut VmBuffers, counts: &mut WorkerCounts) {
        let vm_db = VmDb::new(&self.context, arena, std::mem::take(buffers));
        let mut evm = block_evm(vm_db, self.block);
        let mut task = None;
        // Spin briefly, then yield: with more workers than cores, idle spinners would take
        // the cores from the workers that hold the tasks everyone waits for.
        let backoff = Backoff::new();
        while !self.abandoned.load(Ordering::SeqCst) {
            // One epoch pin per task: MvMemory's own pins inside the task nest in it, and a
            // nested pin skips the `SeqCst` fence that an outermost one costs (a dozen per
            // transaction otherwise). Pinned only for the task, so reclamation goes on.
            task = match task.take() {
                Some(Task::Execute(version)) => {
                    let _pinned = crossbeam_epoch::pin();
                    self.execute(&mut evm, version, counts)
                }
                Some(Task::Validate(version)) => {
                    let _pinned = crossbeam_epoch::pin();
                    self.validate(version, counts)
                }
                None if self.scheduler.done() => break,
                None => {
                    crate::stress::point();
                    let next = self.scheduler.next_task();
                    if next.is_some() {
                        backoff.reset();
                    } else {
                        backoff.snooze();
                    }
                    next
                }
            };
        }
        *buffers = evm.ctx.journaled_state.database.take_buffers();
    }

    fn execute(
        &self,
        evm: &mut crate::evm::BlockEvm<VmDb<'_, 'a, S>>,
        version: Version,
        counts: &mut WorkerCounts,
    ) -> Option<Task> {
        // A first incarnation whose hinted predecessor has not finished yet would most
        // likely read stale values and be aborted: it waits for that predecessor instead.
        if version.incarnation == 0
            && let Some(predecessor) = self.plan.predecessor(version.tx)
            && self.scheduler.add_dependency(version.tx, predecessor)
        {
            counts.suspensions += 1;
            counts.planned_waits += 1;
            return None;
        }
        let tx_env = &self.block.txs[version.tx as usize];
        match execute_incarnation(evm, version.tx, tx_env) {
            IncarnationOutcome::Blocked(blocking) => {
                counts.suspensions += 1;
                // The blocker may finish meanwhile: `add_dependency` must then refuse.
                crate::stress::point();
                if self.scheduler.add_dependency(version.tx, blocking) {
                    None
                } else {
                    Some(Task::Execute(version))
                }
            }
            IncarnationOutcome::Finished {
                reads,
                mut writes,
                output,
            } => {
                counts.incarnations += 1;
                // A reverted transaction that the builder drops writes nothing, so that later
                // ones read the state without it (an invalid one writes nothing anyway).
                if matches!(&output, Ok(result) if !result.is_success())
                    && self.rules.drops_reverted(version.tx as usize)
                {
                    writes.clear();
                }
                let wrote_new = self
                    .context
                    .memory
                    .record(version.tx, version.incarnation, writes);
                // Writes visible, read set and output not stored yet.
                crate::stress::point();
                {
                    let mut slot = lock(&self.slots[version.tx as usize]);
                    slot.reads = reads;
                    slot.output = Some(output);
                }
                crate::stress::point();
                self.scheduler.finish_execution(version, wrote_new)
            }
        }
    }

    fn validate(&self, version: Version, counts: &mut WorkerCounts) -> Option<Task> {
        counts.validations += 1;
        let valid = {
            let slot = lock(&self.slots[version.tx as usize]);
            self.context.memory.validate(version.tx, slot.reads)
        };
        // Another validator may abort the same incarnation, or it may be re-executed, here.
        crate::stress::point();
        let aborted = !valid && self.scheduler.try_validation_abort(version);
        if aborted {
            counts.aborts += 1;
            crate::stress::point();
            self.context
                .memory
                .mark_estimates(version.tx, version.incarnation);
            crate::stress::point();
        }
        self.scheduler.finish_validation(version, aborted)
    }
}

/// Included transactions' results in block order, and the excluded ones with why.
type Tally = (Vec<TxResult>, Vec<(usize, Exclusion)>);

/// The run's [`Tally`], or the lowest failing transaction's error (under [`Rules::Block`], any
/// invalid one).
fn results<E: std::error::Error + Send + Sync + 'static>(
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
