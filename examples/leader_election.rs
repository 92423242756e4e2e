//! Leader election two ways: a LeaderLatch with three participants (the
//! leader is closed, another takes over), then three LeaderSelectors that
//! take turns leading. Both parts check what they claim: the latches are
//! polled and never two lead at one poll; each selector's listener counts
//! the leaders inside it, and never two are. The example fails (exits
//! non-zero) when either check does.
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
    /// Listeners inside `take_leadership` right now, over all selectors.
    leaders_now: Arc<AtomicUsize>,
    /// The most ever seen inside at once.
    most_at_once: Arc<AtomicUsize>,
}

/// Counts one leader in; counts it out when dropped, which also happens
/// when the selector cancels `take_leadership` (close, lost connection).
struct Leading(Arc<AtomicUsize>);

impl Drop for Leading {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl LeaderSelectorListener for Worker {
    async fn take_leadership(&self, _fw: &Framework) {
        let now = self.leaders_now.fetch_add(1, Ordering::SeqCst) + 1;
        let _leading = Leading(self.leaders_now.clone());
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        let term = self.terms.fetch_add(1, Ordering::SeqCst) + 1;
        println!("selector {} leads (term {term}), works for a moment, then steps down", self.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// "1 leader" / "2 leaders".
fn leaders(n: usize) -> String {
    format!("{n} leader{}", if n == 1 { "" } else { "s" })
}

async fn framework(cs: &str) -> Result<Framework, zk_recipes::Error> {
    let fw = Framework::builder(cs)
        .session_timeout(Duration::from_secs(10))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 3))
        .build();
    fw.start().await?;
    // start() returns at once (as Curator's); calls wait for the connection.
    if !fw.block_until_connected(Duration::from_secs(15)).await {
        return Err(zk_recipes::ZkError::ConnectionLoss.into());
    }
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
    // Every poll counts the latches that think they lead: never more than one.
    let mut polls = 0usize;
    let mut most_latch_leaders = 0usize;
    let mut poll = |latches: &[LeaderLatch]| {
        let n = latches.iter().filter(|l| l.has_leadership()).count();
        polls += 1;
        most_latch_leaders = most_latch_leaders.max(n);
        n
    };
    for round in 0..2 {
        let leader = loop {
            poll(&latches);
            if let Some(l) = latches.iter().position(LeaderLatch::has_leadership) {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // Watch the settled election a little longer: still one leader.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            poll(&latches);
        }
        let ids: Vec<String> = latches[leader].participants().await?.into_iter().map(|p| p.id).collect();
        println!("leader: {} (queue: {})", latches[leader].id(), ids.join(", "));
        if round == 0 {
            println!("closing the leader {}; watch the hand-over", latches[leader].id());
            let old = latches.remove(leader);
            old.close_with_mode(CloseMode::NotifyLeader).await;
        }
    }
    for l in &latches {
        l.close().await;
    }
    println!("latch: {polls} polls, at most {} at a time", leaders(most_latch_leaders));
    if most_latch_leaders > 1 {
        return Err(format!("{most_latch_leaders} latches had leadership at one poll").into());
    }

    println!("-- LeaderSelector: three selectors take turns on {base}/selector");
    let terms = Arc::new(AtomicUsize::new(0));
    let leaders_now = Arc::new(AtomicUsize::new(0));
    let most_at_once = Arc::new(AtomicUsize::new(0));
    let mut selectors = Vec::new();
    for name in ["one", "two", "three"] {
        let fw = framework(&target.connect).await?;
        let s = LeaderSelector::new(
            &fw,
            &format!("{base}/selector"),
            name,
            Arc::new(Worker {
                name: name.into(),
                terms: terms.clone(),
                leaders_now: leaders_now.clone(),
                most_at_once: most_at_once.clone(),
            }),
        );
        s.auto_requeue();
        s.start().await?;
        fws.push(fw);
        selectors.push(s);
    }
    while terms.load(Ordering::SeqCst) < 6 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in &selectors {
        s.close().await;
    }
    // Closing a leading selector cancels its term, so the count may pass 6.
    let most = most_at_once.load(Ordering::SeqCst);
    println!("{} terms of leadership, at most {} at a time", terms.load(Ordering::SeqCst), leaders(most));
    for fw in fws {
        fw.close().await;
    }
    target.stop().await;
    if most > 1 {
        return Err(format!("{most} selectors led at once").into());
    }
    Ok(())
}
