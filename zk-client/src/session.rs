//! The session task: the one place that owns the socket.
//!
//! Every [`crate::Client`] clone sends [`Command`]s over one channel to this
//! task. The task writes requests back to back (pipelining), gives each an
//! xid, and matches replies to callers in order. It pings, notices a lost
//! connection, re-attaches the session to another server (auth, then
//! SetWatches, then the requests that waited), and declares the session
//! expired when the server says so or when the session timeout passes
//! without reaching any server.
//!
//! Replies are not decoded here: the caller gets the header and the raw
//! body and decodes it on its own task, which keeps this loop short.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::transport::{Stream, Transport};
use bytes::{BufMut, Bytes, BytesMut};
use rand::Rng;
use rand::seq::SliceRandom;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};
use zk_proto::frame::{decode_frame_len, split_frame};
use zk_proto::records::{
    AuthPacket, ConnectRequest, ConnectResponse, RemoveWatchesRequest, ReplyHeader, RequestHeader,
    SetWatches, SetWatches2, WatcherEvent,
};
use zk_proto::{ErrorCode, EventType, KeeperState, OpCode, Record, WatcherType, xid};

use crate::connect_string::Chroot;
use crate::error::{Error, Result};
use crate::state::SessionState;
use crate::watch::{WatchKind, WatchRegistration, WatchRegistry, WatchedEvent};

/// A reply as the session task hands it over: header and raw body.
pub(crate) type Reply = (ReplyHeader, Bytes);
pub(crate) type ReplyTx = oneshot::Sender<Result<Reply>>;

/// What a request does to the watch registry when its reply arrives.
#[derive(Debug)]
pub(crate) enum Action {
    None,
    /// Register a watch (if the reply allows it).
    Watch(WatchRegistration),
    /// Remove local watches once the server removed its own.
    RemoveWatches {
        server_path: String,
        client_path: String,
        watcher_type: WatcherType,
    },
    /// closeSession: the session ends with the reply.
    Close,
}

/// One request from a client handle.
#[derive(Debug)]
pub(crate) struct Req {
    /// The whole frame: length, xid (patched here), type, body.
    pub(crate) frame: BytesMut,
    /// A reserved xid (auth) instead of the next counter value.
    pub(crate) fixed_xid: Option<i32>,
    pub(crate) action: Action,
    pub(crate) reply: Option<ReplyTx>,
}

/// Messages from the handles to the session task.
#[derive(Debug)]
pub(crate) enum Command {
    Request(Req),
    /// Register auth info to replay on reconnects (sent with the request).
    RememberAuth(AuthPacket),
    Close(oneshot::Sender<Result<()>>),
    /// A one-shot watch was dropped before it fired.
    WatchDropped {
        kind: WatchKind,
        server_path: String,
    },
}

/// Session facts the handles can read.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionInfo {
    pub(crate) id: i64,
    pub(crate) password: Bytes,
    pub(crate) timeout: Duration,
    /// `host:port` of the server the session is attached to.
    pub(crate) server: Option<String>,
}

/// State shared between the handles and the task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: watch::Sender<SessionState>,
    listeners: Mutex<Vec<mpsc::UnboundedSender<SessionState>>>,
    pub(crate) info: Mutex<SessionInfo>,
    /// Why the last connect attempt failed (for the error of a first
    /// connect that times out).
    pub(crate) last_failure: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            state: watch::Sender::new(SessionState::Connecting),
            listeners: Mutex::new(Vec::new()),
            info: Mutex::new(SessionInfo::default()),
            last_failure: Mutex::new(None),
        }
    }

    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<SessionState> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut l) = self.listeners.lock() {
            l.push(tx);
        }
        rx
    }

    fn set_state(&self, s: SessionState) {
        // The listeners' lock is held while the current state changes, so a
        // subscriber sees either the old state and this change, or only the
        // new state: never a change it did not live through.
        let Ok(mut listeners) = self.listeners.lock() else { return };
        let changed = self.state.send_if_modified(|cur| {
            let changed = *cur != s;
            *cur = s;
            changed
        });
        if changed {
            info!(state = ?s, "session state");
            listeners.retain(|tx| tx.send(s).is_ok());
        }
    }

    fn update_info(&self, f: impl FnOnce(&mut SessionInfo)) {
        if let Ok(mut i) = self.info.lock() {
            f(&mut i);
        }
    }
}

/// Settings of the session task.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) hosts: Vec<(String, u16)>,
    pub(crate) chroot: Chroot,
    pub(crate) session_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) can_be_read_only: bool,
    pub(crate) max_frame: usize,
    /// An existing session to attach (id and password).
    pub(crate) resume: Option<(i64, Bytes)>,
    /// Plain TCP or TLS.
    pub(crate) transport: crate::transport::Transport,
    /// SASL DIGEST-MD5 user and password, authenticated on every
    /// connection before anything else is sent.
    pub(crate) sasl: Option<(String, String)>,
}

struct Pending {
    xid: i32,
    action: Action,
    reply: Option<ReplyTx>,
}

/// One live connection's queues.
struct Conn {
    wbuf: BytesMut,
    pending: VecDeque<Pending>,
    auth_pending: VecDeque<Option<ReplyTx>>,
    closing: Option<Instant>,
}

enum ServeEnd {
    Lost(String),
    Terminal,
}

pub(crate) struct Driver {
    rx: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    cfg: Config,
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
    held: VecDeque<Req>,
    next_xid: i32,
    last_heard: Instant,
    ever_connected: bool,
    close_waiters: Vec<oneshot::Sender<Result<()>>>,
    terminal: Option<SessionState>,
}

impl Driver {
    pub(crate) fn new(mut cfg: Config, rx: mpsc::UnboundedReceiver<Command>, shared: Arc<Shared>) -> Self {
        cfg.hosts.shuffle(&mut rand::thread_rng());
        let (session_id, password) = cfg.resume.clone().unwrap_or((0, Bytes::from_static(&[0; 16])));
        let resuming = cfg.resume.is_some();
        Driver {
            rx,
            shared,
            cfg,
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
            last_heard: Instant::now(),
            ever_connected: false,
            close_waiters: Vec::new(),
            terminal: None,
        }
    }

    /// Runs the session until it ends and every handle is gone.
    pub(crate) async fn run(mut self) {
        while self.terminal.is_none() {
            let Some((stream, rbuf)) = self.connect_phase().await else { break };
            let span = tracing::info_span!("session", id = format_args!("{:#x}", self.session_id));
            let _enter = span.enter();
            match self.serve(stream, rbuf).await {
                ServeEnd::Terminal => break,
                ServeEnd::Lost(why) => {
                    warn!(%why, "connection lost");
                    if self.terminal.is_none() {
                        self.shared.set_state(SessionState::Disconnected);
                    }
                }
            }
        }
        // Terminal: answer whatever still arrives until every handle is gone.
        let err = self.terminal_error();
        while let Some(cmd) = self.rx.recv().await {
            match cmd {
                Command::Request(req) => {
                    if let Some(tx) = req.reply {
                        let _ = tx.send(Err(err.clone()));
                    }
                }
                Command::RememberAuth(_) | Command::WatchDropped { .. } => {}
                Command::Close(tx) => {
                    let _ = tx.send(Ok(()));
                }
            }
        }
    }

    fn terminal_error(&self) -> Error {
        match self.terminal {
            Some(SessionState::Expired) => Error::SessionExpired,
            Some(SessionState::AuthFailed) => Error::AuthFailed,
            _ => Error::ClientClosed,
        }
    }

    fn terminate(&mut self, state: SessionState) {
        if self.terminal.is_some() {
            return;
        }
        self.terminal = Some(state);
        let err = self.terminal_error();
        for req in self.held.drain(..) {
            if let Some(tx) = req.reply {
                let _ = tx.send(Err(err.clone()));
            }
        }
        self.watches.close_all(state.keeper_state());
        for tx in self.close_waiters.drain(..) {
            let _ = tx.send(Ok(()));
        }
        self.shared.set_state(state);
    }

    fn session_deadline(&self) -> Option<Instant> {
        self.ever_connected.then(|| self.last_heard + self.negotiated)
    }

    fn next_addr(&mut self) -> (String, u16) {
        let i = match self.preferred_host.take() {
            Some(i) => i,
            None => {
                let i = self.next_host % self.cfg.hosts.len();
                self.next_host = self.next_host.wrapping_add(1);
                i
            }
        };
        self.cfg.hosts[i].clone()
    }

    fn connect_request(&self) -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: self.last_zxid,
            time_out: i32::try_from(self.cfg.session_timeout.as_millis()).unwrap_or(i32::MAX),
            session_id: if self.seen_rw { self.session_id } else { 0 },
            passwd: if self.seen_rw { self.password.clone() } else { Bytes::from_static(&[0; 16]) },
            read_only: Some(self.cfg.can_be_read_only),
        }
    }

    /// Finds a server and attaches the session; `None` when the session
    /// ended instead.
    async fn connect_phase(&mut self) -> Option<(Stream, BytesMut)> {
        let mut failures = 0usize;
        loop {
            if self.terminal.is_some() {
                return None;
            }
            let deadline = self.session_deadline();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                info!("session timeout passed without reaching a server");
                self.terminate(SessionState::Expired);
                return None;
            }
            let backoff = if failures > 0 && failures % self.cfg.hosts.len() == 0 {
                Duration::from_millis(rand::thread_rng().gen_range(50..1000))
            } else {
                Duration::ZERO
            };
            let (host, port) = self.next_addr();
            let server = format!("{host}:{port}");
            let request = self.connect_request();
            let attempt_timeout = self.cfg.connect_timeout;
            let max_frame = self.cfg.max_frame;
            let transport = self.cfg.transport.clone();
            let sasl = self.cfg.sasl.clone();
            let attempt = async move {
                tokio::time::sleep(backoff).await;
                let connect = async {
                    let (mut stream, rsp, mut buf) =
                        try_connect(&transport, &host, port, &request, max_frame)
                            .await
                            .map_err(|why| (why, false))?;
                    if let (Some((user, password)), true) = (&sasl, rsp.time_out > 0) {
                        sasl_exchange(&mut stream, &mut buf, user, password, max_frame).await?;
                    }
                    Ok((stream, rsp, buf))
                };
                tokio::time::timeout(attempt_timeout, connect).await.map_err(|_| {
                    (format!("{host}:{port}: connect timed out after {attempt_timeout:?}"), false)
                })?
            };
            tokio::pin!(attempt);
            let expire_at = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
            loop {
                tokio::select! {
                    res = &mut attempt => match res {
                        Ok((stream, rsp, rbuf)) => {
                            if rsp.time_out <= 0 {
                                info!("server reports the session expired");
                                self.terminate(SessionState::Expired);
                                return None;
                            }
                            self.attach(&rsp, server);
                            return Some((stream, rbuf));
                        }
                        Err((why, refused)) => {
                            debug!(%why, "connect attempt failed");
                            if refused {
                                // The server refused our SASL credentials:
                                // as Apache's client, that ends the session.
                                info!(%why, "SASL authentication failed");
                                self.terminate(SessionState::AuthFailed);
                                return None;
                            }
                            if let Ok(mut f) = self.shared.last_failure.lock() {
                                *f = Some(why);
                            }
                            failures += 1;
                            // As Apache's client: what waited for this attempt fails.
                            for req in self.held.drain(..) {
                                if let Some(tx) = req.reply {
                                    let _ = tx.send(Err(Error::ConnectionLoss));
                                }
                            }
                            break;
                        }
                    },
                    cmd = self.rx.recv() => match cmd {
                        None => {
                            self.terminate(SessionState::Closed);
                            return None;
                        }
                        Some(Command::Request(req)) => self.held.push_back(req),
                        Some(Command::RememberAuth(a)) => self.auths.push(a),
                        // Not connected: the replay after reconnecting skips
                        // dropped watches.
                        Some(Command::WatchDropped { .. }) => {}
                        Some(Command::Close(tx)) => {
                            self.close_waiters.push(tx);
                            self.terminate(SessionState::Closed);
                            return None;
                        }
                    },
                    _ = tokio::time::sleep_until(expire_at) => break,
                }
            }
        }
    }

    fn attach(&mut self, rsp: &ConnectResponse, server: String) {
        self.session_id = rsp.session_id;
        self.password = rsp.passwd.clone();
        self.negotiated = Duration::from_millis(u64::try_from(rsp.time_out).unwrap_or(1));
        self.read_only = rsp.read_only.unwrap_or(false);
        self.seen_rw |= !self.read_only;
        self.ever_connected = true;
        self.last_heard = Instant::now();
        let info = SessionInfo {
            id: self.session_id,
            password: self.password.clone(),
            timeout: self.negotiated,
            server: Some(server),
        };
        self.shared.update_info(|i| *i = info);
        self.shared.set_state(if self.read_only {
            SessionState::ConnectedReadOnly
        } else {
            SessionState::Connected
        });
    }

    fn take_xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid = if x == i32::MAX { 1 } else { x + 1 };
        x
    }

    /// Queues `req` on the live connection.
    fn enqueue(&mut self, conn: &mut Conn, mut req: Req) {
        if conn.closing.is_some() {
            if let Some(tx) = req.reply {
                let _ = tx.send(Err(Error::ClientClosed));
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
            conn.closing = Some(Instant::now() + self.negotiated.max(Duration::from_secs(1)));
        }
        conn.pending.push_back(Pending { xid, action: req.action, reply: req.reply });
    }

    fn on_command(&mut self, conn: &mut Conn, cmd: Option<Command>) {
        match cmd {
            Some(Command::Request(req)) => self.enqueue(conn, req),
            Some(Command::RememberAuth(a)) => self.auths.push(a),
            Some(Command::WatchDropped { kind, server_path }) => self.drop_watch(conn, kind, server_path),
            Some(Command::Close(tx)) => {
                self.close_waiters.push(tx);
                self.start_close(conn);
            }
            // Every handle is gone: close the session so its ephemerals go now.
            None => self.start_close(conn),
        }
    }

    /// Removes the server watch a dropped one-shot watch held, unless this
    /// session still needs it (another live watch, or a request in flight
    /// that sets one: the server handles requests in order, so a removal
    /// sent after it would undo it).
    fn drop_watch(&mut self, conn: &mut Conn, kind: WatchKind, server_path: String) {
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
        self.enqueue(conn, Req { frame, fixed_xid: None, action: Action::None, reply: None });
    }

    fn start_close(&mut self, conn: &mut Conn) {
        if conn.closing.is_some() {
            return;
        }
        let frame = frame_of(0, OpCode::CloseSession, &());
        self.enqueue(conn, Req { frame, fixed_xid: None, action: Action::Close, reply: None });
    }

    fn write_setup(&mut self, conn: &mut Conn) {
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
            self.enqueue(conn, req);
        }
    }

    async fn serve(&mut self, stream: Stream, mut rbuf: BytesMut) -> ServeEnd {
        let (mut rd, mut wr) = stream.split();
        // Written bytes a TLS layer still holds (flushing a plain socket is
        // a no-op).
        let mut unflushed = false;
        let tls = self.cfg.transport.is_tls();
        let mut conn = Conn {
            wbuf: BytesMut::with_capacity(64 * 1024),
            pending: VecDeque::new(),
            auth_pending: VecDeque::new(),
            closing: None,
        };
        self.write_setup(&mut conn);
        let read_timeout = self.negotiated * 2 / 3;
        let ping_interval = read_timeout / 2;
        let mut tick = tokio::time::interval((ping_interval / 4).max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_send = Instant::now();
        let mut last_recv = Instant::now();
        let mut probe: Option<tokio::task::JoinHandle<Option<usize>>> = None;
        let mut next_probe = Instant::now() + Duration::from_millis(100);
        let mut probe_backoff = Duration::from_millis(100);
        if rbuf.capacity() < 64 * 1024 {
            rbuf.reserve(64 * 1024);
        }

        let end = loop {
            // Anything already buffered (e.g. bytes that came with the
            // connect response) is handled before waiting.
            match self.drain_frames(&mut rbuf, &mut conn) {
                Ok(()) => {}
                Err(end) => break end,
            }
            tokio::select! {
                // Replies first, then writes, then new requests: a request is
                // written as soon as it arrives, so the server sees a steady
                // stream rather than bursts.
                biased;
                res = rd.read_buf(&mut rbuf) => match res {
                    Ok(0) => break ServeEnd::Lost("server closed the connection".into()),
                    Ok(_) => {
                        last_recv = Instant::now();
                        if rbuf.capacity() - rbuf.len() < 4096 {
                            rbuf.reserve(64 * 1024);
                        }
                    }
                    Err(e) => break ServeEnd::Lost(format!("read: {e}")),
                },
                res = write_or_flush(&mut wr, &mut conn.wbuf), if !conn.wbuf.is_empty() || unflushed => match res {
                    Ok(Some(0)) => break ServeEnd::Lost("write returned 0".into()),
                    Ok(Some(_)) => {
                        last_send = Instant::now();
                        // Only TLS holds written bytes back.
                        unflushed = tls;
                    }
                    Ok(None) => unflushed = false,
                    Err(e) => break ServeEnd::Lost(format!("write: {e}")),
                },
                cmd = self.rx.recv(), if conn.closing.is_none() => {
                    self.on_command(&mut conn, cmd);
                    // Batch whatever else is already waiting into the same write.
                    for _ in 0..64 {
                        match self.rx.try_recv() {
                            Ok(cmd) => self.on_command(&mut conn, Some(cmd)),
                            Err(_) => break,
                        }
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    if now.duration_since(last_recv) > read_timeout {
                        break ServeEnd::Lost(format!("no answer from the server for {read_timeout:?}"));
                    }
                    if let Some(at) = conn.closing {
                        if now >= at {
                            info!("no reply to closeSession; closing anyway");
                            self.terminate(SessionState::Closed);
                            break ServeEnd::Terminal;
                        }
                    }
                    if now.duration_since(last_send) >= ping_interval && conn.wbuf.is_empty() {
                        conn.wbuf.extend_from_slice(&frame_of(xid::PING, OpCode::Ping, &()));
                    }
                    if self.read_only && self.cfg.hosts.len() > 1 {
                        if let Some(h) = &probe {
                            if h.is_finished() {
                                if let Some(Ok(Some(i))) = probe.take().and_then(futures::FutureExt::now_or_never) {
                                    info!(host = ?self.cfg.hosts[i], "found a read-write server; moving there");
                                    self.preferred_host = Some(i);
                                    break ServeEnd::Lost("moving to a read-write server".into());
                                }
                                next_probe = now + probe_backoff;
                                probe_backoff = (probe_backoff * 2).min(Duration::from_secs(60));
                            }
                        } else if now >= next_probe {
                            let (hosts, transport) = (self.cfg.hosts.clone(), self.cfg.transport.clone());
                            probe = Some(tokio::spawn(find_read_write_server(hosts, transport)));
                        }
                    }
                }
            }
        };
        if let Some(h) = probe {
            h.abort();
        }
        self.last_heard = last_recv;
        let err = match &end {
            ServeEnd::Lost(_) if conn.closing.is_some() => {
                self.terminate(SessionState::Closed);
                self.terminal_error()
            }
            ServeEnd::Lost(_) => Error::ConnectionLoss,
            ServeEnd::Terminal => self.terminal_error(),
        };
        for p in conn.pending.drain(..) {
            if let Some(tx) = p.reply {
                let _ = tx.send(Err(err.clone()));
            }
        }
        for tx in conn.auth_pending.drain(..).flatten() {
            let _ = tx.send(Err(err.clone()));
        }
        if self.terminal.is_some() { ServeEnd::Terminal } else { end }
    }

    fn drain_frames(&mut self, rbuf: &mut BytesMut, conn: &mut Conn) -> std::result::Result<(), ServeEnd> {
        loop {
            let frame = match split_frame(rbuf, self.cfg.max_frame) {
                Ok(Some(f)) => f.freeze(),
                Ok(None) => return Ok(()),
                Err(e) => return Err(ServeEnd::Lost(format!("bad frame from server: {e}"))),
            };
            self.on_frame(frame, conn)?;
        }
    }

    fn on_frame(&mut self, mut frame: Bytes, conn: &mut Conn) -> std::result::Result<(), ServeEnd> {
        let header = ReplyHeader::decode(&mut frame)
            .map_err(|e| ServeEnd::Lost(format!("bad reply header from server: {e}")))?;
        match header.xid {
            xid::NOTIFICATION => {
                let ev = WatcherEvent::decode(&mut frame)
                    .map_err(|e| ServeEnd::Lost(format!("bad watch event from server: {e}")))?;
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
                        let _ = tx.send(Err(Error::AuthFailed));
                    }
                    self.terminate(SessionState::AuthFailed);
                    return Err(ServeEnd::Terminal);
                }
                if let Some(tx) = waiter {
                    let _ = tx.send(Ok((header, frame)));
                }
                Ok(())
            }
            x => {
                let Some(p) = conn.pending.pop_front() else {
                    return Err(ServeEnd::Lost(format!("reply with xid {x} but nothing pending")));
                };
                if p.xid != x {
                    if let Some(tx) = p.reply {
                        let _ = tx.send(Err(Error::ConnectionLoss));
                    }
                    return Err(ServeEnd::Lost(format!("xid out of order: expected {} got {x}", p.xid)));
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
                            let _ = tx.send(Ok((header, frame)));
                        }
                        self.terminate(SessionState::Closed);
                        return Err(ServeEnd::Terminal);
                    }
                }
                if let Some(tx) = p.reply {
                    let _ = tx.send(Ok((header, frame)));
                }
                Ok(())
            }
        }
    }
}

/// A request frame: length, xid, type and body.
pub(crate) fn frame_of<R: Record>(xid: i32, opcode: OpCode, body: &R) -> BytesMut {
    let mut f = BytesMut::with_capacity(64);
    f.put_i32(0);
    RequestHeader { xid, opcode }.encode(&mut f);
    body.encode(&mut f);
    let len = i32::try_from(f.len() - 4).unwrap_or(i32::MAX);
    f[..4].copy_from_slice(&len.to_be_bytes());
    f
}

/// Reads the next reply frame from `stream` (with what `buf` holds):
/// header and body.
async fn read_reply(
    stream: &mut Stream,
    buf: &mut BytesMut,
    max_frame: usize,
) -> std::result::Result<bytes::Bytes, String> {
    loop {
        if let Some(frame) = split_frame(buf, max_frame).map_err(|e| e.to_string())? {
            return Ok(frame.freeze());
        }
        if stream.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("server closed the connection during SASL".into());
        }
    }
}

/// SASL DIGEST-MD5 on a fresh connection (before any other request, as
/// Apache's client): `Err((why, true))` when the server refused the
/// credentials, `Err((why, false))` when the connection failed.
async fn sasl_exchange(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
    password: &str,
    max_frame: usize,
) -> std::result::Result<(), (String, bool)> {
    use zk_proto::records::{GetSaslRequest, SetSaslResponse};
    use zk_proto::sasl::DigestClient;
    let lost = |e: String| (e, false);
    let mut random = [0u8; 24];
    rand::thread_rng().fill(&mut random[..]);
    let client = DigestClient::new(user, password, random);
    let mut token = Vec::new();
    let mut expect: Option<String> = None;
    for xid in 1..=3 {
        let frame = frame_of(xid, OpCode::Sasl, &GetSaslRequest { token: Some(token.clone().into()) });
        stream.write_all(&frame).await.map_err(|e| lost(e.to_string()))?;
        stream.flush().await.map_err(|e| lost(e.to_string()))?;
        let mut body = read_reply(stream, buf, max_frame).await.map_err(lost)?;
        let h = ReplyHeader::decode(&mut body).map_err(|e| lost(e.to_string()))?;
        if h.err != ErrorCode::Ok {
            return Err((format!("SASL: the server answered {:?}", h.err), true));
        }
        let reply = SetSaslResponse::decode(&mut body).map_err(|e| lost(e.to_string()))?;
        let server_token = reply.token.unwrap_or_default();
        if let Some(want) = &expect {
            return if DigestClient::verify(&server_token, want) {
                Ok(())
            } else {
                Err(("SASL: the server did not prove it knows the password".into(), true))
            };
        }
        let (response, want) = client.respond(&server_token).map_err(|e| (format!("SASL: {e}"), true))?;
        token = response;
        expect = Some(want);
    }
    Err(("SASL: the exchange did not end".into(), true))
}

/// Writes some of `buf` (`Some(bytes written)`), or with nothing left to
/// write, flushes what the TLS layer holds (`None`).
async fn write_or_flush(
    wr: &mut crate::transport::WriteHalf,
    buf: &mut BytesMut,
) -> std::io::Result<Option<usize>> {
    if buf.is_empty() {
        wr.flush().await?;
        Ok(None)
    } else {
        wr.write_buf(buf).await.map(Some)
    }
}

/// Connects to one server and performs the handshake.
async fn try_connect(
    transport: &Transport,
    host: &str,
    port: u16,
    request: &ConnectRequest,
    max_frame: usize,
) -> std::result::Result<(Stream, ConnectResponse, BytesMut), String> {
    let addrs: Vec<_> =
        tokio::net::lookup_host((host, port)).await.map_err(|e| format!("{host}:{port}: {e}"))?.collect();
    let mut last_err = format!("{host}:{port}: no address");
    for addr in addrs {
        let mut stream = match transport.connect(host, addr).await {
            Ok(s) => s,
            Err(e) => {
                last_err = format!("{addr}: {e}");
                continue;
            }
        };
        let mut out = BytesMut::new();
        zk_proto::frame::encode_frame(request, &mut out, max_frame).map_err(|e| e.to_string())?;
        stream.write_all(&out).await.map_err(|e| format!("{addr}: {e}"))?;
        stream.flush().await.map_err(|e| format!("{addr}: {e}"))?;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            if let Some(len) = decode_frame_len(&buf, max_frame).map_err(|e| format!("{addr}: {e}"))? {
                if buf.len() >= 4 + len {
                    let frame = split_frame(&mut buf, max_frame)
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| "incomplete connect response".to_string())?;
                    let rsp = ConnectResponse::decode_exact(frame.freeze())
                        .map_err(|e| format!("{addr}: bad connect response: {e}"))?;
                    return Ok((stream, rsp, buf));
                }
            }
            let n = stream.read_buf(&mut buf).await.map_err(|e| format!("{addr}: {e}"))?;
            if n == 0 {
                return Err(format!("{addr}: server closed the connection during the handshake"));
            }
        }
    }
    Err(last_err)
}

/// Asks each server with `isro` whether it is read-write; returns the
/// index of the first that is.
async fn find_read_write_server(hosts: Vec<(String, u16)>, transport: Transport) -> Option<usize> {
    for (i, (host, port)) in hosts.iter().enumerate() {
        let probe = async {
            let addr = tokio::net::lookup_host((host.as_str(), *port)).await.ok()?.next()?;
            let mut s = transport.connect(host, addr).await.ok()?;
            s.write_all(b"isro").await.ok()?;
            s.flush().await.ok()?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.ok()?;
            Some(out)
        };
        if let Ok(Some(out)) = tokio::time::timeout(Duration::from_secs(2), probe).await {
            if out.starts_with(b"rw") {
                return Some(i);
            }
        }
    }
    None
}
