//! An n-server Apache ZooKeeper ensemble on loopback.
//!
//! ```no_run
//! use zk_test_support::ensemble::ApacheEnsemble;
//! let Some(mut zk) = ApacheEnsemble::start(3) else { return }; // skipped loudly
//! println!("connect to {}", zk.connect_string());
//! let leader = zk.leader().expect("a leader");
//! zk.stop(leader);
//! zk.wait_ready(); // the other two elect a new leader
//! zk.restart(leader); // rejoins as a follower; returns once it serves
//! // every server is stopped when `zk` is dropped
//! ```
//!
//! Servers are numbered from 0 in this API; server `i` has `myid` `i + 1`.
//! Each has its own data dir, client, quorum and election ports, all on
//! 127.0.0.1, kept across [`ApacheEnsemble::stop`] and
//! [`ApacheEnsemble::restart`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::apache::{self, ApacheZkOptions, JavaServer, Mode, server_mode};
use crate::free_ports;

/// How long [`ApacheEnsemble::wait_ready`] waits for a leader and
/// followers.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How many lines of each server's log a panic message shows.
const LOG_TAIL_LINES: usize = 60;

/// The `tickTime` [`ApacheEnsemble::start`] uses: short, so failures are
/// noticed quickly (sessions may last 1 s to 10 s).
pub const ENSEMBLE_TICK_MS: u32 = 500;

/// A running Apache ZooKeeper ensemble on 127.0.0.1; every server is
/// killed on drop.
#[derive(Debug)]
pub struct ApacheEnsemble {
    // Declared before `dir`: the servers are killed before their files go.
    servers: Vec<Member>,
    opts: ApacheZkOptions,
    dir: tempfile::TempDir,
}

/// One server of the ensemble, running or stopped.
#[derive(Debug)]
struct Member {
    client_port: u16,
    dir: PathBuf,
    process: Option<JavaServer>,
}

impl Member {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    fn cfg_path(&self) -> PathBuf {
        self.dir.join("zoo.cfg")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn spawn(&mut self, opts: &ApacheZkOptions) {
        self.process = Some(JavaServer::spawn(
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            &self.cfg_path(),
            &self.log_path(),
            opts,
        ));
    }
}

impl ApacheEnsemble {
    /// Starts `n` servers with `tickTime` [`ENSEMBLE_TICK_MS`] and waits
    /// until one leads and the others follow; `None` (after a loud line)
    /// when Apache ZooKeeper is not installed.
    ///
    /// # Panics
    /// When `n` is 0, when the ensemble does not settle within
    /// [`READY_TIMEOUT`] (the message carries the servers' logs), or when
    /// Apache ZooKeeper is missing and `ZK_REQUIRE_EXTERNAL=1`.
    pub fn start(n: usize) -> Option<ApacheEnsemble> {
        Self::start_with(n, ApacheZkOptions { tick_time: ENSEMBLE_TICK_MS, ..ApacheZkOptions::default() })
    }

    /// Starts `n` servers with `opts`. `initLimit` and `syncLimit` are set
    /// to at least 20 s and 5 s worth of ticks (and at least 10 and 5
    /// ticks); `standaloneEnabled=false`, so even `n == 1` runs as a
    /// quorum peer.
    ///
    /// # Panics
    /// As [`ApacheEnsemble::start`].
    pub fn start_with(n: usize, opts: ApacheZkOptions) -> Option<ApacheEnsemble> {
        assert!(n > 0, "an ensemble needs at least one server");
        if !apache::installed_or_skip() {
            return None;
        }
        #[allow(clippy::expect_used)]
        let dir = tempfile::Builder::new().prefix("apache-zk-ensemble").tempdir().expect("temp dir");
        let ports = free_ports(3 * n);
        let (client, peers) = ports.split_at(n);
        let tick = opts.tick_time.max(1);
        let init_limit = 20_000u32.div_ceil(tick).max(10);
        let sync_limit = 5_000u32.div_ceil(tick).max(5);
        let mut quorum = format!("initLimit={init_limit}\nsyncLimit={sync_limit}\nstandaloneEnabled=false\n");
        for (i, p) in peers.chunks(2).enumerate() {
            quorum.push_str(&format!("server.{}=127.0.0.1:{}:{}\n", i + 1, p[0], p[1]));
        }
        let mut servers = Vec::with_capacity(n);
        for (i, &client_port) in client.iter().enumerate() {
            let member_dir = dir.path().join(format!("server{}", i + 1));
            let data = member_dir.join("data");
            #[allow(clippy::expect_used)]
            std::fs::create_dir_all(&data).expect("create data dir");
            #[allow(clippy::expect_used)]
            std::fs::write(data.join("myid"), format!("{}\n", i + 1)).expect("write myid");
            let cfg = apache::common_config(&opts, &data, client_port) + &quorum;
            #[allow(clippy::expect_used)]
            std::fs::write(member_dir.join("zoo.cfg"), cfg).expect("write zoo.cfg");
            servers.push(Member { client_port, dir: member_dir, process: None });
        }
        let mut ensemble = ApacheEnsemble { servers, opts, dir };
        for m in &mut ensemble.servers {
            m.spawn(&ensemble.opts);
        }
        ensemble.wait_ready();
        Some(ensemble)
    }

    /// How many servers the ensemble has (running or not).
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Always `false`: an ensemble has at least one server.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,...`: every server, running or not.
    pub fn connect_string(&self) -> String {
        self.servers.iter().map(|m| m.addr().to_string()).collect::<Vec<_>>().join(",")
    }

    /// The client address of server `i`.
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.servers[i].addr()
    }

    /// The client addresses of every server, in order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(Member::addr).collect()
    }

    /// The data dir of server `i` (it holds `myid`).
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.servers[i].dir.join("data")
    }

    /// What server `i` logged so far, over all its restarts.
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn log(&self, i: usize) -> String {
        apache::read_log(&self.servers[i].log_path())
    }

    /// Whether server `i` is running (not [`stop`](Self::stop)ped).
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn is_running(&self, i: usize) -> bool {
        self.servers[i].process.is_some()
    }

    /// What server `i` reports to `srvr` now; `None` when it is stopped,
    /// does not answer or is not serving (e.g. during an election).
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn mode(&self, i: usize) -> Option<Mode> {
        if self.is_running(i) { server_mode(self.addr(i)) } else { None }
    }

    /// The running server that reports [`Mode::Leader`] now, if any.
    pub fn leader(&self) -> Option<usize> {
        (0..self.len()).find(|&i| self.mode(i) == Some(Mode::Leader))
    }

    /// Server `i`'s `zoo.cfg` (its `dataDir` holds `myid`): what another
    /// server taking its place (ours, in a migration) starts from.
    pub fn config_path(&self, i: usize) -> PathBuf {
        self.servers[i].cfg_path()
    }

    /// Starts server `i` again without waiting for the ensemble to settle
    /// (a no-op when it runs).
    pub fn start_again(&mut self, i: usize) {
        if self.servers[i].process.is_none() {
            self.servers[i].spawn(&self.opts);
        }
    }

    /// Kills server `i` (SIGKILL, like a crash) and waits for it to exit.
    /// Does nothing when it is already stopped. Does not wait for the
    /// others to re-elect: call [`wait_ready`](Self::wait_ready) for that.
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn stop(&mut self, i: usize) {
        self.servers[i].process = None;
    }

    /// Starts server `i` again with the same data dir and ports (killing
    /// it first when it is running), then [`wait_ready`](Self::wait_ready).
    ///
    /// # Panics
    /// When `i >= self.len()`, or as [`wait_ready`](Self::wait_ready).
    pub fn restart(&mut self, i: usize) {
        self.stop(i);
        self.servers[i].spawn(&self.opts);
        self.wait_ready();
    }

    /// Waits until the running servers have settled: exactly one reports
    /// [`Mode::Leader`] and every other running one [`Mode::Follower`] (so
    /// each has synced with the leader and serves clients).
    ///
    /// # Panics
    /// When fewer than a majority of the servers are running (no leader
    /// can be elected), when a server exits by itself, or when the
    /// ensemble has not settled within [`READY_TIMEOUT`]; the message
    /// carries the tail of every server's log.
    pub fn wait_ready(&mut self) {
        let running = self.servers.iter().filter(|m| m.process.is_some()).count();
        if running <= self.len() / 2 {
            panic!(
                "only {running} of {} Apache ZooKeeper servers are running: no quorum can form",
                self.len()
            );
        }
        let start = Instant::now();
        let mut modes = Vec::new();
        while start.elapsed() < READY_TIMEOUT {
            let exited = self
                .servers
                .iter_mut()
                .enumerate()
                .find_map(|(i, m)| m.process.as_mut().and_then(JavaServer::exited).map(|s| (i, s)));
            if let Some((i, status)) = exited {
                panic!("Apache ZooKeeper server {i} exited by itself with {status}\n{}", self.logs());
            }
            modes = (0..self.len()).filter(|&i| self.is_running(i)).map(|i| (i, self.mode(i))).collect();
            let leaders = modes.iter().filter(|(_, m)| *m == Some(Mode::Leader)).count();
            let followers = modes.iter().filter(|(_, m)| *m == Some(Mode::Follower)).count();
            if leaders == 1 && leaders + followers == modes.len() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "Apache ZooKeeper ensemble did not settle within {READY_TIMEOUT:?} (modes of running servers: \
             {modes:?})\n{}",
            self.logs()
        );
    }

    /// The last lines of every server's log, for panic messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for i in 0..self.len() {
            let log = self.log(i);
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            out.push_str(&format!(
                "---- server {i} (myid {}, {}), last {} lines of {}:\n{}\n",
                i + 1,
                self.addr(i),
                tail.len(),
                self.servers[i].log_path().display(),
                tail.join("\n")
            ));
        }
        out
    }

    /// The ensemble's temporary root dir (one `server<myid>` dir per
    /// server).
    pub fn root_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// One Apache ZooKeeper quorum peer (`QuorumPeerMain`) in an ensemble
/// whose other members are given by the caller (for mixed ensembles with
/// servers of ours); killed on drop.
#[derive(Debug)]
pub struct ApacheQuorumPeer {
    // Declared before `dir`: the server is killed before its files go.
    member: Member,
    dir: tempfile::TempDir,
    opts: ApacheZkOptions,
}

impl ApacheQuorumPeer {
    /// Starts server `my_id` of the ensemble `servers` (`(sid, quorum
    /// port, election port)`, all on 127.0.0.1) with `opts`; does not wait
    /// for it to serve (it may not, without a quorum). `None` (after a
    /// loud line) when Apache ZooKeeper is not installed.
    ///
    /// # Panics
    /// When the files cannot be written or the JVM spawned, or when Apache
    /// ZooKeeper is missing and `ZK_REQUIRE_EXTERNAL=1`.
    pub fn start(my_id: i64, servers: &[(i64, u16, u16)], opts: ApacheZkOptions) -> Option<ApacheQuorumPeer> {
        if !apache::installed_or_skip() {
            return None;
        }
        #[allow(clippy::expect_used)]
        let dir = tempfile::Builder::new().prefix("apache-zk-peer").tempdir().expect("temp dir");
        let data = dir.path().join("data");
        #[allow(clippy::expect_used)]
        std::fs::create_dir_all(&data).expect("create data dir");
        #[allow(clippy::expect_used)]
        std::fs::write(data.join("myid"), format!("{my_id}\n")).expect("write myid");
        let tick = opts.tick_time.max(1);
        let init_limit = 20_000u32.div_ceil(tick).max(10);
        let sync_limit = 5_000u32.div_ceil(tick).max(5);
        let client_port = crate::free_port();
        let mut cfg = apache::common_config(&opts, &data, client_port);
        cfg.push_str(&format!("initLimit={init_limit}\nsyncLimit={sync_limit}\nstandaloneEnabled=false\n"));
        for (sid, q, e) in servers {
            cfg.push_str(&format!("server.{sid}=127.0.0.1:{q}:{e}\n"));
        }
        let mut member = Member { client_port, dir: dir.path().to_path_buf(), process: None };
        #[allow(clippy::expect_used)]
        std::fs::write(member.cfg_path(), cfg).expect("write zoo.cfg");
        member.spawn(&opts);
        Some(ApacheQuorumPeer { member, dir, opts })
    }

    /// Kills it (SIGKILL, like a crash) and waits for it to exit.
    pub fn stop(&mut self) {
        self.member.process = None;
    }

    /// Starts it again on the same data dir and ports (a no-op when it
    /// runs); does not wait for it to serve.
    pub fn start_again(&mut self) {
        if self.member.process.is_none() {
            self.member.spawn(&self.opts);
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        apache::read_log(&self.member.log_path())
    }

    /// Its client address.
    pub fn addr(&self) -> SocketAddr {
        self.member.addr()
    }

    /// Where its files are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
