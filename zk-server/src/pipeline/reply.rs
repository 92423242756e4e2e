//! The reply stage's arithmetic: how many bytes a message takes on the
//! wire (what the per-connection and global byte bounds count), and the
//! largest reply the server builds.
//!
//! Sizes are computed from the values, not by encoding them, so a reply
//! that would be too large is refused before a byte of it is written. The
//! figures are exact for every reply the server sends (the tests compare
//! them with the encoder).

use zk_proto::Response;
use zk_proto::records::{MultiResult, WatcherEvent};

use super::Out;

/// A reply header: xid, zxid, err.
const REPLY_HEADER: usize = 16;
/// A Stat: 8 longs... as jute lays it out (czxid, mzxid, ctime, mtime,
/// version, cversion, aversion, ephemeralOwner, dataLength, numChildren,
/// pzxid).
pub(crate) const STAT: usize = 8 * 6 + 4 * 5;
/// A multi result's header: type, done, err.
const MULTI_HEADER: usize = 4 + 1 + 4;
/// The 4-byte length in front of every frame.
const FRAME_PREFIX: usize = 4;

fn string(s: &str) -> usize {
    4 + s.len()
}

fn strings(v: &[String]) -> usize {
    4 + v.iter().map(|s| string(s)).sum::<usize>()
}

fn buffer(b: &Option<bytes::Bytes>) -> usize {
    4 + b.as_ref().map_or(0, |b| b.len())
}

/// A value this file has no formula for (a variant added to zk-proto
/// later) is measured by encoding it.
fn encoded_len(encode: impl FnOnce(&mut bytes::BytesMut)) -> usize {
    let mut b = bytes::BytesMut::new();
    encode(&mut b);
    b.len()
}

/// The bytes a multi result takes, header included.
pub(crate) fn multi_result_len(r: &MultiResult) -> usize {
    MULTI_HEADER
        + match r {
            MultiResult::Create { path } => string(path),
            MultiResult::Create2 { path, .. } => string(path) + STAT,
            MultiResult::Delete | MultiResult::Check => 0,
            MultiResult::SetData { .. } => STAT,
            MultiResult::GetData { data, .. } => buffer(data) + STAT,
            MultiResult::GetChildren { children } => strings(children),
            MultiResult::Error { .. } => 4,
            // A result kind added later: assume the largest fixed body.
            _ => STAT + 4,
        }
}

/// The bytes a reply body takes.
pub(crate) fn response_len(r: &Response) -> usize {
    match r {
        Response::Create(c) => string(&c.path),
        Response::Create2(c) => string(&c.path) + STAT,
        Response::Exists(_) | Response::SetData(_) | Response::SetAcl(_) => STAT,
        Response::GetData(d) => buffer(&d.data) + STAT,
        Response::GetAcl(a) => {
            4 + a.acl.iter().map(|a| 4 + string(&a.id.scheme) + string(&a.id.id)).sum::<usize>() + STAT
        }
        Response::GetChildren(c) => strings(&c.children),
        Response::GetChildren2(c) => strings(&c.children) + STAT,
        Response::Sync(s) => string(&s.path),
        // The results, then the end marker (type -1, done, err -1).
        Response::Multi(m) => m.results.iter().map(multi_result_len).sum::<usize>() + MULTI_HEADER,
        Response::GetEphemerals(e) => strings(&e.ephemerals),
        Response::GetAllChildrenNumber(_) | Response::AddWatch(_) => 4,
        Response::WhoAmI(w) => {
            4 + w.client_info.iter().map(|c| string(&c.auth_scheme) + string(&c.user)).sum::<usize>()
        }
        Response::Sasl(s) => buffer(&s.token),
        Response::Empty => 0,
        other => encoded_len(|b| other.encode_body(b)),
    }
}

/// The frame payload of a watch event.
pub(crate) fn event_len(e: &WatcherEvent) -> usize {
    REPLY_HEADER + 4 + 4 + string(&e.path)
}

/// The bytes a message takes on the wire, length prefix included: what the
/// byte bounds on queued output count.
pub(crate) fn out_weight(out: &Out) -> usize {
    FRAME_PREFIX
        + match out {
            Out::Connected(c) => 4 + 4 + 8 + 4 + c.passwd.len() + usize::from(c.read_only.is_some()),
            Out::Reply(_, body) => REPLY_HEADER + body.as_ref().map_or(0, response_len),
            Out::Event(_, e) => event_len(e),
            Out::Close => 0,
        }
}

/// Whether a reply body fits in a frame of `max_frame` bytes.
pub(crate) fn fits(body: &Response, max_frame: usize) -> bool {
    REPLY_HEADER + response_len(body) <= max_frame
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use bytes::{Bytes, BytesMut};
    use zk_proto::Record;
    use zk_proto::records::*;

    use super::*;

    fn encoded(out: &Out) -> usize {
        let mut buf = BytesMut::new();
        match out {
            Out::Reply(h, body) => {
                h.encode(&mut buf);
                if let Some(b) = body {
                    b.encode_body(&mut buf);
                }
            }
            Out::Event(z, e) => {
                ReplyHeader { xid: -1, zxid: *z, err: zk_proto::ErrorCode::Ok }.encode(&mut buf);
                e.encode(&mut buf);
            }
            Out::Connected(c) => c.encode(&mut buf),
            Out::Close => {}
        }
        buf.len() + 4
    }

    #[test]
    fn sizes_match_the_encoder() {
        let h = ReplyHeader { xid: 1, zxid: 2, err: zk_proto::ErrorCode::Ok };
        let stat = Stat::default();
        let acl = vec![Acl::new(31, Id::new("world", "anyone")), Acl::new(1, Id::new("digest", "u:x"))];
        let bodies = vec![
            Response::Create(CreateResponse { path: "/a/b".into() }),
            Response::Create2(Create2Response { path: "/abc".into(), stat }),
            Response::Exists(ExistsResponse { stat }),
            Response::GetData(GetDataResponse { data: Some(Bytes::from_static(b"hello")), stat }),
            Response::GetData(GetDataResponse { data: None, stat }),
            Response::GetAcl(GetAclResponse { acl, stat }),
            Response::GetChildren(GetChildrenResponse { children: vec!["a".into(), "bcd".into()] }),
            Response::GetChildren2(GetChildren2Response { children: vec!["x".into()], stat }),
            Response::Sync(SyncResponse { path: "/s".into() }),
            Response::Multi(MultiResponse {
                results: vec![
                    MultiResult::Create { path: "/m".into() },
                    MultiResult::Create2 { path: "/m2".into(), stat },
                    MultiResult::Delete,
                    MultiResult::SetData { stat },
                    MultiResult::Check,
                    MultiResult::GetData { data: Some(Bytes::from_static(b"xyz")), stat },
                    MultiResult::GetChildren { children: vec!["c".into()] },
                    MultiResult::Error { err: zk_proto::ErrorCode::NoNode },
                ],
            }),
            Response::GetEphemerals(GetEphemeralsResponse { ephemerals: vec!["/e1".into()] }),
            Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number: 3 }),
            Response::WhoAmI(WhoAmIResponse {
                client_info: vec![ClientInfo { auth_scheme: "ip".into(), user: "127.0.0.1".into() }],
            }),
            Response::AddWatch(ErrorResponse { err: 0 }),
            Response::Empty,
        ];
        for b in bodies {
            let out = Out::Reply(h, Some(b));
            assert_eq!(out_weight(&out), encoded(&out), "{out:?}");
        }
        let ev = Out::Event(5, WatcherEvent { event_type: 3, state: 3, path: "/w".into() });
        assert_eq!(out_weight(&ev), encoded(&ev));
        let c = Out::Connected(ConnectResponse {
            protocol_version: 0,
            time_out: 4000,
            session_id: 7,
            passwd: Bytes::from_static(&[0; 16]),
            read_only: Some(false),
        });
        assert_eq!(out_weight(&c), encoded(&c));
        assert_eq!(out_weight(&Out::Reply(h, None)), encoded(&Out::Reply(h, None)));
    }
}
