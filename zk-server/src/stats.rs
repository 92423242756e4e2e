//! Counters the four-letter words report, kept as the server runs (no tree
//! walk to answer `ruok`, `srvr` or `mntr`), and the report the core hands
//! the four-letter-word code.

use std::net::IpAddr;
use std::time::SystemTime;

/// Per-connection counters (for `cons` and `stat`).
#[derive(Debug, Clone, Default)]
pub struct ConnStats {
    /// Requests received.
    pub received: u64,
    /// Replies and events sent.
    pub sent: u64,
    /// When the connection was accepted.
    pub established: Option<SystemTime>,
    /// Last opcode seen.
    pub last_op: &'static str,
    /// Last zxid replied.
    pub last_zxid: i64,
    /// Outstanding requests.
    pub outstanding: u64,
}

/// Server-wide counters.
#[derive(Debug, Clone, Default)]
pub struct ServerStats {
    /// Requests received.
    pub packets_received: u64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Min write latency in ms (from receipt to reply).
    pub latency_min: u64,
    /// Total latency.
    pub latency_total: u64,
    /// Max latency.
    pub latency_max: u64,
    /// Requests measured.
    pub latency_count: u64,
}

/// One connection as the stats see it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Connection id.
    pub id: u64,
    /// Client address.
    pub peer: Option<IpAddr>,
    /// Session id (0 before the handshake finished).
    pub session: i64,
    /// Counters.
    pub stats: ConnStats,
}

/// What a four-letter word needs from the core, beyond the counters every
/// report has. The lists are built only when asked for, so a cheap word
/// stays cheap however large the tree or the watch tables are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Every connection with its counters (`stat`, `cons`).
    pub connections: bool,
    /// How many paths and connections the watches involve (`wchs`).
    pub watch_summary: bool,
    /// The watch tables by connection and by path (`wchc`, `wchp`).
    pub watch_lists: bool,
    /// Sessions with their ephemerals and timeouts (`dump`).
    pub session_lists: bool,
}

/// What the core reports for the four-letter words.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Last applied zxid.
    pub zxid: i64,
    /// Nodes in the tree.
    pub node_count: usize,
    /// Bytes of paths and data.
    pub approximate_data_size: usize,
    /// Watches.
    pub watch_count: usize,
    /// Watches in the data-watch table (what `wchs` counts).
    pub data_watch_count: usize,
    /// Watched paths (when [`Needs::watch_summary`]).
    pub watched_paths: usize,
    /// Connections that hold at least one watch (when [`Needs::watch_summary`]).
    pub watching_connections: usize,
    /// Ephemeral nodes.
    pub ephemerals: usize,
    /// Live sessions.
    pub sessions: usize,
    /// Live connections.
    pub connection_count: usize,
    /// Txns waiting for the log.
    pub outstanding: usize,
    /// Counters.
    pub stats: ServerStats,
    /// Connections (when [`Needs::connections`]).
    pub connections: Vec<ConnInfo>,
    /// conn → watched paths (when [`Needs::watch_lists`]).
    pub watches_by_conn: Vec<(u64, Vec<String>)>,
    /// path → conns (when [`Needs::watch_lists`]).
    pub watches_by_path: Vec<(String, Vec<u64>)>,
    /// conn → session (when [`Needs::watch_lists`]).
    pub session_of_conn: Vec<(u64, i64)>,
    /// session → ephemerals (when [`Needs::session_lists`]).
    pub ephemerals_by_session: Vec<(i64, Vec<String>)>,
    /// session → timeout (when [`Needs::session_lists`]).
    pub session_timeouts: Vec<(i64, i32)>,
}
