//! The client's one error type.

use zk_proto::ErrorCode;

/// Everything a client call can fail with: every ZooKeeper error code by
/// name (see [`Error::code`] for the number), plus the client's own.
///
/// `Clone` so that one connection loss can fail every request in flight,
/// `PartialEq` so tests can compare.
///
/// ```
/// use zk_client::Error;
/// use zk_proto::ErrorCode;
/// let e = Error::from(ErrorCode::NoNode);
/// assert_eq!(e, Error::NoNode);
/// assert_eq!(e.code(), Some(ErrorCode::NoNode));
/// assert_eq!(e.to_string(), "NONODE (-101): the node does not exist");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// -1: a server-side system error.
    #[error("SYSTEMERROR (-1): the server reported a system error")]
    SystemError,
    /// -2: an op of a multi that was not applied because another failed.
    #[error("RUNTIMEINCONSISTENCY (-2): not applied because another op of the multi failed")]
    RuntimeInconsistency,
    /// -3: a data inconsistency was found.
    #[error("DATAINCONSISTENCY (-3): a data inconsistency was found")]
    DataInconsistency,
    /// -4: the connection was lost before the reply came; the request may
    /// or may not have been applied.
    #[error(
        "CONNECTIONLOSS (-4): the connection to the server was lost; the request may or may not have been applied"
    )]
    ConnectionLoss,
    /// -5: the server could not (un)marshal the request.
    #[error("MARSHALLINGERROR (-5): the server could not decode the request")]
    MarshallingError,
    /// -6: the server does not implement the operation.
    #[error("UNIMPLEMENTED (-6): the server does not implement this operation")]
    Unimplemented,
    /// -7: the operation timed out.
    #[error("OPERATIONTIMEOUT (-7): the operation timed out")]
    OperationTimeout,
    /// -8: invalid arguments.
    #[error("BADARGUMENTS (-8): invalid arguments")]
    BadArguments,
    /// -12: unknown session.
    #[error("UNKNOWNSESSION (-12): unknown session")]
    UnknownSession,
    /// -13: the new config has no quorum.
    #[error("NEWCONFIGNOQUORUM (-13): no quorum of the new config is connected and up to date")]
    NewConfigNoQuorum,
    /// -14: another reconfiguration is in progress.
    #[error("RECONFIGINPROGRESS (-14): another reconfiguration is in progress")]
    ReconfigInProgress,
    /// -100: generic API error.
    #[error("APIERROR (-100): API error")]
    ApiError,
    /// -101: the node does not exist.
    #[error("NONODE (-101): the node does not exist")]
    NoNode,
    /// -102: not authorized by the node's ACL.
    #[error("NOAUTH (-102): not authorized by the node's ACL")]
    NoAuth,
    /// -103: the expected version did not match.
    #[error("BADVERSION (-103): the node's version is not the expected one")]
    BadVersion,
    /// -108: ephemeral nodes may not have children.
    #[error("NOCHILDRENFOREPHEMERALS (-108): ephemeral nodes may not have children")]
    NoChildrenForEphemerals,
    /// -110: the node already exists.
    #[error("NODEEXISTS (-110): the node already exists")]
    NodeExists,
    /// -111: the node has children.
    #[error("NOTEMPTY (-111): the node has children")]
    NotEmpty,
    /// -112: the session expired; this client can do nothing more.
    #[error("SESSIONEXPIRED (-112): the session has expired; create a new client")]
    SessionExpired,
    /// -113: invalid callback.
    #[error("INVALIDCALLBACK (-113): invalid callback")]
    InvalidCallback,
    /// -114: the ACL is invalid.
    #[error("INVALIDACL (-114): the ACL is invalid")]
    InvalidAcl,
    /// -115: authentication failed; the server closed the session.
    #[error("AUTHFAILED (-115): authentication failed")]
    AuthFailed,
    /// -118: the session moved to another server.
    #[error("SESSIONMOVED (-118): the session moved to another server")]
    SessionMoved,
    /// -119: a write sent to a read-only server.
    #[error("NOTREADONLY (-119): the server is read-only and cannot apply writes")]
    NotReadOnly,
    /// -120: an ephemeral node on a local session.
    #[error("EPHEMERALONLOCALSESSION (-120): ephemeral nodes need a global session")]
    EphemeralOnLocalSession,
    /// -121: no such watch.
    #[error("NOWATCHER (-121): no such watch")]
    NoWatcher,
    /// -122: the request timed out on the server.
    #[error("REQUESTTIMEOUT (-122): the request timed out on the server")]
    RequestTimeout,
    /// -123: reconfiguration is disabled.
    #[error("RECONFIGDISABLED (-123): dynamic reconfiguration is disabled")]
    ReconfigDisabled,
    /// -124: the session was closed because SASL authentication is required.
    #[error("SESSIONCLOSEDREQUIRESASLAUTH (-124): SASL authentication is required")]
    SessionClosedRequireSaslAuth,
    /// -125: a quota was exceeded.
    #[error("QUOTAEXCEEDED (-125): a quota was exceeded")]
    QuotaExceeded,
    /// -127: the server throttled the request.
    #[error("THROTTLEDOP (-127): the server throttled the request")]
    Throttled,
    /// An error code this client does not know.
    #[error("unknown ZooKeeper error code {0}")]
    Unknown(i32),

    /// The client was closed; create a new one.
    #[error("the client is closed")]
    ClientClosed,
    /// A path that ZooKeeper would reject (checked before sending).
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path.
        path: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A connect string that cannot be parsed.
    #[error("invalid connect string {0:?}")]
    InvalidConnectString(String),
    /// The server sent bytes this client cannot decode.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No connection could be made within the connection timeout.
    #[error("timed out connecting to the ensemble")]
    ConnectTimeout,
    /// TLS could not be set up: settings that cannot be used (a store
    /// that cannot be read), or a handshake that failed (the server's
    /// certificate is not trusted, has expired, names another host).
    #[error("TLS: {0}")]
    Tls(String),
}

impl Error {
    /// The ZooKeeper error code of this error, if it has one.
    pub fn code(&self) -> Option<ErrorCode> {
        Some(match self {
            Error::SystemError => ErrorCode::SystemError,
            Error::RuntimeInconsistency => ErrorCode::RuntimeInconsistency,
            Error::DataInconsistency => ErrorCode::DataInconsistency,
            Error::ConnectionLoss => ErrorCode::ConnectionLoss,
            Error::MarshallingError => ErrorCode::MarshallingError,
            Error::Unimplemented => ErrorCode::Unimplemented,
            Error::OperationTimeout => ErrorCode::OperationTimeout,
            Error::BadArguments => ErrorCode::BadArguments,
            Error::UnknownSession => ErrorCode::UnknownSession,
            Error::NewConfigNoQuorum => ErrorCode::NewConfigNoQuorum,
            Error::ReconfigInProgress => ErrorCode::ReconfigInProgress,
            Error::ApiError => ErrorCode::ApiError,
            Error::NoNode => ErrorCode::NoNode,
            Error::NoAuth => ErrorCode::NoAuth,
            Error::BadVersion => ErrorCode::BadVersion,
            Error::NoChildrenForEphemerals => ErrorCode::NoChildrenForEphemerals,
            Error::NodeExists => ErrorCode::NodeExists,
            Error::NotEmpty => ErrorCode::NotEmpty,
            Error::SessionExpired => ErrorCode::SessionExpired,
            Error::InvalidCallback => ErrorCode::InvalidCallback,
            Error::InvalidAcl => ErrorCode::InvalidAcl,
            Error::AuthFailed => ErrorCode::AuthFailed,
            Error::SessionMoved => ErrorCode::SessionMoved,
            Error::NotReadOnly => ErrorCode::NotReadOnly,
            Error::EphemeralOnLocalSession => ErrorCode::EphemeralOnLocalSession,
            Error::NoWatcher => ErrorCode::NoWatcher,
            Error::RequestTimeout => ErrorCode::RequestTimeout,
            Error::ReconfigDisabled => ErrorCode::ReconfigDisabled,
            Error::SessionClosedRequireSaslAuth => ErrorCode::SessionClosedRequireSaslAuth,
            Error::QuotaExceeded => ErrorCode::QuotaExceeded,
            Error::Throttled => ErrorCode::ThrottledOp,
            Error::Unknown(c) => ErrorCode::Unknown(*c),
            Error::ClientClosed
            | Error::InvalidPath { .. }
            | Error::InvalidConnectString(_)
            | Error::Protocol(_)
            | Error::ConnectTimeout
            | Error::Tls(_) => return None,
        })
    }

    /// Whether retrying the same operation may succeed: the errors
    /// Curator's `RetryLoop` retries (ConnectionLoss, OperationTimeout,
    /// SessionMoved, and SessionExpired, which only a new session fixes).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Error::ConnectionLoss | Error::OperationTimeout | Error::SessionMoved | Error::SessionExpired
        )
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        match code {
            // Ok is never turned into an error; map it to the odd one out
            // rather than panic.
            ErrorCode::Ok => Error::Unknown(0),
            ErrorCode::SystemError => Error::SystemError,
            ErrorCode::RuntimeInconsistency => Error::RuntimeInconsistency,
            ErrorCode::DataInconsistency => Error::DataInconsistency,
            ErrorCode::ConnectionLoss => Error::ConnectionLoss,
            ErrorCode::MarshallingError => Error::MarshallingError,
            ErrorCode::Unimplemented => Error::Unimplemented,
            ErrorCode::OperationTimeout => Error::OperationTimeout,
            ErrorCode::BadArguments => Error::BadArguments,
            ErrorCode::UnknownSession => Error::UnknownSession,
            ErrorCode::NewConfigNoQuorum => Error::NewConfigNoQuorum,
            ErrorCode::ReconfigInProgress => Error::ReconfigInProgress,
            ErrorCode::ApiError => Error::ApiError,
            ErrorCode::NoNode => Error::NoNode,
            ErrorCode::NoAuth => Error::NoAuth,
            ErrorCode::BadVersion => Error::BadVersion,
            ErrorCode::NoChildrenForEphemerals => Error::NoChildrenForEphemerals,
            ErrorCode::NodeExists => Error::NodeExists,
            ErrorCode::NotEmpty => Error::NotEmpty,
            ErrorCode::SessionExpired => Error::SessionExpired,
            ErrorCode::InvalidCallback => Error::InvalidCallback,
            ErrorCode::InvalidAcl => Error::InvalidAcl,
            ErrorCode::AuthFailed => Error::AuthFailed,
            ErrorCode::SessionMoved => Error::SessionMoved,
            ErrorCode::NotReadOnly => Error::NotReadOnly,
            ErrorCode::EphemeralOnLocalSession => Error::EphemeralOnLocalSession,
            ErrorCode::NoWatcher => Error::NoWatcher,
            ErrorCode::RequestTimeout => Error::RequestTimeout,
            ErrorCode::ReconfigDisabled => Error::ReconfigDisabled,
            ErrorCode::SessionClosedRequireSaslAuth => Error::SessionClosedRequireSaslAuth,
            ErrorCode::QuotaExceeded => Error::QuotaExceeded,
            ErrorCode::ThrottledOp => Error::Throttled,
            ErrorCode::Unknown(c) => Error::Unknown(c),
            other => Error::Unknown(other.code()),
        }
    }
}

impl From<zk_proto::ProtoError> for Error {
    fn from(e: zk_proto::ProtoError) -> Self {
        Error::Protocol(e.to_string())
    }
}

impl From<zk_proto::path::InvalidPath> for Error {
    fn from(e: zk_proto::path::InvalidPath) -> Self {
        Error::InvalidPath { path: e.path, reason: e.reason }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_one_to_one() {
        for code in ErrorCode::ALL.iter().copied().filter(|c| !c.is_ok()) {
            assert_eq!(Error::from(code).code(), Some(code), "{code}");
        }
        assert_eq!(Error::from(ErrorCode::Unknown(-999)).code(), Some(ErrorCode::Unknown(-999)));
    }
}
