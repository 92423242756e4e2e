//! Shared pieces of the cross-crate tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

/// Awaits `f` for at most `secs` seconds, failing the test with `what`.
pub async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn trace_init() {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}

/// A raw, blocking ZooKeeper session built from zk-proto records only, for
/// wire-level tests: deterministic xids, every frame visible.
pub mod raw {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    use bytes::{Bytes, BytesMut};
    use zk_proto::frame::{encode_frame, split_frame};
    use zk_proto::records::*;
    use zk_proto::{OpCode, Record, Request, Response};

    /// One connection.
    pub struct Raw {
        /// The socket.
        pub sock: TcpStream,
        buf: BytesMut,
        xid: i32,
        /// Watch events received so far: (header zxid, event).
        pub events: Vec<(i64, WatcherEvent)>,
        /// The session.
        pub session_id: i64,
        /// Its password.
        pub passwd: Bytes,
    }

    impl Raw {
        /// Connects and performs the handshake with `read_only: Some(false)`.
        pub fn connect(addr: SocketAddr, timeout_ms: i32) -> Raw {
            Self::connect_with(
                addr,
                ConnectRequest {
                    time_out: timeout_ms,
                    passwd: Bytes::from_static(&[0; 16]),
                    read_only: Some(false),
                    ..ConnectRequest::default()
                },
            )
            .1
        }

        /// Connects with a given request; returns the response too.
        pub fn connect_with(addr: SocketAddr, req: ConnectRequest) -> (ConnectResponse, Raw) {
            let sock = TcpStream::connect(addr).expect("connect");
            sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            let mut raw = Raw {
                sock,
                buf: BytesMut::new(),
                xid: 0,
                events: Vec::new(),
                session_id: 0,
                passwd: Bytes::new(),
            };
            raw.send(&req);
            let frame = raw.recv().expect("connect response");
            let rsp = ConnectResponse::decode_exact(frame).expect("decode connect response");
            raw.session_id = rsp.session_id;
            raw.passwd = rsp.passwd.clone();
            (rsp, raw)
        }

        /// Writes one frame.
        pub fn send<R: Record>(&mut self, r: &R) {
            let mut out = BytesMut::new();
            encode_frame(r, &mut out, usize::MAX).expect("encode");
            self.sock.write_all(&out).expect("write");
        }

        /// Writes raw bytes.
        pub fn send_bytes(&mut self, b: &[u8]) {
            self.sock.write_all(b).expect("write");
        }

        /// Reads one frame; `None` when the server closed the connection.
        pub fn recv(&mut self) -> Option<Bytes> {
            loop {
                if let Some(f) = split_frame(&mut self.buf, usize::MAX).expect("frame") {
                    return Some(f.freeze());
                }
                let mut chunk = [0u8; 65536];
                match self.sock.read(&mut chunk) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        }

        /// Whether the server closed the connection (reads until EOF).
        pub fn closed(&mut self) -> bool {
            loop {
                match self.recv() {
                    None => return true,
                    Some(_) => continue,
                }
            }
        }

        /// Sends `req` with the next xid and returns its reply header and
        /// body (decoded when the reply is a success, or a multi); watch
        /// events that come first are collected.
        pub fn call(&mut self, req: &Request) -> Option<(ReplyHeader, Option<Response>)> {
            self.xid += 1;
            let xid = self.xid;
            self.call_xid(xid, req)
        }

        /// As [`Raw::call`] with a chosen xid.
        pub fn call_xid(&mut self, xid: i32, req: &Request) -> Option<(ReplyHeader, Option<Response>)> {
            let op = req.opcode();
            let mut body = BytesMut::new();
            RequestHeader { xid, opcode: op }.encode(&mut body);
            req.encode_body(&mut body);
            self.send(&RawBytes(body.freeze()));
            loop {
                let mut f = self.recv()?;
                let h = ReplyHeader::decode(&mut f).expect("reply header");
                if h.xid == zk_proto::xid::NOTIFICATION {
                    self.events.push((h.zxid, WatcherEvent::decode(&mut f).expect("event")));
                    continue;
                }
                assert_eq!(h.xid, xid, "replies in order");
                let decode = h.err.is_ok() || matches!(op, OpCode::Multi | OpCode::MultiRead);
                let rsp = decode.then(|| Response::decode(op, f).expect("reply body"));
                return Some((h, rsp));
            }
        }

        /// Reads frames until `n` events are collected (or the timeout).
        pub fn wait_events(&mut self, n: usize) {
            while self.events.len() < n {
                let Some(mut f) = self.recv() else { return };
                let h = ReplyHeader::decode(&mut f).expect("header");
                if h.xid == zk_proto::xid::NOTIFICATION {
                    self.events.push((h.zxid, WatcherEvent::decode(&mut f).expect("event")));
                }
            }
        }
    }

    /// Pre-encoded bytes as a record.
    pub struct RawBytes(pub Bytes);

    impl Record for RawBytes {
        fn encode<B: bytes::BufMut>(&self, buf: &mut B) {
            buf.put_slice(&self.0);
        }
        fn decode(buf: &mut Bytes) -> zk_proto::error::Result<Self> {
            Ok(RawBytes(buf.split_off(0)))
        }
    }
}
