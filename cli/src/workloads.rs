//! Deterministic, seeded block generators for benchmarks, tests, fuzzing and the CLI.
//!
//! Each generator returns a [`Workload`]: an [`InMemoryStorage`] pre-state and a [`Block`]
//! whose transactions all succeed when executed in order. The contracts are real Solidity
//! (OpenZeppelin's ERC-20 and our constant-product pool, see `contracts/`).
//!
//! | kind | transactions | conflicts |
//! |---|---|---|
//! | [`Raw`](WorkloadKind::Raw) | ETH transfers, distinct senders and recipients | beneficiary only |
//! | [`Erc20`](WorkloadKind::Erc20) | ERC-20 `transfer` on `contracts` tokens, distinct holders | none between holders |
//! | [`Amm`](WorkloadKind::Amm) | swaps on `contracts` independent pools (default: one per swap) | swaps on the same pool |
//! | [`Hybrid`](WorkloadKind::Hybrid) | a fraction `hot` of swaps on one hot pool, the rest raw/ERC-20/AMM | the hot fraction |
//! | [`Chain`](WorkloadKind::Chain) | each sender spends what the previous transaction sent it | every transaction |

mod builder;
pub mod contracts;
mod generators;

use std::fmt;
use std::str::FromStr;

use blockstm_evm::block::Block;
use blockstm_evm::storage::InMemoryStorage;

/// The largest block the generators build; bigger requests are refused as absurd.
pub const MAX_TXS: usize = 1_000_000;

/// Which kind of block to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// Independent plain ETH transfers.
    Raw,
    /// ERC-20 transfers between distinct holders.
    Erc20,
    /// Swaps on independent constant-product pools.
    Amm,
    /// A mix of the three with a fraction of swaps on one hot pool.
    Hybrid,
    /// A fully dependent chain of transfers.
    Chain,
}

impl WorkloadKind {
    /// Every kind, in the order the CLI reports them.
    pub const ALL: [WorkloadKind; 5] = [
        WorkloadKind::Raw,
        WorkloadKind::Erc20,
        WorkloadKind::Amm,
        WorkloadKind::Hybrid,
        WorkloadKind::Chain,
    ];

    /// The kind's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Raw => "raw",
            WorkloadKind::Erc20 => "erc20",
            WorkloadKind::Amm => "amm",
            WorkloadKind::Hybrid => "hybrid",
            WorkloadKind::Chain => "chain",
        }
    }

    /// Default block size: large enough to measure, small enough to finish fast here.
    pub fn default_txs(self) -> usize {
        match self {
            WorkloadKind::Raw | WorkloadKind::Erc20 => 10_000,
            WorkloadKind::Amm | WorkloadKind::Hybrid => 4_000,
            WorkloadKind::Chain => 2_000,
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WorkloadKind {
    type Err = WorkloadError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| WorkloadError::UnknownKind(name.to_owned()))
    }
}

/// Why a workload could not be generated.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum WorkloadError {
    /// No such workload kind.
    #[error("unknown workload {0:?} (expected one of raw, erc20, amm, hybrid, chain)")]
    UnknownKind(String),
    /// A block needs at least one transaction.
    #[error("a workload needs at least one transaction")]
    NoTransactions,
    /// More transactions than [`MAX_TXS`].
    #[error("{0} transactions is more than the {MAX_TXS} a generated block may hold")]
    TooManyTransactions(usize),
    /// `hot` is a fraction.
    #[error("hot ratio {0} is not a fraction between 0 and 1")]
    HotRatio(f64),
    /// A workload with contracts needs at least one.
    #[error("the number of contracts must be at least 1")]
    NoContracts,
    /// A compiled contract artifact is unusable.
    #[error("contract artifact: {0}")]
    Contract(String),
}

/// What to generate: kind, size, seed and shape parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSpec {
    /// The kind of block.
    pub kind: WorkloadKind,
    /// Number of transactions.
    pub txs: usize,
    /// Seed of the generator: the same spec always gives the same block.
    pub seed: u64,
    /// Fraction of transactions on the hot pool (`Hybrid` only).
    pub hot: f64,
    /// Number of tokens (`Erc20`, default 10) or pools (`Amm`, default one per swap).
    pub contracts: Option<usize>,
}

impl WorkloadSpec {
    /// Default hot ratio of [`WorkloadKind::Hybrid`].
    pub const DEFAULT_HOT: f64 = 0.3;

    /// `txs` transactions of `kind` with seed 1 and default shape.
    pub fn new(kind: WorkloadKind, txs: usize) -> Self {
        Self {
            kind,
            txs,
            seed: 1,
            hot: Self::DEFAULT_HOT,
            contracts: None,
        }
    }

    /// The same spec with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same spec with another hot ratio.
    pub fn with_hot(mut self, hot: f64) -> Self {
        self.hot = hot;
        self
    }

    /// The same spec with a given number of tokens or pools.
    pub fn with_contracts(mut self, contracts: usize) -> Self {
        self.contracts = Some(contracts);
        self
    }

    /// Checks the parameters without generating anything.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if self.txs == 0 {
            return Err(WorkloadError::NoTransactions);
        }
        if self.txs > MAX_TXS {
            return Err(WorkloadError::TooManyTransactions(self.txs));
        }
        if !(0.0..=1.0).contains(&self.hot) {
            return Err(WorkloadError::HotRatio(self.hot));
        }
        if self.contracts == Some(0) {
            return Err(WorkloadError::NoContracts);
        }
        Ok(())
    }

    /// Generates the block and its pre-state.
    pub fn generate(&self) -> Result<Workload, WorkloadError> {
        self.validate()?;
        let (storage, block) = generators::generate(self)?;
        Ok(Workload {
            spec: self.clone(),
            storage,
            block,
        })
    }
}

/// A generated block with the pre-state it runs on.
#[derive(Clone, Debug)]
pub struct Workload {
    /// What was generated.
    pub spec: WorkloadSpec,
    /// The pre-block state.
    pub storage: InMemoryStorage,
    /// The block.
    pub block: Block,
}
