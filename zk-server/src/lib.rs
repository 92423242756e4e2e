//! A ZooKeeper server that Apache ZooKeeper's clients (Java, C, Curator,
//! kazoo) use unchanged: standalone today, built as an ensemble of one so
//! that replication slots into the same write pipeline.
//!
//! # Layout
//!
//! - [`Server`] (`server.rs`): start (recovery, log thread, core, listener),
//!   stop, and the in-process [`Server::start_temp`].
//! - `net.rs`: accept loop, per-IP limit, one task per connection (frames ⇄
//!   requests), four-letter words.
//! - `core.rs`: the one task that owns the tree, sessions and watches; reads
//!   answered at once, writes through prep → log (group commit) → apply.
//! - `prep.rs`: request → txn against the tree plus in-flight changes.
//! - `tree.rs`: the data tree and txn application (live and replay).
//! - `session.rs`, `watch.rs`, `acl.rs`: sessions and expiry, watches, auth.
//! - `persist/`: Apache-compatible transaction log and snapshots.
//! - [`ServerConfig`] (`config.rs`): `zoo.cfg`.
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

pub mod acl;
pub mod config;
pub mod core;
pub mod fourlw;
mod net;
pub mod persist;
pub mod prep;
mod server;
pub mod session;
pub mod tree;
pub mod watch;

pub use config::{ConfigError, ServerConfig};
pub use server::{Server, ServerError, recover};
