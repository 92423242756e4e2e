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

/// Which connection states end what a recipe holds (Curator's
/// `ConnectionStateErrorPolicy`): leadership, and the lock a mutex's
/// [`lost`](crate::locks::InterProcessMutex::lost) reports.
///
/// ```
/// use zk_recipes::{ConnectionState, ConnectionStateErrorPolicy};
/// assert!(ConnectionStateErrorPolicy::Standard.is_error_state(ConnectionState::Suspended));
/// assert!(!ConnectionStateErrorPolicy::SessionBased.is_error_state(ConnectionState::Suspended));
/// assert!(ConnectionStateErrorPolicy::SessionBased.is_error_state(ConnectionState::Lost));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionStateErrorPolicy {
    /// SUSPENDED and LOST are errors (Curator's
    /// `StandardConnectionStateErrorPolicy`, the default): a leader steps
    /// down as soon as the connection drops.
    #[default]
    Standard,
    /// Only LOST is an error (Curator's `SessionConnectionStateErrorPolicy`):
    /// leadership and locks are kept through SUSPENDED until the session is
    /// actually lost.
    SessionBased,
}

impl ConnectionStateErrorPolicy {
    /// Whether `state` ends what a recipe holds.
    pub fn is_error_state(self, state: ConnectionState) -> bool {
        match self {
            ConnectionStateErrorPolicy::Standard => {
                matches!(state, ConnectionState::Suspended | ConnectionState::Lost)
            }
            ConnectionStateErrorPolicy::SessionBased => state == ConnectionState::Lost,
        }
    }
}
