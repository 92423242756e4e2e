//! The HTTP side: Apache's AdminServer (`/commands/<name>`) answers with
//! the JSON keys Apache 3.8's Jetty AdminServer gives on the same machine,
//! `/ready` follows whether a server serves (an ensemble member without a
//! quorum is not ready), and the Prometheus endpoint's figures move with
//! the load.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use zk_client::{Client, CreateMode};
use zk_server::{AdminConfig, Server, ServerConfig};
use zk_test_support::apache::{ApacheZk, ApacheZkOptions};

use common::http_get as get;

async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = get(addr, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// Our server in process with the AdminServer and `/metrics` on free
/// loopback ports.
async fn ours() -> Server {
    let mut cfg = ServerConfig::new("");
    cfg.client_port = 0;
    cfg.client_port_address = Some("127.0.0.1".parse().unwrap());
    cfg.admin =
        Some(AdminConfig { address: "127.0.0.1".parse().unwrap(), port: 0, ..AdminConfig::default() });
    cfg.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    Server::start_temp_with(cfg).await.unwrap()
}

/// A session with an ephemeral node, a data watch on it and a child watch
/// on `/`, so the connection, watch and session tables have something.
async fn populate(cs: &str) -> (Client, Vec<zk_client::OneshotWatcher>) {
    let c = Client::connect(cs).await.unwrap();
    c.create("/admin-e", b"x", CreateMode::Ephemeral).await.unwrap();
    let (_, _, w1) = c.get_data_watch("/admin-e").await.unwrap();
    let (_, w2) = c.get_children_watch("/").await.unwrap();
    (c, vec![w1, w2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_answer_with_apaches_keys() {
    common::trace_init();
    let admin_port = zk_test_support::free_port();
    let opts = ApacheZkOptions { admin_port: Some(admin_port), ..ApacheZkOptions::default() };
    let Some(apache) = tokio::task::spawn_blocking(move || ApacheZk::start_with(opts)).await.unwrap() else {
        return;
    };
    let apache_admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    // Jetty starts after the client port is up: wait for it.
    common::wait_until_async(30, "Apache's AdminServer", || async move {
        tokio::net::TcpStream::connect(apache_admin).await.is_ok()
    })
    .await;
    let server = ours().await;
    let our_admin = server.admin_addr().expect("our AdminServer");
    let (ac, _aw) = populate(&apache.connect_string()).await;
    let (oc, _ow) = populate(&server.connect_string()).await;

    let commands = [
        "ruok",
        "server_stats",
        "stats",
        "configuration",
        "connections",
        "monitor",
        "environment",
        "dirs",
        "dump",
        "watch_summary",
        "watches",
        "watches_by_path",
        "is_read_only",
        "stat_reset",
        "connection_stat_reset",
    ];
    for cmd in commands {
        let a = get_json(apache_admin, &format!("/commands/{cmd}")).await;
        let o = get_json(our_admin, &format!("/commands/{cmd}")).await;
        assert_eq!(o["command"], a["command"], "{cmd}: the command's name");
        assert!(o["error"].is_null() && a["error"].is_null(), "{cmd}: {o} / {a}");
        let (ak, ok) = (keys(&a), keys(&o));
        match cmd {
            // Apache's monitor lists hundreds of internal counters and its
            // environment the JVM's properties: ours is a subset.
            "monitor" => assert!(ok.is_subset(&ak), "{cmd}: ours has keys Apache lacks: {:?}", &ok - &ak),
            "environment" => {
                let extra: BTreeSet<_> = ok.difference(&ak).cloned().collect();
                assert_eq!(extra, BTreeSet::from(["implementation".to_string()]), "{cmd}");
            }
            _ => assert_eq!(ok, ak, "{cmd}: top-level keys"),
        }
        if cmd == "server_stats" || cmd == "stats" {
            assert_eq!(keys(&o["server_stats"]), keys(&a["server_stats"]), "{cmd}: server_stats keys");
            assert_eq!(o["server_stats"]["server_state"], "standalone");
            assert!(o["node_count"].as_u64().unwrap() >= 5, "{o}");
        }
        if cmd == "stats" {
            assert_eq!(keys(&o["connections"][0]), keys(&a["connections"][0]), "stats: a connection's keys");
        }
        if cmd == "connections" {
            let (oc0, ac0) = (keys(&o["connections"][0]), keys(&a["connections"][0]));
            assert!(oc0.is_subset(&ac0), "connections: ours has {:?} Apache lacks", &oc0 - &ac0);
            let mine = o["connections"].as_array().unwrap();
            assert!(mine.iter().any(|c| c["session_id"] == oc.session_id()), "{o}");
        }
    }
    // The tables name the same things on both servers.
    for (addr, client) in [(apache_admin, &ac), (our_admin, &oc)] {
        let sid = client.session_id().to_string();
        let w = get_json(addr, "/commands/wchc").await;
        assert_eq!(w["command"], "watches");
        assert_eq!(w["session_id_to_watched_paths"][&sid], serde_json::json!(["/admin-e"]), "{w}");
        let w = get_json(addr, "/commands/wchp").await;
        assert_eq!(w["path_to_session_ids"]["/admin-e"][0].to_string(), sid, "{w}");
        let d = get_json(addr, "/commands/dump").await;
        assert_eq!(d["session_id_to_ephemeral_paths"][&sid], serde_json::json!(["/admin-e"]), "{d}");
        let expiring: Vec<String> = d["expiry_time_to_session_ids"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|ids| ids.as_array().unwrap().iter().map(|i| i.to_string()))
            .collect();
        assert!(expiring.contains(&sid), "{d}");
        let s = get_json(addr, "/commands/wchs").await;
        assert_eq!((s["num_paths"].as_u64(), s["num_total_watches"].as_u64()), (Some(1), Some(1)), "{s}");
        let u = get_json(addr, "/commands/no_such_command").await;
        assert_eq!(u["error"], "Unknown command: no_such_command");
    }
    ac.close().await.unwrap();
    oc.close().await.unwrap();
    server.stop().await;
}

/// Prometheus text as `name{labels}` → value.
fn scrape_values(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_the_load() {
    common::trace_init();
    let server = ours().await;
    let at = server.metrics_addr().expect("the Prometheus endpoint");
    let (status, before) = get(at, "/metrics").await;
    assert_eq!(status, 200);
    for line in ["# TYPE updatelatency summary", "# TYPE readlatency summary", "# TYPE znode_count gauge"] {
        assert!(before.contains(line), "{line} in {before}");
    }
    let before = scrape_values(&before);
    let c = Client::connect(&server.connect_string()).await.unwrap();
    c.create("/m", b"", CreateMode::Persistent).await.unwrap();
    for i in 0..200 {
        c.create(&format!("/m/n{i}"), &[1u8; 100], CreateMode::Persistent).await.unwrap();
    }
    for i in 0..300 {
        c.get_data(&format!("/m/n{}", i % 200)).await.unwrap();
    }
    let (_, after) = get(at, "/metrics").await;
    let after = scrape_values(&after);
    let delta = |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    assert_eq!(delta("znode_count"), 201.0, "{after:?}");
    assert!(delta("updatelatency_count") >= 201.0, "{after:?}");
    assert!(delta("readlatency_count") >= 300.0, "{after:?}");
    assert!(delta("fsynctime_count") >= 1.0, "fsyncs were timed: {after:?}");
    assert!(delta("packets_received") >= 501.0, "{after:?}");
    assert!(after["num_alive_connections"] >= 1.0 && after["server_state_serving"] == 1.0, "{after:?}");
    assert!(after["approximate_data_size"] > before["approximate_data_size"] + 20_000.0, "{after:?}");
    for q in ["0.5", "0.9", "0.99"] {
        assert!(after.contains_key(&format!("updatelatency{{quantile=\"{q}\"}}")), "{after:?}");
    }
    let (status, _) = get(at, "/nope").await;
    assert_eq!(status, 404);
    // The AdminServer's ready probe on the same server.
    let (status, body) = get(server.admin_addr().unwrap(), "/ready").await;
    assert_eq!((status, body.contains("\"standalone\"")), (200, true), "{body}");
    c.close().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_the_quorum() {
    common::trace_init();
    let mut cluster = zk_server::TestingCluster::start(3).await.unwrap();
    common::within(60, "a leader", async {
        while cluster.leader().await.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for i in 0..3 {
        let addr = cluster.admin_addr(i).expect("admin on every member");
        common::wait_until_async(
            30,
            "every member ready",
            || async move { get(addr, "/ready").await.0 == 200 },
        )
        .await;
    }
    // Two of three gone: the last one has no quorum and is not ready.
    cluster.stop(1).await;
    cluster.stop(2).await;
    let lone = cluster.admin_addr(0).unwrap();
    common::wait_until_async(30, "the lone member not ready", || async move {
        get(lone, "/ready").await.0 == 503
    })
    .await;
    let (_, body) = get(lone, "/ready").await;
    assert!(body.contains("\"ready\": false"), "{body}");
    cluster.restart(1).await.unwrap();
    common::wait_until_async(60, "ready again with a quorum", || async move {
        get(lone, "/ready").await.0 == 200
    })
    .await;
    cluster.stop_all().await;
}
