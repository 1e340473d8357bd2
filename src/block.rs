//! The input of an execution: a block environment, the chain configuration and the ordered
//! transactions, all as revm types.

use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::primitives::hardfork::SpecId;

/// A block to execute: what revm needs to run its transactions in order.
///
/// Block rewards, withdrawals and system calls (EIP-4788, EIP-2935) lie outside transaction
/// execution and are left to the caller, as in revm.
#[derive(Clone, Debug, Default)]
pub struct Block {
    /// Header fields visible to the EVM (number, beneficiary, base fee, ...).
    pub env: BlockEnv,
    /// Chain configuration: the fork (`cfg.spec`), chain id and revm's switches.
    pub cfg: CfgEnv,
    /// The transactions, executed in this order.
    pub txs: Vec<TxEnv>,
}

impl Block {
    /// A block of `txs` under `env`, with revm's mainnet configuration for `spec`.
    pub fn new(env: BlockEnv, spec: SpecId, txs: Vec<TxEnv>) -> Self {
        Self {
            env,
            cfg: CfgEnv::new_with_spec(spec),
            txs,
        }
    }

    /// The fork the block runs under.
    pub fn spec(&self) -> SpecId {
        self.cfg.spec
    }
}
