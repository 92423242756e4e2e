//! Rust recipes and Java Curator 5 (Debian `libcurator-recipes-java`) on
//! the same paths: an InterProcessMutex shared by a Java process and Rust
//! tasks keeps a read-modify-write counter exact, and a LeaderLatch with
//! Java and Rust participants always has a single leader and hands over
//! across languages. Run against our server and against Apache 3.8; and
//! on an ensemble of ours whose server holding Curator's connection is
//! SIGKILLed, Curator keeps its session and the counter stays exact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::java::{Peer, java_peer};
use common::{wait_until_async, within};
use zk_recipes::Framework;
use zk_recipes::leader::{CloseMode, LeaderLatch};
use zk_recipes::locks::InterProcessMutex;
use zk_recipes::retry::ExponentialBackoffRetry;
use zk_test_support::apache::ApacheZk;

async fn framework(cs: &str) -> Framework {
    let fw = Framework::builder(cs)
        .session_timeout(Duration::from_secs(10))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(50), 5))
        .build();
    fw.start().await.unwrap();
    fw
}

/// Who wrote a counter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Java,
    Rust,
}

async fn shared_mutex(cs: &str, cp: &str) {
    let fw = framework(cs).await;
    fw.create().creating_parents_if_needed().for_path("/interop/counter", b"0").await.unwrap();
    let java_rounds = 40;
    let rust_tasks = 4;
    let rust_rounds = 40;
    // A gate: Rust holds the lock while both sides line up behind it, so
    // neither can finish its rounds before the other contends.
    let gate = InterProcessMutex::new(&fw, "/interop/lock");
    gate.acquire().await.unwrap();
    let peer = Peer::spawn(cp, &["mutex", cs, "/interop/lock", "/interop/counter", &java_rounds.to_string()]);
    let (peer, session) = peer.session().await;
    // Java is contending once a lock node of its session is queued.
    let setup = &fw;
    let java_queued = move || async move {
        for kid in setup.get_children("/interop/lock").await.unwrap() {
            let stat = setup.client().unwrap().exists(&format!("/interop/lock/{kid}")).await.unwrap();
            if stat.is_some_and(|s| s.ephemeral_owner == session) {
                return true;
            }
        }
        false
    };
    wait_until_async(60, "the Java peer queues for the lock", java_queued).await;
    // Each acquisition logs the counter value it wrote: mutual exclusion
    // makes those 1..=80, each once, and their order is the lock's order.
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..rust_tasks {
        let cs = cs.to_string();
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let fw = framework(&cs).await;
            let lock = InterProcessMutex::new(&fw, "/interop/lock");
            for _ in 0..rust_rounds / rust_tasks {
                lock.acquire().await.unwrap();
                let (data, _) = fw.get_data("/interop/counter").await.unwrap();
                let n: u64 = std::str::from_utf8(&data).unwrap().parse().unwrap();
                // Hold the lock a moment: an overlapping holder would lose an update.
                tokio::time::sleep(Duration::from_millis(2)).await;
                fw.set_data("/interop/counter", (n + 1).to_string().as_bytes(), None).await.unwrap();
                log.lock().unwrap().push((n + 1, Side::Rust));
                lock.release().await.unwrap();
            }
            fw.close().await;
        }));
    }
    // The gate, Java and every Rust task queued: only then open the gate.
    wait_until_async(60, "the Rust tasks queue for the lock", move || async move {
        setup.get_children("/interop/lock").await.unwrap().len() == 2 + rust_tasks
    })
    .await;
    gate.release().await.unwrap();
    for t in tasks {
        within(120, "rust contenders", t).await.unwrap();
    }
    let java_lines = tokio::task::spawn_blocking(move || peer.lines_until("DONE", 120)).await.unwrap();
    let mut merged = log.lock().unwrap().clone();
    for line in &java_lines {
        if let Some(v) = line.strip_prefix("ACQ ") {
            merged.push((v.parse().unwrap_or_else(|_| panic!("a counter value, not {line:?}")), Side::Java));
        }
    }
    merged.sort_by_key(|&(v, _)| v);
    let order: String = merged.iter().map(|&(_, s)| if s == Side::Java { 'J' } else { 'R' }).collect();
    let values: Vec<u64> = merged.iter().map(|&(v, _)| v).collect();
    let want: Vec<u64> = (1..=(java_rounds + rust_rounds) as u64).collect();
    assert_eq!(values, want, "every acquisition wrote the next value, none twice: {order}");
    assert_eq!(order.matches('J').count(), java_rounds, "{order}");
    assert_eq!(order.matches('R').count(), rust_rounds, "{order}");
    // They contended: the lock went from Java to Rust and from Rust to Java.
    assert!(order.contains("JR") && order.contains("RJ"), "Java and Rust take turns: {order}");
    eprintln!("lock order by counter value: {order}");
    let (data, _) = fw.get_data("/interop/counter").await.unwrap();
    assert_eq!(
        std::str::from_utf8(&data).unwrap(),
        (java_rounds + rust_rounds).to_string(),
        "mutual exclusion across Java and Rust"
    );
    assert!(fw.get_children("/interop/lock").await.unwrap().is_empty());
    fw.close().await;
}

async fn shared_latch(cs: &str, cp: &str) {
    let fw = framework(cs).await;
    // Java joins first and leads; Rust queues behind it.
    let java = Peer::spawn(cp, &["latch", cs, "/interop/latch", "java-1"]);
    let java = tokio::task::spawn_blocking(move || {
        java.expect_line("STARTED java-1", 60);
        java.expect_line("LEADER java-1", 60);
        java
    })
    .await
    .unwrap();
    let rust = LeaderLatch::new(&fw, "/interop/latch", "rust-1");
    // Watched from before it starts: any turn to leader shows as a change.
    let mut leadership = rust.leadership();
    rust.start().await.unwrap();
    within(20, "both queued", async {
        while rust.participants().await.unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let ps = rust.participants().await.unwrap();
    assert_eq!(ps[0].id, "java-1", "Rust sees the Java participant lead");
    assert!(ps[0].is_leader && !ps[1].is_leader);
    // A single leader: Rust, queued behind Java, never claims leadership.
    // That is something NOT happening, so it takes a window: 200 ms is many
    // times the two requests Rust's latch makes once its node exists (read
    // the queue, watch its predecessor). Leadership notifies only when it
    // changes, and it started false: any turn to leader since the start,
    // however brief, ends the wait for `changed` at once.
    assert!(!rust.has_leadership(), "a single leader");
    let flipped = tokio::time::timeout(Duration::from_millis(200), leadership.changed()).await;
    assert!(flipped.is_err(), "a single leader: Rust's latch turned leader while Java leads");
    // Java leaves: leadership moves to Rust.
    let mut java = java;
    java.say("close");
    assert!(rust.await_leadership(Some(Duration::from_secs(20))).await, "Rust takes over from Java");
    let java_after = tokio::task::spawn_blocking(move || {
        java.expect_line("CLOSED java-1", 30);
        java
    })
    .await
    .unwrap();
    drop(java_after);
    // And back: a new Java participant queues behind Rust, takes over when Rust leaves.
    let java2 = Peer::spawn(cp, &["latch", cs, "/interop/latch", "java-2"]);
    let java2 = tokio::task::spawn_blocking(move || {
        java2.expect_line("STARTED java-2", 60);
        java2
    })
    .await
    .unwrap();
    within(20, "java queued", async {
        while rust.participants().await.unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(rust.has_leadership());
    rust.close(CloseMode::NotifyLeader).await;
    tokio::task::spawn_blocking(move || java2.expect_line("LEADER java-2", 30)).await.unwrap();
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_and_rust_share_locks_and_leadership_on_zk_server() {
    let Some((_dir, cp)) = java_peer() else { return };
    let server = zk_server::Server::start_temp().await.unwrap();
    within(200, "mutex", shared_mutex(&server.connect_string(), &cp)).await;
    within(200, "latch", shared_latch(&server.connect_string(), &cp)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_and_rust_share_locks_and_leadership_on_apache() {
    let Some((_dir, cp)) = java_peer() else { return };
    let Some(zk) = ApacheZk::start() else { return };
    within(200, "mutex", shared_mutex(&zk.connect_string(), &cp)).await;
    within(200, "latch", shared_latch(&zk.connect_string(), &cp)).await;
}

/// Curator (on Apache's Java client) and a Rust task share a lock and a
/// read-modify-write counter on an ensemble of our servers; the server the
/// Java client is connected to is SIGKILLed halfway. Curator moves to
/// another server with its session (SUSPENDED, then RECONNECTED, never
/// LOST), every round of both sides completes, and the counter is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_keeps_its_session_and_lock_when_its_server_dies() {
    let Some((_dir, cp)) = java_peer() else { return };
    let mut e = common::serving_ensemble_of_3().await;
    let cs = e.connect_string();
    let fw = Framework::builder(&cs)
        .session_timeout(Duration::from_secs(15))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 10))
        .build();
    fw.start().await.unwrap();
    fw.create().creating_parents_if_needed().for_path("/failover/counter", b"0").await.unwrap();
    let (java_rounds, rust_rounds) = (100u64, 60u64);
    let peer =
        Peer::spawn(&cp, &["failover", &cs, "/failover/lock", "/failover/counter", &java_rounds.to_string()]);
    let (peer, session) = peer.session().await;
    let rust = {
        let fw = fw.clone();
        tokio::spawn(async move {
            let lock = InterProcessMutex::new(&fw, "/failover/lock");
            let mut wrote = Vec::new();
            for _ in 0..rust_rounds {
                lock.acquire().await.unwrap();
                let (data, _) = fw.get_data("/failover/counter").await.unwrap();
                let n: u64 = std::str::from_utf8(&data).unwrap().parse().unwrap();
                fw.set_data("/failover/counter", (n + 1).to_string().as_bytes(), None).await.unwrap();
                wrote.push(n + 1);
                lock.release().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            wrote
        })
    };
    // A fifth of the way: SIGKILL the server holding Java's connection.
    let (peer, mut lines) = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        while lines.iter().filter(|l: &&String| l.starts_with("ACQ ")).count() < 20 {
            lines.push(peer.expect_prefix("", 60));
        }
        (peer, lines)
    })
    .await
    .unwrap();
    let sid = format!("sid={session:#x}");
    let mut victim = None;
    for i in 0..3 {
        let cons = zk_test_support::container::four_letter_word(e.addr(i), "cons").await.unwrap_or_default();
        if cons.contains(&sid) {
            victim = Some(i);
        }
    }
    let victim = victim.unwrap_or_else(|| panic!("no server lists Java's session {sid}"));
    let was_leader = e.leader() == Some(victim);
    e.kill(victim);
    eprintln!("killed server {victim} (leader: {was_leader}), Java's");
    lines.extend(tokio::task::spawn_blocking(move || peer.lines_until("DONE", 120)).await.unwrap());
    let wrote_rust = within(120, "the Rust rounds", rust).await.unwrap();

    let states: Vec<&String> = lines.iter().filter(|l| l.starts_with("STATE ")).collect();
    assert!(!lines.iter().any(|l| l == "STATE LOST"), "Curator lost its session: {states:?}");
    assert!(lines.iter().any(|l| l == "STATE RECONNECTED"), "Curator never moved: {states:?}");
    assert!(lines.contains(&format!("SESSION-END {session}")), "Java ended on another session: {lines:?}");
    let mut values: Vec<u64> =
        lines.iter().filter_map(|l| l.strip_prefix("ACQ ")).map(|v| v.parse().unwrap()).collect();
    assert_eq!(values.len() as u64, java_rounds);
    values.extend(wrote_rust);
    values.sort();
    let want: Vec<u64> = (1..=java_rounds + rust_rounds).collect();
    assert_eq!(values, want, "every acquisition wrote the next value, none twice");
    let (data, _) = fw.get_data("/failover/counter").await.unwrap();
    assert_eq!(std::str::from_utf8(&data).unwrap(), (java_rounds + rust_rounds).to_string());
    assert!(fw.get_children("/failover/lock").await.unwrap().is_empty(), "lock nodes left");
    fw.close().await;
}
