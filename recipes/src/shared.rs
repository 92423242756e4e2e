//! Curator's `SharedValue` and `SharedCount`: a value in one persistent
//! node that every participant sees, changed by versioned compare-and-set.
//!
//! Each participant keeps the last value it read (with the node's mzxid
//! and version), re-reads it when its data watch fires and after every
//! reconnect, and reports changes on [`SharedValue::events`]. A value is
//! only replaced by one read at a higher mzxid, so a slow read never
//! rolls the local copy back.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use zk_client::{Error as ZkError, EventType, OneshotWatcher};

use crate::error::{Error, Result};
use crate::framework::Framework;
use crate::state::ConnectionState;

/// A value with the node version and mzxid it was read at: what
/// [`SharedValue::try_set_value`] compares against.
///
/// ```no_run
/// # async fn f(count: zk_recipes::shared::SharedCount) -> zk_recipes::Result<()> {
/// let seen = count.versioned_value();
/// let updated = count.try_set_count(&seen, seen.value * 2).await?;
/// # let _ = updated; Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedValue<T> {
    /// The node's mzxid when this value was read (-1 before the first read).
    pub zxid: i64,
    /// The node's data version (-1 before the first read).
    pub version: i32,
    /// The value.
    pub value: T,
}

/// A change seen by a shared value or count.
///
/// ```no_run
/// # async fn f(count: zk_recipes::shared::SharedCount) {
/// use futures::StreamExt;
/// use zk_recipes::shared::SharedValueEvent;
/// let mut events = count.events();
/// while let Some(ev) = events.next().await {
///     if let SharedValueEvent::Changed(n) = ev { println!("now {n}"); }
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SharedValueEvent<T> {
    /// The value changed (Curator's `valueHasChanged` / `countHasChanged`).
    Changed(T),
    /// The framework's connection state changed (Curator's `stateChanged`).
    State(ConnectionState),
}

/// The events of a [`SharedValue`] or [`SharedCount`], as a stream.
///
/// ```no_run
/// # async fn f(v: zk_recipes::shared::SharedValue) {
/// use futures::StreamExt;
/// let mut events = v.events();
/// let _next = events.next().await;
/// # }
/// ```
pub struct SharedValueEvents<T> {
    rx: mpsc::UnboundedReceiver<SharedValueEvent<Vec<u8>>>,
    decode: fn(&[u8]) -> Option<T>,
}

impl<T> std::fmt::Debug for SharedValueEvents<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedValueEvents").finish_non_exhaustive()
    }
}

impl<T> Stream for SharedValueEvents<T> {
    type Item = SharedValueEvent<T>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SharedValueEvent<T>>> {
        loop {
            return match self.rx.poll_recv(cx) {
                Poll::Ready(Some(SharedValueEvent::Changed(v))) => match (self.decode)(&v) {
                    Some(t) => Poll::Ready(Some(SharedValueEvent::Changed(t))),
                    // A value this type cannot read (another writer's bytes).
                    None => continue,
                },
                Poll::Ready(Some(SharedValueEvent::State(s))) => {
                    Poll::Ready(Some(SharedValueEvent::State(s)))
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

#[derive(Debug)]
struct Inner {
    fw: Framework,
    path: String,
    seed: Vec<u8>,
    current: watch::Sender<VersionedValue<Vec<u8>>>,
    listeners: Mutex<Vec<mpsc::UnboundedSender<SharedValueEvent<Vec<u8>>>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    /// Takes a read at (`zxid`, `version`) if it is newer than what we
    /// have; whether it was.
    fn update(&self, zxid: i64, version: i32, value: &[u8]) -> bool {
        self.current.send_if_modified(|cur| {
            if cur.zxid >= zxid {
                return false;
            }
            *cur = VersionedValue { zxid, version, value: value.to_vec() };
            true
        })
    }

    fn notify(&self, ev: &SharedValueEvent<Vec<u8>>) {
        if let Ok(mut l) = self.listeners.lock() {
            l.retain(|tx| tx.send(ev.clone()).is_ok());
        }
    }

    /// Reads the value and leaves a watch; on NoNode, an exists watch so
    /// that a re-created node is read again.
    /// `notify`: report a change as an event (not for the first read).
    async fn read(&self, notify: bool) -> Result<Option<OneshotWatcher>> {
        loop {
            match self.fw.with_retry(|c| c.get_data_watch(&self.path)).await {
                Ok((data, stat, w)) => {
                    if self.update(stat.mzxid, stat.version, &data) && notify {
                        self.notify(&SharedValueEvent::Changed(data.to_vec()));
                    }
                    return Ok(Some(w));
                }
                Err(Error::Zk(ZkError::NoNode)) => {
                    match self.fw.with_retry(|c| c.exists_watch(&self.path)).await? {
                        (None, w) => return Ok(Some(w)),
                        (Some(_), _) => continue,
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn run(self: Arc<Self>, mut watch: Option<OneshotWatcher>) {
        let mut states = self.fw.connection_state_events();
        loop {
            let fired = async {
                match watch.as_mut() {
                    Some(w) => w.await,
                    None => std::future::pending().await,
                }
            };
            let reread = tokio::select! {
                ev = fired => {
                    watch = None;
                    ev.event_type != EventType::None
                }
                st = states.next() => {
                    let Some(st) = st else { return };
                    self.notify(&SharedValueEvent::State(st));
                    st.is_connected()
                }
            };
            if reread {
                match self.read(true).await {
                    Ok(w) => watch = w,
                    Err(e) => {
                        tracing::debug!(path = %self.path, error = %e, "shared value read failed; next reconnect reads again")
                    }
                }
            }
        }
    }
}

/// A shared byte value (Curator's `SharedValue`): one persistent node,
/// created with the seed value at [`SharedValue::start`] if absent.
///
/// Dropping it (or [`SharedValue::close`]) stops following the node.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::shared::SharedValue;
///
/// let v = SharedValue::new(&fw, "/config/mode", b"normal");
/// v.start().await?;
/// let seen = v.versioned_value();
/// if !v.try_set_value(&seen, b"maintenance").await? {
///     println!("someone else changed it first: now {:?}", v.value());
/// }
/// v.close();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SharedValue {
    inner: Arc<Inner>,
}

impl Drop for SharedValue {
    fn drop(&mut self) {
        self.close();
    }
}

impl SharedValue {
    /// A shared value at `path`, `seed` being the value the node is
    /// created with when absent.
    pub fn new(fw: &Framework, path: &str, seed: &[u8]) -> Self {
        let (current, _) = watch::channel(VersionedValue { zxid: -1, version: -1, value: seed.to_vec() });
        SharedValue {
            inner: Arc::new(Inner {
                fw: fw.clone(),
                path: path.to_string(),
                seed: seed.to_vec(),
                current,
                listeners: Mutex::new(Vec::new()),
                task: Mutex::new(None),
            }),
        }
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Creates the node with the seed if absent (parents as containers),
    /// reads the value and follows it.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn start(&self) -> Result<()> {
        let i = &self.inner;
        match i.fw.create().creating_parent_containers_if_needed().for_path(&i.path, &i.seed).await {
            Ok(_) | Err(Error::Zk(ZkError::NodeExists)) => {}
            Err(e) => return Err(e),
        }
        let w = i.read(false).await?;
        let task = tokio::spawn(i.clone().run(w));
        if let Ok(mut t) = i.task.lock() {
            if let Some(old) = t.replace(task) {
                old.abort();
            }
        }
        Ok(())
    }

    /// Stops following the node (no further events).
    pub fn close(&self) {
        if let Some(t) = self.inner.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
        if let Ok(mut l) = self.inner.listeners.lock() {
            l.clear();
        }
    }

    /// The last value read.
    pub fn value(&self) -> Vec<u8> {
        self.inner.current.borrow().value.clone()
    }

    /// The last value read, with its version: the argument of
    /// [`SharedValue::try_set_value`].
    pub fn versioned_value(&self) -> VersionedValue<Vec<u8>> {
        self.inner.current.borrow().clone()
    }

    /// A receiver of the current value, for waiting on changes.
    pub fn subscribe(&self) -> watch::Receiver<VersionedValue<Vec<u8>>> {
        self.inner.current.subscribe()
    }

    /// Every change and connection state from now on.
    pub fn events(&self) -> SharedValueEvents<Vec<u8>> {
        self.events_as(|b| Some(b.to_vec()))
    }

    fn events_as<T>(&self, decode: fn(&[u8]) -> Option<T>) -> SharedValueEvents<T> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut l) = self.inner.listeners.lock() {
            l.push(tx);
        }
        SharedValueEvents { rx, decode }
    }

    /// Sets the value unconditionally.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn set_value(&self, value: &[u8]) -> Result<()> {
        let stat = self.inner.fw.set_data(&self.inner.path, value, None).await?;
        self.inner.update(stat.mzxid, stat.version, value);
        Ok(())
    }

    /// Sets the value only if the node is still as `previous` (a value
    /// from [`SharedValue::versioned_value`]); `false` when it changed
    /// since (the local copy is then refreshed).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `previous` was never read from the
    /// node (before [`SharedValue::start`]); client errors after retries.
    pub async fn try_set_value(&self, previous: &VersionedValue<Vec<u8>>, value: &[u8]) -> Result<bool> {
        let i = &self.inner;
        {
            let cur = i.current.borrow();
            if previous.zxid != cur.zxid || previous.value != cur.value {
                return Ok(false);
            }
        }
        if previous.version == -1 {
            return Err(Error::InvalidArgument("the previous value was never read from the node"));
        }
        match i.fw.set_data(&i.path, value, Some(previous.version)).await {
            Ok(stat) => {
                i.update(stat.mzxid, stat.version, value);
                Ok(true)
            }
            Err(Error::Zk(ZkError::BadVersion)) => {
                let (data, stat) = i.fw.get_data(&i.path).await?;
                if i.update(stat.mzxid, stat.version, &data) {
                    i.notify(&SharedValueEvent::Changed(data.to_vec()));
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// A shared integer (Curator's `SharedCount`): a [`SharedValue`] holding a
/// 4-byte big-endian `i32`, as Curator and kazoo's
/// `Counter(support_curator=True)` store it.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::shared::SharedCount;
///
/// let workers = SharedCount::new(&fw, "/config/workers", 4);
/// workers.start().await?;
/// loop {
///     let seen = workers.versioned_value();
///     if workers.try_set_count(&seen, seen.value + 1).await? {
///         break;
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SharedCount {
    value: SharedValue,
}

/// Decodes a count (`None` unless exactly four bytes).
pub(crate) fn decode_count(b: &[u8]) -> Option<i32> {
    <[u8; 4]>::try_from(b).ok().map(i32::from_be_bytes)
}

impl SharedCount {
    /// A shared count at `path`, created with `seed` when absent.
    pub fn new(fw: &Framework, path: &str, seed: i32) -> Self {
        SharedCount { value: SharedValue::new(fw, path, &seed.to_be_bytes()) }
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        self.value.path()
    }

    /// As [`SharedValue::start`].
    ///
    /// # Errors
    /// As [`SharedValue::start`].
    pub async fn start(&self) -> Result<()> {
        self.value.start().await
    }

    /// As [`SharedValue::close`].
    pub fn close(&self) {
        self.value.close();
    }

    /// The last count read (0 if the node holds something else than four
    /// bytes).
    pub fn count(&self) -> i32 {
        decode_count(&self.value.value()).unwrap_or(0)
    }

    /// The last count read, with its version.
    pub fn versioned_value(&self) -> VersionedValue<i32> {
        let v = self.value.versioned_value();
        VersionedValue { zxid: v.zxid, version: v.version, value: decode_count(&v.value).unwrap_or(0) }
    }

    /// A receiver of the current raw value (four bytes, big-endian).
    pub fn subscribe(&self) -> watch::Receiver<VersionedValue<Vec<u8>>> {
        self.value.subscribe()
    }

    /// Every change of the count and connection state from now on.
    pub fn events(&self) -> SharedValueEvents<i32> {
        self.value.events_as(decode_count)
    }

    /// Sets the count unconditionally.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn set_count(&self, count: i32) -> Result<()> {
        self.value.set_value(&count.to_be_bytes()).await
    }

    /// Sets the count only if it is still as `previous`; whether it was.
    ///
    /// # Errors
    /// As [`SharedValue::try_set_value`].
    pub async fn try_set_count(&self, previous: &VersionedValue<i32>, count: i32) -> Result<bool> {
        let prev = VersionedValue {
            zxid: previous.zxid,
            version: previous.version,
            value: previous.value.to_be_bytes().to_vec(),
        };
        self.value.try_set_value(&prev, &count.to_be_bytes()).await
    }
}
