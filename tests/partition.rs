//! Network partitions between real `zk-server` processes: every peer link
//! (each direction, quorum and election port) runs through a proxy of its
//! own, so a test can cut one server off from the others (no byte moves,
//! no new connection) and heal it, while clients still reach every server.
//! The leader cut off stops acknowledging writes, the majority elects
//! another and carries on, and after healing the old leader catches up: no
//! acknowledged write is lost and all servers end with the same tree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{trace_init, within};
use zk_client::{Client, CreateMode};
use zk_test_support::apache::{Mode, server_mode};
use zk_test_support::ours::OurProcess;
use zk_test_support::proxy::Proxy;

/// Three of our servers whose peer links run through proxies.
struct Partitionable {
    client_addrs: Vec<SocketAddr>,
    /// (from, to, proxy): `from` reaches `to`'s quorum or election port
    /// through `proxy`.
    links: Vec<(usize, usize, Proxy)>,
    servers: Vec<OurProcess>,
    _root: tempfile::TempDir,
}

impl Partitionable {
    fn start(n: usize) -> Partitionable {
        let root = tempfile::Builder::new().prefix("zk-partition").tempdir().unwrap();
        let ports = zk_test_support::free_ports(3 * n);
        let real = |i: usize| (ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]);
        let mut links = Vec::new();
        let mut cfg_lines = vec![String::new(); n];
        for (from, lines) in cfg_lines.iter_mut().enumerate() {
            for to in 0..n {
                let (_, q, e) = real(to);
                if from == to {
                    lines.push_str(&format!("server.{}=127.0.0.1:{q}:{e}\n", to + 1));
                    continue;
                }
                let pq = Proxy::start(SocketAddr::from(([127, 0, 0, 1], q)));
                let pe = Proxy::start(SocketAddr::from(([127, 0, 0, 1], e)));
                lines.push_str(&format!("server.{}=127.0.0.1:{}:{}\n", to + 1, pq.port(), pe.port()));
                links.push((from, to, pq));
                links.push((from, to, pe));
            }
        }
        let mut servers = Vec::new();
        for (i, lines) in cfg_lines.iter().enumerate() {
            let dir = root.path().join(format!("server{}", i + 1));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("myid"), format!("{}\n", i + 1)).unwrap();
            let cfg = format!(
                "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\nmaxSessionTimeout=60000\n{lines}",
                dir.display(),
                real(i).0
            );
            std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
            servers.push(OurProcess::start(&dir.join("zoo.cfg"), &dir.join("server.log")));
        }
        let client_addrs = (0..n).map(|i| SocketAddr::from(([127, 0, 0, 1], real(i).0))).collect();
        Partitionable { client_addrs, links, servers, _root: root }
    }

    /// Cuts server `s` off from every other server (or heals it).
    fn isolate(&self, s: usize, cut: bool) {
        for (from, to, p) in &self.links {
            if *from == s || *to == s {
                p.set_refuse(cut);
                p.stall(cut);
                if !cut {
                    // Connections stalled across the partition are reset, as
                    // TCP would after its retries.
                    p.cut();
                }
            }
        }
    }

    fn modes(&self) -> Vec<Option<Mode>> {
        self.client_addrs.iter().map(|a| server_mode(*a)).collect()
    }

    fn logs(&self) -> String {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let log = s.log();
                let lines: Vec<&str> = log.lines().collect();
                format!("--- server {} ---\n{}\n", i + 1, lines[lines.len().saturating_sub(30)..].join("\n"))
            })
            .collect()
    }
}

/// Waits (blocking) until exactly one of `among` leads and all of them
/// serve; the leader.
fn wait_leader(p: &Partitionable, among: &[usize], secs: u64) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let modes = p.modes();
        let leaders: Vec<usize> = among.iter().copied().filter(|i| modes[*i] == Some(Mode::Leader)).collect();
        if leaders.len() == 1 && among.iter().all(|i| modes[*i].is_some()) {
            return leaders[0];
        }
        assert!(std::time::Instant::now() < deadline, "no leader among {among:?}: {modes:?}\n{}", p.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_stops_acknowledging_and_catches_up_after_healing() {
    trace_init();
    let p = tokio::task::spawn_blocking(|| {
        let p = Partitionable::start(3);
        wait_leader(&p, &[0, 1, 2], 60);
        p
    })
    .await
    .unwrap();
    let all: String = p.client_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
    let writer_client =
        Client::builder(&all).session_timeout(Duration::from_secs(20)).connect().await.unwrap();
    let watcher = Client::builder(&all).session_timeout(Duration::from_secs(20)).connect().await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (writer, _) = common::spawn_writer(writer_client, "p", stop_rx);
    let count = || {
        let c = watcher.clone();
        async move { c.get_all_children_number("/").await.unwrap_or(0) }
    };
    common::wait_until_async(30, "writes flow", || async { count().await > 20 }).await;

    // Cut the leader off. A client of the old leader alone gets no
    // acknowledgement; the other two elect a leader and writes go on.
    let old = tokio::task::spawn_blocking({
        let modes = p.modes();
        move || modes.iter().position(|m| *m == Some(Mode::Leader)).unwrap()
    })
    .await
    .unwrap();
    let lone = Client::builder(&p.client_addrs[old].to_string())
        .session_timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    p.isolate(old, true);
    let attempt =
        tokio::time::timeout(Duration::from_secs(4), lone.create("/lonely", b"", CreateMode::Persistent))
            .await;
    assert!(!matches!(attempt, Ok(Ok(_))), "the cut-off leader acknowledged a write: {attempt:?}");
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let p = tokio::task::spawn_blocking(move || {
        let l = wait_leader(&p, &others, 30);
        assert_ne!(l, old);
        p
    })
    .await
    .unwrap();
    let seen = count().await;
    common::wait_until_async(30, "writes flow in the majority", || async { count().await > seen + 20 }).await;
    assert!(
        tokio::task::spawn_blocking({
            let a = p.client_addrs[old];
            move || server_mode(a)
        })
        .await
        .unwrap()
        .is_none(),
        "the cut-off server still serves"
    );

    // Heal: the old leader catches up; nothing acknowledged is lost.
    p.isolate(old, false);
    let p = tokio::task::spawn_blocking(move || {
        wait_leader(&p, &[0, 1, 2], 60);
        p
    })
    .await
    .unwrap();
    let seen = count().await;
    common::wait_until_async(30, "writes flow after healing", || async { count().await > seen + 5 }).await;
    let _ = stop_tx.send(true);
    let acked = within(30, "the writer stops", writer).await.unwrap();
    let mut trees = Vec::new();
    for a in &p.client_addrs {
        let c = Client::builder(&a.to_string()).connect().await.unwrap();
        c.sync("/").await.unwrap();
        let mut names = c.get_children("/").await.unwrap();
        names.sort();
        trees.push(names);
    }
    assert!(trees.iter().all(|t| *t == trees[0]), "the servers hold different trees\n{}", p.logs());
    for w in &acked {
        assert!(trees[0].contains(&w[1..].to_string()), "acknowledged {w} was lost");
    }
}
