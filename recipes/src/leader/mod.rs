//! Leader election: [`LeaderLatch`] and [`LeaderSelector`].

mod latch;
mod selector;

pub use latch::{CloseMode, LeaderLatch};
pub use selector::{LeaderSelector, LeaderSelectorListener};

/// One contender, as Curator's `Participant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Its id (the node's data).
    pub id: String,
    /// Whether it is the leader.
    pub is_leader: bool,
}
