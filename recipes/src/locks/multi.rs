//! Curator's `InterProcessMultiLock`: several locks taken as one.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Result;
use crate::framework::Framework;
use crate::locks::{InterProcessLock, InterProcessMutex};

/// Several locks held as one: acquired in order, all or none (a failure or
/// timeout part-way releases those already taken, in reverse), released in
/// reverse order. Compatible with Curator's `InterProcessMultiLock` over
/// the same paths (it has no nodes of its own).
///
/// Take the locks in the same order everywhere, or two processes can each
/// hold one and wait for the other's.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::locks::InterProcessMultiLock;
///
/// let both = InterProcessMultiLock::new(&fw, &["/locks/account-1", "/locks/account-2"]);
/// both.acquire().await?;
/// // ... move money between the two accounts ...
/// both.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct InterProcessMultiLock {
    locks: Vec<Arc<dyn InterProcessLock>>,
}

impl InterProcessMultiLock {
    /// An [`InterProcessMutex`] on each path.
    pub fn new(fw: &Framework, paths: &[&str]) -> Self {
        let locks = paths
            .iter()
            .map(|p| Arc::new(InterProcessMutex::new(fw, p)) as Arc<dyn InterProcessLock>)
            .collect();
        InterProcessMultiLock { locks }
    }

    /// Any locks (mutexes, semaphore mutexes, sides of read-write locks).
    pub fn from_locks(locks: Vec<Arc<dyn InterProcessLock>>) -> Self {
        InterProcessMultiLock { locks }
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let mut taken: Vec<&Arc<dyn InterProcessLock>> = Vec::with_capacity(self.locks.len());
        for lock in &self.locks {
            let r = match deadline {
                None => lock.acquire().await.map(|()| true),
                Some(d) => lock.try_acquire(d.saturating_duration_since(Instant::now())).await,
            };
            match r {
                Ok(true) => taken.push(lock),
                other => {
                    for l in taken.iter().rev() {
                        if l.release().await.is_err() {
                            l.release_in_background();
                        }
                    }
                    return other;
                }
            }
        }
        Ok(true)
    }
}

#[async_trait::async_trait]
impl InterProcessLock for InterProcessMultiLock {
    async fn acquire(&self) -> Result<()> {
        self.acquire_until(None).await.map(drop)
    }

    async fn try_acquire(&self, timeout: Duration) -> Result<bool> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    /// Releases every lock, in reverse order; all are attempted, the
    /// first error is returned.
    async fn release(&self) -> Result<()> {
        let mut first = Ok(());
        for l in self.locks.iter().rev() {
            if let Err(e) = l.release().await {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    fn is_acquired_in_this_process(&self) -> bool {
        self.locks.iter().all(|l| l.is_acquired_in_this_process())
    }

    fn release_in_background(&self) {
        for l in self.locks.iter().rev() {
            l.release_in_background();
        }
    }
}

impl InterProcessMultiLock {
    /// Waits until every lock is held.
    ///
    /// # Errors
    /// The first lock's error; those taken are released.
    pub async fn acquire(&self) -> Result<()> {
        InterProcessLock::acquire(self).await
    }

    /// Waits at most `timeout` for all of them; whether they are held.
    ///
    /// # Errors
    /// As [`InterProcessMultiLock::acquire`].
    pub async fn try_acquire(&self, timeout: Duration) -> Result<bool> {
        InterProcessLock::try_acquire(self, timeout).await
    }

    /// Releases every lock in reverse order.
    ///
    /// # Errors
    /// The first release error (the others are still released).
    pub async fn release(&self) -> Result<()> {
        InterProcessLock::release(self).await
    }

    /// Whether every lock is held.
    pub fn is_acquired(&self) -> bool {
        self.is_acquired_in_this_process()
    }
}
