//! [`Server`]: start a server (recovery, log thread, core, listener) and
//! stop it; also the in-process server for tests and examples.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};
use zk_proto::records::TxnBody;

use crate::config::ServerConfig;
use crate::core::{Core, CoreMsg, LogCmd, LogEvent, Recovered};
use crate::net::{NetShared, accept_loop};
use crate::persist::{snapshot, txnlog};
use crate::tree::DataTree;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A configuration problem.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What the server was doing.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

/// A running server. Dropping it stops it too (without waiting).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    core: mpsc::UnboundedSender<CoreMsg>,
    core_task: Option<tokio::task::JoinHandle<()>>,
    log_thread: Option<std::thread::JoinHandle<()>>,
    temp_dir: Option<tempfile::TempDir>,
}

/// Loads the newest valid snapshot and replays the log after it.
pub fn recover(cfg: &ServerConfig) -> Result<Recovered, ServerError> {
    let mut tree = DataTree::new();
    let mut sessions: std::collections::BTreeMap<i64, i32> = std::collections::BTreeMap::new();
    let snap = snapshot::load_latest(&cfg.data_dir).map_err(io("loading the snapshot"))?;
    if let Some(s) = snap {
        info!(zxid = format_args!("{:#x}", s.zxid), nodes = s.nodes.len(), "loaded snapshot");
        let mut t = DataTree::new();
        for n in s.nodes {
            t.insert_loaded(&n.path, n.data, n.acl, n.stat);
        }
        t.link_children();
        t.last_zxid = s.zxid;
        tree = t;
        sessions.extend(s.sessions);
    }
    let had_snapshot = tree.last_zxid > 0;
    let read = txnlog::read_log(&cfg.data_log_dir, tree.last_zxid, true)
        .map_err(io("reading the transaction log"))?;
    if !had_snapshot && read.txns.first().is_some_and(|t| t.header.zxid & 0xffff_ffff > 1) {
        // As Apache: a log that does not start at the beginning needs the
        // snapshot it continues; starting without it would lose data.
        return Err(ServerError::Io {
            what: "recovery".into(),
            source: std::io::Error::other(format!(
                "no snapshot found, but the transaction log starts at zxid {:#x}",
                read.txns[0].header.zxid
            )),
        });
    }
    if let Some(torn) = &read.torn {
        warn!(file = %torn.file.display(), good_len = torn.good_len, reason = %torn.reason, "cut a torn log tail");
    }
    let replayed = read.txns.len();
    for t in read.txns {
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
    }
    if replayed > 0 {
        info!(txns = replayed, zxid = format_args!("{:#x}", tree.last_zxid), "replayed the transaction log");
    }
    Ok(Recovered { tree, sessions: sessions.into_iter().collect() })
}

fn log_thread(
    mut log: txnlog::TxnLog,
    rx: std::sync::mpsc::Receiver<LogCmd>,
    events: mpsc::UnboundedSender<LogEvent>,
) {
    while let Ok(first) = rx.recv() {
        let mut last = None;
        let mut next = Some(first);
        let mut n = 0;
        let mut result = Ok(());
        while let Some(cmd) = next.take() {
            result = match cmd {
                LogCmd::Append(t) => {
                    last = Some(t.header.zxid);
                    log.append(&t)
                }
                LogCmd::Roll => log.sync().and_then(|()| log.roll()),
            };
            if result.is_err() {
                break;
            }
            n += 1;
            // Group commit: everything already waiting goes into this fsync.
            if n < 1000 {
                next = rx.try_recv().ok();
            }
        }
        let result = result.and_then(|()| log.sync());
        match result {
            Ok(()) => {
                if let Some(z) = last {
                    if events.send(LogEvent::Durable(z)).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                error!(error = %e, "transaction log write failed");
                let _ = events.send(LogEvent::Failed(e.to_string()));
                return;
            }
        }
    }
}

impl Server {
    /// Starts a server with `cfg`: recovers its data, binds the client
    /// port and serves.
    ///
    /// # Errors
    /// [`ServerError`] when the data dirs cannot be used or the port bound.
    pub async fn start(cfg: ServerConfig) -> Result<Server, ServerError> {
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
    pub async fn start_temp() -> Result<Server, ServerError> {
        let dir = tempfile::Builder::new()
            .prefix("zk-server")
            .tempdir()
            .map_err(io("creating a temporary data dir"))?;
        let mut cfg = ServerConfig::new(dir.path());
        cfg.client_port = 0;
        cfg.client_port_address = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        cfg.four_letter_words = vec!["*".into()];
        cfg.extended_types_enabled = true;
        cfg.max_client_cnxns = 0;
        Self::start_inner(cfg, Some(dir)).await
    }

    /// Starts with `cfg` on a temporary data dir owned by the server.
    ///
    /// # Errors
    /// As [`Server::start`].
    pub async fn start_temp_with(mut cfg: ServerConfig) -> Result<Server, ServerError> {
        let dir = tempfile::Builder::new()
            .prefix("zk-server")
            .tempdir()
            .map_err(io("creating a temporary data dir"))?;
        cfg.data_dir = dir.path().to_path_buf();
        cfg.data_log_dir = dir.path().to_path_buf();
        Self::start_inner(cfg, Some(dir)).await
    }

    async fn start_inner(
        cfg: ServerConfig,
        temp_dir: Option<tempfile::TempDir>,
    ) -> Result<Server, ServerError> {
        for k in &cfg.unknown_keys {
            warn!(key = %k, "zoo.cfg key not used by this server");
        }
        std::fs::create_dir_all(&cfg.data_dir).map_err(io(format!("creating {}", cfg.data_dir.display())))?;
        std::fs::create_dir_all(&cfg.data_log_dir)
            .map_err(io(format!("creating {}", cfg.data_log_dir.display())))?;
        let cfg2 = cfg.clone();
        let recovered = tokio::task::spawn_blocking(move || recover(&cfg2)).await.map_err(|e| {
            ServerError::Io { what: "recovery".into(), source: std::io::Error::other(e.to_string()) }
        })??;
        let log = txnlog::TxnLog::open(&cfg.data_log_dir, cfg.force_sync)
            .map_err(io("opening the transaction log"))?;
        let ip = cfg.client_port_address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let listener = TcpListener::bind((ip, cfg.client_port))
            .await
            .map_err(io(format!("binding {ip}:{}", cfg.client_port)))?;
        let addr = listener.local_addr().map_err(io("reading the bound address"))?;
        let cfg = Arc::new(cfg);

        let (log_tx, log_rx) = std::sync::mpsc::channel();
        let (durable_tx, durable_rx) = mpsc::unbounded_channel();
        let log_thread = std::thread::Builder::new()
            .name("zk-txnlog".into())
            .spawn(move || log_thread(log, log_rx, durable_tx))
            .map_err(io("starting the log thread"))?;
        let (core_tx, core_rx) = mpsc::unbounded_channel();
        let (snap_tx, snap_rx) = mpsc::unbounded_channel();
        let outstanding = crate::core::Outstanding::new(cfg.global_outstanding_limit);
        let core = Core::new(cfg.clone(), recovered, log_tx, outstanding.clone());
        let core_task = tokio::spawn(core.run(core_rx, durable_rx, snap_rx, snap_tx));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(NetShared::new(core_tx.clone(), cfg.clone(), addr.port(), outstanding));
        tokio::spawn(accept_loop(listener, shared, shutdown_rx));
        info!(%addr, data_dir = %cfg.data_dir.display(), "serving");
        Ok(Server {
            addr,
            shutdown,
            core: core_tx,
            core_task: Some(core_task),
            log_thread: Some(log_thread),
            temp_dir,
        })
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

    /// The temporary data dir of [`Server::start_temp`].
    pub fn temp_dir(&self) -> Option<&std::path::Path> {
        self.temp_dir.as_ref().map(|d| d.path())
    }

    /// Stops serving: closes every connection, lets the log finish what it
    /// has, and waits for the core.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        let _ = self.shutdown.send(true);
        let _ = self.core.send(CoreMsg::Shutdown);
        if let Some(t) = self.core_task.take() {
            let _ = t.await;
        }
        if let Some(h) = self.log_thread.take() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        let _ = self.core.send(CoreMsg::Shutdown);
    }
}
