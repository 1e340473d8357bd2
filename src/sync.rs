//! The synchronisation primitives the engine uses, in one place: std's (and crossbeam's)
//! normally, loom's under `cfg(loom)` so that `loom-tests/` model-checks the real code.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use seq_cst::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};

/// Locks `mutex`, ignoring poisoning: a panicking worker abandons the whole block (see
/// `parallel`), so data behind a poisoned lock is never used for an answer.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(loom))]
    {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    #[cfg(loom)]
    {
        mutex.lock().unwrap()
    }
}

/// The pointer in `atomic`, read through the exclusive borrow that proves no other thread
/// uses it (std's `get_mut`, loom's `with_mut`).
pub(crate) fn exclusive_ptr<T>(atomic: &mut AtomicPtr<T>) -> *mut T {
    #[cfg(not(loom))]
    {
        *atomic.get_mut()
    }
    #[cfg(loom)]
    {
        atomic.with_mut(|pointer| *pointer)
    }
}

/// The message of a caught panic (its `&str` or `String` payload).
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_owned())
}

/// Waits a moment for another thread to finish a step that takes a few instructions: spins,
/// then yields the core (the other thread may have been descheduled). Under loom, lets the
/// model run the other threads.
pub(crate) fn backoff(spins: &mut u32) {
    #[cfg(loom)]
    {
        let _ = spins;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        if *spins < 64 {
            *spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// loom's atomics with `SeqCst` restored.
///
/// loom models a `SeqCst` access as an `AcqRel` one (a documented limitation, tokio-rs/loom
/// issue 180): it lets a `SeqCst` load return a stale value, so it reports executions that the
/// single total order of `SeqCst` accesses rules out, such as the store-buffering pattern the
/// scheduler relies on (`finish_execution` stores `Executed` then loads `validation_idx`, while
/// `next_version_to_validate` bumps `validation_idx` then loads the status: one of them must
/// see the other). loom does model `SeqCst` fences exactly, so here every `SeqCst` access is
/// bracketed by two: all `SeqCst` accesses then take effect in one order that every thread
/// agrees on, which is what the C++/Rust model guarantees for them. Other orderings pass
/// through unchanged, with loom's full weak-memory exploration.
#[cfg(loom)]
mod seq_cst {
    use loom::sync::atomic::{self, Ordering};

    /// Runs `access` between two `SeqCst` fences when `order` is `SeqCst`.
    fn sequenced<R>(order: Ordering, access: impl FnOnce() -> R) -> R {
        if order != Ordering::SeqCst {
            return access();
        }
        atomic::fence(Ordering::SeqCst);
        let result = access();
        atomic::fence(Ordering::SeqCst);
        result
    }

    macro_rules! seq_cst_atomic {
        ($name:ident, $value:ty) => {
            /// loom's atomic of the same name, with `SeqCst` accesses fenced (see the module).
            #[derive(Debug)]
            pub(crate) struct $name(atomic::$name);

            impl Default for $name {
                fn default() -> Self {
                    Self::new(<$value>::default())
                }
            }

            #[allow(dead_code)]
            impl $name {
                pub(crate) fn new(value: $value) -> Self {
                    Self(atomic::$name::new(value))
                }

                pub(crate) fn load(&self, order: Ordering) -> $value {
                    sequenced(order, || self.0.load(order))
                }

                pub(crate) fn store(&self, value: $value, order: Ordering) {
                    sequenced(order, || self.0.store(value, order))
                }

                pub(crate) fn swap(&self, value: $value, order: Ordering) -> $value {
                    sequenced(order, || self.0.swap(value, order))
                }

                pub(crate) fn compare_exchange(
                    &self,
                    current: $value,
                    new: $value,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$value, $value> {
                    sequenced(success, || {
                        self.0.compare_exchange(current, new, success, failure)
                    })
                }
            }
        };
    }

    macro_rules! seq_cst_atomic_int {
        ($name:ident, $value:ty) => {
            seq_cst_atomic!($name, $value);

            #[allow(dead_code)]
            impl $name {
                pub(crate) fn fetch_add(&self, value: $value, order: Ordering) -> $value {
                    sequenced(order, || self.0.fetch_add(value, order))
                }

                pub(crate) fn fetch_sub(&self, value: $value, order: Ordering) -> $value {
                    sequenced(order, || self.0.fetch_sub(value, order))
                }

                pub(crate) fn fetch_min(&self, value: $value, order: Ordering) -> $value {
                    sequenced(order, || self.0.fetch_min(value, order))
                }
            }
        };
    }

    seq_cst_atomic!(AtomicBool, bool);
    seq_cst_atomic_int!(AtomicU32, u32);
    seq_cst_atomic_int!(AtomicU64, u64);
    seq_cst_atomic_int!(AtomicUsize, usize);
}
