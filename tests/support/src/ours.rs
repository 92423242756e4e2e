//! Our own `zk-server` as child processes: the binary (built from this
//! work tree), and [`OurEnsemble`], an n-server ensemble of processes on
//! loopback that a test can SIGKILL and restart one by one (for what an
//! in-process `zk_server::TestingCluster` cannot show: a process dying at
//! any instruction, its sockets closed by the kernel).

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::apache::{Mode, server_mode};

/// The `zk-server` binary, built once per test process.
///
/// The binary belongs to the zk-server package, so Cargo neither builds it
/// for this test nor tells us where it is (`CARGO_BIN_EXE_*` is only set for
/// the package's own binaries). Taking `target/<profile>/zk-server` as it is
/// could run a binary older than the sources under test, so we always ask
/// Cargo to build it: a no-op (well under a second) when it is up to date,
/// into the same target dir and profile as this test, and take the path
/// from Cargo's JSON artifact messages rather than guessing the layout.
/// `ZK_SERVER_BIN` overrides all of this; when Cargo cannot be run (a test
/// binary started by hand), an existing sibling binary is used with a
/// warning.
pub fn zk_server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("ZK_SERVER_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/<this test>, or target/<profile>/<a binary>
        // (zk-bench).
        let parent = exe.parent().expect("the executable's dir");
        let profile_dir = if parent.file_name().is_some_and(|n| n == "deps") {
            parent.parent().unwrap_or(parent)
        } else {
            parent
        }
        .to_path_buf();
        let sibling = profile_dir.join("zk-server");
        match cargo_build_server(&profile_dir) {
            Ok(p) => p,
            Err(e) if sibling.is_file() => {
                eprintln!("WARNING: could not build zk-server ({e}); using {} as it is", sibling.display());
                sibling
            }
            Err(e) => {
                panic!("cannot build the zk-server binary: {e} (set ZK_SERVER_BIN to use a prebuilt one)")
            }
        }
    })
    .clone()
}

fn cargo_build_server(profile_dir: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "-p",
        "zk-server",
        "--bin",
        "zk-server",
        "--message-format=json-render-diagnostics",
    ]);
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(p) => p.to_string(),
    };
    cmd.args(["--profile", &profile]);
    // The target dir is the ancestor Cargo marked with CACHEDIR.TAG; a
    // directory between it and the profile dir is a target triple.
    if let Some(target_dir) = profile_dir.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()) {
        cmd.arg("--target-dir").arg(target_dir);
        if let Some(parent) = profile_dir.parent() {
            if parent != target_dir {
                if let Some(triple) = parent.file_name() {
                    cmd.arg("--target").arg(triple);
                }
            }
        }
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("running cargo: {e}"))?;
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // Bounded: another cargo may hold the build lock for a while, but not forever.
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("cargo build did not finish within 600 s".into());
            }
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("cargo build failed ({status}):\n{err}"));
    }
    for line in out.lines().filter(|l| l.contains("\"compiler-artifact\"")) {
        if let Some(rest) = line.split("\"executable\":\"").nth(1) {
            let path = rest.split('"').next().unwrap_or("");
            if Path::new(path).file_name().is_some_and(|n| n == "zk-server") {
                return Ok(PathBuf::from(path));
            }
        }
    }
    Err(format!("cargo build did not report the zk-server executable:\n{err}"))
}

/// One `zk-server` process started from a `zoo.cfg` (say an Apache
/// server's, to take its place), logging to a file; SIGKILLed on drop.
#[derive(Debug)]
pub struct OurProcess {
    child: Child,
    log: PathBuf,
}

impl OurProcess {
    /// Starts `zk-server cfg`, appending its output to `log`.
    ///
    /// # Panics
    /// When the log cannot be opened or the process started.
    pub fn start(cfg: &Path, log: &Path) -> OurProcess {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log");
        let err = out.try_clone().expect("log");
        let child = Command::new(zk_server_binary())
            .arg(cfg)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn zk-server");
        OurProcess { child, log: log.to_path_buf() }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for OurProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One member of an [`OurEnsemble`].
#[derive(Debug)]
struct Member {
    client_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// An ensemble of `zk-server` processes on loopback (ids 1..=n), each with
/// its own data dir under a temporary root; every process is SIGKILLed
/// when the ensemble is dropped.
#[derive(Debug)]
pub struct OurEnsemble {
    members: Vec<Member>,
    root: tempfile::TempDir,
}

impl OurEnsemble {
    /// Starts `n` servers with `tickTime=200`, `initLimit=10`,
    /// `syncLimit=5` and `extra` zoo.cfg lines.
    ///
    /// # Panics
    /// When the files cannot be written or a process cannot start.
    pub fn start(n: usize, extra: &str) -> OurEnsemble {
        let ports = crate::free_ports(2 * n);
        let servers: Vec<(i64, u16, u16)> =
            (0..n).map(|i| (i as i64 + 1, ports[2 * i], ports[2 * i + 1])).collect();
        let ids: Vec<i64> = servers.iter().map(|s| s.0).collect();
        let cfg = format!("tickTime=200\ninitLimit=10\nsyncLimit=5\n{extra}");
        Self::start_members(&ids, &servers, &cfg)
    }

    /// Starts our servers `my_ids` of the ensemble `servers` (`(sid,
    /// quorum port, election port)` on 127.0.0.1; the others may be Apache
    /// servers the caller starts) with the zoo.cfg lines `cfg` (tickTime,
    /// limits ...). Server `i` of this ensemble is `my_ids[i]`.
    ///
    /// # Panics
    /// As [`OurEnsemble::start`].
    pub fn start_members(my_ids: &[i64], servers: &[(i64, u16, u16)], cfg: &str) -> OurEnsemble {
        let root = tempfile::Builder::new().prefix("zk-ours").tempdir().expect("temp dir");
        // Not one of the ensemble's quorum or election ports (those were
        // free, and let go, a moment ago: the system may hand them out again).
        let taken: Vec<u16> = servers.iter().flat_map(|(_, q, e)| [*q, *e]).collect();
        let client_ports = loop {
            let ports = crate::free_ports(my_ids.len());
            if !ports.iter().any(|p| taken.contains(p)) {
                break ports;
            }
        };
        let lines: String =
            servers.iter().map(|(sid, q, e)| format!("server.{sid}=127.0.0.1:{q}:{e}\n")).collect();
        let mut members = Vec::new();
        for (i, id) in my_ids.iter().enumerate() {
            let dir = root.path().join(format!("server{id}"));
            std::fs::create_dir_all(&dir).expect("data dir");
            std::fs::write(dir.join("myid"), format!("{id}\n")).expect("myid");
            let text = format!(
                "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\n\
                 maxClientCnxns=0\nmaxSessionTimeout=60000\n{cfg}\n{lines}",
                dir.display(),
                client_ports[i]
            );
            std::fs::write(dir.join("zoo.cfg"), text).expect("zoo.cfg");
            members.push(Member { client_port: client_ports[i], dir, child: None });
        }
        let mut e = OurEnsemble { members, root };
        for i in 0..my_ids.len() {
            e.restart(i);
        }
        e
    }

    /// How many servers it has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// All client addresses, comma-separated.
    pub fn connect_string(&self) -> String {
        self.members.iter().map(|m| format!("127.0.0.1:{}", m.client_port)).collect::<Vec<_>>().join(",")
    }

    /// Server `i`'s client address (0-based).
    pub fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.members[i].client_port))
    }

    /// Server `i`'s data dir.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.members[i].dir.clone()
    }

    /// The temporary root of every data dir.
    pub fn root_dir(&self) -> &Path {
        self.root.path()
    }

    /// Whether server `i`'s process runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        match &mut self.members[i].child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Server `i`'s role as `srvr` reports it; `None` when it is not
    /// serving.
    pub fn mode(&self, i: usize) -> Option<Mode> {
        server_mode(self.addr(i))
    }

    /// The index of the server that leads and serves, if one does.
    pub fn leader(&self) -> Option<usize> {
        (0..self.len()).find(|i| self.mode(*i) == Some(Mode::Leader))
    }

    /// Waits until a leader serves and every running server serves; the
    /// leader's index.
    ///
    /// # Panics
    /// When that does not happen within `secs`.
    pub fn wait_ready(&mut self, secs: u64) -> usize {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(l) = self.leader() {
                let all = (0..self.len()).all(|i| !self.is_running_ref(i) || self.mode(i).is_some());
                if all {
                    return l;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the ensemble did not serve within {secs} s:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn is_running_ref(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// SIGKILLs server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts server `i` again from its data dir (no-op when it runs).
    ///
    /// # Panics
    /// When the process cannot be started.
    pub fn restart(&mut self, i: usize) {
        if self.members[i].child.is_some() {
            return;
        }
        let dir = &self.members[i].dir;
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).expect("log");
        let err = log.try_clone().expect("log");
        let child = Command::new(zk_server_binary())
            .arg(dir.join("zoo.cfg"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn zk-server");
        self.members[i].child = Some(child);
    }

    /// Server `i`'s log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.members[i].dir.join("server.log")).unwrap_or_default()
    }

    /// The last lines of every server's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for i in 0..self.len() {
            let log = self.log(i);
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!(
                "--- server {} ---\n{}\n",
                i + 1,
                lines[lines.len().saturating_sub(30)..].join("\n")
            ));
        }
        out
    }
}

impl Drop for OurEnsemble {
    fn drop(&mut self) {
        for i in 0..self.len() {
            self.kill(i);
        }
    }
}
