//! Connections between peers on the election port, made as Apache's
//! `QuorumCnxManager` makes them, so an Apache peer and this one connect
//! to each other:
//!
//! - a connection starts with the initial message (protocol version, sid,
//!   election address; see `wire.rs`);
//! - only a connection from the higher sid to the lower one is kept: a
//!   lower sid that dials writes its initial message and hangs up, and the
//!   higher sid, seeing a lower one dial in, hangs up and dials back;
//! - each peer has one pending message (a newer one replaces it), and a new
//!   connection starts by sending the last message again;
//! - messages are `int length` (1 to 512 KiB) then the bytes; a message to
//!   this server itself is delivered without a socket.
//!
//! This is the only file of the quorum layer with sockets. Peers' messages
//! come out of one channel as `(sid, bytes)`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use super::wire::{InitialMessage, MAX_MESSAGE};

/// How long a dial or an initial message may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One peer's outgoing side.
#[derive(Debug, Default)]
struct Slot {
    /// The message to send (the newest replaces an unsent one), and a
    /// counter that moves when it changes.
    latest: Option<(u64, Bytes)>,
    seq: u64,
    /// The generation of the connection that is current, 0 for none.
    conn: u64,
    /// A dial is under way.
    dialing: bool,
}

#[derive(Debug)]
struct Inner {
    my_id: i64,
    my_addr: String,
    peers: BTreeMap<i64, String>,
    slots: Mutex<HashMap<i64, Slot>>,
    changed: Notify,
    next_gen: std::sync::atomic::AtomicU64,
    incoming: mpsc::UnboundedSender<(i64, Bytes)>,
    stop: watch::Receiver<bool>,
}

/// The election port's connections.
#[derive(Debug, Clone)]
pub struct PeerNet {
    inner: Arc<Inner>,
    stop: Arc<watch::Sender<bool>>,
    local: SocketAddr,
}

impl PeerNet {
    /// Listens on `listen` and manages connections to `peers` (sid →
    /// `host:port` of their election ports). Messages from peers come out
    /// of the returned channel.
    ///
    /// # Errors
    /// When `listen` cannot be bound.
    pub async fn start(
        my_id: i64,
        my_addr: String,
        listen: SocketAddr,
        peers: BTreeMap<i64, String>,
    ) -> std::io::Result<(PeerNet, mpsc::UnboundedReceiver<(i64, Bytes)>)> {
        let listener = TcpListener::bind(listen).await?;
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            my_id,
            my_addr,
            peers,
            slots: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            next_gen: std::sync::atomic::AtomicU64::new(1),
            incoming: tx,
            stop: stop_rx,
        });
        let net = PeerNet { inner: inner.clone(), stop: Arc::new(stop_tx), local };
        tokio::spawn(accept_loop(inner, listener).instrument(info_span!("election-port", sid = my_id)));
        Ok((net, rx))
    }

    /// The address the election port is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Queues `msg` for peer `to` (replacing one not yet sent) and makes
    /// sure a connection is being made.
    pub fn send(&self, to: i64, msg: Bytes) {
        if to == self.inner.my_id {
            let _ = self.inner.incoming.send((to, msg));
            return;
        }
        if !self.inner.peers.contains_key(&to) {
            return;
        }
        if let Ok(mut slots) = self.inner.slots.lock() {
            let slot = slots.entry(to).or_default();
            slot.seq += 1;
            slot.latest = Some((slot.seq, msg));
        }
        self.inner.changed.notify_waiters();
        connect_one(&self.inner, to);
    }

    /// Makes sure a connection to every peer is being made.
    pub fn connect_all(&self) {
        for sid in self.inner.peers.keys() {
            connect_one(&self.inner, *sid);
        }
    }

    /// Closes every connection and stops listening.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.inner.changed.notify_waiters();
    }
}

fn connect_one(inner: &Arc<Inner>, sid: i64) {
    if *inner.stop.borrow() {
        return;
    }
    let Some(addr) = inner.peers.get(&sid).cloned() else { return };
    {
        let Ok(mut slots) = inner.slots.lock() else { return };
        let slot = slots.entry(sid).or_default();
        if slot.conn != 0 || slot.dialing {
            return;
        }
        slot.dialing = true;
    }
    let inner = inner.clone();
    tokio::spawn(
        async move {
            let r = dial(&inner, sid, &addr).await;
            if let Ok(mut slots) = inner.slots.lock() {
                slots.entry(sid).or_default().dialing = false;
            }
            match r {
                Ok(Some(stream)) => run_connection(inner, sid, stream).await,
                Ok(None) => debug!("dialed a higher sid: it dials back"),
                Err(e) => debug!(error = %e, "cannot reach the peer"),
            }
        }
        .instrument(info_span!("peer", sid)),
    );
}

/// Dials `sid` and introduces this server; the stream when it is kept (we
/// are the higher sid).
async fn dial(inner: &Inner, sid: i64, addr: &str) -> std::io::Result<Option<TcpStream>> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let _ = stream.set_nodelay(true);
    let mut hello = BytesMut::new();
    InitialMessage { sid: inner.my_id, addrs: vec![inner.my_addr.clone()] }.encode(&mut hello);
    tokio::time::timeout(CONNECT_TIMEOUT, stream.write_all(&hello))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    if sid > inner.my_id {
        // Apache: "Have smaller server identifier, so dropping the connection."
        let _ = stream.shutdown().await;
        return Ok(None);
    }
    Ok(Some(stream))
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut stop = inner.stop.clone();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => return,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut stream = stream;
            let mut buf = BytesMut::with_capacity(64);
            let hello = tokio::time::timeout(CONNECT_TIMEOUT, async {
                loop {
                    match InitialMessage::decode(&mut buf) {
                        Ok(Some(m)) => return Ok(m),
                        Ok(None) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                    match stream.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return Err("closed before its initial message".to_string()),
                        Ok(_) => {}
                    }
                }
            })
            .await;
            let hello = match hello {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => {
                    info!(%peer, error = %e, "refused an election connection");
                    return;
                }
                Err(_) => return,
            };
            let sid = hello.sid;
            if !inner.peers.contains_key(&sid) {
                warn!(%peer, sid, "an election connection from a server not in the ensemble");
                return;
            }
            if sid < inner.my_id {
                // The higher sid keeps the connection: hang up and dial back.
                drop(stream);
                connect_one(&inner, sid);
                return;
            }
            run_connection(inner, sid, StreamWithBuf { stream, buf }).await;
        });
    }
}

/// A stream and the bytes already read from it.
struct StreamWithBuf {
    stream: TcpStream,
    buf: BytesMut,
}

impl From<TcpStream> for StreamWithBuf {
    fn from(stream: TcpStream) -> Self {
        StreamWithBuf { stream, buf: BytesMut::new() }
    }
}

/// Runs the connection to `sid` until it fails or another replaces it.
async fn run_connection(inner: Arc<Inner>, sid: i64, stream: impl Into<StreamWithBuf>) {
    let StreamWithBuf { stream, mut buf } = stream.into();
    let generation = inner.next_gen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Ok(mut slots) = inner.slots.lock() {
        slots.entry(sid).or_default().conn = generation;
    }
    // Wake an older connection's writer, so it sees it was replaced.
    inner.changed.notify_waiters();
    debug!(sid, generation, "election connection up");
    let (mut rd, mut wr) = stream.into_split();
    let reader = async {
        loop {
            while buf.len() >= 4 {
                let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if len <= 0 || len as usize > MAX_MESSAGE {
                    warn!(sid, len, "bad message length on the election port; closing");
                    return;
                }
                let len = len as usize;
                if buf.len() < 4 + len {
                    break;
                }
                let _ = buf.split_to(4);
                let msg = buf.split_to(len).freeze();
                if inner.incoming.send((sid, msg)).is_err() {
                    return;
                }
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(64 * 1024);
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let writer = async {
        // A new connection first sends the last message again.
        let mut sent: u64 = 0;
        loop {
            let notified = inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = {
                let Ok(slots) = inner.slots.lock() else { return };
                let Some(slot) = slots.get(&sid) else { return };
                if slot.conn != generation || *inner.stop.borrow() {
                    return;
                }
                slot.latest.clone().filter(|(seq, _)| *seq != sent)
            };
            match next {
                Some((seq, msg)) => {
                    let mut frame = BytesMut::with_capacity(4 + msg.len());
                    frame.extend_from_slice(&(msg.len() as i32).to_be_bytes());
                    frame.extend_from_slice(&msg);
                    if wr.write_all(&frame).await.is_err() {
                        return;
                    }
                    sent = seq;
                }
                None => notified.await,
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
    if let Ok(mut slots) = inner.slots.lock() {
        if let Some(slot) = slots.get_mut(&sid) {
            if slot.conn == generation {
                slot.conn = 0;
            }
        }
    }
    debug!(sid, generation, "election connection down");
}
