//! Curator's barriers: [`DistributedBarrier`] (wait while a node exists)
//! and [`DistributedDoubleBarrier`] (enter together, leave together),
//! with Curator's layouts (kazoo's `Barrier` and `DoubleBarrier` use the
//! same ones).

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;
use zk_client::{CreateMode, Error as ZkError};

use crate::error::{Error, Result};
use crate::framework::{DEFAULT_DATA, Framework, watch_fired_by};

/// A barrier: closed while its node exists (Curator's
/// `DistributedBarrier`). Some process sets it; others wait on it; some
/// process removes it and all waiters go on.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::barriers::DistributedBarrier;
///
/// let barrier = DistributedBarrier::new(&fw, "/barriers/deploy");
/// barrier.set_barrier().await?;
/// // elsewhere: barrier.wait_on_barrier().await?;
/// barrier.remove_barrier().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DistributedBarrier {
    fw: Framework,
    path: String,
}

impl DistributedBarrier {
    /// A barrier at `path`.
    pub fn new(fw: &Framework, path: &str) -> Self {
        DistributedBarrier { fw: fw.clone(), path: path.to_string() }
    }

    /// Closes the barrier (creates its node and missing parents as
    /// containers; already set is fine).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn set_barrier(&self) -> Result<()> {
        match self.fw.create().creating_parent_containers_if_needed().for_path(&self.path, DEFAULT_DATA).await
        {
            Ok(_) | Err(Error::Zk(ZkError::NodeExists)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Opens the barrier (deletes its node; already open is fine).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn remove_barrier(&self) -> Result<()> {
        match self.fw.delete().for_path(&self.path).await {
            Ok(()) | Err(Error::Zk(ZkError::NoNode)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits until the barrier is open.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn wait_on_barrier(&self) -> Result<()> {
        self.wait_until(None).await.map(drop)
    }

    /// Waits at most `timeout`; whether the barrier is open.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn wait_on_barrier_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_until(Some(Instant::now() + timeout)).await
    }

    async fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        loop {
            let (stat, w) = self.fw.with_retry(|c| c.exists_watch(&self.path)).await?;
            if stat.is_none() {
                return Ok(true);
            }
            if !watch_fired_by(w, deadline).await {
                return Ok(false);
            }
        }
    }
}

const READY_NODE: &str = "ready";

/// A double barrier (Curator's `DistributedDoubleBarrier`): members
/// [`enter`](Self::enter) and wait until `member_qty` of them have, work,
/// then [`leave`](Self::leave) and wait until all have left.
///
/// Layout: each member is an ephemeral `<path>/<uuid>`; the persistent
/// `<path>/ready` is created by the member that completes the count and
/// deleted when the last one leaves.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use zk_recipes::barriers::DistributedDoubleBarrier;
///
/// let barrier = DistributedDoubleBarrier::new(&fw, "/barriers/job-7", 3)?;
/// barrier.enter().await?;   // all three are here
/// // ... the computation ...
/// barrier.leave().await?;   // all three are done
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DistributedDoubleBarrier {
    fw: Framework,
    path: String,
    member_qty: usize,
    our_name: String,
}

impl DistributedDoubleBarrier {
    /// A double barrier at `path` for `member_qty` members.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `member_qty` is 0.
    pub fn new(fw: &Framework, path: &str, member_qty: usize) -> Result<Self> {
        if member_qty == 0 {
            return Err(Error::InvalidArgument("member_qty cannot be 0"));
        }
        Ok(DistributedDoubleBarrier {
            fw: fw.clone(),
            path: path.trim_end_matches('/').to_string(),
            member_qty,
            our_name: Uuid::new_v4().to_string(),
        })
    }

    fn child(&self, name: &str) -> String {
        format!("{}/{name}", self.path)
    }

    /// Joins and waits until `member_qty` members have joined.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn enter(&self) -> Result<()> {
        self.enter_until(None).await.map(drop)
    }

    /// Joins and waits at most `timeout`; whether the barrier filled.
    /// (On `false` this member has still joined: call
    /// [`leave`](Self::leave).)
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn enter_timeout(&self, timeout: Duration) -> Result<bool> {
        self.enter_until(Some(Instant::now() + timeout)).await
    }

    async fn enter_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let ready = self.child(READY_NODE);
        let (ready_stat, mut ready_watch) = self.fw.with_retry(|c| c.exists_watch(&ready)).await?;
        match self
            .fw
            .create()
            .creating_parent_containers_if_needed()
            .with_mode(CreateMode::Ephemeral)
            .for_path(&self.child(&self.our_name), DEFAULT_DATA)
            .await
        {
            // NodeExists: a retried create that had worked.
            Ok(_) | Err(Error::Zk(ZkError::NodeExists)) => {}
            Err(e) => return Err(e),
        }
        if ready_stat.is_some() {
            return Ok(true);
        }
        loop {
            let count = self.fw.get_children(&self.path).await?.len();
            if count >= self.member_qty {
                match self.fw.create().for_path(&ready, DEFAULT_DATA).await {
                    Ok(_) | Err(Error::Zk(ZkError::NodeExists)) => return Ok(true),
                    Err(e) => return Err(e),
                }
            }
            if !watch_fired_by(ready_watch, deadline).await {
                return Ok(false);
            }
            // Ready was created (or a spurious session event): re-check.
            let (stat, w) = self.fw.with_retry(|c| c.exists_watch(&ready)).await?;
            if stat.is_some() {
                return Ok(true);
            }
            ready_watch = w;
        }
    }

    /// Leaves and waits until every member has left.
    ///
    /// # Errors
    /// Client errors after retries; [`Error::Lost`] when this member's
    /// node is gone (its session was lost).
    pub async fn leave(&self) -> Result<()> {
        self.leave_until(None).await.map(drop)
    }

    /// Leaves and waits at most `timeout`; whether all have left.
    ///
    /// # Errors
    /// As [`DistributedDoubleBarrier::leave`].
    pub async fn leave_timeout(&self, timeout: Duration) -> Result<bool> {
        self.leave_until(Some(Instant::now() + timeout)).await
    }

    /// Curator's algorithm: the lowest member waits for the highest to
    /// go; every other member deletes its node and waits for the lowest.
    async fn leave_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let mut ours_should_exist = true;
        let mut result = true;
        loop {
            let mut children = match self.fw.get_children(&self.path).await {
                Ok(k) => k,
                Err(Error::Zk(ZkError::NoNode)) => Vec::new(),
                Err(e) => return Err(e),
            };
            children.retain(|c| c != READY_NODE);
            children.sort();
            if children.is_empty() {
                break;
            }
            let ours = children.iter().position(|c| *c == self.our_name);
            if ours.is_none() && ours_should_exist {
                return Err(Error::Lost("this member's barrier node is gone"));
            }
            if children.len() == 1 {
                if ours_should_exist && children[0] != self.our_name {
                    return Err(Error::Lost("the last member's node is not ours"));
                }
                if ours_should_exist {
                    self.delete_ours().await?;
                }
                break;
            }
            let (stat, w) = if ours == Some(0) {
                let highest = self.child(&children[children.len() - 1]);
                self.fw.with_retry(|c| c.exists_watch(&highest)).await?
            } else {
                let lowest = self.child(&children[0]);
                let r = self.fw.with_retry(|c| c.exists_watch(&lowest)).await?;
                if ours_should_exist {
                    self.delete_ours().await?;
                }
                ours_should_exist = false;
                r
            };
            if stat.is_some() && !watch_fired_by(w, deadline).await {
                result = false;
                break;
            }
        }
        match self.fw.delete().for_path(&self.child(READY_NODE)).await {
            Ok(()) | Err(Error::Zk(ZkError::NoNode)) => Ok(result),
            Err(e) => Err(e),
        }
    }

    async fn delete_ours(&self) -> Result<()> {
        match self.fw.delete().for_path(&self.child(&self.our_name)).await {
            Ok(()) | Err(Error::Zk(ZkError::NoNode)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
