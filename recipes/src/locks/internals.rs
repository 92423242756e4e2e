//! Curator's `LockInternals` and its drivers: create a protected node under
//! the lock path, list the contenders in sort order, and either hold or
//! watch the one node whose deletion can change the verdict.
//!
//! ```text
//! create _c_<uuid>-<name><seq> ──> children, sorted ──> verdict
//!     ^                                                 │ holds ──> done
//!     │ (our node gone: session lost; retry policy)     │ watch P ──> getData(P, watch) ──> wait
//!     └──────────────────────── missing ◄───────────────┘        ◄── P changed/deleted ──┘
//! ```

use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use zk_client::{CreateMode, Error as ZkError};

use crate::error::{Error, Result};
use crate::framework::{Framework, watch_fired_by};
use crate::locks::{sort_key_all, sorted_all};

/// What a lock value holds: its node, the node's czxid, and how many
/// times it was entered.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) node: String,
    pub(crate) czxid: i64,
    pub(crate) count: u32,
}

/// Shared between a read-write lock's two sides.
pub(crate) type HeldCell = Arc<Mutex<Option<Held>>>;

/// How the contenders decide who holds (Curator's `LockInternalsDriver`).
#[derive(Debug)]
pub(crate) enum Driver {
    /// Held when fewer than `max_leases` contenders sort before our node;
    /// otherwise watch the contender `max_leases` places ahead.
    Standard { max_leases: usize },
    /// A read lock: held when no write node sorts before ours (or when the
    /// same owner holds the write lock); otherwise watch the first writer.
    Read { write: HeldCell, write_name: &'static str },
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Holds,
    Watch(String),
    Missing,
}

#[derive(Debug)]
pub(crate) struct LockInternals {
    pub(crate) fw: Framework,
    pub(crate) base: String,
    pub(crate) lock_name: &'static str,
    pub(crate) sort_names: &'static [&'static str],
    pub(crate) driver: Driver,
}

/// Deletes the node of an attempt that did not end holding (timed out,
/// failed, or cancelled by dropping its future).
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

impl LockInternals {
    fn verdict(&self, children: &[String], ours: &str) -> Verdict {
        match &self.driver {
            Driver::Standard { max_leases } => match children.iter().position(|c| c == ours) {
                None => Verdict::Missing,
                Some(i) if i < *max_leases => Verdict::Holds,
                Some(i) => Verdict::Watch(children[i - max_leases].clone()),
            },
            Driver::Read { write, write_name } => {
                if write.lock().map(|w| w.is_some()).unwrap_or(false) {
                    return Verdict::Holds;
                }
                let mut first_write = None;
                for c in children {
                    if c.contains(write_name) {
                        first_write = first_write.or(Some(c));
                    } else if c.starts_with(ours) {
                        return match first_write {
                            None => Verdict::Holds,
                            Some(w) => Verdict::Watch(w.clone()),
                        };
                    }
                }
                Verdict::Missing
            }
        }
    }

    /// The contenders in sort order (empty when the lock path is absent).
    pub(crate) async fn sorted_children(&self) -> Result<Vec<String>> {
        match self.fw.get_children(&self.base).await {
            Ok(k) => Ok(sorted_all(k, self.sort_names)),
            Err(Error::Zk(ZkError::NoNode)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The node name this attempt creates, and its mode: a read lock taken
    /// under the same owner's write lock is a plain ephemeral node carrying
    /// the write node's sequence (Curator's `getSortingSequence`).
    fn node_to_create(&self) -> (String, CreateMode) {
        let base = format!("{}/{}", self.base, self.lock_name);
        if let Driver::Read { write, write_name } = &self.driver {
            let seq = write
                .lock()
                .ok()
                .and_then(|w| w.as_ref().map(|h| sort_key_all(&h.node, &[write_name]).to_string()));
            if let Some(seq) = seq {
                return (format!("{base}{seq}"), CreateMode::Ephemeral);
            }
        }
        (base, CreateMode::EphemeralSequential)
    }

    /// Creates a node and waits until it holds, or until `deadline`.
    /// `Some((node, czxid))` when held; `None` when the deadline passed
    /// (the node is deleted). When our node disappears while waiting (the
    /// session was lost), a new one is made as the retry policy allows.
    pub(crate) async fn attempt(
        &self,
        deadline: Option<Instant>,
        data: &[u8],
    ) -> Result<Option<(String, i64)>> {
        let policy = self.fw.retry_policy();
        let started = std::time::Instant::now();
        let mut retries = 0u32;
        loop {
            let (path, mode) = self.node_to_create();
            let node =
                self.fw.create_protected(&path, data, mode, &self.fw.default_acl(), Some(true)).await?;
            let mut pending = PendingNode { fw: &self.fw, node: Some(node.clone()) };
            match self.wait_for(&node, deadline).await? {
                Some(czxid) => {
                    pending.node = None;
                    return Ok(Some((node, czxid)));
                }
                None if deadline.is_some_and(|d| Instant::now() >= d) => {
                    // Gone before we return, as in Curator: a caller that
                    // timed out leaves no contender behind it.
                    if let Some(n) = pending.node.take() {
                        self.fw.delete_guaranteed_now(n).await;
                    }
                    return Ok(None);
                }
                None => match policy.allow_retry(retries, started.elapsed(), &ZkError::NoNode) {
                    Some(sleep) => {
                        tracing::debug!(%node, "lock node gone while waiting; creating a new one");
                        tokio::time::sleep(sleep).await;
                        retries += 1;
                    }
                    None => return Err(Error::Lost("the lock node disappeared while waiting")),
                },
            }
        }
    }

    /// `Some(czxid)` once `node` holds; `None` at the deadline or when
    /// `node` is gone.
    async fn wait_for(&self, node: &str, deadline: Option<Instant>) -> Result<Option<i64>> {
        let name = node.rsplit('/').next().unwrap_or("");
        loop {
            let kids = sorted_all(self.fw.get_children(&self.base).await?, self.sort_names);
            match self.verdict(&kids, name) {
                Verdict::Missing => return Ok(None),
                Verdict::Holds => {
                    return match self.fw.exists(node).await? {
                        Some(s) => Ok(Some(s.czxid)),
                        None => Ok(None),
                    };
                }
                Verdict::Watch(other) => {
                    let other = format!("{}/{other}", self.base);
                    let watch = match self.fw.with_retry(|c| c.get_data_watch(&other)).await {
                        Ok((_, _, w)) => w,
                        Err(Error::Zk(ZkError::NoNode)) => continue,
                        Err(e) => return Err(e),
                    };
                    if !watch_fired_by(watch, deadline).await {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internals(driver: Driver) -> LockInternals {
        LockInternals {
            fw: Framework::new("127.0.0.1:1", crate::retry::RetryOneTime::new(std::time::Duration::ZERO)),
            base: "/l".into(),
            lock_name: "x",
            sort_names: &["__READ__", "__WRIT__"],
            driver,
        }
    }

    fn kids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn standard_driver_watches_max_leases_ahead() {
        let l = internals(Driver::Standard { max_leases: 2 });
        let k = kids(&["a", "b", "c", "d"]);
        assert_eq!(l.verdict(&k, "b"), Verdict::Holds);
        assert_eq!(l.verdict(&k, "d"), Verdict::Watch("b".into()));
        assert_eq!(l.verdict(&k, "z"), Verdict::Missing);
    }

    #[test]
    fn readers_wait_only_for_a_writer_ahead() {
        let write: HeldCell = Arc::default();
        let l = internals(Driver::Read { write: write.clone(), write_name: "__WRIT__" });
        let k = kids(&["_c_1-__READ__01", "_c_2-__WRIT__02", "_c_3-__READ__03"]);
        assert_eq!(l.verdict(&k, "_c_1-__READ__01"), Verdict::Holds);
        assert_eq!(l.verdict(&k, "_c_3-__READ__03"), Verdict::Watch("_c_2-__WRIT__02".into()));
        // The same owner holding the write lock reads at once (downgrade).
        *write.lock().unwrap() = Some(Held { node: "/l/_c_2-__WRIT__02".into(), czxid: 1, count: 1 });
        assert_eq!(l.verdict(&k, "_c_3-__READ__03"), Verdict::Holds);
        assert_eq!(l.node_to_create(), ("/l/x02".to_string(), CreateMode::Ephemeral));
    }
}
