//! The request pipeline: one deterministic state machine ([`core::Core`])
//! with a home for each stage, and the messages between the stages.
//!
//! ```text
//!                 Input (+ now)                         Output
//!  net ──Connect/Request/Disconnected──▶ ┌──────────────────────────┐ ──Send(conn, Out)──▶ net writer
//!                                        │ core.rs   route, order,  │ ──Close / Kill──────▶ net
//!                                        │           sessions,      │
//!                                        │           timers         │
//!                                        │ read.rs   reads ────────▶│ (answered at once unless the
//!                                        │                          │  session has writes in flight)
//!                                        │ prep.rs   write → txn    │
//!                                        │    │                     │ ──Log(Append txn)───▶ log stage
//!                                        │    ▼   [ZAB slots here:  │                        (persist/log.rs,
//!                                        │    propose → quorum ACK] │                         group commit)
//!  log stage ──Durable(zxid)───────────▶ │ commit: in zxid order    │
//!                                        │ apply.rs  txn → tree,    │
//!                                        │           watches, reply │
//!                                        │ reply.rs  sizes, limits  │ ──Snapshot(job)─────▶ snapshot thread
//!  snapshot thread ──SnapshotDone──────▶ └──────────────────────────┘ ──Fatal(why)────────▶ driver: stop
//! ```
//!
//! The core reads no clock, draws no randomness of its own (its generator
//! is seeded by whoever builds it), and touches no channel: inputs and the
//! time come in through [`core::Core::step`], outputs collect in a buffer
//! that the driver (`crate::driver`, the only code with `select!`,
//! channels and timers) drains and carries out. So the whole pipeline is
//! tested without sockets (see the tests in `core.rs`).
//!
//! # Ordering
//!
//! Each session's requests are answered in the order they came: a read
//! waits only for the session's own earlier writes (queued behind them);
//! other sessions' reads are answered at once. A write is answered when its
//! txn is committed (standalone: durable in the local log) and applied, in
//! zxid order.
//!
//! # Where replication goes
//!
//! A txn leaves prep as [`Output::Log`] and comes back as
//! [`Input::Durable`]. On a standalone server that means committed. In an
//! ensemble the same boundary carries the ZAB role (`quorum.rs`): the
//! leader logs and proposes, and applies once a quorum acknowledged; a
//! learner forwards writes to the leader instead of prepping them and
//! applies the leader's commits through the same apply stage. Nothing
//! before prep or after apply changes.

pub(crate) mod apply;
pub(crate) mod core;
pub(crate) mod prep;
pub(crate) mod quorum;
pub(crate) mod read;
pub(crate) mod read_only;
pub(crate) mod reply;
pub(crate) mod sasl;

use std::net::SocketAddr;

use zk_proto::Request;
use zk_proto::records::{
    ConnectRequest, ConnectResponse, LoggedTxn, QuorumPacket, ReplyHeader, WatcherEvent,
};

pub(crate) use crate::watch::ConnId;

/// The time as the core sees it: both clocks, read once by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    /// A monotonic clock in milliseconds (session expiry, timers).
    pub(crate) mono_ms: u64,
    /// Wall-clock milliseconds since the Unix epoch (txn times, mtime).
    pub(crate) wall_ms: i64,
}

/// What comes into the core.
#[derive(Debug)]
pub(crate) enum Input {
    /// A connection's handshake.
    Connect {
        /// The connection.
        conn: ConnId,
        /// The client's address.
        peer: Option<SocketAddr>,
        /// Identities the transport proved (`x509` from a TLS client
        /// certificate), added to the connection's auth info.
        ids: Vec<zk_proto::records::Id>,
        /// Its connect request.
        req: ConnectRequest,
    },
    /// A request after the handshake.
    Request {
        /// The connection.
        conn: ConnId,
        /// The request's xid.
        xid: i32,
        /// The decoded request.
        req: Request,
    },
    /// The connection is gone.
    Disconnected {
        /// The connection.
        conn: ConnId,
    },
    /// The log stage: every txn up to this zxid is durable (committed).
    Durable(i64),
    /// The log stage failed: durability can no longer be promised.
    LogFailed(String),
    /// A snapshot finished (or failed).
    SnapshotDone(Result<i64, String>),
    /// `srst`: reset the server's counters.
    ResetStats,
    /// `crst`: reset every connection's counters.
    ResetConnStats,
    /// Nothing but the time: run the timers that are due.
    Tick,
    /// The election decided this server's role.
    BeginRole(quorum::RoleKind),
    /// A quorum packet from a peer.
    Peer {
        /// The peer's server id.
        from: i64,
        /// The packet.
        pkt: QuorumPacket,
    },
    /// The link to a peer closed.
    PeerGone(i64),
    /// Learner: the leader's SNAP, already written to disk (the log it
    /// replaces dropped).
    PeerSnapshot {
        /// The zxid it is at.
        zxid: i64,
        /// The state.
        snapshot: crate::persist::snapshot::Snapshot,
    },
    /// The log stage cut the log after this zxid.
    LogTruncated(i64),
    /// The state read back from disk after a cut ([`Output::Reload`]).
    Reloaded(Result<Box<core::Recovered>, String>),
}

/// What the core asks the driver to do.
#[derive(Debug)]
pub(crate) enum Output {
    /// Queue a message for a connection.
    Send(ConnId, Out),
    /// Close a connection now, without flushing (its client stopped
    /// reading, or its session ended).
    Kill(ConnId),
    /// A command for the log stage.
    Log(LogCmd),
    /// Write a snapshot on a blocking thread; report with
    /// [`Input::SnapshotDone`].
    Snapshot(SnapshotJob),
    /// The core cannot go on (the log failed): stop the server.
    Fatal(String),
    /// Send a quorum packet to a peer.
    Peer {
        /// The peer's server id.
        to: i64,
        /// The packet.
        pkt: QuorumPacket,
    },
    /// Send a learner a SNAP packet and this state after it.
    PeerSnapshot {
        /// The learner.
        to: i64,
        /// The state (a view at the zxid).
        job: SnapshotJob,
    },
    /// Persist `acceptedEpoch` and/or `currentEpoch` before anything
    /// after this output is carried out.
    Epoch {
        /// The new `acceptedEpoch`.
        accepted: Option<i64>,
        /// The new `currentEpoch`.
        current: Option<i64>,
    },
    /// The role serves clients now, in this epoch (the election's answers
    /// to late peers carry it from now on, as Apache's, ZOOKEEPER-1732).
    RoleServing(i64),
    /// The role ended: elect again.
    RoleEnded(String),
    /// Read the state back from disk (snapshots after `after` deleted
    /// first) on a blocking thread; report with [`Input::Reloaded`].
    Reload {
        /// The zxid the log was cut after.
        after: i64,
        /// Where the data is.
        cfg: std::sync::Arc<crate::config::ServerConfig>,
    },
}

/// What the core sends to a connection.
#[derive(Debug)]
pub(crate) enum Out {
    /// The handshake succeeded (or, with session id 0 and timeout 0, the
    /// session is expired and the connection must close after sending it).
    Connected(ConnectResponse),
    /// A reply; `body` is `None` for an error.
    Reply(ReplyHeader, Option<zk_proto::Response>),
    /// A watch notification at a zxid.
    Event(i64, WatcherEvent),
    /// Close the connection after what was queued.
    Close,
}

/// Commands to the log stage.
#[derive(Debug)]
pub(crate) enum LogCmd {
    /// Append a txn (in zxid order).
    Append(LoggedTxn),
    /// Start a new log file at the next append.
    Roll,
    /// Delete the whole log (a learner installed its leader's snapshot).
    Discard,
    /// Cut the log after this zxid (the leader's TRUNC); reported back.
    Truncate(i64),
}

/// A snapshot to write: a copy-on-write view of the tree at `zxid`.
pub(crate) struct SnapshotJob {
    /// The last zxid the view includes.
    pub(crate) zxid: i64,
    /// Live sessions and their timeouts.
    pub(crate) sessions: Vec<(i64, i32)>,
    /// The nodes (shared with the tree; a node changed meanwhile is copied
    /// away from the view).
    pub(crate) view: crate::tree::SnapshotView,
}

impl std::fmt::Debug for SnapshotJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotJob").field("zxid", &self.zxid).field("nodes", &self.view.len()).finish()
    }
}
