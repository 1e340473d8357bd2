//! One block's shared run state ([`Run`]) and a worker's task loop over it: execute an
//! incarnation, validate one, and between tasks advance the commit frontier, until the
//! scheduler says the block is done and every transaction is committed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use bumpalo::Bump;
use crossbeam_utils::Backoff;
use revm::database_interface::DatabaseRef;

use crate::block::Block;
use crate::evm::{BlockEvm, block_evm};
use crate::plan::{BlockPlan, RemainingPlan};
use crate::rules::{OnCommit, Rules};
use crate::scheduler::{CommitLock, RecycledScheduler, Scheduler, Task};
use crate::segmented_vec::SegmentedVec;
use crate::stats::WorkerCounts;
use crate::sync::{AtomicBool, Mutex, Ordering, lock, panic_text};
use crate::types::Version;
use crate::vm::{BlockContext, IncarnationOutcome, VmBuffers, VmDb, execute_incarnation};

use super::commit::CommitLog;
use super::slots::{RecycledSlots, Slots, TxSlot};

/// Commits a worker makes between two tasks while the block still has tasks (see
/// `Run::advance_frontier`). Measured on the hybrid workload, whose hot transactions form a
/// chain (`blockstm bench --workload hybrid --threads 2 --runs 21`, alternating builds):
/// unbounded, `execute` took 47.3-49.9 ms; with 8, 45.2-47.4 ms; with 1, 45.5-46.0 ms.
const COMMITS_PER_TURN: usize = 8;

/// One block's run: what the workers share.
pub(super) struct Run<'a, S: DatabaseRef> {
    pub(super) block: &'a Block,
    pub(super) context: BlockContext<'a, S>,
    pub(super) scheduler: Scheduler,
    /// Each transaction's accounts and hinted predecessor, published before it runs.
    plan: &'a BlockPlan,
    /// The plan of the transactions after the prefix, planned by the first worker to start
    /// while the others execute (see `plan`).
    remaining_plan: Mutex<Option<RemainingPlan<'a>>>,
    /// What an excluded transaction writes (nothing) and which reverted ones are excluded.
    pub(super) rules: Rules<'a>,
    /// Sees each included transaction's result as it commits.
    pub(super) on_commit: Option<OnCommit<'a>>,
    /// Per transaction, its last incarnation: an earlier block's when kept, else allocated
    /// bucket by bucket by the workers that first reach one, rather than all at once on the
    /// caller before they start.
    pub(super) slots: Slots<'a, S::Error>,
    /// The committed prefix; locked by the holder of the scheduler's commit lock only.
    pub(super) commits: Mutex<CommitLog>,
    /// Set when a worker panicked or a committed transaction fails the block: everyone
    /// stops.
    pub(super) abandoned: AtomicBool,
    pub(super) panic: Mutex<Option<String>>,
    /// The workers' counts, each handed in once when the worker finishes.
    pub(super) counts: Mutex<Vec<WorkerCounts>>,
}

impl<'a, S: DatabaseRef + Sync> Run<'a, S> {
    /// The shared state of a run of `block` over `context` with its `plan` (whose remaining
    /// part, if any, the first worker to start plans), nothing executed yet (its scheduler on
    /// an earlier block's `recycled` state and slots when there are some).
    pub(super) fn new(
        block: &'a Block,
        context: BlockContext<'a, S>,
        (plan, remaining_plan): (&'a BlockPlan, Option<RemainingPlan<'a>>),
        rules: Rules<'a>,
        on_commit: Option<OnCommit<'a>>,
        (recycled, recycled_slots): (Option<RecycledScheduler>, Option<RecycledSlots>),
    ) -> Self {
        let txs = block.txs.len();
        // The accounts the plan names (senders, recipients): about those the block writes.
        let expected_accounts = plan.expected_accounts();
        Self {
            block,
            context,
            scheduler: Scheduler::recycling(recycled, txs),
            plan,
            remaining_plan: Mutex::new(remaining_plan),
            rules,
            on_commit,
            slots: recycled_slots
                .and_then(RecycledSlots::reuse)
                .unwrap_or_else(|| SegmentedVec::with_capacity(0)),
            commits: Mutex::new(CommitLog::new(txs, expected_accounts)),
            abandoned: AtomicBool::new(false),
            panic: Mutex::new(None),
            counts: Mutex::new(Vec::new()),
        }
    }

    /// One worker's share of the block: tasks until the scheduler is done or the block is
    /// abandoned; a panic is recorded and abandons the block.
    pub(super) fn work(&self, arena: &'a Bump, buffers: &mut VmBuffers) {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut counts = WorkerCounts::default();
            let remaining_plan = lock(&self.remaining_plan).take();
            if let Some(remaining_plan) = remaining_plan {
                // Planning is this worker's first task.
                counts.first_task = Some(Instant::now());
                remaining_plan.finish(self.plan, self.context.index);
            }
            self.work_loop(arena, buffers, &mut counts);
            lock(&self.counts).push(counts);
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
                None => {
                    // Between tasks: the task just finished may have made the frontier's
                    // transaction committable.
                    self.advance_frontier(counts);
                    if self.scheduler.done() {
                        if self.scheduler.all_committed() {
                            break;
                        }
                        // Another worker holds the commit lock and commits the rest.
                        backoff.snooze();
                        continue;
                    }
                    crate::stress::point();
                    let next = self.scheduler.next_task();
                    if next.is_some() {
                        backoff.reset();
                        counts.first_task.get_or_insert_with(Instant::now);
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
        // A transaction after a large block's prefix may not be planned yet: the planning
        // worker is ahead of the others but started with them.
        let Some(planned) = self
            .plan
            .wait_planned(version.tx, || self.abandoned.load(Ordering::SeqCst))
        else {
            // Abandoned: the loop stops.
            return None;
        };
        // A first incarnation whose hinted predecessor has not finished yet would most
        // likely read stale values and be aborted: it waits for that predecessor instead.
        if version.incarnation == 0
            && let Some(predecessor) = planned.predecessor
            && self.scheduler.add_dependency(version.tx, predecessor)
        {
            counts.suspensions += 1;
            counts.planned_waits += 1;
            return None;
        }
        let tx_env = &self.block.txs[version.tx as usize];
        match execute_incarnation(evm, version.tx, tx_env, planned.accounts) {
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
                    let mut slot = lock(self.slots.get(version.tx as usize));
                    slot.incarnation = version.incarnation;
                    slot.reads = reads;
                    slot.output = Some(output);
                    slot.finished = Some(Instant::now());
                }
                crate::stress::point();
                self.scheduler.finish_execution(version, wrote_new)
            }
        }
    }

    /// Commits transactions at the frontier for as long as they are ready, unless another
    /// worker holds the commit lock. After releasing the lock, looks again: a transaction
    /// made ready meanwhile by a worker whose try failed would otherwise wait for the next
    /// task's end.
    fn advance_frontier(&self, counts: &mut WorkerCounts) {
        // The candidate whose validation failed: the validation stream aborts it; until it
        // is re-executed there is nothing to commit.
        let mut refused = None;
        // While the block has tasks, a worker commits a few transactions per turn: a long
        // run of commits (each validated) would hold back its next task, which may be the
        // next link of a chain of dependent transactions that everyone waits for.
        let mut budget = if self.scheduler.done() {
            usize::MAX
        } else {
            COMMITS_PER_TURN
        };
        while self
            .scheduler
            .frontier()
            .is_some_and(|candidate| Some(candidate) != refused)
        {
            let Some(commit_lock) = self.scheduler.try_commit_lock() else {
                return;
            };
            let _pinned = crossbeam_epoch::pin();
            let mut log = lock(&self.commits);
            if log.failure.is_some() {
                // The block failed at a lower transaction: nothing after it commits.
                return;
            }
            let now = Instant::now();
            let mut committed = false;
            while let Some(candidate) = self.scheduler.frontier() {
                if budget == 0 {
                    break;
                }
                if !self.commit(&commit_lock, candidate, &mut log, now, counts) {
                    refused = Some(candidate);
                    break;
                }
                committed = true;
                budget -= 1;
                counts.commits += 1;
                if log.failure.is_some() {
                    self.abandoned.store(true, Ordering::SeqCst);
                    return;
                }
            }
            if committed {
                // Once per run of commits (the run's start stamps its commits' lag): the
                // end of the last run is where the block's serial tail begins.
                log.last = Some(Instant::now());
            }
            if budget == 0 {
                // Back to the tasks; this worker (or another) goes on after its next one.
                return;
            }
        }
        // A done block whose frontier stops short would never finish: every transaction's
        // last incarnation passed a validation after every lower one's last write, so the
        // committer's own validation cannot fail.
        if self.scheduler.done() && !self.scheduler.all_committed() {
            assert!(
                refused.is_none_or(|version| self.scheduler.frontier() != Some(version)),
                "the block is done but transaction {:?} fails its commit validation",
                refused
            );
        }
    }

    /// Validates `candidate`'s reads (every lower transaction is committed: against their
    /// final writes) and commits it; its output goes into `log`, its writes into `log`'s
    /// state.
    fn commit(
        &self,
        commit_lock: &CommitLock<'_>,
        candidate: Version,
        log: &mut CommitLog,
        now: Instant,
        counts: &mut WorkerCounts,
    ) -> bool {
        let mut slot = lock(self.slots.get(candidate.tx as usize));
        // The slot is written before the status says `Executed` at its incarnation, and no
        // newer incarnation can store into it while this lock is held.
        if slot.incarnation != candidate.incarnation {
            return false;
        }
        let reads = slot.reads;
        let committed = commit_lock.commit(candidate, || {
            counts.validations += 1;
            self.context.memory.validate(candidate.tx, reads)
        });
        if !committed {
            return false;
        }
        // Taken whole: a committed transaction's slot is never used again, and a block whose
        // every slot is back to its default can keep them for the next (`RecycledSlots`).
        let TxSlot {
            output, finished, ..
        } = std::mem::take(&mut *slot);
        drop(slot);
        let output = output.expect("an executed transaction stored its output");
        let finished = finished.unwrap_or(now);
        let index = candidate.tx as usize;
        let included = log.add(index, output, self.rules, finished, now);
        log.fold(candidate.tx, &self.context);
        if log.failure.is_none()
            && included
            && let (Some(on_commit), Some(result)) = (self.on_commit, log.tally.results.last())
        {
            on_commit(index, result);
        }
        true
    }

    /// Validates one incarnation's reads; aborts it (its writes become estimates) if one
    /// changed.
    fn validate(&self, version: Version, counts: &mut WorkerCounts) -> Option<Task> {
        counts.validations += 1;
        let valid = {
            let slot = lock(self.slots.get(version.tx as usize));
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
