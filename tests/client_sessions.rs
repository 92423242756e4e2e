//! zk-client session life against real Apache ZooKeeper: failover inside a
//! 3-server ensemble (same session, ephemerals and watches), expiry when
//! every server is gone, and connection faults injected by a proxy
//! (dropped reply, stall, cut, refused reconnects).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::within;
use futures::StreamExt;
use zk_client::{Client, CreateMode, Error, EventType, SessionState, StateEvents};
use zk_test_support::apache::ApacheZk;
use zk_test_support::ensemble::ApacheEnsemble;
use zk_test_support::proxy::Proxy;

async fn wait_state(events: &mut StateEvents, want: SessionState, secs: u64) {
    within(secs, &format!("state {want:?}"), async {
        while let Some(s) = events.next().await {
            if s == want {
                return;
            }
        }
        panic!("state stream ended before {want:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_moves_between_ensemble_servers_and_expires_without_them() {
    let Some(mut ens) = ApacheEnsemble::start(3) else { return };
    // Long enough to outlast a re-election when the stopped member led
    // (on a loaded machine), short enough to wait out at the end.
    let c = Client::builder(&ens.connect_string())
        .session_timeout(Duration::from_secs(8))
        .connect()
        .await
        .unwrap();
    let other = Client::connect(&ens.connect_string()).await.unwrap();
    let id = c.session_id();
    c.create("/eph", b"", CreateMode::Ephemeral).await.unwrap();
    other.create("/data", b"0", CreateMode::Persistent).await.unwrap();
    // The two sessions may be on different members: a read sees another
    // session's write only once this member has applied it (sync).
    c.sync("/data").await.unwrap();
    let (_, _, watch) = c.get_data_watch("/data").await.unwrap();

    // Stop the server the client is attached to.
    let server = c.current_server().unwrap();
    let i = (0..ens.len()).find(|&i| ens.addr(i).to_string() == server).expect("attached to a member");
    let mut states = c.state_events();
    ens.stop(i);
    wait_state(&mut states, SessionState::Disconnected, 10).await;
    wait_state(&mut states, SessionState::Connected, 20).await;
    assert_eq!(c.session_id(), id, "the same session is re-attached");
    assert_ne!(c.current_server(), Some(server));

    // The ephemeral survived, and the watch set before the move fires after it.
    let stat = within(20, "exists", async {
        loop {
            let synced = other.sync("/eph").await;
            match synced.and(other.exists("/eph").await) {
                Ok(s) => return s,
                Err(Error::ConnectionLoss) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert_eq!(stat.map(|s| s.ephemeral_owner), Some(id));
    within(20, "set_data after failover", async {
        loop {
            match other.set_data("/data", b"1", None).await {
                Ok(_) => break,
                Err(Error::ConnectionLoss) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    let ev = within(10, "watch after failover", watch).await;
    assert_eq!(ev.event_type, EventType::NodeDataChanged);

    // Every server gone for longer than the session timeout: Expired.
    for j in 0..ens.len() {
        ens.stop(j);
    }
    wait_state(&mut states, SessionState::Expired, 30).await;
    assert_eq!(c.get_data("/data").await, Err(Error::SessionExpired));
    assert_eq!(c.state(), SessionState::Expired);
    drop(other);
}

async fn a_lost_reply_fails_with_connection_loss_and_the_next_request_succeeds(addr: std::net::SocketAddr) {
    let proxy = Proxy::start(addr);
    let c = Client::builder(&proxy.connect_string())
        .session_timeout(Duration::from_secs(6))
        .connect()
        .await
        .unwrap();
    let id = c.session_id();

    // The server applies the create but its reply never arrives.
    proxy.drop_replies_after(0);
    let r = within(10, "create with lost reply", c.create("/applied", b"", CreateMode::Persistent)).await;
    assert_eq!(r, Err(Error::ConnectionLoss));
    let stat = within(15, "exists after reconnect", async {
        loop {
            match c.exists("/applied").await {
                Err(Error::ConnectionLoss) => tokio::time::sleep(Duration::from_millis(50)).await,
                other => return other.unwrap(),
            }
        }
    })
    .await;
    assert!(stat.is_some(), "the server applied the create");
    assert_eq!(c.session_id(), id, "same session after reconnect");
    assert_eq!(proxy.replies_dropped(), 1);
    c.close().await.unwrap();
}

async fn a_stalled_connection_is_detected_and_replaced(addr: std::net::SocketAddr) {
    let proxy = Proxy::start(addr);
    let c = Client::builder(&proxy.connect_string())
        .session_timeout(Duration::from_secs(6))
        .connect()
        .await
        .unwrap();
    c.create("/s", b"x", CreateMode::Persistent).await.unwrap();
    let mut states = c.state_events();

    proxy.stall(true);
    // Nothing comes back: the read timeout (2/3 of the session timeout)
    // declares the connection lost and the request fails.
    let r = within(15, "request on stalled connection", c.get_data("/s")).await;
    assert_eq!(r.err(), Some(Error::ConnectionLoss));
    wait_state(&mut states, SessionState::Disconnected, 5).await;
    proxy.cut();
    proxy.stall(false);
    wait_state(&mut states, SessionState::Connected, 15).await;
    assert_eq!(&c.get_data("/s").await.unwrap().0[..], b"x");
    c.close().await.unwrap();
}

async fn cut_connections_and_refused_reconnects(addr: std::net::SocketAddr) {
    let proxy = Proxy::start(addr);
    let c = Client::builder(&proxy.connect_string())
        .session_timeout(Duration::from_secs(6))
        .connect()
        .await
        .unwrap();
    let id = c.session_id();
    let mut states = c.state_events();

    // In-flight requests fail at once when the connection is cut.
    proxy.stall(true);
    let inflight = c.get_data("/");
    // Time for the request to be written into the stalled proxy, so that it
    // is in flight when the cut comes. Nothing observable says it was (the
    // stalled proxy reads nothing), and the assertion below holds either
    // way: a request still queued in the client fails the same.
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.set_refuse(true);
    proxy.cut();
    assert_eq!(within(5, "in-flight request", inflight).await.err(), Some(Error::ConnectionLoss));
    wait_state(&mut states, SessionState::Disconnected, 5).await;
    proxy.stall(false);

    // While every reconnect is refused, requests fail with ConnectionLoss
    // and nothing hangs.
    let r = within(10, "request while refused", c.get_data("/")).await;
    assert_eq!(r.err(), Some(Error::ConnectionLoss));

    // Reconnects are allowed again within the session timeout: same session.
    proxy.set_refuse(false);
    wait_state(&mut states, SessionState::Connected, 10).await;
    assert_eq!(c.session_id(), id);
    c.get_data("/").await.unwrap();
    c.close().await.unwrap();
}

mod a_lost_reply_fails_with_connection_loss_and_the_next_request_succeeds_on {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn apache() {
        let Some(zk) = ApacheZk::start() else { return };
        super::a_lost_reply_fails_with_connection_loss_and_the_next_request_succeeds(zk.addr()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn zk_server() {
        let server = zk_server::Server::start_temp().await.unwrap();
        super::a_lost_reply_fails_with_connection_loss_and_the_next_request_succeeds(server.addr()).await;
        server.stop().await;
    }
}

mod a_stalled_connection_is_detected_and_replaced_on {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn apache() {
        let Some(zk) = ApacheZk::start() else { return };
        super::a_stalled_connection_is_detected_and_replaced(zk.addr()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn zk_server() {
        let server = zk_server::Server::start_temp().await.unwrap();
        super::a_stalled_connection_is_detected_and_replaced(server.addr()).await;
        server.stop().await;
    }
}

mod cut_connections_and_refused_reconnects_on {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn apache() {
        let Some(zk) = ApacheZk::start() else { return };
        super::cut_connections_and_refused_reconnects(zk.addr()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn zk_server() {
        let server = zk_server::Server::start_temp().await.unwrap();
        super::cut_connections_and_refused_reconnects(server.addr()).await;
        server.stop().await;
    }
}

/// Our server expires a session whose client is gone: its ephemerals go
/// and watchers hear of it; a re-attach with a bad password is refused as
/// expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_server_expires_sessions_and_refuses_bad_reattach() {
    let mut cfg = zk_server::ServerConfig::new("");
    cfg.tick_time = Duration::from_millis(200);
    cfg.client_port = 0;
    cfg.client_port_address = Some(std::net::Ipv4Addr::LOCALHOST.into());
    let server = zk_server::Server::start_temp_with(cfg).await.unwrap();
    let proxy = Proxy::start(server.addr());
    let doomed = Client::builder(&proxy.connect_string())
        .session_timeout(Duration::from_millis(800))
        .connect()
        .await
        .unwrap();
    let watcher = Client::connect(&server.connect_string()).await.unwrap();
    doomed.create("/eph", b"", CreateMode::Ephemeral).await.unwrap();
    let (_, gone) = watcher.exists_watch("/eph").await.unwrap();
    let mut states = doomed.state_events();
    proxy.set_refuse(true);
    proxy.cut();
    let ev = within(10, "ephemeral removed by expiry", gone).await;
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    wait_state(&mut states, SessionState::Expired, 10).await;
    // A raw re-attach with the right id but a wrong password is refused.
    let (rsp, _raw) = common::raw::Raw::connect_with(
        server.addr(),
        zk_proto::records::ConnectRequest {
            session_id: watcher.session_id(),
            passwd: bytes::Bytes::from_static(&[9; 16]),
            time_out: 10_000,
            read_only: Some(false),
            ..Default::default()
        },
    );
    assert_eq!((rsp.time_out, rsp.session_id), (0, 0), "a bad password gets the expired answer");
    watcher.get_data("/").await.unwrap();
    drop(proxy);
    watcher.close().await.unwrap();
    server.stop().await;
}

/// Read-only mode: a client that accepts read-only servers connects to an
/// ensemble member that lost its quorum (ConnectedReadOnly): reads work,
/// writes fail with NotReadOnly; when the quorum is back the client moves
/// to a read-write server on its own. (Apache needs local sessions to
/// create a session on a read-only server.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mode_and_back_to_read_write() {
    use zk_test_support::apache::ApacheZkOptions;
    let opts = ApacheZkOptions {
        tick_time: zk_test_support::ensemble::ENSEMBLE_TICK_MS,
        jvm_args: vec!["-Dreadonlymode.enabled=true".into()],
        extra_config: vec!["localSessionsEnabled=true".into(), "localSessionsUpgradingEnabled=true".into()],
        ..ApacheZkOptions::default()
    };
    let Some(mut ens) = ApacheEnsemble::start_with(3, opts) else { return };
    let writer = Client::connect(&ens.connect_string()).await.unwrap();
    writer.create("/ro", b"data", CreateMode::Persistent).await.unwrap();
    writer.close().await.unwrap();
    // Only server 0 is left: without a quorum it turns read-only.
    ens.stop(1);
    ens.stop(2);
    let all = ens.connect_string();
    let c = within(60, "read-only connect", async {
        loop {
            let b = Client::builder(&all).read_only(true).session_timeout(Duration::from_secs(6));
            match b.connection_timeout(Duration::from_secs(5)).connect().await {
                Ok(c) if c.state() == SessionState::ConnectedReadOnly => return c,
                Ok(c) => {
                    let _ = c.close().await;
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    assert_eq!(&c.get_data("/ro").await.unwrap().0[..], b"data", "reads work on a read-only server");
    assert_eq!(c.create("/x", b"", CreateMode::Persistent).await.err(), Some(Error::NotReadOnly));
    let mut states = c.state_events();
    ens.restart(1);
    ens.restart(2);
    wait_state(&mut states, SessionState::Connected, 90).await;
    c.get_data("/ro").await.unwrap();
    drop(c);
}
