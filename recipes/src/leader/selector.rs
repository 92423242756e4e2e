//! Curator's `LeaderSelector`: takes leadership through an
//! [`InterProcessMutex`](crate::locks::InterProcessMutex) on the path, runs
//! an async `take_leadership`, and gives leadership up when it returns (or
//! when the connection is SUSPENDED or LOST, which cancels it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tracing::{debug, info};

use crate::error::Result;
use crate::framework::Framework;
use crate::leader::Participant;
use crate::locks::InterProcessMutex;
use crate::state::ConnectionState;

/// What a leader does while it leads.
///
/// ```
/// use zk_recipes::{Framework, async_trait, leader::LeaderSelectorListener};
///
/// struct Scheduler;
/// #[async_trait]
/// impl LeaderSelectorListener for Scheduler {
///     async fn take_leadership(&self, fw: &Framework) {
///         // Lead until this returns (or leadership is cancelled).
///         let _ = fw.get_children("/jobs").await;
///     }
/// }
/// ```
#[async_trait]
pub trait LeaderSelectorListener: Send + Sync {
    /// Called when this participant becomes leader; leadership ends when it
    /// returns. The future is dropped (cancelled) when the connection is
    /// SUSPENDED or LOST, since leadership can no longer be trusted.
    async fn take_leadership(&self, fw: &Framework);
}

#[derive(Debug)]
struct Inner {
    fw: Framework,
    path: String,
    id: String,
    auto_requeue: AtomicBool,
    leading: AtomicBool,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    interrupt: tokio::sync::Notify,
}

/// A leader selector, compatible with Curator's `LeaderSelector` (same
/// lock layout, id as node data).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::sync::Arc;
/// use zk_recipes::{Framework, leader::{LeaderSelector, LeaderSelectorListener}};
///
/// struct Work;
/// #[zk_recipes::async_trait]
/// impl LeaderSelectorListener for Work {
///     async fn take_leadership(&self, _fw: &Framework) {
///         // lead until this returns
///     }
/// }
/// let selector = LeaderSelector::new(&fw, "/services/batch/leader", "node-1", Arc::new(Work));
/// selector.auto_requeue();
/// selector.start().await?;
/// # Ok(()) }
/// ```
pub struct LeaderSelector {
    inner: Arc<Inner>,
    listener: Arc<dyn LeaderSelectorListener>,
}

impl std::fmt::Debug for LeaderSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderSelector").field("inner", &self.inner).finish()
    }
}

impl LeaderSelector {
    /// A selector on `path` for participant `id`.
    pub fn new(fw: &Framework, path: &str, id: &str, listener: Arc<dyn LeaderSelectorListener>) -> Self {
        LeaderSelector {
            inner: Arc::new(Inner {
                fw: fw.clone(),
                path: path.trim_end_matches('/').to_string(),
                id: id.to_string(),
                auto_requeue: AtomicBool::new(false),
                leading: AtomicBool::new(false),
                task: Mutex::new(None),
                interrupt: tokio::sync::Notify::new(),
            }),
            listener,
        }
    }

    /// After leadership ends, queue again automatically.
    pub fn auto_requeue(&self) {
        self.inner.auto_requeue.store(true, Ordering::SeqCst);
    }

    /// Joins the queue (returns at once; leadership comes through the
    /// listener).
    ///
    /// # Errors
    /// [`crate::Error::Closed`] if the selector is poisoned.
    pub async fn start(&self) -> Result<()> {
        self.requeue()
    }

    /// Ends the current leadership (the listener's `take_leadership` is
    /// cancelled), as Curator's `interruptLeadership`; with auto-requeue
    /// the selector queues again.
    pub fn interrupt_leadership(&self) {
        if self.has_leadership() {
            self.inner.interrupt.notify_one();
        }
    }

    /// The current leader (the first participant), if any.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn leader(&self) -> Result<Option<Participant>> {
        Ok(self.participants().await?.into_iter().next())
    }

    /// Queues again if not queued (after leadership ended without
    /// auto-requeue).
    ///
    /// # Errors
    /// None yet.
    pub fn requeue(&self) -> Result<()> {
        let mut t = self.inner.task.lock().map_err(|_| crate::Error::Closed)?;
        if t.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        let inner = self.inner.clone();
        let listener = self.listener.clone();
        *t = Some(tokio::spawn(async move { run(inner, listener).await }));
        Ok(())
    }

    /// Whether this participant leads now.
    pub fn has_leadership(&self) -> bool {
        self.inner.leading.load(Ordering::SeqCst)
    }

    /// Every participant in queue order.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn participants(&self) -> Result<Vec<Participant>> {
        super::latch::participants(&self.inner.fw, &self.inner.path, "lock-").await
    }

    /// Leaves the queue (cancels leadership if held).
    pub async fn close(&self) {
        let task = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
        self.inner.leading.store(false, Ordering::SeqCst);
    }
}

async fn run(inner: Arc<Inner>, listener: Arc<dyn LeaderSelectorListener>) {
    loop {
        let mutex = InterProcessMutex::with_data(&inner.fw, &inner.path, inner.id.as_bytes());
        // Dropping this future (close) deletes the pending lock node.
        let acquired = mutex.acquire().await;
        if let Err(e) = acquired {
            debug!(error = %e, "leader selector could not queue; retrying");
            let mut states = inner.fw.state_follower();
            if inner.fw.is_closed() {
                return;
            }
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                states.wait_for(ConnectionState::is_connected),
            )
            .await;
            continue;
        }
        inner.leading.store(true, Ordering::SeqCst);
        info!(id = %inner.id, path = %inner.path, "took leadership");
        // Every change from here on: a SUSPENDED however short cancels
        // leadership under the standard policy.
        let mut states = inner.fw.state_follower();
        let fw = inner.fw.clone();
        tokio::select! {
            _ = listener.take_leadership(&fw) => {}
            _ = states.wait_for(|s| fw.is_error_state(s)) => {
                info!(id = %inner.id, "connection state is an error under the policy: leadership cancelled");
            }
            _ = mutex.lost() => {}
            _ = inner.interrupt.notified() => {
                info!(id = %inner.id, "leadership interrupted");
            }
        }
        inner.leading.store(false, Ordering::SeqCst);
        let _ = mutex.release().await;
        if !inner.auto_requeue.load(Ordering::SeqCst) {
            return;
        }
        let _ = states.wait_for(ConnectionState::is_connected).await;
    }
}

impl Drop for LeaderSelector {
    fn drop(&mut self) {
        if let Some(t) = self.inner.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}
