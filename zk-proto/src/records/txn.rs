//! `org.apache.zookeeper.txn`: the transactions a server logs and a leader
//! proposes. A logged entry is a [`TxnHeader`], the txn record its type
//! names, and (3.6+) an optional [`TxnDigest`].

use bytes::{Buf, BufMut, Bytes};

use crate::error::{ProtoError, Result};
use crate::jute::{Record, jute_record};
use crate::opcode::OpCode;
use crate::records::data::Acl;

jute_record! {
    /// Precedes every txn.
    #[derive(Copy)]
    pub struct TxnHeader {
        /// The session that issued the request.
        pub client_id: i64,
        /// The request's xid.
        pub cxid: i32,
        /// The zxid assigned to the txn.
        pub zxid: i64,
        /// The leader's wall clock when the txn was created (ms).
        pub time: i64,
        /// The txn type: the request's opcode, or -1 for an error txn.
        pub txn_type: OpCode,
    }
}

jute_record! {
    /// The digest of the data tree after a txn (3.6+).
    #[derive(Copy)]
    pub struct TxnDigest {
        /// Digest algorithm version.
        pub version: i32,
        /// The digest.
        pub tree_digest: i64,
    }
}

jute_record! {
    /// A create txn as written before 3.3 (no parentCVersion).
    pub struct CreateTxnV0 {
        /// Path of the node.
        pub path: String,
        /// Data.
        pub data: Option<Bytes>,
        /// ACL.
        pub acl: Vec<Acl>,
        /// Whether the node is ephemeral.
        pub ephemeral: bool,
    }
}

jute_record! {
    /// Creates a node (create and create2).
    pub struct CreateTxn {
        /// Path of the node.
        pub path: String,
        /// Data.
        pub data: Option<Bytes>,
        /// ACL.
        pub acl: Vec<Acl>,
        /// Whether the node is ephemeral (the owner is the header's client id).
        pub ephemeral: bool,
        /// The parent's cversion after this create (makes replay idempotent).
        pub parent_c_version: i32,
    }
}

jute_record! {
    /// Creates a TTL node.
    pub struct CreateTtlTxn {
        /// Path of the node.
        pub path: String,
        /// Data.
        pub data: Option<Bytes>,
        /// ACL.
        pub acl: Vec<Acl>,
        /// The parent's cversion after this create.
        pub parent_c_version: i32,
        /// Time to live in milliseconds.
        pub ttl: i64,
    }
}

jute_record! {
    /// Creates a container node.
    pub struct CreateContainerTxn {
        /// Path of the node.
        pub path: String,
        /// Data.
        pub data: Option<Bytes>,
        /// ACL.
        pub acl: Vec<Acl>,
        /// The parent's cversion after this create.
        pub parent_c_version: i32,
    }
}

jute_record! {
    /// Deletes a node (delete and deleteContainer).
    pub struct DeleteTxn {
        /// Path of the node.
        pub path: String,
    }
}

jute_record! {
    /// Sets a node's data (also carries the new config of a reconfig).
    pub struct SetDataTxn {
        /// Path of the node.
        pub path: String,
        /// New data.
        pub data: Option<Bytes>,
        /// The node's version after the change.
        pub version: i32,
    }
}

jute_record! {
    /// A version check inside a multi.
    pub struct CheckVersionTxn {
        /// Path of the node.
        pub path: String,
        /// The version checked.
        pub version: i32,
    }
}

jute_record! {
    /// Sets a node's ACL.
    pub struct SetAclTxn {
        /// Path of the node.
        pub path: String,
        /// New ACL.
        pub acl: Vec<Acl>,
        /// The node's aversion after the change.
        pub version: i32,
    }
}

jute_record! {
    /// Legacy.
    pub struct SetMaxChildrenTxn {
        /// Path of the node.
        pub path: String,
        /// The limit.
        pub max: i32,
    }
}

jute_record! {
    /// Creates a session.
    pub struct CreateSessionTxn {
        /// The negotiated timeout in milliseconds.
        pub time_out: i32,
    }
}

jute_record! {
    /// Closes a session and deletes its ephemerals.
    pub struct CloseSessionTxn {
        /// The ephemeral nodes removed with the session.
        pub paths2_delete: Vec<String>,
    }
}

jute_record! {
    /// A txn that failed (inside a failed multi, or a failed request).
    #[derive(Copy)]
    pub struct ErrorTxn {
        /// The error code.
        pub err: i32,
    }
}

jute_record! {
    /// One sub-txn of a multi: its type and its encoded record.
    pub struct Txn {
        /// The sub-txn type.
        pub txn_type: i32,
        /// The encoded txn record.
        pub data: Option<Bytes>,
    }
}

jute_record! {
    /// The txns of a multi, applied atomically.
    pub struct MultiTxn {
        /// The sub-txns.
        pub txns: Vec<Txn>,
    }
}

/// The record of a txn, chosen by the header's type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxnBody {
    /// create / create2.
    Create(CreateTxn),
    /// A pre-3.3 create.
    CreateV0(CreateTxnV0),
    /// createContainer.
    CreateContainer(CreateContainerTxn),
    /// createTTL.
    CreateTtl(CreateTtlTxn),
    /// delete / deleteContainer.
    Delete(DeleteTxn),
    /// setData.
    SetData(SetDataTxn),
    /// setACL.
    SetAcl(SetAclTxn),
    /// check (inside a multi).
    Check(CheckVersionTxn),
    /// multi.
    Multi(MultiTxn),
    /// createSession.
    CreateSession(CreateSessionTxn),
    /// closeSession; `None` when written without a body
    /// (`closeSessionTxn.enabled=false`, or before 3.6).
    CloseSession(Option<CloseSessionTxn>),
    /// error.
    Error(ErrorTxn),
    /// reconfig (the new config as node data).
    Reconfig(SetDataTxn),
    /// Legacy setMaxChildren (type 1000 in old logs is not produced by any
    /// supported version; kept for completeness).
    SetMaxChildren(SetMaxChildrenTxn),
}

impl TxnBody {
    /// Encodes the record (without header).
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            TxnBody::Create(t) => t.encode(buf),
            TxnBody::CreateV0(t) => t.encode(buf),
            TxnBody::CreateContainer(t) => t.encode(buf),
            TxnBody::CreateTtl(t) => t.encode(buf),
            TxnBody::Delete(t) => t.encode(buf),
            TxnBody::SetData(t) | TxnBody::Reconfig(t) => t.encode(buf),
            TxnBody::SetAcl(t) => t.encode(buf),
            TxnBody::Check(t) => t.encode(buf),
            TxnBody::Multi(t) => t.encode(buf),
            TxnBody::CreateSession(t) => t.encode(buf),
            TxnBody::CloseSession(Some(t)) => t.encode(buf),
            TxnBody::CloseSession(None) => {}
            TxnBody::Error(t) => t.encode(buf),
            TxnBody::SetMaxChildren(t) => t.encode(buf),
        }
    }

    /// Decodes the record of a txn of type `txn_type`.
    ///
    /// # Errors
    /// [`ProtoError::UnknownTxnType`] for a type without a txn record, or a
    /// decode error.
    pub fn decode(txn_type: OpCode, buf: &mut Bytes) -> Result<Self> {
        Ok(match txn_type {
            OpCode::Create | OpCode::Create2 => {
                // Java's SerializeUtils falls back to CreateTxnV0 when the
                // record ends before parentCVersion.
                let mut probe = buf.clone();
                match CreateTxn::decode(&mut probe) {
                    Ok(t) => {
                        *buf = probe;
                        TxnBody::Create(t)
                    }
                    Err(ProtoError::UnexpectedEof { .. }) => TxnBody::CreateV0(CreateTxnV0::decode(buf)?),
                    Err(e) => return Err(e),
                }
            }
            OpCode::CreateContainer => TxnBody::CreateContainer(CreateContainerTxn::decode(buf)?),
            OpCode::CreateTtl => TxnBody::CreateTtl(CreateTtlTxn::decode(buf)?),
            OpCode::Delete | OpCode::DeleteContainer => TxnBody::Delete(DeleteTxn::decode(buf)?),
            OpCode::SetData => TxnBody::SetData(SetDataTxn::decode(buf)?),
            OpCode::SetAcl => TxnBody::SetAcl(SetAclTxn::decode(buf)?),
            OpCode::Check => TxnBody::Check(CheckVersionTxn::decode(buf)?),
            OpCode::Multi => TxnBody::Multi(MultiTxn::decode(buf)?),
            OpCode::CreateSession => TxnBody::CreateSession(CreateSessionTxn::decode(buf)?),
            OpCode::CloseSession => {
                if buf.has_remaining() {
                    TxnBody::CloseSession(Some(CloseSessionTxn::decode(buf)?))
                } else {
                    TxnBody::CloseSession(None)
                }
            }
            OpCode::Error => TxnBody::Error(ErrorTxn::decode(buf)?),
            OpCode::Reconfig => TxnBody::Reconfig(SetDataTxn::decode(buf)?),
            other => return Err(ProtoError::UnknownTxnType(other.code())),
        })
    }
}

/// One entry of a transaction log, or one proposal: header, record and the
/// optional digest.
///
/// ```
/// use bytes::Bytes;
/// use zk_proto::{OpCode, Record};
/// use zk_proto::records::{DeleteTxn, LoggedTxn, TxnBody, TxnHeader};
///
/// let txn = LoggedTxn {
///     header: TxnHeader { client_id: 1, cxid: 2, zxid: 3, time: 4, txn_type: OpCode::Delete },
///     body: TxnBody::Delete(DeleteTxn { path: "/a".into() }),
///     digest: None,
/// };
/// let bytes = txn.to_bytes();
/// assert_eq!(LoggedTxn::decode(&mut bytes.clone()).unwrap(), txn);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedTxn {
    /// The header.
    pub header: TxnHeader,
    /// The record.
    pub body: TxnBody,
    /// The tree digest after the txn, when digests are enabled.
    pub digest: Option<TxnDigest>,
}

impl Record for LoggedTxn {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.header.encode(buf);
        self.body.encode(buf);
        if let Some(d) = &self.digest {
            d.encode(buf);
        }
    }

    /// Reads a whole entry: the digest is read when bytes are left after the
    /// record, so the input must hold exactly one entry.
    fn decode(buf: &mut Bytes) -> Result<Self> {
        let header = TxnHeader::decode(buf)?;
        let body = TxnBody::decode(header.txn_type, buf)?;
        let digest = if buf.has_remaining() { Some(TxnDigest::decode(buf)?) } else { None };
        Ok(LoggedTxn { header, body, digest })
    }
}
