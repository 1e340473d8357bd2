//! The workloads' Solidity contracts behave as an ERC-20 and a constant-product pool should.

#[path = "../../tests/common/mod.rs"]
mod common;

use blockstm_cli::workloads::contracts::{
    erc20_balance_of, erc20_transfer, mapping_slot, nested_mapping_slot, pair, pair_amount_out,
    pair_swap, token,
};
use blockstm_evm::InMemoryStorage;
use blockstm_evm::execute_sequential;
use blockstm_evm::revm::context::result::ExecutionResult;
use blockstm_evm::revm::primitives::hardfork::SpecId;
use blockstm_evm::revm::primitives::{Address, U256, keccak256};
use common::{ETHER, addr, block, call, funded};

fn balance_slot(holder: Address) -> U256 {
    mapping_slot(holder, token().unwrap().slot("_balances").unwrap())
}

fn deploy_token(storage: &mut InMemoryStorage, at: Address, holders: &[(Address, U256)]) {
    storage.insert_account(at, U256::ZERO, 1, Some(token().unwrap().code().clone()));
    for (holder, amount) in holders {
        storage.set_storage(at, balance_slot(*holder), *amount);
    }
}

#[test]
fn erc20_transfer_moves_the_balance_and_logs_it() {
    let (alice, bob, tok) = (addr(0xa1), addr(0xb0), addr(0x70));
    let mut storage = funded(&[alice]);
    deploy_token(&mut storage, tok, &[(alice, U256::from(1_000))]);
    let txs = vec![
        call(
            alice,
            0,
            tok,
            U256::ZERO,
            erc20_transfer(bob, U256::from(300)),
        ),
        call(alice, 1, tok, U256::ZERO, erc20_balance_of(bob)),
    ];
    let output = execute_sequential(&storage, &block(SpecId::PRAGUE, txs)).unwrap();
    assert!(
        output.results.iter().all(|r| r.is_success()),
        "{:?}",
        output.results
    );
    assert_eq!(
        output.state.slot(&tok, &balance_slot(alice)),
        Some(U256::from(700))
    );
    assert_eq!(
        output.state.slot(&tok, &balance_slot(bob)),
        Some(U256::from(300))
    );
    let logs = output.results[0].logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].topics()[0],
        keccak256("Transfer(address,address,uint256)")
    );
    assert_eq!(logs[0].topics()[2], bob.into_word());
    // balanceOf reads what the transfer wrote.
    let returned = output.results[1].result.output().unwrap();
    assert_eq!(U256::from_be_slice(returned), U256::from(300));
}

#[test]
fn erc20_transfer_beyond_the_balance_reverts_and_changes_no_balance() {
    let (alice, bob, tok) = (addr(0xa1), addr(0xb0), addr(0x70));
    let mut storage = funded(&[alice]);
    deploy_token(&mut storage, tok, &[(alice, U256::from(10))]);
    let txs = vec![call(
        alice,
        0,
        tok,
        U256::ZERO,
        erc20_transfer(bob, U256::from(11)),
    )];
    let output = execute_sequential(&storage, &block(SpecId::PRAGUE, txs)).unwrap();
    assert!(matches!(
        output.results[0].result,
        ExecutionResult::Revert { .. }
    ));
    assert!(
        output.state.account(&tok).is_none(),
        "a reverted transfer changed the token"
    );
    // The sender still paid for gas and used its nonce.
    assert_eq!(output.state.info(&alice).unwrap().unwrap().nonce, 1);
}

#[test]
fn swap_pays_the_fee_and_never_decreases_the_product_of_reserves() {
    let (trader, pool, t0, t1) = (addr(0xa1), addr(0x90), addr(0x70), addr(0x71));
    let (reserve0, reserve1) = (U256::from(1_000_000 * ETHER), U256::from(2_000_000 * ETHER));
    let amount_in = U256::from(5_000 * ETHER);
    let mut storage = funded(&[trader]);
    deploy_token(&mut storage, t0, &[(pool, reserve0), (trader, amount_in)]);
    deploy_token(&mut storage, t1, &[(pool, reserve1)]);
    let allowances = token().unwrap().slot("_allowances").unwrap();
    storage.set_storage(t0, nested_mapping_slot(trader, pool, allowances), U256::MAX);
    let pair = pair().unwrap();
    storage.insert_account(pool, U256::ZERO, 1, Some(pair.code().clone()));
    let slot = |label| pair.slot(label).unwrap();
    storage.set_storage(pool, slot("token0"), t0.into_word().into());
    storage.set_storage(pool, slot("token1"), t1.into_word().into());
    storage.set_storage(pool, slot("reserve0"), reserve0);
    storage.set_storage(pool, slot("reserve1"), reserve1);

    let txs = vec![call(
        trader,
        0,
        pool,
        U256::ZERO,
        pair_swap(amount_in, U256::from(1), true, trader),
    )];
    let output = execute_sequential(&storage, &block(SpecId::PRAGUE, txs)).unwrap();
    assert!(output.results[0].is_success(), "{:?}", output.results[0]);

    let expected_out = pair_amount_out(amount_in, reserve0, reserve1);
    let fee_free_out = amount_in * reserve1 / (reserve0 + amount_in);
    assert!(expected_out < fee_free_out, "the pool charged no fee");
    assert_eq!(
        output.state.slot(&t1, &balance_slot(trader)),
        Some(expected_out)
    );
    let new0 = output.state.slot(&pool, &slot("reserve0")).unwrap();
    let new1 = output.state.slot(&pool, &slot("reserve1")).unwrap();
    assert_eq!(new0, reserve0 + amount_in);
    assert_eq!(new1, reserve1 - expected_out);
    assert!(new0 * new1 >= reserve0 * reserve1, "x*y decreased");
    // Two transfers, then Swap and Sync.
    let logs = output.results[0].logs();
    assert_eq!(logs.len(), 4);
    assert_eq!(logs[3].topics()[0], keccak256("Sync(uint256,uint256)"));
}

#[test]
fn swap_without_allowance_reverts() {
    let (trader, pool, t0, t1) = (addr(0xa1), addr(0x90), addr(0x70), addr(0x71));
    let mut storage = funded(&[trader]);
    deploy_token(
        &mut storage,
        t0,
        &[(pool, U256::from(ETHER)), (trader, U256::from(ETHER))],
    );
    deploy_token(&mut storage, t1, &[(pool, U256::from(ETHER))]);
    let pair = pair().unwrap();
    storage.insert_account(pool, U256::ZERO, 1, Some(pair.code().clone()));
    storage.set_storage(pool, pair.slot("token0").unwrap(), t0.into_word().into());
    storage.set_storage(pool, pair.slot("token1").unwrap(), t1.into_word().into());
    storage.set_storage(pool, pair.slot("reserve0").unwrap(), U256::from(ETHER));
    storage.set_storage(pool, pair.slot("reserve1").unwrap(), U256::from(ETHER));
    let txs = vec![call(
        trader,
        0,
        pool,
        U256::ZERO,
        pair_swap(U256::from(1000), U256::ZERO, true, trader),
    )];
    let output = execute_sequential(&storage, &block(SpecId::PRAGUE, txs)).unwrap();
    assert!(matches!(
        output.results[0].result,
        ExecutionResult::Revert { .. }
    ));
    assert!(output.state.account(&pool).is_none());
}
