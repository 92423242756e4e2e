//! The crate's errors: [`Error`] for starting and running a server, and
//! [`PersistError`] for what the data directories did.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a server could not start, or why it stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration problem.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data directories could not be read or written.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// The client port could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The secure client port's TLS settings cannot be used (a store that
    /// cannot be read or opened, no trust store for client certificates
    /// ...).
    #[error("secure client port: {0}")]
    Tls(#[from] zk_tls::Error),
    /// An essential part of the server (the core, the log, the accept
    /// loop) stopped: the server is fail-stop and ends with it.
    #[error("{0}")]
    Stopped(String),
}

/// The old name of [`Error`].
pub type ServerError = Error;

/// What went wrong with the data directories.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// An I/O error while doing `op` on `path`.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What the server was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The log does not start at the beginning and no snapshot precedes
    /// it: starting would lose data (Apache refuses too).
    #[error("no snapshot found in {}, but the transaction log starts at zxid {zxid:#x}", dir.display())]
    MissingSnapshot {
        /// The snapshot directory.
        dir: PathBuf,
        /// The log's first zxid.
        zxid: i64,
    },
    /// A blocking recovery task could not finish.
    #[error("recovery did not finish: {0}")]
    Recovery(String),
}

impl PersistError {
    pub(crate) fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| PersistError::Io { op, path, source }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
