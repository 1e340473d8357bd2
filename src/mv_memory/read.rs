//! The read path: what a transaction sees at a location ([`MvMemory::read`], and
//! [`MvMemory::only_credits`] for a lazily credited recipient), and the re-check of its read
//! set when it is validated ([`MvMemory::validate`]).
//!
//! Called by the workers' VM (`vm`) while a transaction executes, and by validators
//! (`parallel`) after it. Reads take no lock: they walk the cell's versions under an epoch
//! guard, and wait (return [`ReadResult::Blocked`]) on an estimate instead of guessing.

use crossbeam_epoch as epoch;
use revm::primitives::{B256, KECCAK_EMPTY, U256};
use smallvec::SmallVec;

use super::{
    AccountValue, BaseValue, Credit, EntryData, LocId, MvMemory, TxIdx, Version, WriteValue,
};
use crate::sync::Ordering;

/// What a read of a location by some transaction finds.
#[derive(Debug)]
pub(crate) enum ReadResult {
    /// No transaction below the reader wrote it: the pre-block value.
    Base,
    /// The highest writer below the reader, and its value.
    Written { version: Version, value: WriteValue },
    /// Credits on top of `start` (`None`: the pre-block value), oldest first.
    Credited {
        start: Option<AccountValue>,
        credits: SmallVec<[Credit; 4]>,
    },
    /// The highest writer below the reader was aborted: wait for its next incarnation.
    Blocked(TxIdx),
}

/// What validation compares of an account value: everything `AccountValue`'s equality
/// looks at, in plain data, so that read sets can live in arenas that run no destructors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AccountDigest {
    info: Option<(U256, u64, B256)>,
    wiped_at: Option<TxIdx>,
}

impl AccountDigest {
    /// The digest of `value`.
    pub(crate) fn of(value: &AccountValue) -> Self {
        Self {
            info: value
                .info
                .as_ref()
                .map(|info| (info.balance, info.nonce, info.code_hash)),
            wiped_at: value.wiped_at,
        }
    }
}

/// Where a transaction's read was served from, kept to validate it later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadOrigin<'a> {
    Base,
    Version(Version),
    /// A value resolved from lazy credits, validated by value (the digest lives in the reading
    /// worker's arena).
    Resolved(&'a AccountDigest),
    /// The recipient of a lazily credited transfer: only its having no code mattered, so that
    /// is all validation checks (other credits to it may come and go).
    NoCode,
}

/// One entry of a read set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Read<'a> {
    pub(crate) location: LocId,
    pub(crate) origin: ReadOrigin<'a>,
}

impl MvMemory {
    /// What transaction `tx` reads at `location`: the highest writer below it.
    pub(crate) fn read(&self, location: LocId, tx: TxIdx) -> ReadResult {
        if let Some(lane) = self.lane_at(location) {
            return self.read_with_lane(location, lane, tx);
        }
        let guard = epoch::pin();
        let cell = self.cell(location);
        cell.map_access.announce_read();
        if !cell.versions.is_written() {
            return ReadResult::Base;
        }
        // Writers may insert, swap or mark entries while this reader walks them.
        crate::stress::point();
        let mut credits: SmallVec<[Credit; 4]> = SmallVec::new();
        for (writer, entry) in cell.versions.below(tx, &guard) {
            match &entry.data {
                EntryData::Absent => continue,
                EntryData::Estimate => return ReadResult::Blocked(writer),
                EntryData::Written(WriteValue::Credit(amount)) => credits.push((writer, *amount)),
                EntryData::Written(value) if credits.is_empty() => {
                    return ReadResult::Written {
                        version: Version {
                            tx: writer,
                            incarnation: entry.incarnation,
                        },
                        value: value.clone(),
                    };
                }
                EntryData::Written(WriteValue::Account(account)) => {
                    credits.reverse();
                    return ReadResult::Credited {
                        start: Some(account.clone()),
                        credits,
                    };
                }
                EntryData::Written(WriteValue::Storage(_)) => {
                    unreachable!("credits go to account locations only")
                }
            }
        }
        if credits.is_empty() {
            ReadResult::Base
        } else {
            credits.reverse();
            ReadResult::Credited {
                start: None,
                credits,
            }
        }
    }

    /// Whether every entry at `location` is a lazy credit (or there is none): the account's
    /// code is then its base value's.
    pub(crate) fn only_credits(&self, location: LocId) -> bool {
        // SeqCst: in one order with the counter's updates in `record`, which raise it before
        // a plain entry is published and lower it after one is gone.
        self.cell(location).plain_entries.load(Ordering::SeqCst) == 0
    }

    /// Whether every read still finds what it found when `tx` executed.
    pub(crate) fn validate(&self, tx: TxIdx, reads: &[Read<'_>]) -> bool {
        reads.iter().all(|read| {
            crate::stress::point();
            if read.origin == ReadOrigin::NoCode && self.only_credits(read.location) {
                return self.has_no_code(read.location, ReadResult::Base);
            }
            let now = self.read(read.location, tx);
            match (&read.origin, now) {
                (ReadOrigin::Base, ReadResult::Base) => true,
                (ReadOrigin::Version(seen), ReadResult::Written { version, .. }) => {
                    *seen == version
                }
                (ReadOrigin::Resolved(seen), now) => self
                    .resolved_value(read.location, now)
                    .is_some_and(|value| AccountDigest::of(&value) == **seen),
                (ReadOrigin::NoCode, now) => self.has_no_code(read.location, now),
                _ => false,
            }
        })
    }

    /// Whether the account a read result stands for has no code (credits do not change code,
    /// so the value under them decides). `false` when that cannot be told without storage.
    fn has_no_code(&self, location: LocId, result: ReadResult) -> bool {
        let start = match result {
            ReadResult::Written {
                value: WriteValue::Account(value),
                ..
            } => Some(value),
            ReadResult::Credited { start, .. } => start,
            ReadResult::Base => None,
            ReadResult::Written { .. } | ReadResult::Blocked(_) => return false,
        };
        let info = match start {
            Some(value) => value.info,
            None => match self.base(location) {
                Some(BaseValue::Account(value)) => value.info.clone(),
                _ => return false,
            },
        };
        info.is_none_or(|info| info.code_hash == KECCAK_EMPTY)
    }

    /// The account value a read result stands for, if it can be told without storage.
    pub(super) fn resolved_value(
        &self,
        location: LocId,
        result: ReadResult,
    ) -> Option<AccountValue> {
        match result {
            ReadResult::Base => match self.base(location)? {
                BaseValue::Account(value) => Some(value.clone()),
                BaseValue::Storage(_) => None,
            },
            ReadResult::Written {
                value: WriteValue::Account(value),
                ..
            } => Some(value),
            ReadResult::Credited { start, credits } => {
                self.resolve_credits(location, start, &credits)
            }
            ReadResult::Written { .. } | ReadResult::Blocked(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mv_memory::{apply_credit, storage};

    #[test]
    fn reads_see_the_highest_writer_below_and_wait_on_estimates() {
        let memory = MvMemory::new(10, 1, true);
        let loc = LocId(0);
        assert!(matches!(memory.read(loc, 5), ReadResult::Base));
        assert!(memory.record(2, 0, vec![(loc, storage(20))]));
        assert!(memory.record(4, 0, vec![(loc, storage(40))]));
        match memory.read(loc, 5) {
            ReadResult::Written { version, value } => {
                assert_eq!(
                    version,
                    Version {
                        tx: 4,
                        incarnation: 0
                    }
                );
                assert_eq!(value, storage(40));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            memory.read(loc, 4),
            ReadResult::Written {
                version: Version { tx: 2, .. },
                ..
            }
        ));
        assert!(matches!(memory.read(loc, 2), ReadResult::Base));
        memory.mark_estimates(4, 0);
        assert!(matches!(memory.read(loc, 5), ReadResult::Blocked(4)));
        // The next incarnation writes elsewhere: its old entry goes away.
        assert!(memory.record(4, 1, vec![(LocId(1), storage(1))]));
        assert!(matches!(
            memory.read(loc, 5),
            ReadResult::Written {
                version: Version { tx: 2, .. },
                ..
            }
        ));
        // Writing the same locations again is not new.
        assert!(!memory.record(4, 2, vec![(LocId(1), storage(2))]));
    }

    #[test]
    fn credits_resolve_on_top_of_the_last_plain_value() {
        let memory = MvMemory::new(10, 1, true);
        let loc = LocId(0);
        let base = AccountValue {
            info: None,
            wiped_at: None,
        };
        memory.set_base(loc, BaseValue::Account(base));
        memory.record(1, 0, vec![(loc, WriteValue::Credit(U256::from(5)))]);
        memory.record(3, 0, vec![(loc, WriteValue::Credit(U256::from(7)))]);
        let ReadResult::Credited { start, credits } = memory.read(loc, 9) else {
            panic!()
        };
        assert_eq!(
            credits.as_slice(),
            &[(1, U256::from(5)), (3, U256::from(7))]
        );
        let value = memory.resolve_credits(loc, start, &credits).unwrap();
        assert_eq!(value.info.unwrap().balance, U256::from(12));
        // A zero credit to an absent account leaves it absent after Spurious Dragon, and
        // materialises it, storage wiped, before.
        let absent = AccountValue {
            info: None,
            wiped_at: None,
        };
        assert_eq!(apply_credit(absent.clone(), (4, U256::ZERO), true), absent);
        let materialised = apply_credit(absent, (4, U256::ZERO), false);
        assert!(materialised.info.is_some());
        assert_eq!(materialised.wiped_at, Some(4));
        let digest = AccountDigest::of(
            &memory
                .resolve_credits(loc, None, &[(1, U256::from(5))])
                .unwrap(),
        );
        let read = Read {
            location: loc,
            origin: ReadOrigin::Resolved(&digest),
        };
        assert!(memory.validate(2, std::slice::from_ref(&read)));
        assert!(
            !memory.validate(4, &[read]),
            "the credit of tx 3 changes the value"
        );
    }
}
