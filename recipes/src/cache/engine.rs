//! The cache engine shared by every cache.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{Notify, mpsc, watch};
use tracing::debug;
use zk_client::{AddWatchMode, Client, Error as ZkError, EventType, Stat, WatcherType};

use crate::error::Result;
use crate::framework::Framework;
use crate::state::ConnectionState;

/// A cached node.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// let cache = zk_recipes::cache::TreeCache::new(&fw, "/app");
/// cache.start().await?;
/// for node in cache.current() {
///     println!("{} v{} {} bytes", node.path, node.stat.version, node.data.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildData {
    /// Its path.
    pub path: String,
    /// Its Stat.
    pub stat: Stat,
    /// Its data.
    pub data: Bytes,
}

/// What changed (Curator's `TreeCacheEvent` / `PathChildrenCacheEvent`
/// types).
///
/// ```
/// use zk_recipes::cache::CacheEvent;
/// fn describe(ev: &CacheEvent) -> &'static str {
///     match ev {
///         CacheEvent::Initialized => "initialized",
///         _ => "changed",
///     }
/// }
/// assert_eq!(describe(&CacheEvent::Initialized), "initialized");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A node appeared (CHILD_ADDED / NODE_ADDED).
    Added(ChildData),
    /// A node's data or Stat changed (CHILD_UPDATED / NODE_UPDATED).
    Updated(ChildData),
    /// A node went away (CHILD_REMOVED / NODE_REMOVED).
    Removed(ChildData),
    /// A full read finished (after start and after every rebuild).
    Initialized,
    /// The connection was suspended; the cache may be stale.
    ConnectionSuspended,
    /// The connection came back; the cache is rebuilt.
    ConnectionReconnected,
    /// The session was lost; the cache is rebuilt on the new one.
    ConnectionLost,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    PerNode { max_depth: usize },
    Recursive,
}

type WatchFut = Pin<Box<dyn Future<Output = (String, EventType)> + Send>>;

#[derive(Debug)]
struct Shared {
    fw: Framework,
    root: String,
    mode: Mutex<Mode>,
    include_root: bool,
    map: RwLock<BTreeMap<String, ChildData>>,
    listeners: Mutex<Vec<mpsc::UnboundedSender<CacheEvent>>>,
    initialized: watch::Sender<bool>,
    closed: Notify,
    watched: Mutex<std::collections::BTreeSet<String>>,
}

#[derive(Debug)]
pub(crate) struct Engine {
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn depth_of(root: &str, path: &str) -> usize {
    if path == root {
        return 0;
    }
    let rest = if root == "/" { &path[1..] } else { &path[root.len() + 1..] };
    rest.split('/').count()
}

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" { format!("/{name}") } else { format!("{parent}/{name}") }
}

impl Engine {
    pub(crate) fn new(fw: &Framework, root: &str, mode: Mode, include_root: bool) -> Self {
        let root = if root.len() > 1 { root.trim_end_matches('/') } else { root };
        Engine {
            shared: Arc::new(Shared {
                fw: fw.clone(),
                root: root.to_string(),
                mode: Mutex::new(mode),
                include_root,
                map: RwLock::new(BTreeMap::new()),
                listeners: Mutex::new(Vec::new()),
                initialized: watch::Sender::new(false),
                closed: Notify::new(),
                watched: Mutex::new(Default::default()),
            }),
            task: Mutex::new(None),
        }
    }

    pub(crate) fn root(&self) -> &str {
        &self.shared.root
    }

    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<CacheEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut l) = self.shared.listeners.lock() {
            l.push(tx);
        }
        rx
    }

    pub(crate) fn get(&self, path: &str) -> Option<ChildData> {
        if !self.shared.include_root && path == self.shared.root {
            return None;
        }
        self.shared.map.read().ok()?.get(path).cloned()
    }

    pub(crate) fn all(&self) -> Vec<ChildData> {
        let root = &self.shared.root;
        self.shared
            .map
            .read()
            .map(|m| m.values().filter(|c| self.shared.include_root || c.path != *root).cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) async fn initialized(&self) {
        let mut rx = self.shared.initialized.subscribe();
        let _ = rx.wait_for(|i| *i).await;
    }

    pub(crate) async fn start(&self) -> Result<()> {
        let shared = self.shared.clone();
        let mut watches = FuturesUnordered::new();
        let persistent = shared.rebuild(&mut watches).await?;
        let handle = tokio::spawn(async move { shared.run(watches, persistent).await });
        if let Ok(mut t) = self.task.lock() {
            *t = Some(handle);
        }
        Ok(())
    }

    pub(crate) async fn close(&self) {
        self.shared.closed.notify_one();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
        // Remove our watches on the server too.
        let paths: Vec<String> =
            self.shared.watched.lock().map(|w| w.iter().cloned().collect()).unwrap_or_default();
        if let Ok(c) = self.shared.fw.client() {
            for p in paths {
                let _ = c.remove_watches(&p, WatcherType::Any).await;
            }
        }
        if let Ok(mut w) = self.shared.watched.lock() {
            w.clear();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}

impl Shared {
    fn emit(&self, ev: CacheEvent) {
        if !self.include_root {
            if let CacheEvent::Added(c) | CacheEvent::Updated(c) | CacheEvent::Removed(c) = &ev {
                if c.path == self.root {
                    return;
                }
            }
        }
        if let Ok(mut l) = self.listeners.lock() {
            l.retain(|tx| tx.send(ev.clone()).is_ok());
        }
    }

    fn mode(&self) -> Mode {
        self.mode.lock().map(|m| *m).unwrap_or(Mode::PerNode { max_depth: usize::MAX })
    }

    fn max_depth(&self) -> usize {
        match self.mode() {
            Mode::PerNode { max_depth } => max_depth,
            Mode::Recursive => usize::MAX,
        }
    }

    fn watching(&self, path: &str) {
        if let Ok(mut w) = self.watched.lock() {
            w.insert(path.to_string());
        }
    }

    fn push_watch(&self, watches: &mut FuturesUnordered<WatchFut>, path: &str, w: zk_client::OneshotWatcher) {
        self.watching(path);
        let p = path.to_string();
        watches.push(Box::pin(async move { (p, w.await.event_type) }));
    }

    /// Reads the subtree from the server into a fresh map (leaving
    /// per-node watches in PerNode mode).
    async fn read_tree(
        &self,
        client: &Client,
        watches: &mut FuturesUnordered<WatchFut>,
    ) -> Result<BTreeMap<String, ChildData>, ZkError> {
        let per_node = matches!(self.mode(), Mode::PerNode { .. });
        let max_depth = self.max_depth();
        let mut out = BTreeMap::new();
        let mut stack = vec![self.root.clone()];
        while let Some(path) = stack.pop() {
            let read = if per_node {
                if path == self.root {
                    // An exists watch on the root sees it created or deleted.
                    let (stat, w) = client.exists_watch(&path).await?;
                    self.push_watch(watches, &path, w);
                    if stat.is_none() {
                        continue;
                    }
                }
                client.get_data_watch(&path).await.map(|(d, s, w)| {
                    self.push_watch(watches, &path, w);
                    (d, s)
                })
            } else {
                client.get_data(&path).await
            };
            let (data, stat) = match read {
                Ok(x) => x,
                Err(ZkError::NoNode) => continue,
                Err(e) => return Err(e),
            };
            out.insert(path.clone(), ChildData { path: path.clone(), stat, data });
            // Per node, children are always listed (that sets the child
            // watch); with a recursive watch only when there are some.
            if depth_of(&self.root, &path) < max_depth && (per_node || stat.num_children > 0) {
                let kids = if per_node {
                    match client.get_children_watch(&path).await {
                        Ok((k, w)) => {
                            self.push_watch(watches, &path, w);
                            k
                        }
                        Err(ZkError::NoNode) => continue,
                        Err(e) => return Err(e),
                    }
                } else {
                    match client.get_children(&path).await {
                        Ok(k) => k,
                        Err(ZkError::NoNode) => continue,
                        Err(e) => return Err(e),
                    }
                };
                for k in kids {
                    stack.push(child_path(&path, &k));
                }
            }
        }
        Ok(out)
    }

    /// Full read; reports differences with what was cached; then
    /// `Initialized`.
    async fn rebuild(
        &self,
        watches: &mut FuturesUnordered<WatchFut>,
    ) -> Result<Option<zk_client::PersistentWatcher>> {
        let client = self.fw.client()?;
        let mut persistent = None;
        if matches!(self.mode(), Mode::Recursive) {
            match client.add_watch(&self.root, AddWatchMode::PersistentRecursive).await {
                Ok(stream) => {
                    self.watching(&self.root);
                    persistent = Some(stream);
                }
                Err(ZkError::Unimplemented) => {
                    debug!("server has no persistent watches; CuratorCache falls back to per-node watches");
                    if let Ok(mut m) = self.mode.lock() {
                        *m = Mode::PerNode { max_depth: usize::MAX };
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        let fresh = self.read_tree(&client, watches).await?;
        let old = self.map.read().map(|m| m.clone()).unwrap_or_default();
        for (p, c) in &old {
            if !fresh.contains_key(p) {
                self.emit(CacheEvent::Removed(c.clone()));
            }
        }
        for (p, c) in &fresh {
            match old.get(p) {
                None => self.emit(CacheEvent::Added(c.clone())),
                Some(o) if o.stat.czxid != c.stat.czxid => {
                    self.emit(CacheEvent::Removed(o.clone()));
                    self.emit(CacheEvent::Added(c.clone()));
                }
                Some(o) if o.stat.mzxid != c.stat.mzxid || o.stat != c.stat => {
                    self.emit(CacheEvent::Updated(c.clone()))
                }
                Some(_) => {}
            }
        }
        if let Ok(mut m) = self.map.write() {
            *m = fresh;
        }
        self.emit(CacheEvent::Initialized);
        self.initialized.send_replace(true);
        Ok(persistent)
    }

    fn remove_subtree(&self, path: &str) {
        let removed: Vec<ChildData> = match self.map.write() {
            Ok(mut m) => {
                let prefix = format!("{path}/");
                let keys: Vec<String> = m
                    .keys()
                    .filter(|k| *k == path || k.starts_with(&prefix) || path == "/")
                    .cloned()
                    .collect();
                keys.iter().filter_map(|k| m.remove(k)).collect()
            }
            Err(_) => Vec::new(),
        };
        for c in removed.into_iter().rev() {
            self.emit(CacheEvent::Removed(c));
        }
    }

    fn upsert(&self, c: ChildData) {
        let old = self.map.write().ok().and_then(|mut m| m.insert(c.path.clone(), c.clone()));
        match old {
            None => self.emit(CacheEvent::Added(c)),
            Some(o) if o.stat.czxid != c.stat.czxid => {
                self.emit(CacheEvent::Removed(o));
                self.emit(CacheEvent::Added(c));
            }
            Some(o) if o != c => self.emit(CacheEvent::Updated(c)),
            Some(_) => {}
        }
    }

    /// Re-reads `path` (and, per node, its children) after a watch fired.
    async fn refresh(
        &self,
        path: &str,
        event: EventType,
        watches: &mut FuturesUnordered<WatchFut>,
    ) -> Result<(), ZkError> {
        let client = self.fw.client().map_err(|_| ZkError::ClientClosed)?;
        if matches!(self.mode(), Mode::Recursive) {
            match client.get_data(path).await {
                Ok((data, stat)) => self.upsert(ChildData { path: path.to_string(), stat, data }),
                Err(ZkError::NoNode) => self.remove_subtree(path),
                Err(e) => return Err(e),
            }
            let _ = event;
            return Ok(());
        }
        let depth = depth_of(&self.root, path);
        if path == self.root {
            let (stat, w) = client.exists_watch(path).await?;
            self.push_watch(watches, path, w);
            if stat.is_none() {
                self.remove_subtree(path);
                return Ok(());
            }
        }
        let (data, stat) = match client.get_data_watch(path).await {
            Ok((d, s, w)) => {
                self.push_watch(watches, path, w);
                (d, s)
            }
            Err(ZkError::NoNode) => {
                self.remove_subtree(path);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.upsert(ChildData { path: path.to_string(), stat, data });
        if depth < self.max_depth() {
            let kids = match client.get_children_watch(path).await {
                Ok((k, w)) => {
                    self.push_watch(watches, path, w);
                    k
                }
                Err(ZkError::NoNode) => {
                    self.remove_subtree(path);
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let known: Vec<String> = self
                .map
                .read()
                .map(|m| {
                    m.keys()
                        .filter(|k| *k != path && crate::framework::zk_parent(k) == path)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            for k in &known {
                let name = k.rsplit('/').next().unwrap_or("");
                if !kids.iter().any(|c| c == name) {
                    self.remove_subtree(k);
                }
            }
            for name in kids {
                let p = child_path(path, &name);
                let is_new = self.map.read().map(|m| !m.contains_key(&p)).unwrap_or(false);
                if is_new {
                    Box::pin(self.refresh(&p, EventType::NodeCreated, watches)).await?;
                }
            }
        }
        Ok(())
    }

    async fn run(
        self: Arc<Self>,
        mut watches: FuturesUnordered<WatchFut>,
        mut persistent: Option<zk_client::PersistentWatcher>,
    ) {
        let mut states = self.fw.state_receiver();
        let mut need_rebuild = false;
        loop {
            tokio::select! {
                Some(ev) = next_persistent(&mut persistent) => {
                    match ev.event_type {
                        EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted
                            if self.refresh(&ev.path, ev.event_type, &mut watches).await.is_err() =>
                        {
                            need_rebuild = true;
                        }
                        // The session ended under the watch: rebuild on the next one.
                        EventType::None => persistent = None,
                        _ => {}
                    }
                }
                Some((path, event)) = watches.next(), if !watches.is_empty() => {
                    if event == EventType::None {
                        continue; // a session event: the state change drives the rebuild
                    }
                    if event == EventType::PersistentWatchRemoved || event == EventType::DataWatchRemoved || event == EventType::ChildWatchRemoved {
                        continue;
                    }
                    if self.refresh(&path, event, &mut watches).await.is_err() {
                        need_rebuild = true;
                    }
                }
                changed = states.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let s = *states.borrow_and_update();
                    match s {
                        Some(ConnectionState::Suspended) => self.emit(CacheEvent::ConnectionSuspended),
                        Some(ConnectionState::Lost) => {
                            self.emit(CacheEvent::ConnectionLost);
                            need_rebuild = true;
                        }
                        Some(ConnectionState::Reconnected) => {
                            self.emit(CacheEvent::ConnectionReconnected);
                            need_rebuild = true;
                        }
                        _ => {}
                    }
                }
                _ = self.closed.notified() => return,
            }
            if need_rebuild && self.fw.connection_state().is_some_and(ConnectionState::is_connected) {
                // The old watches stay: live ones still fire (the client
                // re-registers them after a reconnect), dead ones end with a
                // session event that is ignored; a duplicate only costs a
                // re-read.
                match self.rebuild(&mut watches).await {
                    Ok(p) => {
                        if p.is_some() {
                            persistent = p;
                        }
                        need_rebuild = false;
                    }
                    Err(e) => {
                        debug!(error = %e, "cache rebuild failed; will retry");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }
}

async fn next_persistent(p: &mut Option<zk_client::PersistentWatcher>) -> Option<zk_client::WatchedEvent> {
    match p {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}
