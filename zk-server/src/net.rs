//! The client port: accept loop, per-IP connection limit, and one task per
//! connection that turns frames into requests for the core and the core's
//! replies back into frames.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{Instrument, debug, info, info_span, warn};
use zk_proto::frame::{encode_frame, split_frame};
use zk_proto::records::{ConnectRequest, RequestHeader};
use zk_proto::{Record, Request};

use crate::config::ServerConfig;
use crate::core::{CoreMsg, OUT_QUEUE, Out, Outstanding, out_weight};

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
    next_conn: AtomicU64,
}

impl NetShared {
    /// Shared state for a listener on `port`.
    pub(crate) fn new(
        core: mpsc::UnboundedSender<CoreMsg>,
        cfg: Arc<ServerConfig>,
        port: u16,
        outstanding: Arc<Outstanding>,
    ) -> Self {
        NetShared {
            core,
            cfg,
            port,
            per_ip: Mutex::new(HashMap::new()),
            outstanding,
            next_conn: AtomicU64::new(1),
        }
    }
}

/// Accepts connections until `shutdown` turns true.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<NetShared>,
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
        let shared2 = shared.clone();
        let mut sd = shutdown.clone();
        let span = info_span!("conn", id = conn, peer = %peer);
        tokio::spawn(
            async move {
                tokio::select! {
                    _ = serve(stream, peer, conn, &shared2) => {}
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

async fn serve(mut stream: TcpStream, peer: SocketAddr, conn: u64, shared: &NetShared) {
    let _ = stream.set_nodelay(true);
    let max_frame = shared.cfg.jute_maxbuffer;
    let mut buf = BytesMut::with_capacity(4096);
    // The first four bytes: a four-letter word, or the connect frame's length.
    while buf.len() < 4 {
        match tokio::time::timeout(shared.cfg.tick_time * 10, read_more(&mut stream, &mut buf)).await {
            Ok(Ok(true)) => {}
            _ => return,
        }
    }
    if let Ok(word) = std::str::from_utf8(&buf[..4]) {
        if crate::fourlw::COMMANDS.contains(&word) {
            four_letter_word(word, &mut stream, shared).await;
            return;
        }
    }
    // The handshake: a ConnectRequest without a header.
    let connect = loop {
        match split_frame(&mut buf, max_frame) {
            Ok(Some(f)) => break f.freeze(),
            Ok(None) => {}
            Err(e) => {
                info!(error = %e, "bad first frame; closing");
                return;
            }
        }
        match tokio::time::timeout(shared.cfg.tick_time * 10, read_more(&mut stream, &mut buf)).await {
            Ok(Ok(true)) => {}
            _ => return,
        }
    };
    let req = match ConnectRequest::decode(&mut connect.clone()) {
        Ok(r) => r,
        Err(e) => {
            info!(error = %e, "malformed connect request; closing");
            return;
        }
    };
    let (out_tx, mut out_rx) = mpsc::channel(OUT_QUEUE);
    let kill = Arc::new(Notify::new());
    let queued = Arc::new(AtomicUsize::new(0));
    let connect = CoreMsg::Connect {
        conn,
        peer: Some(peer.ip()),
        req,
        out: out_tx,
        kill: kill.clone(),
        queued: queued.clone(),
    };
    if shared.core.send(connect).is_err() {
        return;
    }
    let (mut rd, mut wr) = stream.into_split();
    // Nothing is read until the core answered the handshake.
    let mut wbuf = BytesMut::with_capacity(4096);
    match out_rx.recv().await {
        Some(Out::Connected(rsp)) => {
            let expired = rsp.time_out <= 0;
            if encode_frame(&rsp, &mut wbuf, usize::MAX).is_err()
                || wr.write_all(&wbuf).await.is_err()
                || expired
            {
                let _ = wr.shutdown().await;
                return;
            }
            wbuf.clear();
        }
        _ => return,
    }
    let writer_queued = queued.clone();
    let writer = async move {
        let mut wbuf = BytesMut::with_capacity(64 * 1024);
        'outer: while let Some(first) = out_rx.recv().await {
            let mut next = Some(first);
            let mut close = false;
            let mut batch = 0;
            while let Some(msg) = next.take() {
                writer_queued.fetch_sub(out_weight(&msg), Ordering::AcqRel);
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
            if wr.write_all(&wbuf).await.is_err() {
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
    tokio::pin!(writer);
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
        let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    }
    debug!("connection closed");
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

async fn four_letter_word(word: &str, stream: &mut TcpStream, shared: &NetShared) {
    let (tx, rx) = oneshot::channel();
    let needs_reset = matches!(word, "srst" | "crst");
    if needs_reset {
        let _ = shared.core.send(CoreMsg::ResetStats);
    }
    if shared.core.send(CoreMsg::Stats(tx)).is_err() {
        return;
    }
    let Ok(snapshot) = rx.await else { return };
    if let Some(text) = crate::fourlw::answer(word, &shared.cfg, &snapshot, shared.port) {
        let _ = stream.write_all(text.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}
