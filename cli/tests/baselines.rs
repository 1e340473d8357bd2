//! The bench's baselines run the same block as the engine: bare revm uses the same gas, and
//! reth's executor (revm `State` with bundle updates; alloy-evm's `EthBlockExecutor` with the
//! `alloy-evm` feature) ends with the bundle the engine's output converts to, on every
//! generated workload.

use blockstm_cli::baselines::{BaselineError, revm_bare, revm_state_bundle};
use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
use blockstm_evm::execute_sequential;

#[test]
fn the_baselines_run_the_same_blocks_as_the_engine() {
    for kind in WorkloadKind::ALL {
        let workload = WorkloadSpec::new(kind, 60).generate().unwrap();
        let output = execute_sequential(&workload.storage, &workload.block).unwrap();
        let gas = revm_bare(&workload.storage, &workload.block).unwrap();
        assert_eq!(gas, output.gas_used(), "{kind}: bare revm");
        let reth = revm_state_bundle(&workload.storage, &workload.block).unwrap();
        assert_eq!(reth.gas, output.gas_used(), "{kind}: revm State");
        assert_eq!(reth.results.len(), workload.block.txs.len(), "{kind}");
        let results: Vec<_> = output.results.iter().map(|r| r.result.clone()).collect();
        assert_eq!(reth.results, results, "{kind}: revm State's results");
        assert!(
            reth.bundle == output.state.clone().into_bundle_state(),
            "{kind}: revm State's bundle differs from the engine's"
        );
    }
}

#[test]
fn a_baseline_reports_the_failing_transaction() {
    let mut workload = WorkloadSpec::new(WorkloadKind::Raw, 5).generate().unwrap();
    // A nonce from the future: revm rejects the transaction.
    workload.block.txs[3].nonce += 1_000;
    let error: BaselineError = revm_bare(&workload.storage, &workload.block).unwrap_err();
    assert_eq!(error.index, 3, "{error}");
    let error = revm_state_bundle(&workload.storage, &workload.block)
        .err()
        .unwrap();
    assert_eq!(error.index, 3, "{error}");
}

#[cfg(feature = "alloy-evm")]
#[test]
fn reths_executor_and_the_adapter_end_with_the_same_bundle() {
    use blockstm_cli::baselines::alloy_evm::{AlloyBlock, AlloyExecutor};
    use blockstm_evm::Options;

    for kind in WorkloadKind::ALL {
        let workload = WorkloadSpec::new(kind, 60).generate().unwrap();
        let output = execute_sequential(&workload.storage, &workload.block).unwrap();
        let block = AlloyBlock::new(&workload.block).unwrap();
        let reth = block.run(&workload.storage, &AlloyExecutor::Reth).unwrap();
        let options = Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(2)
        };
        let ours = block
            .run(&workload.storage, &AlloyExecutor::Parallel(options))
            .unwrap();
        assert_eq!(reth.result.gas_used, output.gas_used(), "{kind}");
        assert_eq!(reth.result.receipts, ours.result.receipts, "{kind}");
        assert!(reth.bundle == ours.bundle, "{kind}: bundles differ");
    }
}
