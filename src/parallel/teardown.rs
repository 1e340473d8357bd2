//! [`PendingTeardowns`]: the deferred teardowns of an executor's blocks that have not
//! finished yet, so that a caller can wait for them (a benchmark timing blocks back to back,
//! a memory probe) instead of sharing the machine with them unknowingly.

// std's primitives, not `crate::sync`'s: a teardown outlives the block and is not part of
// what loom models (the scheduler and the multi-version memory).
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Counts an executor's deferred teardowns still running.
#[derive(Default)]
pub(crate) struct PendingTeardowns {
    shared: Arc<Counter>,
}

#[derive(Default)]
struct Counter {
    pending: Mutex<usize>,
    finished: Condvar,
}

/// Held by one deferred teardown; dropping it (after what it tears down) marks it finished.
pub(crate) struct TeardownToken {
    shared: Arc<Counter>,
}

impl PendingTeardowns {
    /// Registers a teardown about to be deferred.
    pub(crate) fn start(&self) -> TeardownToken {
        *lock(&self.shared.pending) += 1;
        TeardownToken {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Blocks until every teardown started so far has finished.
    pub(crate) fn wait(&self) {
        let mut pending = lock(&self.shared.pending);
        while *pending > 0 {
            pending = self
                .shared
                .finished
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Locks the count; a panic elsewhere while it was held cannot leave it inconsistent.
fn lock(count: &Mutex<usize>) -> MutexGuard<'_, usize> {
    count.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for TeardownToken {
    fn drop(&mut self) {
        let mut pending = lock(&self.shared.pending);
        *pending -= 1;
        if *pending == 0 {
            self.shared.finished.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn waiting_returns_only_after_every_deferred_teardown_finished() {
        let teardowns = PendingTeardowns::default();
        teardowns.wait();
        let done = Arc::new(AtomicBool::new(false));
        let token = teardowns.start();
        let flag = Arc::clone(&done);
        let worker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            flag.store(true, Ordering::SeqCst);
            drop(token);
        });
        teardowns.wait();
        assert!(
            done.load(Ordering::SeqCst),
            "wait returned before the teardown ended"
        );
        worker.join().unwrap();
    }
}
