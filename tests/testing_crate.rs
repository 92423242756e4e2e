//! `zk-testing` as a user meets it: a `TestingServer` restarted on the
//! same port keeps its data and its clients' sessions; `expire_session`
//! ends a session on our server, on an in-process `TestingCluster`, and on
//! Apache ZooKeeper 3.8 (the password derivation is Apache's).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{wait_until, within};
use zk_client::{Client, CreateMode, SessionState};
use zk_test_support::apache::ApacheZk;
use zk_testing::{TestingCluster, TestingServer, expire_session};

/// A session with an ephemeral node is expired: the node goes, the
/// client learns it is expired (from the server dropping its connection,
/// or at its next request).
async fn expires(cs: &str) {
    expires_via(cs, cs).await;
}

/// As [`expires`], the client on `client_cs` and the expiry through
/// `killer_cs` (another server of an ensemble).
async fn expires_via(client_cs: &str, killer_cs: &str) {
    let cs = client_cs;
    let c = Client::builder(cs).session_timeout(Duration::from_secs(20)).connect().await.unwrap();
    c.create("/mine", b"", CreateMode::Ephemeral).await.unwrap();
    let watcher = Client::connect(cs).await.unwrap();
    expire_session(killer_cs, c.session_id()).await.unwrap();
    // Our servers drop the session's connection, so its client sees
    // SESSION_EXPIRED at once; Apache 3.8 keeps the old connection (and
    // answers its pings), so there the client learns at its next request.
    common::wait_until_async(20, "the client learns its session expired", || async {
        c.state() == SessionState::Expired
            || matches!(c.exists("/").await, Err(zk_client::Error::SessionExpired))
    })
    .await;
    assert!(watcher.exists("/mine").await.unwrap().is_none(), "its ephemeral node is gone");
    // A session that is gone cannot be expired again.
    assert!(expire_session(cs, c.session_id()).await.is_err());
    watcher.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_testing_server_restarts_with_its_data_and_sessions() {
    let mut server = TestingServer::start().await.unwrap();
    let port = server.port();
    let c = Client::builder(&server.connect_string())
        .session_timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    let session = c.session_id();
    c.create("/kept", b"v", CreateMode::Persistent).await.unwrap();
    c.create("/eph", b"", CreateMode::Ephemeral).await.unwrap();
    server.stop().await;
    assert!(!server.is_running());
    wait_until(20, "the client notices", || c.state() == SessionState::Disconnected).await;
    server.restart().await.unwrap();
    assert_eq!(server.port(), port, "same port");
    wait_until(30, "the client reconnects", || c.state() == SessionState::Connected).await;
    assert_eq!(c.session_id(), session, "same session");
    assert_eq!(&c.get_data("/kept").await.unwrap().0[..], b"v", "same data");
    assert!(c.exists("/eph").await.unwrap().is_some(), "the session's ephemeral node survived the restart");
    within(60, "expiry", expires(&server.connect_string())).await;
    let dir = server.data_dir().to_path_buf();
    server.close().await;
    assert!(!dir.exists(), "the data dir is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_session_on_a_cluster_and_on_apache() {
    let cluster = TestingCluster::start(3).await.unwrap();
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await.unwrap();
    let followers: Vec<String> =
        (0..3).filter(|i| *i != leader).map(|i| cluster.addr(i).to_string()).collect();
    let on_leader = cluster.addr(leader).to_string();
    // The client on the leader, the session closed through a follower (the
    // leader must drop its connection), and the reverse, and between two
    // followers.
    within(60, "client on the leader", expires_via(&on_leader, &followers[0])).await;
    within(60, "client on a follower", expires_via(&followers[0], &on_leader)).await;
    within(60, "between followers", expires_via(&followers[0], &followers[1])).await;
    within(60, "both on the leader", expires_via(&on_leader, &on_leader)).await;
    within(60, "both on a follower", expires_via(&followers[1], &followers[1])).await;
    let Some(zk) = ApacheZk::start() else { return };
    within(60, "apache", expires(&zk.connect_string())).await;
}
