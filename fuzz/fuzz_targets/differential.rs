//! Differential target: bytes decode into a small universe of EOAs and contracts and a block
//! of up to 64 transactions (see `universe`), which run through `execute_sequential` and
//! `execute` at 2, 4 and 8 threads. Any difference, or any panic, is a crash.

#![no_main]

use blockstm_evm_fuzz::universe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(divergence) = universe::check(data) {
        panic!("{divergence}");
    }
});
