//! kazoo's recipes that Curator lacks, with kazoo's layouts so that Rust
//! and Python processes share them: [`SetPartitioner`] (a set divided
//! among the members of a group), [`Party`] and [`ShallowParty`] (group
//! membership), [`NonBlockingLease`] and [`MultiNonBlockingLease`]
//! (clock-based leases), and [`KazooLock`] (kazoo's `Lock`, which the
//! others use).
//!
//! | recipe | layout |
//! |---|---|
//! | [`KazooLock`] | `<path>/<uuid hex>__lock__<seq>`, ephemeral sequential, data = identifier |
//! | [`Party`] | `<path>/<uuid hex>__party__`, ephemeral, data = identifier |
//! | [`ShallowParty`] | `<path>/<uuid hex>-<identifier>`, ephemeral |
//! | [`SetPartitioner`] | a [`ShallowParty`] at `<path>/party`, a [`KazooLock`] per owned item at `<path>/locks/<item>` |
//! | [`NonBlockingLease`] | `<path>/lease_holder` holding `{"version": 1, "holder": id, "end": "<UTC %Y-%m-%dT%H:%M:%S>"}`, written under a [`KazooLock`] at `<path>` |

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use uuid::Uuid;
use zk_client::{CreateMode, Error as ZkError};

use crate::error::{Error, Result};
use crate::framework::{Framework, watch_fired_by};
use crate::state::ConnectionState;

const LOCK_NODE_NAME: &str = "__lock__";
/// Names that make a contender of a kazoo write lock.
const CONTENDER_NAMES: &[&str] = &["__lock__", "__rlock__"];

/// The sequence of a kazoo contender (`(__lock__|__rlock__)(-?\d{10})$`).
fn contender_seq(child: &str) -> Option<&str> {
    for name in CONTENDER_NAMES {
        if let Some(i) = child.rfind(name) {
            let seq = &child[i + name.len()..];
            let digits = seq.strip_prefix('-').unwrap_or(seq);
            if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) {
                return Some(seq);
            }
        }
    }
    None
}

/// kazoo's `Lock`: exclusive, not reentrant, fair; nodes
/// `<uuid hex>__lock__<seq>` carrying the identifier. Dropped while held,
/// it is released in the background.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::kazoo::KazooLock;
///
/// let lock = KazooLock::new(&fw, "/locks/nightly", "worker-3");
/// lock.acquire().await?;
/// // ... kazoo processes on the same path wait ...
/// lock.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct KazooLock {
    fw: Framework,
    path: String,
    identifier: String,
    node: Mutex<Option<String>>,
}

impl KazooLock {
    /// A lock at `path`; contenders' nodes carry `identifier`.
    pub fn new(fw: &Framework, path: &str, identifier: &str) -> Self {
        KazooLock {
            fw: fw.clone(),
            path: path.trim_end_matches('/').to_string(),
            identifier: identifier.to_string(),
            node: Mutex::new(None),
        }
    }

    /// Waits until held.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when this value holds it already (kazoo's
    /// lock is not reentrant); client errors after retries.
    pub async fn acquire(&self) -> Result<()> {
        if self.acquire_until(None).await? {
            Ok(())
        } else {
            Err(Error::Lost("acquire ended without the lock"))
        }
    }

    /// Waits at most `timeout`; whether held.
    ///
    /// # Errors
    /// As [`KazooLock::acquire`].
    pub async fn try_acquire(&self, timeout: Duration) -> Result<bool> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<bool> {
        if self.is_acquired() {
            return Err(Error::InvalidArgument("a kazoo lock is not reentrant"));
        }
        self.fw.ensure_path(&self.path).await?;
        let prefix = Uuid::new_v4().simple().to_string();
        let node = self
            .fw
            .create_prefixed(
                &format!("{}/{LOCK_NODE_NAME}", self.path),
                prefix,
                self.identifier.as_bytes(),
                CreateMode::EphemeralSequential,
                &self.fw.default_acl(),
                None,
            )
            .await?;
        // Deleted unless we end up holding it.
        let mut pending = Some(node.clone());
        let name = node.rsplit('/').next().unwrap_or("").to_string();
        let r = async {
            loop {
                let kids = self.fw.get_children(&self.path).await?;
                let mut contenders: Vec<(&str, &String)> =
                    kids.iter().filter_map(|k| contender_seq(k).map(|s| (s, k))).collect();
                contenders.sort();
                let Some(pos) = contenders.iter().position(|(_, k)| **k == name) else {
                    return Err(Error::Lost("the lock node disappeared while waiting"));
                };
                if pos == 0 {
                    return Ok(true);
                }
                let predecessor = format!("{}/{}", self.path, contenders[pos - 1].1);
                let watch = match self.fw.with_retry(|c| c.get_data_watch(&predecessor)).await {
                    Ok((_, _, w)) => w,
                    Err(Error::Zk(ZkError::NoNode)) => continue,
                    Err(e) => return Err(e),
                };
                if !watch_fired_by(watch, deadline).await {
                    return Ok(false);
                }
            }
        };
        let guard = DeleteUnlessHeld { fw: &self.fw, node: &mut pending };
        let held = r.await?;
        if held {
            guard.node.take();
            if let Ok(mut n) = self.node.lock() {
                *n = Some(node);
            }
        } else if let Some(n) = guard.node.take() {
            // Timed out: gone before we return, as kazoo's cleanup is.
            self.fw.delete_guaranteed_now(n).await;
        }
        Ok(held)
    }

    /// Whether this value holds the lock.
    pub fn is_acquired(&self) -> bool {
        self.node.lock().map(|n| n.is_some()).unwrap_or(false)
    }

    /// Releases (deletes the node; guaranteed).
    ///
    /// # Errors
    /// [`Error::NotHeld`] when not held.
    pub async fn release(&self) -> Result<()> {
        let node = self.node.lock().ok().and_then(|mut n| n.take()).ok_or(Error::NotHeld)?;
        match self.fw.delete().for_path(&node).await {
            Ok(()) | Err(Error::Zk(ZkError::NoNode)) => {}
            Err(_) => self.fw.guaranteed_delete(node),
        }
        Ok(())
    }

    /// The contenders' identifiers, holder first (kazoo's `contenders()`).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn contenders(&self) -> Result<Vec<String>> {
        let kids = match self.fw.get_children(&self.path).await {
            Ok(k) => k,
            Err(Error::Zk(ZkError::NoNode)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut contenders: Vec<(&str, &String)> =
            kids.iter().filter_map(|k| contender_seq(k).map(|s| (s, k))).collect();
        contenders.sort();
        let mut out = Vec::new();
        for (_, k) in contenders {
            match self.fw.get_data(&format!("{}/{k}", self.path)).await {
                Ok((d, _)) => out.push(String::from_utf8_lossy(&d).into_owned()),
                Err(Error::Zk(ZkError::NoNode)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

struct DeleteUnlessHeld<'a> {
    fw: &'a Framework,
    node: &'a mut Option<String>,
}

impl Drop for DeleteUnlessHeld<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.node.take() {
            self.fw.guaranteed_delete(n);
        }
    }
}

impl Drop for KazooLock {
    fn drop(&mut self) {
        if let Some(n) = self.node.lock().ok().and_then(|mut n| n.take()) {
            self.fw.guaranteed_delete(n);
        }
    }
}

#[derive(Debug)]
struct PartyCore {
    fw: Framework,
    path: String,
    node: String,
    data: Vec<u8>,
    joined: Mutex<bool>,
}

impl PartyCore {
    async fn join(&self) -> Result<()> {
        self.fw.ensure_path(&self.path).await?;
        match self
            .fw
            .create()
            .with_mode(CreateMode::Ephemeral)
            .for_path(&format!("{}/{}", self.path, self.node), &self.data)
            .await
        {
            Ok(_) | Err(Error::Zk(ZkError::NodeExists)) => {}
            Err(e) => return Err(e),
        }
        if let Ok(mut j) = self.joined.lock() {
            *j = true;
        }
        Ok(())
    }

    async fn leave(&self) -> Result<bool> {
        if let Ok(mut j) = self.joined.lock() {
            *j = false;
        }
        match self.fw.delete().for_path(&format!("{}/{}", self.path, self.node)).await {
            Ok(()) => Ok(true),
            Err(Error::Zk(ZkError::NoNode)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn children(&self) -> Result<Vec<String>> {
        self.fw.ensure_path(&self.path).await?;
        self.fw.get_children(&self.path).await
    }
}

impl Drop for PartyCore {
    fn drop(&mut self) {
        if self.joined.lock().map(|j| *j).unwrap_or(false) {
            self.fw.guaranteed_delete(format!("{}/{}", self.path, self.node));
        }
    }
}

/// kazoo's `Party`: members are ephemeral `<uuid hex>__party__` nodes
/// whose data is the member's identifier. Dropped while joined, it leaves
/// in the background.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::kazoo::Party;
///
/// let party = Party::new(&fw, "/parties/workers", "worker-9");
/// party.join().await?;
/// println!("{:?}", party.participants().await?);
/// party.leave().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Party(PartyCore);

impl Party {
    /// A party at `path`; this member is `identifier`.
    pub fn new(fw: &Framework, path: &str, identifier: &str) -> Self {
        Party(PartyCore {
            fw: fw.clone(),
            path: path.trim_end_matches('/').to_string(),
            node: format!("{}__party__", Uuid::new_v4().simple()),
            data: identifier.as_bytes().to_vec(),
            joined: Mutex::new(false),
        })
    }

    /// Joins.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn join(&self) -> Result<()> {
        self.0.join().await
    }

    /// Leaves; whether this member was in.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn leave(&self) -> Result<bool> {
        self.0.leave().await
    }

    /// The members' identifiers.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn participants(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for k in self.0.children().await?.into_iter().filter(|k| k.contains("__party__")) {
            match self.0.fw.get_data(&format!("{}/{k}", self.0.path)).await {
                Ok((d, _)) => out.push(String::from_utf8_lossy(&d).into_owned()),
                Err(Error::Zk(ZkError::NoNode)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// kazoo's `ShallowParty`: the identifier is in the node's name
/// (`<uuid hex>-<identifier>`), so listing members is one request.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::kazoo::ShallowParty;
///
/// let party = ShallowParty::new(&fw, "/parties/shallow", "worker-9");
/// party.join().await?;
/// assert!(party.participants().await?.contains(&"worker-9".to_string()));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ShallowParty(PartyCore);

impl ShallowParty {
    /// A shallow party at `path`; this member is `identifier` (a valid
    /// node name).
    pub fn new(fw: &Framework, path: &str, identifier: &str) -> Self {
        ShallowParty(PartyCore {
            fw: fw.clone(),
            path: path.trim_end_matches('/').to_string(),
            node: format!("{}-{identifier}", Uuid::new_v4().simple()),
            data: identifier.as_bytes().to_vec(),
            joined: Mutex::new(false),
        })
    }

    /// Joins.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn join(&self) -> Result<()> {
        self.0.join().await
    }

    /// Leaves; whether this member was in.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn leave(&self) -> Result<bool> {
        self.0.leave().await
    }

    /// The members' identifiers.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn participants(&self) -> Result<Vec<String>> {
        Ok(self
            .0
            .children()
            .await?
            .iter()
            .map(|c| c.split_once('-').map_or(c.as_str(), |(_, id)| id).to_string())
            .collect())
    }
}

/// The states of a [`SetPartitioner`] (kazoo's `PartitionState`).
///
/// ```no_run
/// # async fn f(p: zk_recipes::kazoo::SetPartitioner) {
/// use zk_recipes::kazoo::PartitionState;
/// let mut states = p.states();
/// while states.changed().await.is_ok() {
///     if *states.borrow() == PartitionState::Release { p.release_set().await; }
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionState {
    /// Waiting for the group to settle and taking this member's items.
    Allocating,
    /// This member holds its items ([`SetPartitioner::partitions`]).
    Acquired,
    /// The group changed: call [`SetPartitioner::release_set`] to
    /// re-partition.
    Release,
    /// The session was lost or [`SetPartitioner::finish`] was called: the
    /// partitioner is done (make a new one).
    Failure,
}

/// Divides the set among the members: the items this member gets.
///
/// ```
/// use zk_recipes::kazoo::PartitionFunc;
/// // Everything to the first member (sorted).
/// fn first_takes_all(id: &str, members: &[String], set: &[String]) -> Vec<String> {
///     let mut m = members.to_vec();
///     m.sort();
///     if m.first().map(String::as_str) == Some(id) { set.to_vec() } else { Vec::new() }
/// }
/// let f: PartitionFunc = first_takes_all;
/// assert_eq!(f("a", &["a".into(), "b".into()], &["x".into()]), ["x"]);
/// ```
pub type PartitionFunc = fn(identifier: &str, members: &[String], set: &[String]) -> Vec<String>;

/// kazoo's default: sorted items dealt round the sorted members.
///
/// ```
/// use zk_recipes::kazoo::default_partitioner;
/// let members = vec!["w1".to_string(), "w2".to_string()];
/// let set: Vec<String> = ["q1", "q2", "q3"].iter().map(|s| s.to_string()).collect();
/// assert_eq!(default_partitioner("w1", &members, &set), ["q1", "q3"]);
/// ```
pub fn default_partitioner(identifier: &str, members: &[String], set: &[String]) -> Vec<String> {
    let mut items = set.to_vec();
    items.sort();
    let mut workers = members.to_vec();
    workers.sort();
    let Some(i) = workers.iter().position(|w| w == identifier) else { return Vec::new() };
    items.into_iter().skip(i).step_by(workers.len()).collect()
}

#[derive(Debug)]
struct PartInner {
    fw: Framework,
    path: String,
    set: Vec<String>,
    identifier: String,
    func: PartitionFunc,
    time_boundary: Duration,
    state: watch::Sender<PartitionState>,
    partitions: Mutex<Vec<String>>,
    release: Notify,
    finish: Notify,
    party: ShallowParty,
}

/// kazoo's `SetPartitioner`: each item of a set goes to exactly one member
/// of a group, and the set is divided again when members come and go.
///
/// Members join a [`ShallowParty`] at `<path>/party`. Once the party has
/// not changed for `time_boundary`, each member takes a [`KazooLock`] at
/// `<path>/locks/<item>` for each of its items (by the partition function)
/// and is ACQUIRED. When the party changes it goes to RELEASE; the owner
/// stops working on its items and calls [`release_set`](Self::release_set),
/// and allocation starts again.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::kazoo::{PartitionState, SetPartitioner};
///
/// let sets: Vec<String> = (1..=6).map(|i| format!("queue-{i}")).collect();
/// let p = SetPartitioner::new(&fw, "/partitions/queues", &sets, "worker-1").time_boundary(Duration::from_secs(2));
/// p.start().await?;
/// loop {
///     match p.state() {
///         PartitionState::Acquired => { /* work on p.partitions() */ }
///         PartitionState::Release => p.release_set().await,
///         PartitionState::Allocating => { p.wait_for_acquire(Duration::from_secs(30)).await; }
///         PartitionState::Failure => break,
///     }
/// #   break;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SetPartitioner {
    inner: Arc<PartInner>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SetPartitioner {
    /// A partitioner of `set` at `path`, this member being `identifier`
    /// (kazoo's default time boundary: 30 s).
    pub fn new(fw: &Framework, path: &str, set: &[String], identifier: &str) -> Self {
        let path = path.trim_end_matches('/').to_string();
        SetPartitioner {
            inner: Arc::new(PartInner {
                fw: fw.clone(),
                party: ShallowParty::new(fw, &format!("{path}/party"), identifier),
                path,
                set: set.to_vec(),
                identifier: identifier.to_string(),
                func: default_partitioner,
                time_boundary: Duration::from_secs(30),
                state: watch::channel(PartitionState::Allocating).0,
                partitions: Mutex::new(Vec::new()),
                release: Notify::new(),
                finish: Notify::new(),
            }),
            task: Mutex::new(None),
        }
    }

    /// How long the party must stay unchanged before allocating.
    pub fn time_boundary(mut self, d: Duration) -> Self {
        if let Some(i) = Arc::get_mut(&mut self.inner) {
            i.time_boundary = d;
        }
        self
    }

    /// Another partition function.
    pub fn partition_func(mut self, f: PartitionFunc) -> Self {
        if let Some(i) = Arc::get_mut(&mut self.inner) {
            i.func = f;
        }
        self
    }

    /// Joins the party and starts allocating.
    ///
    /// # Errors
    /// Client errors of the join.
    pub async fn start(&self) -> Result<()> {
        let i = &self.inner;
        i.fw.ensure_path(&format!("{}/locks", i.path)).await?;
        i.party.join().await?;
        let task = tokio::spawn(i.clone().run());
        if let Ok(mut t) = self.task.lock() {
            *t = Some(task);
        }
        Ok(())
    }

    /// The current state.
    pub fn state(&self) -> PartitionState {
        *self.inner.state.borrow()
    }

    /// A receiver of the state.
    pub fn states(&self) -> watch::Receiver<PartitionState> {
        self.inner.state.subscribe()
    }

    /// This member's items (while ACQUIRED).
    pub fn partitions(&self) -> Vec<String> {
        self.inner.partitions.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Waits at most `timeout` for ACQUIRED; whether it is.
    pub async fn wait_for_acquire(&self, timeout: Duration) -> bool {
        let mut rx = self.states();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s == PartitionState::Acquired))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Releases this member's items (in RELEASE): allocation starts again.
    pub async fn release_set(&self) {
        self.inner.release.notify_one();
        let mut rx = self.states();
        let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| *s != PartitionState::Release))
            .await;
    }

    /// Releases the items and leaves the party (FAILURE).
    pub async fn finish(&self) {
        self.inner.finish.notify_one();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
        let _ = self.inner.party.leave().await;
        self.inner.state.send_replace(PartitionState::Failure);
    }
}

impl Drop for SetPartitioner {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}

enum Step {
    Again,
    Stop,
}

impl PartInner {
    /// The party once unchanged for the time boundary, and a watch that
    /// fires at its next change.
    async fn settled_party(&self) -> Result<(Vec<String>, zk_client::OneshotWatcher)> {
        let party_path = format!("{}/party", self.path);
        loop {
            let (kids, mut w) = self.fw.with_retry(|c| c.get_children_watch(&party_path)).await?;
            tokio::select! {
                _ = &mut w => continue,
                () = tokio::time::sleep(self.time_boundary) => {
                    let members = kids.iter().map(|c| c.split_once('-').map_or(c.as_str(), |(_, id)| id).to_string()).collect();
                    return Ok((members, w));
                }
            }
        }
    }

    async fn run(self: Arc<Self>) {
        let mut states = self.fw.connection_state_events();
        loop {
            let step = tokio::select! {
                s = self.clone().allocate() => s,
                _ = self.finish.notified() => Step::Stop,
                () = async {
                    while let Some(st) = states.next().await {
                        if st == ConnectionState::Lost {
                            return;
                        }
                    }
                    std::future::pending::<()>().await;
                } => Step::Stop,
            };
            if let Step::Stop = step {
                if let Ok(mut p) = self.partitions.lock() {
                    p.clear();
                }
                self.state.send_replace(PartitionState::Failure);
                return;
            }
        }
    }

    async fn allocate(self: Arc<Self>) -> Step {
        self.state.send_replace(PartitionState::Allocating);
        let (members, mut changed) = match self.settled_party().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(path = %self.path, error = %e, "partitioner: cannot read the party");
                return Step::Stop;
            }
        };
        let mine = (self.func)(&self.identifier, &members, &self.set);
        let mut locks = Vec::new();
        for item in &mine {
            let lock = KazooLock::new(&self.fw, &format!("{}/locks/{item}", self.path), &self.identifier);
            tokio::select! {
                r = lock.acquire() => match r {
                    Ok(()) => locks.push(lock),
                    Err(e) => {
                        tracing::warn!(path = %self.path, %item, error = %e, "partitioner: lock failed");
                        return Step::Stop;
                    }
                },
                // The party changed while we took locks: start over (the
                // dropped locks are released).
                _ = &mut changed => return Step::Again,
            }
        }
        if let Ok(mut p) = self.partitions.lock() {
            *p = mine;
        }
        self.state.send_replace(PartitionState::Acquired);
        let _ = (&mut changed).await;
        self.state.send_replace(PartitionState::Release);
        self.release.notified().await;
        if let Ok(mut p) = self.partitions.lock() {
            p.clear();
        }
        for l in &locks {
            let _ = l.release().await;
        }
        Step::Again
    }
}

/// Days since the epoch to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// kazoo's lease time format: UTC `%Y-%m-%dT%H:%M:%S`.
fn format_utc(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", t / 3600, t % 3600 / 60, t % 60)
}

fn parse_utc(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(str::parse::<i64>);
    let (y, mo, da) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':').map(str::parse::<i64>);
    let (h, mi, se) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    Some(
        days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(da).ok()?) * 86_400
            + h * 3600
            + mi * 60
            + se,
    )
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// kazoo's `NonBlockingLease`: whether this holder may run a task for
/// `duration`, by client clocks (roughly synchronised, UTC). The same
/// holder renews its own lease; another holder gets it once it ended.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::kazoo::NonBlockingLease;
///
/// if NonBlockingLease::obtain(&fw, "/leases/hourly-cleanup", Duration::from_secs(70 * 60), "host-a").await? {
///     // ... run the hourly cleanup here, and only here ...
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NonBlockingLease;

impl NonBlockingLease {
    /// Tries to obtain (or renew) the lease at `path`; whether it was.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn obtain(fw: &Framework, path: &str, duration: Duration, identifier: &str) -> Result<bool> {
        let path = path.trim_end_matches('/');
        fw.ensure_path(path).await?;
        let holder_path = format!("{path}/lease_holder");
        let lock = KazooLock::new(fw, path, identifier);
        lock.acquire().await?;
        let r = async {
            let now = now_secs();
            match fw.get_data(&holder_path).await {
                Ok((raw, _)) => {
                    let v: serde_json::Value = serde_json::from_slice(&raw)
                        .map_err(|e| Error::CorruptData(format!("{holder_path}: {e}")))?;
                    if v.get("version").and_then(serde_json::Value::as_i64) != Some(1) {
                        return Ok(false);
                    }
                    let holder = v.get("holder").and_then(serde_json::Value::as_str).unwrap_or("");
                    let end =
                        v.get("end").and_then(serde_json::Value::as_str).and_then(parse_utc).unwrap_or(0);
                    if holder != identifier && now < end {
                        return Ok(false);
                    }
                    fw.delete().for_path(&holder_path).await?;
                }
                Err(Error::Zk(ZkError::NoNode)) => {}
                Err(e) => return Err(e),
            }
            let end = format_utc(now + duration.as_secs() as i64);
            // As Python's json.dumps writes it.
            let data = format!(
                "{{\"version\": 1, \"holder\": {}, \"end\": \"{end}\"}}",
                serde_json::Value::String(identifier.to_string())
            );
            fw.create().for_path(&holder_path, data.as_bytes()).await?;
            Ok(true)
        }
        .await;
        let released = lock.release().await;
        let obtained = r?;
        released?;
        Ok(obtained)
    }
}

/// kazoo's `MultiNonBlockingLease`: one of `count` leases at
/// `<path>/0` .. `<path>/<count-1>`.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::kazoo::MultiNonBlockingLease;
/// // At most three hosts run the report this hour.
/// if MultiNonBlockingLease::obtain(&fw, 3, "/leases/report", Duration::from_secs(3600), "host-a").await? {
///     // ... run it ...
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MultiNonBlockingLease;

impl MultiNonBlockingLease {
    /// Tries the leases in turn; whether one was obtained (or renewed).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn obtain(
        fw: &Framework,
        count: usize,
        path: &str,
        duration: Duration,
        identifier: &str,
    ) -> Result<bool> {
        let path = path.trim_end_matches('/');
        for n in 0..count {
            if NonBlockingLease::obtain(fw, &format!("{path}/{n}"), duration, identifier).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kazoo_names_and_times() {
        assert_eq!(contender_seq("abc__lock__0000000012"), Some("0000000012"));
        assert_eq!(contender_seq("abc__rlock__-0000000001"), Some("-0000000001"));
        assert_eq!(contender_seq("_c_x-lock-0000000001"), None);
        assert_eq!(format_utc(0), "1970-01-01T00:00:00");
        assert_eq!(format_utc(1_796_558_400), "2026-12-06T12:00:00");
        assert_eq!(parse_utc("2026-12-06T12:00:00"), Some(1_796_558_400));
        let members: Vec<String> = ["b", "a"].iter().map(|s| s.to_string()).collect();
        let set: Vec<String> = ["3", "1", "2"].iter().map(|s| s.to_string()).collect();
        assert_eq!(default_partitioner("a", &members, &set), ["1", "3"]);
        assert_eq!(default_partitioner("b", &members, &set), ["2"]);
        assert!(default_partitioner("z", &members, &set).is_empty());
    }
}
