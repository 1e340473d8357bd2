//! Executing one incarnation of a transaction with revm against multi-version memory.
//!
//! [`VmDb`] is the revm `Database` a worker's EVM runs on: every read goes through
//! [`MvMemory`] (the highest writer below the transaction) or, when no transaction wrote the
//! location, to the caller's storage, whose answer is cached in MvMemory for the block. Each
//! read is recorded with where it came from so the scheduler can validate it later. Reading
//! an aborted writer's estimate stops the incarnation with a dependency.
//!
//! The beneficiary is not credited inside the transaction: [`DeferredCreditHandler`] records
//! the fee instead, and it is published as a lazy `Credit` entry. Otherwise every transaction
//! would write the beneficiary's balance and the block would run one transaction at a time.
//! Likewise the value of a plain transfer to an account without code is a lazy credit, and
//! the transfer's read of the recipient is validated only by "still has no code": many
//! payments to one address (an exchange's deposit address) do not conflict.

use std::cell::Cell;
use std::marker::PhantomData;

use revm::bytecode::Bytecode;
use revm::context::TxEnv;
use revm::context::result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction};
use revm::context_interface::{
    Block as _, Cfg as _, ContextSetters, ContextTr, JournalTr, Transaction as _,
};
use revm::database_interface::{DBErrorMarker, Database, DatabaseRef};
use revm::handler::{EvmTr, EvmTrError, FrameResult, FrameTr, Handler};
use revm::interpreter::interpreter_action::FrameInit;
use revm::primitives::hardfork::SpecId;
use revm::primitives::map::{AddressMap, HashMap};
use revm::primitives::{Address, B256, KECCAK_EMPTY, StorageKey, StorageValue, TxKind, U256};
use revm::state::{AccountInfo, EvmState};

use bumpalo::Bump;

use crate::evm::BlockEvm;
use crate::location::{Location, LocationIndex, TxAccounts};
use crate::mv_memory::{
    AccountDigest, AccountValue, BaseValue, MvMemory, Read, ReadOrigin, ReadResult, WriteValue,
};
use crate::state_cache::{AccountCommit, credit_in_state_diff};
use crate::types::{LocId, TxIdx};

/// What every worker shares for one block.
pub(crate) struct BlockContext<'a, S> {
    pub(crate) storage: &'a S,
    pub(crate) memory: &'a MvMemory,
    pub(crate) index: &'a LocationIndex,
    pub(crate) beneficiary: Address,
    pub(crate) delete_touched_empty: bool,
}

/// Why a [`VmDb`] read failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VmDbError<E> {
    /// The highest writer below is an aborted incarnation's estimate.
    #[error("blocked on transaction {0}")]
    Blocked(TxIdx),
    /// The caller's storage failed.
    #[error(transparent)]
    Storage(E),
}

impl<E: DBErrorMarker> DBErrorMarker for VmDbError<E> {}

/// A worker's buffers for executing incarnations: kept across blocks by the
/// [`Executor`](crate::Executor), so that they keep their capacity and stay where the worker
/// first touched them. Empty between uses.
#[derive(Default)]
pub(crate) struct VmBuffers {
    reads: Vec<Read<'static>>,
    accounts: AddressMap<(LocId, AccountValue)>,
    slots: HashMap<(Address, U256), LocId>,
}

#[cfg(test)]
impl VmBuffers {
    /// Whether every buffer is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.reads.is_empty() && self.accounts.is_empty() && self.slots.is_empty()
    }

    /// Whether every buffer kept an allocation.
    pub(crate) fn has_capacity(&self) -> bool {
        self.reads.capacity() > 0 && self.accounts.capacity() > 0 && self.slots.capacity() > 0
    }
}

/// revm's view of the block for one incarnation of one transaction.
pub(crate) struct VmDb<'c, 'a, S> {
    ctx: &'c BlockContext<'c, S>,
    /// This worker's arena: read sets (and the digests they point to) live here until the
    /// block ends, so that validators on other workers can read them, and go in one free.
    arena: &'a Bump,
    tx: TxIdx,
    /// The current incarnation's reads, copied into the arena when it finishes.
    reads: Vec<Read<'a>>,
    /// Accounts this incarnation read, with their ids and values.
    accounts: AddressMap<(LocId, AccountValue)>,
    /// Ids of the slots this incarnation read, so the write set needs no second index look-up.
    slots: HashMap<(Address, U256), LocId>,
    blocked_on: Option<TxIdx>,
    /// The recipient of this transaction's value, while it qualifies for a lazy credit.
    lazy_recipient: Option<(Address, U256)>,
    /// Beneficiary, sender and recipient (the sender again for a creation) with their ids:
    /// most account reads are of these, and they need no look-up in the shared index.
    known_accounts: [(Address, LocId); 3],
}

/// Highest address treated as a (possible) precompile: calls to them run code.
const LAST_PRECOMPILE: u64 = 0x1_0000;

/// The recipient that a transaction's value may be credited to lazily: a plain call whose
/// target is neither the sender nor the beneficiary nor a precompile, and no EIP-7702
/// authorizations (they may give the target code). Whether the target has code is checked
/// when it is read.
fn lazy_recipient(tx: &TxEnv, beneficiary: Address) -> Option<(Address, U256)> {
    let TxKind::Call(to) = tx.kind else {
        return None;
    };
    let precompile = to.as_slice()[..12].iter().all(|b| *b == 0)
        && U256::from_be_slice(to.as_slice()) <= U256::from(LAST_PRECOMPILE);
    let plain =
        to != tx.caller && to != beneficiary && !precompile && tx.authorization_list.is_empty();
    plain.then_some((to, tx.value))
}

impl<'c, 'a, S: DatabaseRef> VmDb<'c, 'a, S> {
    pub(crate) fn new(ctx: &'c BlockContext<'c, S>, arena: &'a Bump, buffers: VmBuffers) -> Self {
        Self {
            ctx,
            arena,
            tx: 0,
            reads: buffers.reads,
            accounts: buffers.accounts,
            slots: buffers.slots,
            blocked_on: None,
            lazy_recipient: None,
            known_accounts: [(ctx.beneficiary, LocationIndex::BENEFICIARY); 3],
        }
    }

    /// The id of `address`'s account location.
    #[inline]
    fn account_id(&self, address: Address) -> LocId {
        self.known_accounts
            .iter()
            .find(|(known, _)| *known == address)
            .map_or_else(
                || self.ctx.index.id(Location::Account(address)),
                |(_, id)| *id,
            )
    }

    /// Takes the buffers back, emptied, for the worker's next block.
    pub(crate) fn take_buffers(&mut self) -> VmBuffers {
        let mut reads = std::mem::take(&mut self.reads);
        reads.clear();
        let mut accounts = std::mem::take(&mut self.accounts);
        accounts.clear();
        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        VmBuffers {
            // The vector is empty: no read of this block's arena outlives it. Collecting an
            // empty iterator over the same layout keeps the allocation.
            reads: reads.into_iter().map(|_| unreachable!()).collect(),
            accounts,
            slots,
        }
    }

    fn start(&mut self, tx: TxIdx, tx_env: &TxEnv, TxAccounts { caller, to }: TxAccounts) {
        self.tx = tx;
        self.reads.clear();
        self.accounts.clear();
        self.slots.clear();
        self.blocked_on = None;
        self.lazy_recipient = lazy_recipient(tx_env, self.ctx.beneficiary);
        let caller = (tx_env.caller, caller);
        let to = match (tx_env.kind, to) {
            (TxKind::Call(address), Some(id)) => (address, id),
            _ => caller,
        };
        self.known_accounts = [
            (self.ctx.beneficiary, LocationIndex::BENEFICIARY),
            caller,
            to,
        ];
    }

    fn blocked(&mut self, writer: TxIdx) -> VmDbError<S::Error> {
        self.blocked_on = Some(writer);
        VmDbError::Blocked(writer)
    }

    fn base_account(
        &self,
        address: Address,
        location: LocId,
    ) -> Result<AccountValue, VmDbError<S::Error>> {
        if let Some(BaseValue::Account(value)) = self.ctx.memory.base(location) {
            return Ok(value.clone());
        }
        let storage = self.ctx.storage;
        let mut info = storage.basic_ref(address).map_err(VmDbError::Storage)?;
        if let Some(info) = &mut info {
            info.account_id = None;
            if info.code_hash == KECCAK_EMPTY {
                // As account values hold it (see `AccountValue::info_of`).
                info.code = None;
            } else if info.code.is_none() && info.code_hash != B256::ZERO {
                info.code = Some(
                    storage
                        .code_by_hash_ref(info.code_hash)
                        .map_err(VmDbError::Storage)?,
                );
            }
        }
        let value = AccountValue {
            info,
            wiped_at: None,
        };
        match self
            .ctx
            .memory
            .set_base(location, BaseValue::Account(value))
        {
            BaseValue::Account(value) => Ok(value.clone()),
            BaseValue::Storage(_) => unreachable!("account ids hold account values"),
        }
    }

    fn read_account(&mut self, address: Address) -> Result<AccountValue, VmDbError<S::Error>> {
        if let Some((_, value)) = self.accounts.get(&address) {
            return Ok(value.clone());
        }
        let location = self.account_id(address);
        if let Some((recipient, _)) = self.lazy_recipient
            && recipient == address
            && self.ctx.memory.only_credits(location)
        {
            crate::stress::point();
            // Only credits on top of the base value: the code is the base's, and the balance
            // revm sees does not matter (the credit is written lazily). No walk over the
            // credits, which may be thousands for a deposit address.
            let value = self.base_account(address, location)?;
            if value
                .info
                .as_ref()
                .is_none_or(|info| info.code_hash == KECCAK_EMPTY)
            {
                self.reads.push(Read {
                    location,
                    origin: ReadOrigin::NoCode,
                });
                self.accounts.insert(address, (location, value.clone()));
                return Ok(value);
            }
        }
        let read = self.ctx.memory.read(location, self.tx);
        // The read is recorded after a delay: a writer may publish in between.
        crate::stress::point();
        let (origin, value) = match read {
            ReadResult::Base => (ReadOrigin::Base, self.base_account(address, location)?),
            ReadResult::Written {
                version,
                value: WriteValue::Account(value),
            } => (ReadOrigin::Version(version), value),
            ReadResult::Credited { start, credits } => {
                if start.is_none() {
                    self.base_account(address, location)?;
                }
                let value = self
                    .ctx
                    .memory
                    .resolve_credits(location, start, &credits)
                    .expect("the base value was just loaded");
                let digest = self.arena.alloc(AccountDigest::of(&value));
                (ReadOrigin::Resolved(digest), value)
            }
            ReadResult::Blocked(writer) => return Err(self.blocked(writer)),
            ReadResult::Written { .. } => unreachable!("account ids hold account values"),
        };
        let origin = match self.lazy_recipient {
            Some((recipient, _)) if recipient == address => {
                let has_code = value
                    .info
                    .as_ref()
                    .is_some_and(|info| info.code_hash != KECCAK_EMPTY);
                if has_code {
                    // Code runs and may read the balance: an ordinary read and write.
                    self.lazy_recipient = None;
                    origin
                } else {
                    ReadOrigin::NoCode
                }
            }
            _ => origin,
        };
        self.reads.push(Read { location, origin });
        self.accounts.insert(address, (location, value.clone()));
        Ok(value)
    }

    /// The write set of this incarnation from revm's state diff: only what changed.
    fn write_set(&self, state: &EvmState) -> Vec<(LocId, WriteValue)> {
        let mut writes = Vec::new();
        for (address, account) in state {
            let Some(commit) = AccountCommit::of(account, self.ctx.delete_touched_empty) else {
                continue;
            };
            let read = self.accounts.get(address);
            let location = read.map_or_else(|| self.account_id(*address), |(id, _)| *id);
            let previous = read.map(|(_, value)| value);
            if let Some((recipient, value)) = self.lazy_recipient
                && recipient == *address
            {
                // Only the transfer touched it: credit the value on top of whatever earlier
                // transactions leave there, as `Credit` does (EIP-161 included).
                writes.push((location, WriteValue::Credit(value)));
                continue;
            }
            let wiped_at = if commit.wipes_storage {
                Some(self.tx)
            } else {
                previous.and_then(|value| value.wiped_at)
            };
            let info = commit.exists.then(|| {
                let mut info = AccountValue::info_of(&account.info);
                if info.code.is_none() && info.code_hash != KECCAK_EMPTY {
                    // revm did not load the code this time; carry over what we handed it.
                    info.code = previous
                        .and_then(|value| value.info.as_ref())
                        .filter(|old| old.code_hash == info.code_hash)
                        .and_then(|old| old.code.clone());
                }
                info
            });
            let value = AccountValue { info, wiped_at };
            if previous != Some(&value) {
                writes.push((location, WriteValue::Account(value)));
            }
            if commit.keeps_slot_writes {
                for (key, slot) in &account.storage {
                    if slot.is_changed() {
                        let location = match self.slots.get(&(*address, *key)) {
                            Some(id) => *id,
                            // A created account's slots are written without being read.
                            None => self.ctx.index.id(Location::Storage(*address, *key)),
                        };
                        writes.push((location, WriteValue::Storage(slot.present_value())));
                    }
                }
            }
        }
        writes
    }
}

impl<S: DatabaseRef> Database for VmDb<'_, '_, S> {
    type Error = VmDbError<S::Error>;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self.read_account(address)?.info)
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        // Account values carry their code, so revm asks only for code it could not get that way.
        self.ctx
            .storage
            .code_by_hash_ref(code_hash)
            .map_err(VmDbError::Storage)
    }

    fn storage(&mut self, address: Address, key: StorageKey) -> Result<StorageValue, Self::Error> {
        let wiped_at = self.read_account(address)?.wiped_at;
        let location = self.ctx.index.id(Location::Storage(address, key));
        self.slots.insert((address, key), location);
        let read = self.ctx.memory.read(location, self.tx);
        crate::stress::point();
        let (origin, value) = match read {
            ReadResult::Base if wiped_at.is_some() => (ReadOrigin::Base, U256::ZERO),
            ReadResult::Base => {
                let value = match self.ctx.memory.base(location) {
                    Some(BaseValue::Storage(value)) => *value,
                    _ => {
                        let value = self
                            .ctx
                            .storage
                            .storage_ref(address, key)
                            .map_err(VmDbError::Storage)?;
                        self.ctx
                            .memory
                            .set_base(location, BaseValue::Storage(value));
                        value
                    }
                };
                (ReadOrigin::Base, value)
            }
            ReadResult::Written {
                version,
                value: WriteValue::Storage(value),
            } => {
                // A slot written before the account's storage was wiped reads as zero.
                let stale = wiped_at.is_some_and(|wiped| version.tx < wiped);
                (
                    ReadOrigin::Version(version),
                    if stale { U256::ZERO } else { value },
                )
            }
            ReadResult::Blocked(writer) => return Err(self.blocked(writer)),
            ReadResult::Written { .. } | ReadResult::Credited { .. } => {
                unreachable!("storage ids hold storage values")
            }
        };
        self.reads.push(Read { location, origin });
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        self.ctx
            .storage
            .block_hash_ref(number)
            .map_err(VmDbError::Storage)
    }
}

/// revm's mainnet handler, except that the beneficiary's fee is recorded instead of credited.
struct DeferredCreditHandler<EVM, ERROR, FRAME> {
    fee: Cell<Option<U256>>,
    _phantom: PhantomData<(EVM, ERROR, FRAME)>,
}

impl<EVM, ERROR, FRAME> Handler for DeferredCreditHandler<EVM, ERROR, FRAME>
where
    EVM: EvmTr<Context: ContextTr<Journal: JournalTr<State = EvmState>>, Frame = FRAME>,
    ERROR: EvmTrError<EVM>,
    FRAME: FrameTr<FrameResult = FrameResult, FrameInit = FrameInit>,
{
    type Evm = EVM;
    type Error = ERROR;
    type HaltReason = HaltReason;

    /// The fee revm's `post_execution::reward_beneficiary` would credit, computed the same way.
    fn reward_beneficiary(
        &self,
        evm: &mut Self::Evm,
        exec_result: &mut FrameResult,
    ) -> Result<(), Self::Error> {
        let ctx = evm.ctx();
        if ctx.cfg().is_fee_charge_disabled() {
            return Ok(());
        }
        let basefee = ctx.block().basefee() as u128;
        let effective_gas_price = ctx.tx().effective_gas_price(basefee);
        let coinbase_gas_price = if ctx.cfg().spec().into().is_enabled_in(SpecId::LONDON) {
            effective_gas_price.saturating_sub(basefee)
        } else {
            effective_gas_price
        };
        let gas = exec_result.gas();
        let effective_used = gas.used().saturating_sub(gas.reservoir());
        self.fee.set(Some(U256::from(
            coinbase_gas_price * effective_used as u128,
        )));
        Ok(())
    }
}

/// A transaction's result, kept until it commits (its state lives in MvMemory).
pub(crate) type ExecutedTx = ExecutionResult<HaltReason>;

/// What one incarnation produced (returned by value once per incarnation, so the size
/// difference between the variants costs a move, not an allocation).
#[allow(clippy::large_enum_variant)]
pub(crate) enum IncarnationOutcome<'a, E> {
    /// It read an estimate of this transaction: suspend until that one re-executes.
    Blocked(TxIdx),
    /// It ran to an end (a result or a transaction error) on the reads it made.
    Finished {
        reads: &'a [Read<'a>],
        writes: Vec<(LocId, WriteValue)>,
        output: Result<ExecutedTx, EVMError<E, InvalidTransaction>>,
    },
}

/// Runs incarnation of transaction `tx` on the worker's EVM.
pub(crate) fn execute_incarnation<'a, S: DatabaseRef>(
    evm: &mut BlockEvm<VmDb<'_, 'a, S>>,
    tx: TxIdx,
    tx_env: &TxEnv,
    accounts: TxAccounts,
) -> IncarnationOutcome<'a, S::Error> {
    evm.ctx.journaled_state.database.start(tx, tx_env, accounts);
    evm.ctx.set_tx(tx_env.clone());
    let mut handler = DeferredCreditHandler {
        fee: Cell::new(None),
        _phantom: PhantomData,
    };
    let result = handler.run(evm);
    crate::stress::point();
    let mut state = evm.ctx.journal_mut().finalize();
    let db = &mut evm.ctx.journaled_state.database;
    if let Some(writer) = db.blocked_on {
        return IncarnationOutcome::Blocked(writer);
    }
    let reads: &'a [Read<'a>] = db.arena.alloc_slice_copy(&db.reads);
    let output = match result {
        Ok(result) => result,
        Err(error) => {
            let error = match error {
                EVMError::Database(VmDbError::Storage(source)) => EVMError::Database(source),
                EVMError::Database(VmDbError::Blocked(writer)) => {
                    return IncarnationOutcome::Blocked(writer);
                }
                EVMError::Transaction(reason) => EVMError::Transaction(reason),
                EVMError::Header(reason) => EVMError::Header(reason),
                EVMError::Custom(message) => EVMError::Custom(message),
                EVMError::CustomAny(any) => EVMError::CustomAny(any),
            };
            return IncarnationOutcome::Finished {
                reads,
                writes: Vec::new(),
                output: Err(error),
            };
        }
    };
    let fee = handler.fee.get();
    let beneficiary = db.ctx.beneficiary;
    let mut pending_credit = None;
    if let Some(fee) = fee {
        match state.get_mut(&beneficiary) {
            Some(account) => credit_in_state_diff(account, fee),
            None => pending_credit = Some(fee),
        }
    }
    let mut writes = db.write_set(&state);
    if let Some(fee) = pending_credit {
        writes.push((LocationIndex::BENEFICIARY, WriteValue::Credit(fee)));
    }
    IncarnationOutcome::Finished {
        reads,
        writes,
        output: Ok(output),
    }
}
