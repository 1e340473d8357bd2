//! The pool's threads: created once, pinned where the plan says, parked between blocks.
//!
//! A block is dispatched with [`WorkerPool::run`]: the first `k` workers (node by node) get a
//! borrowed job, run it, and the caller waits until all `k` are done. Worker `i` is always
//! participant `i`, so state the caller keeps per index (the executor's arenas) is used by
//! the same pinned thread, block after block, and stays on its node.
//! Work handed to [`WorkerPool::defer_drop`] (a finished block's internal structures) is
//! dropped by an idle worker, off the caller's path.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use super::PoolError;
use super::topology::PoolPlan;
use crate::sync::{AtomicBool, AtomicUsize, Mutex, Ordering, lock, panic_text};

/// Polls of its mailbox a worker makes with only a pause instruction between them, right
/// after a job: the next block of a back-to-back run may follow within them.
const SPINS_BEFORE_YIELDING: u32 = 64;
/// How long a worker keeps polling for the next block, yielding its core between polls,
/// before it parks (back-to-back blocks then skip the futex wake-up). Yielding rather than
/// spinning lets a thread that needs the core run first: on a machine with as many workers
/// as cores, that is the caller doing the block's serial part.
const POLL_BEFORE_PARK: Duration = Duration::from_micros(50);
/// How long a worker told that a job is coming ([`WorkerPool::expect_job`]) keeps polling
/// for it before it parks anyway: longer than any block's planning and set-up.
const POLL_FOR_EXPECTED_JOB: Duration = Duration::from_millis(20);

/// A job as the workers see it: a borrowed closure whose lifetime [`WorkerPool::run`]
/// guarantees (it waits for every participant before returning).
#[derive(Clone, Copy)]
struct JobRef {
    job: *const (dyn Fn(&mut WorkerContext) + Sync),
    batch: *const Batch,
}

// SAFETY: the pointees are `Sync` (the job is `Fn + Sync`, the batch holds atomics and a
// mutex) and outlive every use: `run` does not return before all participants released them.
unsafe impl Send for JobRef {}

/// One dispatch's bookkeeping, on the caller's stack.
struct Batch {
    remaining: AtomicUsize,
    caller: Thread,
    panic: Mutex<Option<String>>,
}

/// What a worker's job is told: which participant it is.
pub(crate) struct WorkerContext {
    /// Index of this worker among the block's participants (0-based); the same worker has
    /// the same index in every block, so per-worker state kept by index stays on its node.
    pub(crate) index: usize,
}

/// One worker's mailbox.
struct Mailbox {
    job: Mutex<Option<JobRef>>,
    has_job: AtomicBool,
    /// A job is coming soon: poll for it rather than park (see [`WorkerPool::expect_job`]).
    job_expected: AtomicBool,
    thread: Mutex<Option<Thread>>,
}

struct Shared {
    mailboxes: Vec<CachePadded<Mailbox>>,
    garbage: Mutex<Vec<Box<dyn Any + Send>>>,
    garbage_pending: AtomicBool,
    shutdown: AtomicBool,
}

/// A persistent pool of worker threads laid out by a [`PoolPlan`].
pub(crate) struct WorkerPool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    plan: PoolPlan,
    /// One block at a time: concurrent callers queue here.
    dispatch: Mutex<()>,
}

impl WorkerPool {
    /// Starts one thread per worker of `plan`, pinned to its CPU where the plan names one.
    pub(crate) fn new(plan: PoolPlan) -> Result<Self, PoolError> {
        let placements = plan.placements();
        let shared = Arc::new(Shared {
            mailboxes: placements
                .iter()
                .map(|_| {
                    CachePadded::new(Mailbox {
                        job: Mutex::new(None),
                        has_job: AtomicBool::new(false),
                        job_expected: AtomicBool::new(false),
                        thread: Mutex::new(None),
                    })
                })
                .collect(),
            garbage: Mutex::new(Vec::new()),
            garbage_pending: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
        });
        let mut handles = Vec::with_capacity(placements.len());
        for (worker, (node, cpu)) in placements.into_iter().enumerate() {
            let for_worker = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("blockstm-n{node}-w{worker}"))
                .spawn(move || worker_main(&for_worker, worker, cpu))
                .map_err(|source| PoolError::Spawn { worker, source })?;
            *lock(&shared.mailboxes[worker].thread) = Some(handle.thread().clone());
            handles.push(handle);
        }
        Ok(Self {
            shared,
            handles,
            plan,
            dispatch: Mutex::new(()),
        })
    }

    /// The layout the pool was built from.
    pub(crate) fn plan(&self) -> &PoolPlan {
        &self.plan
    }

    /// Number of workers.
    pub(crate) fn workers(&self) -> usize {
        self.handles.len()
    }

    /// Runs `job` on the first `participants` workers (at most all of them) and returns when
    /// every one has finished; a panic in the job is caught and returned as its message.
    pub(crate) fn run(
        &self,
        participants: usize,
        job: &(dyn Fn(&mut WorkerContext) + Sync),
    ) -> Result<(), String> {
        let participants = participants.clamp(1, self.workers());
        let _one_block_at_a_time = lock(&self.dispatch);
        let batch = Batch {
            remaining: AtomicUsize::new(participants),
            caller: std::thread::current(),
            panic: Mutex::new(None),
        };
        let job_ref = JobRef {
            // SAFETY: only the lifetime is erased; `job` and `batch` outlive every use, since
            // this function waits below until `remaining` is zero, and a worker touches
            // neither after its decrement.
            job: unsafe {
                std::mem::transmute::<
                    *const (dyn Fn(&mut WorkerContext) + Sync + '_),
                    *const (dyn Fn(&mut WorkerContext) + Sync + 'static),
                >(job)
            },
            batch: &batch,
        };
        for mailbox in &self.shared.mailboxes[..participants] {
            *lock(&mailbox.job) = Some(job_ref);
            // Release: the job stored above is visible to the worker that sees the flag.
            mailbox.has_job.store(true, Ordering::Release);
            if let Some(thread) = lock(&mailbox.thread).as_ref() {
                thread.unpark();
            }
        }
        // Acquire: pairs with each worker's release decrement, so their effects are visible.
        while batch.remaining.load(Ordering::Acquire) != 0 {
            std::thread::park();
        }
        match batch
            .panic
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(message) => Err(message),
            None => Ok(()),
        }
    }

    /// Tells the first `participants` workers that a job comes soon (a block is being
    /// planned and set up): a parked worker wakes now and polls, so that the wake-up (which
    /// can take milliseconds on a virtual machine whose idle CPU must be rescheduled)
    /// overlaps the caller's serial work instead of delaying the block. A worker that gets
    /// no job within 20 ms parks again; [`Self::no_job_expected`] sends them back at once.
    pub(crate) fn expect_job(&self, participants: usize) {
        for mailbox in self.shared.mailboxes.iter().take(participants) {
            // Relaxed: a hint; the job itself is handed over through `has_job`.
            mailbox.job_expected.store(true, Ordering::Relaxed);
            if let Some(thread) = lock(&mailbox.thread).as_ref() {
                thread.unpark();
            }
        }
    }

    /// Withdraws [`Self::expect_job`]: the block went another way (the sequential path).
    pub(crate) fn no_job_expected(&self) {
        for mailbox in &self.shared.mailboxes {
            mailbox.job_expected.store(false, Ordering::Relaxed);
        }
    }

    /// Hands `value` to the pool to be dropped by an idle worker, off the caller's path.
    pub(crate) fn defer_drop(&self, value: Box<dyn Any + Send>) {
        lock(&self.shared.garbage).push(value);
        self.shared.garbage_pending.store(true, Ordering::Release);
        // The last worker is the least likely to be needed by the next small block.
        if let Some(thread) = self
            .shared
            .mailboxes
            .last()
            .and_then(|mailbox| lock(&mailbox.thread).clone())
        {
            thread.unpark();
        }
    }
}

impl Drop for WorkerPool {
    /// Stops and joins every worker (pending deferred drops are done first).
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for handle in &self.handles {
            handle.thread().unpark();
        }
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
        lock(&self.shared.garbage).clear();
    }
}

fn worker_main(shared: &Shared, worker: usize, cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let pinned = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
        if !pinned {
            tracing::warn!(worker, cpu, "could not pin the worker; it runs unpinned");
        }
    }
    let mailbox = &shared.mailboxes[worker];
    let mut context = WorkerContext { index: worker };
    loop {
        let Some(job) = wait_for_job(shared, mailbox) else {
            return;
        };
        // SAFETY: `run` keeps the job and the batch alive until this worker's decrement.
        let (run, batch) = unsafe { (&*job.job, &*job.batch) };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| run(&mut context))) {
            lock(&batch.panic).get_or_insert_with(|| panic_text(payload.as_ref()));
        }
        let caller = batch.caller.clone();
        // Release: this worker's work is visible to the caller; `batch` is not touched after.
        if batch.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            caller.unpark();
        }
    }
}

/// Waits (spin, then poll and yield, then park) for a job; drops deferred garbage while idle.
/// A worker told that a job is coming polls longer before it parks. `None`: shut down.
fn wait_for_job(shared: &Shared, mailbox: &Mailbox) -> Option<JobRef> {
    let mut polls = 0u32;
    let mut polling_since = None;
    loop {
        // Acquire: pairs with the dispatcher's release store of the flag.
        if mailbox.has_job.swap(false, Ordering::Acquire) {
            mailbox.job_expected.store(false, Ordering::Relaxed);
            return lock(&mailbox.job).take();
        }
        if shared.shutdown.load(Ordering::SeqCst) {
            return None;
        }
        if shared.garbage_pending.swap(false, Ordering::Acquire) {
            let garbage = std::mem::take(&mut *lock(&shared.garbage));
            drop(garbage);
            continue;
        }
        polls = polls.saturating_add(1);
        if polls <= SPINS_BEFORE_YIELDING {
            std::hint::spin_loop();
            continue;
        }
        let now = Instant::now();
        let polled = now - *polling_since.get_or_insert(now);
        // Relaxed: a hint; the job itself comes through `has_job`.
        let expected = mailbox.job_expected.load(Ordering::Relaxed);
        if polled < POLL_BEFORE_PARK || (expected && polled < POLL_FOR_EXPECTED_JOB) {
            std::thread::yield_now();
            continue;
        }
        if expected {
            // The announced job did not come.
            mailbox.job_expected.store(false, Ordering::Relaxed);
        }
        std::thread::park();
        // Woken (for a job, an announced one, garbage or shutdown): poll afresh.
        polls = 0;
        polling_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::topology::{PoolOptions, fallback};

    fn pool(workers: usize) -> WorkerPool {
        let options = PoolOptions {
            workers_per_node: Some(workers),
            ..PoolOptions::default()
        };
        WorkerPool::new(fallback(&options, "test".to_owned())).unwrap()
    }

    #[test]
    fn every_participant_runs_the_job_once_with_its_index() {
        let pool = pool(4);
        for participants in [1, 2, 4, 9] {
            let seen: Vec<AtomicUsize> = (0..4).map(|_| AtomicUsize::new(0)).collect();
            pool.run(participants, &|context: &mut WorkerContext| {
                seen[context.index].fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            let counts: Vec<usize> = seen.iter().map(|c| c.load(Ordering::SeqCst)).collect();
            let expected: Vec<usize> = (0..4).map(|i| usize::from(i < participants)).collect();
            assert_eq!(counts, expected, "{participants} participants");
        }
    }

    #[test]
    fn jobs_borrow_the_callers_data_and_blocks_run_back_to_back() {
        let pool = pool(3);
        let total = AtomicUsize::new(0);
        let data: Vec<usize> = (1..=300).collect();
        for _ in 0..1_000 {
            pool.run(3, &|context: &mut WorkerContext| {
                let mine: usize = data.iter().skip(context.index).step_by(3).sum();
                total.fetch_add(mine, Ordering::SeqCst);
            })
            .unwrap();
        }
        assert_eq!(total.load(Ordering::SeqCst), 1_000 * 300 * 301 / 2);
    }

    #[test]
    fn announced_jobs_run_whether_they_come_soon_late_or_not_at_all() {
        let pool = pool(2);
        let ran = AtomicUsize::new(0);
        let job = |_: &mut WorkerContext| {
            ran.fetch_add(1, Ordering::SeqCst);
        };
        // Announced and dispatched at once; announced and withdrawn; announced and left
        // to lapse (the workers park again after 20 ms): every later job still runs.
        pool.expect_job(2);
        pool.run(2, &job).unwrap();
        pool.expect_job(2);
        pool.no_job_expected();
        pool.run(2, &job).unwrap();
        pool.expect_job(1);
        let announced = || {
            pool.shared
                .mailboxes
                .iter()
                .any(|mailbox| mailbox.job_expected.load(Ordering::SeqCst))
        };
        // Generous: a loaded machine may run the worker late.
        let deadline = Instant::now() + Duration::from_secs(10);
        while announced() && Instant::now() < deadline {
            std::thread::sleep(POLL_FOR_EXPECTED_JOB);
        }
        assert!(!announced(), "a lapsed announcement is cleared");
        pool.run(2, &job).unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 6);
    }

    #[test]
    fn a_panicking_job_is_reported_and_the_pool_stays_usable() {
        let pool = pool(2);
        let error = pool
            .run(2, &|context: &mut WorkerContext| {
                if context.index == 1 {
                    panic!("worker one fails");
                }
            })
            .unwrap_err();
        assert!(error.contains("worker one fails"));
        let ran = AtomicUsize::new(0);
        pool.run(2, &|_: &mut WorkerContext| {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn deferred_drops_happen_and_dropping_the_pool_joins_its_threads() {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let pool = pool(2);
        pool.defer_drop(Box::new(Flag(Arc::clone(&dropped))));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dropped.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(dropped.load(Ordering::SeqCst), "an idle worker dropped it");
        let weak = Arc::downgrade(&pool.shared);
        drop(pool);
        assert_eq!(weak.strong_count(), 0, "every worker thread has exited");
    }
}
