//! multi and multiRead on the wire (`MultiOperationRecord`,
//! `MultiResponse`).
//!
//! A request is a sequence of `MultiHeader{type, done=false, err=-1}` each
//! followed by the op's record, ended by `MultiHeader{-1, true, -1}`. A
//! response is `MultiHeader{type, false, err}` and the result's record per
//! op, with the same end marker. A failed multi is answered with
//! `ReplyHeader.err = 0` and an error result per op: 0 for ops before the
//! failing one, its code for it and RuntimeInconsistency after it.

use bytes::{BufMut, Bytes};

use crate::error::{ProtoError, Result};
use crate::error_code::ErrorCode;
use crate::jute::Record;
use crate::opcode::OpCode;
use crate::records::data::Stat;
use crate::records::header::MultiHeader;
use crate::records::ops::{
    CheckVersionRequest, Create2Response, CreateRequest, CreateResponse, CreateTtlRequest, DeleteRequest,
    ErrorResponse, GetChildrenRequest, GetChildrenResponse, GetDataRequest, GetDataResponse, SetDataRequest,
    SetDataResponse,
};

const END: MultiHeader = MultiHeader { opcode: OpCode::Error, done: true, err: -1 };

/// One op of a multi or multiRead request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MultiOp {
    /// create; the result is a path.
    Create(CreateRequest),
    /// create2; the result is a path and a Stat.
    Create2(CreateRequest),
    /// createContainer.
    CreateContainer(CreateRequest),
    /// createTTL.
    CreateTtl(CreateTtlRequest),
    /// delete.
    Delete(DeleteRequest),
    /// setData.
    SetData(SetDataRequest),
    /// check.
    Check(CheckVersionRequest),
    /// getData (multiRead only).
    GetData(GetDataRequest),
    /// getChildren (multiRead only).
    GetChildren(GetChildrenRequest),
}

impl MultiOp {
    /// The op's type in its `MultiHeader`.
    pub fn opcode(&self) -> OpCode {
        match self {
            MultiOp::Create(_) => OpCode::Create,
            MultiOp::Create2(_) => OpCode::Create2,
            MultiOp::CreateContainer(_) => OpCode::CreateContainer,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetData(_) => OpCode::GetData,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
        }
    }

    /// The path the op acts on.
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => &r.path,
            MultiOp::CreateTtl(r) => &r.path,
            MultiOp::Delete(r) => &r.path,
            MultiOp::SetData(r) => &r.path,
            MultiOp::Check(r) => &r.path,
            MultiOp::GetData(r) => &r.path,
            MultiOp::GetChildren(r) => &r.path,
        }
    }

    fn encode_body<B: BufMut>(&self, buf: &mut B) {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.encode(buf),
            MultiOp::CreateTtl(r) => r.encode(buf),
            MultiOp::Delete(r) => r.encode(buf),
            MultiOp::SetData(r) => r.encode(buf),
            MultiOp::Check(r) => r.encode(buf),
            MultiOp::GetData(r) => r.encode(buf),
            MultiOp::GetChildren(r) => r.encode(buf),
        }
    }
}

/// The body of a multi or multiRead request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiRequest {
    /// The ops in order.
    pub ops: Vec<MultiOp>,
}

impl Record for MultiRequest {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        for op in &self.ops {
            MultiHeader { opcode: op.opcode(), done: false, err: -1 }.encode(buf);
            op.encode_body(buf);
        }
        END.encode(buf);
    }

    fn decode(buf: &mut Bytes) -> Result<Self> {
        let mut ops = Vec::new();
        loop {
            let h = MultiHeader::decode(buf)?;
            if h.done {
                return Ok(MultiRequest { ops });
            }
            ops.push(match h.opcode {
                OpCode::Create => MultiOp::Create(CreateRequest::decode(buf)?),
                OpCode::Create2 => MultiOp::Create2(CreateRequest::decode(buf)?),
                OpCode::CreateContainer => MultiOp::CreateContainer(CreateRequest::decode(buf)?),
                OpCode::CreateTtl => MultiOp::CreateTtl(CreateTtlRequest::decode(buf)?),
                OpCode::Delete => MultiOp::Delete(DeleteRequest::decode(buf)?),
                OpCode::SetData => MultiOp::SetData(SetDataRequest::decode(buf)?),
                OpCode::Check => MultiOp::Check(CheckVersionRequest::decode(buf)?),
                OpCode::GetData => MultiOp::GetData(GetDataRequest::decode(buf)?),
                OpCode::GetChildren => MultiOp::GetChildren(GetChildrenRequest::decode(buf)?),
                other => return Err(ProtoError::InvalidMultiOp(other.code())),
            });
        }
    }
}

/// The result of one op of a multi or multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MultiResult {
    /// create succeeded (result type 1).
    Create {
        /// The created path.
        path: String,
    },
    /// create2, createContainer or createTTL succeeded (result type 15).
    Create2 {
        /// The created path.
        path: String,
        /// Its Stat.
        stat: Stat,
    },
    /// delete succeeded.
    Delete,
    /// setData succeeded.
    SetData {
        /// The node's Stat after the change.
        stat: Stat,
    },
    /// check succeeded.
    Check,
    /// getData succeeded (multiRead).
    GetData {
        /// The data.
        data: Option<Bytes>,
        /// The node's Stat.
        stat: Stat,
    },
    /// getChildren succeeded (multiRead).
    GetChildren {
        /// Child names.
        children: Vec<String>,
    },
    /// The op failed, or was not applied because another op failed (0 for
    /// ops before the failing one).
    Error {
        /// The code.
        err: ErrorCode,
    },
}

impl MultiResult {
    fn header(&self) -> MultiHeader {
        let (opcode, err) = match self {
            MultiResult::Create { .. } => (OpCode::Create, 0),
            MultiResult::Create2 { .. } => (OpCode::Create2, 0),
            MultiResult::Delete => (OpCode::Delete, 0),
            MultiResult::SetData { .. } => (OpCode::SetData, 0),
            MultiResult::Check => (OpCode::Check, 0),
            MultiResult::GetData { .. } => (OpCode::GetData, 0),
            MultiResult::GetChildren { .. } => (OpCode::GetChildren, 0),
            MultiResult::Error { err } => (OpCode::Error, err.code()),
        };
        MultiHeader { opcode, done: false, err }
    }
}

/// The body of a multi or multiRead reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiResponse {
    /// One result per op, in order.
    pub results: Vec<MultiResult>,
}

impl MultiResponse {
    /// The first non-zero error among the results: what a failed multi
    /// reports as a whole.
    pub fn first_error(&self) -> Option<(usize, ErrorCode)> {
        self.results.iter().enumerate().find_map(|(i, r)| match r {
            MultiResult::Error { err } if !err.is_ok() => Some((i, *err)),
            _ => None,
        })
    }
}

impl Record for MultiResponse {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        for r in &self.results {
            r.header().encode(buf);
            match r {
                MultiResult::Create { path } => CreateResponse { path: path.clone() }.encode(buf),
                MultiResult::Create2 { path, stat } => {
                    path.encode(buf);
                    stat.encode(buf);
                }
                MultiResult::Delete | MultiResult::Check => {}
                MultiResult::SetData { stat } => stat.encode(buf),
                MultiResult::GetData { data, stat } => {
                    data.encode(buf);
                    stat.encode(buf);
                }
                MultiResult::GetChildren { children } => children.encode(buf),
                MultiResult::Error { err } => ErrorResponse { err: err.code() }.encode(buf),
            }
        }
        END.encode(buf);
    }

    fn decode(buf: &mut Bytes) -> Result<Self> {
        let mut results = Vec::new();
        loop {
            let h = MultiHeader::decode(buf)?;
            if h.done {
                return Ok(MultiResponse { results });
            }
            results.push(match h.opcode {
                OpCode::Create => MultiResult::Create { path: CreateResponse::decode(buf)?.path },
                OpCode::Create2 => {
                    let r = Create2Response::decode(buf)?;
                    MultiResult::Create2 { path: r.path, stat: r.stat }
                }
                OpCode::Delete => MultiResult::Delete,
                OpCode::SetData => MultiResult::SetData { stat: SetDataResponse::decode(buf)?.stat },
                OpCode::Check => MultiResult::Check,
                OpCode::GetData => {
                    let r = GetDataResponse::decode(buf)?;
                    MultiResult::GetData { data: r.data, stat: r.stat }
                }
                OpCode::GetChildren => {
                    MultiResult::GetChildren { children: GetChildrenResponse::decode(buf)?.children }
                }
                OpCode::Error => MultiResult::Error { err: ErrorCode::from(ErrorResponse::decode(buf)?.err) },
                other => return Err(ProtoError::InvalidMultiOp(other.code())),
            });
        }
    }
}
