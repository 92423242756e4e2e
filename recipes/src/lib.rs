//! Curator-style recipes over [`zk_client`]: what services import for
//! distributed locks, leader election and live caches.
//!
//! # Layout
//!
//! - [`Framework`] (`framework.rs`): a client with a namespace, a
//!   [`RetryPolicy`](retry::RetryPolicy), default ACLs, Curator's
//!   [`ConnectionState`]s, a new session after expiry, create/delete
//!   builders (parents, containers, protection mode, guaranteed delete).
//! - [`retry`] — Curator's policies with Curator's formulas, a `backoff`
//!   adapter, and the one retry loop.
//! - [`locks`] — `InterProcessMutex`, `InterProcessReadWriteLock`,
//!   `InterProcessSemaphoreV2` and its `Lease`s, `InterProcessSemaphoreMutex`,
//!   `InterProcessMultiLock`, revocation, and the `Locker` guard.
//! - [`leader`] — `LeaderLatch`, `LeaderSelector`.
//! - [`cache`] — `NodeCache`, `PathChildrenCache`, `TreeCache`,
//!   `CuratorCache`.
//! - [`shared`] — `SharedValue`, `SharedCount`.
//! - [`atomic`] — `DistributedAtomicLong`/`Integer`/`Value`,
//!   `PromotedToLock`, `CachedAtomicLong`.
//! - [`barriers`] — `DistributedBarrier`, `DistributedDoubleBarrier`.
//! - [`discovery`] — `ServiceDiscovery`, `ServiceInstance` (Curator's
//!   JSON), `ServiceCache`, `ServiceProvider` and its strategies.
//! - [`kazoo`] — kazoo's `SetPartitioner`, `Party`, `ShallowParty`,
//!   `NonBlockingLease`, `MultiNonBlockingLease` and `Lock`.
//! - [`nodes`] — `PersistentNode`, `PersistentTtlNode`, `GroupMember`,
//!   `PersistentWatcher`.
//! - [`queue`] — `DistributedQueue`, `DistributedIdQueue`,
//!   `DistributedPriorityQueue`, `DistributedDelayQueue`,
//!   `SimpleDistributedQueue`.
//!
//! Node layouts are Curator's, byte for byte: a Rust process and a Java
//! Curator process contend for the same lock and the same leadership.
//!
//! # Example
//!
//! ```no_run
//! # async fn f() -> zk_recipes::Result<()> {
//! use std::time::Duration;
//! use zk_recipes::{Framework, locks::InterProcessMutex, retry::ExponentialBackoffRetry};
//!
//! let fw = Framework::new("127.0.0.1:2181", ExponentialBackoffRetry::new(Duration::from_millis(500), 3));
//! fw.start().await?;
//! let lock = InterProcessMutex::new(&fw, "/locks/inventory");
//! lock.acquire().await?;
//! // ... the critical section ...
//! lock.release().await?;
//! fw.close().await;
//! # Ok(()) }
//! ```

pub mod atomic;
pub mod barriers;
pub mod cache;
pub mod discovery;
mod error;
mod framework;
pub mod kazoo;
pub mod leader;
pub mod locks;
pub mod nodes;
pub mod queue;
pub mod retry;
pub mod shared;
mod state;

pub use error::{Error, Result};
pub use framework::{
    AclProvider, CompressionProvider, CreateBuilder, DEFAULT_DATA, DeleteBuilder, Framework,
    FrameworkBuilder, GzipCompressionProvider, StateStream, TransactionBuilder, TransactionOp,
    TransactionResult,
};
pub use state::{ConnectionState, ConnectionStateErrorPolicy};

/// What the recipes' API needs from the client, so that `zk-recipes` is
/// the only dependency a user adds: create modes, the client's error
/// (inside [`Error::Zk`]), Stats, ACLs, watch events and the client
/// itself ([`zk_client`] is re-exported whole for the rest).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::{CreateMode, Error, ZkError};
///
/// fw.create().with_mode(CreateMode::Ephemeral).for_path("/services/me", b"").await?;
/// match fw.get_data("/maybe").await {
///     Err(Error::Zk(ZkError::NoNode)) => println!("not there"),
///     other => println!("{other:?}"),
/// }
/// # Ok(()) }
/// ```
pub use zk_client::{
    self, Acl, Client, CreateMode, Error as ZkError, EventType, Id, SessionState, Stat, WatchedEvent,
};

/// `#[async_trait]`, for implementing the recipes' listener traits (such
/// as [`leader::LeaderSelectorListener`]) without adding `async-trait`.
pub use async_trait::async_trait;
