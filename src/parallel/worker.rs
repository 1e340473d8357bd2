//! One block's shared run state ([`Run`]) and a worker's task loop over it: execute an
//! incarnation, validate one, until the scheduler says the block is done.

use std::panic::{AssertUnwindSafe, catch_unwind};

use bumpalo::Bump;
use crossbeam_utils::{Backoff, CachePadded};
use revm::context::result::{EVMError, InvalidTransaction};
use revm::database_interface::DatabaseRef;

use crate::block::Block;
use crate::evm::{BlockEvm, block_evm};
use crate::mv_memory::Read;
use crate::plan::BlockPlan;
use crate::rules::Rules;
use crate::scheduler::{RecycledScheduler, Scheduler, Task};
use crate::stats::WorkerCounts;
use crate::sync::{AtomicBool, Mutex, Ordering, lock, panic_text};
use crate::types::Version;
use crate::vm::{
    BlockContext, ExecutedTx, IncarnationOutcome, VmBuffers, VmDb, execute_incarnation,
};

/// The last incarnation of one transaction: what it read (in its worker's arena) and what
/// it produced.
pub(super) struct TxSlot<'a, E> {
    pub(super) reads: &'a [Read<'a>],
    pub(super) output: Option<Result<ExecutedTx, EVMError<E, InvalidTransaction>>>,
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
pub(super) struct Run<'a, S: DatabaseRef> {
    pub(super) block: &'a Block,
    pub(super) context: BlockContext<'a, S>,
    pub(super) scheduler: Scheduler,
    /// Which earlier transaction each transaction probably waits for.
    pub(super) plan: &'a BlockPlan,
    /// What an excluded transaction writes (nothing) and which reverted ones are excluded.
    pub(super) rules: Rules<'a>,
    pub(super) slots: Vec<CachePadded<Mutex<TxSlot<'a, S::Error>>>>,
    /// Set when a worker panicked: everyone stops, the block fails.
    pub(super) abandoned: AtomicBool,
    pub(super) panic: Mutex<Option<String>>,
    /// The workers' counts, each added once when the worker finishes.
    pub(super) counts: Mutex<WorkerCounts>,
}

impl<'a, S: DatabaseRef + Sync> Run<'a, S> {
    /// The shared state of a run of `block` over `context`, nothing executed yet (its
    /// scheduler on an earlier block's `recycled` state when there is one).
    pub(super) fn new(
        block: &'a Block,
        context: BlockContext<'a, S>,
        plan: &'a BlockPlan,
        rules: Rules<'a>,
        recycled: Option<RecycledScheduler>,
    ) -> Self {
        let txs = block.txs.len();
        Self {
            block,
            context,
            scheduler: Scheduler::recycling(recycled, txs),
            plan,
            rules,
            slots: (0..txs)
                .map(|_| CachePadded::new(Mutex::new(TxSlot::default())))
                .collect(),
            abandoned: AtomicBool::new(false),
            panic: Mutex::new(None),
            counts: Mutex::new(WorkerCounts::default()),
        }
    }

    /// One worker's share of the block: tasks until the scheduler is done or the block is
    /// abandoned; a panic is recorded and abandons the block.
    pub(super) fn work(&self, arena: &'a Bump, buffers: &mut VmBuffers) {
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

    /// Takes and runs tasks, each under one epoch pin.
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

    /// Executes one incarnation (or suspends it behind the transaction it waits for) and
    /// publishes its writes, read set and output.
    fn execute(
        &self,
        evm: &mut BlockEvm<VmDb<'_, 'a, S>>,
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

    /// Validates one incarnation's reads; aborts it (its writes become estimates) if one
    /// changed.
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
