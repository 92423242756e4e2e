//! A ZooKeeper server that Apache ZooKeeper's clients (Java, C, Curator,
//! kazoo) use unchanged: standalone, or a member of an ensemble (fast
//! leader election and ZAB as Apache's, in the same write pipeline).
//!
//! # Layout
//!
//! - [`Server`] (`server.rs`): start (recovery, log thread, driver, core,
//!   listener), stop, fail-stop ([`Server::failed`]), and the in-process
//!   [`Server::start_temp`].
//! - `net.rs`: accept loop, per-IP limit, one task per connection (frames ⇄
//!   requests, byte-bounded output, write and handshake deadlines),
//!   four-letter words.
//! - `driver.rs`: the only code with `select!`, channels and timers between
//!   the connections, the core and the log; carries out the core's outputs.
//! - `pipeline/`: the core, a deterministic state machine (inputs and the
//!   time in, outputs out) with one file per stage: `core.rs` (routing,
//!   per-session order, sessions, timers), `read.rs`, `prep.rs` (write →
//!   txn), `apply.rs` (commit, apply, reply), `reply.rs` (sizes, limits),
//!   `quorum.rs` (the ZAB role between prep and apply in an ensemble).
//! - `quorum/`: ensemble config, election, the ZAB roles (sans-io), the
//!   election loop and quorum links (`serve.rs`).
//! - [`TestingCluster`] (`testing.rs`): an ensemble in one process, for
//!   tests.
//! - `persist/`: Apache-compatible transaction log and snapshots, and the
//!   log stage's thread (`persist/log.rs`).
//! - `tree.rs`: the data tree and txn application (live and replay).
//! - `session.rs`, `watch.rs`, `acl.rs`: sessions and expiry, watches, auth.
//! - `stats.rs`, `fourlw.rs`: counters and the four-letter words.
//! - `http.rs`, `metrics.rs`: the AdminServer (`/commands/<name>` as
//!   Apache's JSON, `/ready`) and the Prometheus endpoint (`/metrics`).
//! - [`ServerConfig`] (`config.rs`): `zoo.cfg`; [`Error`] (`error.rs`).
//!
//! # Example
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = zk_server::ServerConfig::from_file(std::path::Path::new("conf/zoo.cfg"))?;
//! let server = zk_server::Server::start(cfg).await?;
//! println!("serving on {}", server.addr());
//! # Ok(()) }
//! ```

pub(crate) mod acl;
pub mod config;
mod driver;
mod error;
pub(crate) mod fourlw;
pub(crate) mod http;
mod jaas;
mod javaset;
pub(crate) mod metrics;
mod net;
pub mod persist;
pub(crate) mod pipeline;
pub mod quorum;
mod server;
pub(crate) mod session;
pub(crate) mod stats;
mod testing;
pub mod tree;
pub(crate) mod watch;

pub use config::{AdminConfig, ConfigError, ServerConfig};
pub use error::{Error, PersistError, Result, ServerError};
pub use pipeline::core::Recovered;
pub use server::{Server, recover};
pub use testing::TestingCluster;

/// The password of session `session_id`, as Apache ZooKeeper derives it
/// (`new java.util.Random(id ^ 0xB3415C00L).nextBytes(16)`) and this server
/// does too: with it a test can attach to a session and close it, expiring
/// it (Curator's `KillSession`; `zk-testing`'s `expire_session`).
///
/// ```
/// assert_eq!(zk_server::session_password(1).len(), 16);
/// ```
pub fn session_password(session_id: i64) -> bytes::Bytes {
    session::password(session_id)
}
