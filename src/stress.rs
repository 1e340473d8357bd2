//! Stress mode: random delays at the engine's transition points, so that tests running on a
//! few cores still meet the interleavings that many cores produce.
//!
//! The scheduler, multi-version memory, VM adapter and worker loop call [`point`] between
//! the steps of each protocol transition (a status change and the index update that follows
//! it, a read and its recording, a validation and the abort it triggers). Normally the call
//! is one relaxed load of a flag that says "off" and a predicted branch. With the environment
//! variable `BLOCKSTM_STRESS=1` (read once, at the first call in the process), each call
//! instead draws from a per-thread generator and, half of the time, spins for up to a few
//! hundred iterations, yields the core, or sleeps for up to a hundred microseconds.
//!
//! Stress mode changes timing only, never results: a block must give the same output with it
//! on (see `tests/stress.rs`). Under `cfg(loom)` the points are empty; loom explores the
//! interleavings itself.
//!
//! Who calls it: `parallel` (worker loop) and `vm` (reads through MvMemory); `scheduler` and
//! `mv_memory` at their transitions.

#[cfg(not(loom))]
use std::sync::atomic::{AtomicU8, Ordering};

/// [`STATE`] before the environment was read.
#[cfg(not(loom))]
const UNKNOWN: u8 = 0;
/// [`STATE`] when stress mode is off.
#[cfg(not(loom))]
const OFF: u8 = 1;
/// [`STATE`] when stress mode is on.
#[cfg(not(loom))]
const ON: u8 = 2;

/// Whether stress mode is on. Relaxed everywhere: the value never changes after the first
/// read of the environment, and two threads that race on that first read store the same
/// value; nothing else is published through it.
#[cfg(not(loom))]
static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The name of the environment variable that switches stress mode on (value `1`).
#[cfg(not(loom))]
pub(crate) const ENV_VAR: &str = "BLOCKSTM_STRESS";

/// A transition point: does nothing unless stress mode is on, then maybe delays this thread.
#[inline(always)]
pub(crate) fn point() {
    #[cfg(not(loom))]
    if STATE.load(Ordering::Relaxed) != OFF {
        perturb();
    }
}

/// Whether stress mode is on (the engine also shrinks some thresholds then, so that small
/// test blocks take the paths that large blocks take). Never under loom.
pub(crate) fn enabled() -> bool {
    #[cfg(not(loom))]
    return state() == ON;
    #[cfg(loom)]
    return false;
}

/// [`STATE`], reading the environment on the first call.
#[cfg(not(loom))]
fn state() -> u8 {
    match STATE.load(Ordering::Relaxed) {
        UNKNOWN => {
            let on = std::env::var_os(ENV_VAR).is_some_and(|value| value == "1");
            let state = if on { ON } else { OFF };
            STATE.store(state, Ordering::Relaxed);
            state
        }
        state => state,
    }
}

/// Delays the thread at random when stress mode is on.
#[cfg(not(loom))]
#[cold]
#[inline(never)]
fn perturb() {
    if state() != ON {
        return;
    }
    let random = next_random();
    let amount = random >> 8;
    match random % 16 {
        // Half of the points run straight through, so that fast paths are also raced.
        0..=7 => {}
        8..=12 => {
            for _ in 0..amount % 512 {
                std::hint::spin_loop();
            }
        }
        13 | 14 => std::thread::yield_now(),
        _ => std::thread::sleep(std::time::Duration::from_micros(amount % 100)),
    }
}

/// A per-thread xorshift generator, seeded from a process-wide counter (splitmix64), so
/// that threads do not move in step.
#[cfg(not(loom))]
fn next_random() -> u64 {
    use std::cell::Cell;
    use std::sync::atomic::AtomicU64;

    static SEEDS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static RANDOM: Cell<u64> = const { Cell::new(0) };
    }
    RANDOM.with(|random| {
        let mut x = random.get();
        if x == 0 {
            // Relaxed: only uniqueness of the counter's values matters.
            let mut z = SEEDS
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
                .wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x = (z ^ (z >> 31)) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.set(x);
        x
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn threads_draw_different_sequences() {
        let here: Vec<u64> = (0..4).map(|_| next_random()).collect();
        let there = std::thread::spawn(|| (0..4).map(|_| next_random()).collect::<Vec<_>>())
            .join()
            .unwrap();
        assert_ne!(here, there);
        assert!(here.iter().all(|x| *x != 0));
    }

    #[test]
    fn points_only_delay() {
        point();
        let configured = STATE.load(Ordering::Relaxed);
        assert_ne!(configured, UNKNOWN, "the first point reads the environment");
        // Other tests of this binary may meet a few delays meanwhile: timing only.
        STATE.store(ON, Ordering::Relaxed);
        for _ in 0..200 {
            point();
        }
        STATE.store(configured, Ordering::Relaxed);
    }
}
