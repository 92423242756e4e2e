//! Fast leader election over real sockets: among servers of ours, and
//! with an Apache ZooKeeper 3.8 peer in the same ensemble, both ways (the
//! Apache peer elected by ours, and ours following an Apache leader). The
//! election port's wire (initial message, "the higher sid keeps the
//! connection", notifications) is Apache's, or these do not agree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::within;
use tokio::sync::watch;
use zk_server::quorum::config::{LearnerType, QuorumVerifier};
use zk_server::quorum::election::{Decision, Identity};
use zk_server::quorum::peer_net::PeerNet;
use zk_server::quorum::runner::{answer_while_settled, elect};
use zk_server::quorum::wire::PeerState;
use zk_test_support::apache::ApacheZkOptions;
use zk_test_support::ensemble::ApacheQuorumPeer;

/// (sid, quorum port, election port) for `n` servers.
fn ports(n: i64) -> Vec<(i64, u16, u16)> {
    let p = zk_test_support::free_ports(2 * n as usize);
    (1..=n).map(|sid| (sid, p[2 * (sid as usize - 1)], p[2 * (sid as usize - 1) + 1])).collect()
}

/// The ensemble's config as notifications carry it (Apache peers parse
/// it: it must name the servers).
fn config(servers: &[(i64, u16, u16)]) -> Bytes {
    let mut s = String::new();
    for (sid, q, e) in servers {
        s.push_str(&format!("server.{sid}=127.0.0.1:{q}:{e}:participant\n"));
    }
    s.push_str("version=0");
    Bytes::from(s)
}

fn identity(sid: i64, servers: &[(i64, u16, u16)]) -> Identity {
    Identity {
        my_id: sid,
        learner_type: LearnerType::Participant,
        verifier: QuorumVerifier::Majority { voters: servers.iter().map(|s| s.0).collect() },
        config: config(servers),
    }
}

/// Starts our server `sid`'s election over TCP; it keeps answering
/// looking peers after deciding, until `stop`. Its decision comes back.
async fn our_peer(
    sid: i64,
    servers: &[(i64, u16, u16)],
    zxid: i64,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Option<Decision>> {
    let me_id = identity(sid, servers);
    let cfg = config(servers);
    let peers: BTreeMap<i64, String> =
        servers.iter().filter(|s| s.0 != sid).map(|(s, _, e)| (*s, format!("127.0.0.1:{e}"))).collect();
    let me = servers.iter().find(|s| s.0 == sid).unwrap();
    let (net, mut rx) = PeerNet::start(
        sid,
        format!("127.0.0.1:{}", me.2),
        format!("127.0.0.1:{}", me.2).parse().unwrap(),
        peers,
    )
    .await
    .unwrap();
    tokio::spawn(async move {
        let d = elect(me_id, 0, zxid, 0, &net, &mut rx).await?;
        let decided = d;
        let (net2, stop2) = (net.clone(), stop.clone());
        tokio::spawn(async move {
            answer_while_settled(decided, cfg, &net2, &mut rx, stop2).await;
            net2.shutdown();
        });
        Some(d)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_servers_elect_over_tcp() {
    common::trace_init();
    let servers = ports(3);
    let (stop, stop_rx) = watch::channel(false);
    let mut peers = Vec::new();
    for (sid, _, _) in &servers {
        peers.push(our_peer(*sid, &servers, 5, stop_rx.clone()).await);
    }
    let mut decisions = Vec::new();
    for p in peers {
        decisions.push(within(30, "an election decides", p).await.unwrap().unwrap());
    }
    let _ = stop.send(true);
    assert!(decisions.iter().all(|d| d.leader == 3), "{decisions:?}");
    assert_eq!(decisions[2].state, PeerState::Leading);
    assert_eq!(decisions[0].state, PeerState::Following);
}

fn wait_for_log(apache: &ApacheQuorumPeer, what: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if apache.log().lines().any(|l| l.trim_end().ends_with(what)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn opts() -> ApacheZkOptions {
    ApacheZkOptions { tick_time: 500, ..ApacheZkOptions::default() }
}

/// Apache is 3 (the highest id) and ours is 1: the two are a quorum of
/// three and elect the Apache server, which decides to lead and ours to
/// follow it. Our server 2, started while the Apache server leads, is told
/// by both and joins it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ours_elect_an_apache_leader() {
    common::trace_init();
    let servers = ports(3);
    let s2 = servers.clone();
    let Some(apache) =
        tokio::task::spawn_blocking(move || ApacheQuorumPeer::start(3, &s2, opts())).await.unwrap()
    else {
        return;
    };
    let (stop, stop_rx) = watch::channel(false);
    let p1 = our_peer(1, &servers, 0, stop_rx.clone()).await;
    let d1 = within(60, "server 1 decides", p1).await.unwrap().unwrap();
    let (apache, leading) = tokio::task::spawn_blocking(move || {
        let l = wait_for_log(&apache, "LEADING", 60);
        (apache, l)
    })
    .await
    .unwrap();
    assert_eq!(
        (d1.leader, d1.state),
        (3, PeerState::Following),
        "{d1:?}; the Apache peer's log:\n{}",
        apache.log()
    );
    assert!(leading, "the Apache peer decided to lead; its log:\n{}", apache.log());
    let p2 = our_peer(2, &servers, 0, stop_rx.clone()).await;
    let d2 = within(60, "server 2 decides", p2).await.unwrap().unwrap();
    let _ = stop.send(true);
    assert_eq!(
        (d2.leader, d2.state),
        (3, PeerState::Following),
        "{d2:?}; the Apache peer's log:\n{}",
        apache.log()
    );
}

/// Apache is 1, ours are 2 and 3: ours elect 3, and the Apache server,
/// told by both, follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apache_peer_follows_our_leader() {
    common::trace_init();
    let servers = ports(3);
    let (stop, stop_rx) = watch::channel(false);
    let p2 = our_peer(2, &servers, 0, stop_rx.clone()).await;
    let p3 = our_peer(3, &servers, 0, stop_rx.clone()).await;
    let s2 = servers.clone();
    let Some(apache) =
        tokio::task::spawn_blocking(move || ApacheQuorumPeer::start(1, &s2, opts())).await.unwrap()
    else {
        return;
    };
    let d2 = within(60, "server 2 decides", p2).await.unwrap().unwrap();
    let d3 = within(60, "server 3 decides", p3).await.unwrap().unwrap();
    let (apache, following) = tokio::task::spawn_blocking(move || {
        let f = wait_for_log(&apache, "FOLLOWING", 60);
        (apache, f)
    })
    .await
    .unwrap();
    let _ = stop.send(true);
    assert_eq!((d3.leader, d3.state), (3, PeerState::Leading), "{d3:?}");
    assert_eq!((d2.leader, d2.state), (3, PeerState::Following), "{d2:?}");
    assert!(following, "the Apache peer follows ours; its log:\n{}", apache.log());
    let log = apache.log();
    assert!(log.contains("n.sid:3") || log.contains("n.leader:3") || log.contains("leader=3"), "{log}");
}
