//! Curator's `InterProcessMutex`: `<path>/_c_<uuid>-lock-<seq>` ephemeral
//! sequential nodes; the holder is the first by sequence; each waiter
//! watches only its predecessor (getData), so a release wakes one waiter.
//!
//! ```text
//! acquire: create _c_<uuid>-lock-N ──> list children, sort by N
//!              ^                          │ first? ── yes ──> held
//!              │                          no
//!              └── predecessor gone <── getData(predecessor, watch)
//! ```

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use zk_client::{CreateMode, Error as ZkError, Op};

use crate::error::{Error, Result};
use crate::framework::{DEFAULT_DATA, Framework};
use crate::locks::sorted;
use crate::state::ConnectionState;

const LOCK_NAME: &str = "lock-";

/// Proof of holding a lock, for fencing writes: the lock node's path and
/// czxid. [`FencingToken::check_op`] fails a transaction if the lock node is
/// gone (the lock was lost).
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

#[derive(Debug)]
struct Held {
    node: String,
    czxid: i64,
    count: u32,
}

/// A distributed, reentrant, fair mutex, compatible with Curator's
/// `InterProcessMutex` on the same path.
///
/// Reentrancy belongs to this value (its owner), not to a thread: acquire
/// it again through the same value and it counts; release as many times.
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
    fw: Framework,
    path: String,
    data: Vec<u8>,
    held: Mutex<Option<Held>>,
}

/// Deletes the node of an acquire that did not finish (timed out, failed or
/// was cancelled by dropping its future).
struct PendingNode<'a> {
    fw: &'a Framework,
    node: Option<String>,
}

impl Drop for PendingNode<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.node.take() {
            self.fw.guaranteed_delete(n);
        }
    }
}

impl Drop for InterProcessMutex {
    fn drop(&mut self) {
        // A held lock whose owner goes away is released, not leaked until
        // the session ends.
        let node = self.held.lock().ok().and_then(|mut h| h.take()).map(|h| h.node);
        if let Some(n) = node {
            self.fw.guaranteed_delete(n);
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
        InterProcessMutex {
            fw: fw.clone(),
            path: path.trim_end_matches('/').to_string(),
            data: data.to_vec(),
            held: Mutex::new(None),
        }
    }

    /// The lock path.
    pub fn path(&self) -> &str {
        &self.path
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

    /// Waits at most `timeout`; whether the lock is held.
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

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<bool> {
        if self.reenter() {
            return Ok(true);
        }
        let node = self
            .fw
            .create_protected(
                &format!("{}/{LOCK_NAME}", self.path),
                &self.data,
                CreateMode::EphemeralSequential,
                &self.fw.default_acl(),
                Some(true),
            )
            .await?;
        let mut pending = PendingNode { fw: &self.fw, node: Some(node.clone()) };
        let name = node.rsplit('/').next().unwrap_or("").to_string();
        loop {
            let client = self.fw.client()?;
            let kids = match client.get_children(&self.path).await {
                Ok(k) => sorted(k, LOCK_NAME),
                Err(e) => return Err(e.into()),
            };
            let Some(idx) = kids.iter().position(|k| *k == name) else {
                // Our node is gone (session lost): start over is the
                // caller's decision.
                return Err(Error::Lost("the lock node disappeared while waiting"));
            };
            if idx == 0 {
                let czxid =
                    client.exists(&node).await?.map(|s| s.czxid).ok_or(Error::Lost("lock node vanished"))?;
                pending.node = None;
                if let Ok(mut h) = self.held.lock() {
                    *h = Some(Held { node, czxid, count: 1 });
                }
                return Ok(true);
            }
            let predecessor = format!("{}/{}", self.path, kids[idx - 1]);
            let watch = match client.get_data_watch(&predecessor).await {
                Ok((_, _, w)) => w,
                Err(ZkError::NoNode) => continue,
                Err(e) => return Err(e.into()),
            };
            match deadline {
                None => {
                    watch.await;
                }
                Some(d) => {
                    if tokio::time::timeout_at(d, watch).await.is_err() {
                        // Timed out: PendingNode deletes our node.
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Releases one level of ownership; the node is deleted at the last.
    /// A delete that fails on a lost connection goes on in the background.
    ///
    /// # Errors
    /// [`Error::NotHeld`] when not held.
    pub async fn release(&self) -> Result<()> {
        let node = {
            let mut h = self.held.lock().map_err(|_| Error::NotHeld)?;
            let Some(held) = h.as_mut() else { return Err(Error::NotHeld) };
            held.count -= 1;
            if held.count > 0 {
                return Ok(());
            }
            h.take().map(|x| x.node)
        };
        if let Some(node) = node {
            let r = match self.fw.client() {
                Ok(c) => c.delete(&node, None).await,
                Err(_) => Err(ZkError::ClientClosed),
            };
            match r {
                Ok(()) | Err(ZkError::NoNode) => {}
                Err(_) => self.fw.guaranteed_delete(node),
            }
        }
        Ok(())
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

    /// Completes when the connection is SUSPENDED or LOST, or the lock
    /// node is deleted, while held: from then on the lock may be held by
    /// another process.
    pub async fn lost(&self) {
        let Some(token) = self.fencing_token() else { return };
        let mut states = self.fw.state_receiver();
        let gone = async {
            let Ok(c) = self.fw.client() else { return };
            match c.exists_watch(&token.path).await {
                Ok((None, _)) | Err(_) => {}
                Ok((Some(_), w)) => {
                    w.await;
                }
            }
        };
        tokio::select! {
            _ = states.wait_for(|s| matches!(s, Some(ConnectionState::Suspended | ConnectionState::Lost))) => {}
            _ = gone => {}
        }
    }

    /// The lock nodes in order (first = holder).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        match self.fw.get_children(&self.path).await {
            Ok(k) => Ok(sorted(k, LOCK_NAME)),
            Err(Error::Zk(ZkError::NoNode)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}
