//! Leader election two ways: a LeaderLatch with three participants (the
//! leader is closed, another takes over), then three LeaderSelectors that
//! take turns leading.
//!
//! ```text
//! cargo run --example leader_election
//! ```

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use zk_recipes::Framework;
use zk_recipes::leader::{CloseMode, LeaderLatch, LeaderSelector, LeaderSelectorListener};
use zk_recipes::retry::ExponentialBackoffRetry;

struct Worker {
    name: String,
    terms: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl LeaderSelectorListener for Worker {
    async fn take_leadership(&self, _fw: &Framework) {
        let term = self.terms.fetch_add(1, Ordering::SeqCst) + 1;
        println!("selector {} leads (term {term}), works for a moment, then steps down", self.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn framework(cs: &str) -> Result<Framework, zk_recipes::Error> {
    let fw = Framework::builder(cs)
        .session_timeout(Duration::from_secs(10))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 3))
        .build();
    fw.start().await?;
    Ok(fw)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = common::target().await?;
    let base = common::base("leader");

    println!("-- LeaderLatch: three participants on {base}/latch");
    let mut latches = Vec::new();
    let mut fws = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let fw = framework(&target.connect).await?;
        let latch = LeaderLatch::new(&fw, &format!("{base}/latch"), name);
        latch.start().await?;
        fws.push(fw);
        latches.push(latch);
    }
    for round in 0..2 {
        let leader = loop {
            if let Some(l) = latches.iter().position(LeaderLatch::has_leadership) {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let ids: Vec<String> = latches[leader].participants().await?.into_iter().map(|p| p.id).collect();
        println!("leader: {} (queue: {})", latches[leader].id(), ids.join(", "));
        if round == 0 {
            println!("closing the leader {}; watch the hand-over", latches[leader].id());
            let old = latches.remove(leader);
            old.close(CloseMode::NotifyLeader).await;
        }
    }
    for l in &latches {
        l.close(CloseMode::Silent).await;
    }

    println!("-- LeaderSelector: three selectors take turns on {base}/selector");
    let terms = Arc::new(AtomicUsize::new(0));
    let mut selectors = Vec::new();
    for name in ["one", "two", "three"] {
        let fw = framework(&target.connect).await?;
        let s = LeaderSelector::new(
            &fw,
            &format!("{base}/selector"),
            name,
            Arc::new(Worker { name: name.into(), terms: terms.clone() }),
        );
        s.auto_requeue();
        s.start()?;
        fws.push(fw);
        selectors.push(s);
    }
    while terms.load(Ordering::SeqCst) < 6 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in &selectors {
        s.close().await;
    }
    println!("{} terms of leadership, never two at once", terms.load(Ordering::SeqCst));
    for fw in fws {
        fw.close().await;
    }
    target.stop().await;
    Ok(())
}
