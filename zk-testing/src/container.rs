//! zk-server in a Docker container, through [testcontainers] (the
//! `container` feature): an image built from a static `zk-server` binary
//! on `scratch` (nothing is pulled), and containers with their ports
//! published on free ports of 127.0.0.1.
//!
//! ```no_run
//! use zk_testing::container::{ZkContainer, ZkServerImage};
//!
//! #[tokio::test]
//! async fn against_a_container() {
//!     let zk = ZkContainer::start_with(ZkServerImage::default().with_tick_time(500)).await.unwrap();
//!     let client = zk_client::Client::connect(&zk.connect_string()).await.unwrap();
//!     client.create("/hello", b"world", zk_client::CreateMode::Persistent).await.unwrap();
//!     client.close().await.unwrap();
//!     // The container is stopped and removed when `zk` is dropped.
//! }
//! ```
//!
//! # The image, without pulling anything
//! [`ensure_image`] makes [`IMAGE`] (`zk-rs/zk-server:test`) once per
//! process, from the first of:
//! 1. the static binary it is given, or the one named by the environment
//!    variable `ZK_SERVER_STATIC_BIN`: `docker build` of a context holding
//!    [`DOCKERFILE`], the binary and [`ZOO_CFG`] (the legacy builder where
//!    buildx is missing);
//! 2. an [`IMAGE`] already in the local Docker (built before, or by hand).
//!
//! A static binary, from crates.io or a checkout:
//!
//! ```sh
//! RUSTFLAGS='-C target-feature=+crt-static' cargo install zk-server \
//!     --target x86_64-unknown-linux-gnu --root ~/.zk-rs
//! ZK_SERVER_STATIC_BIN=~/.zk-rs/bin/zk-server cargo test
//! ```
//!
//! [`ZkServerImage`] is an ordinary testcontainers [`Image`], so it also
//! works with testcontainers' own runner once [`ensure_image`] has made
//! it; [`ZkContainer`] adds the loopback-only port bindings, the readiness
//! check (`ruok` → `imok` on the mapped port), restarts that find the new
//! port, pause/unpause and network cuts.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::{ContainerPort, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, CopyToContainer, Image, ImageExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Error;

/// The image's repository name.
pub const IMAGE_NAME: &str = "zk-rs/zk-server";
/// The image's tag.
pub const IMAGE_TAG: &str = "test";
/// `IMAGE_NAME:IMAGE_TAG`.
pub const IMAGE: &str = "zk-rs/zk-server:test";
/// The client port inside the container.
pub const CLIENT_PORT: u16 = 2181;
/// The AdminServer's port inside the container (`/commands/*`, `/ready`).
pub const ADMIN_PORT: u16 = 8080;
/// The Prometheus endpoint's port inside the container (`/metrics`).
pub const METRICS_PORT: u16 = 7000;
/// Where the server keeps its snapshots and log inside the container (a
/// `VOLUME`).
pub const DATA_DIR: &str = "/data";
/// Set to the path of a static `zk-server` binary to use it instead of
/// building one.
pub const BINARY_ENV: &str = "ZK_SERVER_STATIC_BIN";

/// The `zoo.cfg` baked into the image (`/zoo.cfg`).
pub const ZOO_CFG: &str = "\
# zk-server in a container (zk-server/docker/Dockerfile)
dataDir=/data
clientPort=2181
clientPortAddress=0.0.0.0
4lw.commands.whitelist=*
tickTime=2000
maxClientCnxns=0
admin.serverPort=8080
metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
metricsProvider.httpPort=7000
";

/// The Dockerfile (the same as `zk-server/docker/Dockerfile` of the
/// repository, which a test keeps equal): the static binary and
/// `zoo.cfg` on `scratch`.
pub const DOCKERFILE: &str = "\
FROM scratch
COPY zk-server /zk-server
COPY zoo.cfg /zoo.cfg
VOLUME /data
EXPOSE 2181 8080 7000
ENV NO_COLOR=1
ENTRYPOINT [\"/zk-server\", \"/zoo.cfg\"]
";

/// The longest `docker build` may take.
const DOCKER_BUILD_LIMIT: Duration = Duration::from_secs(300);
/// The longest a quick Docker command (`info`, `version`) may take.
const DOCKER_QUICK_LIMIT: Duration = Duration::from_secs(30);
/// How long a container may take to log "serving" and answer `ruok`.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// What this process made of the image: `Some(Ok)` once it is there.
static BUILT: std::sync::Mutex<Option<Result<(), String>>> = std::sync::Mutex::new(None);

/// Whether a Docker daemon answers (`docker info`).
///
/// # Errors
/// Why not: no `docker` command, or the daemon is unreachable.
pub fn docker_available() -> Result<(), String> {
    let out = run_bounded(
        Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]),
        DOCKER_QUICK_LIMIT,
    )?;
    if out.status.success() { Ok(()) } else { Err(format!("`docker info` failed: {}", tail(&out.stderr, 5))) }
}

/// Makes [`IMAGE`] (see the module docs), once per process: from `binary`
/// (a static `zk-server`), else from `ZK_SERVER_STATIC_BIN`, else an
/// [`IMAGE`] already in the local Docker. Blocking: from async code call
/// it through `spawn_blocking` (as [`ZkContainer::start_with`] does).
///
/// # Errors
/// [`Error::Docker`] when no Docker daemon answers; [`Error::Image`] when
/// the image cannot be built, or there is neither a binary nor an image.
pub fn ensure_image(binary: Option<&Path>) -> Result<&'static str, Error> {
    let mut built = BUILT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match &*built {
        Some(Ok(())) => return Ok(IMAGE),
        Some(Err(why)) => return Err(Error::Image(why.clone())),
        None => {}
    }
    docker_available().map_err(Error::Docker)?;
    let binary = binary.map(Path::to_path_buf).or_else(|| std::env::var_os(BINARY_ENV).map(PathBuf::from));
    let outcome = match binary {
        Some(b) if b.is_file() => docker_build(&b),
        Some(b) => Err(format!("{} is not a file (a static zk-server binary)", b.display())),
        None if image_present() => Ok(()),
        None => {
            // Nothing to build from yet: a later call with a binary may.
            return Err(Error::Image(format!(
                "no {IMAGE} image and no binary to build it from: set {BINARY_ENV} to a static zk-server \
                 (RUSTFLAGS='-C target-feature=+crt-static' cargo install zk-server --target <triple>)"
            )));
        }
    };
    *built = Some(outcome.clone());
    outcome.map(|()| IMAGE).map_err(Error::Image)
}

/// Whether [`IMAGE`] is in the local Docker.
fn image_present() -> bool {
    run_bounded(Command::new("docker").args(["image", "inspect", IMAGE]), DOCKER_QUICK_LIMIT)
        .is_ok_and(|o| o.status.success())
}

/// `docker build` of a temporary context: Dockerfile, binary, zoo.cfg.
fn docker_build(binary: &Path) -> Result<(), String> {
    let ctx = tempfile::Builder::new()
        .prefix("zk-server-image")
        .tempdir()
        .map_err(|e| format!("temp build context: {e}"))?;
    let write = |name: &str, text: &str| {
        std::fs::write(ctx.path().join(name), text).map_err(|e| format!("writing {name}: {e}"))
    };
    write("Dockerfile", DOCKERFILE)?;
    write("zoo.cfg", ZOO_CFG)?;
    std::fs::copy(binary, ctx.path().join("zk-server"))
        .map_err(|e| format!("copying {}: {e}", binary.display()))?;
    let mut cmd = Command::new("docker");
    cmd.args(["build", "--quiet", "--tag", IMAGE]).arg(ctx.path());
    // The Dockerfile needs no BuildKit feature: use the legacy builder where
    // the buildx plugin is missing (the CLI would refuse otherwise).
    let buildx = run_bounded(Command::new("docker").args(["buildx", "version"]), DOCKER_QUICK_LIMIT);
    if !buildx.is_ok_and(|o| o.status.success()) {
        cmd.env("DOCKER_BUILDKIT", "0");
    }
    let out = run_bounded(&mut cmd, DOCKER_BUILD_LIMIT)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`docker build` failed:\n{}", tail(&out.stderr, 40)))
    }
}

/// Runs `cmd` to completion, killing it after `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    // Drain both pipes in threads so a chatty child cannot block.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_thread = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err_thread = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {limit:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    Ok(Output { status, stdout, stderr })
}

/// The last `n` lines of `bytes`.
fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The zk-server image as a testcontainers [`Image`]: waits for the
/// "serving" log line, exposes 2181, and optionally replaces `/zoo.cfg`
/// and mounts a volume on `/data`.
///
/// Call [`ensure_image`] before starting it with testcontainers' runner
/// (nothing can be pulled: the image exists only once built here), and
/// prefer [`ZkServerImage::request`] to a bare `start()`, which would
/// publish the port on every interface.
///
/// ```no_run
/// # async fn f() {
/// use testcontainers::runners::AsyncRunner;
/// use zk_testing::container::{self, ZkServerImage};
/// tokio::task::spawn_blocking(|| container::ensure_image(None)).await.unwrap().unwrap();
/// let c = ZkServerImage::default().request().start().await.unwrap();
/// let port = c.get_host_port_ipv4(container::CLIENT_PORT).await.unwrap();
/// println!("127.0.0.1:{port}");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ZkServerImage {
    /// The replacement `zoo.cfg`, if any ...
    zoo_cfg: Option<String>,
    /// ... and the copy that puts it in place.
    copies: Vec<CopyToContainer>,
    /// Sources of the copies, by target (the copies cannot be inspected).
    copy_targets: Vec<String>,
    mounts: Vec<Mount>,
    ports: [ContainerPort; 3],
    /// The Docker network to join and the container's name on it.
    network: Option<(String, String)>,
}

impl Default for ZkServerImage {
    fn default() -> Self {
        ZkServerImage {
            zoo_cfg: None,
            copies: Vec::new(),
            copy_targets: Vec::new(),
            mounts: Vec::new(),
            ports: [
                ContainerPort::Tcp(CLIENT_PORT),
                ContainerPort::Tcp(ADMIN_PORT),
                ContainerPort::Tcp(METRICS_PORT),
            ],
            network: None,
        }
    }
}

impl ZkServerImage {
    /// Runs with this `zoo.cfg` instead of [`ZOO_CFG`]. Keep
    /// `clientPort=2181` and `clientPortAddress=0.0.0.0`.
    pub fn with_zoo_cfg(mut self, text: &str) -> Self {
        self.zoo_cfg = Some(text.to_string());
        self.copy(text.as_bytes().to_vec(), "/zoo.cfg")
    }

    fn copy(mut self, bytes: Vec<u8>, target: &str) -> Self {
        if let Some(k) = self.copy_targets.iter().position(|t| t == target) {
            self.copy_targets.remove(k);
            self.copies.remove(k);
        }
        self.copies.push(CopyToContainer::new(bytes, target));
        self.copy_targets.push(target.to_string());
        self
    }

    /// Writes `id` to `/data/myid` before the server starts: its id in an
    /// ensemble.
    pub fn with_myid(self, id: u8) -> Self {
        self.copy(format!("{id}\n").into_bytes(), &format!("{DATA_DIR}/myid"))
    }

    /// Joins the Docker network `network` (created when missing, removed
    /// with the last container on it) as `name`, the host name the other
    /// containers on it reach it by.
    pub fn on_network(mut self, network: &str, name: &str) -> Self {
        self.network = Some((network.to_string(), name.to_string()));
        self
    }

    /// [`ZOO_CFG`] with another `tickTime` (sessions may then be as short
    /// as two ticks).
    pub fn with_tick_time(self, millis: u32) -> Self {
        self.with_config_lines(&[&format!("tickTime={millis}")])
    }

    /// [`ZOO_CFG`] with `lines` appended (a later key overrides an earlier
    /// one), e.g. `["minSessionTimeout=1000"]`.
    pub fn with_config_lines(self, lines: &[&str]) -> Self {
        let mut text = self.zoo_cfg();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        self.with_zoo_cfg(&text)
    }

    /// The `zoo.cfg` the container will run with.
    pub fn zoo_cfg(&self) -> String {
        self.zoo_cfg.clone().unwrap_or_else(|| ZOO_CFG.to_string())
    }

    /// Mounts the named Docker volume `name` on `/data` (created by Docker
    /// when missing; see [`DataVolume`]), so the data outlives the
    /// container.
    pub fn with_data_volume(mut self, name: &str) -> Self {
        self.mounts.retain(|m| m.target() != Some(DATA_DIR));
        self.mounts.push(Mount::volume_mount(name, DATA_DIR));
        self
    }

    /// The request [`ZkContainer`] starts: port 2181 published on
    /// 127.0.0.1 only (a free host port) and a 60 s startup limit.
    pub fn request(self) -> ContainerRequest<ZkServerImage> {
        let network = self.network.clone();
        let req = self.with_startup_timeout(READY_LIMIT).with_host_config_modifier(|hc: &mut HostConfig| {
            hc.publish_all_ports = Some(false);
            let binding =
                || PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) };
            hc.port_bindings = Some(
                [CLIENT_PORT, ADMIN_PORT, METRICS_PORT]
                    .into_iter()
                    .map(|p| (format!("{p}/tcp"), Some(vec![binding()])))
                    .collect(),
            );
        });
        match network {
            Some((network, name)) => req.with_network(network).with_container_name(name),
            None => req,
        }
    }
}

impl Image for ZkServerImage {
    fn name(&self) -> &str {
        IMAGE_NAME
    }

    fn tag(&self) -> &str {
        IMAGE_TAG
    }

    fn ready_conditions(&self) -> Vec<WaitFor> {
        vec![WaitFor::message_on_stdout("serving")]
    }

    fn mounts(&self) -> impl IntoIterator<Item = &Mount> {
        &self.mounts
    }

    fn copy_to_sources(&self) -> impl IntoIterator<Item = &CopyToContainer> {
        &self.copies
    }

    fn expose_ports(&self) -> &[ContainerPort] {
        &self.ports
    }
}

/// `n` containers of the image forming one ensemble on a private Docker
/// network of their own: server `i` (from 0) has myid `i + 1` and the host
/// name `<network>-<i + 1>`, and `zoo.cfg` is [`ZOO_CFG`] with `lines`
/// and the `server.N` lines added. Returns the network's name and the
/// containers, each once it answers `ruok` (which it does before the
/// ensemble has a leader).
///
/// # Errors
/// As [`ZkContainer::start_with`].
pub async fn start_ensemble(n: usize, lines: &[&str]) -> Result<(String, Vec<ZkContainer>), Error> {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let network = format!("zk-rs-net-{}-{}-{nanos:x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let mut cfg: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    for i in 1..=n {
        cfg.push(format!("server.{i}={network}-{i}:2888:3888"));
    }
    let cfg: Vec<&str> = cfg.iter().map(String::as_str).collect();
    let mut members = Vec::new();
    for i in 1..=n {
        let image = ZkServerImage::default()
            .with_config_lines(&cfg)
            .with_myid(i as u8)
            .on_network(&network, &format!("{network}-{i}"));
        members.push(ZkContainer::start_with(image).await?);
    }
    Ok((network, members))
}

/// A named Docker volume for `/data` with a unique name, removed
/// (`docker volume rm -f`) on drop: drop it after every container using
/// it.
#[derive(Debug)]
pub struct DataVolume {
    name: String,
}

impl DataVolume {
    /// A fresh name; Docker creates the volume when a container first
    /// mounts it.
    pub fn new() -> DataVolume {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name =
            format!("zk-rs-test-{}-{}-{nanos:x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        DataVolume { name }
    }

    /// The volume's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Default for DataVolume {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for DataVolume {
    fn drop(&mut self) {
        let _ =
            run_bounded(Command::new("docker").args(["volume", "rm", "-f", &self.name]), DOCKER_QUICK_LIMIT);
    }
}

/// `ruok` on `addr`: whether the answer is `imok` within a second.
pub async fn ruok(addr: SocketAddr) -> bool {
    four_letter_word(addr, "ruok").await.is_some_and(|a| a == "imok")
}

/// Sends a four-letter word and returns the answer (`None` on any failure
/// or after 2 s).
pub async fn four_letter_word(addr: SocketAddr, cmd: &str) -> Option<String> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(cmd.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.ok()?;
        String::from_utf8(answer).ok()
    };
    tokio::time::timeout(Duration::from_secs(2), exchange).await.ok().flatten()
}

/// A running zk-server container, stopped and removed on drop.
#[derive(Debug)]
pub struct ZkContainer {
    container: ContainerAsync<ZkServerImage>,
    port: u16,
}

impl ZkContainer {
    /// Starts a container of the default image (see [`Self::start_with`]).
    ///
    /// # Errors
    /// As [`Self::start_with`].
    pub async fn start() -> Result<ZkContainer, Error> {
        Self::start_with(ZkServerImage::default()).await
    }

    /// Makes the image if this process has not yet ([`ensure_image`]),
    /// starts a container of `image` with its ports on free ports of
    /// 127.0.0.1, and returns once the server answers `ruok` there.
    ///
    /// # Errors
    /// [`Error::Docker`] without a Docker daemon, [`Error::Image`] when the
    /// image cannot be made, [`Error::Container`] when the container does
    /// not start or answer within 60 s (its log is in the message).
    pub async fn start_with(image: ZkServerImage) -> Result<ZkContainer, Error> {
        tokio::task::spawn_blocking(|| ensure_image(None))
            .await
            .map_err(|e| Error::Image(format!("the image task failed: {e}")))??;
        let container = image
            .request()
            .start()
            .await
            .map_err(|e| Error::Container(format!("starting a {IMAGE} container: {e}")))?;
        let mut zk = ZkContainer { container, port: 0 };
        zk.await_ready().await.map_err(Error::Container)?;
        Ok(zk)
    }

    /// Reads the mapped port and waits for `imok` on it.
    async fn await_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(port) = self.container.get_host_port_ipv4(CLIENT_PORT).await {
                self.port = port;
                if ruok(self.addr()).await {
                    return Ok(());
                }
            }
            if started.elapsed() > READY_LIMIT {
                return Err(format!(
                    "container {} did not answer ruok on 127.0.0.1:{} within {READY_LIMIT:?}; log:\n{}",
                    self.id(),
                    self.port,
                    self.logs().await
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where the container's AdminServer (8080: `/commands/*`, `/ready`)
    /// is published on 127.0.0.1.
    ///
    /// # Panics
    /// When Docker does not say.
    pub async fn admin_addr(&self) -> SocketAddr {
        self.published(ADMIN_PORT).await
    }

    /// Where the container's Prometheus endpoint (7000: `/metrics`) is
    /// published on 127.0.0.1.
    ///
    /// # Panics
    /// When Docker does not say.
    pub async fn metrics_addr(&self) -> SocketAddr {
        self.published(METRICS_PORT).await
    }

    async fn published(&self, port: u16) -> SocketAddr {
        let host = self
            .container
            .get_host_port_ipv4(port)
            .await
            .unwrap_or_else(|e| panic!("the host port of {port}: {e}"));
        SocketAddr::from((Ipv4Addr::LOCALHOST, host))
    }

    /// The host port mapped to 2181 (it changes on [`Self::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The connect string for clients: `127.0.0.1:<port>`.
    pub fn connect_string(&self) -> String {
        self.addr().to_string()
    }

    /// The container id.
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// The testcontainers handle, for everything else.
    pub fn container(&self) -> &ContainerAsync<ZkServerImage> {
        &self.container
    }

    /// Stops the server with SIGTERM (`docker stop`, SIGKILL after 10 s);
    /// the container and its `/data` stay until [`Self::restart`] or drop.
    ///
    /// # Panics
    /// When Docker fails.
    pub async fn stop(&self) {
        self.container
            .stop_with_timeout(Some(10))
            .await
            .unwrap_or_else(|e| panic!("stopping container {}: {e}", self.id()));
    }

    /// Starts the stopped container again and waits until it answers
    /// `ruok`; the host port is a new one.
    ///
    /// # Panics
    /// When Docker fails or the server does not come back within 60 s.
    pub async fn restart(&mut self) {
        self.container.start().await.unwrap_or_else(|e| panic!("starting container {}: {e}", self.id()));
        if let Err(e) = self.await_ready().await {
            panic!("{e}");
        }
    }

    /// Freezes every process of the container (`docker pause`): the
    /// server neither answers nor expires sessions, while its socket
    /// still accepts connections.
    ///
    /// # Panics
    /// When Docker fails.
    pub async fn pause(&self) {
        self.container.pause().await.unwrap_or_else(|e| panic!("pausing container {}: {e}", self.id()));
    }

    /// Thaws the container (`docker unpause`).
    ///
    /// # Panics
    /// When Docker fails.
    pub async fn unpause(&self) {
        self.container.unpause().await.unwrap_or_else(|e| panic!("unpausing container {}: {e}", self.id()));
    }

    /// Cuts the container off the Docker network `network` (`docker
    /// network disconnect`): its peers and the host lose it (the mapped
    /// port goes with the network).
    ///
    /// # Panics
    /// When Docker fails.
    pub async fn disconnect(&self, network: &str) {
        self.network_cmd("disconnect", network).await;
    }

    /// Joins `network` again (`docker network connect`) and waits until
    /// the server answers `ruok` on its new mapped port.
    ///
    /// # Panics
    /// When Docker fails or the server does not answer within 60 s.
    pub async fn reconnect(&mut self, network: &str) {
        self.network_cmd("connect", network).await;
        if let Err(e) = self.await_ready().await {
            panic!("{e}");
        }
    }

    async fn network_cmd(&self, verb: &'static str, network: &str) {
        let (network, id) = (network.to_string(), self.id().to_string());
        let out = tokio::task::spawn_blocking(move || {
            run_bounded(Command::new("docker").args(["network", verb, &network, &id]), DOCKER_QUICK_LIMIT)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("docker network {verb}: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => panic!("docker network {verb}: {e}"),
        }
    }

    /// The server's `Mode:` (`leader`, `follower`, `observer`,
    /// `standalone`) from `srvr`, `None` when it does not answer or serves
    /// no one.
    pub async fn mode(&self) -> Option<String> {
        let srvr = four_letter_word(self.addr(), "srvr").await?;
        srvr.lines().find_map(|l| l.strip_prefix("Mode: ")).map(|m| m.trim().to_string())
    }

    /// The server's log so far (stdout, then stderr).
    pub async fn logs(&self) -> String {
        let out = self.container.stdout_to_vec().await.unwrap_or_default();
        let err = self.container.stderr_to_vec().await.unwrap_or_default();
        format!("{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err))
    }

    /// Stops and removes the container now (dropping does the same).
    ///
    /// # Panics
    /// When Docker fails.
    pub async fn remove(self) {
        let id = self.id().to_string();
        self.container.rm().await.unwrap_or_else(|e| panic!("removing container {id}: {e}"));
    }
}
