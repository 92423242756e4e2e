//! zk-server durability: what is acknowledged survives a clean restart, a
//! SIGKILL, a torn transaction-log tail and a corrupt snapshot.
//!
//! The trees are compared node by node over the wire (data, Stat, ACL,
//! children) with a raw client, so a difference in any counter shows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::raw::Raw;
use common::{wait_until, within};
use zk_client::{Client, CreateMode, CreateOptions, Error, Op, digest_id};
use zk_proto::records::{
    Acl, AuthPacket, CreateRequest, GetAclRequest, GetAclResponse, GetChildrenRequest, GetChildrenResponse,
    GetDataRequest, GetDataResponse, Id, SetDataRequest, Stat, TxnBody,
};
use zk_proto::types::perms;
use zk_proto::{ErrorCode, Request, Response};
use zk_server::persist::{snapshot, txnlog};
use zk_server::{Server, ServerConfig};

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// A directory under the system temp dir, removed on drop (the root
/// package has no `tempfile`). `ZK_KEEP_TEST_DIRS=1` keeps it for a post
/// mortem.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "zk-durability-{tag}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("ZK_KEEP_TEST_DIRS").is_some() {
            eprintln!("keeping {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

use common::Rng;

/// `len` deterministic bytes for `seed`.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A server configuration on `dir`: a free loopback port, every
/// four-letter word, TTL nodes on.
fn cfg_for(dir: &Path) -> ServerConfig {
    let mut cfg = ServerConfig::new(dir);
    cfg.client_port = 0;
    cfg.client_port_address = Some(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    cfg.four_letter_words = vec!["*".into()];
    cfg.extended_types_enabled = true;
    cfg.max_client_cnxns = 0;
    cfg
}

async fn start(cfg: &ServerConfig) -> Server {
    within(60, "server start", Server::start(cfg.clone())).await.expect("server starts")
}

async fn connect(cs: &str) -> Client {
    within(20, "connect", Client::builder(cs).session_timeout(Duration::from_secs(10)).connect())
        .await
        .expect("connect")
}

/// Runs blocking wire code off the runtime, bounded in time.
async fn blocking<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    within(secs, what, tokio::task::spawn_blocking(f)).await.expect("blocking task")
}

// ----- the tree over the wire ---------------------------------------------

/// One node as a client sees it.
#[derive(Clone, PartialEq, Eq)]
struct NodeImage {
    stat: Stat,
    acl: Vec<Acl>,
    /// The data (`None`: null) as length and hash, or the read's error.
    data: Result<Option<(usize, u64)>, ErrorCode>,
    /// Sorted; `None` when the node may not be listed.
    children: Option<Vec<String>>,
}

impl fmt::Debug for NodeImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stat;
        write!(
            f,
            "czxid={:#x} mzxid={:#x} pzxid={:#x} ctime={} mtime={} v={} cv={} av={} owner={:#x} len={} kids={} \
             data={:?} acl={:?} children={:?}",
            s.czxid,
            s.mzxid,
            s.pzxid,
            s.ctime,
            s.mtime,
            s.version,
            s.cversion,
            s.aversion,
            s.ephemeral_owner,
            s.data_length,
            s.num_children,
            self.data,
            self.acl,
            self.children
        )
    }
}

type Image = BTreeMap<String, NodeImage>;

fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" { format!("/{child}") } else { format!("{parent}/{child}") }
}

/// Authenticates `raw` as digest `user:pass` (the identity of the ACLs below).
fn raw_auth(raw: &mut Raw) {
    let auth = Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: Bytes::from_static(b"user:pass"),
    });
    let (h, _) = raw.call_xid(zk_proto::xid::AUTH, &auth).expect("auth reply");
    assert_eq!(h.err, ErrorCode::Ok);
}

/// Every node reachable from `/`, read with `raw` (reads log nothing, so
/// this does not change the txn log).
fn walk(raw: &mut Raw) -> Image {
    let mut out = Image::new();
    let mut todo = vec!["/".to_string()];
    while let Some(path) = todo.pop() {
        let (h, rsp) =
            raw.call(&Request::GetAcl(GetAclRequest { path: path.clone() })).expect("getACL reply");
        if h.err == ErrorCode::NoNode {
            continue;
        }
        let (acl, stat) = if h.err == ErrorCode::NoAuth {
            // getACL needs READ or ADMIN (as Apache): keep the Stat and mark
            // the ACL as unreadable; it must stay unreadable after a restart.
            let (h, rsp) = raw
                .call(&Request::Exists(zk_proto::records::ExistsRequest { path: path.clone(), watch: false }))
                .expect("exists");
            assert_eq!(h.err, ErrorCode::Ok, "exists {path}");
            let Some(Response::Exists(e)) = rsp else { panic!("exists body {path}") };
            (vec![zk_proto::records::Acl::new(-1, zk_proto::records::Id::new("unreadable", ""))], e.stat)
        } else {
            assert_eq!(h.err, ErrorCode::Ok, "getACL {path}");
            let Some(Response::GetAcl(GetAclResponse { acl, stat })) = rsp else {
                panic!("getACL body {path}")
            };
            (acl, stat)
        };
        let (h, rsp) = raw
            .call(&Request::GetData(GetDataRequest { path: path.clone(), watch: false }))
            .expect("getData");
        let data = match rsp {
            Some(Response::GetData(GetDataResponse { data, .. })) if h.err.is_ok() => {
                Ok(data.map(|d| (d.len(), fnv(&d))))
            }
            _ => Err(h.err),
        };
        let (h, rsp) = raw
            .call(&Request::GetChildren(GetChildrenRequest { path: path.clone(), watch: false }))
            .expect("getChildren");
        let children = match rsp {
            Some(Response::GetChildren(GetChildrenResponse { mut children })) if h.err.is_ok() => {
                children.sort();
                for c in &children {
                    todo.push(child_path(&path, c));
                }
                Some(children)
            }
            _ => None,
        };
        out.insert(path, NodeImage { stat, acl, data, children });
    }
    out
}

/// The whole tree of the server at `addr`, through a fresh session
/// (authenticated as `user:pass`), which is closed afterwards.
async fn image(addr: SocketAddr) -> Image {
    blocking(120, "tree image", move || {
        let mut raw = Raw::connect(addr, 30_000);
        raw_auth(&mut raw);
        let image = walk(&mut raw);
        let _ = raw.call(&Request::CloseSession);
        image
    })
    .await
}

fn assert_same(want: &Image, got: &Image, what: &str) {
    if want == got {
        return;
    }
    let mut diffs = Vec::new();
    for (p, n) in want {
        match got.get(p) {
            None => diffs.push(format!("missing {p}: {n:?}")),
            Some(g) if g != n => diffs.push(format!("differs {p}:\n    want {n:?}\n    got  {g:?}")),
            Some(_) => {}
        }
    }
    for (p, g) in got {
        if !want.contains_key(p) {
            diffs.push(format!("extra {p}: {g:?}"));
        }
    }
    let shown: Vec<_> = diffs.iter().take(25).cloned().collect();
    panic!("{what}: {} nodes differ (of {} expected):\n  {}", diffs.len(), want.len(), shown.join("\n  "));
}

fn max_zxid(image: &Image) -> i64 {
    image.values().map(|n| n.stat.czxid.max(n.stat.mzxid).max(n.stat.pzxid)).max().unwrap_or(0)
}

/// Creates a node with `raw`; panics unless it succeeds.
fn raw_create(raw: &mut Raw, path: &str, data: Option<&[u8]>, acl: Vec<Acl>, mode: CreateMode) -> String {
    let req = Request::Create(CreateRequest {
        path: path.into(),
        data: data.map(Bytes::copy_from_slice),
        acl,
        flags: mode.code(),
    });
    let (h, rsp) = raw.call(&req).expect("create reply");
    assert_eq!(h.err, ErrorCode::Ok, "create {path}");
    match rsp {
        Some(Response::Create(r)) => r.path,
        other => panic!("create {path}: {other:?}"),
    }
}

fn raw_set(raw: &mut Raw, path: &str, data: &[u8]) {
    let req = Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(Bytes::copy_from_slice(data)),
        version: -1,
    });
    let (h, _) = raw.call(&req).expect("setData reply");
    assert_eq!(h.err, ErrorCode::Ok, "setData {path}");
}

// ----- files ----------------------------------------------------------------

fn version_dir(dir: &Path) -> PathBuf {
    dir.join(zk_server::persist::VERSION_DIR)
}

/// The files `<prefix>.<hex zxid>` of `dir/version-2`, by zxid.
fn zxid_files(dir: &Path, prefix: &str) -> Vec<(i64, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(version_dir(dir)) else { return out };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(hex) = name.strip_prefix(prefix).and_then(|s| s.strip_prefix('.')) {
            if let Ok(z) = i64::from_str_radix(hex, 16) {
                out.push((z, e.path()));
            }
        }
    }
    out.sort();
    out
}

/// Whether a snapshot is being written: it goes to `tmp.snapshot.<zxid>`
/// (and a `.nodes` side file) until it is renamed into place.
fn snapshot_being_written(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(version_dir(dir)) else { return false };
    entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("tmp.snapshot."))
}

/// Waits (bounded) until `dir` holds at least `n` complete snapshots and
/// none is being written; returns them. A server's snapshot is written on a
/// blocking thread that stopping the server does not wait for, and one
/// started just before the stop may not have made its temp file yet: so
/// the settled state must be seen twice, 50 ms apart.
async fn snapshots_settled(dir: &Path, n: usize) -> Vec<(i64, PathBuf)> {
    let settled = || {
        let snaps = zxid_files(dir, "snapshot");
        (snaps.len() >= n && !snapshot_being_written(dir)).then_some(snaps)
    };
    within(30, &format!("{n} snapshots, none being written"), async {
        loop {
            if let Some(first) = settled() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if settled().as_ref() == Some(&first) {
                    return first;
                }
            }
            tokio::time::sleep(common::POLL).await;
        }
    })
    .await
}

/// `(start, end)` of every entry of a log file: a 16-byte file header, then
/// `{long crc, int len, txn, 'B'}` until an all-zero entry header (the
/// preallocated zeros) or the end.
fn log_entries(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 16;
    while off + 12 <= bytes.len() && bytes[off..off + 12].iter().any(|&b| b != 0) {
        let len = i32::from_be_bytes(bytes[off + 8..off + 12].try_into().unwrap());
        let Ok(len) = usize::try_from(len) else { break };
        let end = off + 12 + len + 1;
        if end > bytes.len() {
            break;
        }
        out.push((off, end));
        off = end;
    }
    out
}

fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

// ---------------------------------------------------------------------------
// 1. A clean restart keeps every node and every counter
// ---------------------------------------------------------------------------

/// Writes persistent, sequential, null/empty/large data, ACL'd, container,
/// TTL, unicode and deep nodes, a multi and a failed multi.
async fn write_variety(c: &Client) {
    let open = || CreateOptions::new(CreateMode::Persistent);
    c.add_auth("digest", b"user:pass").await.unwrap();
    c.create("/d", b"dir", CreateMode::Persistent).await.unwrap();
    for (name, len) in [("empty", 0usize), ("one", 1), ("k1", 1000), ("k100", 100_000), ("m1", 1_000_000)] {
        c.create(&format!("/d/{name}"), &pattern(len, len as u64), CreateMode::Persistent).await.unwrap();
    }
    for i in 0..4 {
        c.set_data("/d/one", format!("v{i}").as_bytes(), None).await.unwrap();
    }
    c.create("/seq", b"", CreateMode::Persistent).await.unwrap();
    for _ in 0..25 {
        c.create("/seq/s-", b"s", CreateMode::PersistentSequential).await.unwrap();
    }
    c.delete("/seq/s-0000000003", None).await.unwrap();
    c.delete("/seq/s-0000000007", Some(0)).await.unwrap();

    c.create("/acl", b"", CreateMode::Persistent).await.unwrap();
    let mine = vec![Acl::new(perms::ALL, digest_id("user", "pass"))];
    c.create("/acl/digest", b"secret", open().with_acl(mine.clone())).await.unwrap();
    c.create("/acl/read", b"r", open().with_acl(Acl::read_unsafe())).await.unwrap();
    let ip = vec![Acl::new(perms::READ | perms::WRITE, Id::new("ip", "127.0.0.1"))];
    c.create("/acl/ip", b"ip", open().with_acl(ip)).await.unwrap();
    let other = vec![Acl::new(perms::ALL, digest_id("other", "x"))];
    c.create("/acl/other", b"hidden", open().with_acl(other)).await.unwrap();
    c.create("/acl/changed", b"", CreateMode::Persistent).await.unwrap();
    c.set_acl("/acl/changed", &mine, Some(0)).await.unwrap();
    c.set_acl("/acl/changed", &Acl::open_unsafe(), Some(1)).await.unwrap();
    c.create("/acl/creator", b"", open().with_acl(Acl::creator_all())).await.unwrap();

    c.multi(&[
        Op::create("/m", &b"0"[..], CreateMode::Persistent),
        Op::create("/m/a", &b"a"[..], CreateMode::Persistent),
        Op::create("/m/s-", &b""[..], CreateMode::PersistentSequential),
        Op::set_data("/m", &b"1"[..], Some(0)),
        Op::check("/m", Some(1)),
        Op::create("/m/tmp", &b""[..], CreateMode::Persistent),
        Op::delete("/m/tmp", None),
    ])
    .await
    .unwrap();
    let failing = [Op::create("/m/b", &b""[..], CreateMode::Persistent), Op::check("/m", Some(99))];
    assert_eq!(c.multi(&failing).await, Err(Error::BadVersion));

    c.create("/cont", b"", CreateMode::Container).await.unwrap();
    c.create("/cont/child", b"c", CreateMode::Persistent).await.unwrap();
    let ttl = CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(Duration::from_secs(3600));
    c.create("/ttl", b"t", ttl).await.unwrap();
    c.create("/deep", b"", CreateMode::Persistent).await.unwrap();
    let mut p = "/deep".to_string();
    for part in ["a", "b", "c", "d", "e", "f"] {
        p = format!("{p}/{part}");
        c.create(&p, part.as_bytes(), CreateMode::Persistent).await.unwrap();
    }
    c.create("/ünï", "ü".as_bytes(), CreateMode::Persistent).await.unwrap();
    c.create("/ünï/ñ-日本", "日本".as_bytes(), CreateMode::Persistent).await.unwrap();
    c.create("/gone", b"", CreateMode::Persistent).await.unwrap();
    c.delete("/gone", None).await.unwrap();
    c.create("/plain", b"", CreateMode::Persistent).await.unwrap();
    c.create("/plain/c", b"", CreateMode::Persistent).await.unwrap();
    c.delete("/plain/c", None).await.unwrap();

    // A burst of pipelined writes: many group commits and snapshots.
    c.create("/bulk", b"", CreateMode::Persistent).await.unwrap();
    let creates: Vec<_> = (0..80u64)
        .map(|i| {
            c.create(&format!("/bulk/n{i:03}"), &pattern((i * 37 % 700) as usize, i), CreateMode::Persistent)
        })
        .collect();
    for r in futures::future::join_all(creates).await {
        r.unwrap();
    }
    let sets: Vec<_> =
        (0..40u64).map(|i| c.set_data(&format!("/bulk/n{:03}", i * 2), &pattern(9, i), None)).collect();
    for r in futures::future::join_all(sets).await {
        r.unwrap();
    }
}

/// Restarts go through snapshot + log replay: the first server takes
/// snapshots every few txns (snapCount 10), the second none (default
/// snapCount), so the third recovers from an older snapshot and replays the
/// log written after it by two processes. Every node, Stat, ACL and child
/// list must come back identical each time, zxids must continue, a
/// container must still be a container (swept once emptied), and an
/// ephemeral node's owner session must be recovered (and later expire,
/// taking its nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_keeps_every_node_and_stat() {
    common::trace_init();
    let dir = TempDir::new("restart");
    let mut cfg = cfg_for(dir.path());
    cfg.snap_count = 10;

    // --- server 1: snapshots every 5..9 txns.
    let s1 = start(&cfg).await;
    let addr1 = s1.addr();
    let c = connect(&s1.connect_string()).await;
    within(60, "writes", write_variety(&c)).await;
    c.create("/eph", b"", CreateMode::Persistent).await.unwrap();
    // A session that stays open across the stop: its ephemerals, and a
    // node with null data (only the raw client can create one).
    let eph_owner = blocking(30, "ephemeral session", move || {
        let mut raw = Raw::connect(addr1, 10_000);
        raw_create(&mut raw, "/eph/e1", Some(b"e"), Acl::open_unsafe(), CreateMode::Ephemeral);
        raw_create(&mut raw, "/eph/es-", Some(b""), Acl::open_unsafe(), CreateMode::EphemeralSequential);
        raw_create(&mut raw, "/d/null", None, Acl::open_unsafe(), CreateMode::Persistent);
        raw
    })
    .await;
    let eph_owner_id = eph_owner.session_id;
    c.close().await.unwrap();
    let image1 = image(addr1).await;
    assert_eq!(image1["/eph/e1"].stat.ephemeral_owner, eph_owner_id);
    assert_eq!(image1["/d/null"].data, Ok(None));
    assert_eq!(image1["/acl/other"].data, Err(ErrorCode::NoAuth));
    assert_eq!(image1["/seq"].stat.cversion, 27, "25 creates and 2 deletes");
    s1.stop().await;
    drop(eph_owner);
    // snapCount 10 takes snapshots; the last may still be landing.
    snapshots_settled(dir.path(), 2).await;

    // --- server 2: recovers, then writes only to the log.
    let mut cfg2 = cfg.clone();
    cfg2.snap_count = 100_000;
    let s2 = start(&cfg2).await;
    let got = image(s2.addr()).await;
    assert_same(&image1, &got, "restart 1 (snapshot + log)");
    let c = connect(&s2.connect_string()).await;
    let (_, st) = c.create("/after-restart", b"x", CreateMode::Persistent).await.unwrap();
    assert!(
        st.czxid > max_zxid(&image1),
        "zxids continue after a restart: {:#x} <= {:#x}",
        st.czxid,
        max_zxid(&image1)
    );
    c.set_data("/d/one", b"after", None).await.unwrap();
    c.delete("/bulk/n001", None).await.unwrap();
    c.create("/seq/s-", b"", CreateMode::PersistentSequential).await.unwrap();
    c.close().await.unwrap();
    let image2 = image(s2.addr()).await;
    s2.stop().await;
    let newest = snapshot::load_latest(dir.path()).unwrap().expect("a snapshot");
    let tail = txnlog::read_log(dir.path(), newest.zxid, false).unwrap();
    assert!(
        tail.txns.len() >= 5 && tail.torn.is_none(),
        "the next restart replays the log after snapshot {:#x}: {} txns, torn {:?}",
        newest.zxid,
        tail.txns.len(),
        tail.torn
    );
    assert!(zxid_files(dir.path(), "log").len() >= 2);

    // --- server 3: snapshot of server 1 + log of servers 1 and 2.
    let s3 = start(&cfg).await;
    let got = image(s3.addr()).await;
    assert_same(&image2, &got, "restart 2 (older snapshot + log of two processes)");
    s3.stop().await;

    // --- server 4, sweeping containers every 100 ms: node kinds survived
    // (the container marker is not visible to clients, only its effect).
    let mut cfg4 = cfg.clone();
    cfg4.container_check_interval = Duration::from_millis(100);
    let s4 = start(&cfg4).await;
    let c = connect(&s4.connect_string()).await;
    c.delete("/cont/child", None).await.unwrap();
    within(30, "the emptied container is removed", async {
        while c.exists("/cont").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(c.exists("/plain").await.unwrap().is_some(), "an emptied persistent node is not a container");
    assert!(c.exists("/ttl").await.unwrap().is_some(), "a TTL node within its TTL stays");
    // The recovered session of the ephemerals expires (nobody resumes it)
    // and takes its nodes with it.
    within(60, "recovered session expires", async {
        while c.exists("/eph/e1").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(c.get_children("/eph").await.unwrap().is_empty());
    c.close().await.unwrap();
    s4.stop().await;
}

// ---------------------------------------------------------------------------
// 2. SIGKILL in the middle of a stream of writes
// ---------------------------------------------------------------------------

/// A `zk-server` child process, SIGKILLed on drop.
struct ChildServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl ChildServer {
    fn spawn(cfg: &Path, log: PathBuf, port: u16) -> ChildServer {
        Self::spawn_with(cfg, log, port, None)
    }

    /// With `ZK_SERVER_FAULT` set to `fault` (fault injection).
    fn spawn_with(cfg: &Path, log: PathBuf, port: u16, fault: Option<&str>) -> ChildServer {
        let out = std::fs::File::create(&log).expect("server log");
        let err = out.try_clone().expect("server log");
        let child = Command::new(zk_test_support::ours::zk_server_binary())
            .arg(cfg)
            .env("ZK_SERVER_FAULT", fault.unwrap_or(""))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn zk-server");
        ChildServer { child, port, log }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn kill9(&mut self) {
        // Child::kill is SIGKILL on Unix.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (via kill(1)) and wait for a clean exit.
    fn terminate(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let sent = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        if !sent.is_ok_and(|s| s.success()) {
            return None;
        }
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                panic!("zk-server did not stop within {secs} s of SIGTERM:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ruok(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"ruok").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer == "imok"
}

/// The data of node `i` of writer `t` in round `r`: 0..2 KiB, deterministic.
fn crash_data(r: usize, t: usize, i: usize) -> Vec<u8> {
    let seed = ((r as u64) << 40) ^ ((t as u64) << 20) ^ i as u64;
    pattern((Rng::new(seed).below(2048)) as usize, seed)
}

fn crash_name(t: usize, i: usize) -> String {
    format!("t{t:02}-{i:06}")
}

/// What one round of writes did: per writer, how many of its operations
/// were acknowledged and how many were sent. Each writer waits for one
/// reply before sending the next, so its acknowledged operations are its
/// first `acked`, and at most one more (`sent = acked + 1`) was in flight.
#[derive(Default, Clone)]
struct RoundLog {
    acked: Vec<usize>,
    sent: Vec<usize>,
}

/// Writers that create `/crash/r<r>/tXX-IIIIII` nodes with data.
const CREATORS: usize = 20;
/// Writers that bump `/crash/r<r>-ctr/cK` with a version-checked setData
/// (the data is the new version).
const COUNTERS: usize = 4;
/// Writers that run multis: create `K-I-a` and `K-I-b` under
/// `/crash/r<r>-multi` and setData the parent, atomically.
const MULTIS: usize = 4;
const WRITERS: usize = CREATORS + COUNTERS + MULTIS;

/// What a restarted server holds of round `r` (compared across restarts).
#[derive(Debug, PartialEq, Eq)]
struct RoundState {
    creates: BTreeSet<String>,
    counters: Vec<i32>,
    multis: BTreeSet<String>,
    multi_parent_version: i32,
}

/// Splits `<prefix><a><sep><b>` into two numbers.
fn two_numbers(name: &str, prefix: &str, sep: char) -> Option<(usize, usize)> {
    let (a, b) = name.strip_prefix(prefix)?.split_once(sep)?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn check_stream(r: usize, w: usize, what: &str, found: &BTreeSet<usize>, log: &RoundLog) {
    let (acked, sent, n) = (log.acked[w], log.sent[w], found.len());
    assert!(
        n >= acked,
        "round {r} writer {w}: {acked} {what} acknowledged but only {n} survived (first missing: {:?})",
        (0..acked).find(|i| !found.contains(i))
    );
    assert!(n <= sent, "round {r} writer {w}: {n} {what} present but only {sent} were sent");
    assert_eq!(
        found,
        &(0..n).collect::<BTreeSet<_>>(),
        "round {r} writer {w}: {what} are not a prefix of the stream"
    );
}

/// Checks round `r` on a restarted server: every acknowledged write is
/// there (creates with their data, counter versions, both halves of every
/// multi), nothing that was never sent is, each writer's writes form a
/// prefix of its stream, and multis are all-or-nothing.
async fn verify_round(c: &Client, r: usize, log: &RoundLog) -> RoundState {
    // Creates.
    let parent = format!("/crash/r{r}");
    let creates: BTreeSet<String> = c.get_children(&parent).await.unwrap().into_iter().collect();
    let mut by_writer: HashMap<usize, BTreeSet<usize>> = HashMap::new();
    for name in &creates {
        let (t, i) =
            two_numbers(name, "t", '-').unwrap_or_else(|| panic!("round {r}: unexpected node {name}"));
        assert!(t < CREATORS, "round {r}: unexpected node {name}");
        by_writer.entry(t).or_default().insert(i);
    }
    for t in 0..CREATORS {
        check_stream(r, t, "creates", &by_writer.remove(&t).unwrap_or_default(), log);
    }
    let names: Vec<String> = creates.iter().cloned().collect();
    for chunk in names.chunks(256) {
        let reads: Vec<_> = chunk.iter().map(|n| c.get_data(&format!("{parent}/{n}"))).collect();
        for (name, got) in chunk.iter().zip(futures::future::join_all(reads).await) {
            let (t, i) = two_numbers(name, "t", '-').unwrap();
            assert_eq!(got.unwrap().0, Bytes::from(crash_data(r, t, i)), "round {r}: data of {name}");
        }
    }
    // Counters: version v means the first v setData were applied.
    let mut counters = Vec::new();
    for k in 0..COUNTERS {
        let (data, stat) = c.get_data(&format!("/crash/r{r}-ctr/c{k}")).await.unwrap();
        assert_eq!(
            &data[..],
            stat.version.to_string().as_bytes(),
            "round {r} counter {k}: data matches version"
        );
        let applied: BTreeSet<usize> = (0..stat.version as usize).collect();
        check_stream(r, CREATORS + k, "counter setData", &applied, log);
        counters.push(stat.version);
    }
    // Multis: both creates or neither, and one parent setData each.
    let mparent = format!("/crash/r{r}-multi");
    let multis: BTreeSet<String> = c.get_children(&mparent).await.unwrap().into_iter().collect();
    let mut halves: HashMap<(usize, usize), BTreeSet<char>> = HashMap::new();
    for name in &multis {
        let (head, half) =
            name.rsplit_once('-').unwrap_or_else(|| panic!("round {r}: unexpected node {name}"));
        let (k, i) =
            two_numbers(head, "", '-').unwrap_or_else(|| panic!("round {r}: unexpected node {name}"));
        assert!(k < MULTIS && (half == "a" || half == "b"), "round {r}: unexpected node {name}");
        halves.entry((k, i)).or_default().extend(half.chars());
    }
    let mut total = 0;
    for k in 0..MULTIS {
        let mut found = BTreeSet::new();
        for (&(kk, i), h) in &halves {
            if kk == k {
                assert_eq!(h.len(), 2, "round {r}: multi {k}-{i} was applied in part: {h:?}");
                found.insert(i);
            }
        }
        total += found.len();
        check_stream(r, CREATORS + COUNTERS + k, "multis", &found, log);
    }
    let (_, pstat) = c.get_data(&mparent).await.unwrap();
    assert_eq!(pstat.version as usize, total, "round {r}: one parent setData per applied multi");
    RoundState { creates, counters, multis, multi_parent_version: pstat.version }
}

/// Runs the writers against the child server, SIGKILLs it after `run_for`,
/// and returns what was acknowledged.
async fn write_until_killed(port: u16, r: usize, run_for: Duration, server: &mut ChildServer) -> RoundLog {
    let c = connect(&format!("127.0.0.1:{port}")).await;
    if r == 0 {
        c.create("/crash", b"", CreateMode::Persistent).await.unwrap();
    }
    for p in [format!("/crash/r{r}"), format!("/crash/r{r}-ctr"), format!("/crash/r{r}-multi")] {
        c.create(&p, b"", CreateMode::Persistent).await.unwrap();
    }
    for k in 0..COUNTERS {
        c.create(&format!("/crash/r{r}-ctr/c{k}"), b"0", CreateMode::Persistent).await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Mutex::new(RoundLog { acked: vec![0; WRITERS], sent: vec![0; WRITERS] }));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (c, stop, progress) = (c.clone(), stop.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                progress.lock().unwrap().sent[w] = i + 1;
                let ok = if w < CREATORS {
                    let path = format!("/crash/r{r}/{}", crash_name(w, i));
                    c.create(&path, &crash_data(r, w, i), CreateMode::Persistent).await.is_ok()
                } else if w < CREATORS + COUNTERS {
                    let k = w - CREATORS;
                    let next = (i + 1).to_string();
                    c.set_data(&format!("/crash/r{r}-ctr/c{k}"), next.as_bytes(), Some(i as i32))
                        .await
                        .is_ok()
                } else {
                    let k = w - CREATORS - COUNTERS;
                    let base = format!("/crash/r{r}-multi");
                    let ops = [
                        Op::create(format!("{base}/{k}-{i}-a"), &b"a"[..], CreateMode::Persistent),
                        Op::create(format!("{base}/{k}-{i}-b"), &b"b"[..], CreateMode::Persistent),
                        Op::set_data(base.clone(), format!("{k}-{i}").into_bytes(), None),
                    ];
                    c.multi(&ops).await.is_ok()
                };
                if !ok {
                    break;
                }
                progress.lock().unwrap().acked[w] = i + 1;
                i += 1;
            }
        }));
    }
    // The kill lands a random time after writes are being acknowledged.
    let first_ack = || progress.lock().unwrap().acked.iter().any(|&n| n > 0);
    wait_until(30, &format!("round {r}: a first acknowledged write"), first_ack).await;
    tokio::time::sleep(run_for).await;
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        // In-flight requests fail with ConnectionLoss once the socket closes.
        if tokio::time::timeout(Duration::from_secs(30), task).await.is_err() {
            panic!("round {r}: a writer did not finish after the kill");
        }
    }
    drop(c);
    progress.lock().unwrap().clone()
}

/// Streams of concurrent writes (creates with data, version-checked
/// setData, multis) against a `zk-server` process that is SIGKILLed
/// mid-stream, several rounds on the same data dir (with snapshots every
/// 50..99 txns, so kills also land during snapshots): after each restart
/// every acknowledged write is there, nothing that was never sent is,
/// every writer's writes are a prefix of its stream, multis are
/// all-or-nothing, and earlier rounds are unchanged. Finally the server
/// stops cleanly on SIGTERM and recovers once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_keeps_every_acknowledged_write() {
    common::trace_init();
    let bin =
        within(660, "build zk-server", tokio::task::spawn_blocking(zk_test_support::ours::zk_server_binary))
            .await
            .unwrap();
    eprintln!("zk-server binary: {}", bin.display());
    let seed = std::env::var("ZK_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    eprintln!("crash test seed: {seed} (ZK_CRASH_SEED={seed} replays the kill times)");
    let mut rng = Rng::new(seed);

    let dir = TempDir::new("sigkill");
    let data = dir.path().join("data");
    let port = zk_test_support::free_port();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=*\nsnapCount=100\nmaxClientCnxns=0\n",
            data.display()
        ),
    )
    .unwrap();

    let rounds = 3;
    let mut logs: Vec<RoundLog> = Vec::new();
    let mut seen: Vec<RoundState> = Vec::new();
    within(300, "crash rounds", async {
        for r in 0..=rounds {
            let mut server = ChildServer::spawn(&cfg, dir.path().join(format!("server-{r}.log")), port);
            let port = server.port;
            blocking_ready(&mut server).await;
            let c = connect(&format!("127.0.0.1:{port}")).await;
            for (earlier, log) in logs.iter().enumerate() {
                let present = verify_round(&c, earlier, log).await;
                match seen.get(earlier) {
                    Some(before) => {
                        assert_eq!(&present, before, "round {earlier} changed after a later restart")
                    }
                    None => seen.push(present),
                }
            }
            c.close().await.unwrap();
            if r == rounds {
                // A clean stop, then one more recovery.
                let (status, server) = blocking(30, "SIGTERM", move || (server.terminate(20), server)).await;
                if let Some(status) = status {
                    assert!(
                        status.success(),
                        "zk-server exits cleanly on SIGTERM: {status}\n{}",
                        server.log_tail()
                    );
                }
                drop(server);
                let mut server = ChildServer::spawn(&cfg, dir.path().join("server-final.log"), port);
                blocking_ready(&mut server).await;
                let c = connect(&format!("127.0.0.1:{port}")).await;
                for (earlier, log) in logs.iter().enumerate() {
                    let present = verify_round(&c, earlier, log).await;
                    assert_eq!(&present, &seen[earlier], "round {earlier} after the clean stop");
                }
                c.close().await.unwrap();
                break;
            }
            let run_for = Duration::from_millis(300 + rng.below(400));
            let log = write_until_killed(port, r, run_for, &mut server).await;
            let acked: usize = log.acked.iter().sum();
            let sent: usize = log.sent.iter().sum();
            eprintln!("round {r}: killed after {run_for:?}: {acked} writes acknowledged, {sent} sent");
            assert!(acked > 0, "round {r}: nothing was acknowledged before the kill");
            logs.push(log);
        }
    })
    .await;
    let snaps = zxid_files(&data, "snapshot");
    eprintln!("{} snapshots, {} log files", snaps.len(), zxid_files(&data, "log").len());
}

async fn blocking_ready(server: &mut ChildServer) {
    // wait_ready blocks; a child server is not Send-able across an await
    // inside spawn_blocking without moving it, so poll here instead.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("zk-server exited ({status}) before serving:\n{}", server.log_tail());
        }
        let port = server.port;
        if tokio::task::spawn_blocking(move || ruok(port)).await.unwrap_or(false) {
            return;
        }
        if Instant::now() > deadline {
            panic!("zk-server did not answer ruok within 60 s:\n{}", server.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// 3. A torn log tail
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// The file ends in the middle of the last entry (no zeros after it).
    CutMidEntry,
    /// Garbage where the preallocated zeros after the last entry were.
    GarbageAfterEnd,
    /// A flipped byte inside the last entry (checksum mismatch).
    FlipInLastEntry,
}

/// Writes nodes, damages the end of the log as a crash (or a bad disk)
/// would, and restarts: the server starts, keeps every txn before the
/// damage (and only the damaged txn is lost), accepts new writes, and
/// those survive another restart.
async fn torn_tail_case(damage: Damage) {
    common::trace_init();
    let dir = TempDir::new(&format!("{damage:?}"));
    let cfg = cfg_for(dir.path());
    let s1 = start(&cfg).await;
    let addr = s1.addr();
    // One session writes and reads (reads log nothing), so that the last
    // entry of the log is the create of /t/last.
    let (before_last, after_last, raw) = blocking(60, "writes", move || {
        let mut raw = Raw::connect(addr, 30_000);
        raw_create(&mut raw, "/t", Some(b"torn"), Acl::open_unsafe(), CreateMode::Persistent);
        for i in 0..20u64 {
            let data = pattern((i * 97) as usize, i);
            raw_create(
                &mut raw,
                &format!("/t/n{i:02}"),
                Some(&data),
                Acl::open_unsafe(),
                CreateMode::Persistent,
            );
        }
        raw_set(&mut raw, "/t", b"updated");
        let before = walk(&mut raw);
        raw_create(&mut raw, "/t/last", Some(&pattern(3000, 99)), Acl::open_unsafe(), CreateMode::Persistent);
        let after = walk(&mut raw);
        (before, after, raw)
    })
    .await;
    s1.stop().await;
    drop(raw);

    let logs = zxid_files(dir.path(), "log");
    let (_, log) = logs.last().expect("a log file").clone();
    let bytes = std::fs::read(&log).unwrap();
    let entries = log_entries(&bytes);
    let &(start_off, end_off) = entries.last().expect("log entries");
    let read = txnlog::read_log(dir.path(), 0, false).unwrap();
    match &read.txns.last().expect("txns").body {
        TxnBody::Create(c) => assert_eq!(c.path, "/t/last", "the last entry is the last write"),
        other => panic!("last txn is {other:?}"),
    }
    assert!(bytes.len() > end_off + 1024, "the file is preallocated with zeros after its entries");
    match damage {
        Damage::CutMidEntry => {
            let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
            f.set_len((start_off + (end_off - start_off) / 2) as u64).unwrap();
            f.sync_all().unwrap();
        }
        Damage::GarbageAfterEnd => {
            write_at(&log, end_off as u64, &pattern(40, 5).iter().map(|b| b | 1).collect::<Vec<_>>())
        }
        Damage::FlipInLastEntry => {
            let pos = start_off + 12 + (end_off - start_off - 13) / 2;
            write_at(&log, pos as u64, &[bytes[pos] ^ 0x5a]);
        }
    }
    let damaged = txnlog::read_log(dir.path(), 0, false).unwrap();
    let torn = damaged.torn.as_ref().expect("the damage reads as a torn tail");
    assert_eq!(torn.good_len, torn_at(damage, start_off, end_off) as u64, "{}", torn.reason);
    let want = match damage {
        Damage::GarbageAfterEnd => after_last,
        Damage::CutMidEntry | Damage::FlipInLastEntry => before_last,
    };

    let s2 = start(&cfg).await;
    let got = image(s2.addr()).await;
    assert_same(&want, &got, &format!("{damage:?}: restart after the damage"));
    let addr = s2.addr();
    let final_image = blocking(60, "writes after recovery", move || {
        let mut raw = Raw::connect(addr, 30_000);
        for i in 0..5u64 {
            raw_create(
                &mut raw,
                &format!("/t/new{i}"),
                Some(&pattern(500, 1000 + i)),
                Acl::open_unsafe(),
                CreateMode::Persistent,
            );
        }
        raw_set(&mut raw, "/t", b"after the damage");
        let image = walk(&mut raw);
        let _ = raw.call(&Request::CloseSession);
        image
    })
    .await;
    assert!(final_image.contains_key("/t/new4"));
    s2.stop().await;
    let clean = txnlog::read_log(dir.path(), 0, false).unwrap();
    assert_eq!(clean.torn, None, "recovery cut the torn tail away");
    let s3 = start(&cfg).await;
    let got = image(s3.addr()).await;
    assert_same(&final_image, &got, &format!("{damage:?}: second restart"));
    s3.stop().await;
}

fn torn_at(damage: Damage, start: usize, end: usize) -> usize {
    match damage {
        Damage::GarbageAfterEnd => end,
        Damage::CutMidEntry | Damage::FlipInLastEntry => start,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_cut_mid_entry() {
    within(120, "torn tail", torn_tail_case(Damage::CutMidEntry)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_garbage_after_last_entry() {
    within(120, "torn tail", torn_tail_case(Damage::GarbageAfterEnd)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_flipped_byte_in_last_entry() {
    within(120, "torn tail", torn_tail_case(Damage::FlipInLastEntry)).await;
}

/// A damaged entry in a log file that is not the last one cannot be a torn
/// tail (later files hold later txns): the server refuses to start with an
/// error naming the file, and leaves the files alone, rather than start
/// without the txns after the damage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_inside_an_older_log_file_stops_the_start() {
    common::trace_init();
    let dir = TempDir::new("oldlog");
    let cfg = cfg_for(dir.path());
    for round in 0..2 {
        let s = start(&cfg).await;
        let c = connect(&s.connect_string()).await;
        if round == 0 {
            c.create("/o", b"", CreateMode::Persistent).await.unwrap();
        }
        for i in 0..10 {
            c.create(&format!("/o/r{round}-{i}"), &pattern(200, i), CreateMode::Persistent).await.unwrap();
        }
        c.close().await.unwrap();
        s.stop().await;
    }
    let logs = zxid_files(dir.path(), "log");
    assert!(logs.len() >= 2, "one log file per process: {logs:?}");
    let first = &logs[0].1;
    let bytes = std::fs::read(first).unwrap();
    let entries = log_entries(&bytes);
    let (s, e) = entries[entries.len() / 2];
    let pos = s + 12 + (e - s - 13) / 2;
    write_at(first, pos as u64, &[bytes[pos] ^ 0xff]);
    let len_before: Vec<u64> = logs.iter().map(|(_, p)| std::fs::metadata(p).unwrap().len()).collect();

    let err = within(30, "start", Server::start(cfg.clone())).await.expect_err("must not start");
    let msg = err.to_string();
    assert!(msg.contains("corrupt transaction log") && msg.contains("not the last"), "{msg}");
    let len_after: Vec<u64> = logs.iter().map(|(_, p)| std::fs::metadata(p).unwrap().len()).collect();
    assert_eq!(len_before, len_after, "a refused start leaves the log files as they were");
}

/// A damaged entry in the middle of the *last* log file (bit rot rather
/// than a crash: intact entries follow it) is read like a torn tail. The
/// server must either refuse to start, or start with every txn before the
/// damage; it must never apply a damaged txn.
///
/// Today it starts, keeps the txns before the damage, and truncates the
/// file there: the intact, acknowledged txns after the damage are gone for
/// good (Apache instead refuses to start on a checksum error). This test
/// accepts both policies; see the report of this test file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_mid_last_log_never_applies_damaged_txns() {
    common::trace_init();
    let dir = TempDir::new("midlog");
    let cfg = cfg_for(dir.path());
    let s = start(&cfg).await;
    let addr = s.addr();
    let (images, raw) = blocking(60, "writes", move || {
        let mut raw = Raw::connect(addr, 30_000);
        raw_create(&mut raw, "/x", Some(b""), Acl::open_unsafe(), CreateMode::Persistent);
        let mut images = vec![walk(&mut raw)];
        for i in 0..12u64 {
            raw_create(
                &mut raw,
                &format!("/x/n{i:02}"),
                Some(&pattern(300, i)),
                Acl::open_unsafe(),
                CreateMode::Persistent,
            );
            images.push(walk(&mut raw));
        }
        (images, raw)
    })
    .await;
    s.stop().await;
    drop(raw);
    let logs = zxid_files(dir.path(), "log");
    let (_, log) = logs.last().unwrap().clone();
    let bytes = std::fs::read(&log).unwrap();
    let entries = log_entries(&bytes);
    // Entries: createSession, /x, /x/n00 .. /x/n11. Damage the one of /x/n05.
    assert_eq!(entries.len(), 14);
    let (s0, e0) = entries[7];
    let pos = s0 + 12 + (e0 - s0 - 13) / 2;
    write_at(&log, pos as u64, &[bytes[pos] ^ 0x10]);

    match within(30, "start", Server::start(cfg.clone())).await {
        Err(e) => eprintln!("refused to start (acceptable): {e}"),
        Ok(s2) => {
            let got = image(s2.addr()).await;
            // images[k] is the tree after k creates under /x; n05 is create 6.
            assert_same(&images[5], &got, "started after mid-file damage: exactly the txns before it");
            eprintln!(
                "NOTE: started after damage in the middle of the last log; {} intact txns after it were dropped",
                entries.len() - 8
            );
            s2.stop().await;
        }
    }
}

// ---------------------------------------------------------------------------
// 4. A corrupt snapshot
// ---------------------------------------------------------------------------

/// The newest snapshot is corrupt (flipped bytes in its middle): the server
/// falls back to an older snapshot and replays the log from there (logs are
/// kept: autopurge is off), so every node comes back. When no snapshot can
/// be loaded at all, it refuses to start with an error naming the snapshots
/// rather than start with an empty tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_newest_snapshot_falls_back_to_an_older_one() {
    common::trace_init();
    let dir = TempDir::new("snapshot");
    let mut cfg = cfg_for(dir.path());
    cfg.snap_count = 10;
    let s = start(&cfg).await;
    let c = connect(&s.connect_string()).await;
    c.create("/s", b"", CreateMode::Persistent).await.unwrap();
    for i in 0..60u64 {
        c.create(&format!("/s/n{i:02}"), &pattern((i * 53 % 900) as usize, i), CreateMode::Persistent)
            .await
            .unwrap();
        if i % 7 == 0 {
            c.set_data("/s", &pattern(i as usize, i), None).await.unwrap();
        }
    }
    c.close().await.unwrap();
    let want = image(s.addr()).await;
    s.stop().await;

    // The newest snapshot must be complete before it is damaged.
    let snaps = snapshots_settled(dir.path(), 3).await;
    let (newest_zxid, newest) = snaps.last().unwrap().clone();
    let (older_zxid, _) = snaps[snaps.len() - 2].clone();
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4] {
        *b ^= 0xa5;
    }
    std::fs::write(&newest, &bytes).unwrap();
    let loaded = snapshot::load_latest(dir.path()).unwrap().expect("an older snapshot loads");
    assert_eq!(loaded.zxid, older_zxid, "the corrupt snapshot {newest_zxid:#x} is skipped");

    let s = start(&cfg).await;
    let got = image(s.addr()).await;
    assert_same(&want, &got, "restart with a corrupt newest snapshot");
    // And it keeps working on top.
    let c = connect(&s.connect_string()).await;
    c.create("/s/after", b"a", CreateMode::Persistent).await.unwrap();
    c.close().await.unwrap();
    let want = image(s.addr()).await;
    s.stop().await;
    let s = start(&cfg).await;
    assert_same(&want, &image(s.addr()).await, "restart after the fallback");
    s.stop().await;

    // Every snapshot corrupt: no start, a clear error, nothing deleted.
    let snaps = zxid_files(dir.path(), "snapshot");
    for (_, path) in &snaps {
        let mut bytes = std::fs::read(path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        std::fs::write(path, &bytes).unwrap();
    }
    let err =
        within(30, "start", Server::start(cfg.clone())).await.expect_err("no usable snapshot: no start");
    let msg = err.to_string();
    assert!(msg.contains("snapshot"), "the error names the snapshots: {msg}");
    assert_eq!(zxid_files(dir.path(), "snapshot").len(), snaps.len(), "snapshots are kept for inspection");
}

// ---------------------------------------------------------------------------
// Fail-stop: the process ends, non-zero and with one clear line, when an
// essential part dies or the log fails.
// ---------------------------------------------------------------------------

/// A zoo.cfg in `dir` with its data in `data`.
fn fail_stop_cfg(dir: &Path, data: &Path, port: u16) -> PathBuf {
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n",
            data.display()
        ),
    )
    .unwrap();
    cfg
}

/// Waits (bounded) for the server process to exit; its status.
fn wait_exit(server: &mut ChildServer, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(Some(s)) = server.child.try_wait() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "zk-server still runs {secs} s after the fault:\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a server with `fault`, provokes it with `provoke`, and checks
/// that the process exits non-zero with one `stopping:` line naming `why`.
async fn fail_stop_case(name: &str, fault: &str, why: &str, provoke: impl FnOnce(u16) + Send + 'static) {
    within(660, "build zk-server", tokio::task::spawn_blocking(zk_test_support::ours::zk_server_binary))
        .await
        .unwrap();
    let dir = TempDir::new(name);
    let port = zk_test_support::free_port();
    let cfg = fail_stop_cfg(dir.path(), &dir.path().join("data"), port);
    let mut server = ChildServer::spawn_with(&cfg, dir.path().join("server.log"), port, Some(fault));
    if fault != "accept-exit" {
        blocking_ready(&mut server).await;
    }
    let (status, server) = blocking(60, "fault", move || {
        provoke(port);
        (wait_exit(&mut server, 20), server)
    })
    .await;
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    assert!(!status.success(), "{name}: zk-server exited with {status}\n{log}");
    let stopping: Vec<&str> = log.lines().filter(|l| l.contains("stopping:")).collect();
    assert_eq!(stopping.len(), 1, "{name}: one clear line says why:\n{log}");
    assert!(stopping[0].contains(why), "{name}: {:?} should say {why:?}", stopping[0]);
}

fn create_fault_node(port: u16) {
    let mut raw = Raw::connect(SocketAddr::from(([127, 0, 0, 1], port)), 10_000);
    let create = Request::Create(CreateRequest {
        path: "/zk-fault".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 0,
    });
    let _ = raw.call(&create);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_stop_when_the_core_dies() {
    fail_stop_case("core-dies", "core-panic:/zk-fault", "core task panicked", create_fault_node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_stop_when_the_log_thread_dies() {
    fail_stop_case("log-dies", "log-panic:/zk-fault", "log thread", create_fault_node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_stop_when_the_accept_loop_ends() {
    fail_stop_case("accept-ends", "accept-exit", "accept loop", |port| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err() {
            assert!(Instant::now() < deadline, "the server never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await;
}

/// A tmpfs mounted for the test, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| e.to_string())?;
        if !st.status.success() {
            return Err(String::from_utf8_lossy(&st.stderr).into_owned());
        }
        Ok(SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The disk fills under the transaction log: the write (or fsync) fails,
/// and the server stops instead of answering as if the write were
/// durable. (A real failure, on a small tmpfs; needs root to mount it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_stop_when_the_log_cannot_be_written() {
    within(660, "build zk-server", tokio::task::spawn_blocking(zk_test_support::ours::zk_server_binary))
        .await
        .unwrap();
    let dir = TempDir::new("disk-full");
    let data = dir.path().join("data");
    let disk = match SmallDisk::mount(&data, "3m") {
        Ok(d) => d,
        Err(e) => {
            zk_test_support::external::missing("a tmpfs mount (needs root)", &e);
            return;
        }
    };
    let port = zk_test_support::free_port();
    let cfg = fail_stop_cfg(dir.path(), &data, port);
    let mut server = ChildServer::spawn(&cfg, dir.path().join("server.log"), port);
    blocking_ready(&mut server).await;
    let c = connect(&format!("127.0.0.1:{port}")).await;
    let mut acked = 0;
    let mut failed = None;
    for i in 0..100 {
        match c.create(&format!("/fill-{i}"), &vec![1u8; 256 * 1024], CreateMode::Persistent).await {
            Ok(_) => acked += 1,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    assert!(failed.is_some(), "3 MiB held {acked} writes of 256 KiB");
    let (status, server) = blocking(60, "exit", move || (wait_exit(&mut server, 20), server)).await;
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    eprintln!("{acked} writes acknowledged before the disk filled; then {failed:?}; exit {status}");
    assert!(!status.success(), "zk-server exited with {status}\n{log}");
    let stopping: Vec<&str> = log.lines().filter(|l| l.contains("stopping:")).collect();
    assert_eq!(stopping.len(), 1, "one clear line says why:\n{log}");
    assert!(stopping[0].contains("transaction log"), "{:?}", stopping[0]);
    drop(c);
    drop(disk);
}

/// An ensemble whose `myid` is not among its `server.N` lines is refused
/// with one clear message, never run standalone unnoticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inconsistent_ensemble_config_is_refused_clearly() {
    let bin =
        within(660, "build zk-server", tokio::task::spawn_blocking(zk_test_support::ours::zk_server_binary))
            .await
            .unwrap();
    let dir = TempDir::new("ensemble-cfg");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("myid"), "4\n").unwrap();
    let port = zk_test_support::free_port();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ninitLimit=5\nsyncLimit=2\ndataDir={}\nclientPort={port}\n\
             server.1=127.0.0.1:{}:{}\nserver.2=127.0.0.1:{}:{}\nserver.3=127.0.0.1:{}:{}\n",
            data.display(),
            port + 1,
            port + 2,
            port + 3,
            port + 4,
            port + 5,
            port + 6
        ),
    )
    .unwrap();
    let out = blocking(30, "zk-server exits", move || Command::new(bin).arg(&cfg).output().unwrap()).await;
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("myid is 4") && text.contains("[1, 2, 3]"), "{text}");
}

/// Periodic snapshots are written by a thread of their own at nice 10, so
/// under a load that keeps every core busy requests come first. Every
/// server in this process has one (`/proc/self/task/*/comm` is
/// `zk-snapshot`): each must run at the lower priority.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_snapshots_run_on_a_lower_priority_thread() {
    common::trace_init();
    let dir = TempDir::new("snapshot-nice");
    let mut cfg = cfg_for(dir.path());
    cfg.snap_count = 10;
    let s = start(&cfg).await;
    let c = connect(&s.connect_string()).await;
    for i in 0..30 {
        c.create(&format!("/n{i}"), b"x", CreateMode::Persistent).await.unwrap();
    }
    snapshots_settled(dir.path(), 2).await;
    // (name, nice) of every thread of this process.
    let threads: Vec<(String, i64)> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let t = t.ok()?.path();
            let comm = std::fs::read_to_string(t.join("comm")).ok()?;
            let stat = std::fs::read_to_string(t.join("stat")).ok()?;
            // After the name in parentheses: state is field 3, nice 19.
            let nice = stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()?;
            Some((comm.trim().to_string(), nice))
        })
        .collect();
    let snap: Vec<i64> = threads.iter().filter(|(n, _)| n == "zk-snapshot").map(|&(_, v)| v).collect();
    assert!(!snap.is_empty(), "no zk-snapshot thread among {threads:?}");
    assert!(snap.iter().all(|&v| v == 10), "zk-snapshot threads' nice values: {snap:?}");
    c.close().await.unwrap();
    s.stop().await;
}
