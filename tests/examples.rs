//! Every example runs, on the bundled server and against Apache ZooKeeper
//! 3.8, and prints what it promises — so the examples never rot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use zk_test_support::apache::ApacheZk;

/// Where cargo put the example binaries (built by `cargo test`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    dir.join("examples").join(name)
}

/// Runs an example (bounded) and returns its output.
fn run(name: &str, connect: Option<&str>) -> String {
    let mut cmd = Command::new(example(name));
    if let Some(cs) = connect {
        cmd.args(["--connect", cs]);
    }
    cmd.env_remove("ZK_CONNECT").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child =
        cmd.spawn().unwrap_or_else(|e| panic!("{name}: {e} (examples are built by `cargo test`)"));
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text =
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(status.success(), "{name} failed:\n{text}");
            return text;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{name} did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number of terms in the selector line "N terms of leadership, at
/// most 1 leader at a time" (0 when the line is missing or says otherwise).
fn terms_with_one_leader(out: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_suffix(" terms of leadership, at most 1 leader at a time"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn check_all(connect: Option<&str>) {
    let out = run("quickstart", connect);
    for want in [
        "Watch fired: NodeDataChanged",
        "A write with a stale version is refused: BADVERSION",
        "exists after the failed multi: false",
        "Session closed; done.",
    ] {
        assert!(out.contains(want), "quickstart lacks {want:?}:\n{out}");
    }
    let out = run("distributed_lock", connect);
    assert!(out.contains("final count 100 (expected 100)"), "{out}");
    assert!(out.contains("lock nodes left behind: 0"), "{out}");
    let out = run("leader_election", connect);
    assert!(out.contains("closing the leader"), "{out}");
    assert_eq!(out.matches("leader: ").count(), 2, "two leaders in turn:\n{out}");
    assert!(
        out.lines().any(|l| l.starts_with("latch: ") && l.ends_with(" polls, at most 1 leader at a time")),
        "never two latches lead at one poll:\n{out}"
    );
    assert!(terms_with_one_leader(&out) >= 6, "six terms, never two leaders at once:\n{out}");
    let out = run("caches", connect);
    assert!(out.contains("NodeCache now: Some(\"v2\")"), "{out}");
    assert!(out.contains("removed ") && out.contains("/users/ada"), "{out}");
    let out = run("service_registry", connect);
    assert_eq!(out.matches("  + ").count(), 3, "{out}");
    assert!(out.contains("member-0000000001 left"), "{out}");
    assert!(out.contains(r#"live members: ["10.0.0.1:8080", "10.0.0.3:8080"]"#), "{out}");
    let out = run("locks", connect);
    let readers: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("read-write lock: at most ").and_then(|r| r.split(' ').next()))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(readers >= 2, "readers share the read lock:\n{out}");
    assert!(out.contains("at most 1 writer at once, 0 overlaps of a writer with anyone"), "{out}");
    assert!(out.contains("semaphore of 2 leases: at most 2 holders at once"), "{out}");
    assert!(out.contains("lock and lease nodes left behind: 0"), "{out}");
    let out = run("counters", connect);
    assert!(out.contains("shared count: 100 (expected 100); the observer saw 100"), "{out}");
    assert!(out.contains("atomic long: 100 (expected 100)"), "{out}");
    let out = run("queues", connect);
    assert!(out.contains("60 jobs put; consumed 60 distinct"), "{out}");
    assert!(out.contains("items left in the queue: 0"), "{out}");
    assert!(out.contains("priority order: page the on-call > send digest > rebuild index"), "{out}");
    let out = run("discovery", connect);
    let first = out.lines().find_map(|l| l.strip_prefix("round robin: ")).unwrap_or_default().to_string();
    for id in ["orders-0", "orders-1", "orders-2"] {
        assert_eq!(first.matches(id).count(), 2, "{id} twice in six round-robin picks:\n{out}");
    }
    let after =
        out.lines().find_map(|l| l.strip_prefix("round robin after: ")).unwrap_or_default().to_string();
    assert!(!after.contains("orders-1") && after.matches("orders-").count() == 4, "{out}");
    assert!(out.contains("\"serviceType\":\"DYNAMIC\""), "Curator's JSON:\n{out}");
    let out = run("wire_dump", None);
    assert!(out.contains("watch event NodeDataChanged on /golden"), "{out}");
}

#[test]
fn examples_on_the_bundled_server() {
    check_all(None);
}

#[test]
fn examples_against_apache_zookeeper() {
    let Some(zk) = ApacheZk::start() else { return };
    check_all(Some(&zk.connect_string()));
}
