//! Every record of Apache ZooKeeper 3.9's `zookeeper.jute`, grouped as the
//! jute file groups them, plus the hand-written ones (connect with its
//! optional read-only flag, multi, logged txns).

mod connect;
mod data;
mod header;
mod multi;
mod ops;
mod persistence;
mod quorum;
mod txn;

pub use connect::{ConnectRequest, ConnectResponse};
pub use data::{Acl, ClientInfo, Id, Stat, StatPersisted};
pub use header::{MultiHeader, ReplyHeader, RequestHeader};
pub use multi::{MultiOp, MultiRequest, MultiResponse, MultiResult};
pub use ops::*;
pub use persistence::{END_OF_RECORD, FILE_VERSION, FileHeader, SNAP_MAGIC, TXNLOG_MAGIC};
pub use quorum::{LEARNER_PROTOCOL_VERSION, LearnerInfo, QuorumAuthPacket, QuorumPacket, packet_type};
pub use txn::{
    CheckVersionTxn, CloseSessionTxn, CreateContainerTxn, CreateSessionTxn, CreateTtlTxn, CreateTxn,
    CreateTxnV0, DeleteTxn, ErrorTxn, LoggedTxn, MultiTxn, SetAclTxn, SetDataTxn, SetMaxChildrenTxn, Txn,
    TxnBody, TxnDigest, TxnHeader,
};
