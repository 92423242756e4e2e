//! Test support shared by every crate's tests.
//!
//! # Layout
//!
//! - [`external`]: finding outside components (Apache ZooKeeper from
//!   Debian, Docker ...). When one is missing a test prints one loud line
//!   and is skipped, unless `ZK_REQUIRE_EXTERNAL=1` (set by `.ci/run`), in
//!   which case it fails.
//! - [`apache`]: Apache ZooKeeper started as a plain Java process on a free
//!   loopback port with a temporary data dir, stopped on drop.
//! - [`ensemble`]: an n-server Apache ZooKeeper ensemble on loopback whose
//!   servers a test can stop and restart one by one.
//! - [`container`]: zk-server as a Docker container (testcontainers), the
//!   image built from this work tree once per test run.
//! - [`ours`]: our `zk-server` binary, and an ensemble of its processes
//!   that a test can SIGKILL and restart.
//! - [`proxy`]: a TCP fault-injection proxy (cut, refuse, stall, drop
//!   replies) to put between a client and a server.
//! - [`free_port`], [`free_ports`]: free loopback TCP ports.

pub mod apache;
pub mod container;
pub mod ensemble;
pub mod external;
pub mod ours;
pub mod proxy;

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// # Panics
/// When no port can be bound on loopback (the machine is broken).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct TCP ports on 127.0.0.1 that were free a moment ago (all
/// bound at once, so no two are the same).
///
/// # Panics
/// When no port can be bound on loopback (the machine is broken).
pub fn free_ports(n: usize) -> Vec<u16> {
    #[allow(clippy::expect_used)]
    let held: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port")).collect();
    #[allow(clippy::expect_used)]
    held.iter().map(|l| l.local_addr().expect("local address").port()).collect()
}
