//! The engine's shared vocabulary: transaction indices, incarnations, versions and location
//! ids. A leaf module: every other module may use it, it uses none of them.

/// Index of a transaction in the block.
pub(crate) type TxIdx = u32;

/// Execution attempt of a transaction, counted from 0.
pub(crate) type Incarnation = u32;

/// One incarnation of one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) tx: TxIdx,
    pub(crate) incarnation: Incarnation,
}

/// Dense id of a location (an account or a storage slot) within one block; see
/// `location::LocationIndex`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct LocId(pub(crate) u32);

impl LocId {
    /// The id as an index into dense per-location arrays.
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}
