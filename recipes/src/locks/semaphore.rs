//! Curator's `InterProcessSemaphoreV2` and `InterProcessSemaphoreMutex`.
//!
//! ```text
//! <path>/locks/_c_<uuid>-lock-<seq>     an InterProcessMutex: one acquirer at a time
//! <path>/leases/_c_<uuid>-lease-<seq>   one ephemeral node per lease held
//! ```
//!
//! An acquirer takes the `locks` mutex, creates its lease node, and while
//! there are more lease nodes than leases it waits (watching `leases`,
//! still holding the mutex, so only one process ever waits on the leases:
//! no herd). Then it releases the mutex.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;
use zk_client::{CreateMode, Error as ZkError};

use crate::error::{Error, Result};
use crate::framework::{DEFAULT_DATA, Framework};
use crate::locks::{InterProcessLock, InterProcessMutex};
use crate::shared::{SharedCount, VersionedValue, decode_count};

const LOCK_PARENT: &str = "locks";
const LEASE_PARENT: &str = "leases";
const LEASE_BASE_NAME: &str = "lease-";

/// One lease of an [`InterProcessSemaphoreV2`]: its node under `leases`.
/// Return it with [`Lease::close`]; dropping it returns it in the
/// background.
///
/// ```no_run
/// # async fn f(sem: zk_recipes::locks::InterProcessSemaphoreV2) -> zk_recipes::Result<()> {
/// let lease = sem.acquire().await?;
/// println!("holding {}", lease.node_name());
/// lease.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Lease {
    fw: Framework,
    path: String,
    returned: bool,
}

impl Lease {
    /// The lease node's full path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The lease node's name.
    pub fn node_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }

    /// The lease node's data.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn data(&self) -> Result<Bytes> {
        Ok(self.fw.get_data(&self.path).await?.0)
    }

    /// Returns the lease (deletes its node; a delete interrupted by a lost
    /// connection goes on in the background).
    ///
    /// # Errors
    /// Never fails today; `Result` for symmetry with Curator's `close`.
    pub async fn close(mut self) -> Result<()> {
        self.returned = true;
        self.fw.delete_guaranteed_now(std::mem::take(&mut self.path)).await;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.returned {
            self.fw.guaranteed_delete(std::mem::take(&mut self.path));
        }
    }
}

#[derive(Debug)]
enum MaxLeases {
    Fixed(usize),
    Shared(watch::Receiver<VersionedValue<Vec<u8>>>),
}

/// A counting semaphore across processes, compatible with Curator's
/// `InterProcessSemaphoreV2` on the same path. The number of leases is
/// fixed, or follows a [`SharedCount`] (as Curator's `SharedCountReader`
/// constructor): raising the count lets waiters in at once.
///
/// Not fair between waiters beyond the `locks` mutex's order; every
/// participant must use the same number of leases.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::locks::InterProcessSemaphoreV2;
///
/// let sem = InterProcessSemaphoreV2::new(&fw, "/semaphores/db", 5);
/// let lease = sem.acquire().await?;
/// // ... one of at most five ...
/// lease.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct InterProcessSemaphoreV2 {
    fw: Framework,
    lock: InterProcessMutex,
    leases_path: String,
    max: MaxLeases,
    node_data: Mutex<Vec<u8>>,
    /// One acquirer of this value at a time: the `locks` mutex is
    /// reentrant per value, so two tasks sharing the value would otherwise
    /// both wait on the leases, and with too many lease nodes neither
    /// would ever proceed.
    local: tokio::sync::Mutex<()>,
}

/// Releases the `locks` mutex when an acquire ends in any way, including
/// by its future being dropped.
/// Holds the semaphore's internal lock; released by [`MutexGuard::release`]
/// when the attempt ends, in the background when it is cancelled.
struct MutexGuard<'a>(Option<&'a InterProcessMutex>);

impl MutexGuard<'_> {
    async fn release(mut self) {
        if let Some(l) = self.0.take() {
            // Only `NotHeld` can come back, and then there is nothing to do.
            let _ = l.release().await;
        }
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        if let Some(l) = self.0.take() {
            l.release_in_background();
        }
    }
}

impl InterProcessSemaphoreV2 {
    /// A semaphore of `max_leases` leases at `path`.
    pub fn new(fw: &Framework, path: &str, max_leases: usize) -> Self {
        Self::build(fw, path, MaxLeases::Fixed(max_leases))
    }

    /// A semaphore whose number of leases is `count` (started by the
    /// caller), followed as it changes.
    pub fn with_shared_count(fw: &Framework, path: &str, count: &SharedCount) -> Self {
        Self::build(fw, path, MaxLeases::Shared(count.subscribe()))
    }

    fn build(fw: &Framework, path: &str, max: MaxLeases) -> Self {
        let path = path.trim_end_matches('/');
        InterProcessSemaphoreV2 {
            fw: fw.clone(),
            lock: InterProcessMutex::new(fw, &format!("{path}/{LOCK_PARENT}")),
            leases_path: format!("{path}/{LEASE_PARENT}"),
            max,
            node_data: Mutex::new(DEFAULT_DATA.to_vec()),
            local: tokio::sync::Mutex::new(()),
        }
    }

    /// The data written into lease nodes from now on (Curator's
    /// `setNodeData`; the default is [`DEFAULT_DATA`]).
    pub fn set_node_data(&self, data: &[u8]) {
        if let Ok(mut d) = self.node_data.lock() {
            *d = data.to_vec();
        }
    }

    /// The current number of leases.
    pub fn max_leases(&self) -> usize {
        match &self.max {
            MaxLeases::Fixed(n) => *n,
            MaxLeases::Shared(rx) => decode_count(&rx.borrow().value).map_or(0, |n| n.max(0) as usize),
        }
    }

    /// The lease nodes' names (leases held, and one being waited for).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        match self.fw.get_children(&self.leases_path).await {
            Err(Error::Zk(ZkError::NoNode)) => Ok(Vec::new()),
            r => r,
        }
    }

    /// Waits for one lease.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn acquire(&self) -> Result<Lease> {
        let mut v =
            self.acquire_many_until(1, None).await?.ok_or(Error::Lost("acquire ended without a lease"))?;
        v.pop().ok_or(Error::Lost("acquire ended without a lease"))
    }

    /// Waits for `qty` leases (all or none).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `qty == 0`; client errors after retries.
    pub async fn acquire_many(&self, qty: usize) -> Result<Vec<Lease>> {
        self.acquire_many_until(qty, None).await?.ok_or(Error::Lost("acquire ended without leases"))
    }

    /// Waits at most `timeout` for one lease.
    ///
    /// # Errors
    /// As [`InterProcessSemaphoreV2::acquire`].
    pub async fn try_acquire(&self, timeout: Duration) -> Result<Option<Lease>> {
        Ok(self.acquire_many_until(1, Some(Instant::now() + timeout)).await?.and_then(|mut v| v.pop()))
    }

    /// Waits at most `timeout` for `qty` leases: all of them, or none
    /// (those taken are returned).
    ///
    /// # Errors
    /// As [`InterProcessSemaphoreV2::acquire_many`].
    pub async fn try_acquire_many(&self, qty: usize, timeout: Duration) -> Result<Option<Vec<Lease>>> {
        self.acquire_many_until(qty, Some(Instant::now() + timeout)).await
    }

    async fn acquire_many_until(&self, qty: usize, deadline: Option<Instant>) -> Result<Option<Vec<Lease>>> {
        if qty == 0 {
            return Err(Error::InvalidArgument("qty cannot be 0"));
        }
        // Dropped (returned) on any early exit.
        let mut leases = Vec::with_capacity(qty);
        let policy = self.fw.retry_policy();
        for _ in 0..qty {
            let started = std::time::Instant::now();
            let mut retries = 0u32;
            loop {
                match self.acquire_one(deadline).await? {
                    One::Got(l) => {
                        leases.push(l);
                        break;
                    }
                    One::TimedOut => {
                        // All or none: the leases got so far are returned
                        // before we do, as Curator's `returnAll`.
                        for l in leases {
                            l.close().await?;
                        }
                        return Ok(None);
                    }
                    One::Missing => match policy.allow_retry(retries, started.elapsed(), &ZkError::NoNode) {
                        Some(sleep) => {
                            tokio::time::sleep(sleep).await;
                            retries += 1;
                        }
                        None => return Err(Error::Lost("the lease node disappeared while waiting")),
                    },
                }
            }
        }
        Ok(Some(leases))
    }

    async fn acquire_one(&self, deadline: Option<Instant>) -> Result<One> {
        let _local = match deadline {
            None => self.local.lock().await,
            Some(d) => match tokio::time::timeout_at(d, self.local.lock()).await {
                Ok(g) => g,
                Err(_) => return Ok(One::TimedOut),
            },
        };
        if !self.lock.acquire_until(deadline).await? {
            return Ok(One::TimedOut);
        }
        let guard = MutexGuard(Some(&self.lock));
        let r = self.lease_under_lock(deadline).await;
        guard.release().await;
        r
    }

    /// Creates a lease node and waits until it is among the first
    /// `max_leases`; the internal lock is held throughout.
    async fn lease_under_lock(&self, deadline: Option<Instant>) -> Result<One> {
        let data = self.node_data.lock().map(|d| d.clone()).unwrap_or_default();
        let path = self
            .fw
            .create_protected(
                &format!("{}/{LEASE_BASE_NAME}", self.leases_path),
                &data,
                CreateMode::EphemeralSequential,
                &self.fw.default_acl(),
                Some(true),
            )
            .await?;
        let lease = Lease { fw: self.fw.clone(), path, returned: false };
        let mut count_changes = match &self.max {
            MaxLeases::Shared(rx) => Some(rx.clone()),
            MaxLeases::Fixed(_) => None,
        };
        loop {
            let (children, watch) = self.fw.with_retry(|c| c.get_children_watch(&self.leases_path)).await?;
            if !children.iter().any(|c| c == lease.node_name()) {
                return Ok(One::Missing);
            }
            if children.len() <= self.max_leases() {
                break;
            }
            let count_changed = async {
                match count_changes.as_mut() {
                    Some(rx) => {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            let wait = async {
                tokio::select! {
                    _ = watch => {}
                    _ = count_changed => {}
                }
            };
            match deadline {
                None => wait.await,
                Some(d) => {
                    if tokio::time::timeout_at(d, wait).await.is_err() {
                        // Gone before we return, as in Curator.
                        lease.close().await?;
                        return Ok(One::TimedOut);
                    }
                }
            }
        }
        Ok(One::Got(lease))
    }
}

enum One {
    Got(Lease),
    TimedOut,
    Missing,
}

/// A mutex that is not reentrant and that any task may release, compatible
/// with Curator's `InterProcessSemaphoreMutex` (a semaphore of one lease,
/// same layout). A second `acquire` through the same value waits until the
/// lock is released. Dropping it while held returns the lease in the
/// background.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::sync::Arc;
/// use zk_recipes::locks::InterProcessSemaphoreMutex;
///
/// let lock = Arc::new(InterProcessSemaphoreMutex::new(&fw, "/locks/export"));
/// lock.acquire().await?;
/// let releaser = lock.clone();
/// tokio::spawn(async move { releaser.release().await }).await.ok();
/// assert!(!lock.is_acquired());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct InterProcessSemaphoreMutex {
    sem: InterProcessSemaphoreV2,
    lease: Mutex<Option<Lease>>,
}

impl InterProcessSemaphoreMutex {
    /// A semaphore mutex on `path`.
    pub fn new(fw: &Framework, path: &str) -> Self {
        InterProcessSemaphoreMutex { sem: InterProcessSemaphoreV2::new(fw, path, 1), lease: Mutex::new(None) }
    }

    /// Waits until held.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn acquire(&self) -> Result<()> {
        let l = self.sem.acquire().await?;
        self.store(l);
        Ok(())
    }

    /// Waits at most `timeout`; whether held.
    ///
    /// # Errors
    /// As [`InterProcessSemaphoreMutex::acquire`].
    pub async fn try_acquire(&self, timeout: Duration) -> Result<bool> {
        match self.sem.try_acquire(timeout).await? {
            Some(l) => {
                self.store(l);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn store(&self, l: Lease) {
        if let Ok(mut s) = self.lease.lock() {
            *s = Some(l);
        }
    }

    fn take(&self) -> Option<Lease> {
        self.lease.lock().ok().and_then(|mut l| l.take())
    }

    /// Releases, from any task.
    ///
    /// # Errors
    /// [`Error::NotHeld`] when not held.
    pub async fn release(&self) -> Result<()> {
        self.take().ok_or(Error::NotHeld)?.close().await
    }

    /// Whether this value holds the lock.
    pub fn is_acquired(&self) -> bool {
        self.lease.lock().map(|l| l.is_some()).unwrap_or(false)
    }

    /// The lease nodes (the holder's, and one a waiter is about to own).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        self.sem.participant_nodes().await
    }
}

#[async_trait::async_trait]
impl InterProcessLock for InterProcessSemaphoreMutex {
    async fn acquire(&self) -> Result<()> {
        InterProcessSemaphoreMutex::acquire(self).await
    }
    async fn try_acquire(&self, timeout: Duration) -> Result<bool> {
        InterProcessSemaphoreMutex::try_acquire(self, timeout).await
    }
    async fn release(&self) -> Result<()> {
        InterProcessSemaphoreMutex::release(self).await
    }
    fn is_acquired_in_this_process(&self) -> bool {
        self.is_acquired()
    }
    fn release_in_background(&self) {
        // Dropping the lease deletes its node in the background.
        drop(self.take());
    }
}
