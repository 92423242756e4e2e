//! Curator's `InterProcessMutex`: `<path>/_c_<uuid>-lock-<seq>` ephemeral
//! sequential nodes; the holder is the first by sequence; each waiter
//! watches only its predecessor (getData), so a release wakes one waiter.
//! The same type, with other lock names and drivers, is each side of an
//! [`InterProcessReadWriteLock`](super::InterProcessReadWriteLock).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use zk_client::{Error as ZkError, EventType, Op};

use crate::error::{Error, Result};
use crate::framework::{DEFAULT_DATA, Framework};
use crate::locks::InterProcessLock;
use crate::locks::internals::{Driver, Held, HeldCell, LockInternals};

const LOCK_NAME: &str = "lock-";

/// The data a revoker writes into a holder's node (Curator's
/// `RevocationSpec.REVOKE_MESSAGE`).
pub(crate) const REVOKE_MESSAGE: &[u8] = b"__REVOKE__";

/// Proof of holding a lock, for fencing writes: the lock node's path and
/// czxid. [`FencingToken::check_op`] fails a transaction if the lock node is
/// gone (the lock was lost).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework, lock: zk_recipes::locks::InterProcessMutex) -> zk_recipes::Result<()> {
/// use zk_recipes::zk_client::Op;
/// let token = lock.fencing_token().expect("held");
/// // The write happens only if the lock node still exists.
/// fw.transaction(&[token.check_op(), Op::set_data("/ledger", &b"entry"[..], None)]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencingToken {
    /// The lock node's path.
    pub path: String,
    /// The lock node's czxid: grows with every new holder.
    pub czxid: i64,
}

impl FencingToken {
    /// A `check` op that fails unless the lock node still exists.
    pub fn check_op(&self) -> Op {
        Op::check(self.path.clone(), Some(0))
    }
}

/// A distributed, reentrant, fair mutex, compatible with Curator's
/// `InterProcessMutex` on the same path.
///
/// Reentrancy belongs to this value (its owner), not to a thread: acquire
/// it again through the same value and it counts; release as many times.
/// Dropping the value while it holds the lock releases it in the
/// background.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::locks::InterProcessMutex;
/// let lock = InterProcessMutex::new(&fw, "/locks/orders");
/// lock.acquire().await?;
/// // ... critical section ...
/// lock.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct InterProcessMutex {
    internals: LockInternals,
    data: Vec<u8>,
    held: HeldCell,
    revocable: Mutex<Option<mpsc::UnboundedSender<()>>>,
}

impl Drop for InterProcessMutex {
    fn drop(&mut self) {
        // A held lock whose owner goes away is released, not leaked until
        // the session ends.
        let node = self.held.lock().ok().and_then(|mut h| h.take()).map(|h| h.node);
        if let Some(n) = node {
            self.internals.fw.guaranteed_delete(n);
        }
    }
}

impl InterProcessMutex {
    /// A mutex on `path` (the lock's parent node).
    pub fn new(fw: &Framework, path: &str) -> Self {
        Self::with_data(fw, path, DEFAULT_DATA)
    }

    /// A mutex whose lock nodes carry `data` (LeaderSelector stores the
    /// participant id there).
    pub fn with_data(fw: &Framework, path: &str, data: &[u8]) -> Self {
        Self::with_driver(
            fw,
            path,
            LOCK_NAME,
            &[LOCK_NAME],
            Driver::Standard { max_leases: 1 },
            data,
            Arc::default(),
        )
    }

    pub(crate) fn with_driver(
        fw: &Framework,
        path: &str,
        lock_name: &'static str,
        sort_names: &'static [&'static str],
        driver: Driver,
        data: &[u8],
        held: HeldCell,
    ) -> Self {
        InterProcessMutex {
            internals: LockInternals {
                fw: fw.clone(),
                base: path.trim_end_matches('/').to_string(),
                lock_name,
                sort_names,
                driver,
            },
            data: data.to_vec(),
            held,
            revocable: Mutex::new(None),
        }
    }

    /// The lock path.
    pub fn path(&self) -> &str {
        &self.internals.base
    }

    /// Waits until the lock is held.
    ///
    /// # Errors
    /// Client errors after retries; the lock node is removed.
    pub async fn acquire(&self) -> Result<()> {
        if self.acquire_until(None).await? {
            Ok(())
        } else {
            Err(Error::Lost("acquire ended without the lock"))
        }
    }

    /// Waits at most `timeout`; whether the lock is held. A zero timeout
    /// still takes a free lock.
    ///
    /// # Errors
    /// As [`InterProcessMutex::acquire`].
    pub async fn try_acquire(&self, timeout: Duration) -> Result<bool> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    fn reenter(&self) -> bool {
        if let Ok(mut h) = self.held.lock() {
            if let Some(held) = h.as_mut() {
                held.count += 1;
                return true;
            }
        }
        false
    }

    pub(crate) async fn acquire_until(&self, deadline: Option<Instant>) -> Result<bool> {
        if self.reenter() {
            return Ok(true);
        }
        let revoke = self.revocable.lock().ok().and_then(|r| r.clone());
        // Curator writes no data into a revocable lock's node: the revoker's
        // write is then the node's first change.
        let data: &[u8] = if revoke.is_some() { b"" } else { &self.data };
        let Some((node, czxid)) = self.internals.attempt(deadline, data).await? else { return Ok(false) };
        if let Some(tx) = revoke {
            self.watch_for_revocation(node.clone(), tx);
        }
        if let Ok(mut h) = self.held.lock() {
            *h = Some(Held { node, czxid, count: 1 });
        }
        Ok(true)
    }

    /// Releases one level of ownership; the node is deleted at the last.
    /// A delete that fails on a lost connection goes on in the background.
    ///
    /// # Errors
    /// [`Error::NotHeld`] when not held.
    pub async fn release(&self) -> Result<()> {
        let Some(node) = self.release_level()? else { return Ok(()) };
        self.internals.fw.delete_guaranteed_now(node).await;
        Ok(())
    }

    /// One level less; the node to delete when that was the last.
    fn release_level(&self) -> Result<Option<String>> {
        let mut h = self.held.lock().map_err(|_| Error::NotHeld)?;
        let Some(held) = h.as_mut() else { return Err(Error::NotHeld) };
        held.count -= 1;
        if held.count > 0 {
            return Ok(None);
        }
        Ok(h.take().map(|x| x.node))
    }

    /// Releases one level without waiting; the node is deleted in the
    /// background (guaranteed). Does nothing when not held.
    pub fn release_in_background(&self) {
        if let Ok(Some(node)) = self.release_level() {
            self.internals.fw.guaranteed_delete(node);
        }
    }

    /// Whether this owner holds the lock (as far as it knows: see
    /// [`InterProcessMutex::lost`]).
    pub fn is_acquired(&self) -> bool {
        self.held.lock().map(|h| h.is_some()).unwrap_or(false)
    }

    /// The fencing token while held.
    pub fn fencing_token(&self) -> Option<FencingToken> {
        let h = self.held.lock().ok()?;
        h.as_ref().map(|h| FencingToken { path: h.node.clone(), czxid: h.czxid })
    }

    /// Completes when the connection enters an error state of the
    /// framework's [`ConnectionStateErrorPolicy`](crate::ConnectionStateErrorPolicy)
    /// (SUSPENDED or LOST by default; only LOST when session-based), or the
    /// lock node is deleted, while held: from then on the lock may be held
    /// by another process.
    pub async fn lost(&self) {
        let Some(token) = self.fencing_token() else { return };
        let fw = &self.internals.fw;
        // Every change from here on, however short.
        let mut states = fw.state_follower();
        let gone = async {
            let Ok(c) = fw.client() else { return };
            match c.exists_watch(&token.path).await {
                Ok((None, _)) | Err(_) => {}
                Ok((Some(_), w)) => {
                    w.await;
                }
            }
        };
        tokio::select! {
            _ = states.wait_for(|s| fw.is_error_state(s)) => {}
            _ = gone => {}
        }
    }

    /// The lock nodes in order (first = holder); for a side of a
    /// read-write lock, only that side's nodes.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        let name = self.internals.lock_name;
        let mut kids = self.internals.sorted_children().await?;
        kids.retain(|k| k.contains(name));
        Ok(kids)
    }

    /// Makes this lock revocable (Curator's `makeRevocable`): from the
    /// next acquisition on, a [`Revoker`] writing into the holder's node
    /// yields an item on the returned stream. Revocation is cooperative:
    /// the holder decides to release.
    ///
    /// ```no_run
    /// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
    /// use futures::StreamExt;
    /// use zk_recipes::locks::{InterProcessMutex, Revoker};
    ///
    /// let lock = InterProcessMutex::new(&fw, "/locks/batch");
    /// let mut requests = lock.make_revocable();
    /// lock.acquire().await?;
    /// // Elsewhere: Revoker::attempt_revoke(&other_fw, &holder_node).await?;
    /// requests.next().await;
    /// lock.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn make_revocable(&self) -> RevocationRequests {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut r) = self.revocable.lock() {
            *r = Some(tx);
        }
        RevocationRequests(rx)
    }

    /// Watches our node's data until it is deleted; each `__REVOKE__`
    /// written into it is a request.
    fn watch_for_revocation(&self, node: String, tx: mpsc::UnboundedSender<()>) {
        let fw = self.internals.fw.clone();
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        handle.spawn(async move {
            loop {
                let Ok(c) = fw.client() else { return };
                let Ok((data, _, watch)) = c.get_data_watch(&node).await else { return };
                if data.as_ref() == REVOKE_MESSAGE && tx.send(()).is_err() {
                    return;
                }
                let ev = tokio::select! {
                    ev = watch => ev,
                    _ = tx.closed() => return,
                };
                if ev.event_type == EventType::NodeDeleted || ev.event_type == EventType::None {
                    return;
                }
            }
        });
    }
}

/// Revocation requests for a lock made revocable with
/// [`InterProcessMutex::make_revocable`], as a stream.
///
/// ```no_run
/// # async fn f(lock: zk_recipes::locks::InterProcessMutex) -> zk_recipes::Result<()> {
/// use futures::StreamExt;
/// let mut requests = lock.make_revocable();
/// lock.acquire().await?;
/// if requests.next().await.is_some() {
///     lock.release().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RevocationRequests(mpsc::UnboundedReceiver<()>);

impl Stream for RevocationRequests {
    type Item = ();
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.0.poll_recv(cx)
    }
}

/// Asks the holder of a revocable lock to release it (Curator's
/// `Revoker`).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework, lock: zk_recipes::locks::InterProcessMutex) -> zk_recipes::Result<()> {
/// use zk_recipes::locks::Revoker;
/// if let Some(holder) = lock.participant_nodes().await?.first() {
///     Revoker::attempt_revoke(&fw, &format!("{}/{holder}", lock.path())).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Revoker;

impl Revoker {
    /// Writes `__REVOKE__` into `lock_node` (a participant node, from
    /// [`InterProcessMutex::participant_nodes`], as a full path). A node
    /// already gone is not an error.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn attempt_revoke(fw: &Framework, lock_node: &str) -> Result<()> {
        match fw.set_data(lock_node, REVOKE_MESSAGE, None).await {
            Ok(_) | Err(Error::Zk(ZkError::NoNode)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait::async_trait]
impl InterProcessLock for InterProcessMutex {
    async fn acquire(&self) -> Result<()> {
        InterProcessMutex::acquire(self).await
    }
    async fn try_acquire(&self, timeout: Duration) -> Result<bool> {
        InterProcessMutex::try_acquire(self, timeout).await
    }
    async fn release(&self) -> Result<()> {
        InterProcessMutex::release(self).await
    }
    fn is_acquired_in_this_process(&self) -> bool {
        self.is_acquired()
    }
    fn release_in_background(&self) {
        InterProcessMutex::release_in_background(self);
    }
}
