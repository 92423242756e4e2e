//! zk-client against real servers: every operation and every watch type,
//! with the same assertions against Apache ZooKeeper 3.8 (Debian) and
//! against our own zk-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::within;
use futures::StreamExt;
use zk_client::{
    AddWatchMode, Client, CreateMode, CreateOptions, Error, EventType, Op, OpResult, ReadOp, ReadResult,
    SessionState, WatcherType, digest_id,
};
use zk_proto::records::Acl;
use zk_proto::types::perms;
use zk_test_support::apache::ApacheZk;

async fn connect(cs: &str) -> Client {
    within(20, "connect", Client::builder(cs).session_timeout(Duration::from_secs(10)).connect())
        .await
        .expect("connect")
}

/// A fresh chroot for one case, so cases never see each other's nodes.
async fn chrooted(server: &str, name: &str) -> Client {
    let root = connect(server).await;
    root.create(&format!("/{name}"), b"", CreateMode::Persistent).await.expect("case root");
    root.close().await.expect("close");
    connect(&format!("{server}/{name}")).await
}

async fn crud(server: &str) {
    let c = chrooted(server, "crud").await;
    let (path, stat) = c.create("/a", b"v0", CreateMode::Persistent).await.unwrap();
    assert_eq!(path, "/a");
    assert_eq!((stat.version, stat.data_length, stat.ephemeral_owner), (0, 2, 0));
    assert_eq!(stat.czxid, stat.mzxid);
    assert_eq!(c.create("/a", b"", CreateMode::Persistent).await, Err(Error::NodeExists));
    assert_eq!(c.create("/missing/child", b"", CreateMode::Persistent).await, Err(Error::NoNode));

    let (data, stat) = c.get_data("/a").await.unwrap();
    assert_eq!(&data[..], b"v0");
    let stat2 = c.set_data("/a", b"v1", Some(stat.version)).await.unwrap();
    assert_eq!(stat2.version, 1);
    assert!(stat2.mzxid > stat.mzxid);
    assert_eq!(c.set_data("/a", b"v2", Some(0)).await, Err(Error::BadVersion));
    assert_eq!(c.set_data("/nope", b"", None).await, Err(Error::NoNode));
    assert_eq!(c.get_data("/nope").await, Err(Error::NoNode));

    assert_eq!(c.exists("/a").await.unwrap().map(|s| s.version), Some(1));
    assert_eq!(c.exists("/nope").await.unwrap(), None);

    let (eph, stat) = c.create("/e", b"", CreateMode::Ephemeral).await.unwrap();
    assert_eq!(stat.ephemeral_owner, c.session_id());
    assert_eq!(
        c.create(&format!("{eph}/child"), b"", CreateMode::Persistent).await,
        Err(Error::NoChildrenForEphemerals)
    );

    let (s1, _) = c.create("/a/seq-", b"", CreateMode::PersistentSequential).await.unwrap();
    let (s2, _) = c.create("/a/seq-", b"", CreateMode::EphemeralSequential).await.unwrap();
    assert_eq!(s1, "/a/seq-0000000000");
    assert_eq!(s2, "/a/seq-0000000001");

    let (cont, stat) = c.create("/container", b"", CreateMode::Container).await.unwrap();
    assert_eq!(cont, "/container");
    assert_eq!(stat.ephemeral_owner, 0, "the server hides the container marker from clients");
    let ttl = CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(Duration::from_secs(3600));
    let (_, stat) = c.create("/ttl", b"", ttl).await.unwrap();
    assert_eq!(stat.ephemeral_owner, 0, "the server hides the TTL from clients");
    assert_eq!(
        c.create("/ttl2", b"", CreateOptions::new(CreateMode::Persistent).with_ttl(Duration::from_secs(1)))
            .await,
        Err(Error::BadArguments)
    );
    assert_eq!(
        c.create("/x", b"", CreateOptions::new(CreateMode::Persistent).with_acl(vec![])).await,
        Err(Error::InvalidAcl)
    );

    assert_eq!(c.delete("/a", None).await, Err(Error::NotEmpty));
    assert_eq!(c.delete(&s1, Some(7)).await, Err(Error::BadVersion));
    c.delete(&s1, Some(0)).await.unwrap();
    c.delete(&s2, None).await.unwrap();
    c.delete("/a", None).await.unwrap();
    assert_eq!(c.delete("/a", None).await, Err(Error::NoNode));

    // Invalid paths are refused before anything is sent.
    for bad in ["", "a", "/a/", "/a//b", "/a/./b"] {
        assert!(matches!(c.get_data(bad).await, Err(Error::InvalidPath { .. })), "{bad:?}");
    }
    c.close().await.unwrap();
}

async fn children(server: &str) {
    let c = chrooted(server, "children").await;
    c.create("/p", b"", CreateMode::Persistent).await.unwrap();
    for n in ["x", "y", "z"] {
        c.create(&format!("/p/{n}"), b"", CreateMode::Persistent).await.unwrap();
    }
    c.create("/p/x/deep", b"", CreateMode::Ephemeral).await.unwrap();
    let mut kids = c.get_children("/p").await.unwrap();
    kids.sort();
    assert_eq!(kids, vec!["x", "y", "z"]);
    let (kids, stat) = c.get_children2("/p").await.unwrap();
    assert_eq!((kids.len(), stat.num_children, stat.cversion), (3, 3, 3));
    assert_eq!(c.get_all_children_number("/p").await.unwrap(), 4);
    assert_eq!(c.get_ephemerals("/").await.unwrap(), vec!["/p/x/deep".to_string()]);
    assert_eq!(c.get_children("/nope").await, Err(Error::NoNode));
    c.sync("/p").await.unwrap();
    c.close().await.unwrap();
}

async fn acls(server: &str) {
    let c = chrooted(server, "acls").await;
    let (acl, _) = c.get_acl("/").await.unwrap();
    assert_eq!(acl, Acl::open_unsafe());
    c.create("/secret", b"s", CreateMode::Persistent).await.unwrap();
    let digest = vec![Acl::new(perms::ALL, digest_id("user", "pass"))];
    let stat = c.set_acl("/secret", &digest, Some(0)).await.unwrap();
    assert_eq!(stat.aversion, 1);
    assert_eq!(c.set_acl("/secret", &digest, Some(0)).await, Err(Error::NoAuth));
    assert_eq!(c.get_data("/secret").await, Err(Error::NoAuth));
    c.add_auth("digest", b"user:pass").await.unwrap();
    assert_eq!(&c.get_data("/secret").await.unwrap().0[..], b"s");
    let who = c.who_am_i().await.unwrap();
    assert!(who.iter().any(|i| i.auth_scheme == "digest" && i.user == "user"), "{who:?}");
    assert_eq!(c.get_acl("/secret").await.unwrap().0, digest);
    assert_eq!(c.set_acl("/secret", &[], None).await, Err(Error::InvalidAcl));
    // The creator's-auth ACL resolves to the session's digest identity.
    let (_, _) = c
        .create("/mine", b"", CreateOptions::new(CreateMode::Persistent).with_acl(Acl::creator_all()))
        .await
        .unwrap();
    assert_eq!(c.get_acl("/mine").await.unwrap().0, digest);
    c.delete("/mine", None).await.unwrap();
    c.set_acl("/secret", &Acl::open_unsafe(), None).await.unwrap();
    c.close().await.unwrap();
}

async fn multi(server: &str) {
    let c = chrooted(server, "multi").await;
    let results = c
        .multi(&[
            Op::create("/m", &b"0"[..], CreateMode::Persistent),
            Op::create("/m/s-", &b""[..], CreateMode::PersistentSequential),
            Op::set_data("/m", &b"1"[..], Some(0)),
            Op::check("/m", Some(1)),
        ])
        .await
        .unwrap();
    assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/m"));
    assert!(matches!(&results[1], OpResult::Create { path, .. } if path == "/m/s-0000000000"));
    assert!(matches!(&results[2], OpResult::SetData { stat } if stat.version == 1));
    assert_eq!(results[3], OpResult::Check);

    let failing =
        [Op::set_data("/m", &b"2"[..], None), Op::check("/m", Some(0)), Op::delete("/m/s-0000000000", None)];
    assert_eq!(c.multi(&failing).await, Err(Error::BadVersion));
    let results = c.try_multi(&failing).await.unwrap();
    assert_eq!(
        results,
        vec![
            OpResult::Error(Ok(())),
            OpResult::Error(Err(Error::BadVersion)),
            OpResult::Error(Err(Error::RuntimeInconsistency))
        ]
    );
    assert_eq!(&c.get_data("/m").await.unwrap().0[..], b"1", "a failed multi changes nothing");

    let reads = c
        .multi_read(&[
            ReadOp::GetData("/m".into()),
            ReadOp::GetChildren("/m".into()),
            ReadOp::GetData("/nope".into()),
        ])
        .await
        .unwrap();
    assert!(matches!(&reads[0], ReadResult::Data { data, .. } if &data[..] == b"1"));
    assert_eq!(reads[1], ReadResult::Children(vec!["s-0000000000".to_string()]));
    assert_eq!(reads[2], ReadResult::Error(Error::NoNode));
    c.close().await.unwrap();
}

async fn watches(server: &str) {
    let c = chrooted(server, "watches").await;
    let other = connect(&format!("{server}/watches")).await;

    // exists on a missing node: fires on create.
    let (stat, created) = c.exists_watch("/w").await.unwrap();
    assert!(stat.is_none());
    other.create("/w", b"", CreateMode::Persistent).await.unwrap();
    let ev = within(10, "NodeCreated", created).await;
    assert_eq!((ev.event_type, ev.path.as_str()), (EventType::NodeCreated, "/w"));

    // data watch: fires once on change.
    let (_, _, changed) = c.get_data_watch("/w").await.unwrap();
    other.set_data("/w", b"x", None).await.unwrap();
    assert_eq!(within(10, "NodeDataChanged", changed).await.event_type, EventType::NodeDataChanged);

    // child watch: fires on a new child, then on the node's deletion.
    let (_, kids) = c.get_children_watch("/w").await.unwrap();
    other.create("/w/k", b"", CreateMode::Persistent).await.unwrap();
    assert_eq!(within(10, "NodeChildrenChanged", kids).await.event_type, EventType::NodeChildrenChanged);
    let (_, _, kids2) = c.get_children2_watch("/w").await.unwrap();
    let (_, _, data2) = c.get_data_watch("/w").await.unwrap();
    other.delete("/w/k", None).await.unwrap();
    assert_eq!(within(10, "child removed", kids2).await.event_type, EventType::NodeChildrenChanged);
    other.delete("/w", None).await.unwrap();
    assert_eq!(within(10, "NodeDeleted", data2).await.event_type, EventType::NodeDeleted);

    // A failed read leaves no watch behind, here or on the server.
    assert_eq!(c.get_data_watch("/w").await.err(), Some(Error::NoNode));
    assert_eq!(c.check_watches("/w", WatcherType::Data).await, Err(Error::NoWatcher));

    // Persistent watch: every event on the node, and it stays.
    c.create("/p", b"", CreateMode::Persistent).await.unwrap();
    let mut p = c.add_watch("/p", AddWatchMode::Persistent).await.unwrap();
    other.set_data("/p", b"1", None).await.unwrap();
    other.create("/p/c", b"", CreateMode::Persistent).await.unwrap();
    other.set_data("/p", b"2", None).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(within(10, "persistent event", p.next()).await.expect("event").event_type);
    }
    assert_eq!(
        got,
        vec![EventType::NodeDataChanged, EventType::NodeChildrenChanged, EventType::NodeDataChanged]
    );

    // Recursive watch: descendants too, but no child events.
    let mut r = c.add_watch("/p", AddWatchMode::PersistentRecursive).await.unwrap();
    other.create("/p/c/d", b"", CreateMode::Persistent).await.unwrap();
    other.set_data("/p/c/d", b"x", None).await.unwrap();
    let a = within(10, "recursive event", r.next()).await.expect("event");
    let b = within(10, "recursive event", r.next()).await.expect("event");
    assert_eq!((a.event_type, a.path.as_str()), (EventType::NodeCreated, "/p/c/d"));
    assert_eq!((b.event_type, b.path.as_str()), (EventType::NodeDataChanged, "/p/c/d"));

    // Removing watches, on the server and here. Apache 3.8 answers
    // check/removeWatches for the persistent types with MarshallingError;
    // `Any` covers them.
    c.check_watches("/p", WatcherType::Any).await.unwrap();
    c.remove_watches("/p", WatcherType::Any).await.unwrap();
    let end = within(10, "removal event", p.next()).await.expect("event");
    assert_eq!(end.event_type, EventType::PersistentWatchRemoved);
    let end = within(10, "removal event", r.next()).await.expect("event");
    assert_eq!(end.event_type, EventType::PersistentWatchRemoved);
    assert_eq!(c.check_watches("/p", WatcherType::Any).await, Err(Error::NoWatcher));
    let (_, _, dw) = c.get_data_watch("/p").await.unwrap();
    c.remove_watches("/p", WatcherType::Data).await.unwrap();
    assert_eq!(within(10, "data watch removed", dw).await.event_type, EventType::DataWatchRemoved);

    other.close().await.unwrap();
    c.close().await.unwrap();
}

async fn session_close(server: &str) {
    let c = chrooted(server, "close").await;
    let watcher = connect(&format!("{server}/close")).await;
    let mut states = c.state_events();
    c.create("/eph", b"", CreateMode::Ephemeral).await.unwrap();
    let (_, gone) = watcher.exists_watch("/eph").await.unwrap();
    let (_, _, pending_watch) = c.get_data_watch("/").await.unwrap();
    c.close().await.unwrap();
    assert_eq!(within(10, "closed state", states.next()).await, Some(SessionState::Closed));
    assert_eq!(c.state(), SessionState::Closed);
    assert_eq!(within(10, "ephemeral deleted", gone).await.event_type, EventType::NodeDeleted);
    assert_eq!(within(10, "watch ends", pending_watch).await.state, zk_client::KeeperState::Closed);
    assert_eq!(c.get_data("/").await, Err(Error::ClientClosed));
    c.close().await.unwrap();
    watcher.close().await.unwrap();
}

async fn pipelining(server: &str) {
    let c = chrooted(server, "pipe").await;
    for i in 0..10 {
        c.create(&format!("/n{i}"), format!("{i}").as_bytes(), CreateMode::Persistent).await.unwrap();
    }
    let mut tasks = Vec::new();
    for t in 0..10 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let futs = (0..100).map(|k| {
                let c = c.clone();
                async move {
                    let i = (t + k) % 10;
                    let (d, _) = c.get_data(&format!("/n{i}")).await.unwrap();
                    assert_eq!(d, Bytes::from(format!("{i}")));
                }
            });
            futures::future::join_all(futs).await;
        }));
    }
    for t in tasks {
        within(30, "pipelined reads", t).await.unwrap();
    }
    // Writes from one caller are applied in call order.
    let futs: Vec<_> = (0..50).map(|i| c.set_data("/n0", format!("{i}").as_bytes(), None)).collect();
    let stats = futures::future::join_all(futs).await;
    let versions: Vec<i32> = stats.into_iter().map(|s| s.unwrap().version).collect();
    assert_eq!(versions, (1..=50).collect::<Vec<_>>());
    // A dropped future does not disturb the connection.
    let dropped = c.get_data("/n1");
    drop(dropped);
    assert_eq!(&c.get_data("/n1").await.unwrap().0[..], b"1");
    c.close().await.unwrap();
}

async fn chroot_paths(server: &str) {
    let root = connect(server).await;
    root.create("/cr", b"", CreateMode::Persistent).await.unwrap();
    let c = connect(&format!("{server}/cr")).await;
    let (p, _) = c.create("/s-", b"", CreateMode::EphemeralSequential).await.unwrap();
    assert_eq!(p, "/s-0000000000");
    assert!(root.exists("/cr/s-0000000000").await.unwrap().is_some());
    let (_, w) = c.exists_watch("/s-0000000000").await.unwrap();
    root.delete("/cr/s-0000000000", None).await.unwrap();
    let ev = within(10, "chroot event", w).await;
    assert_eq!(ev.path, "/s-0000000000", "event paths are relative to the chroot");
    c.close().await.unwrap();
    root.close().await.unwrap();
}

async fn suite(server: &str) {
    crud(server).await;
    children(server).await;
    acls(server).await;
    multi(server).await;
    watches(server).await;
    session_close(server).await;
    pipelining(server).await;
    chroot_paths(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_operations_against_apache_zookeeper() {
    let Some(zk) = ApacheZk::start() else { return };
    within(120, "suite", suite(&zk.connect_string())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_operations_against_zk_server() {
    common::trace_init();
    let server = zk_server::Server::start_temp().await.expect("start zk-server");
    within(120, "suite", suite(&server.connect_string())).await;
    server.stop().await;
}

#[tokio::test]
async fn bad_connect_strings_and_unreachable_servers() {
    assert!(matches!(Client::connect("").await, Err(Error::InvalidConnectString(_))));
    assert!(matches!(Client::connect("127.0.0.1:1/bad/").await, Err(Error::InvalidPath { .. })));
    let port = zk_test_support::free_port();
    let r = Client::builder(&format!("127.0.0.1:{port}"))
        .connection_timeout(Duration::from_millis(800))
        .connect()
        .await;
    assert_eq!(r.err(), Some(Error::ConnectTimeout));
}
