//! kazoo's recipes (Debian `python3-kazoo`) and zk-recipes' `kazoo` module
//! on the same paths, against our server and Apache ZooKeeper 3.8: a kazoo
//! `Lock` shared by a Python process and Rust tasks keeps a counter exact
//! with turns taken; `Party` and `ShallowParty` members see each other; a
//! `SetPartitioner` divides a set between a Python and a Rust member, each
//! item to exactly one; `NonBlockingLease` holders exclude each other
//! across languages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::java::{Peer, kazoo_python};
use common::recipes::framework;
use common::{wait_until_async, within};
use zk_recipes::kazoo::{KazooLock, NonBlockingLease, PartitionState, Party, SetPartitioner, ShallowParty};
use zk_test_support::apache::ApacheZk;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/kazoo_recipes.py");

fn peer(py: &str, args: &[&str]) -> Peer {
    let mut all = vec![SCRIPT];
    all.extend_from_slice(args);
    Peer::spawn_program(py, &all)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn shared_lock(cs: &str, py: &str) {
    let fw = framework(cs).await;
    fw.create().creating_parents_if_needed().for_path("/kz/counter", b"0").await.unwrap();
    let (py_rounds, rust_tasks, rust_rounds) = (30, 3, 30);
    let gate = KazooLock::new(&fw, "/kz/lock", "gate");
    gate.acquire().await.unwrap();
    let p = peer(py, &["lock", cs, "/kz/lock", "/kz/counter", &py_rounds.to_string(), "python"]);
    let p = blocking(move || {
        p.expect_line("STARTED", 60);
        p
    })
    .await;
    wait_until_async(30, "Python queues for the lock", || async {
        gate.contenders().await.unwrap().contains(&"python".to_string())
    })
    .await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for t in 0..rust_tasks {
        let (cs, log) = (cs.to_string(), log.clone());
        tasks.push(tokio::spawn(async move {
            let fw = framework(&cs).await;
            let lock = KazooLock::new(&fw, "/kz/lock", &format!("rust-{t}"));
            for _ in 0..rust_rounds / rust_tasks {
                lock.acquire().await.unwrap();
                let (d, _) = fw.get_data("/kz/counter").await.unwrap();
                let n: u64 = std::str::from_utf8(&d).unwrap().parse().unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
                fw.set_data("/kz/counter", (n + 1).to_string().as_bytes(), None).await.unwrap();
                log.lock().unwrap().push((n + 1, 'R'));
                lock.release().await.unwrap();
            }
            fw.close().await;
        }));
    }
    wait_until_async(30, "the Rust tasks queue", || async {
        gate.contenders().await.unwrap().len() == 2 + rust_tasks
    })
    .await;
    let order = gate.contenders().await.unwrap();
    assert_eq!(order[0], "gate", "kazoo's order: the holder first: {order:?}");
    gate.release().await.unwrap();
    for t in tasks {
        within(120, "rust contenders", t).await.unwrap();
    }
    let lines = blocking(move || p.lines_until("DONE", 120)).await;
    let mut merged = log.lock().unwrap().clone();
    merged.extend(
        lines.iter().filter_map(|l| l.strip_prefix("ACQ ")).map(|v| (v.parse::<u64>().unwrap(), 'P')),
    );
    merged.sort();
    let values: Vec<u64> = merged.iter().map(|m| m.0).collect();
    let order: String = merged.iter().map(|m| m.1).collect();
    assert_eq!(
        values,
        (1..=(py_rounds + rust_rounds) as u64).collect::<Vec<_>>(),
        "mutual exclusion: {order}"
    );
    assert!(order.contains("PR") && order.contains("RP"), "Python and Rust take turns: {order}");
    eprintln!("kazoo lock order: {order}");
    fw.close().await;
}

async fn parties(cs: &str, py: &str) {
    let fw = framework(cs).await;
    let mut p = peer(py, &["party", cs, "/kz/party", "python"]);
    p = blocking(move || {
        p.expect_line("JOINED", 60);
        p
    })
    .await;
    let deep = Party::new(&fw, "/kz/party/deep", "rust");
    let shallow = ShallowParty::new(&fw, "/kz/party/shallow", "rust");
    deep.join().await.unwrap();
    shallow.join().await.unwrap();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(deep.participants().await.unwrap()), ["python", "rust"]);
    assert_eq!(sorted(shallow.participants().await.unwrap()), ["python", "rust"]);
    p.say("list");
    let (mut p, a, b) = blocking(move || {
        let a = p.expect_prefix("PARTY ", 30);
        let b = p.expect_prefix("SHALLOW ", 30);
        (p, a, b)
    })
    .await;
    assert_eq!((a.as_str(), b.as_str()), ("python,rust", "python,rust"), "kazoo sees the Rust members");
    p.say("leave");
    blocking(move || p.expect_line("LEFT", 30)).await;
    assert_eq!(deep.participants().await.unwrap(), ["rust"]);
    assert_eq!(shallow.participants().await.unwrap(), ["rust"]);
    assert!(deep.leave().await.unwrap());
    drop(shallow);
    wait_until_async(10, "a dropped member leaves", || async {
        fw.get_children("/kz/party/shallow").await.unwrap().is_empty()
    })
    .await;
    fw.close().await;
}

async fn partitioner(cs: &str, py: &str) {
    let fw = framework(cs).await;
    let items: Vec<String> = (1..=6).map(|i| format!("q{i}")).collect();
    let all: BTreeSet<String> = items.iter().cloned().collect();
    let mut p = peer(py, &["partitioner", cs, "/kz/part", "python", &items.join(","), "0.5"]);
    let rust = SetPartitioner::new(&fw, "/kz/part", &items, "rust").time_boundary(Duration::from_millis(500));
    rust.start().await.unwrap();
    // Until Python's latest set and Rust's are complementary.
    let mut python: BTreeSet<String> = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if rust.state() == PartitionState::Release {
            rust.release_set().await;
        }
        let mine: BTreeSet<String> = rust.partitions().into_iter().collect();
        if rust.state() == PartitionState::Acquired
            && !python.is_empty()
            && python.is_disjoint(&mine)
            && python.union(&mine).cloned().collect::<BTreeSet<_>>() == all
        {
            eprintln!("partitioned: Python {python:?}, Rust {mine:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "Python {python:?}, Rust {:?} {mine:?}", rust.state());
        let (q, line) = blocking(move || {
            let l = p.next_line(Duration::from_millis(100));
            (p, l)
        })
        .await;
        p = q;
        if let Some(set) = line.as_deref().and_then(|l| l.strip_prefix("ACQUIRED ")) {
            python = set.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
        }
    }
    // Python leaves: Rust re-partitions to the whole set.
    p.say("finish");
    blocking(move || p.expect_line("FINISHED", 30)).await;
    within(30, "Rust takes the whole set", async {
        loop {
            match rust.state() {
                PartitionState::Release => rust.release_set().await,
                PartitionState::Acquired if rust.partitions().len() == 6 => return,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    rust.finish().await;
    assert_eq!(rust.state(), PartitionState::Failure);
    fw.close().await;
}

async fn leases(cs: &str, py: &str) {
    let fw = framework(cs).await;
    let hour = Duration::from_secs(3600);
    assert!(NonBlockingLease::obtain(&fw, "/kz/lease/a", hour, "rust").await.unwrap());
    let p = peer(py, &["lease", cs, "/kz/lease/a", "python", "3600"]);
    assert_eq!(blocking(move || p.expect_prefix("LEASE ", 60)).await, "False", "Python sees Rust's lease");
    assert!(NonBlockingLease::obtain(&fw, "/kz/lease/a", hour, "rust").await.unwrap(), "the holder renews");
    let p = peer(py, &["lease", cs, "/kz/lease/b", "python", "3600"]);
    assert_eq!(blocking(move || p.expect_prefix("LEASE ", 60)).await, "True");
    assert!(
        !NonBlockingLease::obtain(&fw, "/kz/lease/b", hour, "rust").await.unwrap(),
        "Rust sees Python's lease"
    );
    // An ended lease goes to the next holder.
    assert!(NonBlockingLease::obtain(&fw, "/kz/lease/c", Duration::ZERO, "rust").await.unwrap());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let p = peer(py, &["lease", cs, "/kz/lease/c", "python", "3600"]);
    assert_eq!(blocking(move || p.expect_prefix("LEASE ", 60)).await, "True", "an ended lease is free");
    fw.close().await;
}

async fn suite(cs: &str, py: &str) {
    within(180, "lock", shared_lock(cs, py)).await;
    within(60, "parties", parties(cs, py)).await;
    within(120, "partitioner", partitioner(cs, py)).await;
    within(120, "leases", leases(cs, py)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_and_rust_share_recipes_on_zk_server() {
    let Some(py) = kazoo_python() else { return };
    let server = zk_server::Server::start_temp().await.unwrap();
    suite(&server.connect_string(), &py).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_and_rust_share_recipes_on_apache() {
    let Some(py) = kazoo_python() else { return };
    let Some(zk) = ApacheZk::start() else { return };
    suite(&zk.connect_string(), &py).await;
}
