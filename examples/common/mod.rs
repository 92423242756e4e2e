//! What every example shares: where to connect.
//!
//! By default an example starts the bundled server in-process on a free
//! loopback port with a temporary data dir. `--connect host:port[,...]` or
//! the environment variable `ZK_CONNECT` points it at a real ensemble
//! (Apache ZooKeeper 3.5+ or zk-server) instead.

#![allow(dead_code, unreachable_pub)]

/// The ensemble an example talks to; stops the embedded server on drop.
pub struct Target {
    /// The connect string.
    pub connect: String,
    /// The embedded server, when one was started.
    pub server: Option<zk_server::Server>,
}

impl Target {
    /// Stops the embedded server, if any.
    pub async fn stop(self) {
        if let Some(s) = self.server {
            s.stop().await;
        }
    }
}

/// Reads `--connect` / `ZK_CONNECT`, or starts the embedded server.
pub async fn target() -> Result<Target, Box<dyn std::error::Error>> {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
    let args: Vec<String> = std::env::args().collect();
    let from_args = args.iter().position(|a| a == "--connect").and_then(|i| args.get(i + 1).cloned());
    if let Some(cs) = from_args.or_else(|| std::env::var("ZK_CONNECT").ok().filter(|s| !s.is_empty())) {
        println!("Using the ensemble at {cs}");
        return Ok(Target { connect: cs, server: None });
    }
    let server = zk_server::Server::start_temp().await?;
    println!("Started the bundled ZooKeeper server on {} (temporary data dir)", server.connect_string());
    Ok(Target { connect: server.connect_string(), server: Some(server) })
}

/// A fresh, unique base path so runs against a shared ensemble do not
/// collide.
pub fn base(name: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("/examples/{name}-{:x}", nanos & 0xffff_ffff)
}

/// A started framework with its own session, connected (at most 15 s).
pub async fn session(cs: &str) -> Result<zk_recipes::Framework, Box<dyn std::error::Error + Send + Sync>> {
    use std::time::Duration;
    let fw = zk_recipes::Framework::new(
        cs,
        zk_recipes::retry::ExponentialBackoffRetry::new(Duration::from_millis(100), 3),
    );
    fw.start().await?;
    // start() returns at once (as Curator's); calls wait for the connection.
    if !fw.block_until_connected(Duration::from_secs(15)).await {
        return Err("not connected within 15 s".into());
    }
    Ok(fw)
}
