//! A client request body, typed by its opcode: what a server decodes after
//! the [`RequestHeader`](crate::records::RequestHeader).

use bytes::{BufMut, Bytes};

use crate::error::Result;
use crate::jute::Record;
use crate::opcode::OpCode;
use crate::records::*;

macro_rules! requests {
    (
        records { $( $(#[$m:meta])* $variant:ident($ty:ty) = $op:ident, )* }
        empty { $( $(#[$em:meta])* $evariant:ident = $eop:ident, )* }
    ) => {
        /// The body of a client request, one variant per opcode.
        ///
        /// ```
        /// use bytes::Bytes;
        /// use zk_proto::{OpCode, Request, Record};
        /// use zk_proto::records::DeleteRequest;
        ///
        /// let req = Request::Delete(DeleteRequest { path: "/a".into(), version: -1 });
        /// let body = req.body_bytes();
        /// assert_eq!(Request::decode(OpCode::Delete, body).unwrap(), req);
        /// // An opcode this crate does not know is kept with its bytes.
        /// let unknown = Request::decode(OpCode::from(77), Bytes::from_static(b"xyz")).unwrap();
        /// assert_eq!(unknown.opcode(), OpCode::Unknown(77));
        /// ```
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Request {
            $( $(#[$m])* $variant($ty), )*
            $( $(#[$em])* $evariant, )*
            /// An opcode without a request record here; the raw body is kept
            /// so that a server can answer Unimplemented.
            Unknown {
                /// The opcode as received.
                opcode: OpCode,
                /// The raw body.
                body: Bytes,
            },
        }

        impl Request {
            /// The opcode of this request.
            pub fn opcode(&self) -> OpCode {
                match self {
                    $( Request::$variant(_) => OpCode::$op, )*
                    $( Request::$evariant => OpCode::$eop, )*
                    Request::Unknown { opcode, .. } => *opcode,
                }
            }

            /// Appends the body (without header).
            pub fn encode_body<B: BufMut>(&self, buf: &mut B) {
                match self {
                    $( Request::$variant(r) => r.encode(buf), )*
                    $( Request::$evariant => {} )*
                    Request::Unknown { body, .. } => buf.put_slice(body),
                }
            }

            /// Decodes the body of a request of type `opcode`. Bytes after
            /// the record are ignored, as Apache's server ignores them.
            ///
            /// # Errors
            /// A decode error when the body is malformed. An unknown opcode
            /// is not an error: it yields [`Request::Unknown`].
            pub fn decode(opcode: OpCode, mut body: Bytes) -> Result<Self> {
                let buf = &mut body;
                Ok(match opcode {
                    $( OpCode::$op => Request::$variant(<$ty>::decode(buf)?), )*
                    $( OpCode::$eop => Request::$evariant, )*
                    other => Request::Unknown { opcode: other, body },
                })
            }
        }
    };
}

requests! {
    records {
        /// create.
        Create(CreateRequest) = Create,
        /// create2.
        Create2(CreateRequest) = Create2,
        /// createContainer.
        CreateContainer(CreateRequest) = CreateContainer,
        /// createTTL.
        CreateTtl(CreateTtlRequest) = CreateTtl,
        /// delete.
        Delete(DeleteRequest) = Delete,
        /// deleteContainer (server internal; clients never send it).
        DeleteContainer(DeleteRequest) = DeleteContainer,
        /// exists.
        Exists(ExistsRequest) = Exists,
        /// getData.
        GetData(GetDataRequest) = GetData,
        /// setData.
        SetData(SetDataRequest) = SetData,
        /// getACL.
        GetAcl(GetAclRequest) = GetAcl,
        /// setACL.
        SetAcl(SetAclRequest) = SetAcl,
        /// getChildren.
        GetChildren(GetChildrenRequest) = GetChildren,
        /// getChildren2.
        GetChildren2(GetChildren2Request) = GetChildren2,
        /// sync.
        Sync(SyncRequest) = Sync,
        /// check (valid only inside a multi; a server answers it Unimplemented).
        Check(CheckVersionRequest) = Check,
        /// multi.
        Multi(MultiRequest) = Multi,
        /// multiRead.
        MultiRead(MultiRequest) = MultiRead,
        /// reconfig.
        Reconfig(ReconfigRequest) = Reconfig,
        /// checkWatches.
        CheckWatches(CheckWatchesRequest) = CheckWatches,
        /// removeWatches.
        RemoveWatches(RemoveWatchesRequest) = RemoveWatches,
        /// auth (xid -4).
        Auth(AuthPacket) = Auth,
        /// setWatches (xid -8).
        SetWatches(SetWatches) = SetWatches,
        /// setWatches2 (xid -8).
        SetWatches2(SetWatches2) = SetWatches2,
        /// sasl.
        Sasl(GetSaslRequest) = Sasl,
        /// getEphemerals.
        GetEphemerals(GetEphemeralsRequest) = GetEphemerals,
        /// getAllChildrenNumber.
        GetAllChildrenNumber(GetAllChildrenNumberRequest) = GetAllChildrenNumber,
        /// addWatch.
        AddWatch(AddWatchRequest) = AddWatch,
    }
    empty {
        /// ping (xid -2).
        Ping = Ping,
        /// whoAmI.
        WhoAmI = WhoAmI,
        /// closeSession.
        CloseSession = CloseSession,
    }
}

impl Request {
    /// The body encoded into a fresh buffer.
    pub fn body_bytes(&self) -> Bytes {
        let mut buf = bytes::BytesMut::new();
        self.encode_body(&mut buf);
        buf.freeze()
    }

    /// The path the request acts on, if it has exactly one.
    pub fn path(&self) -> Option<&str> {
        Some(match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => &r.path,
            Request::CreateTtl(r) => &r.path,
            Request::Delete(r) | Request::DeleteContainer(r) => &r.path,
            Request::Exists(r) => &r.path,
            Request::GetData(r) => &r.path,
            Request::SetData(r) => &r.path,
            Request::GetAcl(r) => &r.path,
            Request::SetAcl(r) => &r.path,
            Request::GetChildren(r) => &r.path,
            Request::GetChildren2(r) => &r.path,
            Request::Sync(r) => &r.path,
            Request::Check(r) => &r.path,
            Request::CheckWatches(r) => &r.path,
            Request::RemoveWatches(r) => &r.path,
            Request::GetEphemerals(r) => &r.prefix_path,
            Request::GetAllChildrenNumber(r) => &r.path,
            Request::AddWatch(r) => &r.path,
            _ => return None,
        })
    }
}
