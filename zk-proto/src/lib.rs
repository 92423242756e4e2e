//! Apache ZooKeeper's wire protocol ("jute"), complete and exact, with no
//! I/O: records encode into [`bytes::BufMut`] and decode from [`bytes::Bytes`].
//!
//! # Layout
//!
//! - [`jute`]: the [`Record`] trait and the primitive encodings, bounds
//!   checked: decoding never panics and never allocates more than the input.
//! - [`records`]: every record of `zookeeper.jute` (3.9): data, requests and
//!   responses, watches, multi, txns, quorum packets, file headers.
//! - [`OpCode`], [`ErrorCode`] and [`types`]: the numbered enums, with every
//!   number Apache uses and `Unknown(i32)` for the rest.
//! - [`xid`]: reserved xids (notification, ping, auth, set-watches).
//! - [`Request`] / [`Response`]: bodies typed by opcode.
//! - [`frame`] and [`codec`]: the 4-byte length-prefixed frame with a
//!   configurable maximum (`jute.maxbuffer`).
//! - [`path`]: path validation shared by client and server.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use zk_proto::{OpCode, Record, Request};
//! use zk_proto::records::{GetDataRequest, RequestHeader};
//!
//! // A client writes a header and a body into one frame ...
//! let header = RequestHeader { xid: 1, opcode: OpCode::GetData };
//! let body = GetDataRequest { path: "/config".into(), watch: true };
//! let mut wire = BytesMut::new();
//! zk_proto::frame::encode_frame(&(header, body.clone()), &mut wire, 1 << 20).unwrap();
//!
//! // ... and a server splits the frame and decodes both.
//! let mut frame = zk_proto::frame::split_frame(&mut wire, 1 << 20).unwrap().unwrap().freeze();
//! let header = RequestHeader::decode(&mut frame).unwrap();
//! let request = Request::decode(header.opcode, frame).unwrap();
//! assert_eq!(request, Request::GetData(body));
//! ```

mod code_enum;
pub mod error;
mod error_code;
pub mod frame;
pub mod jute;
mod opcode;
pub mod path;
pub mod records;
mod request;
mod response;
pub mod sasl;
pub mod types;
pub mod xid;

#[cfg(feature = "codec")]
pub mod codec;

#[cfg(test)]
mod sample;
#[cfg(test)]
mod tests;

pub use error::ProtoError;
pub use error_code::ErrorCode;
pub use jute::Record;
pub use opcode::OpCode;
pub use request::Request;
pub use response::Response;
pub use types::{AddWatchMode, CreateMode, EventType, KeeperState, WatcherType};
