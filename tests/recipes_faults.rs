//! Recipes under injected faults (a proxy between the framework and the
//! server): a create whose reply is lost is found again by protection mode,
//! not duplicated; a lock holder whose session is lost learns it and
//! another contender takes the lock; a leader cut off gives up leadership
//! and exactly one other leads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{wait_until_async, within};
use zk_client::{Client, CreateMode};
use zk_recipes::Framework;
use zk_recipes::leader::LeaderLatch;
use zk_recipes::locks::InterProcessMutex;
use zk_recipes::retry::ExponentialBackoffRetry;
use zk_test_support::proxy::Proxy;

async fn framework(cs: &str, session: Duration) -> Framework {
    let fw = Framework::builder(cs)
        .session_timeout(session)
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 10))
        .build();
    within(20, "start", fw.start()).await.unwrap();
    assert!(fw.block_until_connected(Duration::from_secs(20)).await, "connected");
    fw
}

async fn short_tick_server() -> zk_server::Server {
    let mut cfg = zk_server::ServerConfig::new("");
    cfg.tick_time = Duration::from_millis(250);
    cfg.client_port = 0;
    cfg.client_port_address = Some(std::net::Ipv4Addr::LOCALHOST.into());
    zk_server::Server::start_temp_with(cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_create_finds_its_node_after_a_lost_reply() {
    common::trace_init();
    let server = zk_server::Server::start_temp().await.unwrap();
    let proxy = Proxy::start(server.addr());
    let fw = framework(&proxy.connect_string(), Duration::from_secs(10)).await;
    let observer = Client::connect(&server.connect_string()).await.unwrap();
    observer.create("/p", b"", CreateMode::Persistent).await.unwrap();
    // The server applies the create; its reply never reaches the framework.
    proxy.drop_replies_after(0);
    let path = within(
        30,
        "protected create",
        fw.create().with_protection().with_mode(CreateMode::EphemeralSequential).for_path("/p/job-", b"x"),
    )
    .await
    .unwrap();
    assert_eq!(proxy.replies_dropped(), 1, "the first reply was lost");
    let kids = observer.get_children("/p").await.unwrap();
    assert_eq!(kids.len(), 1, "exactly one node, not a duplicate: {kids:?}");
    assert_eq!(format!("/p/{}", kids[0]), path);
    assert!(kids[0].starts_with("_c_") && kids[0].contains("-job-"));
    let stat = observer.exists(&path).await.unwrap().unwrap();
    assert_eq!(stat.ephemeral_owner, fw.client().unwrap().session_id(), "owned by the live session");
    fw.close().await;
    observer.close().await.unwrap();
    drop(proxy);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holder_whose_session_is_lost_knows_it_and_another_takes_over() {
    let server = short_tick_server().await;
    let proxy = Proxy::start(server.addr());
    let holder_fw = framework(&proxy.connect_string(), Duration::from_millis(1500)).await;
    let waiter_fw = framework(&server.connect_string(), Duration::from_secs(10)).await;
    let holder = InterProcessMutex::new(&holder_fw, "/locks/job");
    let waiter = InterProcessMutex::new(&waiter_fw, "/locks/job");
    holder.acquire().await.unwrap();
    let token = holder.fencing_token().unwrap();
    // Cut the holder off for longer than its session.
    proxy.set_refuse(true);
    proxy.cut();
    within(10, "holder learns it lost the lock", holder.lost()).await;
    assert!(
        within(20, "waiter acquires", waiter.try_acquire(Duration::from_secs(15))).await.unwrap(),
        "another contender takes the lock once the session expired"
    );
    // The old holder's fencing token no longer passes.
    let r = waiter_fw.transaction(&[token.check_op()]).await;
    assert!(r.is_err(), "the old token is fenced off");
    waiter.release().await.unwrap();
    proxy.set_refuse(false);
    holder_fw.close().await;
    waiter_fw.close().await;
    drop(proxy);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_steps_down_and_exactly_one_other_leads() {
    let server = short_tick_server().await;
    let proxy = Proxy::start(server.addr());
    let cut_fw = framework(&proxy.connect_string(), Duration::from_millis(1500)).await;
    let cut = LeaderLatch::new(&cut_fw, "/election", "cut");
    cut.start().await.unwrap();
    assert!(cut.await_leadership(Some(Duration::from_secs(10))).await);
    let mut others = Vec::new();
    let mut fws = Vec::new();
    // Each follower's leadership, watched from before it starts.
    let mut watches = Vec::new();
    for i in 0..3 {
        let fw = framework(&server.connect_string(), Duration::from_secs(10)).await;
        let l = LeaderLatch::new(&fw, "/election", &format!("other-{i}"));
        watches.push(l.leadership());
        l.start().await.unwrap();
        fws.push(fw);
        others.push(l);
    }
    wait_until_async(20, "all four queued", || async {
        others[0].participants().await.unwrap().len() == 4 && others.iter().all(|l| l.our_node().is_some())
    })
    .await;
    // While the leader is connected none of the others leads. That is
    // something NOT happening, so it takes a window: 200 ms is many times
    // the two requests a latch makes once its node exists. Leadership
    // notifies only on a change and starts false, so `has_changed` catches
    // any turn to leader since the start, however brief.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(others.iter().all(|l| !l.has_leadership()));
    assert!(
        watches.iter().all(|w| !w.has_changed().unwrap()),
        "a follower turned leader while the leader led"
    );
    proxy.set_refuse(true);
    proxy.cut();
    within(10, "the cut-off leader steps down", async {
        while cut.has_leadership() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    within(20, "exactly one other leads", async {
        loop {
            let n = others.iter().filter(|l| l.has_leadership()).count();
            assert!(n <= 1, "two leaders");
            if n == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    proxy.set_refuse(false);
    // Back on a new session, the old leader queues again behind the new one.
    within(30, "the old leader rejoins", async {
        while cut.our_node().is_none() || others[0].participants().await.unwrap().len() < 4 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(!cut.has_leadership());
    assert_eq!(others.iter().filter(|l| l.has_leadership()).count(), 1);
    cut.close().await;
    for l in &others {
        l.close().await;
    }
    for fw in fws {
        fw.close().await;
    }
    cut_fw.close().await;
    drop(proxy);
    server.stop().await;
}

/// On a 3-server ensemble of ours whose leader dies: the lock holder keeps
/// its lock (its session moves to another server), the waiter does not get
/// it meanwhile, and never do two LeaderLatches lead at once (a latch
/// gives up leadership while SUSPENDED, as Curator's, and the latches
/// settle on one leader again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_latches_hold_through_the_ensemble_leader_s_death() {
    let mut cluster = zk_server::TestingCluster::start(3).await.expect("start an ensemble");
    let leader = within(60, "a leader", cluster.wait_for_leader(Duration::from_secs(60))).await.unwrap();
    let cs = cluster.connect_string();
    let holder_fw = framework(&cs, Duration::from_secs(20)).await;
    let waiter_fw = framework(&cs, Duration::from_secs(20)).await;
    let holder = InterProcessMutex::new(&holder_fw, "/locks/failover");
    let waiter = InterProcessMutex::new(&waiter_fw, "/locks/failover");
    holder.acquire().await.unwrap();
    let waiting = tokio::spawn(async move {
        waiter.acquire().await.unwrap();
        waiter
    });
    let mut latches = Vec::new();
    let mut watches = Vec::new();
    let mut fws = Vec::new();
    for i in 0..3 {
        let fw = framework(&cs, Duration::from_secs(20)).await;
        let l = LeaderLatch::new(&fw, "/election-failover", &format!("l{i}"));
        l.start().await.unwrap();
        fws.push(fw);
        latches.push(l);
    }
    within(30, "a latch leads", async {
        while !latches.iter().any(|l| l.has_leadership()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Leadership as each latch sees it, sampled through the failover.
    for l in &latches {
        watches.push(l.leadership());
    }
    let (stop_sampling, sampling) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn({
        let watches = watches.clone();
        async move {
            let mut most = 0;
            while !*sampling.borrow() {
                most = most.max(watches.iter().filter(|w| *w.borrow()).count());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            most
        }
    });
    cluster.stop(leader).await;
    within(60, "a new leader", cluster.wait_for_leader(Duration::from_secs(60))).await.unwrap();
    // Some time on the new leader: the sessions moved, nothing changed hands
    // (a window, since what is checked is something NOT happening).
    let c = Client::connect(&cs).await.unwrap();
    c.create("/after-failover", b"", CreateMode::Persistent).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(holder.is_acquired(), "the holder lost its lock");
    assert!(!waiting.is_finished(), "the waiter got the lock while the holder held it");
    within(30, "one latch leads again", async {
        while latches.iter().filter(|l| l.has_leadership()).count() != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let _ = stop_sampling.send(true);
    let most = within(10, "the sampler stops", sampler).await.unwrap();
    assert_eq!(most, 1, "two latches led at once");
    holder.release().await.unwrap();
    let waiter = within(30, "the waiter gets the lock", waiting).await.unwrap();
    assert!(waiter.is_acquired());
    for l in &latches {
        l.close().await;
    }
    cluster.stop_all().await;
}
