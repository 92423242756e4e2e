//! The decode and encode errors of the wire layer.
//!
//! "Not enough bytes yet" is not an error: [`crate::frame::decode_frame_len`]
//! and the codec return `Ok(None)` for it. Everything here means the input
//! is wrong and the connection that sent it cannot be trusted any more.

/// What went wrong while reading or writing jute bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// A record needed more bytes than the frame holds.
    #[error("record truncated: needed {needed} more bytes but only {remaining} are left")]
    UnexpectedEof {
        /// Bytes the next field needed.
        needed: usize,
        /// Bytes that were left in the frame.
        remaining: usize,
    },
    /// A string, buffer or vector length below -1 (-1 itself means null).
    #[error("invalid negative length {0}")]
    NegativeLength(i32),
    /// A string, buffer or vector length larger than the bytes left.
    #[error("length {len} exceeds the {remaining} bytes left in the frame")]
    LengthBeyondFrame {
        /// The length field as read.
        len: usize,
        /// Bytes that were left in the frame.
        remaining: usize,
    },
    /// A `ustring` whose bytes are not UTF-8.
    #[error("string field is not valid UTF-8")]
    InvalidUtf8,
    /// A frame whose 4-byte length prefix is negative.
    #[error("negative frame length {0}")]
    NegativeFrameLength(i32),
    /// A frame longer than the configured maximum (`jute.maxbuffer`).
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes (jute.maxbuffer)")]
    FrameTooLarge {
        /// The frame length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A multi header naming an operation that cannot appear in a multi.
    #[error("operation type {0} is not allowed inside a multi")]
    InvalidMultiOp(i32),
    /// A txn type that has no txn record.
    #[error("unknown txn type {0}")]
    UnknownTxnType(i32),
    /// Bytes left over after a record that must fill its frame exactly.
    #[error("{0} unexpected trailing bytes after the record")]
    TrailingBytes(usize),
    /// A value that cannot be represented on the wire (for example a
    /// string longer than `i32::MAX` bytes).
    #[error("value too large to encode: {0}")]
    TooLargeToEncode(&'static str),
    /// An I/O error from the transport (codec only).
    #[error("i/o error: {0}")]
    Io(String),
}

impl From<std::io::Error> for ProtoError {
    fn from(e: std::io::Error) -> Self {
        ProtoError::Io(e.to_string())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ProtoError> = std::result::Result<T, E>;
