//! The read stage: requests that do not change the tree are answered
//! from it at once (or, when their session has writes in flight, once
//! those are applied; see `core.rs`). Apache's `FinalRequestProcessor`
//! for reads. No reply is built larger than a frame may be.

use zk_proto::records::*;
use zk_proto::types::perms;
use zk_proto::{AddWatchMode, ErrorCode, EventType, Request, Response, WatcherType};

use super::ConnId;
use super::core::Core;
use super::reply;
use crate::tree::DataTree;

impl Core {
    fn acl_ok(&self, conn: ConnId, acl: &[Acl], perm: i32) -> bool {
        let ids = self.conns.get(&conn).map(|c| c.auth.as_slice()).unwrap_or(&[]);
        DataTree::check_acl(acl, perm, ids)
    }

    /// Answers a read received at `received` (monotonic ms).
    pub(super) fn answer_read(&mut self, conn: ConnId, xid: i32, req: Request, received: u64) {
        if let Some(m) = &self.metrics {
            if !matches!(req, Request::Ping) {
                m.read_latency.record(self.now.mono_ms.saturating_sub(received) as f64);
            }
        }
        let zxid = self.tree.last_zxid;
        let req_name = req.opcode().name();
        let ok = |b: Response| (ErrorCode::Ok, Some(b));
        let (err, body): (ErrorCode, Option<Response>) = match req {
            Request::Ping => {
                // Apache answers every ping with the ping xid.
                self.reply(conn, ReplyHeader { xid: zk_proto::xid::PING, zxid, err: ErrorCode::Ok }, None);
                return;
            }
            Request::Exists(r) => match valid(&r.path) {
                Err(e) => (e, None),
                Ok(()) => {
                    if r.watch {
                        self.watches.add_data(&r.path, conn);
                    }
                    match self.tree.get(&r.path) {
                        Some(n) => ok(Response::Exists(ExistsResponse { stat: n.client_stat() })),
                        None => (ErrorCode::NoNode, None),
                    }
                }
            },
            Request::GetData(r) => match self.read_node(conn, &r.path, perms::READ) {
                Err(e) => (e, None),
                Ok(()) => {
                    if r.watch {
                        self.watches.add_data(&r.path, conn);
                    }
                    match self.tree.get(&r.path) {
                        Some(n) => ok(Response::GetData(GetDataResponse {
                            data: n.data_bytes(),
                            stat: n.client_stat(),
                        })),
                        None => (ErrorCode::NoNode, None),
                    }
                }
            },
            Request::GetChildren(r) => match self.read_node(conn, &r.path, perms::READ) {
                Err(e) => (e, None),
                Ok(()) => {
                    if r.watch {
                        self.watches.add_child(&r.path, conn);
                    }
                    if 16 + self.children_len(&r.path) > self.max_reply() {
                        self.too_large(conn, xid, req_name);
                        return;
                    }
                    let children = self.children(&r.path);
                    ok(Response::GetChildren(GetChildrenResponse { children }))
                }
            },
            Request::GetChildren2(r) => match self.read_node(conn, &r.path, perms::READ) {
                Err(e) => (e, None),
                Ok(()) => {
                    if r.watch {
                        self.watches.add_child(&r.path, conn);
                    }
                    if 16 + reply::STAT + self.children_len(&r.path) > self.max_reply() {
                        self.too_large(conn, xid, req_name);
                        return;
                    }
                    let children = self.children(&r.path);
                    let stat = self.tree.get(&r.path).map(|n| n.client_stat()).unwrap_or_default();
                    ok(Response::GetChildren2(GetChildren2Response { children, stat }))
                }
            },
            Request::GetAcl(r) => match valid(&r.path) {
                Err(e) => (e, None),
                Ok(()) => match self.tree.get(&r.path) {
                    // As Apache (ZOOKEEPER-4799 era): READ or ADMIN is needed,
                    // and without ADMIN the digest hashes are masked.
                    Some(n) if !self.acl_ok(conn, n.acl(), perms::READ | perms::ADMIN) => {
                        (ErrorCode::NoAuth, None)
                    }
                    Some(n) => {
                        let acl = if self.acl_ok(conn, n.acl(), perms::ADMIN) {
                            n.acl().to_vec()
                        } else {
                            n.acl()
                                .iter()
                                .map(|a| match a.id.scheme.as_str() {
                                    "digest" => {
                                        let user = a.id.id.split(':').next().unwrap_or("");
                                        Acl::new(a.perms, Id::new("digest", format!("{user}:x")))
                                    }
                                    _ => a.clone(),
                                })
                                .collect()
                        };
                        ok(Response::GetAcl(GetAclResponse { acl, stat: n.client_stat() }))
                    }
                    None => (ErrorCode::NoNode, None),
                },
            },
            Request::GetAllChildrenNumber(r) => match self.read_node(conn, &r.path, perms::READ) {
                Err(e) => (e, None),
                Ok(()) => ok(Response::GetAllChildrenNumber(GetAllChildrenNumberResponse {
                    total_number: self.tree.descendants(&r.path) as i32,
                })),
            },
            Request::GetEphemerals(r) => {
                let session = self.conns.get(&conn).map_or(0, |c| c.session);
                let prefix = r.prefix_path;
                let mut ephemerals: Vec<String> = self
                    .tree
                    .ephemerals_of(session)
                    .filter(|p| prefix == "/" || p.starts_with(&prefix))
                    .cloned()
                    .collect();
                ephemerals.sort();
                ok(Response::GetEphemerals(GetEphemeralsResponse { ephemerals }))
            }
            Request::Sync(r) => ok(Response::Sync(SyncResponse { path: r.path })),
            Request::CheckWatches(r) => {
                let wt = WatcherType::from(r.watcher_type);
                if self.watches.contains(&r.path, wt, conn) {
                    ok(Response::Empty)
                } else {
                    (ErrorCode::NoWatcher, None)
                }
            }
            Request::RemoveWatches(r) => {
                let wt = WatcherType::from(r.watcher_type);
                if self.watches.remove(&r.path, wt, conn).is_empty() {
                    (ErrorCode::NoWatcher, None)
                } else {
                    ok(Response::Empty)
                }
            }
            Request::AddWatch(r) => match valid(&r.path) {
                Err(e) => (e, None),
                Ok(()) => match AddWatchMode::from(r.mode) {
                    AddWatchMode::Persistent => {
                        self.watches.add_persistent(&r.path, conn);
                        ok(Response::AddWatch(ErrorResponse { err: 0 }))
                    }
                    AddWatchMode::PersistentRecursive => {
                        self.watches.add_recursive(&r.path, conn);
                        ok(Response::AddWatch(ErrorResponse { err: 0 }))
                    }
                    _ => (ErrorCode::BadArguments, None),
                },
            },
            Request::SetWatches(w) => {
                self.set_watches(
                    conn,
                    w.relative_zxid,
                    &w.data_watches,
                    &w.exist_watches,
                    &w.child_watches,
                    &[],
                    &[],
                );
                self.reply(conn, ReplyHeader { xid, zxid, err: ErrorCode::Ok }, None);
                return;
            }
            Request::SetWatches2(w) => {
                self.set_watches(
                    conn,
                    w.relative_zxid,
                    &w.data_watches,
                    &w.exist_watches,
                    &w.child_watches,
                    &w.persistent_watches,
                    &w.persistent_recursive_watches,
                );
                self.reply(conn, ReplyHeader { xid, zxid, err: ErrorCode::Ok }, None);
                return;
            }
            Request::WhoAmI => {
                let info = self.conns.get(&conn).map(|c| c.auth.clone()).unwrap_or_default();
                let client_info = info
                    .into_iter()
                    .map(|id| {
                        let user = if id.scheme == "digest" {
                            id.id.split(':').next().unwrap_or("").to_string()
                        } else {
                            id.id
                        };
                        ClientInfo { auth_scheme: id.scheme, user }
                    })
                    .collect();
                ok(Response::WhoAmI(WhoAmIResponse { client_info }))
            }
            Request::MultiRead(m) => {
                // The reply is built only while it fits in a frame: a
                // multiRead that asks for more than a client could read
                // fails whole, and nothing of its size is ever allocated.
                let limit = self.max_reply();
                let mut size = 16 + 9;
                let mut results = Vec::with_capacity(m.ops.len().min(1024));
                let mut too_large = false;
                for op in m.ops {
                    let r = match op {
                        MultiOp::GetData(r) => match self.read_node(conn, &r.path, perms::READ) {
                            Err(err) => MultiResult::Error { err },
                            Ok(()) => match self.tree.get(&r.path) {
                                Some(n) => {
                                    MultiResult::GetData { data: n.data_bytes(), stat: n.client_stat() }
                                }
                                None => MultiResult::Error { err: ErrorCode::NoNode },
                            },
                        },
                        MultiOp::GetChildren(r) => match self.read_node(conn, &r.path, perms::READ) {
                            Err(err) => MultiResult::Error { err },
                            Ok(()) => {
                                let need = self.children_len(&r.path);
                                if size + need > limit {
                                    too_large = true;
                                    break;
                                }
                                MultiResult::GetChildren { children: self.children(&r.path) }
                            }
                        },
                        _ => MultiResult::Error { err: ErrorCode::BadArguments },
                    };
                    size += reply::multi_result_len(&r);
                    if size > limit {
                        too_large = true;
                        break;
                    }
                    results.push(r);
                }
                if too_large {
                    self.too_large(conn, xid, "multiRead");
                    return;
                }
                ok(Response::Multi(MultiResponse { results }))
            }
            _ => (ErrorCode::Unimplemented, None),
        };
        if let Some(b) = &body {
            if !reply::fits(b, self.max_reply()) {
                self.too_large(conn, xid, req_name);
                return;
            }
        }
        self.reply(conn, ReplyHeader { xid, zxid, err }, body);
    }

    /// The largest reply frame the server builds: `jute.maxbuffer` plus
    /// the headroom Apache allows for one length field.
    pub(super) fn max_reply(&self) -> usize {
        self.cfg.jute_maxbuffer.saturating_add(zk_proto::frame::JUTE_MAXBUFFER_EXTRASIZE_DEFAULT)
    }

    /// A read whose reply would not fit in a frame fails with
    /// MarshallingError (-5): the server could not marshal the reply
    /// within `jute.maxbuffer`. The connection and the session stay.
    /// (Apache 3.8 has no answer to copy: it builds such a reply and runs
    /// out of memory, or sends a frame no client accepts.)
    fn too_large(&mut self, conn: ConnId, xid: i32, what: &str) {
        tracing::warn!(
            conn,
            request = what,
            limit = self.max_reply(),
            "reply too large; failing the request"
        );
        self.reply_err(conn, xid, ErrorCode::MarshallingError);
    }

    fn children_len(&self, path: &str) -> usize {
        4 + self.tree.children_of(path).map(|c| 4 + c.len()).sum::<usize>()
    }

    fn read_node(&self, conn: ConnId, path: &str, perm: i32) -> Result<(), ErrorCode> {
        valid(path)?;
        let n = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        if self.acl_ok(conn, n.acl(), perm) { Ok(()) } else { Err(ErrorCode::NoAuth) }
    }

    fn children(&self, path: &str) -> Vec<String> {
        self.tree.children_of(path).map(str::to_string).collect()
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn set_watches(
        &mut self,
        conn: ConnId,
        rel: i64,
        data: &[String],
        exist: &[String],
        child: &[String],
        persistent: &[String],
        recursive: &[String],
    ) {
        let zxid = self.tree.last_zxid;
        for p in data {
            match self.tree.get(p).map(|n| n.stat().mzxid) {
                None => self.send_event(conn, EventType::NodeDeleted, p, zxid),
                Some(m) if m > rel => self.send_event(conn, EventType::NodeDataChanged, p, zxid),
                Some(_) => self.watches.add_data(p, conn),
            }
        }
        for p in exist {
            if self.tree.get(p).is_some() {
                self.send_event(conn, EventType::NodeCreated, p, zxid);
            } else {
                self.watches.add_data(p, conn);
            }
        }
        for p in child {
            match self.tree.get(p).map(|n| n.stat().pzxid) {
                None => self.send_event(conn, EventType::NodeDeleted, p, zxid),
                Some(pz) if pz > rel => self.send_event(conn, EventType::NodeChildrenChanged, p, zxid),
                Some(_) => self.watches.add_child(p, conn),
            }
        }
        for p in persistent {
            self.watches.add_persistent(p, conn);
        }
        for p in recursive {
            self.watches.add_recursive(p, conn);
        }
    }
}

/// Reads do not validate paths on the server (Apache looks them up and
/// answers NoNode); only a path that cannot be a key at all is refused.
fn valid(path: &str) -> Result<(), ErrorCode> {
    if path.is_empty() { Err(ErrorCode::NoNode) } else { Ok(()) }
}
