//! [`Framework`]: a ZooKeeper client with a namespace, a retry policy,
//! default ACLs, connection states, and a session that is replaced when it
//! expires (Curator's `CuratorFramework`).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use uuid::Uuid;
use zk_client::{Acl, Client, CreateMode, CreateOptions, Error as ZkError, Op, OpResult, SessionState, Stat};

use crate::error::{Error, Result};
use crate::retry::{ExponentialBackoffRetry, RetryPolicy, retry_loop};
use crate::state::ConnectionState;

/// The data Curator's recipes store when given none (Curator uses the
/// local IP address as text).
pub const DEFAULT_DATA: &[u8] = b"127.0.0.1";

/// Builds a [`Framework`] (Curator's `CuratorFrameworkFactory.builder()`).
#[derive(Debug, Clone)]
pub struct FrameworkBuilder {
    connect_string: String,
    namespace: Option<String>,
    session_timeout: Duration,
    connection_timeout: Duration,
    retry: Arc<dyn RetryPolicy>,
    default_acl: Vec<Acl>,
    auth: Vec<(String, Vec<u8>)>,
}

impl FrameworkBuilder {
    /// All paths live under `/namespace` (created lazily as a container).
    pub fn namespace(mut self, namespace: &str) -> Self {
        let ns = namespace.trim_matches('/');
        self.namespace = (!ns.is_empty()).then(|| format!("/{ns}"));
        self
    }

    /// Session timeout to ask for (default 60 s, Curator's).
    pub fn session_timeout(mut self, d: Duration) -> Self {
        self.session_timeout = d;
        self
    }

    /// How long [`Framework::start`] waits for the first connection
    /// (default 15 s, Curator's).
    pub fn connection_timeout(mut self, d: Duration) -> Self {
        self.connection_timeout = d;
        self
    }

    /// The retry policy of every call (default: exponential backoff, 1 s
    /// base, 3 retries).
    pub fn retry_policy(mut self, policy: impl RetryPolicy + 'static) -> Self {
        self.retry = Arc::new(policy);
        self
    }

    /// The ACL of nodes created without one (Curator's ACL provider
    /// default: open).
    pub fn default_acl(mut self, acl: Vec<Acl>) -> Self {
        self.default_acl = acl;
        self
    }

    /// Authentication sent on every session.
    pub fn authorization(mut self, scheme: &str, auth: &[u8]) -> Self {
        self.auth.push((scheme.to_string(), auth.to_vec()));
        self
    }

    /// The framework, not yet started.
    pub fn build(self) -> Framework {
        let inner = Arc::new(Inner {
            cfg: self,
            client: RwLock::new(None),
            state: watch::Sender::new(None),
            listeners: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            monitor: Mutex::new(None),
        });
        Framework { _owner: Some(Arc::new(Owner(inner.clone()))), inner }
    }
}

#[derive(Debug)]
struct Inner {
    cfg: FrameworkBuilder,
    client: RwLock<Option<Client>>,
    state: watch::Sender<Option<ConnectionState>>,
    listeners: Mutex<Vec<mpsc::UnboundedSender<ConnectionState>>>,
    closed: AtomicBool,
    monitor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    fn post(&self, s: ConnectionState) {
        info!(state = ?s, "connection state");
        self.state.send_replace(Some(s));
        if let Ok(mut l) = self.listeners.lock() {
            l.retain(|tx| tx.send(s).is_ok());
        }
    }
}

/// A handle on the ensemble for recipes: cheap to clone.
///
/// ```no_run
/// # async fn f() -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::{Framework, retry::ExponentialBackoffRetry};
///
/// let fw = Framework::builder("127.0.0.1:2181")
///     .namespace("myapp")
///     .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(1000), 3))
///     .build();
/// fw.start().await?;
/// fw.create().creating_parent_containers_if_needed().for_path("/config/a", b"x").await?;
/// fw.close().await;
/// # Ok(()) }
/// ```
///
/// Dropping the last handle without [`Framework::close`] (every clone,
/// the recipes' included) closes it in the background: the monitor stops
/// and the session is closed.
#[derive(Debug, Clone)]
pub struct Framework {
    inner: Arc<Inner>,
    /// Shared by every handle but the framework's own monitor task.
    _owner: Option<Arc<Owner>>,
}

/// Closes the framework when the last handle that holds it goes.
#[derive(Debug)]
struct Owner(Arc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        if self.0.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(h) = self.0.monitor.lock().ok().and_then(|mut m| m.take()) {
            h.abort();
        }
        let client = self.0.client.write().ok().and_then(|mut c| c.take());
        if let (Some(c), Ok(rt)) = (client, tokio::runtime::Handle::try_current()) {
            debug!("the last framework handle was dropped without close(); closing the session");
            rt.spawn(async move {
                let _ = c.close().await;
            });
        }
    }
}

/// Connection states as a stream.
#[derive(Debug)]
pub struct StateStream(mpsc::UnboundedReceiver<ConnectionState>);

impl Stream for StateStream {
    type Item = ConnectionState;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ConnectionState>> {
        self.0.poll_recv(cx)
    }
}

impl Framework {
    /// A builder for `connect_string`.
    pub fn builder(connect_string: &str) -> FrameworkBuilder {
        FrameworkBuilder {
            connect_string: connect_string.trim_end_matches('/').to_string(),
            namespace: None,
            session_timeout: Duration::from_secs(60),
            connection_timeout: Duration::from_secs(15),
            retry: Arc::new(ExponentialBackoffRetry::new(Duration::from_secs(1), 3)),
            default_acl: Acl::open_unsafe(),
            auth: Vec::new(),
        }
    }

    /// A framework with default settings over `connect_string`.
    pub fn new(connect_string: &str, retry: impl RetryPolicy + 'static) -> Framework {
        Framework::builder(connect_string).retry_policy(retry).build()
    }

    async fn new_client(&self) -> Result<Client> {
        let cfg = &self.inner.cfg;
        if let Some(ns) = &cfg.namespace {
            // The namespace root, created lazily as Curator does.
            let root = self.connect_client(&cfg.connect_string).await?;
            let r = create_parents(&root, &format!("{ns}/x"), true, &cfg.default_acl).await;
            let _ = root.close().await;
            r?;
        }
        let cs = match &cfg.namespace {
            Some(ns) => format!("{}{ns}", cfg.connect_string),
            None => cfg.connect_string.clone(),
        };
        self.connect_client(&cs).await
    }

    async fn connect_client(&self, cs: &str) -> Result<Client> {
        let cfg = &self.inner.cfg;
        let mut b = Client::builder(cs)
            .session_timeout(cfg.session_timeout)
            .connection_timeout(cfg.connection_timeout);
        for (s, a) in &cfg.auth {
            b = b.auth(s.clone(), a.clone());
        }
        Ok(b.connect().await?)
    }

    /// Connects; returns once connected (or after the connection timeout).
    ///
    /// # Errors
    /// The client's connect errors.
    pub async fn start(&self) -> Result<()> {
        let client = self.new_client().await?;
        let events = client.state_events();
        if let Ok(mut c) = self.inner.client.write() {
            *c = Some(client);
        }
        self.inner.post(ConnectionState::Connected);
        // The monitor does not keep the framework open.
        let me = Framework { inner: self.inner.clone(), _owner: None };
        let handle = tokio::spawn(async move { me.monitor(events).await });
        if let Ok(mut m) = self.inner.monitor.lock() {
            *m = Some(handle);
        }
        Ok(())
    }

    async fn monitor(self, mut events: zk_client::StateEvents) {
        let mut suspended_at: Option<tokio::time::Instant> = None;
        let mut lost = false;
        loop {
            let timeout =
                self.client().map(|c| c.session_timeout()).unwrap_or(self.inner.cfg.session_timeout);
            let deadline = suspended_at.map(|t| t + timeout);
            let next = tokio::select! {
                e = events.next() => e,
                _ = sleep_until_opt(deadline), if deadline.is_some() && !lost => {
                    // Curator 5: suspended for a whole session timeout is LOST.
                    lost = true;
                    self.inner.post(ConnectionState::Lost);
                    continue;
                }
            };
            match next {
                Some(SessionState::Disconnected) => {
                    suspended_at = Some(tokio::time::Instant::now());
                    self.inner.post(ConnectionState::Suspended);
                }
                Some(SessionState::Connected) => {
                    suspended_at = None;
                    lost = false;
                    self.inner.post(ConnectionState::Reconnected);
                }
                Some(SessionState::ConnectedReadOnly) => {
                    suspended_at = None;
                    self.inner.post(ConnectionState::ReadOnly);
                }
                // A client closed under the framework (not by
                // `Framework::close`, which stops this task first) is lost
                // like an expired one: the framework makes a new session
                // rather than look connected with a dead client.
                Some(SessionState::Expired | SessionState::AuthFailed | SessionState::Closed) => {
                    if !lost {
                        self.inner.post(ConnectionState::Lost);
                    }
                    // A new session, as Curator makes one after expiry.
                    let mut wait = Duration::from_millis(100);
                    loop {
                        if self.inner.closed.load(Ordering::SeqCst) {
                            return;
                        }
                        match self.new_client().await {
                            Ok(c) => {
                                events = c.state_events();
                                if let Ok(mut slot) = self.inner.client.write() {
                                    *slot = Some(c);
                                }
                                suspended_at = None;
                                lost = false;
                                self.inner.post(ConnectionState::Reconnected);
                                break;
                            }
                            Err(e) => {
                                debug!(error = %e, "new session failed; retrying");
                                tokio::time::sleep(wait).await;
                                wait = (wait * 2).min(Duration::from_secs(5));
                            }
                        }
                    }
                }
                Some(_) => {}
                None => return,
            }
        }
    }

    /// Closes the session and stops the framework.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        if let Some(h) = self.inner.monitor.lock().ok().and_then(|mut m| m.take()) {
            h.abort();
        }
        let client = self.inner.client.write().ok().and_then(|mut c| c.take());
        if let Some(c) = client {
            let _ = c.close().await;
        }
    }

    /// Whether [`Framework::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// The current client (a new one after a session expiry).
    ///
    /// # Errors
    /// [`Error::NotStarted`] before `start` or after `close`.
    pub fn client(&self) -> Result<Client> {
        self.inner.client.read().ok().and_then(|c| c.clone()).ok_or(Error::NotStarted)
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> Arc<dyn RetryPolicy> {
        self.inner.cfg.retry.clone()
    }

    /// The default ACL.
    pub fn default_acl(&self) -> Vec<Acl> {
        self.inner.cfg.default_acl.clone()
    }

    /// The latest connection state (`None` before `start`).
    pub fn connection_state(&self) -> Option<ConnectionState> {
        *self.inner.state.borrow()
    }

    /// A receiver of the latest connection state.
    pub fn state_receiver(&self) -> watch::Receiver<Option<ConnectionState>> {
        self.inner.state.subscribe()
    }

    /// Every connection state change from now on.
    pub fn connection_state_events(&self) -> StateStream {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut l) = self.inner.listeners.lock() {
            l.push(tx);
        }
        StateStream(rx)
    }

    /// Waits until connected, at most `timeout`; whether it is.
    pub async fn block_until_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.state_receiver();
        tokio::time::timeout(timeout, rx.wait_for(|s| s.is_some_and(ConnectionState::is_connected)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Runs `op` with the current client under the retry policy.
    ///
    /// # Errors
    /// The last error of `op`.
    pub async fn with_retry<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, ZkError>>,
    {
        let policy = self.retry_policy();
        let r = retry_loop(policy.as_ref(), |_| {
            let c = self.client();
            let fut = c.map(&mut op);
            async move {
                match fut {
                    Ok(f) => f.await,
                    Err(_) => Err(ZkError::ClientClosed),
                }
            }
        })
        .await;
        r.map_err(Error::from)
    }

    /// A create builder.
    pub fn create(&self) -> CreateBuilder {
        CreateBuilder {
            fw: self.clone(),
            mode: CreateMode::Persistent,
            acl: None,
            ttl: None,
            parents: None,
            protected: false,
        }
    }

    /// A delete builder.
    pub fn delete(&self) -> DeleteBuilder {
        DeleteBuilder { fw: self.clone(), guaranteed: false, children: false, version: None }
    }

    /// The node's data and Stat.
    ///
    /// # Errors
    /// As `Client::get_data`, after retries.
    pub async fn get_data(&self, path: &str) -> Result<(Bytes, Stat)> {
        self.with_retry(|c| c.get_data(path)).await
    }

    /// Sets data if the version matches (`None`: any).
    ///
    /// # Errors
    /// As `Client::set_data`, after retries.
    pub async fn set_data(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        self.with_retry(|c| c.set_data(path, data, version)).await
    }

    /// Compare-and-set: writes `data` only if the node is still at
    /// `expected_version`; `Ok(None)` when it was not.
    ///
    /// # Errors
    /// Other client errors, after retries.
    pub async fn compare_and_set(
        &self,
        path: &str,
        expected_version: i32,
        data: &[u8],
    ) -> Result<Option<Stat>> {
        match self.set_data(path, data, Some(expected_version)).await {
            Ok(s) => Ok(Some(s)),
            Err(Error::Zk(ZkError::BadVersion)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The node's Stat, if it exists.
    ///
    /// # Errors
    /// Connection errors, after retries.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        self.with_retry(|c| c.exists(path)).await
    }

    /// The node's children.
    ///
    /// # Errors
    /// As `Client::get_children`, after retries.
    pub async fn get_children(&self, path: &str) -> Result<Vec<String>> {
        self.with_retry(|c| c.get_children(path)).await
    }

    /// Creates `path` and its missing parents (persistent, empty).
    ///
    /// # Errors
    /// Client errors, after retries.
    pub async fn ensure_path(&self, path: &str) -> Result<()> {
        let acl = self.default_acl();
        self.with_retry(|c| {
            let acl = acl.clone();
            async move {
                create_parents(&c, &format!("{path}/x"), false, &acl).await.map_err(|e| match e {
                    Error::Zk(z) => z,
                    _ => ZkError::ClientClosed,
                })
            }
        })
        .await
    }

    /// A transaction (all or nothing).
    ///
    /// # Errors
    /// The first failing op's error, or connection errors after retries.
    pub async fn transaction(&self, ops: &[Op]) -> Result<Vec<OpResult>> {
        self.with_retry(|c| c.multi(ops)).await
    }

    /// Deletes `path` in the background until it is gone, surviving
    /// connection loss (Curator's guaranteed delete).
    pub fn guaranteed_delete(&self, path: String) {
        let fw = self.clone();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            warn!(%path, "no runtime to delete the node in");
            return;
        };
        handle.spawn(async move {
            let mut wait = Duration::from_millis(50);
            loop {
                if fw.is_closed() {
                    return;
                }
                let r = match fw.client() {
                    Ok(c) => c.delete(&path, None).await,
                    Err(_) => Err(ZkError::ClientClosed),
                };
                match r {
                    Ok(()) | Err(ZkError::NoNode) => return,
                    Err(e) if e.is_retriable() || e == ZkError::ClientClosed => {
                        debug!(%path, error = %e, "guaranteed delete will retry");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                    Err(e) => {
                        warn!(%path, error = %e, "guaranteed delete gave up");
                        return;
                    }
                }
            }
        });
    }

    /// Creates `path` protected: the name gets a `_c_<uuid>-` prefix, so
    /// that after a connection loss the node is found again instead of
    /// created twice; a node left behind by a failed create is deleted in
    /// the background.
    pub(crate) async fn create_protected(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        acl: &[Acl],
        parents: Option<bool>,
    ) -> Result<String> {
        let parent = zk_parent(path).to_string();
        let prefix = format!("_c_{}-", Uuid::new_v4());
        let full = format!("{}/{prefix}{}", if parent == "/" { "" } else { &parent }, zk_basename(path));
        let policy = self.retry_policy();
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        let mut first_session = None;
        // If this future is dropped while a create may be in flight (a
        // cancelled acquire), the node it may have made is found by its
        // prefix and deleted: the cleanup runs on the same session, after
        // the create, so it sees it.
        let mut in_doubt = InDoubt { fw: self, parent: parent.clone(), prefix: prefix.clone(), armed: true };
        loop {
            let client = self.client()?;
            if first_session.is_none() {
                first_session = Some(client.session_id());
            }
            let r = async {
                if attempt > 0 {
                    // A previous attempt may have created it.
                    match client.get_children(&parent).await {
                        Ok(kids) => {
                            if let Some(k) = kids.iter().find(|k| k.starts_with(&prefix)) {
                                let found = format!("{}/{k}", if parent == "/" { "" } else { &parent });
                                if mode.is_ephemeral() {
                                    let owner = client.exists(&found).await?.map(|s| s.ephemeral_owner);
                                    if owner == Some(client.session_id()) {
                                        return Ok(found);
                                    }
                                    // Left by an older session: delete and create anew.
                                    self.guaranteed_delete(found);
                                } else {
                                    return Ok(found);
                                }
                            }
                        }
                        Err(ZkError::NoNode) => {}
                        Err(e) => return Err(e),
                    }
                }
                let opts = CreateOptions::new(mode).with_acl(acl.to_vec());
                match client.create(&full, data, opts.clone()).await {
                    Err(ZkError::NoNode) if parents.is_some() => {
                        create_parents(&client, &full, parents == Some(true), acl).await.map_err(
                            |e| match e {
                                Error::Zk(z) => z,
                                _ => ZkError::ClientClosed,
                            },
                        )?;
                        client.create(&full, data, opts).await.map(|(p, _)| p)
                    }
                    r => r.map(|(p, _)| p),
                }
            }
            .await;
            match r {
                Ok(p) => {
                    in_doubt.armed = false;
                    return Ok(p);
                }
                Err(e) if e.is_retriable() => match policy.allow_retry(attempt, started.elapsed(), &e) {
                    Some(sleep) => {
                        tokio::time::sleep(sleep).await;
                        attempt += 1;
                    }
                    // The guard deletes what a lost create may have made.
                    None => return Err(e.into()),
                },
                Err(e) => {
                    in_doubt.armed = false;
                    return Err(e.into());
                }
            }
        }
    }

    /// Finds and deletes, in the background, a protected node whose
    /// create failed in doubt.
    pub(crate) fn delete_protected_later(&self, parent: String, prefix: String) {
        let fw = self.clone();
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        handle.spawn(async move {
            for _ in 0..100 {
                if fw.is_closed() {
                    return;
                }
                let Ok(c) = fw.client() else { return };
                match c.get_children(&parent).await {
                    Ok(kids) => {
                        for k in kids.iter().filter(|k| k.starts_with(&prefix)) {
                            fw.guaranteed_delete(format!("{}/{k}", if parent == "/" { "" } else { &parent }));
                        }
                        return;
                    }
                    Err(ZkError::NoNode) => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
    }
}

/// Deletes, on drop, the protected node a create may have made.
struct InDoubt<'a> {
    fw: &'a Framework,
    parent: String,
    prefix: String,
    armed: bool,
}

impl Drop for InDoubt<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.fw
                .delete_protected_later(std::mem::take(&mut self.parent), std::mem::take(&mut self.prefix));
        }
    }
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn zk_parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

pub(crate) fn zk_basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Creates every missing ancestor of `path` (containers or persistent).
pub(crate) async fn create_parents(client: &Client, path: &str, containers: bool, acl: &[Acl]) -> Result<()> {
    let parent = zk_parent(path);
    if parent == "/" {
        return Ok(());
    }
    let mode = if containers { CreateMode::Container } else { CreateMode::Persistent };
    let mut prefix = String::new();
    for component in parent.split('/').skip(1) {
        prefix.push('/');
        prefix.push_str(component);
        match client.create(&prefix, b"", CreateOptions::new(mode).with_acl(acl.to_vec())).await {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Builds a create (Curator's `create()...forPath`).
#[derive(Debug)]
#[must_use = "call for_path to create"]
pub struct CreateBuilder {
    fw: Framework,
    mode: CreateMode,
    acl: Option<Vec<Acl>>,
    ttl: Option<Duration>,
    parents: Option<bool>,
    protected: bool,
}

impl CreateBuilder {
    /// Creates missing parents as persistent nodes.
    pub fn creating_parents_if_needed(mut self) -> Self {
        self.parents = Some(false);
        self
    }

    /// Creates missing parents as container nodes.
    pub fn creating_parent_containers_if_needed(mut self) -> Self {
        self.parents = Some(true);
        self
    }

    /// Protection mode (`_c_<uuid>-` prefix; see the crate docs).
    pub fn with_protection(mut self) -> Self {
        self.protected = true;
        self
    }

    /// The create mode.
    pub fn with_mode(mut self, mode: CreateMode) -> Self {
        self.mode = mode;
        self
    }

    /// The ACL (default: the framework's).
    pub fn with_acl(mut self, acl: Vec<Acl>) -> Self {
        self.acl = Some(acl);
        self
    }

    /// The TTL (TTL modes).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Creates the node; returns the path created.
    ///
    /// # Errors
    /// Client errors after retries (NodeExists, NoNode without parents ...).
    pub async fn for_path(self, path: &str, data: &[u8]) -> Result<String> {
        let acl = self.acl.clone().unwrap_or_else(|| self.fw.default_acl());
        if self.protected {
            return self.fw.create_protected(path, data, self.mode, &acl, self.parents).await;
        }
        let mut opts = CreateOptions::new(self.mode).with_acl(acl.clone());
        if let Some(t) = self.ttl {
            opts = opts.with_ttl(t);
        }
        let parents = self.parents;
        self.fw
            .with_retry(|c| {
                let opts = opts.clone();
                let acl = acl.clone();
                async move {
                    match c.create(path, data, opts.clone()).await {
                        Err(ZkError::NoNode) if parents.is_some() => {
                            create_parents(&c, path, parents == Some(true), &acl).await.map_err(
                                |e| match e {
                                    Error::Zk(z) => z,
                                    _ => ZkError::ClientClosed,
                                },
                            )?;
                            c.create(path, data, opts).await.map(|(p, _)| p)
                        }
                        r => r.map(|(p, _)| p),
                    }
                }
            })
            .await
    }
}

/// Builds a delete (Curator's `delete()...forPath`).
#[derive(Debug)]
#[must_use = "call for_path to delete"]
pub struct DeleteBuilder {
    fw: Framework,
    guaranteed: bool,
    children: bool,
    version: Option<i32>,
}

impl DeleteBuilder {
    /// Keeps deleting in the background after a connection loss.
    pub fn guaranteed(mut self) -> Self {
        self.guaranteed = true;
        self
    }

    /// Deletes the children first.
    pub fn deleting_children_if_needed(mut self) -> Self {
        self.children = true;
        self
    }

    /// Only this version.
    pub fn with_version(mut self, v: i32) -> Self {
        self.version = Some(v);
        self
    }

    /// Deletes `path`.
    ///
    /// # Errors
    /// Client errors after retries; with `guaranteed`, a connection error
    /// is returned but the delete goes on in the background.
    pub async fn for_path(self, path: &str) -> Result<()> {
        let version = self.version;
        let children = self.children;
        let r = self
            .fw
            .with_retry(|c| async move {
                if children {
                    delete_children(&c, path).await?;
                }
                c.delete(path, version).await
            })
            .await;
        if let Err(Error::Zk(e)) = &r {
            if self.guaranteed && e.is_retriable() {
                self.fw.guaranteed_delete(path.to_string());
            }
        }
        r
    }
}

fn delete_children<'a>(
    c: &'a Client,
    path: &'a str,
) -> Pin<Box<dyn std::future::Future<Output = Result<(), ZkError>> + Send + 'a>> {
    Box::pin(async move {
        let kids = match c.get_children(path).await {
            Ok(k) => k,
            Err(ZkError::NoNode) => return Ok(()),
            Err(e) => return Err(e),
        };
        for k in kids {
            let child = if path == "/" { format!("/{k}") } else { format!("{path}/{k}") };
            delete_children(c, &child).await?;
            match c.delete(&child, None).await {
                Ok(()) | Err(ZkError::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(zk_parent("/a/b"), "/a");
        assert_eq!(zk_parent("/a"), "/");
        assert_eq!(zk_basename("/a/lock-"), "lock-");
    }
}
