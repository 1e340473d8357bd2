//! # blockstm-evm
//!
//! Executes a block of Ethereum transactions on [`revm`] and returns, per transaction, everything
//! a receipt needs plus the block's net state changes. The crate is built around one promise
//! (Invariant E in the design): the parallel Block-STM engine returns exactly what the
//! sequential reference [`execute_sequential`] returns, for every block, storage, thread count
//! and schedule.
//!
//! ```
//! use blockstm_cli::workloads::{WorkloadKind, WorkloadSpec};
//! use blockstm_evm::{execute, execute_sequential, Options};
//!
//! // A generated block of 100 independent ETH transfers over an in-memory pre-state.
//! let workload = WorkloadSpec::new(WorkloadKind::Raw, 100).generate().unwrap();
//! let output = execute(&workload.storage, &workload.block, &Options::with_concurrency(2)).unwrap();
//! assert_eq!(output.results.len(), 100);
//! assert_eq!(output.gas_used(), 100 * 21_000);
//! assert_eq!(output, execute_sequential(&workload.storage, &workload.block).unwrap());
//! ```
//!
//! Storage is anything that implements revm's [`DatabaseRef`](revm::DatabaseRef): revm's
//! `CacheDB`, a reth state provider, or the [`InMemoryStorage`] shipped here.

#![deny(missing_docs)]

#[cfg(feature = "alloy-evm")]
pub mod alloy_evm;
pub mod block;
pub mod builder;
pub mod error;
mod evm;
pub mod executor;
mod location;
mod mv_memory;
mod once_box;
mod options;
pub mod output;
mod parallel;
mod plan;
pub mod pool;
mod rules;
mod scheduler;
mod segmented_vec;
pub mod sequential;
mod state_cache;
pub mod stats;
pub mod storage;
mod stress;
mod sync;
#[cfg(test)]
mod test_blocks;
mod types;
mod vm;

/// Loom model checking of the scheduler and MvMemory (`scripts/loom.sh`).
#[cfg(all(loom, test))]
#[path = "../loom-tests/mod.rs"]
mod loom_tests;

pub use block::Block;
pub use builder::{BlockBuilder, BuilderOptions};
pub use error::BlockError;
pub use executor::{Executor, execute};
pub use options::Options;
pub use output::{AccountChange, BlockOutput, SlotChange, StateChanges, TxResult};
pub use sequential::execute_sequential;
pub use stats::ExecutionStats;
pub use storage::{GenesisError, InMemoryStorage, StorageError};

/// The revm crate this executor is built on, re-exported so that callers use the same types.
pub use revm;
