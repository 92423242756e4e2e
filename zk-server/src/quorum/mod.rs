//! The ensemble: configuration, the election port's wire format, and fast
//! leader election as a sans-io state machine.
//!
//! `config.rs` (`server.N`, groups and weights, the quorum rule),
//! `wire.rs` (the initial message and notifications, byte for byte as
//! Apache's), `election.rs` (`FastLeaderElection`'s rules, tested over a
//! simulated lossy network), `peer_net.rs` (the election port's
//! connections, as Apache's `QuorumCnxManager` makes them), `runner.rs`
//! (the election's thin driver), `zab.rs` (the leader's and the learner's
//! ZAB, sans-io), `serve.rs` (a running server's election loop and quorum
//! links) and `zab_net.rs` (quorum packets on a stream). The roles run
//! inside the core, between prep and apply (`pipeline/quorum.rs`).
//!
//! ```
//! use zk_server::quorum::config::{LearnerType, QuorumServer, QuorumVerifier};
//! use zk_server::quorum::election::{Election, ElectionOut, Identity};
//!
//! let s = QuorumServer::parse(1, "zk1:2888:3888;2181").unwrap();
//! assert_eq!((s.quorum_port, s.election_port, s.learner_type), (2888, 3888, LearnerType::Participant));
//!
//! // Server 1 of three starts an election: it votes for itself and tells
//! // the two others.
//! let me = Identity {
//!     my_id: 1,
//!     learner_type: LearnerType::Participant,
//!     verifier: QuorumVerifier::Majority { voters: [1, 2, 3].into() },
//!     config: bytes::Bytes::from_static(b"version=0"),
//! };
//! let mut e = Election::start(me, 0, 0x1_0000_0004, 1, 0);
//! let sent: Vec<i64> =
//!     e.drain().into_iter().filter_map(|o| if let ElectionOut::Send { to, .. } = o { Some(to) } else { None }).collect();
//! assert_eq!(sent, vec![2, 3]);
//! ```

pub mod config;
pub mod election;
pub mod peer_net;
pub mod runner;
pub(crate) mod serve;
pub mod wire;
pub mod zab;
pub mod zab_net;

#[cfg(test)]
mod lincheck;
#[cfg(test)]
mod sim;
