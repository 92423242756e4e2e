//! Several workers in one process contend for one InterProcessMutex around
//! a shared counter stored in ZooKeeper; each worker reads, adds one and
//! writes back with no version check, so only the lock keeps the count
//! exact.
//!
//! ```text
//! cargo run --example distributed_lock                # on the bundled server
//! cargo run --example distributed_lock -- --connect 127.0.0.1:2181
//! ```

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use zk_recipes::Framework;
use zk_recipes::locks::InterProcessMutex;
use zk_recipes::retry::ExponentialBackoffRetry;

const WORKERS: usize = 5;
const ROUNDS: usize = 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = common::target().await?;
    let base = common::base("lock");
    let counter = format!("{base}/counter");
    let lock_path = format!("{base}/lock");

    let admin = Framework::new(&target.connect, ExponentialBackoffRetry::new(Duration::from_millis(100), 3));
    admin.start().await?;
    admin.create().creating_parents_if_needed().for_path(&counter, b"0").await?;
    println!(
        "{WORKERS} workers will each add {ROUNDS} to {counter}, one at a time under the lock {lock_path}"
    );

    let holders = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for id in 0..WORKERS {
        let (cs, counter, lock_path, holders) =
            (target.connect.clone(), counter.clone(), lock_path.clone(), holders.clone());
        workers.push(tokio::spawn(async move {
            // Each worker has its own session, as separate services would.
            let fw = Framework::new(&cs, ExponentialBackoffRetry::new(Duration::from_millis(100), 3));
            fw.start().await?;
            // start() returns at once (as Curator's); calls wait for the connection.
            if !fw.block_until_connected(Duration::from_secs(15)).await {
                return Err(zk_recipes::ZkError::ConnectionLoss.into());
            }
            let lock = InterProcessMutex::new(&fw, &lock_path);
            for round in 0..ROUNDS {
                lock.acquire().await?;
                let inside = holders.fetch_add(1, Ordering::SeqCst) + 1;
                assert_eq!(inside, 1, "two workers inside the lock");
                let (data, _) = fw.get_data(&counter).await?;
                let n: u64 = String::from_utf8_lossy(&data).parse().unwrap_or(0);
                fw.set_data(&counter, (n + 1).to_string().as_bytes(), None).await?;
                if round == 0 || round == ROUNDS - 1 {
                    println!("worker {id} holds the lock (round {round}): counter {n} -> {}", n + 1);
                }
                holders.fetch_sub(1, Ordering::SeqCst);
                lock.release().await?;
            }
            fw.close().await;
            Ok::<(), zk_recipes::Error>(())
        }));
    }
    for w in workers {
        w.await??;
    }
    let (data, _) = admin.get_data(&counter).await?;
    let total = String::from_utf8_lossy(&data).to_string();
    println!("final count {total} (expected {}) in {:.2?}", WORKERS * ROUNDS, started.elapsed());
    let left = admin.get_children(&lock_path).await?;
    println!("lock nodes left behind: {}", left.len());
    admin.close().await;
    target.stop().await;
    if total != (WORKERS * ROUNDS).to_string() {
        return Err("the count is wrong".into());
    }
    Ok(())
}
