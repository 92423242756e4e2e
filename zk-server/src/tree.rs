//! The data tree: znodes, their Stat, children, and the indexes of
//! ephemeral, container and TTL nodes; and the application of txns to it
//! (Apache's `DataTree.processTxn`).
//!
//! Applying a txn is pure: it changes the tree and reports what happened
//! (result code, Stat for the reply, watch triggers). The same code applies
//! live txns and replays the log at start-up, where a create of an existing
//! node or a delete of a missing one (possible after a fuzzy snapshot) are
//! absorbed instead of failing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use zk_proto::records::{
    Acl, CloseSessionTxn, CreateContainerTxn, CreateTtlTxn, CreateTxn, Stat, StatPersisted, Txn, TxnBody,
    TxnHeader,
};
use zk_proto::types::perms;
use zk_proto::{ErrorCode, EventType, OpCode};

mod store;

/// The `ephemeralOwner` of a container node (`EphemeralType.CONTAINER`).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// The top byte marking an extended `ephemeralOwner` (TTL nodes).
pub const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000_u64 as i64;
/// The largest TTL, in ms.
pub const MAX_TTL: i64 = 0xff_ffff_ffff;

/// What kind of node an `ephemeralOwner` value describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A plain persistent node.
    Persistent,
    /// An ephemeral node of a session.
    Ephemeral(i64),
    /// A container node.
    Container,
    /// A TTL node, with its TTL in ms.
    Ttl(i64),
}

impl NodeKind {
    /// Decodes an `ephemeralOwner`.
    pub fn of(owner: i64) -> Self {
        if owner == 0 {
            NodeKind::Persistent
        } else if owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if owner & EXTENDED_MASK == EXTENDED_MASK {
            NodeKind::Ttl(owner & MAX_TTL)
        } else {
            NodeKind::Ephemeral(owner)
        }
    }

    /// The `ephemeralOwner` of a TTL node.
    pub fn ttl_owner(ttl: i64) -> i64 {
        EXTENDED_MASK | (ttl & MAX_TTL)
    }
}

/// One znode, as the tree holds it (a view into its compact record).
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    rec: store::Record<'a>,
    slot: &'a store::Slot,
    acl: &'a Arc<Vec<Acl>>,
}

impl<'a> Node<'a> {
    /// The data; `None` is Java's null.
    pub fn data(&self) -> Option<&'a [u8]> {
        self.rec.data
    }

    /// The data as a buffer of its own (`None` is Java's null).
    pub fn data_bytes(&self) -> Option<Bytes> {
        self.rec.data.map(Bytes::copy_from_slice)
    }

    /// Length of the data (0 for null).
    pub fn data_len(&self) -> usize {
        self.rec.data.map_or(0, <[u8]>::len)
    }

    /// The ACL (shared between nodes with equal ACLs).
    pub fn acl(&self) -> &'a Arc<Vec<Acl>> {
        self.acl
    }

    /// The id of the node's ACL list in the tree's table (see
    /// [`SnapshotView::acl_table`]).
    pub fn acl_id(&self) -> u32 {
        self.slot.acl
    }

    /// Number of children.
    pub fn num_children(&self) -> i32 {
        self.slot.num_children() as i32
    }

    /// The persisted Stat (Apache's `StatPersisted`: `cversion` counts
    /// child creates).
    pub fn stat(&self) -> StatPersisted {
        let f = &self.rec.fixed;
        StatPersisted {
            czxid: f.czxid,
            mzxid: f.mzxid,
            ctime: f.ctime,
            mtime: f.mtime,
            version: f.version,
            cversion: self.slot.cversion,
            aversion: f.aversion,
            ephemeral_owner: f.owner,
            pzxid: self.slot.pzxid,
        }
    }

    /// The Stat a client sees: derived fields filled in, and the container
    /// and TTL markers hidden as Apache hides them.
    pub fn client_stat(&self) -> Stat {
        let s = self.stat();
        let num_children = self.num_children();
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            // Apache keeps the count of child creates and shows clients the
            // count of child changes: every create has a delete except for
            // the children still there (DataNode.copyStat).
            cversion: s.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: s.aversion,
            ephemeral_owner: match NodeKind::of(s.ephemeral_owner) {
                NodeKind::Ephemeral(id) => id,
                _ => 0,
            },
            data_length: self.data_len() as i32,
            num_children,
            pzxid: s.pzxid,
        }
    }
}

/// A watch trigger produced by applying a txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The path the event is about.
    pub path: String,
    /// The event.
    pub event: EventType,
}

/// The outcome of applying one txn (Apache's `ProcessTxnResult`).
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The result code.
    pub err: ErrorCode,
    /// The path acted on (the created path for creates).
    pub path: String,
    /// The node's Stat after the change (create, setData, setACL).
    pub stat: Option<Stat>,
    /// Per-op outcomes of a multi.
    pub multi: Vec<Applied>,
    /// The txn type (for multi sub-results).
    pub txn_type: i32,
    /// Watches to fire.
    pub triggers: Vec<Trigger>,
}

/// A copy-on-write view of every node at one zxid, for a snapshot: it
/// shares the tree's chunks and pages, and what the tree changes while
/// the view lives is copied away from it.
#[derive(Debug, Clone)]
pub struct SnapshotView {
    shared: store::Shared,
    acls: Vec<Arc<Vec<Acl>>>,
    len: usize,
}

impl SnapshotView {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view has no nodes (never: the root is always there).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Visits every node, each after its parent (pre-order from the root),
    /// with its absolute path; stops at the first error `f` returns.
    ///
    /// # Errors
    /// What `f` returned.
    pub fn walk<E>(&self, f: impl FnMut(&str, Node<'_>) -> Result<(), E>) -> Result<(), E> {
        walk(&self.shared, &self.acls, store::ROOT, "/", f)
    }

    /// The distinct ACL lists the view's nodes point into, by
    /// [`Node::acl_id`] (some may be unused by now).
    pub fn acl_table(&self) -> &[Arc<Vec<Acl>>] {
        &self.acls
    }
}

/// Builds a [`DataTree`] from a snapshot's nodes (see
/// [`DataTree::loader`]): parents are found on the path from the root to
/// the previous node, and each child index is built once, at its final
/// size.
#[derive(Debug)]
pub struct TreeLoader {
    tree: DataTree,
    /// The previous node's path.
    path: String,
    /// The nodes on the way to it: their path's length and id.
    stack: Vec<(usize, u32)>,
    root: bool,
}

impl TreeLoader {
    /// Adds a node; its parent must have come before it.
    ///
    /// # Errors
    /// A node whose parent has not come yet, a second root, a bad path.
    pub fn push(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &Arc<Vec<Acl>>,
        stat: &StatPersisted,
    ) -> Result<(), String> {
        let acl = match self.tree.acl_ids.get(acl.as_slice()) {
            Some(&id) => id,
            None => self.tree.acl_id(acl.to_vec()),
        };
        let t = &mut self.tree;
        if path == "/" {
            if std::mem::replace(&mut self.root, true) {
                return Err("the root node is given twice".into());
            }
            t.store.rewrite(store::ROOT, &fixed_of(stat), data);
            if let Some(s) = t.store.slot_mut(store::ROOT) {
                (s.pzxid, s.cversion, s.acl) = (stat.pzxid, stat.cversion, acl);
            }
            t.approx_size += 1 + data.map_or(0, <[u8]>::len);
            return Ok(());
        }
        let name = name_of(path);
        if !path.starts_with('/') || name.is_empty() {
            return Err(format!("invalid node path {path:?}"));
        }
        let parent = parent_of(path);
        let parent_id = match self.on_stack(parent) {
            Some(id) => id,
            // Not on the way to the previous node: a file listing parents
            // first in another order than Apache's (pre-order). Link what
            // came so far and look the parent up.
            None => self.relocate(parent).ok_or_else(|| format!("node {path} comes before its parent"))?,
        };
        let t = &mut self.tree;
        let id = t.store.push_loaded(parent_id, name, &fixed_of(stat), data);
        if let Some(s) = t.store.slot_mut(id) {
            (s.pzxid, s.cversion, s.acl) = (stat.pzxid, stat.cversion, acl);
        }
        t.approx_size += path.len() + data.map_or(0, <[u8]>::len);
        t.index(path, stat.ephemeral_owner);
        self.path.clear();
        self.path.push_str(path);
        self.stack.push((path.len(), id));
        Ok(())
    }

    /// The id of `parent` if it is on the way to the previous node (which
    /// it is when nodes come in pre-order); the nodes after it are popped.
    fn on_stack(&mut self, parent: &str) -> Option<u32> {
        loop {
            let &(len, id) = self.stack.last()?;
            if len == parent.len() && self.path.as_bytes().get(..len) == Some(parent.as_bytes()) {
                return Some(id);
            }
            if self.stack.len() == 1 {
                return None;
            }
            self.stack.pop();
        }
    }

    /// Links the nodes so far, looks `parent` up and makes the way to it
    /// the current one; its id.
    fn relocate(&mut self, parent: &str) -> Option<u32> {
        let t = &mut self.tree;
        t.store.finish_load().ok()?;
        let id = t.store.lookup(parent)?;
        self.stack.truncate(1);
        self.path.clear();
        self.path.push_str(parent);
        for (i, _) in parent.match_indices('/').skip(1).chain([(parent.len(), "")]) {
            let prefix = &parent[..i];
            self.stack.push((i, t.store.lookup(prefix)?));
        }
        Some(id)
    }

    /// The tree, at `zxid`.
    ///
    /// # Errors
    /// No root, or a node given twice.
    pub fn finish(self, zxid: i64) -> Result<DataTree, String> {
        let mut t = self.tree;
        if !self.root {
            return Err("no root node".into());
        }
        t.store.finish_load()?;
        // Apache's snapshots hold the reserved nodes; one that does not
        // gets them as a new tree has them.
        if t.store.lookup("/zookeeper").is_none() {
            t.insert_system("/zookeeper", Acl::open_unsafe(), 0);
        }
        if t.store.lookup("/zookeeper/quota").is_none() {
            t.insert_system("/zookeeper/quota", Acl::open_unsafe(), 0);
        }
        if t.store.lookup("/zookeeper/config").is_none() {
            t.insert_system("/zookeeper/config", Acl::read_unsafe(), -1);
        }
        t.rebuild_quotas();
        t.last_zxid = zxid;
        Ok(t)
    }
}

impl crate::persist::snapshot::SnapshotLoader for TreeLoader {
    type Output = TreeLoader;

    fn node(&mut self, n: crate::persist::snapshot::LoadedNode<'_>) -> Result<(), String> {
        self.push(n.path, n.data, n.acl, &n.stat)
    }

    fn finish(self) -> Result<TreeLoader, String> {
        Ok(self)
    }
}

/// Pre-order walk of the subtree at `top` (whose path is `top_path`).
fn walk<'a, E>(
    shared: &'a store::Shared,
    acls: &'a [Arc<Vec<Acl>>],
    top: u32,
    top_path: &str,
    mut f: impl FnMut(&str, Node<'a>) -> Result<(), E>,
) -> Result<(), E> {
    let mut path = String::from(top_path);
    let mut stack: Vec<(u32, usize)> = vec![(top, usize::MAX)];
    let mut kids: Vec<u32> = Vec::new();
    while let Some((id, parent_len)) = stack.pop() {
        let Some(slot) = shared.slot(id) else { continue };
        let rec = shared.record(slot);
        if parent_len != usize::MAX {
            path.truncate(parent_len);
            if !path.ends_with('/') {
                path.push('/');
            }
            path.push_str(rec.name);
        }
        let Some(acl) = acls.get(slot.acl as usize) else { continue };
        f(&path, Node { rec, slot, acl })?;
        let len = path.len();
        // Children in the order of their ids (the child index holds them
        // in hash order): ids and records are handed out in creation
        // order, so the walk reads the store's slots and pages mostly
        // front to back instead of at random (a third less time for a
        // snapshot of a large tree). Pushed highest first: popped lowest
        // first.
        kids.clear();
        kids.extend(shared.kids(slot));
        kids.sort_unstable_by(|a, b| b.cmp(a));
        stack.extend(kids.iter().map(|&k| (k, len)));
    }
    Ok(())
}

/// The tree.
#[derive(Debug)]
pub struct DataTree {
    store: store::Store,
    /// Interned ACL lists, by id.
    acls: Vec<Arc<Vec<Acl>>>,
    acl_ids: HashMap<Vec<Acl>, u32>,
    /// Paths with a quota (a `/zookeeper/quota/<path>/zookeeper_limits`
    /// node), whose `zookeeper_stats` node the tree keeps current.
    quotas: BTreeSet<String>,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    containers: HashSet<String>,
    ttls: HashSet<String>,
    /// Sum of path and data lengths (Apache's `approximateDataSize`).
    approx_size: usize,
    /// The zxid of the last txn applied.
    pub last_zxid: i64,
}

/// Where quota nodes live.
const QUOTA_ROOT: &str = "/zookeeper/quota";
/// The node holding a quota's limits.
const QUOTA_LIMITS: &str = "zookeeper_limits";
/// The node holding a quota's current usage.
const QUOTA_STATS: &str = "zookeeper_stats";

/// A quota's figures as Apache's `StatsTrack` writes them:
/// `count=N,bytes=M[,countHardLimit=N,byteHardLimit=M]`, -1 for "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaFigures {
    /// Nodes (soft limit in a limits node, usage in a stats node).
    pub count: i64,
    /// Bytes of data (likewise).
    pub bytes: i64,
    /// The hard limit on nodes (3.7+), -1 when none.
    pub count_hard: i64,
    /// The hard limit on bytes (3.7+), -1 when none.
    pub bytes_hard: i64,
}

impl QuotaFigures {
    /// Parses what a quota node holds; a field that is missing or not a
    /// number reads as -1 (no limit), as Apache's `StatsTrack` does.
    pub fn parse(data: &[u8]) -> Self {
        let text = String::from_utf8_lossy(data);
        let mut out = QuotaFigures { count: -1, bytes: -1, count_hard: -1, bytes_hard: -1 };
        // 3.7+ writes `count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3`
        // (the extra `=` hides the new fields from old parsers).
        for part in text.split([',', ';']) {
            let Some((k, v)) = part.split_once('=') else { continue };
            let v = v.split('=').next().unwrap_or("").trim().parse().unwrap_or(-1);
            match k.trim() {
                "count" => out.count = v,
                "bytes" => out.bytes = v,
                "countHardLimit" => out.count_hard = v,
                "byteHardLimit" => out.bytes_hard = v,
                _ => {}
            }
        }
        out
    }
}

/// Reads a stats node's `count=N,bytes=M` (missing or bad numbers as 0).
fn parse_stats(data: &[u8]) -> (i64, i64) {
    let f = QuotaFigures::parse(data);
    (f.count.max(0), f.bytes.max(0))
}

fn fixed_of(s: &StatPersisted) -> store::Fixed {
    store::Fixed {
        czxid: s.czxid,
        mzxid: s.mzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        aversion: s.aversion,
        owner: s.ephemeral_owner,
    }
}

fn parent_of(path: &str) -> &str {
    zk_proto::path::parent(path)
}

fn name_of(path: &str) -> &str {
    zk_proto::path::basename(path)
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new()
    }
}

impl DataTree {
    /// A tree with `/`, `/zookeeper`, `/zookeeper/quota` and
    /// `/zookeeper/config`, as Apache creates them.
    pub fn new() -> Self {
        let mut t = DataTree::new_bare();
        // The counters start where Apache's do: no child was created with
        // a txn (so `/` shows cversion -1 and `/zookeeper` -2) and the
        // config node is at aversion -1 (checked against Apache 3.8).
        t.insert_system("/zookeeper", Acl::open_unsafe(), 0);
        t.insert_system("/zookeeper/quota", Acl::open_unsafe(), 0);
        t.insert_system("/zookeeper/config", Acl::read_unsafe(), -1);
        t
    }

    /// Puts the ensemble's membership in `/zookeeper/config`, as Apache's
    /// `ZKDatabase.initConfigInZKDatabase` does when a server of an
    /// ensemble loads its data (not a txn).
    pub fn set_config(&mut self, config: Bytes) {
        self.replace_data("/zookeeper/config", Some(&config));
    }

    fn insert_system(&mut self, path: &str, acl: Vec<Acl>, aversion: i32) {
        let acl = self.acl_id(acl);
        let fixed = store::Fixed { aversion, ..store::Fixed::default() };
        if let Some(parent) = self.store.lookup(parent_of(path)) {
            if let Some(id) = self.store.insert(parent, name_of(path), &fixed, Some(b""), acl) {
                if let Some(s) = self.store.slot_mut(id) {
                    s.pzxid = 0;
                }
                self.approx_size += path.len();
            }
        }
    }

    /// Sets a node's data without a version change (the quota stats and
    /// the config node).
    fn replace_data(&mut self, path: &str, data: Option<&[u8]>) {
        let Some(id) = self.store.lookup(path) else { return };
        let Some(slot) = self.store.slot(id) else { return };
        let rec = self.store.shared().record(slot);
        let (fixed, old) = (rec.fixed, rec.data.map_or(0, <[u8]>::len));
        self.store.rewrite(id, &fixed, data);
        self.approx_size = (self.approx_size + data.map_or(0, <[u8]>::len)).saturating_sub(old);
    }

    fn node(&self, id: u32) -> Option<Node<'_>> {
        let slot = self.store.slot(id)?;
        let acl = self.acls.get(slot.acl as usize)?;
        Some(Node { rec: self.store.shared().record(slot), slot, acl })
    }

    /// The id of an interned ACL list.
    fn acl_id(&mut self, acl: Vec<Acl>) -> u32 {
        if let Some(&id) = self.acl_ids.get(&acl) {
            return id;
        }
        let id = self.acls.len() as u32;
        self.acls.push(Arc::new(acl.clone()));
        self.acl_ids.insert(acl, id);
        id
    }

    /// The quota root that covers `path` (the longest one), if any: the
    /// path's ancestors are looked up one by one, so the cost follows the
    /// path's depth, not the number of quotas. Paths under `/zookeeper` are
    /// not counted, as in Apache.
    fn quota_root_for(&self, path: &str) -> Option<&String> {
        if self.quotas.is_empty() || path == "/zookeeper" || path.starts_with("/zookeeper/") {
            return None;
        }
        let mut p = path;
        loop {
            if let Some(q) = self.quotas.get(p) {
                return Some(q);
            }
            if p == "/" {
                return None;
            }
            p = parent_of(p);
        }
    }

    /// Adds `count` nodes and `bytes` bytes to the stats of the quota that
    /// covers `path` (Apache's `updateCountBytes`: the stats node's data is
    /// set in place, no version change). The figures are users' data:
    /// arithmetic saturates rather than overflows.
    fn bump_quota(&mut self, path: &str, count: i64, bytes: i64) {
        let Some(root) = self.quota_root_for(path).cloned() else { return };
        let stats = format!("{QUOTA_ROOT}{root}/{QUOTA_STATS}");
        let Some(node) = self.get(&stats) else { return };
        let (c, b) = parse_stats(node.data().unwrap_or_default());
        let (c, b) = (c.saturating_add(count), b.saturating_add(bytes));
        self.replace_data(&stats, Some(format!("count={c},bytes={b}").as_bytes()));
    }

    /// Whether adding `count` nodes and `bytes` bytes under `path` stays
    /// within the hard limits of the quota covering it (Apache 3.7+'s
    /// `checkQuota` with `enforceQuota=true`; soft limits only warn).
    ///
    /// # Errors
    /// The quota's path when a hard limit would be passed.
    pub fn check_quota(&self, path: &str, bytes: i64, count: i64) -> Result<(), String> {
        let Some(root) = self.quota_root_for(path) else { return Ok(()) };
        let figures = |leaf: &str| {
            self.get(&format!("{QUOTA_ROOT}{root}/{leaf}"))
                .map(|n| QuotaFigures::parse(n.data().unwrap_or_default()))
        };
        let Some(limits) = figures(QUOTA_LIMITS) else { return Ok(()) };
        let check_count = count != 0 && (limits.count > -1 || limits.count_hard > -1);
        let check_bytes = bytes != 0 && (limits.bytes > -1 || limits.bytes_hard > -1);
        if !check_count && !check_bytes {
            return Ok(());
        }
        let Some(usage) = figures(QUOTA_STATS) else { return Ok(()) };
        let over = |used: i64, diff: i64, soft: i64, hard: i64, what: &str| {
            let new = used.max(0).saturating_add(diff);
            let limit = if hard > -1 { hard } else { soft };
            if new > limit {
                if hard > -1 {
                    return true;
                }
                tracing::warn!(quota = %root, new, limit, "{what} soft quota exceeded");
            }
            false
        };
        if check_count && over(usage.count, count, limits.count, limits.count_hard, "count") {
            return Err(root.clone());
        }
        if check_bytes && over(usage.bytes, bytes, limits.bytes, limits.bytes_hard, "bytes") {
            return Err(root.clone());
        }
        Ok(())
    }

    /// Count and bytes of the subtree at `path` (the node included).
    fn subtree_usage(&self, path: &str) -> (i64, i64) {
        let (mut count, mut bytes) = (0i64, 0i64);
        if let Some(top) = self.store.lookup(path) {
            let _ = walk(self.store.shared(), &self.acls, top, path, |_, n| {
                count += 1;
                bytes = bytes.saturating_add(n.data_len() as i64);
                Ok::<(), ()>(())
            });
        }
        (count, bytes)
    }

    /// Keeps the quota registry in step with a created or deleted quota
    /// node.
    fn quota_node_changed(&mut self, path: &str, created: bool) {
        let Some(rest) = path.strip_prefix(QUOTA_ROOT) else { return };
        if let Some(root) = rest.strip_suffix(&format!("/{QUOTA_LIMITS}")) {
            if created {
                self.quotas.insert(root.to_string());
            } else {
                self.quotas.remove(root);
            }
        } else if let Some(root) = rest.strip_suffix(&format!("/{QUOTA_STATS}")) {
            if created {
                // Apache fills a new stats node with the subtree's usage.
                let (c, b) = self.subtree_usage(root);
                self.replace_data(path, Some(format!("count={c},bytes={b}").as_bytes()));
            }
        }
    }

    /// The names of the children of `path`.
    pub fn children_of(&self, path: &str) -> impl Iterator<Item = &str> {
        let shared = self.store.shared();
        let slot = self.store.lookup(path).and_then(|id| shared.slot(id));
        slot.into_iter().flat_map(move |s| {
            shared.kids(s).filter_map(move |k| shared.slot(k).map(|ks| shared.record(ks).name))
        })
    }

    /// A view of every node that shares them with the tree: what a
    /// snapshot writes while the tree goes on changing.
    pub fn snapshot_view(&self) -> SnapshotView {
        SnapshotView {
            shared: self.store.shared().clone(),
            acls: self.acls.clone(),
            len: self.store.len() + 1,
        }
    }

    /// Shares equal ACL lists between nodes.
    pub fn intern_acl(&mut self, acl: Vec<Acl>) -> Arc<Vec<Acl>> {
        let id = self.acl_id(acl);
        self.acls[id as usize].clone()
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<Node<'_>> {
        self.node(self.store.lookup(path)?)
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.store.len() + 1
    }

    /// Approximate bytes of data held: the sum of path and data lengths,
    /// as Apache counts it.
    pub fn approximate_data_size(&self) -> usize {
        self.approx_size
    }

    /// The ephemeral paths of a session.
    pub fn ephemerals_of(&self, session: i64) -> impl Iterator<Item = &String> {
        self.ephemerals.get(&session).into_iter().flatten()
    }

    /// Every session that owns ephemerals, with its count.
    pub fn ephemeral_sessions(&self) -> impl Iterator<Item = (i64, &BTreeSet<String>)> {
        self.ephemerals.iter().map(|(k, v)| (*k, v))
    }

    /// Container nodes.
    pub fn containers(&self) -> impl Iterator<Item = &String> {
        self.containers.iter()
    }

    /// TTL nodes.
    pub fn ttl_nodes(&self) -> impl Iterator<Item = &String> {
        self.ttls.iter()
    }

    /// Number of descendants of `path`.
    pub fn descendants(&self, path: &str) -> usize {
        let Some(top) = self.store.lookup(path) else { return 0 };
        let shared = self.store.shared();
        let mut count = 0;
        let mut stack = vec![top];
        while let Some(id) = stack.pop() {
            if let Some(s) = shared.slot(id) {
                let before = stack.len();
                stack.extend(shared.kids(s));
                count += stack.len() - before;
            }
        }
        count
    }

    /// Every node with its path, each after its parent.
    ///
    /// # Errors
    /// What `f` returned.
    pub fn walk<E>(&self, f: impl FnMut(&str, Node<'_>) -> Result<(), E>) -> Result<(), E> {
        walk(self.store.shared(), &self.acls, store::ROOT, "/", f)
    }

    /// A loader that builds a tree from a snapshot's nodes, in the order
    /// the file lists them (each after its parent, as Apache writes them).
    pub fn loader() -> TreeLoader {
        let mut tree = DataTree::new_bare();
        tree.approx_size = 0;
        TreeLoader { tree, path: String::from("/"), stack: vec![(1, store::ROOT)], root: false }
    }

    /// A tree with the root only.
    fn new_bare() -> Self {
        let open = Arc::new(Acl::open_unsafe());
        let mut acl_ids = HashMap::new();
        acl_ids.insert(Acl::open_unsafe(), 0);
        DataTree {
            store: store::Store::new(&store::Fixed::default(), 0, Some(b"")),
            acls: vec![open],
            acl_ids,
            quotas: BTreeSet::new(),
            ephemerals: HashMap::new(),
            containers: HashSet::new(),
            ttls: HashSet::new(),
            approx_size: 1,
            last_zxid: 0,
        }
    }

    /// Registers the quotas from their limits nodes and recomputes their
    /// stats from the tree (they are derived, and replay keeps them
    /// current).
    fn rebuild_quotas(&mut self) {
        self.quotas.clear();
        let mut limits = Vec::new();
        if let Some(top) = self.store.lookup(QUOTA_ROOT) {
            let suffix = format!("/{QUOTA_LIMITS}");
            let _ = walk(self.store.shared(), &self.acls, top, QUOTA_ROOT, |p, _| {
                if p.ends_with(&suffix) {
                    limits.push(p.to_owned());
                }
                Ok::<(), ()>(())
            });
        }
        for l in limits {
            self.quota_node_changed(&l, true);
        }
        let roots: Vec<String> = self.quotas.iter().cloned().collect();
        for r in roots {
            self.quota_node_changed(&format!("{QUOTA_ROOT}{r}/{QUOTA_STATS}"), true);
        }
    }

    fn index(&mut self, path: &str, owner: i64) {
        match NodeKind::of(owner) {
            NodeKind::Ephemeral(id) => {
                self.ephemerals.entry(id).or_default().insert(path.to_string());
            }
            NodeKind::Container => {
                self.containers.insert(path.to_string());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(path.to_string());
            }
            NodeKind::Persistent => {}
        }
    }

    fn unindex(&mut self, path: &str, owner: i64) {
        match NodeKind::of(owner) {
            NodeKind::Ephemeral(id) => {
                if let Some(set) = self.ephemerals.get_mut(&id) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&id);
                    }
                }
            }
            NodeKind::Container => {
                self.containers.remove(path);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(path);
            }
            NodeKind::Persistent => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
        out: &mut Applied,
    ) -> ErrorCode {
        if path == "/" {
            return ErrorCode::NodeExists;
        }
        let parent_path = parent_of(path);
        let name = name_of(path);
        let Some(pid) = self.store.lookup(parent_path) else {
            return ErrorCode::NoNode;
        };
        let exists = self.store.child(pid, name).is_some();
        let Some(parent) = self.store.slot_mut(pid) else {
            return ErrorCode::NoNode;
        };
        // `parent_cversion` is the parent's count of child creates after
        // this one (-1: one more than now). Replaying a create that a fuzzy
        // snapshot already holds must not move the counters back.
        let new_cversion =
            if parent_cversion == -1 { parent.cversion.wrapping_add(1) } else { parent_cversion };
        if new_cversion > parent.cversion {
            parent.cversion = new_cversion;
            parent.pzxid = zxid;
        }
        if exists {
            return ErrorCode::NodeExists;
        }
        let acl = match self.acl_ids.get(acl) {
            Some(&id) => id,
            None => self.acl_id(acl.to_vec()),
        };
        let fixed = store::Fixed {
            czxid: zxid,
            mzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            aversion: 0,
            owner,
        };
        // The record is a copy: the request's bytes are a slice of a
        // connection's read buffer, which the tree does not keep alive.
        let Some(id) = self.store.insert(pid, name, &fixed, data, acl) else {
            return ErrorCode::NodeExists;
        };
        let len = data.map_or(0, <[u8]>::len);
        self.approx_size += path.len() + len;
        out.stat = self.node(id).map(|n| n.client_stat());
        self.quota_node_changed(path, true);
        self.bump_quota(path, 1, len as i64);
        self.index(path, owner);
        out.triggers.push(Trigger { path: path.to_string(), event: EventType::NodeCreated });
        out.triggers.push(Trigger { path: parent_path.to_string(), event: EventType::NodeChildrenChanged });
        ErrorCode::Ok
    }

    fn delete_node(&mut self, path: &str, zxid: i64, out: &mut Applied) -> ErrorCode {
        if path == "/" {
            return ErrorCode::BadArguments;
        }
        let Some(id) = self.store.lookup(path) else {
            return ErrorCode::NoNode;
        };
        // A valid history never deletes a node with children (prep checks
        // it); should a log hold one, its subtree goes with it rather than
        // being left unreachable.
        if self.store.slot(id).is_some_and(|s| s.num_children() > 0) {
            let mut below = Vec::new();
            let _ = walk(self.store.shared(), &self.acls, id, path, |p, _| {
                below.push(p.to_owned());
                Ok::<(), ()>(())
            });
            tracing::warn!(
                path,
                nodes = below.len() - 1,
                "a delete of a node with children: its subtree goes too"
            );
            for p in below.iter().skip(1).rev() {
                let mut ignored = Applied::default();
                let _ = self.delete_node(p, zxid, &mut ignored);
            }
        }
        let Some(node) = self.node(id) else { return ErrorCode::NoNode };
        let (owner, len) = (node.rec.fixed.owner, node.data_len());
        let parent_path = parent_of(path);
        let Some(pid) = self.store.lookup(parent_path) else { return ErrorCode::NoNode };
        if !self.store.remove(pid, name_of(path)) {
            return ErrorCode::NoNode;
        }
        self.approx_size = self.approx_size.saturating_sub(path.len() + len);
        self.unindex(path, owner);
        self.bump_quota(path, -1, -(len as i64));
        self.quota_node_changed(path, false);
        if let Some(parent) = self.store.slot_mut(pid) {
            // The cversion kept counts creates only; clients see deletes
            // counted through the number of children (Node::client_stat).
            if zxid > parent.pzxid {
                parent.pzxid = zxid;
            }
        }
        out.triggers.push(Trigger { path: path.to_string(), event: EventType::NodeDeleted });
        out.triggers.push(Trigger { path: parent_path.to_string(), event: EventType::NodeChildrenChanged });
        ErrorCode::Ok
    }

    /// Applies one txn.
    pub fn apply(&mut self, header: &TxnHeader, body: &TxnBody) -> Applied {
        let mut out = Applied { txn_type: header.txn_type.code(), ..Applied::default() };
        let zxid = header.zxid;
        let time = header.time;
        out.err = match body {
            TxnBody::Create(CreateTxn { path, data, acl, ephemeral, parent_c_version }) => {
                out.path = path.clone();
                let owner = if *ephemeral { header.client_id } else { 0 };
                self.create_node(path, data.as_deref(), acl, owner, *parent_c_version, zxid, time, &mut out)
            }
            TxnBody::CreateV0(t) => {
                out.path = t.path.clone();
                let owner = if t.ephemeral { header.client_id } else { 0 };
                self.create_node(&t.path, t.data.as_deref(), &t.acl, owner, -1, zxid, time, &mut out)
            }
            TxnBody::CreateContainer(CreateContainerTxn { path, data, acl, parent_c_version }) => {
                out.path = path.clone();
                self.create_node(
                    path,
                    data.as_deref(),
                    acl,
                    CONTAINER_OWNER,
                    *parent_c_version,
                    zxid,
                    time,
                    &mut out,
                )
            }
            TxnBody::CreateTtl(CreateTtlTxn { path, data, acl, parent_c_version, ttl }) => {
                out.path = path.clone();
                let owner = NodeKind::ttl_owner(*ttl);
                self.create_node(path, data.as_deref(), acl, owner, *parent_c_version, zxid, time, &mut out)
            }
            TxnBody::Delete(t) => {
                out.path = t.path.clone();
                self.delete_node(&t.path, zxid, &mut out)
            }
            TxnBody::SetData(t) | TxnBody::Reconfig(t) => {
                out.path = t.path.clone();
                match self.store.lookup(&t.path).and_then(|id| Some((id, self.node(id)?))) {
                    None => ErrorCode::NoNode,
                    Some((id, n)) => {
                        let old_len = n.data_len();
                        let fixed =
                            store::Fixed { version: t.version, mzxid: zxid, mtime: time, ..n.rec.fixed };
                        let new_len = t.data.as_ref().map_or(0, |d| d.len());
                        self.store.rewrite(id, &fixed, t.data.as_deref());
                        self.approx_size = (self.approx_size + new_len).saturating_sub(old_len);
                        self.bump_quota(&t.path, 0, new_len as i64 - old_len as i64);
                        out.stat = self.node(id).map(|n| n.client_stat());
                        out.triggers
                            .push(Trigger { path: t.path.clone(), event: EventType::NodeDataChanged });
                        ErrorCode::Ok
                    }
                }
            }
            TxnBody::SetAcl(t) => {
                out.path = t.path.clone();
                let acl = self.acl_id(t.acl.clone());
                match self.store.lookup(&t.path).and_then(|id| Some((id, self.node(id)?))) {
                    None => ErrorCode::NoNode,
                    Some((id, n)) => {
                        let fixed = store::Fixed { aversion: t.version, ..n.rec.fixed };
                        let data = n.data_bytes();
                        self.store.rewrite(id, &fixed, data.as_deref());
                        if let Some(s) = self.store.slot_mut(id) {
                            s.acl = acl;
                        }
                        out.stat = self.node(id).map(|n| n.client_stat());
                        ErrorCode::Ok
                    }
                }
            }
            TxnBody::Check(t) => {
                out.path = t.path.clone();
                ErrorCode::Ok
            }
            TxnBody::CreateSession(_) => ErrorCode::Ok,
            TxnBody::CloseSession(t) => {
                let paths: Vec<String> = match t {
                    Some(CloseSessionTxn { paths2_delete }) => paths2_delete.clone(),
                    None => self.ephemerals_of(header.client_id).cloned().collect(),
                };
                for p in paths {
                    // Deleting in a fixed order keeps replicas identical.
                    let _ = self.delete_node(&p, zxid, &mut out);
                }
                ErrorCode::Ok
            }
            TxnBody::Error(e) => ErrorCode::from(e.err),
            TxnBody::Multi(m) => self.apply_multi(header, &m.txns, &mut out),
            TxnBody::SetMaxChildren(_) => ErrorCode::Ok,
            _ => ErrorCode::Unimplemented,
        };
        if zxid > self.last_zxid {
            self.last_zxid = zxid;
        }
        out
    }

    fn apply_multi(&mut self, header: &TxnHeader, txns: &[Txn], out: &mut Applied) -> ErrorCode {
        // A multi whose prep failed holds only error txns: nothing applies.
        // (Apache logs the ops before the failing one as normal txns and
        // turns them into ErrorTxn(OK) when applying.)
        let failed = txns.iter().any(|t| t.txn_type == OpCode::Error.code());
        let mut post_failed = false;
        for t in txns {
            let ty = OpCode::from(t.txn_type);
            let mut bytes = t.data.clone().unwrap_or_default();
            let sub = match TxnBody::decode(ty, &mut bytes) {
                Ok(b) => b,
                Err(_) => {
                    out.multi.push(Applied {
                        err: ErrorCode::MarshallingError,
                        txn_type: -1,
                        ..Applied::default()
                    });
                    continue;
                }
            };
            let sub_header = TxnHeader { txn_type: ty, ..*header };
            let applied = if failed {
                let err = match &sub {
                    TxnBody::Error(e) => {
                        post_failed = true;
                        ErrorCode::from(e.err)
                    }
                    _ if post_failed => ErrorCode::RuntimeInconsistency,
                    _ => ErrorCode::Ok,
                };
                Applied { err, txn_type: -1, ..Applied::default() }
            } else {
                self.apply(&sub_header, &sub)
            };
            out.triggers.extend(applied.triggers.iter().cloned());
            out.multi.push(applied);
        }
        ErrorCode::Ok
    }

    /// Encodes a sub-txn of a multi.
    pub fn multi_sub(txn_type: OpCode, body: &TxnBody) -> Txn {
        let mut buf = bytes::BytesMut::new();
        body.encode(&mut buf);
        Txn { txn_type: txn_type.code(), data: Some(buf.freeze()) }
    }

    /// Whether `acl` grants `perm` to one of `ids` (or to anyone).
    pub fn check_acl(acl: &[Acl], perm: i32, ids: &[zk_proto::records::Id]) -> bool {
        if acl.is_empty() || ids.iter().any(|i| i.scheme == "super") {
            return true;
        }
        acl.iter().filter(|a| a.perms & perm != 0).any(|a| {
            (a.id.scheme == "world" && a.id.id == "anyone")
                || ids.iter().any(|i| i.scheme == a.id.scheme && crate::acl::id_matches(&a.id, i))
        })
    }

    /// Permission bit names, for logs.
    pub fn perm_name(perm: i32) -> &'static str {
        match perm {
            perms::READ => "READ",
            perms::WRITE => "WRITE",
            perms::CREATE => "CREATE",
            perms::DELETE => "DELETE",
            perms::ADMIN => "ADMIN",
            _ => "ALL",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_proto::records::{DeleteTxn, SetDataTxn};

    fn hdr(zxid: i64, t: OpCode) -> TxnHeader {
        TxnHeader { client_id: 7, cxid: 1, zxid, time: 1000 + zxid, txn_type: t }
    }

    fn create(path: &str, pcv: i32) -> TxnBody {
        TxnBody::Create(CreateTxn {
            path: path.into(),
            data: None,
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_c_version: pcv,
        })
    }

    #[test]
    fn create_set_delete_update_stats() {
        let mut t = DataTree::new();
        // Prep hands the parent's next count of creates (1 for a fresh root).
        let a = t.apply(&hdr(1, OpCode::Create), &create("/a", 1));
        assert_eq!(a.err, ErrorCode::Ok);
        let s = a.stat.unwrap();
        assert_eq!((s.czxid, s.mzxid, s.pzxid, s.version), (1, 1, 1, 0));
        let root = t.get("/").unwrap().client_stat();
        assert_eq!((root.cversion, root.pzxid, root.num_children), (0, 1, 2));
        let r = t.apply(
            &hdr(2, OpCode::SetData),
            &TxnBody::SetData(SetDataTxn {
                path: "/a".into(),
                data: Some(Bytes::from_static(b"x")),
                version: 1,
            }),
        );
        assert_eq!(r.stat.unwrap().data_length, 1);
        let d = t.apply(&hdr(3, OpCode::Delete), &TxnBody::Delete(DeleteTxn { path: "/a".into() }));
        assert_eq!(d.err, ErrorCode::Ok);
        let root = t.get("/").unwrap().client_stat();
        assert_eq!((root.cversion, root.pzxid), (1, 3), "clients see a delete in cversion; pzxid moves");
        let again = t.apply(&hdr(4, OpCode::Create), &create("/b", -1));
        assert_eq!(again.err, ErrorCode::Ok);
        assert_eq!(t.get("/").unwrap().stat().cversion, 2, "-1 means: the parent's creates plus one");
        assert_eq!(t.get("/").unwrap().client_stat().cversion, 2, "two creates, one delete, one child left");
        assert_eq!(d.triggers.len(), 2);
    }

    #[test]
    fn a_walk_visits_children_in_creation_order_parents_first() {
        // The child index keeps hash order; the walk (snapshots) goes by
        // id, which is creation order on a tree that never freed a slot.
        let mut t = DataTree::new();
        let mut z = 0;
        let mut made = Vec::new();
        for d in 0..3 {
            z += 1;
            t.apply(&hdr(z, OpCode::Create), &create(&format!("/d{d}"), -1));
            made.push(format!("/d{d}"));
            for c in 0..200 {
                z += 1;
                let p = format!("/d{d}/c{c}");
                assert_eq!(t.apply(&hdr(z, OpCode::Create), &create(&p, -1)).err, ErrorCode::Ok);
                made.push(p);
            }
        }
        for view in [false, true] {
            let mut seen = Vec::new();
            let mut visit = |path: &str, _: Node<'_>| {
                seen.push(path.to_string());
                Ok::<(), ()>(())
            };
            if view { t.snapshot_view().walk(&mut visit) } else { t.walk(&mut visit) }.unwrap();
            let ours: Vec<&String> = seen.iter().filter(|p| p.starts_with("/d")).collect();
            assert_eq!(ours, made.iter().collect::<Vec<_>>(), "view {view}");
            assert_eq!(seen.len(), t.node_count());
        }
    }

    #[test]
    fn replay_absorbs_duplicates() {
        let mut t = DataTree::new();
        t.apply(&hdr(1, OpCode::Create), &create("/a", 1));
        let again = t.apply(&hdr(1, OpCode::Create), &create("/a", 1));
        assert_eq!(again.err, ErrorCode::NodeExists);
        assert_eq!(t.node_count(), 5);
    }

    #[test]
    fn kinds_and_indexes() {
        let mut t = DataTree::new();
        let eph = TxnBody::Create(CreateTxn {
            path: "/e".into(),
            data: None,
            acl: vec![],
            ephemeral: true,
            parent_c_version: 1,
        });
        t.apply(&hdr(1, OpCode::Create), &eph);
        assert_eq!(t.ephemerals_of(7).count(), 1);
        assert_eq!(t.get("/e").unwrap().client_stat().ephemeral_owner, 7);
        let c = TxnBody::CreateContainer(CreateContainerTxn {
            path: "/c".into(),
            data: None,
            acl: vec![],
            parent_c_version: 2,
        });
        t.apply(&hdr(2, OpCode::CreateContainer), &c);
        assert_eq!(t.get("/c").unwrap().client_stat().ephemeral_owner, 0, "marker hidden");
        assert_eq!(NodeKind::of(t.get("/c").unwrap().stat().ephemeral_owner), NodeKind::Container);
        assert_eq!(NodeKind::of(NodeKind::ttl_owner(5000)), NodeKind::Ttl(5000));
        let close = TxnBody::CloseSession(Some(CloseSessionTxn { paths2_delete: vec!["/e".into()] }));
        t.apply(&hdr(3, OpCode::CloseSession), &close);
        assert_eq!(t.ephemerals_of(7).count(), 0);
        assert!(t.get("/e").is_none());
        assert_eq!(t.descendants("/"), 4);
    }

    #[test]
    fn loader_takes_any_parent_first_order_and_refuses_bad_trees() {
        let open = Arc::new(Acl::open_unsafe());
        let st = |z: i64| StatPersisted {
            czxid: z,
            mzxid: z,
            pzxid: z + 1,
            cversion: 3,
            ..StatPersisted::default()
        };
        // Pre-order (Apache's), then sorted by path (parents first, but
        // "/a/x" comes after "/a-b"): the same tree.
        let preorder = ["/", "/a", "/a/x", "/a/x/y", "/a-b", "/zookeeper", "/zookeeper/quota"];
        let mut sorted = preorder;
        sorted.sort();
        for order in [preorder, sorted] {
            let mut l = DataTree::loader();
            for (z, p) in order.iter().enumerate() {
                l.push(p, Some(p.as_bytes()), &open, &st(z as i64)).unwrap();
            }
            let t = l.finish(99).unwrap();
            assert_eq!(t.last_zxid, 99);
            assert_eq!(t.node_count(), 8, "the config node is added: {order:?}");
            let mut kids: Vec<&str> = t.children_of("/a").collect();
            kids.sort();
            assert_eq!(kids, ["x"]);
            let n = t.get("/a/x/y").unwrap();
            assert_eq!(n.data(), Some(&b"/a/x/y"[..]));
            assert_eq!((n.stat().pzxid, n.stat().cversion), (n.stat().czxid + 1, 3));
            assert_eq!(t.get("/").unwrap().num_children(), 3);
        }
        let load = |paths: &[&str]| -> Result<DataTree, String> {
            let mut l = DataTree::loader();
            for p in paths {
                l.push(p, None, &open, &st(1))?;
            }
            l.finish(1)
        };
        assert!(load(&["/a"]).unwrap_err().contains("no root"));
        assert!(load(&["/", "/a/b"]).unwrap_err().contains("before its parent"));
        assert!(load(&["/", "/a", "/a"]).unwrap_err().contains("twice"));
        assert!(load(&["/", "/", "/a"]).unwrap_err().contains("twice"));
        assert!(load(&["/", "/a/"]).is_err());
        assert!(
            load(&["/", "/a", "/b", "/a"]).unwrap_err().contains("twice"),
            "a duplicate after a relocation"
        );
    }

    #[test]
    fn quota_stats_follow_the_subtree() {
        let mut t = DataTree::new();
        let mk = |path: &str, data: &[u8], pcv: i32| {
            TxnBody::Create(CreateTxn {
                path: path.into(),
                data: Some(Bytes::copy_from_slice(data)),
                acl: Acl::open_unsafe(),
                ephemeral: false,
                parent_c_version: pcv,
            })
        };
        let mut z = 0;
        let mut apply = |t: &mut DataTree, b: TxnBody| {
            z += 1;
            t.apply(&hdr(z, OpCode::Create), &b)
        };
        apply(&mut t, mk("/q", b"abc", -1));
        apply(&mut t, mk("/q/a", b"12", -1));
        apply(&mut t, mk("/zookeeper/quota/q", b"", -1));
        apply(&mut t, mk("/zookeeper/quota/q/zookeeper_limits", b"count=10,bytes=-1", -1));
        apply(&mut t, mk("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0", -1));
        let stats = |t: &DataTree| t.get("/zookeeper/quota/q/zookeeper_stats").unwrap().data_bytes().unwrap();
        assert_eq!(&stats(&t)[..], b"count=2,bytes=5");
        apply(&mut t, mk("/q/b", b"1", -1));
        assert_eq!(&stats(&t)[..], b"count=3,bytes=6");
        t.apply(
            &hdr(100, OpCode::SetData),
            &TxnBody::SetData(SetDataTxn {
                path: "/q/a".into(),
                data: Some(Bytes::from_static(b"12345")),
                version: 1,
            }),
        );
        assert_eq!(&stats(&t)[..], b"count=3,bytes=9");
        t.apply(&hdr(101, OpCode::Delete), &TxnBody::Delete(DeleteTxn { path: "/q/b".into() }));
        assert_eq!(&stats(&t)[..], b"count=2,bytes=8");
        apply(&mut t, mk("/other", b"zz", -1));
        assert_eq!(&stats(&t)[..], b"count=2,bytes=8", "outside the quota");
        // Enforcement: hard limits refuse, soft limits do not; figures
        // written by users are parsed without panicking.
        assert_eq!(t.check_quota("/q/x", 1, 1), Ok(()), "soft count limit 10");
        t.apply(
            &hdr(102, OpCode::SetData),
            &TxnBody::SetData(SetDataTxn {
                path: "/zookeeper/quota/q/zookeeper_limits".into(),
                data: Some(Bytes::from_static(b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=2")),
                version: 1,
            }),
        );
        assert_eq!(t.check_quota("/q/a/deep", 0, 1), Err("/q".to_string()), "3 nodes > hard limit 2");
        assert_eq!(t.check_quota("/q/a", 2, 0), Ok(()), "8 + 2 bytes <= 10");
        assert_eq!(t.check_quota("/q/a", 3, 0), Err("/q".to_string()));
        assert_eq!(t.check_quota("/other/x", 100, 1), Ok(()), "not under a quota");
        for junk in [&b"count=9223372036854775807,bytes=x"[..], b"=,;==", b"\xff\xfe", b""] {
            let f = QuotaFigures::parse(junk);
            let _ = f.count.saturating_add(1);
        }
        t.apply(
            &hdr(103, OpCode::SetData),
            &TxnBody::SetData(SetDataTxn {
                path: "/zookeeper/quota/q/zookeeper_stats".into(),
                data: Some(Bytes::from_static(b"count=9223372036854775807,bytes=9223372036854775807")),
                version: 1,
            }),
        );
        apply(&mut t, mk("/q/c", b"123", -1));
        assert_eq!(&stats(&t)[..], b"count=9223372036854775807,bytes=9223372036854775807", "saturates");
    }
}
