//! Locks with Curator's node layouts, so Rust and Java processes contend
//! for the same lock:
//!
//! | type | Curator | layout under the lock path |
//! |---|---|---|
//! | [`InterProcessMutex`] | `InterProcessMutex` | `_c_<uuid>-lock-<seq>` |
//! | [`InterProcessReadWriteLock`] | `InterProcessReadWriteLock` | `_c_<uuid>-__READ__<seq>`, `_c_<uuid>-__WRIT__<seq>` |
//! | [`InterProcessSemaphoreV2`] | `InterProcessSemaphoreV2` | `locks/_c_<uuid>-lock-<seq>`, `leases/_c_<uuid>-lease-<seq>` |
//! | [`InterProcessSemaphoreMutex`] | `InterProcessSemaphoreMutex` | as the semaphore, one lease |
//! | [`InterProcessMultiLock`] | `InterProcessMultiLock` | none of its own |
//!
//! Every lock implements [`InterProcessLock`]; [`Locker`] holds any of
//! them for a scope and releases it when dropped. Dropping a lock value
//! (or a [`Lease`]) that holds something releases it in the background:
//! nothing stays held on the server past its owner.
//!
//! A holder can be asked to give a lock up: [`InterProcessMutex::make_revocable`]
//! and [`Revoker`] (Curator's revocation, `__REVOKE__` written into the
//! holder's node).

mod internals;
mod multi;
mod mutex;
mod rwlock;
mod semaphore;

pub use multi::InterProcessMultiLock;
pub use mutex::{FencingToken, InterProcessMutex, RevocationRequests, Revoker};
pub use rwlock::InterProcessReadWriteLock;
pub use semaphore::{InterProcessSemaphoreMutex, InterProcessSemaphoreV2, Lease};

use std::time::Duration;

use crate::error::Result;

/// What every lock offers (Curator's `InterProcessLock`), so that
/// [`Locker`] and [`InterProcessMultiLock`] take any of them.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::locks::{InterProcessLock, InterProcessSemaphoreMutex};
///
/// async fn with_lock(lock: &dyn InterProcessLock) -> zk_recipes::Result<bool> {
///     if !lock.try_acquire(Duration::from_secs(5)).await? {
///         return Ok(false);
///     }
///     // ... critical section ...
///     lock.release().await?;
///     Ok(true)
/// }
/// with_lock(&InterProcessSemaphoreMutex::new(&fw, "/locks/report")).await?;
/// # Ok(()) }
/// ```
#[async_trait::async_trait]
pub trait InterProcessLock: Send + Sync + std::fmt::Debug {
    /// Waits until the lock is held.
    ///
    /// # Errors
    /// Client errors after the retry policy gave up.
    async fn acquire(&self) -> Result<()>;

    /// Waits at most `timeout`; whether the lock is held.
    ///
    /// # Errors
    /// As [`InterProcessLock::acquire`].
    async fn try_acquire(&self, timeout: Duration) -> Result<bool>;

    /// Releases the lock (one level, for reentrant locks).
    ///
    /// # Errors
    /// [`Error::NotHeld`](crate::Error::NotHeld) when not held.
    async fn release(&self) -> Result<()>;

    /// Whether this value holds the lock (Curator's
    /// `isAcquiredInThisProcess`).
    fn is_acquired_in_this_process(&self) -> bool;

    /// Releases (one level) without waiting: the node is deleted in the
    /// background until it is gone. What [`Locker`] does when dropped.
    fn release_in_background(&self);
}

/// Holds a lock for a scope (Curator's `Locker`): acquired on creation,
/// released when dropped (in the background) or by [`Locker::release`].
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::locks::{InterProcessMutex, Locker};
///
/// let lock = InterProcessMutex::new(&fw, "/locks/orders");
/// {
///     let _held = Locker::acquire(&lock).await?;
///     // ... critical section; an early return or `?` releases too ...
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "the lock is released when the Locker is dropped"]
pub struct Locker<'a, L: InterProcessLock + ?Sized> {
    lock: &'a L,
    held: bool,
}

impl<'a, L: InterProcessLock + ?Sized> Locker<'a, L> {
    /// Waits until `lock` is held.
    ///
    /// # Errors
    /// As [`InterProcessLock::acquire`].
    pub async fn acquire(lock: &'a L) -> Result<Self> {
        lock.acquire().await?;
        Ok(Locker { lock, held: true })
    }

    /// Waits at most `timeout`: `None` when the lock was not acquired.
    ///
    /// # Errors
    /// As [`InterProcessLock::acquire`].
    pub async fn try_acquire(lock: &'a L, timeout: Duration) -> Result<Option<Self>> {
        Ok(lock.try_acquire(timeout).await?.then_some(Locker { lock, held: true }))
    }

    /// Releases now, waiting for the node's deletion.
    ///
    /// # Errors
    /// As [`InterProcessLock::release`].
    pub async fn release(mut self) -> Result<()> {
        self.held = false;
        self.lock.release().await
    }
}

impl<L: InterProcessLock + ?Sized> Drop for Locker<'_, L> {
    fn drop(&mut self) {
        if self.held {
            self.lock.release_in_background();
        }
    }
}

/// Curator's `standardFixForSorting`: the part of `child` after the last
/// occurrence of `lock_name` (the sequence number), or the whole name.
pub(crate) fn sort_key<'a>(child: &'a str, lock_name: &str) -> &'a str {
    match child.rfind(lock_name) {
        Some(i) => &child[i + lock_name.len()..],
        None => child,
    }
}

/// The sort key with each of `lock_names` stripped in turn (the
/// read-write lock strips `__READ__`, then `__WRIT__`).
pub(crate) fn sort_key_all<'a>(child: &'a str, lock_names: &[&str]) -> &'a str {
    lock_names.iter().fold(child, |s, n| sort_key(s, n))
}

/// `children` sorted as Curator sorts contenders.
pub(crate) fn sorted(children: Vec<String>, lock_name: &str) -> Vec<String> {
    sorted_all(children, &[lock_name])
}

/// `children` sorted by [`sort_key_all`].
pub(crate) fn sorted_all(mut children: Vec<String>, lock_names: &[&str]) -> Vec<String> {
    children.sort_by(|a, b| sort_key_all(a, lock_names).cmp(sort_key_all(b, lock_names)));
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curator_ordering() {
        let kids = vec![
            "_c_9b0d4b7e-0000-4000-8000-000000000000-lock-0000000003".to_string(),
            "_c_00000000-0000-4000-8000-000000000000-lock-0000000001".to_string(),
            "lock-0000000002".to_string(),
        ];
        let s = sorted(kids, "lock-");
        assert!(s[0].ends_with("0001") && s[1].ends_with("0002") && s[2].ends_with("0003"));
        assert_eq!(sort_key("foreign", "lock-"), "foreign");
    }

    #[test]
    fn read_write_ordering_strips_both_names() {
        let kids = vec![
            "_c_a-__READ__0000000004".to_string(),
            "_c_b-__WRIT__0000000002".to_string(),
            "_c_c-__READ__0000000003".to_string(),
        ];
        let s = sorted_all(kids, &["__READ__", "__WRIT__"]);
        assert_eq!(s, ["_c_b-__WRIT__0000000002", "_c_c-__READ__0000000003", "_c_a-__READ__0000000004"]);
    }
}
