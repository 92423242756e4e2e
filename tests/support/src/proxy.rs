//! A TCP fault-injection proxy for tests, on plain std threads (usable from
//! sync and async tests alike, no runtime needed).
//!
//! Point a client at [`Proxy::addr`] instead of the server and break the
//! network between them on purpose:
//!
//! | call | what the client sees |
//! |---|---|
//! | [`Proxy::cut`] | every live connection closed at once (both sides); new ones work |
//! | [`Proxy::set_refuse`] | new connections closed right after the handshake, as by a dead server |
//! | [`Proxy::stall`] | a hung network: connections stay open, no byte moves either way |
//! | [`Proxy::drop_replies_after`] | the server gets the request, the client never gets the reply |
//!
//! ```no_run
//! use zk_test_support::apache::ApacheZk;
//! use zk_test_support::proxy::Proxy;
//! let Some(zk) = ApacheZk::start() else { return };
//! let proxy = Proxy::start(zk.addr());
//! // connect a client to proxy.connect_string() ...
//! proxy.cut(); // ... and watch it reconnect
//! ```
//!
//! Every connection gets two forwarding threads, one per direction; the
//! proxy only ever binds and connects 127.0.0.1/loopback. Dropping the
//! [`Proxy`] closes every connection and joins every thread it started.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the proxy waits to connect to the upstream server.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a blocked forwarding thread wakes up to check whether its
/// connection was closed (sockets are also shut down, which wakes it at
/// once; this bounds the wait if that ever does not).
const POLL: Duration = Duration::from_millis(50);

/// A TCP proxy on 127.0.0.1 in front of one upstream server, with knobs to
/// inject faults. All methods take `&self`, so a test can share it (e.g.
/// in an `Arc`) with the code driving the client.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy listening on `127.0.0.1:0` that forwards every
    /// connection to `upstream`.
    ///
    /// When `upstream` refuses a connection, the client's connection is
    /// closed right after it is accepted.
    ///
    /// # Panics
    /// When `upstream` is not a loopback address (the proxy never talks to
    /// the outside), or when no loopback port can be bound.
    pub fn start(upstream: SocketAddr) -> Proxy {
        assert!(upstream.ip().is_loopback(), "the test proxy only forwards to loopback, not {upstream}");
        #[allow(clippy::expect_used)]
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy on loopback");
        #[allow(clippy::expect_used)]
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            closing: AtomicBool::new(false),
            refuse: AtomicBool::new(false),
            stalled: Mutex::new(false),
            resumed: Condvar::new(),
            reply_budget: Mutex::new(None),
            replies_dropped: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let for_acceptor = Arc::clone(&shared);
        #[allow(clippy::expect_used)]
        let acceptor = std::thread::Builder::new()
            .name(format!("zk-proxy-accept-{}", addr.port()))
            .spawn(move || for_acceptor.accept_loop(&listener))
            .expect("spawn the proxy's accept thread");
        Proxy { addr, shared, acceptor: Some(acceptor) }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:port`, for a client's connect string.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }

    /// The server the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Closes every live connection now, on both sides (each peer sees
    /// end-of-stream or a reset; bytes held by [`stall`](Self::stall) are
    /// lost). New connections are accepted and forwarded as before.
    pub fn cut(&self) {
        self.shared.cut();
    }

    /// While `true`, each new connection is accepted and immediately
    /// closed, as by a server that dies as soon as it is reached: the
    /// client's TCP connect succeeds (the kernel completes the handshake),
    /// then its first read sees end-of-stream (or its write a reset) at
    /// once, so the client's ZooKeeper handshake fails fast. Nothing is
    /// forwarded to the upstream server. Live connections are not touched:
    /// call [`cut`](Self::cut) too to simulate a crash.
    pub fn set_refuse(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// While `true`, no byte is forwarded in either direction, as on a hung
    /// network: connections stay open and data is **held**, not dropped
    /// (what was read sits in the proxy, the rest in the kernel's socket
    /// buffers until TCP flow control stops the sender). `stall(false)`
    /// delivers everything held, in order. A chunk already being written
    /// when `stall(true)` is called may still arrive. New connections are
    /// accepted (and stalled) too.
    pub fn stall(&self, stalled: bool) {
        *lock(&self.shared.stalled) = stalled;
        self.shared.resumed.notify_all();
    }

    /// Arms a one-shot trap on server→client traffic: the next `n`
    /// ZooKeeper frames (4-byte big-endian length, then that many bytes)
    /// the server sends are forwarded; the one after is swallowed whole and
    /// the connection it was on is [`cut`](Self::cut). Client→server
    /// traffic is untouched, so the server still applies the request whose
    /// reply is lost. The trap then disarms: later connections work
    /// normally.
    ///
    /// Frames are counted over all connections, from the first one whose
    /// first byte arrives after this call, and every frame counts: connect
    /// responses, ping replies and watch notifications as well as replies.
    /// With `n == 0` the very next frame is swallowed. Calling it again
    /// re-arms with the new `n`.
    pub fn drop_replies_after(&self, n: u64) {
        *lock(&self.shared.reply_budget) = Some(n);
    }

    /// Disarms [`drop_replies_after`](Self::drop_replies_after) when it
    /// has not fired yet.
    pub fn keep_replies(&self) {
        *lock(&self.shared.reply_budget) = None;
    }

    /// How many frames [`drop_replies_after`](Self::drop_replies_after)
    /// has swallowed so far (each time cutting its connection).
    pub fn replies_dropped(&self) -> u64 {
        self.shared.replies_dropped.load(Ordering::SeqCst)
    }

    /// How many connections the proxy forwarded so far (not counting
    /// those closed by [`set_refuse`](Self::set_refuse) or because the
    /// upstream server refused them).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// How many forwarded connections are still open in at least one
    /// direction.
    pub fn live_connections(&self) -> usize {
        lock(&self.shared.conns).len()
    }
}

impl Drop for Proxy {
    /// Stops accepting, closes every connection and joins every thread.
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            // Wake the blocking accept() so the thread sees `closing`. Only
            // join when that worked, so dropping can never hang.
            if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
                let _ = acceptor.join();
            }
        }
        // The acceptor is gone, so no connection can be added after this.
        self.shared.cut();
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// State shared by the [`Proxy`] handle and its threads.
#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    /// Set when the proxy is dropped.
    closing: AtomicBool,
    refuse: AtomicBool,
    stalled: Mutex<bool>,
    /// Notified when `stalled` turns false or connections are cut.
    resumed: Condvar,
    /// Server→client frames still to forward before swallowing one;
    /// `None` when disarmed.
    reply_budget: Mutex<Option<u64>>,
    replies_dropped: AtomicU64,
    accepted: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Every forwarding thread not yet known to be finished.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// One proxied connection: the client's socket and ours to the server.
#[derive(Debug)]
struct Conn {
    id: u64,
    client: TcpStream,
    server: TcpStream,
    closed: AtomicBool,
    /// Forwarding threads still running (2, 1 or 0).
    halves: AtomicUsize,
}

impl Conn {
    /// Closes both sockets both ways; wakes threads blocked on them.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Which way a forwarding thread moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

impl Shared {
    fn accept_loop(self: &Arc<Self>, listener: &TcpListener) {
        for incoming in listener.incoming() {
            if self.closing.load(Ordering::SeqCst) {
                return;
            }
            match incoming {
                Ok(client) if self.refuse.load(Ordering::SeqCst) => {
                    let _ = client.shutdown(Shutdown::Both);
                }
                Ok(client) => self.open(client),
                // E.g. out of file descriptors: try again shortly.
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// Connects `client` to the upstream server and starts forwarding.
    fn open(self: &Arc<Self>, client: TcpStream) {
        let Ok(server) = TcpStream::connect_timeout(&self.upstream, UPSTREAM_CONNECT_TIMEOUT) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        for s in [&client, &server] {
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(POLL));
        }
        let id = self.accepted.fetch_add(1, Ordering::SeqCst);
        let conn = Arc::new(Conn {
            id,
            client,
            server,
            closed: AtomicBool::new(false),
            halves: AtomicUsize::new(2),
        });
        lock(&self.conns).insert(id, Arc::clone(&conn));
        let mut threads = lock(&self.threads);
        // Finished threads need no join.
        threads.retain(|t| !t.is_finished());
        for dir in [Direction::ToServer, Direction::ToClient] {
            let (shared, half) = (Arc::clone(self), Arc::clone(&conn));
            let spawned = std::thread::Builder::new()
                .name(format!("zk-proxy-{id}-{dir:?}"))
                .spawn(move || shared.forward(&half, dir));
            match spawned {
                Ok(t) => threads.push(t),
                Err(_) => {
                    conn.close();
                    self.half_done(&conn);
                }
            }
        }
    }

    /// Moves bytes one way until end-of-stream, an error, or a cut.
    /// End-of-stream is passed on as a half-close, so the other direction
    /// keeps flowing.
    fn forward(&self, conn: &Conn, dir: Direction) {
        let (mut from, mut to) = match dir {
            Direction::ToServer => (&conn.client, &conn.server),
            Direction::ToClient => (&conn.server, &conn.client),
        };
        let mut frames = (dir == Direction::ToClient).then(Frames::default);
        let mut buf = vec![0u8; 16 * 1024];
        while self.wait_resumed(conn) {
            let n = match from.read(&mut buf) {
                Ok(0) => {
                    let _ = to.shutdown(Shutdown::Write);
                    break;
                }
                Ok(n) => n,
                Err(e) if is_timeout(&e) => continue,
                Err(_) => {
                    conn.close();
                    break;
                }
            };
            if !self.wait_resumed(conn) {
                break;
            }
            let (len, swallowed) = match &mut frames {
                Some(frames) => frames.feed(&buf[..n], || self.swallow_frame()),
                None => (n, false),
            };
            if to.write_all(&buf[..len]).is_err() || swallowed {
                conn.close();
                break;
            }
        }
        self.half_done(conn);
    }

    /// Blocks while stalled; `false` when the connection was closed.
    fn wait_resumed(&self, conn: &Conn) -> bool {
        let mut stalled = lock(&self.stalled);
        while *stalled && !conn.is_closed() {
            stalled = self.resumed.wait_timeout(stalled, POLL).unwrap_or_else(PoisonError::into_inner).0;
        }
        !conn.is_closed()
    }

    /// Called as a server→client frame starts: whether to swallow it.
    fn swallow_frame(&self) -> bool {
        let mut budget = lock(&self.reply_budget);
        match *budget {
            Some(0) => {
                *budget = None;
                self.replies_dropped.fetch_add(1, Ordering::SeqCst);
                true
            }
            Some(n) => {
                *budget = Some(n - 1);
                false
            }
            None => false,
        }
    }

    /// One forwarding thread of `conn` ended; the last one forgets it.
    fn half_done(&self, conn: &Conn) {
        if conn.halves.fetch_sub(1, Ordering::SeqCst) == 1 {
            lock(&self.conns).remove(&conn.id);
        }
    }

    fn cut(&self) {
        let conns: Vec<Arc<Conn>> = lock(&self.conns).drain().map(|(_, c)| c).collect();
        for c in conns {
            c.close();
        }
        // Wake threads held by a stall so they see their connection closed.
        self.resumed.notify_all();
    }
}

/// Tracks ZooKeeper frame boundaries in a byte stream without buffering.
#[derive(Debug, Default)]
struct Frames {
    header: [u8; 4],
    /// Bytes of the current length header seen so far (0 between frames).
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    body_left: u64,
}

impl Frames {
    /// Feeds the next `chunk` of the stream. `swallow` is asked at the
    /// first byte of each frame; on `true` the answer is the number of
    /// bytes before that frame and `true` (forward those, then cut).
    /// Otherwise it is `(chunk.len(), false)`. A negative length counts as
    /// an empty frame.
    fn feed(&mut self, chunk: &[u8], mut swallow: impl FnMut() -> bool) -> (usize, bool) {
        let mut i = 0;
        while i < chunk.len() {
            if self.body_left > 0 {
                let take = usize::try_from(self.body_left).unwrap_or(usize::MAX).min(chunk.len() - i);
                i += take;
                self.body_left -= take as u64;
                continue;
            }
            if self.header_len == 0 && swallow() {
                return (i, true);
            }
            self.header[self.header_len] = chunk[i];
            self.header_len += 1;
            i += 1;
            if self.header_len == self.header.len() {
                self.header_len = 0;
                self.body_left = u64::try_from(i32::from_be_bytes(self.header)).unwrap_or(0);
            }
        }
        (chunk.len(), false)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

/// Locks `m`, ignoring poisoning (the data stays consistent: every
/// critical section is a plain store or map update).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::{Frames, Proxy, is_timeout};

    /// The longest any single step of a test may block.
    const LIMIT: Duration = Duration::from_secs(5);

    /// A server echoing every byte back, on loopback (lives until the test
    /// process exits).
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut s);
                });
            }
        });
        addr
    }

    /// A server echoing every length-prefixed frame back, reporting each
    /// payload it received on the channel before answering.
    fn framed_echo_server() -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                let tx = tx.clone();
                thread::spawn(move || {
                    loop {
                        let mut len = [0u8; 4];
                        if s.read_exact(&mut len).is_err() {
                            return;
                        }
                        let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
                        if s.read_exact(&mut payload).is_err() {
                            return;
                        }
                        let _ = tx.send(payload.clone());
                        if s.write_all(&frame(&payload)).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    }

    fn reply(s: &mut TcpStream, msg: &[u8]) {
        s.write_all(&frame(msg)).unwrap();
        let mut back = vec![0u8; msg.len() + 4];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, frame(msg));
    }

    fn connect(proxy: &Proxy) -> TcpStream {
        let s = TcpStream::connect_timeout(&proxy.addr(), LIMIT).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s
    }

    fn roundtrip(s: &mut TcpStream, msg: &[u8]) {
        s.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }

    /// Asserts the peer closed `s` (end-of-stream or reset, not a timeout).
    fn assert_closed(s: &mut TcpStream) {
        let mut b = [0u8; 16];
        match s.read(&mut b) {
            Ok(0) => {}
            Err(e) if !is_timeout(&e) => {}
            other => panic!("expected the connection closed, got {other:?}"),
        }
    }

    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn forwards_both_ways_on_many_connections() {
        let proxy = Proxy::start(echo_server());
        assert_eq!(proxy.connect_string(), format!("127.0.0.1:{}", proxy.port()));
        let mut a = connect(&proxy);
        let mut b = connect(&proxy);
        roundtrip(&mut a, b"hello");
        roundtrip(&mut b, b"world");
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut writer = a.try_clone().unwrap();
        let sent = big.clone();
        let w = thread::spawn(move || writer.write_all(&sent).unwrap());
        let mut back = vec![0u8; big.len()];
        a.read_exact(&mut back).unwrap();
        w.join().unwrap();
        assert_eq!(back, big);
        assert_eq!(proxy.accepted(), 2);
        assert_eq!(proxy.live_connections(), 2);
    }

    #[test]
    fn half_close_is_passed_on() {
        let proxy = Proxy::start(echo_server());
        let mut s = connect(&proxy);
        s.write_all(b"last words").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"last words");
        wait_until("the connection to be forgotten", || proxy.live_connections() == 0);
    }

    #[test]
    fn cut_closes_live_connections_and_keeps_accepting() {
        let proxy = Proxy::start(echo_server());
        let mut a = connect(&proxy);
        let mut b = connect(&proxy);
        roundtrip(&mut a, b"a");
        roundtrip(&mut b, b"b");
        proxy.cut();
        assert_closed(&mut a);
        assert_closed(&mut b);
        assert_eq!(proxy.live_connections(), 0);
        let mut c = connect(&proxy);
        roundtrip(&mut c, b"still there");
        assert_eq!(proxy.accepted(), 3);
    }

    #[test]
    fn refuse_closes_new_connections_at_once() {
        let proxy = Proxy::start(echo_server());
        let mut live = connect(&proxy);
        roundtrip(&mut live, b"before");
        proxy.set_refuse(true);
        let start = Instant::now();
        let mut refused = connect(&proxy);
        let _ = refused.write_all(b"anyone?");
        assert_closed(&mut refused);
        assert!(start.elapsed() < Duration::from_secs(1), "refusal took {:?}", start.elapsed());
        assert_eq!(proxy.accepted(), 1);
        // Live connections are untouched.
        roundtrip(&mut live, b"during");
        proxy.set_refuse(false);
        let mut again = connect(&proxy);
        roundtrip(&mut again, b"after");
    }

    #[test]
    fn upstream_down_closes_the_client() {
        let down = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = down.local_addr().unwrap();
        drop(down);
        let proxy = Proxy::start(addr);
        let mut s = connect(&proxy);
        assert_closed(&mut s);
        assert_eq!(proxy.accepted(), 0);
    }

    #[test]
    fn stall_holds_data_until_resumed() {
        let proxy = Proxy::start(echo_server());
        let mut s = connect(&proxy);
        roundtrip(&mut s, b"warm");
        proxy.stall(true);
        s.write_all(b"held").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut b = [0u8; 4];
        let err = s.read(&mut b).expect_err("nothing may arrive while stalled");
        assert!(is_timeout(&err), "{err:?}");
        // A connection made while stalled stays open but silent too.
        let mut late = connect(&proxy);
        late.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        late.write_all(b"late").unwrap();
        assert!(is_timeout(&late.read(&mut b).expect_err("stalled")));
        proxy.stall(false);
        s.set_read_timeout(Some(LIMIT)).unwrap();
        late.set_read_timeout(Some(LIMIT)).unwrap();
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"held");
        late.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"late");
        roundtrip(&mut s, b"flowing again");
    }

    #[test]
    fn cut_while_stalled_closes() {
        let proxy = Proxy::start(echo_server());
        let mut s = connect(&proxy);
        proxy.stall(true);
        s.write_all(b"lost").unwrap();
        thread::sleep(Duration::from_millis(100));
        proxy.cut();
        assert_closed(&mut s);
        wait_until("the forwarding threads to end", || proxy.live_connections() == 0);
    }

    #[test]
    fn drop_replies_after_lets_the_server_apply_but_loses_the_reply() {
        let (addr, received) = framed_echo_server();
        let proxy = Proxy::start(addr);
        let mut s = connect(&proxy);
        reply(&mut s, b"one");
        proxy.drop_replies_after(1);
        reply(&mut s, b"two");
        s.write_all(&frame(b"three")).unwrap();
        assert_closed(&mut s);
        let got: Vec<Vec<u8>> = (0..3).map(|_| received.recv_timeout(LIMIT).unwrap()).collect();
        assert_eq!(
            got,
            [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()],
            "the server got every request"
        );
        assert_eq!(proxy.replies_dropped(), 1);
        // One-shot: the next connection works.
        let mut s = connect(&proxy);
        reply(&mut s, b"four");
        reply(&mut s, b"five");
        // Disarming before it fires.
        proxy.drop_replies_after(0);
        proxy.keep_replies();
        reply(&mut s, b"six");
        assert_eq!(proxy.replies_dropped(), 1);
    }

    #[test]
    fn drop_replies_after_zero_swallows_the_next_frame() {
        let (addr, received) = framed_echo_server();
        let proxy = Proxy::start(addr);
        let mut s = connect(&proxy);
        proxy.drop_replies_after(0);
        s.write_all(&frame(b"applied")).unwrap();
        assert_closed(&mut s);
        assert_eq!(received.recv_timeout(LIMIT).unwrap(), b"applied");
        assert_eq!(proxy.replies_dropped(), 1);
    }

    /// Feeds `stream` to a fresh [`Frames`] in `chunk`-byte chunks,
    /// swallowing frame number `swallow` (1-based) if given; returns the
    /// bytes forwarded and the frame starts seen.
    fn track(stream: &[u8], chunk: usize, swallow: Option<usize>) -> (usize, usize) {
        let mut frames = Frames::default();
        let (mut forwarded, mut starts) = (0, 0);
        for c in stream.chunks(chunk) {
            let (n, cut) = frames.feed(c, || {
                starts += 1;
                Some(starts) == swallow
            });
            forwarded += n;
            if cut {
                break;
            }
        }
        (forwarded, starts)
    }

    #[test]
    fn frames_are_tracked_across_chunk_boundaries() {
        let mut stream = frame(b"abc");
        stream.extend(frame(b""));
        stream.extend(frame(b"defgh"));
        for chunk in [1, 2, 3, 5, 100] {
            assert_eq!(track(&stream, chunk, None), (stream.len(), 3), "chunks of {chunk}");
            // Frames 1 and 2 are 7 + 4 bytes: those pass, frame 3 does not.
            assert_eq!(track(&stream, chunk, Some(3)), (11, 3), "chunks of {chunk}");
            assert_eq!(track(&stream, chunk, Some(1)), (0, 1), "chunks of {chunk}");
        }
        // A negative length is an empty frame.
        let mut neg = (-5i32).to_be_bytes().to_vec();
        neg.extend(frame(b"x"));
        assert_eq!(track(&neg, 3, None), (neg.len(), 2));
    }

    #[test]
    fn drop_closes_everything_promptly() {
        let proxy = Proxy::start(echo_server());
        let mut a = connect(&proxy);
        let mut b = connect(&proxy);
        roundtrip(&mut a, b"x");
        proxy.stall(true);
        b.write_all(b"stuck").unwrap();
        let start = Instant::now();
        drop(proxy);
        assert!(start.elapsed() < Duration::from_secs(2), "drop took {:?}", start.elapsed());
        assert_closed(&mut a);
        assert_closed(&mut b);
    }

    #[test]
    #[should_panic(expected = "only forwards to loopback")]
    fn refuses_non_loopback_upstreams() {
        let _ = Proxy::start(SocketAddr::from(([192, 0, 2, 1], 2181)));
    }
}
