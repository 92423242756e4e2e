//! `KeeperException.Code`: the error codes of a `ReplyHeader`.

use crate::code_enum::code_enum;

code_enum! {
    /// An error code (`KeeperException.Code`), with Apache's exact numbers.
    ///
    /// ```
    /// use zk_proto::ErrorCode;
    /// assert_eq!(ErrorCode::from(-101), ErrorCode::NoNode);
    /// assert_eq!(ErrorCode::NoNode.to_string(), "NONODE");
    /// ```
    pub enum ErrorCode {
        /// Everything is OK.
        Ok = 0, "OK";
        /// A system error (also the lower bound of system errors).
        SystemError = -1, "SYSTEMERROR";
        /// A runtime inconsistency was found (ops after a failed multi op).
        RuntimeInconsistency = -2, "RUNTIMEINCONSISTENCY";
        /// A data inconsistency was found.
        DataInconsistency = -3, "DATAINCONSISTENCY";
        /// Connection to the server has been lost.
        ConnectionLoss = -4, "CONNECTIONLOSS";
        /// Error while marshalling or unmarshalling data.
        MarshallingError = -5, "MARSHALLINGERROR";
        /// Operation is unimplemented.
        Unimplemented = -6, "UNIMPLEMENTED";
        /// Operation timeout.
        OperationTimeout = -7, "OPERATIONTIMEOUT";
        /// Invalid arguments.
        BadArguments = -8, "BADARGUMENTS";
        /// Unknown session (internal server use).
        UnknownSession = -12, "UNKNOWNSESSION";
        /// No quorum of the new config is connected and up to date.
        NewConfigNoQuorum = -13, "NEWCONFIGNOQUORUM";
        /// Another reconfiguration is in progress.
        ReconfigInProgress = -14, "RECONFIGINPROGRESS";
        /// An API error (also the lower bound of API errors).
        ApiError = -100, "APIERROR";
        /// The node does not exist.
        NoNode = -101, "NONODE";
        /// Not authenticated.
        NoAuth = -102, "NOAUTH";
        /// Version conflict.
        BadVersion = -103, "BADVERSION";
        /// Ephemeral nodes may not have children.
        NoChildrenForEphemerals = -108, "NOCHILDRENFOREPHEMERALS";
        /// The node already exists.
        NodeExists = -110, "NODEEXISTS";
        /// The node has children.
        NotEmpty = -111, "NOTEMPTY";
        /// The session has been expired by the server.
        SessionExpired = -112, "SESSIONEXPIRED";
        /// Invalid callback specified.
        InvalidCallback = -113, "INVALIDCALLBACK";
        /// Invalid ACL specified.
        InvalidAcl = -114, "INVALIDACL";
        /// Client authentication failed.
        AuthFailed = -115, "AUTHFAILED";
        /// The session moved to another server.
        SessionMoved = -118, "SESSIONMOVED";
        /// State-changing request passed to a read-only server.
        NotReadOnly = -119, "NOTREADONLY";
        /// Attempt to create an ephemeral node on a local session.
        EphemeralOnLocalSession = -120, "EPHEMERALONLOCALSESSION";
        /// Attempt to remove a watch that does not exist.
        NoWatcher = -121, "NOWATCHER";
        /// Request not completed within the max allowed time.
        RequestTimeout = -122, "REQUESTTIMEOUT";
        /// Reconfiguration is disabled.
        ReconfigDisabled = -123, "RECONFIGDISABLED";
        /// The session is closed: SASL authentication is required.
        SessionClosedRequireSaslAuth = -124, "SESSIONCLOSEDREQUIRESASLAUTH";
        /// A quota was exceeded.
        QuotaExceeded = -125, "QUOTAEXCEEDED";
        /// The operation was throttled and not executed.
        ThrottledOp = -127, "THROTTLEDOP";
    }
}

impl ErrorCode {
    /// Whether this is `Ok`.
    pub const fn is_ok(self) -> bool {
        matches!(self, ErrorCode::Ok)
    }

    /// The message Apache's `KeeperException` prints for this code.
    pub const fn description(self) -> &'static str {
        match self {
            ErrorCode::Ok => "ok",
            ErrorCode::SystemError => "SystemError",
            ErrorCode::RuntimeInconsistency => "RuntimeInconsistency",
            ErrorCode::DataInconsistency => "DataInconsistency",
            ErrorCode::ConnectionLoss => "ConnectionLoss",
            ErrorCode::MarshallingError => "MarshallingError",
            ErrorCode::Unimplemented => "Unimplemented",
            ErrorCode::OperationTimeout => "OperationTimeout",
            ErrorCode::BadArguments => "BadArguments",
            ErrorCode::UnknownSession => "Unknown session",
            ErrorCode::NewConfigNoQuorum => "New config has no quorum",
            ErrorCode::ReconfigInProgress => "Another reconfiguration is in progress",
            ErrorCode::ApiError => "APIError",
            ErrorCode::NoNode => "NoNode",
            ErrorCode::NoAuth => "Insufficient permission",
            ErrorCode::BadVersion => "BadVersion",
            ErrorCode::NoChildrenForEphemerals => "NoChildrenForEphemerals",
            ErrorCode::NodeExists => "NodeExists",
            ErrorCode::NotEmpty => "Directory not empty",
            ErrorCode::SessionExpired => "Session expired",
            ErrorCode::InvalidCallback => "Invalid callback",
            ErrorCode::InvalidAcl => "InvalidACL",
            ErrorCode::AuthFailed => "AuthFailed",
            ErrorCode::SessionMoved => "Session moved",
            ErrorCode::NotReadOnly => "Not a read-only call",
            ErrorCode::EphemeralOnLocalSession => "Ephemeral node on local session",
            ErrorCode::NoWatcher => "No such watcher",
            ErrorCode::RequestTimeout => "Request timeout",
            ErrorCode::ReconfigDisabled => "Reconfig is disabled",
            ErrorCode::SessionClosedRequireSaslAuth => "Session closed because client failed to authenticate",
            ErrorCode::QuotaExceeded => "Quota has exceeded",
            ErrorCode::ThrottledOp => "Op throttled due to high load",
            ErrorCode::Unknown(_) => "Unknown error",
        }
    }
}
