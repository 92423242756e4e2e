//! Golden byte vectors recorded from real Apache ZooKeeper 3.8 traffic (see
//! `golden/README.md` for how they were made and how to regenerate them).
//!
//! Every frame of every transcript is decoded with the record its opcode
//! names and encoded again: the bytes must come out identical. On top of
//! that, frames the issue names (connect, create, getData, setData,
//! getChildren2, multi, watcher event, error replies) get explicit checks.

use std::collections::HashMap;
use std::path::Path;

use bytes::{Buf, Bytes};
use zk_proto::records::*;
use zk_proto::{ErrorCode, EventType, KeeperState, OpCode, Record, Request, Response};

fn golden(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

fn unhex(s: &str) -> Bytes {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect::<Vec<u8>>()
        .into()
}

#[derive(Debug, Clone)]
enum Dir {
    C,
    S,
}

fn transcript(name: &str) -> Vec<(usize, Dir, Bytes)> {
    let text = std::fs::read_to_string(golden(name)).expect("transcript");
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(i, l)| {
            let (d, hex) = l.split_once(' ').expect("direction");
            let dir = match d {
                "C" => Dir::C,
                "S" => Dir::S,
                other => panic!("line {}: bad direction {other}", i + 1),
            };
            (i + 1, dir, unhex(hex.trim()))
        })
        .collect()
}

/// What a transcript contained, decoded: requests and replies by xid.
#[derive(Default)]
struct Session {
    connect: Option<(ConnectRequest, ConnectResponse)>,
    requests: HashMap<i32, Request>,
    replies: HashMap<i32, (ReplyHeader, Option<Response>)>,
    events: Vec<(ReplyHeader, WatcherEvent)>,
}

/// Decodes every frame, checks that re-encoding gives the same bytes, and
/// returns the decoded session.
fn replay(name: &str) -> Session {
    let frames = transcript(name);
    assert!(frames.len() >= 4, "{name}: too few frames");
    let mut s = Session::default();
    let mut opcodes: HashMap<i32, OpCode> = HashMap::new();
    let mut it = frames.into_iter();

    let (_, Dir::C, first) = it.next().expect("connect request") else { panic!("first frame must be C") };
    let (_, Dir::S, second) = it.next().expect("connect response") else { panic!("second frame must be S") };
    let creq = ConnectRequest::decode_exact(first.clone()).expect("ConnectRequest");
    assert_eq!(creq.to_bytes(), first, "ConnectRequest re-encodes identically");
    let crsp = ConnectResponse::decode_exact(second.clone()).expect("ConnectResponse");
    assert_eq!(crsp.to_bytes(), second, "ConnectResponse re-encodes identically");
    s.connect = Some((creq, crsp));

    for (line, dir, frame) in it {
        let mut buf = frame.clone();
        match dir {
            Dir::C => {
                let h = RequestHeader::decode(&mut buf).unwrap_or_else(|e| panic!("L{line}: {e}"));
                let req = Request::decode(h.opcode, buf).unwrap_or_else(|e| panic!("L{line}: {e}"));
                assert!(!matches!(req, Request::Unknown { .. }), "L{line}: unknown opcode {}", h.opcode);
                let mut again = bytes::BytesMut::new();
                h.encode(&mut again);
                req.encode_body(&mut again);
                assert_eq!(again.freeze(), frame, "L{line}: {} request re-encodes identically", h.opcode);
                opcodes.insert(h.xid, h.opcode);
                s.requests.insert(h.xid, req);
            }
            Dir::S => {
                let h = ReplyHeader::decode(&mut buf).unwrap_or_else(|e| panic!("L{line}: {e}"));
                if h.xid == zk_proto::xid::NOTIFICATION {
                    let ev = WatcherEvent::decode_exact(buf).unwrap_or_else(|e| panic!("L{line}: {e}"));
                    let mut again = bytes::BytesMut::new();
                    (h, ev.clone()).encode(&mut again);
                    assert_eq!(again.freeze(), frame, "L{line}: event re-encodes identically");
                    s.events.push((h, ev));
                    continue;
                }
                let op =
                    *opcodes.get(&h.xid).unwrap_or_else(|| panic!("L{line}: reply to unknown xid {}", h.xid));
                let body = if h.err.is_ok() || matches!(op, OpCode::Multi | OpCode::MultiRead) {
                    let rsp = Response::decode(op, buf.clone()).unwrap_or_else(|e| panic!("L{line}: {e}"));
                    let mut again = bytes::BytesMut::new();
                    h.encode(&mut again);
                    rsp.encode_body(&mut again);
                    assert_eq!(again.freeze(), frame, "L{line}: reply to {op} re-encodes identically");
                    Some(rsp)
                } else {
                    assert_eq!(buf.remaining(), 0, "L{line}: an error reply has no body");
                    assert_eq!(h.to_bytes(), frame, "L{line}: error header re-encodes identically");
                    None
                };
                s.replies.insert(h.xid, (h, body));
            }
        }
    }
    s
}

fn reply(s: &Session, xid: i32) -> (&ReplyHeader, Option<&Response>) {
    let (h, r) = s.replies.get(&xid).unwrap_or_else(|| panic!("no reply for xid {xid}"));
    (h, r.as_ref())
}

#[test]
fn java_client_session_decodes_and_reencodes_exactly() {
    let s = replay("client_session.txt");

    // connect, with the trailing readOnly flag from both sides.
    let (creq, crsp) = s.connect.as_ref().expect("connect");
    assert_eq!(creq.time_out, 10_000);
    assert_eq!(creq.session_id, 0);
    assert_eq!(creq.passwd.len(), 16);
    assert_eq!(creq.read_only, Some(false));
    assert_eq!(crsp.time_out, 10_000);
    assert_ne!(crsp.session_id, 0);
    assert_eq!(crsp.read_only, Some(false));

    // create: the path and data as sent; null data stays null.
    let Request::Create(c) = &s.requests[&1] else { panic!("xid 1 is create") };
    assert_eq!(c.path, "/golden");
    assert_eq!(c.data.as_deref(), Some(&b"hello"[..]));
    assert_eq!(c.acl, Acl::open_unsafe());
    let Request::Create(c) = &s.requests[&3] else { panic!("xid 3 is create") };
    assert_eq!(c.data, None);
    let (_, Some(Response::Create(r))) = reply(&s, 4) else { panic!("xid 4 reply") };
    assert_eq!(r.path, "/golden/seq-0000000002");

    // create2 / createContainer / createTTL answer with a Stat.
    for xid in [2, 5, 6] {
        assert!(matches!(reply(&s, xid).1, Some(Response::Create2(_))), "xid {xid}");
    }
    let Request::CreateTtl(t) = &s.requests[&6] else { panic!("xid 6 is createTTL") };
    assert_eq!(t.ttl, 60_000);

    // getData with watch, then setData fires NodeDataChanged.
    let Request::GetData(g) = &s.requests[&9] else { panic!("xid 9 is getData") };
    assert!(g.watch);
    let (_, Some(Response::GetData(d))) = reply(&s, 9) else { panic!("getData reply") };
    assert_eq!(d.data.as_deref(), Some(&b"hello"[..]));
    assert_eq!(d.stat.data_length, 5);
    let (h, Some(Response::SetData(sd))) = reply(&s, 10) else { panic!("setData reply") };
    assert_eq!(sd.stat.version, 1);
    assert_eq!(sd.stat.mzxid, h.zxid);
    let (eh, ev) = &s.events[0];
    assert_eq!(eh.zxid, -1, "3.8 sends notifications with zxid -1");
    assert_eq!(EventType::from(ev.event_type), EventType::NodeDataChanged);
    assert_eq!(KeeperState::from(ev.state), KeeperState::SyncConnected);
    assert_eq!(ev.path, "/golden");

    // error replies: a header only.
    assert_eq!(reply(&s, 8).0.err, ErrorCode::NoNode);
    assert_eq!(reply(&s, 11).0.err, ErrorCode::BadVersion);
    assert_eq!(reply(&s, 12).0.err, ErrorCode::NoNode);
    assert_eq!(reply(&s, 18).0.err, ErrorCode::NoAuth);
    assert_eq!(reply(&s, 37).0.err, ErrorCode::NotEmpty);
    assert_eq!(reply(&s, 38).0.err, ErrorCode::NodeExists);

    // getChildren2 answers children and the parent's Stat.
    let (_, Some(Response::GetChildren2(gc))) = reply(&s, 14) else { panic!("getChildren2 reply") };
    assert_eq!(gc.stat.num_children as usize, gc.children.len());
    assert!(gc.children.iter().any(|c| c == "c2"));
    assert!(s.events.iter().any(|(_, e)| EventType::from(e.event_type) == EventType::NodeChildrenChanged));

    // multi: a success and an all-or-nothing failure.
    let Request::Multi(m) = &s.requests[&20] else { panic!("xid 20 is multi") };
    assert_eq!(m.ops.len(), 4);
    let (h, Some(Response::Multi(ok))) = reply(&s, 20) else { panic!("multi reply") };
    assert!(h.err.is_ok());
    assert_eq!(ok.first_error(), None);
    assert!(matches!(ok.results[0], MultiResult::Create { .. }));
    assert!(matches!(ok.results[2], MultiResult::Check));
    assert!(matches!(ok.results[3], MultiResult::Delete));
    let (h, Some(Response::Multi(failed))) = reply(&s, 21) else { panic!("failed multi reply") };
    assert!(h.err.is_ok(), "a failed multi still has err 0 in its header");
    assert_eq!(
        failed.results,
        vec![
            MultiResult::Error { err: ErrorCode::Ok },
            MultiResult::Error { err: ErrorCode::BadVersion },
            MultiResult::Error { err: ErrorCode::RuntimeInconsistency },
        ]
    );
    // multiRead: per-op results, an error inside a successful reply.
    let (h, Some(Response::Multi(mr))) = reply(&s, 23) else { panic!("multiRead reply") };
    assert!(h.err.is_ok());
    assert_eq!(mr.results[1], MultiResult::Error { err: ErrorCode::NoNode });

    // auth (xid -4), addWatch's ErrorResponse{0} body, whoAmI.
    assert!(matches!(s.requests[&zk_proto::xid::AUTH], Request::Auth(_)));
    assert!(matches!(reply(&s, 27).1, Some(Response::AddWatch(ErrorResponse { err: 0 }))));
    let (_, Some(Response::WhoAmI(who))) = reply(&s, 35) else { panic!("whoAmI reply") };
    assert!(who.client_info.iter().any(|c| c.auth_scheme == "digest" && c.user == "user"));

    // closeSession.
    assert!(matches!(s.requests[&39], Request::CloseSession));
}

#[test]
fn c_client_session_decodes_and_reencodes_exactly() {
    let s = replay("cli_mt_session.txt");
    let (creq, _) = s.connect.as_ref().expect("connect");
    assert_eq!(creq.time_out, 30_000);
    assert!(s.requests.values().any(|r| matches!(r, Request::Create(c) if c.path == "/cli-golden")));
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

#[test]
fn transaction_log_decodes_and_reencodes_exactly() {
    let mut log = Bytes::from(std::fs::read(golden("txnlog.bin")).expect("txnlog.bin"));
    let header = FileHeader::decode(&mut log).expect("header");
    assert_eq!(header, FileHeader { magic: TXNLOG_MAGIC, version: FILE_VERSION, dbid: 0 });
    let mut txns = Vec::new();
    while log.has_remaining() {
        let crc = i64::decode(&mut log).expect("crc");
        let bytes = Bytes::decode(&mut log).expect("txn bytes");
        assert_eq!(u8::decode_eor(&mut log), END_OF_RECORD);
        assert_eq!(crc as u64, u64::from(adler32(&bytes)), "Adler32 checksum");
        let txn = LoggedTxn::decode_exact(bytes.clone()).expect("txn");
        assert_eq!(txn.to_bytes(), bytes, "zxid {:#x} re-encodes identically", txn.header.zxid);
        txns.push(txn);
    }
    assert_eq!(txns.len(), 19);
    for (i, t) in txns.iter().enumerate() {
        assert_eq!(t.header.zxid, i as i64 + 1, "zxids are consecutive");
        // Apache digests every txn that changes the tree; error txns carry none.
        assert_eq!(t.digest.is_some(), t.header.txn_type != OpCode::Error, "digest of {:?}", t.header);
    }
    assert!(matches!(txns[0].body, TxnBody::CreateSession(_)));
    assert!(txns.iter().any(|t| matches!(&t.body, TxnBody::CreateTtl(c) if c.ttl == 60_000)));
    assert!(txns.iter().any(|t| matches!(&t.body, TxnBody::CreateContainer(_))));
    // The failed multi is logged as a multi of error txns.
    assert!(txns.iter().any(|t| matches!(&t.body, TxnBody::Multi(m)
        if m.txns.iter().any(|x| x.txn_type == OpCode::Error.code()))));
    assert!(matches!(txns.last().map(|t| &t.body), Some(TxnBody::CloseSession(Some(_)))));
}

#[test]
fn snapshot_header_sessions_and_nodes_decode() {
    let mut snap = Bytes::from(std::fs::read(golden("snapshot.bin")).expect("snapshot.bin"));
    let header = FileHeader::decode(&mut snap).expect("header");
    assert_eq!(header, FileHeader { magic: SNAP_MAGIC, version: FILE_VERSION, dbid: -1 });
    let sessions = i32::decode(&mut snap).expect("session count");
    for _ in 0..sessions {
        i64::decode(&mut snap).expect("session id");
        i32::decode(&mut snap).expect("timeout");
    }
    let acls = i32::decode(&mut snap).expect("acl cache size");
    for _ in 0..acls {
        i64::decode(&mut snap).expect("acl index");
        Vec::<Acl>::decode(&mut snap).expect("acl");
    }
    let mut paths = Vec::new();
    loop {
        let path = String::decode(&mut snap).expect("path");
        if path == "/" {
            break;
        }
        let _data = Option::<Bytes>::decode(&mut snap).expect("data");
        let _acl = i64::decode(&mut snap).expect("acl index");
        let _stat = StatPersisted::decode(&mut snap).expect("stat");
        paths.push(path);
    }
    assert!(paths.iter().any(|p| p == "/golden/c2"));
    assert!(paths.iter().any(|p| p == "/zookeeper/quota"));
}

/// Reads the end-of-record byte of a log entry.
trait Eor {
    fn decode_eor(buf: &mut Bytes) -> u8;
}
impl Eor for u8 {
    fn decode_eor(buf: &mut Bytes) -> u8 {
        assert!(buf.has_remaining(), "missing end-of-record byte");
        buf.get_u8()
    }
}
