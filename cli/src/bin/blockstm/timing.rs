//! Timing helpers shared by the CLI's commands.

use std::time::{Duration, Instant};

/// Runs `f` and returns how long it took with its value.
pub fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let value = f();
    (start.elapsed(), value)
}

/// The median of `times` in milliseconds (the mean of the middle two for an even count).
pub fn median_ms(times: &mut [Duration]) -> f64 {
    times.sort();
    let mid = times.len() / 2;
    let median = if times.len().is_multiple_of(2) {
        (times[mid - 1] + times[mid]) / 2
    } else {
        times[mid]
    };
    median.as_secs_f64() * 1e3
}
