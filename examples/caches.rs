//! NodeCache, PathChildrenCache and TreeCache following a changing subtree.
//!
//! ```text
//! cargo run --example caches
//! ```

mod common;

use std::time::Duration;

use futures::StreamExt;
use zk_client::{Client, CreateMode};
use zk_recipes::Framework;
use zk_recipes::cache::{CacheEvent, NodeCache, PathChildrenCache, TreeCache};
use zk_recipes::retry::ExponentialBackoffRetry;

fn describe(ev: &CacheEvent) -> String {
    match ev {
        CacheEvent::Added(c) => format!("added {} = {:?}", c.path, String::from_utf8_lossy(&c.data)),
        CacheEvent::Updated(c) => format!("updated {} = {:?}", c.path, String::from_utf8_lossy(&c.data)),
        CacheEvent::Removed(c) => format!("removed {}", c.path),
        other => format!("{other:?}"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = common::target().await?;
    let base = common::base("caches");
    let fw = Framework::new(&target.connect, ExponentialBackoffRetry::new(Duration::from_millis(100), 3));
    fw.start().await?;
    // start() returns at once (as Curator's); calls wait for the connection.
    if !fw.block_until_connected(Duration::from_secs(15)).await {
        return Err("not connected within 15 s".into());
    }
    fw.ensure_path(&base).await?;
    let writer = Client::connect(&target.connect).await?;

    let node = NodeCache::new(&fw, &format!("{base}/settings"));
    let children = PathChildrenCache::new(&fw, &base);
    let tree = TreeCache::new(&fw, &base);
    let mut node_events = node.events();
    let mut child_events = children.events();
    let mut tree_events = tree.events();
    node.start().await?;
    children.start().await?;
    tree.start().await?;

    // Each change, then a wait until the tree cache shows it (caches are
    // eventually consistent: a change undone before they look is never seen).
    let ada = format!("{base}/users/ada");
    let settle = |want: bool| {
        let tree = &tree;
        let ada = ada.clone();
        async move {
            for _ in 0..200 {
                if tree.get(&ada).is_some() == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    writer.create(&format!("{base}/settings"), b"v1", CreateMode::Persistent).await?;
    writer.create(&format!("{base}/users"), b"", CreateMode::Persistent).await?;
    writer.create(&ada, b"admin", CreateMode::Persistent).await?;
    settle(true).await;
    writer.set_data(&format!("{base}/settings"), b"v2", None).await?;
    writer.delete(&ada, None).await?;
    settle(false).await;

    // Let the caches catch up, then show what each saw.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, events) in [
        ("NodeCache", &mut node_events),
        ("PathChildrenCache", &mut child_events),
        ("TreeCache", &mut tree_events),
    ] {
        println!("-- {name} events:");
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(100), events.next()).await {
            println!("   {}", describe(&ev));
        }
    }
    println!("NodeCache now: {:?}", node.node().map(|c| String::from_utf8_lossy(&c.data).to_string()));
    let kids: Vec<String> = children.current().into_iter().map(|c| c.path).collect();
    println!("PathChildrenCache now: {kids:?}");
    let all: Vec<String> = tree.current().into_iter().map(|c| c.path).collect();
    println!("TreeCache now: {all:?}");

    node.close().await;
    children.close().await;
    tree.close().await;
    writer.close().await?;
    fw.close().await;
    target.stop().await;
    Ok(())
}
