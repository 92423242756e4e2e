//! The session's connection state, as the client reports it.

use zk_proto::KeeperState;

/// Where the session stands.
///
/// ```text
///            connect ok                  socket lost
/// Connecting ----------> Connected <-------------------> Disconnected
///     |                  (or ConnectedReadOnly)   re-attach     |
///     |                      |  close()                         | session timeout passes,
///     |                      v                                  | or server says expired
///     +---------------->  Closed        AuthFailed          Expired
/// ```
///
/// `Expired`, `AuthFailed` and `Closed` are terminal: every later call
/// fails, and a new client is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionState {
    /// Looking for a server for the first time.
    Connecting,
    /// Connected to a server of the quorum (`SyncConnected`).
    Connected,
    /// Connected to a read-only server (`ConnectedReadOnly`); writes fail
    /// with `NotReadOnly` until a read-write server is found.
    ConnectedReadOnly,
    /// The connection was lost; the client is re-attaching the session to
    /// another server. Requests in flight failed with `ConnectionLoss`.
    Disconnected,
    /// The session expired (the server said so, or the session timeout
    /// passed without reaching any server). Ephemerals are gone.
    Expired,
    /// Authentication failed and the server closed the session.
    AuthFailed,
    /// The client closed the session.
    Closed,
}

impl SessionState {
    /// Whether the session can never be used again.
    pub fn is_terminal(self) -> bool {
        matches!(self, SessionState::Expired | SessionState::AuthFailed | SessionState::Closed)
    }

    /// Whether requests can be sent now.
    pub fn is_connected(self) -> bool {
        matches!(self, SessionState::Connected | SessionState::ConnectedReadOnly)
    }

    /// The `KeeperState` Apache's client would report.
    pub fn keeper_state(self) -> KeeperState {
        match self {
            SessionState::Connecting | SessionState::Disconnected => KeeperState::Disconnected,
            SessionState::Connected => KeeperState::SyncConnected,
            SessionState::ConnectedReadOnly => KeeperState::ConnectedReadOnly,
            SessionState::Expired => KeeperState::Expired,
            SessionState::AuthFailed => KeeperState::AuthFailed,
            SessionState::Closed => KeeperState::Closed,
        }
    }
}
