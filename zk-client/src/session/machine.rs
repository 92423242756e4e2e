//! The client session as a state machine.
//!
//! No sockets, no clock, no global randomness: every input carries `now`,
//! the host order and the reconnect backoff come from a seeded generator,
//! and everything the outside world must do comes out as an [`Output`]
//! (taken with [`Machine::poll_output`]) or as bytes to write (taken with
//! [`Machine::poll_transmit`]). The driver in `driver.rs` is the only part
//! that touches sockets and timers; the tests at the end of this file run
//! sessions through connection losses, expiry, close and read-only
//! servers without any.
//!
//! ```text
//!             Connect out                      handle_connected
//!  (start) ----------------> connecting ---------------------------> connected
//!                              ^    | connect failed: next host           |
//!                              |    +--- (backoff after a full round)     |
//!                              +--------- lost / read timeout / ----------+
//!                                         moving to a read-write server
//!  terminal (Expired, AuthFailed, Closed): every later command is answered
//!  with the terminal error.
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};
use zk_proto::frame::split_frame;
use zk_proto::records::{
    AuthPacket, ConnectRequest, ConnectResponse, RemoveWatchesRequest, ReplyHeader, SetWatches, SetWatches2,
    WatcherEvent,
};
use zk_proto::{ErrorCode, EventType, KeeperState, OpCode, Record, WatcherType, xid};

use super::{Action, Command, Reply, ReplyTx, Req, SessionInfo, frame_of};
use crate::connect_string::Chroot;
use crate::error::{Error, Result};
use crate::state::SessionState;
use crate::watch::{WatchKind, WatchRegistry, WatchedEvent};

/// What the machine needs to know about the session it runs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) hosts: Vec<(String, u16)>,
    pub(crate) chroot: Chroot,
    pub(crate) session_timeout: Duration,
    /// How long one connect attempt (TCP, TLS, handshake, SASL) may take.
    pub(crate) connect_timeout: Duration,
    pub(crate) can_be_read_only: bool,
    pub(crate) max_frame: usize,
    /// An existing session to attach (id and password).
    pub(crate) resume: Option<(i64, Bytes)>,
    /// Seeds the host shuffle and the reconnect backoff.
    pub(crate) seed: u64,
}

/// What the driver must do.
#[derive(Debug)]
pub(crate) enum Output {
    /// Connect to `hosts[index]` after `delay`, send `request`, and report
    /// the answer with [`Machine::handle_connected`] (or the failure with
    /// [`Machine::handle_connect_failed`]) within `timeout`.
    Connect {
        index: usize,
        host: String,
        port: u16,
        request: ConnectRequest,
        delay: Duration,
        timeout: Duration,
    },
    /// Drop the connection, or the connect attempt under way, and anything
    /// buffered for it (including a read-write probe).
    Disconnect,
    /// Answer a caller.
    Reply(ReplyTx, Result<Reply>),
    /// Answer a `close()` caller: the session is over.
    Closed(oneshot::Sender<Result<()>>),
    /// The session's state changed.
    State(SessionState),
    /// The session is attached (id, password, timeout, server).
    Info(SessionInfo),
    /// Why the last connect attempt failed.
    ConnectFailed(String),
    /// Look for a read-write server among `hosts` (this one is read-only)
    /// and report with [`Machine::handle_probe`].
    ProbeReadWrite { hosts: Vec<(String, u16)> },
}

/// Why a connection ended.
enum End {
    Lost(String),
    Terminal,
}

struct Pending {
    xid: i32,
    action: Action,
    reply: Option<ReplyTx>,
}

/// One live connection.
struct Conn {
    /// Bytes not yet handed to the driver.
    wbuf: BytesMut,
    pending: VecDeque<Pending>,
    /// Auth replies come out of band (xid -4): their own queue.
    auth_pending: VecDeque<Option<ReplyTx>>,
    /// closeSession sent: when to give up waiting for its reply.
    closing: Option<Instant>,
    last_send: Instant,
    last_recv: Instant,
    read_timeout: Duration,
    ping_interval: Duration,
    /// Read-only server: when to look for a read-write one next.
    next_probe: Instant,
    probe_backoff: Duration,
    probing: bool,
}

/// The session state machine.
pub(crate) struct Machine {
    cfg: Settings,
    rng: StdRng,
    out: VecDeque<Output>,
    next_host: usize,
    preferred_host: Option<usize>,
    session_id: i64,
    password: Bytes,
    negotiated: Duration,
    read_only: bool,
    /// Whether a read-write server was ever reached. Until then the
    /// session is a read-only server's local one, which a read-write server
    /// does not know: as Apache's client, reconnect with session id 0 then.
    seen_rw: bool,
    last_zxid: i64,
    auths: Vec<AuthPacket>,
    watches: WatchRegistry,
    /// Requests that arrived while no connection was up.
    held: VecDeque<Req>,
    next_xid: i32,
    /// When the session last heard from a server.
    last_heard: Instant,
    ever_connected: bool,
    close_waiters: Vec<oneshot::Sender<Result<()>>>,
    terminal: Option<SessionState>,
    conn: Option<Conn>,
    /// The server of the connect attempt under way.
    attempt: Option<String>,
    /// Failed attempts since the last connection.
    failures: usize,
}

impl Machine {
    /// A session about to look for its first server (the first
    /// [`Output::Connect`] is already queued).
    pub(crate) fn new(mut cfg: Settings, now: Instant) -> Self {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        cfg.hosts.shuffle(&mut rng);
        let (session_id, password) = cfg.resume.clone().unwrap_or((0, Bytes::from_static(&[0; 16])));
        let resuming = cfg.resume.is_some();
        let mut m = Machine {
            cfg,
            rng,
            out: VecDeque::new(),
            next_host: 0,
            preferred_host: None,
            session_id,
            password,
            negotiated: Duration::ZERO,
            read_only: false,
            // A resumed session is a read-write server's.
            seen_rw: resuming,
            last_zxid: 0,
            auths: Vec::new(),
            watches: WatchRegistry::default(),
            held: VecDeque::new(),
            next_xid: 1,
            last_heard: now,
            ever_connected: false,
            close_waiters: Vec::new(),
            terminal: None,
            conn: None,
            attempt: None,
            failures: 0,
        };
        m.start_attempt(now);
        m
    }

    /// The next thing the driver must do.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Hands the bytes to write on the connection to `buf` (appended).
    pub(crate) fn poll_transmit(&mut self, now: Instant, buf: &mut BytesMut) {
        let Some(conn) = self.conn.as_mut() else { return };
        if conn.wbuf.is_empty() {
            return;
        }
        if buf.is_empty() {
            std::mem::swap(buf, &mut conn.wbuf);
        } else {
            buf.extend_from_slice(&conn.wbuf);
            conn.wbuf.clear();
        }
        conn.last_send = now;
    }

    /// When [`Machine::handle_timeout`] must run next, if ever.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        if self.terminal.is_some() {
            return None;
        }
        match &self.conn {
            Some(c) => {
                let mut at = c.last_recv + c.read_timeout;
                // (Bytes waiting to be handed over make a ping needless.)
                if c.wbuf.is_empty() {
                    at = at.min(c.last_send + c.ping_interval);
                }
                if let Some(closing) = c.closing {
                    at = at.min(closing);
                }
                if self.probes() && !c.probing {
                    at = at.min(c.next_probe);
                }
                Some(at)
            }
            None if self.attempt.is_some() => self.session_deadline(),
            None => None,
        }
    }

    /// Whether the driver should take new commands now (not while the
    /// session waits for its closeSession reply).
    pub(crate) fn accepts_commands(&self) -> bool {
        self.conn.as_ref().is_none_or(|c| c.closing.is_none())
    }

    pub(crate) fn is_terminal(&self) -> bool {
        self.terminal.is_some()
    }

    /// The session id and the password the server gave (0 before).
    #[cfg(test)]
    fn session(&self) -> (i64, &Bytes) {
        (self.session_id, &self.password)
    }

    /// A command from a handle.
    pub(crate) fn handle_command(&mut self, now: Instant, cmd: Command) {
        if self.terminal.is_some() {
            let err = self.terminal_error();
            match cmd {
                Command::Request(req) => {
                    if let Some(tx) = req.reply {
                        self.out.push_back(Output::Reply(tx, Err(err)));
                    }
                }
                Command::Close(tx) => self.out.push_back(Output::Closed(tx)),
                Command::RememberAuth(_) | Command::WatchDropped { .. } => {}
            }
            return;
        }
        match self.conn.take() {
            Some(mut conn) => {
                match cmd {
                    Command::Request(req) => self.enqueue(now, &mut conn, req),
                    Command::RememberAuth(a) => self.auths.push(a),
                    Command::WatchDropped { kind, server_path } => {
                        self.drop_watch(now, &mut conn, kind, server_path)
                    }
                    Command::Close(tx) => {
                        self.close_waiters.push(tx);
                        self.start_close(now, &mut conn);
                    }
                }
                self.conn = Some(conn);
            }
            None => match cmd {
                Command::Request(req) => self.held.push_back(req),
                Command::RememberAuth(a) => self.auths.push(a),
                // Not connected: the replay after reconnecting skips
                // dropped watches.
                Command::WatchDropped { .. } => {}
                Command::Close(tx) => {
                    self.close_waiters.push(tx);
                    self.terminate(SessionState::Closed);
                }
            },
        }
    }

    /// Every handle is gone: close the session so its ephemerals go now.
    pub(crate) fn handle_handles_gone(&mut self, now: Instant) {
        if self.terminal.is_some() {
            return;
        }
        match self.conn.take() {
            Some(mut conn) => {
                self.start_close(now, &mut conn);
                self.conn = Some(conn);
            }
            None => self.terminate(SessionState::Closed),
        }
    }

    /// The connect attempt reached a server, which answered `rsp`. Returns
    /// whether the driver should keep the connection.
    pub(crate) fn handle_connected(&mut self, now: Instant, rsp: &ConnectResponse) -> bool {
        let Some(server) = self.attempt.take() else { return false };
        if rsp.time_out <= 0 {
            info!("server reports the session expired");
            self.out.push_back(Output::Disconnect);
            self.terminate(SessionState::Expired);
            return false;
        }
        self.session_id = rsp.session_id;
        self.password = rsp.passwd.clone();
        self.negotiated = Duration::from_millis(u64::try_from(rsp.time_out).unwrap_or(1));
        self.read_only = rsp.read_only.unwrap_or(false);
        self.seen_rw |= !self.read_only;
        self.ever_connected = true;
        self.last_heard = now;
        self.failures = 0;
        self.out.push_back(Output::Info(SessionInfo {
            id: self.session_id,
            password: self.password.clone(),
            timeout: self.negotiated,
            server: Some(server),
        }));
        self.out.push_back(Output::State(if self.read_only {
            SessionState::ConnectedReadOnly
        } else {
            SessionState::Connected
        }));
        let read_timeout = self.negotiated * 2 / 3;
        let mut conn = Conn {
            wbuf: BytesMut::with_capacity(64 * 1024),
            pending: VecDeque::new(),
            auth_pending: VecDeque::new(),
            closing: None,
            last_send: now,
            last_recv: now,
            read_timeout,
            ping_interval: read_timeout / 2,
            next_probe: now + Duration::from_millis(100),
            probe_backoff: Duration::from_millis(100),
            probing: false,
        };
        self.write_setup(now, &mut conn);
        self.conn = Some(conn);
        true
    }

    /// The connect attempt failed; `refused` when the server refused the
    /// SASL credentials (which ends the session, as with Apache's client).
    pub(crate) fn handle_connect_failed(&mut self, now: Instant, why: String, refused: bool) {
        if self.attempt.take().is_none() {
            return;
        }
        debug!(%why, "connect attempt failed");
        if refused {
            info!(%why, "SASL authentication failed");
            self.terminate(SessionState::AuthFailed);
            return;
        }
        self.out.push_back(Output::ConnectFailed(why));
        self.failures += 1;
        // As Apache's client: what waited for this attempt fails.
        for req in self.held.drain(..) {
            if let Some(tx) = req.reply {
                self.out.push_back(Output::Reply(tx, Err(Error::ConnectionLoss)));
            }
        }
        self.start_attempt(now);
    }

    /// Bytes arrived on the connection (appended to `rbuf`): whole frames
    /// are taken out of it.
    pub(crate) fn handle_read(&mut self, now: Instant, rbuf: &mut BytesMut) {
        let Some(mut conn) = self.conn.take() else { return };
        conn.last_recv = now;
        loop {
            let frame = match split_frame(rbuf, self.cfg.max_frame) {
                Ok(Some(f)) => f.freeze(),
                Ok(None) => break,
                Err(e) => return self.end_conn(now, conn, End::Lost(format!("bad frame from server: {e}"))),
            };
            if let Err(end) = self.on_frame(frame, &mut conn) {
                return self.end_conn(now, conn, end);
            }
        }
        self.conn = Some(conn);
    }

    /// The connection broke (closed by the server, a read or write error).
    pub(crate) fn handle_lost(&mut self, now: Instant, why: String) {
        if let Some(conn) = self.conn.take() {
            self.end_conn(now, conn, End::Lost(why));
        }
    }

    /// Timers: the session deadline while no server is reached, the read
    /// timeout, the closeSession deadline, pings, read-write probes.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.terminal.is_some() {
            return;
        }
        let Some(mut conn) = self.conn.take() else {
            if self.attempt.is_some() && self.session_deadline().is_some_and(|d| now >= d) {
                info!("session timeout passed without reaching a server");
                self.terminate(SessionState::Expired);
            }
            return;
        };
        if now.saturating_duration_since(conn.last_recv) > conn.read_timeout {
            let why = format!("no answer from the server for {:?}", conn.read_timeout);
            return self.end_conn(now, conn, End::Lost(why));
        }
        if conn.closing.is_some_and(|at| now >= at) {
            info!("no reply to closeSession; closing anyway");
            self.conn = Some(conn);
            return self.terminate(SessionState::Closed);
        }
        if now.saturating_duration_since(conn.last_send) >= conn.ping_interval && conn.wbuf.is_empty() {
            conn.wbuf.extend_from_slice(&frame_of(xid::PING, OpCode::Ping, &()));
        }
        if self.probes() && !conn.probing && now >= conn.next_probe {
            conn.probing = true;
            self.out.push_back(Output::ProbeReadWrite { hosts: self.cfg.hosts.clone() });
        }
        self.conn = Some(conn);
    }

    /// A read-write probe ended: `Some(index)` of a read-write server.
    pub(crate) fn handle_probe(&mut self, now: Instant, found: Option<usize>) {
        let Some(mut conn) = self.conn.take() else { return };
        if !conn.probing {
            self.conn = Some(conn);
            return;
        }
        conn.probing = false;
        if let Some(i) = found.filter(|&i| i < self.cfg.hosts.len()) {
            info!(host = ?self.cfg.hosts[i], "found a read-write server; moving there");
            self.preferred_host = Some(i);
            return self.end_conn(now, conn, End::Lost("moving to a read-write server".into()));
        }
        conn.next_probe = now + conn.probe_backoff;
        conn.probe_backoff = (conn.probe_backoff * 2).min(Duration::from_secs(60));
        self.conn = Some(conn);
    }

    fn probes(&self) -> bool {
        self.read_only && self.cfg.hosts.len() > 1
    }

    fn terminal_error(&self) -> Error {
        match self.terminal {
            Some(SessionState::Expired) => Error::SessionExpired,
            Some(SessionState::AuthFailed) => Error::AuthFailed,
            _ => Error::ClientClosed,
        }
    }

    /// Ends the session: everything waiting fails with the terminal error,
    /// watchers learn the final state, the connection (or attempt) goes.
    fn terminate(&mut self, state: SessionState) {
        if self.terminal.is_some() {
            return;
        }
        self.terminal = Some(state);
        let err = self.terminal_error();
        for req in self.held.drain(..) {
            if let Some(tx) = req.reply {
                self.out.push_back(Output::Reply(tx, Err(err.clone())));
            }
        }
        self.watches.close_all(state.keeper_state());
        for tx in self.close_waiters.drain(..) {
            self.out.push_back(Output::Closed(tx));
        }
        self.out.push_back(Output::State(state));
        if self.attempt.take().is_some() {
            self.out.push_back(Output::Disconnect);
        }
        if let Some(conn) = self.conn.take() {
            self.drop_conn(conn, &err);
        }
    }

    /// Fails what a connection had in flight and tells the driver to drop it.
    fn drop_conn(&mut self, conn: Conn, err: &Error) {
        self.last_heard = conn.last_recv;
        for p in conn.pending {
            if let Some(tx) = p.reply {
                self.out.push_back(Output::Reply(tx, Err(err.clone())));
            }
        }
        for tx in conn.auth_pending.into_iter().flatten() {
            self.out.push_back(Output::Reply(tx, Err(err.clone())));
        }
        self.out.push_back(Output::Disconnect);
    }

    /// A connection ended: fail what was in flight, then look for another
    /// server unless the session is over.
    fn end_conn(&mut self, now: Instant, conn: Conn, end: End) {
        let err = match &end {
            End::Lost(why) => {
                warn!(%why, "connection lost");
                if conn.closing.is_some() {
                    // closeSession was sent: the session is over either way.
                    self.terminate(SessionState::Closed);
                    self.terminal_error()
                } else {
                    Error::ConnectionLoss
                }
            }
            End::Terminal => self.terminal_error(),
        };
        self.drop_conn(conn, &err);
        if self.terminal.is_none() {
            self.out.push_back(Output::State(SessionState::Disconnected));
            self.failures = 0;
            self.start_attempt(now);
        }
    }

    fn session_deadline(&self) -> Option<Instant> {
        self.ever_connected.then(|| self.last_heard + self.negotiated)
    }

    /// Queues the next connect attempt, or expires the session when its
    /// timeout passed without reaching a server.
    fn start_attempt(&mut self, now: Instant) {
        if self.terminal.is_some() {
            return;
        }
        if self.session_deadline().is_some_and(|d| now >= d) {
            info!("session timeout passed without reaching a server");
            return self.terminate(SessionState::Expired);
        }
        let hosts = self.cfg.hosts.len();
        if hosts == 0 {
            self.out.push_back(Output::ConnectFailed("no server to connect to".into()));
            return self.terminate(SessionState::Closed);
        }
        // A pause after each full round of hosts that all failed.
        let delay = if self.failures > 0 && self.failures % hosts == 0 {
            Duration::from_millis(self.rng.gen_range(50..1000))
        } else {
            Duration::ZERO
        };
        let index = match self.preferred_host.take() {
            Some(i) => i,
            None => {
                let i = self.next_host % hosts;
                self.next_host = self.next_host.wrapping_add(1);
                i
            }
        };
        let (host, port) = self.cfg.hosts[index].clone();
        self.attempt = Some(format!("{host}:{port}"));
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: self.last_zxid,
            time_out: i32::try_from(self.cfg.session_timeout.as_millis()).unwrap_or(i32::MAX),
            session_id: if self.seen_rw { self.session_id } else { 0 },
            passwd: if self.seen_rw { self.password.clone() } else { Bytes::from_static(&[0; 16]) },
            read_only: Some(self.cfg.can_be_read_only),
        };
        self.out.push_back(Output::Connect {
            index,
            host,
            port,
            request,
            delay,
            timeout: self.cfg.connect_timeout,
        });
    }

    fn take_xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid = if x == i32::MAX { 1 } else { x + 1 };
        x
    }

    /// Queues `req` on the live connection.
    fn enqueue(&mut self, now: Instant, conn: &mut Conn, mut req: Req) {
        if conn.closing.is_some() {
            if let Some(tx) = req.reply {
                self.out.push_back(Output::Reply(tx, Err(Error::ClientClosed)));
            }
            return;
        }
        let xid = match req.fixed_xid {
            Some(x) => x,
            None => self.take_xid(),
        };
        if req.frame.len() >= 8 {
            req.frame[4..8].copy_from_slice(&xid.to_be_bytes());
        }
        conn.wbuf.extend_from_slice(&req.frame);
        if xid == xid::AUTH {
            conn.auth_pending.push_back(req.reply);
            return;
        }
        if matches!(req.action, Action::Close) {
            // Wait for the reply as long as the session timeout, at least 1 s.
            conn.closing = Some(now + self.negotiated.max(Duration::from_secs(1)));
        }
        conn.pending.push_back(Pending { xid, action: req.action, reply: req.reply });
    }

    /// Removes the server watch a dropped one-shot watch held, unless this
    /// session still needs it (another live watch, or a request in flight
    /// that sets one: the server handles requests in order, so a removal
    /// sent after it would undo it).
    fn drop_watch(&mut self, now: Instant, conn: &mut Conn, kind: WatchKind, server_path: String) {
        if conn.closing.is_some() || self.watches.server_watch_needed(kind, &server_path) {
            return;
        }
        let data_side = |k: WatchKind| matches!(k, WatchKind::Data | WatchKind::Exist);
        let same = |k: WatchKind| data_side(k) == data_side(kind) || matches!(k, WatchKind::Persistent);
        let setting = |a: &Action| matches!(a, Action::Watch(r) if r.path == server_path && same(r.kind));
        if conn.pending.iter().any(|p| setting(&p.action)) || self.held.iter().any(|r| setting(&r.action)) {
            return;
        }
        let watcher_type = if data_side(kind) { WatcherType::Data } else { WatcherType::Children };
        let body = RemoveWatchesRequest { path: server_path, watcher_type: watcher_type.code() };
        let frame = frame_of(0, OpCode::RemoveWatches, &body);
        self.enqueue(now, conn, Req { frame, fixed_xid: None, action: Action::None, reply: None });
    }

    fn start_close(&mut self, now: Instant, conn: &mut Conn) {
        if conn.closing.is_some() {
            return;
        }
        let frame = frame_of(0, OpCode::CloseSession, &());
        self.enqueue(now, conn, Req { frame, fixed_xid: None, action: Action::Close, reply: None });
    }

    /// What a new connection sends first: auth, SetWatches, then the
    /// requests that waited.
    fn write_setup(&mut self, now: Instant, conn: &mut Conn) {
        for a in &self.auths {
            conn.wbuf.extend_from_slice(&frame_of(xid::AUTH, OpCode::Auth, a));
            conn.auth_pending.push_back(None);
        }
        let paths = self.watches.paths_to_replay();
        if !paths.is_empty() {
            // Batches of at most SET_WATCHES_MAX_LENGTH path bytes, as Apache does.
            let persistent = !paths.persistent.is_empty() || !paths.recursive.is_empty();
            let lists = [paths.data, paths.exist, paths.child, paths.persistent, paths.recursive];
            let mut batch: [Vec<String>; 5] = Default::default();
            let mut size = 0;
            let flush = |batch: &mut [Vec<String>; 5], wbuf: &mut BytesMut, zxid: i64| {
                let [d, e, c, p, r] = std::mem::take(batch);
                let f = if persistent {
                    let body = SetWatches2 {
                        relative_zxid: zxid,
                        data_watches: d,
                        exist_watches: e,
                        child_watches: c,
                        persistent_watches: p,
                        persistent_recursive_watches: r,
                    };
                    frame_of(xid::SET_WATCHES, OpCode::SetWatches2, &body)
                } else {
                    let body = SetWatches {
                        relative_zxid: zxid,
                        data_watches: d,
                        exist_watches: e,
                        child_watches: c,
                    };
                    frame_of(xid::SET_WATCHES, OpCode::SetWatches, &body)
                };
                wbuf.extend_from_slice(&f);
            };
            for (kind, list) in lists.into_iter().enumerate() {
                for path in list {
                    size += path.len();
                    batch[kind].push(path);
                    if size >= xid::SET_WATCHES_MAX_LENGTH {
                        flush(&mut batch, &mut conn.wbuf, self.last_zxid);
                        size = 0;
                    }
                }
            }
            if batch.iter().any(|b| !b.is_empty()) {
                flush(&mut batch, &mut conn.wbuf, self.last_zxid);
            }
        }
        while let Some(req) = self.held.pop_front() {
            self.enqueue(now, conn, req);
        }
    }

    fn on_frame(&mut self, mut frame: Bytes, conn: &mut Conn) -> std::result::Result<(), End> {
        let header = ReplyHeader::decode(&mut frame)
            .map_err(|e| End::Lost(format!("bad reply header from server: {e}")))?;
        match header.xid {
            xid::NOTIFICATION => {
                let ev = WatcherEvent::decode(&mut frame)
                    .map_err(|e| End::Lost(format!("bad watch event from server: {e}")))?;
                let event = WatchedEvent {
                    event_type: EventType::from(ev.event_type),
                    state: KeeperState::from(ev.state),
                    path: self.cfg.chroot.to_client(&ev.path),
                    zxid: header.zxid,
                };
                self.watches.fire(&ev.path, &event);
                Ok(())
            }
            xid::PING => Ok(()),
            xid::SET_WATCHES => {
                if !header.err.is_ok() {
                    warn!(err = %header.err, "server refused SetWatches");
                }
                Ok(())
            }
            xid::AUTH => {
                let waiter = conn.auth_pending.pop_front().flatten();
                if header.err == ErrorCode::AuthFailed {
                    if let Some(tx) = waiter {
                        self.out.push_back(Output::Reply(tx, Err(Error::AuthFailed)));
                    }
                    self.terminate(SessionState::AuthFailed);
                    return Err(End::Terminal);
                }
                if let Some(tx) = waiter {
                    self.out.push_back(Output::Reply(tx, Ok((header, frame))));
                }
                Ok(())
            }
            x => {
                let Some(p) = conn.pending.pop_front() else {
                    return Err(End::Lost(format!("reply with xid {x} but nothing pending")));
                };
                if p.xid != x {
                    if let Some(tx) = p.reply {
                        self.out.push_back(Output::Reply(tx, Err(Error::ConnectionLoss)));
                    }
                    return Err(End::Lost(format!("xid out of order: expected {} got {x}", p.xid)));
                }
                if header.zxid > 0 {
                    self.last_zxid = header.zxid;
                }
                let ok = header.err.is_ok();
                match p.action {
                    Action::None => {}
                    Action::Watch(reg) => {
                        self.watches.register(reg, ok, header.err == ErrorCode::NoNode);
                    }
                    Action::RemoveWatches { server_path, client_path, watcher_type } => {
                        if ok {
                            self.watches.remove(&server_path, watcher_type, &client_path);
                        }
                    }
                    Action::Close => {
                        if let Some(tx) = p.reply {
                            self.out.push_back(Output::Reply(tx, Ok((header, frame))));
                        }
                        self.terminate(SessionState::Closed);
                        return Err(End::Terminal);
                    }
                }
                if let Some(tx) = p.reply {
                    self.out.push_back(Output::Reply(tx, Ok((header, frame))));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use zk_proto::records::{GetDataRequest, RequestHeader};

    const SECOND: Duration = Duration::from_secs(1);

    fn settings(hosts: usize) -> Settings {
        Settings {
            hosts: (0..hosts).map(|i| (format!("h{i}"), 2181)).collect(),
            chroot: Chroot::new(None),
            session_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            can_be_read_only: false,
            max_frame: zk_proto::frame::DEFAULT_MAX_FRAME,
            resume: None,
            seed: 7,
        }
    }

    fn drain(m: &mut Machine) -> Vec<Output> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    /// The connect request the machine asked for, and the host's index.
    fn connect_of(outs: &[Output]) -> Option<(usize, ConnectRequest, Duration)> {
        outs.iter().find_map(|o| match o {
            Output::Connect { index, request, delay, .. } => Some((*index, request.clone(), *delay)),
            _ => None,
        })
    }

    fn states(outs: &[Output]) -> Vec<SessionState> {
        outs.iter()
            .filter_map(|o| match o {
                Output::State(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    fn response(timeout_ms: i32, session_id: i64, read_only: bool) -> ConnectResponse {
        ConnectResponse {
            protocol_version: 0,
            time_out: timeout_ms,
            session_id,
            passwd: Bytes::from_static(b"0123456789abcdef"),
            read_only: Some(read_only),
        }
    }

    /// A machine attached to its first server (session 0x42, 30 s), outputs drained.
    fn connected(hosts: usize, now: Instant) -> Machine {
        let mut m = Machine::new(settings(hosts), now);
        drain(&mut m);
        assert!(m.handle_connected(now, &response(30_000, 0x42, false)));
        drain(&mut m);
        m
    }

    fn get(m: &mut Machine, now: Instant, path: &str) -> oneshot::Receiver<Result<Reply>> {
        let (tx, rx) = oneshot::channel();
        let frame = frame_of(0, OpCode::GetData, &GetDataRequest { path: path.into(), watch: false });
        m.handle_command(
            now,
            Command::Request(Req { frame, fixed_xid: None, action: Action::None, reply: Some(tx) }),
        );
        rx
    }

    /// The (xid, opcode) of every frame the machine hands over.
    fn written(m: &mut Machine, now: Instant) -> Vec<(i32, OpCode)> {
        let mut buf = BytesMut::new();
        m.poll_transmit(now, &mut buf);
        let mut frames = Vec::new();
        while let Some(f) = split_frame(&mut buf, 1 << 20).unwrap() {
            let h = RequestHeader::decode(&mut f.freeze()).unwrap();
            frames.push((h.xid, h.opcode));
        }
        frames
    }

    fn reply(xid: i32, zxid: i64, err: ErrorCode, body: &[u8]) -> BytesMut {
        let mut f = BytesMut::new();
        f.put_i32(0);
        ReplyHeader { xid, zxid, err }.encode(&mut f);
        f.put_slice(body);
        let len = (f.len() - 4) as i32;
        f[..4].copy_from_slice(&len.to_be_bytes());
        f
    }

    fn answered(outs: Vec<Output>) -> usize {
        let mut n = 0;
        for o in outs {
            if let Output::Reply(tx, res) = o {
                let _ = tx.send(res);
                n += 1;
            }
        }
        n
    }

    #[test]
    fn requests_get_xids_in_order_and_replies_match_them() {
        let t0 = Instant::now();
        let mut m = connected(1, t0);
        let mut a = get(&mut m, t0, "/a");
        let mut b = get(&mut m, t0, "/b");
        assert_eq!(written(&mut m, t0), vec![(1, OpCode::GetData), (2, OpCode::GetData)]);
        let mut rbuf = reply(1, 10, ErrorCode::Ok, b"A");
        // Half of the second reply: nothing for it yet.
        let second = reply(2, 11, ErrorCode::NoNode, b"");
        rbuf.extend_from_slice(&second[..6]);
        m.handle_read(t0, &mut rbuf);
        assert_eq!(answered(drain(&mut m)), 1);
        let (h, body) = a.try_recv().unwrap().unwrap();
        assert_eq!((h.xid, h.zxid, &body[..]), (1, 10, &b"A"[..]));
        assert!(b.try_recv().is_err());
        rbuf.extend_from_slice(&second[6..]);
        m.handle_read(t0, &mut rbuf);
        assert_eq!(answered(drain(&mut m)), 1);
        assert_eq!(b.try_recv().unwrap().unwrap().0.err, ErrorCode::NoNode);
        // The last zxid seen goes into the next connect request.
        m.handle_lost(t0, "test".into());
        let (_, req, _) = connect_of(&drain(&mut m)).unwrap();
        assert_eq!(req.last_zxid_seen, 11);
        assert_eq!(req.session_id, 0x42);
    }

    #[test]
    fn an_out_of_order_reply_drops_the_connection_and_fails_what_was_in_flight() {
        let t0 = Instant::now();
        let mut m = connected(2, t0);
        let mut a = get(&mut m, t0, "/a");
        let mut b = get(&mut m, t0, "/b");
        written(&mut m, t0);
        m.handle_read(t0, &mut reply(2, 1, ErrorCode::Ok, b""));
        let outs = drain(&mut m);
        assert!(outs.iter().any(|o| matches!(o, Output::Disconnect)));
        assert_eq!(states(&outs), vec![SessionState::Disconnected]);
        assert!(connect_of(&outs).is_some(), "looks for another server");
        answered(outs);
        assert!(matches!(a.try_recv().unwrap(), Err(Error::ConnectionLoss)));
        assert!(matches!(b.try_recv().unwrap(), Err(Error::ConnectionLoss)));
    }

    #[test]
    fn pings_when_idle_and_drops_a_silent_server() {
        let t0 = Instant::now();
        let mut m = connected(1, t0);
        // 30 s session: read timeout 20 s, ping every 10 s.
        let at = m.next_timeout().unwrap();
        assert_eq!(at, t0 + 10 * SECOND);
        m.handle_timeout(t0 + 9 * SECOND);
        assert!(written(&mut m, t0 + 9 * SECOND).is_empty());
        m.handle_timeout(at);
        assert_eq!(written(&mut m, at), vec![(xid::PING, OpCode::Ping)]);
        // The server answers the ping: the read timeout moves.
        m.handle_read(at, &mut reply(xid::PING, 0, ErrorCode::Ok, b""));
        m.handle_timeout(t0 + 21 * SECOND);
        assert!(drain(&mut m).is_empty());
        // Then silence past the read timeout.
        m.handle_timeout(at + 21 * SECOND);
        let outs = drain(&mut m);
        assert!(outs.iter().any(|o| matches!(o, Output::Disconnect)));
        assert_eq!(states(&outs), vec![SessionState::Disconnected]);
    }

    #[test]
    fn reconnect_replays_auth_and_watches_then_the_held_requests() {
        let t0 = Instant::now();
        let mut m = connected(2, t0);
        let auth = AuthPacket { auth_type: 0, scheme: "digest".into(), auth: Bytes::from_static(b"u:p") };
        m.handle_command(t0, Command::RememberAuth(auth));
        let (reg, _watcher) = crate::watch::WatchRegistration::oneshot(WatchKind::Data, "/w".into());
        let frame = frame_of(0, OpCode::GetData, &GetDataRequest { path: "/w".into(), watch: true });
        m.handle_command(
            t0,
            Command::Request(Req { frame, fixed_xid: None, action: Action::Watch(reg), reply: None }),
        );
        written(&mut m, t0);
        m.handle_read(t0, &mut reply(1, 5, ErrorCode::Ok, b""));
        m.handle_lost(t0, "reset".into());
        let outs = drain(&mut m);
        let (index, req, delay) = connect_of(&outs).unwrap();
        assert_eq!(
            (req.session_id, &req.passwd[..], delay),
            (0x42, &b"0123456789abcdef"[..], Duration::ZERO)
        );
        // A request made while disconnected waits for the next connection.
        let mut held = get(&mut m, t0, "/held");
        assert!(written(&mut m, t0).is_empty());
        assert!(m.handle_connected(t0 + SECOND, &response(30_000, 0x42, false)));
        let outs = drain(&mut m);
        assert_eq!(states(&outs), vec![SessionState::Connected]);
        let server = format!("{}:2181", m.cfg.hosts[index].0);
        assert!(outs.iter().any(|o| matches!(o, Output::Info(i) if i.id == 0x42
            && i.server.as_deref() == Some(&server[..]))));
        assert_eq!(
            written(&mut m, t0 + SECOND),
            vec![(xid::AUTH, OpCode::Auth), (xid::SET_WATCHES, OpCode::SetWatches), (2, OpCode::GetData)]
        );
        m.handle_read(t0 + SECOND, &mut reply(2, 6, ErrorCode::Ok, b"x"));
        answered(drain(&mut m));
        assert!(held.try_recv().unwrap().is_ok());
    }

    #[test]
    fn tries_every_host_then_backs_off_then_expires_after_the_session_timeout() {
        let t0 = Instant::now();
        let mut m = connected(3, t0);
        m.handle_lost(t0, "reset".into());
        let mut outs = drain(&mut m);
        let mut seen = Vec::new();
        let mut now = t0;
        for round in 0..2 {
            for _ in 0..3 {
                let (index, _, delay) = connect_of(&outs).unwrap();
                seen.push(index);
                if round == 1 && seen.len() == 4 {
                    assert!(delay >= Duration::from_millis(50), "a pause after a full round: {delay:?}");
                }
                now += SECOND;
                m.handle_connect_failed(now, "refused".into(), false);
                outs = drain(&mut m);
                assert!(outs.iter().any(|o| matches!(o, Output::ConnectFailed(w) if w == "refused")));
            }
        }
        let mut first_round = seen[..3].to_vec();
        first_round.sort();
        assert_eq!(first_round, vec![0, 1, 2], "each host once per round");
        assert_eq!(seen[..3], seen[3..], "same order every round");
        // An attempt hangs past the session deadline: the session expires.
        let deadline = m.next_timeout().unwrap();
        assert_eq!(deadline, t0 + 30 * SECOND);
        let mut held = get(&mut m, now, "/x");
        m.handle_timeout(deadline);
        let outs = drain(&mut m);
        assert_eq!(states(&outs), vec![SessionState::Expired]);
        assert!(outs.iter().any(|o| matches!(o, Output::Disconnect)));
        answered(outs);
        assert!(matches!(held.try_recv().unwrap(), Err(Error::SessionExpired)));
        // Later calls fail at once with the same error.
        let mut late = get(&mut m, deadline, "/y");
        answered(drain(&mut m));
        assert!(matches!(late.try_recv().unwrap(), Err(Error::SessionExpired)));
        assert_eq!(m.next_timeout(), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_host_order() {
        let t0 = Instant::now();
        let order = |seed| {
            let mut m = Machine::new(Settings { seed, ..settings(5) }, t0);
            let mut v = Vec::new();
            for _ in 0..5 {
                let (i, _, _) = connect_of(&drain(&mut m)).unwrap();
                v.push(m.cfg.hosts[i].0.clone());
                m.handle_connect_failed(t0, "no".into(), false);
            }
            v
        };
        assert_eq!(order(1), order(1));
        assert!((0..20).any(|s| order(s) != order(1)), "the seed shuffles the hosts");
    }

    #[test]
    fn a_server_that_says_expired_ends_the_session() {
        let t0 = Instant::now();
        let mut m =
            Machine::new(Settings { resume: Some((0x99, Bytes::from_static(&[1; 16]))), ..settings(1) }, t0);
        let (_, req, _) = connect_of(&drain(&mut m)).unwrap();
        assert_eq!(req.session_id, 0x99, "a resumed session attaches with its id");
        let mut held = get(&mut m, t0, "/a");
        assert!(!m.handle_connected(t0, &response(0, 0, false)));
        let outs = drain(&mut m);
        assert_eq!(states(&outs), vec![SessionState::Expired]);
        answered(outs);
        assert!(matches!(held.try_recv().unwrap(), Err(Error::SessionExpired)));
        assert!(m.is_terminal());
    }

    #[test]
    fn close_sends_close_session_and_ends_with_its_reply_or_its_deadline() {
        for answered_by_server in [true, false] {
            let t0 = Instant::now();
            let mut m = connected(1, t0);
            let (tx, mut closed) = oneshot::channel();
            m.handle_command(t0, Command::Close(tx));
            assert!(!m.accepts_commands());
            assert_eq!(written(&mut m, t0), vec![(1, OpCode::CloseSession)]);
            if answered_by_server {
                m.handle_read(t0, &mut reply(1, 9, ErrorCode::Ok, b""));
            } else {
                // 30 s session: the reply is awaited that long, while the
                // server answers pings.
                assert_eq!(m.next_timeout(), Some(t0 + 10 * SECOND), "still pings first");
                m.handle_timeout(t0 + 10 * SECOND);
                assert_eq!(written(&mut m, t0 + 10 * SECOND), vec![(xid::PING, OpCode::Ping)]);
                m.handle_read(t0 + 15 * SECOND, &mut reply(xid::PING, 0, ErrorCode::Ok, b""));
                m.handle_timeout(t0 + 29 * SECOND);
                assert!(!m.is_terminal());
                assert_eq!(written(&mut m, t0 + 29 * SECOND), vec![(xid::PING, OpCode::Ping)]);
                assert_eq!(m.next_timeout(), Some(t0 + 30 * SECOND));
                m.handle_timeout(t0 + 30 * SECOND);
            }
            let outs = drain(&mut m);
            assert_eq!(states(&outs), vec![SessionState::Closed]);
            assert!(outs.iter().any(|o| matches!(o, Output::Disconnect)));
            for o in outs {
                if let Output::Closed(tx) = o {
                    let _ = tx.send(Ok(()));
                }
            }
            assert!(closed.try_recv().unwrap().is_ok());
            assert!(m.is_terminal() && m.accepts_commands());
        }
    }

    #[test]
    fn handles_gone_closes_the_session() {
        let t0 = Instant::now();
        let mut m = connected(1, t0);
        m.handle_handles_gone(t0);
        assert_eq!(written(&mut m, t0), vec![(1, OpCode::CloseSession)]);
        // Not connected: it just ends.
        let mut m = Machine::new(settings(1), t0);
        drain(&mut m);
        m.handle_handles_gone(t0);
        assert_eq!(states(&drain(&mut m)), vec![SessionState::Closed]);
    }

    #[test]
    fn auth_failure_ends_the_session() {
        let t0 = Instant::now();
        let mut m = connected(1, t0);
        let mut pending = get(&mut m, t0, "/a");
        let (tx, mut auth) = oneshot::channel();
        let body = AuthPacket { auth_type: 0, scheme: "digest".into(), auth: Bytes::from_static(b"u:bad") };
        let frame = frame_of(xid::AUTH, OpCode::Auth, &body);
        m.handle_command(
            t0,
            Command::Request(Req {
                frame,
                fixed_xid: Some(xid::AUTH),
                action: Action::None,
                reply: Some(tx),
            }),
        );
        assert_eq!(written(&mut m, t0), vec![(1, OpCode::GetData), (xid::AUTH, OpCode::Auth)]);
        m.handle_read(t0, &mut reply(xid::AUTH, 0, ErrorCode::AuthFailed, b""));
        let outs = drain(&mut m);
        assert_eq!(states(&outs), vec![SessionState::AuthFailed]);
        answered(outs);
        assert!(matches!(auth.try_recv().unwrap(), Err(Error::AuthFailed)));
        assert!(matches!(pending.try_recv().unwrap(), Err(Error::AuthFailed)));
    }

    #[test]
    fn sasl_refusal_ends_the_session_and_other_failures_do_not() {
        let t0 = Instant::now();
        let mut m = Machine::new(settings(2), t0);
        drain(&mut m);
        m.handle_connect_failed(t0, "timed out".into(), false);
        assert!(connect_of(&drain(&mut m)).is_some());
        m.handle_connect_failed(t0, "bad password".into(), true);
        assert_eq!(states(&drain(&mut m)), vec![SessionState::AuthFailed]);
    }

    #[test]
    fn a_read_only_session_probes_and_moves_to_a_read_write_server() {
        let t0 = Instant::now();
        let mut m = Machine::new(Settings { can_be_read_only: true, ..settings(3) }, t0);
        let (first, req, _) = connect_of(&drain(&mut m)).unwrap();
        assert_eq!(req.read_only, Some(true));
        assert!(m.handle_connected(t0, &response(30_000, 0x7, true)));
        assert_eq!(states(&drain(&mut m)), vec![SessionState::ConnectedReadOnly]);
        let at = m.next_timeout().unwrap();
        assert_eq!(at, t0 + Duration::from_millis(100));
        m.handle_timeout(at);
        assert!(
            drain(&mut m).iter().any(|o| matches!(o, Output::ProbeReadWrite { hosts } if hosts.len() == 3))
        );
        // Nothing found: try again later, less often.
        m.handle_probe(at, None);
        assert_eq!(m.next_timeout(), Some(at + Duration::from_millis(100)));
        m.handle_timeout(at + Duration::from_millis(100));
        drain(&mut m);
        let rw = (first + 1) % 3;
        m.handle_probe(at + Duration::from_millis(100), Some(rw));
        let outs = drain(&mut m);
        assert_eq!(states(&outs), vec![SessionState::Disconnected]);
        let (index, req, _) = connect_of(&outs).unwrap();
        assert_eq!(index, rw, "goes to the read-write server found");
        // A read-only server's session is local: a read-write server gets id 0.
        assert_eq!(req.session_id, 0);
    }

    #[test]
    fn notifications_fire_watches_and_bad_frames_drop_the_connection() {
        let t0 = Instant::now();
        let mut m = connected(1, t0);
        let (reg, mut watcher) = crate::watch::WatchRegistration::oneshot(WatchKind::Data, "/w".into());
        let frame = frame_of(0, OpCode::GetData, &GetDataRequest { path: "/w".into(), watch: true });
        m.handle_command(
            t0,
            Command::Request(Req { frame, fixed_xid: None, action: Action::Watch(reg), reply: None }),
        );
        m.handle_read(t0, &mut reply(1, 5, ErrorCode::Ok, b""));
        let mut ev = BytesMut::new();
        WatcherEvent { event_type: 3, state: 3, path: "/w".into() }.encode(&mut ev);
        m.handle_read(t0, &mut reply(xid::NOTIFICATION, 6, ErrorCode::Ok, &ev));
        let got = futures::executor::block_on(&mut watcher);
        assert_eq!((got.event_type, got.path.as_str()), (EventType::NodeDataChanged, "/w"));
        // A frame longer than the limit.
        let mut bad = BytesMut::new();
        bad.put_i32(i32::MAX);
        m.handle_read(t0, &mut bad);
        let outs = drain(&mut m);
        assert_eq!(states(&outs), vec![SessionState::Disconnected]);
        assert_eq!(m.session().0, 0x42);
    }
}
