//! alloy-evm (reth) integration: [`ParallelEthBlockExecutor`], alloy-evm's Ethereum block
//! executor with [`BlockExecutor::execute_block`] run by the parallel engine.
//!
//! Built with the `alloy-evm` feature (alloy-evm 0.39, the release on revm 43; Rust 1.94.1).
//!
//! # What runs in parallel
//!
//! Only `execute_block`, the path reth's pipeline and batch execution take
//! (`Executor::execute_one`). It runs the pre-execution system calls through the wrapped
//! [`EthBlockExecutor`], executes the transactions with [`crate::execute`] over a
//! [`StateView`] of the `State`, builds each receipt with the executor's receipt builder,
//! commits the block's net changes into the `State` in one pass, and lets the wrapped executor
//! finish the block (EIP-6110/7002/7251 requests, rewards, withdrawals, DAO drain). The result
//! and the `State` afterwards (cache, transitions, and so the merged bundle) equal what
//! `EthBlockExecutor::execute_block` gives.
//!
//! The per-transaction API (`execute_transaction*`, `commit_transaction`, `receipts`), used by
//! reth's engine-tree validator and payload builder, delegates to the wrapped executor and is
//! sequential: a caller that streams receipts or decides per transaction whether to commit
//! observes each transaction's result before the next runs, which the parallel engine cannot
//! give without a second pass.
//!
//! # Exactness and its limits
//!
//! - Invalid blocks: when the engine fails (an invalid transaction, a storage error, a worker
//!   panic) or a transaction's gas limit overflows the block's remaining gas, the block is
//!   re-executed transaction by transaction through the wrapped executor (nothing has been
//!   committed yet), so the error is alloy-evm's own, with its transaction hash.
//! - Inspectors: the EVM type must have no inspector (`Inspector = NoOpInspector`); the engine
//!   would not call one.
//! - Precompiles: the engine uses revm's Ethereum precompiles for the fork. An EVM built with
//!   custom precompiles (not detectable) must not be used with this executor.
//! - Receipt builders get each transaction's result but an empty `state`, and the EVM shows the
//!   state before the block's transactions: Ethereum's builders read neither; check others.
//! - The `State`'s state hook sees the block's net change (one or two commits) instead of one
//!   commit per transaction.
//! - Sequential fallback (the wrapped executor's own loop): blocks that
//!   [`Options::runs_in_parallel`] keeps on the sequential path (the engine's own rule: size,
//!   or declared work; `sequential_below: Some(0)` sends every block to the engine),
//!   Amsterdam (`enable_amsterdam_eip8037`, block-level access lists: a `State` with a BAL or
//!   a BAL builder).
//!
//! # Using it
//!
//! alloy-evm's `BlockExecutorFactory::Executor<DB>` must work for every `StateDB`, while the
//! engine needs a `DatabaseRef + Sync` database, so a factory cannot route into the engine
//! through that trait. [`ParallelEthBlockExecutorFactory::create_executor`] (an inherent method)
//! builds the executor for `EthEvm<&mut State<X>, NoOpInspector>`, where `X` is both
//! `Database` and `DatabaseRef + Sync` (revm's `WrapDatabaseRef<&S>`, reth's state provider
//! database): a reth integration calls it from its own `Executor` or `ConfigureEvm`. Generic
//! code names these bounds with [`ParallelEvm`] and [`ParallelReceiptBuilder`].

mod commit;
mod state_view;

pub use state_view::StateView;

use alloy_consensus::{Transaction, TransactionEnvelope, TxReceipt};
use alloy_eips::Encodable2718;
use alloy_evm::block::{
    BlockExecutionError, BlockExecutionResult, BlockExecutor, ExecutableTx, ExecutableTxParts,
    GasOutput, StateDB,
};
use alloy_evm::eth::receipt_builder::{ReceiptBuilder, ReceiptBuilderCtx};
use alloy_evm::eth::spec::EthExecutorSpec;
use alloy_evm::eth::{EthBlockExecutionCtx, EthBlockExecutor, EthTxResult};
use alloy_evm::{EthEvmFactory, Evm, EvmFactory, FromRecoveredTx, FromTxWithEncoded, RecoveredTx};
use alloy_primitives::Log;
use revm::context::result::HaltReason;
use revm::context::{Block as _, BlockEnv, TxEnv};
use revm::context_interface::Cfg as _;
use revm::database::State;
use revm::database_interface::{Database, DatabaseCommit, DatabaseRef};
use revm::inspector::NoOpInspector;
use revm::primitives::hardfork::SpecId;
use revm::state::EvmState;

use crate::{Block, BlockOutput, Options};

/// An EVM whose blocks [`ParallelEthBlockExecutor`] runs on the engine, for transactions of
/// type `T`: alloy-evm's Ethereum EVM with revm's environment types and no inspector (what
/// [`EthEvmFactory`] builds) over a `&'db mut State` whose database the engine can also read
/// from its workers ([`StateDb`](ParallelEvm::StateDb)), taking `TxEnv`s made from `T`.
///
/// Implemented for every EVM that fits; it names the executor's bounds once.
///
/// ```
/// use alloy_consensus::TxEnvelope;
/// use alloy_evm::{EthEvmFactory, EvmEnv, EvmFactory};
/// use blockstm_evm::InMemoryStorage;
/// use blockstm_evm::alloy_evm::ParallelEvm;
/// use blockstm_evm::revm::database::{State, WrapDatabaseRef};
///
/// fn runs_in_parallel<'db, E: ParallelEvm<'db, TxEnvelope>>(_: &E) {}
///
/// let storage = InMemoryStorage::new();
/// let mut state = State::builder().with_database(WrapDatabaseRef(&storage)).build();
/// let evm = EthEvmFactory::default().create_evm(&mut state, EvmEnv::default());
/// runs_in_parallel(&evm);
/// ```
pub trait ParallelEvm<'db, T>:
    Evm<
        DB = &'db mut State<Self::StateDb>,
        Tx = TxEnv,
        Spec = SpecId,
        BlockEnv = BlockEnv,
        HaltReason = HaltReason,
        Inspector = NoOpInspector,
    > + Evm<DB: StateDB, Tx: FromRecoveredTx<T> + FromTxWithEncoded<T>>
{
    /// The database under the `State`: read by alloy-evm through `Database` and by the
    /// engine's workers through `DatabaseRef` (revm's `WrapDatabaseRef<&S>`, reth's state
    /// provider database).
    type StateDb: Database + DatabaseRef<Error = <Self::StateDb as Database>::Error> + Sync + 'db;
}

impl<'db, T, X, E> ParallelEvm<'db, T> for E
where
    X: Database + DatabaseRef<Error = <X as Database>::Error> + Sync + 'db,
    E: Evm<
            DB = &'db mut State<X>,
            Tx = TxEnv,
            Spec = SpecId,
            BlockEnv = BlockEnv,
            HaltReason = HaltReason,
            Inspector = NoOpInspector,
        >,
    &'db mut State<X>: StateDB,
    TxEnv: FromRecoveredTx<T> + FromTxWithEncoded<T>,
{
    type StateDb = X;
}

/// A receipt builder [`ParallelEthBlockExecutor`] accepts: alloy-evm's [`EthBlockExecutor`]
/// bounds on it (Ethereum-like transactions and receipts with alloy's [`Log`]).
///
/// Implemented for every receipt builder that fits; it names the executor's bounds once.
///
/// ```
/// use alloy_evm::eth::receipt_builder::AlloyReceiptBuilder;
/// use blockstm_evm::alloy_evm::ParallelReceiptBuilder;
///
/// fn accepted<R: ParallelReceiptBuilder>(_: &R) {}
/// accepted(&AlloyReceiptBuilder::default());
/// ```
pub trait ParallelReceiptBuilder:
    ReceiptBuilder<
        Transaction: Transaction + Encodable2718 + TransactionEnvelope<TxType: Send + 'static>,
        Receipt: TxReceipt<Log = Log>,
    >
{
}

impl<R> ParallelReceiptBuilder for R
where
    R: ReceiptBuilder<Transaction: Transaction + Encodable2718, Receipt: TxReceipt<Log = Log>>,
    <R::Transaction as TransactionEnvelope>::TxType: Send + 'static,
{
}

/// alloy-evm's [`EthBlockExecutor`] whose [`execute_block`](BlockExecutor::execute_block)
/// runs the block's transactions on the parallel engine. Everything else delegates to the
/// wrapped executor (see the [module doc](self)).
///
/// ```
/// use alloy_evm::block::BlockExecutor;
/// use alloy_evm::eth::receipt_builder::AlloyReceiptBuilder;
/// use alloy_evm::eth::{EthBlockExecutionCtx, spec::EthSpec};
/// use alloy_evm::{EthEvmFactory, EvmEnv, EvmFactory};
/// use blockstm_evm::alloy_evm::ParallelEthBlockExecutorFactory;
/// use blockstm_evm::revm::database::{State, WrapDatabaseRef};
/// use blockstm_evm::{InMemoryStorage, Options};
///
/// let storage = InMemoryStorage::new();
/// let mut state = State::builder().with_database(WrapDatabaseRef(&storage)).with_bundle_update().build();
/// let factory = ParallelEthBlockExecutorFactory::new(
///     EthSpec::mainnet(),
///     AlloyReceiptBuilder::default(),
///     Options::default(),
/// );
/// let evm = EthEvmFactory::default().create_evm(&mut state, EvmEnv::default());
/// let ctx = EthBlockExecutionCtx {
///     parent_hash: Default::default(),
///     parent_beacon_block_root: None,
///     ommers: &[],
///     withdrawals: None,
///     extra_data: Default::default(),
///     tx_count_hint: None,
///     slot_number: None,
/// };
/// let no_txs: Vec<alloy_consensus::transaction::Recovered<alloy_consensus::TxEnvelope>> = vec![];
/// let result = factory.create_executor(evm, ctx).execute_block(&no_txs).unwrap();
/// assert_eq!(result.gas_used, 0);
/// ```
pub struct ParallelEthBlockExecutor<'a, E, Spec, R: ReceiptBuilder> {
    inner: EthBlockExecutor<'a, E, Spec, R>,
    options: Options,
}

impl<E, Spec, R: ReceiptBuilder> core::fmt::Debug for ParallelEthBlockExecutor<'_, E, Spec, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Why by hand: the wrapped executor is `Debug` only when its EVM, spec and receipts are.
        f.debug_struct("ParallelEthBlockExecutor")
            .field("options", &self.options)
            .field("receipts", &self.inner.receipts.len())
            .finish_non_exhaustive()
    }
}

impl<'a, E, Spec, R: ReceiptBuilder> ParallelEthBlockExecutor<'a, E, Spec, R> {
    /// Wraps `inner`; `options` configure the engine (workers, sequential threshold).
    pub fn new(inner: EthBlockExecutor<'a, E, Spec, R>, options: Options) -> Self {
        Self { inner, options }
    }

    /// The wrapped executor.
    pub fn inner(&self) -> &EthBlockExecutor<'a, E, Spec, R> {
        &self.inner
    }

    /// The wrapped executor, mutably (its fields are alloy-evm's public state).
    pub fn inner_mut(&mut self) -> &mut EthBlockExecutor<'a, E, Spec, R> {
        &mut self.inner
    }

    /// The wrapped executor, unwrapped.
    pub fn into_inner(self) -> EthBlockExecutor<'a, E, Spec, R> {
        self.inner
    }

    /// The engine options.
    pub fn options(&self) -> &Options {
        &self.options
    }
}

impl<'a, 'db, E, Spec, R> BlockExecutor for ParallelEthBlockExecutor<'a, E, Spec, R>
where
    E: ParallelEvm<'db, R::Transaction>,
    Spec: EthExecutorSpec,
    R: ParallelReceiptBuilder,
{
    type Transaction = R::Transaction;
    type Receipt = R::Receipt;
    type Evm = E;
    type Result = EthTxResult<HaltReason, <R::Transaction as TransactionEnvelope>::TxType>;

    fn apply_pre_execution_changes(&mut self) -> Result<(), BlockExecutionError> {
        self.inner.apply_pre_execution_changes()
    }

    fn execute_transaction_without_commit(
        &mut self,
        tx: impl ExecutableTx<Self>,
    ) -> Result<Self::Result, BlockExecutionError> {
        // Why the split: `tx` is `ExecutableTx<Self>`, the inner executor takes
        // `ExecutableTx<EthBlockExecutor>`; the parts are the same types.
        self.inner
            .execute_transaction_without_commit(tx.into_parts())
    }

    fn commit_transaction(&mut self, output: Self::Result) -> GasOutput {
        self.inner.commit_transaction(output)
    }

    fn finish(self) -> Result<(E, BlockExecutionResult<R::Receipt>), BlockExecutionError> {
        self.inner.finish()
    }

    fn evm_mut(&mut self) -> &mut E {
        self.inner.evm_mut()
    }

    fn evm(&self) -> &E {
        self.inner.evm()
    }

    fn receipts(&self) -> &[R::Receipt] {
        self.inner.receipts()
    }

    fn execute_block(
        mut self,
        transactions: impl IntoIterator<Item = impl ExecutableTx<Self>>,
    ) -> Result<BlockExecutionResult<R::Receipt>, BlockExecutionError> {
        self.inner.apply_pre_execution_changes()?;
        let (txs, recovered): (Vec<TxEnv>, Vec<_>) = transactions
            .into_iter()
            .map(ExecutableTxParts::into_parts)
            .unzip();
        let block = Block {
            env: self.inner.evm.block().clone(),
            cfg: self.inner.evm.cfg_env().clone(),
            txs,
        };
        if !self.runs_in_parallel(&block) {
            return self.finish_sequentially(block.txs, recovered);
        }
        let output = {
            let view = StateView::new(&**self.inner.evm.db());
            crate::execute(&view, &block, &self.options)
        };
        match output {
            Ok(output) if self.fits_block_gas(&output, &recovered) => {
                self.commit_block(output, &recovered);
                self.inner.apply_post_execution_changes()
            }
            // Nothing is committed yet: alloy-evm's loop reports the error it would have.
            _ => self.finish_sequentially(block.txs, recovered),
        }
    }
}

impl<'a, 'db, E, Spec, R> ParallelEthBlockExecutor<'a, E, Spec, R>
where
    E: ParallelEvm<'db, R::Transaction>,
    Spec: EthExecutorSpec,
    R: ParallelReceiptBuilder,
{
    /// Whether `block` goes to the engine (see the module doc): by the engine's own rule
    /// ([`Options::runs_in_parallel`]; `sequential_below: Some(0)` sends every block, which
    /// the engine may still run on its own sequential path), unless the block is one the
    /// engine does not cover.
    fn runs_in_parallel(&self, block: &Block) -> bool {
        let cfg = self.inner.evm.cfg_env();
        let state: &State<E::StateDb> = self.inner.evm.db();
        let bal = state.bal_state.bal.is_some() || state.bal_state.bal_builder.is_some();
        (self.options.sequential_below == Some(0) || self.options.runs_in_parallel(block))
            && !cfg.enable_amsterdam_eip8037
            && !cfg.spec.is_enabled_in(SpecId::AMSTERDAM)
            && !bal
    }

    /// alloy-evm's own loop over the transactions, then its post-execution changes.
    fn finish_sequentially<T: RecoveredTx<R::Transaction>>(
        mut self,
        txs: Vec<TxEnv>,
        recovered: Vec<T>,
    ) -> Result<BlockExecutionResult<R::Receipt>, BlockExecutionError> {
        for tx in txs.into_iter().zip(recovered) {
            self.inner.execute_transaction(tx)?;
        }
        self.inner.apply_post_execution_changes()
    }

    /// Whether every transaction's gas limit fits the block's remaining gas when it starts,
    /// the check alloy-evm makes before executing it (pre-Amsterdam rule: gas after refunds
    /// counts, the limit is capped by the fork's transaction gas cap).
    fn fits_block_gas<T: RecoveredTx<R::Transaction>>(
        &self,
        output: &BlockOutput,
        recovered: &[T],
    ) -> bool {
        let block_gas_limit = self.inner.evm.block().gas_limit();
        let cap = self.inner.evm.cfg_env().tx_gas_limit_cap();
        let mut used = self.inner.cumulative_tx_gas_used;
        for (result, tx) in output.results.iter().zip(recovered) {
            let Some(available) = block_gas_limit.checked_sub(used) else {
                return false;
            };
            if tx.tx().gas_limit().min(cap) > available {
                return false;
            }
            used = used.saturating_add(result.result.tx_gas_used());
        }
        true
    }

    /// What `commit_transaction` does for each transaction (gas counters, blob gas, receipt),
    /// then one commit of the block's net changes into the `State`.
    fn commit_block<T: RecoveredTx<R::Transaction>>(
        &mut self,
        output: BlockOutput,
        recovered: &[T],
    ) {
        let inner = &mut self.inner;
        let cancun = inner
            .spec
            .is_cancun_active_at_timestamp(inner.evm.block().timestamp().saturating_to());
        // Why empty: the per-transaction state is not materialised (see the module doc).
        let no_state = EvmState::default();
        inner.receipts.reserve(output.results.len());
        for (result, tx) in output.results.into_iter().zip(recovered) {
            let gas = result.result.gas();
            inner.block_regular_gas_used += gas.block_regular_gas_used();
            inner.block_state_gas_used += gas.block_state_gas_used();
            inner.cumulative_tx_gas_used += gas.tx_gas_used();
            if cancun {
                let blob_gas = tx.tx().blob_gas_used().unwrap_or_default();
                inner.blob_gas_used = inner.blob_gas_used.saturating_add(blob_gas);
            }
            let receipt = inner.receipt_builder.build_receipt(ReceiptBuilderCtx {
                tx_type: tx.tx().tx_type(),
                evm: &inner.evm,
                result: result.result,
                state: &no_state,
                cumulative_gas_used: inner.cumulative_tx_gas_used,
            });
            inner.receipts.push(receipt);
        }
        let (destroyed, net) = commit::net_commits(output.state);
        if !destroyed.is_empty() {
            inner.evm.db_mut().commit(destroyed);
        }
        inner.evm.db_mut().commit(net);
    }
}

/// Builds [`ParallelEthBlockExecutor`]s: alloy-evm's `EthBlockExecutorFactory` parts (chain
/// spec, receipt builder) plus the engine's [`Options`].
///
/// It is not an alloy-evm `BlockExecutorFactory`: that trait's executor must accept every
/// `StateDB`, the engine needs `DatabaseRef + Sync` (see the [module doc](self)).
#[derive(Clone, Debug, Default)]
pub struct ParallelEthBlockExecutorFactory<Spec, R> {
    spec: Spec,
    receipt_builder: R,
    options: Options,
}

impl<Spec, R> ParallelEthBlockExecutorFactory<Spec, R> {
    /// A factory for chain `spec` (e.g. `EthSpec::mainnet()`) and `receipt_builder` (e.g.
    /// `AlloyReceiptBuilder`), running blocks with `options`.
    pub fn new(spec: Spec, receipt_builder: R, options: Options) -> Self {
        Self {
            spec,
            receipt_builder,
            options,
        }
    }

    /// The chain specification.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The receipt builder.
    pub fn receipt_builder(&self) -> &R {
        &self.receipt_builder
    }

    /// The engine options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// An executor for one block on `evm` (built by alloy-evm's `EthEvmFactory`, without an
    /// inspector) with the block's context `ctx`. Its `execute_block` is parallel when `DB` is
    /// `&mut State<X>` with `X: Database + DatabaseRef + Sync`.
    pub fn create_executor<'a, DB>(
        &'a self,
        evm: <EthEvmFactory as EvmFactory>::Evm<DB, NoOpInspector>,
        ctx: EthBlockExecutionCtx<'a>,
    ) -> ParallelEthBlockExecutor<
        'a,
        <EthEvmFactory as EvmFactory>::Evm<DB, NoOpInspector>,
        &'a Spec,
        &'a R,
    >
    where
        DB: alloy_evm::Database,
        R: ReceiptBuilder,
    {
        ParallelEthBlockExecutor::new(
            EthBlockExecutor::new(evm, ctx, &self.spec, &self.receipt_builder),
            self.options.clone(),
        )
    }
}
