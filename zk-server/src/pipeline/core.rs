//! The core: a deterministic state machine that owns the data tree, the
//! sessions and the watches, and runs every stage of the pipeline.
//!
//! Inputs ([`Input`]) and the time ([`Now`]) go in through [`Core::step`];
//! what the driver must do collects as [`Output`]s, taken with
//! [`Core::drain`]. The core's own timers (session expiry in tick buckets,
//! the container/TTL sweep) run inside every step that finds them due, so
//! no amount of load can starve them; [`Core::next_deadline`] tells the
//! driver when to wake the core if nothing else comes in.
//!
//! Routing, per-session ordering and the timers live here; the stages are
//! in `read.rs` (reads), `prep.rs` (write → txn), `apply.rs` (commit,
//! apply, reply) and `reply.rs` (sizes and limits).

use std::collections::VecDeque;

use hashbrown::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tracing::{debug, error, info};
use zk_proto::records::*;
use zk_proto::{ErrorCode, OpCode, Request, Response};

use super::prep::{Prep, PrepContext};
use super::{ConnId, Input, LogCmd, Now, Out, Output, SnapshotJob};
use crate::acl::{AuthOutcome, authenticate};
use crate::config::ServerConfig;
use crate::session::{SessionTracker, password};
use crate::stats::{ConnInfo, ConnStats, Needs, Report, ServerStats};
use crate::tree::DataTree;
use crate::watch::WatchManager;

/// Who is waiting for a txn's outcome.
#[derive(Debug)]
pub(super) enum Origin {
    /// A client's write: reply on `conn` once applied.
    Client { conn: ConnId, session: i64, xid: i32, opcode: OpCode, multi_ops: Vec<OpCode>, received_ms: u64 },
    /// A createSession: answer the handshake once applied.
    NewSession { conn: ConnId, timeout: i32, read_only_flag: Option<bool> },
    /// A session expired: close its connection once applied.
    Expire,
    /// The server's own txn (container/TTL sweep).
    Internal,
}

/// A txn between prep and apply.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) txn: LoggedTxn,
    pub(super) origin: Origin,
}

/// A session's queue: its writes in flight, and the reads that came after
/// them (answered once the writes before them are).
#[derive(Debug)]
pub(super) enum Queued {
    Write(i64),
    /// A learner's write or sync sent to the leader, by xid.
    Forwarded(i32),
    Read {
        conn: ConnId,
        xid: i32,
        req: Request,
        /// When it was received (monotonic ms).
        at: u64,
    },
}

/// A connection as the core knows it.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) session: i64,
    pub(super) peer: Option<SocketAddr>,
    pub(super) auth: Vec<Id>,
    pub(super) stats: ConnStats,
    /// The SASL exchange under way, if any.
    pub(super) sasl: Option<Box<zk_proto::sasl::DigestServer>>,
}

/// What recovery produced: the state the core starts from.
#[derive(Debug)]
pub struct Recovered {
    /// The tree.
    pub tree: DataTree,
    /// Sessions with their timeouts.
    pub sessions: Vec<(i64, i32)>,
    /// The last txns replayed from the log (at most
    /// [`crate::quorum::zab::DEFAULT_WINDOW`]), in zxid order: in an
    /// ensemble, what a learner slightly behind is sent as a DIFF after a
    /// restart.
    pub log_tail: Vec<LoggedTxn>,
    /// The zxid just before `log_tail` (the snapshot's, when the tail holds
    /// every replayed txn).
    pub tail_base: i64,
}

/// The core's state.
pub(crate) struct Core {
    pub(super) cfg: Arc<ServerConfig>,
    pub(super) tree: DataTree,
    pub(super) prep: Prep,
    pub(super) sessions: SessionTracker,
    pub(super) watches: WatchManager,
    pub(super) conns: HashMap<ConnId, Conn>,
    pub(super) session_conn: HashMap<i64, ConnId>,
    pub(super) queues: HashMap<i64, VecDeque<Queued>>,
    pub(super) next_zxid: i64,
    pub(super) in_flight: VecDeque<InFlight>,
    pub(super) txns_since_snapshot: u64,
    pub(super) snap_threshold: u64,
    pub(super) snapshot_running: bool,
    pub(super) stats: ServerStats,
    pub(super) failed: bool,
    pub(super) rng: StdRng,
    /// The time of the step being run.
    pub(super) now: Now,
    pub(super) next_container_check: u64,
    /// Replies to requests produced since the driver last asked: the
    /// `globalOutstandingLimit` places to free.
    pub(super) answered: usize,
    pub(super) out: Vec<Output>,
    /// The ensemble's side; `None` standalone.
    pub(super) quorum: Option<super::quorum::QuorumCore>,
    /// Latency summaries for `/metrics`, when the Prometheus endpoint is on
    /// (recording is a few atomic operations; nothing when off).
    pub(super) metrics: Option<Arc<crate::metrics::ServerMetrics>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("zxid", &self.tree.last_zxid)
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl Core {
    /// A core over a recovered state at time `now`, drawing its randomness
    /// (the snapshot schedule's jitter) from `seed`.
    pub(crate) fn new(cfg: Arc<ServerConfig>, mut recovered: Recovered, seed: u64, now: Now) -> Self {
        // The log tail is for the ensemble's window (taken by `set_quorum`'s
        // caller before this); a standalone core does not keep it.
        recovered.log_tail = Vec::new();
        let first_id = crate::session::initial_session_id(cfg.server_id, now.wall_ms.max(0) as u64);
        let mut sessions = SessionTracker::new(cfg.tick_time.as_millis() as u64, first_id);
        for (id, timeout) in &recovered.sessions {
            sessions.observe_id(*id);
            sessions.add(*id, *timeout, now.mono_ms);
        }
        let next_zxid = recovered.tree.last_zxid + 1;
        let next_container_check = now.mono_ms + cfg.container_check_interval.as_millis() as u64;
        let mut core = Core {
            snap_threshold: 0,
            cfg,
            tree: recovered.tree,
            prep: Prep::default(),
            sessions,
            watches: WatchManager::default(),
            conns: HashMap::new(),
            session_conn: HashMap::new(),
            queues: HashMap::new(),
            next_zxid,
            in_flight: VecDeque::new(),
            txns_since_snapshot: 0,
            snapshot_running: false,
            stats: ServerStats::default(),
            failed: false,
            rng: StdRng::seed_from_u64(seed),
            now,
            next_container_check,
            answered: 0,
            out: Vec::new(),
            quorum: None,
            metrics: None,
        };
        core.snap_threshold = core.next_snap_threshold();
        core
    }

    /// Apache's `snapCount` rule: a snapshot after a random number of txns
    /// between half of `snapCount` and all of it, so that the servers of an
    /// ensemble do not all snapshot at once.
    fn next_snap_threshold(&mut self) -> u64 {
        use rand::Rng;
        let half = (self.cfg.snap_count / 2).max(1);
        half + self.rng.gen_range(0..half)
    }

    /// Makes this core a member of an ensemble, looking for its role.
    pub(crate) fn set_quorum(&mut self, q: super::quorum::QuorumCore) {
        self.quorum = Some(q);
    }

    /// Records request latencies into `m` from now on.
    pub(crate) fn set_metrics(&mut self, m: Arc<crate::metrics::ServerMetrics>) {
        self.metrics = Some(m);
    }

    /// Puts the ensemble's membership in `/zookeeper/config`.
    pub(crate) fn set_config_node(&mut self, config: Bytes) {
        self.tree.set_config(config);
    }

    /// Whether a snapshot is being written.
    pub(crate) fn snapshot_running(&self) -> bool {
        self.snapshot_running
    }

    /// Takes one input at time `now`. Due timers run first.
    pub(crate) fn step(&mut self, input: Input, now: Now) {
        self.now = now;
        self.run_timers();
        match input {
            Input::Connect { conn, peer, ids, req } => self.on_connect(conn, peer, ids, req),
            Input::Request { conn, xid, req } => self.on_request(conn, xid, req),
            Input::Disconnected { conn } => self.on_disconnected(conn),
            Input::Durable(zxid) if self.quorum.is_some() => self.on_durable(zxid),
            Input::Durable(zxid) => self.commit_through(zxid),
            Input::LogFailed(why) => self.fail(format!("the transaction log failed: {why}")),
            Input::SnapshotDone(r) => {
                self.snapshot_running = false;
                match r {
                    Ok(zxid) => info!(zxid = format_args!("{zxid:#x}"), "snapshot written"),
                    Err(e) => tracing::warn!(error = %e, "snapshot failed"),
                }
            }
            Input::ResetStats => self.stats = ServerStats::default(),
            Input::ResetConnStats => {
                for c in self.conns.values_mut() {
                    c.stats.received = 0;
                    c.stats.sent = 0;
                }
            }
            Input::Tick => {}
            Input::BeginRole(kind) => self.begin_role(kind),
            Input::Peer { from, pkt } => self.on_peer(from, pkt),
            Input::PeerGone(peer) => self.on_peer_gone(peer),
            Input::PeerSnapshot { zxid, snapshot } => self.install_snapshot(zxid, snapshot),
            Input::LogTruncated(z) => self.on_log_truncated(z),
            Input::Reloaded(r) => self.on_reloaded(r),
        }
    }

    /// The outputs produced so far, in order.
    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, Output> {
        self.out.drain(..)
    }

    /// How many requests were answered since the last call (their
    /// `globalOutstandingLimit` places can be freed).
    pub(crate) fn take_answered(&mut self) -> usize {
        std::mem::take(&mut self.answered)
    }

    /// When the core's next timer is due (monotonic ms).
    pub(crate) fn next_deadline(&self) -> u64 {
        let role =
            self.role_deadline().unwrap_or(u64::MAX).min(self.read_only_deadline().unwrap_or(u64::MAX));
        if !self.decides() {
            return role;
        }
        let expiry = self.sessions.next_expiry().unwrap_or(u64::MAX);
        expiry.min(self.next_container_check).min(role)
    }

    fn run_timers(&mut self) {
        if self.failed {
            return;
        }
        self.role_ticks();
        self.read_only_timers();
        if !self.decides() {
            return;
        }
        if self.sessions.next_expiry().is_some_and(|t| t <= self.now.mono_ms) {
            self.expire_sessions();
        }
        if self.next_container_check <= self.now.mono_ms {
            self.next_container_check =
                self.now.mono_ms + self.cfg.container_check_interval.as_millis().max(1) as u64;
            self.check_containers();
        }
    }

    /// Stops taking work: every connection is closed and the driver is told
    /// to end the server (fail-stop: a server that cannot log must not
    /// answer as if it could).
    pub(super) fn fail(&mut self, why: String) {
        if self.failed {
            return;
        }
        error!(%why, "the server cannot go on");
        self.failed = true;
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in conns {
            self.out.push(Output::Send(c, Out::Close));
        }
        self.out.push(Output::Fatal(why));
    }

    fn on_connect(&mut self, conn: ConnId, peer: Option<SocketAddr>, ids: Vec<Id>, req: ConnectRequest) {
        if !self.failed && self.read_only_active() {
            return self.connect_read_only(conn, peer, ids, req);
        }
        if self.failed || !self.serving() {
            self.out.push(Output::Send(conn, Out::Close));
            return;
        }
        if self.refuse_from_the_future(conn, &req) {
            return;
        }
        let min = self.cfg.min_session().as_millis() as i32;
        let max = self.cfg.max_session().as_millis() as i32;
        let timeout = req.time_out.clamp(min, max);
        let mut auth = peer.map(|p| vec![Id::new("ip", p.ip().to_string())]).unwrap_or_default();
        auth.extend(ids);
        let flag = req.read_only.map(|_| false);
        let stats = ConnStats { established_ms: self.now.wall_ms, ..ConnStats::default() };
        self.conns.insert(conn, Conn { session: 0, peer, auth, stats, sasl: None });
        if req.session_id == 0 {
            let id = self.sessions.next_id();
            let zxid = self.take_zxid();
            let header = TxnHeader {
                client_id: id,
                cxid: 0,
                zxid,
                time: self.now.wall_ms,
                txn_type: OpCode::CreateSession,
            };
            let txn = LoggedTxn {
                header,
                body: TxnBody::CreateSession(CreateSessionTxn { time_out: timeout }),
                digest: None,
            };
            // Reserve the id now: the session is live once the txn applies.
            self.sessions.add(id, timeout, self.now.mono_ms);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.session = id;
            }
            self.session_conn.insert(id, conn);
            let origin = Origin::NewSession { conn, timeout, read_only_flag: flag };
            if self.is_learner() {
                self.forward_create_session(id, timeout, origin);
            } else {
                self.submit(txn, origin);
            }
            return;
        }
        let id = req.session_id;
        let valid = self.sessions.get(id).is_some_and(|e| !e.closing) && req.passwd == password(id);
        if !valid {
            self.answer_expired(conn, flag);
            self.conns.remove(&conn);
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = id;
        }
        self.attach(id, conn);
        let timeout = self.sessions.get(id).map_or(timeout, |e| e.timeout_ms);
        self.sessions.touch(id, self.now.mono_ms);
        self.note_touch(id);
        let rsp = ConnectResponse {
            protocol_version: 0,
            time_out: timeout,
            session_id: id,
            passwd: password(id),
            read_only: flag,
        };
        if self.is_learner() {
            // The leader validates a session that moved here (and, if
            // Apache's, makes this server its owner) before it is answered.
            self.revalidate(id, conn, rsp);
            return;
        }
        self.out.push(Output::Send(conn, Out::Connected(rsp)));
    }

    /// Refuses a client that has seen a newer state than ours (it must try
    /// another server); whether it did.
    pub(super) fn refuse_from_the_future(&mut self, conn: ConnId, req: &ConnectRequest) -> bool {
        if req.last_zxid_seen <= self.tree.last_zxid {
            return false;
        }
        info!(
            client_zxid = req.last_zxid_seen,
            our_zxid = self.tree.last_zxid,
            "refusing a client from the future"
        );
        self.out.push(Output::Send(conn, Out::Close));
        true
    }

    /// Tells a client its session is gone (id and timeout 0), then closes.
    pub(super) fn answer_expired(&mut self, conn: ConnId, read_only: Option<bool>) {
        let rsp = ConnectResponse {
            protocol_version: 0,
            time_out: 0,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            read_only,
        };
        self.out.push(Output::Send(conn, Out::Connected(rsp)));
        self.out.push(Output::Send(conn, Out::Close));
    }

    /// Makes `conn` the session's connection; its old one is closed.
    pub(super) fn attach(&mut self, session: i64, conn: ConnId) {
        if let Some(old) = self.session_conn.insert(session, conn) {
            if old != conn && self.conns.remove(&old).is_some() {
                self.out.push(Output::Send(old, Out::Close));
                self.watches.remove_conn(old);
            }
        }
    }

    pub(super) fn on_disconnected(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if self.session_conn.get(&c.session) == Some(&conn) {
                self.session_conn.remove(&c.session);
            }
        }
        self.watches.remove_conn(conn);
    }

    pub(super) fn take_zxid(&mut self) -> i64 {
        let z = self.next_zxid;
        self.next_zxid += 1;
        z
    }

    /// Hands a prepped txn to the log stage (and, in an ensemble, to the
    /// quorum); it is applied once committed.
    pub(super) fn submit(&mut self, txn: LoggedTxn, origin: Origin) {
        self.out.push(Output::Log(LogCmd::Append(txn.clone())));
        if self.is_leader() {
            let copy = txn.clone();
            self.in_flight.push_back(InFlight { txn, origin });
            self.propose(&copy);
        } else {
            self.in_flight.push_back(InFlight { txn, origin });
        }
    }

    /// Answers a request: its `globalOutstandingLimit` place is freed
    /// whether or not the connection is still there.
    pub(super) fn reply(&mut self, conn: ConnId, header: ReplyHeader, body: Option<Response>) {
        self.answered += 1;
        self.send_out(conn, Out::Reply(header, body));
    }

    pub(super) fn send_out(&mut self, conn: ConnId, out: Out) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.stats.sent += 1;
        if let Out::Reply(h, _) = &out {
            c.stats.last_zxid = h.zxid;
        }
        self.stats.packets_sent += 1;
        self.out.push(Output::Send(conn, out));
    }

    pub(super) fn reply_err(&mut self, conn: ConnId, xid: i32, err: ErrorCode) {
        let h = ReplyHeader { xid, zxid: self.tree.last_zxid, err };
        self.reply(conn, h, None);
    }

    /// Closes a connection: what is queued is flushed for a moment, then
    /// the socket goes.
    pub(super) fn close_conn(&mut self, conn: ConnId) {
        if self.conns.contains_key(&conn) {
            self.out.push(Output::Send(conn, Out::Close));
            self.out.push(Output::Kill(conn));
        }
        self.on_disconnected(conn);
    }

    fn on_request(&mut self, conn: ConnId, xid: i32, req: Request) {
        let now = self.now.mono_ms;
        let Some(c) = self.conns.get_mut(&conn) else {
            // The connection left before its request was seen.
            self.answered += 1;
            return;
        };
        let session = c.session;
        c.stats.received += 1;
        c.stats.last_op = req.opcode().name();
        c.stats.last_cxid = xid;
        self.stats.packets_received += 1;
        if session == 0 || !self.sessions.touch(session, now) {
            self.answered += 1;
            if session != 0 && self.queues.contains_key(&session) {
                // The session's closeSession is in flight: the replies
                // before it still go out, and the connection closes when
                // it applies. A request after it is not answered.
                return;
            }
            // The session ended (expired or closed) under this connection.
            self.close_conn(conn);
            return;
        }
        match &req {
            Request::Auth(a) => {
                let peer = c.peer.map(|p| p.ip());
                match authenticate(&a.scheme, &a.auth, peer, self.cfg.super_digest.as_deref()) {
                    AuthOutcome::Ok(ids) => {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            for id in ids {
                                if !c.auth.contains(&id) {
                                    c.auth.push(id);
                                }
                            }
                        }
                        self.reply(conn, ReplyHeader { xid, zxid: 0, err: ErrorCode::Ok }, None);
                    }
                    AuthOutcome::Failed => {
                        info!(scheme = %a.scheme, "authentication failed; closing the connection");
                        self.reply(conn, ReplyHeader { xid, zxid: 0, err: ErrorCode::AuthFailed }, None);
                        self.close_conn(conn);
                    }
                }
                return;
            }
            Request::Sasl(r) => {
                let token = r.token.clone().unwrap_or_default();
                self.on_sasl(conn, xid, &token);
                return;
            }
            Request::Unknown { .. } | Request::Check(_) | Request::DeleteContainer(_) => {
                debug!(op = %req.opcode(), "unimplemented request; closing the connection");
                self.reply_err(conn, xid, ErrorCode::Unimplemented);
                self.close_conn(conn);
                return;
            }
            _ => {}
        }
        if !self.auth_enforced(conn, xid) {
            return;
        }
        self.note_touch(session);
        if self.read_only_active() {
            return self.read_only_request(conn, session, xid, req);
        }
        if self.is_learner() && matches!(req, Request::Sync(_)) {
            self.forward_sync(conn, session, xid, &req);
            return;
        }
        if !is_write(&req) {
            let queue = self.queues.entry(session).or_default();
            if queue.is_empty() {
                self.answer_read(conn, xid, req, now);
            } else {
                queue.push_back(Queued::Read { conn, xid, req, at: now });
            }
            return;
        }
        if self.failed {
            self.reply_err(conn, xid, ErrorCode::SystemError);
            return;
        }
        let opcode = req.opcode();
        let multi_ops: Vec<OpCode> = match &req {
            Request::Multi(m) => m.ops.iter().map(|o| o.opcode()).collect(),
            _ => Vec::new(),
        };
        if self.is_learner() {
            if let Request::CloseSession = req {
                self.sessions.set_closing(session);
            }
            let origin = Origin::Client { conn, session, xid, opcode, multi_ops, received_ms: now };
            self.forward_write(conn, session, xid, &req, origin);
            return;
        }
        let zxid = self.take_zxid();
        let (txn_type, body) = if let Request::CloseSession = req {
            self.sessions.set_closing(session);
            self.prep.prep_close_session(&self.tree, session, zxid)
        } else {
            let auth = self.conns.get(&conn).map(|c| c.auth.clone()).unwrap_or_default();
            let ctx = PrepContext {
                session_id: session,
                auth: &auth,
                zxid,
                extended_types: self.cfg.extended_types_enabled,
                enforce_quota: self.cfg.enforce_quota,
            };
            self.prep.prep(&self.tree, ctx, &req)
        };
        let header = TxnHeader { client_id: session, cxid: xid, zxid, time: self.now.wall_ms, txn_type };
        let txn = LoggedTxn { header, body, digest: None };
        self.queues.entry(session).or_default().push_back(Queued::Write(zxid));
        self.submit(txn, Origin::Client { conn, session, xid, opcode, multi_ops, received_ms: now });
    }

    fn expire_sessions(&mut self) {
        for id in self.sessions.expired(self.now.mono_ms) {
            info!(session = format_args!("{id:#x}"), "session expired");
            let zxid = self.take_zxid();
            let (txn_type, body) = self.prep.prep_close_session(&self.tree, id, zxid);
            let header = TxnHeader { client_id: id, cxid: 0, zxid, time: self.now.wall_ms, txn_type };
            self.submit(LoggedTxn { header, body, digest: None }, Origin::Expire);
        }
    }

    fn check_containers(&mut self) {
        let now = self.now.wall_ms;
        let mut candidates = Vec::new();
        for p in self.tree.containers() {
            if let Some(n) = self.tree.get(p) {
                if n.num_children() == 0 && n.stat().cversion > 0 {
                    candidates.push(p.clone());
                }
            }
        }
        for p in self.tree.ttl_nodes() {
            if let Some(n) = self.tree.get(p) {
                if let crate::tree::NodeKind::Ttl(ttl) = crate::tree::NodeKind::of(n.stat().ephemeral_owner) {
                    if n.num_children() == 0 && now.saturating_sub(n.stat().mtime) > ttl {
                        candidates.push(p.clone());
                    }
                }
            }
        }
        candidates.sort();
        candidates.truncate(self.cfg.container_max_per_minute.max(1));
        for path in candidates {
            let zxid = self.take_zxid();
            let req = Request::DeleteContainer(DeleteRequest { path, version: -1 });
            let ctx = PrepContext {
                session_id: 0,
                auth: &[],
                zxid,
                extended_types: self.cfg.extended_types_enabled,
                enforce_quota: self.cfg.enforce_quota,
            };
            let (txn_type, body) = self.prep.prep(&self.tree, ctx, &req);
            let header = TxnHeader { client_id: 0, cxid: 0, zxid, time: now, txn_type };
            self.submit(LoggedTxn { header, body, digest: None }, Origin::Internal);
        }
    }

    /// Rolls the log and starts a snapshot when enough txns were applied
    /// since the last roll. If the previous snapshot is still being
    /// written this one is skipped, as Apache's `SyncRequestProcessor`
    /// does ("Too busy to snap"): the log still rolls and the count starts
    /// again, so a snapshot that takes longer than the load needs to fill
    /// the next threshold does not leave the server writing snapshots back
    /// to back.
    pub(super) fn maybe_snapshot(&mut self) {
        if self.txns_since_snapshot < self.snap_threshold {
            return;
        }
        self.txns_since_snapshot = 0;
        self.snap_threshold = self.next_snap_threshold();
        self.out.push(Output::Log(LogCmd::Roll));
        if self.snapshot_running {
            tracing::warn!("too busy to snap, skipping");
            return;
        }
        self.snapshot_running = true;
        let zxid = self.tree.last_zxid;
        // The view shares every node with the tree: taking it costs one
        // pointer copy per node, and the tree copies a node before changing
        // it while the view is alive. The snapshot is consistent at `zxid`.
        let view = self.tree.snapshot_view();
        info!(zxid = format_args!("{zxid:#x}"), nodes = view.len(), "taking a snapshot");
        self.out.push(Output::Snapshot(SnapshotJob { zxid, sessions: self.global_sessions(), view }));
    }

    /// The four-letter words' report; lists only as `needs` asks.
    pub(crate) fn report(&self, needs: Needs) -> Report {
        let mut r = Report {
            mode: self.mode(),
            serving: self.serving() || self.read_only_active(),
            learners: self.learner_counts(),
            zxid: self.tree.last_zxid,
            node_count: self.tree.node_count(),
            approximate_data_size: self.tree.approximate_data_size(),
            watch_count: self.watches.count(),
            data_watch_count: self.watches.data_count(),
            ephemerals: self.tree.ephemeral_sessions().map(|(_, s)| s.len()).sum(),
            sessions: self.sessions.len(),
            connection_count: self.conns.len(),
            outstanding: self.in_flight.len(),
            stats: self.stats.clone(),
            ..Report::default()
        };
        if needs.connections {
            r.connections = self
                .conns
                .iter()
                .map(|(id, c)| ConnInfo { id: *id, peer: c.peer, session: c.session, stats: c.stats.clone() })
                .collect();
            r.connections.sort_by_key(|c| c.id);
        }
        if needs.watch_summary || needs.watch_lists {
            r.watched_paths = self.watches.path_count();
            r.watching_connections = self.watches.connection_count();
        }
        if needs.watch_lists {
            r.watches_by_conn = self.watches.by_connection();
            r.watches_by_path = self.watches.by_path();
            r.session_of_conn = self.conns.iter().map(|(id, c)| (*id, c.session)).collect();
        }
        if needs.session_lists {
            r.ephemerals_by_session =
                self.tree.ephemeral_sessions().map(|(id, s)| (id, s.iter().cloned().collect())).collect();
            r.session_timeouts = self.sessions.all();
            r.expiry_buckets = self.sessions.buckets();
        }
        r
    }
}

/// Whether a request goes through the write path (gets a zxid and a txn).
pub(crate) fn is_write(req: &Request) -> bool {
    matches!(
        req,
        Request::Create(_)
            | Request::Create2(_)
            | Request::CreateContainer(_)
            | Request::CreateTtl(_)
            | Request::Delete(_)
            | Request::SetData(_)
            | Request::SetAcl(_)
            | Request::Multi(_)
            | Request::Reconfig(_)
            | Request::CloseSession
    )
}

#[cfg(test)]
mod tests {
    //! The core without sockets: inputs and the time in, outputs out.
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use bytes::Bytes;
    use zk_proto::records::*;
    use zk_proto::{ErrorCode, Request, Response};

    use super::*;

    /// A core at t=0 over an empty tree, and what it has said.
    struct Harness {
        core: Core,
        t: u64,
        log: Vec<LoggedTxn>,
    }

    fn cfg() -> ServerConfig {
        let mut c = ServerConfig::new("/nonexistent");
        c.tick_time = Duration::from_millis(100);
        c.container_check_interval = Duration::from_secs(3600);
        c
    }

    impl Harness {
        fn new(cfg: ServerConfig) -> Self {
            let rec =
                Recovered { tree: DataTree::new(), sessions: Vec::new(), log_tail: Vec::new(), tail_base: 0 };
            let core = Core::new(Arc::new(cfg), rec, 7, Now { mono_ms: 0, wall_ms: 1_000 });
            Harness { core, t: 0, log: Vec::new() }
        }

        fn now(&self) -> Now {
            Now { mono_ms: self.t, wall_ms: 1_000 + self.t as i64 }
        }

        /// Steps one input; the outputs, with log appends set aside.
        fn step(&mut self, input: Input) -> Vec<Output> {
            let now = self.now();
            self.core.step(input, now);
            let mut outs = Vec::new();
            for o in self.core.drain() {
                match o {
                    Output::Log(LogCmd::Append(t)) => self.log.push(t),
                    other => outs.push(other),
                }
            }
            outs
        }

        /// Makes everything logged so far durable.
        fn sync(&mut self) -> Vec<Output> {
            match self.log.last().map(|t| t.header.zxid) {
                Some(z) => {
                    self.log.clear();
                    self.step(Input::Durable(z))
                }
                None => Vec::new(),
            }
        }

        /// A new session on `conn`, created and durable.
        fn session(&mut self, conn: ConnId, timeout: i32) -> i64 {
            let req = ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                time_out: timeout,
                session_id: 0,
                passwd: Bytes::from_static(&[0; 16]),
                read_only: None,
            };
            assert!(
                self.step(Input::Connect { conn, peer: None, ids: Vec::new(), req }).is_empty(),
                "answered after the log"
            );
            let out = self.sync();
            match &out[..] {
                [Output::Send(c, Out::Connected(r))] if *c == conn => r.session_id,
                other => panic!("expected the handshake's answer, got {other:?}"),
            }
        }

        fn request(&mut self, conn: ConnId, xid: i32, req: Request) -> Vec<Output> {
            self.step(Input::Request { conn, xid, req })
        }
    }

    fn create(path: &str, data: &[u8], flags: i32) -> Request {
        Request::Create(CreateRequest {
            path: path.into(),
            data: Some(Bytes::copy_from_slice(data)),
            acl: Acl::open_unsafe(),
            flags,
        })
    }

    fn get(path: &str) -> Request {
        Request::GetData(GetDataRequest { path: path.into(), watch: false })
    }

    /// (conn, xid, err) of every reply, in order.
    fn replies(outs: &[Output]) -> Vec<(ConnId, i32, ErrorCode)> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Send(c, Out::Reply(h, _)) => Some((*c, h.xid, h.err)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_sessions_read_waits_for_its_own_earlier_write_only() {
        let mut h = Harness::new(cfg());
        h.session(1, 4000);
        h.session(2, 4000);
        assert!(h.request(1, 1, create("/a", b"x", 0)).is_empty(), "a write waits for the log");
        assert!(h.request(1, 2, get("/a")).is_empty(), "session 1's read waits behind its write");
        let other = h.request(2, 1, get("/a"));
        assert_eq!(
            replies(&other),
            vec![(2, 1, ErrorCode::NoNode)],
            "session 2 reads at once, before /a exists"
        );
        let out = h.sync();
        assert_eq!(
            replies(&out),
            vec![(1, 1, ErrorCode::Ok), (1, 2, ErrorCode::Ok)],
            "reply order = request order"
        );
        match &out[1] {
            Output::Send(_, Out::Reply(_, Some(Response::GetData(d)))) => {
                assert_eq!(d.data.as_deref(), Some(&b"x"[..]), "the read sees the write before it")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h.core.take_answered(), 3, "three requests answered, three outstanding places freed");
    }

    #[test]
    fn sessions_expire_on_time_under_a_steady_stream_of_requests() {
        let mut h = Harness::new(cfg());
        let busy = h.session(1, 1000);
        let idle = h.session(2, 1000);
        h.request(2, 1, create("/lock", b"", 1)); // ephemeral
        h.sync();
        // Session 1 sends a request every 10 ms; nothing else comes in (no Tick).
        let mut closed_at = None;
        for i in 0..300 {
            h.t += 10;
            h.request(1, 10 + i, get("/lock"));
            if let Some(t) = h.log.iter().find(|t| t.header.client_id == idle) {
                assert!(matches!(t.body, TxnBody::CloseSession(_)));
                closed_at = Some(h.t);
                break;
            }
        }
        let closed_at = closed_at.expect("the idle session expired");
        // Timeout 1000 ms, ticks of 100 ms: the bucket after 1000 ms.
        assert!((1000..=1200).contains(&closed_at), "expired at {closed_at} ms");
        h.sync();
        assert!(h.core.tree.get("/lock").is_none(), "its ephemeral is gone");
        assert!(h.core.sessions.get(busy).is_some(), "the busy session lives");
        assert!(h.core.sessions.get(idle).is_none());
        assert!(h.core.next_deadline() > h.t, "the next timer is in the future");
    }

    #[test]
    fn reads_queued_behind_a_closing_session_free_their_places() {
        let mut h = Harness::new(cfg());
        h.session(1, 4000);
        h.request(1, 1, create("/a", b"", 0));
        h.request(1, 2, get("/a"));
        h.request(1, 3, Request::CloseSession);
        h.request(1, 4, get("/a"));
        let out = h.sync();
        assert_eq!(
            replies(&out),
            vec![(1, 1, ErrorCode::Ok), (1, 2, ErrorCode::Ok), (1, 3, ErrorCode::Ok)],
            "the read after closeSession is never answered"
        );
        assert!(out.iter().any(|o| matches!(o, Output::Send(1, Out::Close))), "then the connection closes");
        assert_eq!(h.core.take_answered(), 4, "every place is freed");
    }

    #[test]
    fn snapshots_are_scheduled_by_txn_count_one_at_a_time() {
        let mut c = cfg();
        c.snap_count = 4;
        let mut h = Harness::new(c);
        h.session(1, 4000);
        let mut snaps = 0;
        let mut rolls = 0;
        for i in 0..20 {
            h.request(1, i, create(&format!("/n{i}"), b"", 0));
            let out = h.sync();
            snaps += out.iter().filter(|o| matches!(o, Output::Snapshot(_))).count();
            rolls += out.iter().filter(|o| matches!(o, Output::Log(LogCmd::Roll))).count();
        }
        assert_eq!(snaps, 1, "no second snapshot while one is being written");
        // Every threshold (at most 4 txns) rolls the log; the snapshots
        // due while one was being written are skipped, not queued.
        assert!(rolls >= 5, "{rolls} rolls in 20 txns");
        h.step(Input::SnapshotDone(Ok(1)));
        for i in 20..30 {
            h.request(1, i, create(&format!("/n{i}"), b"", 0));
            snaps += h.sync().iter().filter(|o| matches!(o, Output::Snapshot(_))).count();
        }
        assert_eq!(snaps, 2, "the next one after the first is done");
    }

    #[test]
    fn a_reply_larger_than_a_frame_fails_and_the_session_goes_on() {
        let mut h = Harness::new(cfg());
        h.session(1, 4000);
        h.request(1, 1, create("/big", &vec![7u8; 512 * 1024], 0));
        h.sync();
        let ops = (0..65_000).map(|_| MultiOp::GetData(GetDataRequest { path: "/big".into(), watch: false }));
        let out = h.request(1, 2, Request::MultiRead(MultiRequest { ops: ops.collect() }));
        assert_eq!(replies(&out), vec![(1, 2, ErrorCode::MarshallingError)]);
        let small = (0..3).map(|_| MultiOp::GetData(GetDataRequest { path: "/big".into(), watch: false }));
        let out = h.request(1, 3, Request::MultiRead(MultiRequest { ops: small.collect() }));
        assert_eq!(replies(&out), vec![(1, 3, ErrorCode::Ok)], "a multiRead that fits is answered");
        for o in &out {
            if let Output::Send(_, out) = o {
                assert!(super::super::reply::out_weight(out) <= h.core.max_reply() + 4);
            }
        }
        assert!(!out.iter().any(|o| matches!(o, Output::Kill(_) | Output::Send(_, Out::Close))));
    }

    #[test]
    fn a_failed_log_stops_the_server() {
        let mut h = Harness::new(cfg());
        h.session(1, 4000);
        h.request(1, 1, create("/a", b"", 0));
        let out = h.step(Input::LogFailed("disk full".into()));
        assert!(out.iter().any(|o| matches!(o, Output::Fatal(_))));
        assert!(out.iter().any(|o| matches!(o, Output::Send(1, Out::Close))));
        let out = h.request(1, 2, create("/b", b"", 0));
        assert!(replies(&out).iter().all(|r| r.2 != ErrorCode::Ok), "nothing is written after");
    }

    #[test]
    fn the_same_inputs_give_the_same_outputs() {
        let run = || {
            let mut c = cfg();
            c.snap_count = 6;
            let mut h = Harness::new(c);
            h.session(1, 2000);
            let mut trace = Vec::new();
            for i in 0..40 {
                h.t += 37;
                h.request(1, i, create(&format!("/s-{i}"), b"", 2));
                for o in h.sync() {
                    trace.push(format!("{o:?}"));
                }
            }
            trace
        };
        assert_eq!(run(), run());
    }
}
