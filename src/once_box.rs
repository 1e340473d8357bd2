//! [`OnceBox`]: a value set at most once, by whichever thread gets there first, and read
//! without locks afterwards.
//!
//! One pointer word, published with a single compare-and-swap: the racing threads each build
//! their value, one wins, the others free theirs and use the winner's. `std`'s `OnceLock`
//! does the same job with a state machine (a compare-and-swap to claim, a swap to complete,
//! a futex check for waiters): two read-modify-writes per value on a cache line nobody else
//! has touched, which profiles showed on every first read of a location. Here racers never
//! wait for each other, which suits values that any thread can compute (a location's
//! pre-block value: every reader gets the same one from storage). Built on `crate::sync`, so
//! that loom checks the publication in the real cell.

use std::ptr;

use crate::sync::{AtomicPtr, Ordering, exclusive_ptr};

/// A boxed value set at most once (see the module).
pub(crate) struct OnceBox<T> {
    value: AtomicPtr<T>,
}

// SAFETY: the box hands out shared references to `T` across threads (needs `T: Sync`) and
// the value set by one thread is dropped by another (needs `T: Send`).
unsafe impl<T: Send + Sync> Sync for OnceBox<T> {}
// SAFETY: sending the box moves the owned `T`.
unsafe impl<T: Send> Send for OnceBox<T> {}

impl<T> Default for OnceBox<T> {
    fn default() -> Self {
        Self {
            value: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

impl<T> OnceBox<T> {
    /// The value, if it was set.
    #[inline]
    pub(crate) fn get(&self) -> Option<&T> {
        // Acquire: pairs with the Release of the compare-and-swap in `get_or_init`, so that the
        // value's contents, written before its pointer was published, are visible.
        let value = self.value.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from `Box::into_raw` in `get_or_init` and is freed
        // only by `drop`, which needs `&mut self`: it lives as long as this borrow.
        unsafe { value.as_ref() }
    }

    /// The value, set to `make()`'s first if it was not set yet. Threads that race here may
    /// each call `make`; one value wins, the others are dropped.
    #[inline]
    pub(crate) fn get_or_init(&self, make: impl FnOnce() -> T) -> &T {
        if let Some(value) = self.get() {
            return value;
        }
        let mine = Box::into_raw(Box::new(make()));
        // Release on success publishes `mine`'s contents; Acquire on failure makes the
        // winner's contents visible (as in `get`).
        match self.value.compare_exchange(
            ptr::null_mut(),
            mine,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: `mine` is now owned by `self` and freed only by `drop` (see `get`).
            Ok(_) => unsafe { &*mine },
            Err(winner) => {
                // SAFETY: `mine` lost the race, so no other thread ever saw it: we still own
                // it. `winner` is non-null (the exchange failed) and owned by `self`.
                unsafe {
                    drop(Box::from_raw(mine));
                    &*winner
                }
            }
        }
    }
}

impl<T> Drop for OnceBox<T> {
    fn drop(&mut self) {
        let value = exclusive_ptr(&mut self.value);
        if !value.is_null() {
            // SAFETY: `&mut self`: no reference handed out by `get` is alive, and the pointer
            // came from `Box::into_raw` and was published once.
            drop(unsafe { Box::from_raw(value) });
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};

    use super::*;

    /// Counts its drops.
    struct Counted(u64, Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, StdOrdering::Relaxed);
        }
    }

    #[test]
    fn the_first_value_wins_and_every_value_is_dropped_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let once = OnceBox::default();
        assert!(once.get().is_none());
        assert_eq!(once.get_or_init(|| Counted(1, Arc::clone(&drops))).0, 1);
        assert_eq!(once.get_or_init(|| Counted(2, Arc::clone(&drops))).0, 1);
        assert_eq!(once.get().map(|value| value.0), Some(1));
        assert_eq!(
            drops.load(StdOrdering::Relaxed),
            0,
            "`make` not called once set"
        );
        drop(once);
        assert_eq!(drops.load(StdOrdering::Relaxed), 1);
    }

    #[test]
    fn racing_threads_agree_and_losers_free_their_values() {
        let drops = Arc::new(AtomicUsize::new(0));
        let made = AtomicUsize::new(0);
        let once = OnceBox::default();
        let seen: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|thread| {
                    let (once, drops, made) = (&once, &drops, &made);
                    s.spawn(move || {
                        once.get_or_init(|| {
                            made.fetch_add(1, StdOrdering::Relaxed);
                            Counted(thread, Arc::clone(drops))
                        })
                        .0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "one winner: {seen:?}"
        );
        let made = made.load(StdOrdering::Relaxed);
        assert_eq!(drops.load(StdOrdering::Relaxed), made - 1, "losers freed");
        drop(once);
        assert_eq!(drops.load(StdOrdering::Relaxed), made, "winner freed once");
    }
}
