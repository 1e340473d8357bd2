//! The engines `blockstm bench` times on one block: what users run today (bare revm, reth's
//! executor) and ours (sequential, parallel, parallel with the output turned into reth's
//! bundle), each run timed alone: a run starts only once every earlier block's deferred
//! teardown has finished.

use std::time::{Duration, Instant};

use blockstm_cli::baselines::{self, BaselineError};
use blockstm_cli::workloads::WorkloadKind;
use blockstm_evm::revm::DatabaseRef;
use blockstm_evm::revm::database::BundleState;
use blockstm_evm::{Block, BlockOutput, ExecutionStats, Executor, Options, execute_sequential};

use crate::bench::BenchError;

/// One engine of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    /// Bare revm: `CacheDB`, `transact_commit`, no output.
    Revm,
    /// reth's executor: alloy-evm's `EthBlockExecutor` with the `alloy-evm` feature, else revm's
    /// `State` with bundle updates; both end with the bundle taken.
    Reth,
    /// `execute_sequential`.
    Sequential,
    /// `execute` (on the pool, or on spawned threads with `--spawned-threads`).
    Parallel,
    /// The parallel engine ending where reth's executor ends, with a `BundleState`: our
    /// alloy-evm adapter with the `alloy-evm` feature, else `execute` and
    /// `StateChanges::into_bundle_state`.
    ParallelBundle,
}

impl Contender {
    /// Every contender, in the order one round of runs takes them.
    pub const ALL: [Self; 5] = [
        Self::Revm,
        Self::Reth,
        Self::Sequential,
        Self::Parallel,
        Self::ParallelBundle,
    ];

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Revm => "revm",
            Self::Reth => "reth",
            Self::Sequential => "sequential",
            Self::Parallel => "parallel",
            Self::ParallelBundle => "parallel+bundle",
        }
    }
}

/// How reth's executor is run: the `reth_engine` field of the bench's JSON.
pub const RETH_ENGINE: &str = if cfg!(feature = "alloy-evm") {
    "alloy-evm EthBlockExecutor"
} else {
    "revm State + take_bundle"
};

/// What one timed run returns.
pub struct Timed {
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The engine's statistics (the parallel contender on the pool only).
    pub stats: Option<ExecutionStats>,
    /// The block's output (the engine's own contenders only).
    pub output: Option<BlockOutput>,
}

/// The contenders on one block.
pub struct Contenders<'b> {
    kind: WorkloadKind,
    block: &'b Block,
    options: Options,
    executor: &'b Executor,
    with_stats: bool,
    #[cfg(feature = "alloy-evm")]
    alloy_block: baselines::alloy_evm::AlloyBlock,
}

impl<'b> Contenders<'b> {
    /// The contenders on `block`, the parallel ones on `executor` with `options`.
    pub fn new(
        kind: WorkloadKind,
        block: &'b Block,
        executor: &'b Executor,
        options: Options,
        with_stats: bool,
    ) -> Result<Self, BaselineError> {
        Ok(Self {
            kind,
            block,
            options,
            executor,
            with_stats,
            #[cfg(feature = "alloy-evm")]
            alloy_block: baselines::alloy_evm::AlloyBlock::new(block)?,
        })
    }

    /// Waits until the deferred teardown of every block run so far has finished.
    pub fn wait_for_teardown(&self) {
        self.executor.wait_for_teardown();
        // The adapter (`ParallelBundle` with the `alloy-evm` feature) runs on the global one.
        Executor::global().wait_for_teardown();
    }

    /// Runs `contender` once on `storage`, timed, after waiting for earlier teardowns.
    pub fn run<S>(&self, contender: Contender, storage: &S) -> Result<Timed, BenchError>
    where
        S: DatabaseRef<Error = blockstm_evm::StorageError> + Sync + std::fmt::Debug,
    {
        self.wait_for_teardown();
        self.run_now(contender, storage)
    }

    /// Runs `contender` once on `storage`, timed, at once (earlier teardowns may still run:
    /// blocks back to back).
    pub fn run_now<S>(&self, contender: Contender, storage: &S) -> Result<Timed, BenchError>
    where
        S: DatabaseRef<Error = blockstm_evm::StorageError> + Sync + std::fmt::Debug,
    {
        let engine = |source| BenchError::Execution {
            workload: self.kind,
            source,
        };
        let started = Instant::now();
        let mut timed = Timed {
            elapsed: Duration::ZERO,
            stats: None,
            output: None,
        };
        let baseline = |error: BaselineError| BenchError::Baseline {
            workload: self.kind,
            contender: contender.name(),
            message: error.to_string(),
        };
        let mut bundled = None;
        match contender {
            Contender::Revm => {
                baselines::revm_bare(storage, self.block).map_err(baseline)?;
            }
            Contender::Reth => {
                bundled = Some(self.reth(storage).map_err(baseline)?);
            }
            Contender::Sequential => {
                timed.output = Some(execute_sequential(storage, self.block).map_err(engine)?);
            }
            Contender::Parallel => {
                if self.with_stats {
                    let (output, stats) = self
                        .executor
                        .execute_with_stats(storage, self.block, &self.options)
                        .map_err(engine)?;
                    timed.output = Some(output);
                    timed.stats = Some(stats);
                } else {
                    let output = self.executor.execute(storage, self.block, &self.options);
                    timed.output = Some(output.map_err(engine)?);
                }
            }
            Contender::ParallelBundle => {
                bundled = Some(self.parallel_bundle(storage).map_err(baseline)?);
            }
        }
        timed.elapsed = started.elapsed();
        // Dropped after the clock stops, as the engines' outputs are.
        drop(bundled);
        Ok(timed)
    }

    /// Runs each baseline once and checks that it ran the block `reference` is the output
    /// of: the same gas (bare revm), the same bundle (reth's executor against ours).
    pub fn check<S>(&self, storage: &S, reference: &BlockOutput) -> Result<(), BenchError>
    where
        S: DatabaseRef<Error = blockstm_evm::StorageError> + Sync + std::fmt::Debug,
    {
        let disagree = |contender: Contender, message: String| BenchError::Baseline {
            workload: self.kind,
            contender: contender.name(),
            message,
        };
        let gas = baselines::revm_bare(storage, self.block)
            .map_err(|error| disagree(Contender::Revm, error.to_string()))?;
        if gas != reference.gas_used() {
            return Err(disagree(
                Contender::Revm,
                format!("used {gas} gas, the engine {}", reference.gas_used()),
            ));
        }
        let reth = self
            .reth(storage)
            .map_err(|error| disagree(Contender::Reth, error.to_string()))?;
        let ours = self
            .parallel_bundle(storage)
            .map_err(|error| disagree(Contender::ParallelBundle, error.to_string()))?;
        if (reth.gas, &reth.bundle) != (ours.gas, &ours.bundle) {
            return Err(disagree(
                Contender::Reth,
                format!(
                    "its bundle or gas differs from the engine's ({} and {} accounts)",
                    reth.bundle.state.len(),
                    ours.bundle.state.len()
                ),
            ));
        }
        Ok(())
    }

    /// reth's executor on `storage`.
    fn reth<S>(&self, storage: &S) -> Result<BundledRun, BaselineError>
    where
        S: DatabaseRef<Error = blockstm_evm::StorageError> + Sync + std::fmt::Debug,
    {
        #[cfg(feature = "alloy-evm")]
        {
            self.alloy_run(storage, &baselines::alloy_evm::AlloyExecutor::Reth)
        }
        #[cfg(not(feature = "alloy-evm"))]
        {
            let run = baselines::revm_state_bundle(storage, self.block)?;
            Ok(BundledRun {
                gas: run.gas,
                bundle: run.bundle,
                _rest: Box::new(run.results),
            })
        }
    }

    /// The parallel engine ending with reth's bundle.
    fn parallel_bundle<S>(&self, storage: &S) -> Result<BundledRun, BaselineError>
    where
        S: DatabaseRef<Error = blockstm_evm::StorageError> + Sync + std::fmt::Debug,
    {
        #[cfg(feature = "alloy-evm")]
        {
            let executor = baselines::alloy_evm::AlloyExecutor::Parallel(self.options.clone());
            self.alloy_run(storage, &executor)
        }
        #[cfg(not(feature = "alloy-evm"))]
        {
            let output = self
                .executor
                .execute(storage, self.block, &self.options)
                .map_err(|error| BaselineError {
                    index: error.index().unwrap_or(self.block.txs.len()),
                    message: error.to_string(),
                })?;
            let gas = output.gas_used();
            let (results, state) = output.into_parts();
            Ok(BundledRun {
                gas,
                bundle: state.into_bundle_state(),
                _rest: Box::new(results),
            })
        }
    }

    /// `executor` through alloy-evm on `storage`.
    #[cfg(feature = "alloy-evm")]
    fn alloy_run<S>(
        &self,
        storage: &S,
        executor: &baselines::alloy_evm::AlloyExecutor,
    ) -> Result<BundledRun, BaselineError>
    where
        S: DatabaseRef<Error = blockstm_evm::StorageError> + Sync + std::fmt::Debug,
    {
        let run = self.alloy_block.run(storage, executor)?;
        Ok(BundledRun {
            gas: run.result.gas_used,
            bundle: run.bundle,
            _rest: Box::new(run.result),
        })
    }
}

/// What a contender ending with reth's bundle returns: the block's gas and bundle, and the
/// rest of what it built (results or receipts), kept so that a timed run drops it all after
/// the clock stops.
struct BundledRun {
    gas: u64,
    bundle: BundleState,
    _rest: Box<dyn std::any::Any>,
}
