//! The HTTP side of a server: Apache's AdminServer (`/commands/<name>`,
//! JSON as Apache 3.8 writes it), `/ready` for probes, and the Prometheus
//! endpoint (`/metrics`, on its own port as Apache's provider).
//!
//! [`command`] turns a command and the core's report into JSON, without
//! sockets; the routers around it are thin (axum on hyper).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::ServerConfig;
use crate::driver::Reset;
use crate::metrics::ServerMetrics;
use crate::net::{NetShared, ask_core};
use crate::stats::{Needs, Report};

/// The AdminServer's commands: Apache's primary name, then its aliases
/// (the four-letter words).
pub(crate) const COMMANDS: &[(&str, &[&str])] = &[
    ("configuration", &["conf", "config"]),
    ("connection_stat_reset", &["crst"]),
    ("connections", &["cons"]),
    ("dirs", &[]),
    ("dump", &[]),
    ("environment", &["env", "envi"]),
    ("is_read_only", &["isro"]),
    ("monitor", &["mntr"]),
    ("ruok", &[]),
    ("server_stats", &["srvr"]),
    ("stat_reset", &["srst"]),
    ("stats", &["stat"]),
    ("watch_summary", &["wchs"]),
    ("watches", &["wchc"]),
    ("watches_by_path", &["wchp"]),
];

/// The primary name of `name` (itself or an alias).
pub(crate) fn primary(name: &str) -> Option<&'static str> {
    COMMANDS.iter().find(|(p, aliases)| *p == name || aliases.contains(&name)).map(|(p, _)| *p)
}

/// What a command needs from the core (`None`: nothing) and what it resets.
pub(crate) fn needs(cmd: &str) -> Option<(Needs, Option<Reset>)> {
    let base = Needs::default();
    match cmd {
        "ruok" | "configuration" | "environment" | "dirs" => None,
        "stats" | "connections" => Some((Needs { connections: true, ..base }, None)),
        "watch_summary" => Some((Needs { watch_summary: true, ..base }, None)),
        "watches" | "watches_by_path" => Some((Needs { watch_lists: true, ..base }, None)),
        "dump" => Some((Needs { session_lists: true, ..base }, None)),
        "connection_stat_reset" => Some((base, Some(Reset::Connections))),
        "stat_reset" => Some((base, Some(Reset::Server))),
        _ => Some((base, None)),
    }
}

/// What a command's JSON is made from besides the report.
pub(crate) struct Context<'a> {
    /// The configuration.
    pub(crate) cfg: &'a ServerConfig,
    /// The client port bound.
    pub(crate) client_port: u16,
    /// Milliseconds since the server started.
    pub(crate) uptime_ms: u64,
    /// Bytes in the data dir.
    pub(crate) data_dir_size: u64,
    /// Bytes in the log dir.
    pub(crate) log_dir_size: u64,
}

fn latency_avg(r: &Report) -> f64 {
    if r.stats.latency_count == 0 { 0.0 } else { r.stats.latency_total as f64 / r.stats.latency_count as f64 }
}

fn server_stats(ctx: &Context<'_>, r: &Report) -> Map<String, Value> {
    let response_stats = json!({"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1});
    let mut m = Map::new();
    m.insert("version".into(), json!(crate::fourlw::VERSION));
    m.insert("read_only".into(), json!(r.mode == "read-only"));
    m.insert(
        "server_stats".into(),
        json!({
            "packets_sent": r.stats.packets_sent,
            "packets_received": r.stats.packets_received,
            "fsync_threshold_exceed_count": 0,
            "client_response_stats": response_stats,
            "data_dir_size": ctx.data_dir_size,
            "log_dir_size": ctx.log_dir_size,
            "provider_null": false,
            "server_state": r.mode,
            "last_processed_zxid": r.zxid,
            "outstanding_requests": r.outstanding,
            "avg_latency": latency_avg(r),
            "max_latency": r.stats.latency_max,
            "min_latency": r.stats.latency_min,
            "num_alive_client_connections": r.connection_count,
            "uptime": ctx.uptime_ms,
            "auth_failed_count": 0,
            "non_mtlsremote_conn_count": 0,
            "non_mtlslocal_conn_count": 0,
        }),
    );
    m.insert("client_response".into(), response_stats);
    m.insert("node_count".into(), json!(r.node_count));
    m
}

fn connections(r: &Report, full: bool) -> Value {
    let list: Vec<Value> = r
        .connections
        .iter()
        .map(|c| {
            let addr = c.peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
            let mut v = json!({
                "remote_socket_address": addr,
                "interest_ops": 1,
                "outstanding_requests": c.stats.outstanding,
                "packets_received": c.stats.received,
                "packets_sent": c.stats.sent,
            });
            if full {
                if let Some(m) = v.as_object_mut() {
                    let timeout =
                        r.session_timeouts.iter().find(|(id, _)| *id == c.session).map_or(0, |(_, t)| *t);
                    m.insert("session_id".into(), json!(c.session));
                    m.insert(
                        "last_operation".into(),
                        json!(if c.stats.last_op.is_empty() { "NA" } else { c.stats.last_op }),
                    );
                    m.insert("established".into(), json!(c.stats.established_ms));
                    m.insert("session_timeout".into(), json!(timeout));
                    m.insert("last_cxid".into(), json!(c.stats.last_cxid));
                    m.insert("last_zxid".into(), json!(c.stats.last_zxid));
                }
            }
            v
        })
        .collect();
    Value::Array(list)
}

/// The JSON of `cmd` (a primary name) from `r` (the default report for
/// commands that need nothing of the core), as Apache's AdminServer writes
/// it: the command's fields, then `command` and `error`.
pub(crate) fn command(cmd: &str, ctx: &Context<'_>, r: &Report) -> Value {
    let cfg = ctx.cfg;
    let mut m = Map::new();
    match cmd {
        "ruok" => {}
        "server_stats" => m = server_stats(ctx, r),
        "stats" => {
            m = server_stats(ctx, r);
            m.insert("connections".into(), connections(r, false));
            m.insert("secure_connections".into(), json!([]));
        }
        "configuration" => {
            m.insert("client_port".into(), json!(ctx.client_port));
            m.insert("data_dir".into(), json!(cfg.data_dir.join("version-2").display().to_string()));
            m.insert("data_log_dir".into(), json!(cfg.data_log_dir.join("version-2").display().to_string()));
            m.insert("tick_time".into(), json!(cfg.tick_time.as_millis() as u64));
            m.insert("max_client_cnxns".into(), json!(cfg.max_client_cnxns));
            m.insert("min_session_timeout".into(), json!(cfg.min_session().as_millis() as u64));
            m.insert("max_session_timeout".into(), json!(cfg.max_session().as_millis() as u64));
            m.insert("server_id".into(), json!(cfg.server_id));
            m.insert("client_port_listen_backlog".into(), json!(-1));
        }
        "connections" => {
            m.insert("connections".into(), connections(r, true));
            m.insert("secure_connections".into(), json!([]));
        }
        "connection_stat_reset" | "stat_reset" => {}
        "monitor" => {
            let pairs: [(&str, Value); 18] = [
                ("version", json!(crate::fourlw::VERSION)),
                ("server_state", json!(r.mode)),
                ("ephemerals_count", json!(r.ephemerals)),
                ("num_alive_connections", json!(r.connection_count)),
                ("avg_latency", json!(latency_avg(r))),
                ("outstanding_requests", json!(r.outstanding)),
                ("znode_count", json!(r.node_count)),
                ("global_sessions", json!(r.sessions)),
                ("packets_sent", json!(r.stats.packets_sent)),
                ("packets_received", json!(r.stats.packets_received)),
                ("watch_count", json!(r.watch_count)),
                ("min_latency", json!(r.stats.latency_min)),
                ("max_file_descriptor_count", json!(crate::fourlw::max_fds())),
                ("approximate_data_size", json!(r.approximate_data_size)),
                ("open_file_descriptor_count", json!(crate::fourlw::open_fds())),
                ("local_sessions", json!(0)),
                ("uptime", json!(ctx.uptime_ms)),
                ("max_latency", json!(r.stats.latency_max)),
            ];
            for (k, v) in pairs {
                m.insert(k.into(), v);
            }
            if let Some((learners, synced)) = r.learners {
                m.insert("learners".into(), json!(learners));
                m.insert("synced_followers".into(), json!(synced));
                m.insert("synced_non_voting_followers".into(), json!(0));
                m.insert("pending_syncs".into(), json!(0));
            }
        }
        "environment" => {
            let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
            m.insert("zookeeper.version".into(), json!(crate::fourlw::VERSION));
            m.insert("host.name".into(), json!(var("HOSTNAME", "localhost")));
            m.insert("os.name".into(), json!(std::env::consts::OS));
            m.insert("os.arch".into(), json!(std::env::consts::ARCH));
            let os_version = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            m.insert("os.version".into(), json!(os_version.trim()));
            m.insert("user.name".into(), json!(var("USER", "")));
            m.insert("user.home".into(), json!(var("HOME", "")));
            let dir = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
            m.insert("user.dir".into(), json!(dir));
            m.insert("implementation".into(), json!("zk-rs"));
        }
        "dirs" => {
            m.insert("datadir_size".into(), json!(ctx.data_dir_size));
            m.insert("logdir_size".into(), json!(ctx.log_dir_size));
        }
        "dump" => {
            let expiry: Map<String, Value> =
                r.expiry_buckets.iter().map(|(t, ids)| (t.to_string(), json!(ids))).collect();
            let ephemerals: Map<String, Value> =
                r.ephemerals_by_session.iter().map(|(id, paths)| (id.to_string(), json!(paths))).collect();
            m.insert("expiry_time_to_session_ids".into(), Value::Object(expiry));
            m.insert("session_id_to_ephemeral_paths".into(), Value::Object(ephemerals));
        }
        "is_read_only" => {
            m.insert("read_only".into(), json!(r.mode == "read-only"));
        }
        "watch_summary" => {
            m.insert("num_connections".into(), json!(r.watching_connections));
            m.insert("num_paths".into(), json!(r.watched_paths));
            m.insert("num_total_watches".into(), json!(r.data_watch_count));
        }
        "watches" => {
            let by: Map<String, Value> = r
                .watches_by_conn
                .iter()
                .map(|(conn, paths)| (r.session_of(*conn).to_string(), json!(paths)))
                .collect();
            m.insert("session_id_to_watched_paths".into(), Value::Object(by));
        }
        "watches_by_path" => {
            let by: Map<String, Value> = r
                .watches_by_path
                .iter()
                .map(|(path, conns)| {
                    (path.clone(), json!(conns.iter().map(|c| r.session_of(*c)).collect::<Vec<_>>()))
                })
                .collect();
            m.insert("path_to_session_ids".into(), Value::Object(by));
        }
        other => {
            m.insert("command".into(), json!(other));
            m.insert("error".into(), json!(format!("Unknown command: {other}")));
            return Value::Object(m);
        }
    }
    m.insert("command".into(), json!(cmd));
    m.insert("error".into(), Value::Null);
    Value::Object(m)
}

/// What the HTTP handlers share.
pub(crate) struct HttpShared {
    /// The connections' shared state (the core's inbox among it).
    pub(crate) net: Arc<NetShared>,
    /// The metrics, when the Prometheus endpoint is on.
    pub(crate) metrics: Option<Arc<ServerMetrics>>,
    /// When the server started.
    pub(crate) started: Instant,
}

type Shared = State<Arc<HttpShared>>;

fn json_response(status: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn run_command(State(s): Shared, Path(name): Path<String>) -> Response {
    let Some(cmd) = primary(&name) else {
        let unknown = Context {
            cfg: &s.net.cfg,
            client_port: s.net.port,
            uptime_ms: 0,
            data_dir_size: 0,
            log_dir_size: 0,
        };
        return json_response(StatusCode::OK, &command(&name, &unknown, &Report::default()));
    };
    let report = match needs(cmd) {
        None => Some(Report::default()),
        Some((n, reset)) => ask_core(&s.net, n, reset).await,
    };
    let Some(report) = report else {
        let v = json!({"command": cmd, "error": "This ZooKeeper instance is not currently serving requests"});
        return json_response(StatusCode::SERVICE_UNAVAILABLE, &v);
    };
    let cfg = s.net.cfg.clone();
    let (port, uptime_ms) = (s.net.port, s.started.elapsed().as_millis() as u64);
    // Directory sizes read the disk: off the async workers.
    let v = tokio::task::spawn_blocking(move || {
        let ctx = Context {
            cfg: &cfg,
            client_port: port,
            uptime_ms,
            data_dir_size: crate::fourlw::dir_size(&cfg.data_dir),
            log_dir_size: crate::fourlw::dir_size(&cfg.data_log_dir),
        };
        command(cmd, &ctx, &report)
    })
    .await
    .unwrap_or_else(|_| json!({"command": cmd, "error": "internal error"}));
    json_response(StatusCode::OK, &v)
}

async fn index(State(s): Shared) -> Html<String> {
    let url = s.net.cfg.admin.as_ref().map_or("/commands".to_string(), |a| a.command_url.clone());
    let mut out = String::new();
    for (name, _) in COMMANDS {
        out.push_str(&format!("<a href=\"{url}/{name}\">{name}</a>\n<br/>\n"));
    }
    Html(out)
}

/// `/ready`: 200 when the server answers clients (standalone, or a member
/// of an ensemble with a quorum, or read-only mode), 503 otherwise, with
/// the mode in a small JSON body.
async fn ready(State(s): Shared) -> Response {
    match ask_core(&s.net, Needs::default(), None).await {
        Some(r) if r.serving => json_response(StatusCode::OK, &json!({"ready": true, "mode": r.mode})),
        Some(r) => json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"ready": false, "mode": r.mode})),
        None => json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"ready": false, "mode": "stopped"})),
    }
}

async fn metrics(State(s): Shared) -> Response {
    let Some(m) = s.metrics.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let report = ask_core(&s.net, Needs::default(), None).await;
    let text = m.render(report.as_ref());
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
        .into_response()
}

/// The AdminServer's routes under `command_url`, and `/ready`.
pub(crate) fn admin_router(shared: Arc<HttpShared>, command_url: &str) -> Router {
    Router::new()
        .route(command_url, get(index))
        .route(&format!("{command_url}/"), get(index))
        .route(&format!("{command_url}/{{name}}"), get(run_command))
        .route("/ready", get(ready))
        .with_state(shared)
}

/// The Prometheus endpoint's route.
pub(crate) fn metrics_router(shared: Arc<HttpShared>) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(shared)
}

/// Binds `addr` and serves `router` until `shutdown`; a port that cannot be
/// bound is logged and skipped (as Apache's quorum peer does with its
/// AdminServer): the client port matters more than the HTTP one.
/// Returns the address bound.
pub(crate) async fn serve(
    what: &'static str,
    addr: SocketAddr,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> Option<SocketAddr> {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!(%addr, error = %e, "{what} not started: cannot bind its port");
            return None;
        }
    };
    let bound = listener.local_addr().ok()?;
    info!(addr = %bound, "{what} listening");
    tokio::spawn(async move {
        let stop = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stop).await {
            warn!(error = %e, "{what} stopped");
        }
    });
    Some(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ConnInfo;

    fn ctx(cfg: &ServerConfig) -> Context<'_> {
        Context { cfg, client_port: 2181, uptime_ms: 5, data_dir_size: 1, log_dir_size: 2 }
    }

    #[test]
    fn names_and_aliases() {
        assert_eq!(primary("mntr"), Some("monitor"));
        assert_eq!(primary("monitor"), Some("monitor"));
        assert_eq!(primary("stat"), Some("stats"));
        assert_eq!(primary("srvr"), Some("server_stats"));
        assert_eq!(primary("nope"), None);
    }

    #[test]
    fn json_as_apache_writes_it() {
        let cfg = ServerConfig::new("/tmp/zk");
        let mut r = Report { mode: "standalone", serving: true, node_count: 5, ..Report::default() };
        r.connections.push(ConnInfo {
            id: 1,
            peer: Some("127.0.0.1:4000".parse().unwrap()),
            session: 77,
            stats: Default::default(),
        });
        let v = command("stats", &ctx(&cfg), &r);
        assert_eq!(v["command"], "stats");
        assert!(v["error"].is_null());
        assert_eq!(v["server_stats"]["server_state"], "standalone");
        assert_eq!(v["node_count"], 5);
        assert_eq!(v["connections"][0]["remote_socket_address"], "127.0.0.1:4000");
        let v = command("connections", &ctx(&cfg), &r);
        assert_eq!(v["connections"][0]["session_id"], 77);
        assert_eq!(v["connections"][0]["last_operation"], "NA");
        let v = command("nope", &ctx(&cfg), &r);
        assert_eq!(v["error"], "Unknown command: nope");
        let v = command("ruok", &ctx(&cfg), &r);
        assert_eq!(v.as_object().map(|m| m.len()), Some(2));
        r.watches_by_path = vec![("/a".into(), vec![1])];
        r.session_of_conn = vec![(1, 77)];
        let v = command("watches_by_path", &ctx(&cfg), &r);
        assert_eq!(v["path_to_session_ids"]["/a"][0], 77);
        let v = command("configuration", &ctx(&cfg), &r);
        assert_eq!(v["data_dir"], "/tmp/zk/version-2");
    }
}
