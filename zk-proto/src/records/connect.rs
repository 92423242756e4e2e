//! The session handshake: `ConnectRequest` and `ConnectResponse`.
//!
//! Both are sent without a request or reply header. Both end with a
//! `readOnly` boolean that very old clients and servers omit (it was added
//! by hand in 3.3 and only entered the jute file in 3.9, ZOOKEEPER-4492):
//! the decoder reads it when it is there and records its absence as
//! `None`, and the encoder writes it only when it is `Some`, so a server can
//! answer an old client in the old format.

use bytes::{Buf, BufMut, Bytes};

use crate::error::Result;
use crate::jute::Record;

/// The first frame a client sends on a new connection.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct ConnectRequest {
    /// Always 0.
    pub protocol_version: i32,
    /// The largest zxid the client has seen (0 for a new client).
    pub last_zxid_seen: i64,
    /// The requested session timeout in milliseconds.
    pub time_out: i32,
    /// 0 for a new session, or the session to re-attach.
    pub session_id: i64,
    /// The session password (16 zero bytes for a new session).
    pub passwd: Bytes,
    /// Whether the client accepts a read-only server; `None` when the
    /// client did not send the flag at all.
    pub read_only: Option<bool>,
}

impl Record for ConnectRequest {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.protocol_version.encode(buf);
        self.last_zxid_seen.encode(buf);
        self.time_out.encode(buf);
        self.session_id.encode(buf);
        self.passwd.encode(buf);
        if let Some(ro) = self.read_only {
            ro.encode(buf);
        }
    }

    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(ConnectRequest {
            protocol_version: i32::decode(buf)?,
            last_zxid_seen: i64::decode(buf)?,
            time_out: i32::decode(buf)?,
            session_id: i64::decode(buf)?,
            passwd: Bytes::decode(buf)?,
            read_only: if buf.has_remaining() { Some(bool::decode(buf)?) } else { None },
        })
    }
}

/// The server's answer to a [`ConnectRequest`].
///
/// A `time_out` of 0 (with session id 0) means the session could not be
/// re-attached: the client treats it as expired.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct ConnectResponse {
    /// Always 0.
    pub protocol_version: i32,
    /// The negotiated session timeout in milliseconds.
    pub time_out: i32,
    /// The session id.
    pub session_id: i64,
    /// The session password.
    pub passwd: Bytes,
    /// Whether the server is read-only; `None` when it did not send the flag.
    pub read_only: Option<bool>,
}

impl Record for ConnectResponse {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.protocol_version.encode(buf);
        self.time_out.encode(buf);
        self.session_id.encode(buf);
        self.passwd.encode(buf);
        if let Some(ro) = self.read_only {
            ro.encode(buf);
        }
    }

    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(ConnectResponse {
            protocol_version: i32::decode(buf)?,
            time_out: i32::decode(buf)?,
            session_id: i64::decode(buf)?,
            passwd: Bytes::decode(buf)?,
            read_only: if buf.has_remaining() { Some(bool::decode(buf)?) } else { None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_with_and_without_read_only() {
        let mut req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            time_out: 30_000,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            read_only: Some(false),
        };
        let with = req.to_bytes();
        assert_eq!(with.len(), 45);
        assert_eq!(ConnectRequest::decode_exact(with).unwrap(), req);
        req.read_only = None;
        let without = req.to_bytes();
        assert_eq!(without.len(), 44);
        assert_eq!(ConnectRequest::decode_exact(without).unwrap(), req);
    }

    #[test]
    fn connect_response_with_and_without_read_only() {
        let mut rsp = ConnectResponse {
            protocol_version: 0,
            time_out: 4000,
            session_id: 0x0100_0000_0000_0001,
            passwd: Bytes::from_static(&[7; 16]),
            read_only: Some(true),
        };
        assert_eq!(ConnectResponse::decode_exact(rsp.to_bytes()).unwrap(), rsp);
        rsp.read_only = None;
        assert_eq!(rsp.to_bytes().len(), 36);
        assert_eq!(ConnectResponse::decode_exact(rsp.to_bytes()).unwrap(), rsp);
    }
}
