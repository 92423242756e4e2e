//! Curator's `LeaderLatch`: `<path>/_c_<uuid>-latch-<seq>` ephemeral
//! sequential nodes whose data is the participant id. The leader is the
//! first node by sequence, and only while that node's `ephemeralOwner` is
//! the current session. Leadership is given up on SUSPENDED and LOST, as
//! Curator's default error policy does; on RECONNECTED the latch makes a
//! new node (so it re-queues at the end).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::debug;
use zk_client::{CreateMode, Error as ZkError};

use crate::error::{Error, Result};
use crate::framework::{Framework, StateFollower};
use crate::leader::Participant;
use crate::locks::sorted;
use crate::state::ConnectionState;

const LATCH_NAME: &str = "latch-";

/// What [`LeaderLatch::close`] tells listeners.
///
/// ```no_run
/// # async fn f(latch: zk_recipes::leader::LeaderLatch) {
/// use zk_recipes::leader::CloseMode;
/// // Tell this process's listeners that leadership ended.
/// latch.close_with_mode(CloseMode::NotifyLeader).await;
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseMode {
    /// Leadership listeners are not told about losing leadership.
    Silent,
    /// Listeners see leadership go to false.
    NotifyLeader,
}

#[derive(Debug)]
struct Inner {
    fw: Framework,
    path: String,
    id: String,
    leader: watch::Sender<bool>,
    node: Mutex<Option<String>>,
    closed: Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A leader latch, compatible with Curator's `LeaderLatch` on the same
/// path.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::leader::{CloseMode, LeaderLatch};
/// let latch = LeaderLatch::new(&fw, "/services/scheduler/leader", "node-1");
/// latch.start().await?;
/// if latch.await_leadership(Some(Duration::from_secs(30))).await {
///     // lead, while latch.has_leadership()
/// }
/// latch.close_with_mode(CloseMode::NotifyLeader).await;
/// # Ok(()) }
/// ```
///
/// Dropping the last handle without [`LeaderLatch::close`] leaves the
/// election in the background (its node is deleted, so leadership passes
/// on), as if closed silently.
#[derive(Debug, Clone)]
pub struct LeaderLatch {
    inner: Arc<Inner>,
    /// Shared by the handles the user holds, not by the latch's own task.
    _owner: Option<Arc<Owner>>,
}

/// Leaves the election when the last user handle goes.
#[derive(Debug)]
struct Owner(Arc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        let inner = &self.0;
        inner.closed.notify_one();
        if let Some(t) = inner.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
        if let Some(n) = inner.node.lock().ok().and_then(|mut n| n.take()) {
            inner.fw.guaranteed_delete(n);
        }
        inner.leader.send_if_modified(|cur| std::mem::replace(cur, false));
    }
}

enum Wake {
    Changed,
    Suspended,
    Closed,
}

impl LeaderLatch {
    /// A latch on `path` for participant `id`.
    pub fn new(fw: &Framework, path: &str, id: &str) -> Self {
        let inner = Arc::new(Inner {
            fw: fw.clone(),
            path: path.trim_end_matches('/').to_string(),
            id: id.to_string(),
            leader: watch::Sender::new(false),
            node: Mutex::new(None),
            closed: Notify::new(),
            task: Mutex::new(None),
        });
        LeaderLatch { _owner: Some(Arc::new(Owner(inner.clone()))), inner }
    }

    /// Joins the election.
    ///
    /// # Errors
    /// None yet (the node is created in the background, with retries).
    pub async fn start(&self) -> Result<()> {
        // The task does not keep the latch in the election.
        let me = LeaderLatch { inner: self.inner.clone(), _owner: None };
        let handle = tokio::spawn(async move { me.run().await });
        if let Ok(mut t) = self.inner.task.lock() {
            *t = Some(handle);
        }
        Ok(())
    }

    /// Whether this participant leads now.
    pub fn has_leadership(&self) -> bool {
        *self.inner.leader.borrow()
    }

    /// Leadership changes, as a receiver of the current value.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.inner.leader.subscribe()
    }

    /// Waits until leader (or `timeout`); whether it is.
    pub async fn await_leadership(&self, timeout: Option<Duration>) -> bool {
        let mut rx = self.leadership();
        let wait = rx.wait_for(|l| *l);
        match timeout {
            None => wait.await.is_ok(),
            Some(t) => matches!(tokio::time::timeout(t, wait).await, Ok(Ok(_))),
        }
    }

    /// This participant's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The latch node of this participant, once made.
    pub fn our_node(&self) -> Option<String> {
        self.inner.node.lock().ok().and_then(|n| n.clone())
    }

    fn set_leader(&self, l: bool) {
        self.inner.leader.send_if_modified(|cur| std::mem::replace(cur, l) != l);
    }

    fn drop_node(&self) {
        let node = self.inner.node.lock().ok().and_then(|mut n| n.take());
        if let Some(n) = node {
            self.inner.fw.guaranteed_delete(n);
        }
    }

    /// Leaves the election and deletes the latch node, silently (Curator's
    /// `close()`: no `false` is sent on [`LeaderLatch::leadership`]).
    pub async fn close(&self) {
        self.close_with_mode(CloseMode::Silent).await;
    }

    /// Leaves the election, telling listeners or not (Curator's
    /// `close(CloseMode)`).
    pub async fn close_with_mode(&self, mode: CloseMode) {
        self.inner.closed.notify_one();
        let task = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
        let node = self.inner.node.lock().ok().and_then(|mut n| n.take());
        if let Some(n) = node {
            self.inner.fw.delete_guaranteed_now(n).await;
        }
        match mode {
            CloseMode::NotifyLeader => self.set_leader(false),
            CloseMode::Silent => {
                self.inner.leader.send_if_modified(|cur| {
                    *cur = false;
                    false
                });
            }
        }
    }

    async fn run(self) {
        let fw = self.inner.fw.clone();
        // Every state change, however short: a SUSPENDED followed at once
        // by RECONNECTED still ends leadership under the standard policy.
        let mut states = fw.state_follower();
        loop {
            // (Re)join: a fresh node.
            let created = fw
                .create_protected(
                    &format!("{}/{LATCH_NAME}", self.inner.path),
                    self.inner.id.as_bytes(),
                    CreateMode::EphemeralSequential,
                    &fw.default_acl(),
                    Some(true),
                )
                .await;
            let node = match created {
                Ok(n) => n,
                Err(e) => {
                    debug!(error = %e, "latch node not created; waiting for the connection");
                    if fw.is_closed() {
                        return;
                    }
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        states.wait_for(ConnectionState::is_connected),
                    )
                    .await;
                    continue;
                }
            };
            if let Ok(mut n) = self.inner.node.lock() {
                *n = Some(node.clone());
            }
            let name = node.rsplit('/').next().unwrap_or("").to_string();
            // Follow the queue until the connection is suspended.
            let suspended = loop {
                match self.check(&name, &node).await {
                    Ok(Some(w)) => match self.wait(w, &mut states).await {
                        Wake::Changed => continue,
                        Wake::Suspended => break true,
                        Wake::Closed => return,
                    },
                    Ok(None) => break false,
                    Err(_) => break true,
                }
            };
            self.set_leader(false);
            if suspended {
                // Wait for RECONNECTED (same or new session), then re-queue
                // with a new node, as Curator's reset().
                let _ = states
                    .wait_for(|s| matches!(s, ConnectionState::Reconnected | ConnectionState::Connected))
                    .await;
            }
            self.drop_node();
        }
    }

    /// One look at the queue: sets leadership and returns what to wait on;
    /// `None` when our node is gone.
    async fn check(&self, name: &str, node: &str) -> Result<Option<zk_client::OneshotWatcher>> {
        let client = self.inner.fw.client()?;
        let kids = sorted(client.get_children(&self.inner.path).await?, LATCH_NAME);
        let Some(idx) = kids.iter().position(|k| k == name) else { return Ok(None) };
        if idx == 0 {
            match client.exists_watch(node).await? {
                (Some(stat), w) if stat.ephemeral_owner == client.session_id() => {
                    self.set_leader(true);
                    Ok(Some(w))
                }
                _ => Ok(None),
            }
        } else {
            self.set_leader(false);
            let pred = format!("{}/{}", self.inner.path, kids[idx - 1]);
            match client.get_data_watch(&pred).await {
                Ok((_, _, w)) => Ok(Some(w)),
                Err(ZkError::NoNode) => Box::pin(self.check(name, node)).await,
                Err(e) => Err(e.into()),
            }
        }
    }

    async fn wait(&self, w: zk_client::OneshotWatcher, states: &mut StateFollower) -> Wake {
        let fw = &self.inner.fw;
        tokio::select! {
            ev = w => {
                // A session event (disconnect) ends leadership only where
                // the error policy says so; otherwise look again (the
                // reads wait for the connection).
                let state = fw.connection_state().unwrap_or(ConnectionState::Suspended);
                if ev.event_type == zk_client::EventType::None && fw.is_error_state(state) {
                    Wake::Suspended
                } else {
                    Wake::Changed
                }
            }
            r = states.next_matching(|s| fw.is_error_state(s)) => {
                if r.is_none() { Wake::Closed } else { Wake::Suspended }
            }
            _ = self.inner.closed.notified() => Wake::Closed,
        }
    }

    /// Every participant in queue order (the first leads).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn participants(&self) -> Result<Vec<Participant>> {
        participants(&self.inner.fw, &self.inner.path, LATCH_NAME).await
    }

    /// The current leader, if any.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn leader(&self) -> Result<Option<Participant>> {
        Ok(self.participants().await?.into_iter().next())
    }
}

pub(crate) async fn participants(fw: &Framework, path: &str, lock_name: &str) -> Result<Vec<Participant>> {
    let kids = match fw.get_children(path).await {
        Ok(k) => sorted(k, lock_name),
        Err(Error::Zk(ZkError::NoNode)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (i, k) in kids.iter().enumerate() {
        match fw.get_data(&format!("{path}/{k}")).await {
            Ok((data, _)) => {
                out.push(Participant { id: String::from_utf8_lossy(&data).into_owned(), is_leader: i == 0 })
            }
            Err(Error::Zk(ZkError::NoNode)) => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(first) = out.first_mut() {
        first.is_leader = true;
    }
    Ok(out)
}
