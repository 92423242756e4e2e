//! zk-recipes against our server and against Apache ZooKeeper 3.8: the
//! mutex keeps a read-modify-write counter exact with many contenders, a
//! leader latch always has exactly one leader, selectors take turns, caches
//! converge; and nothing is left behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::recipes::{framework, mutex_counter};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{wait_until_async, within};
use futures::StreamExt;
use zk_client::{Client, CreateMode, Error as ZkError};
use zk_recipes::cache::{CacheEvent, CuratorCache, NodeCache, PathChildrenCache, TreeCache};
use zk_recipes::leader::{CloseMode, LeaderLatch, LeaderSelector, LeaderSelectorListener};
use zk_recipes::locks::InterProcessMutex;
use zk_recipes::retry::ExponentialBackoffRetry;
use zk_recipes::{ConnectionState, Framework};
use zk_test_support::apache::ApacheZk;

async fn mutex_semantics(cs: &str) {
    let a = framework(cs).await;
    let b = framework(cs).await;
    let la = InterProcessMutex::new(&a, "/ms/lock");
    let lb = InterProcessMutex::new(&b, "/ms/lock");
    la.acquire().await.unwrap();
    la.acquire().await.unwrap(); // reentrant
    let holder = &la;
    let nodes = move |n: usize| move || async move { holder.participant_nodes().await.unwrap().len() == n };
    assert!(!lb.try_acquire(Duration::from_millis(300)).await.unwrap(), "held elsewhere");
    // A timed-out acquire leaves no node behind.
    assert_eq!(holder.participant_nodes().await.unwrap().len(), 1, "no node left once try_acquire returns");
    // Nor does a dropped one: its node is seen queued (so there is one to
    // clean up), then the acquire is dropped and the node goes.
    {
        let pending = lb.acquire();
        tokio::pin!(pending);
        tokio::select! {
            r = &mut pending => panic!("acquired a lock held elsewhere: {r:?}"),
            () = wait_until_async(10, "the pending acquire queues its node", nodes(2)) => {}
        }
    }
    wait_until_async(10, "only the holder's node once the acquire is dropped", nodes(1)).await;
    // The Curator layout.
    let node = la.participant_nodes().await.unwrap().remove(0);
    assert!(node.starts_with("_c_") && node.len() > 40 && node.as_bytes()[39] == b'-', "{node}");
    assert!(node.contains("-lock-"), "{node}");
    // Fencing: a write guarded by the token succeeds while held.
    let token = la.fencing_token().unwrap();
    a.create().for_path("/ms/data", b"").await.unwrap();
    a.transaction(&[token.check_op(), zk_client::Op::set_data("/ms/data", &b"x"[..], None)]).await.unwrap();
    la.release().await.unwrap();
    assert!(la.is_acquired(), "still held once");
    la.release().await.unwrap();
    assert!(!la.is_acquired());
    assert_eq!(la.release().await, Err(zk_recipes::Error::NotHeld));
    // ... and fails once the lock is gone.
    assert_eq!(a.transaction(&[token.check_op()]).await, Err(zk_recipes::Error::Zk(ZkError::NoNode)));
    assert!(lb.try_acquire(Duration::from_secs(5)).await.unwrap());
    lb.release().await.unwrap();
    a.close().await;
    b.close().await;
}

async fn latch_has_one_leader(cs: &str) {
    let mut fws = Vec::new();
    let mut latches = Vec::new();
    for i in 0..5 {
        let fw = framework(cs).await;
        let latch = LeaderLatch::new(&fw, "/latch", &format!("p{i}"));
        latch.start().await.unwrap();
        fws.push(fw);
        latches.push(latch);
    }
    let leaders = |ls: &[LeaderLatch]| ls.iter().filter(|l| l.has_leadership()).count();
    within(20, "a leader", async {
        while leaders(&latches) != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    within(20, "five participants", async {
        while latches[0].participants().await.unwrap().len() < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let participants = latches[0].participants().await.unwrap();
    assert_eq!(participants.iter().filter(|p| p.is_leader).count(), 1);
    let leader = latches.iter().find(|l| l.has_leadership()).unwrap();
    assert_eq!(participants[0].id, leader.id(), "the first node leads");
    // Hand over four times: close the leader, exactly one other takes over.
    for _ in 0..4 {
        let i = latches.iter().position(|l| l.has_leadership()).unwrap();
        let old = latches.remove(i);
        let id = old.id().to_string();
        old.close_with_mode(CloseMode::NotifyLeader).await;
        assert!(!old.has_leadership());
        within(20, "next leader", async {
            while leaders(&latches) != 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let leader = latches[0].leader().await.unwrap().unwrap();
        assert_ne!(leader.id, id);
        // Sampling for something that must NOT happen (a second leader)
        // needs a window; 50 ms after the hand-over is enough for a stray
        // watch event to reach another latch.
        for _ in 0..10 {
            assert!(leaders(&latches) <= 1, "never two leaders");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    latches[0].close().await;
    assert!(fws[0].get_children("/latch").await.unwrap().is_empty(), "no latch node left");
    for fw in fws {
        fw.close().await;
    }
}

struct Turn {
    leading: Arc<AtomicUsize>,
    turns: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl LeaderSelectorListener for Turn {
    async fn take_leadership(&self, _fw: &Framework) {
        assert_eq!(self.leading.fetch_add(1, Ordering::SeqCst), 0, "two selectors lead at once");
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.turns.fetch_add(1, Ordering::SeqCst);
        self.leading.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn selectors_take_turns(cs: &str) {
    let leading = Arc::new(AtomicUsize::new(0));
    let turns = Arc::new(AtomicUsize::new(0));
    let mut fws = Vec::new();
    let mut selectors = Vec::new();
    for i in 0..3 {
        let fw = framework(cs).await;
        let s = LeaderSelector::new(
            &fw,
            "/selector",
            &format!("s{i}"),
            Arc::new(Turn { leading: leading.clone(), turns: turns.clone() }),
        );
        s.auto_requeue();
        s.start().await.unwrap();
        fws.push(fw);
        selectors.push(s);
    }
    within(30, "turns", async {
        while turns.load(Ordering::SeqCst) < 12 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for s in &selectors {
        s.close().await;
    }
    // Cancelled acquires clean up in the background.
    within(10, "no selector node left", async {
        while !fws[0].get_children("/selector").await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for fw in fws {
        fw.close().await;
    }
}

async fn caches_converge(cs: &str) {
    let fw = framework(cs).await;
    let writer = Client::connect(cs).await.unwrap();
    writer.create("/cache", b"", CreateMode::Persistent).await.unwrap();
    let children = PathChildrenCache::new(&fw, "/cache");
    let tree = TreeCache::new(&fw, "/cache");
    // Apache keeps one watch mode per connection and path: a persistent
    // recursive watch and standard watches on the same path from one
    // session override each other there. Give CuratorCache its own session.
    let fw2 = framework(cs).await;
    let curator = CuratorCache::new(&fw2, "/cache");
    let node = NodeCache::new(&fw, "/cache/n0");
    let mut child_events = children.events();
    for c in [&children as &dyn Started, &tree, &curator, &node] {
        c.go().await;
    }
    // A storm of creates, updates and deletes, two levels deep.
    let mut seed = 0x5eed_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let a = format!("/cache/n{}", next() % 6);
        let b = format!("{a}/m{}", next() % 3);
        let path = if next() % 2 == 0 { a } else { b };
        let r = match next() % 3 {
            0 => {
                writer.create(&path, format!("{}", next()).as_bytes(), CreateMode::Persistent).await.map(drop)
            }
            1 => writer.set_data(&path, format!("{}", next()).as_bytes(), None).await.map(drop),
            _ => writer.delete(&path, None).await,
        };
        assert!(
            matches!(r, Ok(()) | Err(ZkError::NoNode) | Err(ZkError::NodeExists) | Err(ZkError::NotEmpty)),
            "{r:?}"
        );
    }
    // The truth, read from the server.
    let mut truth = std::collections::BTreeMap::new();
    let mut stack = vec!["/cache".to_string()];
    while let Some(p) = stack.pop() {
        let (data, stat) = writer.get_data(&p).await.unwrap();
        for k in writer.get_children(&p).await.unwrap() {
            stack.push(format!("{p}/{k}"));
        }
        truth.insert(p, (data, stat.mzxid));
    }
    let settled = |cache: Vec<zk_recipes::cache::ChildData>, filter: &dyn Fn(&str) -> bool| {
        let want: Vec<_> =
            truth.iter().filter(|(p, _)| filter(p)).map(|(p, (d, m))| (p.clone(), d.clone(), *m)).collect();
        let got: Vec<_> = cache.into_iter().map(|c| (c.path, c.data, c.stat.mzxid)).collect();
        want == got
    };
    within(20, "caches converge", async {
        loop {
            let t = settled(tree.current(), &|_| true);
            let c = settled(curator.current(), &|_| true);
            let k = settled(children.current(), &|p| p.matches('/').count() == 2);
            let n = settled(node.node().into_iter().collect(), &|p| p == "/cache/n0");
            if t && c && k && n {
                break;
            }
            if std::env::var("CACHE_DEBUG").is_ok() {
                eprintln!("tree={t} curator={c} children={k} node={n}");
                if !t {
                    let got: Vec<_> = tree.current().into_iter().map(|x| (x.path, x.stat.mzxid)).collect();
                    eprintln!(
                        "tree {got:?}\ntruth {:?}",
                        truth.iter().map(|(p, (_, m))| (p, m)).collect::<Vec<_>>()
                    );
                }
                if !c {
                    let got: Vec<_> = curator.current().into_iter().map(|x| (x.path, x.stat.mzxid)).collect();
                    eprintln!(
                        "curator {got:?}\ntruth {:?}",
                        truth.iter().map(|(p, (_, m))| (p, m)).collect::<Vec<_>>()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // Events were delivered: at least an Initialized and some changes.
    let mut saw_init = false;
    let mut saw_change = false;
    within(10, "an Initialized event and a change event from the children cache", async {
        while !(saw_init && saw_change) {
            match child_events.next().await {
                Some(CacheEvent::Initialized) => saw_init = true,
                Some(CacheEvent::Added(_) | CacheEvent::Updated(_) | CacheEvent::Removed(_)) => {
                    saw_change = true
                }
                Some(_) => {}
                None => panic!("the event stream ended (init {saw_init}, change {saw_change})"),
            }
        }
    })
    .await;
    for c in [&children as &dyn Started, &tree, &curator, &node] {
        c.stop().await;
    }
    // No residue: with the caches closed (their sessions still open), the
    // server holds no watch for them.
    let addr: std::net::SocketAddr = cs.parse().unwrap();
    let wchs = tokio::task::spawn_blocking(move || zk_test_support::apache::four_letter_word(addr, "wchs"))
        .await
        .unwrap();
    assert!(
        wchs.as_deref().is_some_and(|w| w.contains("Total watches:0")),
        "watches left after close: {wchs:?}"
    );
    writer.close().await.unwrap();
    fw.close().await;
    fw2.close().await;
}

#[async_trait::async_trait]
trait Started {
    async fn go(&self);
    async fn stop(&self);
}

macro_rules! started {
    ($($t:ty),*) => {$(
        #[async_trait::async_trait]
        impl Started for $t {
            async fn go(&self) {
                self.start().await.unwrap();
            }
            async fn stop(&self) {
                self.close().await;
            }
        }
    )*};
}
started!(PathChildrenCache, TreeCache, CuratorCache, NodeCache);

async fn connection_states_and_new_session(cs: &str, proxy: &zk_test_support::proxy::Proxy) {
    let fw = Framework::builder(&proxy.connect_string())
        .session_timeout(Duration::from_millis(1500))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(50), 3))
        .build();
    fw.start().await.unwrap();
    assert!(fw.block_until_connected(Duration::from_secs(20)).await, "connected");
    let mut states = fw.connection_state_events();
    let latch = LeaderLatch::new(&fw, "/statelatch", "solo");
    latch.start().await.unwrap();
    assert!(latch.await_leadership(Some(Duration::from_secs(10))).await);
    let old_session = fw.client().unwrap().session_id();
    // Cut the connection and keep it down past the session timeout.
    proxy.set_refuse(true);
    proxy.cut();
    async fn expect(states: &mut zk_recipes::StateStream, want: ConnectionState) {
        within(20, &format!("{want:?}"), async {
            while let Some(s) = states.next().await {
                if s == want {
                    return;
                }
            }
        })
        .await
    }
    expect(&mut states, ConnectionState::Suspended).await;
    // Leadership is given up on SUSPENDED: before the next state (LOST).
    let mut leadership = latch.leadership();
    within(20, "leadership given up on SUSPENDED", async {
        tokio::select! {
            biased;
            r = leadership.wait_for(|l| !*l) => drop(r.unwrap()),
            s = states.next() => panic!("{s:?} came while the latch still led: it must give up on SUSPENDED"),
        }
    })
    .await;
    expect(&mut states, ConnectionState::Lost).await;
    proxy.set_refuse(false);
    expect(&mut states, ConnectionState::Reconnected).await;
    assert_ne!(fw.client().unwrap().session_id(), old_session, "a new session after LOST");
    assert!(
        latch.await_leadership(Some(Duration::from_secs(10))).await,
        "leadership comes back on the new session"
    );
    latch.close().await;
    fw.close().await;
    let _ = cs;
}

/// Dropping a leading latch's last handle (a task that panicked, say)
/// without `close()` deletes its node, so leadership passes on; dropping
/// the last handle of a framework closes its session.
async fn dropped_handles_let_go(cs: &str) {
    let fw_a = framework(cs).await;
    let fw_b = framework(cs).await;
    let a = LeaderLatch::new(&fw_a, "/dropped/latch", "a");
    a.start().await.unwrap();
    assert!(a.await_leadership(Some(Duration::from_secs(10))).await, "a leads");
    let b = LeaderLatch::new(&fw_b, "/dropped/latch", "b");
    b.start().await.unwrap();
    wait_until_async(10, "b queues", || async { b.participants().await.unwrap().len() == 2 }).await;
    // A clone still held keeps it in the election; the last one lets go.
    let a2 = a.clone();
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!b.has_leadership(), "a clone of the leader's latch is still held");
    drop(a2);
    assert!(b.await_leadership(Some(Duration::from_secs(10))).await, "leadership passed on after the drop");
    assert_eq!(b.participants().await.unwrap().len(), 1, "the dropped latch's node is gone");
    b.close().await;
    // The framework: its session closes when its last handle goes.
    let session = fw_a.client().unwrap().session_id();
    let watcher = Client::connect(cs).await.unwrap();
    watcher.create("/dropped/owner", b"", CreateMode::Persistent).await.ok();
    fw_a.client().unwrap().create("/dropped/eph", b"", CreateMode::Ephemeral).await.unwrap();
    assert_eq!(watcher.exists("/dropped/eph").await.unwrap().map(|s| s.ephemeral_owner), Some(session));
    drop(fw_a);
    wait_until_async(10, "the dropped framework's session closes", || async {
        watcher.exists("/dropped/eph").await.unwrap().is_none()
    })
    .await;
    fw_b.close().await;
    watcher.close().await.ok();
}

/// A client closed under the framework: LOST, then a new session (as
/// after expiry), and calls work again.
async fn a_client_closed_under_the_framework_is_replaced(cs: &str) {
    let fw = framework(cs).await;
    let mut states = fw.connection_state_events();
    let old = fw.client().unwrap();
    let old_session = old.session_id();
    old.close().await.unwrap();
    // Every change, in order (a watch could skip LOST).
    within(10, "LOST", async { while states.next().await != Some(ConnectionState::Lost) {} }).await;
    within(20, "a new session", async { while states.next().await != Some(ConnectionState::Reconnected) {} })
        .await;
    assert_ne!(fw.client().unwrap().session_id(), old_session);
    fw.create().creating_parents_if_needed().for_path("/replaced/after", b"").await.unwrap();
    fw.close().await;
}

async fn suite(cs: &str) {
    a_client_closed_under_the_framework_is_replaced(cs).await;
    dropped_handles_let_go(cs).await;
    mutex_semantics(cs).await;
    mutex_counter(cs, 10, 50).await;
    latch_has_one_leader(cs).await;
    selectors_take_turns(cs).await;
    caches_converge(cs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipes_against_zk_server() {
    common::trace_init();
    let server = zk_server::Server::start_temp().await.unwrap();
    within(240, "suite", suite(&server.connect_string())).await;
    let proxy = zk_test_support::proxy::Proxy::start(server.addr());
    within(60, "states", connection_states_and_new_session(&server.connect_string(), &proxy)).await;
    drop(proxy);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipes_against_apache_zookeeper() {
    let Some(zk) = ApacheZk::start() else { return };
    within(240, "suite", suite(&zk.connect_string())).await;
}
