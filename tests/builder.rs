//! The block builder: on generated mempools with invalid, reverting and over-limit candidates
//! mixed in, `finish()` returns exactly what `execute` returns for the included transactions
//! (at 1, 2, 4 and 8 threads), and every candidate's decision equals that of a naive
//! sequential builder written here (one single-transaction block at a time).

mod common;

use std::sync::Arc;

use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::builder::{
    BlockBuilder, BuilderOptions, BuiltBlock, Candidate, Decision, Exclusion, Outcome,
    OverlayStorage,
};
use blockstm_evm::revm::DatabaseRef;
use blockstm_evm::revm::context::result::InvalidTransaction;
use blockstm_evm::revm::context::{BlockEnv, CfgEnv};
use blockstm_evm::revm::primitives::U256;
use blockstm_evm::revm::primitives::hardfork::SpecId;
use blockstm_evm::{
    Block, BlockError, Options, StateChanges, TxResult, execute, execute_sequential,
};
use common::universe;
use proptest::prelude::*;

/// What a builder does, one candidate at a time: the gas rule, then a one-transaction block
/// over the state so far; returns the decisions and the block's net changes.
fn reference_build<S: DatabaseRef>(
    storage: &S,
    env: &BlockEnv,
    cfg: &CfgEnv,
    candidates: &[Candidate],
) -> (Vec<Decision>, StateChanges)
where
    S::Error: Send + Sync + 'static,
{
    let mut state = StateChanges::default();
    let mut gas_used = 0u64;
    let mut position = 0;
    let mut decisions = Vec::new();
    for (candidate, c) in candidates.iter().enumerate() {
        let available = env.gas_limit - gas_used;
        let outcome = if c.tx.gas_limit > available {
            Outcome::Excluded(Exclusion::OverGasLimit {
                gas_limit: c.tx.gas_limit,
                available,
            })
        } else {
            let block = Block {
                env: env.clone(),
                cfg: cfg.clone(),
                txs: vec![c.tx.clone()],
            };
            match execute_sequential(&OverlayStorage::new(storage, &state), &block) {
                Err(BlockError::InvalidTransaction { reason, .. }) => {
                    Outcome::Excluded(Exclusion::Invalid(reason))
                }
                Err(error) => panic!("candidate {candidate}: {error}"),
                Ok(mut output) => {
                    let result = output.results.remove(0);
                    if !result.is_success() && c.drop_if_reverted {
                        Outcome::Excluded(Exclusion::Reverted(result.result))
                    } else {
                        gas_used += result.gas_used();
                        state.append(output.state);
                        position += 1;
                        Outcome::Included {
                            position: position - 1,
                            result: TxResult {
                                cumulative_gas_used: gas_used,
                                ..result
                            },
                        }
                    }
                }
            }
        };
        decisions.push(Decision { candidate, outcome });
    }
    (decisions, state)
}

/// Builds from `candidates` (pushed in chunks of `chunk`, collecting committed decisions on
/// the way) and checks what every build must satisfy: each candidate decided once, in order,
/// the streamed decisions equal to the final ones, and `output` equal to `execute` of the
/// included block at 1, 2, 4 and 8 threads.
fn build_and_check<S>(
    storage: Arc<S>,
    env: &BlockEnv,
    cfg: &CfgEnv,
    candidates: &[Candidate],
    options: BuilderOptions,
    chunk: usize,
) -> (Vec<Decision>, BuiltBlock)
where
    S: DatabaseRef + Send + Sync + 'static,
    S::Error: Send + Sync + 'static,
{
    let mut builder =
        BlockBuilder::new(storage.clone(), env.clone(), cfg.clone(), options).unwrap();
    let mut streamed = Vec::new();
    for part in candidates.chunks(chunk.max(1)) {
        let numbers = builder.extend(part.iter().cloned());
        assert_eq!(numbers.len(), part.len());
        streamed.extend(builder.committed());
    }
    loop {
        let new = builder.wait_committed();
        if new.is_empty() {
            break;
        }
        streamed.extend(new);
    }
    let built = builder.finish().unwrap();
    assert_eq!(
        streamed.len(),
        candidates.len(),
        "every candidate decided once"
    );
    for (expected, decision) in streamed.iter().enumerate() {
        assert_eq!(decision.candidate, expected, "decisions in candidate order");
    }
    // `finish` agrees with what was streamed.
    let mut included = Vec::new();
    let mut excluded = Vec::new();
    for decision in &streamed {
        match &decision.outcome {
            Outcome::Included { position, result } => {
                assert_eq!(*position, included.len());
                assert_eq!(result, &built.output.results[*position]);
                included.push(decision.candidate);
            }
            Outcome::Excluded(reason) => excluded.push((decision.candidate, reason.clone())),
        }
    }
    assert_eq!(built.included, included);
    assert_eq!(built.excluded, excluded);
    for (position, candidate) in built.included.iter().enumerate() {
        assert_eq!(built.block.txs[position], candidates[*candidate].tx);
    }
    for threads in [1, 2, 4, 8] {
        let forced = Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(threads)
        };
        let executed = execute(&*storage, &built.block, &forced).unwrap();
        if executed != built.output {
            let differing: Vec<_> = executed
                .state
                .accounts
                .iter()
                .filter(|(address, change)| {
                    built.output.state.accounts.get(*address) != Some(change)
                })
                .map(|(address, change)| {
                    (address, change, built.output.state.accounts.get(address))
                })
                .collect();
            panic!(
                "finish() differs from execute at {threads} threads: results equal: {}, \
                 accounts {} vs {}, differing (execute, builder): {differing:#?}",
                executed.results == built.output.results,
                executed.state.accounts.len(),
                built.output.state.accounts.len(),
            );
        }
    }
    (streamed, built)
}

fn options(threads: usize, first_round: usize, max_round: usize) -> BuilderOptions {
    BuilderOptions {
        execution: Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(threads)
        },
        first_round,
        max_round,
        ..BuilderOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64)
    ))]

    /// Generated mempools over the universe (self-destructs, creations, delegations, invalid
    /// value and nonces), some candidates with revert protection, under a block gas limit
    /// that may not fit them all: the builder decides like the naive builder, at several
    /// thread counts and round sizes.
    #[test]
    fn the_builder_decides_like_a_sequential_builder(
        spec in universe::spec_id(),
        specs in prop::collection::vec(universe::tx_spec(), 1..40),
        drops in prop::collection::vec(any::<bool>(), 40),
        gas_limit in prop_oneof![Just(30_000_000u64), Just(1_000_000), Just(400_000)],
        threads in prop_oneof![Just(1usize), Just(2), Just(4)],
        first_round in 1usize..6,
        max_round in 1usize..12,
    ) {
        let storage = Arc::new(universe::storage());
        let mut block = universe::build_block(spec, &specs);
        block.env.gas_limit = gas_limit;
        let candidates: Vec<Candidate> = block
            .txs
            .iter()
            .zip(&drops)
            .map(|(tx, drop)| Candidate { tx: tx.clone(), drop_if_reverted: *drop })
            .collect();
        let (expected, _) = reference_build(&*storage, &block.env, &block.cfg, &candidates);
        let (decisions, _) = build_and_check(
            storage,
            &block.env,
            &block.cfg,
            &candidates,
            options(threads, first_round, max_round.max(first_round)),
            7,
        );
        prop_assert_eq!(decisions, expected);
    }
}

/// A mempool from a generated workload with, mixed in: replays (nonce too low), candidates
/// that spend more than their sender has, gas limits above the block's, ERC-20 transfers of
/// more than the balance (reverting; half of them revert-protected) each followed by a retry
/// from the same sender with the same nonce, which is valid only if the revert was dropped.
fn faulty_mempool(
    kind: WorkloadKind,
    txs: usize,
) -> (Arc<blockstm_evm::InMemoryStorage>, Block, Vec<Candidate>) {
    let workload = WorkloadSpec::new(kind, txs)
        .with_seed(7)
        .generate()
        .unwrap();
    let block = workload.block;
    let mut candidates = Vec::new();
    for (index, tx) in block.txs.iter().enumerate() {
        candidates.push(Candidate::new(tx.clone()));
        match index % 50 {
            3 => candidates.push(Candidate::new(block.txs[index / 2].clone())),
            11 => {
                let mut rich = tx.clone();
                rich.nonce += 1;
                rich.value = U256::MAX / U256::from(2);
                candidates.push(Candidate::new(rich));
            }
            17 => {
                let mut greedy = tx.clone();
                greedy.nonce += 1;
                greedy.gas_limit = block.env.gas_limit + 1;
                candidates.push(Candidate::new(greedy));
            }
            29 if kind == WorkloadKind::Erc20 => {
                // transfer(to, amount) with an amount nobody holds: the token reverts.
                let mut overdraw = tx.clone();
                overdraw.nonce += 1;
                let mut data = overdraw.data.to_vec();
                data[36..68].fill(0xff);
                overdraw.data = data.into();
                let protected = index % 100 == 29;
                let mut candidate = Candidate::new(overdraw.clone());
                candidate.drop_if_reverted = protected;
                candidates.push(candidate);
                // The sender's next transaction, at the nonce the overdraw would have used.
                let mut retry = tx.clone();
                retry.nonce += 1;
                retry.data = tx.data.clone();
                candidates.push(Candidate::new(retry));
            }
            _ => {}
        }
    }
    (Arc::new(workload.storage), block, candidates)
}

#[test]
fn faulty_mempools_build_what_execute_returns() {
    for kind in [
        WorkloadKind::Raw,
        WorkloadKind::Erc20,
        WorkloadKind::Amm,
        WorkloadKind::Hybrid,
    ] {
        let (storage, block, candidates) = faulty_mempool(kind, 600);
        let (expected, expected_state) =
            reference_build(&*storage, &block.env, &block.cfg, &candidates);
        for (threads, first_round, max_round) in [(2, 64, 4096), (4, 1, 128), (8, 300, 300)] {
            let (decisions, built) = build_and_check(
                storage.clone(),
                &block.env,
                &block.cfg,
                &candidates,
                options(threads, first_round, max_round),
                97,
            );
            assert!(
                decisions == expected,
                "{kind:?}: decisions differ from the naive builder"
            );
            assert!(
                built.output.state == expected_state,
                "{kind:?}: state differs"
            );
            assert!(
                built.stats.parallel_rounds >= 1,
                "{kind:?}: some round ran in parallel"
            );
            let invalid = built
                .excluded
                .iter()
                .filter(|(_, reason)| matches!(reason, Exclusion::Invalid(_)))
                .count();
            let over = built
                .excluded
                .iter()
                .filter(|(_, reason)| matches!(reason, Exclusion::OverGasLimit { .. }))
                .count();
            assert!(
                invalid >= 20,
                "{kind:?}: replays and overspends are invalid ({invalid})"
            );
            assert_eq!(
                over, 12,
                "{kind:?}: one over-limit candidate per 50 transactions"
            );
            if kind == WorkloadKind::Erc20 {
                let dropped = built
                    .excluded
                    .iter()
                    .filter(|(_, reason)| matches!(reason, Exclusion::Reverted(_)))
                    .count();
                assert_eq!(dropped, 6, "the protected overdraws are dropped");
                let failed = built
                    .output
                    .results
                    .iter()
                    .filter(|r| !r.is_success())
                    .count();
                assert_eq!(
                    failed, 6,
                    "the unprotected overdraws are included, reverted"
                );
            }
        }
    }
}

#[test]
fn a_dropped_revert_frees_its_nonce_for_the_next_candidate() {
    let (storage, block, candidates) = faulty_mempool(WorkloadKind::Erc20, 100);
    let (_, built) = build_and_check(
        storage,
        &block.env,
        &block.cfg,
        &candidates,
        options(2, 8, 64),
        13,
    );
    // Candidates after transaction 29: the overdraw (protected, as 29 % 100 == 29), then the
    // retry with the same nonce.
    let overdraw = candidates
        .iter()
        .position(|c| c.drop_if_reverted)
        .expect("a protected overdraw");
    let retry = overdraw + 1;
    assert!(matches!(
        built.excluded.iter().find(|(c, _)| *c == overdraw),
        Some((_, Exclusion::Reverted(_)))
    ));
    assert!(
        built.included.contains(&retry),
        "the retry takes the freed nonce"
    );
    // The unprotected overdraw (transaction 79) is included, and its retry is then a replay.
    let unprotected = candidates
        .iter()
        .enumerate()
        .skip(retry + 1)
        .find(|(_, c)| c.tx.data.len() >= 68 && c.tx.data[36..68].iter().all(|b| *b == 0xff))
        .map(|(i, _)| i)
        .expect("an unprotected overdraw");
    assert!(built.included.contains(&unprotected));
    assert!(matches!(
        built.excluded.iter().find(|(c, _)| *c == unprotected + 1),
        Some((
            _,
            Exclusion::Invalid(InvalidTransaction::NonceTooLow { .. })
        ))
    ));
}

#[test]
fn the_gas_limit_closes_the_block_but_small_candidates_still_fit() {
    let workload = WorkloadSpec::new(WorkloadKind::Raw, 400)
        .generate()
        .unwrap();
    let mut env = workload.block.env.clone();
    let per_tx = workload.block.txs[0].gas_limit;
    env.gas_limit = 21_000 * 300 + per_tx - 1;
    let candidates: Vec<Candidate> = workload
        .block
        .txs
        .iter()
        .cloned()
        .map(Candidate::new)
        .collect();
    let storage = Arc::new(workload.storage);
    let (expected, _) = reference_build(&*storage, &env, &workload.block.cfg, &candidates);
    let (decisions, built) = build_and_check(
        storage,
        &env,
        &workload.block.cfg,
        &candidates,
        options(2, 64, 4096),
        400,
    );
    assert_eq!(decisions, expected);
    assert!(built.output.gas_used() <= env.gas_limit);
    assert!(
        built
            .excluded
            .iter()
            .all(|(_, reason)| matches!(reason, Exclusion::OverGasLimit { .. }))
    );
    assert!(
        !built.excluded.is_empty(),
        "the block is full before the mempool is empty"
    );
    assert!(
        built.included.len() >= 300,
        "transfers use less than their gas limit"
    );
}

#[test]
fn a_storage_error_fails_the_build_with_the_candidate_number() {
    let workload = WorkloadSpec::new(WorkloadKind::Raw, 300)
        .generate()
        .unwrap();
    let poisoned = workload.block.txs[250].kind.to().copied().unwrap();
    let storage = common::Faulty {
        inner: workload.storage,
        poisoned,
        fault: common::Fault::Error,
    };
    let mut builder = BlockBuilder::new(
        Arc::new(storage),
        workload.block.env.clone(),
        workload.block.cfg.clone(),
        options(2, 64, 1024),
    )
    .unwrap();
    builder.extend(workload.block.txs.iter().cloned());
    // The decisions before the failing round arrive, then the stream ends.
    let mut decided = 0;
    loop {
        let new = builder.wait_committed();
        if new.is_empty() {
            break;
        }
        decided += new.len();
    }
    assert!(
        decided < 250,
        "nothing at or after the failing candidate is decided"
    );
    match builder.finish() {
        Err(BlockError::Storage { index, .. }) => assert_eq!(index, 250),
        other => panic!("expected a storage error at candidate 250, got {other:?}"),
    }
}

#[test]
fn a_panicking_storage_fails_the_build_and_the_builder_can_be_dropped_midway() {
    let workload = WorkloadSpec::new(WorkloadKind::Raw, 300)
        .generate()
        .unwrap();
    let poisoned = workload.block.txs[10].kind.to().copied().unwrap();
    let storage = Arc::new(common::Faulty {
        inner: workload.storage.clone(),
        poisoned,
        fault: common::Fault::Panic,
    });
    let mut builder = BlockBuilder::new(
        storage,
        workload.block.env.clone(),
        workload.block.cfg.clone(),
        options(2, 512, 1024),
    )
    .unwrap();
    builder.extend(workload.block.txs.iter().cloned());
    assert!(matches!(
        builder.finish(),
        Err(BlockError::WorkerPanicked { .. })
    ));
    // Dropped with candidates pending: returns without deciding them.
    let mut builder = BlockBuilder::new(
        Arc::new(workload.storage),
        workload.block.env.clone(),
        workload.block.cfg.clone(),
        options(2, 64, 64),
    )
    .unwrap();
    builder.extend(workload.block.txs.iter().cloned());
    drop(builder);
}

#[test]
fn an_empty_build_is_an_empty_block() {
    let workload = WorkloadSpec::new(WorkloadKind::Raw, 1).generate().unwrap();
    let mut builder = BlockBuilder::new(
        Arc::new(workload.storage),
        workload.block.env.clone(),
        workload.block.cfg.clone(),
        BuilderOptions::default(),
    )
    .unwrap();
    assert!(
        builder.wait_committed().is_empty(),
        "nothing pushed: nothing to wait for"
    );
    let built = builder.finish().unwrap();
    assert!(built.block.txs.is_empty() && built.output.results.is_empty());
    assert_eq!(built.output.state, StateChanges::default());
    assert_eq!(built.stats.rounds, 0);
    assert_eq!(built.block.spec(), SpecId::PRAGUE);
}

#[test]
fn blob_gas_is_limited_per_block_like_gas() {
    use blockstm_evm::revm::primitives::B256;
    // Prague: at most 9 blobs per block. Ten one-blob candidates, then a two-blob one when a
    // single blob is left, then one more one-blob candidate that still fits.
    let workload = WorkloadSpec::new(WorkloadKind::Raw, 13).generate().unwrap();
    let blob_tx = |index: usize, blobs: usize| {
        let mut tx = workload.block.txs[index].clone();
        tx.tx_type = 3;
        tx.max_fee_per_blob_gas = 1_000_000;
        tx.blob_hashes = (0..blobs)
            .map(|i| {
                let mut hash = B256::repeat_byte(i as u8 + 1);
                hash.0[0] = 1; // the KZG version
                hash
            })
            .collect();
        Candidate::new(tx)
    };
    let mut candidates: Vec<Candidate> = (0..8).map(|i| blob_tx(i, 1)).collect();
    candidates.push(blob_tx(8, 2)); // 10 blobs: over by one
    candidates.push(blob_tx(9, 1)); // the ninth blob
    candidates.push(blob_tx(10, 1)); // none left
    let storage = Arc::new(workload.storage);
    let (_, built) = build_and_check(
        storage,
        &workload.block.env,
        &workload.block.cfg,
        &candidates,
        options(2, 4, 8),
        3,
    );
    assert_eq!(built.included, vec![0, 1, 2, 3, 4, 5, 6, 7, 9]);
    const BLOB: u64 = 131_072;
    assert_eq!(
        built.excluded,
        vec![
            (
                8,
                Exclusion::OverBlobGasLimit {
                    blob_gas: 2 * BLOB,
                    available: BLOB
                }
            ),
            (
                10,
                Exclusion::OverBlobGasLimit {
                    blob_gas: BLOB,
                    available: 0
                }
            ),
        ]
    );
}
