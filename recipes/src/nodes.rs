//! Nodes that stay: Curator's [`PersistentNode`] (re-created when deleted
//! and after a new session), [`PersistentTtlNode`] (a TTL node kept alive
//! while its owner lives), [`GroupMember`] (an ephemeral member node plus
//! a view of the group) and [`PersistentWatcher`] (a persistent watch
//! re-added after a new session).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use zk_client::{AddWatchMode, CreateMode, Error as ZkError, EventType, WatchedEvent};

use crate::cache::PathChildrenCache;
use crate::error::{Error, Result};
use crate::framework::{DEFAULT_DATA, Framework, zk_basename};
use crate::state::ConnectionState;

struct NodeInner {
    fw: Framework,
    base_path: String,
    mode: CreateMode,
    protected: bool,
    parents: bool,
    ttl: Option<Duration>,
    data: Mutex<Vec<u8>>,
    /// The node's actual path once created (`None` before).
    actual: watch::Sender<Option<String>>,
    closed: watch::Sender<bool>,
    delete_on_close: bool,
}

impl std::fmt::Debug for NodeInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentNode")
            .field("base_path", &self.base_path)
            .field("mode", &self.mode)
            .finish()
    }
}

/// The sequence suffix of a sequential node's name: its last ten
/// characters (Curator's `extractSequentialSuffix`).
fn sequential_suffix(path: &str) -> &str {
    let name = zk_basename(path);
    name.get(name.len().saturating_sub(10)..).unwrap_or(name)
}

impl NodeInner {
    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Creates the node (or takes over an existing one at a fixed path);
    /// the actual path.
    async fn create(&self) -> Result<String> {
        let existing = self.actual.borrow().clone();
        let (path, mode) = match &existing {
            Some(p) if !self.protected => (p.clone(), self.mode),
            // Protected and sequential: keep the old sequence suffix.
            Some(p) if self.mode.is_sequential() => {
                let mode = match self.mode {
                    CreateMode::EphemeralSequential => CreateMode::Ephemeral,
                    CreateMode::PersistentSequentialWithTtl => CreateMode::PersistentWithTtl,
                    _ => CreateMode::Persistent,
                };
                (format!("{}{}", self.base_path, sequential_suffix(p)), mode)
            }
            _ => (self.base_path.clone(), self.mode),
        };
        let data = self.data.lock().map(|d| d.clone()).unwrap_or_default();
        let mut b = self.fw.create().with_mode(mode);
        if self.parents {
            b = b.creating_parent_containers_if_needed();
        }
        if self.protected {
            b = b.with_protection();
        }
        if let Some(t) = self.ttl {
            b = b.with_ttl(t);
        }
        match b.for_path(&path, &data).await {
            Ok(p) => Ok(p),
            Err(Error::Zk(ZkError::NodeExists)) => {
                // Ours now: write our data into it.
                self.fw.set_data(&path, &data, None).await?;
                Ok(path)
            }
            Err(e) => Err(e),
        }
    }

    /// Keeps the node until closed. A create is never cancelled (its
    /// request may be on the wire): `close` waits for it, then deletes
    /// what it made.
    async fn run(self: Arc<Self>) {
        let mut closed = self.closed.subscribe();
        let mut states = self.fw.connection_state_events();
        let mut need_create = true;
        loop {
            if self.is_closed() {
                return;
            }
            if need_create {
                match self.create().await {
                    Ok(p) => {
                        self.actual.send_replace(Some(p));
                        need_create = false;
                    }
                    Err(e) => {
                        tracing::debug!(path = %self.base_path, error = %e, "persistent node: create failed; waiting for a reconnect");
                        // Retry on the next connection state change, or in a while.
                        tokio::select! {
                            _ = closed.wait_for(|c| *c) => return,
                            _ = states.next() => {}
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        continue;
                    }
                }
            }
            let Some(path) = self.actual.borrow().clone() else {
                need_create = true;
                continue;
            };
            let watched = tokio::select! {
                _ = closed.wait_for(|c| *c) => return,
                w = self.fw.with_retry(|c| c.exists_watch(&path)) => w,
            };
            let w = match watched {
                Ok((None, _)) => {
                    need_create = true;
                    continue;
                }
                Ok((Some(_), w)) => Some(w),
                Err(_) => None,
            };
            let fired = async {
                match w {
                    Some(w) => w.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = closed.wait_for(|c| *c) => return,
                ev = fired => {
                    if ev.event_type == EventType::NodeDeleted {
                        need_create = true;
                    }
                }
                st = states.next() => {
                    // Curator re-creates on RECONNECTED (a new session may
                    // have lost an ephemeral node).
                    if st == Some(ConnectionState::Reconnected) {
                        need_create = true;
                    }
                }
            }
        }
    }
}

/// A node kept in existence (Curator's `PersistentNode`): created at
/// start, re-created when deleted and after a new session (an ephemeral
/// node outlives connection loss this way), deleted when closed or
/// dropped.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::CreateMode;
/// use zk_recipes::nodes::PersistentNode;
///
/// let node = PersistentNode::new(&fw, CreateMode::Ephemeral, false, "/services/api/host-1", b"10.0.0.1:8080");
/// node.start();
/// assert!(node.wait_for_initial_create(Duration::from_secs(5)).await);
/// // ... serve; the node comes back if it is deleted or the session expires ...
/// node.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PersistentNode {
    inner: Arc<NodeInner>,
    /// The keeper task, awaited by `close` so that no create of its
    /// lands after the delete.
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl PersistentNode {
    /// A node at `base_path` in `mode`; `protected` adds Curator's
    /// `_c_<uuid>-` prefix (then [`actual_path`](Self::actual_path) is the
    /// name). Parents are created as containers.
    pub fn new(fw: &Framework, mode: CreateMode, protected: bool, base_path: &str, data: &[u8]) -> Self {
        Self::build(fw, mode, protected, base_path, data, None, true)
    }

    /// A TTL node (`mode` must be a TTL mode; the server must have TTLs
    /// enabled).
    pub fn with_ttl(fw: &Framework, mode: CreateMode, base_path: &str, data: &[u8], ttl: Duration) -> Self {
        Self::build(fw, mode, false, base_path, data, Some(ttl), true)
    }

    fn build(
        fw: &Framework,
        mode: CreateMode,
        protected: bool,
        base_path: &str,
        data: &[u8],
        ttl: Option<Duration>,
        delete_on_close: bool,
    ) -> Self {
        PersistentNode {
            inner: Arc::new(NodeInner {
                fw: fw.clone(),
                base_path: base_path.to_string(),
                mode,
                protected,
                parents: true,
                ttl,
                data: Mutex::new(data.to_vec()),
                actual: watch::channel(None).0,
                closed: watch::channel(false).0,
                delete_on_close,
            }),
            task: Mutex::new(None),
        }
    }

    /// Starts creating and keeping the node (in the background).
    pub fn start(&self) {
        let inner = self.inner.clone();
        let task = tokio::spawn(inner.run());
        if let Ok(mut t) = self.task.lock() {
            if let Some(old) = t.replace(task) {
                old.abort();
            }
        }
    }

    /// Waits at most `timeout` for the first create; whether it happened.
    pub async fn wait_for_initial_create(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.actual.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await.is_ok_and(|r| r.is_ok())
    }

    /// The node's path, once created.
    pub fn actual_path(&self) -> Option<String> {
        self.inner.actual.borrow().clone()
    }

    /// The data the node is (re-)created with.
    pub fn data(&self) -> Vec<u8> {
        self.inner.data.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Changes the node's data, now and for every re-create.
    ///
    /// # Errors
    /// [`Error::NotStarted`] before the first create; client errors after
    /// retries.
    pub async fn set_data(&self, data: &[u8]) -> Result<()> {
        let path = self.actual_path().ok_or(Error::NotStarted)?;
        if let Ok(mut d) = self.inner.data.lock() {
            *d = data.to_vec();
        }
        self.inner.fw.set_data(&path, data, None).await.map(drop)
    }

    fn stop(&self) -> Option<String> {
        if self.inner.closed.send_replace(true) {
            return None;
        }
        if self.inner.delete_on_close { self.inner.actual.send_replace(None) } else { None }
    }

    /// Stops keeping the node and deletes it (guaranteed). A create in
    /// flight is waited for first (at most as long as the framework's
    /// retry policy lets it run), so that it cannot land after the delete.
    pub async fn close(&self) {
        if self.inner.closed.send_replace(true) {
            return;
        }
        // The keeper ends once a create in flight is answered (it is in
        // `actual` then, and deleted below) or at its next wait.
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.await;
        }
        if self.inner.delete_on_close {
            if let Some(p) = self.inner.actual.send_replace(None) {
                self.inner.fw.delete_guaranteed_now(p).await;
            }
        }
    }
}

impl Drop for PersistentNode {
    fn drop(&mut self) {
        if let Some(p) = self.stop() {
            self.inner.fw.guaranteed_delete(p);
        }
    }
}

/// A TTL node that lives while its owner does (Curator's
/// `PersistentTtlNode`): the node (mode `PersistentWithTtl`) and a child
/// `touch` (also TTL) written every `ttl / 2`. When the owner dies the
/// child expires, then the childless parent. Needs a server with TTLs
/// enabled (`extendedTypesEnabled`).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::nodes::PersistentTtlNode;
///
/// let node = PersistentTtlNode::new(&fw, "/workers/w-1", Duration::from_secs(10), b"");
/// node.start();
/// node.wait_for_initial_create(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PersistentTtlNode {
    node: PersistentNode,
    ttl: Duration,
    touch: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The child a [`PersistentTtlNode`] touches (Curator's
/// `DEFAULT_CHILD_NODE_NAME`).
///
/// ```
/// assert_eq!(zk_recipes::nodes::TTL_CHILD_NODE_NAME, "touch");
/// ```
pub const TTL_CHILD_NODE_NAME: &str = "touch";

impl PersistentTtlNode {
    /// A TTL node at `path`.
    pub fn new(fw: &Framework, path: &str, ttl: Duration, data: &[u8]) -> Self {
        PersistentTtlNode {
            // Curator's deleteNode is a no-op: the TTL removes it.
            node: PersistentNode::build(
                fw,
                CreateMode::PersistentWithTtl,
                false,
                path,
                data,
                Some(ttl),
                false,
            ),
            ttl,
            touch: Mutex::new(None),
        }
    }

    /// Starts keeping the node and touching its child.
    pub fn start(&self) {
        self.node.start();
        let fw = self.node.inner.fw.clone();
        let child = format!("{}/{TTL_CHILD_NODE_NAME}", self.node.inner.base_path);
        let (ttl, every) = (self.ttl, (self.ttl / 2).max(Duration::from_millis(1)));
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                match fw.set_data(&child, DEFAULT_DATA, None).await {
                    Ok(_) => {}
                    Err(Error::Zk(ZkError::NoNode)) => {
                        let r = fw
                            .create()
                            .with_mode(CreateMode::PersistentWithTtl)
                            .with_ttl(ttl)
                            .for_path(&child, DEFAULT_DATA)
                            .await;
                        if let Err(e) = r {
                            tracing::debug!(%child, error = %e, "could not create the TTL child");
                        }
                    }
                    Err(e) => tracing::debug!(%child, error = %e, "could not touch the TTL child"),
                }
            }
        });
        if let Ok(mut t) = self.touch.lock() {
            *t = Some(task);
        }
    }

    /// As [`PersistentNode::wait_for_initial_create`].
    pub async fn wait_for_initial_create(&self, timeout: Duration) -> bool {
        self.node.wait_for_initial_create(timeout).await
    }

    /// As [`PersistentNode::set_data`].
    ///
    /// # Errors
    /// As [`PersistentNode::set_data`].
    pub async fn set_data(&self, data: &[u8]) -> Result<()> {
        self.node.set_data(data).await
    }

    /// Stops touching; the nodes expire after the TTL.
    pub async fn close(&self) {
        if let Some(t) = self.touch.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
        self.node.close().await;
    }
}

impl Drop for PersistentTtlNode {
    fn drop(&mut self) {
        if let Some(t) = self.touch.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}

/// Group membership (Curator's `GroupMember`): this member is an ephemeral
/// `<path>/<id>` kept by a [`PersistentNode`]; the members are read from a
/// cache of the path's children.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::nodes::GroupMember;
///
/// let me = GroupMember::new(&fw, "/groups/workers", "worker-1", b"10.0.0.7");
/// me.start().await?;
/// for (id, payload) in me.current_members() {
///     println!("{id}: {payload:?}");
/// }
/// me.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GroupMember {
    node: PersistentNode,
    cache: PathChildrenCache,
    id: String,
}

impl GroupMember {
    /// Member `id` of the group at `path`, with `payload` as its data.
    pub fn new(fw: &Framework, path: &str, id: &str, payload: &[u8]) -> Self {
        let path = path.trim_end_matches('/');
        GroupMember {
            node: PersistentNode::new(fw, CreateMode::Ephemeral, false, &format!("{path}/{id}"), payload),
            cache: PathChildrenCache::new(fw, path),
            id: id.to_string(),
        }
    }

    /// This member's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Joins the group and starts following it.
    ///
    /// # Errors
    /// Client errors of the cache's first read.
    pub async fn start(&self) -> Result<()> {
        self.node.start();
        self.cache.start().await
    }

    /// Changes this member's payload.
    ///
    /// # Errors
    /// As [`PersistentNode::set_data`].
    pub async fn set_this_data(&self, payload: &[u8]) -> Result<()> {
        self.node.set_data(payload).await
    }

    /// The members and their payloads, as last seen (this member always
    /// included).
    pub fn current_members(&self) -> BTreeMap<String, Vec<u8>> {
        let mut m: BTreeMap<String, Vec<u8>> = self
            .cache
            .current()
            .into_iter()
            .map(|c| (zk_basename(&c.path).to_string(), c.data.to_vec()))
            .collect();
        m.insert(self.id.clone(), self.node.data());
        m
    }

    /// Leaves the group.
    pub async fn close(&self) {
        self.cache.close().await;
        self.node.close().await;
    }
}

/// The events of a [`PersistentWatcher`], as a stream.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use futures::StreamExt;
/// let w = zk_recipes::nodes::PersistentWatcher::new(&fw, "/flags", false);
/// let mut events = w.events();
/// w.start().await?;
/// let _first = events.next().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PersistentWatcherEvents(mpsc::UnboundedReceiver<WatchedEvent>);

impl Stream for PersistentWatcherEvents {
    type Item = WatchedEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        self.0.poll_recv(cx)
    }
}

/// A persistent (or persistent-recursive) watch that survives a new
/// session (Curator's `PersistentWatcher`): added at start and again after
/// each LOST/RECONNECTED; needs a 3.6+ server. Each re-add is announced by
/// [`PersistentWatcher::resets`] (changes may have been missed in between).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use futures::StreamExt;
/// use zk_recipes::nodes::PersistentWatcher;
///
/// let w = PersistentWatcher::new(&fw, "/config", true);
/// let mut events = w.events();
/// w.start().await?;
/// while let Some(ev) = events.next().await {
///     println!("{:?} {}", ev.event_type, ev.path);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PersistentWatcher {
    fw: Framework,
    path: String,
    recursive: bool,
    listeners: Arc<Mutex<Vec<mpsc::UnboundedSender<WatchedEvent>>>>,
    resets: watch::Sender<u64>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl PersistentWatcher {
    /// A watch on `path` (and, `recursive`, its whole subtree).
    pub fn new(fw: &Framework, path: &str, recursive: bool) -> Self {
        PersistentWatcher {
            fw: fw.clone(),
            path: path.to_string(),
            recursive,
            listeners: Arc::default(),
            resets: watch::channel(0).0,
            task: Mutex::new(None),
        }
    }

    /// Every watched event from now on.
    pub fn events(&self) -> PersistentWatcherEvents {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut l) = self.listeners.lock() {
            l.push(tx);
        }
        PersistentWatcherEvents(rx)
    }

    /// How many times the watch was (re-)added; changes on each reset.
    pub fn resets(&self) -> watch::Receiver<u64> {
        self.resets.subscribe()
    }

    /// Adds the watch and keeps it.
    ///
    /// # Errors
    /// Client errors of the first add ([`ZkError::Unimplemented`] before 3.6).
    pub async fn start(&self) -> Result<()> {
        let mode = if self.recursive { AddWatchMode::PersistentRecursive } else { AddWatchMode::Persistent };
        let first = self.fw.with_retry(|c| c.add_watch(&self.path, mode)).await?;
        self.resets.send_modify(|n| *n += 1);
        let (fw, path, listeners, resets) =
            (self.fw.clone(), self.path.clone(), self.listeners.clone(), self.resets.clone());
        let task = tokio::spawn(async move {
            let mut stream = Some(first);
            let mut states = fw.connection_state_events();
            loop {
                let next = async {
                    match stream.as_mut() {
                        Some(s) => s.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    ev = next => match ev {
                        Some(ev) => {
                            if let Ok(mut l) = listeners.lock() {
                                l.retain(|tx| tx.send(ev.clone()).is_ok());
                            }
                        }
                        // The client went (a new session): wait for it.
                        None => stream = None,
                    },
                    st = states.next() => {
                        let Some(st) = st else { return };
                        if st == ConnectionState::Reconnected || st == ConnectionState::Connected {
                            match fw.with_retry(|c| c.add_watch(&path, mode)).await {
                                Ok(s) => {
                                    stream = Some(s);
                                    resets.send_modify(|n| *n += 1);
                                }
                                Err(e) => tracing::warn!(%path, error = %e, "could not re-add the persistent watch"),
                            }
                        }
                    }
                }
            }
        });
        if let Ok(mut t) = self.task.lock() {
            if let Some(old) = t.replace(task) {
                old.abort();
            }
        }
        Ok(())
    }

    /// Stops watching (the watch is removed on the server).
    pub async fn close(&self) {
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
        if let Ok(c) = self.fw.client() {
            let _ = c.remove_watches(&self.path, zk_client::WatcherType::Any).await;
        }
        if let Ok(mut l) = self.listeners.lock() {
            l.clear();
        }
    }
}

impl Drop for PersistentWatcher {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}
