//! Counter family: a SharedCount and a DistributedAtomicLong incremented
//! by several sessions at once, with optimistic retries (the atomic long
//! falls back to a lock); no increment is lost.
//!
//! ```text
//! cargo run --example counters
//! ```

mod common;

use std::time::Duration;

use futures::StreamExt;
use zk_recipes::atomic::{DistributedAtomicLong, PromotedToLock};
use zk_recipes::retry::RetryNTimes;
use zk_recipes::shared::{SharedCount, SharedValueEvent};

const WORKERS: usize = 4;
const ROUNDS: usize = 25;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let target = common::target().await.map_err(|e| e.to_string())?;
    let base = common::base("counters");
    let count_path = format!("{base}/shared-count");
    let long_path = format!("{base}/atomic-long");

    // An observer sees the count move.
    let observer_fw = common::session(&target.connect).await?;
    let observer = SharedCount::new(&observer_fw, &count_path, 0);
    let mut changes = observer.events();
    observer.start().await?;

    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (cs, count_path, long_path, lock_path) = (
            target.connect.clone(),
            count_path.clone(),
            long_path.clone(),
            format!("{base}/atomic-long-lock"),
        );
        tasks.push(tokio::spawn(async move {
            let fw = common::session(&cs).await?;
            let count = SharedCount::new(&fw, &count_path, 0);
            count.start().await?;
            let long =
                DistributedAtomicLong::new(&fw, &long_path, RetryNTimes::new(3, Duration::from_millis(5)))
                    .with_promoted_to_lock(
                        PromotedToLock::new(&lock_path)
                            .timeout(Duration::from_secs(30))
                            .retry_policy(RetryNTimes::new(10, Duration::from_millis(2))),
                    );
            let mut retries = 0;
            for _ in 0..ROUNDS {
                // Compare-and-set on the version read; retried when another
                // worker got in first.
                loop {
                    let seen = count.versioned_value();
                    if count.try_set_count(&seen, seen.value + 1).await? {
                        break;
                    }
                    retries += 1;
                }
                // An increment can still give up (every try lost a race):
                // nothing was written then, so trying again is safe.
                while !long.increment().await?.succeeded {
                    retries += 1;
                }
            }
            count.close();
            fw.close().await;
            Ok::<usize, Box<dyn std::error::Error + Send + Sync>>(retries)
        }));
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await??;
    }
    let want = (WORKERS * ROUNDS) as i32;
    // The observer's view catches up through its watch.
    tokio::time::timeout(Duration::from_secs(10), async {
        while observer.count() != want {
            if let Some(SharedValueEvent::Changed(n)) = changes.next().await {
                if n == want {
                    break;
                }
            }
        }
    })
    .await
    .map_err(|_| "the observer never saw the final count")?;
    let fw = common::session(&target.connect).await?;
    let long = DistributedAtomicLong::new(&fw, &long_path, RetryNTimes::new(0, Duration::ZERO))
        .get()
        .await?
        .post_value;
    println!("{WORKERS} workers x {ROUNDS} increments, {retries} compare-and-set retries");
    println!("shared count: {} (expected {want}); the observer saw {}", observer.count(), observer.count());
    println!("atomic long: {long} (expected {want})");
    observer.close();
    observer_fw.close().await;
    fw.close().await;
    target.stop().await;
    Ok(())
}
