//! A 3-server Apache ZooKeeper ensemble: one leader, two followers; the
//! leader crashes, the other two elect a new one, the old one rejoins.

use std::time::{Duration, Instant};

use zk_test_support::apache::Mode;
use zk_test_support::ensemble::ApacheEnsemble;

/// The whole test, start-up included, must finish within this.
const TEST_LIMIT: Duration = Duration::from_secs(300);

fn modes(zk: &ApacheEnsemble) -> Vec<Option<Mode>> {
    (0..zk.len()).map(|i| zk.mode(i)).collect()
}

#[test]
fn leader_crash_reelection_and_rejoin() {
    let t0 = Instant::now();
    let Some(mut zk) = ApacheEnsemble::start(3) else { return };
    eprintln!("ensemble of 3 ready in {:?}", t0.elapsed());
    let addrs = zk.addrs();
    let expected: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    assert_eq!(zk.connect_string(), expected.join(","));
    assert!(addrs.iter().all(|a| a.ip().is_loopback()));

    let m = modes(&zk);
    assert_eq!(m.iter().filter(|m| **m == Some(Mode::Leader)).count(), 1, "{m:?}");
    assert_eq!(m.iter().filter(|m| **m == Some(Mode::Follower)).count(), 2, "{m:?}");
    let old = zk.leader().expect("a leader");

    let t = Instant::now();
    zk.stop(old);
    assert!(!zk.is_running(old));
    assert_eq!(zk.mode(old), None);
    zk.wait_ready();
    eprintln!("new leader elected in {:?} after killing server {old}", t.elapsed());
    let new = zk.leader().expect("a new leader");
    assert_ne!(new, old);
    let m = modes(&zk);
    assert_eq!(m.iter().filter(|m| **m == Some(Mode::Follower)).count(), 1, "{m:?}");

    let t = Instant::now();
    zk.restart(old);
    eprintln!("server {old} rejoined in {:?}", t.elapsed());
    assert_eq!(zk.mode(old), Some(Mode::Follower), "the old leader rejoins as a follower");
    assert_eq!(zk.leader(), Some(new), "the new leader keeps leading");

    assert!(t0.elapsed() < TEST_LIMIT, "took {:?}", t0.elapsed());
}
