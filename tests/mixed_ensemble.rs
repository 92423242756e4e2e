//! Our servers and Apache ZooKeeper 3.8 servers in one ensemble: with the
//! leader on either side, writes through any member are seen by all, and
//! a leader's loss is survived; an Apache leader's TRUNC cuts a diverged
//! tail of ours back (ours reloads its state); a live Apache ensemble
//! migrates to ours and back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{trace_init, within};
use zk_client::{Client, CreateMode};
use zk_test_support::apache::{ApacheZkOptions, Mode, server_mode};
use zk_test_support::ensemble::ApacheQuorumPeer;
use zk_test_support::ours::OurEnsemble;

const TICK: u32 = 500;

struct Mixed {
    ours: OurEnsemble,
    apache: Vec<(i64, ApacheQuorumPeer)>,
    our_ids: Vec<i64>,
}

impl Mixed {
    /// Servers `our_ids` of ours and `apache_ids` of Apache's, one ensemble.
    fn start(our_ids: &[i64], apache_ids: &[i64]) -> Option<Mixed> {
        let n = our_ids.len() + apache_ids.len();
        let ports = zk_test_support::free_ports(2 * n);
        let mut ids: Vec<i64> = our_ids.iter().chain(apache_ids).copied().collect();
        ids.sort();
        let servers: Vec<(i64, u16, u16)> =
            ids.iter().enumerate().map(|(i, sid)| (*sid, ports[2 * i], ports[2 * i + 1])).collect();
        let cfg = format!(
            "tickTime={TICK}\ninitLimit={}\nsyncLimit={}\n",
            20_000u32.div_ceil(TICK).max(10),
            5_000u32.div_ceil(TICK).max(5)
        );
        // Ours first: they come up in milliseconds and wait for peers,
        // while a JVM takes a second or more. Started after, ours could
        // miss an election two loaded JVMs finish between themselves.
        let ours = OurEnsemble::start_members(our_ids, &servers, &cfg);
        let opts = ApacheZkOptions { tick_time: TICK, ..ApacheZkOptions::default() };
        let mut apache = Vec::new();
        for sid in apache_ids {
            apache.push((*sid, ApacheQuorumPeer::start(*sid, &servers, opts.clone())?));
        }
        Some(Mixed { ours, apache, our_ids: our_ids.to_vec() })
    }

    /// Every server's id and client address.
    fn addrs(&self) -> Vec<(i64, SocketAddr)> {
        let mut v: Vec<(i64, SocketAddr)> =
            self.our_ids.iter().enumerate().map(|(i, sid)| (*sid, self.ours.addr(i))).collect();
        v.extend(self.apache.iter().map(|(sid, p)| (*sid, p.addr())));
        v.sort();
        v
    }

    /// The last lines of every server's log.
    fn logs(&self) -> String {
        let mut logs = self.ours.logs();
        for (sid, p) in &self.apache {
            let log = p.log();
            let lines: Vec<&str> = log.lines().collect();
            logs.push_str(&format!(
                "--- apache {sid} ---\n{}\n",
                lines[lines.len().saturating_sub(60)..].join("\n")
            ));
        }
        logs
    }

    fn is_ours(&self, sid: i64) -> bool {
        self.our_ids.contains(&sid)
    }

    /// Waits until every server in `alive` serves and one leads; the
    /// leader's id.
    fn wait_ready(&self, alive: &[i64], secs: u64) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let modes: Vec<(i64, Option<Mode>)> = self
                .addrs()
                .into_iter()
                .filter(|(s, _)| alive.contains(s))
                .map(|(s, a)| (s, server_mode(a)))
                .collect();
            let leaders: Vec<i64> =
                modes.iter().filter(|(_, m)| *m == Some(Mode::Leader)).map(|(s, _)| *s).collect();
            if leaders.len() == 1 && modes.iter().all(|(_, m)| m.is_some()) {
                return leaders[0];
            }
            if Instant::now() > deadline {
                panic!("the mixed ensemble did not serve within {secs} s: {modes:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

async fn client(addr: SocketAddr) -> Client {
    Client::builder(&addr.to_string())
        .session_timeout(Duration::from_secs(20))
        .connect()
        .await
        .expect("connect")
}

/// A write through every server; every server then holds every write.
async fn writes_everywhere(m: &Mixed, tag: &str) {
    for (sid, addr) in m.addrs() {
        let c = client(addr).await;
        let create =
            c.create(&format!("/{tag}-via-{sid}"), format!("{sid}").as_bytes(), CreateMode::Persistent);
        match tokio::time::timeout(Duration::from_secs(20), create).await {
            Ok(r) => {
                r.unwrap_or_else(|e| panic!("create through server {sid}: {e}"));
            }
            Err(_) => panic!("a create through server {sid} hangs:\n{}", m.logs()),
        }
        c.close().await.ok();
    }
    for (sid, addr) in m.addrs() {
        let c = client(addr).await;
        c.sync("/").await.expect("sync");
        for (from, _) in m.addrs() {
            let (data, _) = c
                .get_data(&format!("/{tag}-via-{from}"))
                .await
                .unwrap_or_else(|e| panic!("server {sid} lacks the write through {from}: {e}"));
            assert_eq!(data, format!("{from}").as_bytes());
        }
        c.close().await.ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_ours_lead_an_apache_follower() {
    trace_init();
    let Some(m) = Mixed::start(&[2, 3], &[1]) else { return };
    let m = tokio::task::spawn_blocking(move || {
        let leader = m.wait_ready(&[1, 2, 3], 90);
        assert!(m.is_ours(leader), "server {leader} leads; ours (2 or 3) should");
        m
    })
    .await
    .unwrap();
    within(120, "writes through every server", writes_everywhere(&m, "a")).await;
    // `/zookeeper/config` holds the membership, as Apache writes it.
    let mut configs = Vec::new();
    for (sid, addr) in m.addrs() {
        let (data, _) = client(addr).await.get_data("/zookeeper/config").await.expect("config");
        configs.push((sid, String::from_utf8_lossy(&data).to_string()));
    }
    assert!(
        configs[0].1.starts_with("server.1=127.0.0.1:") && configs[0].1.ends_with("\nversion=0"),
        "{configs:?}"
    );
    assert!(
        configs.iter().all(|(_, c)| *c == configs[0].1),
        "the servers disagree on the membership: {configs:?}"
    );
    // A session made on the Apache follower moves to ours with its ephemeral.
    let apache_addr = m.apache[0].1.addr();
    let all = m.addrs().iter().map(|(_, a)| a.to_string()).collect::<Vec<_>>().join(",");
    let c = Client::builder(&all).session_timeout(Duration::from_secs(20)).connect().await.expect("connect");
    let _ = apache_addr;
    c.create("/eph", b"", CreateMode::Ephemeral).await.expect("ephemeral");
    let session = c.session_id();
    for (sid, addr) in m.addrs() {
        let r = client(addr).await;
        r.sync("/").await.expect("sync");
        let stat =
            r.exists("/eph").await.expect("exists").unwrap_or_else(|| panic!("server {sid} lacks /eph"));
        assert_eq!(stat.ephemeral_owner, session);
    }
    c.close().await.expect("close");
    for (sid, addr) in m.addrs() {
        let r = client(addr).await;
        r.sync("/").await.expect("sync");
        assert!(
            r.exists("/eph").await.expect("exists").is_none(),
            "server {sid} kept a closed session's node"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ours_follows_an_apache_leader() {
    trace_init();
    let Some(m) = Mixed::start(&[1], &[2, 3]) else { return };
    let m = tokio::task::spawn_blocking(move || {
        let leader = m.wait_ready(&[1, 2, 3], 90);
        assert!(!m.is_ours(leader), "server {leader} leads; an Apache server (2 or 3) should");
        m
    })
    .await
    .unwrap();
    within(120, "writes through every server", writes_everywhere(&m, "b")).await;

    // A session made on the Apache follower moves to ours when that server
    // dies: ours revalidates it with the Apache leader (which then takes
    // ours as its owner), so its writes go on (not SESSIONMOVED).
    let mut m = m;
    let leader = tokio::task::spawn_blocking({
        let addrs = m.addrs();
        move || addrs.iter().find(|(_, a)| server_mode(*a) == Some(Mode::Leader)).map(|(s, _)| *s).unwrap()
    })
    .await
    .unwrap();
    let follower = m.apache.iter().map(|(s, _)| *s).find(|s| *s != leader).unwrap();
    let f_addr = m.apache.iter().find(|(s, _)| *s == follower).unwrap().1.addr();
    let cs = format!("{f_addr},{}", m.ours.addr(0));
    let c = within(60, "a session on the Apache follower", async {
        loop {
            let c = Client::builder(&cs)
                .session_timeout(Duration::from_secs(20))
                .connect()
                .await
                .expect("connect");
            if c.current_server().as_deref() == Some(&f_addr.to_string()) {
                break c;
            }
            c.close().await.ok();
        }
    })
    .await;
    c.create("/moving", b"0", CreateMode::Ephemeral).await.expect("create on the Apache follower");
    m.apache.retain(|(s, _)| *s != follower);
    within(60, "a write after the session moved to ours", async {
        loop {
            match c.set_data("/moving", b"1", None).await {
                Ok(_) => break,
                Err(zk_client::Error::ConnectionLoss) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("a write after the session moved to ours: {e}"),
            }
        }
    })
    .await;
    assert_eq!(c.current_server(), Some(m.ours.addr(0).to_string()));
}

/// Which server runs in a slot of the migrating ensemble.
enum Slot {
    Apache,
    Ours(zk_test_support::ours::OurProcess),
}

/// A running Apache ensemble under a stream of writes has each server
/// replaced by ours (same myid, same data dir, same zoo.cfg), one at a
/// time, leader last; then back to Apache the same way. Every acknowledged
/// write survives, every server ends with the same tree, and a session
/// with an ephemeral lives throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apache_ensemble_migrates_to_ours_and_back_one_server_at_a_time() {
    use zk_test_support::ensemble::ApacheEnsemble;
    trace_init();
    let Some(apache) = tokio::task::spawn_blocking(|| ApacheEnsemble::start(3)).await.unwrap() else {
        return;
    };
    let cs = apache.connect_string();
    let addrs = apache.addrs();
    let holder =
        Client::builder(&cs).session_timeout(Duration::from_secs(10)).connect().await.expect("connect");
    holder.create("/holder", b"", CreateMode::Ephemeral).await.expect("ephemeral");
    let session = holder.session_id();
    let writer_client =
        Client::builder(&cs).session_timeout(Duration::from_secs(10)).connect().await.expect("connect");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (writer, last_error) = common::spawn_writer(writer_client, "m", stop_rx);
    let count = || {
        let c = holder.clone();
        async move { c.get_all_children_number("/").await.unwrap_or(0) }
    };
    let apache = std::sync::Arc::new(std::sync::Mutex::new(apache));
    let mut slots: Vec<Slot> = (0..3).map(|_| Slot::Apache).collect();
    let all_serve = |addrs: Vec<SocketAddr>| async move {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let modes: Vec<Option<Mode>> = tokio::task::spawn_blocking({
                let addrs = addrs.clone();
                move || addrs.iter().map(|a| server_mode(*a)).collect()
            })
            .await
            .unwrap();
            let leaders = modes.iter().filter(|m| **m == Some(Mode::Leader)).count();
            if leaders == 1 && modes.iter().all(Option::is_some) {
                return Ok(modes);
            }
            if Instant::now() > deadline {
                return Err(modes);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let logs = |slots: &[Slot], apache: &ApacheEnsemble| {
        let mut out = String::new();
        for (i, s) in slots.iter().enumerate() {
            let log = match s {
                Slot::Ours(p) => p.log(),
                Slot::Apache => apache.log(i),
            };
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("Processing srvr command")).collect();
            let kind = if matches!(s, Slot::Ours(_)) { "ours" } else { "apache" };
            out.push_str(&format!(
                "--- server {} ({kind}) ---\n{}\n",
                i + 1,
                lines[lines.len().saturating_sub(60)..].join("\n")
            ));
        }
        out
    };
    // Followers first, the leader last; then back.
    for round in 0..2 {
        let modes = match all_serve(addrs.clone()).await {
            Ok(m) => m,
            Err(m) => panic!("no leader with all serving: {m:?}\n{}", logs(&slots, &apache.lock().unwrap())),
        };
        let leader = modes.iter().position(|m| *m == Some(Mode::Leader)).unwrap();
        let mut order: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        order.push(leader);
        for i in order {
            let seen = count().await;
            {
                let mut a = apache.lock().unwrap();
                match round {
                    0 => {
                        a.stop(i);
                        let cfg = a.config_path(i);
                        let log = cfg.with_file_name("ours.log");
                        slots[i] = Slot::Ours(zk_test_support::ours::OurProcess::start(&cfg, &log));
                    }
                    _ => {
                        slots[i] = Slot::Apache;
                        a.start_again(i);
                    }
                }
            }
            let modes = match all_serve(addrs.clone()).await {
                Ok(m) => m,
                Err(m) => panic!(
                    "round {round}, server {}: no leader with all serving: {m:?}\n{}",
                    i + 1,
                    logs(&slots, &apache.lock().unwrap())
                ),
            };
            eprintln!("round {round}: server {} replaced; modes {modes:?}", i + 1);
            let deadline = Instant::now() + Duration::from_secs(60);
            while count().await <= seen + 10 {
                if Instant::now() > deadline {
                    panic!(
                        "round {round}, server {}: writes stopped; holder {:?}; the writer's last error: {}\n{}",
                        i + 1,
                        holder.state(),
                        last_error.lock().unwrap(),
                        logs(&slots, &apache.lock().unwrap())
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for (k, s) in slots.iter_mut().enumerate() {
                if let Slot::Ours(p) = s {
                    assert!(p.is_running(), "our server {} stopped:\n{}", k + 1, p.log());
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let acked = within(30, "the writer stops", writer).await.unwrap();
    assert!(acked.len() > 30, "only {} writes were acknowledged", acked.len());
    let mut trees = Vec::new();
    for a in &addrs {
        let c = client(*a).await;
        c.sync("/").await.expect("sync");
        let mut names = c.get_children("/").await.expect("children");
        names.sort();
        trees.push(names);
    }
    assert!(trees.iter().all(|t| *t == trees[0]), "the servers hold different trees");
    for p in &acked {
        assert!(trees[0].contains(&p[1..].to_string()), "acknowledged {p} was lost");
    }
    let stat =
        holder.exists("/holder").await.expect("exists").expect("the ephemeral lived through the migration");
    assert_eq!(stat.ephemeral_owner, session);
    assert_eq!(holder.session_id(), session);
}

/// Ours leads two Apache followers; with both followers dead it logs a
/// write no one else has, then dies too. The Apache servers elect a
/// leader; when ours comes back (its recovery replays the diverged write),
/// the Apache leader sends it TRUNC below what it applied: it cuts its
/// log, reads its state back from disk and follows, and all three hold
/// the same tree, writes after included, without the diverged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apache_leader_truncates_our_diverged_tail() {
    trace_init();
    let Some(m) = Mixed::start(&[3], &[1, 2]) else { return };
    let mut m = tokio::task::spawn_blocking(move || {
        let leader = m.wait_ready(&[1, 2, 3], 90);
        assert_eq!(leader, 3, "ours (the highest id) should lead");
        m
    })
    .await
    .unwrap();
    let ours = client(m.ours.addr(0)).await;
    ours.create("/base", b"1", CreateMode::Persistent).await.expect("create");
    for (_, p) in m.apache.iter_mut() {
        p.stop();
    }
    let lost =
        tokio::time::timeout(Duration::from_secs(2), ours.create("/diverged", b"", CreateMode::Persistent))
            .await;
    assert!(!matches!(lost, Ok(Ok(_))), "a write without a quorum was acknowledged: {lost:?}");
    m.ours.kill(0);
    for (_, p) in m.apache.iter_mut() {
        p.start_again();
    }
    let m = tokio::task::spawn_blocking(move || {
        let leader = m.wait_ready(&[1, 2], 90);
        assert!(!m.is_ours(leader));
        m
    })
    .await
    .unwrap();
    // (No write in the new epoch yet: an Apache leader cuts a tail by TRUNC
    // only when its own log has nothing of a later epoch; otherwise it sends
    // a SNAP, "peer zxid is from different epoch".)
    let mut m = m;
    m.ours.restart(0);
    let m = tokio::task::spawn_blocking(move || {
        m.wait_ready(&[1, 2, 3], 90);
        m
    })
    .await
    .unwrap();
    let c = client(m.apache[0].1.addr()).await;
    c.create("/after", b"2", CreateMode::Persistent).await.expect("a write after ours rejoined");
    c.close().await.ok();
    for (sid, addr) in m.addrs() {
        let r = client(addr).await;
        r.sync("/").await.expect("sync");
        assert!(r.exists("/after").await.expect("exists").is_some(), "server {sid} lacks /after");
        assert!(r.exists("/base").await.expect("exists").is_some(), "server {sid} lacks /base");
        assert_eq!(
            r.exists("/diverged").await.expect("exists"),
            None,
            "server {sid} kept the diverged write"
        );
        r.close().await.ok();
    }
    let log = m.ours.log(0);
    assert!(
        log.contains("reloading the state from disk"),
        "ours was never sent a TRUNC below its state:\n{log}\n{}",
        m.logs()
    );
}

/// Apache's Java client (Curator's InterProcessMutex, connected anywhere
/// in the ensemble) and a Rust task (connected to ours) share a lock and a
/// read-modify-write counter on a mixed ensemble led by Apache: they see
/// one tree, and mutual exclusion keeps the count exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_and_our_client_share_a_lock_on_a_mixed_ensemble() {
    trace_init();
    let Some((_dir, cp)) = common::java::java_peer() else { return };
    let Some(m) = Mixed::start(&[1], &[2, 3]) else { return };
    let m = tokio::task::spawn_blocking(move || {
        m.wait_ready(&[1, 2, 3], 90);
        m
    })
    .await
    .unwrap();
    let cs = m.addrs().iter().map(|(_, a)| a.to_string()).collect::<Vec<_>>().join(",");
    let ours_cs = m.ours.addr(0).to_string();
    let fw = zk_recipes::Framework::builder(&ours_cs)
        .session_timeout(Duration::from_secs(20))
        .retry_policy(zk_recipes::retry::ExponentialBackoffRetry::new(Duration::from_millis(50), 5))
        .build();
    fw.start().await.unwrap();
    assert!(fw.block_until_connected(Duration::from_secs(20)).await, "connected");
    fw.create().creating_parents_if_needed().for_path("/mixed/counter", b"0").await.unwrap();
    let rounds = 40u64;
    let java =
        common::java::Peer::spawn(&cp, &["mutex", &cs, "/mixed/lock", "/mixed/counter", &rounds.to_string()]);
    let lock = zk_recipes::locks::InterProcessMutex::new(&fw, "/mixed/lock");
    let mut wrote = Vec::new();
    for _ in 0..rounds {
        within(60, "the lock", lock.acquire()).await.unwrap();
        let (data, _) = fw.get_data("/mixed/counter").await.unwrap();
        let n: u64 = std::str::from_utf8(&data).unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        fw.set_data("/mixed/counter", (n + 1).to_string().as_bytes(), None).await.unwrap();
        wrote.push(n + 1);
        lock.release().await.unwrap();
    }
    let lines = tokio::task::spawn_blocking(move || java.lines_until("DONE", 120)).await.unwrap();
    let mut values: Vec<u64> =
        lines.iter().filter_map(|l| l.strip_prefix("ACQ ")).map(|v| v.parse().unwrap()).collect();
    assert_eq!(values.len() as u64, rounds, "{lines:?}");
    values.extend(wrote);
    values.sort();
    assert_eq!(values, (1..=2 * rounds).collect::<Vec<_>>(), "every acquisition wrote the next value, once");
    // Every server holds the final count.
    for (sid, addr) in m.addrs() {
        let c = client(addr).await;
        c.sync("/").await.unwrap();
        let (data, _) = c.get_data("/mixed/counter").await.unwrap();
        assert_eq!(std::str::from_utf8(&data).unwrap(), (2 * rounds).to_string(), "server {sid}");
    }
    fw.close().await;
}
