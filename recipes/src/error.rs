//! The recipes' error type.

/// What a framework call or a recipe can fail with.
///
/// ```
/// use zk_recipes::{Error, ZkError};
/// let e: Error = ZkError::NoNode.into();
/// assert_eq!(e.zk(), Some(&ZkError::NoNode));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A ZooKeeper or client error (after the retry policy gave up).
    #[error(transparent)]
    Zk(#[from] zk_client::Error),
    /// The framework was not started, or is closed.
    #[error("the framework is not started or is closed")]
    NotStarted,
    /// `release` without a matching `acquire`.
    #[error("this mutex is not held by this owner")]
    NotHeld,
    /// The recipe lost what it held (session expired or connection lost).
    #[error("lost: {0}")]
    Lost(&'static str),
    /// The recipe was closed.
    #[error("the recipe is closed")]
    Closed,
    /// An argument a recipe cannot work with (a quantity of 0, a value
    /// never read).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A node holds data the recipe cannot read (a counter of the wrong
    /// length): nothing was changed.
    #[error("corrupt data: {0}")]
    CorruptData(String),
}

impl Error {
    /// The client error, if this is one.
    pub fn zk(&self) -> Option<&zk_client::Error> {
        match self {
            Error::Zk(e) => Some(e),
            _ => None,
        }
    }
}

/// Shorthand for results of this crate.
///
/// ```
/// fn check() -> zk_recipes::Result<u32> { Ok(1) }
/// assert_eq!(check().unwrap_or(0), 1);
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
