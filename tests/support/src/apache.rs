//! Apache ZooKeeper (Debian's `zookeeper` package) as a child process.
//!
//! ```no_run
//! use zk_test_support::apache::ApacheZk;
//! let Some(zk) = ApacheZk::start() else { return }; // skipped loudly
//! println!("connect to {}", zk.connect_string());
//! // stopped when `zk` is dropped
//! ```
//!
//! The pieces shared with [`crate::ensemble`] live here too: the
//! availability check, the Java process, the common `zoo.cfg` lines and
//! [`server_mode`].

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::external;
use crate::free_port;

/// Where Debian installs the server's jar.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// An slf4j binding so the server logs somewhere readable.
const SLF4J_BINDING: &str = "/usr/share/java/slf4j-simple.jar";
/// The servlet API Jetty needs (Debian's `libservlet-api-java`, pulled in
/// by the zookeeper package).
const SERVLET_API: &str = "/usr/share/java/servlet-api.jar";
/// snappy-java (Debian's `libsnappy-java`), for snappy-compressed
/// snapshots (`zookeeper.snapshot.compression.method=snappy`); its native
/// library is in Debian's JNI directory.
pub const SNAPPY_JAR: &str = "/usr/share/java/snappy-java.jar";
const JNI_DIR: &str = "/usr/lib/x86_64-linux-gnu/jni";
/// The Netty jars Debian's zookeeper.jar manifest leaves out (its Netty
/// server and client sockets need them).
pub const NETTY_EXTRA: [&str; 2] = ["/usr/share/java/netty-codec.jar", "/usr/share/java/netty-resolver.jar"];

/// Options for [`ApacheZk::start_with`] and
/// [`ApacheEnsemble::start_with`](crate::ensemble::ApacheEnsemble::start_with).
#[derive(Debug, Clone)]
pub struct ApacheZkOptions {
    /// `tickTime` in ms.
    pub tick_time: u32,
    /// Enable TTL nodes (`zookeeper.extendedTypesEnabled`).
    pub extended_types: bool,
    /// Extra `zoo.cfg` lines.
    pub extra_config: Vec<String>,
    /// The JVM's maximum heap (`-Xmx`), e.g. `512m`.
    pub max_heap: String,
    /// Extra JVM arguments, e.g. `-Dreadonlymode.enabled=true`.
    pub jvm_args: Vec<String>,
    /// Serve this data dir (kept after the server goes) instead of a fresh
    /// temporary one.
    pub data_dir: Option<PathBuf>,
    /// Run Apache's AdminServer (Jetty) on this port of 127.0.0.1; off when
    /// `None`.
    pub admin_port: Option<u16>,
}

impl Default for ApacheZkOptions {
    fn default() -> Self {
        ApacheZkOptions {
            tick_time: 2000,
            extended_types: true,
            extra_config: Vec::new(),
            max_heap: "512m".into(),
            jvm_args: Vec::new(),
            data_dir: None,
            admin_port: None,
        }
    }
}

/// A running Apache ZooKeeper server on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct ApacheZk {
    // Declared before `dir`: the server is killed before its files go.
    server: JavaServer,
    port: u16,
    data: PathBuf,
    /// Held for its lifetime: the config, the log and (by default) the data.
    _dir: tempfile::TempDir,
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

/// [`available`], or the loud skip line of [`external::missing`] and
/// `false` (which panics instead under `ZK_REQUIRE_EXTERNAL=1`).
pub(crate) fn installed_or_skip() -> bool {
    match available() {
        Ok(()) => true,
        Err(why) => {
            external::missing("Apache ZooKeeper (Debian package `zookeeper`)", &why);
            false
        }
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
        if !installed_or_skip() {
            return None;
        }
        #[allow(clippy::expect_used)]
        let dir = tempfile::Builder::new().prefix("apache-zk").tempdir().expect("temp dir");
        let port = free_port();
        let data = opts.data_dir.clone().unwrap_or_else(|| dir.path().join("data"));
        #[allow(clippy::expect_used)]
        std::fs::create_dir_all(&data).expect("create data dir");
        let cfg = common_config(&opts, &data, port);
        let cfg_path = dir.path().join("zoo.cfg");
        #[allow(clippy::expect_used)]
        std::fs::write(&cfg_path, cfg).expect("write zoo.cfg");
        let server = JavaServer::spawn(
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            &cfg_path,
            &dir.path().join("server.log"),
            &opts,
        );
        let mut zk = ApacheZk { server, port, data, _dir: dir };
        zk.wait_ready(Duration::from_secs(60));
        Some(zk)
    }

    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.server.exited() {
                panic!("Apache ZooKeeper exited early with {status}; log:\n{}", self.log());
            }
            // ruok answers before the server serves sessions; srvr reports
            // a Mode only once it does.
            if server_mode(self.addr()).is_some() {
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

    /// The JVM's process id (e.g. to read its memory use).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The server's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// The `zoo.cfg` lines every server gets: `tickTime`, `dataDir`, a client
/// port on 127.0.0.1, no admin server, every four-letter word, no
/// per-client connection limit, then `opts.extra_config`.
pub(crate) fn common_config(opts: &ApacheZkOptions, data: &Path, client_port: u16) -> String {
    let admin = match opts.admin_port {
        Some(p) => format!("admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={p}\n"),
        None => "admin.enableServer=false\n".to_string(),
    };
    let mut cfg = format!(
        "tickTime={}\ndataDir={}\nclientPort={client_port}\nclientPortAddress=127.0.0.1\n\
         {admin}4lw.commands.whitelist=*\nmaxClientCnxns=0\n",
        opts.tick_time,
        data.display()
    );
    for line in &opts.extra_config {
        cfg.push_str(line);
        cfg.push('\n');
    }
    cfg
}

/// One Apache ZooKeeper JVM writing stdout and stderr to a log file;
/// killed (and reaped) on drop.
#[derive(Debug)]
pub(crate) struct JavaServer {
    child: Child,
    log: PathBuf,
}

impl JavaServer {
    /// Runs `main_class` (`ZooKeeperServerMain` or `QuorumPeerMain`) on
    /// `cfg`, appending its output to `log`.
    ///
    /// # Panics
    /// When the log file cannot be opened or `java` cannot be spawned.
    pub(crate) fn spawn(main_class: &str, cfg: &Path, log: &Path, opts: &ApacheZkOptions) -> JavaServer {
        let mut cp = ZOOKEEPER_JAR.to_string();
        if Path::new(SLF4J_BINDING).exists() {
            cp.push(':');
            cp.push_str(SLF4J_BINDING);
        }
        // Netty (serverCnxnFactory=NettyServerCnxnFactory, the TLS port)
        // needs two jars Debian's zookeeper.jar manifest does not name.
        for jar in NETTY_EXTRA {
            if Path::new(jar).exists() {
                cp.push(':');
                cp.push_str(jar);
            }
        }
        if Path::new(SNAPPY_JAR).exists() {
            cp.push(':');
            cp.push_str(SNAPPY_JAR);
        }
        // Jetty (the AdminServer) needs the servlet API, which Debian's
        // zookeeper.jar manifest does not name.
        if opts.admin_port.is_some() {
            cp.push(':');
            cp.push_str(SERVLET_API);
        }
        // Appending keeps the history of a server that is restarted.
        #[allow(clippy::expect_used)]
        let mut out = OpenOptions::new().create(true).append(true).open(log).expect("log file");
        let _ = writeln!(out, "======== zk-test-support: starting {main_class} {}", cfg.display());
        #[allow(clippy::expect_used)]
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new("java");
        if Path::new(JNI_DIR).exists() {
            cmd.arg(format!("-Djava.library.path={JNI_DIR}"));
        }
        cmd.arg(format!("-Xmx{}", opts.max_heap))
            .arg("-cp")
            .arg(cp)
            .arg(format!("-Dzookeeper.extendedTypesEnabled={}", opts.extended_types))
            .arg(format!("-Dzookeeper.admin.enableServer={}", opts.admin_port.is_some()))
            .args(&opts.jvm_args)
            .arg(main_class)
            .arg(cfg)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        #[allow(clippy::expect_used)]
        let child = cmd.spawn().expect("spawn java");
        JavaServer { child, log: log.to_path_buf() }
    }

    /// The JVM's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status when the JVM has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// What the server logged so far (over all its restarts).
    pub(crate) fn log(&self) -> String {
        read_log(&self.log)
    }
}

impl Drop for JavaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The contents of a log file, empty when it cannot be read.
pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// What a server says it is, from the `Mode:` line of `srvr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A single server not in a quorum.
    Standalone,
    /// The quorum's leader.
    Leader,
    /// A voting member following the leader.
    Follower,
    /// A non-voting member following the leader.
    Observer,
}

impl Mode {
    /// Parses the `Mode:` line of a `srvr` (or `stat`) answer.
    pub fn from_srvr(answer: &str) -> Option<Mode> {
        let mode = answer.lines().find_map(|l| l.strip_prefix("Mode:"))?;
        match mode.trim() {
            "standalone" => Some(Mode::Standalone),
            "leader" => Some(Mode::Leader),
            "follower" => Some(Mode::Follower),
            "observer" => Some(Mode::Observer),
            _ => None,
        }
    }
}

/// The [`Mode`] the server at `addr` reports to `srvr`; `None` when it
/// does not answer or is not serving requests (yet).
pub fn server_mode(addr: SocketAddr) -> Option<Mode> {
    four_letter_word(addr, "srvr").as_deref().and_then(Mode::from_srvr)
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

#[cfg(test)]
mod tests {
    use super::Mode;

    #[test]
    fn mode_from_srvr() {
        let answer = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nZxid: 0x100000000\n\
                      Mode: follower\nNode count: 5\n";
        assert_eq!(Mode::from_srvr(answer), Some(Mode::Follower));
        assert_eq!(Mode::from_srvr("Mode: leader\n"), Some(Mode::Leader));
        assert_eq!(Mode::from_srvr("Mode: standalone\n"), Some(Mode::Standalone));
        assert_eq!(Mode::from_srvr("Mode: observer"), Some(Mode::Observer));
        assert_eq!(Mode::from_srvr("This ZooKeeper instance is not currently serving requests\n"), None);
        assert_eq!(Mode::from_srvr(""), None);
    }
}
