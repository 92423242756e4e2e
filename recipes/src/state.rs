//! Connection states as Curator names them.

/// The framework's view of its connection (Curator's `ConnectionState`).
///
/// ```text
/// CONNECTED --disconnect--> SUSPENDED --same session back--> RECONNECTED
///                               |
///                               +--session expired, or suspended for a whole
///                                  session timeout--> LOST --new session--> RECONNECTED
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionState {
    /// The first successful connection.
    Connected,
    /// The connection was lost; the session may still be alive. Anything
    /// that depends on the session (a lock, leadership) must be treated as
    /// possibly lost until RECONNECTED.
    Suspended,
    /// Connected again, with the same session or (after LOST) a new one.
    Reconnected,
    /// The session is gone (expired, or suspended for a whole session
    /// timeout): ephemeral nodes, locks and leadership are lost.
    Lost,
    /// Connected to a read-only server.
    ReadOnly,
}

impl ConnectionState {
    /// Whether the framework can talk to the ensemble in this state.
    pub fn is_connected(self) -> bool {
        matches!(self, ConnectionState::Connected | ConnectionState::Reconnected | ConnectionState::ReadOnly)
    }
}
