//! Encoding and decoding the hot records: getData request/response,
//! setData, watcher event, each with its header, as a whole frame.

#![allow(missing_docs)] // criterion_group! generates undocumented fns

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use zk_proto::frame::{encode_frame, split_frame};
use zk_proto::records::*;
use zk_proto::{ErrorCode, OpCode, Record, Request, Response};

const MAX: usize = zk_proto::frame::DEFAULT_MAX_FRAME;

fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0002,
        mzxid: 0x1_0000_0009,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_500,
        version: 7,
        data_length: 100,
        ..Stat::default()
    }
}

fn bench_record<R: Record + Clone>(c: &mut Criterion, name: &str, header_and_body: R, decode: fn(Bytes)) {
    let mut g = c.benchmark_group(name);
    let mut wire = BytesMut::new();
    encode_frame(&header_and_body, &mut wire, MAX).expect("encode");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("encode", |b| {
        let mut buf = BytesMut::with_capacity(4096);
        b.iter(|| {
            buf.clear();
            encode_frame(black_box(&header_and_body), &mut buf, MAX).expect("encode");
        })
    });
    let frozen = wire.freeze();
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&frozen[..]);
            let frame = split_frame(&mut buf, MAX).expect("frame").expect("whole").freeze();
            decode(black_box(frame));
        })
    });
    g.finish();
}

fn request(frame: Bytes) {
    let mut f = frame;
    let h = RequestHeader::decode(&mut f).expect("header");
    black_box(Request::decode(h.opcode, f).expect("body"));
}

fn reply(op: OpCode) -> impl Fn(Bytes) {
    move |frame| {
        let mut f = frame;
        black_box(ReplyHeader::decode(&mut f).expect("header"));
        black_box(Response::decode(op, f).expect("body"));
    }
}

fn benches(c: &mut Criterion) {
    let path = "/service/config/node-0000000042".to_string();
    bench_record(
        c,
        "getData_request",
        (
            RequestHeader { xid: 17, opcode: OpCode::GetData },
            GetDataRequest { path: path.clone(), watch: true },
        ),
        request,
    );
    bench_record(
        c,
        "getData_response_100B",
        (
            ReplyHeader { xid: 17, zxid: 0x1_0000_0009, err: ErrorCode::Ok },
            GetDataResponse { data: Some(Bytes::from(vec![7u8; 100])), stat: stat() },
        ),
        |f| reply(OpCode::GetData)(f),
    );
    bench_record(
        c,
        "setData_request_100B",
        (
            RequestHeader { xid: 18, opcode: OpCode::SetData },
            SetDataRequest { path: path.clone(), data: Some(Bytes::from(vec![7u8; 100])), version: -1 },
        ),
        request,
    );
    bench_record(
        c,
        "watcher_event",
        (
            ReplyHeader { xid: -1, zxid: 0x1_0000_0009, err: ErrorCode::Ok },
            WatcherEvent { event_type: 3, state: 3, path },
        ),
        |f| {
            let mut f = f;
            black_box(ReplyHeader::decode(&mut f).expect("header"));
            black_box(WatcherEvent::decode(&mut f).expect("event"));
        },
    );
}

criterion_group!(codec, benches);
criterion_main!(codec);
