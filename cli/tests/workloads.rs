//! Every generator builds a block that executes successfully and does what its name says.

use std::collections::HashMap;

use blockstm_cli::workloads::{MAX_TXS, WorkloadError, WorkloadKind, WorkloadSpec};
use blockstm_evm::execute_sequential;
use blockstm_evm::revm::primitives::{Address, TxKind, U256};

fn target(tx: &blockstm_evm::revm::context::TxEnv) -> Address {
    match tx.kind {
        TxKind::Call(to) => to,
        TxKind::Create => panic!("generators make no creations"),
    }
}

#[test]
fn every_workload_executes_with_every_transaction_successful() {
    for kind in WorkloadKind::ALL {
        let workload = WorkloadSpec::new(kind, 300).generate().unwrap();
        assert_eq!(workload.block.txs.len(), 300, "{kind}");
        let output = execute_sequential(&workload.storage, &workload.block).unwrap();
        let failed: Vec<_> = output
            .results
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_success())
            .collect();
        assert!(failed.is_empty(), "{kind}: failed transactions {failed:?}");
        // Every transaction tips the beneficiary: it gained the tip on all gas used.
        let beneficiary = workload.block.env.beneficiary;
        let tips = output
            .results
            .iter()
            .map(|r| U256::from(r.gas_used()))
            .sum::<U256>()
            * U256::from(1_000_000_000u64);
        let info = output.state.info(&beneficiary).unwrap().unwrap();
        assert_eq!(info.balance, tips, "{kind}");
        // Cumulative gas is the running sum of gas used.
        let mut sum = 0;
        for result in &output.results {
            sum += result.gas_used();
            assert_eq!(result.cumulative_gas_used, sum);
        }
    }
}

#[test]
fn raw_transfers_credit_fresh_recipients_from_distinct_senders() {
    let workload = WorkloadSpec::new(WorkloadKind::Raw, 200)
        .generate()
        .unwrap();
    let output = execute_sequential(&workload.storage, &workload.block).unwrap();
    let mut senders = std::collections::HashSet::new();
    for tx in &workload.block.txs {
        assert!(senders.insert(tx.caller), "sender reused");
        let recipient = output.state.account(&target(tx)).unwrap();
        assert!(recipient.original.is_none(), "recipient existed before");
        assert_eq!(recipient.info.as_ref().unwrap().balance, tx.value);
        assert_eq!(output.state.info(&tx.caller).unwrap().unwrap().nonce, 1);
    }
}

#[test]
fn erc20_uses_the_requested_number_of_tokens() {
    let workload = WorkloadSpec::new(WorkloadKind::Erc20, 100)
        .with_contracts(4)
        .generate()
        .unwrap();
    let tokens: std::collections::HashSet<_> = workload.block.txs.iter().map(target).collect();
    assert_eq!(tokens.len(), 4);
    let output = execute_sequential(&workload.storage, &workload.block).unwrap();
    for token in tokens {
        // Each transfer changes two balances of its token.
        let changed = output.state.account(&token).unwrap().storage.len();
        assert_eq!(changed, 2 * 25, "token {token}");
    }
}

#[test]
fn amm_swaps_on_independent_pools_by_default_and_share_pools_when_asked() {
    let independent = WorkloadSpec::new(WorkloadKind::Amm, 50).generate().unwrap();
    let pools: std::collections::HashSet<_> = independent.block.txs.iter().map(target).collect();
    assert_eq!(pools.len(), 50);
    let shared = WorkloadSpec::new(WorkloadKind::Amm, 50)
        .with_contracts(2)
        .generate()
        .unwrap();
    let pools: std::collections::HashSet<_> = shared.block.txs.iter().map(target).collect();
    assert_eq!(pools.len(), 2);
    let output = execute_sequential(&shared.storage, &shared.block).unwrap();
    assert!(output.results.iter().all(|r| r.is_success()));
}

#[test]
fn hybrid_hot_ratio_controls_how_many_transactions_hit_one_contract() {
    let most_common_target_share = |hot: f64| {
        let workload = WorkloadSpec::new(WorkloadKind::Hybrid, 1_000)
            .with_hot(hot)
            .generate()
            .unwrap();
        let mut counts: HashMap<Address, usize> = HashMap::new();
        for tx in &workload.block.txs {
            *counts.entry(target(tx)).or_default() += 1;
        }
        *counts.values().max().unwrap() as f64 / 1_000.0
    };
    assert_eq!(most_common_target_share(1.0), 1.0);
    let half = most_common_target_share(0.5);
    assert!((0.42..0.58).contains(&half), "hot 0.5 gave {half}");
    // Cold ERC-20 transfers spread over 16 tokens: no contract takes more than a few percent.
    assert!(most_common_target_share(0.0) < 0.05);
}

#[test]
fn chain_makes_every_transaction_depend_on_the_previous_one() {
    let workload = WorkloadSpec::new(WorkloadKind::Chain, 100)
        .generate()
        .unwrap();
    for pair in workload.block.txs.windows(2) {
        assert_eq!(pair[1].caller, target(&pair[0]));
        assert!(
            workload.storage_balance(pair[1].caller).is_zero(),
            "a relay was pre-funded"
        );
    }
    let output = execute_sequential(&workload.storage, &workload.block).unwrap();
    assert!(output.results.iter().all(|r| r.is_success()));
    // Every relay passed on all it had: only the last recipient holds a balance.
    for tx in &workload.block.txs[1..] {
        assert_eq!(
            output.state.info(&tx.caller).unwrap().unwrap().balance,
            U256::ZERO
        );
    }
    let last = workload.block.txs.last().unwrap();
    assert_eq!(
        output.state.info(&target(last)).unwrap().unwrap().balance,
        last.value
    );
}

trait StorageBalance {
    fn storage_balance(&self, address: Address) -> U256;
}

impl StorageBalance for blockstm_cli::workloads::Workload {
    fn storage_balance(&self, address: Address) -> U256 {
        use blockstm_evm::revm::DatabaseRef;
        self.storage
            .basic_ref(address)
            .unwrap()
            .map_or(U256::ZERO, |a| a.balance)
    }
}

#[test]
fn generation_is_deterministic_per_seed() {
    for kind in WorkloadKind::ALL {
        let a = WorkloadSpec::new(kind, 50).with_seed(7).generate().unwrap();
        let b = WorkloadSpec::new(kind, 50).with_seed(7).generate().unwrap();
        let c = WorkloadSpec::new(kind, 50).with_seed(8).generate().unwrap();
        assert_eq!(a.block.txs, b.block.txs, "{kind}");
        assert_ne!(a.block.txs, c.block.txs, "{kind}");
        let out_a = execute_sequential(&a.storage, &a.block).unwrap();
        let out_b = execute_sequential(&b.storage, &b.block).unwrap();
        assert_eq!(out_a, out_b, "{kind}");
    }
}

#[test]
fn bad_parameters_are_refused_with_a_reason() {
    let spec = |txs| WorkloadSpec::new(WorkloadKind::Raw, txs);
    assert_eq!(
        spec(0).generate().unwrap_err(),
        WorkloadError::NoTransactions
    );
    assert_eq!(
        spec(MAX_TXS + 1).generate().unwrap_err(),
        WorkloadError::TooManyTransactions(MAX_TXS + 1)
    );
    assert_eq!(
        spec(1).with_hot(1.5).generate().unwrap_err(),
        WorkloadError::HotRatio(1.5)
    );
    assert!(matches!(
        spec(1).with_hot(f64::NAN).generate(),
        Err(WorkloadError::HotRatio(_))
    ));
    assert_eq!(
        spec(1).with_contracts(0).generate().unwrap_err(),
        WorkloadError::NoContracts
    );
    assert_eq!(
        "uniswap".parse::<WorkloadKind>().unwrap_err().to_string(),
        "unknown workload \"uniswap\" (expected one of raw, erc20, amm, hybrid, chain)"
    );
    for kind in WorkloadKind::ALL {
        assert_eq!(kind.name().parse::<WorkloadKind>().unwrap(), kind);
    }
}
