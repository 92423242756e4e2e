//! Curator's `InterProcessReadWriteLock`: writers and readers queue under
//! one path, `_c_<uuid>-__WRIT__<seq>` and `_c_<uuid>-__READ__<seq>`,
//! sorted together by sequence. A writer holds when it is first; a reader
//! holds when no writer is ahead of it, so a queued writer is not starved
//! by readers that come after it.

use std::sync::Arc;

use crate::framework::{DEFAULT_DATA, Framework};
use crate::locks::InterProcessMutex;
use crate::locks::internals::{Driver, HeldCell};

const READ_LOCK_NAME: &str = "__READ__";
const WRITE_LOCK_NAME: &str = "__WRIT__";
const SORT_NAMES: &[&str] = &[READ_LOCK_NAME, WRITE_LOCK_NAME];

/// A reentrant read-write lock, compatible with Curator's
/// `InterProcessReadWriteLock` on the same path.
///
/// Both sides are [`InterProcessMutex`]es (reentrant, per owner value,
/// released in the background when the lock is dropped). The owner of the
/// write lock may also take the read lock, and then release the write lock
/// and keep reading (a downgrade); taking the write lock while reading (an
/// upgrade) waits for ever, as in Curator.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::locks::InterProcessReadWriteLock;
///
/// let rw = InterProcessReadWriteLock::new(&fw, "/locks/catalogue");
/// rw.write_lock().acquire().await?;
/// // ... write ...
/// rw.read_lock().acquire().await?; // downgrade: read before releasing the write lock
/// rw.write_lock().release().await?;
/// // ... read, other readers may join ...
/// rw.read_lock().release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct InterProcessReadWriteLock {
    read: InterProcessMutex,
    write: InterProcessMutex,
}

impl InterProcessReadWriteLock {
    /// A read-write lock on `path`.
    pub fn new(fw: &Framework, path: &str) -> Self {
        Self::with_data(fw, path, DEFAULT_DATA)
    }

    /// A read-write lock whose nodes carry `data`.
    pub fn with_data(fw: &Framework, path: &str, data: &[u8]) -> Self {
        let write_held: HeldCell = Arc::default();
        let write = InterProcessMutex::with_driver(
            fw,
            path,
            WRITE_LOCK_NAME,
            SORT_NAMES,
            Driver::Standard { max_leases: 1 },
            data,
            write_held.clone(),
        );
        let read = InterProcessMutex::with_driver(
            fw,
            path,
            READ_LOCK_NAME,
            SORT_NAMES,
            Driver::Read { write: write_held, write_name: WRITE_LOCK_NAME },
            data,
            Arc::default(),
        );
        InterProcessReadWriteLock { read, write }
    }

    /// The read side: shared with other readers, excluded by a writer
    /// ahead of it.
    pub fn read_lock(&self) -> &InterProcessMutex {
        &self.read
    }

    /// The write side: exclusive.
    pub fn write_lock(&self) -> &InterProcessMutex {
        &self.write
    }
}
