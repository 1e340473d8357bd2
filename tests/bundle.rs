//! `StateChanges::into_bundle_state` against the bundle revm's own `State` builds when it
//! commits the block transaction by transaction, on hand-made self-destruct blocks, the
//! generated workloads and the mainnet blocks; and the storage-wipe regression of the old
//! `to_bundle_state` (built with `BundleState::new`, it marked every account `Changed`).

mod common;

use blockstm_cli::replay::MainnetData;
use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::revm::database::AccountStatus;
use blockstm_evm::revm::primitives::hardfork::SpecId;
use blockstm_evm::revm::primitives::{Bytes, U256};
use blockstm_evm::{Options, execute, execute_sequential};
use common::{
    addr, block, bundle_difference, call, code, funded, mainnet_dir, revm_state_bundle,
    wiped_accounts,
};

/// `SSTORE(0, SLOAD(0) + 1); if calldata is not empty { SELFDESTRUCT(CALLER) }`.
const COUNTER_OR_DESTRUCT: [u8; 17] = [
    0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x60, 0x00, 0x55, 0x36, 0x60, 0x0e, 0x57, 0x00, 0x5b, 0x33,
    0xff,
];

fn forced(threads: usize) -> Options {
    Options {
        sequential_below: Some(0),
        ..Options::with_concurrency(threads)
    }
}

#[test]
fn a_self_destructed_account_keeps_its_storage_wipe_in_the_bundle() {
    let (alice, bob, victim) = (addr(0xa1), addr(0xb0), addr(0xc0));
    let mut storage = funded(&[alice, bob]);
    storage.insert_account(victim, U256::from(7), 1, Some(code(&COUNTER_OR_DESTRUCT)));
    storage.set_storage(victim, U256::ZERO, U256::from(5));
    storage.set_storage(victim, U256::from(1), U256::from(9));
    let destroy = call(alice, 0, victim, U256::ZERO, Bytes::from_static(&[1]));
    let fund = call(bob, 0, victim, U256::from(3), Bytes::new());
    // Destroyed (Shanghai: SELFDESTRUCT deletes), destroyed then funded again in the next
    // transaction, and the Cancun control where SELFDESTRUCT only moves the balance.
    let cases = [
        (
            SpecId::SHANGHAI,
            vec![destroy.clone()],
            Some(AccountStatus::Destroyed),
        ),
        (
            SpecId::SHANGHAI,
            vec![destroy.clone(), fund.clone()],
            Some(AccountStatus::DestroyedChanged),
        ),
        (SpecId::CANCUN, vec![destroy, fund], None),
    ];
    for (spec, txs, destroyed) in cases {
        let txs_len = txs.len();
        let block = block(spec, txs);
        let output = execute(&storage, &block, &forced(2)).unwrap();
        assert_eq!(output, execute_sequential(&storage, &block).unwrap());
        let change = output.state.account(&victim).unwrap();
        assert_eq!(
            change.storage_wiped,
            destroyed.is_some(),
            "{spec:?} {txs_len}"
        );

        let expected = revm_state_bundle(&storage, &block);
        let bundle = output.state.to_bundle_state();
        let label = format!("{spec:?}, {txs_len} txs");
        if let Some(difference) = bundle_difference(&expected, &bundle) {
            panic!("{label}: to_bundle_state differs from revm's State: {difference}");
        }
        assert_eq!(bundle, output.state.clone().into_bundle_state(), "{label}");
        let account = &bundle.state[&victim];
        match destroyed {
            Some(status) => {
                assert_eq!(account.status, status, "{label}");
                assert!(account.was_destroyed(), "{label}");
                assert_eq!(
                    wiped_accounts(&bundle),
                    1,
                    "{label}: the wipe reaches the plain state"
                );
                let revert = bundle.reverts[0]
                    .iter()
                    .find(|(address, _)| *address == victim)
                    .map(|(_, revert)| revert)
                    .unwrap();
                assert!(
                    revert.wipe_storage,
                    "{label}: the revert wipes the new storage"
                );
            }
            None => {
                assert!(!account.was_destroyed(), "{label}");
                assert_eq!(wiped_accounts(&bundle), 0, "{label}");
            }
        }
    }
}

#[test]
fn into_bundle_state_equals_revm_states_bundle_on_the_workloads() {
    let mut compared = 0;
    for kind in WorkloadKind::ALL {
        for (txs, threads) in [(40, 1), (300, 4)] {
            let workload = WorkloadSpec::new(kind, txs).generate().unwrap();
            let output = execute(&workload.storage, &workload.block, &forced(threads)).unwrap();
            let expected = revm_state_bundle(&workload.storage, &workload.block);
            let accounts = output.state.accounts.len();
            let bundle = output.state.into_bundle_state();
            if let Some(difference) = bundle_difference(&expected, &bundle) {
                panic!("{kind:?} ({txs} txs): {difference}");
            }
            assert!(
                bundle.state.len() >= accounts.min(1),
                "{kind:?}: an empty bundle"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 2 * WorkloadKind::ALL.len());
}

#[test]
fn into_bundle_state_equals_revm_states_bundle_on_the_mainnet_blocks() {
    let Some(dir) = mainnet_dir("mainnet bundles") else {
        return;
    };
    let data = MainnetData::load(&dir).unwrap();
    let numbers = data.block_numbers().unwrap();
    assert!(!numbers.is_empty(), "no blocks under {}", dir.display());
    let (mut failures, mut wiped, mut blocks_with_wipes) = (Vec::new(), 0, 0);
    for number in &numbers {
        let block = data.block(*number).unwrap();
        let output = execute(&block.storage, &block.block, &forced(2)).unwrap();
        let expected = revm_state_bundle(&block.storage, &block.block);
        let bundle = output.state.into_bundle_state();
        if let Some(difference) = bundle_difference(&expected, &bundle) {
            failures.push(format!("block {number}: {difference}"));
        }
        let wipes = wiped_accounts(&bundle);
        wiped += wipes;
        blocks_with_wipes += usize::from(wipes > 0);
    }
    println!(
        "{} mainnet bundles compared, {} failures; {wiped} storage wipes in {blocks_with_wipes} blocks",
        numbers.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The blocks include self-destructs, so the wipe path is exercised.
    assert!(wiped > 0, "no storage wipe in any mainnet block");
}
