//! An async tokio client for Apache ZooKeeper 3.5 to 3.9 and for this
//! project's server.
//!
//! # Layout
//!
//! - [`Client`] (`client.rs`): the cloneable handle, its builder, and every
//!   operation; requests are encoded on the caller's task.
//! - `session.rs`: the one task that owns the socket: pipelining, xids,
//!   pings, reconnect and session re-attach, SetWatches replay, expiry.
//! - `watch.rs`: [`OneshotWatcher`] (a future), [`PersistentWatcher`] (a
//!   stream) and the registry the session task keeps.
//! - [`SessionState`], [`Error`], [`ConnectString`], [`Op`] / [`OpResult`].
//!
//! # Example
//!
//! ```no_run
//! # async fn f() -> zk_client::Result<()> {
//! use zk_client::{Client, Op};
//! use zk_client::CreateMode;
//!
//! let client = Client::connect("127.0.0.1:2181/app").await?;
//! client.create("/config", b"v1", CreateMode::Persistent).await?;
//! client.multi(&[
//!     Op::check("/config", Some(0)),
//!     Op::set_data("/config", &b"v2"[..], None),
//! ]).await?;
//! let (data, stat) = client.get_data("/config").await?;
//! assert_eq!((&data[..], stat.version), (&b"v2"[..], 1));
//! # Ok(()) }
//! ```

mod acl;
mod client;
mod connect_string;
mod error;
mod ops;
mod session;
mod state;
mod transport;
mod watch;

pub use acl::digest_id;
pub use client::{Client, ClientBuilder, StateEvents};
pub use connect_string::{ConnectString, DEFAULT_PORT};
pub use error::{Error, Result};
pub use ops::{CreateOptions, Op, OpResult, ReadOp, ReadResult};
pub use state::SessionState;
pub use watch::{OneshotWatcher, PersistentWatcher, WatchedEvent};

pub use zk_proto::records::{Acl, ClientInfo, Id, Stat};
pub use zk_proto::{AddWatchMode, CreateMode, EventType, KeeperState, WatcherType};
#[cfg(feature = "tls")]
pub use zk_tls;
