//! The five generators. Each lays out the pre-state and appends transactions that succeed
//! when executed in order.

use rand::Rng;
use revm::primitives::{Bytes, U256};

use super::builder::{Builder, ETHER, Pool};
use super::contracts::{erc20_transfer, pair_swap};
use super::{WorkloadError, WorkloadKind, WorkloadSpec};
use blockstm_evm::block::Block;
use blockstm_evm::storage::InMemoryStorage;

/// Gas limit of a plain transfer.
const TRANSFER_GAS: u64 = 21_000;
/// Gas limit of an ERC-20 transfer (about 35-55k used).
const ERC20_GAS: u64 = 100_000;
/// Gas limit of a swap (about 90-130k used).
const SWAP_GAS: u64 = 250_000;
/// Initial reserve of each side of a pool (10^24 token units).
const RESERVE: u128 = 1_000_000 * ETHER;
/// Default number of tokens of the ERC-20 workload.
const DEFAULT_TOKENS: usize = 10;
/// Number of independent tokens the hybrid workload's ERC-20 transfers use.
const HYBRID_TOKENS: usize = 16;

pub(super) fn generate(spec: &WorkloadSpec) -> Result<(InMemoryStorage, Block), WorkloadError> {
    let mut builder = Builder::new(spec.seed, spec.txs)?;
    match spec.kind {
        WorkloadKind::Raw => (0..spec.txs).for_each(|_| raw_transfer(&mut builder)),
        WorkloadKind::Erc20 => erc20(
            &mut builder,
            spec.txs,
            spec.contracts.unwrap_or(DEFAULT_TOKENS),
        )?,
        WorkloadKind::Amm => amm(&mut builder, spec.txs, spec.contracts.unwrap_or(spec.txs))?,
        WorkloadKind::Hybrid => hybrid(&mut builder, spec.txs, spec.hot)?,
        WorkloadKind::Chain => chain(&mut builder, spec.txs),
    }
    Ok(builder.finish())
}

/// A fresh sender sends ETH to a fresh (non-existent) recipient.
fn raw_transfer(builder: &mut Builder) {
    let sender = builder.funded_account(1_000);
    let recipient = builder.new_address();
    let value = builder.amount(ETHER / 1_000_000, ETHER);
    builder.push_tx(sender, recipient, value, Bytes::new(), TRANSFER_GAS);
}

/// A fresh holder of `token` sends some of it to a fresh recipient.
fn erc20_transfer_tx(
    builder: &mut Builder,
    token: revm::primitives::Address,
) -> Result<(), WorkloadError> {
    let holder = builder.funded_account(10);
    let balance = builder.amount(1_000 * ETHER, 1_000_000 * ETHER);
    builder.mint(token, holder, balance)?;
    let recipient = builder.new_address();
    let amount = builder.amount(1, 1_000 * ETHER);
    builder.push_tx(
        holder,
        token,
        U256::ZERO,
        erc20_transfer(recipient, amount),
        ERC20_GAS,
    );
    Ok(())
}

fn erc20(builder: &mut Builder, txs: usize, tokens: usize) -> Result<(), WorkloadError> {
    let tokens = (0..tokens)
        .map(|_| builder.deploy_token())
        .collect::<Result<Vec<_>, _>>()?;
    for i in 0..txs {
        erc20_transfer_tx(builder, tokens[i % tokens.len()])?;
    }
    Ok(())
}

fn new_pool(builder: &mut Builder) -> Result<Pool, WorkloadError> {
    let reserve0 = builder.amount(RESERVE / 2, RESERVE);
    let reserve1 = builder.amount(RESERVE / 2, RESERVE);
    builder.deploy_pool(reserve0, reserve1)
}

/// A fresh trader, who approved `pool`, swaps a random direction and keeps the output.
fn swap_tx(builder: &mut Builder, pool: Pool) -> Result<(), WorkloadError> {
    let trader = builder.funded_account(10);
    let zero_for_one = builder.rng.random::<bool>();
    let token_in = if zero_for_one {
        pool.token0
    } else {
        pool.token1
    };
    let amount_in = builder.amount(ETHER, 100 * ETHER);
    builder.mint(token_in, trader, amount_in)?;
    builder.approve_max(token_in, trader, pool.address)?;
    let data = pair_swap(amount_in, U256::from(1), zero_for_one, trader);
    builder.push_tx(trader, pool.address, U256::ZERO, data, SWAP_GAS);
    Ok(())
}

fn amm(builder: &mut Builder, txs: usize, pools: usize) -> Result<(), WorkloadError> {
    let pools = (0..pools.min(txs))
        .map(|_| new_pool(builder))
        .collect::<Result<Vec<_>, _>>()?;
    for i in 0..txs {
        swap_tx(builder, pools[i % pools.len()])?;
    }
    Ok(())
}

fn hybrid(builder: &mut Builder, txs: usize, hot: f64) -> Result<(), WorkloadError> {
    let hot_pool = new_pool(builder)?;
    let tokens = (0..HYBRID_TOKENS)
        .map(|_| builder.deploy_token())
        .collect::<Result<Vec<_>, _>>()?;
    for _ in 0..txs {
        if builder.rng.random_bool(hot) {
            swap_tx(builder, hot_pool)?;
            continue;
        }
        match builder.rng.random_range(0..3) {
            0 => raw_transfer(builder),
            1 => {
                let token = tokens[builder.rng.random_range(0..tokens.len())];
                erc20_transfer_tx(builder, token)?;
            }
            _ => {
                let pool = new_pool(builder)?;
                swap_tx(builder, pool)?;
            }
        }
    }
    Ok(())
}

/// Sender `k+1` can pay only with what sender `k` sent it: every transaction depends on the
/// previous one.
fn chain(builder: &mut Builder, txs: usize) {
    let fee = U256::from(TRANSFER_GAS) * U256::from(super::builder::MAX_FEE);
    let mut value = fee * U256::from(txs) + U256::from(ETHER);
    let first = builder.new_address();
    builder.fund_wei(first, value + fee);
    let mut sender = first;
    for _ in 0..txs {
        let recipient = builder.new_address();
        builder.push_tx(sender, recipient, value, Bytes::new(), TRANSFER_GAS);
        value -= fee;
        sender = recipient;
    }
}
