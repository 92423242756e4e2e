//! Options and op types for create, multi and multiRead.

use std::time::Duration;

use bytes::Bytes;
use zk_proto::CreateMode;
use zk_proto::records::{Acl, Stat};

use crate::error::Error;

/// How to create a node: its mode, ACL and (for TTL modes) time to live.
///
/// ```
/// use std::time::Duration;
/// use zk_client::CreateOptions;
/// use zk_client::CreateMode;
/// let opts = CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(Duration::from_secs(60));
/// let eph: CreateOptions = CreateMode::Ephemeral.into();
/// assert!(eph.mode.is_ephemeral());
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// The create mode.
    pub mode: CreateMode,
    /// The node's ACL (default: `world:anyone` with every permission).
    pub acl: Vec<Acl>,
    /// Time to live, for the TTL modes only.
    pub ttl: Option<Duration>,
}

impl CreateOptions {
    /// Options for `mode` with the open ACL.
    pub fn new(mode: CreateMode) -> Self {
        CreateOptions { mode, acl: Acl::open_unsafe(), ttl: None }
    }

    /// Sets the ACL.
    pub fn with_acl(mut self, acl: Vec<Acl>) -> Self {
        self.acl = acl;
        self
    }

    /// Sets the TTL (TTL modes only).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl From<CreateMode> for CreateOptions {
    fn from(mode: CreateMode) -> Self {
        CreateOptions::new(mode)
    }
}

/// One write of a [`crate::Client::multi`] transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Create a node.
    Create {
        /// Path (prefix for sequential nodes).
        path: String,
        /// Initial data.
        data: Bytes,
        /// Mode, ACL, TTL.
        options: CreateOptions,
    },
    /// Delete a node.
    Delete {
        /// Path.
        path: String,
        /// Expected version, `None` for any.
        version: Option<i32>,
    },
    /// Set a node's data.
    SetData {
        /// Path.
        path: String,
        /// New data.
        data: Bytes,
        /// Expected version, `None` for any.
        version: Option<i32>,
    },
    /// Check a node's version without changing it.
    Check {
        /// Path.
        path: String,
        /// Expected version, `None` for any (the node must exist).
        version: Option<i32>,
    },
}

impl Op {
    /// A create op.
    pub fn create(
        path: impl Into<String>,
        data: impl Into<Bytes>,
        options: impl Into<CreateOptions>,
    ) -> Self {
        Op::Create { path: path.into(), data: data.into(), options: options.into() }
    }

    /// A delete op.
    pub fn delete(path: impl Into<String>, version: Option<i32>) -> Self {
        Op::Delete { path: path.into(), version }
    }

    /// A setData op.
    pub fn set_data(path: impl Into<String>, data: impl Into<Bytes>, version: Option<i32>) -> Self {
        Op::SetData { path: path.into(), data: data.into(), version }
    }

    /// A check op.
    pub fn check(path: impl Into<String>, version: Option<i32>) -> Self {
        Op::Check { path: path.into(), version }
    }
}

/// The result of one op of a multi.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpResult {
    /// The node was created.
    Create {
        /// The path created (with its sequence suffix).
        path: String,
        /// Its Stat.
        stat: Stat,
    },
    /// The node was deleted.
    Delete,
    /// The data was set.
    SetData {
        /// The Stat after the change.
        stat: Stat,
    },
    /// The check passed.
    Check,
    /// The op failed, or was rolled back because another op failed
    /// ([`Error::RuntimeInconsistency`]); in a failed multi the ops before
    /// the failing one report `Ok(())`.
    Error(Result<(), Error>),
}

/// One read of a [`crate::Client::multi_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadOp {
    /// Read a node's data.
    GetData(String),
    /// List a node's children.
    GetChildren(String),
}

/// The result of one read of a multiRead; each read succeeds or fails on
/// its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadResult {
    /// A node's data and Stat.
    Data {
        /// The data.
        data: Bytes,
        /// The Stat.
        stat: Stat,
    },
    /// A node's children.
    Children(Vec<String>),
    /// The read failed.
    Error(Error),
}
