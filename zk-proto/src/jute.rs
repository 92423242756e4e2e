//! Jute, ZooKeeper's binary record encoding (`BinaryInputArchive` /
//! `BinaryOutputArchive`).
//!
//! All numbers are big-endian. `int` is 4 bytes, `long` 8, `boolean` one
//! byte. A `ustring` or `buffer` is an `int` length and the bytes; a
//! `vector<T>` is an `int` count and the elements. A length or count of -1
//! means null.
//!
//! Decoding reads from a [`Bytes`] cursor so that `buffer` fields are
//! zero-copy slices of the frame. Every length is checked against the bytes
//! left before anything is allocated, so a hostile length field can never
//! make the decoder allocate more than the input holds.
//!
//! Nulls: a nullable `buffer` is an `Option<Bytes>` (ZooKeeper keeps a node
//! created with null data distinct from one with empty data, and Java
//! clients see the difference). A null `ustring` or `vector` decodes as
//! empty; only `QuorumPacket.authinfo`, which Java peers send as null, keeps
//! its null as `Option<Vec<_>>`.

use bytes::{Buf, BufMut, Bytes};

use crate::error::{ProtoError, Result};

/// A value with a jute encoding: every record of `zookeeper.jute`, and the
/// primitive field types they are made of.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use zk_proto::{Record, records::GetDataRequest};
///
/// let req = GetDataRequest { path: "/app".into(), watch: true };
/// let mut buf = BytesMut::new();
/// req.encode(&mut buf);
/// let back = GetDataRequest::decode(&mut buf.freeze()).unwrap();
/// assert_eq!(back, req);
/// ```
pub trait Record: Sized {
    /// Appends the encoding of `self` to `buf`.
    fn encode<B: BufMut>(&self, buf: &mut B);

    /// Reads one value from the front of `buf`, advancing it.
    ///
    /// # Errors
    /// A [`ProtoError`] when the bytes are truncated or malformed; `buf` is
    /// then left at an unspecified position.
    fn decode(buf: &mut Bytes) -> Result<Self>;

    /// Decodes a value that must fill `bytes` exactly.
    ///
    /// # Errors
    /// As [`Record::decode`], plus [`ProtoError::TrailingBytes`].
    fn decode_exact(mut bytes: Bytes) -> Result<Self> {
        let v = Self::decode(&mut bytes)?;
        if bytes.has_remaining() {
            return Err(ProtoError::TrailingBytes(bytes.remaining()));
        }
        Ok(v)
    }

    /// Encodes `self` into a fresh buffer.
    fn to_bytes(&self) -> Bytes {
        let mut buf = bytes::BytesMut::new();
        self.encode(&mut buf);
        buf.freeze()
    }
}

#[inline]
fn need(buf: &Bytes, n: usize) -> Result<()> {
    if buf.remaining() < n {
        Err(ProtoError::UnexpectedEof { needed: n, remaining: buf.remaining() })
    } else {
        Ok(())
    }
}

/// Reads a length field: `None` for -1 (null), an error below -1 or past the
/// end of the frame. `min_elem` is the smallest encoding of one element, so
/// that a count can be checked against the bytes left.
#[inline]
fn read_len(buf: &mut Bytes, min_elem: usize) -> Result<Option<usize>> {
    let len = i32::decode(buf)?;
    if len == -1 {
        return Ok(None);
    }
    if len < -1 {
        return Err(ProtoError::NegativeLength(len));
    }
    let len = len as usize;
    if len.saturating_mul(min_elem) > buf.remaining() {
        return Err(ProtoError::LengthBeyondFrame { len, remaining: buf.remaining() });
    }
    Ok(Some(len))
}

#[inline]
fn put_len<B: BufMut>(buf: &mut B, len: usize) {
    // Lengths above i32::MAX cannot be framed at all (a frame is at most
    // i32::MAX bytes); clamp so the peer sees an oversize length rather than
    // a negative one.
    buf.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
}

impl Record for i32 {
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_i32(*self);
    }
    #[inline]
    fn decode(buf: &mut Bytes) -> Result<Self> {
        need(buf, 4)?;
        Ok(buf.get_i32())
    }
}

impl Record for i64 {
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_i64(*self);
    }
    #[inline]
    fn decode(buf: &mut Bytes) -> Result<Self> {
        need(buf, 8)?;
        Ok(buf.get_i64())
    }
}

impl Record for bool {
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(u8::from(*self));
    }
    #[inline]
    fn decode(buf: &mut Bytes) -> Result<Self> {
        need(buf, 1)?;
        // Java's DataInput.readBoolean: any non-zero byte is true.
        Ok(buf.get_u8() != 0)
    }
}

impl Record for String {
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_len(buf, self.len());
        buf.put_slice(self.as_bytes());
    }
    #[inline]
    fn decode(buf: &mut Bytes) -> Result<Self> {
        match read_len(buf, 1)? {
            None => Ok(String::new()),
            Some(len) => {
                let s = std::str::from_utf8(&buf[..len]).map_err(|_| ProtoError::InvalidUtf8)?.to_owned();
                buf.advance(len);
                Ok(s)
            }
        }
    }
}

impl Record for Bytes {
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_len(buf, self.len());
        buf.put_slice(self);
    }
    #[inline]
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(Option::<Bytes>::decode(buf)?.unwrap_or_default())
    }
}

impl Record for Option<Bytes> {
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            None => buf.put_i32(-1),
            Some(b) => b.encode(buf),
        }
    }
    #[inline]
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(read_len(buf, 1)?.map(|len| buf.split_to(len)))
    }
}

impl<T: Record> Record for Vec<T> {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_len(buf, self.len());
        for item in self {
            item.encode(buf);
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(Option::<Vec<T>>::decode(buf)?.unwrap_or_default())
    }
}

impl<T: Record> Record for Option<Vec<T>> {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            None => buf.put_i32(-1),
            Some(v) => v.encode(buf),
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        // Every jute element takes at least one byte, so a count can be
        // checked against what is left before reserving room for it.
        match read_len(buf, 1)? {
            None => Ok(None),
            Some(count) => {
                let mut v = Vec::with_capacity(count);
                for _ in 0..count {
                    v.push(T::decode(buf)?);
                }
                Ok(Some(v))
            }
        }
    }
}

/// Two records back to back, e.g. a header and its body.
impl<A: Record, B2: Record> Record for (A, B2) {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.0.encode(buf);
        self.1.encode(buf);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok((A::decode(buf)?, B2::decode(buf)?))
    }
}

/// An empty body (a reply with only a header, e.g. to delete or ping).
impl Record for () {
    fn encode<B: BufMut>(&self, _buf: &mut B) {}
    fn decode(_buf: &mut Bytes) -> Result<Self> {
        Ok(())
    }
}

/// Declares a jute record: a struct whose fields are encoded in order.
macro_rules! jute_record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::jute::Record for $name {
            #[inline]
            #[allow(unused_variables)]
            fn encode<B: ::bytes::BufMut>(&self, buf: &mut B) {
                $( $crate::jute::Record::encode(&self.$field, buf); )*
            }
            #[inline]
            #[allow(unused_variables)]
            fn decode(buf: &mut ::bytes::Bytes) -> $crate::error::Result<Self> {
                Ok(Self { $( $field: <$ty as $crate::jute::Record>::decode(buf)?, )* })
            }
        }

        #[cfg(test)]
        impl $crate::sample::Sample for $name {
            #[allow(unused_variables)]
            fn sample(rng: &mut $crate::sample::Rng) -> Self {
                Self { $( $field: <$ty as $crate::sample::Sample>::sample(rng), )* }
            }
        }
    };
}
pub(crate) use jute_record;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_empty_buffers_are_distinct() {
        let null: Option<Bytes> = None;
        assert_eq!(&null.to_bytes()[..], &[0xff, 0xff, 0xff, 0xff]);
        let empty: Option<Bytes> = Some(Bytes::new());
        assert_eq!(&empty.to_bytes()[..], &[0, 0, 0, 0]);
        assert_eq!(Option::<Bytes>::decode_exact(null.to_bytes()).unwrap(), None);
        assert_eq!(Option::<Bytes>::decode_exact(empty.to_bytes()).unwrap(), Some(Bytes::new()));
    }

    #[test]
    fn lengths_are_checked_before_allocation() {
        let mut huge = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, b'a']);
        assert_eq!(
            String::decode(&mut huge),
            Err(ProtoError::LengthBeyondFrame { len: i32::MAX as usize, remaining: 1 })
        );
        let mut neg = Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(Vec::<i64>::decode(&mut neg), Err(ProtoError::NegativeLength(-2)));
        let mut many = Bytes::from_static(&[0, 0, 0, 9, 1, 2]);
        assert!(matches!(Vec::<i32>::decode(&mut many), Err(ProtoError::LengthBeyondFrame { .. })));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut bad = Bytes::from_static(&[0, 0, 0, 2, 0xc3, 0x28]);
        assert_eq!(String::decode(&mut bad), Err(ProtoError::InvalidUtf8));
    }

    #[test]
    fn null_string_and_vector_decode_as_empty() {
        let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(String::decode(&mut b).unwrap(), "");
        assert_eq!(Vec::<String>::decode(&mut b).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn truncated_primitives() {
        assert!(matches!(
            i64::decode(&mut Bytes::from_static(&[1, 2, 3])),
            Err(ProtoError::UnexpectedEof { needed: 8, remaining: 3 })
        ));
        assert!(bool::decode(&mut Bytes::new()).is_err());
    }
}
