//! The rest of Curator's catalogue, against our server and Apache
//! ZooKeeper 3.8: read-write lock, semaphore and its leases, semaphore
//! mutex, multi-lock, the Locker guard, revocation, shared count, atomic
//! numbers, barriers; each with Curator's layout, its guarantees measured
//! (how many held at once, who waited for whom), and under faults (a
//! holder's session lost, a waiter's connection cut while it waits).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::recipes::framework;
use common::{wait_until, wait_until_async, within};
use futures::StreamExt;
use zk_recipes::atomic::{CachedAtomicLong, DistributedAtomicInteger, DistributedAtomicLong, PromotedToLock};
use zk_recipes::barriers::{DistributedBarrier, DistributedDoubleBarrier};
use zk_recipes::discovery::{
    DownInstancePolicy, ProviderStrategy, ServiceDiscovery, ServiceInstance, ServiceType,
};
use zk_recipes::locks::{
    InterProcessLock, InterProcessMultiLock, InterProcessMutex, InterProcessReadWriteLock,
    InterProcessSemaphoreMutex, InterProcessSemaphoreV2, Locker, Revoker,
};
use zk_recipes::nodes::{GroupMember, PersistentNode, PersistentTtlNode, PersistentWatcher};
use zk_recipes::queue::{ErrorMode, QueueBuilder, QueueConsumer, SimpleDistributedQueue, StringSerializer};
use zk_recipes::retry::{ExponentialBackoffRetry, RetryNTimes};
use zk_recipes::shared::{SharedCount, SharedValueEvent};
use zk_recipes::{AclProvider, ConnectionStateErrorPolicy, CreateMode, Error, Framework, TransactionOp};
use zk_test_support::apache::{ApacheZk, ApacheZkOptions};
use zk_test_support::proxy::Proxy;

fn is_protected(name: &str, lock_name: &str) -> bool {
    name.starts_with("_c_") && name.len() > 40 && name.as_bytes()[39] == b'-' && name.contains(lock_name)
}

/// Tracks how many are inside at once, and the most ever.
#[derive(Default)]
struct Occupancy {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Occupancy {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

async fn read_write_lock(cs: &str) {
    let a = framework(cs).await;
    let b = framework(cs).await;
    let c = framework(cs).await;
    let ra = InterProcessReadWriteLock::new(&a, "/rw/lock");
    let rb = InterProcessReadWriteLock::new(&b, "/rw/lock");
    let rc = InterProcessReadWriteLock::new(&c, "/rw/lock");
    // Readers share.
    ra.read_lock().acquire().await.unwrap();
    assert!(rb.read_lock().try_acquire(Duration::from_secs(5)).await.unwrap(), "two readers at once");
    let kids = a.get_children("/rw/lock").await.unwrap();
    assert_eq!(kids.len(), 2);
    assert!(kids.iter().all(|k| is_protected(k, "-__READ__")), "Curator's read nodes: {kids:?}");
    // A writer waits for them.
    assert!(
        !rc.write_lock().try_acquire(Duration::from_millis(300)).await.unwrap(),
        "a writer waits for readers"
    );
    // Its node is gone by the time it returns (as seen from another
    // session), so the writer queued next is the only writer.
    assert_eq!(a.get_children("/rw/lock").await.unwrap().len(), 2, "a timed-out writer leaves no node");
    // A writer queued ahead of a new reader makes the reader wait (no
    // writer starvation): c queues to write, then b's second owner reads.
    let writer = tokio::spawn(async move {
        rc.write_lock().acquire().await.unwrap();
        rc
    });
    wait_until_async(10, "the writer queues", || async {
        a.get_children("/rw/lock").await.unwrap().iter().any(|k| k.contains("__WRIT__"))
    })
    .await;
    let late = InterProcessReadWriteLock::new(&b, "/rw/lock");
    assert!(
        !late.read_lock().try_acquire(Duration::from_millis(300)).await.unwrap(),
        "a reader behind a queued writer waits"
    );
    ra.read_lock().release().await.unwrap();
    rb.read_lock().release().await.unwrap();
    let rc = within(10, "the writer gets the lock once the readers left", writer).await.unwrap();
    assert_eq!(rc.write_lock().participant_nodes().await.unwrap().len(), 1);
    // Downgrade: the writer reads without waiting, then drops the write lock.
    rc.read_lock().acquire().await.unwrap();
    let kids = c.get_children("/rw/lock").await.unwrap();
    let write_node = kids.iter().find(|k| k.contains("__WRIT__")).unwrap().clone();
    let read_node = kids.iter().find(|k| k.contains("__READ__")).unwrap().clone();
    assert_eq!(
        &read_node[read_node.len() - 10..],
        &write_node[write_node.len() - 10..],
        "read node carries the write sequence"
    );
    let read_stat = c.exists(&format!("/rw/lock/{read_node}")).await.unwrap().unwrap();
    assert_ne!(read_stat.ephemeral_owner, 0);
    rc.write_lock().release().await.unwrap();
    assert!(
        ra.read_lock().try_acquire(Duration::from_secs(5)).await.unwrap(),
        "readers join the downgraded reader"
    );
    assert!(!ra.write_lock().try_acquire(Duration::from_millis(300)).await.unwrap(), "still read-locked");
    ra.read_lock().release().await.unwrap();
    rc.read_lock().release().await.unwrap();
    wait_until_async(10, "no node left", || async { a.get_children("/rw/lock").await.unwrap().is_empty() })
        .await;
    for f in [a, b, c] {
        f.close().await;
    }
}

async fn semaphore(cs: &str) {
    let setup = framework(cs).await;
    let max = 3;
    let inside = Arc::new(Occupancy::default());
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let cs = cs.to_string();
        let inside = inside.clone();
        tasks.push(tokio::spawn(async move {
            let fw = framework(&cs).await;
            let sem = InterProcessSemaphoreV2::new(&fw, "/sem/db", max);
            for _ in 0..4 {
                let lease = sem.acquire().await.unwrap();
                inside.enter();
                // Long enough that three holders overlap even when each
                // acquire waits on several fsyncs of a loaded disk.
                tokio::time::sleep(Duration::from_millis(150)).await;
                inside.leave();
                lease.close().await.unwrap();
            }
            fw.close().await;
        }));
    }
    for t in tasks {
        within(120, "semaphore users", t).await.unwrap();
    }
    assert!(inside.max() <= max, "at most {max} leases at once, saw {}", inside.max());
    assert_eq!(inside.max(), max, "the semaphore lets {max} in at once");
    // Curator's layout.
    let setup2 = framework(cs).await;
    let sem = InterProcessSemaphoreV2::new(&setup, "/sem/db", 2);
    sem.set_node_data(b"me");
    let l1 = sem.acquire().await.unwrap();
    assert!(is_protected(l1.node_name(), "-lease-"), "{}", l1.node_name());
    assert_eq!(l1.path(), format!("/sem/db/leases/{}", l1.node_name()));
    assert_eq!(&l1.data().await.unwrap()[..], b"me");
    assert!(setup.exists("/sem/db/locks").await.unwrap().is_some());
    // All or none: two more leases cannot be had while one of two is out.
    assert!(sem.try_acquire_many(2, Duration::from_millis(300)).await.unwrap().is_none());
    // The partial lease and the timed-out one are gone by the time it
    // returns (read through another session).
    let seen_elsewhere = InterProcessSemaphoreV2::new(&setup2, "/sem/db", 2);
    assert_eq!(seen_elsewhere.participant_nodes().await.unwrap().len(), 1, "the partial leases are returned");
    // A dropped lease is returned.
    let l2 = sem.acquire().await.unwrap();
    assert!(sem.try_acquire(Duration::from_millis(200)).await.unwrap().is_none(), "both leases out");
    assert_eq!(seen_elsewhere.participant_nodes().await.unwrap().len(), 2, "the timed-out lease is returned");
    drop(l2);
    let l3 =
        within(10, "a dropped lease frees a slot", sem.try_acquire(Duration::from_secs(5))).await.unwrap();
    assert!(l3.is_some());
    assert!(matches!(sem.acquire_many(0).await, Err(Error::InvalidArgument(_))));
    drop((l1, l3));
    wait_until_async(10, "no lease left", || async { sem.participant_nodes().await.unwrap().is_empty() })
        .await;

    // Leases counted by a SharedCount: raising it lets a waiter in.
    let count = SharedCount::new(&setup, "/sem/max", 1);
    count.start().await.unwrap();
    let other = framework(cs).await;
    let counted = InterProcessSemaphoreV2::with_shared_count(&setup, "/sem/counted", &count);
    let held = counted.acquire().await.unwrap();
    let other_counted = Arc::new(InterProcessSemaphoreV2::new(&other, "/sem/counted", 2));
    let waiter = {
        let s = Arc::new(InterProcessSemaphoreV2::with_shared_count(&setup, "/sem/counted", &count));
        tokio::spawn(async move { s.acquire().await.map(|l| (l, s)) })
    };
    wait_until_async(10, "the waiter's lease node is there", || async {
        counted.participant_nodes().await.unwrap().len() == 2
    })
    .await;
    assert!(!waiter.is_finished(), "one lease while the count is 1");
    count.set_count(2).await.unwrap();
    let (second, _s) = within(10, "a raised count lets the waiter in", waiter).await.unwrap().unwrap();
    drop((held, second, other_counted));
    other.close().await;
    setup2.close().await;
    setup.close().await;
}

async fn semaphore_mutex_and_locker(cs: &str) {
    let a = framework(cs).await;
    let b = framework(cs).await;
    let la = Arc::new(InterProcessSemaphoreMutex::new(&a, "/smutex"));
    let lb = InterProcessSemaphoreMutex::new(&b, "/smutex");
    la.acquire().await.unwrap();
    // Not reentrant.
    assert!(!la.try_acquire(Duration::from_millis(200)).await.unwrap(), "not reentrant");
    assert!(!lb.try_acquire(Duration::from_millis(200)).await.unwrap(), "exclusive");
    // Released by another task.
    let other = la.clone();
    tokio::spawn(async move { other.release().await.unwrap() }).await.unwrap();
    assert!(!la.is_acquired());
    assert!(lb.try_acquire(Duration::from_secs(5)).await.unwrap());
    assert_eq!(la.release().await, Err(Error::NotHeld));
    lb.release().await.unwrap();

    // Locker: released when the guard goes, for any lock.
    let mutex = InterProcessMutex::new(&a, "/locker/m");
    let sm = InterProcessSemaphoreMutex::new(&a, "/locker/s");
    {
        let _g1 = Locker::acquire(&mutex).await.unwrap();
        let _g2 = Locker::acquire(&sm as &dyn InterProcessLock).await.unwrap();
        assert!(mutex.is_acquired() && sm.is_acquired());
    }
    assert!(!mutex.is_acquired() && !sm.is_acquired());
    wait_until_async(10, "the guards' nodes are deleted", || async {
        a.get_children("/locker/m").await.unwrap().is_empty()
            && a.get_children("/locker/s/leases").await.unwrap().is_empty()
    })
    .await;
    let g = Locker::try_acquire(&mutex, Duration::from_secs(1)).await.unwrap().unwrap();
    g.release().await.unwrap();
    assert!(a.get_children("/locker/m").await.unwrap().is_empty());
    a.close().await;
    b.close().await;
}

async fn multi_lock(cs: &str) {
    let a = framework(cs).await;
    let b = framework(cs).await;
    let both = InterProcessMultiLock::new(&a, &["/multi/one", "/multi/two"]);
    both.acquire().await.unwrap();
    assert!(both.is_acquired());
    assert_eq!(a.get_children("/multi/one").await.unwrap().len(), 1);
    assert_eq!(a.get_children("/multi/two").await.unwrap().len(), 1);
    both.release().await.unwrap();
    // All or none: b holds "two"; a's multi-lock times out and gives "one" back.
    let two = InterProcessMutex::new(&b, "/multi/two");
    two.acquire().await.unwrap();
    assert!(!both.try_acquire(Duration::from_millis(400)).await.unwrap());
    assert!(!both.is_acquired());
    wait_until_async(10, "the first lock is given back", || async {
        a.get_children("/multi/one").await.unwrap().is_empty()
    })
    .await;
    let one_elsewhere = InterProcessMutex::new(&b, "/multi/one");
    assert!(
        one_elsewhere.try_acquire(Duration::from_secs(2)).await.unwrap(),
        "free after the partial failure"
    );
    one_elsewhere.release().await.unwrap();
    // Mixed lock types.
    let mixed = InterProcessMultiLock::from_locks(vec![
        Arc::new(InterProcessSemaphoreMutex::new(&a, "/multi/s")),
        Arc::new(InterProcessMutex::new(&a, "/multi/m")),
    ]);
    mixed.acquire().await.unwrap();
    mixed.release().await.unwrap();
    two.release().await.unwrap();
    a.close().await;
    b.close().await;
}

async fn revocation(cs: &str) {
    let a = framework(cs).await;
    let b = framework(cs).await;
    let holder = InterProcessMutex::new(&a, "/revoke/lock");
    let mut requests = holder.make_revocable();
    holder.acquire().await.unwrap();
    let node = format!("/revoke/lock/{}", holder.participant_nodes().await.unwrap()[0]);
    let (data, _) = a.get_data(&node).await.unwrap();
    assert!(data.is_empty(), "a revocable lock's node carries no data, as Curator's");
    let waiter = InterProcessMutex::new(&b, "/revoke/lock");
    let wants = async {
        waiter.acquire().await.unwrap();
    };
    let revoke_and_release = async {
        Revoker::attempt_revoke(&b, &node).await.unwrap();
        within(10, "the holder is asked to release", requests.next()).await.unwrap();
        holder.release().await.unwrap();
    };
    within(20, "revoked, released, taken over", async { tokio::join!(wants, revoke_and_release) }).await;
    assert!(waiter.is_acquired());
    // Revoking a node that is gone is fine.
    Revoker::attempt_revoke(&b, &node).await.unwrap();
    waiter.release().await.unwrap();
    a.close().await;
    b.close().await;
}

async fn shared_count(cs: &str) {
    let a = framework(cs).await;
    let b = framework(cs).await;
    let ca = SharedCount::new(&a, "/shared/count", 7);
    let cb = SharedCount::new(&b, "/shared/count", 99);
    ca.start().await.unwrap();
    let mut events = cb.events();
    cb.start().await.unwrap();
    assert_eq!(cb.count(), 7, "the first seed wins");
    let (raw, _) = a.get_data("/shared/count").await.unwrap();
    assert_eq!(&raw[..], &7i32.to_be_bytes(), "4-byte big-endian, as Curator");
    // A versioned set from a, seen by b as an event.
    let seen = ca.versioned_value();
    assert!(ca.try_set_count(&seen, 8).await.unwrap());
    let ev = within(10, "b sees the change", async {
        loop {
            if let Some(SharedValueEvent::Changed(n)) = events.next().await {
                return n;
            }
        }
    })
    .await;
    assert_eq!(ev, 8);
    wait_until(10, "b's count follows", || cb.count() == 8).await;
    // A stale version fails and refreshes.
    assert!(!ca.try_set_count(&seen, 9).await.unwrap(), "stale version");
    assert_eq!(ca.count(), 8);
    // Concurrent increments by CAS from both sides: none lost.
    async fn bump(c: Arc<SharedCount>) {
        for _ in 0..20 {
            loop {
                let v = c.versioned_value();
                if c.try_set_count(&v, v.value + 1).await.unwrap() {
                    break;
                }
            }
        }
    }
    let (ca, cb) = (Arc::new(ca), Arc::new(cb));
    within(60, "increments", async { tokio::join!(bump(ca.clone()), bump(cb.clone())) }).await;
    let (raw, _) = a.get_data("/shared/count").await.unwrap();
    assert_eq!(i32::from_be_bytes(raw[..].try_into().unwrap()), 48, "no increment lost");
    ca.close();
    cb.close();
    a.close().await;
    b.close().await;
}

async fn atomics(cs: &str) {
    let setup = framework(cs).await;
    let succeeded = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let cs = cs.to_string();
        let succeeded = succeeded.clone();
        tasks.push(tokio::spawn(async move {
            let fw = framework(&cs).await;
            let mut n = DistributedAtomicLong::new(
                &fw,
                "/atomic/long",
                RetryNTimes::new(50, Duration::from_millis(2)),
            );
            if i % 2 == 0 {
                n = n.with_promoted_to_lock(
                    PromotedToLock::new("/atomic/long-lock").timeout(Duration::from_secs(30)),
                );
            }
            for _ in 0..25 {
                let r = n.increment().await.unwrap();
                if r.succeeded {
                    assert_eq!(r.post_value, r.pre_value + 1);
                    succeeded.fetch_add(1, Ordering::SeqCst);
                }
            }
            fw.close().await;
        }));
    }
    for t in tasks {
        within(120, "incrementers", t).await.unwrap();
    }
    let n = DistributedAtomicLong::new(&setup, "/atomic/long", RetryNTimes::new(0, Duration::ZERO));
    let v = n.get().await.unwrap().post_value;
    assert_eq!(v as usize, succeeded.load(Ordering::SeqCst), "every reported success counted once");
    assert!(v >= 90, "retries make nearly all succeed: {v}");
    let (raw, _) = setup.get_data("/atomic/long").await.unwrap();
    assert_eq!(raw.len(), 8, "8-byte big-endian, as Curator");
    // compare_and_set, subtract, force_set, initialize.
    assert!(!n.compare_and_set(v + 1, 0).await.unwrap().succeeded);
    let r = n.compare_and_set(v, 1000).await.unwrap();
    assert!(r.succeeded && r.pre_value == v && r.post_value == 1000);
    assert_eq!(n.subtract(1).await.unwrap().post_value, 999);
    assert!(!n.initialize(5).await.unwrap(), "exists already");
    let i = DistributedAtomicInteger::new(&setup, "/atomic/int", RetryNTimes::new(3, Duration::ZERO));
    assert!(i.initialize(-2).await.unwrap());
    assert_eq!(i.increment().await.unwrap().post_value, -1);
    assert_eq!(setup.get_data("/atomic/int").await.unwrap().0.len(), 4);
    // A node holding something else is reported, not overwritten.
    setup.create().for_path("/atomic/bad", b"abc").await.unwrap();
    let bad = DistributedAtomicLong::new(&setup, "/atomic/bad", RetryNTimes::new(0, Duration::ZERO));
    assert!(matches!(bad.increment().await, Err(Error::CorruptData(_))));
    assert_eq!(&setup.get_data("/atomic/bad").await.unwrap().0[..], b"abc");
    bad.force_set(3).await.unwrap();
    assert_eq!(bad.get().await.unwrap().post_value, 3);
    // Cached ids: unique across two processes, few requests.
    let other = framework(cs).await;
    let c1 = CachedAtomicLong::new(
        DistributedAtomicLong::new(&setup, "/atomic/ids", RetryNTimes::new(20, Duration::ZERO)),
        10,
    );
    let c2 = CachedAtomicLong::new(
        DistributedAtomicLong::new(&other, "/atomic/ids", RetryNTimes::new(20, Duration::ZERO)),
        10,
    );
    let mut ids = Vec::new();
    for _ in 0..25 {
        ids.push(c1.next().await.unwrap());
        ids.push(c2.next().await.unwrap());
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 50, "unique ids: {ids:?}");
    let reserved = DistributedAtomicLong::new(&setup, "/atomic/ids", RetryNTimes::new(0, Duration::ZERO));
    assert_eq!(reserved.get().await.unwrap().post_value, 60, "six blocks of ten reserved");
    other.close().await;
    setup.close().await;
}

async fn barriers(cs: &str) {
    let a = framework(cs).await;
    let b = framework(cs).await;
    let barrier = DistributedBarrier::new(&a, "/barriers/b");
    barrier.set_barrier().await.unwrap();
    barrier.set_barrier().await.unwrap();
    let waiter = DistributedBarrier::new(&b, "/barriers/b");
    assert!(!waiter.wait_on_barrier_timeout(Duration::from_millis(300)).await.unwrap(), "closed");
    let w = tokio::spawn(async move { waiter.wait_on_barrier().await });
    barrier.remove_barrier().await.unwrap();
    within(10, "the waiter goes on once the barrier is removed", w).await.unwrap().unwrap();
    barrier.remove_barrier().await.unwrap();

    // Double barrier: nobody passes enter before the last member came.
    let members = 3;
    let entered = Arc::new(AtomicUsize::new(0));
    let passed = Arc::new(AtomicUsize::new(0));
    let left = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..members {
        let cs = cs.to_string();
        let (entered, passed, left) = (entered.clone(), passed.clone(), left.clone());
        tasks.push(tokio::spawn(async move {
            let fw = framework(&cs).await;
            // Staggered arrivals.
            tokio::time::sleep(Duration::from_millis(150 * i as u64)).await;
            let db = DistributedDoubleBarrier::new(&fw, "/barriers/double", members).unwrap();
            entered.fetch_add(1, Ordering::SeqCst);
            db.enter().await.unwrap();
            assert_eq!(entered.load(Ordering::SeqCst), members, "entered before everyone arrived");
            passed.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100 * (members - i) as u64)).await;
            left.fetch_add(1, Ordering::SeqCst);
            db.leave().await.unwrap();
            assert_eq!(left.load(Ordering::SeqCst), members, "left before everyone was done");
            fw.close().await;
        }));
    }
    for t in tasks {
        within(60, "double barrier members", t).await.unwrap();
    }
    assert_eq!(passed.load(Ordering::SeqCst), members);
    let kids = a.get_children("/barriers/double").await.unwrap_or_default();
    assert!(kids.is_empty(), "members and ready gone: {kids:?}");
    assert!(matches!(DistributedDoubleBarrier::new(&a, "/x", 0), Err(Error::InvalidArgument(_))));
    // Enter with a timeout when too few come: false, and leaving still works.
    let lonely = DistributedDoubleBarrier::new(&a, "/barriers/lonely", 2).unwrap();
    assert!(!lonely.enter_timeout(Duration::from_millis(300)).await.unwrap());
    assert!(lonely.leave_timeout(Duration::from_secs(5)).await.unwrap());
    a.close().await;
    b.close().await;
}

/// Sends each consumed item to a channel; fails items starting with
/// "fail" once each (the first time they are seen).
struct Collect {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
    failed: std::sync::Mutex<std::collections::HashSet<String>>,
    hold: Option<Arc<tokio::sync::Notify>>,
}

impl Collect {
    fn new() -> (Arc<Self>, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Arc::new(Collect { tx, failed: Default::default(), hold: None }), rx)
    }
}

#[zk_recipes::async_trait]
impl QueueConsumer<String> for Collect {
    async fn consume_message(&self, item: String) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let _ = self.tx.send(item.clone());
        if let Some(h) = &self.hold {
            h.notified().await;
        }
        if item.starts_with("fail") && self.failed.lock().unwrap().insert(item.clone()) {
            return Err("refused once".into());
        }
        Ok(())
    }
}

async fn recv_n(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, n: usize, what: &str) -> Vec<String> {
    within(30, what, async {
        let mut v = Vec::new();
        while v.len() < n {
            v.push(rx.recv().await.unwrap());
        }
        v
    })
    .await
}

async fn queues(cs: &str) {
    let fw = framework(cs).await;
    // FIFO, one consumer: in order; put_multi items together.
    let (c, mut rx) = Collect::new();
    let q = QueueBuilder::new(&fw, Some(c), StringSerializer, "/q/plain").build_queue();
    q.start().await.unwrap();
    for i in 0..10 {
        q.put(&format!("item-{i}")).await.unwrap();
    }
    let (a, b) = ("multi-a".to_string(), "multi-b".to_string());
    q.put_multi(&[&a, &b]).await.unwrap();
    let got = recv_n(&mut rx, 12, "FIFO items").await;
    let mut want: Vec<String> = (0..10).map(|i| format!("item-{i}")).collect();
    want.extend([a.clone(), b.clone()]);
    assert_eq!(got, want, "FIFO order");
    wait_until_async(10, "consumed items deleted", || async { q.item_nodes().await.unwrap().is_empty() })
        .await;
    q.close().await;
    // Curator's framing on the wire.
    let producer = QueueBuilder::new(&fw, None, StringSerializer, "/q/framing").build_queue();
    producer.start().await.unwrap();
    producer.put(&"ab".to_string()).await.unwrap();
    let node = producer.item_nodes().await.unwrap().remove(0);
    assert!(node.starts_with("queue-") && node.len() == 16, "{node}");
    let (data, _) = fw.get_data(&format!("/q/framing/{node}")).await.unwrap();
    assert_eq!(&data[..], &[0, 1, 0, 1, 1, 0, 0, 0, 2, b'a', b'b', 2]);

    // Several consumers with lock safety: each item exactly once; a failed
    // item is requeued and consumed again.
    let producer = QueueBuilder::new(&fw, None, StringSerializer, "/q/shared")
        .lock_path("/q/shared-locks")
        .build_queue();
    producer.start().await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut consumers = Vec::new();
    let mut fws = Vec::new();
    for _ in 0..3 {
        let f = framework(cs).await;
        let c = Arc::new(Collect { tx: tx.clone(), failed: Default::default(), hold: None });
        let q = QueueBuilder::new(&f, Some(c), StringSerializer, "/q/shared")
            .lock_path("/q/shared-locks")
            .build_queue();
        q.start().await.unwrap();
        consumers.push(q);
        fws.push(f);
    }
    for i in 0..30 {
        producer.put(&format!("job-{i}")).await.unwrap();
    }
    producer.put(&"fail-once".to_string()).await.unwrap();
    let mut got = recv_n(&mut rx, 32, "every job, and the failed one twice").await;
    got.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("job-{i}")).collect();
    want.extend(["fail-once".to_string(), "fail-once".to_string()]);
    want.sort();
    assert_eq!(got, want, "each item once; the failed one requeued and consumed again");
    wait_until_async(10, "queue and locks empty", || async {
        producer.item_nodes().await.unwrap().is_empty()
            && fw.get_children("/q/shared-locks").await.unwrap().is_empty()
    })
    .await;
    for q in &consumers {
        q.close().await;
    }
    for f in fws {
        f.close().await;
    }

    // ErrorMode::Delete: a failed item is not retried.
    let (c, mut rx) = Collect::new();
    let q = QueueBuilder::new(&fw, Some(c), StringSerializer, "/q/del")
        .lock_path("/q/del-locks")
        .error_mode(ErrorMode::Delete)
        .build_queue();
    q.start().await.unwrap();
    q.put(&"fail-x".to_string()).await.unwrap();
    q.put(&"after".to_string()).await.unwrap();
    assert_eq!(recv_n(&mut rx, 2, "delete mode").await, ["fail-x", "after"]);
    q.close().await;

    // Id queue: remove by id before consumption.
    let idq = QueueBuilder::new(&fw, None, StringSerializer, "/q/id").build_id_queue();
    idq.start().await.unwrap();
    idq.put(&"one".to_string(), "a/1").await.unwrap();
    idq.put(&"two".to_string(), "b").await.unwrap();
    idq.put(&"three".to_string(), "a/1").await.unwrap();
    assert_eq!(idq.ids().await.unwrap(), ["a_1", "b", "a_1"]);
    assert_eq!(idq.remove("a_1").await.unwrap(), 2);
    assert_eq!(idq.ids().await.unwrap(), ["b"]);

    // Priority: lower first, whatever the order of puts.
    let pq = QueueBuilder::new(&fw, None, StringSerializer, "/q/prio").build_priority_queue(0);
    pq.start().await.unwrap();
    for (p, v) in [(5, "five"), (-3, "minus-three"), (10, "ten"), (0, "zero")] {
        pq.put(&v.to_string(), p).await.unwrap();
    }
    let (c, mut rx) = Collect::new();
    let consumer = QueueBuilder::new(&fw, Some(c), StringSerializer, "/q/prio").build_priority_queue(0);
    consumer.start().await.unwrap();
    assert_eq!(recv_n(&mut rx, 4, "priorities").await, ["minus-three", "zero", "five", "ten"]);
    consumer.close().await;

    // Delay: not before its time; an undelayed item put later comes first.
    let (c, mut rx) = Collect::new();
    let dq = QueueBuilder::new(&fw, Some(c), StringSerializer, "/q/delay").build_delay_queue();
    dq.start().await.unwrap();
    let put_at = std::time::Instant::now();
    dq.put_after(&"later".to_string(), Duration::from_millis(800)).await.unwrap();
    dq.put_after(&"now".to_string(), Duration::ZERO).await.unwrap();
    assert_eq!(recv_n(&mut rx, 1, "the undelayed item").await, ["now"]);
    assert_eq!(recv_n(&mut rx, 1, "the delayed item").await, ["later"]);
    assert!(
        put_at.elapsed() >= Duration::from_millis(790),
        "consumed before its time: {:?}",
        put_at.elapsed()
    );
    dq.close().await;

    // Bounded: a full queue makes put wait.
    let bq = QueueBuilder::new(&fw, None, StringSerializer, "/q/bounded").max_items(2).build_queue();
    bq.start().await.unwrap();
    bq.put(&"1".to_string()).await.unwrap();
    bq.put(&"2".to_string()).await.unwrap();
    assert!(!bq.put_timeout(&"3".to_string(), Duration::from_millis(300)).await.unwrap(), "full");
    assert_eq!(bq.item_nodes().await.unwrap().len(), 2);

    // Simple queue: peek, take, poll, two racing consumers.
    let sq = SimpleDistributedQueue::new(&fw, "/q/simple");
    assert_eq!(sq.poll(Duration::from_millis(200)).await.unwrap(), None);
    for i in 0..20 {
        sq.offer(format!("s{i:02}").as_bytes()).await.unwrap();
    }
    assert_eq!(sq.peek().await.unwrap(), Some(b"s00".to_vec()));
    let other_fw = framework(cs).await;
    let other = SimpleDistributedQueue::new(&other_fw, "/q/simple");
    let (mine, theirs) = tokio::join!(
        async {
            let mut v = Vec::new();
            while let Some(x) = sq.poll(Duration::from_millis(300)).await.unwrap() {
                v.push(x);
            }
            v
        },
        async {
            let mut v = Vec::new();
            while let Some(x) = other.poll(Duration::from_millis(300)).await.unwrap() {
                v.push(x);
            }
            v
        }
    );
    let mut all: Vec<Vec<u8>> = mine.iter().chain(theirs.iter()).cloned().collect();
    all.sort();
    assert_eq!(all, (0..20).map(|i| format!("s{i:02}").into_bytes()).collect::<Vec<_>>(), "each once");
    let waiter = tokio::spawn(async move { other.take().await.map(|v| (v, other_fw)) });
    sq.offer(b"late").await.unwrap();
    let (v, other_fw) = within(10, "take waits for an item", waiter).await.unwrap().unwrap();
    assert_eq!(v, b"late");
    other_fw.close().await;
    fw.close().await;
}

/// Closes the framework's client under it: LOST, then a new session.
async fn new_session(fw: &Framework) {
    let mut states = fw.connection_state_events();
    let old = fw.client().unwrap().session_id();
    fw.client().unwrap().close().await.unwrap();
    within(20, "a new session", async {
        while states.next().await != Some(zk_recipes::ConnectionState::Reconnected) {}
    })
    .await;
    assert_ne!(fw.client().unwrap().session_id(), old);
}

async fn nodes(cs: &str) {
    let fw = framework(cs).await;
    let other = framework(cs).await;
    // An ephemeral node kept through deletion and a new session.
    let node = PersistentNode::new(&fw, CreateMode::Ephemeral, false, "/pn/a/b", b"v1");
    node.start();
    assert!(node.wait_for_initial_create(Duration::from_secs(10)).await);
    assert_eq!(node.actual_path().as_deref(), Some("/pn/a/b"));
    other.delete().for_path("/pn/a/b").await.unwrap();
    wait_until_async(10, "re-created after a delete", || async {
        other.exists("/pn/a/b").await.unwrap().is_some()
    })
    .await;
    node.set_data(b"v2").await.unwrap();
    new_session(&fw).await;
    let session = fw.client().unwrap().session_id();
    wait_until_async(10, "re-created by the new session", || async {
        other.exists("/pn/a/b").await.unwrap().is_some_and(|s| s.ephemeral_owner == session)
    })
    .await;
    assert_eq!(&other.get_data("/pn/a/b").await.unwrap().0[..], b"v2", "re-created with the latest data");
    node.close().await;
    assert!(other.exists("/pn/a/b").await.unwrap().is_none(), "deleted on close");
    // Protected and sequential: re-created with the same sequence suffix.
    let seq = PersistentNode::new(&fw, CreateMode::EphemeralSequential, true, "/pn/seq/member-", b"");
    seq.start();
    assert!(seq.wait_for_initial_create(Duration::from_secs(10)).await);
    let first = seq.actual_path().unwrap();
    let name = first.rsplit('/').next().unwrap().to_string();
    assert!(is_protected(&name, "-member-"), "{name}");
    other.delete().for_path(&first).await.unwrap();
    wait_until(10, "re-created under a new name", || seq.actual_path().is_some_and(|p| p != first)).await;
    let again = seq.actual_path().unwrap();
    assert_eq!(&again[again.len() - 10..], &first[first.len() - 10..], "{first} -> {again}");
    drop(seq);
    wait_until_async(10, "a dropped node is deleted", || async {
        other.get_children("/pn/seq").await.unwrap().is_empty()
    })
    .await;

    // A TTL node and its touched child.
    let ttl = PersistentTtlNode::new(&fw, "/pn/ttl", Duration::from_millis(400), b"x");
    ttl.start();
    assert!(ttl.wait_for_initial_create(Duration::from_secs(10)).await);
    // (Servers show a TTL node's owner as 0, as for any persistent node.)
    assert!(other.exists("/pn/ttl").await.unwrap().is_some());
    let first_touch = within(10, "the child is touched", async {
        loop {
            if let Some(s) = other.exists("/pn/ttl/touch").await.unwrap() {
                return s.mzxid;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    wait_until_async(10, "and touched again", || async {
        other.exists("/pn/ttl/touch").await.unwrap().is_some_and(|s| s.mzxid > first_touch)
    })
    .await;
    ttl.close().await;

    // Group membership.
    let mut members = Vec::new();
    let mut fws = Vec::new();
    for i in 0..3 {
        let f = framework(cs).await;
        let m = GroupMember::new(&f, "/pn/group", &format!("m{i}"), format!("payload-{i}").as_bytes());
        m.start().await.unwrap();
        members.push(m);
        fws.push(f);
    }
    for m in &members {
        wait_until(10, "every member sees the group", || m.current_members().len() == 3).await;
    }
    assert_eq!(members[0].current_members()["m2"], b"payload-2");
    members.pop().unwrap().close().await;
    wait_until(10, "a member leaves", || members[0].current_members().len() == 2).await;
    for m in &members {
        m.close().await;
    }
    for f in fws {
        f.close().await;
    }

    // A persistent recursive watch survives a new session.
    let w = PersistentWatcher::new(&fw, "/pn/watched", true);
    let mut events = w.events();
    let resets = w.resets();
    other.ensure_path("/pn/watched").await.unwrap();
    w.start().await.unwrap();
    other.create().for_path("/pn/watched/one", b"").await.unwrap();
    let ev = within(10, "an event", events.next()).await.unwrap();
    assert_eq!((ev.event_type, ev.path.as_str()), (zk_recipes::EventType::NodeCreated, "/pn/watched/one"));
    assert_eq!(*resets.borrow(), 1);
    new_session(&fw).await;
    wait_until(10, "the watch is re-added", || *resets.borrow() == 2).await;
    other.create().for_path("/pn/watched/one/deep", b"").await.unwrap();
    let ev = within(10, "an event after the new session", async {
        loop {
            let ev = events.next().await.unwrap();
            if ev.event_type == zk_recipes::EventType::NodeCreated {
                return ev;
            }
        }
    })
    .await;
    assert_eq!(ev.path, "/pn/watched/one/deep");
    w.close().await;
    other.close().await;
    fw.close().await;
}

async fn discovery(cs: &str) {
    let fw = framework(cs).await;
    let other = framework(cs).await;
    let d = ServiceDiscovery::new(&fw, "/disc");
    d.start().await.unwrap();
    let a = ServiceInstance::builder("api").id("a").address("10.0.0.1").port(80).build();
    let b = ServiceInstance::builder("api").id("b").address("10.0.0.2").port(80).build();
    let s = ServiceInstance::builder("db").id("s").service_type(ServiceType::Static).build();
    for i in [&a, &b, &s] {
        d.register_service(i).await.unwrap();
    }
    // Registering again replaces (delete and re-create: watchers see it).
    d.register_service(&a).await.unwrap();
    let viewer = ServiceDiscovery::new(&other, "/disc");
    assert_eq!(viewer.query_for_names().await.unwrap(), ["api", "db"]);
    let mut ids: Vec<String> =
        viewer.query_for_instances("api").await.unwrap().into_iter().map(|i| i.id).collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    let stat = other.exists("/disc/api/a").await.unwrap().unwrap();
    assert_ne!(stat.ephemeral_owner, 0, "dynamic instances are ephemeral");
    assert_eq!(
        other.exists("/disc/db/s").await.unwrap().unwrap().ephemeral_owner,
        0,
        "static ones persistent"
    );
    // A cache follows registrations and updates.
    let cache = viewer.service_cache("api");
    cache.start().await.unwrap();
    cache.initialized().await;
    assert_eq!(cache.instances().len(), 2);
    let mut a2 = a.clone();
    a2.port = Some(81);
    d.update_service(&a2).await.unwrap();
    wait_until(10, "the cache sees the update", || cache.instances().iter().any(|i| i.port == Some(81)))
        .await;
    assert!(matches!(
        d.update_service(&ServiceInstance::builder("api").build()).await,
        Err(Error::InvalidArgument(_))
    ));
    // Instances come back after a new session.
    new_session(&fw).await;
    let session = fw.client().unwrap().session_id();
    wait_until_async(10, "re-registered by the new session", || async {
        other.exists("/disc/api/a").await.unwrap().is_some_and(|s| s.ephemeral_owner == session)
            && other.exists("/disc/api/b").await.unwrap().is_some_and(|s| s.ephemeral_owner == session)
    })
    .await;
    assert_eq!(
        viewer.query_for_instance("api", "a").await.unwrap().unwrap().port,
        Some(81),
        "the updated details"
    );
    // Providers: round robin alternates, sticky sticks, down instances are skipped.
    let rr = viewer.service_provider("api", ProviderStrategy::RoundRobin);
    rr.start().await.unwrap();
    wait_until(10, "both instances", || rr.get_all_instances().len() == 2).await;
    let picks: Vec<String> = (0..4).map(|_| rr.get_instance().unwrap().id).collect();
    assert!(picks[0] != picks[1] && picks[0] == picks[2] && picks[1] == picks[3], "{picks:?}");
    let sticky = viewer.service_provider("api", ProviderStrategy::Sticky);
    sticky.start().await.unwrap();
    wait_until(10, "both instances", || sticky.get_all_instances().len() == 2).await;
    let first = sticky.get_instance().unwrap();
    assert!((0..5).all(|_| sticky.get_instance().unwrap().id == first.id), "sticky");
    let policy = DownInstancePolicy { timeout: Duration::from_millis(500), error_threshold: 2 };
    let p = viewer.service_provider("api", ProviderStrategy::RoundRobin).with_down_instance_policy(policy);
    p.start().await.unwrap();
    wait_until(10, "both instances", || p.get_all_instances().len() == 2).await;
    let bad = p.get_instance().unwrap();
    p.note_error(&bad);
    assert_eq!(p.get_all_instances().len(), 2, "one error is below the threshold");
    p.note_error(&bad);
    assert!((0..4).all(|_| p.get_instance().unwrap().id != bad.id), "a down instance is skipped");
    wait_until(5, "back after the timeout", || p.get_all_instances().len() == 2).await;
    // Unregister, close: every instance goes, as in Curator.
    d.unregister_service(&b).await.unwrap();
    wait_until(10, "the cache sees the removal", || cache.instances().len() == 1).await;
    d.close().await;
    assert!(other.get_children("/disc/api").await.unwrap().is_empty());
    assert!(other.get_children("/disc/db").await.unwrap().is_empty());
    for x in [&rr, &sticky, &p] {
        x.close().await;
    }
    cache.close().await;
    other.close().await;
    fw.close().await;
}

#[derive(Debug)]
struct ReadOnlyUnder(&'static str);

impl AclProvider for ReadOnlyUnder {
    fn default_acl(&self) -> Vec<zk_recipes::Acl> {
        zk_recipes::Acl::open_unsafe()
    }
    /// Under the prefix: read and create only (no writes, no deletes).
    fn acl_for_path(&self, path: &str) -> Vec<zk_recipes::Acl> {
        if path.starts_with(self.0) {
            vec![zk_recipes::Acl::new(
                zk_proto::types::perms::READ | zk_proto::types::perms::CREATE,
                zk_recipes::Id::anyone(),
            )]
        } else {
            self.default_acl()
        }
    }
}

async fn framework_options(cs: &str) {
    // start() returns at once, even with nothing to connect to; calls
    // made before the connection wait for it.
    let nowhere = Framework::builder("127.0.0.1:1").connection_timeout(Duration::from_millis(300)).build();
    within(2, "start returns at once", nowhere.start()).await.unwrap();
    assert!(!nowhere.block_until_connected(Duration::from_millis(300)).await);
    assert_eq!(nowhere.connection_state(), None);
    nowhere.close().await;
    let fw = Framework::builder(cs)
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(50), 5))
        .acl_provider(ReadOnlyUnder("/fo/frozen"))
        .build();
    fw.start().await.unwrap();
    fw.create().creating_parents_if_needed().for_path("/fo/early", b"").await.unwrap();
    assert!(fw.block_until_connected(Duration::from_secs(1)).await);
    // The ACL provider, for the node and its parents.
    fw.create().creating_parents_if_needed().for_path("/fo/frozen/a/b", b"").await.unwrap();
    let (acl, _) = fw.client().unwrap().get_acl("/fo/frozen/a").await.unwrap();
    assert_eq!(acl[0].perms, 5, "a parent under the rule: {acl:?}");
    let (acl, _) = fw.client().unwrap().get_acl("/fo/frozen/a/b").await.unwrap();
    assert_eq!(acl[0].perms, 5, "the node under the rule: {acl:?}");
    let (acl, _) = fw.client().unwrap().get_acl("/fo/early").await.unwrap();
    assert_eq!(acl, zk_recipes::Acl::open_unsafe());
    assert!(matches!(
        fw.set_data("/fo/frozen/a/b", b"x", None).await,
        Err(Error::Zk(zk_recipes::ZkError::NoAuth))
    ));
    // or_set_data, the Stat, compression.
    let (p, stat) = fw.create().for_path_with_stat("/fo/n", b"one").await.unwrap();
    assert_eq!((p.as_str(), stat.version), ("/fo/n", 0));
    assert!(matches!(
        fw.create().for_path("/fo/n", b"two").await,
        Err(Error::Zk(zk_recipes::ZkError::NodeExists))
    ));
    let (_, stat) = fw.create().or_set_data().for_path_with_stat("/fo/n", b"two").await.unwrap();
    assert_eq!(stat.version, 1);
    assert_eq!(&fw.get_data("/fo/n").await.unwrap().0[..], b"two");
    let text = b"compressible compressible compressible compressible".repeat(20);
    fw.create().compressed().for_path("/fo/z", &text).await.unwrap();
    let (raw, _) = fw.get_data("/fo/z").await.unwrap();
    assert!(raw.len() < text.len() / 4 && raw[..2] == [0x1f, 0x8b], "gzip on the wire: {} bytes", raw.len());
    assert_eq!(fw.get_data_decompressed("/fo/z").await.unwrap().0, text);
    fw.set_data_compressed("/fo/z", b"short", None).await.unwrap();
    assert_eq!(fw.get_data_decompressed("/fo/z").await.unwrap().0, b"short");
    assert!(matches!(fw.get_data_decompressed("/fo/n").await, Err(Error::CorruptData(_))));
    // Deletes: quietly.
    assert!(matches!(fw.delete().for_path("/fo/none").await, Err(Error::Zk(zk_recipes::ZkError::NoNode))));
    fw.delete().quietly().for_path("/fo/none").await.unwrap();
    // Typed transactions with per-op results.
    let r = fw
        .transaction_builder()
        .create("/fo/seq-", b"a", CreateMode::PersistentSequential)
        .set_data("/fo/n", b"three", Some(1))
        .check("/fo/early", Some(0))
        .delete("/fo/z", None)
        .commit()
        .await
        .unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].op, TransactionOp::Create);
    assert!(r[0].result_path.as_deref().unwrap().starts_with("/fo/seq-00000"), "{:?}", r[0]);
    assert_eq!(r[1].result_stat.as_ref().unwrap().version, 2);
    assert_eq!((r[2].op, r[2].for_path.as_str()), (TransactionOp::Check, "/fo/early"));
    let failed = fw
        .transaction_builder()
        .create("/fo/t1", b"", CreateMode::Persistent)
        .check("/fo/n", Some(99))
        .commit()
        .await;
    assert!(failed.is_err());
    assert!(fw.exists("/fo/t1").await.unwrap().is_none(), "all or nothing");
    fw.close().await;
}

/// Idempotent creates and deletes: a retried op whose first reply was lost
/// is done, not NodeExists/NoNode.
async fn idempotent_ops(server: std::net::SocketAddr) {
    let proxy = Proxy::start(server);
    // No ensemble tracker: its read of the config after each reconnect
    // could be the reply the proxy drops instead of the op's.
    let fw = Framework::builder(&proxy.connect_string())
        .session_timeout(Duration::from_secs(10))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 10))
        .ensemble_tracker(false)
        .build();
    within(20, "start", fw.start()).await.unwrap();
    assert!(fw.block_until_connected(Duration::from_secs(20)).await, "connected");
    fw.ensure_path("/idem").await.unwrap();
    proxy.drop_replies_after(0);
    fw.create().idempotent().for_path("/idem/a", b"x").await.unwrap();
    assert_eq!(proxy.replies_dropped(), 1, "the first reply was lost");
    proxy.drop_replies_after(0);
    let plain = fw.create().for_path("/idem/b", b"x").await;
    assert!(
        matches!(plain, Err(Error::Zk(zk_recipes::ZkError::NodeExists))),
        "without idempotent: {plain:?}"
    );
    proxy.drop_replies_after(0);
    fw.delete().idempotent().for_path("/idem/a").await.unwrap();
    assert!(fw.exists("/idem/a").await.unwrap().is_none());
    fw.close().await;
}

/// Under the session-based policy a leader keeps leadership through a
/// short disconnection; under the standard one it steps down.
async fn error_policies(server: std::net::SocketAddr) {
    for (policy, keeps) in
        [(ConnectionStateErrorPolicy::SessionBased, true), (ConnectionStateErrorPolicy::Standard, false)]
    {
        let proxy = Proxy::start(server);
        let fw = Framework::builder(&proxy.connect_string())
            .session_timeout(Duration::from_secs(20))
            .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(50), 10))
            .connection_state_error_policy(policy)
            .build();
        fw.start().await.unwrap();
        assert!(fw.block_until_connected(Duration::from_secs(10)).await);
        let latch = zk_recipes::leader::LeaderLatch::new(&fw, &format!("/policy/{policy:?}"), "only");
        latch.start().await.unwrap();
        assert!(latch.await_leadership(Some(Duration::from_secs(10))).await);
        let mut leadership = latch.leadership();
        leadership.borrow_and_update();
        let mut states = fw.connection_state_events();
        proxy.cut();
        within(20, "suspended and back", async {
            while states.next().await != Some(zk_recipes::ConnectionState::Suspended) {}
            while states.next().await != Some(zk_recipes::ConnectionState::Reconnected) {}
        })
        .await;
        wait_until(10, "leading again, or still", || latch.has_leadership()).await;
        let changed = leadership.has_changed().unwrap();
        assert_eq!(!changed, keeps, "{policy:?}: leadership kept through SUSPENDED: {}", !changed);
        latch.close().await;
        fw.close().await;
    }
}

/// LeaderSelector: interrupt_leadership ends a leadership; leader() names
/// the leader.
async fn selector_controls(cs: &str) {
    struct Lead(tokio::sync::mpsc::UnboundedSender<&'static str>);
    #[zk_recipes::async_trait]
    impl zk_recipes::leader::LeaderSelectorListener for Lead {
        async fn take_leadership(&self, _fw: &Framework) {
            let _ = self.0.send("took");
            std::future::pending::<()>().await;
        }
    }
    let fw = framework(cs).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let s = zk_recipes::leader::LeaderSelector::new(&fw, "/sel/ctl", "me", Arc::new(Lead(tx)));
    s.auto_requeue();
    s.start().await.unwrap();
    assert_eq!(within(10, "leads", rx.recv()).await, Some("took"));
    assert_eq!(s.leader().await.unwrap().unwrap().id, "me");
    s.interrupt_leadership();
    // Interrupted, then (auto-requeue) leading again: a second "took".
    assert_eq!(within(10, "leads again after the interrupt", rx.recv()).await, Some("took"));
    s.close().await;
    fw.close().await;
}

/// Curator's ensemble tracker: a framework given one server learns them
/// all from /zookeeper/config.
async fn ensemble_tracker() {
    let cluster = zk_server::TestingCluster::start(3).await.unwrap();
    cluster.wait_for_leader(Duration::from_secs(30)).await.unwrap();
    let one = cluster.addr(0).to_string();
    let fw = framework(&one).await;
    wait_until(10, "the tracker learns the ensemble", || fw.current_connect_string().split(',').count() == 3)
        .await;
    for i in 0..3 {
        assert!(
            fw.current_connect_string().contains(&cluster.addr(i).to_string()),
            "{}",
            fw.current_connect_string()
        );
    }
    let off = Framework::builder(&one).ensemble_tracker(false).build();
    off.start().await.unwrap();
    assert!(off.block_until_connected(Duration::from_secs(10)).await);
    assert_eq!(off.current_connect_string(), one);
    off.close().await;
    fw.close().await;
}

/// Whether `fw`'s session holds a watch of `t` on `path` (checkWatches).
async fn has_watch(fw: &Framework, path: &str, t: zk_recipes::zk_client::WatcherType) -> bool {
    match fw.client().unwrap().check_watches(path, t).await {
        Ok(()) => true,
        Err(zk_recipes::ZkError::NoWatcher) => false,
        Err(e) => panic!("checkWatches {path}: {e:?}"),
    }
}

/// A wait that times out, or a recipe that is closed, leaves no watch on
/// the server: dropped one-shot watches are removed.
async fn no_watch_left_behind(cs: &str) {
    use zk_recipes::zk_client::WatcherType;
    let a = framework(cs).await;
    let b = framework(cs).await;
    let la = InterProcessMutex::new(&a, "/wl/lock");
    la.acquire().await.unwrap();
    let holder = format!("/wl/lock/{}", la.participant_nodes().await.unwrap()[0]);
    let lb = InterProcessMutex::new(&b, "/wl/lock");
    assert!(!lb.try_acquire(Duration::from_millis(300)).await.unwrap());
    wait_until_async(10, "no watch on the holder after a timed-out acquire", || async {
        !has_watch(&b, &holder, WatcherType::Data).await
    })
    .await;
    let barrier = DistributedBarrier::new(&a, "/wl/barrier");
    barrier.set_barrier().await.unwrap();
    let waiter = DistributedBarrier::new(&b, "/wl/barrier");
    assert!(!waiter.wait_on_barrier_timeout(Duration::from_millis(200)).await.unwrap());
    wait_until_async(10, "no watch on the barrier after a timed-out wait", || async {
        !has_watch(&b, "/wl/barrier", WatcherType::Data).await
    })
    .await;
    let count = SharedCount::new(&b, "/wl/count", 0);
    count.start().await.unwrap();
    assert!(has_watch(&b, "/wl/count", WatcherType::Data).await, "a started shared count watches");
    count.close();
    wait_until_async(10, "no watch once the shared count is closed", || async {
        !has_watch(&b, "/wl/count", WatcherType::Data).await
    })
    .await;
    // A watch still wanted stays: two waiters on one path, one gives up.
    let c = b.client().unwrap();
    let (_, keep) = c.exists_watch("/wl/barrier").await.unwrap();
    let (_, gone) = c.exists_watch("/wl/barrier").await.unwrap();
    drop(gone);
    // The session task handles the drop before this request: after its
    // reply, a removal (if any) has been made.
    c.exists("/wl").await.unwrap();
    assert!(has_watch(&b, "/wl/barrier", WatcherType::Data).await, "the other waiter's watch stays");
    barrier.remove_barrier().await.unwrap();
    let ev = within(10, "the remaining watch fires", keep).await;
    assert_eq!(ev.event_type, zk_recipes::EventType::NodeDeleted);
    la.release().await.unwrap();
    a.close().await;
    b.close().await;
}

async fn suite(cs: &str) {
    no_watch_left_behind(cs).await;
    framework_options(cs).await;
    selector_controls(cs).await;
    discovery(cs).await;
    nodes(cs).await;
    queues(cs).await;
    read_write_lock(cs).await;
    semaphore(cs).await;
    semaphore_mutex_and_locker(cs).await;
    multi_lock(cs).await;
    revocation(cs).await;
    shared_count(cs).await;
    atomics(cs).await;
    barriers(cs).await;
}

async fn cut_framework(cs: &str, session: Duration) -> Framework {
    let fw = Framework::builder(cs)
        .session_timeout(session)
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 10))
        .build();
    within(20, "start", fw.start()).await.unwrap();
    assert!(fw.block_until_connected(Duration::from_secs(20)).await, "connected");
    fw
}

/// A lease holder whose session is lost frees its lease for a waiter; a
/// waiter whose connection is cut while it waits (same session back) still
/// gets its lease; a double-barrier member whose connection is cut while it
/// waits to enter still enters.
async fn faults(server: std::net::SocketAddr, cs: &str, session: Duration) {
    let proxy = Proxy::start(server);
    let holder_fw = cut_framework(&proxy.connect_string(), session).await;
    let waiter_fw = cut_framework(cs, Duration::from_secs(20)).await;
    let holder = InterProcessSemaphoreV2::new(&holder_fw, "/faults/sem", 1);
    let waiter = InterProcessSemaphoreV2::new(&waiter_fw, "/faults/sem", 1);
    let lease = holder.acquire().await.unwrap();
    let waiting = tokio::spawn(async move { waiter.acquire().await.map(|l| (l, waiter)) });
    wait_until_async(10, "the waiter queues", || async {
        waiter_fw.get_children("/faults/sem/leases").await.unwrap().len() == 2
    })
    .await;
    proxy.set_refuse(true);
    proxy.cut();
    let (l2, waiter) = within(60, "the waiter gets the lease once the holder's session expired", waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waiter_fw.get_children("/faults/sem/leases").await.unwrap(), vec![l2.node_name().to_string()]);
    drop(lease);
    proxy.set_refuse(false);
    // The waiter is now behind the proxy; its connection is cut while it waits.
    let cut_fw = cut_framework(&proxy.connect_string(), Duration::from_secs(20)).await;
    let cut_waiter = InterProcessSemaphoreV2::new(&cut_fw, "/faults/sem", 1);
    let waiting = tokio::spawn(async move { cut_waiter.acquire().await.map(|l| (l, cut_waiter)) });
    wait_until_async(10, "the cut waiter queues", || async {
        waiter_fw.get_children("/faults/sem/leases").await.unwrap().len() == 2
    })
    .await;
    proxy.cut();
    wait_until(20, "reconnected", || {
        cut_fw.connection_state() == Some(zk_recipes::ConnectionState::Reconnected)
    })
    .await;
    l2.close().await.unwrap();
    let (l3, _w) = within(30, "the cut waiter still gets its lease", waiting).await.unwrap().unwrap();
    l3.close().await.unwrap();
    drop(waiter);

    // Double barrier with a member cut off while waiting to enter.
    let cut_member = DistributedDoubleBarrier::new(&cut_fw, "/faults/double", 2).unwrap();
    let entering = tokio::spawn(async move { cut_member.enter().await.map(|()| cut_member) });
    wait_until_async(10, "the first member is in", || async {
        waiter_fw.get_children("/faults/double").await.map(|k| k.len() == 1).unwrap_or(false)
    })
    .await;
    proxy.cut();
    let second = DistributedDoubleBarrier::new(&waiter_fw, "/faults/double", 2).unwrap();
    within(20, "the second member enters", second.enter()).await.unwrap();
    let cut_member = within(30, "the cut member enters too", entering).await.unwrap().unwrap();
    let (x, y) = within(30, "both leave", async { tokio::join!(cut_member.leave(), second.leave()) }).await;
    x.unwrap();
    y.unwrap();

    // A reader whose session is lost lets the queued writer in.
    let reader_fw = cut_framework(&proxy.connect_string(), session).await;
    let reader = InterProcessReadWriteLock::new(&reader_fw, "/faults/rw");
    reader.read_lock().acquire().await.unwrap();
    let writer = InterProcessReadWriteLock::new(&waiter_fw, "/faults/rw");
    let writing = tokio::spawn(async move { writer.write_lock().acquire().await.map(|()| writer) });
    wait_until_async(10, "the writer queues behind the reader", || async {
        waiter_fw.get_children("/faults/rw").await.unwrap().len() == 2
    })
    .await;
    proxy.set_refuse(true);
    proxy.cut();
    let writer =
        within(60, "the writer gets in once the reader's session expired", writing).await.unwrap().unwrap();
    assert!(writer.write_lock().is_acquired());
    writer.write_lock().release().await.unwrap();
    proxy.set_refuse(false);
    drop(reader);
    reader_fw.close().await;

    // A shared count changed while a participant was cut off is seen by it
    // once it is back (same session).
    let cut_count_fw = cut_framework(&proxy.connect_string(), Duration::from_secs(20)).await;
    let cut_count = SharedCount::new(&cut_count_fw, "/faults/count", 0);
    cut_count.start().await.unwrap();
    let other_count = SharedCount::new(&waiter_fw, "/faults/count", 0);
    other_count.start().await.unwrap();
    proxy.stall(true);
    other_count.set_count(41).await.unwrap();
    other_count.set_count(42).await.unwrap();
    proxy.cut();
    proxy.stall(false);
    wait_until(20, "the cut-off participant sees the latest count", || cut_count.count() == 42).await;
    cut_count.close();
    other_count.close();
    cut_count_fw.close().await;

    // A lock-safe consumer whose session is lost mid-item leaves the item
    // for another consumer (at least once).
    let hold = Arc::new(tokio::sync::Notify::new());
    let (tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel();
    let stuck = Arc::new(Collect { tx, failed: Default::default(), hold: Some(hold.clone()) });
    let stuck_fw = cut_framework(&proxy.connect_string(), session).await;
    let stuck_q = QueueBuilder::new(&stuck_fw, Some(stuck), StringSerializer, "/faults/q")
        .lock_path("/faults/q-locks")
        .build_queue();
    stuck_q.start().await.unwrap();
    stuck_q.put(&"precious".to_string()).await.unwrap();
    assert_eq!(recv_n(&mut first_rx, 1, "the first consumer has the item").await, ["precious"]);
    proxy.set_refuse(true);
    proxy.cut();
    let (second, mut second_rx) = Collect::new();
    let second_q = QueueBuilder::new(&waiter_fw, Some(second), StringSerializer, "/faults/q")
        .lock_path("/faults/q-locks")
        .build_queue();
    second_q.start().await.unwrap();
    assert_eq!(
        recv_n(&mut second_rx, 1, "another consumer gets the item once the first one's session is gone")
            .await,
        ["precious"]
    );
    hold.notify_waiters();
    proxy.set_refuse(false);
    second_q.close().await;
    drop(stuck_q);
    stuck_fw.close().await;
    holder_fw.close().await;
    cut_fw.close().await;
    waiter_fw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_against_zk_server() {
    common::trace_init();
    let mut cfg = zk_server::ServerConfig::new("");
    cfg.tick_time = Duration::from_millis(250);
    cfg.extended_types_enabled = true;
    cfg.client_port = 0;
    cfg.client_port_address = Some(std::net::Ipv4Addr::LOCALHOST.into());
    let server = zk_server::Server::start_temp_with(cfg).await.unwrap();
    within(300, "suite", suite(&server.connect_string())).await;
    within(120, "faults", faults(server.addr(), &server.connect_string(), Duration::from_millis(1500))).await;
    within(60, "idempotent", idempotent_ops(server.addr())).await;
    within(120, "error policies", error_policies(server.addr())).await;
    within(60, "ensemble tracker", ensemble_tracker()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_against_apache_zookeeper() {
    let Some(zk) = ApacheZk::start_with(ApacheZkOptions { tick_time: 500, ..Default::default() }) else {
        return;
    };
    within(300, "suite", suite(&zk.connect_string())).await;
    within(120, "faults", faults(zk.addr(), &zk.connect_string(), Duration::from_millis(1500))).await;
    within(60, "idempotent", idempotent_ops(zk.addr())).await;
    within(120, "error policies", error_policies(zk.addr())).await;
}
