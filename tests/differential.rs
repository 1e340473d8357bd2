//! Parallel execution equals sequential execution on every generated workload, at every
//! concurrency, for several seeds and hot ratios.

use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::{Options, execute, execute_sequential};

const CONCURRENCIES: [usize; 5] = [1, 2, 4, 8, 16];

fn forced(threads: usize) -> Options {
    Options {
        sequential_below: Some(0),
        ..Options::with_concurrency(threads)
    }
}

fn assert_parallel_equals_sequential(spec: &WorkloadSpec) {
    let workload = spec.generate().unwrap();
    let expected = execute_sequential(&workload.storage, &workload.block).unwrap();
    assert!(expected.results.iter().all(|r| r.is_success()), "{spec:?}");
    for threads in CONCURRENCIES {
        let actual = execute(&workload.storage, &workload.block, &forced(threads)).unwrap();
        assert!(
            actual == expected,
            "{spec:?} at {threads} threads differs from sequential"
        );
    }
}

#[test]
fn raw_transfers() {
    for seed in [1, 2, 3] {
        assert_parallel_equals_sequential(
            &WorkloadSpec::new(WorkloadKind::Raw, 400).with_seed(seed),
        );
    }
}

/// Blocks of 4,096 transactions and more are planned in two parts: a prefix before the
/// workers start, the rest by a worker while the others execute (and wait for it).
#[test]
fn blocks_large_enough_to_be_planned_while_they_execute() {
    assert_parallel_equals_sequential(&WorkloadSpec::new(WorkloadKind::Raw, 6_000));
    assert_parallel_equals_sequential(
        &WorkloadSpec::new(WorkloadKind::Erc20, 4_500).with_contracts(3),
    );
    assert_parallel_equals_sequential(&WorkloadSpec::new(WorkloadKind::Hybrid, 4_200));
}

#[test]
fn erc20_transfers() {
    for seed in [1, 2, 3] {
        assert_parallel_equals_sequential(
            &WorkloadSpec::new(WorkloadKind::Erc20, 300).with_seed(seed),
        );
        // Few tokens, so that holders' transfers meet in the same contract.
        assert_parallel_equals_sequential(
            &WorkloadSpec::new(WorkloadKind::Erc20, 200)
                .with_seed(seed)
                .with_contracts(1),
        );
    }
}

#[test]
fn amm_swaps_on_independent_and_shared_pools() {
    for seed in [1, 2] {
        assert_parallel_equals_sequential(
            &WorkloadSpec::new(WorkloadKind::Amm, 200).with_seed(seed),
        );
        assert_parallel_equals_sequential(
            &WorkloadSpec::new(WorkloadKind::Amm, 200)
                .with_seed(seed)
                .with_contracts(3),
        );
    }
}

#[test]
fn hybrid_at_every_hot_ratio() {
    for hot in [0.0, 0.1, 0.5, 1.0] {
        for seed in [1, 2] {
            assert_parallel_equals_sequential(
                &WorkloadSpec::new(WorkloadKind::Hybrid, 200)
                    .with_seed(seed)
                    .with_hot(hot),
            );
        }
    }
}

#[test]
fn fully_dependent_chain() {
    for seed in [1, 2] {
        assert_parallel_equals_sequential(
            &WorkloadSpec::new(WorkloadKind::Chain, 200).with_seed(seed),
        );
    }
}

#[test]
fn invalid_transaction_gives_the_sequential_error_even_after_speculation() {
    for k in [0, 57, 199] {
        let mut workload = WorkloadSpec::new(WorkloadKind::Erc20, 200)
            .generate()
            .unwrap();
        workload.block.txs[k].nonce += 1;
        let expected = execute_sequential(&workload.storage, &workload.block).unwrap_err();
        for threads in CONCURRENCIES {
            let actual = execute(&workload.storage, &workload.block, &forced(threads)).unwrap_err();
            assert_eq!(actual.index(), Some(k));
            assert_eq!(actual.to_string(), expected.to_string());
        }
    }
}

#[test]
fn executing_many_blocks_in_a_row_gives_the_same_answers() {
    let workload = WorkloadSpec::new(WorkloadKind::Hybrid, 100)
        .with_hot(0.5)
        .generate()
        .unwrap();
    let expected = execute_sequential(&workload.storage, &workload.block).unwrap();
    for _ in 0..20 {
        assert!(execute(&workload.storage, &workload.block, &forced(4)).unwrap() == expected);
    }
}

#[test]
fn many_transfers_to_one_recipient_that_also_spends() {
    use blockstm_evm::revm::primitives::{TxKind, U256};
    let mut workload = WorkloadSpec::new(WorkloadKind::Raw, 300)
        .generate()
        .unwrap();
    // Everyone pays the first sender; halfway, it spends more than it held before the block.
    let hot = workload.block.txs[0].caller;
    for tx in workload.block.txs.iter_mut().skip(1) {
        tx.kind = TxKind::Call(hot);
    }
    let mut spend = workload.block.txs[0].clone();
    spend.nonce = 1;
    spend.value = U256::from(1_000u128 * 10u128.pow(18));
    workload.block.txs.insert(150, spend);
    let expected = execute_sequential(&workload.storage, &workload.block).unwrap();
    assert!(expected.results.iter().all(|r| r.is_success()));
    for threads in CONCURRENCIES {
        let actual = execute(&workload.storage, &workload.block, &forced(threads)).unwrap();
        assert!(actual == expected, "{threads} threads");
    }
}
