//! Queue family: a producer puts jobs into a lock-safe DistributedQueue
//! (an item is deleted only after it was consumed) and three consumers in
//! separate sessions share them; a priority queue hands out urgent work
//! first.
//!
//! ```text
//! cargo run --example queues
//! ```

mod common;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use zk_recipes::queue::{QueueBuilder, QueueConsumer, StringSerializer};

/// Reports each job it consumes, with the consumer's number.
struct Worker(usize, mpsc::UnboundedSender<(usize, String)>);

#[zk_recipes::async_trait]
impl QueueConsumer<String> for Worker {
    async fn consume_message(&self, job: String) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let _ = self.1.send((self.0, job));
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let target = common::target().await.map_err(|e| e.to_string())?;
    let base = common::base("queues");
    let (jobs, locks) = (format!("{base}/jobs"), format!("{base}/jobs-locks"));
    const JOBS: usize = 60;

    let (tx, mut done) = mpsc::unbounded_channel();
    let mut consumers = Vec::new();
    for n in 0..3 {
        let fw = common::session(&target.connect).await?;
        let q = QueueBuilder::new(&fw, Some(Arc::new(Worker(n, tx.clone()))), StringSerializer, &jobs)
            .lock_path(&locks)
            .build_queue();
        q.start().await?;
        consumers.push((q, fw));
    }
    let producer_fw = common::session(&target.connect).await?;
    let producer =
        QueueBuilder::new(&producer_fw, None, StringSerializer, &jobs).lock_path(&locks).build_queue();
    producer.start().await?;
    for i in 0..JOBS {
        producer.put(&format!("job-{i:02}")).await?;
    }
    let mut seen = Vec::new();
    let mut per_consumer = [0usize; 3];
    while seen.len() < JOBS {
        let (n, job) = tokio::time::timeout(Duration::from_secs(30), done.recv())
            .await
            .map_err(|_| "jobs stopped arriving")?
            .ok_or("consumers gone")?;
        per_consumer[n] += 1;
        seen.push(job);
    }
    seen.sort();
    seen.dedup();
    println!("{JOBS} jobs put; consumed {} distinct, per consumer {per_consumer:?}", seen.len());
    for (q, fw) in consumers {
        q.close().await;
        fw.close().await;
    }
    println!("items left in the queue: {}", producer.item_nodes().await?.len());

    // Priorities: queued first, consumed lowest number first.
    let pq_path = format!("{base}/tasks");
    let pq = QueueBuilder::new(&producer_fw, None, StringSerializer, &pq_path).build_priority_queue(0);
    pq.start().await?;
    for (p, task) in [(5, "rebuild index"), (-10, "page the on-call"), (0, "send digest")] {
        pq.put(&task.to_string(), p).await?;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let consumer = QueueBuilder::new(&producer_fw, Some(Arc::new(Worker(0, tx))), StringSerializer, &pq_path)
        .build_priority_queue(0);
    consumer.start().await?;
    let mut order = Vec::new();
    while order.len() < 3 {
        let (_, t) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await?.ok_or("gone")?;
        order.push(t);
    }
    println!("priority order: {}", order.join(" > "));
    consumer.close().await;
    producer_fw.close().await;
    target.stop().await;
    Ok(())
}
