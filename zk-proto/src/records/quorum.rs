//! `org.apache.zookeeper.server.quorum`: what ensemble peers exchange.

use bytes::Bytes;

use crate::jute::jute_record;
use crate::records::data::Id;

jute_record! {
    /// A learner's hello to the leader (FOLLOWERINFO / OBSERVERINFO data).
    #[derive(Copy)]
    pub struct LearnerInfo {
        /// The learner's server id (`myid`).
        pub serverid: i64,
        /// The learner's protocol version (0x10000).
        pub protocol_version: i32,
        /// The learner's config version.
        pub config_version: i64,
    }
}

jute_record! {
    /// Every message between a leader and its learners.
    pub struct QuorumPacket {
        /// One of [`packet_type`].
        pub packet_type: i32,
        /// The zxid the packet is about.
        pub zxid: i64,
        /// Type-specific payload; Java peers send null for most types.
        pub data: Option<Bytes>,
        /// Auth info of a forwarded request; Java peers send null otherwise.
        pub authinfo: Option<Vec<Id>>,
    }
}

jute_record! {
    /// Quorum SASL authentication.
    pub struct QuorumAuthPacket {
        /// Magic number.
        pub magic: i64,
        /// Status of the exchange.
        pub status: i32,
        /// SASL token.
        pub token: Option<Bytes>,
    }
}

/// `Leader.java`'s packet types, the `packet_type` of a [`QuorumPacket`].
pub mod packet_type {
    /// Learner forwards a client write or sync.
    pub const REQUEST: i32 = 1;
    /// Leader proposes a txn.
    pub const PROPOSAL: i32 = 2;
    /// Learner logged a proposal (also the NEWLEADER ack).
    pub const ACK: i32 = 3;
    /// Leader commits a zxid.
    pub const COMMIT: i32 = 4;
    /// Heartbeat; a learner's reply carries its touched sessions.
    pub const PING: i32 = 5;
    /// Session revalidation.
    pub const REVALIDATE: i32 = 6;
    /// Answer to a forwarded sync.
    pub const SYNC: i32 = 7;
    /// Commit with data, to observers.
    pub const INFORM: i32 = 8;
    /// Commit of a reconfig.
    pub const COMMITANDACTIVATE: i32 = 9;
    /// End of the sync phase.
    pub const NEWLEADER: i32 = 10;
    /// A follower's hello.
    pub const FOLLOWERINFO: i32 = 11;
    /// Start serving.
    pub const UPTODATE: i32 = 12;
    /// Sync by sending the missing txns.
    pub const DIFF: i32 = 13;
    /// Sync by truncating the learner's log.
    pub const TRUNC: i32 = 14;
    /// Sync by sending a snapshot.
    pub const SNAP: i32 = 15;
    /// An observer's hello.
    pub const OBSERVERINFO: i32 = 16;
    /// The leader's new epoch.
    pub const LEADERINFO: i32 = 17;
    /// A learner accepts the new epoch.
    pub const ACKEPOCH: i32 = 18;
    /// Inform-and-activate of a reconfig, to observers.
    pub const INFORMANDACTIVATE: i32 = 19;
}

/// The protocol version a 3.4+ learner announces in [`LearnerInfo`].
pub const LEARNER_PROTOCOL_VERSION: i32 = 0x10000;
