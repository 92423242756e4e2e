//! zk-server in Docker (zk_test_support::container): the recipes against a
//! container, data that outlives a stopped container and the container
//! itself (a named volume on /data), and a paused container that costs the
//! framework its session (SUSPENDED, LOST, then RECONNECTED on a new
//! session, with a leader latch leading again); and a 3-server ensemble of
//! containers on a private Docker network whose leader is cut off the
//! network and joins again.
//!
//! Skipped loudly without a Docker daemon (failed under
//! `ZK_REQUIRE_EXTERNAL=1`). The first test to run builds the image (a
//! static release build of zk-server, then `docker build`); every container
//! is removed when its handle drops, every volume when its guard drops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::recipes::{framework, mutex_counter};

use std::collections::HashSet;
use std::time::Duration;

use common::within;
use futures::{FutureExt, StreamExt};
use zk_client::{Client, CreateMode};
use zk_recipes::cache::{CacheEvent, PathChildrenCache};
use zk_recipes::leader::{CloseMode, LeaderLatch};
use zk_recipes::retry::ExponentialBackoffRetry;
use zk_recipes::{ConnectionState, Framework};
use zk_test_support::container::{self, DataVolume, ZkContainer, ZkServerImage};

/// The image build may be a cold release build of zk-server.
const START_LIMIT: u64 = 900;

async fn start(image: ZkServerImage) -> Option<ZkContainer> {
    within(START_LIMIT, "build the image and start a container", container::start(image)).await
}

async fn latch_has_one_leader(cs: &str) {
    let mut fws = Vec::new();
    let mut latches = Vec::new();
    for i in 0..3 {
        let fw = framework(cs).await;
        let latch = LeaderLatch::new(&fw, "/latch", &format!("p{i}"));
        latch.start().await.unwrap();
        fws.push(fw);
        latches.push(latch);
    }
    let leaders = |ls: &[LeaderLatch]| ls.iter().filter(|l| l.has_leadership()).count();
    within(20, "three participants, one leader", async {
        while leaders(&latches) != 1 || latches[0].participants().await.unwrap().len() < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let participants = latches[0].participants().await.unwrap();
    assert_eq!(participants.iter().filter(|p| p.is_leader).count(), 1);
    let leader = latches.iter().find(|l| l.has_leadership()).unwrap();
    assert_eq!(participants[0].id, leader.id(), "the first node leads");
    // The leader leaves: exactly one of the other two takes over.
    let old = latches.remove(latches.iter().position(|l| l.has_leadership()).unwrap());
    old.close_with_mode(CloseMode::NotifyLeader).await;
    within(20, "the next leader", async {
        while leaders(&latches) != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_ne!(latches[0].leader().await.unwrap().unwrap().id, old.id());
    for l in &latches {
        l.close().await;
    }
    within(20, "latch nodes gone", async {
        while !fws[0].get_children("/latch").await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for fw in fws {
        fw.close().await;
    }
}

async fn children_cache_sees_another_client(cs: &str) {
    let fw = framework(cs).await;
    let writer = Client::connect(cs).await.unwrap();
    writer.create("/services", b"", CreateMode::Persistent).await.unwrap();
    let cache = PathChildrenCache::new(&fw, "/services");
    let mut events = cache.events();
    cache.start().await.unwrap();
    within(10, "initialized", cache.initialized()).await;
    for i in 0..5 {
        writer
            .create(&format!("/services/s{i}"), format!("host{i}").as_bytes(), CreateMode::Ephemeral)
            .await
            .unwrap();
    }
    writer.set_data("/services/s0", b"moved", None).await.unwrap();
    writer.delete("/services/s4", None).await.unwrap();
    let want = |c: &PathChildrenCache| {
        let got: Vec<(String, Vec<u8>)> =
            c.current().into_iter().map(|d| (d.path, d.data.to_vec())).collect();
        got == vec![
            ("/services/s0".to_string(), b"moved".to_vec()),
            ("/services/s1".to_string(), b"host1".to_vec()),
            ("/services/s2".to_string(), b"host2".to_vec()),
            ("/services/s3".to_string(), b"host3".to_vec()),
        ]
    };
    within(20, "the cache converges", async {
        while !want(&cache) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut added = HashSet::new();
    let mut removed = HashSet::new();
    fn note(ev: CacheEvent, added: &mut HashSet<String>, removed: &mut HashSet<String>) {
        match ev {
            CacheEvent::Added(d) => {
                added.insert(d.path);
            }
            CacheEvent::Removed(d) => {
                removed.insert(d.path);
            }
            _ => {}
        }
    }
    // s4 may come and go between two reads of the children; the others
    // cannot be missed. Read events until they are all there...
    let complete = |added: &HashSet<String>, removed: &HashSet<String>| {
        (0..4).all(|i| added.contains(&format!("/services/s{i}")))
            && (!added.contains("/services/s4") || removed.contains("/services/s4"))
    };
    within(20, "an Added event for s0..s3 (and a Removed for s4 if it was added)", async {
        while !complete(&added, &removed) {
            note(events.next().await.expect("the event stream ended"), &mut added, &mut removed);
        }
    })
    .await;
    // ... then take in whatever else was already delivered, without waiting.
    while let Some(Some(ev)) = events.next().now_or_never() {
        note(ev, &mut added, &mut removed);
    }
    for i in 0..4 {
        assert!(added.contains(&format!("/services/s{i}")), "an Added event for s{i}: {added:?}");
    }
    if added.contains("/services/s4") {
        assert!(removed.contains("/services/s4"), "s4 added, then removed: {removed:?}");
    }
    // The writer's session ends: its ephemeral children go, and the cache
    // sees that too.
    writer.close().await.unwrap();
    within(20, "the cache empties", async {
        while !cache.current().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    cache.close().await;
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipes_against_a_container() {
    common::trace_init();
    let Some(zk) = start(ZkServerImage::default()).await else { return };
    let cs = zk.connect_string();
    within(180, "mutex counter", mutex_counter(&cs, 4, 25)).await;
    within(60, "leader latch", latch_has_one_leader(&cs)).await;
    within(60, "children cache", children_cache_sees_another_client(&cs)).await;
    // The probes and the scrape through the published ports.
    let (status, body) = common::http_get(zk.admin_addr().await, "/ready").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = common::http_get(zk.admin_addr().await, "/commands/mntr").await;
    assert!(status == 200 && body.contains("\"znode_count\""), "{body}");
    let (status, body) = common::http_get(zk.metrics_addr().await, "/metrics").await;
    assert!(status == 200 && body.contains("updatelatency_count"), "{body}");
    within(60, "remove the container", zk.remove()).await;
}

/// Persistent and sequential nodes with data, and what they should read.
async fn write_nodes(cs: &str) -> Vec<(String, Vec<u8>)> {
    let c = Client::connect(cs).await.unwrap();
    c.create("/durable", b"root", CreateMode::Persistent).await.unwrap();
    let mut want = vec![("/durable".to_string(), b"root".to_vec())];
    for i in 0..20 {
        let data = format!("value-{i}").into_bytes();
        let (path, _) =
            c.create("/durable/n-", data.as_slice(), CreateMode::PersistentSequential).await.unwrap();
        want.push((path, data));
    }
    c.set_data("/durable", b"root-v2", None).await.unwrap();
    want[0].1 = b"root-v2".to_vec();
    c.close().await.unwrap();
    want
}

async fn check_nodes(cs: &str, want: &[(String, Vec<u8>)], when: &str) {
    let c = within(20, "connect", Client::connect(cs)).await.unwrap();
    let mut kids = c.get_children("/durable").await.unwrap();
    kids.sort();
    assert_eq!(kids.len(), want.len() - 1, "{when}: children of /durable: {kids:?}");
    for (path, data) in want {
        let (got, _) = c.get_data(path).await.unwrap_or_else(|e| panic!("{when}: {path}: {e}"));
        assert_eq!(&got[..], &data[..], "{when}: {path}");
    }
    // New writes go on from where the old server stopped.
    let (next, _) = c.create("/durable/n-", b"", CreateMode::PersistentSequential).await.unwrap();
    assert!(want.iter().all(|(p, _)| p < &next), "{when}: {next} after the old sequence");
    c.delete(&next, None).await.unwrap();
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_stop_start_and_a_new_container_on_the_volume() {
    common::trace_init();
    let volume = DataVolume::new();
    let image = ZkServerImage::default().with_data_volume(volume.name());
    let Some(mut zk) = start(image.clone()).await else { return };
    let want = within(30, "write nodes", write_nodes(&zk.connect_string())).await;

    // The same container, stopped (SIGTERM) and started again.
    within(30, "docker stop", zk.stop()).await;
    assert!(!zk.container().is_running().await.unwrap());
    assert_eq!(zk.container().exit_code().await.unwrap(), Some(0), "a clean stop on SIGTERM");
    within(90, "docker start", zk.restart()).await;
    within(30, "check after restart", check_nodes(&zk.connect_string(), &want, "restarted")).await;
    within(60, "remove the container", zk.remove()).await;

    // A new container on the same volume.
    let zk = start(image).await.expect("Docker was there a moment ago");
    within(30, "check in a new container", check_nodes(&zk.connect_string(), &want, "new container")).await;
    within(60, "remove the container", zk.remove()).await;
    drop(volume);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_container_loses_the_session_and_the_latch_leads_again() {
    common::trace_init();
    // tickTime 500: sessions may be as short as 1 s on the server.
    let Some(zk) = start(ZkServerImage::default().with_tick_time(500)).await else { return };
    let session = Duration::from_secs(2);
    let fw = Framework::builder(&zk.connect_string())
        .session_timeout(session)
        .connection_timeout(Duration::from_secs(2))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(50), 3))
        .build();
    within(20, "framework start", fw.start()).await.unwrap();
    assert!(fw.block_until_connected(Duration::from_secs(20)).await, "connected");
    assert_eq!(fw.client().unwrap().session_timeout(), session, "the server grants 2 s");
    let mut states = fw.connection_state_events();
    let latch = LeaderLatch::new(&fw, "/paused/leader", "solo");
    latch.start().await.unwrap();
    assert!(latch.await_leadership(Some(Duration::from_secs(10))).await, "leads before the pause");
    let old_session = fw.client().unwrap().session_id();
    let old_node = latch.our_node().unwrap();

    async fn expect(states: &mut zk_recipes::StateStream, want: ConnectionState, secs: u64) {
        within(secs, &format!("{want:?}"), async {
            while let Some(s) = states.next().await {
                if s == want {
                    return;
                }
            }
            panic!("the state stream ended before {want:?}");
        })
        .await
    }

    // Frozen for well over the session timeout: SUSPENDED once pings go
    // unanswered, LOST a session timeout after the server was last heard.
    within(30, "docker pause", zk.pause()).await;
    expect(&mut states, ConnectionState::Suspended, 10).await;
    // The latch hears of SUSPENDED through its own listener.
    let mut leadership = latch.leadership();
    within(5, "leadership given up on SUSPENDED", leadership.wait_for(|l| !*l)).await.unwrap();
    expect(&mut states, ConnectionState::Lost, 10).await;
    // While the server is frozen the latch must not lead again. That is
    // something NOT happening, so it takes a window; a stale watch or
    // cached queue would flip it at once, so 500 ms is plenty. Leadership
    // notifies only on a change (it is false now): any turn to leader ends
    // the wait for `changed`, however brief.
    let relapsed = tokio::time::timeout(Duration::from_millis(500), leadership.changed()).await;
    assert!(relapsed.is_err() && !latch.has_leadership(), "no leadership while the server is frozen");
    within(30, "docker unpause", zk.unpause()).await;

    expect(&mut states, ConnectionState::Reconnected, 30).await;
    let new_session = fw.client().unwrap().session_id();
    assert_ne!(new_session, old_session, "a new session after LOST");
    assert!(
        latch.await_leadership(Some(Duration::from_secs(20))).await,
        "the latch leads again on the new session"
    );
    assert_ne!(latch.our_node().unwrap(), old_node, "with a new latch node");
    // The server expired the old session: its ephemeral latch node is gone.
    let kids = fw.get_children("/paused/leader").await.unwrap();
    assert_eq!(kids.len(), 1, "only the new latch node: {kids:?}");
    latch.close().await;
    fw.close().await;
    within(60, "remove the container", zk.remove()).await;
}

/// Each server's names under `/`, read through a client of that server
/// alone after a sync.
async fn children_of(zk: &ZkContainer) -> Vec<String> {
    let c = Client::builder(&zk.connect_string())
        .session_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", zk.connect_string()));
    c.sync("/").await.unwrap();
    let mut names = c.get_children("/").await.unwrap();
    names.sort();
    c.close().await.ok();
    names
}

/// Waits until one of `among` says it leads, and returns it.
async fn wait_leader(members: &[ZkContainer], among: &[usize], secs: u64, what: &str) -> usize {
    within(secs, what, async {
        loop {
            for &i in among {
                if members[i].mode().await.as_deref() == Some("leader") {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

/// Three containers of the image form an ensemble on a private Docker
/// network (host names in `zoo.cfg`, myid in `/data`). The leader's
/// container is cut off the network under a stream of writes: the other
/// two elect a leader and the writes go on; joined again, the old leader
/// follows and catches up. Every acknowledged write is on all three, and
/// the three hold the same tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_of_containers_survives_its_leader_leaving_the_network() {
    let lines = ["tickTime=200", "initLimit=20", "syncLimit=5", "maxSessionTimeout=60000"];
    let Some((network, mut members)) =
        within(START_LIMIT, "build the image, start 3 containers", container::start_ensemble(3, &lines))
            .await
    else {
        return;
    };
    let all = [0, 1, 2];
    let old = wait_leader(&members, &all, 60, "a leader among the containers").await;
    let cs: String = members.iter().map(|m| m.connect_string()).collect::<Vec<_>>().join(",");
    let writer_client =
        Client::builder(&cs).session_timeout(Duration::from_secs(20)).connect().await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (writer, last_error) = common::spawn_writer(writer_client, "c", stop_rx);
    let others: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let watcher = Client::builder(&members[others[0]].connect_string())
        .session_timeout(Duration::from_secs(20))
        .connect();
    let watcher = watcher.await.unwrap();
    let count = || {
        let c = watcher.clone();
        async move { c.get_all_children_number("/").await.unwrap_or(0) }
    };
    common::wait_until_async(30, "writes flow", || async { count().await > 20 }).await;

    within(30, "docker network disconnect", members[old].disconnect(&network)).await;
    let new_leader = wait_leader(&members, &others, 30, "a new leader among the two left").await;
    assert_ne!(new_leader, old);
    // The readiness probe (the AdminServer's /ready, published from 8080):
    // the two that kept a quorum serve. (The cut-off one is unreachable
    // from the host while off its only network; `ready_follows_the_quorum`
    // in tests/admin_http.rs sees a member without a quorum answer 503.)
    for i in &others {
        let (status, body) = common::http_get(members[*i].admin_addr().await, "/ready").await;
        assert_eq!(status, 200, "container {i}: {body}");
    }
    let seen = count().await;
    common::wait_until_async(30, "writes flow without the old leader", || async {
        count().await > seen + 20
    })
    .await;

    within(90, "docker network connect", members[old].reconnect(&network)).await;
    common::wait_until_async(60, "the old leader follows", || {
        let m = &members[old];
        async move { m.mode().await.as_deref() == Some("follower") }
    })
    .await;
    // Read after the reconnect: Docker may publish on another host port.
    let old_admin = members[old].admin_addr().await;
    common::wait_until_async(30, "the old leader is ready again", || async move {
        common::http_get(old_admin, "/ready").await.0 == 200
    })
    .await;
    let seen = count().await;
    common::wait_until_async(30, "writes flow with all three", || async { count().await > seen + 5 }).await;
    let _ = stop_tx.send(true);
    let acked = within(30, "the writer stops", writer).await.unwrap();
    assert!(
        acked.len() > 40,
        "only {} writes acknowledged; last error: {}",
        acked.len(),
        last_error.lock().unwrap()
    );

    let first = children_of(&members[0]).await;
    for (i, m) in members.iter().enumerate().skip(1) {
        assert_eq!(children_of(m).await, first, "container {i} holds another tree");
    }
    for p in &acked {
        assert!(first.contains(&p[1..].to_string()), "acknowledged {p} was lost");
    }
    let log = members[old].logs().await;
    assert!(log.contains("role ends"), "the old leader never left its role:\n{log}");
    watcher.close().await.ok();
    for m in members.drain(..) {
        within(60, "remove a container", m.remove()).await;
    }
}

/// The image zk-testing builds is the one `zk-server/docker/Dockerfile`
/// documents: the same instructions (the file adds comments).
#[test]
fn the_published_dockerfile_is_the_repositorys() {
    let file = include_str!("../zk-server/docker/Dockerfile");
    let instructions: Vec<&str> =
        file.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let published: Vec<&str> = container::DOCKERFILE.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(instructions, published);
}
