//! The client port: accept loop, per-IP connection limit, and one task per
//! connection that turns frames into requests for the core and the core's
//! replies back into frames.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};
use zk_proto::frame::{encode_frame, split_frame};
use zk_proto::records::{ConnectRequest, RequestHeader};
use zk_proto::{Record, Request};

use crate::config::ServerConfig;
use crate::driver::{ConnHandle, CoreMsg, OUT_QUEUE, Outstanding, Reset};
use crate::pipeline::Out;
use crate::pipeline::reply::out_weight;

/// What every connection task shares.
#[derive(Debug)]
pub(crate) struct NetShared {
    /// The core's inbox.
    pub(crate) core: mpsc::UnboundedSender<CoreMsg>,
    /// Configuration.
    pub(crate) cfg: Arc<ServerConfig>,
    /// The port actually bound.
    pub(crate) port: u16,
    /// Connections per client IP.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// `globalOutstandingLimit`: requests not yet answered.
    outstanding: Arc<Outstanding>,
    /// Bytes queued for all connections (the driver adds, writers take).
    global_queued: Arc<AtomicUsize>,
    next_conn: AtomicU64,
}

impl NetShared {
    /// Shared state for a listener on `port`.
    pub(crate) fn new(
        core: mpsc::UnboundedSender<CoreMsg>,
        cfg: Arc<ServerConfig>,
        port: u16,
        outstanding: Arc<Outstanding>,
        global_queued: Arc<AtomicUsize>,
    ) -> Self {
        NetShared {
            core,
            cfg,
            port,
            per_ip: Mutex::new(HashMap::new()),
            outstanding,
            global_queued,
            next_conn: AtomicU64::new(1),
        }
    }
}

/// The secure client port's TLS configuration, replaced when the key or
/// trust store files change (`client.certReload`); a connection uses the
/// one current when it arrives.
#[derive(Debug)]
pub(crate) struct TlsPort {
    config: std::sync::RwLock<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl TlsPort {
    /// A port serving with `config`.
    pub(crate) fn new(config: Arc<tokio_rustls::rustls::ServerConfig>) -> Arc<Self> {
        Arc::new(TlsPort { config: std::sync::RwLock::new(config) })
    }

    fn current(&self) -> Arc<tokio_rustls::rustls::ServerConfig> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Serves new connections with `config` from now on.
    pub(crate) fn replace(&self, config: Arc<tokio_rustls::rustls::ServerConfig>) {
        match self.config.write() {
            Ok(mut c) => *c = config,
            Err(p) => *p.into_inner() = config,
        }
    }
}

/// Accepts connections until `shutdown` turns true; with `tls`, each one
/// starts with a TLS handshake (the secure client port).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<NetShared>,
    tls: Option<Arc<TlsPort>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ip = peer.ip();
        let max = shared.cfg.max_client_cnxns;
        let admitted = match shared.per_ip.lock() {
            Ok(mut m) => {
                let n = m.entry(ip).or_default();
                if max != 0 && *n >= max {
                    false
                } else {
                    *n += 1;
                    true
                }
            }
            Err(_) => false,
        };
        if !admitted {
            warn!(%ip, max, "too many connections from this address; closing the new one");
            drop(stream);
            continue;
        }
        let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        if shared.cfg.fault_injection.as_deref() == Some("accept-exit") {
            warn!("fault injection: the accept loop ends");
            return;
        }
        let shared2 = shared.clone();
        let mut sd = shutdown.clone();
        let tls = tls.clone();
        let span = info_span!("conn", id = conn, peer = %peer, tls = tls.is_some());
        tokio::spawn(
            async move {
                tokio::select! {
                    _ = handle(stream, peer, conn, &shared2, tls) => {}
                    _ = sd.changed() => {}
                }
                let _ = shared2.core.send(CoreMsg::Disconnected { conn });
                if let Ok(mut m) = shared2.per_ip.lock() {
                    if let Some(n) = m.get_mut(&ip) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            m.remove(&ip);
                        }
                    }
                }
            }
            .instrument(span),
        );
    }
}

async fn read_more(stream: &mut (impl AsyncReadExt + Unpin), buf: &mut BytesMut) -> std::io::Result<bool> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(64 * 1024);
    }
    Ok(stream.read_buf(buf).await? > 0)
}

/// What the first bytes of a connection turned out to be.
enum Opening {
    /// A four-letter word, answered and done.
    Word,
    /// A connect request.
    Connect(ConnectRequest),
}

/// Reads the opening of a connection: a four-letter word (answered here)
/// or the connect request. The caller bounds it with the sessionless
/// deadline, so a client that trickles bytes cannot hold its slot.
async fn opening<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    stream: &mut R,
    out: &mut W,
    buf: &mut BytesMut,
    shared: &NetShared,
) -> Option<Opening> {
    let max_frame = shared.cfg.jute_maxbuffer;
    // The first four bytes: a four-letter word, or the connect frame's length.
    while buf.len() < 4 {
        if !read_more(stream, buf).await.ok()? {
            return None;
        }
    }
    if let Ok(word) = std::str::from_utf8(&buf[..4]) {
        if crate::fourlw::COMMANDS.contains(&word) {
            let word = word.to_string();
            four_letter_word(&word, out, shared).await;
            return Some(Opening::Word);
        }
    }
    // The handshake: a ConnectRequest without a header.
    let connect = loop {
        match split_frame(buf, max_frame) {
            Ok(Some(f)) => break f.freeze(),
            Ok(None) => {}
            Err(e) => {
                info!(error = %e, "bad first frame; closing");
                return None;
            }
        }
        if !read_more(stream, buf).await.ok()? {
            return None;
        }
    };
    match ConnectRequest::decode(&mut connect.clone()) {
        Ok(r) => Some(Opening::Connect(r)),
        Err(e) => {
            info!(error = %e, "malformed connect request; closing");
            None
        }
    }
}

/// Writes all of `buf`, giving up when one write makes no progress for
/// `stall` (a client that stopped reading).
async fn write_all_or_stall(
    wr: &mut (impl AsyncWriteExt + Unpin),
    buf: &[u8],
    stall: Duration,
    flush: bool,
) -> std::io::Result<()> {
    let stalled = || {
        warn!(stalled_for = ?stall, "client has not read for too long; closing");
        std::io::Error::from(std::io::ErrorKind::TimedOut)
    };
    let mut pos = 0;
    while pos < buf.len() {
        match tokio::time::timeout(stall, wr.write(&buf[pos..])).await {
            Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => pos += n,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(stalled()),
        }
    }
    if !flush {
        return Ok(());
    }
    // TLS keeps records it could not send yet: push them out.
    tokio::time::timeout(stall, wr.flush()).await.map_err(|_| stalled())?
}

/// One accepted connection: the TLS handshake on the secure port (its
/// client certificate, if any, becomes an `x509` identity), then
/// [`serve`].
async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    conn: u64,
    shared: &NetShared,
    tls: Option<Arc<TlsPort>>,
) {
    let _ = stream.set_nodelay(true);
    // A connection without a session is closed after the sessionless
    // deadline, however its bytes come (Apache: 10 s); the TLS handshake
    // counts.
    let deadline = Instant::now() + shared.cfg.sessionless_cnxn_timeout;
    let Some(tls) = tls else {
        let (rd, wr) = stream.into_split();
        return serve(rd, wr, peer, conn, shared, Vec::new(), deadline, false).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
    let stream = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            info!(error = %e, "TLS handshake failed; closing");
            return;
        }
        Err(_) => {
            info!("no TLS handshake within the deadline; closing");
            return;
        }
    };
    let mut ids = Vec::new();
    if let Some(cert) = stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        match zk_tls::x509_identity(cert) {
            Ok(name) => {
                debug!(x509 = %name, "client certificate");
                if shared.cfg.x509_super_user.as_deref() == Some(name.as_str()) {
                    ids.push(zk_proto::records::Id::new("super", name.clone()));
                }
                ids.push(zk_proto::records::Id::new("x509", name));
            }
            Err(e) => info!(error = %e, "client certificate without a usable subject"),
        }
    }
    let (rd, wr) = tokio::io::split(stream);
    serve(rd, wr, peer, conn, shared, ids, deadline, true).await
}

#[allow(clippy::too_many_arguments)]
async fn serve<R, W>(
    mut rd: R,
    mut wr: W,
    peer: SocketAddr,
    conn: u64,
    shared: &NetShared,
    ids: Vec<zk_proto::records::Id>,
    deadline: Instant,
    // TLS: flush after each write (a plain socket needs no flush, and its
    // writes stay free of an extra timer).
    tls: bool,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let max_frame = shared.cfg.jute_maxbuffer;
    let stall = shared.cfg.client_write_timeout;
    let mut buf = BytesMut::with_capacity(4096);
    let req = match tokio::time::timeout_at(deadline, opening(&mut rd, &mut wr, &mut buf, shared)).await {
        Ok(Some(Opening::Connect(req))) => req,
        Ok(Some(Opening::Word)) | Ok(None) => return,
        Err(_) => {
            info!("no handshake within the deadline; closing");
            return;
        }
    };
    let (out_tx, mut out_rx) = mpsc::channel(OUT_QUEUE);
    let kill = Arc::new(Notify::new());
    let queued = Arc::new(AtomicUsize::new(0));
    let handle = ConnHandle { out: out_tx, kill: kill.clone(), queued: queued.clone() };
    let connect = CoreMsg::Connect { conn, peer: Some(peer), ids, req, handle };
    if shared.core.send(connect).is_err() {
        return;
    }
    // Nothing is read until the core answered the handshake.
    let mut wbuf = BytesMut::with_capacity(4096);
    let first = tokio::time::timeout(shared.cfg.sessionless_cnxn_timeout, out_rx.recv()).await;
    if let Ok(Some(out)) = &first {
        take_weight(&queued, &shared.global_queued, out_weight(out));
    }
    match first {
        Ok(Some(Out::Connected(rsp))) => {
            let expired = rsp.time_out <= 0;
            if encode_frame(&rsp, &mut wbuf, usize::MAX).is_err()
                || write_all_or_stall(&mut wr, &wbuf, stall, tls).await.is_err()
                || expired
            {
                let _ = wr.shutdown().await;
                drop(out_rx);
                release_queued(&queued, &shared.global_queued);
                return;
            }
            wbuf.clear();
        }
        _ => {
            drop(out_rx);
            release_queued(&queued, &shared.global_queued);
            return;
        }
    }
    let writer_queued = queued.clone();
    let global = shared.global_queued.clone();
    let writer = async move {
        let mut wbuf = BytesMut::with_capacity(64 * 1024);
        'outer: while let Some(first) = out_rx.recv().await {
            let mut next = Some(first);
            let mut close = false;
            let mut batch = 0;
            while let Some(msg) = next.take() {
                take_weight(&writer_queued, &global, out_weight(&msg));
                match msg {
                    Out::Reply(h, body) => {
                        let frame_ok = match body {
                            Some(b) => encode_frame(&ReplyFrame(h, b), &mut wbuf, usize::MAX),
                            None => encode_frame(&h, &mut wbuf, usize::MAX),
                        };
                        if frame_ok.is_err() {
                            break 'outer;
                        }
                    }
                    Out::Event(zxid, ev) => {
                        let h = zk_proto::records::ReplyHeader {
                            xid: zk_proto::xid::NOTIFICATION,
                            zxid,
                            err: zk_proto::ErrorCode::Ok,
                        };
                        if encode_frame(&(h, ev), &mut wbuf, usize::MAX).is_err() {
                            break 'outer;
                        }
                    }
                    Out::Connected(_) => {}
                    Out::Close => close = true,
                }
                batch += 1;
                if batch < 256 && !close {
                    next = out_rx.try_recv().ok();
                }
            }
            if write_all_or_stall(&mut wr, &wbuf, stall, tls).await.is_err() {
                break;
            }
            wbuf.clear();
            if close {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let reader = async {
        loop {
            loop {
                let frame = match split_frame(&mut buf, max_frame) {
                    Ok(Some(f)) => f.freeze(),
                    Ok(None) => break,
                    Err(e) => {
                        info!(error = %e, "bad frame from client; closing");
                        return;
                    }
                };
                let mut body = frame;
                let header = match RequestHeader::decode(&mut body) {
                    Ok(h) => h,
                    Err(e) => {
                        info!(error = %e, "bad request header; closing");
                        return;
                    }
                };
                let req = match Request::decode(header.opcode, body) {
                    Ok(r) => r,
                    Err(e) => {
                        info!(error = %e, op = %header.opcode, "malformed request; closing");
                        return;
                    }
                };
                // globalOutstandingLimit: wait for a place before handing
                // the request on (back-pressure on this client's socket);
                // the core frees it when it answers.
                shared.outstanding.acquire().await;
                if shared.core.send(CoreMsg::Request { conn, xid: header.xid, req }).is_err() {
                    return;
                }
            }
            match read_more(&mut rd, &mut buf).await {
                Ok(true) => {}
                _ => return,
            }
        }
    };
    let mut writer = Box::pin(writer);
    let writer_done = tokio::select! {
        _ = reader => false,
        _ = &mut writer => true,
        // The core closed this connection (session over, or a client that
        // stopped reading): stop reading now.
        _ = kill.notified() => false,
    };
    // The core stops sending and drops its end of the queue; the writer
    // flushes what was already queued (bounded) and ends.
    let _ = shared.core.send(CoreMsg::Disconnected { conn });
    if !writer_done {
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
    }
    // The queue goes with the writer.
    drop(writer);
    // What was never written leaves the global count with the queue.
    release_queued(&queued, &shared.global_queued);
    debug!("connection closed");
}

fn take_weight(mine: &AtomicUsize, global: &AtomicUsize, w: usize) {
    mine.fetch_sub(w, Ordering::AcqRel);
    global.fetch_sub(w, Ordering::AcqRel);
}

fn release_queued(mine: &AtomicUsize, global: &AtomicUsize) {
    let left = mine.swap(0, Ordering::AcqRel);
    global.fetch_sub(left, Ordering::AcqRel);
}

/// A reply header and body encoded back to back.
struct ReplyFrame(zk_proto::records::ReplyHeader, zk_proto::Response);

impl Record for ReplyFrame {
    fn encode<B: bytes::BufMut>(&self, buf: &mut B) {
        self.0.encode(buf);
        self.1.encode_body(buf);
    }
    fn decode(_buf: &mut bytes::Bytes) -> zk_proto::error::Result<Self> {
        Err(zk_proto::ProtoError::TooLargeToEncode("ReplyFrame is encode-only"))
    }
}

/// The core's report (and a reset of its counters, if asked): what the
/// four-letter words, the AdminServer and `/metrics` show. `None` when the
/// core has stopped.
pub(crate) async fn ask_core(
    shared: &NetShared,
    needs: crate::stats::Needs,
    reset: Option<Reset>,
) -> Option<crate::stats::Report> {
    // A report takes a globalOutstandingLimit place like a request: a
    // flood of them waits its turn.
    shared.outstanding.acquire().await;
    let (tx, rx) = oneshot::channel();
    let sent = shared.core.send(CoreMsg::Report { needs, reset, reply: tx }).is_ok();
    let r = if sent { rx.await.ok() } else { None };
    shared.outstanding.release(1);
    r
}

async fn four_letter_word(word: &str, stream: &mut (impl AsyncWrite + Unpin), shared: &NetShared) {
    let cfg = &shared.cfg;
    // The whitelist first: a word that is not enabled has no effect at all.
    let text = if !cfg.four_letter_word_enabled(word) {
        Some(format!("{word} is not executed because it is not in the whitelist.\n"))
    } else {
        let report = match crate::fourlw::needs(word) {
            None => Some(crate::stats::Report::default()),
            Some(needs) => {
                let reset = match word {
                    "srst" => Some(Reset::Server),
                    "crst" => Some(Reset::Connections),
                    _ => None,
                };
                ask_core(shared, needs, reset).await
            }
        };
        match report {
            Some(r) => {
                let (w, c, port) = (word.to_string(), cfg.clone(), shared.port);
                // Some words read the data dirs: off the async workers.
                tokio::task::spawn_blocking(move || crate::fourlw::answer(&w, &c, &r, port))
                    .await
                    .ok()
                    .flatten()
            }
            None => None,
        }
    };
    if let Some(text) = text {
        let _ = stream.write_all(text.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}
