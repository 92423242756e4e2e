//! Curator's queues, with Curator's node names and item framing so that
//! Java and Rust producers and consumers share a queue:
//!
//! | type | item node under the queue path |
//! |---|---|
//! | [`DistributedQueue`] | `queue-<seq>` |
//! | [`DistributedIdQueue`] | `queue-\|<id>\|<seq>` |
//! | [`DistributedPriorityQueue`] | `queue-<1 or 0><priority as %08X><seq>` |
//! | [`DistributedDelayQueue`] | `queue-\|<epoch ms as %08X>\|<seq>` |
//! | [`SimpleDistributedQueue`] | `qn-<seq>` (raw bytes) |
//!
//! The first four frame their data as Curator's `ItemSerializer` does
//! (int32 `0x00010001`, then `0x01`, int32 length, bytes per item, then
//! `0x02`), so one node can carry several items ([`DistributedQueue::put_multi`]).
//!
//! Consumers: without a lock path an item is deleted before it is
//! consumed (at most once: a consumer that dies mid-item loses it); with a
//! lock path (Curator's lock safety) the consumer first creates an
//! ephemeral `<lock path>/<item node>`, consumes, and only then deletes
//! the item (at least once: a consumer that dies leaves the item for
//! another); a failed consumption is put back at the end of the queue
//! ([`ErrorMode::Requeue`], atomically with the delete) or dropped
//! ([`ErrorMode::Delete`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;
use zk_client::{CreateMode, CreateOptions, Error as ZkError, OneshotWatcher, Op};

use crate::error::{Error, Result};
use crate::framework::{Framework, watch_fired_by};

const QUEUE_ITEM_NAME: &str = "queue-";
const SEPARATOR: char = '|';
const VERSION: i32 = 0x0001_0001;
const ITEM_OPCODE: u8 = 0x01;
const EOF_OPCODE: u8 = 0x02;

/// Turns items into bytes and back (Curator's `QueueSerializer`).
///
/// ```
/// use zk_recipes::queue::QueueSerializer;
/// use zk_recipes::{Error, Result};
///
/// /// Numbers as decimal text.
/// struct Decimal;
/// impl QueueSerializer<u64> for Decimal {
///     fn serialize(&self, n: &u64) -> Vec<u8> { n.to_string().into_bytes() }
///     fn deserialize(&self, b: &[u8]) -> Result<u64> {
///         std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or_else(|| Error::CorruptData("not a number".into()))
///     }
/// }
/// assert_eq!(Decimal.deserialize(&Decimal.serialize(&42)).unwrap(), 42);
/// ```
pub trait QueueSerializer<T>: Send + Sync + 'static {
    /// The item's bytes.
    fn serialize(&self, item: &T) -> Vec<u8>;
    /// The item from its bytes.
    ///
    /// # Errors
    /// [`Error::CorruptData`] when the bytes are not an item.
    fn deserialize(&self, bytes: &[u8]) -> Result<T>;
}

/// Items that are bytes, unchanged.
///
/// ```
/// use zk_recipes::queue::{BytesSerializer, QueueSerializer};
/// assert_eq!(BytesSerializer.serialize(&vec![1, 2]), vec![1, 2]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerializer;

impl QueueSerializer<Vec<u8>> for BytesSerializer {
    fn serialize(&self, item: &Vec<u8>) -> Vec<u8> {
        item.clone()
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        Ok(bytes.to_vec())
    }
}

/// Items that are UTF-8 strings (as Java's `new String(bytes, UTF_8)`).
///
/// ```
/// use zk_recipes::queue::{QueueSerializer, StringSerializer};
/// assert_eq!(StringSerializer.deserialize(b"job").unwrap(), "job");
/// assert!(StringSerializer.deserialize(&[0xff]).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerializer;

impl QueueSerializer<String> for StringSerializer {
    fn serialize(&self, item: &String) -> Vec<u8> {
        item.as_bytes().to_vec()
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<String> {
        String::from_utf8(bytes.to_vec()).map_err(|e| Error::CorruptData(format!("not UTF-8: {e}")))
    }
}

/// Frames items as Curator's `ItemSerializer`.
pub(crate) fn frame_items(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + items.iter().map(|i| i.len() + 5).sum::<usize>());
    out.extend_from_slice(&VERSION.to_be_bytes());
    for i in items {
        out.push(ITEM_OPCODE);
        out.extend_from_slice(&(i.len() as i32).to_be_bytes());
        out.extend_from_slice(i);
    }
    out.push(EOF_OPCODE);
    out
}

/// The items of a framed node.
///
/// # Errors
/// [`Error::CorruptData`] for anything else.
pub(crate) fn unframe_items(mut b: &[u8]) -> Result<Vec<Vec<u8>>> {
    let bad = |why: &str| Error::CorruptData(format!("queue item: {why}"));
    let take = |n: usize, b: &mut &[u8]| -> Result<Vec<u8>> {
        if b.len() < n {
            return Err(bad("truncated"));
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Ok(h.to_vec())
    };
    let v = take(4, &mut b)?;
    if i32::from_be_bytes([v[0], v[1], v[2], v[3]]) != VERSION {
        return Err(bad("wrong version"));
    }
    let mut items = Vec::new();
    loop {
        let op = take(1, &mut b)?[0];
        match op {
            EOF_OPCODE => return Ok(items),
            ITEM_OPCODE => {
                let l = take(4, &mut b)?;
                let len = i32::from_be_bytes([l[0], l[1], l[2], l[3]]);
                if len < 0 {
                    return Err(bad("negative size"));
                }
                items.push(take(len as usize, &mut b)?);
            }
            _ => return Err(bad("unknown opcode")),
        }
    }
}

/// Consumes queue items (Curator's `QueueConsumer`). An error means the
/// item was not consumed: with a lock path and [`ErrorMode::Requeue`] it
/// goes back to the queue.
///
/// ```
/// use zk_recipes::async_trait;
/// use zk_recipes::queue::QueueConsumer;
///
/// struct Mailer;
/// #[async_trait]
/// impl QueueConsumer<String> for Mailer {
///     async fn consume_message(&self, to: String) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///         if to.is_empty() { return Err("no recipient".into()); }
///         Ok(())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait QueueConsumer<T>: Send + Sync + 'static {
    /// Handles one item.
    ///
    /// # Errors
    /// Any: the item counts as not consumed.
    async fn consume_message(
        &self,
        item: T,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// What a lock-safe queue does with an item whose consumer failed
/// (Curator's `ErrorMode`).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) {
/// use zk_recipes::queue::{ErrorMode, QueueBuilder, StringSerializer};
/// let q = QueueBuilder::new(&fw, None, StringSerializer, "/q").lock_path("/q-locks").error_mode(ErrorMode::Delete).build_queue();
/// # drop(q); }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorMode {
    /// Put it back at the end of the queue (the default).
    #[default]
    Requeue,
    /// Delete it.
    Delete,
}

/// How a queue kind names, orders and delays its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Id,
    Priority,
    Delay,
}

/// The id and the name without it, for `queue-|<id>|<seq>`.
fn parse_id(name: &str) -> (String, String) {
    let Some(first) = name.find(SEPARATOR) else { return (name.to_string(), name.to_string()) };
    let Some(second) = name[first + 1..].find(SEPARATOR).map(|i| i + first + 1) else {
        return (name.to_string(), name.to_string());
    };
    (name[first + 1..second].to_string(), format!("{}{}", &name[..first], &name[second + 1..]))
}

/// Curator's `fixId`: `/` and `|` become `_`.
fn fix_id(id: &str) -> String {
    id.replace(['/', SEPARATOR], "_")
}

/// The epoch (ms) in `queue-|<hex>|<seq>`, or 0.
fn parse_epoch(name: &str) -> i64 {
    let Some(i2) = name.rfind(SEPARATOR) else { return 0 };
    if i2 == 0 {
        return 0;
    }
    let Some(i1) = name[..i2].rfind(SEPARATOR) else { return 0 };
    if i1 == 0 || i2 <= i1 + 1 {
        return 0;
    }
    i64::from_str_radix(&name[i1 + 1..i2], 16).unwrap_or(0)
}

/// Curator's `priorityToString`.
fn priority_to_string(priority: i32) -> String {
    format!("{}{:08X}", if priority >= 0 { "1" } else { "0" }, priority as u32)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Kind {
    fn sort(self, children: &mut [String]) {
        match self {
            Kind::Plain | Kind::Priority => children.sort(),
            Kind::Id => children.sort_by_cached_key(|c| parse_id(c).1),
            Kind::Delay => children.sort_by_key(|c| parse_epoch(c)),
        }
    }

    fn delay_ms(self, name: &str) -> i64 {
        match self {
            Kind::Delay => parse_epoch(name) - now_ms(),
            _ => 0,
        }
    }

    /// After how many items the priority queue looks for new ones.
    fn refresh_on_watch(self) -> bool {
        matches!(self, Kind::Priority | Kind::Delay)
    }
}

/// Builds the queues (Curator's `QueueBuilder`).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::sync::Arc;
/// use zk_recipes::queue::{QueueBuilder, QueueConsumer, StringSerializer};
///
/// struct Printer;
/// #[zk_recipes::async_trait]
/// impl QueueConsumer<String> for Printer {
///     async fn consume_message(&self, item: String) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///         println!("job: {item}");
///         Ok(())
///     }
/// }
///
/// let queue = QueueBuilder::new(&fw, Some(Arc::new(Printer)), StringSerializer, "/queues/jobs")
///     .lock_path("/queues/jobs-locks") // an item is deleted only once consumed
///     .build_queue();
/// queue.start().await?;
/// queue.put(&"resize image 42".to_string()).await?;
/// # Ok(()) }
/// ```
pub struct QueueBuilder<T> {
    fw: Framework,
    consumer: Option<Arc<dyn QueueConsumer<T>>>,
    serializer: Arc<dyn QueueSerializer<T>>,
    path: String,
    lock_path: Option<String>,
    max_items: Option<usize>,
    error_mode: ErrorMode,
    min_items_before_refresh: usize,
}

impl<T> std::fmt::Debug for QueueBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueBuilder").field("path", &self.path).field("lock_path", &self.lock_path).finish()
    }
}

impl<T: Send + 'static> QueueBuilder<T> {
    /// A queue at `path`; `consumer` is `None` for a producer only.
    pub fn new(
        fw: &Framework,
        consumer: Option<Arc<dyn QueueConsumer<T>>>,
        serializer: impl QueueSerializer<T>,
        path: &str,
    ) -> Self {
        QueueBuilder {
            fw: fw.clone(),
            consumer,
            serializer: Arc::new(serializer),
            path: path.trim_end_matches('/').to_string(),
            lock_path: None,
            max_items: None,
            error_mode: ErrorMode::Requeue,
            min_items_before_refresh: 0,
        }
    }

    /// Lock safety: items are deleted only after they were consumed.
    pub fn lock_path(mut self, path: &str) -> Self {
        self.lock_path = Some(path.trim_end_matches('/').to_string());
        self
    }

    /// A bounded queue: `put` waits while it holds `max` items (a soft
    /// bound: concurrent producers may pass it briefly, as in Curator).
    pub fn max_items(mut self, max: usize) -> Self {
        self.max_items = Some(max.max(1));
        self
    }

    /// What a lock-safe queue does with an item whose consumer failed.
    pub fn error_mode(mut self, mode: ErrorMode) -> Self {
        self.error_mode = mode;
        self
    }

    fn build(self, kind: Kind) -> Queue<T> {
        let (closed, _) = watch::channel(false);
        Queue {
            inner: Arc::new(QueueInner {
                fw: self.fw,
                consumer: self.consumer,
                serializer: self.serializer,
                path: self.path,
                lock_path: self.lock_path,
                max_items: self.max_items,
                error_mode: self.error_mode,
                min_items_before_refresh: self.min_items_before_refresh,
                kind,
                closed,
                task: Mutex::new(None),
            }),
        }
    }

    /// A FIFO queue (Curator's `buildQueue`).
    pub fn build_queue(self) -> DistributedQueue<T> {
        DistributedQueue(self.build(Kind::Plain))
    }

    /// A queue whose items carry an id, removable by id (`buildIdQueue`).
    pub fn build_id_queue(self) -> DistributedIdQueue<T> {
        DistributedIdQueue(self.build(Kind::Id))
    }

    /// A queue where lower priorities come out first
    /// (`buildPriorityQueue`); the consumer looks for new items after every
    /// `min_items_before_refresh` items (0: after each).
    pub fn build_priority_queue(mut self, min_items_before_refresh: usize) -> DistributedPriorityQueue<T> {
        self.min_items_before_refresh = min_items_before_refresh;
        DistributedPriorityQueue(self.build(Kind::Priority))
    }

    /// A queue whose items become visible at a given time
    /// (`buildDelayQueue`).
    pub fn build_delay_queue(self) -> DistributedDelayQueue<T> {
        DistributedDelayQueue(self.build(Kind::Delay))
    }
}

struct QueueInner<T> {
    fw: Framework,
    consumer: Option<Arc<dyn QueueConsumer<T>>>,
    serializer: Arc<dyn QueueSerializer<T>>,
    path: String,
    lock_path: Option<String>,
    max_items: Option<usize>,
    error_mode: ErrorMode,
    min_items_before_refresh: usize,
    kind: Kind,
    closed: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The engine shared by the four framed queues.
struct Queue<T> {
    inner: Arc<QueueInner<T>>,
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        // The consumer loop ends after the item in hand.
        self.inner.closed.send_replace(true);
    }
}

/// Waits `w`, at most `delay` (for ever when `None`), or until closed;
/// false when closed.
async fn wait_watch(
    w: &mut OneshotWatcher,
    delay: Option<Duration>,
    closed: &mut watch::Receiver<bool>,
) -> bool {
    let timer = async {
        match delay {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = w => true,
        () = timer => true,
        _ = closed.wait_for(|c| *c) => false,
    }
}

impl<T: Send + 'static> Queue<T> {
    async fn start(&self) -> Result<()> {
        let i = &self.inner;
        for p in std::iter::once(&i.path).chain(i.lock_path.as_ref()) {
            match i.fw.create().creating_parent_containers_if_needed().for_path(p, b"").await {
                Ok(_) | Err(Error::Zk(ZkError::NodeExists)) => {}
                Err(e) => return Err(e),
            }
        }
        if i.consumer.is_some() {
            let inner = i.clone();
            let task = tokio::spawn(async move { inner.run().await });
            if let Ok(mut t) = i.task.lock() {
                *t = Some(task);
            }
        }
        Ok(())
    }

    async fn close(&self) {
        self.inner.closed.send_replace(true);
        let task = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    async fn put_named(&self, name_suffix: &str, items: &[&T], wait: Option<Duration>) -> Result<bool> {
        let i = &self.inner;
        if !i.block_if_maxed(wait.map(|w| Instant::now() + w)).await? {
            return Ok(false);
        }
        let bytes: Vec<Vec<u8>> = items.iter().map(|t| i.serializer.serialize(t)).collect();
        let path = format!("{}/{QUEUE_ITEM_NAME}{name_suffix}", i.path);
        i.fw.create()
            .with_mode(CreateMode::PersistentSequential)
            .for_path(&path, &frame_items(&bytes))
            .await?;
        Ok(true)
    }
}

impl<T: Send + 'static> QueueInner<T> {
    async fn block_if_maxed(&self, deadline: Option<Instant>) -> Result<bool> {
        let Some(max) = self.max_items else { return Ok(true) };
        loop {
            let (kids, w) = self.fw.with_retry(|c| c.get_children_watch(&self.path)).await?;
            if kids.len() < max {
                return Ok(true);
            }
            if !watch_fired_by(w, deadline).await {
                return Ok(false);
            }
        }
    }

    async fn run(self: Arc<Self>) {
        let mut closed = self.closed.subscribe();
        while !*closed.borrow() {
            let (mut kids, mut w) = match self.fw.with_retry(|c| c.get_children_watch(&self.path)).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(path = %self.path, error = %e, "queue: cannot list items; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = closed.wait_for(|c| *c) => return,
                    }
                    continue;
                }
            };
            kids.retain(|k| k.starts_with(QUEUE_ITEM_NAME));
            self.kind.sort(&mut kids);
            let Some(first) = kids.first() else {
                if !wait_watch(&mut w, None, &mut closed).await {
                    return;
                }
                continue;
            };
            let delay = self.kind.delay_ms(first);
            if delay > 0 {
                if !wait_watch(&mut w, Some(Duration::from_millis(delay as u64)), &mut closed).await {
                    return;
                }
                continue;
            }
            let mut watch_fired = false;
            for (n, item) in kids.iter().enumerate() {
                if *closed.borrow() {
                    return;
                }
                if self.kind.refresh_on_watch() && n >= self.min_items_before_refresh {
                    watch_fired |= (&mut w).now_or_never().is_some();
                    if watch_fired {
                        break;
                    }
                }
                if self.kind.delay_ms(item) > 0 {
                    continue;
                }
                let r = if self.lock_path.is_some() {
                    self.process_with_lock_safety(item, true).await
                } else {
                    self.process_normally(item, true).await
                };
                if let Err(e) = r {
                    tracing::warn!(path = %self.path, %item, error = %e, "queue: item not processed");
                }
            }
        }
    }

    async fn consume(&self, item: &str, bytes: &[u8]) -> bool {
        let Some(consumer) = &self.consumer else { return true };
        let items = match unframe_items(bytes) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(path = %self.path, %item, error = %e, "corrupted queue item");
                return true;
            }
        };
        let mut ok = true;
        for raw in items {
            let r = match self.serializer.deserialize(&raw) {
                Ok(t) => consumer.consume_message(t).await,
                Err(e) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
            };
            if let Err(e) = r {
                tracing::warn!(path = %self.path, %item, error = %e, "queue consumer failed");
                if self.error_mode == ErrorMode::Requeue {
                    ok = false;
                    break;
                }
            }
        }
        ok
    }

    /// At most once: delete (at the version read), then consume.
    async fn process_normally(&self, item: &str, consume: bool) -> Result<bool> {
        let path = format!("{}/{item}", self.path);
        let (bytes, version) = match self.fw.get_data(&path).await {
            Ok((b, s)) => (b, s.version),
            Err(Error::Zk(ZkError::NoNode)) => return Ok(false),
            Err(e) => return Err(e),
        };
        match self.fw.delete().with_version(version).for_path(&path).await {
            Ok(()) => {}
            Err(Error::Zk(ZkError::NoNode | ZkError::BadVersion)) => return Ok(false),
            Err(e) => return Err(e),
        }
        if consume {
            self.consume(item, &bytes).await;
        }
        Ok(true)
    }

    /// At least once: lock the item, consume, then delete (or requeue).
    async fn process_with_lock_safety(&self, item: &str, consume: bool) -> Result<bool> {
        let Some(lock_path) = &self.lock_path else { return self.process_normally(item, consume).await };
        let lock = format!("{lock_path}/{item}");
        match self.fw.create().with_mode(CreateMode::Ephemeral).for_path(&lock, b"").await {
            Ok(_) => {}
            Err(Error::Zk(ZkError::NodeExists | ZkError::NoNode)) => return Ok(false),
            Err(e) => return Err(e),
        }
        let path = format!("{}/{item}", self.path);
        let r = async {
            let bytes = match self.fw.get_data(&path).await {
                Ok((b, _)) => b,
                Err(Error::Zk(ZkError::NoNode)) => return Ok(false),
                Err(e) => return Err(e),
            };
            let requeue = consume && !self.consume(item, &bytes).await;
            let r = if requeue {
                let again = format!("{}/{}", self.path, self.requeue_name(item));
                self.fw
                    .transaction(&[
                        Op::delete(path.clone(), None),
                        Op::create(
                            again,
                            bytes.clone(),
                            CreateOptions::new(CreateMode::PersistentSequential)
                                .with_acl(self.fw.default_acl()),
                        ),
                    ])
                    .await
                    .map(drop)
            } else {
                self.fw.delete().for_path(&path).await
            };
            match r {
                Ok(()) => Ok(true),
                Err(Error::Zk(ZkError::NoNode | ZkError::BadVersion)) => Ok(false),
                Err(e) => Err(e),
            }
        }
        .await;
        self.fw.guaranteed_delete(lock);
        r
    }

    /// The name a requeued item gets (an id queue keeps the id).
    fn requeue_name(&self, item: &str) -> String {
        match self.kind {
            Kind::Id => format!("{QUEUE_ITEM_NAME}{SEPARATOR}{}{SEPARATOR}", parse_id(item).0),
            _ => QUEUE_ITEM_NAME.to_string(),
        }
    }
}

macro_rules! queue_common {
    ($name:ident) => {
        impl<T: Send + 'static> $name<T> {
            /// Creates the queue (and lock) paths if absent and, with a
            /// consumer, starts consuming.
            ///
            /// # Errors
            /// Client errors after retries.
            pub async fn start(&self) -> Result<()> {
                self.0.start().await
            }

            /// Stops consuming, after the item in hand. Dropping the queue
            /// does the same without waiting.
            pub async fn close(&self) {
                self.0.close().await;
            }

            /// The item nodes now in the queue.
            ///
            /// # Errors
            /// Client errors after retries.
            pub async fn item_nodes(&self) -> Result<Vec<String>> {
                let i = &self.0.inner;
                let mut kids = i.fw.get_children(&i.path).await?;
                kids.retain(|k| k.starts_with(QUEUE_ITEM_NAME));
                i.kind.sort(&mut kids);
                Ok(kids)
            }
        }

        impl<T> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).field("path", &self.0.inner.path).finish_non_exhaustive()
            }
        }
    };
}

/// A FIFO queue (Curator's `DistributedQueue`); see the [module](self)
/// for delivery guarantees and [`QueueBuilder`] for an example.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::queue::{QueueBuilder, StringSerializer};
/// let q = QueueBuilder::new(&fw, None, StringSerializer, "/queues/out").max_items(1000).build_queue();
/// q.start().await?;
/// let (a, b) = ("first".to_string(), "second".to_string());
/// q.put_multi(&[&a, &b]).await?; // one node, consumed in order
/// # Ok(()) }
/// ```
pub struct DistributedQueue<T>(Queue<T>);
queue_common!(DistributedQueue);

impl<T: Send + 'static> DistributedQueue<T> {
    /// Adds an item (waits while a bounded queue is full).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn put(&self, item: &T) -> Result<()> {
        self.0.put_named("", &[item], None).await.map(drop)
    }

    /// Adds an item, waiting at most `wait` while the queue is full;
    /// whether it was added.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn put_timeout(&self, item: &T, wait: Duration) -> Result<bool> {
        self.0.put_named("", &[item], Some(wait)).await
    }

    /// Adds several items in one node: consumed in order, by one consumer
    /// (Curator's `putMulti`).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn put_multi(&self, items: &[&T]) -> Result<()> {
        self.0.put_named("", items, None).await.map(drop)
    }
}

/// A queue whose items carry an id (Curator's `DistributedIdQueue`): an
/// item can be removed by id before it is consumed.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::queue::{QueueBuilder, StringSerializer};
///
/// let q = QueueBuilder::new(&fw, None, StringSerializer, "/queues/mail").build_id_queue();
/// q.start().await?;
/// q.put(&"hello".to_string(), "msg-1").await?;
/// assert_eq!(q.remove("msg-1").await?, 1);
/// # Ok(()) }
/// ```
pub struct DistributedIdQueue<T>(Queue<T>);
queue_common!(DistributedIdQueue);

impl<T: Send + 'static> DistributedIdQueue<T> {
    /// Adds an item with `id` (`/` and `|` in it become `_`).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn put(&self, item: &T, id: &str) -> Result<()> {
        self.0.put_named(&format!("{SEPARATOR}{}{SEPARATOR}", fix_id(id)), &[item], None).await.map(drop)
    }

    /// Removes the items with `id` not yet taken; how many.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn remove(&self, id: &str) -> Result<usize> {
        let i = &self.0.inner;
        let mut n = 0;
        for item in i.fw.get_children(&i.path).await? {
            if parse_id(&item).0 == id {
                let removed = if i.lock_path.is_some() {
                    i.process_with_lock_safety(&item, false).await?
                } else {
                    i.process_normally(&item, false).await?
                };
                n += usize::from(removed);
            }
        }
        Ok(n)
    }

    /// The ids of the items now in the queue, in order.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn ids(&self) -> Result<Vec<String>> {
        Ok(self.item_nodes().await?.iter().map(|n| parse_id(n).0).collect())
    }
}

/// A priority queue (Curator's `DistributedPriorityQueue`): lower
/// priorities come out first.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::queue::{QueueBuilder, StringSerializer};
///
/// let q = QueueBuilder::new(&fw, None, StringSerializer, "/queues/tasks").build_priority_queue(0);
/// q.start().await?;
/// q.put(&"later".to_string(), 10).await?;
/// q.put(&"urgent".to_string(), -5).await?;
/// # Ok(()) }
/// ```
pub struct DistributedPriorityQueue<T>(Queue<T>);
queue_common!(DistributedPriorityQueue);

impl<T: Send + 'static> DistributedPriorityQueue<T> {
    /// Adds an item at `priority`.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn put(&self, item: &T, priority: i32) -> Result<()> {
        self.0.put_named(&priority_to_string(priority), &[item], None).await.map(drop)
    }

    /// Adds several items in one node at `priority`.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn put_multi(&self, items: &[&T], priority: i32) -> Result<()> {
        self.0.put_named(&priority_to_string(priority), items, None).await.map(drop)
    }
}

/// A delay queue (Curator's `DistributedDelayQueue`): an item is consumed
/// no earlier than its time (milliseconds since the Unix epoch, by the
/// consumer's clock).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::{Duration, SystemTime};
/// use zk_recipes::queue::{QueueBuilder, StringSerializer};
///
/// let q = QueueBuilder::new(&fw, None, StringSerializer, "/queues/reminders").build_delay_queue();
/// q.start().await?;
/// q.put_after(&"ping".to_string(), Duration::from_secs(60)).await?;
/// # Ok(()) }
/// ```
pub struct DistributedDelayQueue<T>(Queue<T>);
queue_common!(DistributedDelayQueue);

impl<T: Send + 'static> DistributedDelayQueue<T> {
    /// Adds an item to be consumed at `delay_until_epoch_ms`.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn put(&self, item: &T, delay_until_epoch_ms: i64) -> Result<()> {
        let name = format!("{SEPARATOR}{:08X}{SEPARATOR}", delay_until_epoch_ms);
        self.0.put_named(&name, &[item], None).await.map(drop)
    }

    /// Adds an item to be consumed `delay` from now.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn put_after(&self, item: &T, delay: Duration) -> Result<()> {
        self.put(item, now_ms() + delay.as_millis() as i64).await
    }
}

const SIMPLE_PREFIX: &str = "qn-";

/// The classic ZooKeeper queue recipe (Curator's
/// `SimpleDistributedQueue`): `qn-<seq>` nodes holding raw bytes;
/// consumers race to delete the first.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::queue::SimpleDistributedQueue;
///
/// let q = SimpleDistributedQueue::new(&fw, "/queues/simple");
/// q.offer(b"job").await?;
/// assert_eq!(q.poll(Duration::from_secs(1)).await?, Some(b"job".to_vec()));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SimpleDistributedQueue {
    fw: Framework,
    path: String,
}

impl SimpleDistributedQueue {
    /// A queue at `path`.
    pub fn new(fw: &Framework, path: &str) -> Self {
        SimpleDistributedQueue { fw: fw.clone(), path: path.trim_end_matches('/').to_string() }
    }

    /// Adds an item (the path and parents are created as containers).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn offer(&self, data: &[u8]) -> Result<()> {
        self.fw
            .create()
            .creating_parent_containers_if_needed()
            .with_mode(CreateMode::PersistentSequential)
            .for_path(&format!("{}/{SIMPLE_PREFIX}", self.path), data)
            .await
            .map(drop)
    }

    /// The head, removed or not; `None` when empty. With `watch`, also a
    /// watch on the children.
    async fn element(&self, remove: bool, watch: bool) -> Result<(Option<Vec<u8>>, Option<OneshotWatcher>)> {
        let (mut kids, w) = if watch {
            match self.fw.with_retry(|c| c.get_children_watch(&self.path)).await {
                Ok((k, w)) => (k, Some(w)),
                Err(Error::Zk(ZkError::NoNode)) => {
                    self.fw.ensure_path(&self.path).await?;
                    return Ok((None, None));
                }
                Err(e) => return Err(e),
            }
        } else {
            match self.fw.get_children(&self.path).await {
                Ok(k) => (k, None),
                Err(Error::Zk(ZkError::NoNode)) => return Ok((None, None)),
                Err(e) => return Err(e),
            }
        };
        kids.retain(|k| k.starts_with(SIMPLE_PREFIX));
        kids.sort();
        for k in kids {
            let p = format!("{}/{k}", self.path);
            let data = match self.fw.get_data(&p).await {
                Ok((d, _)) => d.to_vec(),
                Err(Error::Zk(ZkError::NoNode)) => continue,
                Err(e) => return Err(e),
            };
            if remove {
                match self.fw.delete().for_path(&p).await {
                    Ok(()) => {}
                    // Another consumer took it first.
                    Err(Error::Zk(ZkError::NoNode)) => continue,
                    Err(e) => return Err(e),
                }
            }
            return Ok((Some(data), w));
        }
        Ok((None, w))
    }

    /// The head without removing it; `None` when empty.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn peek(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.element(false, false).await?.0)
    }

    /// Removes and returns the head without waiting; `None` when empty.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn remove(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.element(true, false).await?.0)
    }

    /// Removes and returns the head, waiting for one.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn take(&self) -> Result<Vec<u8>> {
        self.poll_until(None).await?.ok_or(Error::Closed)
    }

    /// Removes and returns the head, waiting at most `timeout`.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn poll(&self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        self.poll_until(Some(Instant::now() + timeout)).await
    }

    async fn poll_until(&self, deadline: Option<Instant>) -> Result<Option<Vec<u8>>> {
        loop {
            let (item, w) = self.element(true, true).await?;
            if item.is_some() {
                return Ok(item);
            }
            let Some(w) = w else { continue };
            if !watch_fired_by(w, deadline).await {
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_curators() {
        let b = frame_items(&[b"ab".to_vec(), vec![]]);
        assert_eq!(b, [0, 1, 0, 1, 1, 0, 0, 0, 2, b'a', b'b', 1, 0, 0, 0, 0, 2]);
        assert_eq!(unframe_items(&b).unwrap(), vec![b"ab".to_vec(), vec![]]);
        assert!(unframe_items(&b[..5]).is_err());
        assert!(unframe_items(b"junk").is_err());
    }

    #[test]
    fn names_are_curators() {
        assert_eq!(priority_to_string(5), "100000005");
        assert_eq!(priority_to_string(-1), "0FFFFFFFF");
        assert_eq!(parse_id("queue-|a_b|0000000003"), ("a_b".into(), "queue-0000000003".into()));
        assert_eq!(fix_id("a/b|c"), "a_b_c");
        assert_eq!(parse_epoch("queue-|18C2F0A1B2C|0000000001"), 0x18C2F0A1B2C);
        assert_eq!(parse_epoch("queue-0000000001"), 0);
        let mut kids = vec!["queue-|b|0000000001".to_string(), "queue-|a|0000000000".to_string()];
        Kind::Id.sort(&mut kids);
        assert_eq!(kids[0], "queue-|a|0000000000");
    }
}
