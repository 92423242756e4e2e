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

/// Starts Apache server `my_id` of `servers` (after a loud skip line,
/// `None`, when Apache ZooKeeper is not installed).
async fn start_apache(my_id: i64, servers: &[(i64, u16, u16)]) -> Option<ApacheQuorumPeer> {
    let servers = servers.to_vec();
    tokio::task::spawn_blocking(move || ApacheQuorumPeer::start(my_id, &servers, opts())).await.unwrap()
}

/// The `Mode:` line of a server's `srvr`, if it answers one.
async fn srvr_mode(addr: std::net::SocketAddr) -> Option<String> {
    tokio::task::spawn_blocking(move || {
        zk_test_support::apache::four_letter_word(addr, "srvr")
            .and_then(|t| t.lines().find(|l| l.starts_with("Mode:")).map(str::to_string))
    })
    .await
    .unwrap()
}

/// Polls `srvr` until its mode is `want` (bounded); the last mode seen.
async fn wait_for_mode(addr: std::net::SocketAddr, want: &str, secs: u64) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mode = srvr_mode(addr).await;
        if mode.as_deref() == Some(want) || Instant::now() >= deadline {
            return mode;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    let Some(apache) = start_apache(3, &servers).await else { return };
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
    let Some(apache) = start_apache(1, &servers).await else { return };
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

// ---------------------------------------------------------------------------
// ZAB on the quorum port, after the election.

use tokio::sync::mpsc;
use zk_server::quorum::zab::{Durable, Leader, Learner, Limits, Txn};
use zk_server::quorum::zab_net::{MemLog, follow, lead};

const TICK: Duration = Duration::from_millis(100);
const LIMITS: Limits = Limits { init: 50, sync: 10 };

/// One of our servers: elects, then leads or follows over the quorum
/// port. Returns its decision, a proposal channel (when it leads) and its
/// deliveries.
async fn our_server(
    sid: i64,
    servers: &[(i64, u16, u16)],
    stop: watch::Receiver<bool>,
) -> (Decision, Option<mpsc::UnboundedSender<Bytes>>, mpsc::UnboundedReceiver<Txn>) {
    let decided =
        within(60, "an election decides", our_peer(sid, servers, 0, stop).await).await.unwrap().unwrap();
    let verifier = QuorumVerifier::Majority { voters: servers.iter().map(|s| s.0).collect() };
    let (deliver_tx, deliver_rx) = mpsc::unbounded_channel();
    if decided.state == PeerState::Leading {
        let me = servers.iter().find(|s| s.0 == sid).unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", me.1)).await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut log = MemLog::default();
            let leader = Leader::new(sid, verifier, LIMITS, Durable::default(), 0, 0);
            let why = lead(leader, listener, TICK, &mut log, deliver_tx, rx).await;
            eprintln!("leader {sid} stopped: {why}");
        });
        (decided, Some(tx), deliver_rx)
    } else {
        let leader = servers.iter().find(|s| s.0 == decided.leader).unwrap();
        let addr = format!("127.0.0.1:{}", leader.1).parse().unwrap();
        tokio::spawn(async move {
            let mut log = MemLog::default();
            let learner = Learner::new(sid, decided.leader, LIMITS, Durable::default(), 0, 0);
            let why = follow(learner, addr, TICK * LIMITS.init, TICK, &mut log, deliver_tx).await;
            eprintln!("follower {sid} stopped: {why}");
        });
        (decided, None, deliver_rx)
    }
}

/// Three of ours elect, sync and replicate: every server applies the same
/// txns in the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_servers_replicate_over_tcp() {
    common::trace_init();
    let servers = ports(3);
    let (stop, stop_rx) = watch::channel(false);
    let mut nodes = Vec::new();
    for (sid, _, _) in servers.clone() {
        let servers = servers.clone();
        let stop_rx = stop_rx.clone();
        nodes.push(tokio::spawn(async move { our_server(sid, &servers, stop_rx).await }));
    }
    let mut started = Vec::new();
    for n in nodes {
        started.push(n.await.unwrap());
    }
    let leader = started.iter().position(|s| s.1.is_some()).expect("a leader");
    let propose = started[leader].1.clone().unwrap();
    // Once established, the leader replicates; probe until it delivers.
    let first = within(30, "the leader is established", async {
        loop {
            propose.send(Bytes::from_static(b"probe")).unwrap();
            if let Ok(Some(t)) =
                tokio::time::timeout(Duration::from_millis(200), started[leader].2.recv()).await
            {
                break t;
            }
        }
    })
    .await;
    for i in 0..50 {
        propose.send(Bytes::from(format!("txn-{i}"))).unwrap();
    }
    let mut leader_seen = vec![first];
    while leader_seen.len() < 51 {
        leader_seen.push(within(30, "leader commits", started[leader].2.recv()).await.unwrap());
    }
    for (i, s) in started.iter_mut().enumerate() {
        if i == leader {
            continue;
        }
        let mut seen = Vec::new();
        while seen.len() < leader_seen.len() {
            seen.push(within(30, "a follower applies", s.2.recv()).await.unwrap());
        }
        assert_eq!(&seen[seen.len() - 50..], &leader_seen[leader_seen.len() - 50..], "follower {i}");
    }
    let zxids: Vec<i64> = leader_seen.iter().map(|t| t.zxid).collect();
    assert!(zxids.windows(2).all(|w| w[0] < w[1]), "zxid order");
    let _ = stop.send(true);
}

/// An Apache 3.8 server follows our leader all the way: discovery
/// (FOLLOWERINFO, LEADERINFO, ACKEPOCH), sync (DIFF, NEWLEADER, its ACK,
/// UPTODATE) and pings; then it serves clients as a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apache_follower_syncs_with_our_leader() {
    common::trace_init();
    let servers = ports(3);
    let (stop, stop_rx) = watch::channel(false);
    let s2 = servers.clone();
    let r2 = stop_rx.clone();
    let ours2 = tokio::spawn(async move { our_server(2, &s2, r2).await });
    let s3 = servers.clone();
    let r3 = stop_rx.clone();
    let ours3 = tokio::spawn(async move { our_server(3, &s3, r3).await });
    let Some(apache) = start_apache(1, &servers).await else { return };
    let (d3, _, _) = ours3.await.unwrap();
    let (d2, _, _) = ours2.await.unwrap();
    assert_eq!((d3.leader, d3.state), (3, PeerState::Leading));
    assert_eq!(d2.leader, 3);
    let mode = wait_for_mode(apache.addr(), "Mode: follower", 60).await;
    let (apache, uptodate) = tokio::task::spawn_blocking(move || {
        let u = wait_for_log(&apache, "Learner received UPTODATE message", 30);
        (apache, u)
    })
    .await
    .unwrap();
    let _ = stop.send(true);
    let log = apache.log();
    assert_eq!(mode.as_deref(), Some("Mode: follower"), "the Apache peer's log:\n{log}");
    assert!(uptodate, "the Apache follower completed its sync (UPTODATE); its log:\n{log}");
    assert!(log.contains("Getting a diff from the leader"), "{log}");
}

/// The other way round: our server follows an Apache 3.8 leader through
/// discovery and sync (the Apache leader needs our ACK of NEWLEADER to
/// have a quorum and serve) and keeps answering its pings (or the leader
/// would drop it after syncLimit and lose its quorum).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_follower_syncs_with_an_apache_leader() {
    common::trace_init();
    let servers = ports(3);
    let Some(apache) = start_apache(3, &servers).await else { return };
    let (stop, stop_rx) = watch::channel(false);
    let (d1, _, _) = our_server(1, &servers, stop_rx.clone()).await;
    assert_eq!((d1.leader, d1.state), (3, PeerState::Following), "{}", apache.log());
    let first = wait_for_mode(apache.addr(), "Mode: leader", 60).await;
    // Longer than syncLimit (5 s): only a follower that answers pings
    // keeps the leader's quorum.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let later = srvr_mode(apache.addr()).await;
    let _ = stop.send(true);
    let log = apache.log();
    assert_eq!(
        first.as_deref(),
        Some("Mode: leader"),
        "the Apache leader got our NEWLEADER ACK; its log:\n{log}"
    );
    assert_eq!(later.as_deref(), Some("Mode: leader"), "still leading after syncLimit; its log:\n{log}");
}
