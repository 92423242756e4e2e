//! Shared pieces of the cross-crate tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

/// Awaits `f` for at most `secs` seconds, failing the test with `what`.
pub async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}

/// How often [`wait_until`] and [`wait_until_async`] look again.
pub const POLL: Duration = Duration::from_millis(20);

/// Waits until `cond` holds, looking every [`POLL`], for at most `secs`
/// seconds (then fails the test with `what`). The bounded replacement for
/// "sleep a while, then assert": it returns as soon as the condition holds
/// and fails loudly, naming the condition, when it never does.
pub async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    within(secs, what, async {
        while !cond() {
            tokio::time::sleep(POLL).await;
        }
    })
    .await
}

/// As [`wait_until`], for a condition that has to ask the server.
pub async fn wait_until_async<F: Future<Output = bool>>(secs: u64, what: &str, mut cond: impl FnMut() -> F) {
    within(secs, what, async {
        while !cond().await {
            tokio::time::sleep(POLL).await;
        }
    })
    .await
}

/// Logs to the test output when `RUST_LOG` is set.
/// `GET path` over HTTP/1.0 (no chunking; the server closes the
/// connection): the status and the body. Panics after 20 s.
#[allow(dead_code)]
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within(20, &format!("GET {path}"), async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status");
        (status, body.to_string())
    })
    .await
}

pub fn trace_init() {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}

/// A raw, blocking ZooKeeper session built from zk-proto records only, for
/// wire-level tests: deterministic xids, every frame visible.
pub mod raw {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    use bytes::{Bytes, BytesMut};
    use zk_proto::frame::{encode_frame, split_frame};
    use zk_proto::records::*;
    use zk_proto::{OpCode, Record, Request, Response};

    /// One connection.
    pub struct Raw {
        /// The socket.
        pub sock: TcpStream,
        buf: BytesMut,
        xid: i32,
        /// Watch events received so far: (header zxid, event).
        pub events: Vec<(i64, WatcherEvent)>,
        /// The session.
        pub session_id: i64,
        /// Its password.
        pub passwd: Bytes,
    }

    impl Raw {
        /// Connects and performs the handshake with `read_only: Some(false)`.
        pub fn connect(addr: SocketAddr, timeout_ms: i32) -> Raw {
            Self::connect_with(
                addr,
                ConnectRequest {
                    time_out: timeout_ms,
                    passwd: Bytes::from_static(&[0; 16]),
                    read_only: Some(false),
                    ..ConnectRequest::default()
                },
            )
            .1
        }

        /// Connects with a given request; returns the response too.
        pub fn connect_with(addr: SocketAddr, req: ConnectRequest) -> (ConnectResponse, Raw) {
            let sock = TcpStream::connect(addr).expect("connect");
            sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            let mut raw = Raw {
                sock,
                buf: BytesMut::new(),
                xid: 0,
                events: Vec::new(),
                session_id: 0,
                passwd: Bytes::new(),
            };
            raw.send(&req);
            let frame = raw.recv().expect("connect response");
            let rsp = ConnectResponse::decode_exact(frame).expect("decode connect response");
            raw.session_id = rsp.session_id;
            raw.passwd = rsp.passwd.clone();
            (rsp, raw)
        }

        /// Writes one frame.
        pub fn send<R: Record>(&mut self, r: &R) {
            let mut out = BytesMut::new();
            encode_frame(r, &mut out, usize::MAX).expect("encode");
            self.sock.write_all(&out).expect("write");
        }

        /// Writes raw bytes.
        pub fn send_bytes(&mut self, b: &[u8]) {
            self.sock.write_all(b).expect("write");
        }

        /// Reads one frame; `None` when the server closed the connection.
        pub fn recv(&mut self) -> Option<Bytes> {
            loop {
                if let Some(f) = split_frame(&mut self.buf, usize::MAX).expect("frame") {
                    return Some(f.freeze());
                }
                let mut chunk = [0u8; 65536];
                match self.sock.read(&mut chunk) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        }

        /// Whether the server closed the connection (reads until EOF).
        pub fn closed(&mut self) -> bool {
            loop {
                match self.recv() {
                    None => return true,
                    Some(_) => continue,
                }
            }
        }

        /// Sends `req` with the next xid and returns its reply header and
        /// body (decoded when the reply is a success, or a multi); watch
        /// events that come first are collected.
        pub fn call(&mut self, req: &Request) -> Option<(ReplyHeader, Option<Response>)> {
            self.xid += 1;
            let xid = self.xid;
            self.call_xid(xid, req)
        }

        /// As [`Raw::call`] with a chosen xid.
        pub fn call_xid(&mut self, xid: i32, req: &Request) -> Option<(ReplyHeader, Option<Response>)> {
            let op = req.opcode();
            let mut body = BytesMut::new();
            RequestHeader { xid, opcode: op }.encode(&mut body);
            req.encode_body(&mut body);
            self.send(&RawBytes(body.freeze()));
            loop {
                let mut f = self.recv()?;
                let h = ReplyHeader::decode(&mut f).expect("reply header");
                if h.xid == zk_proto::xid::NOTIFICATION {
                    self.events.push((h.zxid, WatcherEvent::decode(&mut f).expect("event")));
                    continue;
                }
                assert_eq!(h.xid, xid, "replies in order");
                let decode = h.err.is_ok() || matches!(op, OpCode::Multi | OpCode::MultiRead);
                let rsp = decode.then(|| Response::decode(op, f).expect("reply body"));
                return Some((h, rsp));
            }
        }

        /// Reads frames until `n` events are collected (or the timeout).
        pub fn wait_events(&mut self, n: usize) {
            while self.events.len() < n {
                let Some(mut f) = self.recv() else { return };
                let h = ReplyHeader::decode(&mut f).expect("header");
                if h.xid == zk_proto::xid::NOTIFICATION {
                    self.events.push((h.zxid, WatcherEvent::decode(&mut f).expect("event")));
                }
            }
        }
    }

    /// Pre-encoded bytes as a record.
    pub struct RawBytes(pub Bytes);

    impl Record for RawBytes {
        fn encode<B: bytes::BufMut>(&self, buf: &mut B) {
            buf.put_slice(&self.0);
        }
        fn decode(buf: &mut Bytes) -> zk_proto::error::Result<Self> {
            Ok(RawBytes(buf.split_off(0)))
        }
    }
}

/// splitmix64: a small seeded generator, so that every run can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Recipe scenarios shared by the tests against our server, Apache and a
/// container.
pub mod recipes {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use zk_recipes::Framework;
    use zk_recipes::locks::InterProcessMutex;
    use zk_recipes::retry::ExponentialBackoffRetry;

    use super::within;

    /// A started framework with a 10 s session and quick retries.
    pub async fn framework(cs: &str) -> Framework {
        let fw = Framework::builder(cs)
            .session_timeout(Duration::from_secs(10))
            .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(50), 5))
            .build();
        within(20, "framework start", fw.start()).await.unwrap();
        assert!(fw.block_until_connected(Duration::from_secs(20)).await, "connected");
        fw
    }

    /// `contenders` sessions each add one `rounds` times to a counter node
    /// under an InterProcessMutex, reading and writing with no version
    /// check: only mutual exclusion keeps the count exact. Never two
    /// holders at once, and no lock node left behind.
    pub async fn mutex_counter(cs: &str, contenders: usize, rounds: usize) {
        let setup = framework(cs).await;
        setup.create().creating_parents_if_needed().for_path("/mc/counter", b"0").await.unwrap();
        let inside = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..contenders {
            let cs = cs.to_string();
            let inside = inside.clone();
            tasks.push(tokio::spawn(async move {
                let fw = framework(&cs).await;
                let lock = InterProcessMutex::new(&fw, "/mc/lock");
                for _ in 0..rounds {
                    lock.acquire().await.unwrap();
                    assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                    let (data, _) = fw.get_data("/mc/counter").await.unwrap();
                    let n: u64 = std::str::from_utf8(&data).unwrap().parse().unwrap();
                    fw.set_data("/mc/counter", (n + 1).to_string().as_bytes(), None).await.unwrap();
                    inside.store(false, Ordering::SeqCst);
                    lock.release().await.unwrap();
                }
                fw.close().await;
            }));
        }
        for t in tasks {
            within(120, "contenders", t).await.unwrap();
        }
        let (data, _) = setup.get_data("/mc/counter").await.unwrap();
        assert_eq!(std::str::from_utf8(&data).unwrap(), (contenders * rounds).to_string());
        assert!(setup.get_children("/mc/lock").await.unwrap().is_empty(), "no lock node left behind");
        setup.close().await;
    }
}

/// A stream of writes for failover tests: creates `/<prefix>-<n>` one after
/// another until `stop` turns true. Its handle yields the paths that were
/// acknowledged; the string holds the last failure (for a test's message).
pub fn spawn_writer(
    client: zk_client::Client,
    prefix: &'static str,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (tokio::task::JoinHandle<Vec<String>>, std::sync::Arc<std::sync::Mutex<String>>) {
    let last_error = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let error = last_error.clone();
    let handle = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut n = 0u64;
        while !*stop.borrow() {
            n += 1;
            let path = format!("/{prefix}-{n:06}");
            let create = client.create(&path, b"x", zk_client::CreateMode::Persistent);
            match tokio::time::timeout(Duration::from_secs(5), create).await {
                Ok(Ok(_)) | Ok(Err(zk_client::Error::NodeExists)) => acked.push(path),
                r => {
                    if let Ok(mut e) = error.lock() {
                        *e = format!("{path}: {r:?} (session {:?})", client.state());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
            }
        }
        acked
    });
    (handle, last_error)
}

/// A 3-server ensemble of `zk-server` processes, serving (started off the
/// async workers).
pub async fn serving_ensemble_of_3() -> zk_test_support::ours::OurEnsemble {
    let e = tokio::task::spawn_blocking(|| {
        let mut e = zk_test_support::ours::OurEnsemble::start(3, "");
        e.wait_ready(60);
        e
    })
    .await;
    match e {
        Ok(e) => e,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// The Java Curator peer (`tests/java/CuratorPeer.java`): compiled once,
/// run as a child process that prints what it does, one line at a time.
pub mod java {
    use std::io::{BufRead, BufReader, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    pub const CURATOR_JARS: &[&str] = &[
        "/usr/share/java/curator-recipes.jar",
        "/usr/share/java/curator-framework.jar",
        "/usr/share/java/curator-client.jar",
        "/usr/share/java/curator-x-discovery.jar",
        "/usr/share/java/jackson-core.jar",
        "/usr/share/java/jackson-databind.jar",
        "/usr/share/java/jackson-annotations.jar",
        "/usr/share/java/guava.jar",
        "/usr/share/java/slf4j-api.jar",
        "/usr/share/java/slf4j-nop.jar",
        "/usr/share/java/zookeeper.jar",
        "/usr/share/java/zookeeper-jute.jar",
    ];

    /// Compiles the Java peer once per test process (into a directory of
    /// its own: a second compile would rewrite class files a running peer
    /// is loading); `None` (loudly) when Curator or javac is missing.
    pub fn java_peer() -> Option<(PathBuf, String)> {
        static PEER: std::sync::OnceLock<Option<(PathBuf, String)>> = std::sync::OnceLock::new();
        PEER.get_or_init(compile_peer).clone()
    }

    fn compile_peer() -> Option<(PathBuf, String)> {
        let missing: Vec<_> = CURATOR_JARS.iter().filter(|j| !Path::new(j).exists()).collect();
        if !missing.is_empty() {
            zk_test_support::external::missing(
                "Java Curator (Debian libcurator-recipes-java, libcurator-framework-java, libcurator-discovery-java)",
                &format!("missing {missing:?}"),
            );
            return None;
        }
        let cp = CURATOR_JARS.join(":");
        let out =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("curator-peer-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/CuratorPeer.java");
        let status = Command::new("javac").args(["-cp", &cp, "-d"]).arg(&out).arg(&src).status();
        match status {
            Ok(s) if s.success() => Some((out.clone(), format!("{cp}:{}", out.display()))),
            other => {
                zk_test_support::external::missing("javac", &format!("{other:?}"));
                None
            }
        }
    }

    /// A python3 that can `import kazoo` (`$ZK_PYTHON`, `python3`,
    /// `/usr/bin/python3`); `None` (loudly) when there is none.
    pub fn kazoo_python() -> Option<String> {
        let mut candidates: Vec<String> = std::env::var("ZK_PYTHON").into_iter().collect();
        candidates.extend(["python3".to_string(), "/usr/bin/python3".to_string()]);
        for py in candidates {
            let ok = Command::new(&py)
                .args(["-c", "import kazoo.client"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Some(py);
            }
        }
        zk_test_support::external::missing(
            "kazoo (PyPI `kazoo` or Debian `python3-kazoo`)",
            "no python3 (ZK_PYTHON, python3 on PATH, /usr/bin/python3) can `import kazoo`",
        );
        None
    }

    pub struct Peer {
        child: Child,
        stdin: Option<ChildStdin>,
        lines: mpsc::Receiver<String>,
    }

    impl Peer {
        pub fn spawn(cp: &str, args: &[&str]) -> Peer {
            let mut all = vec!["-Xmx256m", "-cp", cp, "CuratorPeer"];
            all.extend_from_slice(args);
            Peer::spawn_program("java", &all)
        }

        /// Any line-oriented peer program (the kazoo peer runs on python3).
        pub fn spawn_program(program: &str, args: &[&str]) -> Peer {
            let mut child = Command::new(program)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("java");
            let stdout = child.stdout.take().unwrap();
            let (tx, lines) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
            let stdin = child.stdin.take();
            Peer { child, stdin, lines }
        }

        pub fn expect_line(&self, want: &str, secs: u64) {
            let deadline = std::time::Instant::now() + Duration::from_secs(secs);
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(l) if l == want => return,
                    Ok(_) => {}
                    Err(_) => panic!("Java peer did not print {want:?} within {secs}s"),
                }
            }
        }

        /// The rest of the first line starting with `prefix`.
        pub fn expect_prefix(&self, prefix: &str, secs: u64) -> String {
            let deadline = std::time::Instant::now() + Duration::from_secs(secs);
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(l) if l.starts_with(prefix) => return l[prefix.len()..].to_string(),
                    Ok(_) => {}
                    Err(_) => panic!("Java peer did not print {prefix:?}... within {secs}s"),
                }
            }
        }

        /// The next line, if one comes within `timeout`.
        pub fn next_line(&self, timeout: Duration) -> Option<String> {
            self.lines.recv_timeout(timeout).ok()
        }

        /// Every line before `last` (which must come within `secs`).
        pub fn lines_until(&self, last: &str, secs: u64) -> Vec<String> {
            let deadline = std::time::Instant::now() + Duration::from_secs(secs);
            let mut out = Vec::new();
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(l) if l == last => return out,
                    Ok(l) => out.push(l),
                    Err(_) => panic!("Java peer did not print {last:?} within {secs}s; printed {out:?}"),
                }
            }
        }

        /// The session id from its `SESSION <id>` line (off the async
        /// workers).
        pub async fn session(self) -> (Peer, i64) {
            let r = tokio::task::spawn_blocking(move || {
                let line = self.expect_prefix("SESSION ", 60);
                let session: i64 = line.parse().unwrap_or_else(|_| panic!("a session id, not {line:?}"));
                (self, session)
            })
            .await;
            match r {
                Ok(r) => r,
                Err(err) => std::panic::resume_unwind(err.into_panic()),
            }
        }

        pub fn say(&mut self, line: &str) {
            if let Some(s) = self.stdin.as_mut() {
                let _ = writeln!(s, "{line}");
                let _ = s.flush();
            }
        }
    }

    impl Drop for Peer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
