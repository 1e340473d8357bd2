//! The Block-STM collaborative scheduler (Gelashvili et al., "Block-STM: Scaling Blockchain
//! Execution by Turning Ordering Curse to a Performance Blessing", PPoPP 2023, Algorithms 4-5),
//! with the refinement Aptos ships: an incarnation that wrote no new location asks for the
//! validation of its own transaction only.
//!
//! Two ordered task streams share the workers: executions (`execution_idx`) and validations
//! (`validation_idx`); either index is pulled back when work below it must be redone. Every
//! transaction has one status word `(incarnation, ReadyToExecute | Executing | Executed |
//! Aborting | Committed)`; transactions suspended on an aborted writer wait in that writer's
//! dependency list and are released when it finishes its next incarnation.
//!
//! Beside the streams runs the commit frontier (`commit_idx`, Block-STM's rolling commit):
//! the lowest uncommitted transaction commits once it is `Executed` and the committer's
//! validation of its reads, made after every lower transaction committed (so against their
//! final writes), passes. One worker at a time holds the [`CommitLock`] (a try-lock: the
//! others go on with their tasks). `Committed` is final: no abort or re-execution leaves it.
//!
//! Invariants (model-checked with loom: `loom-tests/scheduler.rs`, run by `scripts/loom.sh`):
//! - an incarnation is handed out for execution at most once;
//! - the block is done exactly when both indices passed the end, no task is in flight, and
//!   no index was pulled back in between (`decrease_cnt` detects the latter);
//! - a transaction added to a dependency list is released exactly once;
//! - transactions commit in block order, each once, at an incarnation that is never
//!   re-executed, and the frontier reaches the end of a done block.
//!
//! Under `cfg(loom)` a scheduler can be built with a `Mutation`: a deliberate protocol
//! error that the model tests switch on to show that the checker catches it. The field and
//! its checks do not exist in a normal build.
//!
//! Orderings are `SeqCst` throughout: the done check reads four counters and its correctness
//! argument (the paper's) assumes one total order of their updates.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering, lock};
use crate::types::{Incarnation, TxIdx, Version};

/// Where a transaction is in its life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    ReadyToExecute = 0,
    Executing = 1,
    Executed = 2,
    Aborting = 3,
    /// Executed, validated against every lower transaction's final writes, and final.
    Committed = 4,
}

/// Bits of a status word that hold the status; the incarnation sits above them.
const STATUS_BITS: u32 = 3;

impl Status {
    fn from_bits(bits: u64) -> Self {
        match bits & ((1 << STATUS_BITS) - 1) {
            0 => Self::ReadyToExecute,
            1 => Self::Executing,
            2 => Self::Executed,
            3 => Self::Aborting,
            _ => Self::Committed,
        }
    }
}

fn pack(incarnation: Incarnation, status: Status) -> u64 {
    (u64::from(incarnation) << STATUS_BITS) | status as u64
}

fn unpack(word: u64) -> (Incarnation, Status) {
    (
        (word >> STATUS_BITS) as Incarnation,
        Status::from_bits(word),
    )
}

/// Work handed to a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Task {
    Execute(Version),
    Validate(Version),
}

/// A deliberate error in the protocol, for the loom tests to show that they catch it.
#[cfg(loom)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mutation {
    /// The real protocol.
    None,
    /// `add_dependency` skips its check that the blocker already finished (done under the
    /// dependency lock): a transaction can suspend on a blocker that will never wake it.
    SuspendOnFinishedBlocker,
    /// Pulling the validation index back does not bump `decrease_cnt`: a done check that
    /// read the indices before the pull-back can declare the block done.
    SilentValidationDecrease,
    /// `finish_execution` stops counting its task as active before it pulls the validation
    /// index back: a done check in between sees no task in flight and both indices past the
    /// end, while the transaction still awaits its validation.
    ReleaseBeforeDecrease,
    /// The committer commits the transaction at the frontier even when the caller's
    /// validation against the lower transactions' final writes fails: a stale incarnation
    /// can commit.
    CommitIgnoresValidation,
}

/// The scheduler of one block.
pub(crate) struct Scheduler {
    block_size: usize,
    execution_idx: CachePadded<AtomicUsize>,
    validation_idx: CachePadded<AtomicUsize>,
    decrease_cnt: CachePadded<AtomicUsize>,
    num_active_tasks: CachePadded<AtomicUsize>,
    done_marker: CachePadded<AtomicBool>,
    /// The commit frontier: transactions below it are committed.
    commit_idx: CachePadded<AtomicUsize>,
    /// Held by the one worker that advances the frontier (see [`CommitLock`]).
    committing: CachePadded<AtomicBool>,
    status: Vec<CachePadded<AtomicU64>>,
    dependencies: Vec<CachePadded<Mutex<Vec<TxIdx>>>>,
    #[cfg(loom)]
    mutation: Mutation,
}

/// A finished block's per-transaction scheduler state, reset for the next block: every status
/// ready for a first incarnation, every dependency list empty, the allocations kept (see
/// [`Scheduler::into_recycled`]).
#[derive(Default)]
pub(crate) struct RecycledScheduler {
    status: Vec<CachePadded<AtomicU64>>,
    dependencies: Vec<CachePadded<Mutex<Vec<TxIdx>>>>,
}

impl Scheduler {
    /// A scheduler for `block_size` transactions, all ready for their first incarnation.
    #[cfg(any(test, loom))]
    pub(crate) fn new(block_size: usize) -> Self {
        Self::recycling(None, block_size)
    }

    /// [`new`](Self::new), on an earlier block's `recycled` state when there is one: its
    /// per-transaction arrays are reused, and only what this block needs beyond them is
    /// allocated.
    pub(crate) fn recycling(recycled: Option<RecycledScheduler>, block_size: usize) -> Self {
        let RecycledScheduler {
            mut status,
            mut dependencies,
        } = recycled.unwrap_or_default();
        status.truncate(block_size);
        status.resize_with(block_size, || {
            CachePadded::new(AtomicU64::new(pack(0, Status::ReadyToExecute)))
        });
        dependencies.truncate(block_size);
        dependencies.resize_with(block_size, || CachePadded::new(Mutex::new(Vec::new())));
        Self {
            block_size,
            execution_idx: CachePadded::new(AtomicUsize::new(0)),
            validation_idx: CachePadded::new(AtomicUsize::new(0)),
            decrease_cnt: CachePadded::new(AtomicUsize::new(0)),
            num_active_tasks: CachePadded::new(AtomicUsize::new(0)),
            done_marker: CachePadded::new(AtomicBool::new(block_size == 0)),
            commit_idx: CachePadded::new(AtomicUsize::new(0)),
            committing: CachePadded::new(AtomicBool::new(false)),
            status,
            dependencies,
            #[cfg(loom)]
            mutation: Mutation::None,
        }
    }

    /// Resets the per-transaction state for another block, keeping its allocations. Takes
    /// the scheduler by value: no worker of its block can still use it.
    pub(crate) fn into_recycled(self) -> RecycledScheduler {
        let Self {
            status,
            dependencies,
            ..
        } = self;
        for word in &status {
            // Relaxed: the scheduler is owned here; the next block receives it through the
            // executor's lock and the pool's job hand-off, which order these stores.
            word.store(pack(0, Status::ReadyToExecute), Ordering::Relaxed);
        }
        for dependents in &dependencies {
            lock(dependents).clear();
        }
        RecycledScheduler {
            status,
            dependencies,
        }
    }

    /// A scheduler like [`Scheduler::new`]'s, with `mutation` switched on.
    #[cfg(all(loom, test))]
    pub(crate) fn with_mutation(block_size: usize, mutation: Mutation) -> Self {
        Self {
            mutation,
            ..Self::new(block_size)
        }
    }

    /// Whether every transaction is executed and validated at its final incarnation.
    pub(crate) fn done(&self) -> bool {
        self.done_marker.load(Ordering::SeqCst)
    }

    /// The status of `tx`.
    pub(crate) fn status(&self, tx: TxIdx) -> (Incarnation, Status) {
        unpack(self.status[tx as usize].load(Ordering::SeqCst))
    }

    /// The next task, validations first when they lag behind executions; `None` when there
    /// is nothing to do right now (the caller checks `done` and asks again).
    pub(crate) fn next_task(&self) -> Option<Task> {
        if self.validation_idx.load(Ordering::SeqCst) < self.execution_idx.load(Ordering::SeqCst) {
            self.next_version_to_validate().map(Task::Validate)
        } else {
            self.next_version_to_execute().map(Task::Execute)
        }
    }

    fn check_done(&self) {
        let observed = self.decrease_cnt.load(Ordering::SeqCst);
        // An index may be pulled back between these reads: `decrease_cnt` must catch it.
        crate::stress::point();
        let execution = self.execution_idx.load(Ordering::SeqCst);
        let validation = self.validation_idx.load(Ordering::SeqCst);
        crate::stress::point();
        if execution.min(validation) >= self.block_size
            && self.num_active_tasks.load(Ordering::SeqCst) == 0
            && observed == self.decrease_cnt.load(Ordering::SeqCst)
        {
            self.done_marker.store(true, Ordering::SeqCst);
        }
    }

    /// Moves `tx` from `ReadyToExecute` to `Executing`, if it is ready.
    fn try_incarnate(&self, tx: usize) -> Option<Version> {
        if tx >= self.block_size {
            return None;
        }
        let word = self.status[tx].load(Ordering::SeqCst);
        let (incarnation, status) = unpack(word);
        if status != Status::ReadyToExecute {
            return None;
        }
        // Another worker may incarnate it, or a validator abort it, between load and CAS.
        crate::stress::point();
        self.status[tx]
            .compare_exchange(
                word,
                pack(incarnation, Status::Executing),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .ok()
            .map(|_| Version {
                tx: tx as TxIdx,
                incarnation,
            })
    }

    fn next_version_to_execute(&self) -> Option<Version> {
        if self.execution_idx.load(Ordering::SeqCst) >= self.block_size {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::SeqCst);
        crate::stress::point();
        let tx = self.execution_idx.fetch_add(1, Ordering::SeqCst);
        crate::stress::point();
        if let Some(version) = self.try_incarnate(tx) {
            return Some(version);
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    fn next_version_to_validate(&self) -> Option<Version> {
        if self.validation_idx.load(Ordering::SeqCst) >= self.block_size {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::SeqCst);
        crate::stress::point();
        let tx = self.validation_idx.fetch_add(1, Ordering::SeqCst);
        // The transaction may be aborted or re-executed before its status is read.
        crate::stress::point();
        if tx < self.block_size {
            let (incarnation, status) = unpack(self.status[tx].load(Ordering::SeqCst));
            if status == Status::Executed {
                return Some(Version {
                    tx: tx as TxIdx,
                    incarnation,
                });
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// Suspends executing `tx` until `blocking` finishes its next incarnation. Returns `false`
    /// when `blocking` already finished, and the caller should re-execute `tx` at once.
    pub(crate) fn add_dependency(&self, tx: TxIdx, blocking: TxIdx) -> bool {
        let mut dependents = lock(&self.dependencies[blocking as usize]);
        // Checked under the lock that `finish_execution` takes after setting `Executed`, so a
        // dependency is either seen there or not added here: no lost wake-up.
        let blocker_finished = matches!(
            self.status(blocking).1,
            Status::Executed | Status::Committed
        );
        #[cfg(loom)]
        let blocker_finished =
            blocker_finished && self.mutation != Mutation::SuspendOnFinishedBlocker;
        if blocker_finished {
            return false;
        }
        let (incarnation, status) = self.status(tx);
        debug_assert_eq!(status, Status::Executing);
        self.status[tx as usize].store(pack(incarnation, Status::Aborting), Ordering::SeqCst);
        dependents.push(tx);
        drop(dependents);
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        true
    }

    /// `Aborting(i)` -> `ReadyToExecute(i + 1)`.
    fn set_ready_status(&self, tx: TxIdx) {
        let (incarnation, status) = self.status(tx);
        debug_assert_eq!(status, Status::Aborting);
        self.status[tx as usize].store(
            pack(incarnation + 1, Status::ReadyToExecute),
            Ordering::SeqCst,
        );
    }

    fn decrease_execution_idx(&self, target: usize) {
        self.execution_idx.fetch_min(target, Ordering::SeqCst);
        // A done check may read the lowered index and the old count here.
        crate::stress::point();
        self.decrease_cnt.fetch_add(1, Ordering::SeqCst);
    }

    fn decrease_validation_idx(&self, target: usize) {
        self.validation_idx.fetch_min(target, Ordering::SeqCst);
        crate::stress::point();
        #[cfg(loom)]
        if self.mutation == Mutation::SilentValidationDecrease {
            return;
        }
        self.decrease_cnt.fetch_add(1, Ordering::SeqCst);
    }

    /// Records that `version` executed; releases its dependents. Returns the validation of
    /// `version` itself when only it needs validating (it wrote no new location).
    pub(crate) fn finish_execution(
        &self,
        version: Version,
        wrote_new_location: bool,
    ) -> Option<Task> {
        let tx = version.tx as usize;
        self.status[tx].store(
            pack(version.incarnation, Status::Executed),
            Ordering::SeqCst,
        );
        // Executed but dependents not yet released: `add_dependency` must now refuse.
        crate::stress::point();
        let dependents = std::mem::take(&mut *lock(&self.dependencies[tx]));
        if let Some(lowest) = dependents.iter().min().copied() {
            for dependent in dependents {
                self.set_ready_status(dependent);
            }
            self.decrease_execution_idx(lowest as usize);
        }
        crate::stress::point();
        if self.validation_idx.load(Ordering::SeqCst) > tx {
            if !wrote_new_location {
                // The task goes on as a validation: the active count stays.
                return Some(Task::Validate(version));
            }
            #[cfg(loom)]
            if self.mutation == Mutation::ReleaseBeforeDecrease {
                self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
                self.decrease_validation_idx(tx);
                return None;
            }
            self.decrease_validation_idx(tx);
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// `Executed(i)` -> `Aborting(i)` for a failed validation of `version`; `false` when
    /// another validator aborted it first or a newer incarnation exists.
    pub(crate) fn try_validation_abort(&self, version: Version) -> bool {
        self.status[version.tx as usize]
            .compare_exchange(
                pack(version.incarnation, Status::Executed),
                pack(version.incarnation, Status::Aborting),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// Records a finished validation of `version`. After an abort the transaction is made
    /// ready again, everything above it is revalidated, and its re-execution is returned
    /// when the execution stream already passed it.
    pub(crate) fn finish_validation(&self, version: Version, aborted: bool) -> Option<Task> {
        if aborted {
            let tx = version.tx as usize;
            self.set_ready_status(version.tx);
            // Ready again: another worker's execution stream may take it before we do.
            crate::stress::point();
            self.decrease_validation_idx(tx + 1);
            if self.execution_idx.load(Ordering::SeqCst) > tx
                && let Some(next) = self.try_incarnate(tx)
            {
                return Some(Task::Execute(next));
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// The commit frontier: how many transactions, from the first, are committed.
    pub(crate) fn committed(&self) -> usize {
        self.commit_idx.load(Ordering::SeqCst)
    }

    /// Whether every transaction is committed.
    pub(crate) fn all_committed(&self) -> bool {
        self.committed() >= self.block_size
    }

    /// The transaction at the frontier, when it is `Executed` (a candidate to commit).
    pub(crate) fn frontier(&self) -> Option<Version> {
        let tx = self.committed();
        if tx >= self.block_size {
            return None;
        }
        let (incarnation, status) = unpack(self.status[tx].load(Ordering::SeqCst));
        (status == Status::Executed).then_some(Version {
            tx: tx as TxIdx,
            incarnation,
        })
    }

    /// The right to advance the frontier, unless another worker holds it. A worker that
    /// makes the frontier's transaction `Executed` while another holds the lock does not
    /// wait: the holder checks [`frontier`](Self::frontier) again after releasing it (both
    /// sides `SeqCst`: either the holder sees the new status, or the releasing store comes
    /// first and the other worker's try succeeds).
    pub(crate) fn try_commit_lock(&self) -> Option<CommitLock<'_>> {
        self.committing
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| CommitLock { scheduler: self })
    }
}

/// Held by the worker that commits; released when dropped.
pub(crate) struct CommitLock<'s> {
    scheduler: &'s Scheduler,
}

impl CommitLock<'_> {
    /// Commits `version`, the frontier's candidate, if `valid` (the caller's validation of
    /// its reads, run here, after every lower transaction committed) says its reads are
    /// final: `Executed(i)` -> `Committed(i)` and the frontier moves past it. `false` when
    /// the reads are stale (the validation stream aborts it) or a validator aborted it
    /// meanwhile.
    pub(crate) fn commit(&self, version: Version, valid: impl FnOnce() -> bool) -> bool {
        let scheduler = self.scheduler;
        debug_assert_eq!(version.tx as usize, scheduler.committed());
        #[cfg(loom)]
        let valid = || valid() || scheduler.mutation == Mutation::CommitIgnoresValidation;
        if !valid() {
            return false;
        }
        // A validator may abort it between the validation and this CAS: one of them wins.
        crate::stress::point();
        let committed = scheduler.status[version.tx as usize]
            .compare_exchange(
                pack(version.incarnation, Status::Executed),
                pack(version.incarnation, Status::Committed),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok();
        if committed {
            // Only the lock holder moves the frontier: a plain store.
            scheduler
                .commit_idx
                .store(version.tx as usize + 1, Ordering::SeqCst);
        }
        committed
    }
}

impl Drop for CommitLock<'_> {
    fn drop(&mut self) {
        self.scheduler.committing.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(tx: TxIdx, incarnation: Incarnation) -> Version {
        Version { tx, incarnation }
    }

    #[test]
    fn an_empty_block_is_done_at_once() {
        assert!(Scheduler::new(0).done());
    }

    /// Drives `scheduler` on one thread; `abort(version)` says whether a validation fails.
    /// Returns the tasks in the order they ran.
    fn drive(scheduler: &Scheduler, mut abort: impl FnMut(Version) -> bool) -> Vec<Task> {
        let mut log = Vec::new();
        let mut task = None;
        for _ in 0..1_000 {
            task = match task.take() {
                Some(Task::Execute(version)) => {
                    log.push(Task::Execute(version));
                    scheduler.finish_execution(version, version.incarnation == 0)
                }
                Some(Task::Validate(version)) => {
                    log.push(Task::Validate(version));
                    let aborted = abort(version) && scheduler.try_validation_abort(version);
                    scheduler.finish_validation(version, aborted)
                }
                None if scheduler.done() => return log,
                None => scheduler.next_task(),
            };
        }
        panic!("no progress: {log:?}");
    }

    /// The next task, skipping the empty answers the scheduler gives while indices move.
    fn next(scheduler: &Scheduler) -> Task {
        (0..10).find_map(|_| scheduler.next_task()).expect("a task")
    }

    #[test]
    fn executes_and_validates_every_transaction_without_conflicts() {
        let scheduler = Scheduler::new(3);
        let log = drive(&scheduler, |_| false);
        for tx in 0..3 {
            let executions = log
                .iter()
                .filter(|t| **t == Task::Execute(v(tx, 0)))
                .count();
            assert_eq!(executions, 1, "{log:?}");
            assert!(log.contains(&Task::Validate(v(tx, 0))), "{log:?}");
            assert_eq!(scheduler.status(tx), (0, Status::Executed));
        }
        assert_eq!(log.len(), 6, "no task ran twice: {log:?}");
    }

    #[test]
    fn a_failed_validation_reincarnates_and_revalidates_what_follows() {
        let scheduler = Scheduler::new(3);
        let mut failed_once = false;
        let log = drive(&scheduler, |version| {
            let fail = version == v(1, 0) && !failed_once;
            failed_once |= fail;
            fail
        });
        let reexecuted = log.iter().position(|t| *t == Task::Execute(v(1, 1)));
        let reexecuted = reexecuted.unwrap_or_else(|| panic!("{log:?}"));
        // Everything from the aborted transaction up is validated again after its re-execution.
        assert!(
            log[reexecuted..].contains(&Task::Validate(v(1, 1))),
            "{log:?}"
        );
        assert!(
            log[reexecuted..]
                .iter()
                .any(|t| matches!(t, Task::Validate(x) if x.tx == 2)),
            "{log:?}"
        );
        assert_eq!(scheduler.status(1), (1, Status::Executed));
        assert!(
            !scheduler.try_validation_abort(v(1, 0)),
            "an old incarnation cannot be aborted"
        );
    }

    #[test]
    fn a_reexecution_that_writes_nothing_new_validates_only_itself() {
        let scheduler = Scheduler::new(2);
        assert_eq!(next(&scheduler), Task::Execute(v(0, 0)));
        assert_eq!(scheduler.finish_execution(v(0, 0), true), None);
        assert_eq!(next(&scheduler), Task::Validate(v(0, 0)));
        assert!(scheduler.try_validation_abort(v(0, 0)));
        // Execution already passed tx 0: the validator re-executes it itself.
        assert_eq!(
            scheduler.finish_validation(v(0, 0), true),
            Some(Task::Execute(v(0, 1)))
        );
        assert_eq!(
            scheduler.finish_execution(v(0, 1), false),
            Some(Task::Validate(v(0, 1)))
        );
    }

    #[test]
    fn a_suspended_transaction_resumes_when_its_blocker_finishes() {
        let scheduler = Scheduler::new(2);
        assert_eq!(next(&scheduler), Task::Execute(v(0, 0)));
        assert_eq!(next(&scheduler), Task::Execute(v(1, 0)));
        assert!(scheduler.add_dependency(1, 0));
        assert_eq!(scheduler.status(1), (0, Status::Aborting));
        scheduler.finish_execution(v(0, 0), true);
        assert_eq!(scheduler.status(1), (1, Status::ReadyToExecute));
        let log = drive(&scheduler, |_| false);
        assert!(log.contains(&Task::Execute(v(1, 1))), "{log:?}");
        // Once the blocker is executed a dependency is refused: re-execute at once.
        assert!(!scheduler.add_dependency(1, 0));
    }

    #[test]
    fn transactions_commit_in_order_once_each_and_stay_committed() {
        let scheduler = Scheduler::new(3);
        assert_eq!(scheduler.frontier(), None, "nothing executed yet");
        assert_eq!(next(&scheduler), Task::Execute(v(0, 0)));
        assert_eq!(next(&scheduler), Task::Execute(v(1, 0)));
        scheduler.finish_execution(v(1, 0), true);
        assert_eq!(scheduler.frontier(), None, "tx 1 waits for tx 0");
        scheduler.finish_execution(v(0, 0), true);
        assert_eq!(scheduler.frontier(), Some(v(0, 0)));
        let lock = scheduler.try_commit_lock().expect("free");
        assert!(
            scheduler.try_commit_lock().is_none(),
            "one committer at a time"
        );
        assert!(
            !lock.commit(v(0, 0), || false),
            "a failed validation does not commit"
        );
        assert_eq!(scheduler.committed(), 0);
        assert!(lock.commit(v(0, 0), || true));
        assert_eq!(scheduler.committed(), 1);
        assert_eq!(scheduler.status(0), (0, Status::Committed));
        assert!(
            !scheduler.try_validation_abort(v(0, 0)),
            "a committed transaction cannot be aborted"
        );
        // A validator aborts tx 1 before the committer gets to it: the commit is refused.
        assert_eq!(scheduler.frontier(), Some(v(1, 0)));
        assert_eq!(next(&scheduler), Task::Validate(v(1, 0)), "tx 0 is skipped");
        assert!(scheduler.try_validation_abort(v(1, 0)));
        assert!(!lock.commit(v(1, 0), || true));
        assert_eq!(scheduler.frontier(), None, "aborted: not a candidate");
        drop(lock);
        let mut task = scheduler.finish_validation(v(1, 0), true);
        while let Some(running) = task {
            task = match running {
                Task::Execute(version) => scheduler.finish_execution(version, false),
                Task::Validate(version) => scheduler.finish_validation(version, false),
            };
        }
        assert!(scheduler.try_commit_lock().is_some(), "released on drop");
        // A transaction waiting for a committed one is told to run at once.
        assert!(!scheduler.add_dependency(2, 0));
        let log = drive(&scheduler, |_| false);
        assert!(
            log.iter()
                .all(|task| !matches!(task, Task::Execute(x) | Task::Validate(x) if x.tx == 0)),
            "nothing runs for a committed transaction: {log:?}"
        );
        while let Some(candidate) = scheduler.frontier() {
            let lock = scheduler.try_commit_lock().expect("free");
            assert!(lock.commit(candidate, || true));
        }
        assert!(scheduler.all_committed());
        assert_eq!(scheduler.status(1), (1, Status::Committed));
        assert_eq!(scheduler.status(2), (0, Status::Committed));
    }

    #[test]
    fn a_recycled_scheduler_starts_like_a_new_one() {
        let scheduler = Scheduler::new(3);
        assert_eq!(next(&scheduler), Task::Execute(v(0, 0)));
        assert_eq!(next(&scheduler), Task::Execute(v(1, 0)));
        // Tx 1 waits for tx 0, which never finishes in this block (an abandoned block).
        assert!(scheduler.add_dependency(1, 0));
        assert_eq!(scheduler.status(1), (0, Status::Aborting));
        let recycled = scheduler.into_recycled();
        for size in [2, 4] {
            let again = Scheduler::recycling(Some(Scheduler::new(3).into_recycled()), size);
            assert!((0..size as TxIdx).all(|tx| again.status(tx) == (0, Status::ReadyToExecute)));
        }
        let again = Scheduler::recycling(Some(recycled), 2);
        assert!((0..2).all(|tx| again.status(tx) == (0, Status::ReadyToExecute)));
        assert!(!again.done());
        let log = drive(&again, |_| false);
        assert!(log.contains(&Task::Execute(v(1, 0))), "{log:?}");
        assert!(again.done(), "no stale dependency holds tx 1 back");
    }
}
