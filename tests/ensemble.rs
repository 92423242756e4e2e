//! Our servers as an ensemble: writes through any member are committed by
//! a quorum and seen by all; the leader's loss elects another and clients
//! keep their sessions and ephemerals; without a quorum nothing is
//! acknowledged.

#![allow(clippy::unwrap_used)]

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
    let leader =
        within(60, "a leader", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
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
    let new_leader = within(60, "a new leader", cluster.wait_for_leader(Duration::from_secs(60)))
        .await
        .expect("new leader");
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

/// The names under `/` on server `addr`, after a sync.
async fn children_at(addr: &str) -> Vec<String> {
    let c = Client::builder(addr).session_timeout(Duration::from_secs(6)).connect().await.expect("connect");
    c.sync("/").await.expect("sync");
    let mut names = c.get_children("/").await.expect("children");
    names.sort();
    c.close().await.ok();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_the_leader_then_everyone_and_lose_no_acknowledged_write() {
    trace_init();
    let mut e = common::serving_ensemble_of_3().await;
    let cs = e.connect_string();
    let writer_client =
        Client::builder(&cs).session_timeout(Duration::from_secs(10)).connect().await.expect("connect");
    let holder =
        Client::builder(&cs).session_timeout(Duration::from_secs(10)).connect().await.expect("connect");
    holder.create("/holder", b"", CreateMode::Ephemeral).await.expect("ephemeral");
    let session = holder.session_id();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (writer, _) = common::spawn_writer(writer_client, "w", stop_rx);
    let count = |c: &Client| {
        let c = c.clone();
        async move { c.get_all_children_number("/").await.unwrap_or(0) }
    };
    common::wait_until_async(30, "writes flow", || async { count(&holder).await > 20 }).await;

    // SIGKILL the leader: another serves within seconds.
    let leader = e.leader().expect("a leader");
    let before = std::time::Instant::now();
    e.kill(leader);
    let mut e = tokio::task::spawn_blocking(move || {
        let l = e.wait_ready(30);
        assert_ne!(l, leader, "a killed server cannot lead");
        e
    })
    .await
    .unwrap();
    let failover = before.elapsed();
    assert!(failover < Duration::from_secs(10), "failover took {failover:?}");
    let seen = count(&holder).await;
    common::wait_until_async(30, "writes flow again", || async { count(&holder).await > seen + 20 }).await;
    assert_eq!(holder.exists("/holder").await.expect("exists").map(|s| s.ephemeral_owner), Some(session));

    // SIGKILL everyone, start them again: nothing acknowledged is lost.
    for i in 0..3 {
        e.kill(i);
    }
    for i in 0..3 {
        e.restart(i);
    }
    let e = tokio::task::spawn_blocking(move || {
        e.wait_ready(60);
        e
    })
    .await
    .unwrap();
    let seen = count(&holder).await;
    common::wait_until_async(30, "writes flow after a full restart", || async {
        count(&holder).await > seen + 5
    })
    .await;
    let _ = stop_tx.send(true);
    let acked = within(30, "the writer stops", writer).await.unwrap();
    assert!(acked.len() > 20, "only {} writes were acknowledged", acked.len());
    let first = children_at(&e.addr(0).to_string()).await;
    for i in 1..3 {
        assert_eq!(children_at(&e.addr(i).to_string()).await, first, "server {i} holds another tree");
    }
    for p in &acked {
        assert!(first.contains(&p[1..].to_string()), "acknowledged {p} was lost");
    }
    assert_eq!(holder.exists("/holder").await.expect("exists").map(|s| s.ephemeral_owner), Some(session));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_no_write_is_acknowledged() {
    trace_init();
    let mut cluster = TestingCluster::start(3).await.expect("start");
    let leader =
        within(60, "a leader", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
    let c = Client::builder(&cluster.addr(leader).to_string())
        .session_timeout(Duration::from_secs(20))
        .connect()
        .await
        .expect("connect");
    c.create("/before", b"", CreateMode::Persistent).await.expect("create");
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    cluster.stop(others[0]).await;
    cluster.stop(others[1]).await;
    // The leader alone: a write is not acknowledged (it cannot be
    // committed), and within syncLimit the leader steps down and serves
    // nothing.
    let attempt =
        tokio::time::timeout(Duration::from_secs(3), c.create("/during", b"", CreateMode::Persistent)).await;
    assert!(!matches!(attempt, Ok(Ok(_))), "a write was acknowledged without a quorum: {attempt:?}");
    common::wait_until_async(20, "the lone leader stops serving", || async {
        !cluster.serving(leader).await
    })
    .await;
    // A quorum again: writes are acknowledged, the session lived on.
    cluster.restart(others[0]).await.expect("restart");
    within(60, "a leader again", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
    within(30, "a write with a quorum", async {
        loop {
            match c.create("/after", b"", CreateMode::Persistent).await {
                Ok(_) | Err(Error::NodeExists) => break,
                Err(e) => {
                    eprintln!("write with a quorum: {e}; state {:?}", c.state());
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
            }
        }
    })
    .await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_servers_carry_on_without_two() {
    trace_init();
    let mut cluster = TestingCluster::start(5).await.expect("start");
    let leader =
        within(60, "a leader", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
    let c = Client::builder(&cluster.connect_string())
        .session_timeout(Duration::from_secs(20))
        .connect()
        .await
        .expect("connect");
    c.create("/five", b"1", CreateMode::Persistent).await.expect("create");
    cluster.stop(leader).await;
    cluster.stop((leader + 1) % 5).await;
    within(60, "a new leader of three", cluster.wait_for_leader(Duration::from_secs(60)))
        .await
        .expect("leader");
    within(30, "a write with three of five", async {
        loop {
            match c.set_data("/five", b"2", None).await {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await;
    all_see(&cluster, "/five", b"2").await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_serves_and_never_counts_for_the_quorum() {
    trace_init();
    let mut cluster = TestingCluster::start_with_observers(3, 1).await.expect("start");
    let leader =
        within(60, "a leader", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
    assert_eq!(cluster.mode(3).await, Some("observer"));
    // Writes through the observer are forwarded; its reads see them.
    let o = client_of(&cluster, 3).await;
    o.create("/via-observer", b"o", CreateMode::Persistent).await.expect("create via observer");
    assert_eq!(&o.get_data("/via-observer").await.expect("read").0[..], b"o");
    all_see(&cluster, "/via-observer", b"o").await;
    // Two voters gone: the leader and the observer are not a quorum.
    let l = client_of(&cluster, leader).await;
    let voters: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    cluster.stop(voters[0]).await;
    cluster.stop(voters[1]).await;
    let attempt =
        tokio::time::timeout(Duration::from_secs(3), l.create("/no", b"", CreateMode::Persistent)).await;
    assert!(
        !matches!(attempt, Ok(Ok(_))),
        "a write was acknowledged by the leader and an observer: {attempt:?}"
    );
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_ensemble_keeps_its_leader() {
    trace_init();
    let mut cluster = TestingCluster::start(3).await.expect("start");
    let leader =
        within(60, "a leader", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
    // Several syncLimits (5 ticks of 200 ms) without a write: the pings
    // keep the quorum.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cluster.leader().await, Some(leader));
    for i in 0..3 {
        assert!(cluster.serving(i).await, "server {i} stopped serving while idle");
    }
    cluster.stop_all().await;
}

fn snapshot_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("version-2"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .filter(|n| n.starts_with("snapshot."))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// After the whole ensemble restarted, a server that missed a few writes
/// before is sent them (DIFF from the log the leader read at start), not
/// the whole tree (SNAP, which would leave a new snapshot file in its dir).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_server_behind_gets_a_diff_not_a_snapshot() {
    trace_init();
    let mut cluster = TestingCluster::start(3).await.expect("start");
    let leader =
        within(60, "a leader", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
    let c = client_of(&cluster, leader).await;
    for i in 0..20 {
        c.create(&format!("/d{i}"), b"", CreateMode::Persistent).await.expect("create");
    }
    let f = (leader + 1) % 3;
    cluster.stop(f).await;
    for i in 20..25 {
        c.create(&format!("/d{i}"), b"", CreateMode::Persistent).await.expect("create");
    }
    c.close().await.ok();
    cluster.stop_all().await;
    let before = snapshot_files(&cluster.data_dir(f));
    for i in 0..3 {
        cluster.restart(i).await.expect("restart");
    }
    within(60, "all serve", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
    all_see(&cluster, "/d24", b"").await;
    assert_eq!(snapshot_files(&cluster.data_dir(f)), before, "the server behind was sent a snapshot");
    cluster.stop_all().await;
}

/// `readonlymode.enabled`: a server left without a quorum serves
/// read-only clients (reads of what it has, `NotReadOnly` for writes and
/// sync) and refuses the others; once the quorum is back it leaves
/// read-only mode and the client moves to a read-write session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_a_server_in_read_only_mode_serves_reads() {
    trace_init();
    let mut cluster = TestingCluster::start_with(3, "readonlymode.enabled=true\n").await.expect("start");
    within(60, "a leader", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
    let c = client_of(&cluster, 0).await;
    c.create("/ro-data", b"before", CreateMode::Persistent).await.expect("create");
    all_see(&cluster, "/ro-data", b"before").await;
    c.close().await.ok();
    cluster.stop(1).await;
    cluster.stop(2).await;
    let addr0 = cluster.addr(0);
    let isro = |_: usize| zk_test_support::container::four_letter_word(addr0, "isro");
    common::wait_until_async(30, "server 0 in read-only mode", || async {
        isro(0).await.as_deref() == Some("ro")
    })
    .await;
    assert_eq!(cluster.mode(0).await, Some("read-only"));

    // A client that does not accept a read-only server is not served.
    let rw = Client::builder(&cluster.addr(0).to_string()).session_timeout(Duration::from_secs(6)).connect();
    let rw = tokio::time::timeout(Duration::from_secs(3), rw).await;
    assert!(!matches!(rw, Ok(Ok(_))), "a read-write client was served in read-only mode");

    // All three in its connect string: it reaches the read-only server.
    let ro = Client::builder(&cluster.connect_string())
        .session_timeout(Duration::from_secs(6))
        .read_only(true)
        .connect()
        .await
        .expect("a read-only client connects");
    assert_eq!(ro.state(), zk_client::SessionState::ConnectedReadOnly);
    let (data, _) = ro.get_data("/ro-data").await.expect("a read");
    assert_eq!(&data[..], b"before");
    assert!(ro.get_children("/").await.expect("children").contains(&"ro-data".to_string()));
    let w = ro.create("/ro-write", b"", CreateMode::Persistent).await;
    assert!(matches!(w, Err(Error::NotReadOnly)), "a write in read-only mode: {w:?}");
    let s = ro.sync("/").await;
    assert!(matches!(s, Err(Error::NotReadOnly)), "a sync in read-only mode: {s:?}");
    let ro_session = ro.session_id();
    // The recipes' framework likewise: READ_ONLY with can_be_read_only,
    // not connected without it.
    let fw_ro = zk_recipes::Framework::builder(&cluster.connect_string())
        .session_timeout(Duration::from_secs(6))
        .can_be_read_only(true)
        .build();
    fw_ro.start().await.expect("start");
    assert!(fw_ro.block_until_connected(Duration::from_secs(20)).await, "a read-only framework connects");
    assert_eq!(fw_ro.connection_state(), Some(zk_recipes::ConnectionState::ReadOnly));
    assert_eq!(&fw_ro.get_data("/ro-data").await.expect("a read").0[..], b"before");
    let fw_rw = zk_recipes::Framework::builder(&cluster.connect_string()).build();
    fw_rw.start().await.expect("start");
    assert!(!fw_rw.block_until_connected(Duration::from_secs(3)).await, "served without can_be_read_only");
    fw_rw.close().await;
    fw_ro.close().await;

    // The quorum is back: the server leaves read-only mode and the client
    // finds a read-write server, on a new session (its first was local).
    cluster.restart(1).await.expect("restart");
    cluster.restart(2).await.expect("restart");
    within(60, "a leader again", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
    common::wait_until_async(60, "the client writes again", || {
        let ro = ro.clone();
        async move { ro.create("/ro-after", b"", CreateMode::Persistent).await.is_ok() }
    })
    .await;
    assert_eq!(ro.state(), zk_client::SessionState::Connected);
    assert_ne!(ro.session_id(), ro_session, "a read-only session is local; the read-write one is new");
    all_see(&cluster, "/ro-after", b"").await;
    assert_eq!(isro(0).await.as_deref(), Some("rw"));
    ro.close().await.ok();
    cluster.stop_all().await;
}

/// A leader that logged a write no follower got (its followers stopped)
/// and then stopped itself holds a diverged tail, and replays it into its
/// tree when it starts again. The others meanwhile elected a leader and
/// wrote on: the new leader sends it TRUNC below what it applied, and it
/// cuts its log, reads its state back from disk and follows, with the
/// same tree as the others (the diverged write gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_with_a_diverged_tail_is_truncated_and_reloads() {
    trace_init();
    let mut cluster = TestingCluster::start(3).await.expect("start");
    let old = within(60, "a leader", cluster.wait_for_leader(Duration::from_secs(60))).await.expect("leader");
    let c = client_of(&cluster, old).await;
    c.create("/base", b"1", CreateMode::Persistent).await.expect("create");
    let followers: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    for &f in &followers {
        cluster.stop(f).await;
    }
    // The leader logs this write, but no quorum ever acknowledges it.
    let lost =
        tokio::time::timeout(Duration::from_secs(2), c.create("/diverged", b"", CreateMode::Persistent))
            .await;
    assert!(!matches!(lost, Ok(Ok(_))), "a write without a quorum was acknowledged: {lost:?}");
    cluster.stop(old).await;
    for &f in &followers {
        cluster.restart(f).await.expect("restart");
    }
    let new = within(60, "a leader of two", cluster.wait_for_leader(Duration::from_secs(60)))
        .await
        .expect("leader");
    assert_ne!(new, old);
    let c2 = client_of(&cluster, new).await;
    c2.create("/after", b"2", CreateMode::Persistent).await.expect("a write with a quorum of two");
    cluster.restart(old).await.expect("restart the old leader");
    within(60, "all three serve", async {
        while !cluster.serving(old).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    all_see(&cluster, "/after", b"2").await;
    all_see(&cluster, "/base", b"1").await;
    for i in 0..3 {
        let c = client_of(&cluster, i).await;
        c.sync("/").await.expect("sync");
        assert_eq!(c.exists("/diverged").await.expect("exists"), None, "server {i} kept the diverged write");
        c.close().await.ok();
    }
    // And the cut tail stays cut across another restart of it.
    cluster.stop(old).await;
    cluster.restart(old).await.expect("restart");
    within(60, "it serves again", async {
        while !cluster.serving(old).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let c = client_of(&cluster, old).await;
    c.sync("/").await.expect("sync");
    assert_eq!(c.exists("/diverged").await.expect("exists"), None);
    c.close().await.ok();
    cluster.stop_all().await;
}
