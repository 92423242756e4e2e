//! The frame: every message after the TCP connect, in both directions, is a
//! 4-byte big-endian length followed by that many bytes.
//!
//! These functions are sans-io; [`crate::codec::FrameCodec`] wraps them
//! for `tokio_util`.

use bytes::{BufMut, BytesMut};

use crate::error::{ProtoError, Result};
use crate::jute::Record;

/// `jute.maxbuffer`'s default: 0xfffff bytes (one byte short of 1 MiB).
pub const JUTE_MAXBUFFER_DEFAULT: usize = 0xfffff;

/// `zookeeper.jute.maxbuffer.extrasize`'s default (3.5.7+): the headroom
/// Apache allows above `jute.maxbuffer` for one length field.
pub const JUTE_MAXBUFFER_EXTRASIZE_DEFAULT: usize = 0xfffff;

/// The default largest frame: `jute.maxbuffer` plus the headroom Apache
/// allows, so that a node holding `jute.maxbuffer` bytes of data still fits
/// in a frame together with its path and headers.
pub const DEFAULT_MAX_FRAME: usize = JUTE_MAXBUFFER_DEFAULT + JUTE_MAXBUFFER_EXTRASIZE_DEFAULT;

/// Reads the length prefix at the front of `buf`.
///
/// Returns `Ok(None)` when fewer than 4 bytes are there yet, and the
/// payload length otherwise.
///
/// # Errors
/// [`ProtoError::NegativeFrameLength`] or [`ProtoError::FrameTooLarge`].
///
/// ```
/// use zk_proto::frame::decode_frame_len;
/// assert_eq!(decode_frame_len(&[0, 0], 100), Ok(None));
/// assert_eq!(decode_frame_len(&[0, 0, 0, 5, 1], 100), Ok(Some(5)));
/// assert!(decode_frame_len(&[0, 0, 1, 0], 100).is_err());
/// ```
pub fn decode_frame_len(buf: &[u8], max_frame: usize) -> Result<Option<usize>> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len < 0 {
        return Err(ProtoError::NegativeFrameLength(len));
    }
    let len = len as usize;
    if len > max_frame {
        return Err(ProtoError::FrameTooLarge { len, max: max_frame });
    }
    Ok(Some(len))
}

/// Splits one whole frame's payload off the front of `buf`, if one is there.
///
/// # Errors
/// As [`decode_frame_len`].
pub fn split_frame(buf: &mut BytesMut, max_frame: usize) -> Result<Option<BytesMut>> {
    let Some(len) = decode_frame_len(buf, max_frame)? else {
        return Ok(None);
    };
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(4 + len);
    let _ = frame.split_to(4);
    Ok(Some(frame))
}

/// Appends `record` to `dst` as one frame.
///
/// # Errors
/// [`ProtoError::FrameTooLarge`] when the encoding exceeds `max_frame`;
/// `dst` is then left as it was.
pub fn encode_frame<R: Record>(record: &R, dst: &mut BytesMut, max_frame: usize) -> Result<()> {
    let start = dst.len();
    dst.put_i32(0);
    record.encode(dst);
    let len = dst.len() - start - 4;
    if len > max_frame || len > i32::MAX as usize {
        dst.truncate(start);
        return Err(ProtoError::FrameTooLarge { len, max: max_frame });
    }
    dst[start..start + 4].copy_from_slice(&(len as i32).to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn split_waits_for_whole_frames() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 1, 2][..]);
        assert_eq!(split_frame(&mut buf, 10).unwrap(), None);
        buf.extend_from_slice(&[3, 0, 0]);
        assert_eq!(&split_frame(&mut buf, 10).unwrap().unwrap()[..], &[1, 2, 3]);
        assert_eq!(&buf[..], &[0, 0]);
    }

    #[test]
    fn negative_and_oversize_frames_are_errors() {
        let mut neg = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert_eq!(split_frame(&mut neg, 10), Err(ProtoError::NegativeFrameLength(-1)));
        let mut big = BytesMut::from(&[0u8, 0, 0, 11][..]);
        assert_eq!(split_frame(&mut big, 10), Err(ProtoError::FrameTooLarge { len: 11, max: 10 }));
    }

    #[test]
    fn encode_checks_the_maximum_and_leaves_dst_alone() {
        let mut dst = BytesMut::from(&b"ab"[..]);
        let big = Bytes::from(vec![0u8; 20]);
        assert!(encode_frame(&big, &mut dst, 10).is_err());
        assert_eq!(&dst[..], b"ab");
        encode_frame(&7i32, &mut dst, 10).unwrap();
        assert_eq!(&dst[..], &[b'a', b'b', 0, 0, 0, 4, 0, 0, 0, 7]);
    }
}
