//! [`Server`]: start a server (recovery, log thread, driver and core,
//! listener) and stop it; also the in-process server for tests and
//! examples.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};
use zk_proto::records::TxnBody;

use crate::config::ServerConfig;
use crate::driver::{CoreMsg, Driver, Outstanding};
use crate::error::{Error, PersistError};
use crate::net::{NetShared, accept_loop};
use crate::persist::{snapshot, txnlog};
use crate::pipeline::Now;
use crate::pipeline::core::{Core, Recovered};
use crate::tree::DataTree;

/// A running server. Dropping it stops it too (without waiting).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    core: mpsc::UnboundedSender<CoreMsg>,
    /// Turns true once the driver task has ended (however it ended).
    core_done: watch::Receiver<bool>,
    log_thread: Option<std::thread::JoinHandle<()>>,
    fatal: watch::Receiver<Option<String>>,
    temp_dir: Option<tempfile::TempDir>,
    admin_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    secure_addr: Option<SocketAddr>,
}

/// Loads the newest valid snapshot and replays the log after it.
///
/// # Errors
/// [`PersistError`] when the files cannot be read, or the log needs a
/// snapshot that is not there.
pub fn recover(cfg: &ServerConfig) -> Result<Recovered, PersistError> {
    let mut sessions: std::collections::BTreeMap<i64, i32> = std::collections::BTreeMap::new();
    // The log after the newest snapshot is read on another thread while
    // this one loads the snapshot (read again should an older snapshot be
    // the one that loads).
    let guess = snapshot::newest_zxid(&cfg.data_dir)
        .map_err(PersistError::io("loading a snapshot from", &cfg.data_dir))?
        .unwrap_or(0);
    let (snap, early_log) = std::thread::scope(|s| {
        let log = s.spawn(|| txnlog::read_log(&cfg.data_log_dir, guess, true));
        let snap = snapshot::load_latest_with(&cfg.data_dir, DataTree::loader);
        (snap, log.join())
    });
    let snap = snap.map_err(PersistError::io("loading a snapshot from", &cfg.data_dir))?;
    let (mut tree, snap_zxid) = match snap {
        Some(loaded) => {
            let zxid = loaded.zxid;
            let tree = loaded.output.finish(zxid).map_err(|e| {
                PersistError::io("loading a snapshot from", &cfg.data_dir)(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    e,
                ))
            })?;
            info!(zxid = format_args!("{zxid:#x}"), nodes = tree.node_count(), "loaded snapshot");
            sessions.extend(loaded.sessions);
            (tree, zxid)
        }
        None => (DataTree::new(), 0),
    };
    tree.last_zxid = snap_zxid;
    let had_snapshot = tree.last_zxid > 0;
    let read = match early_log {
        Ok(r) if snap_zxid == guess => r,
        _ => txnlog::read_log(&cfg.data_log_dir, tree.last_zxid, true),
    }
    .map_err(PersistError::io("reading the transaction log in", &cfg.data_log_dir))?;
    if !had_snapshot && read.txns.first().is_some_and(|t| t.header.zxid & 0xffff_ffff > 1) {
        // As Apache: a log that does not start at the beginning needs the
        // snapshot it continues; starting without it would lose data.
        return Err(PersistError::MissingSnapshot {
            dir: cfg.data_dir.clone(),
            zxid: read.txns[0].header.zxid,
        });
    }
    if let Some(torn) = &read.torn {
        warn!(file = %torn.file.display(), good_len = torn.good_len, reason = %torn.reason, "cut a torn log tail");
    }
    let replayed = read.txns.len();
    let keep_from = replayed.saturating_sub(crate::quorum::zab::DEFAULT_WINDOW);
    let tail_base = if keep_from == 0 { tree.last_zxid } else { read.txns[keep_from - 1].header.zxid };
    let mut log_tail = Vec::with_capacity(replayed - keep_from);
    for (k, t) in read.txns.into_iter().enumerate() {
        match &t.body {
            TxnBody::CreateSession(c) => {
                sessions.insert(t.header.client_id, c.time_out);
            }
            TxnBody::CloseSession(_) => {
                sessions.remove(&t.header.client_id);
            }
            _ => {}
        }
        tree.apply(&t.header, &t.body);
        if k >= keep_from {
            log_tail.push(t);
        }
    }
    if replayed > 0 {
        info!(txns = replayed, zxid = format_args!("{:#x}", tree.last_zxid), "replayed the transaction log");
    }
    Ok(Recovered { tree, sessions: sessions.into_iter().collect(), log_tail, tail_base })
}

/// The tree and sessions a snapshot holds.
pub(crate) fn tree_from_snapshot(s: snapshot::Snapshot) -> Result<(DataTree, Vec<(i64, i32)>), String> {
    let mut t = DataTree::loader();
    for n in &s.nodes {
        t.push(&n.path, n.data.as_deref(), &n.acl, &n.stat)?;
    }
    Ok((t.finish(s.zxid)?, s.sessions))
}

fn now() -> Now {
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Now { mono_ms: 0, wall_ms }
}

/// How often the TLS stores' files are looked at (`client.certReload`).
const TLS_RELOAD_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// What identifies a version of a file: its length and modification time.
fn file_stamps(files: &[std::path::PathBuf]) -> Vec<Option<(u64, std::time::SystemTime)>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).ok().and_then(|m| Some((m.len(), m.modified().ok()?))))
        .collect()
}

/// Reads the TLS stores again when their files change, and serves new
/// connections with them; a change that does not load (a file half
/// written, a wrong password) is logged and the old stores stay.
async fn reload_tls(
    cfg: Arc<ServerConfig>,
    port: Arc<crate::net::TlsPort>,
    mut shutdown: watch::Receiver<bool>,
) {
    let files = cfg.tls.files();
    let mut seen = file_stamps(&files);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TLS_RELOAD_POLL) => {}
            _ = shutdown.changed() => return,
        }
        let files2 = files.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || file_stamps(&files2)).await else { return };
        if now == seen {
            continue;
        }
        let tls = cfg.tls.clone();
        match tokio::task::spawn_blocking(move || tls.server_config()).await {
            Ok(Ok(c)) => {
                port.replace(c);
                seen = now;
                info!("TLS key or trust store changed: new connections use the new one");
            }
            Ok(Err(e)) => {
                // Tried once per change: a file still being written is
                // read again when it changes again.
                seen = now;
                warn!(error = %e, "TLS store changed but cannot be loaded; keeping the previous one")
            }
            Err(_) => return,
        }
    }
}

/// Drains the metrics' samples every few seconds until shutdown.
async fn metrics_upkeep(m: Arc<crate::metrics::ServerMetrics>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => m.upkeep(),
            _ = shutdown.changed() => return,
        }
    }
}

/// Reports an essential task's end as fatal unless the server is stopping.
fn supervise(
    what: &'static str,
    task: tokio::task::JoinHandle<()>,
    shutdown: watch::Receiver<bool>,
    fatal: watch::Sender<Option<String>>,
    done: Option<watch::Sender<bool>>,
) {
    tokio::spawn(async move {
        let r = task.await;
        let stopping = *shutdown.borrow();
        let why = match r {
            Err(e) if e.is_panic() => Some(format!("the {what} task panicked")),
            Err(_) if !stopping => Some(format!("the {what} task was cancelled")),
            Ok(()) if !stopping && fatal.borrow().is_none() => Some(format!("the {what} task ended")),
            _ => None,
        };
        if let Some(why) = why {
            fatal.send_if_modified(|f| {
                if f.is_none() {
                    *f = Some(why);
                    true
                } else {
                    false
                }
            });
        }
        if let Some(d) = done {
            let _ = d.send(true);
        }
    });
}

impl Server {
    /// Starts a server with `cfg`: recovers its data, binds the client
    /// port and serves.
    ///
    /// # Errors
    /// [`Error`] when the data dirs cannot be used or the port bound.
    pub async fn start(cfg: ServerConfig) -> Result<Server, Error> {
        Self::start_inner(cfg, None).await
    }

    /// Starts a server on a free loopback port with a temporary data dir,
    /// removed when the server is dropped: the bundled server for tests and
    /// examples (like Curator's `TestingServer`). Every four-letter word is
    /// enabled and TTL nodes are on.
    ///
    /// # Errors
    /// As [`Server::start`].
    ///
    /// ```
    /// # tokio_test_block_on(async {
    /// let server = zk_server::Server::start_temp().await.unwrap();
    /// println!("connect to {}", server.connect_string());
    /// server.stop().await;
    /// # });
    /// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(f)
    /// # }
    /// ```
    pub async fn start_temp() -> Result<Server, Error> {
        let mut cfg = ServerConfig::new("");
        cfg.client_port = 0;
        cfg.client_port_address = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        cfg.four_letter_words = vec!["*".into()];
        cfg.extended_types_enabled = true;
        cfg.max_client_cnxns = 0;
        Self::start_temp_with(cfg).await
    }

    /// Starts with `cfg` on a temporary data dir owned by the server.
    ///
    /// # Errors
    /// As [`Server::start`].
    pub async fn start_temp_with(mut cfg: ServerConfig) -> Result<Server, Error> {
        let dir = tempfile::Builder::new()
            .prefix("zk-server")
            .tempdir()
            .map_err(PersistError::io("creating a temporary data dir in", &std::env::temp_dir()))?;
        cfg.data_dir = dir.path().to_path_buf();
        cfg.data_log_dir = dir.path().to_path_buf();
        Self::start_inner(cfg, Some(dir)).await
    }

    async fn start_inner(cfg: ServerConfig, temp_dir: Option<tempfile::TempDir>) -> Result<Server, Error> {
        for k in &cfg.unknown_keys {
            warn!(key = %k, "zoo.cfg key not used by this server");
        }
        let ensemble = cfg.quorum.clone().filter(|q| !q.runs_standalone());
        std::fs::create_dir_all(&cfg.data_dir).map_err(PersistError::io("creating", &cfg.data_dir))?;
        std::fs::create_dir_all(&cfg.data_log_dir)
            .map_err(PersistError::io("creating", &cfg.data_log_dir))?;
        let cfg2 = cfg.clone();
        let mut recovered = tokio::task::spawn_blocking(move || recover(&cfg2))
            .await
            .map_err(|e| PersistError::Recovery(e.to_string()))??;
        let mut log = txnlog::TxnLog::open(&cfg.data_log_dir, cfg.force_sync)
            .map_err(PersistError::io("opening the transaction log in", &cfg.data_log_dir))?;
        let started = std::time::Instant::now();
        let metrics = cfg.metrics_addr.map(|_| crate::metrics::ServerMetrics::new());
        if let Some(m) = &metrics {
            let m = m.clone();
            log.on_fsync(move |took| m.fsync_time.record(took.as_secs_f64() * 1000.0));
        }
        let ip = cfg.client_port_address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut listener = None;
        if cfg.client_port_enabled {
            let bind_addr = SocketAddr::new(ip, cfg.client_port);
            let l = TcpListener::bind(bind_addr)
                .await
                .map_err(|source| Error::Bind { addr: bind_addr, source })?;
            let addr = l.local_addr().map_err(|source| Error::Bind { addr: bind_addr, source })?;
            listener = Some((l, addr));
        }
        let mut secure = None;
        if let Some(port) = cfg.secure_client_port {
            // The stores are read now: a bad setting stops the start-up
            // with a clear error instead of failing every handshake.
            let tls = crate::net::TlsPort::new(cfg.tls.server_config()?);
            let ip = cfg.secure_client_port_address.unwrap_or(ip);
            let bind_addr = SocketAddr::new(ip, port);
            let l = TcpListener::bind(bind_addr)
                .await
                .map_err(|source| Error::Bind { addr: bind_addr, source })?;
            let addr = l.local_addr().map_err(|source| Error::Bind { addr: bind_addr, source })?;
            secure = Some((l, addr, tls));
        }
        let addr = match (&listener, &secure) {
            (Some((_, a)), _) | (None, Some((_, a, _))) => *a,
            (None, None) => {
                return Err(Error::Config(crate::config::ConfigError {
                    file: "zoo.cfg".into(),
                    line: 0,
                    message: "neither clientPort nor secureClientPort is set".into(),
                }));
            }
        };
        let secure_addr = secure.as_ref().map(|(_, a, _)| *a);
        let cfg = Arc::new(cfg);

        let (fatal_tx, fatal_rx) = watch::channel(None);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (log_tx, log_rx) = std::sync::mpsc::channel();
        let (durable_tx, durable_rx) = mpsc::unbounded_channel();
        let log_fault =
            cfg.fault_injection.as_deref().and_then(|f| f.strip_prefix("log-panic:")).map(String::from);
        let log_thread = std::thread::Builder::new()
            .name("zk-txnlog".into())
            .spawn(move || crate::persist::log::run_log_thread(log, log_rx, durable_tx, log_fault))
            .map_err(PersistError::io("starting the log thread for", &cfg.data_log_dir))?;
        let (core_tx, core_rx) = mpsc::unbounded_channel();
        let outstanding = Outstanding::new(cfg.global_outstanding_limit);
        let seed = rand::random::<u64>();
        let last_zxid = recovered.tree.last_zxid;
        let tail = (recovered.tail_base, std::mem::take(&mut recovered.log_tail));
        let mut core = Core::new(cfg.clone(), recovered, seed, now());
        if let Some(m) = &metrics {
            core.set_metrics(m.clone());
        }
        let mut quorum_start = None;
        let mut driver_quorum = None;
        if let Some(q) = &ensemble {
            let (started, dq) =
                start_quorum(&cfg, q, last_zxid, tail, &mut core, core_tx.clone(), shutdown_rx.clone())
                    .await?;
            quorum_start = Some(started);
            driver_quorum = Some(dq);
        }
        let driver = Driver {
            core,
            rx: core_rx,
            log_events: durable_rx,
            log_tx,
            outstanding: outstanding.clone(),
            global_queued: Arc::new(AtomicUsize::new(0)),
            fatal: fatal_tx.clone(),
            data_dir: cfg.data_dir.clone(),
            snapshot_compression: cfg.snapshot_compression,
            panic_on_path: cfg
                .fault_injection
                .as_deref()
                .and_then(|f| f.strip_prefix("core-panic:"))
                .map(String::from),
            quorum: driver_quorum,
            scratch: Vec::new(),
            snapshot_worker: None,
            log_behind: (0, 0),
        };
        let global_queued = driver.global_queued.clone();
        let (done_tx, done_rx) = watch::channel(false);
        supervise("core", tokio::spawn(driver.run()), shutdown_rx.clone(), fatal_tx.clone(), Some(done_tx));
        let shared =
            Arc::new(NetShared::new(core_tx.clone(), cfg.clone(), addr.port(), outstanding, global_queued));
        let http =
            Arc::new(crate::http::HttpShared { net: shared.clone(), metrics: metrics.clone(), started });
        if let Some((l, _)) = listener {
            supervise(
                "accept loop",
                tokio::spawn(accept_loop(l, shared.clone(), None, shutdown_rx.clone())),
                shutdown_rx.clone(),
                fatal_tx.clone(),
                None,
            );
        }
        if let Some((l, addr, tls)) = secure {
            info!(%addr, client_auth = ?cfg.tls.client_auth, "serving TLS");
            if cfg.tls_reload {
                tokio::spawn(reload_tls(cfg.clone(), tls.clone(), shutdown_rx.clone()));
            }
            supervise(
                "secure accept loop",
                tokio::spawn(accept_loop(l, shared, Some(tls), shutdown_rx.clone())),
                shutdown_rx.clone(),
                fatal_tx.clone(),
                None,
            );
        }
        tokio::spawn(purge_loop(cfg.clone(), shutdown_rx.clone()));
        let mut admin_addr = None;
        if let Some(a) = &cfg.admin {
            let router = crate::http::admin_router(http.clone(), &a.command_url);
            let at = SocketAddr::new(a.address, a.port);
            admin_addr = crate::http::serve("AdminServer", at, router, shutdown_rx.clone()).await;
        }
        let mut metrics_addr = None;
        if let (Some(at), Some(m)) = (cfg.metrics_addr, metrics) {
            let router = crate::http::metrics_router(http.clone());
            metrics_addr = crate::http::serve("Prometheus endpoint", at, router, shutdown_rx.clone()).await;
            tokio::spawn(metrics_upkeep(m, shutdown_rx.clone()));
        }
        if let Some(start) = quorum_start {
            start();
        }
        info!(%addr, data_dir = %cfg.data_dir.display(), "serving");
        Ok(Server {
            addr,
            shutdown,
            core: core_tx,
            core_done: done_rx,
            log_thread: Some(log_thread),
            fatal: fatal_rx,
            temp_dir,
            admin_addr,
            metrics_addr,
            secure_addr,
        })
    }

    /// The secure (TLS) client address, when `secureClientPort` is set.
    pub fn secure_addr(&self) -> Option<SocketAddr> {
        self.secure_addr
    }

    /// Where the AdminServer listens (`None`: off, or its port could not be
    /// bound).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Where the Prometheus endpoint listens (`None`: off, or its port
    /// could not be bound).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` to give clients (loopback when bound to all interfaces).
    pub fn connect_string(&self) -> String {
        let ip =
            if self.addr.ip().is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { self.addr.ip() };
        SocketAddr::new(ip, self.addr.port()).to_string()
    }

    async fn report(&self) -> Option<crate::stats::Report> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let msg = CoreMsg::Report { needs: crate::stats::Needs::default(), reset: None, reply: tx };
        self.core.send(msg).ok()?;
        rx.await.ok()
    }

    /// The server's role: `standalone`, `leader`, `follower`, `observer`
    /// or `looking` (electing); `None` once it stopped.
    pub async fn mode(&self) -> Option<&'static str> {
        self.report().await.map(|r| r.mode)
    }

    /// Whether it answers clients now (standalone, or in an ensemble with
    /// a quorum behind it).
    pub async fn serving(&self) -> bool {
        self.report().await.is_some_and(|r| r.serving)
    }

    /// The temporary data dir of [`Server::start_temp`].
    pub fn temp_dir(&self) -> Option<&std::path::Path> {
        self.temp_dir.as_ref().map(|d| d.path())
    }

    /// Resolves when an essential part of the server (the core, the log
    /// thread, the accept loop) has died or the log failed; the server has
    /// stopped serving by then. A binary should exit non-zero on it (the
    /// `zk-server` binary does): the server is fail-stop.
    pub async fn failed(&self) -> Error {
        let mut rx = self.fatal.clone();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return Error::Stopped(why);
            }
            if rx.changed().await.is_err() {
                return Error::Stopped("the server's supervisor is gone".into());
            }
        }
    }

    /// Stops serving: closes every connection, lets the log finish what it
    /// has, and waits for the core.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        let _ = self.shutdown.send(true);
        let _ = self.core.send(CoreMsg::Shutdown);
        let mut done = self.core_done.clone();
        let _ = done.wait_for(|d| *d).await;
        if let Some(h) = self.log_thread.take() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

/// Resolves `host:port` (the first address).
async fn resolve(host_port: &str) -> Result<SocketAddr, Error> {
    let bad =
        |e: String| Error::Config(crate::config::ConfigError { file: "zoo.cfg".into(), line: 0, message: e });
    tokio::net::lookup_host(host_port)
        .await
        .map_err(|e| bad(format!("cannot resolve {host_port}: {e}")))?
        .next()
        .ok_or_else(|| bad(format!("{host_port} resolves to no address")))
}

type QuorumStart = Box<dyn FnOnce() + Send>;

/// Readies this server's part of an ensemble: the epochs, the quorum and
/// election ports, the core's ZAB side. Returns what starts the election
/// (once the driver runs) and the driver's part.
async fn start_quorum(
    cfg: &Arc<ServerConfig>,
    q: &crate::quorum::config::QuorumConfig,
    last_zxid: i64,
    tail: (i64, Vec<zk_proto::records::LoggedTxn>),
    core: &mut Core,
    core_tx: mpsc::UnboundedSender<CoreMsg>,
    stop: watch::Receiver<bool>,
) -> Result<(QuorumStart, crate::driver::DriverQuorum), Error> {
    use crate::quorum::serve;
    let my_id = i64::from(cfg.server_id);
    let me = q.servers.get(&my_id).ok_or_else(|| {
        Error::Config(crate::config::ConfigError {
            file: "zoo.cfg".into(),
            line: 0,
            message: format!("myid {my_id} is not among the server.N lines"),
        })
    })?;
    let epochs = serve::read_epochs(&cfg.data_dir, last_zxid)
        .map_err(PersistError::io("reading the epochs in", &cfg.data_dir))?;
    let tick = cfg.tick_time;
    let limits = crate::quorum::zab::Limits { init: q.init_limit, sync: q.sync_limit };
    let mut qc = crate::pipeline::quorum::QuorumCore::new(
        my_id,
        q.verifier.clone(),
        limits,
        tick.as_millis() as u64,
        epochs,
        last_zxid,
    );
    // The log's tail, so that a learner slightly behind gets a DIFF after
    // a restart rather than a SNAP.
    if tail.1.last().is_some_and(|t| t.header.zxid == last_zxid) {
        qc.durable.base = tail.0;
        qc.durable.log = tail
            .1
            .iter()
            .map(|t| crate::quorum::zab::Txn {
                zxid: t.header.zxid,
                data: crate::pipeline::quorum::encode_txn(t),
            })
            .collect();
    }
    core.set_quorum(qc);
    core.set_config_node(bytes::Bytes::from(q.to_config_string()));
    let any = |port: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    let quorum_bind =
        if q.listen_on_all_ips { any(me.quorum_port) } else { resolve(&me.quorum_addr()).await? };
    let election_bind =
        if q.listen_on_all_ips { any(me.election_port) } else { resolve(&me.election_addr()).await? };
    let listener =
        TcpListener::bind(quorum_bind).await.map_err(|source| Error::Bind { addr: quorum_bind, source })?;
    let peers =
        q.servers.iter().filter(|(id, _)| **id != my_id).map(|(id, s)| (*id, s.election_addr())).collect();
    let (net, incoming) =
        crate::quorum::peer_net::PeerNet::start(my_id, me.election_addr(), election_bind, peers)
            .await
            .map_err(|source| Error::Bind { addr: election_bind, source })?;
    let (ended_tx, ended_rx) = mpsc::unbounded_channel();
    let dq = crate::driver::DriverQuorum {
        peers: hashbrown::HashMap::new(),
        role_events: ended_tx,
        core_tx: core_tx.clone(),
        connect_within: serve::connect_within(q, tick),
        stop: stop.clone(),
        pending: Vec::new(),
    };
    let q = q.clone();
    info!(my_id, servers = q.servers.len(), "joining the ensemble");
    let start: QuorumStart = Box::new(move || {
        tokio::spawn(serve::accept_learners(listener, core_tx.clone(), stop.clone()));
        tokio::spawn(serve::election_loop(q, my_id, core_tx, ended_rx, net, incoming, stop));
    });
    Ok((start, dq))
}

/// Autopurge (`autopurge.purgeInterval` hours, keeping
/// `autopurge.snapRetainCount` snapshots), beside the core so that it never
/// waits for it.
async fn purge_loop(cfg: Arc<ServerConfig>, mut shutdown: watch::Receiver<bool>) {
    if cfg.autopurge_purge_interval == 0 {
        return;
    }
    let every = std::time::Duration::from_secs(cfg.autopurge_purge_interval * 3600);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let (dir, log_dir, retain) =
            (cfg.data_dir.clone(), cfg.data_log_dir.clone(), cfg.autopurge_snap_retain_count);
        let r =
            tokio::task::spawn_blocking(move || crate::persist::snapshot::purge_dirs(&dir, &log_dir, retain))
                .await;
        match r {
            Ok(Ok(r)) => info!(?r, "autopurge"),
            Ok(Err(e)) => warn!(error = %e, "autopurge failed"),
            Err(e) => warn!(error = %e, "autopurge task failed"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        let _ = self.core.send(CoreMsg::Shutdown);
    }
}
