//! Lock family: a read-write lock (readers share, a writer is alone) and a
//! semaphore of two leases, each contended by several sessions, with the
//! concurrency measured while they run.
//!
//! ```text
//! cargo run --example locks
//! ```

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use zk_recipes::locks::{InterProcessReadWriteLock, InterProcessSemaphoreV2, Locker};

/// How many are inside now, and the most ever.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) -> usize {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        n
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let target = common::target().await.map_err(|e| e.to_string())?;
    let base = common::base("locks");
    let rw_path = format!("{base}/catalogue");
    let sem_path = format!("{base}/db-connections");

    // Four readers and two writers, each its own session, five rounds each.
    let readers = Arc::new(Gauge::default());
    let writers = Arc::new(Gauge::default());
    let overlaps = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (cs, path) = (target.connect.clone(), rw_path.clone());
        let (readers, writers, overlaps) = (readers.clone(), writers.clone(), overlaps.clone());
        tasks.push(tokio::spawn(async move {
            let fw = common::session(&cs).await?;
            let rw = InterProcessReadWriteLock::new(&fw, &path);
            for _ in 0..5 {
                if i < 4 {
                    // A guard: released when it goes out of scope.
                    let _read = Locker::acquire(rw.read_lock()).await?;
                    readers.enter();
                    if writers.now.load(Ordering::SeqCst) > 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    readers.leave();
                } else {
                    let _write = Locker::acquire(rw.write_lock()).await?;
                    let inside = writers.enter();
                    if inside > 1 || readers.now.load(Ordering::SeqCst) > 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    writers.leave();
                }
            }
            drop(rw);
            fw.close().await;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!(
        "read-write lock: at most {} readers at once, at most {} writer at once, {} overlaps of a writer with anyone",
        readers.max.load(Ordering::SeqCst),
        writers.max.load(Ordering::SeqCst),
        overlaps.load(Ordering::SeqCst)
    );

    // Five workers share two database connections.
    let inside = Arc::new(Gauge::default());
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (cs, path, inside) = (target.connect.clone(), sem_path.clone(), inside.clone());
        tasks.push(tokio::spawn(async move {
            let fw = common::session(&cs).await?;
            let sem = InterProcessSemaphoreV2::new(&fw, &path, 2);
            for _ in 0..4 {
                let lease = sem.acquire().await?;
                inside.enter();
                tokio::time::sleep(Duration::from_millis(20)).await;
                inside.leave();
                lease.close().await?;
            }
            fw.close().await;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!("semaphore of 2 leases: at most {} holders at once", inside.max.load(Ordering::SeqCst));
    let fw = common::session(&target.connect).await?;
    let left =
        fw.get_children(&rw_path).await?.len() + fw.get_children(&format!("{sem_path}/leases")).await?.len();
    println!("lock and lease nodes left behind: {left}");
    fw.close().await;
    target.stop().await;
    Ok(())
}
