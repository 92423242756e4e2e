//! `zk-server path/to/zoo.cfg`: runs a server in the foreground, like
//! `zkServer.sh start-foreground`. Stops cleanly on SIGTERM or SIGINT;
//! exits with status 1 and one `stopping:` line when an essential part of
//! the server dies or the transaction log fails (fail-stop).

use std::io::IsTerminal;
use std::path::PathBuf;

use tracing_subscriber::EnvFilter;

// mimalloc keeps the resident set close to what the tree really holds
// (glibc's per-thread arenas keep freed snapshot and buffer memory).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use zk_server::{Server, ServerConfig};

const USAGE: &str =
    "usage: zk-server <zoo.cfg>\n       zk-server --data-dir <dir> [--port <port>] [--address <ip>]\n";

fn config_from_args() -> Result<ServerConfig, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        return Err(USAGE.to_string());
    }
    if args.len() == 1 && !args[0].starts_with('-') {
        return ServerConfig::from_file(&PathBuf::from(&args[0])).map_err(|e| e.to_string());
    }
    let mut cfg: Option<ServerConfig> = None;
    let (mut port, mut address) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--data-dir" => cfg = Some(ServerConfig::new(value()?)),
            "--port" => port = Some(value()?.parse::<u16>().map_err(|e| format!("--port: {e}"))?),
            "--address" => address = Some(value()?.parse().map_err(|e| format!("--address: {e}"))?),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let mut cfg = cfg.ok_or_else(|| format!("--data-dir is required\n{USAGE}"))?;
    if let Some(p) = port {
        cfg.client_port = p;
    }
    cfg.client_port_address = address.or(cfg.client_port_address);
    Ok(cfg)
}

/// Logs on stdout: the level from `RUST_LOG`, else `log.level`, else
/// `info`; JSON lines when `ZK_LOG_FORMAT` (else `log.format`) says
/// `json`; colours only on a terminal and without `NO_COLOR`.
fn init_logs(cfg: Option<&ServerConfig>) {
    let filter = match std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()) {
        Some(v) => EnvFilter::try_new(&v).unwrap_or_else(|e| {
            eprintln!("zk-server: ignoring RUST_LOG={v:?}: {e}");
            EnvFilter::new("info")
        }),
        None => {
            let level = cfg.and_then(|c| c.log_level.as_deref()).unwrap_or("info");
            EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"))
        }
    };
    let json = match std::env::var("ZK_LOG_FORMAT").ok().as_deref() {
        Some("json") => true,
        Some("text") => false,
        _ => cfg.is_some_and(|c| c.log_json),
    };
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        fmt.json().with_current_span(true).init();
    } else {
        fmt.with_ansi(ansi).init();
    }
}

/// mimalloc reads its options from the environment when the process
/// starts. The server asks it to give freed memory back to the system at
/// once (decommitted, not left as lazily-freed pages, no purge delay), so
/// that the resident set follows what the tree holds after snapshots and
/// bursts. It does so by running itself again with those options set
/// (`exec`: the same process id, arguments and streams), unless the
/// environment already sets any `MIMALLOC_` option, which is then left to
/// the operator.
fn tune_allocator() {
    use std::os::unix::process::CommandExt;
    const MARK: &str = "ZK_SERVER_ALLOCATOR_TUNED";
    if std::env::vars_os().any(|(k, _)| k == MARK || k.to_string_lossy().starts_with("MIMALLOC_")) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    // `exec` returns only when it failed: the server then runs untuned.
    let _failed = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(MARK, "1")
        .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
        .env("MIMALLOC_PURGE_DELAY", "0")
        .exec();
}

fn main() {
    tune_allocator();
    let cfg = config_from_args();
    init_logs(cfg.as_ref().ok());
    let cfg = match cfg {
        Ok(mut c) => {
            // Fault injection for the fail-stop tests (see ServerConfig).
            c.fault_injection = std::env::var("ZK_SERVER_FAULT").ok().filter(|f| !f.is_empty());
            c
        }
        Err(e) => {
            eprint!("{e}");
            if !e.ends_with('\n') {
                eprintln!();
            }
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async move {
        let server = match Server::start(cfg).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("zk-server: {e}");
                return 1;
            }
        };
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot listen for SIGTERM: {e}");
                return 1;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            e = server.failed() => {
                // Fail-stop: an essential part died or the log failed; a
                // supervisor restarts us from what is durable.
                tracing::error!("zk-server: stopping: {e}");
                return 1;
            }
        }
        tracing::info!("shutting down");
        server.stop().await;
        0
    });
    std::process::exit(code);
}
