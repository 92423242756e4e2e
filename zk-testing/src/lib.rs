//! Testing helpers for services that use ZooKeeper, in the spirit of
//! Curator's `curator-test`: a real server in your test process, restarted
//! on the same port with the same data, and sessions expired on demand.
//!
//! - [`TestingServer`]: the bundled zk-server on a free loopback port with
//!   a temporary data dir; [`stop`](TestingServer::stop) /
//!   [`restart`](TestingServer::restart) keep port and data; dropped, it
//!   stops and removes its data.
//! - [`expire_session`]: ends any session by id on any server (this one or
//!   Apache ZooKeeper), as Curator's `KillSession`: it attaches to the
//!   session with the password servers derive from its id and closes it.
//! - [`TestingCluster`]: an in-process ensemble (zk-server's).
//! - `container` (the `container` feature): the zk-server image for
//!   testcontainers, built from a static binary (never pulled), and
//!   containers of it on loopback ports.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use zk_testing::TestingServer;
//!
//! let mut server = TestingServer::start().await.unwrap();
//! let client = zk_client::Client::connect(&server.connect_string()).await.unwrap();
//! client.create("/kept", b"", zk_client::CreateMode::Persistent).await.unwrap();
//! server.restart().await.unwrap(); // same port, same data
//! assert!(client.exists("/kept").await.unwrap().is_some());
//! server.expire_session(client.session_id()).await.unwrap();
//! # });
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

pub use zk_server::TestingCluster;

#[cfg(feature = "container")]
pub mod container;

/// What a testing helper can fail with.
///
/// ```no_run
/// # async fn f() {
/// match zk_testing::expire_session("127.0.0.1:2181", 0x1234).await {
///     Err(zk_testing::Error::Client(e)) => println!("no such session: {e}"),
///     other => println!("{other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not start (port, data dir).
    #[error("server: {0}")]
    Server(#[from] zk_server::Error),
    /// A client call failed (attaching to or closing a session).
    #[error("client: {0}")]
    Client(#[from] zk_client::Error),
    /// Local I/O (temporary dir, free port).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A call that needs a running server was made while it is stopped,
    /// or a restart did not come up.
    #[error("{0}")]
    State(&'static str),
    /// No Docker daemon answers (the `container` feature).
    #[error("docker: {0}")]
    Docker(String),
    /// The zk-server image could not be made (the `container` feature).
    #[error("image: {0}")]
    Image(String),
    /// A container did not start or become ready (the `container`
    /// feature).
    #[error("container: {0}")]
    Container(String),
}

/// Shorthand for results of this crate.
///
/// ```
/// fn check() -> zk_testing::Result<()> { Ok(()) }
/// assert!(check().is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Ends session `session_id` on the ensemble at `connect_string`, as
/// Curator's `KillSession`: attaches to it (servers derive a session's
/// password from its id) and closes it. Its ephemeral nodes go at once;
/// its own client sees SESSION_EXPIRED when it next reaches a server.
///
/// # Errors
/// [`Error::Client`] when the session cannot be attached (already gone:
/// `SessionExpired`) or closed.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_testing::Result<()> {
/// zk_testing::expire_session("127.0.0.1:2181", client.session_id()).await?;
/// # Ok(()) }
/// ```
pub async fn expire_session(connect_string: &str, session_id: i64) -> Result<()> {
    let password = zk_server::session_password(session_id);
    // The session's own client may take it back (reconnecting) between
    // our attach and our close, which cuts our close off: attach and close
    // again until the server says the session is gone.
    let mut closed_once = false;
    for _ in 0..50 {
        let attached = zk_client::Client::builder(connect_string)
            .session(session_id, &password)
            .connection_timeout(Duration::from_secs(10))
            .connect()
            .await;
        match attached {
            Ok(handle) => {
                let _ = handle.close().await;
                closed_once = true;
            }
            Err(zk_client::Error::SessionExpired) if closed_once => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::State("the session kept coming back"))
}

/// The bundled server for tests (Curator's `TestingServer`): loopback, a
/// free port, a temporary data dir, every four-letter word, TTL nodes on.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut server = zk_testing::TestingServer::start().await.unwrap();
/// let port = server.port();
/// server.stop().await;
/// server.restart().await.unwrap();
/// assert_eq!(server.port(), port);
/// # });
/// ```
#[derive(Debug)]
pub struct TestingServer {
    server: Option<zk_server::Server>,
    cfg: zk_server::ServerConfig,
    port: u16,
    // Dropped last: the data outlives restarts, not the TestingServer.
    dir: tempfile::TempDir,
}

impl TestingServer {
    /// Starts on a free port.
    ///
    /// # Errors
    /// [`Error::Io`] without a temporary dir or a free port;
    /// [`Error::Server`] when the server does not start.
    pub async fn start() -> Result<TestingServer> {
        let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = probe.local_addr()?.port();
        drop(probe);
        Self::start_on(port).await
    }

    /// Starts on `port` (0: any free port).
    ///
    /// # Errors
    /// As [`TestingServer::start`].
    pub async fn start_on(port: u16) -> Result<TestingServer> {
        let dir = tempfile::Builder::new().prefix("zk-testing").tempdir()?;
        let mut cfg = zk_server::ServerConfig::new("");
        cfg.client_port = port;
        cfg.client_port_address = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        cfg.four_letter_words = vec!["*".into()];
        cfg.extended_types_enabled = true;
        cfg.max_client_cnxns = 0;
        cfg.data_dir = dir.path().to_path_buf();
        cfg.data_log_dir = dir.path().to_path_buf();
        let server = zk_server::Server::start(cfg.clone()).await?;
        let port = server.addr().port();
        cfg.client_port = port;
        Ok(TestingServer { server: Some(server), cfg, port, dir })
    }

    /// `127.0.0.1:<port>`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The data dir (kept across restarts, removed on drop).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// Stops the server; its data stays for [`restart`](Self::restart).
    /// Clients see the connection drop (their sessions live on until they
    /// expire, as with a real server).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    /// Starts again on the same port with the same data (stopping first if
    /// running): sessions that have not expired resume.
    ///
    /// # Errors
    /// [`Error::Server`] when it does not start (the port taken meanwhile).
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        let mut last = None;
        // The port may take a moment to be free again.
        for _ in 0..50 {
            match zk_server::Server::start(self.cfg.clone()).await {
                Ok(s) => {
                    self.server = Some(s);
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Err(last.map_or(Error::State("the server did not restart"), Error::Server))
    }

    /// Ends a session now (see [`expire_session`]).
    ///
    /// # Errors
    /// As [`expire_session`]; [`Error::State`] when stopped.
    pub async fn expire_session(&self, session_id: i64) -> Result<()> {
        if self.server.is_none() {
            return Err(Error::State("the server is stopped"));
        }
        expire_session(&self.connect_string(), session_id).await
    }

    /// Stops the server and removes its data.
    pub async fn close(mut self) {
        self.stop().await;
    }
}
