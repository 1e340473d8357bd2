//! `ParallelEthBlockExecutor` against alloy-evm's own `EthBlockExecutor` (sequential): the
//! same `BlockExecutionResult` (receipts, requests, gas, blob gas) and the same `BundleState`
//! after `merge_transitions(Reverts)`, on every mainnet block, the generated workloads at
//! several worker counts, self-destruct and pre-Spurious-Dragon blocks, a batch of two blocks
//! in one `State` and Prague blocks with system-contract requests and EIP-6110 deposits; the
//! same error, by its text, for invalid blocks; and, on the mainnet blocks, the receipts of
//! `BlockOutput::into_receipts` equal alloy-evm's.
#![cfg(feature = "alloy-evm")]

mod common;

use std::sync::{Arc, Mutex};

use alloy_consensus::TxEnvelope;
use alloy_consensus::transaction::Recovered;
use alloy_eips::eip4895::Withdrawal;
use alloy_evm::block::{BlockExecutionResult, BlockExecutor, OnStateHook};
use alloy_evm::eth::receipt_builder::AlloyReceiptBuilder;
use alloy_evm::eth::spec::EthSpec;
use alloy_evm::eth::{EthBlockExecutionCtx, EthBlockExecutor};
use alloy_evm::{EthEvmFactory, EvmEnv, EvmFactory};
use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_rpc_types_eth::{Block as RpcBlock, Transaction as RpcTransaction};
use blockstm_cli::envelope::test_envelope;
use blockstm_cli::replay::{MainnetData, block_env, spec_at};
use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::alloy_evm::ParallelEthBlockExecutorFactory;
use blockstm_evm::revm::DatabaseRef;
use blockstm_evm::revm::context::{BlockEnv, CfgEnv, TxEnv};
use blockstm_evm::revm::context_interface::block::BlobExcessGasAndPrice;
use blockstm_evm::revm::database::states::bundle_state::BundleRetention;
use blockstm_evm::revm::database::{BundleState, State, WrapDatabaseRef};
use blockstm_evm::revm::primitives::hardfork::SpecId;
use blockstm_evm::revm::state::EvmState;
use blockstm_evm::{InMemoryStorage, Options, execute_sequential};
use common::{addr, bundle_difference, call, code, funded, mainnet_dir, wiped_accounts};
use receipt_root::receipts_root;

/// How a block is executed.
#[derive(Clone, Debug)]
enum Mode {
    /// alloy-evm's `EthBlockExecutor::execute_block` (the reference).
    Alloy,
    /// `ParallelEthBlockExecutor::execute_block` with these options.
    Parallel(Options),
}

fn forced(threads: usize) -> Mode {
    Mode::Parallel(Options {
        sequential_below: Some(0),
        ..Options::with_concurrency(threads)
    })
}

/// A block for the executors: environment, context and the transactions as
/// (`TxEnv`, recovered envelope) pairs.
struct TestBlock {
    env: EvmEnv,
    parent_hash: B256,
    beacon_root: Option<B256>,
    withdrawals: Option<Vec<Withdrawal>>,
    extra_data: Bytes,
    txs: Vec<TxEnv>,
    recovered: Vec<Recovered<TxEnvelope>>,
}

impl TestBlock {
    /// A block of generated transactions, with envelopes made from their `TxEnv`s (fake
    /// signatures: the executors take the signer from `Recovered`).
    fn generated(block: &blockstm_evm::Block) -> Self {
        Self {
            env: EvmEnv {
                cfg_env: block.cfg.clone(),
                block_env: block.env.clone(),
            },
            parent_hash: B256::repeat_byte(0x0b),
            beacon_root: Some(B256::repeat_byte(0x0c)),
            withdrawals: None,
            extra_data: Bytes::new(),
            recovered: block
                .txs
                .iter()
                .map(|tx| {
                    Recovered::new_unchecked(
                        test_envelope(tx).unwrap_or_else(|| {
                            panic!("no test envelope for transaction type {}", tx.tx_type)
                        }),
                        tx.caller,
                    )
                })
                .collect(),
            txs: block.txs.clone(),
        }
    }

    fn ctx(&self) -> EthBlockExecutionCtx<'_> {
        EthBlockExecutionCtx {
            parent_hash: self.parent_hash,
            parent_beacon_block_root: self.beacon_root,
            ommers: &[],
            withdrawals: self.withdrawals.as_deref().map(std::borrow::Cow::Borrowed),
            extra_data: self.extra_data.clone(),
            tx_count_hint: None,
            slot_number: None,
        }
    }
}

type Outcome = Result<BlockExecutionResult<alloy_consensus::ReceiptEnvelope>, String>;

/// Executes `block` on `state` in `mode`; errors by their text.
fn execute_on<X>(state: &mut State<X>, block: &TestBlock, mode: &Mode) -> Outcome
where
    X: blockstm_evm::revm::Database
        + DatabaseRef<Error = <X as blockstm_evm::revm::Database>::Error>
        + Sync
        + std::fmt::Debug,
{
    let spec = EthSpec::mainnet();
    let evm = EthEvmFactory::default().create_evm(state, block.env.clone());
    let items = block.txs.iter().cloned().zip(&block.recovered);
    let result = match mode {
        Mode::Alloy => {
            EthBlockExecutor::new(evm, block.ctx(), &spec, AlloyReceiptBuilder::default())
                .execute_block(items)
        }
        Mode::Parallel(options) => {
            let factory = ParallelEthBlockExecutorFactory::new(
                spec.clone(),
                AlloyReceiptBuilder::default(),
                options.clone(),
            );
            factory
                .create_executor(evm, block.ctx())
                .execute_block(items)
        }
    };
    result.map_err(|error| error.to_string())
}

fn new_state(storage: &InMemoryStorage) -> State<WrapDatabaseRef<&InMemoryStorage>> {
    State::builder()
        .with_database(WrapDatabaseRef(storage))
        .with_bundle_update()
        .build()
}

/// Runs `block` on a fresh `State` over `storage`: the outcome, the merged bundle and how many
/// commits the `State` saw (through a state hook).
fn run(storage: &InMemoryStorage, block: &TestBlock, mode: &Mode) -> (Outcome, BundleState) {
    let (outcome, bundle, _) = run_counting(storage, block, mode);
    (outcome, bundle)
}

fn run_counting(
    storage: &InMemoryStorage,
    block: &TestBlock,
    mode: &Mode,
) -> (Outcome, BundleState, usize) {
    let commits = Arc::new(Mutex::new(Vec::new()));
    let mut state = new_state(storage);
    state.set_state_hook(Some(Box::new(Recorder(commits.clone()))));
    let outcome = execute_on(&mut state, block, mode);
    state.merge_transitions(BundleRetention::Reverts);
    let count = commits.lock().unwrap().len();
    (outcome, state.take_bundle(), count)
}

/// `None` when `mode` gives exactly alloy-evm's result and bundle on `block`, else why not.
///
/// A forced parallel run must also have taken the parallel path, not the sequential fallback:
/// alloy-evm commits once per transaction, the adapter once or twice for the whole block
/// (the system calls and post-block changes commit alike in both).
fn compare(storage: &InMemoryStorage, block: &TestBlock, mode: &Mode) -> Option<String> {
    let (expected, expected_bundle, alloy_commits) = run_counting(storage, block, &Mode::Alloy);
    let (actual, bundle, commits) = run_counting(storage, block, mode);
    if expected != actual {
        return Some(format!(
            "results differ: expected {}, got {}",
            summary(&expected),
            summary(&actual)
        ));
    }
    let txs = block.txs.len();
    let forced = matches!(mode, Mode::Parallel(options) if options.sequential_below == Some(0));
    if forced && expected.is_ok() && txs >= 3 && commits + txs > alloy_commits + 2 {
        return Some(format!(
            "the parallel path did not run: {commits} commits, alloy-evm {alloy_commits}, {txs} txs"
        ));
    }
    bundle_difference(&expected_bundle, &bundle).map(|d| format!("bundles differ: {d}"))
}

fn summary(outcome: &Outcome) -> String {
    match outcome {
        Ok(result) => format!(
            "{} receipts, gas {}, blob gas {}, {} requests",
            result.receipts.len(),
            result.gas_used,
            result.blob_gas_used,
            result.requests.len()
        ),
        Err(error) => format!("error {error:?}"),
    }
}

mod receipt_root {
    use alloy_consensus::ReceiptEnvelope;
    use alloy_primitives::B256;

    /// The receipts trie root of a block's receipts.
    pub fn receipts_root(receipts: &[ReceiptEnvelope]) -> B256 {
        alloy_consensus::proofs::calculate_receipt_root(receipts)
    }
}

/// The receipts of `block` from the engine alone ([`blockstm_evm::execute`], no system calls)
/// through `BlockOutput::into_receipts`, typed by the block's envelopes.
fn own_receipts(
    storage: &InMemoryStorage,
    block: &TestBlock,
) -> Result<Vec<alloy_consensus::ReceiptEnvelope>, String> {
    let engine_block = blockstm_evm::Block {
        env: block.env.block_env.clone(),
        cfg: block.env.cfg_env.clone(),
        txs: block.txs.clone(),
    };
    let options = Options {
        sequential_below: Some(0),
        ..Options::with_concurrency(2)
    };
    let output = blockstm_evm::execute(storage, &engine_block, &options)
        .map_err(|error| error.to_string())?;
    let tx_types = block.recovered.iter().map(|tx| tx.tx_type());
    let (receipts, _state) = output
        .into_receipts(tx_types)
        .map_err(|error| error.to_string())?;
    Ok(receipts)
}

#[test]
fn mainnet_blocks_execute_as_alloy_evms_executor() {
    let Some(dir) = mainnet_dir("alloy-evm mainnet comparison") else {
        return;
    };
    let data = MainnetData::load(&dir).unwrap();
    let numbers = data.block_numbers().unwrap();
    assert!(!numbers.is_empty(), "no blocks under {}", dir.display());
    let (mut failures, mut roots, mut compared) = (Vec::new(), 0, 0);
    let (mut own_equal, mut own_roots) = (0, 0);
    for number in &numbers {
        let path = dir.join(format!("blocks/{number}/block.json"));
        let rpc: RpcBlock<RpcTransaction> =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let header = &rpc.header.inner;
        let spec_id = spec_at(header.number, header.timestamp);
        let mut cfg_env = CfgEnv::new_with_spec(spec_id);
        cfg_env.chain_id = 1;
        let recovered: Vec<Recovered<TxEnvelope>> =
            rpc.transactions.txns().map(|tx| tx.inner.clone()).collect();
        let block = TestBlock {
            env: EvmEnv {
                cfg_env,
                block_env: block_env(header, spec_id),
            },
            parent_hash: header.parent_hash,
            beacon_root: header.parent_beacon_block_root,
            withdrawals: rpc.withdrawals.clone().map(|w| w.into_inner()),
            extra_data: header.extra_data.clone(),
            txs: recovered
                .iter()
                .map(|tx| blockstm_cli::replay::tx_env(tx.inner(), tx.signer()))
                .collect(),
            recovered,
        };
        let storage = data.block(*number).unwrap().storage;
        for mode in [forced(2), forced(4), Mode::Parallel(Options::default())] {
            compared += 1;
            if let Some(difference) = compare(&storage, &block, &mode) {
                failures.push(format!(
                    "block {number} ({spec_id:?}) {mode:?}: {difference}"
                ));
            }
        }
        // And the parallel receipts are the chain's.
        if spec_id.is_enabled_in(SpecId::BYZANTIUM) {
            let (outcome, _) = run(&storage, &block, &forced(2));
            match outcome {
                Ok(result) if receipts_root(&result.receipts) == header.receipts_root => roots += 1,
                other => failures.push(format!(
                    "block {number}: receipts root mismatch ({})",
                    summary(&other)
                )),
            }
        }
        // `BlockOutput::into_receipts` on the engine's own output (no alloy-evm executor):
        // alloy-evm's receipts, and the chain's root.
        match own_receipts(&storage, &block) {
            Ok(receipts) => {
                let (expected, _) = run(&storage, &block, &Mode::Alloy);
                match expected {
                    Ok(expected) if expected.receipts == receipts => own_equal += 1,
                    other => failures.push(format!(
                        "block {number}: into_receipts differs from alloy-evm's ({})",
                        summary(&other)
                    )),
                }
                if spec_id.is_enabled_in(SpecId::BYZANTIUM) {
                    if receipts_root(&receipts) == header.receipts_root {
                        own_roots += 1;
                    } else {
                        failures.push(format!("block {number}: into_receipts root mismatch"));
                    }
                }
            }
            Err(error) => failures.push(format!("block {number}: into_receipts: {error}")),
        }
    }
    println!(
        "{} mainnet blocks, {compared} runs compared with alloy-evm, {roots} receipts roots \
         matched; into_receipts: {own_equal} equal to alloy-evm's, {own_roots} roots matched; \
         {} failures",
        numbers.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(roots * 2 > numbers.len(), "only {roots} receipts roots");
    assert_eq!(own_equal, numbers.len());
    assert_eq!(own_roots, roots);
}

#[test]
fn workloads_execute_as_alloy_evms_executor_at_every_worker_count() {
    let mut compared = 0;
    for kind in WorkloadKind::ALL {
        let workload = WorkloadSpec::new(kind, 300).generate().unwrap();
        let block = TestBlock::generated(&workload.block);
        for threads in [1, 2, 4, 8] {
            if let Some(difference) = compare(&workload.storage, &block, &forced(threads)) {
                panic!("{kind:?} at {threads} workers: {difference}");
            }
            compared += 1;
        }
        let (outcome, _) = run(&workload.storage, &block, &forced(2));
        let result = outcome.unwrap();
        assert_eq!(result.receipts.len(), 300, "{kind:?}");
        assert!(result.gas_used > 0, "{kind:?}");
    }
    assert_eq!(compared, 4 * WorkloadKind::ALL.len());
}

/// `SSTORE(0, SLOAD(0) + 1); if calldata is not empty { SELFDESTRUCT(CALLER) }`.
const COUNTER_OR_DESTRUCT: [u8; 17] = [
    0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x60, 0x00, 0x55, 0x36, 0x60, 0x0e, 0x57, 0x00, 0x5b, 0x33,
    0xff,
];

fn hand_made_block(spec: SpecId, txs: Vec<TxEnv>) -> TestBlock {
    let mut block = common::block(spec, txs);
    block.cfg.chain_id = 1;
    if spec.is_enabled_in(SpecId::MERGE) {
        block.env.prevrandao = Some(B256::repeat_byte(0x0d));
    }
    if spec.is_enabled_in(SpecId::CANCUN) {
        block.env.blob_excess_gas_and_price = Some(BlobExcessGasAndPrice::new_with_spec(0, spec));
    }
    let mut block = TestBlock::generated(&block);
    if !spec.is_enabled_in(SpecId::CANCUN) {
        block.beacon_root = None;
    }
    block
}

#[test]
fn self_destructs_and_old_empty_accounts_commit_as_alloy_evms_executor() {
    let (alice, bob, carol, victim, ghost) =
        (addr(0xa1), addr(0xb0), addr(0xca), addr(0xc0), addr(0x60));
    let mut storage = funded(&[alice, bob, carol]);
    storage.insert_account(victim, U256::from(7), 1, Some(code(&COUNTER_OR_DESTRUCT)));
    storage.set_storage(victim, U256::ZERO, U256::from(5));
    storage.set_storage(victim, U256::from(1), U256::from(9));
    let bump = call(alice, 0, victim, U256::ZERO, Bytes::new());
    let destroy = call(bob, 0, victim, U256::ZERO, Bytes::from_static(&[1]));
    let fund = call(carol, 0, victim, U256::from(3), Bytes::new());
    let touch_ghost = call(carol, 1, ghost, U256::ZERO, Bytes::new());
    let cases = [
        (SpecId::SHANGHAI, vec![bump.clone(), destroy.clone()], 1),
        (
            SpecId::SHANGHAI,
            vec![bump.clone(), destroy.clone(), fund.clone()],
            1,
        ),
        (
            SpecId::CANCUN,
            vec![bump.clone(), destroy.clone(), fund.clone()],
            0,
        ),
        // Before Spurious Dragon a zero-value call creates the missing account, empty.
        (SpecId::TANGERINE, vec![bump, destroy, fund, touch_ghost], 1),
    ];
    for (spec, txs, wipes) in cases {
        let count = txs.len();
        let block = hand_made_block(spec, txs);
        for mode in [forced(1), forced(2)] {
            if let Some(difference) = compare(&storage, &block, &mode) {
                panic!("{spec:?}, {count} txs, {mode:?}: {difference}");
            }
        }
        let (outcome, bundle) = run(&storage, &block, &forced(2));
        assert_eq!(outcome.unwrap().receipts.len(), count);
        assert_eq!(wiped_accounts(&bundle), wipes, "{spec:?}, {count} txs");
        if spec == SpecId::TANGERINE {
            let ghost_account = &bundle.state[&ghost];
            assert_eq!(
                ghost_account.info.as_ref().map(|i| i.is_empty()),
                Some(true)
            );
        }
    }
}

#[test]
fn invalid_blocks_fail_with_alloy_evms_error() {
    let workload = WorkloadSpec::new(WorkloadKind::Raw, 200)
        .generate()
        .unwrap();
    let expected_output = execute_sequential(&workload.storage, &workload.block).unwrap();
    let mut cases = Vec::new();
    for k in [0, 5, 150] {
        let mut block = workload.block.clone();
        block.txs[k].nonce += 7;
        cases.push((format!("bad nonce at {k}"), block));
    }
    for k in [1, 100, 199] {
        // The block's gas ends 1 short of transaction k's limit: every transaction fits the
        // block alone (so the engine runs it), but k does not fit what is left.
        let mut block = workload.block.clone();
        let used_before = expected_output.results[k - 1].cumulative_gas_used;
        block.env.gas_limit = used_before + block.txs[k].gas_limit - 1;
        assert!(
            block
                .txs
                .iter()
                .all(|tx| tx.gas_limit <= block.env.gas_limit)
        );
        cases.push((format!("gas overflow at {k}"), block));
    }
    for (name, block) in cases {
        let block = TestBlock::generated(&block);
        let (expected, _) = run(&workload.storage, &block, &Mode::Alloy);
        let expected = expected
            .err()
            .unwrap_or_else(|| panic!("{name}: alloy-evm accepted it"));
        for mode in [forced(2), forced(4), Mode::Parallel(Options::default())] {
            let (actual, _) = run(&workload.storage, &block, &mode);
            assert_eq!(actual.err(), Some(expected.clone()), "{name}, {mode:?}");
        }
    }
}

#[test]
fn two_blocks_in_one_state_execute_as_alloy_evms_executor() {
    // (Not the chain workload: its senders are funded by the block itself and would run dry.)
    for kind in [WorkloadKind::Raw, WorkloadKind::Erc20, WorkloadKind::Hybrid] {
        let workload = WorkloadSpec::new(kind, 200).generate().unwrap();
        let first = TestBlock::generated(&workload.block);
        // The same transfers again: nonces continue, the pre-state comes from the first block
        // (the `State`'s cache), not from the storage.
        let mut next = workload.block.clone();
        let mut sent: std::collections::HashMap<Address, u64> = Default::default();
        for tx in &workload.block.txs {
            *sent.entry(tx.caller).or_default() += 1;
        }
        for tx in &mut next.txs {
            tx.nonce += sent[&tx.caller];
        }
        next.env.number += U256::from(1);
        next.env.timestamp += U256::from(12);
        let second = TestBlock::generated(&next);
        let run_both = |mode: &Mode| {
            let commits = Arc::new(Mutex::new(Vec::new()));
            let mut state = new_state(&workload.storage);
            state.set_state_hook(Some(Box::new(Recorder(commits.clone()))));
            let mut outcomes = Vec::new();
            for block in [&first, &second] {
                outcomes.push(execute_on(&mut state, block, mode));
                state.merge_transitions(BundleRetention::Reverts);
            }
            let count = commits.lock().unwrap().len();
            (outcomes, state.take_bundle(), count)
        };
        let (expected, expected_bundle, alloy_commits) = run_both(&Mode::Alloy);
        let summaries: Vec<String> = expected.iter().map(summary).collect();
        assert!(
            expected.iter().all(Result::is_ok),
            "{kind:?}: {summaries:?}"
        );
        for mode in [forced(2), forced(4)] {
            let (actual, bundle, commits) = run_both(&mode);
            assert!(actual == expected, "{kind:?} {mode:?}: {summaries:?}");
            assert!(
                commits + 100 < alloy_commits,
                "{kind:?} {mode:?}: not parallel"
            );
            if let Some(difference) = bundle_difference(&expected_bundle, &bundle) {
                panic!("{kind:?} {mode:?}: {difference}");
            }
            assert_eq!(bundle.reverts.len(), 2, "{kind:?}: one revert per block");
        }
    }
}

/// A Prague block over the system contracts (EIP-4788, 2935, 7002, 7251) and a stand-in for
/// the deposit contract, with transactions that queue withdrawal and consolidation requests,
/// `deposits` transactions that make deposits (one each, numbered from 0, interleaved with the
/// others), and a withdrawal.
fn prague_block(deposits: usize) -> (InMemoryStorage, TestBlock) {
    use alloy_eips::{eip2935, eip4788, eip6110, eip7002, eip7251};
    let senders: Vec<Address> = (1..=6).map(|i| addr(0x10 + i)).collect();
    let depositors: Vec<Address> = (0..deposits).map(|i| addr(0x30 + i as u8)).collect();
    let mut storage = funded(&[senders.as_slice(), depositors.as_slice()].concat());
    let deposit_contract = deposit_contract_code();
    for (address, runtime) in [
        (eip4788::BEACON_ROOTS_ADDRESS, &eip4788::BEACON_ROOTS_CODE),
        (
            eip2935::HISTORY_STORAGE_ADDRESS,
            &eip2935::HISTORY_STORAGE_CODE,
        ),
        (
            eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
            &eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_CODE,
        ),
        (
            eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
            &eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_CODE,
        ),
        (eip6110::MAINNET_DEPOSIT_CONTRACT_ADDRESS, &deposit_contract),
    ] {
        storage.insert_account(address, U256::ZERO, 1, Some(code(runtime)));
    }
    let mut txs = Vec::new();
    for (i, sender) in senders.iter().enumerate() {
        // Validator public keys (48 bytes); a withdrawal amount (8 bytes) or a target key.
        let mut data = vec![i as u8 + 1; 48];
        let to = if i % 2 == 0 {
            data.extend_from_slice(&(i as u64 * 1_000).to_be_bytes());
            eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS
        } else {
            data.extend_from_slice(&[0xee; 48]);
            eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS
        };
        // The fee is 1 wei while the queues are short; more is accepted.
        txs.push(call(*sender, 0, to, U256::from(10), data.into()));
        if let Some(depositor) = depositors.get(i) {
            let event = deposit_event_data(&deposit_fields(i));
            let to = eip6110::MAINNET_DEPOSIT_CONTRACT_ADDRESS;
            txs.push(call(*depositor, 0, to, U256::ZERO, event.into()));
        }
    }
    for (i, depositor) in depositors.iter().enumerate().skip(senders.len()) {
        let event = deposit_event_data(&deposit_fields(i));
        let to = eip6110::MAINNET_DEPOSIT_CONTRACT_ADDRESS;
        txs.push(call(*depositor, 0, to, U256::ZERO, event.into()));
    }
    // Plain transfers between the senders, so the block has independent work too.
    for (i, sender) in senders.iter().enumerate() {
        let to = senders[(i + 1) % senders.len()];
        txs.push(call(*sender, 1, to, U256::from(1_000), Bytes::new()));
    }
    let env = BlockEnv {
        number: U256::from(22_500_000),
        beneficiary: addr(0xbe),
        timestamp: U256::from(1_750_000_000u64),
        gas_limit: 36_000_000,
        basefee: 1,
        prevrandao: Some(B256::repeat_byte(0x0d)),
        blob_excess_gas_and_price: Some(BlobExcessGasAndPrice::new_with_spec(0, SpecId::PRAGUE)),
        ..BlockEnv::default()
    };
    let mut block = blockstm_evm::Block::new(env, SpecId::PRAGUE, txs);
    block.cfg.chain_id = 1;
    let mut block = TestBlock::generated(&block);
    block.withdrawals = Some(vec![Withdrawal {
        index: 1,
        validator_index: 2,
        address: addr(0x77),
        amount: 5,
    }]);
    (storage, block)
}

/// Runtime code standing in for the deposit contract: emits the call data as the data of a
/// `DepositEvent` log (`CALLDATACOPY(0, 0, CALLDATASIZE); LOG1(0, CALLDATASIZE, topic)`).
fn deposit_contract_code() -> Bytes {
    let topic = alloy_primitives::keccak256("DepositEvent(bytes,bytes,bytes,bytes,bytes)");
    let mut code = vec![0x36, 0x60, 0x00, 0x60, 0x00, 0x37, 0x7f];
    code.extend_from_slice(topic.as_slice());
    code.extend_from_slice(&[0x36, 0x60, 0x00, 0xa1, 0x00]);
    code.into()
}

/// Deposit `i`'s `DepositEvent` fields, sized as the deposit contract emits them: public key
/// (48 bytes), withdrawal credentials (32), amount (8, little-endian gwei), signature (96),
/// index (8, little-endian).
fn deposit_fields(i: usize) -> [Vec<u8>; 5] {
    let byte = 0xa0 + i as u8;
    [
        vec![byte; 48],
        vec![byte.wrapping_add(1); 32],
        (32_000_000_000u64 + i as u64).to_le_bytes().to_vec(),
        vec![byte.wrapping_add(2); 96],
        (i as u64).to_le_bytes().to_vec(),
    ]
}

/// The ABI encoding of `DepositEvent(bytes, bytes, bytes, bytes, bytes)`'s data: one offset
/// per field, then each field's length and its bytes, padded to 32 bytes.
fn deposit_event_data(fields: &[Vec<u8>]) -> Vec<u8> {
    let (mut head, mut tail) = (Vec::new(), Vec::new());
    for field in fields {
        head.extend_from_slice(&U256::from(32 * fields.len() + tail.len()).to_be_bytes::<32>());
        tail.extend_from_slice(&U256::from(field.len()).to_be_bytes::<32>());
        tail.extend_from_slice(field);
        tail.resize(tail.len().next_multiple_of(32), 0);
    }
    head.extend_from_slice(&tail);
    head
}

/// Runs `prague_block(deposits)`: equal to alloy-evm's executor at 1, 2 and 4 workers, every
/// call succeeding; returns the 2-worker result, its bundle and the types of its requests.
fn prague_requests(
    deposits: usize,
) -> (
    BlockExecutionResult<alloy_consensus::ReceiptEnvelope>,
    BundleState,
    Vec<u8>,
) {
    let (storage, block) = prague_block(deposits);
    for mode in [forced(1), forced(2), forced(4)] {
        if let Some(difference) = compare(&storage, &block, &mode) {
            panic!("{mode:?}: {difference}");
        }
    }
    let (outcome, bundle) = run(&storage, &block, &forced(2));
    let result = outcome.unwrap();
    assert!(
        result.receipts.iter().all(|r| r.status()),
        "every call succeeds"
    );
    let types = result
        .requests
        .iter()
        .map(|request| request.first().copied().unwrap_or_default())
        .collect();
    (result, bundle, types)
}

#[test]
fn a_prague_block_with_requests_executes_as_alloy_evms_executor() {
    let (result, bundle, types) = prague_requests(0);
    // Withdrawal (0x01) and consolidation (0x02) requests, dequeued by the post-block system
    // calls from the queues the parallel transactions filled.
    assert_eq!(types, vec![0x01, 0x02], "requests {:?}", result.requests);
    // The withdrawal was paid (5 gwei).
    let paid = bundle.state[&addr(0x77)].info.as_ref().unwrap().balance;
    assert_eq!(paid, U256::from(5_000_000_000u64));
}

#[test]
fn a_prague_block_with_deposits_executes_as_alloy_evms_executor() {
    // More deposits than other senders: some interleaved, the rest in a row.
    let deposits = 8;
    let (result, _, types) = prague_requests(deposits);
    // Deposit (0x00), withdrawal (0x01) and consolidation (0x02) requests: the deposits are
    // parsed from the receipts the parallel executor built, in block order.
    assert_eq!(
        types,
        vec![0x00, 0x01, 0x02],
        "requests {:?}",
        result.requests
    );
    let mut expected = vec![alloy_eips::eip6110::DEPOSIT_REQUEST_TYPE];
    for i in 0..deposits {
        expected.extend(deposit_fields(i).concat());
    }
    assert_eq!(expected.len(), 1 + deposits * 192);
    assert_eq!(
        result.requests.iter().next().unwrap().as_ref(),
        &expected[..]
    );
}

/// Records which accounts each commit into the `State` carried.
struct Recorder(Arc<Mutex<Vec<Vec<Address>>>>);

impl OnStateHook for Recorder {
    fn on_state(&mut self, state: EvmState) {
        let addresses = state.keys().copied().collect();
        self.0.lock().unwrap().push(addresses);
    }
}

#[test]
fn the_state_hook_sees_the_blocks_net_changes() {
    let workload = WorkloadSpec::new(WorkloadKind::Erc20, 100)
        .generate()
        .unwrap();
    let block = TestBlock::generated(&workload.block);
    let commits = Arc::new(Mutex::new(Vec::new()));
    let mut state = new_state(&workload.storage);
    state.set_state_hook(Some(Box::new(Recorder(commits.clone()))));
    execute_on(&mut state, &block, &forced(2)).unwrap();
    state.merge_transitions(BundleRetention::Reverts);
    let bundle = state.take_bundle();
    let commits = commits.lock().unwrap();
    // Pre-execution system calls, the net commit, post-execution changes: far fewer than
    // one commit per transaction, and together they name every account the bundle changed.
    assert!(commits.len() < 10, "{} commits", commits.len());
    let seen: std::collections::HashSet<Address> = commits.iter().flatten().copied().collect();
    for address in bundle.state.keys() {
        assert!(
            seen.contains(address),
            "{address} changed without a hook call"
        );
    }
}

/// With default options the adapter routes a block as the engine's own rule does: a small
/// block of calls declaring heavy work to the engine, a small block of plain transfers to
/// alloy-evm's loop whatever they declare; both give alloy-evm's result.
#[test]
fn default_options_route_small_blocks_by_declared_work_like_the_engine() {
    let defaults = Options::with_concurrency(2);
    for (kind, gas_limit, parallel) in [
        (WorkloadKind::Erc20, 400_000, true),
        (WorkloadKind::Raw, 400_000, false),
    ] {
        let mut workload = WorkloadSpec::new(kind, 32).generate().unwrap();
        for tx in &mut workload.block.txs {
            tx.gas_limit = gas_limit;
        }
        assert_eq!(
            defaults.runs_in_parallel(&workload.block),
            parallel,
            "{kind:?}"
        );
        let block = TestBlock::generated(&workload.block);
        let mode = Mode::Parallel(defaults.clone());
        if let Some(difference) = compare(&workload.storage, &block, &mode) {
            panic!("{kind:?}: {difference}");
        }
        let (_, _, alloy_commits) = run_counting(&workload.storage, &block, &Mode::Alloy);
        let (outcome, _, commits) = run_counting(&workload.storage, &block, &mode);
        assert_eq!(outcome.unwrap().receipts.len(), 32);
        // alloy-evm's loop commits once per transaction, the engine once or twice in all.
        assert_eq!(
            commits + 32 <= alloy_commits + 2,
            parallel,
            "{kind:?}: {commits} commits, alloy-evm {alloy_commits}"
        );
    }
}
