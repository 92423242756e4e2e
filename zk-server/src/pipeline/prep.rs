//! Prep: turns a write request into a txn (Apache's
//! `PrepRequestProcessor`), checking it against the tree plus the changes
//! already prepped but not yet applied.
//!
//! A check that fails is not an error here but an `ErrorTxn`: like Apache,
//! a failed write still takes a zxid and goes through the log, so that
//! every session's replies keep their order.

use std::collections::VecDeque;

use hashbrown::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use zk_proto::records::*;
use zk_proto::types::perms;
use zk_proto::{CreateMode, ErrorCode, OpCode, Request};

use crate::acl::fixup_acl;
use crate::javaset::JavaHashSet;
use crate::tree::{DataTree, NodeKind};

/// A node as prep sees it: the tree's state plus in-flight changes.
#[derive(Debug, Clone)]
struct Rec {
    zxid: i64,
    /// `None`: deleted by an in-flight txn.
    node: Option<RecNode>,
}

#[derive(Debug, Clone)]
struct RecNode {
    stat: StatPersisted,
    child_count: i32,
    acl: Arc<Vec<Acl>>,
    /// Bytes of data (what a setData replaces, for quotas).
    data_len: i64,
}

/// The context a request is prepped in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PrepContext<'a> {
    /// The session issuing the request.
    pub(crate) session_id: i64,
    /// The session's authenticated ids.
    pub(crate) auth: &'a [Id],
    /// The zxid the txn will get.
    pub(crate) zxid: i64,
    /// Whether TTL nodes are enabled.
    pub(crate) extended_types: bool,
    /// Whether hard quota limits refuse writes (`enforceQuota`).
    pub(crate) enforce_quota: bool,
}

/// In-flight changes.
#[derive(Debug, Default)]
pub(crate) struct Prep {
    overlay: HashMap<String, Rec>,
    touched: VecDeque<(i64, Vec<String>)>,
}

type PrepResult = Result<(OpCode, TxnBody), ErrorCode>;

impl Prep {
    fn get(&self, tree: &DataTree, path: &str) -> Option<RecNode> {
        match self.overlay.get(path) {
            Some(r) => r.node.clone(),
            None => tree.get(path).map(|n| RecNode {
                stat: n.stat(),
                child_count: n.num_children(),
                acl: n.acl().clone(),
                data_len: n.data_len() as i64,
            }),
        }
    }

    fn put(&mut self, path: &str, zxid: i64, node: Option<RecNode>, touched: &mut Vec<String>) {
        self.overlay.insert(path.to_string(), Rec { zxid, node });
        touched.push(path.to_string());
    }

    /// Forgets the in-flight changes of txn `zxid` once it is applied.
    pub(crate) fn applied(&mut self, zxid: i64) {
        while let Some((z, _)) = self.touched.front() {
            if *z > zxid {
                break;
            }
            if let Some((z, paths)) = self.touched.pop_front() {
                for p in paths {
                    if self.overlay.get(&p).is_some_and(|r| r.zxid == z) {
                        self.overlay.remove(&p);
                    }
                }
            }
        }
    }

    /// Preps one write request; the result is the txn to log (an error
    /// txn when a check failed).
    pub(crate) fn prep(&mut self, tree: &DataTree, ctx: PrepContext<'_>, req: &Request) -> (OpCode, TxnBody) {
        let mut touched = Vec::new();
        let r = match req {
            Request::Multi(m) => Ok(self.prep_multi(tree, ctx, &m.ops, &mut touched)),
            other => self.prep_one(tree, ctx, other, &mut touched),
        };
        self.touched.push_back((ctx.zxid, touched));
        match r {
            Ok(t) => t,
            Err(code) => (OpCode::Error, TxnBody::Error(ErrorTxn { err: code.code() })),
        }
    }

    /// Preps the closeSession of `session_id`: its ephemerals (in-flight
    /// ones included) are deleted with it.
    pub(crate) fn prep_close_session(
        &mut self,
        tree: &DataTree,
        session_id: i64,
        zxid: i64,
    ) -> (OpCode, TxnBody) {
        // In Apache's order (see `javaset.rs`): the live ephemerals as the
        // tree's set holds them, cloned, then the in-flight changes.
        let mut live: Vec<(i64, &String)> =
            tree.ephemerals_of(session_id).map(|p| (tree.get(p).map_or(0, |n| n.stat().czxid), p)).collect();
        live.sort();
        let mut held = JavaHashSet::new();
        for (_, p) in live {
            held.insert(p.clone());
        }
        let mut set = held.java_clone();
        let mut changes: Vec<(&i64, &String, &Rec)> =
            self.overlay.iter().map(|(p, r)| (&r.zxid, p, r)).collect();
        changes.sort_by_key(|(z, p, _)| (**z, (*p).clone()));
        for (_, p, r) in changes {
            match &r.node {
                Some(n) if NodeKind::of(n.stat.ephemeral_owner) == NodeKind::Ephemeral(session_id) => {
                    set.insert(p.clone());
                }
                None => set.remove(p),
                _ => {}
            }
        }
        let paths = set.into_vec();
        let mut touched = Vec::new();
        for p in &paths {
            let parent = zk_proto::path::parent(p);
            if let Some(mut pn) = self.get(tree, parent) {
                pn.child_count -= 1;
                pn.stat.pzxid = zxid;
                self.put(parent, zxid, Some(pn), &mut touched);
            }
            self.put(p, zxid, None, &mut touched);
        }
        self.touched.push_back((zxid, touched));
        (OpCode::CloseSession, TxnBody::CloseSession(Some(CloseSessionTxn { paths2_delete: paths })))
    }

    fn prep_multi(
        &mut self,
        tree: &DataTree,
        ctx: PrepContext<'_>,
        ops: &[MultiOp],
        touched: &mut Vec<String>,
    ) -> (OpCode, TxnBody) {
        let saved: HashMap<String, Option<Rec>> = HashMap::new();
        let mut saved = saved;
        let mut txns = Vec::with_capacity(ops.len());
        let mut failed = false;
        for op in ops {
            if failed {
                let body = TxnBody::Error(ErrorTxn { err: ErrorCode::RuntimeInconsistency.code() });
                txns.push(DataTree::multi_sub(OpCode::Error, &body));
                continue;
            }
            let req = match op.clone() {
                MultiOp::Create(r) => Request::Create(r),
                MultiOp::Create2(r) => Request::Create2(r),
                MultiOp::CreateContainer(r) => Request::CreateContainer(r),
                MultiOp::CreateTtl(r) => Request::CreateTtl(r),
                MultiOp::Delete(r) => Request::Delete(r),
                MultiOp::SetData(r) => Request::SetData(r),
                MultiOp::Check(r) => Request::Check(r),
                _ => {
                    // Reads cannot be part of a write multi.
                    failed = true;
                    let body = TxnBody::Error(ErrorTxn { err: ErrorCode::BadArguments.code() });
                    txns.push(DataTree::multi_sub(OpCode::Error, &body));
                    continue;
                }
            };
            // Remember what this op overwrites, to roll back on failure.
            let mut op_touched = Vec::new();
            let before: Vec<(String, Option<Rec>)> = affected_paths(&req)
                .into_iter()
                .map(|p| {
                    let r = self.overlay.get(&p).cloned();
                    (p, r)
                })
                .collect();
            for (p, r) in before {
                saved.entry(p).or_insert(r);
            }
            match self.prep_one(tree, ctx, &req, &mut op_touched) {
                Ok((ty, body)) => {
                    txns.push(DataTree::multi_sub(ty, &body));
                    for p in op_touched {
                        saved.entry(p.clone()).or_insert(None);
                        touched.push(p);
                    }
                }
                Err(code) => {
                    failed = true;
                    // Roll back every in-flight change this multi made.
                    for p in op_touched {
                        saved.entry(p).or_insert(None);
                    }
                    for (p, r) in saved.drain() {
                        match r {
                            Some(r) => {
                                self.overlay.insert(p, r);
                            }
                            None => {
                                self.overlay.remove(&p);
                            }
                        }
                    }
                    touched.clear();
                    let body = TxnBody::Error(ErrorTxn { err: code.code() });
                    txns.push(DataTree::multi_sub(OpCode::Error, &body));
                }
            }
        }
        (OpCode::Multi, TxnBody::Multi(MultiTxn { txns }))
    }

    fn check_acl(node: &RecNode, perm: i32, ctx: PrepContext<'_>) -> Result<(), ErrorCode> {
        if DataTree::check_acl(&node.acl, perm, ctx.auth) { Ok(()) } else { Err(ErrorCode::NoAuth) }
    }

    fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
        if expected != -1 && expected != current {
            return Err(ErrorCode::BadVersion);
        }
        Ok(current.wrapping_add(1))
    }

    fn prep_one(
        &mut self,
        tree: &DataTree,
        ctx: PrepContext<'_>,
        req: &Request,
        touched: &mut Vec<String>,
    ) -> PrepResult {
        let zxid = ctx.zxid;
        match req {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => {
                let mode = match req {
                    Request::CreateContainer(_) => CreateMode::Container,
                    _ => CreateMode::from(r.flags),
                };
                if matches!(req, Request::CreateContainer(_))
                    && CreateMode::from(r.flags) != CreateMode::Container
                {
                    return Err(ErrorCode::BadArguments);
                }
                if mode.is_ttl() || matches!(mode, CreateMode::Unknown(_)) {
                    return Err(ErrorCode::BadArguments);
                }
                // Apache makes a container only for createContainer: a
                // create or create2 with the container flag logs a plain
                // CreateTxn, so the node it leaves is persistent.
                let mode = match (mode, req) {
                    (CreateMode::Container, Request::CreateContainer(_)) => mode,
                    (CreateMode::Container, _) => CreateMode::Persistent,
                    _ => mode,
                };
                let r = self.prep_create(tree, ctx, &r.path, r.data.clone(), &r.acl, mode, None, touched);
                // As Apache, the txn keeps the request's type: a create2's
                // txn is type 15 (an Apache learner answers a create2 with
                // the Stat that only a create2 txn records).
                match r {
                    Ok((OpCode::Create, body)) if matches!(req, Request::Create2(_)) => {
                        Ok((OpCode::Create2, body))
                    }
                    r => r,
                }
            }
            Request::CreateTtl(r) => {
                let mode = CreateMode::from(r.flags);
                if !ctx.extended_types {
                    return Err(ErrorCode::Unimplemented);
                }
                if !mode.is_ttl() || r.ttl <= 0 || r.ttl > crate::tree::MAX_TTL {
                    return Err(ErrorCode::BadArguments);
                }
                self.prep_create(tree, ctx, &r.path, r.data.clone(), &r.acl, mode, Some(r.ttl), touched)
            }
            Request::Delete(r) | Request::DeleteContainer(r) => {
                valid(&r.path, false)?;
                if r.path == "/"
                    || r.path == "/zookeeper"
                    || r.path.starts_with("/zookeeper/") && is_system(&r.path)
                {
                    return Err(ErrorCode::BadArguments);
                }
                let parent_path = zk_proto::path::parent(&r.path);
                let mut parent = self.get(tree, parent_path).ok_or(ErrorCode::NoNode)?;
                let node = self.get(tree, &r.path).ok_or(ErrorCode::NoNode)?;
                if matches!(req, Request::DeleteContainer(_)) {
                    // The container manager's delete: only a still-empty container.
                    if !matches!(
                        NodeKind::of(node.stat.ephemeral_owner),
                        NodeKind::Container | NodeKind::Ttl(_)
                    ) || node.child_count > 0
                    {
                        return Err(ErrorCode::BadArguments);
                    }
                } else {
                    Self::check_acl(&parent, perms::DELETE, ctx)?;
                    Self::check_version(node.stat.version, r.version)?;
                    if node.child_count > 0 {
                        return Err(ErrorCode::NotEmpty);
                    }
                }
                parent.child_count -= 1;
                parent.stat.pzxid = zxid;
                self.put(parent_path, zxid, Some(parent), touched);
                self.put(&r.path, zxid, None, touched);
                Ok((
                    if matches!(req, Request::DeleteContainer(_)) {
                        OpCode::DeleteContainer
                    } else {
                        OpCode::Delete
                    },
                    TxnBody::Delete(DeleteTxn { path: r.path.clone() }),
                ))
            }
            Request::SetData(r) => {
                valid(&r.path, false)?;
                let mut node = self.get(tree, &r.path).ok_or(ErrorCode::NoNode)?;
                Self::check_acl(&node, perms::WRITE, ctx)?;
                let new_len = r.data.as_ref().map_or(0, |d| d.len() as i64);
                if ctx.enforce_quota {
                    tree.check_quota(&r.path, new_len - node.data_len, 0)
                        .map_err(|_| ErrorCode::QuotaExceeded)?;
                }
                let version = Self::check_version(node.stat.version, r.version)?;
                node.stat.version = version;
                node.stat.mzxid = zxid;
                node.data_len = new_len;
                self.put(&r.path, zxid, Some(node), touched);
                Ok((
                    OpCode::SetData,
                    TxnBody::SetData(SetDataTxn { path: r.path.clone(), data: r.data.clone(), version }),
                ))
            }
            Request::SetAcl(r) => {
                valid(&r.path, false)?;
                let mut node = self.get(tree, &r.path).ok_or(ErrorCode::NoNode)?;
                Self::check_acl(&node, perms::ADMIN, ctx)?;
                let acl = fixup_acl(&r.acl, ctx.auth).ok_or(ErrorCode::InvalidAcl)?;
                let version = Self::check_version(node.stat.aversion, r.version)?;
                node.stat.aversion = version;
                node.acl = Arc::new(acl.clone());
                self.put(&r.path, zxid, Some(node), touched);
                Ok((OpCode::SetAcl, TxnBody::SetAcl(SetAclTxn { path: r.path.clone(), acl, version })))
            }
            Request::Check(r) => {
                valid(&r.path, false)?;
                let node = self.get(tree, &r.path).ok_or(ErrorCode::NoNode)?;
                Self::check_acl(&node, perms::READ, ctx)?;
                Self::check_version(node.stat.version, r.version)?;
                Ok((
                    OpCode::Check,
                    TxnBody::Check(CheckVersionTxn { path: r.path.clone(), version: node.stat.version }),
                ))
            }
            Request::Reconfig(_) => Err(ErrorCode::ReconfigDisabled),
            _ => Err(ErrorCode::Unimplemented),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn prep_create(
        &mut self,
        tree: &DataTree,
        ctx: PrepContext<'_>,
        path: &str,
        data: Option<Bytes>,
        acl: &[Acl],
        mode: CreateMode,
        ttl: Option<i64>,
        touched: &mut Vec<String>,
    ) -> PrepResult {
        let zxid = ctx.zxid;
        if mode.is_ephemeral() && ctx.session_id == 0 {
            return Err(ErrorCode::EphemeralOnLocalSession);
        }
        // As Apache: the parent is looked up before the path is validated.
        let parent_path = parent_checked(path)?;
        let mut parent = self.get(tree, parent_path).ok_or(ErrorCode::NoNode)?;
        Self::check_acl(&parent, perms::CREATE, ctx)?;
        let path = if mode.is_sequential() {
            format!("{path}{:010}", parent.stat.cversion)
        } else {
            path.to_string()
        };
        valid(&path, false)?;
        let acl = fixup_acl(acl, ctx.auth).ok_or(ErrorCode::InvalidAcl)?;
        if self.get(tree, &path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(NodeKind::of(parent.stat.ephemeral_owner), NodeKind::Ephemeral(_)) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        if ctx.enforce_quota {
            let len = data.as_ref().map_or(0, |d| d.len() as i64);
            tree.check_quota(&path, len, 1).map_err(|_| ErrorCode::QuotaExceeded)?;
        }
        let parent_c_version = parent.stat.cversion.wrapping_add(1);
        parent.stat.cversion = parent_c_version;
        parent.stat.pzxid = zxid;
        parent.child_count += 1;
        self.put(parent_path, zxid, Some(parent), touched);
        let owner = match mode {
            CreateMode::Ephemeral | CreateMode::EphemeralSequential => ctx.session_id,
            CreateMode::Container => crate::tree::CONTAINER_OWNER,
            _ => ttl.map_or(0, NodeKind::ttl_owner),
        };
        let stat = StatPersisted {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ephemeral_owner: owner,
            ..StatPersisted::default()
        };
        let data_len = data.as_ref().map_or(0, |d| d.len() as i64);
        self.put(
            &path,
            zxid,
            Some(RecNode { stat, child_count: 0, acl: Arc::new(acl.clone()), data_len }),
            touched,
        );
        let body = match (mode, ttl) {
            (CreateMode::Container, _) => {
                TxnBody::CreateContainer(CreateContainerTxn { path, data, acl, parent_c_version })
            }
            (_, Some(ttl)) => TxnBody::CreateTtl(CreateTtlTxn { path, data, acl, parent_c_version, ttl }),
            _ => TxnBody::Create(CreateTxn {
                path,
                data,
                acl,
                ephemeral: mode.is_ephemeral(),
                parent_c_version,
            }),
        };
        let ty = match &body {
            TxnBody::CreateContainer(_) => OpCode::CreateContainer,
            TxnBody::CreateTtl(_) => OpCode::CreateTtl,
            _ => OpCode::Create,
        };
        Ok((ty, body))
    }
}

/// Apache's `getParentPathAndValidate`: BadArguments without a `/` or
/// with a NUL; the parent otherwise.
fn parent_checked(path: &str) -> Result<&str, ErrorCode> {
    match path.rfind('/') {
        Some(i) if !path.contains('\0') => Ok(if i == 0 { "/" } else { &path[..i] }),
        _ => Err(ErrorCode::BadArguments),
    }
}

fn valid(path: &str, sequential: bool) -> Result<(), ErrorCode> {
    zk_proto::path::validate_path(path, sequential).map_err(|_| ErrorCode::BadArguments)
}

fn is_system(path: &str) -> bool {
    matches!(path, "/zookeeper/quota" | "/zookeeper/config")
}

fn affected_paths(req: &Request) -> Vec<String> {
    match req.path() {
        Some(p) => vec![p.to_string(), zk_proto::path::parent(p).to_string()],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(zxid: i64) -> PrepContext<'static> {
        PrepContext { session_id: 5, auth: &[], zxid, extended_types: false, enforce_quota: false }
    }

    fn create(path: &str, flags: i32) -> Request {
        Request::Create(CreateRequest { path: path.into(), data: None, acl: Acl::open_unsafe(), flags })
    }

    #[test]
    fn sees_in_flight_changes() {
        let tree = DataTree::new();
        let mut p = Prep::default();
        let (ty, _) = p.prep(&tree, ctx(1), &create("/a", 0));
        assert_eq!(ty, OpCode::Create);
        // The tree does not have /a yet, but prep knows it is coming.
        let (ty, body) = p.prep(&tree, ctx(2), &create("/a", 0));
        assert_eq!(
            (ty, body),
            (OpCode::Error, TxnBody::Error(ErrorTxn { err: ErrorCode::NodeExists.code() }))
        );
        let (_, body) = p.prep(&tree, ctx(3), &create("/a/s-", 2));
        assert!(matches!(body, TxnBody::Create(c) if c.path == "/a/s-0000000000"));
        let (_, body) = p.prep(&tree, ctx(4), &create("/a/s-", 2));
        assert!(matches!(body, TxnBody::Create(c) if c.path == "/a/s-0000000001"));
        p.applied(4);
        assert!(p.overlay.is_empty());
    }

    #[test]
    fn failed_multi_rolls_back() {
        let tree = DataTree::new();
        let mut p = Prep::default();
        let ops = vec![
            MultiOp::Create(CreateRequest {
                path: "/m".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 0,
            }),
            MultiOp::Check(CheckVersionRequest { path: "/m".into(), version: 5 }),
            MultiOp::Delete(DeleteRequest { path: "/m".into(), version: -1 }),
        ];
        let (ty, body) = p.prep(&tree, ctx(1), &Request::Multi(MultiRequest { ops }));
        assert_eq!(ty, OpCode::Multi);
        let TxnBody::Multi(m) = body else { panic!() };
        let types: Vec<i32> = m.txns.iter().map(|t| t.txn_type).collect();
        assert_eq!(types, vec![OpCode::Create.code(), OpCode::Error.code(), OpCode::Error.code()]);
        // /m was rolled back: creating it again is fine.
        let (ty, _) = p.prep(&tree, ctx(2), &create("/m", 0));
        assert_eq!(ty, OpCode::Create);
    }

    #[test]
    fn checks_in_apache_order() {
        let tree = DataTree::new();
        let mut p = Prep::default();
        let e = |b: TxnBody| match b {
            TxnBody::Error(e) => ErrorCode::from(e.err),
            _ => ErrorCode::Ok,
        };
        assert_eq!(e(p.prep(&tree, ctx(1), &create("/x/y", 0)).1), ErrorCode::NoNode);
        assert_eq!(e(p.prep(&tree, ctx(2), &create("bad", 0)).1), ErrorCode::BadArguments);
        let ttl = Request::CreateTtl(CreateTtlRequest {
            path: "/t".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 5,
            ttl: 10,
        });
        assert_eq!(e(p.prep(&tree, ctx(3), &ttl).1), ErrorCode::Unimplemented);
        let empty_acl =
            Request::Create(CreateRequest { path: "/z".into(), data: None, acl: vec![], flags: 0 });
        assert_eq!(e(p.prep(&tree, ctx(4), &empty_acl).1), ErrorCode::InvalidAcl);
        p.prep(&tree, ctx(5), &create("/eph", 1));
        assert_eq!(e(p.prep(&tree, ctx(6), &create("/eph/c", 0)).1), ErrorCode::NoChildrenForEphemerals);
        let del = Request::Delete(DeleteRequest { path: "/".into(), version: -1 });
        assert_eq!(e(p.prep(&tree, ctx(7), &del).1), ErrorCode::BadArguments);
    }
}
