//! Service registry: members register ephemeral nodes under
//! `/services/api`, a watcher keeps the member list with a
//! PathChildrenCache; when a member's session ends its node vanishes.
//!
//! ```text
//! cargo run --example service_registry
//! ```

mod common;

use std::time::Duration;

use futures::StreamExt;
use zk_client::{Client, CreateMode};
use zk_recipes::Framework;
use zk_recipes::cache::{CacheEvent, PathChildrenCache};
use zk_recipes::retry::ExponentialBackoffRetry;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = common::target().await?;
    let base = format!("{}/services/api", common::base("registry"));
    let fw = Framework::new(&target.connect, ExponentialBackoffRetry::new(Duration::from_millis(100), 3));
    fw.start().await?;
    // start() returns at once (as Curator's); calls wait for the connection.
    if !fw.block_until_connected(Duration::from_secs(15)).await {
        return Err("not connected within 15 s".into());
    }
    fw.ensure_path(&base).await?;
    let members = PathChildrenCache::new(&fw, &base);
    let mut events = members.events();
    members.start().await?;

    let mut sessions = Vec::new();
    for (i, addr) in ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"].iter().enumerate() {
        let c = Client::connect(&target.connect).await?;
        let (path, _) =
            c.create(&format!("{base}/member-"), addr.as_bytes(), CreateMode::EphemeralSequential).await?;
        println!("member {i} registered as {path} ({addr})");
        sessions.push(c);
    }
    let show = |events: &mut zk_recipes::cache::CacheEvents| {
        let mut lines = Vec::new();
        while let Some(Some(ev)) = futures::FutureExt::now_or_never(events.next()) {
            match ev {
                CacheEvent::Added(c) => {
                    lines.push(format!("  + {} at {}", c.path, String::from_utf8_lossy(&c.data)))
                }
                CacheEvent::Removed(c) => lines.push(format!("  - {} left", c.path)),
                _ => {}
            }
        }
        lines
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("the watcher saw:");
    for l in show(&mut events) {
        println!("{l}");
    }
    println!("member 1 shuts down (its session closes)");
    sessions.remove(1).close().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for l in show(&mut events) {
        println!("{l}");
    }
    let live: Vec<String> =
        members.current().into_iter().map(|c| String::from_utf8_lossy(&c.data).to_string()).collect();
    println!("live members: {live:?}");
    for s in sessions {
        s.close().await?;
    }
    members.close().await;
    fw.close().await;
    target.stop().await;
    Ok(())
}
