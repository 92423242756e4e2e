//! Data dirs move between zk-server and Apache ZooKeeper 3.8 both ways,
//! and what a snapshot holds keeps Apache's meaning: after creates and
//! deletes under a parent, the next sequential child gets the same number
//! on either server, and the parent's Stat reads the same. Snapshots go
//! both ways plain, gzip- and snappy-compressed
//! (`zookeeper.snapshot.compression.method`): the reader gets only the
//! writer's newest snapshot, so it must read that file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::within;
use zk_client::{Acl, Client, CreateMode, CreateOptions, Id, digest_id};
use zk_server::{Server, ServerConfig};
use zk_test_support::apache::{ApacheZk, ApacheZkOptions};

async fn connect(cs: &str) -> Client {
    within(30, "connect", Client::builder(cs).session_timeout(Duration::from_secs(10)).connect())
        .await
        .expect("connect")
}

/// Creates three sequential children of /sq, deletes two, and returns the
/// zxid of the last change to /sq.
async fn sequence_then_delete(c: &Client) -> i64 {
    c.create("/sq", b"", CreateMode::Persistent).await.unwrap();
    for _ in 0..3 {
        c.create("/sq/s-", b"", CreateMode::PersistentSequential).await.unwrap();
    }
    c.delete("/sq/s-0000000000", None).await.unwrap();
    c.delete("/sq/s-0000000001", None).await.unwrap();
    c.exists("/sq").await.unwrap().unwrap().pzxid
}

/// The ACL lists of the nodes [`acl_nodes`] makes.
fn acl_lists() -> Vec<(&'static str, Vec<Acl>)> {
    let digest = digest_id("u1", "pw1");
    vec![
        ("/acl-read", Acl::read_unsafe()),
        ("/acl-digest", vec![Acl { perms: 31, id: digest.clone() }]),
        ("/acl-mixed", vec![Acl { perms: 1, id: Id::new("world", "anyone") }, Acl { perms: 31, id: digest }]),
    ]
}

/// Nodes with ACLs other than the open one, and one list that no node
/// uses any more (its node is gone): a snapshot's ACL cache must map
/// every node to its own list, whatever the indexes.
async fn acl_nodes(c: &Client) {
    let gone = vec![Acl { perms: 3, id: Id::new("world", "anyone") }];
    c.create("/acl-gone", b"", CreateOptions::new(CreateMode::Persistent).with_acl(gone)).await.unwrap();
    c.delete("/acl-gone", None).await.unwrap();
    for (path, acl) in acl_lists() {
        c.create(path, b"", CreateOptions::new(CreateMode::Persistent).with_acl(acl)).await.unwrap();
    }
}

/// Writes until a snapshot newer than `zxid` is in `data`.
async fn until_snapshot_after(c: &Client, data: &Path, zxid: i64) -> i64 {
    c.create("/filler", b"", CreateMode::Persistent).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for _ in 0..10 {
            c.set_data("/filler", b"x", None).await.unwrap();
        }
        let newest = std::fs::read_dir(data.join("version-2"))
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let hex = name.strip_prefix("snapshot.")?.split('.').next()?;
                i64::from_str_radix(hex, 16).ok()
            })
            .max();
        if let Some(z) = newest.filter(|z| *z > zxid) {
            return z;
        }
        assert!(Instant::now() < deadline, "no snapshot after {zxid:#x} in {}", data.display());
    }
}

/// The parent's cversion and children as a client sees them, then the
/// name of one more sequential child.
async fn observe(c: &Client) -> (i32, Vec<String>, String) {
    let (mut kids, stat) = c.get_children2("/sq").await.unwrap();
    kids.sort();
    let (next, _) = c.create("/sq/s-", b"", CreateMode::PersistentSequential).await.unwrap();
    (stat.cversion, kids, next)
}

/// The snapshot compression methods, as `zoo.cfg` names them, and the
/// file suffix each gives.
const METHODS: [(&str, &str); 3] = [("", ""), ("gz", ".gz"), ("snappy", ".snappy")];

/// Whether Apache can take part with `method` (snappy needs snappy-java,
/// Debian's `libsnappy-java`, on its class path); a loud skip otherwise.
fn apache_handles(method: &str) -> bool {
    if method != "snappy" || std::path::Path::new(zk_test_support::apache::SNAPPY_JAR).exists() {
        return true;
    }
    zk_test_support::external::missing(
        "snappy-java (Debian package `libsnappy-java`)",
        "Apache cannot read or write snappy snapshots without it",
    );
    false
}

/// Deletes every file of the data dir but the newest snapshot, whose name
/// must end in `suffix`; its name.
fn keep_only_newest_snapshot(data: &Path, suffix: &str) -> String {
    let vdir = data.join("version-2");
    let mut snaps: Vec<(i64, String)> = std::fs::read_dir(&vdir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.strip_prefix("snapshot.")?.split('.').next()?;
            Some((i64::from_str_radix(hex, 16).ok()?, name))
        })
        .collect();
    snaps.sort();
    let (_, newest) = snaps.pop().expect("a snapshot");
    assert!(
        newest.ends_with(suffix) && newest.matches('.').count() == 1 + usize::from(!suffix.is_empty()),
        "{newest} is not a {suffix:?} snapshot"
    );
    for e in std::fs::read_dir(&vdir).unwrap().filter_map(Result::ok) {
        if e.file_name().to_string_lossy() != newest {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    newest
}

fn our_cfg(data: &Path, method: &str) -> ServerConfig {
    let mut cfg = ServerConfig::new(data);
    cfg.snapshot_compression = zk_server::persist::compress::Compression::parse(method).unwrap();
    cfg.client_port = 0;
    cfg.client_port_address = Some("127.0.0.1".parse().unwrap());
    cfg.snap_count = 20;
    cfg.four_letter_words = vec!["*".into()];
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_snapshot_loads_in_apache_with_the_same_sequence() {
    common::trace_init();
    if zk_test_support::apache::available().is_err() {
        // ApacheZk::start_with prints the skip line (or fails under ZK_REQUIRE_EXTERNAL).
        assert!(ApacheZk::start().is_none());
        return;
    }
    for (method, suffix) in METHODS {
        if !apache_handles(method) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let server = Server::start(our_cfg(&data, method)).await.unwrap();
        let c = connect(&server.connect_string()).await;
        acl_nodes(&c).await;
        let last = sequence_then_delete(&c).await;
        until_snapshot_after(&c, &data, last).await;
        let (stat, _) = c.get_children2("/sq").await.map(|(k, s)| (s, k)).unwrap();
        c.close().await.unwrap();
        server.stop().await;
        let snap = keep_only_newest_snapshot(&data, suffix);

        let opts = ApacheZkOptions { data_dir: Some(data.clone()), ..ApacheZkOptions::default() };
        let apache = tokio::task::spawn_blocking(move || ApacheZk::start_with(opts)).await.unwrap().unwrap();
        let a = connect(&apache.connect_string()).await;
        let (cversion, kids, next) = observe(&a).await;
        eprintln!("ours wrote {snap}; Apache reads /sq cversion {cversion}, next {next}");
        assert_eq!(kids, vec!["s-0000000002".to_string()], "{snap}");
        assert_eq!(cversion, stat.cversion, "Apache reads the parent's Stat as we showed it ({snap})");
        assert_eq!(next, "/sq/s-0000000003", "Apache numbers on from our snapshot {snap}");
        a.add_auth("digest", b"u1:pw1").await.unwrap();
        for (path, acl) in acl_lists() {
            let (got, _) = a.get_acl(path).await.unwrap();
            assert_eq!(got, acl, "{path}'s ACL as Apache read it from {snap}");
        }
        a.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apaches_snapshot_loads_here_with_the_same_sequence() {
    common::trace_init();
    for (method, suffix) in METHODS {
        if !apache_handles(method) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let opts = ApacheZkOptions {
            data_dir: Some(data.clone()),
            extra_config: vec!["snapCount=20".into()],
            jvm_args: vec![format!("-Dzookeeper.snapshot.compression.method={method}")],
            ..ApacheZkOptions::default()
        };
        let Some(apache) = tokio::task::spawn_blocking(move || ApacheZk::start_with(opts)).await.unwrap()
        else {
            return;
        };
        let a = connect(&apache.connect_string()).await;
        let last = sequence_then_delete(&a).await;
        until_snapshot_after(&a, &data, last).await;
        let (_, stat) = a.get_children2("/sq").await.unwrap();
        a.close().await.unwrap();
        drop(apache);
        let snap = keep_only_newest_snapshot(&data, suffix);

        // Our server writes plain snapshots: reading is by file name.
        let server = Server::start(our_cfg(&data, "")).await.unwrap();
        let c = connect(&server.connect_string()).await;
        let (cversion, kids, next) = observe(&c).await;
        eprintln!("Apache wrote {snap}; we read /sq cversion {cversion}, next {next}");
        assert_eq!(kids, vec!["s-0000000002".to_string()], "{snap}");
        assert_eq!(cversion, stat.cversion, "we read the parent's Stat as Apache showed it ({snap})");
        assert_eq!(next, "/sq/s-0000000003", "we number on from Apache's snapshot {snap}");
        c.close().await.unwrap();
        server.stop().await;
    }
}
