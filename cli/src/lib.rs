//! # blockstm-cli
//!
//! The harness around the [`blockstm_evm`] engine: what the `blockstm` binary, the engine's
//! tests and its benchmarks share, and what an integrator of the engine does not link.
//!
//! - [`baselines`]: what users run today (bare revm, reth's executor), benched beside the
//!   engine;
//! - [`workloads`]: seeded generators of blocks over an in-memory pre-state (independent
//!   transfers, ERC-20 transfers, AMM swaps, a hot-pool mix, a dependent chain);
//! - [`replay`]: loads the real mainnet blocks of `../shared/mainnet` and checks an output
//!   against the block's header;
//! - [`conformance`]: runs Ethereum state tests and blockchain tests through both engines;
//! - [`LatencyStorage`]: a storage whose first read of each location is slow, as from disk.

pub mod baselines;
pub mod conformance;
pub mod envelope;
mod latency;
pub mod replay;
pub mod workloads;

pub use latency::LatencyStorage;
