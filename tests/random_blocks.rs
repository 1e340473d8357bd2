//! proptest-generated blocks over a small universe of accounts and contracts
//! (`common::universe`): parallel execution at 2, 4 and 8 threads must return exactly what
//! sequential execution returns, results, state or error. Failures shrink to a small block.

mod common;

use common::universe::*;

use blockstm_evm::revm::primitives::hardfork::SpecId;
use blockstm_evm::revm::primitives::{Address, U256};
use blockstm_evm::{Block, BlockOutput, InMemoryStorage, Options, execute, execute_sequential};
use proptest::prelude::*;

proptest! {
    // PROPTEST_CASES raises the count for a deeper run.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn parallel_equals_sequential(spec in spec_id(), txs in prop::collection::vec(tx_spec(), 1..24)) {
        let storage = storage();
        let block = build_block(spec, &txs);
        let expected = execute_sequential(&storage, &block);
        for threads in [2, 4, 8] {
            let options = Options { sequential_below: Some(0), ..Options::with_concurrency(threads) };
            let actual = execute(&storage, &block, &options);
            match (&expected, &actual) {
                (Ok(expected), Ok(actual)) => prop_assert!(expected == actual, "{} threads:\nsequential {:#?}\nparallel {:#?}", threads, expected, actual),
                (Err(expected), Err(actual)) => {
                    prop_assert_eq!(expected.index(), actual.index(), "{} / {}", expected, actual);
                    prop_assert_eq!(expected.to_string(), actual.to_string());
                }
                _ => prop_assert!(false, "{} threads: sequential {:?}, parallel {:?}", threads, expected, actual),
            }
        }
    }
}

/// `execute` at 2 and 4 threads returns `expected`.
fn assert_parallel_matches(storage: &InMemoryStorage, block: &Block, expected: &BlockOutput) {
    for threads in [2, 4] {
        let options = Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(threads)
        };
        assert!(
            execute(storage, block, &options).unwrap() == *expected,
            "{threads} threads"
        );
    }
}

#[test]
fn the_universe_exercises_what_it_claims() {
    // A fixed block that creates, counts in, destroys and re-creates a child at one address,
    // so the generator's building blocks are known to work (and the differential test is not
    // comparing trivial failures).
    let storage = storage();
    let tx = |sender: usize, target: Address, arg0: u8, arg1: u64| TxSpec {
        sender,
        target: targets().iter().position(|t| *t == target).unwrap(),
        value: 0,
        arg0,
        arg1,
        gas_limit: 200_000,
        nonce_skew: 0,
        delegate: None,
    };
    let block = build_block(
        SpecId::SHANGHAI,
        &[
            tx(0, FACTORY2, 1, 5),  // create child 1
            tx(1, child2(1), 0, 0), // its slot 0 counts to 1
            tx(1, child2(1), 0, 5), // slot 0 counts to 2, then it self-destructs
            tx(0, FACTORY2, 1, 5),  // re-created at the same address: fresh storage
            tx(2, child2(1), 0, 0), // slot 0 counts to 1 again
            tx(2, STORE, 1, 5),
            tx(3, INSPECT, 0, 5),
        ],
    );
    let output = execute_sequential(&storage, &block).unwrap();
    assert!(
        output.results.iter().all(|r| r.is_success()),
        "{:#?}",
        output.results
    );
    let child = child2(1);
    assert!(
        output
            .state
            .account(&child)
            .expect("the child exists")
            .storage_wiped
    );
    assert_eq!(
        output.state.slot(&child, &U256::ZERO),
        Some(U256::from(1)),
        "storage not wiped"
    );
    assert_eq!(
        output.state.slot(&child, &U256::from(1)),
        Some(U256::from(1)),
        "constructor write lost"
    );
    assert_eq!(
        output.state.slot(&STORE, &U256::from(1)),
        Some(U256::from(5))
    );
    assert_parallel_matches(&storage, &block, &output);
}

#[test]
fn delegations_make_an_eoa_run_contract_code() {
    let storage = storage();
    let spec = |sender, target: Address, delegate| TxSpec {
        sender,
        target: targets().iter().position(|t| *t == target).unwrap(),
        value: 0,
        arg0: 1,
        arg1: 3,
        gas_limit: 200_000,
        nonce_skew: 0,
        delegate,
    };
    // E0 authorises E2 -> STORE; then E1 calls E2, which runs STORE's code in E2's storage.
    let block = build_block(
        SpecId::PRAGUE,
        &[spec(0, EOAS[1], Some((2, 0))), spec(1, EOAS[2], None)],
    );
    let output = execute_sequential(&storage, &block).unwrap();
    assert!(
        output.results.iter().all(|r| r.is_success()),
        "{:#?}",
        output.results
    );
    let delegated = output.state.info(&EOAS[2]).unwrap().unwrap();
    assert_eq!(
        output.state.contracts[&delegated.code_hash].original_bytes()[..3],
        [0xef, 0x01, 0x00]
    );
    assert_eq!(
        output.state.slot(&EOAS[2], &U256::from(1)),
        Some(U256::from(3))
    );
    assert_parallel_matches(&storage, &block, &output);
}
