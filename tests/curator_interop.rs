//! Rust recipes and Java Curator 5 (Debian `libcurator-recipes-java`) on
//! the same paths: an InterProcessMutex shared by a Java process and Rust
//! tasks keeps a read-modify-write counter exact, and a LeaderLatch with
//! Java and Rust participants always has a single leader and hands over
//! across languages. Run against our server and against Apache 3.8; and
//! on an ensemble of ours whose server holding Curator's connection is
//! SIGKILLed, Curator keeps its session and the counter stays exact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::{wait_until_async, within};
use zk_recipes::Framework;
use zk_recipes::leader::{CloseMode, LeaderLatch};
use zk_recipes::locks::InterProcessMutex;
use zk_recipes::retry::ExponentialBackoffRetry;
use zk_test_support::apache::ApacheZk;

const CURATOR_JARS: &[&str] = &[
    "/usr/share/java/curator-recipes.jar",
    "/usr/share/java/curator-framework.jar",
    "/usr/share/java/curator-client.jar",
    "/usr/share/java/guava.jar",
    "/usr/share/java/slf4j-api.jar",
    "/usr/share/java/slf4j-nop.jar",
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/zookeeper-jute.jar",
];

/// Compiles the Java peer once; `None` (loudly) when Curator or javac is missing.
fn java_peer() -> Option<(PathBuf, String)> {
    // Both tests may get here at once: compile under a lock.
    static COMPILE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = COMPILE.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<_> = CURATOR_JARS.iter().filter(|j| !Path::new(j).exists()).collect();
    if !missing.is_empty() {
        zk_test_support::external::missing(
            "Java Curator (Debian libcurator-recipes-java, libcurator-framework-java)",
            &format!("missing {missing:?}"),
        );
        return None;
    }
    let cp = CURATOR_JARS.join(":");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("curator-peer");
    std::fs::create_dir_all(&out).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/CuratorPeer.java");
    let status = Command::new("javac").args(["-cp", &cp, "-d"]).arg(&out).arg(&src).status();
    match status {
        Ok(s) if s.success() => Some((out.clone(), format!("{cp}:{}", out.display()))),
        other => {
            zk_test_support::external::missing("javac", &format!("{other:?}"));
            None
        }
    }
}

struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn spawn(cp: &str, args: &[&str]) -> Peer {
        let mut child = Command::new("java")
            .args(["-Xmx256m", "-cp", cp, "CuratorPeer"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("java");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Peer { child, stdin, lines }
    }

    fn expect_line(&self, want: &str, secs: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l == want => return,
                Ok(_) => {}
                Err(_) => panic!("Java peer did not print {want:?} within {secs}s"),
            }
        }
    }

    /// The rest of the first line starting with `prefix`.
    fn expect_prefix(&self, prefix: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l[prefix.len()..].to_string(),
                Ok(_) => {}
                Err(_) => panic!("Java peer did not print {prefix:?}... within {secs}s"),
            }
        }
    }

    /// Every line before `last` (which must come within `secs`).
    fn lines_until(&self, last: &str, secs: u64) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l == last => return out,
                Ok(l) => out.push(l),
                Err(_) => panic!("Java peer did not print {last:?} within {secs}s; printed {out:?}"),
            }
        }
    }

    fn say(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let (peer, session) = tokio::task::spawn_blocking(move || {
        let line = peer.expect_prefix("SESSION ", 60);
        let session: i64 = line.parse().unwrap_or_else(|_| panic!("a session id, not {line:?}"));
        (peer, session)
    })
    .await
    .unwrap();
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
    let mut e = tokio::task::spawn_blocking(|| {
        let mut e = zk_test_support::ours::OurEnsemble::start(3, "");
        e.wait_ready(60);
        e
    })
    .await
    .unwrap();
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
    let (peer, session) = tokio::task::spawn_blocking(move || {
        let line = peer.expect_prefix("SESSION ", 60);
        let session: i64 = line.parse().unwrap_or_else(|_| panic!("a session id, not {line:?}"));
        (peer, session)
    })
    .await
    .unwrap();
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
