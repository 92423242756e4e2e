//! `zk-bench`: a load tool for any ZooKeeper server, built on zk-client.
//!
//! ```text
//! zk-bench run --connect 127.0.0.1:2181 --workload get --sessions 100 --inflight 10 --seconds 10
//! zk-bench compare [--seconds 10]     # Apache ZooKeeper 3.8 vs zk-server, same loads, side by side
//! zk-bench memory [--nodes 1000000]   # resident memory of both servers holding N znodes of 100 bytes
//! zk-bench ensemble [--seconds 5]     # a 3-server Apache ensemble vs a 3-server zk-server ensemble
//! ```
//!
//! `compare` and `memory` start Apache ZooKeeper (Debian's `zookeeper`
//! package) and the `zk-server` binary (build it first with
//! `cargo build --release -p zk-server`) as child processes on loopback
//! ports with temporary data dirs, with fsync on, and stop them after.
//! Workloads: `get` (getData of 100-byte nodes), `set` (setData, each a
//! durable write), `create` (persistent creates), `mixed` (90% get, 10% set).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zk_client::{Client, CreateMode};

#[derive(Debug, Clone)]
struct Load {
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
        clients.push(
            Client::builder(cs)
                .session_timeout(Duration::from_secs(30))
                .connect()
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let recording = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(load.warmup + load.seconds);
    let data: Arc<[u8]> = vec![b'y'; load.size].into();
    let mut tasks = Vec::new();
    let counter = Arc::new(AtomicU64::new(0));
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
                        "set" => c.set_data(&node, &data, None).await.is_ok(),
                        "create" => {
                            let n = counter.fetch_add(1, Ordering::Relaxed);
                            c.create(&format!("{ROOT}/c{n}"), &data, CreateMode::Persistent).await.is_ok()
                        }
                        "mixed" if seed % 10 == 0 => c.set_data(&node, &data, None).await.is_ok(),
                        _ => c.get_data(&node).await.is_ok(),
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
        let _ = c.close().await;
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

/// Our server as a child process.
struct OurServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OurServer {
    fn start() -> Result<OurServer, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let bin = exe.with_file_name("zk-server");
        if !bin.exists() {
            return Err(format!(
                "{} not found: build it first with `cargo build --release -p zk-server`",
                bin.display()
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = zk_test_support::free_port();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=*\n{}",
                dir.path().join("data").display(),
                std::env::var("ZK_BENCH_EXTRA_CFG").unwrap_or_default().replace(';', "\n")
            ),
        )
        .map_err(|e| e.to_string())?;
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
            if start.elapsed() > Duration::from_secs(30) {
                return Err("zk-server did not come up".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(OurServer { child, port, _dir: dir })
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

fn apache(max_heap: &str) -> Result<zk_test_support::apache::ApacheZk, String> {
    let opts = zk_test_support::apache::ApacheZkOptions {
        max_heap: max_heap.into(),
        extra_config: vec!["maxClientCnxns=0".into()],
        ..Default::default()
    };
    zk_test_support::apache::ApacheZk::start_with(opts)
        .ok_or_else(|| "Apache ZooKeeper is not installed".to_string())
}

fn parse(args: &[String]) -> Result<(Load, Option<String>, usize), String> {
    let mut load = Load::default();
    let mut connect = None;
    let mut nodes_mem = 1_000_000;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut v = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|e| format!("{a}: {e}"));
        match a.as_str() {
            "--connect" => connect = Some(v()?),
            "--workload" => load.workload = v()?,
            "--sessions" => load.sessions = num(v()?)?.max(1),
            "--inflight" => load.inflight = num(v()?)?.max(1),
            "--seconds" => load.seconds = num(v()?)? as u64,
            "--warmup" => load.warmup = num(v()?)? as u64,
            "--size" => load.size = num(v()?)?,
            "--nodes" => {
                let n = num(v()?)?.max(1);
                load.nodes = n;
                nodes_mem = n;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((load, connect, nodes_mem))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else {
        eprintln!(
            "usage: zk-bench run --connect HOST:PORT [--workload get|set|create|mixed] [--sessions N] [--inflight N] [--seconds N] [--size BYTES]\n       zk-bench compare [--seconds N]\n       zk-bench ensemble [--seconds N]\n       zk-bench memory [--nodes N]"
        );
        std::process::exit(2);
    };
    let (load, connect, mem_nodes) = match parse(&args[1..]) {
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
                let cs = connect.ok_or("run needs --connect")?;
                let o = run(&cs, &load).await?;
                println!(
                    "{} x {} sessions x {} in flight on {cs}:",
                    load.workload, load.sessions, load.inflight
                );
                print("result", &o);
                Ok(())
            }
            "compare" => compare(&load).await,
            "ensemble" => ensemble(&load).await,
            "memory" => memory(mem_nodes).await,
            other => Err(format!("unknown command {other}")),
        }
    });
    if let Err(e) = result {
        eprintln!("zk-bench: {e}");
        std::process::exit(1);
    }
}

async fn compare(base: &Load) -> Result<(), String> {
    let loads = [
        Load { workload: "get".into(), sessions: 100, inflight: 10, ..base.clone() },
        Load { workload: "set".into(), sessions: 100, inflight: 1, ..base.clone() },
        Load { workload: "set".into(), sessions: 20, inflight: 10, ..base.clone() },
        Load { workload: "set".into(), sessions: 100, inflight: 10, ..base.clone() },
        Load { workload: "create".into(), sessions: 100, inflight: 1, ..base.clone() },
        Load { workload: "mixed".into(), sessions: 100, inflight: 10, ..base.clone() },
    ];
    println!(
        "Apache ZooKeeper 3.8 (Debian, JVM -Xmx2g) vs zk-server, fsync on, {} s per run after {} s warm-up",
        base.seconds, base.warmup
    );
    for load in loads {
        println!(
            "{} x {} sessions x {} in flight, {} B values:",
            load.workload, load.sessions, load.inflight, load.size
        );
        let a = {
            let server = apache("2g")?;
            let r = run(&server.connect_string(), &load).await?;
            drop(server);
            r
        };
        print("Apache 3.8", &a);
        let b = {
            let server = OurServer::start()?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let r = run(&server.connect_string(), &load).await?;
            drop(server);
            r
        };
        print("zk-server", &b);
        println!(
            "  zk-server / Apache: throughput x{:.2}, p99 x{:.2}",
            b.ops_per_sec / a.ops_per_sec.max(1.0),
            b.p99 as f64 / a.p99.max(1) as f64
        );
    }
    Ok(())
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

async fn memory(nodes: usize) -> Result<(), String> {
    println!(
        "resident memory holding {nodes} znodes of 100 bytes (children of one parent), {} s after the last write:",
        SETTLE.as_secs()
    );
    let server = apache("4g")?;
    let idle = rss_kib(server.pid()).unwrap_or(0);
    let took = fill(&server.connect_string(), nodes).await?;
    tokio::time::sleep(SETTLE).await;
    let full = rss_kib(server.pid()).unwrap_or(0);
    println!(
        "  Apache 3.8     idle {:>8} KiB   full {:>8} KiB   filled in {:.1} s",
        idle,
        full,
        took.as_secs_f64()
    );
    drop(server);
    let ours = OurServer::start()?;
    let idle2 = rss_kib(ours.child.id()).unwrap_or(0);
    let took2 = fill(&ours.connect_string(), nodes).await?;
    tokio::time::sleep(SETTLE).await;
    let full2 = rss_kib(ours.child.id()).unwrap_or(0);
    println!(
        "  zk-server      idle {:>8} KiB   full {:>8} KiB   filled in {:.1} s",
        idle2,
        full2,
        took2.as_secs_f64()
    );
    println!("  zk-server / Apache (full): x{:.2}", full2 as f64 / full.max(1) as f64);
    let _ = PathBuf::new();
    Ok(())
}
