//! zk-proto against a live Apache ZooKeeper 3.8 (Debian `zookeeper`): a
//! raw, blocking session built only from the wire crate's records. It
//! proves the records and framing talk to the real server, and that the
//! test harness can start and stop one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use zk_proto::frame::{DEFAULT_MAX_FRAME, encode_frame, split_frame};
use zk_proto::records::*;
use zk_proto::{CreateMode, ErrorCode, OpCode, Record, Response};
use zk_test_support::apache::ApacheZk;

struct Raw {
    sock: TcpStream,
    buf: BytesMut,
}

impl Raw {
    fn send<R: Record>(&mut self, r: &R) {
        let mut out = BytesMut::new();
        encode_frame(r, &mut out, DEFAULT_MAX_FRAME).expect("encode");
        self.sock.write_all(&out).expect("write");
    }

    fn recv(&mut self) -> Bytes {
        loop {
            if let Some(f) = split_frame(&mut self.buf, DEFAULT_MAX_FRAME).expect("frame") {
                return f.freeze();
            }
            let mut chunk = [0u8; 4096];
            let n = self.sock.read(&mut chunk).expect("read");
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn call<R: Record>(&mut self, xid: i32, op: OpCode, body: R) -> (ReplyHeader, Option<Response>) {
        self.send(&(RequestHeader { xid, opcode: op }, body));
        loop {
            let mut f = self.recv();
            let h = ReplyHeader::decode(&mut f).expect("reply header");
            if h.xid == zk_proto::xid::NOTIFICATION {
                continue;
            }
            assert_eq!(h.xid, xid, "replies come in request order");
            let rsp = h.err.is_ok().then(|| Response::decode(op, f).expect("body"));
            return (h, rsp);
        }
    }
}

#[test]
fn raw_session_against_apache_zookeeper() {
    let Some(zk) = ApacheZk::start() else { return };
    let sock = TcpStream::connect(zk.addr()).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut raw = Raw { sock, buf: BytesMut::new() };

    raw.send(&ConnectRequest {
        time_out: 6000,
        passwd: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
        ..ConnectRequest::default()
    });
    let rsp = ConnectResponse::decode_exact(raw.recv()).expect("connect response");

    assert_ne!(rsp.session_id, 0);
    assert_eq!(rsp.time_out, 6000);

    let create = CreateRequest {
        path: "/wire".into(),
        data: Some(Bytes::from_static(b"v1")),
        acl: Acl::open_unsafe(),
        flags: CreateMode::Persistent.code(),
    };
    let (h, r) = raw.call(1, OpCode::Create2, create.clone());
    assert!(h.err.is_ok());
    let Some(Response::Create2(c)) = r else { panic!("create2 reply") };
    assert_eq!(c.path, "/wire");
    assert_eq!(c.stat.czxid, h.zxid);

    let (h, _) = raw.call(2, OpCode::Create, create);
    assert_eq!(h.err, ErrorCode::NodeExists);

    let (_, r) = raw.call(3, OpCode::GetData, GetDataRequest { path: "/wire".into(), watch: false });
    let Some(Response::GetData(d)) = r else { panic!("getData reply") };
    assert_eq!(d.data.as_deref(), Some(&b"v1"[..]));

    let seq = CreateRequest {
        path: "/wire/n-".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: CreateMode::EphemeralSequential.code(),
    };
    let (_, r) = raw.call(4, OpCode::Create, seq);
    let Some(Response::Create(c)) = r else { panic!("create reply") };
    assert_eq!(c.path, "/wire/n-0000000000");

    let (_, r) = raw.call(
        5,
        OpCode::Multi,
        MultiRequest {
            ops: vec![
                MultiOp::Check(CheckVersionRequest { path: "/wire".into(), version: 0 }),
                MultiOp::SetData(SetDataRequest { path: "/wire".into(), data: None, version: 5 }),
            ],
        },
    );
    let Some(Response::Multi(m)) = r else { panic!("multi reply") };
    assert_eq!(m.first_error(), Some((1, ErrorCode::BadVersion)));

    let (h, _) = raw.call(6, OpCode::CloseSession, ());
    assert!(h.err.is_ok());
}
