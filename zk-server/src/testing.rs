//! [`TestingCluster`]: an ensemble of servers in this process, for tests
//! (Curator's `TestingCluster`): each on free loopback ports with a data
//! dir of its own, configured from a `zoo.cfg` as an operator writes one,
//! and stopped, restarted and asked for its role by index.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! let mut cluster = zk_server::TestingCluster::start(3).await.unwrap();
//! let leader = cluster.wait_for_leader(Duration::from_secs(30)).await.unwrap();
//! println!("server {leader} leads; clients use {}", cluster.connect_string());
//! cluster.stop_all().await;
//! # });
//! ```

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ServerConfig;
use crate::error::{Error, PersistError};
use crate::server::Server;

/// One member's ports and files.
#[derive(Debug, Clone)]
struct Member {
    client_port: u16,
    dir: PathBuf,
    cfg_path: PathBuf,
}

/// An ensemble of servers in this process.
#[derive(Debug)]
pub struct TestingCluster {
    members: Vec<Member>,
    servers: Vec<Option<Server>>,
    _root: tempfile::TempDir,
}

/// A free loopback port below Linux's ephemeral range (so no outgoing
/// connection takes it between now and the server's bind), never the
/// same twice in this process.
fn free_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = u32::from(std::process::id() as u16) % 12_000;
    for _ in 0..12_000 {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + ((start + k) % 12_000) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no free port in 20000..32000"))
}

impl TestingCluster {
    /// Starts `n` servers (ids 1..=n) with `tickTime=200`, `initLimit=10`,
    /// `syncLimit=5`, `maxSessionTimeout=60000` (a session may outlive an
    /// election), every four-letter word and TTL nodes enabled.
    ///
    /// # Errors
    /// When a data dir cannot be made or a server cannot start.
    pub async fn start(n: usize) -> Result<TestingCluster, Error> {
        Self::start_with(n, "").await
    }

    /// As [`TestingCluster::start`], with more `zoo.cfg` lines (they
    /// override the defaults).
    ///
    /// # Errors
    /// As [`TestingCluster::start`].
    pub async fn start_with(n: usize, extra: &str) -> Result<TestingCluster, Error> {
        Self::build(n, 0, extra).await
    }

    /// `voters` participants (ids 1..=voters) and `observers` observers
    /// after them (`:observer` in every `server.N` line, `peerType=observer`
    /// in their own zoo.cfg).
    ///
    /// # Errors
    /// As [`TestingCluster::start`].
    pub async fn start_with_observers(voters: usize, observers: usize) -> Result<TestingCluster, Error> {
        Self::build(voters, observers, "").await
    }

    async fn build(voters: usize, observers: usize, extra: &str) -> Result<TestingCluster, Error> {
        // A port taken between choosing it and binding it: choose again.
        let mut tries = 0;
        loop {
            match Self::build_once(voters, observers, extra).await {
                Err(Error::Bind { .. }) if tries < 5 => tries += 1,
                r => return r,
            }
        }
    }

    async fn build_once(voters: usize, observers: usize, extra: &str) -> Result<TestingCluster, Error> {
        let n = voters + observers;
        let root = tempfile::Builder::new()
            .prefix("zk-cluster")
            .tempdir()
            .map_err(PersistError::io("creating a temporary dir in", &std::env::temp_dir()))?;
        let mut ports = Vec::new();
        for _ in 0..n {
            let p = (free_port(), free_port(), free_port());
            let (Ok(a), Ok(b), Ok(c)) = p else {
                return Err(PersistError::io("finding free ports under", root.path())(
                    std::io::Error::other("no free port"),
                )
                .into());
            };
            ports.push((a, b, c));
        }
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(i, (client, q, e))| {
                let kind = if i >= voters { ":observer" } else { "" };
                // With the client address, as Apache's dynamic config
                // writes it: clients (Curator's ensemble tracker) learn
                // every server from /zookeeper/config.
                format!("server.{}=127.0.0.1:{q}:{e}{kind};127.0.0.1:{client}\n", i + 1)
            })
            .collect();
        let mut members = Vec::new();
        for (i, (client, _, _)) in ports.iter().enumerate() {
            let dir = root.path().join(format!("server{}", i + 1));
            std::fs::create_dir_all(&dir).map_err(PersistError::io("creating", &dir))?;
            std::fs::write(dir.join("myid"), format!("{}\n", i + 1))
                .map_err(PersistError::io("writing myid in", &dir))?;
            let peer_type = if i >= voters { "peerType=observer\n" } else { "" };
            let text = format!(
                "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\n\
                 clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nextendedTypesEnabled=true\n\
                 maxClientCnxns=0\nmaxSessionTimeout=60000\nadmin.serverAddress=127.0.0.1\nadmin.serverPort=0\n\
                 {peer_type}{servers}{extra}\n",
                dir.display()
            );
            let cfg_path = dir.join("zoo.cfg");
            std::fs::write(&cfg_path, text).map_err(PersistError::io("writing", &cfg_path))?;
            members.push(Member { client_port: *client, dir, cfg_path });
        }
        let mut cluster = TestingCluster { members, servers: (0..n).map(|_| None).collect(), _root: root };
        for i in 0..n {
            if let Err(e) = cluster.restart(i).await {
                cluster.stop_all().await;
                return Err(e);
            }
        }
        Ok(cluster)
    }

    /// How many servers the ensemble has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every server's client address, comma-separated (a client's connect
    /// string).
    pub fn connect_string(&self) -> String {
        self.members.iter().map(|m| format!("127.0.0.1:{}", m.client_port)).collect::<Vec<_>>().join(",")
    }

    /// Server `i`'s client address (0-based).
    pub fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.members[i].client_port))
    }

    /// Server `i`'s AdminServer (`/commands/<name>`, `/ready`), on a free
    /// loopback port; `None` when the server is stopped.
    pub fn admin_addr(&self, i: usize) -> Option<SocketAddr> {
        self.servers[i].as_ref()?.admin_addr()
    }

    /// Server `i`'s data dir.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.members[i].dir.clone()
    }

    /// Whether server `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.servers[i].is_some()
    }

    /// Server `i`'s role: `leader`, `follower`, `observer` or `looking`;
    /// `None` when it is stopped.
    pub async fn mode(&self, i: usize) -> Option<&'static str> {
        match &self.servers[i] {
            Some(s) => s.mode().await,
            None => None,
        }
    }

    /// The index of the serving leader, if any.
    pub async fn leader(&self) -> Option<usize> {
        for i in 0..self.len() {
            if self.mode(i).await == Some("leader") && self.serving(i).await {
                return Some(i);
            }
        }
        None
    }

    /// Whether server `i` answers clients.
    pub async fn serving(&self, i: usize) -> bool {
        match &self.servers[i] {
            Some(s) => s.serving().await,
            None => false,
        }
    }

    /// Waits until a leader serves and every running server serves; the
    /// leader's index.
    ///
    /// # Errors
    /// [`Error::Stopped`] when that does not happen within `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<usize, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader().await {
                let mut all = true;
                for i in 0..self.len() {
                    if self.is_running(i) && !self.serving(i).await {
                        all = false;
                    }
                }
                if all {
                    return Ok(l);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Stopped(format!("no serving leader within {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops server `i` (its connections close at once; its data stays).
    pub async fn stop(&mut self, i: usize) {
        if let Some(s) = self.servers[i].take() {
            s.stop().await;
        }
    }

    /// Starts server `i` again from its data dir (a no-op when it runs).
    ///
    /// # Errors
    /// As [`Server::start`].
    pub async fn restart(&mut self, i: usize) -> Result<(), Error> {
        if self.servers[i].is_some() {
            return Ok(());
        }
        let cfg = ServerConfig::from_file(&self.members[i].cfg_path)?;
        self.servers[i] = Some(Server::start(cfg).await?);
        Ok(())
    }

    /// Stops every server.
    pub async fn stop_all(&mut self) {
        for i in 0..self.len() {
            self.stop(i).await;
        }
    }
}
