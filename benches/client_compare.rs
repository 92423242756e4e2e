//! Our client against the bar, side by side in one run on the same server:
//! pipelined getData throughput and latency from `zk-client`, from the
//! `zookeeper-client` crate (the best Rust client), and from Apache's own
//! Java client (async API, from Debian's package).
//!
//! ```text
//! cargo bench --bench client_compare                 # starts Apache ZooKeeper 3.8 itself
//! ZK_BENCH_CONNECT=127.0.0.1:2181 cargo bench --bench client_compare
//! ZK_BENCH_SECS=10 ...                                # measured seconds per run (default 5)
//! ZK_BENCH_ROUNDS=5 ...                               # rounds per load (default 3), alternating who goes first
//! ZK_BENCH_JAVA_WARMUP=10 ...                         # the Java client's JIT warm-up (default 5 s)
//! ZK_BENCH_LOADS=1x1,100x10 ...                       # only these loads (sessions x in flight)
//! ZK_BENCH_SERVER_PID=1234 ...                        # with ZK_BENCH_CONNECT: report that server's CPU per request too
//! ```

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use zk_client::CreateMode;
use zk_test_support::apache::ApacheZk;

const PATH: &str = "/bench-get";

#[derive(Debug, Clone, Copy)]
struct Load {
    sessions: usize,
    inflight: usize,
}

#[derive(Debug)]
struct Outcome {
    /// CPU time this process spent per 1,000 requests (microseconds), when known.
    cpu_us_per_kop: Option<f64>,
    /// CPU time the server spent per 1,000 requests, when its pid is known.
    server_cpu_us_per_kop: Option<f64>,
    ops_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
}

fn percentiles(mut lat: Vec<u32>, ops: usize, secs: f64) -> Outcome {
    lat.sort_unstable();
    let pct = |q: f64| {
        lat.get(((q * lat.len() as f64) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0)
            as u64
    };
    Outcome {
        cpu_us_per_kop: None,
        server_cpu_us_per_kop: None,
        ops_per_sec: ops as f64 / secs,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
    }
}

/// Runs `inflight` request loops per session; `get` performs one getData.
async fn drive<C, F, Fut>(clients: Vec<C>, load: Load, warmup: Duration, secs: Duration, get: F) -> Outcome
where
    C: Clone + Send + Sync + 'static,
    F: Fn(C) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let recording = Arc::new(AtomicBool::new(false));
    let stop_at = Instant::now() + warmup + secs;
    let mut tasks = Vec::new();
    for c in clients {
        for _ in 0..load.inflight {
            let c = c.clone();
            let recording = recording.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(1 << 16);
                while Instant::now() < stop_at {
                    let t = Instant::now();
                    get(c.clone()).await;
                    if recording.load(Ordering::Relaxed) {
                        lat.push(t.elapsed().as_micros() as u32);
                    }
                }
                lat
            }));
        }
    }
    tokio::time::sleep(warmup).await;
    recording.store(true, Ordering::Relaxed);
    let cpu0 = process_cpu_us("self");
    let server0 = server_pid().and_then(|p| process_cpu_us(&p));
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let cpu = process_cpu_us("self").zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    let server = server_pid().and_then(|p| process_cpu_us(&p)).zip(server0).map(|(b, a)| b.saturating_sub(a));
    let n = all.len();
    let mut out = percentiles(all, n, secs.as_secs_f64());
    out.cpu_us_per_kop = cpu.map(|c| c as f64 * 1000.0 / n.max(1) as f64);
    out.server_cpu_us_per_kop = server.map(|c| c as f64 * 1000.0 / n.max(1) as f64);
    out
}

async fn ours(cs: &str, load: Load, warmup: Duration, secs: Duration) -> Outcome {
    let mut clients = Vec::new();
    for _ in 0..load.sessions {
        clients.push(zk_client::Client::connect(cs).await.unwrap());
    }
    let out = drive(clients.clone(), load, warmup, secs, |c: zk_client::Client| async move {
        c.get_data(PATH).await.unwrap();
    })
    .await;
    for c in clients {
        c.close().await.unwrap();
    }
    out
}

async fn theirs(cs: &str, load: Load, warmup: Duration, secs: Duration) -> Outcome {
    let mut clients = Vec::new();
    for _ in 0..load.sessions {
        clients.push(zookeeper_client::Client::connect(cs).await.unwrap());
    }
    drive(clients, load, warmup, secs, |c: zookeeper_client::Client| async move {
        c.get_data(PATH).await.unwrap();
    })
    .await
}

fn java(cs: &str, load: Load, warmup: Duration, secs: Duration) -> Option<Outcome> {
    let jar = zk_test_support::apache::ZOOKEEPER_JAR;
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("java-bench");
    std::fs::create_dir_all(&out_dir).ok()?;
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/java/JavaGetLoad.java");
    let ok =
        Command::new("javac").arg("-cp").arg(jar).arg("-d").arg(&out_dir).arg(&src).status().ok()?.success();
    if !ok {
        return None;
    }
    let cp = format!("{jar}:/usr/share/java/slf4j-nop.jar:{}", out_dir.display());
    let out = Command::new("java")
        .args(["-Xmx1g", "-cp", &cp, "JavaGetLoad", cs])
        .arg(load.sessions.to_string())
        .arg(load.inflight.to_string())
        .arg(warmup.as_secs().to_string())
        .arg(secs.as_secs().to_string())
        .arg(PATH)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| -> Option<u64> {
        text.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{k}=")).and_then(|v| v.parse().ok()))
    };
    Some(Outcome {
        cpu_us_per_kop: None,
        server_cpu_us_per_kop: None,
        ops_per_sec: field("ops")? as f64 / field("secs")? as f64,
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
        p999_us: field("p999_us")?,
    })
}

/// User + system CPU time of this process, from /proc (Linux).
/// The server's pid: Apache's when this bench started it, else
/// `ZK_BENCH_SERVER_PID` (so its CPU per request is reported too).
fn server_pid() -> Option<String> {
    SERVER_PID.get().cloned().flatten().or_else(|| std::env::var("ZK_BENCH_SERVER_PID").ok())
}

static SERVER_PID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// User + system CPU time of a process (`self` or a pid), in microseconds.
fn process_cpu_us(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10_000) // USER_HZ is 100 on Linux
}

fn row(name: &str, o: &Outcome) {
    let cpu = o.cpu_us_per_kop.map_or("      -".to_string(), |c| format!("{c:>7.0}"));
    let server = o.server_cpu_us_per_kop.map_or("      -".to_string(), |c| format!("{c:>7.0}"));
    println!(
        "  {name:<22} {:>10.0} ops/s   p50 {:>6} us   p99 {:>6} us   p999 {:>6} us   CPU/1k ops: client {cpu} us, server {server} us",
        o.ops_per_sec, o.p50_us, o.p99_us, o.p999_us
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs benches in test mode
    // with no such flag: then do nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secs =
        Duration::from_secs(std::env::var("ZK_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5));
    let warmup = Duration::from_secs(1);
    let server = if std::env::var("ZK_BENCH_CONNECT").is_ok() { None } else { ApacheZk::start() };
    let _ = SERVER_PID.set(server.as_ref().map(|s| s.pid().to_string()));
    let cs = std::env::var("ZK_BENCH_CONNECT")
        .unwrap_or_else(|_| server.as_ref().expect("Apache ZooKeeper").connect_string());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let c = zk_client::Client::connect(&cs).await.unwrap();
        let _ = c.create(PATH, &[7u8; 100], CreateMode::Persistent).await;
        c.close().await.unwrap();
    });
    println!(
        "pipelined getData of a 100-byte node on {cs}, {}s measured after {}s warm-up",
        secs.as_secs(),
        warmup.as_secs()
    );
    // Warm the server's JIT first, so that whoever runs first is not
    // handicapped.
    let _ = rt.block_on(theirs(&cs, Load { sessions: 2, inflight: 64 }, warmup, Duration::from_secs(3)));
    let _ = rt.block_on(ours(&cs, Load { sessions: 2, inflight: 64 }, warmup, Duration::from_secs(3)));
    let rounds: usize = std::env::var("ZK_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    println!(
        "{rounds} rounds per load, alternating which client goes first; each figure is its median over the rounds, \
         shown with the spread of throughput and p99 over the rounds; both Rust clients run on the same 2-worker tokio runtime \
         in this process; the Java client (-Xmx1g) gets a {}s warm-up of its own",
        java_warmup().as_secs()
    );
    // ZK_BENCH_LOADS=1x1,100x10 picks loads (sessions x in flight).
    let picked: Vec<Load> = std::env::var("ZK_BENCH_LOADS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|l| {
            let (s, i) = l.trim().split_once('x')?;
            Some(Load { sessions: s.parse().ok()?, inflight: i.parse().ok()? })
        })
        .collect();
    let loads = match picked.is_empty() {
        false => picked,
        true => vec![
            Load { sessions: 1, inflight: 1 },
            Load { sessions: 1, inflight: 100 },
            Load { sessions: 4, inflight: 64 },
            Load { sessions: 100, inflight: 10 },
        ],
    };
    for load in loads {
        println!("{} session(s) x {} in flight:", load.sessions, load.inflight);
        let (mut a_runs, mut b_runs) = (Vec::new(), Vec::new());
        let only_ours = std::env::var("ZK_BENCH_ONLY_OURS").is_ok();
        for round in 0..rounds {
            if round % 2 == 1 && !only_ours {
                b_runs.push(rt.block_on(theirs(&cs, load, warmup, secs)));
            }
            a_runs.push(rt.block_on(ours(&cs, load, warmup, secs)));
            if round % 2 == 0 && !only_ours {
                b_runs.push(rt.block_on(theirs(&cs, load, warmup, secs)));
            }
        }
        let spread = |runs: &[Outcome]| {
            let lo = runs.iter().map(|o| o.ops_per_sec).fold(f64::INFINITY, f64::min);
            let hi = runs.iter().map(|o| o.ops_per_sec).fold(0.0, f64::max);
            let p99_lo = runs.iter().map(|o| o.p99_us).min().unwrap_or(0);
            let p99_hi = runs.iter().map(|o| o.p99_us).max().unwrap_or(0);
            format!("{lo:.0}-{hi:.0} ops/s, p99 {p99_lo}-{p99_hi} us")
        };
        let (sa, sb) = (spread(&a_runs), spread(&b_runs));
        let a = median(a_runs);
        row("zk-client (ours)", &a);
        println!("    spread over rounds: {sa}");
        let Some(b) = (!b_runs.is_empty()).then(|| median(b_runs)) else { continue };
        row("zookeeper-client 0.11", &b);
        println!("    spread over rounds: {sb}");
        if std::env::var("ZK_BENCH_NO_JAVA").is_err() {
            match java(&cs, load, java_warmup(), secs) {
                Some(j) => row("Apache Java client", &j),
                None => {
                    println!("  Apache Java client     (not available: needs javac and Debian's zookeeper)")
                }
            }
        }
        println!(
            "  ours / zookeeper-client: throughput x{:.2}, p99 x{:.2}",
            a.ops_per_sec / b.ops_per_sec,
            a.p99_us as f64 / b.p99_us.max(1) as f64
        );
    }
}

/// How long the Java client warms its JIT before measuring.
fn java_warmup() -> Duration {
    Duration::from_secs(std::env::var("ZK_BENCH_JAVA_WARMUP").ok().and_then(|s| s.parse().ok()).unwrap_or(5))
}

/// Each figure's median over the rounds (a p99 of one round alone moves
/// with whatever else the machine did then).
fn median(runs: Vec<Outcome>) -> Outcome {
    fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v[v.len() / 2]
    }
    let cpu: Vec<f64> = runs.iter().filter_map(|o| o.cpu_us_per_kop).collect();
    let server: Vec<f64> = runs.iter().filter_map(|o| o.server_cpu_us_per_kop).collect();
    Outcome {
        cpu_us_per_kop: (!cpu.is_empty()).then(|| mid(cpu)),
        server_cpu_us_per_kop: (!server.is_empty()).then(|| mid(server)),
        ops_per_sec: mid(runs.iter().map(|o| o.ops_per_sec).collect()),
        p50_us: mid(runs.iter().map(|o| o.p50_us).collect()),
        p99_us: mid(runs.iter().map(|o| o.p99_us).collect()),
        p999_us: mid(runs.iter().map(|o| o.p999_us).collect()),
    }
}
