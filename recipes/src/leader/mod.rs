//! Leader election: [`LeaderLatch`] and [`LeaderSelector`].

mod latch;
mod selector;

pub use latch::{CloseMode, LeaderLatch};
pub use selector::{LeaderSelector, LeaderSelectorListener};

/// One contender, as Curator's `Participant`.
///
/// ```no_run
/// # async fn f(latch: zk_recipes::leader::LeaderLatch) -> zk_recipes::Result<()> {
/// for p in latch.participants().await? {
///     println!("{} {}", p.id, if p.is_leader { "(leader)" } else { "" });
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Its id (the node's data).
    pub id: String,
    /// Whether it is the leader.
    pub is_leader: bool,
}
