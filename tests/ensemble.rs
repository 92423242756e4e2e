//! Our servers as an ensemble: writes through any member are committed by
//! a quorum and seen by all; the leader's loss elects another and clients
//! keep their sessions and ephemerals; without a quorum nothing is
//! acknowledged.

mod common;

use std::time::Duration;

use common::{trace_init, within};
use zk_client::{Client, CreateMode, Error};
use zk_server::TestingCluster;

async fn client_of(cluster: &TestingCluster, i: usize) -> Client {
    Client::builder(&cluster.addr(i).to_string())
        .session_timeout(Duration::from_secs(6))
        .connect()
        .await
        .expect("connect")
}

/// Every running server holds `path` with `data` (after a sync, read from
/// that server alone).
async fn all_see(cluster: &TestingCluster, path: &str, data: &[u8]) {
    for i in 0..cluster.len() {
        if !cluster.is_running(i) {
            continue;
        }
        let c = client_of(cluster, i).await;
        c.sync(path).await.expect("sync");
        let (got, _) = c.get_data(path).await.unwrap_or_else(|e| panic!("server {i} lacks {path}: {e}"));
        assert_eq!(&got[..], data, "server {i} holds another value at {path}");
        c.close().await.ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_replicate_and_survive_the_leader() {
    trace_init();
    let mut cluster = TestingCluster::start(3).await.expect("start");
    let leader = within(60, "a leader", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
    let follower = (leader + 1) % 3;

    // Writes through a follower and through the leader.
    let f = client_of(&cluster, follower).await;
    f.create("/via-follower", b"f", CreateMode::Persistent).await.expect("create via follower");
    let l = client_of(&cluster, leader).await;
    l.create("/via-leader", b"l", CreateMode::Persistent).await.expect("create via leader");
    // A follower's client reads its own write at once.
    assert_eq!(&f.get_data("/via-follower").await.expect("read own write").0[..], b"f");
    all_see(&cluster, "/via-follower", b"f").await;
    all_see(&cluster, "/via-leader", b"l").await;

    // A session on the follower with an ephemeral; its sessions are global.
    let e = Client::builder(&cluster.connect_string())
        .session_timeout(Duration::from_secs(8))
        .connect()
        .await
        .expect("connect");
    e.create("/eph", b"", CreateMode::Ephemeral).await.expect("ephemeral");
    let session = e.session_id();

    // The leader goes: another is elected and serves writes; the session
    // and its ephemeral live on.
    cluster.stop(leader).await;
    let new_leader =
        within(60, "a new leader", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("new leader");
    assert_ne!(new_leader, leader);
    within(30, "a write after failover", async {
        loop {
            match f.set_data("/via-follower", b"after", None).await {
                Ok(_) => break,
                Err(Error::ConnectionLoss) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("write after failover: {e}"),
            }
        }
    })
    .await;
    all_see(&cluster, "/via-follower", b"after").await;
    within(30, "the session carries on", async {
        loop {
            match e.exists("/eph").await {
                Ok(Some(stat)) => {
                    assert_eq!(stat.ephemeral_owner, session);
                    break;
                }
                Ok(None) => panic!("the ephemeral was lost with the leader"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await;
    assert_eq!(e.session_id(), session);

    // The old leader comes back and catches up.
    cluster.restart(leader).await.expect("restart");
    within(60, "all serve", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
    all_see(&cluster, "/via-follower", b"after").await;

    // A closed session's ephemeral goes everywhere.
    e.close().await.expect("close");
    for i in 0..3 {
        let c = client_of(&cluster, i).await;
        c.sync("/").await.expect("sync");
        assert_eq!(c.exists("/eph").await.expect("exists"), None, "server {i} still has the ephemeral");
    }
    cluster.stop_all().await;
}
