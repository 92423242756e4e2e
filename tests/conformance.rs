//! Conformance: the same scripted conversation, byte-level requests through
//! zk-proto, against Apache ZooKeeper 3.8 and against zk-server. Every
//! reply (error code, zxid, body with every Stat field) and every watch
//! event must be the same from both, after replacing what legitimately
//! differs (session ids, clock times).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::raw::Raw;
use zk_proto::records::*;
use zk_proto::types::perms;
use zk_proto::{CreateMode, Request, Response};
use zk_test_support::apache::ApacheZk;

fn create(path: &str, data: Option<&[u8]>, mode: CreateMode) -> Request {
    let r = CreateRequest {
        path: path.into(),
        data: data.map(Bytes::copy_from_slice),
        acl: Acl::open_unsafe(),
        flags: mode.code(),
    };
    Request::Create2(r)
}

fn create1(path: &str, mode: CreateMode) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(Bytes::from_static(b"d")),
        acl: Acl::open_unsafe(),
        flags: mode.code(),
    })
}

fn get(path: &str, watch: bool) -> Request {
    Request::GetData(GetDataRequest { path: path.into(), watch })
}

fn set(path: &str, data: &[u8], version: i32) -> Request {
    Request::SetData(SetDataRequest { path: path.into(), data: Some(Bytes::copy_from_slice(data)), version })
}

fn del(path: &str, version: i32) -> Request {
    Request::Delete(DeleteRequest { path: path.into(), version })
}

fn exists(path: &str, watch: bool) -> Request {
    Request::Exists(ExistsRequest { path: path.into(), watch })
}

fn children2(path: &str, watch: bool) -> Request {
    Request::GetChildren2(GetChildren2Request { path: path.into(), watch })
}

/// A Stat with times replaced by a marker and session ids by names.
fn norm_stat(s: &Stat, sessions: &[(i64, &str)]) -> String {
    let owner = sessions
        .iter()
        .find(|(id, _)| *id == s.ephemeral_owner)
        .map_or(s.ephemeral_owner.to_string(), |(_, n)| n.to_string());
    format!(
        "czxid={:#x} mzxid={:#x} pzxid={:#x} times={} version={} cversion={} aversion={} owner={} len={} kids={}",
        s.czxid,
        s.mzxid,
        s.pzxid,
        // Clock values differ between runs; only their order is compared.
        if s.ctime <= s.mtime { "ordered" } else { "reversed" },
        s.version,
        s.cversion,
        s.aversion,
        owner,
        s.data_length,
        s.num_children
    )
}

fn norm(rsp: &Response, sessions: &[(i64, &str)]) -> String {
    let st = |s: &Stat| norm_stat(s, sessions);
    match rsp {
        Response::Create(c) => format!("create {}", c.path),
        Response::Create2(c) => format!("create2 {} {}", c.path, st(&c.stat)),
        Response::Exists(e) => format!("exists {}", st(&e.stat)),
        Response::GetData(d) => format!("data {:?} {}", d.data, st(&d.stat)),
        Response::SetData(d) => format!("set {}", st(&d.stat)),
        Response::GetAcl(a) => format!("acl {:?} {}", a.acl, st(&a.stat)),
        Response::SetAcl(a) => format!("setacl {}", st(&a.stat)),
        Response::GetChildren(c) => {
            let mut k = c.children.clone();
            k.sort();
            format!("children {k:?}")
        }
        Response::GetChildren2(c) => {
            let mut k = c.children.clone();
            k.sort();
            format!("children2 {k:?} {}", st(&c.stat))
        }
        Response::Multi(m) => {
            let parts: Vec<String> = m
                .results
                .iter()
                .map(|r| match r {
                    MultiResult::Create2 { path, stat } => format!("create2 {path} {}", st(stat)),
                    MultiResult::SetData { stat } => format!("set {}", st(stat)),
                    MultiResult::GetData { data, stat } => format!("data {data:?} {}", st(stat)),
                    other => format!("{other:?}"),
                })
                .collect();
            format!("multi [{}]", parts.join("; "))
        }
        Response::GetEphemerals(e) => {
            let mut k = e.ephemerals.clone();
            k.sort();
            format!("ephemerals {k:?}")
        }
        Response::WhoAmI(w) => format!("whoami {:?}", w.client_info),
        other => format!("{other:?}"),
    }
}

/// Runs the script against `addr` and returns its transcript.
fn script(addr: SocketAddr) -> Vec<String> {
    let mut a = Raw::connect(addr, 10_000);
    let mut b = Raw::connect(addr, 10_000);
    let names = [(a.session_id, "A"), (b.session_id, "B")];
    let mut out = Vec::new();
    fn do_step(out: &mut Vec<String>, names: &[(i64, &str)], who: &str, s: &mut Raw, req: Request) {
        let (h, rsp) = s.call(&req).expect("reply");
        let body = rsp.map_or(String::new(), |r| norm(&r, names));
        out.push(format!("{who} {} -> {} zxid={:#x} {body}", req.opcode(), h.err, h.zxid));
    }
    macro_rules! step {
        ($who:expr, $s:expr, $req:expr) => {
            do_step(&mut out, &names, $who, $s, $req)
        };
    }

    step!("A", &mut a, create("/c", Some(b"x"), CreateMode::Persistent));
    step!("A", &mut a, create("/c", Some(b"x"), CreateMode::Persistent));
    step!("A", &mut a, create("/nodata", None, CreateMode::Persistent));
    step!("A", &mut a, get("/nodata", false));
    step!("A", &mut a, create("/missing/x", None, CreateMode::Persistent));
    step!("A", &mut a, create1("/c/s-", CreateMode::PersistentSequential));
    step!("B", &mut b, create1("/c/s-", CreateMode::EphemeralSequential));
    step!("A", &mut a, create("/c/", None, CreateMode::PersistentSequential));
    step!("B", &mut b, create("/c/eph", Some(b"e"), CreateMode::Ephemeral));
    step!("B", &mut b, create("/c/eph/child", None, CreateMode::Persistent));
    step!("A", &mut a, create("/c/cont", None, CreateMode::Container));
    step!(
        "A",
        &mut a,
        Request::CreateTtl(CreateTtlRequest {
            path: "/c/ttl".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 5,
            ttl: 100_000
        })
    );
    step!(
        "A",
        &mut a,
        Request::CreateTtl(CreateTtlRequest {
            path: "/c/ttl0".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 5,
            ttl: 0
        })
    );
    step!(
        "A",
        &mut a,
        Request::CreateTtl(CreateTtlRequest {
            path: "/c/ttlp".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: 10
        })
    );
    step!("A", &mut a, children2("/c", false));
    step!("A", &mut a, exists("/c", false));
    step!("A", &mut a, get("/c", false));
    step!("A", &mut a, set("/c", b"y", 0));
    step!("A", &mut a, set("/c", b"z", 0));
    step!("A", &mut a, set("/nope", b"z", -1));
    step!("A", &mut a, del("/c", -1));
    step!("A", &mut a, del("/c/s-0000000000", 5));
    step!("A", &mut a, del("/c/s-0000000000", 0));
    step!("A", &mut a, del("/nope", -1));
    step!("A", &mut a, children2("/c", false));
    step!("A", &mut a, Request::GetAcl(GetAclRequest { path: "/".into() }));
    step!("A", &mut a, Request::GetAcl(GetAclRequest { path: "/zookeeper/config".into() }));
    step!("A", &mut a, Request::GetChildren(GetChildrenRequest { path: "/zookeeper".into(), watch: false }));
    step!("A", &mut a, Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: "/c".into() }));
    step!("B", &mut b, Request::GetEphemerals(GetEphemeralsRequest { prefix_path: "/".into() }));
    step!("B", &mut b, Request::GetEphemerals(GetEphemeralsRequest { prefix_path: "/c/e".into() }));
    step!("A", &mut a, Request::GetEphemerals(GetEphemeralsRequest { prefix_path: "/".into() }));

    // ACLs.
    let digest = Id::new("digest", "user:smGaoVKd/cQkjm7b88GyorAUz20=");
    step!("A", &mut a, create("/secret", Some(b"s"), CreateMode::Persistent));
    step!(
        "A",
        &mut a,
        Request::SetAcl(SetAclRequest {
            path: "/secret".into(),
            acl: vec![Acl::new(perms::ALL, digest.clone())],
            version: 0
        })
    );
    step!(
        "A",
        &mut a,
        Request::SetAcl(SetAclRequest { path: "/secret".into(), acl: Acl::open_unsafe(), version: 0 })
    );
    step!("A", &mut a, get("/secret", false));
    step!("A", &mut a, set("/secret", b"t", -1));
    step!("A", &mut a, create("/secret/kid", None, CreateMode::Persistent));
    step!("A", &mut a, Request::SetAcl(SetAclRequest { path: "/c".into(), acl: vec![], version: -1 }));
    step!(
        "A",
        &mut a,
        Request::SetAcl(SetAclRequest {
            path: "/c".into(),
            acl: vec![Acl::new(perms::ALL, Id::new("bogus", "x"))],
            version: -1
        })
    );
    step!(
        "A",
        &mut a,
        Request::Create(CreateRequest {
            path: "/mine".into(),
            data: None,
            acl: Acl::creator_all(),
            flags: 0
        })
    );
    let auth = Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: Bytes::from_static(b"user:pass"),
    });
    let (h, _) = a.call_xid(zk_proto::xid::AUTH, &auth).expect("auth reply");
    out.push(format!("A auth -> {}", h.err));
    step!("A", &mut a, get("/secret", false));
    step!(
        "A",
        &mut a,
        Request::Create(CreateRequest {
            path: "/mine".into(),
            data: None,
            acl: Acl::creator_all(),
            flags: 0
        })
    );
    step!("A", &mut a, Request::GetAcl(GetAclRequest { path: "/mine".into() }));
    // getACL needs READ or ADMIN; without ADMIN digest hashes are masked.
    let mixed = vec![Acl::new(perms::READ, Id::anyone()), Acl::new(perms::ALL, digest.clone())];
    step!(
        "A",
        &mut a,
        Request::Create(CreateRequest { path: "/masked".into(), data: None, acl: mixed, flags: 0 })
    );
    step!("B", &mut b, Request::GetAcl(GetAclRequest { path: "/masked".into() }));
    step!("A", &mut a, Request::GetAcl(GetAclRequest { path: "/masked".into() }));
    step!("B", &mut b, Request::GetAcl(GetAclRequest { path: "/secret".into() }));
    step!("B", &mut b, exists("/secret", false));
    step!("B", &mut b, Request::GetChildren(GetChildrenRequest { path: "/secret".into(), watch: false }));
    step!("B", &mut b, Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: "/secret".into() }));
    step!("A", &mut a, Request::WhoAmI);
    // Duplicate ACL entries are removed (ZOOKEEPER-1877), in create and
    // setACL; `auth` expands to the session's ids after that.
    let dup = vec![
        Acl::new(perms::READ, Id::anyone()),
        Acl::new(perms::ALL, digest.clone()),
        Acl::new(perms::READ, Id::anyone()),
        Acl::new(perms::ALL, digest.clone()),
        Acl::new(perms::ALL, Id::auth_ids()),
    ];
    step!(
        "A",
        &mut a,
        Request::Create(CreateRequest { path: "/dup".into(), data: None, acl: dup.clone(), flags: 0 })
    );
    step!("A", &mut a, Request::GetAcl(GetAclRequest { path: "/dup".into() }));
    step!("A", &mut a, Request::SetAcl(SetAclRequest { path: "/dup".into(), acl: dup, version: -1 }));
    step!("A", &mut a, Request::GetAcl(GetAclRequest { path: "/dup".into() }));

    // Multi.
    let ops = vec![
        MultiOp::Create2(CreateRequest {
            path: "/m".into(),
            data: Some(Bytes::from_static(b"0")),
            acl: Acl::open_unsafe(),
            flags: 0,
        }),
        MultiOp::SetData(SetDataRequest {
            path: "/m".into(),
            data: Some(Bytes::from_static(b"1")),
            version: 0,
        }),
        MultiOp::Check(CheckVersionRequest { path: "/m".into(), version: 1 }),
        MultiOp::Create(CreateRequest { path: "/m/s".into(), data: None, acl: Acl::open_unsafe(), flags: 2 }),
        MultiOp::Delete(DeleteRequest { path: "/m/s0000000000".into(), version: -1 }),
    ];
    step!("A", &mut a, Request::Multi(MultiRequest { ops }));
    let failing = vec![
        MultiOp::SetData(SetDataRequest { path: "/m".into(), data: None, version: -1 }),
        MultiOp::Check(CheckVersionRequest { path: "/m".into(), version: 0 }),
        MultiOp::Delete(DeleteRequest { path: "/m".into(), version: -1 }),
    ];
    step!("A", &mut a, Request::Multi(MultiRequest { ops: failing }));
    step!("A", &mut a, get("/m", false));
    step!("A", &mut a, Request::Multi(MultiRequest { ops: vec![] }));
    let reads = vec![
        MultiOp::GetData(GetDataRequest { path: "/m".into(), watch: false }),
        MultiOp::GetChildren(GetChildrenRequest { path: "/m".into(), watch: false }),
        MultiOp::GetData(GetDataRequest { path: "/none".into(), watch: false }),
    ];
    step!("A", &mut a, Request::MultiRead(MultiRequest { ops: reads }));

    // Sequential names count the parent's creates; deletes do not move
    // them on (Apache keeps that count and shows cversion = 2*creates -
    // children).
    step!("A", &mut a, create("/sq", None, CreateMode::Persistent));
    step!("A", &mut a, create("/sq/s-", None, CreateMode::PersistentSequential));
    step!("A", &mut a, create("/sq/s-", None, CreateMode::PersistentSequential));
    step!("A", &mut a, del("/sq/s-0000000000", -1));
    step!("A", &mut a, del("/sq/s-0000000001", -1));
    step!("A", &mut a, create("/sq/s-", None, CreateMode::PersistentSequential));
    step!("A", &mut a, children2("/sq", false));
    // Ephemerals created inside a multi (they go when B closes, below).
    let eph = |path: &str, mode: CreateMode| {
        MultiOp::Create(CreateRequest {
            path: path.into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: mode.code(),
        })
    };
    let ops = vec![eph("/sq/e", CreateMode::Ephemeral), eph("/sq/es-", CreateMode::EphemeralSequential)];
    step!("B", &mut b, Request::Multi(MultiRequest { ops }));
    step!("A", &mut a, children2("/sq", false));

    // Watches: exists on a missing node, data, child, deletion, persistent, recursive.
    step!("A", &mut a, exists("/w", true));
    step!("B", &mut b, create("/w", Some(b"1"), CreateMode::Persistent));
    step!("A", &mut a, get("/w", true));
    step!("A", &mut a, children2("/w", true));
    step!("B", &mut b, set("/w", b"2", -1));
    step!("B", &mut b, create("/w/k", None, CreateMode::Persistent));
    step!("A", &mut a, get("/w", true));
    step!("A", &mut a, children2("/w", true));
    step!("B", &mut b, del("/w/k", -1));
    step!("A", &mut a, children2("/w", true));
    step!("B", &mut b, del("/w", -1));
    step!("A", &mut a, Request::AddWatch(AddWatchRequest { path: "/p".into(), mode: 0 }));
    step!("A", &mut a, Request::AddWatch(AddWatchRequest { path: "/p".into(), mode: 1 }));
    step!("B", &mut b, create("/p", None, CreateMode::Persistent));
    step!("B", &mut b, create("/p/q", None, CreateMode::Persistent));
    step!("B", &mut b, set("/p/q", b"x", -1));
    step!("A", &mut a, Request::CheckWatches(CheckWatchesRequest { path: "/p".into(), watcher_type: 3 }));
    step!("A", &mut a, Request::RemoveWatches(RemoveWatchesRequest { path: "/p".into(), watcher_type: 3 }));
    step!("A", &mut a, Request::RemoveWatches(RemoveWatchesRequest { path: "/p".into(), watcher_type: 3 }));
    step!(
        "A",
        &mut a,
        Request::CheckWatches(CheckWatchesRequest { path: "/nowatch".into(), watcher_type: 2 })
    );
    step!("A", &mut a, Request::Sync(SyncRequest { path: "/".into() }));
    let (h, _) = a.call_xid(zk_proto::xid::PING, &Request::Ping).expect("ping reply");
    out.push(format!("A ping -> {} zxid={:#x}", h.err, h.zxid));

    // Invalid paths are BadArguments on the server.
    step!("A", &mut a, get("bad", false));
    step!("A", &mut a, create("/bad/", None, CreateMode::Persistent));

    // B closes: its ephemerals go, A's watch on one fires.
    step!("A", &mut a, exists("/c/eph", true));
    step!("B", &mut b, Request::CloseSession);
    a.wait_events(a.events.len() + 1);
    step!("A", &mut a, children2("/c", false));
    step!("A", &mut a, children2("/sq", false));
    step!("A", &mut a, create("/sq/s-", None, CreateMode::PersistentSequential));

    for (who, s) in [("A", &a)] {
        for (_zxid, ev) in &s.events {
            out.push(format!("{who} event type={} state={} path={}", ev.event_type, ev.state, ev.path));
        }
    }
    // Last: an opcode the server does not know is answered and the
    // connection closed.
    let (h, _) =
        a.call(&Request::Unknown { opcode: zk_proto::OpCode::from(777), body: Bytes::new() }).expect("reply");
    out.push(format!("A unknown -> {}", h.err));
    out.push(format!("A closed after unknown op: {}", a.closed()));
    out
}

/// Fails with every step where the two transcripts differ.
fn assert_same_transcript(expected: &[String], got: &[String]) {
    let mut mismatches = Vec::new();
    for (i, (e, g)) in expected.iter().zip(got.iter()).enumerate() {
        if e != g {
            mismatches.push(format!("step {i}:\n  apache: {e}\n  ours:   {g}"));
        }
    }
    if expected.len() != got.len() {
        mismatches.push(format!(
            "apache had {} lines, ours {}:\n{expected:#?}\n{got:#?}",
            expected.len(),
            got.len()
        ));
    }
    assert!(mismatches.is_empty(), "{} differences:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn zk_server_answers_as_apache_does() {
    common::trace_init();
    let Some(apache) = ApacheZk::start() else { return };
    let expected = script(apache.addr());
    drop(apache);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ours = rt.block_on(zk_server::Server::start_temp()).expect("start zk-server");
    let got = script(ours.addr());
    rt.block_on(ours.stop());
    assert_same_transcript(&expected, &got);
}

/// Polls `exists(path)` on `s` until it answers `want_exists` (bounded);
/// how many polls it took is not part of the transcript.
fn poll_exists(s: &mut Raw, path: &str, want_exists: bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        let (h, _) = s.call(&exists(path, false)).expect("exists reply");
        if h.err.is_ok() == want_exists {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// The server's own writes, compared with Apache's: session expiry and
/// the removal of its ephemerals (with the events they fire), the
/// container and TTL sweeps, and, for two sessions, where watch events
/// fall among the replies.
fn timed_script(addr: SocketAddr) -> Vec<String> {
    let mut a = Raw::connect(addr, 10_000);
    let mut b = Raw::connect(addr, 10_000);
    let mut out = Vec::new();
    let names = [(a.session_id, "A"), (b.session_id, "B")];
    let step = |out: &mut Vec<String>, who: &str, s: &mut Raw, req: Request| {
        let before = s.events.len();
        let (h, rsp) = s.call(&req).expect("reply");
        let body = rsp.map_or(String::new(), |r| norm(&r, &names));
        for (_, ev) in &s.events[before..] {
            out.push(format!("{who} event type={} path={} (before the reply)", ev.event_type, ev.path));
        }
        out.push(format!("{who} {} -> {} {body}", req.opcode(), h.err));
    };

    // Events and replies across two sessions: A's watch fires before A's
    // next reply, after B's write is answered.
    step(&mut out, "A", &mut a, create("/o", Some(b"0"), CreateMode::Persistent));
    step(&mut out, "A", &mut a, get("/o", true));
    step(&mut out, "A", &mut a, children2("/o", true));
    step(&mut out, "B", &mut b, set("/o", b"1", -1));
    step(&mut out, "B", &mut b, create("/o/k", None, CreateMode::Persistent));
    step(&mut out, "A", &mut a, get("/o", false));
    step(&mut out, "B", &mut b, get("/o", true));
    step(&mut out, "A", &mut a, del("/o/k", -1));
    step(&mut out, "A", &mut a, set("/o", b"2", -1));
    step(&mut out, "B", &mut b, exists("/o", false));

    // Container and TTL sweeps.
    let container = |path: &str| {
        Request::CreateContainer(CreateRequest {
            path: path.into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: CreateMode::Container.code(),
        })
    };
    step(&mut out, "A", &mut a, container("/ctr"));
    // create2 with the container flag: Apache leaves a persistent node.
    step(&mut out, "A", &mut a, create("/not-ctr", None, CreateMode::Container));
    step(&mut out, "A", &mut a, create("/not-ctr/k", None, CreateMode::Persistent));
    step(&mut out, "A", &mut a, del("/not-ctr/k", -1));
    step(&mut out, "A", &mut a, create("/ctr/k", None, CreateMode::Persistent));
    step(&mut out, "A", &mut a, container("/empty"));
    // The watch goes on before the child goes: a sweep (every 200 ms)
    // may take the emptied container at any moment after.
    step(&mut out, "A", &mut a, exists("/ctr", true));
    step(&mut out, "A", &mut a, del("/ctr/k", -1));
    let ttl = Request::CreateTtl(CreateTtlRequest {
        path: "/ttl".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: CreateMode::PersistentWithTtl.code(),
        ttl: 300,
    });
    step(&mut out, "A", &mut a, ttl);
    out.push(format!("container swept: {}", poll_exists(&mut a, "/ctr", false)));
    out.push(format!("ttl node swept: {}", poll_exists(&mut a, "/ttl", false)));
    step(&mut out, "A", &mut a, exists("/empty", false));

    // Session expiry: C vanishes without closing; its ephemerals go.
    let mut c = Raw::connect(addr, 1000);
    let c_names = [(c.session_id, "C")];
    let (h, _) = c.call(&create("/eph-c", None, CreateMode::Ephemeral)).expect("reply");
    out.push(format!("C create ephemeral -> {}", h.err));
    let (h, rsp) = c.call(&create1("/seq-c-", CreateMode::EphemeralSequential)).expect("reply");
    out.push(format!(
        "C create ephemeral sequential -> {} {}",
        h.err,
        rsp.map_or(String::new(), |r| norm(&r, &c_names))
    ));
    let all = [names[0], names[1], c_names[0]];
    let (h, rsp) = a.call(&exists("/eph-c", true)).expect("reply");
    out.push(format!("A exists -> {} {}", h.err, rsp.map_or(String::new(), |r| norm(&r, &all))));
    step(&mut out, "A", &mut a, Request::GetChildren(GetChildrenRequest { path: "/".into(), watch: true }));
    drop(c);
    let seen = a.events.len();
    a.wait_events(seen + 2);
    for (_, ev) in &a.events[seen..] {
        out.push(format!("A event type={} path={} (after C expired)", ev.event_type, ev.path));
    }
    step(&mut out, "A", &mut a, exists("/eph-c", false));
    step(&mut out, "A", &mut a, Request::GetChildren(GetChildrenRequest { path: "/".into(), watch: false }));
    out
}

#[test]
fn sweeps_expiry_and_event_order_as_apache() {
    common::trace_init();
    let opts = zk_test_support::apache::ApacheZkOptions {
        tick_time: 200,
        jvm_args: vec!["-Dznode.container.checkIntervalMs=200".into()],
        ..Default::default()
    };
    let Some(apache) = ApacheZk::start_with(opts) else { return };
    let expected = timed_script(apache.addr());
    drop(apache);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut cfg = zk_server::ServerConfig::new("");
    cfg.client_port = 0;
    cfg.client_port_address = Some("127.0.0.1".parse().unwrap());
    cfg.extended_types_enabled = true;
    cfg.tick_time = std::time::Duration::from_millis(200);
    cfg.container_check_interval = std::time::Duration::from_millis(200);
    let ours = rt.block_on(zk_server::Server::start_temp_with(cfg)).expect("start zk-server");
    let got = timed_script(ours.addr());
    rt.block_on(ours.stop());
    assert_same_transcript(&expected, &got);
}
