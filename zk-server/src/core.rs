//! The core: one task that owns the data tree, the sessions and the
//! watches, and runs the write pipeline.
//!
//! ```text
//! connection tasks --CoreMsg--> core: reads answered from the tree
//!                                     writes: prep -> txn --LogCmd--> log thread (group commit, fsync)
//!                                                                          |
//!            replies, events <--Out-- core: apply -> reply <--Durable(zxid)-+
//! ```
//!
//! Ordering: each session's requests are answered in the order they came.
//! A read waits only for the session's own earlier writes (queued behind
//! them); other sessions' reads are answered at once. A write is answered
//! only after its txn is durable, then applied.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};
use zk_proto::records::*;
use zk_proto::types::perms;
use zk_proto::{AddWatchMode, ErrorCode, EventType, KeeperState, OpCode, Request, Response, WatcherType};

use crate::acl::{AuthOutcome, authenticate};
use crate::config::ServerConfig;
use crate::prep::{Prep, PrepContext};
use crate::session::{SessionTracker, password};
use crate::tree::{Applied, DataTree, NodeKind};
use crate::watch::{ConnId, WatchManager};

/// What the core sends to a connection.
#[derive(Debug)]
pub enum Out {
    /// The handshake succeeded (or, with session id 0 and timeout 0, the
    /// session is expired and the connection must close after sending it).
    Connected(ConnectResponse),
    /// A reply; `body` is `None` for an error.
    Reply(ReplyHeader, Option<Response>),
    /// A watch notification.
    Event(i64, WatcherEvent),
    /// Close the connection after what was queued.
    Close,
}

/// Requests taken in from connections and not yet answered by the core:
/// what `globalOutstandingLimit` bounds. A request counts from the moment
/// its connection reads it until the core has answered it (queued its
/// reply), not until the reply is written, so a client that stops reading
/// cannot hold other clients' share.
#[derive(Debug)]
pub struct Outstanding {
    count: std::sync::atomic::AtomicUsize,
    limit: usize,
    freed: tokio::sync::Notify,
}

impl Outstanding {
    /// A counter with `limit` places.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Outstanding {
            count: Default::default(),
            limit: limit.max(1),
            freed: tokio::sync::Notify::new(),
        })
    }

    /// Waits for a place.
    pub async fn acquire(&self) {
        use std::sync::atomic::Ordering::AcqRel;
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.fetch_add(1, AcqRel) < self.limit {
                return;
            }
            self.count.fetch_sub(1, AcqRel);
            notified.await;
        }
    }

    /// Frees a place.
    pub fn release(&self) {
        self.count.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.freed.notify_waiters();
    }

    /// Requests in flight now.
    pub fn current(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The most bytes of replies that may wait for one connection before the
/// server decides its client stopped reading and closes it.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

/// The weight of a queued message, as the core and the connection's writer
/// both count it (an estimate of its encoded size).
pub fn out_weight(out: &Out) -> usize {
    match out {
        Out::Reply(_, Some(Response::GetData(d))) => 100 + d.data.as_ref().map_or(0, |b| b.len()),
        Out::Reply(_, Some(Response::GetChildren(c))) => {
            16 + c.children.iter().map(|s| s.len() + 4).sum::<usize>()
        }
        Out::Reply(_, Some(Response::GetChildren2(c))) => {
            84 + c.children.iter().map(|s| s.len() + 4).sum::<usize>()
        }
        Out::Reply(_, Some(Response::Multi(m))) => 32 + 100 * m.results.len(),
        Out::Event(_, e) => 32 + e.path.len(),
        _ => 100,
    }
}

/// Sender half of a connection's queue.
pub type OutTx = mpsc::Sender<Out>;

/// How many messages may wait for a connection that does not read before
/// the server gives up on it.
pub const OUT_QUEUE: usize = 65_536;

/// What connections (and the server) send to the core.
#[derive(Debug)]
pub enum CoreMsg {
    /// A new connection's handshake.
    Connect {
        /// The connection.
        conn: ConnId,
        /// The client's address.
        peer: Option<IpAddr>,
        /// Its connect request.
        req: ConnectRequest,
        /// Where its replies go.
        out: OutTx,
        /// Notified to close the connection at once (without flushing).
        kill: Arc<tokio::sync::Notify>,
        /// Bytes queued for it and not yet written (see [`out_weight`]).
        queued: Arc<std::sync::atomic::AtomicUsize>,
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
    /// A four-letter word's data.
    Stats(oneshot::Sender<crate::fourlw::Snapshot>),
    /// Reset statistics (`srst`, `crst`).
    ResetStats,
    /// Stop.
    Shutdown,
}

/// Commands to the log thread.
#[derive(Debug)]
pub enum LogCmd {
    /// Append a txn (in zxid order).
    Append(LoggedTxn),
    /// Start a new log file at the next append.
    Roll,
}

/// What the log thread reports.
#[derive(Debug)]
pub enum LogEvent {
    /// Every txn up to this zxid is on disk.
    Durable(i64),
    /// The log failed: the server cannot promise durability any more.
    Failed(String),
}

#[derive(Debug)]
enum Origin {
    Client { conn: ConnId, session: i64, xid: i32, opcode: OpCode, multi_ops: Vec<OpCode> },
    NewSession { conn: ConnId, timeout: i32, read_only_flag: Option<bool> },
    Expire,
    Internal,
}

#[derive(Debug)]
struct InFlight {
    txn: LoggedTxn,
    origin: Origin,
}

#[derive(Debug)]
enum Queued {
    Write(i64),
    Read { conn: ConnId, xid: i32, req: Request },
}

#[derive(Debug)]
struct Conn {
    out: OutTx,
    kill: Arc<tokio::sync::Notify>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    session: i64,
    peer: Option<IpAddr>,
    auth: Vec<Id>,
    stats: ConnStats,
}

/// Per-connection counters (for `cons`).
#[derive(Debug, Clone, Default)]
pub struct ConnStats {
    /// Requests received.
    pub received: u64,
    /// Replies and events sent.
    pub sent: u64,
    /// When the connection was accepted.
    pub established: Option<SystemTime>,
    /// Last opcode seen.
    pub last_op: String,
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
    /// Min/avg/max write latency in ms (from receipt to reply).
    pub latency_min: u64,
    /// Total latency.
    pub latency_total: u64,
    /// Max latency.
    pub latency_max: u64,
    /// Requests measured.
    pub latency_count: u64,
}

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The core's state.
pub struct Core {
    cfg: Arc<ServerConfig>,
    tree: DataTree,
    prep: Prep,
    sessions: SessionTracker,
    watches: WatchManager,
    conns: HashMap<ConnId, Conn>,
    session_conn: HashMap<i64, ConnId>,
    queues: HashMap<i64, VecDeque<Queued>>,
    next_zxid: i64,
    in_flight: VecDeque<InFlight>,
    log_tx: std::sync::mpsc::Sender<LogCmd>,
    epoch: Instant,
    txns_since_snapshot: u64,
    snap_threshold: u64,
    snapshot_running: bool,
    stats: ServerStats,
    failed: bool,
    outstanding: Arc<Outstanding>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("zxid", &self.tree.last_zxid)
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

/// What recovery produced.
#[derive(Debug)]
pub struct Recovered {
    /// The tree.
    pub tree: DataTree,
    /// Sessions with their timeouts.
    pub sessions: Vec<(i64, i32)>,
}

impl Core {
    /// A core over a recovered state.
    pub fn new(
        cfg: Arc<ServerConfig>,
        recovered: Recovered,
        log_tx: std::sync::mpsc::Sender<LogCmd>,
        outstanding: Arc<Outstanding>,
    ) -> Self {
        let epoch = Instant::now();
        let first_id = crate::session::initial_session_id(cfg.server_id, wall_ms() as u64);
        let mut sessions = SessionTracker::new(cfg.tick_time.as_millis() as u64, first_id);
        for (id, timeout) in &recovered.sessions {
            sessions.observe_id(*id);
            sessions.add(*id, *timeout, 0);
        }
        let next_zxid = recovered.tree.last_zxid + 1;
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
            log_tx,
            epoch,
            txns_since_snapshot: 0,
            snapshot_running: false,
            stats: ServerStats::default(),
            failed: false,
            outstanding,
        };
        core.snap_threshold = core.next_snap_threshold();
        core
    }

    fn next_snap_threshold(&self) -> u64 {
        let half = (self.cfg.snap_count / 2).max(1);
        half + rand::random::<u64>() % half
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The last applied zxid.
    pub fn last_zxid(&self) -> i64 {
        self.tree.last_zxid
    }

    /// Runs until shutdown.
    pub async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<CoreMsg>,
        mut durable: mpsc::UnboundedReceiver<LogEvent>,
        mut snap_done: mpsc::UnboundedReceiver<Result<(), String>>,
        snap_tx: mpsc::UnboundedSender<Result<(), String>>,
    ) {
        let mut tick = tokio::time::interval(self.cfg.tick_time.min(Duration::from_millis(500)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut containers = tokio::time::interval(self.cfg.container_check_interval);
        containers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let purge_every = Duration::from_secs(self.cfg.autopurge_purge_interval.max(1) * 3600);
        let mut purge = tokio::time::interval_at(tokio::time::Instant::now() + purge_every, purge_every);
        loop {
            tokio::select! {
                biased;
                ev = durable.recv() => match ev {
                    Some(LogEvent::Durable(z)) => self.on_durable(z, &snap_tx),
                    Some(LogEvent::Failed(why)) => {
                        error!(%why, "transaction log failed; refusing writes");
                        self.failed = true;
                        for (_, c) in self.conns.drain() {
                            let _ = c.out.try_send(Out::Close);
                        }
                    }
                    None => break,
                },
                msg = rx.recv() => match msg {
                    None | Some(CoreMsg::Shutdown) => break,
                    Some(m) => self.on_msg(m),
                },
                done = snap_done.recv() => {
                    self.snapshot_running = false;
                    if let Some(Err(e)) = done {
                        warn!(error = %e, "snapshot failed");
                    }
                }
                _ = tick.tick() => self.expire_sessions(),
                _ = containers.tick() => self.check_containers(),
                _ = purge.tick(), if self.cfg.autopurge_purge_interval > 0 => {
                    let (dir, retain) = (self.cfg.data_dir.clone(), self.cfg.autopurge_snap_retain_count);
                    let log_dir = self.cfg.data_log_dir.clone();
                    tokio::task::spawn_blocking(move || {
                        match crate::persist::snapshot::purge_dirs(&dir, &log_dir, retain) {
                            Ok(r) => info!(?r, "autopurge"),
                            Err(e) => warn!(error = %e, "autopurge failed"),
                        }
                    });
                }
            }
        }
        for (_, c) in self.conns.drain() {
            let _ = c.out.try_send(Out::Close);
        }
    }

    fn on_msg(&mut self, msg: CoreMsg) {
        match msg {
            CoreMsg::Connect { conn, peer, req, out, kill, queued } => {
                self.on_connect(conn, peer, req, out, kill, queued)
            }
            CoreMsg::Request { conn, xid, req } => self.on_request(conn, xid, req),
            CoreMsg::Disconnected { conn } => self.on_disconnected(conn),
            CoreMsg::Stats(tx) => {
                let _ = tx.send(self.snapshot_stats());
            }
            CoreMsg::ResetStats => {
                self.stats = ServerStats::default();
                for c in self.conns.values_mut() {
                    c.stats.received = 0;
                    c.stats.sent = 0;
                }
            }
            CoreMsg::Shutdown => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_connect(
        &mut self,
        conn: ConnId,
        peer: Option<IpAddr>,
        req: ConnectRequest,
        out: OutTx,
        kill: Arc<tokio::sync::Notify>,
        queued: Arc<std::sync::atomic::AtomicUsize>,
    ) {
        if self.failed {
            let _ = out.try_send(Out::Close);
            return;
        }
        if req.last_zxid_seen > self.tree.last_zxid {
            // The client has seen a newer state than ours: it must try another server.
            info!(
                client_zxid = req.last_zxid_seen,
                our_zxid = self.tree.last_zxid,
                "refusing a client from the future"
            );
            let _ = out.try_send(Out::Close);
            return;
        }
        let min = self.cfg.min_session().as_millis() as i32;
        let max = self.cfg.max_session().as_millis() as i32;
        let timeout = req.time_out.clamp(min, max);
        let auth = peer.map(|ip| vec![Id::new("ip", ip.to_string())]).unwrap_or_default();
        let flag = req.read_only.map(|_| false);
        self.conns.insert(
            conn,
            Conn {
                out,
                kill,
                queued,
                session: 0,
                peer,
                auth,
                stats: ConnStats { established: Some(SystemTime::now()), ..ConnStats::default() },
            },
        );
        if req.session_id == 0 {
            let id = self.sessions.next_id();
            let zxid = self.take_zxid();
            let header =
                TxnHeader { client_id: id, cxid: 0, zxid, time: wall_ms(), txn_type: OpCode::CreateSession };
            let txn = LoggedTxn {
                header,
                body: TxnBody::CreateSession(CreateSessionTxn { time_out: timeout }),
                digest: None,
            };
            // Reserve the id now: the session is live once the txn applies.
            self.sessions.add(id, timeout, self.now_ms());
            if let Some(c) = self.conns.get_mut(&conn) {
                c.session = id;
            }
            self.session_conn.insert(id, conn);
            self.submit(txn, Origin::NewSession { conn, timeout, read_only_flag: flag });
            return;
        }
        let id = req.session_id;
        let valid = self.sessions.get(id).is_some_and(|e| !e.closing) && req.passwd == password(id);
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if !valid {
            let rsp = ConnectResponse {
                protocol_version: 0,
                time_out: 0,
                session_id: 0,
                passwd: Bytes::from_static(&[0; 16]),
                read_only: flag,
            };
            let _ = c.out.try_send(Out::Connected(rsp));
            let _ = c.out.try_send(Out::Close);
            self.conns.remove(&conn);
            return;
        }
        c.session = id;
        // Re-attach: the session's old connection is closed.
        if let Some(old) = self.session_conn.insert(id, conn) {
            if old != conn {
                if let Some(oc) = self.conns.remove(&old) {
                    let _ = oc.out.try_send(Out::Close);
                }
                self.watches.remove_conn(old);
            }
        }
        let timeout = self.sessions.get(id).map_or(timeout, |e| e.timeout_ms);
        self.sessions.touch(id, self.now_ms());
        let rsp = ConnectResponse {
            protocol_version: 0,
            time_out: timeout,
            session_id: id,
            passwd: password(id),
            read_only: flag,
        };
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.out.try_send(Out::Connected(rsp));
        }
    }

    fn on_disconnected(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if self.session_conn.get(&c.session) == Some(&conn) {
                self.session_conn.remove(&c.session);
            }
        }
        self.watches.remove_conn(conn);
    }

    fn take_zxid(&mut self) -> i64 {
        let z = self.next_zxid;
        self.next_zxid += 1;
        z
    }

    fn submit(&mut self, txn: LoggedTxn, origin: Origin) {
        if self.log_tx.send(LogCmd::Append(txn.clone())).is_err() {
            error!("log thread is gone");
            self.failed = true;
            return;
        }
        self.in_flight.push_back(InFlight { txn, origin });
    }

    /// Answers a request: frees its `globalOutstandingLimit` place
    /// whether or not the connection is still there.
    fn reply(&mut self, conn: ConnId, header: ReplyHeader, body: Option<Response>) {
        self.outstanding.release();
        self.send_out(conn, Out::Reply(header, body));
    }

    fn send_out(&mut self, conn: ConnId, out: Out) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.stats.sent += 1;
        if let Out::Reply(h, _) = &out {
            c.stats.last_zxid = h.zxid;
        }
        self.stats.packets_sent += 1;
        let weight = out_weight(&out);
        let queued = c.queued.fetch_add(weight, std::sync::atomic::Ordering::AcqRel) + weight;
        if queued > MAX_QUEUED_BYTES || c.out.try_send(out).is_err() {
            self.drop_slow(conn);
        }
    }

    /// A connection whose queue is full (its client stopped reading) is
    /// dropped; its session lives on until it expires.
    fn drop_slow(&mut self, conn: ConnId) {
        warn!(conn, "client is not reading its replies; closing its connection");
        if let Some(c) = self.conns.get(&conn) {
            c.kill.notify_one();
        }
        self.on_disconnected(conn);
    }

    fn reply_err(&mut self, conn: ConnId, xid: i32, err: ErrorCode) {
        let h = ReplyHeader { xid, zxid: self.tree.last_zxid, err };
        self.reply(conn, h, None);
    }

    /// Closes a connection: what is queued is flushed for a moment (the
    /// connection task gives its writer two seconds), then the socket goes.
    fn close_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.out.try_send(Out::Close);
            c.kill.notify_one();
        }
        self.on_disconnected(conn);
    }

    fn on_request(&mut self, conn: ConnId, xid: i32, req: Request) {
        let now = self.now_ms();
        let Some(c) = self.conns.get_mut(&conn) else {
            // The connection left before its request was seen.
            self.outstanding.release();
            return;
        };
        let session = c.session;
        c.stats.received += 1;
        c.stats.last_op = req.opcode().name().to_string();
        self.stats.packets_received += 1;
        if session == 0 || !self.sessions.touch(session, now) {
            // The session ended (expired or closed) under this connection.
            self.outstanding.release();
            self.close_conn(conn);
            return;
        }
        match &req {
            Request::Auth(a) => {
                let peer = c.peer;
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
            Request::Unknown { .. } | Request::Check(_) | Request::DeleteContainer(_) | Request::Sasl(_) => {
                debug!(op = %req.opcode(), "unimplemented request; closing the connection");
                self.reply_err(conn, xid, ErrorCode::Unimplemented);
                self.close_conn(conn);
                return;
            }
            _ => {}
        }
        let is_write = matches!(
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
        );
        if !is_write {
            let queue = self.queues.entry(session).or_default();
            if queue.is_empty() {
                self.answer_read(conn, xid, req);
            } else {
                queue.push_back(Queued::Read { conn, xid, req });
            }
            return;
        }
        if self.failed {
            self.reply_err(conn, xid, ErrorCode::SystemError);
            return;
        }
        let zxid = self.take_zxid();
        let opcode = req.opcode();
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
            };
            self.prep.prep(&self.tree, ctx, &req)
        };
        let multi_ops = match &req {
            Request::Multi(m) => m.ops.iter().map(|o| o.opcode()).collect(),
            _ => Vec::new(),
        };
        let header = TxnHeader { client_id: session, cxid: xid, zxid, time: wall_ms(), txn_type };
        let txn = LoggedTxn { header, body, digest: None };
        self.queues.entry(session).or_default().push_back(Queued::Write(zxid));
        self.submit(txn, Origin::Client { conn, session, xid, opcode, multi_ops });
    }

    fn on_durable(&mut self, zxid: i64, snap_tx: &mpsc::UnboundedSender<Result<(), String>>) {
        while self.in_flight.front().is_some_and(|f| f.txn.header.zxid <= zxid) {
            let Some(f) = self.in_flight.pop_front() else { break };
            self.apply(f);
        }
        if self.txns_since_snapshot >= self.snap_threshold && !self.snapshot_running {
            self.take_snapshot(snap_tx.clone());
        }
    }

    fn apply(&mut self, f: InFlight) {
        let InFlight { txn, origin } = f;
        let zxid = txn.header.zxid;
        let applied = self.tree.apply(&txn.header, &txn.body);
        self.prep.applied(zxid);
        self.txns_since_snapshot += 1;
        match &txn.body {
            TxnBody::CloseSession(_) => {
                let id = txn.header.client_id;
                self.sessions.remove(id);
                // Reads queued behind the session's writes die with it; their
                // places in globalOutstandingLimit are freed.
                if let Some(q) = self.queues.remove(&id) {
                    for queued in q {
                        if matches!(queued, Queued::Read { .. }) {
                            self.outstanding.release();
                        }
                    }
                }
            }
            TxnBody::CreateSession(_) => {}
            _ => {}
        }
        self.fire(&applied, zxid);
        match origin {
            Origin::NewSession { conn, timeout, read_only_flag } => {
                let id = txn.header.client_id;
                let rsp = ConnectResponse {
                    protocol_version: 0,
                    time_out: timeout,
                    session_id: id,
                    passwd: password(id),
                    read_only: read_only_flag,
                };
                match self.conns.get(&conn) {
                    Some(c) => {
                        let _ = c.out.try_send(Out::Connected(rsp));
                    }
                    None => debug!(session = id, "client left before its session was created"),
                }
            }
            Origin::Client { conn, session, xid, opcode, multi_ops } => {
                let response = build_write_response(opcode, &applied, &multi_ops);
                let header = ReplyHeader {
                    xid,
                    zxid,
                    err: if opcode == OpCode::Multi { ErrorCode::Ok } else { applied.err },
                };
                let body = if header.err.is_ok() { Some(response) } else { None };
                self.reply(conn, header, body);
                if opcode == OpCode::CloseSession {
                    self.close_conn(conn);
                    self.session_conn.remove(&session);
                    return;
                }
                let mut ready = Vec::new();
                if let Some(q) = self.queues.get_mut(&session) {
                    if matches!(q.front(), Some(Queued::Write(z)) if *z == zxid) {
                        q.pop_front();
                    }
                    while let Some(Queued::Read { .. }) = q.front() {
                        if let Some(Queued::Read { conn, xid, req }) = q.pop_front() {
                            ready.push((conn, xid, req));
                        }
                    }
                    if q.is_empty() {
                        self.queues.remove(&session);
                    }
                }
                for (c, x, r) in ready {
                    self.answer_read(c, x, r);
                }
            }
            Origin::Expire => {
                let id = txn.header.client_id;
                if let Some(conn) = self.session_conn.remove(&id) {
                    self.close_conn(conn);
                }
            }
            Origin::Internal => {}
        }
    }

    fn fire(&mut self, applied: &Applied, zxid: i64) {
        for t in &applied.triggers {
            let conns = self.watches.trigger(&t.path, t.event);
            for conn in conns {
                self.send_event(conn, t.event, &t.path, zxid);
            }
        }
    }

    fn send_event(&mut self, conn: ConnId, event: EventType, path: &str, zxid: i64) {
        let ev = WatcherEvent {
            event_type: event.code(),
            state: KeeperState::SyncConnected.code(),
            path: path.to_string(),
        };
        self.send_out(conn, Out::Event(zxid, ev));
    }

    fn acl_ok(&self, conn: ConnId, acl: &[Acl], perm: i32) -> bool {
        let ids = self.conns.get(&conn).map(|c| c.auth.as_slice()).unwrap_or(&[]);
        DataTree::check_acl(acl, perm, ids)
    }

    fn answer_read(&mut self, conn: ConnId, xid: i32, req: Request) {
        let zxid = self.tree.last_zxid;
        let ok = |b: Response| (ErrorCode::Ok, Some(b));
        let (err, body): (ErrorCode, Option<Response>) = match req {
            Request::Ping => {
                // Apache answers every ping with the ping xid.
                self.reply(conn, ReplyHeader { xid: zk_proto::xid::PING, zxid, err: ErrorCode::Ok }, None);
                return;
            }
            Request::Exists(r) => match valid(&r.path) {
                Err(e) => (e, None),
                Ok(()) => {
                    if r.watch {
                        self.watches.add_data(&r.path, conn);
                    }
                    match self.tree.get(&r.path) {
                        Some(n) => ok(Response::Exists(ExistsResponse { stat: n.client_stat() })),
                        None => (ErrorCode::NoNode, None),
                    }
                }
            },
            Request::GetData(r) => match self.read_node(conn, &r.path, perms::READ) {
                Err(e) => (e, None),
                Ok(()) => {
                    if r.watch {
                        self.watches.add_data(&r.path, conn);
                    }
                    match self.tree.get(&r.path) {
                        Some(n) => ok(Response::GetData(GetDataResponse {
                            data: n.data.clone(),
                            stat: n.client_stat(),
                        })),
                        None => (ErrorCode::NoNode, None),
                    }
                }
            },
            Request::GetChildren(r) => match self.read_node(conn, &r.path, perms::READ) {
                Err(e) => (e, None),
                Ok(()) => {
                    if r.watch {
                        self.watches.add_child(&r.path, conn);
                    }
                    let children = self.children(&r.path);
                    ok(Response::GetChildren(GetChildrenResponse { children }))
                }
            },
            Request::GetChildren2(r) => match self.read_node(conn, &r.path, perms::READ) {
                Err(e) => (e, None),
                Ok(()) => {
                    if r.watch {
                        self.watches.add_child(&r.path, conn);
                    }
                    let children = self.children(&r.path);
                    let stat = self.tree.get(&r.path).map(|n| n.client_stat()).unwrap_or_default();
                    ok(Response::GetChildren2(GetChildren2Response { children, stat }))
                }
            },
            Request::GetAcl(r) => match valid(&r.path) {
                Err(e) => (e, None),
                Ok(()) => match self.tree.get(&r.path) {
                    // As Apache (ZOOKEEPER-4799 era): READ or ADMIN is needed,
                    // and without ADMIN the digest hashes are masked.
                    Some(n) if !self.acl_ok(conn, &n.acl, perms::READ | perms::ADMIN) => {
                        (ErrorCode::NoAuth, None)
                    }
                    Some(n) => {
                        let acl = if self.acl_ok(conn, &n.acl, perms::ADMIN) {
                            n.acl.to_vec()
                        } else {
                            n.acl
                                .iter()
                                .map(|a| match a.id.scheme.as_str() {
                                    "digest" => {
                                        let user = a.id.id.split(':').next().unwrap_or("");
                                        Acl::new(a.perms, Id::new("digest", format!("{user}:x")))
                                    }
                                    _ => a.clone(),
                                })
                                .collect()
                        };
                        ok(Response::GetAcl(GetAclResponse { acl, stat: n.client_stat() }))
                    }
                    None => (ErrorCode::NoNode, None),
                },
            },
            Request::GetAllChildrenNumber(r) => match self.read_node(conn, &r.path, perms::READ) {
                Err(e) => (e, None),
                Ok(()) => ok(Response::GetAllChildrenNumber(GetAllChildrenNumberResponse {
                    total_number: self.tree.descendants(&r.path) as i32,
                })),
            },
            Request::GetEphemerals(r) => {
                let session = self.conns.get(&conn).map_or(0, |c| c.session);
                let prefix = r.prefix_path;
                let mut ephemerals: Vec<String> = self
                    .tree
                    .ephemerals_of(session)
                    .filter(|p| prefix == "/" || p.starts_with(&prefix))
                    .cloned()
                    .collect();
                ephemerals.sort();
                ok(Response::GetEphemerals(GetEphemeralsResponse { ephemerals }))
            }
            Request::Sync(r) => ok(Response::Sync(SyncResponse { path: r.path })),
            Request::CheckWatches(r) => {
                let wt = WatcherType::from(r.watcher_type);
                if self.watches.contains(&r.path, wt, conn) {
                    ok(Response::Empty)
                } else {
                    (ErrorCode::NoWatcher, None)
                }
            }
            Request::RemoveWatches(r) => {
                let wt = WatcherType::from(r.watcher_type);
                if self.watches.remove(&r.path, wt, conn).is_empty() {
                    (ErrorCode::NoWatcher, None)
                } else {
                    ok(Response::Empty)
                }
            }
            Request::AddWatch(r) => match valid(&r.path) {
                Err(e) => (e, None),
                Ok(()) => match AddWatchMode::from(r.mode) {
                    AddWatchMode::Persistent => {
                        self.watches.add_persistent(&r.path, conn);
                        ok(Response::AddWatch(ErrorResponse { err: 0 }))
                    }
                    AddWatchMode::PersistentRecursive => {
                        self.watches.add_recursive(&r.path, conn);
                        ok(Response::AddWatch(ErrorResponse { err: 0 }))
                    }
                    _ => (ErrorCode::BadArguments, None),
                },
            },
            Request::SetWatches(w) => {
                self.set_watches(
                    conn,
                    w.relative_zxid,
                    &w.data_watches,
                    &w.exist_watches,
                    &w.child_watches,
                    &[],
                    &[],
                );
                self.reply(conn, ReplyHeader { xid, zxid, err: ErrorCode::Ok }, None);
                return;
            }
            Request::SetWatches2(w) => {
                self.set_watches(
                    conn,
                    w.relative_zxid,
                    &w.data_watches,
                    &w.exist_watches,
                    &w.child_watches,
                    &w.persistent_watches,
                    &w.persistent_recursive_watches,
                );
                self.reply(conn, ReplyHeader { xid, zxid, err: ErrorCode::Ok }, None);
                return;
            }
            Request::WhoAmI => {
                let info = self.conns.get(&conn).map(|c| c.auth.clone()).unwrap_or_default();
                let client_info = info
                    .into_iter()
                    .map(|id| {
                        let user = if id.scheme == "digest" {
                            id.id.split(':').next().unwrap_or("").to_string()
                        } else {
                            id.id
                        };
                        ClientInfo { auth_scheme: id.scheme, user }
                    })
                    .collect();
                ok(Response::WhoAmI(WhoAmIResponse { client_info }))
            }
            Request::MultiRead(m) => {
                let mut results = Vec::with_capacity(m.ops.len());
                for op in m.ops {
                    results.push(match op {
                        MultiOp::GetData(r) => match self.read_node(conn, &r.path, perms::READ) {
                            Err(err) => MultiResult::Error { err },
                            Ok(()) => match self.tree.get(&r.path) {
                                Some(n) => {
                                    MultiResult::GetData { data: n.data.clone(), stat: n.client_stat() }
                                }
                                None => MultiResult::Error { err: ErrorCode::NoNode },
                            },
                        },
                        MultiOp::GetChildren(r) => match self.read_node(conn, &r.path, perms::READ) {
                            Err(err) => MultiResult::Error { err },
                            Ok(()) => MultiResult::GetChildren { children: self.children(&r.path) },
                        },
                        _ => MultiResult::Error { err: ErrorCode::BadArguments },
                    });
                }
                ok(Response::Multi(MultiResponse { results }))
            }
            _ => (ErrorCode::Unimplemented, None),
        };
        self.reply(conn, ReplyHeader { xid, zxid, err }, body);
    }

    fn read_node(&self, conn: ConnId, path: &str, perm: i32) -> Result<(), ErrorCode> {
        valid(path)?;
        let n = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        if self.acl_ok(conn, &n.acl, perm) { Ok(()) } else { Err(ErrorCode::NoAuth) }
    }

    fn children(&self, path: &str) -> Vec<String> {
        self.tree.children_of(path).map(str::to_string).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn set_watches(
        &mut self,
        conn: ConnId,
        rel: i64,
        data: &[String],
        exist: &[String],
        child: &[String],
        persistent: &[String],
        recursive: &[String],
    ) {
        let zxid = self.tree.last_zxid;
        for p in data {
            match self.tree.get(p).map(|n| n.stat.mzxid) {
                None => self.send_event(conn, EventType::NodeDeleted, p, zxid),
                Some(m) if m > rel => self.send_event(conn, EventType::NodeDataChanged, p, zxid),
                Some(_) => self.watches.add_data(p, conn),
            }
        }
        for p in exist {
            if self.tree.get(p).is_some() {
                self.send_event(conn, EventType::NodeCreated, p, zxid);
            } else {
                self.watches.add_data(p, conn);
            }
        }
        for p in child {
            match self.tree.get(p).map(|n| n.stat.pzxid) {
                None => self.send_event(conn, EventType::NodeDeleted, p, zxid),
                Some(pz) if pz > rel => self.send_event(conn, EventType::NodeChildrenChanged, p, zxid),
                Some(_) => self.watches.add_child(p, conn),
            }
        }
        for p in persistent {
            self.watches.add_persistent(p, conn);
        }
        for p in recursive {
            self.watches.add_recursive(p, conn);
        }
    }

    fn expire_sessions(&mut self) {
        if self.failed {
            return;
        }
        for id in self.sessions.expired(self.now_ms()) {
            info!(session = format_args!("{id:#x}"), "session expired");
            let zxid = self.take_zxid();
            let (txn_type, body) = self.prep.prep_close_session(&self.tree, id, zxid);
            let header = TxnHeader { client_id: id, cxid: 0, zxid, time: wall_ms(), txn_type };
            self.submit(LoggedTxn { header, body, digest: None }, Origin::Expire);
        }
    }

    fn check_containers(&mut self) {
        if self.failed {
            return;
        }
        let now = wall_ms();
        let mut candidates = Vec::new();
        for p in self.tree.containers() {
            if let Some(n) = self.tree.get(p) {
                if n.num_children == 0 && n.stat.cversion > 0 {
                    candidates.push(p.clone());
                }
            }
        }
        for p in self.tree.ttl_nodes() {
            if let Some(n) = self.tree.get(p) {
                if let NodeKind::Ttl(ttl) = NodeKind::of(n.stat.ephemeral_owner) {
                    if n.num_children == 0 && now - n.stat.mtime > ttl {
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
            };
            let (txn_type, body) = self.prep.prep(&self.tree, ctx, &req);
            let header = TxnHeader { client_id: 0, cxid: 0, zxid, time: now, txn_type };
            self.submit(LoggedTxn { header, body, digest: None }, Origin::Internal);
        }
    }

    fn take_snapshot(&mut self, done: mpsc::UnboundedSender<Result<(), String>>) {
        self.snapshot_running = true;
        self.txns_since_snapshot = 0;
        self.snap_threshold = self.next_snap_threshold();
        let _ = self.log_tx.send(LogCmd::Roll);
        let zxid = self.tree.last_zxid;
        let sessions = self.sessions.all();
        // The view shares every node with the tree: taking it costs one
        // pointer copy per node, and the tree copies a node before changing
        // it while the view is alive. The snapshot is consistent at `zxid`.
        let view = self.tree.snapshot_view();
        let dir = self.cfg.data_dir.clone();
        info!(zxid = format_args!("{zxid:#x}"), nodes = view.len(), "taking a snapshot");
        tokio::task::spawn_blocking(move || {
            // Parents before children, as Apache's loader wants them.
            let mut order: Vec<(&std::sync::Arc<str>, &std::sync::Arc<crate::tree::Node>)> =
                view.iter().collect();
            order.sort_by_cached_key(|(p, _)| if &***p == "/" { 0 } else { p.matches('/').count() });
            let nodes = order.into_iter().map(|(p, n)| crate::persist::snapshot::SnapshotNode {
                path: p.to_string(),
                data: n.data.clone(),
                acl: n.acl.to_vec(),
                stat: n.stat,
            });
            let r = crate::persist::snapshot::write_snapshot(&dir, zxid, &sessions, nodes)
                .map(drop)
                .map_err(|e| e.to_string());
            drop(view);
            let _ = done.send(r);
        });
    }

    fn snapshot_stats(&self) -> crate::fourlw::Snapshot {
        crate::fourlw::Snapshot {
            zxid: self.tree.last_zxid,
            node_count: self.tree.node_count(),
            approximate_data_size: self.tree.approximate_data_size(),
            watch_count: self.watches.count(),
            data_watch_count: self.watches.data_count(),
            watched_paths: self.watches.path_count(),
            ephemerals: self.tree.ephemeral_sessions().map(|(_, s)| s.len()).sum(),
            sessions: self.sessions.len(),
            outstanding: self.in_flight.len(),
            stats: self.stats.clone(),
            connections: self
                .conns
                .iter()
                .map(|(id, c)| crate::fourlw::ConnInfo {
                    id: *id,
                    peer: c.peer,
                    session: c.session,
                    stats: c.stats.clone(),
                })
                .collect(),
            watches_by_conn: self.watches.by_connection(),
            watches_by_path: self.watches.by_path(),
            ephemerals_by_session: self
                .tree
                .ephemeral_sessions()
                .map(|(id, s)| (id, s.iter().cloned().collect()))
                .collect(),
            session_timeouts: self.sessions.all(),
        }
    }
}

/// Reads do not validate paths on the server (Apache looks them up and
/// answers NoNode); only a path that cannot be a key at all is refused.
fn valid(path: &str) -> Result<(), ErrorCode> {
    if path.is_empty() { Err(ErrorCode::NoNode) } else { Ok(()) }
}

fn build_write_response(opcode: OpCode, a: &Applied, multi_ops: &[OpCode]) -> Response {
    match opcode {
        OpCode::Create => Response::Create(CreateResponse { path: a.path.clone() }),
        OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            Response::Create2(Create2Response { path: a.path.clone(), stat: a.stat.unwrap_or_default() })
        }
        OpCode::SetData => Response::SetData(SetDataResponse { stat: a.stat.unwrap_or_default() }),
        OpCode::SetAcl => Response::SetAcl(SetAclResponse { stat: a.stat.unwrap_or_default() }),
        OpCode::Reconfig => {
            Response::GetData(GetDataResponse { data: None, stat: a.stat.unwrap_or_default() })
        }
        OpCode::Multi => {
            let failed = a.multi.iter().any(|s| !s.err.is_ok());
            let results = a
                .multi
                .iter()
                .zip(multi_ops.iter().copied().chain(std::iter::repeat(OpCode::Error)))
                .map(|(s, op)| {
                    if failed {
                        return MultiResult::Error { err: s.err };
                    }
                    match op {
                        // Apache turns a create2 inside a multi into a plain
                        // create (MultiOperationRecord rebuilds it with
                        // Op.create), so its result carries no Stat.
                        OpCode::Create | OpCode::Create2 => MultiResult::Create { path: s.path.clone() },
                        OpCode::CreateContainer | OpCode::CreateTtl => {
                            MultiResult::Create2 { path: s.path.clone(), stat: s.stat.unwrap_or_default() }
                        }
                        OpCode::Delete => MultiResult::Delete,
                        OpCode::SetData => MultiResult::SetData { stat: s.stat.unwrap_or_default() },
                        OpCode::Check => MultiResult::Check,
                        _ => MultiResult::Error { err: s.err },
                    }
                })
                .collect();
            Response::Multi(MultiResponse { results })
        }
        _ => Response::Empty,
    }
}
