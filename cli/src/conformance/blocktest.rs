//! Blockchain tests (`BlockchainTests/ValidBlocks`): every block's transactions run through
//! the sequential reference and through the parallel engine at several concurrencies, which
//! must all agree. What lies outside transaction execution is applied here, in the harness:
//! block and ommer rewards before the merge, withdrawals (Shanghai), and the system calls of
//! EIP-4788 (Cancun), EIP-2935, EIP-7002 and EIP-7251 (Prague). Each block is then checked
//! against its header (gas used, logs bloom, receipts root, state root), and the state at
//! `lastblockhash` against the fixture's `postState`.
//!
//! Blocks are kept by hash, each executed on its parent's state, so competing chains are
//! each checked and the one `lastblockhash` names is the one compared with `postState`.

use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use alloy_consensus::transaction::SignerRecoverable as _;
use alloy_consensus::{Header, TxEnvelope};
use alloy_eips::{eip2935, eip4788, eip7002, eip7251};
use alloy_rlp::Decodable as _;
use revm::context::{CfgEnv, Context};
use revm::database::CacheDB;
use revm::handler::system_call::SystemCallEvm as _;
use revm::handler::{MainBuilder as _, MainContext as _};
use revm::primitives::hardfork::SpecId;
use revm::primitives::{Address, B256, Bytes, U256};
use revm_statetest_types::blockchain::{Account, BlockchainTest, BlockchainTestCase};

use super::skips::{skipped_file, skipped_network};
use super::statetest::panic_message;
use super::{CaseOutcome, Verdict, WorldState, parallel_difference};
use crate::replay::{block_env, check_header, tx_env};
use blockstm_evm::block::Block;
use blockstm_evm::sequential::execute_sequential;
use blockstm_evm::storage::InMemoryStorage;
use blockstm_evm::{Options, execute};

/// How to run blockchain tests.
#[derive(Clone, Debug)]
pub struct BlockTestOptions {
    /// Concurrencies the parallel engine runs each block at.
    pub concurrencies: Vec<usize>,
}

impl Default for BlockTestOptions {
    fn default() -> Self {
        Self {
            concurrencies: vec![1, 2, 4, 8],
        }
    }
}

/// Runs every test of the blockchain-test file at `path`; a file that cannot be read or
/// parsed is one failed outcome, a skipped file one skipped outcome.
pub fn run_file(path: &Path, options: &BlockTestOptions) -> Vec<CaseOutcome> {
    let file = path.display().to_string();
    if let Some(reason) = skipped_file(path) {
        return vec![CaseOutcome::new(file, Verdict::Skipped(reason))];
    }
    let tests: BlockchainTest = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(tests) => tests,
        Err(reason) => {
            return vec![CaseOutcome::new(
                file,
                Verdict::Failed(format!("cannot read the blockchain test: {reason}")),
            )];
        }
    };
    tests
        .0
        .iter()
        .map(|(name, case)| {
            let network = format!("{:?}", case.network);
            let verdict = match (skipped_network(&network), ForkSchedule::of(&network)) {
                (Some(reason), _) => Verdict::Skipped(reason),
                (None, None) => Verdict::Failed(format!("unknown network {network}")),
                (None, Some(schedule)) => {
                    catch_unwind(AssertUnwindSafe(|| run_case(case, schedule, options)))
                        .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_message(&panic))))
                        .map_or_else(Verdict::Failed, |()| Verdict::Passed)
                }
            };
            CaseOutcome::new(format!("{file}::{name}"), verdict)
        })
        .collect()
}

/// Which fork rules a block follows in a test's network.
#[derive(Clone, Copy, Debug)]
enum ForkSchedule {
    Fixed(SpecId),
    /// `before` below block 5, `after` from it.
    AtBlock5(SpecId, SpecId),
    /// `before` below timestamp 15,000, `after` from it.
    AtTime15k(SpecId, SpecId),
}

impl ForkSchedule {
    fn of(network: &str) -> Option<Self> {
        use SpecId::*;
        Some(match network {
            "Frontier" => Self::Fixed(FRONTIER),
            "Homestead" => Self::Fixed(HOMESTEAD),
            "EIP150" => Self::Fixed(TANGERINE),
            "EIP158" => Self::Fixed(SPURIOUS_DRAGON),
            "Byzantium" => Self::Fixed(BYZANTIUM),
            "ConstantinopleFix" => Self::Fixed(PETERSBURG),
            "Istanbul" => Self::Fixed(ISTANBUL),
            "Berlin" => Self::Fixed(BERLIN),
            "London" => Self::Fixed(LONDON),
            "Paris" => Self::Fixed(MERGE),
            "Shanghai" => Self::Fixed(SHANGHAI),
            "Cancun" => Self::Fixed(CANCUN),
            "Prague" => Self::Fixed(PRAGUE),
            "Osaka" => Self::Fixed(OSAKA),
            "Amsterdam" => Self::Fixed(AMSTERDAM),
            "FrontierToHomesteadAt5" => Self::AtBlock5(FRONTIER, HOMESTEAD),
            "HomesteadToEIP150At5" => Self::AtBlock5(HOMESTEAD, TANGERINE),
            "EIP158ToByzantiumAt5" => Self::AtBlock5(SPURIOUS_DRAGON, BYZANTIUM),
            "ByzantiumToConstantinopleFixAt5" => Self::AtBlock5(BYZANTIUM, PETERSBURG),
            "BerlinToLondonAt5" => Self::AtBlock5(BERLIN, LONDON),
            "ParisToShanghaiAtTime15k" => Self::AtTime15k(MERGE, SHANGHAI),
            "ShanghaiToCancunAtTime15k" => Self::AtTime15k(SHANGHAI, CANCUN),
            "CancunToPragueAtTime15k" => Self::AtTime15k(CANCUN, PRAGUE),
            "PragueToOsakaAtTime15k" => Self::AtTime15k(PRAGUE, OSAKA),
            _ => return None,
        })
    }

    fn spec_at(self, number: u64, timestamp: u64) -> SpecId {
        match self {
            Self::Fixed(spec) => spec,
            Self::AtBlock5(before, after) => {
                if number >= 5 {
                    after
                } else {
                    before
                }
            }
            Self::AtTime15k(before, after) => {
                if timestamp >= 15_000 {
                    after
                } else {
                    before
                }
            }
        }
    }
}

/// A block applied on top of its parent: its number and parent (for BLOCKHASH) and the state
/// after it.
struct Applied {
    number: u64,
    parent: B256,
    state: WorldState,
}

fn run_case(
    case: &BlockchainTestCase,
    schedule: ForkSchedule,
    options: &BlockTestOptions,
) -> Result<(), String> {
    let genesis = world_from(&case.pre.0);
    let genesis_root = genesis.state_root();
    if genesis_root != case.genesis_block_header.state_root {
        return Err(format!(
            "genesis state root {genesis_root} differs from the header's {}",
            case.genesis_block_header.state_root
        ));
    }
    let mut chain: HashMap<B256, Applied> = HashMap::new();
    chain.insert(
        case.genesis_block_header.hash,
        Applied {
            number: 0,
            parent: B256::ZERO,
            state: genesis,
        },
    );
    for (position, fixture_block) in case.blocks.iter().enumerate() {
        if fixture_block.expect_exception.is_some() {
            // An invalid block joins no chain; valid-block tests are about the others.
            continue;
        }
        let decoded = alloy_consensus::Block::<TxEnvelope>::decode(&mut fixture_block.rlp.as_ref())
            .map_err(|e| format!("block {position}: cannot decode its RLP: {e}"))?;
        let hash = decoded.header.hash_slow();
        let label = format!("block {} ({hash})", decoded.header.number);
        let applied = apply_block(&chain, &decoded, schedule, options)
            .map_err(|reason| format!("{label}: {reason}"))?;
        chain.insert(hash, applied);
    }
    let last = chain.get(&case.lastblockhash).ok_or_else(|| {
        format!(
            "lastblockhash {} names no block of the test",
            case.lastblockhash
        )
    })?;
    if let Some(post) = &case.post_state {
        let expected = world_from(post);
        let (got, want) = (last.state.state_root(), expected.state_root());
        if got != want {
            return Err(format!(
                "post state root {got} differs from postState's {want}: {}",
                first_difference(&last.state, &expected)
            ));
        }
    }
    Ok(())
}

fn apply_block(
    chain: &HashMap<B256, Applied>,
    decoded: &alloy_consensus::Block<TxEnvelope>,
    schedule: ForkSchedule,
    options: &BlockTestOptions,
) -> Result<Applied, String> {
    let header = &decoded.header;
    let parent = chain
        .get(&header.parent_hash)
        .ok_or_else(|| format!("unknown parent {}", header.parent_hash))?;
    let spec = schedule.spec_at(header.number, header.timestamp);
    let mut block = Block::new(block_env(header, spec), spec, Vec::new());
    block.cfg.chain_id = 1;
    let mut world = parent.state.clone();

    // Before the transactions: EIP-4788 and EIP-2935 system calls.
    if spec.is_enabled_in(SpecId::CANCUN)
        && let Some(root) = header.parent_beacon_block_root
    {
        system_call(
            &mut world,
            &block,
            eip4788::BEACON_ROOTS_ADDRESS,
            root.0.into(),
        )?;
    }
    if spec.is_enabled_in(SpecId::PRAGUE) {
        let data = Bytes::copy_from_slice(header.parent_hash.as_slice());
        system_call(&mut world, &block, eip2935::HISTORY_STORAGE_ADDRESS, data)?;
    }

    block.txs = decoded
        .body
        .transactions
        .iter()
        .enumerate()
        .map(|(index, tx)| {
            tx.recover_signer()
                .map(|signer| tx_env(tx, signer))
                .map_err(|e| format!("tx {index}: cannot recover the sender: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut storage = world.to_storage();
    insert_ancestor_hashes(&mut storage, chain, header.parent_hash);

    let sequential = execute_sequential(&storage, &block);
    for &threads in &options.concurrencies {
        let parallel_options = Options {
            sequential_below: Some(0),
            ..Options::with_concurrency(threads)
        };
        let parallel = execute(&storage, &block, &parallel_options);
        if let Some(difference) = parallel_difference(&parallel, &sequential) {
            return Err(format!("at concurrency {threads}: {difference}"));
        }
    }
    let output = sequential.map_err(|e| format!("execution failed: {e}"))?;
    let check = check_header(
        &output,
        &block,
        header.gas_used,
        header.logs_bloom,
        header.receipts_root,
    );
    if !check.gas {
        return Err(format!(
            "gas used {} differs from the header's {}",
            output.gas_used(),
            header.gas_used
        ));
    }
    if !check.bloom {
        return Err("logs bloom differs from the header's".to_owned());
    }
    if check.receipts_root == Some(false) {
        return Err("receipts root differs from the header's".to_owned());
    }
    world.apply(&output.state);

    // After the transactions: rewards, withdrawals, EIP-7002 and EIP-7251 system calls.
    if !spec.is_enabled_in(SpecId::MERGE) {
        apply_rewards(&mut world, header, &decoded.body.ommers, spec);
    }
    if let Some(withdrawals) = &decoded.body.withdrawals {
        for withdrawal in withdrawals.iter() {
            world.add_balance(withdrawal.address, withdrawal.amount_wei());
        }
    }
    if spec.is_enabled_in(SpecId::PRAGUE) {
        for address in [
            eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
            eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
        ] {
            system_call(&mut world, &block, address, Bytes::new())?;
        }
    }
    let root = world.state_root();
    if root != header.state_root {
        return Err(format!(
            "state root {root} differs from the header's {}",
            header.state_root
        ));
    }
    Ok(Applied {
        number: header.number,
        parent: header.parent_hash,
        state: world,
    })
}

/// Runs a system call (caller `SYSTEM_ADDRESS`, no fee, no nonce) with revm and applies its
/// state; a system contract without code is skipped, as the EIPs specify.
fn system_call(
    world: &mut WorldState,
    block: &Block,
    contract: Address,
    data: Bytes,
) -> Result<(), String> {
    let has_code = world
        .account(&contract)
        .is_some_and(|account| account.info.code_hash != revm::primitives::KECCAK_EMPTY);
    if !has_code {
        return Ok(());
    }
    let storage = world.to_storage();
    let mut evm = Context::mainnet()
        .with_db(CacheDB::new(&storage))
        .with_block(block.env.clone())
        .with_cfg(CfgEnv::new_with_spec(block.spec()))
        .build_mainnet();
    let outcome = evm
        .system_call(contract, data)
        .map_err(|e| format!("system call to {contract} failed: {e}"))?;
    world.apply_evm_state(&outcome.state, true);
    Ok(())
}

/// Block and ommer rewards before the merge (Yellow Paper §11.3; EIP-649 and EIP-1234
/// lowered the base reward).
fn apply_rewards(world: &mut WorldState, header: &Header, ommers: &[Header], spec: SpecId) {
    const ETHER: u128 = 1_000_000_000_000_000_000;
    let base = U256::from(if spec.is_enabled_in(SpecId::PETERSBURG) {
        2 * ETHER
    } else if spec.is_enabled_in(SpecId::BYZANTIUM) {
        3 * ETHER
    } else {
        5 * ETHER
    });
    let ommer_count = U256::from(ommers.len());
    world.add_balance(
        header.beneficiary,
        base + base / U256::from(32) * ommer_count,
    );
    for ommer in ommers {
        let depth = U256::from(8 + ommer.number).saturating_sub(U256::from(header.number));
        world.add_balance(ommer.beneficiary, base * depth / U256::from(8));
    }
}

/// Gives the storage the hashes of the 256 blocks before the one executed (BLOCKHASH).
fn insert_ancestor_hashes(
    storage: &mut InMemoryStorage,
    chain: &HashMap<B256, Applied>,
    parent: B256,
) {
    let mut hash = parent;
    for _ in 0..256 {
        let Some(applied) = chain.get(&hash) else {
            break;
        };
        storage.insert_block_hash(applied.number, hash);
        if applied.number == 0 {
            break;
        }
        hash = applied.parent;
    }
}

fn world_from(accounts: &BTreeMap<Address, Account>) -> WorldState {
    let mut world = WorldState::new();
    for (address, account) in accounts {
        world.insert_account(
            *address,
            account.balance,
            account.nonce.saturating_to(),
            &account.code,
            account.storage.iter().map(|(slot, value)| (*slot, *value)),
        );
    }
    world
}

/// The first account in which two states differ, described for a failure message.
fn first_difference(got: &WorldState, expected: &WorldState) -> String {
    for (address, want) in expected.accounts() {
        match got.account(address) {
            None => return format!("{address} is missing"),
            Some(have) if have != want => {
                return format!("{address} is {have:?}, expected {want:?}");
            }
            Some(_) => {}
        }
    }
    got.accounts()
        .find(|(address, _)| expected.account(address).is_none())
        .map_or_else(
            || "the accounts agree (code differs?)".to_owned(),
            |(address, _)| format!("{address} exists but should not"),
        )
}
