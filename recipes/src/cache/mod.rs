//! Caches: local, always-converging copies of a node, its children, or a
//! subtree, with change events — Curator's [`NodeCache`],
//! [`PathChildrenCache`], [`TreeCache`] and [`CuratorCache`].
//!
//! One engine serves all four. It watches every cached node (or, for
//! `CuratorCache` on 3.6+ servers, one persistent recursive watch), re-reads
//! a node when its watch fires, and after a reconnect or a new session
//! re-reads the whole subtree and reports the differences, comparing czxid
//! as well as mzxid, so a node deleted and re-created while disconnected is
//! reported as removed and added. `Initialized` follows every full read.

mod engine;

pub use engine::{CacheEvent, ChildData};

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::framework::Framework;
use engine::{Engine, Mode};

/// Cache events as a stream.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use futures::StreamExt;
/// let cache = zk_recipes::cache::PathChildrenCache::new(&fw, "/jobs");
/// let mut events = cache.events();
/// cache.start().await?;
/// if let Some(ev) = events.next().await { println!("{ev:?}"); }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CacheEvents(mpsc::UnboundedReceiver<CacheEvent>);

impl Stream for CacheEvents {
    type Item = CacheEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<CacheEvent>> {
        self.0.poll_recv(cx)
    }
}

macro_rules! facade {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug)]
        pub struct $name {
            engine: Engine,
        }

        impl $name {
            /// Every event from now on (subscribe before `start` to see the
            /// initial ones).
            pub fn events(&self) -> CacheEvents {
                CacheEvents(self.engine.subscribe())
            }

            /// Builds the cache and keeps it current.
            ///
            /// # Errors
            /// Client errors of the first read.
            pub async fn start(&self) -> Result<()> {
                self.engine.start().await
            }

            /// Stops watching (watches are removed on the server).
            pub async fn close(&self) {
                self.engine.close().await
            }

            /// Waits until the first full read is done.
            pub async fn initialized(&self) {
                self.engine.initialized().await
            }

            /// Every cached node, sorted by path (the same call on every
            /// cache).
            pub fn current(&self) -> Vec<ChildData> {
                self.engine.all()
            }

            /// One cached node, by full path.
            pub fn get(&self, path: &str) -> Option<ChildData> {
                self.engine.get(path)
            }
        }
    };
}

facade! {
    /// Curator's `NodeCache`: one node's data and Stat.
    ///
    /// ```no_run
    /// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
    /// let cache = zk_recipes::cache::NodeCache::new(&fw, "/config/flags");
    /// cache.start().await?;
    /// if let Some(node) = cache.node() { println!("{:?}", node.data); }
    /// # Ok(()) }
    /// ```
    NodeCache
}

impl NodeCache {
    /// A cache of `path`.
    pub fn new(fw: &Framework, path: &str) -> Self {
        NodeCache { engine: Engine::new(fw, path, Mode::PerNode { max_depth: 0 }, true) }
    }

    /// The node, if it exists (Curator's `getCurrentData`).
    pub fn node(&self) -> Option<ChildData> {
        self.engine.get(self.engine.root())
    }
}

facade! {
    /// Curator's `PathChildrenCache`: the children of a node (data and
    /// Stat of each).
    ///
    /// ```no_run
    /// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
    /// use futures::StreamExt;
    /// let cache = zk_recipes::cache::PathChildrenCache::new(&fw, "/services/api");
    /// let mut events = cache.events();
    /// cache.start().await?;
    /// while let Some(ev) = events.next().await { println!("{ev:?}"); }
    /// # Ok(()) }
    /// ```
    PathChildrenCache
}

impl PathChildrenCache {
    /// A cache of the children of `path`.
    pub fn new(fw: &Framework, path: &str) -> Self {
        PathChildrenCache { engine: Engine::new(fw, path, Mode::PerNode { max_depth: 1 }, false) }
    }
}

facade! {
    /// Curator's `TreeCache`: a whole subtree, to `max_depth`.
    TreeCache
}

impl TreeCache {
    /// A cache of the subtree at `path`.
    pub fn new(fw: &Framework, path: &str) -> Self {
        TreeCache { engine: Engine::new(fw, path, Mode::PerNode { max_depth: usize::MAX }, true) }
    }

    /// A cache of the subtree at `path`, `max_depth` levels deep (0: the
    /// node alone).
    pub fn with_max_depth(fw: &Framework, path: &str, max_depth: usize) -> Self {
        TreeCache { engine: Engine::new(fw, path, Mode::PerNode { max_depth }, true) }
    }
}

facade! {
    /// Curator 5's `CuratorCache`: a subtree kept with one persistent
    /// recursive watch (ZooKeeper 3.6+), falling back to per-node watches
    /// (as [`TreeCache`]) on older servers.
    CuratorCache
}

impl CuratorCache {
    /// A cache of the subtree at `path`.
    pub fn new(fw: &Framework, path: &str) -> Self {
        CuratorCache { engine: Engine::new(fw, path, Mode::Recursive, true) }
    }
}
