//! An append-only array with stable addresses that grows without locks or copying.
//!
//! Bucket `b` holds `FIRST << b` elements and is allocated on first use; bucket pointers are
//! published with a compare-and-swap, so two threads racing to allocate the same bucket agree
//! on one and the loser frees its own. Elements are never moved or freed before the whole
//! array is dropped, which is what lets MvMemory hand out `&Cell` for the block's lifetime.

use crate::sync::{AtomicPtr, Ordering, exclusive_ptr};
use std::ptr;

/// Elements in the first bucket: small, so that a small block's set-up and teardown touch
/// little memory (a bucket of 64 padded cells is 8 KiB); large blocks take a few more buckets.
/// Under loom every element's atomics are model objects that each `SeqCst` access scans: a
/// small first bucket keeps a model's memory to a few cells.
const FIRST: usize = if cfg!(loom) { 4 } else { 64 };
/// Buckets: enough for `FIRST * (2^BUCKETS - 1)` elements, far beyond any block.
pub(crate) const BUCKETS: usize = 32;

pub(crate) struct SegmentedVec<T> {
    buckets: [AtomicPtr<T>; BUCKETS],
}

// SAFETY: the array hands out only shared references to `T` across threads, so it is as
// thread-safe as `T` is `Sync`; sending it moves owned `T`s, which needs `T: Send`.
unsafe impl<T: Send + Sync> Sync for SegmentedVec<T> {}
// SAFETY: see above.
unsafe impl<T: Send> Send for SegmentedVec<T> {}

fn locate(index: usize) -> (usize, usize) {
    let slot = index / FIRST + 1;
    let bucket = (usize::BITS - 1 - slot.leading_zeros()) as usize;
    let bucket_start = FIRST * ((1 << bucket) - 1);
    (bucket, index - bucket_start)
}

/// Elements in bucket `bucket`.
pub(crate) fn bucket_len(bucket: usize) -> usize {
    FIRST << bucket
}

impl<T: Default> SegmentedVec<T> {
    /// An empty array with room for `capacity` elements allocated up front.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let vec = Self {
            // Not a `const` array: loom's atomics have no `const fn new`.
            buckets: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        };
        vec.reserve(capacity);
        vec
    }

    /// Allocates the buckets that the first `capacity` elements need, if not yet allocated.
    pub(crate) fn reserve(&self, capacity: usize) {
        if capacity > 0 {
            let (last, _) = locate(capacity - 1);
            for bucket in 0..=last {
                self.bucket(bucket);
            }
        }
    }

    /// The element at `index`, default-initialised on first use of its bucket.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> &T {
        let (bucket, offset) = locate(index);
        let base = self.bucket(bucket);
        // SAFETY: `base` points to a live allocation of `bucket_len(bucket)` initialised
        // elements (see `bucket`), `offset < bucket_len(bucket)` by `locate`, and buckets are
        // only freed in `drop`, which takes `&mut self`.
        unsafe { &*base.add(offset) }
    }

    /// The whole bucket `bucket` (`FIRST << bucket` elements), allocated on first use.
    pub(crate) fn bucket_slice(&self, bucket: usize) -> &[T] {
        let base = self.bucket(bucket);
        // SAFETY: as in `get`: `base` points to `bucket_len(bucket)` initialised elements that
        // live until `drop`.
        unsafe { std::slice::from_raw_parts(base, bucket_len(bucket)) }
    }

    fn bucket(&self, bucket: usize) -> *mut T {
        // Acquire: pairs with the Release of the publishing CAS, so the elements' initialisation
        // is visible before we dereference them.
        let current = self.buckets[bucket].load(Ordering::Acquire);
        if !current.is_null() {
            return current;
        }
        let fresh: Box<[T]> = (0..bucket_len(bucket)).map(|_| T::default()).collect();
        let fresh = Box::into_raw(fresh) as *mut T;
        // AcqRel: Release publishes our initialised elements; Acquire sees the winner's.
        match self.buckets[bucket].compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(winner) => {
                // SAFETY: `fresh` came from `Box::into_raw` of a slice of this length just
                // above and was never shared, since the CAS that would have published it failed.
                drop(unsafe {
                    Box::from_raw(ptr::slice_from_raw_parts_mut(fresh, bucket_len(bucket)))
                });
                winner
            }
        }
    }
}

impl<T: Default> SegmentedVec<T> {
    /// Sets the first `len` elements back to their default (dropping what they held); the
    /// buckets stay allocated, so the array can serve again without allocating.
    pub(crate) fn reset(&mut self, len: usize) {
        let mut start = 0;
        for (bucket, pointer) in self.buckets.iter_mut().enumerate() {
            if start >= len {
                break;
            }
            let pointer = exclusive_ptr(pointer);
            let count = bucket_len(bucket).min(len - start);
            if !pointer.is_null() {
                // SAFETY: a non-null bucket holds `bucket_len(bucket)` initialised elements
                // (see `bucket`), and `&mut self` proves no reference into it is alive.
                let elements = unsafe { std::slice::from_raw_parts_mut(pointer, count) };
                elements.fill_with(T::default);
            }
            start += bucket_len(bucket);
        }
    }
}

impl<T> SegmentedVec<T> {
    /// The same buckets, as an array of `U`: `T` with other lifetimes (so that an array can
    /// outlive the borrows its type names and serve the next block).
    ///
    /// # Safety
    ///
    /// `U` is `T` with other lifetimes, and no element holds a borrow that `U`'s lifetimes
    /// would outlive (an element in its default state holds none).
    pub(crate) unsafe fn cast_lifetimes<U>(self) -> SegmentedVec<U> {
        assert!(
            size_of::<T>() == size_of::<U>() && align_of::<T>() == align_of::<U>(),
            "only lifetimes may differ"
        );
        let mut this = std::mem::ManuallyDrop::new(self);
        SegmentedVec {
            buckets: std::array::from_fn(|bucket| {
                AtomicPtr::new(exclusive_ptr(&mut this.buckets[bucket]).cast::<U>())
            }),
        }
    }
}

impl<T> Drop for SegmentedVec<T> {
    fn drop(&mut self) {
        for (bucket, pointer) in self.buckets.iter_mut().enumerate() {
            let pointer = exclusive_ptr(pointer);
            if !pointer.is_null() {
                // SAFETY: a non-null bucket pointer was published by `bucket` from
                // `Box::into_raw` of a slice of `bucket_len(bucket)` elements, and `&mut self`
                // proves no reference into it is alive.
                drop(unsafe {
                    Box::from_raw(ptr::slice_from_raw_parts_mut(pointer, bucket_len(bucket)))
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn locate_covers_indices_contiguously() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(FIRST - 1), (0, FIRST - 1));
        assert_eq!(locate(FIRST), (1, 0));
        assert_eq!(locate(3 * FIRST - 1), (1, 2 * FIRST - 1));
        assert_eq!(locate(3 * FIRST), (2, 0));
        let mut expected = (0, 0);
        for index in 0..20 * FIRST {
            assert_eq!(locate(index), expected, "{index}");
            expected.1 += 1;
            if expected.1 == bucket_len(expected.0) {
                expected = (expected.0 + 1, 0);
            }
        }
    }

    #[test]
    fn reset_restores_defaults_and_keeps_the_buckets() {
        let mut vec: SegmentedVec<AtomicUsize> = SegmentedVec::with_capacity(0);
        for i in 0..5 * FIRST {
            vec.get(i).store(i + 1, Ordering::Relaxed);
        }
        let first_bucket = vec.get(0) as *const AtomicUsize;
        vec.reset(3 * FIRST + 1);
        assert!((0..=3 * FIRST).all(|i| vec.get(i).load(Ordering::Relaxed) == 0));
        assert_eq!(
            vec.get(3 * FIRST + 1).load(Ordering::Relaxed),
            3 * FIRST + 2
        );
        assert_eq!(
            vec.get(0) as *const AtomicUsize,
            first_bucket,
            "no new allocation"
        );
        vec.reset(usize::MAX);
        assert!((0..5 * FIRST).all(|i| vec.get(i).load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn elements_are_stable_and_shared_between_threads() {
        let vec: SegmentedVec<AtomicUsize> = SegmentedVec::with_capacity(10);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..10 * FIRST {
                        vec.get(i).fetch_add(i, Ordering::Relaxed);
                    }
                });
            }
        });
        for i in 0..10 * FIRST {
            assert_eq!(vec.get(i).load(Ordering::Relaxed), 4 * i);
        }
    }
}
