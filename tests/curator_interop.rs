//! Rust recipes and Java Curator 5 (Debian `libcurator-recipes-java`) on
//! the same paths: a mutex, the write side of a read-write lock, a
//! semaphore mutex and a multi-lock each shared by a Java process and Rust
//! tasks keep a read-modify-write counter exact with the two sides taking
//! turns; a semaphore's leases never exceed its count with Java and Rust
//! inside together; shared counts and atomic longs lose no increment;
//! barriers hold both sides back; a LeaderLatch with
//! Java and Rust participants always has a single leader and hands over
//! across languages. Run against our server and against Apache 3.8; and
//! on an ensemble of ours whose server holding Curator's connection is
//! SIGKILLed, Curator keeps its session and the counter stays exact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::java::{Peer, java_peer};
use common::{wait_until, wait_until_async, within};
use zk_recipes::atomic::DistributedAtomicLong;
use zk_recipes::barriers::{DistributedBarrier, DistributedDoubleBarrier};
use zk_recipes::discovery::{ProviderStrategy, ServiceDiscovery, ServiceInstance, ServiceType};
use zk_recipes::leader::{CloseMode, LeaderLatch};
use zk_recipes::locks::{
    InterProcessLock, InterProcessMultiLock, InterProcessMutex, InterProcessReadWriteLock,
    InterProcessSemaphoreMutex, InterProcessSemaphoreV2,
};
use zk_recipes::nodes::GroupMember;
use zk_recipes::queue::{QueueBuilder, QueueConsumer, SimpleDistributedQueue, StringSerializer};
use zk_recipes::retry::{ExponentialBackoffRetry, RetryNTimes};
use zk_recipes::shared::SharedCount;
use zk_recipes::{CreateMode, Framework};
use zk_test_support::apache::ApacheZk;

async fn framework(cs: &str) -> Framework {
    let fw = Framework::builder(cs)
        .session_timeout(Duration::from_secs(10))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(50), 5))
        .build();
    fw.start().await.unwrap();
    assert!(fw.block_until_connected(Duration::from_secs(20)).await, "connected");
    fw
}

/// Who wrote a counter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Java,
    Rust,
}

/// Makes a Rust lock of one kind on a framework.
type MakeLock = fn(&Framework) -> Box<dyn InterProcessLock>;

/// Nodes under `dirs` (absent dirs count none), and whether one of them
/// is owned by `session`.
async fn queue(fw: &Framework, dirs: &[String], session: i64) -> (usize, bool) {
    let (mut n, mut owned) = (0, false);
    for d in dirs {
        for kid in fw.get_children(d).await.unwrap_or_default() {
            n += 1;
            let stat = fw.client().unwrap().exists(&format!("{d}/{kid}")).await.unwrap();
            owned |= stat.is_some_and(|s| s.ephemeral_owner == session);
        }
    }
    (n, owned)
}

/// A Java Curator peer and Rust tasks take turns on one lock of a kind
/// (`mutex`, `rwwrite`, `semmutex`, `multi`), each holder adding one to a
/// counter with no version check: only mutual exclusion keeps it exact.
/// `java_path` is what Curator's constructor takes; `dirs` are where the
/// contenders' nodes queue, `queued` how many nodes there are when the
/// gate holds the lock and Java and every Rust task wait.
async fn shared_lock(
    cs: &str,
    cp: &str,
    kind: &str,
    java_path: &str,
    dirs: &[&str],
    queued: usize,
    make: MakeLock,
) {
    let fw = framework(cs).await;
    let counter = format!("/interop/{kind}-counter");
    let dirs: Vec<String> = dirs.iter().map(|d| d.to_string()).collect();
    fw.create().creating_parents_if_needed().for_path(&counter, b"0").await.unwrap();
    let java_rounds = 40;
    let rust_tasks = 4;
    let rust_rounds = 40;
    // A gate: Rust holds the lock while both sides line up behind it, so
    // neither can finish its rounds before the other contends.
    let gate = make(&fw);
    gate.acquire().await.unwrap();
    let peer = Peer::spawn(cp, &["lock", kind, cs, java_path, &counter, &java_rounds.to_string()]);
    let (peer, session) = peer.session().await;
    // Java is contending once a node of its session is queued.
    let (setup, dirs_ref) = (&fw, &dirs);
    wait_until_async(60, "the Java peer queues for the lock", move || async move {
        queue(setup, dirs_ref, session).await.1
    })
    .await;
    // Each acquisition logs the counter value it wrote: mutual exclusion
    // makes those 1..=80, each once, and their order is the lock's order.
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..rust_tasks {
        let cs = cs.to_string();
        let log = log.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let fw = framework(&cs).await;
            let lock = make(&fw);
            for _ in 0..rust_rounds / rust_tasks {
                lock.acquire().await.unwrap();
                let (data, _) = fw.get_data(&counter).await.unwrap();
                let n: u64 = std::str::from_utf8(&data).unwrap().parse().unwrap();
                // Hold the lock a moment: an overlapping holder would lose an update.
                tokio::time::sleep(Duration::from_millis(2)).await;
                fw.set_data(&counter, (n + 1).to_string().as_bytes(), None).await.unwrap();
                log.lock().unwrap().push((n + 1, Side::Rust));
                lock.release().await.unwrap();
            }
            drop(lock);
            fw.close().await;
        }));
    }
    // The gate, Java and every Rust task queued: only then open the gate.
    wait_until_async(60, "the Rust tasks queue for the lock", move || async move {
        queue(setup, dirs_ref, session).await.0 == queued + rust_tasks
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
    assert_eq!(values, want, "{kind}: every acquisition wrote the next value, none twice: {order}");
    assert_eq!(order.matches('J').count(), java_rounds, "{order}");
    assert_eq!(order.matches('R').count(), rust_rounds, "{order}");
    // They contended: the lock went from Java to Rust and from Rust to Java.
    assert!(order.contains("JR") && order.contains("RJ"), "{kind}: Java and Rust take turns: {order}");
    eprintln!("{kind} order by counter value: {order}");
    let (data, _) = fw.get_data(&counter).await.unwrap();
    assert_eq!(std::str::from_utf8(&data).unwrap(), (java_rounds + rust_rounds).to_string());
    drop(gate);
    wait_until_async(20, "no lock node left", move || async move { queue(setup, dirs_ref, 0).await.0 == 0 })
        .await;
    fw.close().await;
}

async fn shared_locks(cs: &str, cp: &str) {
    // The gate holds 1 node, Java queues 1.
    shared_lock(cs, cp, "mutex", "/interop/lock", &["/interop/lock"], 2, |fw| {
        Box::new(InterProcessMutex::new(fw, "/interop/lock"))
    })
    .await;
    shared_lock(cs, cp, "rwwrite", "/interop/rw", &["/interop/rw"], 2, |fw| {
        Box::new(RwWrite(InterProcessReadWriteLock::new(fw, "/interop/rw")))
    })
    .await;
    // The gate's lease; Java's lease node and its hold on the `locks`
    // mutex; the Rust tasks queue on that mutex.
    shared_lock(cs, cp, "semmutex", "/interop/sm", &["/interop/sm/leases", "/interop/sm/locks"], 3, |fw| {
        Box::new(InterProcessSemaphoreMutex::new(fw, "/interop/sm"))
    })
    .await;
    // The gate holds both; Java and the Rust tasks queue on the first.
    shared_lock(cs, cp, "multi", "/interop/m1,/interop/m2", &["/interop/m1", "/interop/m2"], 3, |fw| {
        Box::new(InterProcessMultiLock::new(fw, &["/interop/m1", "/interop/m2"]))
    })
    .await;
}

/// The write side of a read-write lock as an `InterProcessLock`.
#[derive(Debug)]
struct RwWrite(InterProcessReadWriteLock);

#[zk_recipes::async_trait]
impl InterProcessLock for RwWrite {
    async fn acquire(&self) -> zk_recipes::Result<()> {
        self.0.write_lock().acquire().await
    }
    async fn try_acquire(&self, t: Duration) -> zk_recipes::Result<bool> {
        self.0.write_lock().try_acquire(t).await
    }
    async fn release(&self) -> zk_recipes::Result<()> {
        self.0.write_lock().release().await
    }
    fn is_acquired_in_this_process(&self) -> bool {
        self.0.write_lock().is_acquired()
    }
    fn release_in_background(&self) {
        self.0.write_lock().release_in_background();
    }
}

/// A semaphore of 2 leases shared by a Java peer and Rust tasks: while
/// holding a lease each side registers itself under `inside` and lists
/// it: never more than 2, and Java and Rust were inside together.
async fn shared_semaphore(cs: &str, cp: &str) {
    let fw = framework(cs).await;
    let (path, inside) = ("/interop/sem", "/interop/sem-inside");
    fw.ensure_path(inside).await.unwrap();
    let rounds = 30;
    let peer = Peer::spawn(cp, &["semaphore", cs, path, "2", inside, &rounds.to_string()]);
    let (peer, _) = peer.session().await;
    // Java's first holding waits (holding its lease) until a Rust holder
    // is inside too; the Rust tasks start once it is inside, so neither
    // side can finish before the other has begun.
    wait_until_async(60, "Java holds a lease", || async {
        fw.get_children(inside).await.unwrap().iter().any(|n| n.starts_with("java"))
    })
    .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for t in 0..3 {
        let (cs, seen) = (cs.to_string(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let fw = framework(&cs).await;
            let sem = InterProcessSemaphoreV2::new(&fw, path, 2);
            for i in 0..rounds / 3 {
                let lease = sem.acquire().await.unwrap();
                let me = fw
                    .create()
                    .with_mode(CreateMode::Ephemeral)
                    .for_path(&format!("{inside}/rust-{t}-{i}"), b"")
                    .await
                    .unwrap();
                let kids = fw.get_children(inside).await.unwrap();
                seen.lock().unwrap().push(kids);
                tokio::time::sleep(Duration::from_millis(10)).await;
                fw.delete().for_path(&me).await.unwrap();
                lease.close().await.unwrap();
            }
            fw.close().await;
        }));
    }
    for t in tasks {
        within(120, "rust lease holders", t).await.unwrap();
    }
    let lines = tokio::task::spawn_blocking(move || peer.lines_until("DONE", 120)).await.unwrap();
    let mut all = seen.lock().unwrap().clone();
    let java: Vec<Vec<String>> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("SEEN "))
        .map(|s| s.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(java.len(), rounds, "Java took every lease");
    all.extend(java);
    let most = all.iter().map(Vec::len).max().unwrap();
    assert!(most <= 2, "at most 2 inside at once: {all:?}");
    let together = all
        .iter()
        .filter(|s| s.iter().any(|n| n.starts_with("java")) && s.iter().any(|n| n.starts_with("rust")))
        .count();
    assert!(together > 0, "Java and Rust held leases at the same time");
    eprintln!("semaphore: {} holdings seen, {together} with Java and Rust inside together", all.len());
    wait_until_async(20, "no lease left", || async {
        fw.get_children("/interop/sem/leases").await.unwrap().is_empty()
    })
    .await;
    fw.close().await;
}

/// A SharedCount and a DistributedAtomicLong incremented from Java and
/// Rust at once: every successful write is a distinct next value, and both
/// sides' writes interleave.
async fn shared_counters(cs: &str, cp: &str) {
    for (mode, path) in [("sharedcount", "/interop/count"), ("atomiclong", "/interop/long")] {
        let fw = framework(cs).await;
        let rounds = 50;
        let peer = Peer::spawn(cp, &[mode, cs, path, &rounds.to_string()]);
        let peer = tokio::task::spawn_blocking(move || {
            peer.expect_line("STARTED", 60);
            peer
        })
        .await
        .unwrap();
        let mut mine = Vec::new();
        // Java makes its first 5 increments and waits; Rust makes its
        // first, then lets Java go on, and both sides go, pausing 2 ms
        // between increments: the order starts J…JR, and Java's next write
        // follows an R, whatever the pace of either side.
        let pause = || tokio::time::sleep(Duration::from_millis(2));
        let java_paused = |mut peer: Peer| async move {
            peer.say("go");
            tokio::task::spawn_blocking(move || {
                let lines = peer.lines_until("PAUSED", 60);
                (peer, lines)
            })
            .await
            .unwrap()
        };
        let (peer, early) = if mode == "sharedcount" {
            let count = SharedCount::new(&fw, path, 0);
            count.start().await.unwrap();
            let (mut peer, early) = java_paused(peer).await;
            for i in 0..rounds {
                if i == 1 {
                    peer.say("go");
                }
                pause().await;
                loop {
                    let v = count.versioned_value();
                    if count.try_set_count(&v, v.value + 1).await.unwrap() {
                        mine.push((v.value + 1) as i64);
                        break;
                    }
                }
            }
            (peer, early)
        } else {
            let n = DistributedAtomicLong::new(&fw, path, RetryNTimes::new(1000, Duration::from_millis(1)));
            let (mut peer, early) = java_paused(peer).await;
            for i in 0..rounds {
                if i == 1 {
                    peer.say("go");
                }
                pause().await;
                let r = n.increment().await.unwrap();
                assert!(r.succeeded);
                mine.push(r.post_value);
            }
            (peer, early)
        };
        let mut lines = early;
        lines.extend(tokio::task::spawn_blocking(move || peer.lines_until("DONE", 120)).await.unwrap());
        let prefix = if mode == "sharedcount" { "SET " } else { "INC " };
        let java: Vec<i64> =
            lines.iter().filter_map(|l| l.strip_prefix(prefix)).map(|v| v.parse().unwrap()).collect();
        assert_eq!(java.len(), rounds, "{mode}: every Java increment succeeded: {lines:?}");
        let mut merged: Vec<(i64, char)> =
            java.iter().map(|&v| (v, 'J')).chain(mine.iter().map(|&v| (v, 'R'))).collect();
        merged.sort();
        let values: Vec<i64> = merged.iter().map(|&(v, _)| v).collect();
        assert_eq!(
            values,
            (1..=2 * rounds as i64).collect::<Vec<_>>(),
            "{mode}: no increment lost or doubled"
        );
        let order: String = merged.iter().map(|&(_, s)| s).collect();
        assert!(order.contains("JR") && order.contains("RJ"), "{mode}: Java and Rust interleave: {order}");
        eprintln!("{mode} order: {order}");
        fw.close().await;
    }
}

/// Sends consumed items to a channel.
/// (After a pause, to let a slower consumer take a share.)
/// (With a gate: each item waits until the gate is open, holding its
/// lock meanwhile, so that another consumer gets the others.)
struct ToChannel(
    tokio::sync::mpsc::UnboundedSender<String>,
    Duration,
    Option<tokio::sync::watch::Receiver<bool>>,
);

#[zk_recipes::async_trait]
impl QueueConsumer<String> for ToChannel {
    async fn consume_message(&self, item: String) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let Some(gate) = &self.2 {
            let mut gate = gate.clone();
            let _ = gate.wait_for(|open| *open).await;
        }
        tokio::time::sleep(self.1).await;
        let _ = self.0.send(item);
        Ok(())
    }
}

async fn take(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, n: usize, what: &str) -> Vec<String> {
    within(30, what, async {
        let mut v = Vec::new();
        while v.len() < n {
            v.push(rx.recv().await.unwrap());
        }
        v
    })
    .await
}

/// Every queue kind both ways: Java produces and Rust consumes, in the
/// order the kind promises; Rust produces and Java consumes likewise; and
/// a Java and a Rust consumer share one lock-safe queue, each item
/// consumed once, by both sides.
async fn shared_queues(cs: &str, cp: &str) {
    let fw = framework(cs).await;
    let mut java = Peer::spawn(cp, &["queues", cs]);
    java = tokio::task::spawn_blocking(move || {
        java.expect_line("PRODUCED", 60);
        java
    })
    .await
    .unwrap();
    let js: Vec<String> = (0..10).map(|i| format!("j{i}")).collect();
    let rev: Vec<String> = js.iter().rev().cloned().collect();
    let (odd, even): (Vec<String>, Vec<String>) =
        js.iter().cloned().partition(|j| j[1..].parse::<u32>().unwrap() % 2 == 1);
    // Java -> Rust.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let c = || Some(Arc::new(ToChannel(tx.clone(), Duration::ZERO, None)) as Arc<dyn QueueConsumer<String>>);
    let q = QueueBuilder::new(&fw, c(), StringSerializer, "/iq/plain-j2r").build_queue();
    q.start().await.unwrap();
    assert_eq!(take(&mut rx, 10, "plain j2r").await, js, "FIFO from Java");
    q.close().await;
    let q = QueueBuilder::new(&fw, c(), StringSerializer, "/iq/priority-j2r").build_priority_queue(0);
    q.start().await.unwrap();
    assert_eq!(take(&mut rx, 10, "priority j2r").await, rev, "Java's priorities");
    q.close().await;
    let q = QueueBuilder::new(&fw, None, StringSerializer, "/iq/id-j2r").build_id_queue();
    q.start().await.unwrap();
    assert_eq!(q.ids().await.unwrap(), (0..10).map(|i| format!("id-{i}")).collect::<Vec<_>>(), "Java's ids");
    assert_eq!(q.remove("id-3").await.unwrap(), 1, "a Java item removed by id");
    let q = QueueBuilder::new(&fw, c(), StringSerializer, "/iq/id-j2r").build_id_queue();
    q.start().await.unwrap();
    let mut want: Vec<String> = js.clone();
    want.retain(|j| j != "j3");
    assert_eq!(take(&mut rx, 9, "id j2r").await, want);
    q.close().await;
    let q = QueueBuilder::new(&fw, c(), StringSerializer, "/iq/delay-j2r").build_delay_queue();
    q.start().await.unwrap();
    let got = take(&mut rx, 10, "delay j2r").await;
    assert_eq!(
        got[..5].iter().collect::<std::collections::BTreeSet<_>>(),
        odd.iter().collect(),
        "undelayed first: {got:?}"
    );
    assert_eq!(got[5..].iter().collect::<std::collections::BTreeSet<_>>(), even.iter().collect(), "{got:?}");
    q.close().await;
    let sq = SimpleDistributedQueue::new(&fw, "/iq/simple-j2r");
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(String::from_utf8(sq.poll(Duration::from_secs(10)).await.unwrap().unwrap()).unwrap());
    }
    assert_eq!(got, js, "simple queue from Java");

    // Rust -> Java: everything queued before Java starts consuming.
    let rs: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let plain = QueueBuilder::new(&fw, None, StringSerializer, "/iq/plain-r2j").build_queue();
    let id = QueueBuilder::new(&fw, None, StringSerializer, "/iq/id-r2j").build_id_queue();
    let prio = QueueBuilder::new(&fw, None, StringSerializer, "/iq/priority-r2j").build_priority_queue(0);
    let delay = QueueBuilder::new(&fw, None, StringSerializer, "/iq/delay-r2j").build_delay_queue();
    plain.start().await.unwrap();
    id.start().await.unwrap();
    prio.start().await.unwrap();
    delay.start().await.unwrap();
    let sq = SimpleDistributedQueue::new(&fw, "/iq/simple-r2j");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    for (i, r) in rs.iter().enumerate() {
        plain.put(r).await.unwrap();
        id.put(r, &format!("id-{i}")).await.unwrap();
        prio.put(r, 9 - i as i32).await.unwrap();
        delay.put(r, if i % 2 == 0 { now + 500 } else { now }).await.unwrap();
        sq.offer(r.as_bytes()).await.unwrap();
    }
    java.say("consume");
    let (tx_mixed, mut mixed_rx) = tokio::sync::mpsc::unbounded_channel();
    // Rust's consumer holds its first mixed item (locked) until Java has
    // consumed one: both sides consume, whatever the JVM's pace.
    let (java_took_one, gate) = tokio::sync::watch::channel(false);
    let mixed_consumer = QueueBuilder::new(
        &fw,
        Some(Arc::new(ToChannel(tx_mixed, Duration::from_millis(20), Some(gate)))),
        StringSerializer,
        "/iq/mixed",
    )
    .lock_path("/iq/mixed-locks")
    .build_queue();
    mixed_consumer.start().await.unwrap();
    // Java's consumers may print before CONSUMING.
    let (java, early) = tokio::task::spawn_blocking(move || {
        let early = java.lines_until("CONSUMING", 60);
        (java, early)
    })
    .await
    .unwrap();
    let producer = QueueBuilder::new(&fw, None, StringSerializer, "/iq/mixed").build_queue();
    producer.start().await.unwrap();
    for i in 0..40 {
        producer.put(&format!("m{i}")).await.unwrap();
    }
    // Java's GOT lines until every r2j item and every mixed item is in.
    let mut rust_mixed = Vec::new();
    let mut java = java;
    let mut got: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in early {
        if let Some((kind, item)) = line.strip_prefix("GOT ").and_then(|l| l.split_once(' ')) {
            got.entry(kind.to_string()).or_default().push(item.to_string());
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        while let Ok(m) = mixed_rx.try_recv() {
            rust_mixed.push(m);
        }
        let count = |k: &str| got.get(k).map_or(0, Vec::len);
        let r2j: usize = ["plain", "id", "priority", "delay", "simple"].iter().map(|k| count(k)).sum();
        if count("mixed") > 0 {
            java_took_one.send_replace(true);
        }
        if r2j == 50 && count("mixed") + rust_mixed.len() == 40 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "Java consumed {got:?}; Rust consumed {rust_mixed:?}");
        let (j, line) = tokio::task::spawn_blocking(move || {
            let l = java.next_line(Duration::from_millis(100));
            (java, l)
        })
        .await
        .unwrap();
        java = j;
        if let Some((kind, item)) =
            line.as_deref().and_then(|l| l.strip_prefix("GOT ")).and_then(|l| l.split_once(' '))
        {
            got.entry(kind.to_string()).or_default().push(item.to_string());
        }
    }
    assert_eq!(got["plain"], rs, "Java consumes Rust's FIFO in order");
    assert_eq!(got["id"], rs);
    assert_eq!(got["priority"], rs.iter().rev().cloned().collect::<Vec<_>>(), "Rust's priorities");
    assert_eq!(got["simple"], rs);
    let d = &got["delay"];
    assert!(
        d[..5].iter().all(|r| r[1..].parse::<u32>().unwrap() % 2 == 1),
        "Rust's undelayed items first: {d:?}"
    );
    let java_mixed = got.get("mixed").cloned().unwrap_or_default();
    let mut all: Vec<String> = java_mixed.iter().chain(rust_mixed.iter()).cloned().collect();
    all.sort();
    let mut want: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(all, want, "each mixed item consumed once");
    assert!(
        !java_mixed.is_empty() && !rust_mixed.is_empty(),
        "both consumed: Java {java_mixed:?}, Rust {rust_mixed:?}"
    );
    eprintln!("mixed queue: Java consumed {}, Rust {}", java_mixed.len(), rust_mixed.len());
    java.say("close");
    tokio::task::spawn_blocking(move || java.expect_line("CLOSED", 30)).await.unwrap();
    mixed_consumer.close().await;
    fw.close().await;
}

/// Service discovery across languages: Java's registered instance is
/// found by Rust (with its String payload) and Rust's instances by Java's
/// `queryForInstances` and a round-robin `ServiceProvider`.
async fn shared_discovery(cs: &str, cp: &str) {
    let fw = framework(cs).await;
    let mut java = Peer::spawn(cp, &["discovery", cs, "/interop/services"]);
    java = tokio::task::spawn_blocking(move || {
        java.expect_line("REGISTERED", 60);
        java
    })
    .await
    .unwrap();
    let d = ServiceDiscovery::new(&fw, "/interop/services");
    d.start().await.unwrap();
    let found = d.query_for_instances("java-svc").await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let j = &found[0];
    assert_eq!((j.id.as_str(), j.address.as_deref(), j.port), ("java-1", Some("10.9.8.7"), Some(7000)));
    assert_eq!(j.string_payload(), Some("from-java"), "{:?}", j.payload);
    assert_eq!(j.service_type, ServiceType::Dynamic);
    // Byte for byte: what Rust writes for Java's instance is what Curator wrote.
    let (raw, _) = fw.get_data("/interop/services/java-svc/java-1").await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&j.to_json()),
        String::from_utf8_lossy(&raw),
        "Curator's JSON, byte for byte"
    );
    for (id, port) in [("rust-1", 8001), ("rust-2", 8002)] {
        let i = ServiceInstance::builder("rust-svc")
            .id(id)
            .address("127.0.0.1")
            .port(port)
            .string_payload(&format!("payload-{id}"))
            .uri_spec("{scheme}://{address}:{port}")
            .build();
        d.register_service(&i).await.unwrap();
    }
    java.say("query rust-svc");
    let (java, lines) = tokio::task::spawn_blocking(move || {
        let l = java.lines_until("END", 30);
        (java, l)
    })
    .await
    .unwrap();
    let mut lines = lines;
    lines.sort();
    assert_eq!(
        lines,
        ["INSTANCE rust-1 127.0.0.1 8001 payload-rust-1", "INSTANCE rust-2 127.0.0.1 8002 payload-rust-2"],
        "Java reads Rust's instances"
    );
    let mut java = java;
    java.say("provider rust-svc");
    let (mut java, picks) = tokio::task::spawn_blocking(move || {
        let l = java.lines_until("END", 30);
        (java, l)
    })
    .await
    .unwrap();
    let r1 = picks.iter().filter(|p| *p == "PICK rust-1").count();
    let r2 = picks.iter().filter(|p| *p == "PICK rust-2").count();
    assert_eq!((r1, r2), (3, 3), "Java's round robin over Rust's instances: {picks:?}");
    // A Rust provider over Java's and Rust's services.
    let provider = d.service_provider("rust-svc", ProviderStrategy::RoundRobin);
    provider.start().await.unwrap();
    let ids: Vec<String> = (0..4).map(|_| provider.get_instance().unwrap().id).collect();
    assert_eq!(ids.iter().filter(|i| *i == "rust-1").count(), 2, "{ids:?}");
    provider.close().await;
    java.say("close");
    tokio::task::spawn_blocking(move || java.expect_line("CLOSED", 30)).await.unwrap();
    wait_until_async(10, "Java's instance unregistered", || async {
        d.query_for_instances("java-svc").await.unwrap().is_empty()
    })
    .await;
    d.close().await;
    assert!(fw.get_children("/interop/services/rust-svc").await.unwrap().is_empty(), "unregistered on close");
    fw.close().await;
}

/// GroupMember across languages: a Java member and a Rust member each
/// see the other with its payload; when Java leaves, Rust sees it go.
async fn shared_group(cs: &str, cp: &str) {
    let fw = framework(cs).await;
    let mut java = Peer::spawn(cp, &["groupmember", cs, "/interop/group", "java"]);
    java = tokio::task::spawn_blocking(move || {
        java.expect_line("JOINED", 60);
        java
    })
    .await
    .unwrap();
    let rust = GroupMember::new(&fw, "/interop/group", "rust", b"payload-rust");
    rust.start().await.unwrap();
    wait_until(20, "Rust sees the Java member", || rust.current_members().contains_key("java")).await;
    assert_eq!(rust.current_members()["java"], b"payload-java");
    // Java's cache sees the Rust member (it may need a moment).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        java.say("list");
        let (j, line) = tokio::task::spawn_blocking(move || {
            let l = java.expect_prefix("MEMBERS ", 30);
            (java, l)
        })
        .await
        .unwrap();
        java = j;
        if line == "java=payload-java,rust=payload-rust" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "Java sees {line}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    java.say("close");
    tokio::task::spawn_blocking(move || java.expect_line("CLOSED", 30)).await.unwrap();
    wait_until(20, "Rust sees Java leave", || !rust.current_members().contains_key("java")).await;
    rust.close().await;
    fw.close().await;
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
}

/// Barriers across languages: a Java waiter passes only once Rust removed
/// the barrier; a double barrier of one Java and two Rust members lets
/// nobody in before the last arrived and nobody out before the last left.
async fn shared_barriers(cs: &str, cp: &str) {
    let fw = framework(cs).await;
    let barrier = DistributedBarrier::new(&fw, "/interop/barrier");
    barrier.set_barrier().await.unwrap();
    let peer = Peer::spawn(cp, &["barrier", cs, "/interop/barrier"]);
    let peer = tokio::task::spawn_blocking(move || {
        peer.expect_line("WAITING", 60);
        peer
    })
    .await
    .unwrap();
    let removed_at = now_ms();
    barrier.remove_barrier().await.unwrap();
    let passed: u128 = tokio::task::spawn_blocking(move || peer.expect_prefix("PASSED ", 30))
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(passed >= removed_at, "Java passed the barrier before Rust removed it");

    let java = Peer::spawn(cp, &["doublebarrier", cs, "/interop/double", "3"]);
    let java = tokio::task::spawn_blocking(move || {
        java.expect_line("JOINING", 60);
        java
    })
    .await
    .unwrap();
    wait_until_async(30, "Java's member node", || async {
        fw.get_children("/interop/double").await.map(|k| k.len() == 1).unwrap_or(false)
    })
    .await;
    let first = DistributedDoubleBarrier::new(&fw, "/interop/double", 3).unwrap();
    let fw2 = framework(cs).await;
    let second = DistributedDoubleBarrier::new(&fw2, "/interop/double", 3).unwrap();
    let entering = tokio::spawn(async move { first.enter().await.map(|()| first) });
    wait_until_async(30, "two members in", || async {
        fw.get_children("/interop/double").await.map(|k| k.len() == 2).unwrap_or(false)
    })
    .await;
    let last_arrived = now_ms();
    second.enter().await.unwrap();
    let first = within(30, "the first Rust member enters", entering).await.unwrap().unwrap();
    let (java, entered) = tokio::task::spawn_blocking(move || {
        let t: u128 = java.expect_prefix("ENTERED ", 30).parse().unwrap();
        (java, t)
    })
    .await
    .unwrap();
    assert!(entered >= last_arrived, "Java entered before the last member arrived");
    // Java leaves at once; it must wait for both Rust members.
    let last_left = now_ms();
    let (a, b) =
        within(30, "Rust members leave", async { tokio::join!(first.leave(), second.leave()) }).await;
    a.unwrap();
    b.unwrap();
    let left: u128 =
        tokio::task::spawn_blocking(move || java.expect_prefix("LEFT ", 30)).await.unwrap().parse().unwrap();
    assert!(left >= last_left, "Java left before the Rust members did");
    fw2.close().await;
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
    rust.close_with_mode(CloseMode::NotifyLeader).await;
    tokio::task::spawn_blocking(move || java2.expect_line("LEADER java-2", 30)).await.unwrap();
    fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_and_rust_share_locks_and_leadership_on_zk_server() {
    let Some((_dir, cp)) = java_peer() else { return };
    let server = zk_server::Server::start_temp().await.unwrap();
    within(400, "locks", shared_locks(&server.connect_string(), &cp)).await;
    within(120, "semaphore", shared_semaphore(&server.connect_string(), &cp)).await;
    within(120, "counters", shared_counters(&server.connect_string(), &cp)).await;
    within(120, "barriers", shared_barriers(&server.connect_string(), &cp)).await;
    within(120, "queues", shared_queues(&server.connect_string(), &cp)).await;
    within(120, "discovery", shared_discovery(&server.connect_string(), &cp)).await;
    within(120, "group member", shared_group(&server.connect_string(), &cp)).await;
    within(200, "latch", shared_latch(&server.connect_string(), &cp)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_and_rust_share_locks_and_leadership_on_apache() {
    let Some((_dir, cp)) = java_peer() else { return };
    let Some(zk) = ApacheZk::start() else { return };
    within(400, "locks", shared_locks(&zk.connect_string(), &cp)).await;
    within(120, "semaphore", shared_semaphore(&zk.connect_string(), &cp)).await;
    within(120, "counters", shared_counters(&zk.connect_string(), &cp)).await;
    within(120, "barriers", shared_barriers(&zk.connect_string(), &cp)).await;
    within(120, "queues", shared_queues(&zk.connect_string(), &cp)).await;
    within(120, "discovery", shared_discovery(&zk.connect_string(), &cp)).await;
    within(120, "group member", shared_group(&zk.connect_string(), &cp)).await;
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
    assert!(fw.block_until_connected(Duration::from_secs(20)).await, "connected");
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
