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
//! - [`free_port`]: a free loopback TCP port.

pub mod apache;
pub mod external;

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// # Panics
/// When no port can be bound on loopback (the machine is broken).
pub fn free_port() -> u16 {
    #[allow(clippy::unwrap_used)]
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    #[allow(clippy::unwrap_used)]
    l.local_addr().unwrap().port()
}
