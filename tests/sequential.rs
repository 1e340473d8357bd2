//! The sequential reference: its errors, its results and its state-change rules.

mod common;

use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::revm::context::result::InvalidTransaction;
use blockstm_evm::revm::primitives::hardfork::SpecId;
use blockstm_evm::revm::primitives::{Bytes, KECCAK_EMPTY, U256};
use blockstm_evm::{BlockError, InMemoryStorage, execute_sequential};
use common::{ETHER, Fault, Faulty, addr, block, call, code, create, funded};

#[test]
fn invalid_nonce_at_index_k_is_reported_at_k() {
    for k in [0, 3, 9] {
        let mut workload = WorkloadSpec::new(WorkloadKind::Raw, 10).generate().unwrap();
        workload.block.txs[k].nonce = 5;
        let error = execute_sequential(&workload.storage, &workload.block).unwrap_err();
        match error {
            BlockError::InvalidTransaction { index, reason } => {
                assert_eq!(index, k);
                assert_eq!(reason, InvalidTransaction::NonceTooHigh { tx: 5, state: 0 });
            }
            other => panic!("expected an invalid nonce, got {other}"),
        }
    }
}

#[test]
fn reused_nonce_after_a_valid_transaction_is_too_low() {
    let alice = addr(0xa1);
    let storage = funded(&[alice]);
    let txs = vec![
        call(alice, 0, addr(0xb0), U256::from(1), Bytes::new()),
        call(alice, 0, addr(0xb0), U256::from(1), Bytes::new()),
    ];
    let error = execute_sequential(&storage, &block(SpecId::PRAGUE, txs)).unwrap_err();
    assert!(
        matches!(
            error,
            BlockError::InvalidTransaction {
                index: 1,
                reason: InvalidTransaction::NonceTooLow { tx: 0, state: 1 }
            }
        ),
        "{error}"
    );
}

#[test]
fn balance_gas_and_intrinsic_gas_errors_name_the_transaction() {
    let alice = addr(0xa1);
    let storage = funded(&[alice]);
    let ok = call(alice, 0, addr(0xb0), U256::from(1), Bytes::new());
    let rich = call(
        alice,
        1,
        addr(0xb0),
        U256::from(1_000 * ETHER),
        Bytes::new(),
    );
    let mut greedy = call(alice, 1, addr(0xb0), U256::ZERO, Bytes::new());
    greedy.gas_limit = 40_000_000;
    let mut stingy = call(alice, 1, addr(0xb0), U256::ZERO, Bytes::new());
    stingy.gas_limit = 20_000;
    let expect = |tx, check: fn(&InvalidTransaction) -> bool| {
        let error =
            execute_sequential(&storage, &block(SpecId::PRAGUE, vec![ok.clone(), tx])).unwrap_err();
        match &error {
            BlockError::InvalidTransaction { index: 1, reason } if check(reason) => {}
            other => panic!("unexpected error {other}"),
        }
        assert_eq!(error.index(), Some(1));
    };
    expect(rich, |r| {
        matches!(r, InvalidTransaction::LackOfFundForMaxFee { .. })
    });
    expect(greedy, |r| {
        matches!(r, InvalidTransaction::CallerGasLimitMoreThanBlock)
    });
    expect(stingy, |r| {
        matches!(r, InvalidTransaction::CallGasCostMoreThanGasLimit { .. })
    });
}

#[test]
fn header_missing_prevrandao_after_the_merge_is_a_header_error() {
    let alice = addr(0xa1);
    let mut block = block(
        SpecId::PRAGUE,
        vec![call(alice, 0, addr(0xb0), U256::ONE, Bytes::new())],
    );
    block.env.prevrandao = None;
    let error = execute_sequential(&funded(&[alice]), &block).unwrap_err();
    assert!(
        matches!(error, BlockError::InvalidHeader { index: 0, .. }),
        "{error}"
    );
}

#[test]
fn storage_failure_is_reported_with_the_transaction_and_the_source() {
    let alice = addr(0xa1);
    let storage = Faulty {
        inner: funded(&[alice]),
        poisoned: addr(0xdd),
        fault: Fault::Error,
    };
    let txs = vec![
        call(alice, 0, addr(0xb0), U256::ONE, Bytes::new()),
        call(alice, 1, addr(0xdd), U256::ONE, Bytes::new()),
    ];
    let error = execute_sequential(&storage, &block(SpecId::PRAGUE, txs)).unwrap_err();
    match &error {
        BlockError::Storage { index: 1, source } => assert_eq!(source.to_string(), "disk on fire"),
        other => panic!("expected a storage error, got {other}"),
    }
    assert!(error.to_string().contains("transaction 1"));
}

/// Init code that deploys `runtime` (at most 255 bytes).
fn deployer(runtime: &[u8]) -> Vec<u8> {
    let len = runtime.len() as u8;
    // PUSH1 len PUSH1 12 PUSH1 0 CODECOPY PUSH1 len PUSH1 0 RETURN <runtime>
    let mut init = vec![0x60, len, 0x60, 12, 0x60, 0, 0x39, 0x60, len, 0x60, 0, 0xf3];
    init.extend_from_slice(runtime);
    init
}

#[test]
fn creation_reports_the_address_and_the_new_code() {
    let alice = addr(0xa1);
    let runtime = [0x60, 0x2a, 0x60, 0x00, 0x55, 0x00]; // SSTORE(0, 42); STOP
    let txs = vec![create(alice, 0, deployer(&runtime))];
    let output = execute_sequential(&funded(&[alice]), &block(SpecId::PRAGUE, txs)).unwrap();
    let created = output.results[0].created_address().expect("an address");
    assert_eq!(created, alice.create(0));
    let info = output.state.info(&created).unwrap().unwrap();
    assert_ne!(info.code_hash, KECCAK_EMPTY);
    assert_eq!(
        output.state.contracts[&info.code_hash]
            .original_bytes()
            .as_ref(),
        &runtime
    );
    assert!(output.state.account(&created).unwrap().storage_wiped);
}

#[test]
fn self_destruct_before_cancun_deletes_the_account_and_its_storage() {
    let (alice, victim, heir) = (addr(0xa1), addr(0xc0), addr(0xe1));
    let mut storage = funded(&[alice]);
    // SELFDESTRUCT(heir)
    let mut runtime = vec![0x73];
    runtime.extend_from_slice(heir.as_slice());
    runtime.push(0xff);
    storage.insert_account(victim, U256::from(7), 1, Some(code(&runtime)));
    storage.set_storage(victim, U256::from(1), U256::from(99));
    for (spec, destroyed) in [(SpecId::SHANGHAI, true), (SpecId::CANCUN, false)] {
        let txs = vec![call(alice, 0, victim, U256::ZERO, Bytes::new())];
        let output = execute_sequential(&storage, &block(spec, txs)).unwrap();
        let change = output.state.account(&victim).unwrap();
        assert_eq!(change.info.is_none(), destroyed, "{spec:?}");
        assert_eq!(change.storage_wiped, destroyed, "{spec:?}");
        // Either way the balance went to the heir.
        assert_eq!(
            output.state.info(&heir).unwrap().unwrap().balance,
            U256::from(7)
        );
    }
}

#[test]
fn touching_an_empty_account_deletes_it_after_spurious_dragon_only() {
    let (alice, empty) = (addr(0xa1), addr(0xe0));
    let mut storage = funded(&[alice]);
    storage.insert_account(empty, U256::ZERO, 0, None);
    let ghost = addr(0x60);
    let txs = || {
        vec![
            call(alice, 0, empty, U256::ZERO, Bytes::new()),
            call(alice, 1, ghost, U256::ZERO, Bytes::new()),
        ]
    };
    // Spurious Dragon on: the touched empty account is deleted; the untouched ghost stays absent.
    let output = execute_sequential(&storage, &block(SpecId::SPURIOUS_DRAGON, txs())).unwrap();
    assert_eq!(output.state.info(&empty), Some(None));
    assert!(output.state.account(&ghost).is_none());
    // Before it: touching creates an empty account.
    let output = execute_sequential(&storage, &block(SpecId::TANGERINE, txs())).unwrap();
    assert!(
        output.state.account(&empty).is_none(),
        "an existing empty account stays as it was"
    );
    let ghost_change = output.state.account(&ghost).unwrap();
    assert!(ghost_change.original.is_none());
    assert_eq!(ghost_change.info.as_ref().unwrap().balance, U256::ZERO);
}

#[test]
fn state_changes_convert_to_a_bundle_state() {
    let workload = WorkloadSpec::new(WorkloadKind::Erc20, 20)
        .generate()
        .unwrap();
    let output = execute_sequential(&workload.storage, &workload.block).unwrap();
    let bundle = output.state.to_bundle_state();
    assert_eq!(bundle.state.len(), output.state.accounts.len());
    for (address, change) in &output.state.accounts {
        let account = &bundle.state[address];
        assert_eq!(account.info, change.info);
        assert_eq!(account.original_info, change.original);
        for (slot, value) in &change.storage {
            assert_eq!(account.storage[slot].present_value, value.present);
            assert_eq!(
                account.storage[slot].previous_or_original_value,
                value.original
            );
        }
    }
    assert_eq!(bundle.reverts.len(), 1);
}

#[test]
fn an_empty_block_changes_nothing() {
    let output =
        execute_sequential(&InMemoryStorage::new(), &block(SpecId::PRAGUE, vec![])).unwrap();
    assert!(output.results.is_empty());
    assert_eq!(output.gas_used(), 0);
    assert!(output.state.accounts.is_empty());
}
