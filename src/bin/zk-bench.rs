//! `zk-bench`: a load tool for any ZooKeeper server, built on zk-client.
//!
//! ```text
//! zk-bench run --connect 127.0.0.1:2181 --workload get --sessions 100 --inflight 10 --seconds 10
//! zk-bench compare [--seconds 10] [--rounds 3] [--jit-warmup 20]
//!                                     # Apache ZooKeeper 3.8 vs zk-server, same loads, side by side
//! zk-bench memory [--sizes 100000,1000000,5000000]
//!                                     # memory of both servers holding N znodes of 100 bytes
//! zk-bench restart [--sizes 1000000,5000000]
//!                                     # data dir size and time to serve again after a kill
//! zk-bench ensemble [--seconds 5]     # a 3-server Apache ensemble vs a 3-server zk-server ensemble
//! ```
//!
//! `compare`, `memory` and `restart` start Apache ZooKeeper (Debian's
//! `zookeeper` package) and the `zk-server` binary (build it first with
//! `cargo build --release -p zk-server`) as child processes on loopback
//! ports with temporary data dirs in the same file system, with the same
//! `zoo.cfg` settings (fsync on), and stop them after. Extra settings go
//! to both servers: `ZK_BENCH_EXTRA_CFG='key=value;key=value'`. Every
//! figure is the median of several rounds that alternate which server goes
//! first; the spread (lowest-highest) is printed with it.
//! Workloads: `get` (getData of 100-byte nodes), `set` (setData, each a
//! durable write), `create` (persistent creates), `mixed` (90% get, 10% set).
//! `--generator zookeeper-client` drives `run` and `compare` with the
//! `zookeeper-client` crate instead of zk-client (how a client batches its
//! requests changes what a server spends per request: this shows the
//! servers under another client's traffic).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zk_client::{Client, CreateMode};

/// The client library the load generator drives the servers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Generator {
    /// zk-client, this workspace's client (the default).
    Ours,
    /// The `zookeeper-client` crate: the same loads shaped by another
    /// client's batching.
    ZookeeperClient,
}

impl Generator {
    fn name(self) -> &'static str {
        match self {
            Generator::Ours => "zk-client",
            Generator::ZookeeperClient => "zookeeper-client 0.11",
        }
    }
}

/// One session of the load generator, on either client library.
#[derive(Clone)]
enum Session {
    Ours(Client),
    Theirs(zookeeper_client::Client),
}

impl Session {
    async fn connect(cs: &str, g: Generator) -> Result<Session, String> {
        Ok(match g {
            Generator::Ours => Session::Ours(
                Client::builder(cs)
                    .session_timeout(Duration::from_secs(30))
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            Generator::ZookeeperClient => Session::Theirs(
                zookeeper_client::Client::connector()
                    .with_session_timeout(Duration::from_secs(30))
                    .connect(cs)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        })
    }

    async fn get(&self, path: &str) -> bool {
        match self {
            Session::Ours(c) => c.get_data(path).await.is_ok(),
            Session::Theirs(c) => c.get_data(path).await.is_ok(),
        }
    }

    async fn set(&self, path: &str, data: &[u8]) -> bool {
        match self {
            Session::Ours(c) => c.set_data(path, data, None).await.is_ok(),
            Session::Theirs(c) => c.set_data(path, data, None).await.is_ok(),
        }
    }

    async fn create(&self, path: &str, data: &[u8]) -> bool {
        match self {
            Session::Ours(c) => c.create(path, data, CreateMode::Persistent).await.is_ok(),
            Session::Theirs(c) => {
                let opts =
                    zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
                c.create(path, data, &opts).await.is_ok()
            }
        }
    }

    async fn close(self) {
        match self {
            Session::Ours(c) => {
                let _ = c.close().await;
            }
            // Its session closes when the last handle goes.
            Session::Theirs(c) => drop(c),
        }
    }
}

#[derive(Debug, Clone)]
struct Load {
    /// Which client library generates the load (`--generator`).
    generator: Generator,
    workload: String,
    sessions: usize,
    inflight: usize,
    seconds: u64,
    warmup: u64,
    size: usize,
    nodes: usize,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            generator: Generator::Ours,
            workload: "get".into(),
            sessions: 100,
            inflight: 10,
            seconds: 10,
            warmup: 2,
            size: 100,
            nodes: 1000,
        }
    }
}

#[derive(Debug, Clone)]
struct Outcome {
    ops_per_sec: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    errors: u64,
}

fn pct(sorted: &[u32], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    u64::from(sorted[((q * sorted.len() as f64) as usize).min(sorted.len() - 1)])
}

const ROOT: &str = "/zk-bench";

async fn prepare(cs: &str, load: &Load) -> Result<(), String> {
    let c = Client::connect(cs).await.map_err(|e| e.to_string())?;
    let _ = c.create(ROOT, b"", CreateMode::Persistent).await;
    let data = vec![b'x'; load.size];
    let mut futs = Vec::new();
    for i in 0..load.nodes {
        futs.push(c.create(&format!("{ROOT}/n{i}"), &data, CreateMode::Persistent));
        if futs.len() >= 200 {
            for f in futs.drain(..) {
                let _ = f.await;
            }
        }
    }
    for f in futs {
        let _ = f.await;
    }
    c.close().await.map_err(|e| e.to_string())
}

async fn run(cs: &str, load: &Load) -> Result<Outcome, String> {
    prepare(cs, load).await?;
    let mut clients = Vec::with_capacity(load.sessions);
    for _ in 0..load.sessions {
        clients.push(Session::connect(cs, load.generator).await?);
    }
    let recording = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(load.warmup + load.seconds);
    let data: Arc<[u8]> = vec![b'y'; load.size].into();
    let mut tasks = Vec::new();
    let counter = Arc::new(AtomicU64::new(0));
    // Creates of each run get names of their own (a server serves many
    // runs in `compare`): a run id from the clock.
    let run_id =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
    for (s, c) in clients.iter().enumerate() {
        for k in 0..load.inflight {
            let (c, recording, errors, data, counter) =
                (c.clone(), recording.clone(), errors.clone(), data.clone(), counter.clone());
            let workload = load.workload.clone();
            let nodes = load.nodes;
            let mut seed = (s * 7919 + k * 104_729 + 1) as u64;
            tasks.push(tokio::spawn(async move {
                let mut lat: Vec<u32> = Vec::with_capacity(1 << 14);
                while Instant::now() < stop_at {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let node = format!("{ROOT}/n{}", seed as usize % nodes);
                    let t = Instant::now();
                    let ok = match workload.as_str() {
                        "set" => c.set(&node, &data).await,
                        "create" => {
                            let n = counter.fetch_add(1, Ordering::Relaxed);
                            c.create(&format!("{ROOT}/c{run_id}-{n}"), &data).await
                        }
                        "mixed" if seed % 10 == 0 => c.set(&node, &data).await,
                        _ => c.get(&node).await,
                    };
                    if recording.load(Ordering::Relaxed) {
                        if ok {
                            lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                lat
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(load.warmup)).await;
    recording.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())?);
    }
    let secs = started.elapsed().as_secs_f64().max(load.seconds as f64);
    all.sort_unstable();
    for c in clients {
        c.close().await;
    }
    Ok(Outcome {
        ops_per_sec: all.len() as f64 / secs,
        p50: pct(&all, 0.5),
        p99: pct(&all, 0.99),
        p999: pct(&all, 0.999),
        errors: errors.load(Ordering::Relaxed),
    })
}

fn print(name: &str, o: &Outcome) {
    println!(
        "  {name:<14} {:>10.0} ops/s   p50 {:>7} us   p99 {:>7} us   p999 {:>7} us   errors {}",
        o.ops_per_sec, o.p50, o.p99, o.p999, o.errors
    );
}

/// The `zoo.cfg` lines both servers get, after their `dataDir` and
/// `clientPort`.
fn shared_config() -> Vec<String> {
    let mut lines: Vec<String> = vec!["tickTime=2000".into(), "maxClientCnxns=0".into()];
    lines.extend(
        std::env::var("ZK_BENCH_EXTRA_CFG")
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from),
    );
    lines
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Apache,
    Ours,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Apache => "Apache 3.8",
            Kind::Ours => "zk-server",
        }
    }

    /// Both kinds (or the one asked for), the first one alternating with
    /// `round`.
    fn order(round: usize, only: Option<Kind>) -> Vec<Kind> {
        let both = if round % 2 == 0 { [Kind::Apache, Kind::Ours] } else { [Kind::Ours, Kind::Apache] };
        both.into_iter().filter(|k| only.is_none_or(|o| o == *k)).collect()
    }
}

/// A server of either kind on a data dir.
enum Running {
    Apache(zk_test_support::apache::ApacheZk),
    Ours(OurServer),
}

impl Running {
    /// Starts `kind` on `data` (a fresh temporary dir when `None`).
    fn start(kind: Kind, data: Option<PathBuf>, heap: &str) -> Result<Running, String> {
        match kind {
            Kind::Apache => {
                let opts = zk_test_support::apache::ApacheZkOptions {
                    max_heap: heap.into(),
                    extra_config: shared_config(),
                    data_dir: data,
                    ..Default::default()
                };
                let server = std::panic::catch_unwind(|| zk_test_support::apache::ApacheZk::start_with(opts))
                    .map_err(|_| "Apache ZooKeeper did not start".to_string())?;
                server.map(Running::Apache).ok_or_else(|| "Apache ZooKeeper is not installed".to_string())
            }
            Kind::Ours => OurServer::start(data).map(Running::Ours),
        }
    }

    fn connect_string(&self) -> String {
        match self {
            Running::Apache(s) => s.connect_string(),
            Running::Ours(s) => s.connect_string(),
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Running::Apache(s) => s.pid(),
            Running::Ours(s) => s.child.id(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        match self {
            Running::Apache(s) => s.data_dir(),
            Running::Ours(s) => s.data.clone(),
        }
    }
}

/// Our server as a child process.
struct OurServer {
    child: Child,
    port: u16,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl OurServer {
    fn start(data: Option<PathBuf>) -> Result<OurServer, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let bin = exe.with_file_name("zk-server");
        if !bin.exists() {
            return Err(format!(
                "{} not found: build it first with `cargo build --release -p zk-server`",
                bin.display()
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data = data.unwrap_or_else(|| dir.path().join("data"));
        let port = zk_test_support::free_port();
        let cfg = dir.path().join("zoo.cfg");
        let mut text = format!(
            "dataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\n",
            data.display()
        );
        for line in shared_config() {
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(&cfg, text).map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let start = Instant::now();
        while zk_test_support::apache::four_letter_word(addr, "ruok").as_deref() != Some("imok") {
            if start.elapsed() > Duration::from_secs(120) {
                return Err("zk-server did not come up".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(OurServer { child, port, data, _dir: dir })
    }

    fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for OurServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// The file system a path is on (type and mount point, from
/// `/proc/self/mounts`: the longest mount point that prefixes it).
fn file_system(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} on {} ({})", f[2], f[1], f[0])))
        })
        .max_by_key(|(n, _)| *n)
        .map_or_else(|| "unknown".into(), |(_, s)| s)
}

/// Prints every setting both servers run with.
fn print_settings(heap: &str, generator: Generator) {
    let tmp = std::env::temp_dir();
    println!("settings (both servers unless said):");
    println!(
        "  zoo.cfg: {} (forceSync=yes and snapCount=100000 by default on both)",
        shared_config().join(" ")
    );
    println!("  data dirs: fresh temporary dirs under {}, {}", tmp.display(), file_system(&tmp));
    println!(
        "  Apache 3.8: Debian's zookeeper.jar, java {}, -Xmx{heap}, digest.enabled=true (its default; zk-server keeps no digest)",
        java_version()
    );
    println!(
        "  zk-server: {} (release build), the same zoo.cfg",
        std::env::current_exe()
            .map(|e| e.with_file_name("zk-server").display().to_string())
            .unwrap_or_default()
    );
    println!(
        "  machine: {} cores, load generator: zk-bench ({}) in this process",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        generator.name()
    );
}

fn java_version() -> String {
    Command::new("java")
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stderr).lines().next().map(str::to_string))
        .unwrap_or_else(|| "(not found)".into())
}

/// Options of the comparing commands.
#[derive(Debug, Clone)]
struct Opts {
    connect: Option<String>,
    rounds: usize,
    jit_warmup: u64,
    sizes: Vec<usize>,
    heap: String,
    /// Run one kind only (`--only ours|apache`), for profiling.
    only: Option<Kind>,
    /// `compare` runs only these workloads (`--workloads get,set`).
    workloads: Vec<String>,
}

fn parse(args: &[String]) -> Result<(Load, Opts), String> {
    let mut load = Load::default();
    let mut o = Opts {
        connect: None,
        rounds: 3,
        jit_warmup: 20,
        sizes: Vec::new(),
        heap: String::new(),
        only: None,
        workloads: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut v = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|e| format!("{a}: {e}"));
        match a.as_str() {
            "--connect" => o.connect = Some(v()?),
            "--workload" => load.workload = v()?,
            "--generator" => {
                load.generator = match v()?.as_str() {
                    "zk-client" => Generator::Ours,
                    "zookeeper-client" => Generator::ZookeeperClient,
                    other => {
                        return Err(format!("--generator takes zk-client or zookeeper-client, not {other}"));
                    }
                }
            }
            "--sessions" => load.sessions = num(v()?)?.max(1),
            "--inflight" => load.inflight = num(v()?)?.max(1),
            "--seconds" => load.seconds = num(v()?)? as u64,
            "--warmup" => load.warmup = num(v()?)? as u64,
            "--size" => load.size = num(v()?)?,
            "--nodes" => {
                let n = num(v()?)?.max(1);
                load.nodes = n;
                o.sizes = vec![n];
            }
            "--sizes" => {
                o.sizes = v()?
                    .split(',')
                    .map(|s| s.trim().parse::<usize>().map_err(|e| format!("--sizes: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--rounds" => o.rounds = num(v()?)?.max(1),
            "--jit-warmup" => o.jit_warmup = num(v()?)? as u64,
            "--heap" => o.heap = v()?,
            "--workloads" => o.workloads = v()?.split(',').map(|s| s.trim().to_string()).collect(),
            "--only" => {
                o.only = match v()?.as_str() {
                    "ours" => Some(Kind::Ours),
                    "apache" => Some(Kind::Apache),
                    other => return Err(format!("--only takes ours or apache, not {other}")),
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((load, o))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else {
        eprintln!(
            "usage: zk-bench run --connect HOST:PORT [--workload get|set|create|mixed] [--sessions N] [--inflight N] [--seconds N] [--size BYTES] [--generator zk-client|zookeeper-client]\n       zk-bench compare [--seconds N] [--rounds N] [--jit-warmup SECONDS] [--heap 2g] [--generator zk-client|zookeeper-client]\n       zk-bench ensemble [--seconds N]\n       zk-bench memory [--sizes N,N,...] [--heap 12g]\n       zk-bench restart [--sizes N,N,...] [--heap 12g]\n       zk-bench floor"
        );
        std::process::exit(2);
    };
    let (load, opts) = match parse(&args[1..]) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("zk-bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zk-bench: {e}");
            std::process::exit(1);
        }
    };
    let result: Result<(), String> = rt.block_on(async {
        match cmd.as_str() {
            "run" => {
                let cs = opts.connect.clone().ok_or("run needs --connect")?;
                let o = run(&cs, &load).await?;
                println!(
                    "{} x {} sessions x {} in flight on {cs}:",
                    load.workload, load.sessions, load.inflight
                );
                print("result", &o);
                Ok(())
            }
            "compare" => compare(&load, &opts).await,
            "ensemble" => ensemble(&load).await,
            "memory" => memory(&opts).await,
            "restart" => restart(&opts).await,
            "floor" => {
                let floor = tokio::task::spawn_blocking(disk_and_network_floor).await.map_err(|e| e.to_string())??;
                println!(
                    "floor: one fsync + one loopback round trip = {:.0} us -> {:.0} durable writes/s at 1 x 1",
                    floor.as_secs_f64() * 1e6,
                    1.0 / floor.as_secs_f64()
                );
                Ok(())
            }
            other => Err(format!("unknown command {other}")),
        }
    });
    if let Err(e) = result {
        eprintln!("zk-bench: {e}");
        std::process::exit(1);
    }
}

/// The loads of `compare`: pipelined (100 sessions x 10 in flight, 20 x
/// 20) reads, writes, a 90/10 mix and creates, and the one-at-a-time
/// write that the disk bounds. Creates run last (they grow the tree).
fn compare_loads(base: &Load) -> Vec<Load> {
    let mut loads = Vec::new();
    for w in ["get", "set", "mixed"] {
        for (s, i) in [(100, 10), (20, 20)] {
            loads.push(Load { workload: w.into(), sessions: s, inflight: i, ..base.clone() });
        }
    }
    loads.push(Load { workload: "set".into(), sessions: 1, inflight: 1, ..base.clone() });
    for (s, i) in [(100, 10), (20, 20)] {
        loads.push(Load { workload: "create".into(), sessions: s, inflight: i, ..base.clone() });
    }
    loads
}

/// Median of a non-empty list of numbers.
fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn spread(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

async fn compare(base: &Load, opts: &Opts) -> Result<(), String> {
    let heap = if opts.heap.is_empty() { "2g" } else { opts.heap.as_str() };
    let loads: Vec<Load> = compare_loads(base)
        .into_iter()
        .filter(|l| opts.workloads.is_empty() || opts.workloads.contains(&l.workload))
        .collect();
    print_settings(heap, base.generator);
    println!(
        "runs: {} rounds alternating which server goes first; each server started fresh per round, \
         JIT/cache warm-up {} s (mixed 100 x 10, both servers), then each load {} s measured after {} s warm-up",
        opts.rounds, opts.jit_warmup, base.seconds, base.warmup
    );
    let floor = disk_and_network_floor()?;
    let mut results: Vec<[Vec<Outcome>; 2]> = loads.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for round in 0..opts.rounds {
        for kind in Kind::order(round, opts.only) {
            let server = Running::start(kind, None, heap)?;
            let cs = server.connect_string();
            if opts.jit_warmup > 0 {
                let warm = Load {
                    workload: "mixed".into(),
                    sessions: 100,
                    inflight: 10,
                    seconds: opts.jit_warmup,
                    warmup: 0,
                    ..base.clone()
                };
                run(&cs, &warm).await?;
            }
            for (k, load) in loads.iter().enumerate() {
                let o = run(&cs, load).await?;
                eprintln!(
                    "  round {} {:<10} {} {}x{}: {:.0} ops/s p99 {} us, {} errors",
                    round + 1,
                    kind.name(),
                    load.workload,
                    load.sessions,
                    load.inflight,
                    o.ops_per_sec,
                    o.p99,
                    o.errors
                );
                results[k][usize::from(kind == Kind::Ours)].push(o);
            }
            drop(server);
        }
    }
    println!();
    println!(
        "| load | Apache 3.8 ops/s (spread) | zk-server ops/s (spread) | ratio | p99 Apache → ours | p99 ratio | errors |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (load, [a, b]) in loads.iter().zip(results) {
        let ops = |v: &[Outcome]| v.iter().map(|o| o.ops_per_sec).collect::<Vec<_>>();
        let p99 = |v: &[Outcome]| median_of(v.iter().map(|o| o.p99 as f64).collect());
        let (ta, tb) = (median_of(ops(&a)), median_of(ops(&b)));
        let ((la, ha), (lb, hb)) = (spread(&ops(&a)), spread(&ops(&b)));
        let (pa, pb) = (p99(&a), p99(&b));
        println!(
            "| {} {} x {} | {:.0} ({:.0}-{:.0}) | {:.0} ({:.0}-{:.0}) | x{:.2} | {:.1} ms → {:.1} ms | x{:.2} | {} / {} |",
            load.workload,
            load.sessions,
            load.inflight,
            ta,
            la,
            ha,
            tb,
            lb,
            hb,
            tb / ta.max(1.0),
            pa / 1000.0,
            pb / 1000.0,
            pb / pa.max(1.0),
            a.iter().map(|o| o.errors).sum::<u64>(),
            b.iter().map(|o| o.errors).sum::<u64>()
        );
        if load.workload == "set" && load.sessions == 1 && load.inflight == 1 {
            let floor_ops = 1.0 / floor.as_secs_f64();
            println!(
                "|  floor: one fsync + one loopback round trip = {:.0} us → {:.0} ops/s; zk-server at {:.0}% of it, Apache at {:.0}% | | | | | | |",
                floor.as_secs_f64() * 1e6,
                floor_ops,
                100.0 * tb / floor_ops,
                100.0 * ta / floor_ops
            );
        }
    }
    Ok(())
}

/// The least a durable one-at-a-time write can take here: the median of
/// an fdatasync'ed 200-byte write in the servers' temporary directory
/// plus the median of a 64-byte loopback TCP round trip. The write goes
/// into a file preallocated the way both servers preallocate their logs
/// (64 MiB, sparse), which fsyncs faster than a growing file; the growing
/// file's figure is printed too.
fn disk_and_network_floor() -> Result<Duration, String> {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let probe = |name: &str, prealloc: bool| -> Result<f64, String> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(dir.path().join(name))
            .map_err(|e| e.to_string())?;
        if prealloc {
            f.set_len(64 << 20).map_err(|e| e.to_string())?;
            f.sync_all().map_err(|e| e.to_string())?;
        }
        let mut syncs = Vec::new();
        for _ in 0..300 {
            let t = Instant::now();
            f.write_all(&[7u8; 200]).map_err(|e| e.to_string())?;
            f.sync_data().map_err(|e| e.to_string())?;
            syncs.push(t.elapsed().as_secs_f64());
        }
        Ok(median_of(syncs))
    };
    let growing = probe("fsync-probe-growing", false)?;
    let fsync = probe("fsync-probe-preallocated", true)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let echo = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.set_nodelay(true);
            let mut b = [0u8; 64];
            while s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {}
        }
    });
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut rtts = Vec::new();
    let mut b = [1u8; 64];
    for _ in 0..2000 {
        let t = Instant::now();
        s.write_all(&b).map_err(|e| e.to_string())?;
        s.read_exact(&mut b).map_err(|e| e.to_string())?;
        rtts.push(t.elapsed().as_secs_f64());
    }
    drop(s);
    let _ = echo.join();
    let rtt = median_of(rtts);
    println!(
        "  floor probes: fdatasync of a 200 B write into a preallocated file {:.0} us (appended to a growing file {:.0} us; medians of 300), loopback round trip {:.0} us (median of 2000)",
        fsync * 1e6,
        growing * 1e6,
        rtt * 1e6
    );
    Ok(Duration::from_secs_f64(fsync + rtt))
}

/// The median of what `f` measured.
fn median(mut v: Vec<Outcome>) -> Outcome {
    v.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    v[v.len() / 2].clone()
}

/// Both ensembles' settings: the same for both.
const ENSEMBLE_TICK_MS: u32 = 500;

/// A 3-server ensemble of each kind on loopback, fsync on, the same
/// tickTime/initLimit/syncLimit; every load runs against each, clients
/// spread over the three servers (the connect string names all three).
/// Three repetitions, alternating which kind goes first; medians.
async fn ensemble(base: &Load) -> Result<(), String> {
    use zk_test_support::apache::ApacheZkOptions;
    use zk_test_support::ensemble::ApacheEnsemble;
    use zk_test_support::ours::OurEnsemble;
    let loads = [
        Load { workload: "set".into(), sessions: 100, inflight: 10, ..base.clone() },
        Load { workload: "set".into(), sessions: 30, inflight: 1, ..base.clone() },
        Load { workload: "get".into(), sessions: 100, inflight: 10, ..base.clone() },
        Load { workload: "mixed".into(), sessions: 100, inflight: 10, ..base.clone() },
    ];
    let init = 20_000u32.div_ceil(ENSEMBLE_TICK_MS).max(10);
    let sync = 5_000u32.div_ceil(ENSEMBLE_TICK_MS).max(5);
    println!(
        "3 x Apache ZooKeeper 3.8 (Debian, JVM -Xmx1g each) vs 3 x zk-server, one machine, loopback, fsync on; \
         tickTime={ENSEMBLE_TICK_MS} initLimit={init} syncLimit={sync} for both; {} s per load after {} s warm-up; \
         3 rounds alternating which goes first, medians",
        base.seconds, base.warmup
    );
    let mut results: Vec<(Vec<Outcome>, Vec<Outcome>)> =
        loads.iter().map(|_| (Vec::new(), Vec::new())).collect();
    for round in 0..3 {
        for side in 0..2 {
            let apache_now = (round + side) % 2 == 0;
            if apache_now {
                let opts = ApacheZkOptions {
                    tick_time: ENSEMBLE_TICK_MS,
                    max_heap: "1g".into(),
                    ..ApacheZkOptions::default()
                };
                let e = tokio::task::spawn_blocking(move || ApacheEnsemble::start_with(3, opts))
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("Apache ZooKeeper is not installed")?;
                let cs = e.connect_string();
                for (k, load) in loads.iter().enumerate() {
                    results[k].0.push(run(&cs, load).await?);
                }
                drop(e);
            } else {
                let cfg = format!("tickTime={ENSEMBLE_TICK_MS}\ninitLimit={init}\nsyncLimit={sync}\n");
                let e = tokio::task::spawn_blocking(move || {
                    let ports = zk_test_support::free_ports(6);
                    let servers: Vec<(i64, u16, u16)> =
                        (0..3).map(|i| (i as i64 + 1, ports[2 * i], ports[2 * i + 1])).collect();
                    let mut e = OurEnsemble::start_members(&[1, 2, 3], &servers, &cfg);
                    e.wait_ready(60);
                    e
                })
                .await
                .map_err(|e| e.to_string())?;
                let cs = e.connect_string();
                for (k, load) in loads.iter().enumerate() {
                    results[k].1.push(run(&cs, load).await?);
                }
                drop(e);
            }
        }
    }
    for (load, (a, b)) in loads.iter().zip(results) {
        println!(
            "{} x {} sessions x {} in flight, {} B values:",
            load.workload, load.sessions, load.inflight, load.size
        );
        let (a, b) = (median(a), median(b));
        print("3 x Apache 3.8", &a);
        print("3 x zk-server", &b);
        println!(
            "  zk-server / Apache: throughput x{:.2}, p99 x{:.2}",
            b.ops_per_sec / a.ops_per_sec.max(1.0),
            b.p99 as f64 / a.p99.max(1) as f64
        );
    }
    Ok(())
}

async fn fill(cs: &str, nodes: usize) -> Result<Duration, String> {
    let c = Client::connect(cs).await.map_err(|e| e.to_string())?;
    let _ = c.create("/mem", b"", CreateMode::Persistent).await;
    let data = [b'm'; 100];
    let started = Instant::now();
    let mut futs = std::collections::VecDeque::new();
    for i in 0..nodes {
        futs.push_back(c.create(&format!("/mem/node-{i:08}"), &data, CreateMode::Persistent));
        if futs.len() >= 2000 {
            if let Some(f) = futs.pop_front() {
                f.await.map_err(|e| e.to_string())?;
            }
        }
    }
    for f in futs {
        f.await.map_err(|e| e.to_string())?;
    }
    let took = started.elapsed();
    let _ = c.close().await;
    Ok(took)
}

/// How long both servers get after the fill before their memory is read:
/// background snapshots finish and the steady state is measured.
const SETTLE: Duration = Duration::from_secs(15);

/// Apache's live heap after a full GC (`jcmd GC.run`, then the used heap
/// `GC.heap_info` reports), in KiB.
fn java_live_heap_kib(pid: u32) -> Option<u64> {
    let jcmd = |args: &[&str]| {
        Command::new("jcmd").arg(pid.to_string()).args(args).output().ok().filter(|o| o.status.success())
    };
    jcmd(&["GC.run"])?;
    let out = jcmd(&["GC.heap_info"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    // " garbage-first heap   total 1048576K, used 524288K [...]"
    let line = text.lines().find(|l| l.contains(" heap ") && l.contains("used "))?;
    let used = line.split("used ").nth(1)?.split('K').next()?.trim();
    used.parse().ok()
}

async fn memory(opts: &Opts) -> Result<(), String> {
    let sizes = if opts.sizes.is_empty() { vec![100_000, 1_000_000, 5_000_000] } else { opts.sizes.clone() };
    let heap = if opts.heap.is_empty() { "12g" } else { opts.heap.as_str() };
    print_settings(heap, Generator::Ours);
    println!(
        "memory holding N znodes of 100 bytes (children of one parent, 13-byte names), {} s after the last write; \
         per znode = (RSS full - RSS idle) / N; Apache's live heap (idle → full) measured after a forced full GC, \
         per znode = (full - idle) / N",
        SETTLE.as_secs()
    );
    println!(
        "| znodes | server | RSS idle | RSS full | per znode | live heap after GC, idle → full | per znode | filled in |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (k, &n) in sizes.iter().enumerate() {
        for kind in Kind::order(k, opts.only) {
            let server = Running::start(kind, None, heap)?;
            let pid = server.pid();
            let idle = rss_kib(pid).unwrap_or(0);
            let live = |kind: Kind| async move {
                match kind {
                    Kind::Apache => {
                        tokio::task::spawn_blocking(move || java_live_heap_kib(pid)).await.ok().flatten()
                    }
                    Kind::Ours => None,
                }
            };
            let idle_heap = live(kind).await;
            let took = fill(&server.connect_string(), n).await?;
            tokio::time::sleep(SETTLE).await;
            let full = rss_kib(pid).unwrap_or(0);
            let per = (full.saturating_sub(idle) * 1024) as f64 / n as f64;
            let heap_cell = match (kind, idle_heap, live(kind).await) {
                (Kind::Apache, Some(i), Some(h)) => {
                    format!(
                        "{} → {} MiB | {:.0} B",
                        i / 1024,
                        h / 1024,
                        (h.saturating_sub(i) * 1024) as f64 / n as f64
                    )
                }
                (Kind::Apache, _, _) => "(jcmd failed) | -".into(),
                (Kind::Ours, _, _) => "- | -".into(),
            };
            println!(
                "| {n} | {} | {} MiB | {} MiB | {per:.0} B | {heap_cell} | {:.1} s |",
                kind.name(),
                idle / 1024,
                full / 1024,
                took.as_secs_f64()
            );
            drop(server);
        }
    }
    Ok(())
}

/// Bytes of the files under `dir`: as listed, and as allocated on disk.
fn dir_size(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![dir.to_path_buf()];
    let (mut len, mut alloc) = (0, 0);
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                len += m.len();
                alloc += m.blocks() * 512;
            }
        }
    }
    (len, alloc)
}

/// Fills a server with N nodes, kills it, starts it again on the same data
/// dir and times how long until the last node created can be read.
async fn restart(opts: &Opts) -> Result<(), String> {
    let sizes = if opts.sizes.is_empty() { vec![1_000_000, 5_000_000] } else { opts.sizes.clone() };
    let heap = if opts.heap.is_empty() { "12g" } else { opts.heap.as_str() };
    print_settings(heap, Generator::Ours);
    println!(
        "restart: N znodes of 100 bytes created, {} s to settle, the server killed (SIGKILL), started again on \
         its data dir; time from the spawn until the last node created reads back",
        SETTLE.as_secs()
    );
    println!("| znodes | server | data dir (allocated) | files | restart until serving |");
    println!("|---|---|---|---|---|");
    for (k, &n) in sizes.iter().enumerate() {
        for kind in Kind::order(k, opts.only) {
            let keep = tempfile::tempdir().map_err(|e| e.to_string())?;
            let data = keep.path().join("data");
            std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
            let server = Running::start(kind, Some(data.clone()), heap)?;
            fill(&server.connect_string(), n).await?;
            tokio::time::sleep(SETTLE).await;
            let (len, alloc) = dir_size(&server.data_dir());
            let files = std::fs::read_dir(data.join("version-2"))
                .map(|d| {
                    let mut v: Vec<String> =
                        d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                    v.sort();
                    let snaps = v.iter().filter(|f| f.starts_with("snapshot.")).count();
                    let logs = v.iter().filter(|f| f.starts_with("log.")).count();
                    format!("{snaps} snapshots, {logs} logs")
                })
                .unwrap_or_default();
            drop(server);
            let last = format!("/mem/node-{:08}", n - 1);
            let t = Instant::now();
            let again = {
                let data = data.clone();
                let heap = heap.to_string();
                tokio::task::spawn_blocking(move || Running::start(kind, Some(data), &heap))
                    .await
                    .map_err(|e| e.to_string())??
            };
            let cs = again.connect_string();
            let served = loop {
                if let Ok(c) = Client::builder(&cs).connect().await {
                    if c.get_data(&last).await.is_ok() {
                        let _ = c.close().await;
                        break t.elapsed();
                    }
                }
                if t.elapsed() > Duration::from_secs(600) {
                    return Err(format!("{} did not serve {last} within 600 s", kind.name()));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            println!(
                "| {n} | {} | {:.0} MB ({:.0} MB) | {files} | {:.2} s |",
                kind.name(),
                len as f64 / 1e6,
                alloc as f64 / 1e6,
                served.as_secs_f64()
            );
            drop(again);
        }
    }
    Ok(())
}
