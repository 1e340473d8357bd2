//! Lazy credits: "touch the account and add this amount", written as [`WriteValue::Credit`]
//! entries instead of a new balance, and resolved when a transaction reads the account or
//! when the commit fold applies it to the committed value.
//!
//! The beneficiary's fees (see `fee_lane`) and the value of plain transfers to accounts
//! without code are written this way, so that they do not serialise the block (see `vm`).
//! A credit resolves the way revm's journal and commit rules treat the account (EIP-161
//! included): [`apply_credit`] is that rule, shared by the read path (`read`,
//! [`MvMemory::resolve_credits`]), the commit fold (`parallel::fold`) and the tests'
//! final values (`final_values`).

use revm::primitives::U256;

#[cfg(doc)]
use super::WriteValue;
use super::{AccountValue, BaseValue, LocId, MvMemory, TxIdx};

/// A lazy credit: `amount` added to an account by transaction `tx`.
pub(crate) type Credit = (TxIdx, U256);

/// Applies a credit the way revm's journal and commit rules treat a touched account whose
/// balance rises: it is created if absent (an overflowing credit is dropped, as revm drops it);
/// a touched empty account is deleted from Spurious Dragon on; before it, an empty account
/// that did not exist is materialised as created, which wipes its storage (revm's pre-EIP-161
/// normalisation in `JournalInner::finalize`).
pub(crate) fn apply_credit(
    value: AccountValue,
    (tx, amount): Credit,
    delete_touched_empty: bool,
) -> AccountValue {
    let existed = value.info.is_some();
    let mut info = value.info.unwrap_or_else(AccountValue::empty_info);
    if let Some(balance) = info.balance.checked_add(amount) {
        info.balance = balance;
    }
    let empty = info.is_empty();
    if delete_touched_empty && empty {
        return AccountValue {
            info: None,
            wiped_at: value.wiped_at,
        };
    }
    let wiped_at = if empty && !existed {
        Some(tx)
    } else {
        value.wiped_at
    };
    AccountValue {
        info: Some(info),
        wiped_at,
    }
}

impl MvMemory {
    /// Applies `credits` on top of `start` (or the cached base value).
    pub(crate) fn resolve_credits(
        &self,
        location: LocId,
        start: Option<AccountValue>,
        credits: &[Credit],
    ) -> Option<AccountValue> {
        let value = match start {
            Some(value) => value,
            None => match self.base(location)? {
                BaseValue::Account(value) => value.clone(),
                BaseValue::Storage(_) => return None,
            },
        };
        Some(self.apply_credits(value, credits))
    }

    /// `value` with `credits` applied in order.
    pub(super) fn apply_credits(&self, value: AccountValue, credits: &[Credit]) -> AccountValue {
        credits.iter().fold(value, |value, credit| {
            apply_credit(value, *credit, self.delete_touched_empty)
        })
    }
}
