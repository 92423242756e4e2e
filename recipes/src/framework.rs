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
use crate::retry::{ExponentialBackoffRetry, RetryPolicy};
use crate::state::{ConnectionState, ConnectionStateErrorPolicy};

/// The data Curator's recipes store when given none (Curator uses the
/// local IP address as text).
///
/// ```
/// assert_eq!(zk_recipes::DEFAULT_DATA, b"127.0.0.1");
/// ```
pub const DEFAULT_DATA: &[u8] = b"127.0.0.1";

/// Builds a [`Framework`] (Curator's `CuratorFrameworkFactory.builder()`).
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::{ConnectionStateErrorPolicy, Framework};
/// let fw = Framework::builder("zk1:2181,zk2:2181")
///     .namespace("billing")
///     .session_timeout(Duration::from_secs(30))
///     .connection_state_error_policy(ConnectionStateErrorPolicy::SessionBased)
///     .can_be_read_only(true)
///     .build();
/// # drop(fw);
/// ```
#[derive(Debug, Clone)]
pub struct FrameworkBuilder {
    connect_string: String,
    namespace: Option<String>,
    session_timeout: Duration,
    connection_timeout: Duration,
    retry: Arc<dyn RetryPolicy>,
    acl_provider: Arc<dyn AclProvider>,
    auth: Vec<(String, Vec<u8>)>,
    error_policy: ConnectionStateErrorPolicy,
    can_be_read_only: bool,
    compression: Arc<dyn CompressionProvider>,
    ensemble_tracker: bool,
    #[cfg(feature = "tls")]
    tls: Option<zk_client::zk_tls::TlsSettings>,
}

/// The ACL of each node the framework creates without an explicit one
/// (Curator's `ACLProvider`). Paths are as the framework sees them
/// (inside its namespace).
///
/// ```
/// use zk_recipes::{Acl, AclProvider};
///
/// #[derive(Debug)]
/// struct SecretsReadOnly;
/// impl AclProvider for SecretsReadOnly {
///     fn default_acl(&self) -> Vec<Acl> {
///         Acl::open_unsafe()
///     }
///     fn acl_for_path(&self, path: &str) -> Vec<Acl> {
///         if path.starts_with("/secrets") { Acl::read_unsafe() } else { self.default_acl() }
///     }
/// }
/// ```
pub trait AclProvider: Send + Sync + std::fmt::Debug {
    /// The ACL where no path rule applies.
    fn default_acl(&self) -> Vec<Acl>;
    /// The ACL for a node at `path`.
    fn acl_for_path(&self, path: &str) -> Vec<Acl> {
        let _ = path;
        self.default_acl()
    }
}

/// One ACL for every path.
#[derive(Debug, Clone)]
struct FixedAcl(Vec<Acl>);

impl AclProvider for FixedAcl {
    fn default_acl(&self) -> Vec<Acl> {
        self.0.clone()
    }
}

/// Compresses node data for `create().compressed()` and
/// [`Framework::get_data_decompressed`] (Curator's
/// `CompressionProvider`; [`GzipCompressionProvider`] by default, as
/// Curator).
///
/// ```
/// use zk_recipes::{CompressionProvider, Result};
///
/// /// Stores data as is (for a team that compresses elsewhere).
/// #[derive(Debug)]
/// struct Identity;
/// impl CompressionProvider for Identity {
///     fn compress(&self, _path: &str, data: &[u8]) -> Vec<u8> { data.to_vec() }
///     fn decompress(&self, _path: &str, data: &[u8]) -> Result<Vec<u8>> { Ok(data.to_vec()) }
/// }
/// let fw = zk_recipes::Framework::builder("127.0.0.1:2181").compression_provider(Identity).build();
/// # drop(fw);
/// ```
pub trait CompressionProvider: Send + Sync + std::fmt::Debug {
    /// The compressed form of `data` for `path`.
    fn compress(&self, path: &str, data: &[u8]) -> Vec<u8>;
    /// `data` decompressed.
    ///
    /// # Errors
    /// [`Error::CorruptData`] when it is not compressed data.
    fn decompress(&self, path: &str, data: &[u8]) -> Result<Vec<u8>>;
}

/// Gzip, as Curator's `GzipCompressionProvider` (Java's
/// `GZIPOutputStream` format): Java and Rust read each other's data.
///
/// ```
/// use zk_recipes::{CompressionProvider, GzipCompressionProvider};
/// let g = GzipCompressionProvider;
/// let z = g.compress("/a", b"hello hello hello");
/// assert_eq!(&z[..2], &[0x1f, 0x8b]);
/// assert_eq!(g.decompress("/a", &z).unwrap(), b"hello hello hello");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GzipCompressionProvider;

impl CompressionProvider for GzipCompressionProvider {
    fn compress(&self, _path: &str, data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing to a Vec cannot fail.
        let _ = e.write_all(data);
        e.finish().unwrap_or_default()
    }

    fn decompress(&self, path: &str, data: &[u8]) -> Result<Vec<u8>> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .map_err(|e| Error::CorruptData(format!("{path}: not gzip data: {e}")))?;
        Ok(out)
    }
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
        self.acl_provider = Arc::new(FixedAcl(acl));
        self
    }

    /// A per-path ACL provider (replaces [`FrameworkBuilder::default_acl`]).
    pub fn acl_provider(mut self, provider: impl AclProvider + 'static) -> Self {
        self.acl_provider = Arc::new(provider);
        self
    }

    /// Which connection states end leadership and locks (default:
    /// [`ConnectionStateErrorPolicy::Standard`]).
    pub fn connection_state_error_policy(mut self, policy: ConnectionStateErrorPolicy) -> Self {
        self.error_policy = policy;
        self
    }

    /// Accept read-only servers (state READ_ONLY) when no quorum is
    /// reachable (Curator's `canBeReadOnly`).
    pub fn can_be_read_only(mut self, allowed: bool) -> Self {
        self.can_be_read_only = allowed;
        self
    }

    /// The compression of `compressed()` creates and decompressed reads.
    pub fn compression_provider(mut self, provider: impl CompressionProvider + 'static) -> Self {
        self.compression = Arc::new(provider);
        self
    }

    /// Follow the ensemble's configuration (`/zookeeper/config`) and use
    /// its servers for new sessions (Curator's `ensembleTracker`, on by
    /// default).
    pub fn ensemble_tracker(mut self, on: bool) -> Self {
        self.ensemble_tracker = on;
        self
    }

    /// Connects with TLS (the `tls` feature): see
    /// [`zk_client::ClientBuilder::tls`]. The ensemble tracker is turned off
    /// with it: `/zookeeper/config` names the servers' plain client ports.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, settings: zk_client::zk_tls::TlsSettings) -> Self {
        self.tls = Some(settings);
        self.ensemble_tracker = false;
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
            tracked: RwLock::new(self.connect_string.clone()),
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
    /// The connect string for new sessions (the ensemble tracker's).
    tracked: RwLock<String>,
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
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) {
/// use futures::StreamExt;
/// let mut states = fw.connection_state_events();
/// while let Some(s) = states.next().await {
///     println!("{s:?}");
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct StateStream(mpsc::UnboundedReceiver<ConnectionState>);

impl Stream for StateStream {
    type Item = ConnectionState;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ConnectionState>> {
        self.0.poll_recv(cx)
    }
}

/// Follows every connection state change from its creation on, however
/// short-lived (a SUSPENDED followed at once by RECONNECTED is seen, as
/// Curator's listeners see it; a `watch` receiver keeps only the latest).
#[derive(Debug)]
pub(crate) struct StateFollower {
    rx: mpsc::UnboundedReceiver<ConnectionState>,
    fw: Framework,
}

impl StateFollower {
    /// The next change that satisfies `pred`, waiting for it; `None` when
    /// no more can come.
    pub(crate) async fn next_matching(
        &mut self,
        pred: impl Fn(ConnectionState) -> bool,
    ) -> Option<ConnectionState> {
        while let Some(s) = self.rx.recv().await {
            if pred(s) {
                return Some(s);
            }
        }
        None
    }

    /// A change since the last look that satisfies `pred`, else the
    /// current state when it does, else the next such change.
    pub(crate) async fn wait_for(
        &mut self,
        pred: impl Fn(ConnectionState) -> bool,
    ) -> Option<ConnectionState> {
        while let Ok(s) = self.rx.try_recv() {
            if pred(s) {
                return Some(s);
            }
        }
        if let Some(s) = self.fw.connection_state().filter(|s| pred(*s)) {
            return Some(s);
        }
        self.next_matching(pred).await
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
            acl_provider: Arc::new(FixedAcl(Acl::open_unsafe())),
            auth: Vec::new(),
            error_policy: ConnectionStateErrorPolicy::Standard,
            can_be_read_only: false,
            compression: Arc::new(GzipCompressionProvider),
            ensemble_tracker: true,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// A framework with default settings over `connect_string`.
    pub fn new(connect_string: &str, retry: impl RetryPolicy + 'static) -> Framework {
        Framework::builder(connect_string).retry_policy(retry).build()
    }

    async fn new_client(&self) -> Result<Client> {
        let cfg = &self.inner.cfg;
        let base = self.current_connect_string();
        if let Some(ns) = &cfg.namespace {
            // The namespace root, created lazily as Curator does.
            let root = self.connect_client(&base).await?;
            let r = create_parents(&root, &format!("{ns}/x"), true, &|_: &str| self.default_acl()).await;
            let _ = root.close().await;
            r?;
        }
        let cs = match &cfg.namespace {
            Some(ns) => format!("{base}{ns}"),
            None => base,
        };
        self.connect_client(&cs).await
    }

    /// The servers new sessions use: the configured connect string, or
    /// the ensemble tracker's latest view of `/zookeeper/config`.
    pub fn current_connect_string(&self) -> String {
        self.inner.tracked.read().map(|s| s.clone()).unwrap_or_else(|_| self.inner.cfg.connect_string.clone())
    }

    /// Reads `/zookeeper/config` and keeps its client addresses for new
    /// sessions (3.5+ servers; nothing changes when it has none).
    async fn track_ensemble(&self) {
        let Ok(c) = self.client() else { return };
        let Ok((data, _)) = c.get_config().await else { return };
        if let Some(cs) = connect_string_from_config(&String::from_utf8_lossy(&data)) {
            if let Ok(mut t) = self.inner.tracked.write() {
                if *t != cs {
                    info!(connect_string = %cs, "ensemble tracker: servers from /zookeeper/config");
                    *t = cs;
                }
            }
        }
    }

    /// Whether `state` ends leadership and locks under this framework's
    /// [`ConnectionStateErrorPolicy`].
    pub fn is_error_state(&self, state: ConnectionState) -> bool {
        self.inner.cfg.error_policy.is_error_state(state)
    }

    /// The connection state error policy.
    pub fn connection_state_error_policy(&self) -> ConnectionStateErrorPolicy {
        self.inner.cfg.error_policy
    }

    /// The ACL for a node at `path` (the ACL provider's).
    pub fn acl_for_path(&self, path: &str) -> Vec<Acl> {
        self.inner.cfg.acl_provider.acl_for_path(path)
    }

    /// The compression provider.
    pub fn compression_provider(&self) -> Arc<dyn CompressionProvider> {
        self.inner.cfg.compression.clone()
    }

    /// The node's data, decompressed by the compression provider
    /// (Curator's `getData().decompressed()`).
    ///
    /// # Errors
    /// [`Error::CorruptData`] when the data is not compressed; client
    /// errors after retries.
    pub async fn get_data_decompressed(&self, path: &str) -> Result<(Vec<u8>, Stat)> {
        let (d, stat) = self.get_data(path).await?;
        Ok((self.inner.cfg.compression.decompress(path, &d)?, stat))
    }

    /// Sets the node's data compressed (Curator's `setData().compressed()`).
    ///
    /// # Errors
    /// As [`Framework::set_data`].
    pub async fn set_data_compressed(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        let z = self.inner.cfg.compression.compress(path, data);
        self.set_data(path, &z, version).await
    }

    /// A transaction builder with typed ops and per-op results (Curator's
    /// `transaction()` / `transactionOp()`).
    pub fn transaction_builder(&self) -> TransactionBuilder {
        TransactionBuilder { fw: self.clone(), ops: Vec::new() }
    }

    async fn connect_client(&self, cs: &str) -> Result<Client> {
        let cfg = &self.inner.cfg;
        let mut b = Client::builder(cs)
            .session_timeout(cfg.session_timeout)
            .connection_timeout(cfg.connection_timeout)
            .read_only(cfg.can_be_read_only);
        for (s, a) in &cfg.auth {
            b = b.auth(s.clone(), a.clone());
        }
        #[cfg(feature = "tls")]
        if let Some(t) = &cfg.tls {
            b = b.tls(t.clone());
        }
        Ok(b.connect().await?)
    }

    /// Starts connecting in the background and returns at once, as
    /// Curator's `start()`: calls made before the connection is up wait
    /// for it (up to the connection timeout, then the retry policy
    /// decides), and [`Framework::block_until_connected`] waits for it
    /// explicitly. The first connection posts CONNECTED; until then the
    /// framework keeps trying the ensemble.
    ///
    /// # Errors
    /// [`Error::NotStarted`] after [`Framework::close`].
    pub async fn start(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::NotStarted);
        }
        let Ok(mut monitor) = self.inner.monitor.lock() else { return Err(Error::NotStarted) };
        if monitor.is_some() {
            return Ok(());
        }
        // The background task does not keep the framework open.
        let me = Framework { inner: self.inner.clone(), _owner: None };
        *monitor = Some(tokio::spawn(async move { me.run().await }));
        Ok(())
    }

    /// The first connection (retried until it succeeds or the framework
    /// is closed), then the monitor.
    async fn run(self) {
        let mut wait = Duration::from_millis(100);
        let client = loop {
            if self.is_closed() {
                return;
            }
            match self.new_client().await {
                Ok(c) => break c,
                Err(e) => {
                    warn!(error = %e, "cannot connect yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        };
        let events = client.state_events();
        let read_only = client.state() == SessionState::ConnectedReadOnly;
        if let Ok(mut c) = self.inner.client.write() {
            *c = Some(client);
        }
        self.inner.post(if read_only { ConnectionState::ReadOnly } else { ConnectionState::Connected });
        if self.inner.cfg.ensemble_tracker {
            self.track_ensemble().await;
        }
        self.monitor(events).await;
    }

    /// The current client, waiting for the first connection (at most the
    /// connection timeout) if there is none yet.
    pub(crate) async fn ready_client(&self) -> Result<Client, ZkError> {
        if let Ok(c) = self.client() {
            return Ok(c);
        }
        let started = self.inner.monitor.lock().map(|m| m.is_some()).unwrap_or(false);
        if self.is_closed() || !started {
            return Err(ZkError::ClientClosed);
        }
        let mut rx = self.state_receiver();
        let _ = tokio::time::timeout(self.inner.cfg.connection_timeout, rx.wait_for(|s| s.is_some())).await;
        self.client().map_err(|_| ZkError::ConnectionLoss)
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
                    if self.inner.cfg.ensemble_tracker {
                        self.track_ensemble().await;
                    }
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

    /// The default ACL (the ACL provider's).
    pub fn default_acl(&self) -> Vec<Acl> {
        self.inner.cfg.acl_provider.default_acl()
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

    /// Every connection state change from now on, for the recipes.
    pub(crate) fn state_follower(&self) -> StateFollower {
        StateFollower { rx: self.connection_state_events().0, fw: self.clone() }
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
        let started = std::time::Instant::now();
        let mut count = 0u32;
        loop {
            let r = match self.ready_client().await {
                Ok(c) => op(c).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() => match policy.allow_retry(count, started.elapsed(), &e) {
                    Some(sleep) => {
                        debug!(error = %e, retry = count, ?sleep, "retrying");
                        tokio::time::sleep(sleep).await;
                        count += 1;
                    }
                    None => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            }
        }
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
            or_set_data: false,
            idempotent: false,
            compressed: false,
        }
    }

    /// A delete builder.
    pub fn delete(&self) -> DeleteBuilder {
        DeleteBuilder {
            fw: self.clone(),
            guaranteed: false,
            children: false,
            version: None,
            quietly: false,
            idempotent: false,
        }
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
        self.with_retry(|c| async move {
            create_parents(&c, &format!("{path}/x"), false, &|p: &str| self.acl_for_path(p)).await.map_err(
                |e| match e {
                    Error::Zk(z) => z,
                    _ => ZkError::ClientClosed,
                },
            )
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

    /// Deletes `path` now; when that fails (connection lost, client
    /// closing) the delete goes on in the background until the node is
    /// gone, as Curator's `delete().guaranteed()` does. A node that is
    /// already gone counts as deleted.
    pub async fn delete_guaranteed_now(&self, path: String) {
        let r = match self.client() {
            Ok(c) => c.delete(&path, None).await,
            Err(_) => Err(ZkError::ClientClosed),
        };
        match r {
            Ok(()) | Err(ZkError::NoNode) => {}
            Err(_) => self.guaranteed_delete(path),
        }
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
        self.create_prefixed(path, format!("_c_{}-", Uuid::new_v4()), data, mode, acl, parents).await
    }

    /// As [`Framework::create_protected`], with the caller's unique
    /// `prefix` (kazoo's locks use `<uuid hex>`).
    pub(crate) async fn create_prefixed(
        &self,
        path: &str,
        prefix: String,
        data: &[u8],
        mode: CreateMode,
        acl: &[Acl],
        parents: Option<bool>,
    ) -> Result<String> {
        let parent = zk_parent(path).to_string();
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
            let client = match self.ready_client().await {
                Ok(c) => c,
                Err(e) if e.is_retriable() => match policy.allow_retry(attempt, started.elapsed(), &e) {
                    Some(sleep) => {
                        tokio::time::sleep(sleep).await;
                        attempt += 1;
                        continue;
                    }
                    None => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            };
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
                        create_parents(&client, &full, parents == Some(true), &|p: &str| {
                            self.acl_for_path(p)
                        })
                        .await
                        .map_err(|e| match e {
                            Error::Zk(z) => z,
                            _ => ZkError::ClientClosed,
                        })?;
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

/// Waits for watch `w` until `deadline` (for ever when `None`); whether it
/// fired in time. Dropped unfired, the watch is removed on the server.
pub(crate) async fn watch_fired_by(
    w: zk_client::OneshotWatcher,
    deadline: Option<tokio::time::Instant>,
) -> bool {
    match deadline {
        None => {
            w.await;
            true
        }
        Some(d) => tokio::time::timeout_at(d, w).await.is_ok(),
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
pub(crate) async fn create_parents(
    client: &Client,
    path: &str,
    containers: bool,
    acl_for: &(dyn Fn(&str) -> Vec<Acl> + Send + Sync),
) -> Result<()> {
    let parent = zk_parent(path);
    if parent == "/" {
        return Ok(());
    }
    let mode = if containers { CreateMode::Container } else { CreateMode::Persistent };
    let mut prefix = String::new();
    for component in parent.split('/').skip(1) {
        prefix.push('/');
        prefix.push_str(component);
        match client.create(&prefix, b"", CreateOptions::new(mode).with_acl(acl_for(&prefix))).await {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Builds a create (Curator's `create()...forPath`).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::CreateMode;
/// let path = fw.create()
///     .creating_parent_containers_if_needed()
///     .with_protection()
///     .with_mode(CreateMode::EphemeralSequential)
///     .for_path("/workers/w-", b"")
///     .await?;
/// # let _ = path; Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "call for_path to create"]
pub struct CreateBuilder {
    fw: Framework,
    mode: CreateMode,
    acl: Option<Vec<Acl>>,
    ttl: Option<Duration>,
    parents: Option<bool>,
    protected: bool,
    or_set_data: bool,
    idempotent: bool,
    compressed: bool,
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

    /// If the node exists, set its data instead (Curator's `orSetData`).
    pub fn or_set_data(mut self) -> Self {
        self.or_set_data = true;
        self
    }

    /// A retried create that finds the node already there with the same
    /// data counts as done (Curator's `idempotent`): a create whose reply
    /// was lost is not reported as NodeExists.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Store the data compressed by the framework's compression provider
    /// (Curator's `compressed`).
    pub fn compressed(mut self) -> Self {
        self.compressed = true;
        self
    }

    /// Creates the node; returns the path created.
    ///
    /// # Errors
    /// Client errors after retries (NodeExists, NoNode without parents ...).
    pub async fn for_path(self, path: &str, data: &[u8]) -> Result<String> {
        self.for_path_with_stat(path, data).await.map(|(p, _)| p)
    }

    /// As [`CreateBuilder::for_path`], with the new node's Stat (Curator's
    /// `storingStatIn`).
    ///
    /// # Errors
    /// As [`CreateBuilder::for_path`].
    pub async fn for_path_with_stat(self, path: &str, data: &[u8]) -> Result<(String, Stat)> {
        let acl = self.acl.clone().unwrap_or_else(|| self.fw.acl_for_path(path));
        let compressed;
        let data = if self.compressed {
            compressed = self.fw.inner.cfg.compression.compress(path, data);
            &compressed[..]
        } else {
            data
        };
        if self.protected {
            let p = self.fw.create_protected(path, data, self.mode, &acl, self.parents).await?;
            let stat = self.fw.exists(&p).await?.ok_or(Error::Zk(ZkError::NoNode))?;
            return Ok((p, stat));
        }
        let mut opts = CreateOptions::new(self.mode).with_acl(acl.clone());
        if let Some(t) = self.ttl {
            opts = opts.with_ttl(t);
        }
        let parents = self.parents;
        let fw = &self.fw;
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let (or_set_data, idempotent) = (self.or_set_data, self.idempotent);
        fw.with_retry(|c| {
            let opts = opts.clone();
            let attempt = attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                let r = match c.create(path, data, opts.clone()).await {
                    Err(ZkError::NoNode) if parents.is_some() => {
                        create_parents(&c, path, parents == Some(true), &|p: &str| fw.acl_for_path(p))
                            .await
                            .map_err(|e| match e {
                                Error::Zk(z) => z,
                                _ => ZkError::ClientClosed,
                            })?;
                        c.create(path, data, opts).await
                    }
                    r => r,
                };
                match r {
                    Err(ZkError::NodeExists) if or_set_data => {
                        let stat = c.set_data(path, data, None).await?;
                        Ok((path.to_string(), stat))
                    }
                    Err(ZkError::NodeExists) if idempotent && attempt > 0 => {
                        let (existing, stat) = c.get_data(path).await?;
                        if existing.as_ref() == data {
                            Ok((path.to_string(), stat))
                        } else {
                            Err(ZkError::NodeExists)
                        }
                    }
                    r => r,
                }
            }
        })
        .await
    }
}

/// Builds a delete (Curator's `delete()...forPath`).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// fw.delete().guaranteed().deleting_children_if_needed().quietly().for_path("/old-job").await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "call for_path to delete"]
pub struct DeleteBuilder {
    fw: Framework,
    guaranteed: bool,
    children: bool,
    version: Option<i32>,
    quietly: bool,
    idempotent: bool,
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

    /// A node that does not exist is not an error (Curator's `quietly`).
    pub fn quietly(mut self) -> Self {
        self.quietly = true;
        self
    }

    /// A retried delete that finds the node gone counts as done (Curator's
    /// `idempotent`): a delete whose reply was lost is not reported as
    /// NoNode.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
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
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let (quietly, idempotent) = (self.quietly, self.idempotent);
        let r = self
            .fw
            .with_retry(|c| {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst);
                async move {
                    if children {
                        delete_children(&c, path).await?;
                    }
                    match c.delete(path, version).await {
                        Err(ZkError::NoNode) if quietly || (idempotent && attempt > 0) => Ok(()),
                        r => r,
                    }
                }
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

    /// A SUSPENDED that is over before anyone looked is still seen (a
    /// `watch` receiver would show only the RECONNECTED after it).
    #[tokio::test]
    async fn a_state_follower_sees_a_short_suspension() {
        let fw = Framework::new("127.0.0.1:1", crate::retry::RetryOneTime::new(Duration::ZERO));
        fw.inner.post(ConnectionState::Connected);
        let mut states = fw.state_follower();
        let error = |s: ConnectionState| fw.is_error_state(s);
        fw.inner.post(ConnectionState::Suspended);
        fw.inner.post(ConnectionState::Reconnected);
        assert_eq!(fw.connection_state(), Some(ConnectionState::Reconnected));
        let seen = tokio::time::timeout(Duration::from_secs(5), states.wait_for(error)).await;
        assert_eq!(seen, Ok(Some(ConnectionState::Suspended)), "the short suspension was missed");
        // Nothing pending now: the current state answers.
        assert_eq!(states.wait_for(ConnectionState::is_connected).await, Some(ConnectionState::Reconnected));
        fw.inner.post(ConnectionState::Lost);
        assert_eq!(states.next_matching(error).await, Some(ConnectionState::Lost));
    }
}

/// The client addresses in a `/zookeeper/config` text, as a connect
/// string: `server.N=host:quorum:election[:role];[clientHost:]clientPort`
/// (a wildcard client host means the server's host).
pub(crate) fn connect_string_from_config(config: &str) -> Option<String> {
    let mut out = Vec::new();
    for line in config.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        if !key.trim().starts_with("server.") {
            continue;
        }
        let Some((server, client)) = value.split_once(';') else { continue };
        let server_host = server.split(':').next().unwrap_or("");
        let (host, port) = match client.trim().rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => ("", client.trim()),
        };
        let host = if host.is_empty() || host == "0.0.0.0" || host == "[::]" { server_host } else { host };
        if !host.is_empty() && port.parse::<u16>().is_ok() {
            out.push(format!("{host}:{port}"));
        }
    }
    (!out.is_empty()).then(|| out.join(","))
}

/// What one op of a transaction did (Curator's `CuratorTransactionResult`).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::CreateMode;
/// for r in fw.transaction_builder().create("/t", b"", CreateMode::Persistent).commit().await? {
///     println!("{:?} {} -> {:?} {:?}", r.op, r.for_path, r.result_path, r.result_stat.map(|s| s.czxid));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionResult {
    /// The op's kind.
    pub op: TransactionOp,
    /// The path given to the op.
    pub for_path: String,
    /// The path created (a create: with its sequence suffix).
    pub result_path: Option<String>,
    /// The node's Stat after a create or a set.
    pub result_stat: Option<Stat>,
}

/// The kinds of transaction ops (Curator's `OperationType`).
///
/// ```
/// assert_ne!(zk_recipes::TransactionOp::Create, zk_recipes::TransactionOp::Delete);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionOp {
    /// A create.
    Create,
    /// A delete.
    Delete,
    /// A set of data.
    SetData,
    /// A version check.
    Check,
}

/// Builds an all-or-nothing transaction with typed ops; the results carry
/// each op's path and Stat.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::{CreateMode, TransactionOp};
///
/// let results = fw
///     .transaction_builder()
///     .create("/jobs/job-", b"payload", CreateMode::PersistentSequential)
///     .set_data("/jobs", b"1 job", None)
///     .check("/config", Some(3))
///     .commit()
///     .await?;
/// assert_eq!(results[0].op, TransactionOp::Create);
/// println!("created {:?}", results[0].result_path);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "call commit to run the transaction"]
pub struct TransactionBuilder {
    fw: Framework,
    ops: Vec<(TransactionOp, String, Op)>,
}

impl TransactionBuilder {
    /// Creates `path` in `mode` with the framework's ACL for it.
    pub fn create(mut self, path: &str, data: &[u8], mode: CreateMode) -> Self {
        let acl = self.fw.acl_for_path(path);
        let op = Op::create(path.to_string(), data.to_vec(), CreateOptions::new(mode).with_acl(acl));
        self.ops.push((TransactionOp::Create, path.to_string(), op));
        self
    }

    /// Deletes `path` (at `version`, or any).
    pub fn delete(mut self, path: &str, version: Option<i32>) -> Self {
        self.ops.push((TransactionOp::Delete, path.to_string(), Op::delete(path.to_string(), version)));
        self
    }

    /// Sets `path`'s data (at `version`, or any).
    pub fn set_data(mut self, path: &str, data: &[u8], version: Option<i32>) -> Self {
        let op = Op::set_data(path.to_string(), data.to_vec(), version);
        self.ops.push((TransactionOp::SetData, path.to_string(), op));
        self
    }

    /// Requires `path` to exist (at `version`, or any).
    pub fn check(mut self, path: &str, version: Option<i32>) -> Self {
        self.ops.push((TransactionOp::Check, path.to_string(), Op::check(path.to_string(), version)));
        self
    }

    /// Runs the transaction.
    ///
    /// # Errors
    /// The failing op's error (nothing was applied); client errors after
    /// retries.
    pub async fn commit(self) -> Result<Vec<TransactionResult>> {
        let ops: Vec<Op> = self.ops.iter().map(|(_, _, o)| o.clone()).collect();
        let results = self.fw.transaction(&ops).await?;
        Ok(self
            .ops
            .into_iter()
            .zip(results)
            .map(|((op, for_path, _), r)| {
                let (result_path, result_stat) = match r {
                    OpResult::Create { path, stat } => (Some(path), Some(stat)),
                    OpResult::SetData { stat } => (None, Some(stat)),
                    _ => (None, None),
                };
                TransactionResult { op, for_path, result_path, result_stat }
            })
            .collect())
    }
}

#[cfg(test)]
mod config_tests {
    use super::connect_string_from_config;

    #[test]
    fn client_addresses_from_the_dynamic_config() {
        let cfg = "server.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181\nserver.2=10.0.0.2:2888:3888;10.1.0.2:2182\nversion=100000000";
        assert_eq!(connect_string_from_config(cfg).as_deref(), Some("10.0.0.1:2181,10.1.0.2:2182"));
        assert_eq!(connect_string_from_config("server.1=h:1:2\n"), None);
        assert_eq!(connect_string_from_config(""), None);
    }
}
