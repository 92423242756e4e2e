//! zk-server against bad clients: malformed frames and requests, a client
//! that stops reading, a flood of connections, stalled handshakes, and a
//! seeded fuzzer. Each bad connection may be closed (or answered with an
//! error); a healthy client must keep working throughout and no server
//! code may panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use common::raw::Raw;
use common::within;
use zk_client::{Client, CreateMode};
use zk_proto::records::*;
use zk_proto::types::perms;
use zk_proto::{ErrorCode, OpCode, Record, Request};
use zk_server::{Server, ServerConfig};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// splitmix64: a small seeded generator, so that every run can be replayed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// Up to `max - 1` random bytes.
    fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
}

thread_local! {
    /// Set while a thread runs this file's own code (test bodies, the
    /// blocking helpers, the fuzz threads).
    static TEST_SIDE: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as the test's own while alive: its panics are
/// the test's (failed assertions), not the server's.
struct TestSide(bool);

impl TestSide {
    fn enter() -> TestSide {
        TestSide(TEST_SIDE.with(|t| t.replace(true)))
    }
}

impl Drop for TestSide {
    fn drop(&mut self) {
        TEST_SIDE.with(|t| t.set(self.0));
    }
}

/// Counts every panic raised in this process outside the test's own
/// threads, whatever thread or task it happens on and wherever it is
/// located: the server under test runs here, and a panic inside a
/// dependency (or the standard library) that our input triggers counts as
/// much as one in our own files. The first few are kept for the failure
/// message ([`panic_report`]).
fn server_panics() -> &'static AtomicUsize {
    static COUNT: OnceLock<AtomicUsize> = OnceLock::new();
    static HOOK: OnceLock<()> = OnceLock::new();
    let count = COUNT.get_or_init(|| AtomicUsize::new(0));
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !TEST_SIDE.with(Cell::get) {
                if let Some(c) = COUNT.get() {
                    c.fetch_add(1, Ordering::SeqCst);
                }
                let mut seen = PANICS_SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if seen.len() < 10 {
                    let thread = std::thread::current().name().unwrap_or("<unnamed>").to_string();
                    seen.push(format!("thread {thread}: {info}"));
                }
            }
            previous(info);
        }));
    });
    count
}

/// The first panics [`server_panics`] counted, for a failure message.
static PANICS_SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn panic_report() -> String {
    PANICS_SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).join("\n")
}

fn base_cfg() -> ServerConfig {
    let mut cfg = ServerConfig::new("");
    cfg.client_port = 0;
    cfg.client_port_address = Some(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    cfg.four_letter_words = vec!["*".into()];
    cfg.extended_types_enabled = true;
    cfg.max_client_cnxns = 0;
    cfg
}

async fn connect(cs: &str) -> Client {
    within(20, "connect", Client::builder(cs).session_timeout(Duration::from_secs(10)).connect())
        .await
        .expect("connect")
}

async fn blocking<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let own = move || {
        let _own = TestSide::enter();
        f()
    };
    within(secs, what, tokio::task::spawn_blocking(own)).await.expect("blocking task")
}

/// The healthy client writes and reads back, within 10 s.
async fn healthy(c: &Client, what: &str) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let k = N.fetch_add(1, Ordering::Relaxed);
    within(10, &format!("healthy client after: {what}"), async {
        let path = format!("/healthy-{k}");
        let data = format!("after {what}");
        c.create(&path, data.as_bytes(), CreateMode::Persistent)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let (got, _) = c.get_data(&path).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(&got[..], data.as_bytes(), "{what}");
    })
    .await;
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn encode<R: Record>(r: &R) -> Vec<u8> {
    let mut b = BytesMut::new();
    r.encode(&mut b);
    b.to_vec()
}

/// A request body (header included) with an arbitrary opcode number.
fn request(xid: i32, opcode: i32, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i32(xid);
    b.put_i32(opcode);
    b.put_slice(body);
    b.to_vec()
}

fn typed(xid: i32, req: &Request) -> Vec<u8> {
    request(xid, req.opcode().code(), &req.body_bytes())
}

fn new_session() -> ConnectRequest {
    ConnectRequest {
        time_out: 30_000,
        passwd: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
        ..ConnectRequest::default()
    }
}

/// Reads until the server closes the connection (EOF or reset): `Ok` with
/// what was received, or `Err` with it when `secs` pass first.
fn wait_closed(sock: &mut TcpStream, secs: u64) -> Result<Vec<u8>, Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(got);
        }
        let _ =
            sock.set_read_timeout(Some(left.min(Duration::from_millis(200)).max(Duration::from_millis(1))));
        match sock.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return Ok(got),
        }
    }
}

/// The frames in `bytes` (a trailing partial frame is dropped).
fn frames(bytes: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= bytes.len() {
        let len = i32::from_be_bytes(bytes[off..off + 4].try_into().unwrap());
        let Ok(len) = usize::try_from(len) else { break };
        if off + 4 + len > bytes.len() {
            break;
        }
        out.push(Bytes::copy_from_slice(&bytes[off + 4..off + 4 + len]));
        off += 4 + len;
    }
    out
}

/// Reads one reply frame (skipping notifications) with a timeout.
fn read_reply(sock: &mut TcpStream, secs: u64) -> Option<(ReplyHeader, Bytes)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Some(f) = frames(&buf).into_iter().next() {
            let mut f = f;
            let h = ReplyHeader::decode(&mut f).ok()?;
            let consumed = 4 + 16 + f.len();
            buf.drain(..consumed);
            if h.xid == zk_proto::xid::NOTIFICATION {
                continue;
            }
            return Some((h, f));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let _ =
            sock.set_read_timeout(Some(left.min(Duration::from_millis(200)).max(Duration::from_millis(1))));
        match sock.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return None,
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Malformed frames and requests
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The connection is closed without any reply.
    Closed,
    /// A reply header with this xid and error, then the connection closes.
    ReplyThenClosed(i32, ErrorCode),
    /// The handshake is answered as an expired session, then closed.
    ExpiredThenClosed,
    /// A reply with this xid and error; the connection stays usable.
    Answered(i32, ErrorCode),
}

struct Case {
    name: &'static str,
    /// Whether a valid handshake comes first.
    handshake: bool,
    bytes: Vec<u8>,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    let max = zk_proto::frame::JUTE_MAXBUFFER_DEFAULT;
    let pre = |name, bytes, expect| Case { name, handshake: false, bytes, expect };
    let post = |name, bytes, expect| Case { name, handshake: true, bytes, expect };
    let over = {
        let mut b = ((max + 1) as i32).to_be_bytes().to_vec();
        b.extend_from_slice(&[0u8; 64]);
        b
    };
    let get = |path: &str| Request::GetData(GetDataRequest { path: path.into(), watch: false });
    let create = |path: &str, data: Vec<u8>| {
        Request::Create(CreateRequest {
            path: path.into(),
            data: Some(data.into()),
            acl: Acl::open_unsafe(),
            flags: 0,
        })
    };
    // A create whose frame is exactly jute.maxbuffer long: accepted.
    let at_max = {
        let base = typed(7, &create("/at-max", Vec::new())).len();
        typed(7, &create("/at-max", vec![b'm'; max - base]))
    };
    assert_eq!(at_max.len(), max);
    let over_by_one =
        typed(8, &create("/over-max", vec![b'o'; max - typed(8, &create("/over-max", vec![])).len() + 1]));
    // Invalid UTF-8 in a path: "/\xff\xfe".
    let bad_utf8 = {
        let mut b = BytesMut::new();
        b.put_i32(3);
        b.put_slice(&[b'/', 0xff, 0xfe]);
        b.put_u8(0);
        request(3, OpCode::GetData.code(), &b)
    };
    let bad_utf8_create = {
        let mut b = BytesMut::new();
        b.put_i32(4);
        b.put_slice(&[b'/', b'a', 0xc3, 0x28]);
        b.put_slice(&encode(&Some(Bytes::from_static(b"x"))));
        b.put_slice(&encode(&Acl::open_unsafe()));
        b.put_i32(0);
        request(3, OpCode::Create.code(), &b)
    };
    let huge_acl_count = {
        let mut b = BytesMut::new();
        b.put_slice(&encode(&"/acl-bomb".to_string()));
        b.put_slice(&encode(&Some(Bytes::from_static(b"x"))));
        b.put_i32(i32::MAX);
        b.put_i32(0);
        request(5, OpCode::Create.code(), &b)
    };
    let exists_body = encode(&ExistsRequest { path: "/".into(), watch: true });
    let check = Request::Check(CheckVersionRequest { path: "/".into(), version: 0 });
    let mut future = new_session();
    future.last_zxid_seen = i64::MAX;
    let mut unknown_session = new_session();
    unknown_session.session_id = 0x1234_5678;
    let mut neg_passwd = encode(&new_session());
    // The passwd length field (after 4+8+4+8 bytes) set to -7.
    neg_passwd[24..28].copy_from_slice(&(-7i32).to_be_bytes());
    vec![
        // Before the handshake.
        pre("connect frame over jute.maxbuffer", over.clone(), Expect::Closed),
        pre("negative connect frame length", vec![0xff, 0xff, 0xff, 0xfe, 1, 2, 3], Expect::Closed),
        pre("HTTP instead of ZooKeeper", b"GET / HTTP/1.1\r\nHost: zk\r\n\r\n".to_vec(), Expect::Closed),
        pre(
            "TLS client hello",
            vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03],
            Expect::Closed,
        ),
        pre("connect frame too short", frame(&[0, 0, 0, 0, 1]), Expect::Closed),
        pre("empty connect frame", frame(&[]), Expect::Closed),
        pre("connect with a negative password length", frame(&neg_passwd), Expect::Closed),
        pre("connect from a client that saw the future", frame(&encode(&future)), Expect::Closed),
        pre("connect to an unknown session", frame(&encode(&unknown_session)), Expect::ExpiredThenClosed),
        pre("garbage after a 4-byte zero", vec![0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef], Expect::Closed),
        // After the handshake.
        post("frame over jute.maxbuffer", over, Expect::Closed),
        post("frame one byte over jute.maxbuffer", frame(&over_by_one), Expect::Closed),
        post("frame of exactly jute.maxbuffer", frame(&at_max), Expect::Answered(7, ErrorCode::Ok)),
        post("negative frame length", vec![0x80, 0, 0, 0], Expect::Closed),
        post("frame length -1", vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], Expect::Closed),
        post("empty frame", frame(&[]), Expect::Closed),
        post("request header truncated", frame(&[0, 0, 0, 1, 0, 0]), Expect::Closed),
        post("invalid UTF-8 in a getData path", frame(&bad_utf8), Expect::Closed),
        post("invalid UTF-8 in a create path", frame(&bad_utf8_create), Expect::Closed),
        post(
            "unknown opcode",
            frame(&request(11, 999, b"whatever")),
            Expect::ReplyThenClosed(11, ErrorCode::Unimplemented),
        ),
        post(
            "negative unknown opcode",
            frame(&request(12, -77, b"")),
            Expect::ReplyThenClosed(12, ErrorCode::Unimplemented),
        ),
        post(
            "top-level check",
            frame(&typed(13, &check)),
            Expect::ReplyThenClosed(13, ErrorCode::Unimplemented),
        ),
        post(
            "deleteContainer from a client",
            frame(&typed(
                14,
                &Request::DeleteContainer(DeleteRequest { path: "/exists".into(), version: -1 }),
            )),
            Expect::ReplyThenClosed(14, ErrorCode::Unimplemented),
        ),
        post(
            "sasl",
            frame(&typed(15, &Request::Sasl(GetSaslRequest { token: Some(Bytes::from_static(b"tok")) }))),
            // No JAAS users configured: the SASL attempt fails, as a wrong
            // password does (Apache logs a NullPointerException here).
            Expect::ReplyThenClosed(15, ErrorCode::AuthFailed),
        ),
        post(
            "create with an exists body",
            frame(&request(16, OpCode::Create.code(), &exists_body)),
            Expect::Closed,
        ),
        post("setData with an empty body", frame(&request(17, OpCode::SetData.code(), b"")), Expect::Closed),
        post(
            "multi with a garbage body",
            frame(&request(18, OpCode::Multi.code(), &[0, 0, 0, 1, 9, 9])),
            Expect::Closed,
        ),
        post(
            "multi with an unknown op type",
            frame(&request(
                19,
                OpCode::Multi.code(),
                &encode(&MultiHeader { opcode: OpCode::Unknown(77), done: false, err: -1 }),
            )),
            Expect::Closed,
        ),
        post("create with an ACL count of i32::MAX", frame(&huge_acl_count), Expect::Closed),
        post(
            "auth with an unknown scheme",
            frame(&typed(
                zk_proto::xid::AUTH,
                &Request::Auth(AuthPacket {
                    auth_type: 0,
                    scheme: "bogus".into(),
                    auth: Bytes::from_static(b"x"),
                }),
            )),
            Expect::ReplyThenClosed(zk_proto::xid::AUTH, ErrorCode::AuthFailed),
        ),
        // Errors that are answered: the connection stays.
        post("relative path", frame(&typed(20, &get("relative"))), Expect::Answered(20, ErrorCode::NoNode)),
        post(
            "create with an empty ACL",
            frame(&typed(
                21,
                &Request::Create(CreateRequest { path: "/no-acl".into(), data: None, acl: vec![], flags: 0 }),
            )),
            Expect::Answered(21, ErrorCode::InvalidAcl),
        ),
        post(
            "create with an unknown mode",
            frame(&typed(
                22,
                &Request::Create(CreateRequest {
                    path: "/mode".into(),
                    data: None,
                    acl: Acl::open_unsafe(),
                    flags: 77,
                }),
            )),
            Expect::Answered(22, ErrorCode::BadArguments),
        ),
        post(
            "create at a trailing-slash path",
            frame(&typed(23, &create("/exists/", b"x".to_vec()))),
            Expect::Answered(23, ErrorCode::BadArguments),
        ),
        post(
            "multiRead with a write op",
            frame(&typed(
                24,
                &Request::MultiRead(MultiRequest {
                    ops: vec![MultiOp::Delete(DeleteRequest { path: "/x".into(), version: -1 })],
                }),
            )),
            Expect::Answered(24, ErrorCode::Ok),
        ),
        post(
            "multi with a read op",
            frame(&typed(
                25,
                &Request::Multi(MultiRequest {
                    ops: vec![MultiOp::GetData(GetDataRequest { path: "/".into(), watch: false })],
                }),
            )),
            Expect::Answered(25, ErrorCode::Ok),
        ),
        post(
            "set a zero-length ACL list",
            frame(&typed(26, &Request::SetAcl(SetAclRequest { path: "/".into(), acl: vec![], version: -1 }))),
            Expect::Answered(26, ErrorCode::InvalidAcl),
        ),
    ]
}

/// Runs one case on a new connection; panics with the case's name when the
/// server does not do what is expected.
fn run_case(addr: SocketAddr, case: &Case) {
    let name = case.name;
    let mut sock = if case.handshake {
        Raw::connect(addr, 30_000).sock
    } else {
        TcpStream::connect(addr).expect("connect")
    };
    let _ = sock.set_write_timeout(Some(Duration::from_secs(10)));
    // The server may close before everything is written: not an error here.
    let _ = sock.write_all(&case.bytes);
    match case.expect {
        Expect::Closed => match wait_closed(&mut sock, 10) {
            Ok(got) => {
                assert!(got.is_empty(), "{name}: closed, but only after sending {} bytes: {got:?}", got.len())
            }
            Err(got) => {
                panic!("{name}: the connection was not closed within 10 s (received {} bytes)", got.len())
            }
        },
        Expect::ExpiredThenClosed => {
            let got = wait_closed(&mut sock, 10).unwrap_or_else(|_| panic!("{name}: not closed"));
            let f = frames(&got);
            assert_eq!(f.len(), 1, "{name}: one frame");
            let rsp = ConnectResponse::decode_exact(f[0].clone()).expect("connect response");
            assert_eq!((rsp.time_out, rsp.session_id), (0, 0), "{name}: an expired session");
        }
        Expect::ReplyThenClosed(xid, err) => {
            let got = wait_closed(&mut sock, 10).unwrap_or_else(|_| panic!("{name}: not closed"));
            let f = frames(&got);
            assert!(!f.is_empty(), "{name}: closed without a reply");
            let h = ReplyHeader::decode(&mut f[0].clone()).expect("reply header");
            assert_eq!((h.xid, h.err), (xid, err), "{name}");
        }
        Expect::Answered(xid, err) => {
            let (h, _) = read_reply(&mut sock, 10).unwrap_or_else(|| panic!("{name}: no reply"));
            assert_eq!((h.xid, h.err), (xid, err), "{name}");
            // Still usable: a ping is answered.
            let _ = sock.write_all(&frame(&request(zk_proto::xid::PING, OpCode::Ping.code(), b"")));
            let (h, _) =
                read_reply(&mut sock, 10).unwrap_or_else(|| panic!("{name}: closed after an answered error"));
            assert_eq!(h.xid, zk_proto::xid::PING, "{name}: ping reply");
        }
    }
}

/// Each malformed input closes its own connection (or is answered with an
/// error); a separate healthy client keeps working after every one, and no
/// server code panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_input_only_affects_its_own_connection() {
    let _own = TestSide::enter();
    common::trace_init();
    let panics = server_panics().load(Ordering::SeqCst);
    let server = Server::start_temp().await.expect("start");
    let addr = server.addr();
    let c = connect(&server.connect_string()).await;
    c.create("/exists", b"", CreateMode::Persistent).await.unwrap();
    healthy(&c, "start").await;
    let cases = cases();
    let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    let cases = Arc::new(cases);
    for (i, name) in names.iter().enumerate() {
        let cases = cases.clone();
        blocking(30, name, move || run_case(addr, &cases[i])).await;
        healthy(&c, name).await;
    }
    // The at-max frame was accepted and stored whole.
    let (data, _) = c.get_data("/at-max").await.unwrap();
    assert!(data.len() > 1_000_000 && data.iter().all(|&b| b == b'm'));
    assert_eq!(c.exists("/over-max").await.unwrap(), None);
    assert_eq!(server_panics().load(Ordering::SeqCst), panics, "server code panicked:\n{}", panic_report());
    c.close().await.unwrap();
    server.stop().await;
}

/// A handshake that never completes is dropped after tickTime * 10, and a
/// connection that stalls inside a frame is dropped when its session
/// expires; both free their per-IP slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_dropped_and_free_their_slots() {
    let _own = TestSide::enter();
    common::trace_init();
    let mut cfg = base_cfg();
    cfg.tick_time = Duration::from_millis(100); // handshake timeout 1 s, sessions 0.2..2 s
    cfg.max_client_cnxns = 3;
    let server = Server::start_temp_with(cfg).await.expect("start");
    let addr = server.addr();
    blocking(60, "stalls", move || {
        // Three slowloris connections take every slot ...
        let mut slow: Vec<TcpStream> = (0..3)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&[0, 0]).unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let mut extra = TcpStream::connect(addr).unwrap();
        let _ = extra.write_all(&frame(&encode(&new_session())));
        assert!(wait_closed(&mut extra, 5).is_ok(), "a fourth connection is refused");
        // ... until the handshake timeout drops them.
        let start = Instant::now();
        for s in &mut slow {
            assert!(wait_closed(s, 10).is_ok(), "a stalled handshake is dropped");
        }
        eprintln!("stalled handshakes dropped after {:?}", start.elapsed());
        // A session that stalls in the middle of a frame: dropped on expiry.
        let mut raw = Raw::connect_with(addr, ConnectRequest { time_out: 500, ..new_session() }).1;
        raw.send_bytes(&[0, 0, 0, 100, 1, 2, 3]);
        let start = Instant::now();
        assert!(wait_closed(&mut raw.sock, 10).is_ok(), "a stalled session is dropped when it expires");
        eprintln!("stalled session dropped after {:?}", start.elapsed());
        // Every slot is free again.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ok = Vec::new();
        while ok.len() < 3 {
            assert!(Instant::now() < deadline, "slots were not freed: {} of 3 admitted", ok.len());
            if let Some(r) = try_session(addr) {
                ok.push(r);
            } else {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
    .await;
    server.stop().await;
}

/// A session on a plain socket (so that a refused connection is not a panic).
struct Session {
    sock: TcpStream,
}

impl Session {
    /// Whether a ping is answered.
    fn ping(&mut self) -> bool {
        if self.sock.write_all(&frame(&request(zk_proto::xid::PING, OpCode::Ping.code(), b""))).is_err() {
            return false;
        }
        read_reply(&mut self.sock, 10).is_some_and(|(h, _)| h.xid == zk_proto::xid::PING)
    }
}

/// A new session, or `None` when the server closes the connection instead.
fn try_session(addr: SocketAddr) -> Option<Session> {
    let mut sock = TcpStream::connect(addr).ok()?;
    sock.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    sock.write_all(&frame(&encode(&new_session()))).ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(f) = frames(&buf).into_iter().next() {
            let rsp = ConnectResponse::decode_exact(f).ok()?;
            return (rsp.session_id != 0).then_some(Session { sock });
        }
        if Instant::now() > deadline {
            panic!("no handshake answer within 10 s");
        }
        sock.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
        match sock.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return None,
        }
    }
}

// ---------------------------------------------------------------------------
// 2. A client that stops reading
// ---------------------------------------------------------------------------

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Connects, then pipelines `count` getData of `path` and never reads a
/// reply. Returns the connection (kept open) and how many were sent.
fn stuck_client(addr: SocketAddr, session_ms: i32, path: &'static str, count: i32) -> (Raw, usize) {
    let raw = Raw::connect(addr, session_ms);
    let mut w = raw.sock.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let req = Request::GetData(GetDataRequest { path: path.into(), watch: false });
    let mut sent = 0usize;
    for xid in 1..=count {
        // The server may stop reading at some point: then the socket
        // buffers fill and the write times out.
        if w.write_all(&frame(&typed(xid, &req))).is_err() {
            break;
        }
        sent += 1;
    }
    (raw, sent)
}

/// An exists on a fresh raw session, answered within 10 s? (No client-side
/// timeouts or reconnects in the way.)
fn probe(addr: SocketAddr) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut raw = Raw::connect(addr, 30_000);
    match raw.call(&Request::Exists(ExistsRequest { path: "/".into(), watch: false })) {
        Some((h, _)) if h.err.is_ok() => Ok(t0.elapsed()),
        Some((h, _)) => Err(format!("answered {:?}", h.err)),
        None => Err(format!("no answer within {:?} (the session was created)", t0.elapsed())),
    }
}

/// A client pipelines 3000 getData of a 512 KiB node and never reads a
/// reply. The server may close that connection, but it must not stall the
/// other clients nor buffer without bound.
///
/// It does stall them, for good: every request takes a
/// `globalOutstandingLimit` permit (1000) that is given back only when the
/// connection's writer task encodes the reply. That writer is blocked in
/// `write_all` on the full socket, so the stuck client's queued replies
/// keep ~1000 permits, and then every connection's reader waits in
/// `outstanding.acquire_owned()` forever: no request of any client reaches
/// the core (handshakes still do, they take no permit), healthy sessions
/// stop being touched and expire. Nothing ends it but the stuck client
/// closing its socket: its session expiring queues `Out::Close` behind the
/// blocked write, and no write timeout exists (see
/// `a_non_reading_client_is_dropped_when_its_session_expires`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_does_not_stall_others() {
    let _own = TestSide::enter();
    common::trace_init();
    let server = Server::start_temp().await.expect("start");
    let addr = server.addr();
    let c = connect(&server.connect_string()).await;
    c.create("/big", &vec![7u8; 512 * 1024], CreateMode::Persistent).await.unwrap();
    healthy(&c, "setup").await;
    let rss_before = rss_kib();

    let (stuck, sent) = blocking(60, "stuck client", move || stuck_client(addr, 30_000, "/big", 3000)).await;
    eprintln!("the stuck client sent {sent} getData requests (~{} MiB of replies)", sent / 2);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let answered = blocking(30, "probe", move || probe(addr)).await;
    assert!(answered.is_ok(), "another client's request while one client does not read: {answered:?}");
    healthy(&c, "a client stopped reading").await;
    let c2 = connect(&server.connect_string()).await;
    healthy(&c2, "a client stopped reading (new client)").await;
    if let (Some(before), Some(after)) = (rss_before, rss_kib()) {
        let grown = after.saturating_sub(before) / 1024;
        eprintln!("memory grew by {grown} MiB while the client does not read");
        assert!(grown < 1024, "the server buffers {grown} MiB for one client that does not read");
    }
    drop(stuck);
    healthy(&c, "the stuck client went away").await;
    c2.close().await.unwrap();
    c.close().await.unwrap();
    server.stop().await;
}

/// A client that stops reading (its replies fill the socket) and goes quiet
/// must be dropped once its session expires, freeing its per-IP slot; the
/// outstanding limit is set high here so that the stall above does not
/// hide this.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_non_reading_client_is_dropped_when_its_session_expires() {
    let _own = TestSide::enter();
    common::trace_init();
    let mut cfg = base_cfg();
    cfg.tick_time = Duration::from_millis(100); // sessions of 0.2..2 s
    cfg.max_client_cnxns = 2;
    cfg.global_outstanding_limit = 1_000_000;
    let server = Server::start_temp_with(cfg).await.expect("start");
    let addr = server.addr();
    let c = connect(&server.connect_string()).await;
    c.create("/big", &vec![7u8; 512 * 1024], CreateMode::Persistent).await.unwrap();
    let (stuck, sent) = blocking(60, "stuck client", move || stuck_client(addr, 1_000, "/big", 400)).await;
    eprintln!(
        "the stuck client (session {:#x}) sent {sent} getData requests (~{} MiB of replies); healthy session {:#x}",
        stuck.session_id,
        sent / 2,
        c.session_id()
    );
    // With a high limit the other client is served meanwhile.
    healthy(&c, "a client stopped reading").await;
    // Both slots are taken now; once the quiet session expires (1 s), its
    // connection must go and a new one fit.
    let admitted = blocking(30, "slot of the expired session", move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(mut s) = try_session(addr) {
                return Ok(s.ping());
            }
            if Instant::now() > deadline {
                return Err("no slot freed 10 s after the quiet client's 1 s session expired");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await;
    drop(stuck);
    healthy(&c, "the stuck client went away").await;
    assert_eq!(admitted, Ok(true));
    c.close().await.unwrap();
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 3. More connections than maxClientCnxns
// ---------------------------------------------------------------------------

/// With maxClientCnxns 5, connections beyond the fifth from one address are
/// closed at once; the first five keep working; closing two admits two new
/// ones (and no more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_client_cnxns_are_refused() {
    let _own = TestSide::enter();
    common::trace_init();
    let mut cfg = base_cfg();
    cfg.max_client_cnxns = 5;
    let server = Server::start_temp_with(cfg).await.expect("start");
    let addr = server.addr();
    blocking(60, "connection flood", move || {
        let mut first: Vec<Session> =
            (0..5).map(|_| try_session(addr).expect("one of the first five")).collect();
        for _ in 0..20 {
            assert!(try_session(addr).is_none(), "a connection beyond maxClientCnxns is closed");
        }
        for (i, s) in first.iter_mut().enumerate() {
            assert!(s.ping(), "connection {i} of the first five still works");
        }
        first.truncate(3);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut admitted = Vec::new();
        while admitted.len() < 2 {
            assert!(Instant::now() < deadline, "closed connections did not free their slots");
            match try_session(addr) {
                Some(s) => admitted.push(s),
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        assert!(try_session(addr).is_none(), "still at most five");
        for s in first.iter_mut().chain(admitted.iter_mut()) {
            assert!(s.ping(), "still served");
        }
    })
    .await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 4. Fuzzing
// ---------------------------------------------------------------------------

/// Real requests, to mutate.
fn corpus() -> Vec<Request> {
    let s = |p: &str| p.to_string();
    let acl = vec![Acl::new(perms::ALL, Id::new("digest", "u:x")), Acl::new(perms::READ, Id::anyone())];
    vec![
        Request::Create(CreateRequest {
            path: s("/fz/a"),
            data: Some(Bytes::from_static(b"data")),
            acl: Acl::open_unsafe(),
            flags: 0,
        }),
        Request::Create2(CreateRequest { path: s("/fz/s-"), data: None, acl: acl.clone(), flags: 2 }),
        Request::CreateContainer(CreateRequest {
            path: s("/fz/c"),
            data: Some(Bytes::new()),
            acl: Acl::open_unsafe(),
            flags: 4,
        }),
        Request::CreateTtl(CreateTtlRequest {
            path: s("/fz/t"),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 5,
            ttl: 1000,
        }),
        Request::Create(CreateRequest { path: s("/fz/e"), data: None, acl: Acl::open_unsafe(), flags: 1 }),
        Request::Delete(DeleteRequest { path: s("/fz/a"), version: -1 }),
        Request::Exists(ExistsRequest { path: s("/fz"), watch: true }),
        Request::GetData(GetDataRequest { path: s("/fz/a"), watch: true }),
        Request::SetData(SetDataRequest {
            path: s("/fz"),
            data: Some(Bytes::from_static(b"x")),
            version: -1,
        }),
        Request::GetAcl(GetAclRequest { path: s("/") }),
        Request::SetAcl(SetAclRequest { path: s("/fz/a"), acl, version: 0 }),
        Request::GetChildren(GetChildrenRequest { path: s("/"), watch: true }),
        Request::GetChildren2(GetChildren2Request { path: s("/fz"), watch: false }),
        Request::Sync(SyncRequest { path: s("/") }),
        Request::Multi(MultiRequest {
            ops: vec![
                MultiOp::Create(CreateRequest {
                    path: s("/fz/m"),
                    data: None,
                    acl: Acl::open_unsafe(),
                    flags: 0,
                }),
                MultiOp::SetData(SetDataRequest { path: s("/fz/m"), data: None, version: 0 }),
                MultiOp::Check(CheckVersionRequest { path: s("/fz/m"), version: 1 }),
                MultiOp::Delete(DeleteRequest { path: s("/fz/m"), version: -1 }),
            ],
        }),
        Request::MultiRead(MultiRequest {
            ops: vec![
                MultiOp::GetData(GetDataRequest { path: s("/"), watch: false }),
                MultiOp::GetChildren(GetChildrenRequest { path: s("/fz"), watch: false }),
            ],
        }),
        Request::CheckWatches(CheckWatchesRequest { path: s("/fz"), watcher_type: 1 }),
        Request::RemoveWatches(RemoveWatchesRequest { path: s("/fz"), watcher_type: 3 }),
        Request::Auth(AuthPacket { auth_type: 0, scheme: s("digest"), auth: Bytes::from_static(b"u:x") }),
        Request::SetWatches(SetWatches {
            relative_zxid: 1,
            data_watches: vec![s("/fz")],
            exist_watches: vec![s("/fz/none")],
            child_watches: vec![s("/")],
        }),
        Request::SetWatches2(SetWatches2 {
            relative_zxid: 0,
            data_watches: vec![],
            exist_watches: vec![s("/x")],
            child_watches: vec![],
            persistent_watches: vec![s("/fz")],
            persistent_recursive_watches: vec![s("/")],
        }),
        Request::GetEphemerals(GetEphemeralsRequest { prefix_path: s("/") }),
        Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: s("/") }),
        Request::AddWatch(AddWatchRequest { path: s("/fz"), mode: 1 }),
        Request::WhoAmI,
        Request::Ping,
        Request::Reconfig(ReconfigRequest {
            joining_servers: s("server.2=127.0.0.1:2888:3888"),
            leaving_servers: s(""),
            new_members: s(""),
            cur_config_id: -1,
        }),
        Request::Sasl(GetSaslRequest { token: Some(Bytes::from_static(b"t")) }),
        Request::Check(CheckVersionRequest { path: s("/"), version: -1 }),
        Request::CloseSession,
    ]
}

const INTERESTING: [i32; 10] = [0, 1, -1, -2, i32::MAX, i32::MIN, 0xfffff, 0x100000, 255, 65_536];

/// One random change to `b`.
fn mutate(rng: &mut Rng, b: &mut Vec<u8>) {
    match rng.below(9) {
        0 if !b.is_empty() => {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        1 if !b.is_empty() => {
            let i = rng.below(b.len());
            b[i] = rng.next_u64() as u8;
        }
        2 => {
            let i = rng.below(b.len() + 1);
            let n = 1 + rng.below(16);
            let ins = rng.bytes(n);
            b.splice(i..i, ins);
        }
        3 if !b.is_empty() => {
            let i = rng.below(b.len());
            let n = 1 + rng.below((b.len() - i).min(16));
            b.drain(i..i + n);
        }
        4 => {
            let n = rng.below(b.len() + 1);
            b.truncate(n);
        }
        5 if b.len() >= 4 => {
            // An int field set to an interesting value.
            let i = rng.below(b.len() - 3);
            let v = INTERESTING[rng.below(INTERESTING.len())];
            b[i..i + 4].copy_from_slice(&v.to_be_bytes());
        }
        6 if !b.is_empty() => {
            let i = rng.below(b.len());
            let n = 1 + rng.below((b.len() - i).min(32));
            let chunk = b[i..i + n].to_vec();
            b.splice(i..i, chunk);
        }
        7 if b.len() >= 8 => {
            // Another opcode in a request header.
            let codes = [
                1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 100, 101, 102,
                103, 104, 105, 106, 107, -10, -11, 0, 999,
            ];
            let op: i32 = codes[rng.below(codes.len())];
            b[4..8].copy_from_slice(&op.to_be_bytes());
        }
        _ => {
            let v = rng.next_u64() as u8;
            b.push(v);
        }
    }
}

/// What one fuzz connection sends.
fn fuzz_input(rng: &mut Rng, corpus: &[Request]) -> Vec<u8> {
    let mut out = Vec::new();
    let handshake = encode(&new_session());
    match rng.below(6) {
        // Random bytes from the first byte on.
        0 => out = rng.some_bytes(600),
        // A mutated handshake, then perhaps a request.
        1 => {
            let mut h = handshake;
            for _ in 0..1 + rng.below(3) {
                mutate(rng, &mut h);
            }
            out.extend(frame(&h));
            if rng.chance(50) {
                out.extend(frame(&typed(1, &corpus[rng.below(corpus.len())])));
            }
        }
        // A four-letter word and junk.
        2 => {
            let words = [
                "ruok", "srvr", "stat", "conf", "cons", "crst", "srst", "mntr", "wchs", "wchc", "wchp",
                "dump", "envi", "isro", "gtmk", "stmk",
            ];
            out.extend_from_slice(words[rng.below(words.len())].as_bytes());
            out.extend(rng.some_bytes(20));
        }
        // A valid handshake, then mutated real requests (some valid ones
        // between), sometimes with a mutated length prefix.
        _ => {
            out.extend(frame(&handshake));
            for xid in 1..=1 + rng.below(6) as i32 {
                let req = &corpus[rng.below(corpus.len())];
                let mut body = typed(xid, req);
                let mutations = if rng.chance(25) { 0 } else { 1 + rng.below(4) };
                for _ in 0..mutations {
                    mutate(rng, &mut body);
                }
                let mut f = frame(&body);
                if rng.chance(10) {
                    mutate(rng, &mut f);
                }
                out.extend(f);
                if rng.chance(5) {
                    out.extend(rng.some_bytes(64));
                }
            }
        }
    }
    out
}

/// Sends one fuzz input and reads whatever comes back, briefly. Returns
/// how many bytes came back and whether the server closed the connection.
fn fuzz_one(addr: SocketAddr, input: &[u8]) -> (usize, bool) {
    let Ok(mut sock) = TcpStream::connect(addr) else { return (0, true) };
    let _ = sock.set_write_timeout(Some(Duration::from_secs(2)));
    // In two pieces, so that partial frames happen too.
    let cut = input.len() / 2;
    let _ = sock.write_all(&input[..cut]);
    let _ = sock.write_all(&input[cut..]);
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut buf = [0u8; 16 * 1024];
    let mut got = 0;
    let _ = sock.set_read_timeout(Some(Duration::from_millis(150)));
    while Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return (got, false),
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

/// 300 connections send random bytes, mutated handshakes, four-letter
/// words with junk, and mutated encodings of real requests, 8 at a time,
/// from a seeded generator (`ZK_FUZZ_SEED=<n>` replays a run; the case
/// index of a failure is printed). Afterwards the server still serves a
/// healthy client (reads and writes, so the core is alive), answers a
/// four-letter word, admits connections up to its per-IP limit again (no
/// connection task died without releasing its slot), and no code of the
/// server or the protocol crate panicked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fuzzed_input_never_breaks_the_server() {
    let _own = TestSide::enter();
    common::trace_init();
    let panics_before = server_panics().load(Ordering::SeqCst);
    let seed = std::env::var("ZK_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    let cases: usize = std::env::var("ZK_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    eprintln!("fuzz seed: {seed} ({cases} connections; ZK_FUZZ_SEED={seed} replays them)");
    let mut cfg = base_cfg();
    cfg.max_client_cnxns = 40;
    let server = Server::start_temp_with(cfg).await.expect("start");
    let addr = server.addr();
    let c = connect(&server.connect_string()).await;
    c.create("/fz", b"", CreateMode::Persistent).await.unwrap();
    healthy(&c, "fuzz setup").await;

    let only: Option<usize> = std::env::var("ZK_FUZZ_ONLY").ok().and_then(|s| s.parse().ok());
    let threads = 8;
    let run = blocking(240, "fuzz connections", move || {
        let corpus = Arc::new(corpus());
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let corpus = corpus.clone();
                std::thread::spawn(move || {
                    let _own = TestSide::enter();
                    let (mut answered, mut closed) = (0, 0);
                    for i in (t..cases).step_by(threads) {
                        if only.is_some_and(|o| o != i) {
                            continue;
                        }
                        // Each connection has its own generator: one case
                        // can be replayed alone (ZK_FUZZ_ONLY=<index>).
                        let mut rng = Rng(seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
                        let input = fuzz_input(&mut rng, &corpus);
                        if std::env::var_os("ZK_FUZZ_VERBOSE").is_some() {
                            eprintln!(
                                "case {i}: {} bytes: {:02x?}",
                                input.len(),
                                &input[..input.len().min(96)]
                            );
                        }
                        let (got, was_closed) = fuzz_one(addr, &input);
                        answered += usize::from(got > 0);
                        closed += usize::from(was_closed);
                    }
                    (answered, closed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect::<Result<Vec<_>, _>>()
    });
    let stats = run.await.unwrap_or_else(|_| panic!("a fuzz thread failed (seed {seed})"));
    let answered: usize = stats.iter().map(|s| s.0).sum();
    let closed: usize = stats.iter().map(|s| s.1).sum();
    eprintln!("fuzz: {answered} connections got bytes back, {closed} were closed by the server");
    let panicked = server_panics().load(Ordering::SeqCst) - panics_before;
    assert_eq!(panicked, 0, "server code panicked during the fuzz run (seed {seed}):\n{}", panic_report());

    // The core is alive: writes and reads go through, for old and new clients.
    healthy(&c, &format!("fuzzing (seed {seed})")).await;
    let c2 = connect(&server.connect_string()).await;
    healthy(&c2, &format!("fuzzing, new client (seed {seed})")).await;
    let stat = blocking(10, "stat", move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"srvr").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await;
    assert!(stat.contains("Zxid"), "srvr answers after fuzzing: {stat:?}");
    let fz = c.get_children("/fz").await.unwrap();
    eprintln!("fuzz: /fz has {} children: {:?}", fz.len(), &fz[..fz.len().min(10)]);
    // Every per-IP slot is released: 38 more sessions fit next to the two
    // clients (connection tasks of the fuzz run end within a few seconds).
    blocking(60, "slots after fuzzing", move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut held = Vec::new();
        while held.len() < 38 {
            assert!(
                Instant::now() < deadline,
                "only {} of 38 slots free after fuzzing (seed {seed})",
                held.len()
            );
            match try_session(addr) {
                Some(r) => held.push(r),
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    })
    .await;
    assert_eq!(
        server_panics().load(Ordering::SeqCst) - panics_before,
        0,
        "server code panicked (seed {seed}):\n{}",
        panic_report()
    );
    c2.close().await.unwrap();
    c.close().await.unwrap();
    server.stop().await;
}
