//! Counters the four-letter words report, kept as the server runs (no tree
//! walk to answer `ruok`, `srvr` or `mntr`), and the report the core hands
//! the four-letter-word code.

use std::net::SocketAddr;

/// Per-connection counters (for `cons` and `stat`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnStats {
    /// Requests received.
    pub(crate) received: u64,
    /// Replies and events sent.
    pub(crate) sent: u64,
    /// Last opcode seen.
    pub(crate) last_op: &'static str,
    /// Last zxid replied.
    pub(crate) last_zxid: i64,
    /// Outstanding requests.
    pub(crate) outstanding: u64,
    /// Last request's xid.
    pub(crate) last_cxid: i32,
    /// When the connection was made (wall clock, ms since the epoch).
    pub(crate) established_ms: i64,
}

/// Server-wide counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerStats {
    /// Requests received.
    pub(crate) packets_received: u64,
    /// Packets sent.
    pub(crate) packets_sent: u64,
    /// Min write latency in ms (from receipt to reply).
    pub(crate) latency_min: u64,
    /// Total latency.
    pub(crate) latency_total: u64,
    /// Max latency.
    pub(crate) latency_max: u64,
    /// Requests measured.
    pub(crate) latency_count: u64,
}

/// One connection as the stats see it.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// Connection id.
    pub(crate) id: u64,
    /// Client address.
    pub(crate) peer: Option<SocketAddr>,
    /// Session id (0 before the handshake finished).
    pub(crate) session: i64,
    /// Counters.
    pub(crate) stats: ConnStats,
}

/// What a four-letter word needs from the core, beyond the counters every
/// report has. The lists are built only when asked for, so a cheap word
/// stays cheap however large the tree or the watch tables are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    /// Every connection with its counters (`stat`, `cons`).
    pub(crate) connections: bool,
    /// How many paths and connections the watches involve (`wchs`).
    pub(crate) watch_summary: bool,
    /// The watch tables by connection and by path (`wchc`, `wchp`).
    pub(crate) watch_lists: bool,
    /// Sessions with their ephemerals and timeouts (`dump`).
    pub(crate) session_lists: bool,
}

/// What the core reports for the four-letter words.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    /// `standalone`, `leader`, `follower`, `observer` or `looking`.
    pub(crate) mode: &'static str,
    /// Whether it answers clients.
    pub(crate) serving: bool,
    /// A leader's learners: (connected, synced).
    pub(crate) learners: Option<(usize, usize)>,
    /// Last applied zxid.
    pub(crate) zxid: i64,
    /// Nodes in the tree.
    pub(crate) node_count: usize,
    /// Bytes of paths and data.
    pub(crate) approximate_data_size: usize,
    /// Watches.
    pub(crate) watch_count: usize,
    /// Watches in the data-watch table (what `wchs` counts).
    pub(crate) data_watch_count: usize,
    /// Watched paths (when [`Needs::watch_summary`]).
    pub(crate) watched_paths: usize,
    /// Connections that hold at least one watch (when [`Needs::watch_summary`]).
    pub(crate) watching_connections: usize,
    /// Ephemeral nodes.
    pub(crate) ephemerals: usize,
    /// Live sessions.
    pub(crate) sessions: usize,
    /// Live connections.
    pub(crate) connection_count: usize,
    /// Txns waiting for the log.
    pub(crate) outstanding: usize,
    /// Counters.
    pub(crate) stats: ServerStats,
    /// Connections (when [`Needs::connections`]).
    pub(crate) connections: Vec<ConnInfo>,
    /// conn → watched paths (when [`Needs::watch_lists`]).
    pub(crate) watches_by_conn: Vec<(u64, Vec<String>)>,
    /// path → conns (when [`Needs::watch_lists`]).
    pub(crate) watches_by_path: Vec<(String, Vec<u64>)>,
    /// conn → session (when [`Needs::watch_lists`]).
    pub(crate) session_of_conn: Vec<(u64, i64)>,
    /// session → ephemerals (when [`Needs::session_lists`]).
    pub(crate) ephemerals_by_session: Vec<(i64, Vec<String>)>,
    /// session → timeout (when [`Needs::session_lists`]).
    pub(crate) session_timeouts: Vec<(i64, i32)>,
    /// expiry time (monotonic ms) → sessions (when [`Needs::session_lists`]).
    pub(crate) expiry_buckets: Vec<(u64, Vec<i64>)>,
}

impl Report {
    /// The session of connection `conn` (0 when unknown), from
    /// `session_of_conn` (filled with [`Needs::watch_lists`]).
    pub(crate) fn session_of(&self, conn: u64) -> i64 {
        self.session_of_conn.iter().find(|(c, _)| *c == conn).map_or(0, |(_, id)| *id)
    }
}
