//! Building a revm EVM for a block: one place, so every path configures revm the same way.

use revm::context::Context;
use revm::context::{BlockEnv, CfgEnv, Journal, TxEnv};
use revm::database_interface::Database;
use revm::handler::{MainBuilder, MainContext, MainnetEvm};

use crate::block::Block;

/// revm's mainnet EVM over database `DB`.
pub(crate) type BlockEvm<DB> = MainnetEvm<Context<BlockEnv, TxEnv, CfgEnv, DB, Journal<DB>, ()>>;

/// A mainnet EVM over `db`, configured with the block's environment and chain configuration.
pub(crate) fn block_evm<DB: Database>(db: DB, block: &Block) -> BlockEvm<DB> {
    Context::mainnet()
        .with_db(db)
        .with_block(block.env.clone())
        .with_cfg(block.cfg.clone())
        .build_mainnet()
}
