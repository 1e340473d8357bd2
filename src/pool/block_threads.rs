//! [`BlockThreads`]: where one block's parallel phases run, on a pool's first workers or on
//! threads spawned for the block.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::workers::{WorkerContext, WorkerPool};
use crate::sync::panic_text;

/// The threads of one block: the first workers of a pool, or (without one) threads spawned
/// for each phase, the caller's among them.
pub(crate) struct BlockThreads<'p> {
    pool: Option<&'p WorkerPool>,
    threads: usize,
}

impl<'p> BlockThreads<'p> {
    /// `threads` participants, on `pool` when it has that many workers.
    pub(crate) fn new(pool: Option<&'p WorkerPool>, threads: usize) -> Self {
        let pool = pool.filter(|pool| threads <= pool.workers());
        Self { pool, threads }
    }

    /// The pool the block runs on (`None`: spawned threads).
    pub(crate) fn pool(&self) -> Option<&'p WorkerPool> {
        self.pool
    }

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
        match self.pool {
            Some(pool) => pool.run(
                participants,
                &|worker: &mut WorkerContext| job(worker.index),
            ),
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
