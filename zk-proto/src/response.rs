//! A reply body, typed by the opcode of the request it answers: what a
//! client decodes after a [`ReplyHeader`](crate::records::ReplyHeader)
//! whose `err` is OK (or for multi, always).

use bytes::{BufMut, Bytes};

use crate::error::Result;
use crate::jute::Record;
use crate::opcode::OpCode;
use crate::records::*;

/// The body of a successful reply.
///
/// ```
/// use zk_proto::{OpCode, Response, Record};
/// use zk_proto::records::{ExistsResponse, Stat};
///
/// let rsp = Response::Exists(ExistsResponse { stat: Stat { version: 3, ..Stat::default() } });
/// let body = rsp.body_bytes();
/// assert_eq!(body.len(), 68);
/// assert_eq!(Response::decode(OpCode::Exists, body).unwrap(), rsp);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// create.
    Create(CreateResponse),
    /// create2, createContainer, createTTL.
    Create2(Create2Response),
    /// exists.
    Exists(ExistsResponse),
    /// getData, and reconfig (the new config).
    GetData(GetDataResponse),
    /// setData.
    SetData(SetDataResponse),
    /// getACL.
    GetAcl(GetAclResponse),
    /// setACL.
    SetAcl(SetAclResponse),
    /// getChildren.
    GetChildren(GetChildrenResponse),
    /// getChildren2.
    GetChildren2(GetChildren2Response),
    /// sync.
    Sync(SyncResponse),
    /// multi and multiRead.
    Multi(MultiResponse),
    /// getEphemerals.
    GetEphemerals(GetEphemeralsResponse),
    /// getAllChildrenNumber.
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    /// whoAmI.
    WhoAmI(WhoAmIResponse),
    /// sasl.
    Sasl(SetSaslResponse),
    /// addWatch: Apache answers with an `ErrorResponse{0}` body.
    AddWatch(ErrorResponse),
    /// A reply with no body: delete, ping, check, setWatches, auth,
    /// checkWatches, removeWatches, closeSession.
    Empty,
}

impl Response {
    /// Appends the body.
    pub fn encode_body<B: BufMut>(&self, buf: &mut B) {
        match self {
            Response::Create(r) => r.encode(buf),
            Response::Create2(r) => r.encode(buf),
            Response::Exists(r) => r.encode(buf),
            Response::GetData(r) => r.encode(buf),
            Response::SetData(r) => r.encode(buf),
            Response::GetAcl(r) => r.encode(buf),
            Response::SetAcl(r) => r.encode(buf),
            Response::GetChildren(r) => r.encode(buf),
            Response::GetChildren2(r) => r.encode(buf),
            Response::Sync(r) => r.encode(buf),
            Response::Multi(r) => r.encode(buf),
            Response::GetEphemerals(r) => r.encode(buf),
            Response::GetAllChildrenNumber(r) => r.encode(buf),
            Response::WhoAmI(r) => r.encode(buf),
            Response::Sasl(r) => r.encode(buf),
            Response::AddWatch(r) => r.encode(buf),
            Response::Empty => {}
        }
    }

    /// The body encoded into a fresh buffer.
    pub fn body_bytes(&self) -> Bytes {
        let mut buf = bytes::BytesMut::new();
        self.encode_body(&mut buf);
        buf.freeze()
    }

    /// Decodes the body of a successful reply to a request of type `opcode`.
    ///
    /// # Errors
    /// A decode error when the body is malformed.
    pub fn decode(opcode: OpCode, mut body: Bytes) -> Result<Self> {
        let buf = &mut body;
        Ok(match opcode {
            OpCode::Create => Response::Create(CreateResponse::decode(buf)?),
            OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
                Response::Create2(Create2Response::decode(buf)?)
            }
            OpCode::Exists => Response::Exists(ExistsResponse::decode(buf)?),
            OpCode::GetData | OpCode::Reconfig => Response::GetData(GetDataResponse::decode(buf)?),
            OpCode::SetData => Response::SetData(SetDataResponse::decode(buf)?),
            OpCode::GetAcl => Response::GetAcl(GetAclResponse::decode(buf)?),
            OpCode::SetAcl => Response::SetAcl(SetAclResponse::decode(buf)?),
            OpCode::GetChildren => Response::GetChildren(GetChildrenResponse::decode(buf)?),
            OpCode::GetChildren2 => Response::GetChildren2(GetChildren2Response::decode(buf)?),
            OpCode::Sync => Response::Sync(SyncResponse::decode(buf)?),
            OpCode::Multi | OpCode::MultiRead => Response::Multi(MultiResponse::decode(buf)?),
            OpCode::GetEphemerals => Response::GetEphemerals(GetEphemeralsResponse::decode(buf)?),
            OpCode::GetAllChildrenNumber => {
                Response::GetAllChildrenNumber(GetAllChildrenNumberResponse::decode(buf)?)
            }
            OpCode::WhoAmI => Response::WhoAmI(WhoAmIResponse::decode(buf)?),
            OpCode::Sasl => Response::Sasl(SetSaslResponse::decode(buf)?),
            OpCode::AddWatch => Response::AddWatch(ErrorResponse::decode(buf)?),
            _ => Response::Empty,
        })
    }
}
