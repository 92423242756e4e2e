//! [`FrameCodec`]: the length-prefixed frame as a `tokio_util` codec, used
//! by both the client and the server.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::ProtoError;
use crate::frame::{DEFAULT_MAX_FRAME, encode_frame, split_frame};
use crate::jute::Record;

/// Splits a byte stream into frame payloads and writes records as frames.
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
/// use zk_proto::codec::FrameCodec;
///
/// let mut codec = FrameCodec::new(1024);
/// let mut wire = BytesMut::new();
/// codec.encode(42i32, &mut wire).unwrap();
/// let frame = codec.decode(&mut wire).unwrap().unwrap();
/// assert_eq!(&frame[..], &[0, 0, 0, 42]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    /// A codec that rejects frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameCodec { max_frame }
    }

    /// The largest frame accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = ProtoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, ProtoError> {
        Ok(split_frame(src, self.max_frame)?.map(BytesMut::freeze))
    }
}

impl<R: Record> Encoder<R> for FrameCodec {
    type Error = ProtoError;

    fn encode(&mut self, item: R, dst: &mut BytesMut) -> Result<(), ProtoError> {
        encode_frame(&item, dst, self.max_frame)
    }
}
