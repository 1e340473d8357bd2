//! Why a block could not be executed.

use revm::context::result::{EVMError, InvalidHeader, InvalidTransaction};

/// A boxed storage error, as returned by the caller's [`DatabaseRef`](revm::DatabaseRef).
pub type StorageErrorSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a block could not be executed. Every variant names the lowest transaction index at
/// which sequential execution would fail, so that parallel and sequential errors compare.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// Transaction `index` is invalid (nonce, balance, gas limit, intrinsic gas, fork rules),
    /// as revm's validation reports it.
    #[error("transaction {index} is invalid: {reason}")]
    InvalidTransaction {
        /// Position of the transaction in the block.
        index: usize,
        /// revm's reason.
        reason: InvalidTransaction,
    },
    /// The block header does not fit the configured fork (e.g. no `prevrandao` after the
    /// merge, no blob gas price from Cancun on); reported when transaction `index` met it.
    #[error("block header is invalid (at transaction {index}): {reason}")]
    InvalidHeader {
        /// Transaction that was being executed.
        index: usize,
        /// revm's reason.
        reason: InvalidHeader,
    },
    /// Reading the pre-block state failed while executing transaction `index`.
    #[error("storage failed while executing transaction {index}: {source}")]
    Storage {
        /// Transaction that was being executed.
        index: usize,
        /// The storage's own error.
        #[source]
        source: StorageErrorSource,
    },
    /// revm failed for a reason outside the EVM rules (a fatal precompile error or a custom
    /// handler error) while executing transaction `index`.
    #[error("the EVM failed on transaction {index}: {message}")]
    Evm {
        /// Transaction that was being executed.
        index: usize,
        /// revm's message.
        message: String,
    },
    /// A worker thread panicked; the block was abandoned (the executor stays usable).
    #[error("a worker panicked while executing the block: {message}")]
    WorkerPanicked {
        /// The panic's message.
        message: String,
    },
}

impl BlockError {
    /// Index of the transaction the error belongs to (`None` for a worker panic).
    pub fn index(&self) -> Option<usize> {
        match self {
            Self::InvalidTransaction { index, .. }
            | Self::InvalidHeader { index, .. }
            | Self::Storage { index, .. }
            | Self::Evm { index, .. } => Some(*index),
            Self::WorkerPanicked { .. } => None,
        }
    }

    /// The same error with its index mapped through `map` (the builder names candidates).
    pub(crate) fn with_index(self, map: impl FnOnce(usize) -> usize) -> Self {
        match self {
            Self::InvalidTransaction { index, reason } => Self::InvalidTransaction {
                index: map(index),
                reason,
            },
            Self::InvalidHeader { index, reason } => Self::InvalidHeader {
                index: map(index),
                reason,
            },
            Self::Storage { index, source } => Self::Storage {
                index: map(index),
                source,
            },
            Self::Evm { index, message } => Self::Evm {
                index: map(index),
                message,
            },
            Self::WorkerPanicked { message } => Self::WorkerPanicked { message },
        }
    }

    /// Wraps revm's error for transaction `index`.
    pub(crate) fn from_evm<E>(index: usize, error: EVMError<E, InvalidTransaction>) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        match error {
            EVMError::Transaction(reason) => Self::InvalidTransaction { index, reason },
            EVMError::Header(reason) => Self::InvalidHeader { index, reason },
            EVMError::Database(source) => Self::storage(index, source),
            EVMError::Custom(message) => Self::Evm { index, message },
            EVMError::CustomAny(any) => Self::Evm {
                index,
                message: any.to_string(),
            },
        }
    }

    /// A storage error met while executing transaction `index`.
    pub(crate) fn storage<E>(index: usize, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self::Storage {
            index,
            source: Box::new(source),
        }
    }
}
