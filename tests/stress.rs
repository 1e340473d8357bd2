//! The generated workloads at 16 threads in stress mode (`BLOCKSTM_STRESS=1`: random spins,
//! yields and short sleeps at the engine's transition points, see `src/stress.rs`), compared
//! with sequential execution. On a machine with few cores, 16 threads and the delays give
//! interleavings that plain runs rarely reach: preemption between a status change and the
//! index update after it, a read recorded long after it was made, a validation racing the
//! re-execution it aborts.
//!
//! Every test switches stress mode on before its first execution (the engine reads the
//! variable once per process). Each workload runs with 24 seeds in release builds, 6 otherwise
//! (`STRESS_ROUNDS` sets another number); sizes and rounds keep the file well under a minute
//! with `--release` on two cores.

use std::sync::Once;

use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::{Options, execute, execute_sequential};

const THREADS: usize = 16;

fn stress_mode() {
    static ON: Once = Once::new();
    ON.call_once(|| {
        // SAFETY: only Rust code in this process reads the environment, and std serialises
        // its own reads and writes of it.
        unsafe { std::env::set_var("BLOCKSTM_STRESS", "1") };
    });
}

fn rounds() -> u64 {
    std::env::var("STRESS_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        // An unoptimised build (plain `cargo test`) runs a quarter of the rounds.
        .unwrap_or(if cfg!(debug_assertions) { 6 } else { 24 })
}

/// `spec` at [`THREADS`] threads in stress mode equals sequential, for `rounds()` seeds
/// (default 24 in release builds).
fn check(spec: WorkloadSpec) {
    stress_mode();
    for seed in 1..=rounds() {
        let spec = spec.clone().with_seed(seed);
        let workload = spec.generate().expect("a valid workload");
        let expected = execute_sequential(&workload.storage, &workload.block).unwrap();
        let options = Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(THREADS)
        };
        let actual = execute(&workload.storage, &workload.block, &options).unwrap();
        assert!(actual == expected, "{spec:?}: parallel differs");
    }
}

#[test]
fn raw_transfers() {
    check(WorkloadSpec::new(WorkloadKind::Raw, 1_000));
}

#[test]
fn erc20_transfers_on_two_tokens() {
    check(WorkloadSpec::new(WorkloadKind::Erc20, 600).with_contracts(2));
}

#[test]
fn amm_swaps_on_few_pools() {
    check(WorkloadSpec::new(WorkloadKind::Amm, 400).with_contracts(3));
}

#[test]
fn hybrid_with_a_hot_pool() {
    check(WorkloadSpec::new(WorkloadKind::Hybrid, 400).with_hot(0.5));
}

#[test]
fn a_dependent_chain() {
    check(WorkloadSpec::new(WorkloadKind::Chain, 200));
}
