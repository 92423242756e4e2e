//! Apache ZooKeeper (Debian's `zookeeper` package) as a child process.
//!
//! ```no_run
//! use zk_test_support::apache::ApacheZk;
//! let Some(zk) = ApacheZk::start() else { return }; // skipped loudly
//! println!("connect to {}", zk.connect_string());
//! // stopped when `zk` is dropped
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::external;
use crate::free_port;

/// Where Debian installs the server's jar.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// An slf4j binding so the server logs somewhere readable.
const SLF4J_BINDING: &str = "/usr/share/java/slf4j-simple.jar";

/// Options for [`ApacheZk::start_with`].
#[derive(Debug, Clone)]
pub struct ApacheZkOptions {
    /// `tickTime` in ms.
    pub tick_time: u32,
    /// Enable TTL nodes (`zookeeper.extendedTypesEnabled`).
    pub extended_types: bool,
    /// Extra `zoo.cfg` lines.
    pub extra_config: Vec<String>,
}

impl Default for ApacheZkOptions {
    fn default() -> Self {
        ApacheZkOptions { tick_time: 2000, extended_types: true, extra_config: Vec::new() }
    }
}

/// A running Apache ZooKeeper server on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct ApacheZk {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// Whether Java and the Debian `zookeeper` package are installed.
pub fn available() -> Result<(), String> {
    if !Path::new(ZOOKEEPER_JAR).exists() {
        return Err(format!("{ZOOKEEPER_JAR} not found (apt-get install zookeeper)"));
    }
    match Command::new("java").arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(s) if s.success() => Ok(()),
        _ => Err("no working `java` on PATH".into()),
    }
}

impl ApacheZk {
    /// Starts a server with default options; `None` (after a loud line)
    /// when Apache ZooKeeper is not installed.
    ///
    /// # Panics
    /// When the server is installed but does not come up within 60 s, or
    /// when it is missing and `ZK_REQUIRE_EXTERNAL=1`.
    pub fn start() -> Option<ApacheZk> {
        Self::start_with(ApacheZkOptions::default())
    }

    /// Starts a server with `opts`.
    ///
    /// # Panics
    /// As [`ApacheZk::start`].
    pub fn start_with(opts: ApacheZkOptions) -> Option<ApacheZk> {
        if let Err(why) = available() {
            external::missing("Apache ZooKeeper (Debian package `zookeeper`)", &why);
            return None;
        }
        #[allow(clippy::expect_used)]
        let dir = tempfile::Builder::new().prefix("apache-zk").tempdir().expect("temp dir");
        let port = free_port();
        let data = dir.path().join("data");
        #[allow(clippy::expect_used)]
        std::fs::create_dir_all(&data).expect("create data dir");
        let mut cfg = format!(
            "tickTime={}\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n",
            opts.tick_time,
            data.display()
        );
        for line in &opts.extra_config {
            cfg.push_str(line);
            cfg.push('\n');
        }
        let cfg_path = dir.path().join("zoo.cfg");
        #[allow(clippy::expect_used)]
        std::fs::write(&cfg_path, cfg).expect("write zoo.cfg");
        let mut cp = ZOOKEEPER_JAR.to_string();
        if Path::new(SLF4J_BINDING).exists() {
            cp.push(':');
            cp.push_str(SLF4J_BINDING);
        }
        #[allow(clippy::expect_used)]
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        #[allow(clippy::expect_used)]
        let log2 = log.try_clone().expect("log file");
        let mut cmd = Command::new("java");
        cmd.arg("-Xmx512m")
            .arg("-cp")
            .arg(cp)
            .arg(format!("-Dzookeeper.extendedTypesEnabled={}", opts.extended_types))
            .arg("-Dzookeeper.admin.enableServer=false")
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        #[allow(clippy::expect_used)]
        let child = cmd.spawn().expect("spawn java");
        let mut zk = ApacheZk { child, port, dir };
        zk.wait_ready(Duration::from_secs(60));
        Some(zk)
    }

    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Apache ZooKeeper exited early with {status}; log:\n{}", self.log());
            }
            // ruok answers before the server serves sessions; srvr reports
            // a Mode only once it does.
            if four_letter_word(self.addr(), "srvr").is_some_and(|s| s.contains("Mode:")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("Apache ZooKeeper did not report a Mode to srvr within {limit:?}; log:\n{}", self.log());
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `127.0.0.1:port`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for ApacheZk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a four-letter word and returns the answer (5 s limit).
pub fn four_letter_word(addr: SocketAddr, cmd: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(cmd.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}
