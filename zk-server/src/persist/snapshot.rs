//! Snapshots of the data tree, in Apache ZooKeeper's format (`FileSnap`,
//! `SerializeUtils.serializeSnapshot`, `DataTree.serialize`).
//!
//! A snapshot is `version-2/snapshot.<lowercase hex zxid>`:
//!
//! ```text
//! FileHeader{"ZKSN", 2, dbid -1}
//! int count, {long sessionId, int timeout}*          sessions
//! int count, {long index, vector<ACL>}*              ACL cache
//! {ustring path, buffer data, long aclIndex, StatPersisted}*   nodes
//! ustring "/"                                        end of the nodes
//! long adler32, ustring "/"                          seal
//! ```
//!
//! The checksum covers every byte before it. Apache 3.6+ may append
//! trailers after the seal (the zxid digest, each sealed again); they are
//! ignored when reading and not written.
//!
//! Conventions found in Apache's files (see the golden `snapshot.bin`):
//!
//! * The root node is written with the empty path `""` (Apache's
//!   `DataTree.serializeNode` starts from `""`; `"/"` would end the node
//!   list). [`SnapshotNode::path`] uses `"/"` for the root; the conversion
//!   happens here.
//! * The ACL index `-1` means `OPEN_ACL_UNSAFE` (`world:anyone`, all perms)
//!   without a cache entry (`ReferenceCountedACLCache.OPEN_UNSAFE_ACL_ID`).
//!   Apache uses it for the nodes it creates itself (`/`, `/zookeeper`,
//!   `/zookeeper/quota`); other lists get indexes from 1 up. This writer
//!   uses -1 for every open ACL, which Apache reads back as the same list.
//! * Nodes are listed parents first; Apache's loader rejects a node whose
//!   parent has not been read yet.
//!
//! Writing goes to a temp file (`tmp.snapshot.<zxid>`, a name Apache's
//! loader ignores), which is fsynced and renamed, so the final name only
//! ever holds a complete snapshot.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tracing::{debug, info, warn};
use zk_proto::Record;
use zk_proto::records::{Acl, FILE_VERSION, FileHeader, SNAP_MAGIC, StatPersisted};

use super::compress::{Compression, Encoder};
use super::txnlog::LOG_PREFIX;
use super::{
    Adler32, adler32, ensure_version_dir, invalid_data, invalid_input, list_dir, parse_zxid_name,
    parse_zxid_name_lenient, sync_dir, version_dir, zxid_file_name,
};

/// The name prefix of snapshot files (`snapshot.<hex zxid>`).
pub const SNAPSHOT_PREFIX: &str = "snapshot";

/// The fewest snapshots [`purge`] keeps (Apache's `PurgeTxnLog` minimum).
pub const MIN_RETAIN: usize = 3;

/// The ACL index of `OPEN_ACL_UNSAFE`, which has no cache entry.
const OPEN_ACL_INDEX: i64 = -1;

/// Prefix of the files being written (not matched by `snapshot.*`).
const TMP_PREFIX: &str = "tmp.";

/// The seal's `"/"` and the node list terminator, encoded.
const SLASH: [u8; 5] = [0, 0, 0, 1, b'/'];

/// I/O buffer size for snapshot files.
const IO_BUF: usize = 256 * 1024;

/// One node of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotNode {
    /// The absolute path; `"/"` for the root (stored as `""` in the file).
    pub path: String,
    /// The data; `None` for a node created with null data (kept distinct
    /// from empty data, as Apache does).
    pub data: Option<Bytes>,
    /// The ACL (shared between nodes with equal lists).
    pub acl: Arc<Vec<Acl>>,
    /// The persisted stat.
    pub stat: StatPersisted,
}

/// A loaded snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The zxid in the file name: the last txn applied when the snapshot
    /// started. Snapshots are fuzzy, so replay the log from `zxid + 1`
    /// (idempotently).
    pub zxid: i64,
    /// The sessions: `(session id, timeout in ms)`.
    pub sessions: Vec<(i64, i32)>,
    /// The nodes, each after its parent, the root first.
    pub nodes: Vec<SnapshotNode>,
}

/// What [`purge`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PurgeReport {
    /// The snapshots kept, newest first.
    pub kept_snapshots: Vec<PathBuf>,
    /// The snapshot files (and leftover temp files) deleted.
    pub deleted_snapshots: Vec<PathBuf>,
    /// The log files deleted.
    pub deleted_logs: Vec<PathBuf>,
}

/// Writes `snapshot.<hex zxid>` in `dir/version-2` atomically: to a temp
/// file, fsynced, renamed over the final name, then the directory fsynced.
///
/// `nodes` must hold the root (path `"/"`, or `""`) and every other node
/// once, the reserved `/zookeeper` nodes included as the tree has them.
/// They may come in any order: the file lists each node after its parent
/// (Apache's loader requires it), so nodes that arrive before their parent
/// are held back and written at the end in path order. A parent-first
/// order (pre-order, or sorted by path) is streamed without holding nodes.
/// ACL lists are deduplicated into the ACL cache section (open ACLs use
/// index -1). The nodes section goes to a side file first, because the ACL
/// cache precedes it in the format. Only one snapshot of a given zxid may
/// be written at a time.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] when the root is missing, a node is
/// given twice, a path is malformed or a node's parent is missing;
/// otherwise I/O errors. On error nothing new is left under the final name
/// (an older snapshot of the same name is untouched) and the temp files
/// are removed.
pub fn write_snapshot(
    dir: &Path,
    zxid: i64,
    sessions: &[(i64, i32)],
    nodes: impl Iterator<Item = SnapshotNode>,
) -> io::Result<PathBuf> {
    write_snapshot_with(dir, zxid, sessions, Compression::None, |sink| {
        for node in nodes {
            sink.push(node.record())?;
        }
        Ok(())
    })
}

/// [`write_snapshot`] with the nodes given by `source`, which pushes each
/// into the sink it is handed (without copying them first), compressed as
/// `compression` says (`snapshot.<zxid>.gz` / `.snappy`, as Apache names
/// them).
///
/// # Errors
/// As [`write_snapshot`].
pub fn write_snapshot_with(
    dir: &Path,
    zxid: i64,
    sessions: &[(i64, i32)],
    compression: Compression,
    source: impl FnOnce(&mut NodeSink<'_>) -> io::Result<()>,
) -> io::Result<PathBuf> {
    commit_file(dir, zxid, compression, |tmp| {
        let mut side = tmp.as_os_str().to_owned();
        side.push(".nodes");
        let side = PathBuf::from(side);
        let written = write_temp(tmp, &side, sessions, compression, source);
        let _ = fs::remove_file(&side);
        written
    })
}

/// [`write_snapshot_with`] for nodes that come in pre-order (each after
/// its parent, as a tree walk gives them) with their ACL lists interned
/// up front (`acls`, addressed by [`OrderedSink::push`]'s `acl_id`): the
/// ACL cache is written first and the nodes go straight into the file,
/// with no side file and no per-node checks. The file is the same format.
///
/// # Errors
/// An I/O error, or an `acl_id` outside `acls`.
pub fn write_ordered_snapshot(
    dir: &Path,
    zxid: i64,
    sessions: &[(i64, i32)],
    compression: Compression,
    acls: &[Arc<Vec<Acl>>],
    source: impl FnOnce(&mut OrderedSink<'_>) -> io::Result<()>,
) -> io::Result<PathBuf> {
    commit_file(dir, zxid, compression, |tmp| {
        let (index, entries) = known_acls(acls);
        let mut out = create_with_head(tmp, compression, sessions, &entries)?;
        let mut sink = OrderedSink { out: &mut out, index, buf: BytesMut::with_capacity(2 * ORDERED_CHUNK) };
        source(&mut sink)?;
        sink.finish()?;
        seal(out)
    })
}

/// Nodes handed to [`write_ordered_snapshot`] / [`encode_ordered_stream`]:
/// pre-order, ACLs by their interned id.
pub struct OrderedSink<'w> {
    out: &'w mut dyn Write,
    /// The snapshot's ACL index of each interned id.
    index: Vec<i64>,
    buf: BytesMut,
}

/// Bytes of node records gathered before each write (one checksum update
/// and one buffer copy per chunk rather than per node).
const ORDERED_CHUNK: usize = 64 * 1024;

impl OrderedSink<'_> {
    /// Appends one node (`path` `"/"` is the root).
    ///
    /// # Errors
    /// An I/O error, an `acl_id` outside the table, oversized data.
    pub fn push(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl_id: u32,
        stat: &StatPersisted,
    ) -> io::Result<()> {
        let index = self
            .index
            .get(acl_id as usize)
            .copied()
            .ok_or_else(|| invalid_input(format!("ACL id {acl_id} is not in the table")))?;
        put_str(&mut self.buf, if path == "/" { "" } else { path })?;
        match data {
            None => self.buf.put_i32(-1),
            Some(d) => {
                self.buf.put_i32(i32::try_from(d.len()).map_err(|_| invalid_input("node data too long"))?);
                self.buf.put_slice(d);
            }
        }
        index.encode(&mut self.buf);
        stat.encode(&mut self.buf);
        if self.buf.len() >= ORDERED_CHUNK {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(self) -> io::Result<()> {
        if self.buf.is_empty() { Ok(()) } else { self.out.write_all(&self.buf) }
    }
}

/// A known ACL table as a snapshot's cache: list `i` gets index `i + 1`,
/// `OPEN_ACL_UNSAFE` the index -1 and no entry. Also the index of each id.
fn known_acls(acls: &[Arc<Vec<Acl>>]) -> (Vec<i64>, Vec<(i64, &Vec<Acl>)>) {
    let open = Acl::open_unsafe();
    let mut index = Vec::with_capacity(acls.len());
    let mut entries = Vec::with_capacity(acls.len());
    for (i, list) in acls.iter().enumerate() {
        if **list == open {
            index.push(OPEN_ACL_INDEX);
        } else {
            let at = i as i64 + 1;
            index.push(at);
            entries.push((at, &**list));
        }
    }
    (index, entries)
}

/// Sessions, then the ACL cache, as a snapshot has them after its header.
fn put_sessions_and_acls(
    buf: &mut BytesMut,
    sessions: &[(i64, i32)],
    entries: &[(i64, &Vec<Acl>)],
) -> io::Result<()> {
    buf.put_i32(i32::try_from(sessions.len()).map_err(|_| invalid_input("too many sessions"))?);
    for &(id, timeout) in sessions {
        buf.put_i64(id);
        buf.put_i32(timeout);
    }
    buf.put_i32(i32::try_from(entries.len()).map_err(|_| invalid_input("too many distinct ACLs"))?);
    for (index, acl) in entries {
        index.encode(buf);
        acl.encode(buf);
    }
    Ok(())
}

/// Creates the snapshot file `tmp` and writes its head: file header,
/// sessions, ACL cache.
fn create_with_head(
    tmp: &Path,
    compression: Compression,
    sessions: &[(i64, i32)],
    entries: &[(i64, &Vec<Acl>)],
) -> io::Result<CheckedWriter<Encoder<BufWriter<File>>>> {
    let file = BufWriter::with_capacity(IO_BUF, File::create(tmp)?);
    let mut out = CheckedWriter { inner: Encoder::new(compression, file)?, sum: Adler32::new() };
    let mut buf = BytesMut::new();
    FileHeader { magic: SNAP_MAGIC, version: FILE_VERSION, dbid: -1 }.encode(&mut buf);
    put_sessions_and_acls(&mut buf, sessions, entries)?;
    out.write_all(&buf)?;
    Ok(out)
}

/// The trailer (`/`, the checksum, `/`), then the file synced.
fn seal(mut out: CheckedWriter<Encoder<BufWriter<File>>>) -> io::Result<()> {
    out.write_all(&SLASH)?;
    let sum = out.sum.value_i64();
    out.write_all(&sum.to_be_bytes())?;
    out.write_all(&SLASH)?;
    let file = out.inner.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Writes `snapshot.<zxid>[.gz|.snappy]` through `write` (given a temp
/// path in the version dir), then renames it into place and syncs the
/// directory; the temp file goes on failure.
fn commit_file(
    dir: &Path,
    zxid: i64,
    compression: Compression,
    write: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let vdir = ensure_version_dir(dir)?;
    let name = format!("{}{}", zxid_file_name(SNAPSHOT_PREFIX, zxid), compression.suffix());
    let final_path = vdir.join(&name);
    let tmp = vdir.join(format!("{TMP_PREFIX}{name}"));
    let written = write(&tmp);
    let renamed = written.and_then(|()| fs::rename(&tmp, &final_path));
    if let Err(e) = renamed {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&vdir)?;
    info!(file = %final_path.display(), "wrote snapshot");
    Ok(final_path)
}

/// Counts the Adler32 of everything written through it.
struct CheckedWriter<W> {
    inner: W,
    sum: Adler32,
}

impl<W: Write> Write for CheckedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sum.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The ACL cache being built: distinct lists and their indexes.
struct AclCache {
    open: Vec<Acl>,
    index: HashMap<Vec<Acl>, i64>,
}

impl AclCache {
    fn new() -> Self {
        AclCache { open: Acl::open_unsafe(), index: HashMap::new() }
    }

    fn index_of(&mut self, acl: &[Acl]) -> i64 {
        if acl == self.open.as_slice() {
            return OPEN_ACL_INDEX;
        }
        if let Some(&i) = self.index.get(acl) {
            return i;
        }
        let i = self.index.len() as i64 + 1;
        self.index.insert(acl.to_vec(), i);
        i
    }

    /// The entries by index.
    fn entries(&self) -> Vec<(i64, &Vec<Acl>)> {
        let mut v: Vec<_> = self.index.iter().map(|(acl, &i)| (i, acl)).collect();
        v.sort_by_key(|(i, _)| *i);
        v
    }
}

/// Appends a jute `ustring`.
fn put_str(buf: &mut BytesMut, s: &str) -> io::Result<()> {
    let len = i32::try_from(s.len()).map_err(|_| invalid_input("path too long"))?;
    buf.put_i32(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// The parent of a non-root absolute path (`"/"` for a top-level node).
fn parent_of(path: &str) -> Option<&str> {
    if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') {
        return None;
    }
    let slash = path.rfind('/')?;
    Some(if slash == 0 { "/" } else { &path[..slash] })
}

/// The set of paths written so far, kept as two independent 64-bit hashes
/// per path rather than the strings: a false match needs a 128-bit
/// collision.
struct PathSet {
    a: RandomState,
    b: RandomState,
    set: HashSet<(u64, u64)>,
}

impl PathSet {
    fn new() -> Self {
        PathSet { a: RandomState::new(), b: RandomState::new(), set: HashSet::new() }
    }

    fn key(&self, path: &str) -> (u64, u64) {
        (self.a.hash_one(path), self.b.hash_one(path))
    }

    fn contains(&self, path: &str) -> bool {
        self.set.contains(&self.key(path))
    }

    /// False when the path was already there.
    fn insert(&mut self, path: &str) -> bool {
        let key = self.key(path);
        self.set.insert(key)
    }
}

/// Appends one node record (`wire_path` is `""` for the root).
fn write_node(
    out: &mut (impl Write + ?Sized),
    buf: &mut BytesMut,
    acls: &mut AclCache,
    wire_path: &str,
    node: NodeRecord<'_>,
) -> io::Result<()> {
    buf.clear();
    put_str(buf, wire_path)?;
    match node.data {
        None => buf.put_i32(-1),
        Some(d) => {
            buf.put_i32(i32::try_from(d.len()).map_err(|_| invalid_input("node data too long"))?);
            buf.put_slice(d);
        }
    }
    acls.index_of(node.acl).encode(buf);
    node.stat.encode(buf);
    out.write_all(buf)
}

/// One node to write, borrowed from wherever it lives.
#[derive(Debug, Clone, Copy)]
pub struct NodeRecord<'a> {
    /// The absolute path (`"/"` for the root).
    pub path: &'a str,
    /// The data (`None`: null).
    pub data: Option<&'a [u8]>,
    /// The ACL.
    pub acl: &'a [Acl],
    /// The persisted stat.
    pub stat: &'a StatPersisted,
}

impl SnapshotNode {
    /// The node as the writers take it.
    pub fn record(&self) -> NodeRecord<'_> {
        NodeRecord { path: &self.path, data: self.data.as_deref(), acl: &self.acl, stat: &self.stat }
    }
}

/// Where a snapshot's nodes go: each is written once its parent has been;
/// nodes that come before their parent wait and are written at the end in
/// path order (where every parent precedes its children).
pub struct NodeSink<'w> {
    out: &'w mut dyn Write,
    acls: AclCache,
    seen: PathSet,
    root: bool,
    deferred: Vec<SnapshotNode>,
    buf: BytesMut,
}

impl NodeSink<'_> {
    /// Adds one node.
    ///
    /// # Errors
    /// A malformed path, a node given twice, or an I/O error.
    pub fn push(&mut self, node: NodeRecord<'_>) -> io::Result<()> {
        if node.path == "/" || node.path.is_empty() {
            if self.root {
                return Err(invalid_input("the root node is given twice"));
            }
            self.root = true;
            self.seen.insert("/");
            return write_node(self.out, &mut self.buf, &mut self.acls, "", node);
        }
        let parent = parent_of(node.path)
            .ok_or_else(|| invalid_input(format!("invalid node path {:?}", node.path)))?;
        if self.seen.contains(parent) {
            if !self.seen.insert(node.path) {
                return Err(invalid_input(format!("node {} is given twice", node.path)));
            }
            write_node(self.out, &mut self.buf, &mut self.acls, node.path, node)
        } else {
            self.deferred.push(SnapshotNode {
                path: node.path.to_owned(),
                data: node.data.map(Bytes::copy_from_slice),
                acl: Arc::new(node.acl.to_vec()),
                stat: *node.stat,
            });
            Ok(())
        }
    }

    /// Writes the deferred nodes; the ACL cache built.
    fn finish(mut self) -> io::Result<AclCache> {
        if !self.root {
            return Err(invalid_input("a snapshot needs the root node"));
        }
        let mut deferred = std::mem::take(&mut self.deferred);
        if !deferred.is_empty() {
            debug!(nodes = deferred.len(), "sorting snapshot nodes that came before their parents");
            deferred.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        }
        for node in &deferred {
            if !parent_of(&node.path).is_some_and(|p| self.seen.contains(p)) {
                return Err(invalid_input(format!("node {} has no parent", node.path)));
            }
            if !self.seen.insert(&node.path) {
                return Err(invalid_input(format!("node {} is given twice", node.path)));
            }
            write_node(self.out, &mut self.buf, &mut self.acls, &node.path, node.record())?;
        }
        Ok(self.acls)
    }
}

/// Writes the complete snapshot to `tmp` (fsynced), via the side file
/// `side` for the nodes.
fn write_temp(
    tmp: &Path,
    side: &Path,
    sessions: &[(i64, i32)],
    compression: Compression,
    source: impl FnOnce(&mut NodeSink<'_>) -> io::Result<()>,
) -> io::Result<()> {
    // 1. The nodes, into the side file, building the ACL cache.
    let side_file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(side)?;
    let mut out = BufWriter::with_capacity(IO_BUF, side_file);
    let mut sink = NodeSink {
        out: &mut out,
        acls: AclCache::new(),
        seen: PathSet::new(),
        root: false,
        deferred: Vec::new(),
        buf: BytesMut::new(),
    };
    source(&mut sink)?;
    let acls = sink.finish()?;
    let mut side_file = out.into_inner().map_err(|e| e.into_error())?;
    side_file.seek(SeekFrom::Start(0))?;

    // 2. The snapshot: header, sessions, ACL cache, nodes, seal.
    let mut out = create_with_head(tmp, compression, sessions, &acls.entries())?;
    io::copy(&mut BufReader::with_capacity(IO_BUF, side_file), &mut out)?;
    seal(out)
}

/// Apache's quick check (`SnapStream.isValidCheckedStream`): at least 10
/// bytes, ending in the seal's `"/"`. A file failing it is an incomplete
/// write and is not considered a snapshot at all.
fn looks_complete(path: &Path, c: Compression) -> bool {
    let check = || -> io::Result<bool> {
        let mut f = File::open(path)?;
        if c != Compression::None {
            let mut head = [0u8; 8];
            let n = f.read(&mut head)?;
            return Ok(c.has_magic(&head[..n]));
        }
        let len = f.metadata()?.len();
        if len < 10 {
            return Ok(false);
        }
        f.seek(SeekFrom::Start(len - 5))?;
        let mut tail = [0u8; 5];
        f.read_exact(&mut tail)?;
        Ok(tail == SLASH)
    };
    check().unwrap_or(false)
}

/// Loads the newest valid snapshot of `dir/version-2`.
///
/// Snapshots are tried newest first. As in Apache, a file that does not
/// end in its seal (an interrupted write) is skipped as if absent; one
/// that does but fails to load (bad checksum, bad structure) is reported
/// with a warning and the next older one is tried. Compressed snapshots
/// (`snapshot.<zxid>.gz` / `.snappy`, Apache's
/// `zookeeper.snapshot.compression.method`) are read too, whatever the
/// server writes.
///
/// `Ok(None)` means there is no complete snapshot. Apache then refuses to
/// start if the log holds txns ("No snapshot found, but there are log
/// entries"), unless told to trust an empty snapshot.
///
/// # Errors
/// When complete-looking (or compressed) snapshots exist but none loads
/// (restoring from nothing would silently lose the tree), or on directory
/// I/O errors.
pub fn load_latest(dir: &Path) -> io::Result<Option<Snapshot>> {
    Ok(load_latest_with(dir, Collect::default)?.map(|l| Snapshot {
        zxid: l.zxid,
        sessions: l.sessions,
        nodes: l.output,
    }))
}

/// Deletes the snapshots taken after `zxid` (for a learner whose leader
/// cut its log back to `zxid`: they hold txns the quorum never committed);
/// how many.
///
/// # Errors
/// On directory I/O errors.
pub fn remove_after(dir: &Path, zxid: i64) -> io::Result<usize> {
    let vdir = version_dir(dir);
    let mut removed = 0;
    for (name, path) in list_dir(&vdir)? {
        if parse_zxid_name_lenient(&name, SNAPSHOT_PREFIX).is_some_and(|z| z > zxid) {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    if removed > 0 {
        super::sync_dir(&vdir)?;
    }
    Ok(removed)
}

/// The snapshot files of `vdir`, plain (`snapshot.<hex>`) and compressed
/// (`snapshot.<hex>.gz`, `.snappy`), by ascending zxid.
fn snapshot_files(vdir: &Path) -> io::Result<Vec<(i64, PathBuf, Compression)>> {
    let mut out = Vec::new();
    for (name, path) in list_dir(vdir)? {
        if let Some(zxid) = parse_zxid_name(&name, SNAPSHOT_PREFIX) {
            out.push((zxid, path, Compression::None));
        } else if let Some(zxid) = parse_zxid_name_lenient(&name, SNAPSHOT_PREFIX) {
            let c = Compression::of_file(&name);
            if c != Compression::None && name.matches('.').count() == 2 {
                out.push((zxid, path, c));
            }
        }
    }
    out.sort_by_key(|(z, _, _)| *z);
    Ok(out)
}

/// Reads one snapshot file into `loader`.
fn load_file_with<L: SnapshotLoader>(
    path: &Path,
    c: Compression,
    mut loader: L,
) -> io::Result<(Sessions, L::Output)> {
    let bad = |e: String| invalid_data(format!("{}: {e}", path.display()));
    let bytes = c.decode(fs::read(path)?).map_err(|e| bad(e.to_string()))?;
    let sessions = parse_file_into(&bytes, &mut loader).map_err(bad)?;
    let out = loader.finish().map_err(bad)?;
    Ok((sessions, out))
}

/// Sessions as snapshots hold them: `(session id, timeout in ms)`.
pub type Sessions = Vec<(i64, i32)>;

/// One node of a snapshot as it is read, borrowed from the file's bytes.
#[derive(Debug, Clone, Copy)]
pub struct LoadedNode<'a> {
    /// The absolute path (`"/"` for the root).
    pub path: &'a str,
    /// The data (`None`: null).
    pub data: Option<&'a [u8]>,
    /// The ACL, shared by every node of the snapshot that has it.
    pub acl: &'a Arc<Vec<Acl>>,
    /// The persisted stat.
    pub stat: StatPersisted,
}

/// What a snapshot's nodes are read into, in the order the file lists
/// them (each after its parent, as Apache writes them).
pub trait SnapshotLoader {
    /// What the loader makes.
    type Output;
    /// Takes one node.
    ///
    /// # Errors
    /// A node the loader cannot take (the snapshot is then not used).
    fn node(&mut self, node: LoadedNode<'_>) -> Result<(), String>;
    /// Ends the load.
    ///
    /// # Errors
    /// When what was read does not make a tree.
    fn finish(self) -> Result<Self::Output, String>;
}

/// A loader that keeps every node (checked by [`check_tree`]).
#[derive(Debug, Default)]
struct Collect(Vec<SnapshotNode>);

impl SnapshotLoader for Collect {
    type Output = Vec<SnapshotNode>;

    fn node(&mut self, n: LoadedNode<'_>) -> Result<(), String> {
        self.0.push(SnapshotNode {
            path: n.path.to_owned(),
            data: n.data.map(Bytes::copy_from_slice),
            acl: n.acl.clone(),
            stat: n.stat,
        });
        Ok(())
    }

    fn finish(self) -> Result<Vec<SnapshotNode>, String> {
        check_tree(&self.0)?;
        Ok(self.0)
    }
}

/// A snapshot loaded by [`load_latest_with`].
#[derive(Debug)]
pub struct Loaded<T> {
    /// The zxid in the file name.
    pub zxid: i64,
    /// The sessions: `(session id, timeout in ms)`.
    pub sessions: Vec<(i64, i32)>,
    /// What the loader made.
    pub output: T,
}

/// [`load_latest`] into loaders that `fresh` makes (one per file tried):
/// the nodes go from the file's bytes to the loader without being copied
/// first.
///
/// # Errors
/// As [`load_latest`].
pub fn load_latest_with<L: SnapshotLoader>(
    dir: &Path,
    mut fresh: impl FnMut() -> L,
) -> io::Result<Option<Loaded<L::Output>>> {
    let vdir = version_dir(dir);
    let mut candidates = snapshot_files(&vdir)?;
    candidates.reverse();
    let mut tried = 0usize;
    for (zxid, path, c) in &candidates {
        if !looks_complete(path, *c) {
            warn!(file = %path.display(), "skipping an incomplete snapshot");
            continue;
        }
        tried += 1;
        match load_file_with(path, *c, fresh()) {
            Ok((sessions, output)) => {
                info!(file = %path.display(), sessions = sessions.len(), "loaded snapshot");
                return Ok(Some(Loaded { zxid: *zxid, sessions, output }));
            }
            Err(e) => warn!(error = %e, "invalid snapshot, trying an older one"),
        }
    }
    if tried > 0 {
        return Err(invalid_data(format!("no usable snapshot in {}: {tried} invalid", vdir.display())));
    }
    Ok(None)
}

/// The zxid of the newest snapshot file (by name), if any.
///
/// # Errors
/// When the directory cannot be listed.
pub fn newest_zxid(dir: &Path) -> io::Result<Option<i64>> {
    Ok(snapshot_files(&version_dir(dir))?.last().map(|(z, _, _)| *z))
}

/// A parse error: the bytes end too soon (a stream may need more), or
/// they are wrong.
#[derive(Debug)]
enum ParseError {
    Short,
    Bad(String),
}

impl From<String> for ParseError {
    fn from(e: String) -> Self {
        ParseError::Bad(e)
    }
}

/// A reader of jute values over a byte slice.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let s = self
            .b
            .get(self.pos..self.pos.checked_add(n).ok_or(ParseError::Short)?)
            .ok_or(ParseError::Short)?;
        self.pos += n;
        Ok(s)
    }

    fn i32(&mut self) -> Result<i32, ParseError> {
        let s = self.take(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn i64(&mut self) -> Result<i64, ParseError> {
        let s = self.take(8)?;
        Ok(i64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]))
    }

    /// A jute buffer (`None` for length -1).
    fn buffer(&mut self, what: &str) -> Result<Option<&'a [u8]>, ParseError> {
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(ParseError::Bad(format!("{what}: negative length {n}"))),
            n => self.take(n as usize).map(Some),
        }
    }

    /// A jute ustring (null is refused).
    fn string(&mut self, what: &str) -> Result<&'a str, ParseError> {
        let b = self.buffer(what)?.ok_or_else(|| ParseError::Bad(format!("{what}: null")))?;
        std::str::from_utf8(b).map_err(|_| ParseError::Bad(format!("{what}: not UTF-8")))
    }

    fn stat(&mut self) -> Result<StatPersisted, ParseError> {
        Ok(StatPersisted {
            czxid: self.i64()?,
            mzxid: self.i64()?,
            ctime: self.i64()?,
            mtime: self.i64()?,
            version: self.i32()?,
            cversion: self.i32()?,
            aversion: self.i32()?,
            ephemeral_owner: self.i64()?,
            pzxid: self.i64()?,
        })
    }

    fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.pos)
    }
}

/// Decodes what follows a snapshot's file header (Apache's
/// `SerializeUtils.serializeSnapshot`: sessions, then the tree: ACL cache,
/// nodes, the `"/"` that ends them) into `loader`; the sessions. A SNAP on
/// the quorum port carries exactly this.
fn parse_body_into<L: SnapshotLoader>(
    cur: &mut Cursor<'_>,
    loader: &mut L,
) -> Result<Vec<(i64, i32)>, ParseError> {
    let count = cur.i32()?;
    let count = usize::try_from(count).map_err(|_| format!("negative session count {count}"))?;
    if count.saturating_mul(12) > cur.remaining() {
        return Err(ParseError::Short);
    }
    let mut sessions = Vec::with_capacity(count);
    for _ in 0..count {
        sessions.push((cur.i64()?, cur.i32()?));
    }

    let count = cur.i32()?;
    let count = usize::try_from(count).map_err(|_| format!("negative ACL cache size {count}"))?;
    if count.saturating_mul(12) > cur.remaining() {
        return Err(ParseError::Short);
    }
    let mut acls: HashMap<i64, Arc<Vec<Acl>>> = HashMap::with_capacity(count);
    for _ in 0..count {
        let index = cur.i64()?;
        let n = cur.i32()?;
        let n = usize::try_from(n).map_err(|_| format!("null ACL list for index {index}"))?;
        if n.saturating_mul(12) > cur.remaining() {
            return Err(ParseError::Short);
        }
        let mut list = Vec::with_capacity(n);
        for _ in 0..n {
            let perms = cur.i32()?;
            let scheme = cur.string("ACL scheme")?.to_owned();
            let id = cur.string("ACL id")?.to_owned();
            list.push(Acl { perms, id: zk_proto::records::Id { scheme, id } });
        }
        acls.insert(index, Arc::new(list));
    }

    let open = Arc::new(Acl::open_unsafe());
    loop {
        let path = cur.string("node path")?;
        if path == "/" {
            break;
        }
        let data = cur.buffer("node data")?;
        let index = cur.i64()?;
        let stat = cur.stat()?;
        let acl = if index == OPEN_ACL_INDEX {
            &open
        } else {
            acls.get(&index).ok_or_else(|| {
                format!("node {path:?} uses ACL index {index}, which is not in the ACL cache")
            })?
        };
        let path = if path.is_empty() { "/" } else { path };
        loader.node(LoadedNode { path, data, acl, stat })?;
    }
    Ok(sessions)
}

/// Decodes a whole (uncompressed) snapshot file into `loader` and
/// verifies its checksum; the sessions.
fn parse_file_into<L: SnapshotLoader>(bytes: &[u8], loader: &mut L) -> Result<Vec<(i64, i32)>, String> {
    let short = |e: ParseError| match e {
        ParseError::Short => "the snapshot ends too soon (record truncated)".to_string(),
        ParseError::Bad(e) => e,
    };
    let mut cur = Cursor { b: bytes, pos: 0 };
    let magic = cur.i32().map_err(short)?;
    if magic != SNAP_MAGIC {
        return Err(format!("not a snapshot (magic {magic:#010x})"));
    }
    cur.take(12).map_err(short)?;
    let sessions = parse_body_into(&mut cur, loader).map_err(short)?;
    let sealed = cur.pos;
    let stored = cur.i64().map_err(short)?;
    let seal = cur.string("seal").map_err(short)?;
    if seal != "/" {
        return Err(format!("seal {seal:?} is not \"/\""));
    }
    // The checksum covers what precedes the seal (a digest and a second
    // seal may follow, as Apache 3.6+ writes them).
    let computed = i64::from(adler32(&bytes[..sealed]));
    if stored != computed {
        return Err(format!("checksum mismatch: stored {stored:#x}, computed {computed:#x}"));
    }
    if cur.remaining() > 0 {
        debug!(bytes = cur.remaining(), "ignoring snapshot trailers (digest)");
    }
    Ok(sessions)
}

/// Decodes a whole snapshot file and verifies its checksum.
#[cfg(test)]
fn parse_snapshot(zxid: i64, bytes: Bytes) -> Result<Snapshot, String> {
    let mut c = Collect::default();
    let sessions = parse_file_into(&bytes, &mut c)?;
    Ok(Snapshot { zxid, sessions, nodes: c.finish()? })
}

/// Encodes a state as a SNAP on the quorum port carries it: sessions and
/// the tree (parents before children), then Apache's `"BenWasHere"`
/// signature.
///
/// # Errors
/// As [`write_snapshot`]'s checks of the nodes.
pub fn encode_stream(
    sessions: &[(i64, i32)],
    nodes: impl Iterator<Item = SnapshotNode>,
) -> io::Result<Bytes> {
    let mut nodes: Vec<SnapshotNode> = nodes.collect();
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    encode_stream_with(sessions, |sink| {
        for node in &nodes {
            sink.push(node.record())?;
        }
        Ok(())
    })
}

/// [`encode_stream`] with the nodes given by `source` through a sink, as
/// [`write_snapshot_with`] takes them.
///
/// # Errors
/// As [`write_snapshot`]'s checks of the nodes.
pub fn encode_stream_with(
    sessions: &[(i64, i32)],
    source: impl FnOnce(&mut NodeSink<'_>) -> io::Result<()>,
) -> io::Result<Bytes> {
    let mut w = BytesMut::new().writer();
    let mut sink = NodeSink {
        out: &mut w,
        acls: AclCache::new(),
        seen: PathSet::new(),
        root: false,
        deferred: Vec::new(),
        buf: BytesMut::new(),
    };
    source(&mut sink)?;
    let acls = sink.finish()?;
    let body = w.into_inner();
    let mut out = BytesMut::with_capacity(body.len() + 64 + sessions.len() * 12);
    put_sessions_and_acls(&mut out, sessions, &acls.entries())?;
    out.extend_from_slice(&body);
    put_stream_end(&mut out)?;
    Ok(out.freeze())
}

/// The end of a SNAP's state: `"/"` and Apache's signature string.
fn put_stream_end(out: &mut BytesMut) -> io::Result<()> {
    put_str(out, "/")?;
    put_str(out, "BenWasHere")
}

/// [`encode_stream_with`] for nodes in pre-order with their ACL lists
/// known up front, as [`write_ordered_snapshot`] takes them: one pass,
/// no copy of the nodes.
///
/// # Errors
/// An `acl_id` outside `acls`.
pub fn encode_ordered_stream(
    sessions: &[(i64, i32)],
    acls: &[Arc<Vec<Acl>>],
    source: impl FnOnce(&mut OrderedSink<'_>) -> io::Result<()>,
) -> io::Result<Bytes> {
    let (index, entries) = known_acls(acls);
    let mut head = BytesMut::new();
    put_sessions_and_acls(&mut head, sessions, &entries)?;
    let mut w = head.writer();
    let mut sink = OrderedSink { out: &mut w, index, buf: BytesMut::with_capacity(2 * ORDERED_CHUNK) };
    source(&mut sink)?;
    sink.finish()?;
    let mut out = w.into_inner();
    put_stream_end(&mut out)?;
    Ok(out.freeze())
}

/// Decodes a SNAP's state from the front of `buf` (what
/// [`encode_stream`] writes): `Ok(None)` when more bytes are needed, else
/// the snapshot at `zxid` and how many bytes it took.
///
/// # Errors
/// A malformed state or signature.
pub fn parse_stream(zxid: i64, bytes: &Bytes) -> Result<Option<(Snapshot, usize)>, String> {
    let mut cur = Cursor { b: bytes, pos: 0 };
    let mut nodes = Collect::default();
    let sessions = match parse_body_into(&mut cur, &mut nodes) {
        Ok(s) => s,
        Err(ParseError::Short) => return Ok(None),
        Err(ParseError::Bad(e)) => return Err(e),
    };
    let sig = match cur.string("signature") {
        Ok(s) => s,
        Err(ParseError::Short) => return Ok(None),
        Err(ParseError::Bad(e)) => return Err(e),
    };
    if sig != "BenWasHere" {
        return Err(format!("a SNAP signed {sig:?}, not BenWasHere"));
    }
    let used = cur.pos;
    Ok(Some((Snapshot { zxid, sessions, nodes: nodes.finish()? }, used)))
}

/// Every node after its parent, no duplicates, a root.
fn check_tree(nodes: &[SnapshotNode]) -> Result<(), String> {
    let mut seen: HashSet<&str> = HashSet::with_capacity(nodes.len());
    for node in nodes {
        if node.path != "/" {
            let parent = parent_of(&node.path).ok_or_else(|| format!("invalid node path {:?}", node.path))?;
            if !seen.contains(parent) {
                return Err(format!("node {} comes before its parent", node.path));
            }
        }
        if !seen.insert(&node.path) {
            return Err(format!("node {} appears twice", node.path));
        }
    }
    if seen.is_empty() {
        return Err("no root node".into());
    }
    Ok(())
}

/// Keeps the newest `retain` complete snapshots of `dir/version-2` (at
/// least [`MIN_RETAIN`], as Apache enforces) and deletes the older
/// snapshot files and the log files that only hold txns older than the
/// oldest kept snapshot. With X the oldest kept snapshot's zxid, the log
/// file holding X+1 (the last one starting at or before X+1) and every later
/// log are kept, so that each kept snapshot can be brought up to date;
/// the logs before it are deleted (Apache's `PurgeTxnLog` rule). Snapshot
/// and log files are matched the way Apache matches them
/// (`snapshot.<hex>[.suffix]`, `log.<hex>[.suffix]`); leftover temp files
/// of older snapshots go too.
///
/// # Errors
/// When a directory cannot be listed. A file that cannot be deleted is
/// reported with a warning and skipped.
pub fn purge(dir: &Path, retain: usize) -> io::Result<PurgeReport> {
    purge_dirs(dir, dir, retain)
}

/// [`purge`] with snapshots in `snap_dir` and logs in `log_dir` (Apache's
/// `dataDir` and `dataLogDir`), each holding a `version-2` directory.
///
/// # Errors
/// As [`purge`].
pub fn purge_dirs(snap_dir: &Path, log_dir: &Path, retain: usize) -> io::Result<PurgeReport> {
    let retain = if retain < MIN_RETAIN {
        warn!(retain, min = MIN_RETAIN, "snapshot retain count raised to the minimum");
        MIN_RETAIN
    } else {
        retain
    };
    let svdir = version_dir(snap_dir);
    let lvdir = version_dir(log_dir);
    let mut kept: Vec<(i64, PathBuf)> = snapshot_files(&svdir)?
        .into_iter()
        .rev()
        .filter(|(_, p, c)| looks_complete(p, *c))
        .map(|(z, p, _)| (z, p))
        .collect();
    kept.truncate(retain);
    let mut report =
        PurgeReport { kept_snapshots: kept.iter().map(|(_, p)| p.clone()).collect(), ..Default::default() };
    let Some(&(oldest, _)) = kept.last() else {
        return Ok(report);
    };

    let remove = |path: PathBuf, into: &mut Vec<PathBuf>| match fs::remove_file(&path) {
        Ok(()) => {
            info!(file = %path.display(), "purged");
            into.push(path);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => warn!(file = %path.display(), error = %e, "could not purge"),
    };

    for (name, path) in list_dir(&svdir)? {
        let zxid = parse_zxid_name_lenient(&name, SNAPSHOT_PREFIX).or_else(|| {
            name.strip_prefix(TMP_PREFIX).and_then(|rest| parse_zxid_name_lenient(rest, SNAPSHOT_PREFIX))
        });
        if zxid.is_some_and(|z| z < oldest) {
            remove(path, &mut report.deleted_snapshots);
        }
    }

    let logs: Vec<(i64, PathBuf)> = list_dir(&lvdir)?
        .into_iter()
        .filter_map(|(name, path)| parse_zxid_name_lenient(&name, LOG_PREFIX).map(|z| (z, path)))
        .collect();
    let first_needed = oldest.saturating_add(1);
    if let Some(keep_from) = logs.iter().map(|(z, _)| *z).filter(|&z| z <= first_needed).max() {
        for (zxid, path) in logs {
            if zxid < keep_from {
                remove(path, &mut report.deleted_logs);
            }
        }
    }
    report.deleted_snapshots.sort();
    report.deleted_logs.sort();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use zk_proto::records::Id;
    use zk_proto::types::perms;

    use super::*;

    const GOLDEN_SNAP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../zk-proto/tests/golden/snapshot.bin");

    fn stat(n: i64) -> StatPersisted {
        StatPersisted {
            czxid: n,
            mzxid: n + 1,
            ctime: 1_700_000_000_000 + n,
            mtime: 1_700_000_000_500 + n,
            version: n as i32,
            cversion: 2 * n as i32,
            aversion: 1,
            ephemeral_owner: if n % 5 == 0 { 0x77 } else { 0 },
            pzxid: n + 2,
        }
    }

    fn node(path: &str, data: Option<&[u8]>, acl: Vec<Acl>, n: i64) -> SnapshotNode {
        SnapshotNode {
            path: path.into(),
            data: data.map(Bytes::copy_from_slice),
            acl: Arc::new(acl),
            stat: stat(n),
        }
    }

    fn digest_acl(user: &str) -> Vec<Acl> {
        vec![Acl::new(perms::ALL, Id::new("digest", format!("{user}:hash")))]
    }

    /// A tree with the reserved nodes, null and empty data, several ACLs.
    fn sample_tree() -> Vec<SnapshotNode> {
        let mixed =
            vec![Acl::new(perms::READ, Id::anyone()), Acl::new(perms::ALL, Id::new("ip", "10.0.0.0/8"))];
        vec![
            node("/", Some(b""), Acl::open_unsafe(), 0),
            node("/zookeeper", Some(b""), Acl::open_unsafe(), 0),
            node("/zookeeper/quota", Some(b""), Acl::open_unsafe(), 0),
            node("/zookeeper/config", Some(b""), Acl::read_unsafe(), 0),
            node("/a", Some(b"hello"), Acl::open_unsafe(), 3),
            node("/a/null", None, digest_acl("u1"), 4),
            node("/a/empty", Some(b""), digest_acl("u1"), 5),
            node("/a/empty/x", Some(&[0, 1, 2, 255]), mixed.clone(), 6),
            node("/a-b", Some(b"dash"), digest_acl("u2"), 7),
            node("/a/z", Some(b"z"), mixed, 8),
            node("/a/creator", Some(b"c"), Acl::creator_all(), 9),
        ]
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            list_dir(&version_dir(dir)).unwrap().into_iter().map(|(n, _)| n).collect();
        names.sort();
        names
    }

    #[test]
    fn loads_the_golden_apache_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(version_dir(dir.path())).unwrap();
        fs::copy(GOLDEN_SNAP, version_dir(dir.path()).join("snapshot.13")).unwrap();
        let snap = load_latest(dir.path()).unwrap().expect("a snapshot");
        assert_eq!(snap.zxid, 0x13);
        // The only session closed before the snapshot.
        assert_eq!(snap.sessions, vec![]);
        let get = |p: &str| snap.nodes.iter().find(|n| n.path == p).unwrap_or_else(|| panic!("{p} missing"));
        // The root comes first, written as "", with empty (not null) data
        // and ACL index -1.
        assert_eq!(snap.nodes[0].path, "/");
        assert_eq!(snap.nodes[0].data, Some(Bytes::new()));
        assert_eq!(snap.nodes[0].acl.as_slice(), Acl::open_unsafe().as_slice());
        for p in
            ["/golden", "/golden/c2", "/golden/nulldata", "/golden/ttl", "/golden/rec", "/golden-container"]
        {
            get(p);
        }
        assert_eq!(get("/zookeeper").acl.as_slice(), Acl::open_unsafe().as_slice());
        assert_eq!(get("/zookeeper/quota").acl.as_slice(), Acl::open_unsafe().as_slice());
        assert_eq!(get("/zookeeper/config").acl.as_slice(), Acl::read_unsafe().as_slice());
        assert_eq!(get("/golden").acl.as_slice(), Acl::open_unsafe().as_slice());
        assert_eq!(get("/golden").data.as_deref(), Some(&b"world"[..]));
        assert_eq!(get("/golden/nulldata").data, None);
        let c2 = get("/golden/c2");
        assert_eq!(c2.acl.len(), 1);
        assert_eq!((c2.acl[0].perms, c2.acl[0].id.scheme.as_str()), (perms::ALL, "digest"));
        assert!(c2.acl[0].id.id.starts_with("user:"));
        assert_eq!(snap.nodes.len(), 10);
    }

    #[test]
    fn golden_trailer_checksums_are_cumulative() {
        // Apache's second seal (after the digest) covers the whole file
        // before it, the first seal included.
        let bytes = fs::read(GOLDEN_SNAP).unwrap();
        let n = bytes.len();
        assert_eq!(&bytes[n - 5..], &SLASH);
        let stored = i64::from_be_bytes(bytes[n - 13..n - 5].try_into().unwrap());
        assert_eq!(stored, i64::from(adler32(&bytes[..n - 13])));
    }

    #[test]
    fn golden_snapshot_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(version_dir(dir.path())).unwrap();
        fs::copy(GOLDEN_SNAP, version_dir(dir.path()).join("snapshot.13")).unwrap();
        let snap = load_latest(dir.path()).unwrap().unwrap();
        let out = tempfile::tempdir().unwrap();
        write_snapshot(out.path(), 0x13, &snap.sessions, snap.nodes.clone().into_iter()).unwrap();
        assert_eq!(load_latest(out.path()).unwrap(), Some(snap));
    }

    #[test]
    fn a_snap_stream_round_trips_and_asks_for_more_when_cut() {
        let nodes = sample_tree();
        let sessions = vec![(7, 30_000), (9, 4_000)];
        let bytes = encode_stream(&sessions, nodes.clone().into_iter()).unwrap();
        let (snap, used) = parse_stream(0x42, &bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!((snap.zxid, snap.sessions.clone()), (0x42, sessions));
        let mut want: Vec<_> = nodes.iter().map(|n| n.path.clone()).collect();
        want.sort();
        assert_eq!(snap.nodes.iter().map(|n| n.path.clone()).collect::<Vec<_>>(), want);
        // Every cut prefix asks for more; nothing after the signature is taken.
        for cut in 0..bytes.len() {
            assert!(parse_stream(1, &bytes.slice(..cut)).unwrap().is_none(), "cut at {cut}");
        }
        let mut more = bytes.to_vec();
        more.extend_from_slice(b"next packet");
        assert_eq!(parse_stream(1, &Bytes::from(more)).unwrap().unwrap().1, bytes.len());
        // A wrong signature is an error, not a wait.
        let mut bad = bytes.to_vec();
        let at = bad.len() - 3;
        bad[at] = b'X';
        assert!(parse_stream(1, &Bytes::from(bad)).is_err());
    }

    #[test]
    fn write_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = vec![(0x0100_0000_0000_0001, 30_000), (0x0100_0000_0000_0002, 4_000), (-5, 1)];
        let tree = sample_tree();
        let path = write_snapshot(dir.path(), 0x1_0000_002a, &sessions, tree.clone().into_iter()).unwrap();
        assert_eq!(path, version_dir(dir.path()).join("snapshot.10000002a"));
        // No temp files left.
        assert_eq!(file_names(dir.path()), vec!["snapshot.10000002a"]);
        let snap = load_latest(dir.path()).unwrap().unwrap();
        assert_eq!(snap, Snapshot { zxid: 0x1_0000_002a, sessions: sessions.clone(), nodes: tree.clone() });
        assert_eq!(snap.nodes[5].data, None);
        assert_eq!(snap.nodes[6].data, Some(Bytes::new()));

        // The raw layout: root as "", ACL cache deduplicated (read, u1,
        // mixed, u2, creator; open ACLs as -1).
        let mut raw = Bytes::from(fs::read(&path).unwrap());
        assert_eq!(
            FileHeader::decode(&mut raw).unwrap(),
            FileHeader { magic: SNAP_MAGIC, version: FILE_VERSION, dbid: -1 }
        );
        assert_eq!(i32::decode(&mut raw).unwrap(), 3);
        bytes::Buf::advance(&mut raw, 3 * 12);
        assert_eq!(i32::decode(&mut raw).unwrap(), 5);
        for i in 1..=5 {
            assert_eq!(i64::decode(&mut raw).unwrap(), i);
            Vec::<Acl>::decode(&mut raw).unwrap();
        }
        assert_eq!(String::decode(&mut raw).unwrap(), "");
        assert_eq!(Option::<Bytes>::decode(&mut raw).unwrap(), Some(Bytes::new()));
        assert_eq!(i64::decode(&mut raw).unwrap(), OPEN_ACL_INDEX);
    }

    /// `nodes` loaded into a tree (through a snapshot file, as a server
    /// starts).
    fn tree_of(nodes: &[SnapshotNode]) -> crate::tree::DataTree {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), 1, &[], nodes.iter().cloned()).unwrap();
        let l = load_latest_with(dir.path(), crate::tree::DataTree::loader).unwrap().unwrap();
        l.output.finish(l.zxid).unwrap()
    }

    fn by_path(mut nodes: Vec<SnapshotNode>) -> Vec<SnapshotNode> {
        nodes.sort_by(|a, b| a.path.cmp(&b.path));
        nodes
    }

    #[test]
    fn a_tree_walk_is_written_as_the_checked_writer_writes_it() {
        let want = by_path(sample_tree());
        let tree = tree_of(&want);
        let view = tree.snapshot_view();
        let sessions = vec![(0x0100_0000_0000_0001, 30_000), (-5, 1)];
        for c in [Compression::None, Compression::Gzip, Compression::Snappy] {
            let dir = tempfile::tempdir().unwrap();
            let path = write_ordered_snapshot(dir.path(), 0x2a, &sessions, c, view.acl_table(), |sink| {
                view.walk(|path, n| sink.push(path, n.data(), n.acl_id(), &n.stat()))
            })
            .unwrap();
            assert_eq!(path, version_dir(dir.path()).join(format!("snapshot.2a{}", c.suffix())));
            // No temp or side files left.
            assert_eq!(file_names(dir.path()).len(), 1);
            let snap = load_latest(dir.path()).unwrap().unwrap();
            assert_eq!((snap.zxid, &snap.sessions), (0x2a, &sessions));
            assert_eq!(by_path(snap.nodes), want, "{c:?}");
        }
        // The SNAP stream to a learner: the same nodes.
        let bytes = encode_ordered_stream(&sessions, view.acl_table(), |sink| {
            view.walk(|path, n| sink.push(path, n.data(), n.acl_id(), &n.stat()))
        })
        .unwrap();
        let (snap, used) = parse_stream(0x2a, &bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(snap.sessions, sessions);
        assert_eq!(by_path(snap.nodes), want);
    }

    #[test]
    fn an_ordered_sink_refuses_an_acl_outside_its_table() {
        let dir = tempfile::tempdir().unwrap();
        let table = vec![Arc::new(Acl::open_unsafe()), Arc::new(Acl::read_unsafe())];
        let stat = sample_tree()[0].stat;
        let r = write_ordered_snapshot(dir.path(), 3, &[], Compression::None, &table, |sink| {
            sink.push("/", Some(b""), 0, &stat)?;
            sink.push("/a", None, 1, &stat)?;
            sink.push("/b", None, 2, &stat)
        });
        assert!(r.unwrap_err().to_string().contains("ACL id 2"));
        // Nothing is left behind, and no snapshot was made.
        assert!(file_names(dir.path()).is_empty());
        // Within the table: open lists are -1, the others get entries.
        write_ordered_snapshot(dir.path(), 3, &[], Compression::None, &table, |sink| {
            sink.push("/", Some(b""), 0, &stat)?;
            sink.push("/a", None, 1, &stat)
        })
        .unwrap();
        let snap = load_latest(dir.path()).unwrap().unwrap();
        assert_eq!(snap.nodes[0].acl.as_slice(), Acl::open_unsafe().as_slice());
        assert_eq!(snap.nodes[1].acl.as_slice(), Acl::read_unsafe().as_slice());
    }

    #[test]
    fn a_relative_data_dir_works() {
        // dataDir may be relative in zoo.cfg: the temp and side files must
        // land in the version dir, not under a path joined onto itself.
        let dir = tempfile::Builder::new().tempdir_in(".").unwrap();
        let rel = Path::new(".").join(dir.path().file_name().unwrap());
        assert!(rel.is_relative());
        write_snapshot(&rel, 9, &[], sample_tree().into_iter()).unwrap();
        assert_eq!(file_names(&rel), vec!["snapshot.9"]);
        assert_eq!(load_latest(&rel).unwrap().unwrap().nodes.len(), sample_tree().len());
    }

    #[test]
    fn rewriting_the_same_zxid_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), 7, &[], sample_tree().into_iter()).unwrap();
        let small = vec![node("", Some(b"r"), Acl::open_unsafe(), 1)];
        write_snapshot(dir.path(), 7, &[(1, 2)], small.into_iter()).unwrap();
        let snap = load_latest(dir.path()).unwrap().unwrap();
        assert_eq!(snap.sessions, vec![(1, 2)]);
        assert_eq!(snap.nodes, vec![node("/", Some(b"r"), Acl::open_unsafe(), 1)]);
    }

    #[test]
    fn bad_node_orders_are_rejected() {
        let root = || node("/", Some(b""), Acl::open_unsafe(), 0);
        let a = || node("/a", None, Acl::open_unsafe(), 1);
        let cases = vec![
            vec![],
            vec![a()],
            vec![root(), node("/a/b", None, Acl::open_unsafe(), 1)],
            vec![
                root(),
                node("/a/b/c", None, Acl::open_unsafe(), 1),
                node("/a/b", None, Acl::open_unsafe(), 1),
            ],
            vec![root(), a(), root()],
            vec![root(), a(), a()],
            vec![
                node("/a/b", None, Acl::open_unsafe(), 1),
                root(),
                a(),
                node("/a/b", None, Acl::open_unsafe(), 1),
            ],
            vec![root(), node("a", None, Acl::open_unsafe(), 1)],
            vec![root(), node("/a/", None, Acl::open_unsafe(), 1)],
        ];
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), 1, &[], vec![root(), a()].into_iter()).unwrap();
        for nodes in cases {
            let err = write_snapshot(dir.path(), 1, &[], nodes.clone().into_iter()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{nodes:?}");
        }
        // The earlier snapshot of that name survives, and no temp file is left.
        assert_eq!(file_names(dir.path()), vec!["snapshot.1"]);
        assert_eq!(load_latest(dir.path()).unwrap().unwrap().nodes.len(), 2);
    }

    #[test]
    fn any_node_order_is_written_parents_first() {
        let tree = sample_tree();
        // Reversed (children before parents, root last) and shuffled.
        let mut orders = vec![tree.iter().rev().cloned().collect::<Vec<_>>()];
        let mut shuffled = tree.clone();
        for i in 0..shuffled.len() {
            let j = (i * 7 + 3) % shuffled.len();
            shuffled.swap(i, j);
        }
        orders.push(shuffled);
        for nodes in orders {
            let dir = tempfile::tempdir().unwrap();
            write_snapshot(dir.path(), 2, &[], nodes.into_iter()).unwrap();
            let snap = load_latest(dir.path()).unwrap().unwrap();
            assert_eq!(snap.nodes[0].path, "/");
            let mut got = snap.nodes.clone();
            got.sort_by(|a, b| a.path.cmp(&b.path));
            let mut want = tree.clone();
            want.sort_by(|a, b| a.path.cmp(&b.path));
            assert_eq!(got, want);
        }
    }

    #[test]
    fn falls_back_to_an_older_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_latest(dir.path()).unwrap(), None);
        let tree = sample_tree();
        write_snapshot(dir.path(), 5, &[(1, 1)], tree.clone().into_iter()).unwrap();
        let newest = write_snapshot(dir.path(), 9, &[(2, 2)], tree.clone().into_iter()).unwrap();
        let good = fs::read(&newest).unwrap();

        // A flipped byte: the checksum catches it.
        let mut bad = good.clone();
        bad[good.len() / 2] ^= 0x01;
        fs::write(&newest, &bad).unwrap();
        assert_eq!(load_latest(dir.path()).unwrap().unwrap().zxid, 5);

        // Truncated (an interrupted write): skipped.
        for cut in [0, 3, 20, good.len() / 2, good.len() - 1] {
            fs::write(&newest, &good[..cut]).unwrap();
            assert_eq!(load_latest(dir.path()).unwrap().unwrap().zxid, 5, "cut at {cut}");
        }

        // Cut short but still ending in "/": structurally invalid.
        let mut short = good[..good.len() / 2].to_vec();
        short.extend_from_slice(&SLASH);
        fs::write(&newest, &short).unwrap();
        assert_eq!(load_latest(dir.path()).unwrap().unwrap().zxid, 5);

        // Trailers after the seal are ignored.
        let mut trailed = good.clone();
        trailed.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 2]);
        trailed.extend_from_slice(&SLASH);
        fs::write(&newest, &trailed).unwrap();
        assert_eq!(load_latest(dir.path()).unwrap().unwrap().zxid, 9);

        // Every complete-looking snapshot invalid: an error, not "empty".
        fs::write(&newest, &bad).unwrap();
        let older = version_dir(dir.path()).join("snapshot.5");
        let mut bad_older = fs::read(&older).unwrap();
        bad_older[40] ^= 0x80;
        fs::write(&older, &bad_older).unwrap();
        assert_eq!(load_latest(dir.path()).unwrap_err().kind(), io::ErrorKind::InvalidData);

        // Only incomplete files: no snapshot.
        fs::write(&newest, &good[..100]).unwrap();
        fs::write(&older, b"").unwrap();
        assert_eq!(load_latest(dir.path()).unwrap(), None);
    }

    #[test]
    fn checksum_is_verified_even_when_structure_is_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_snapshot(dir.path(), 3, &[(1, 1000)], sample_tree().into_iter()).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        // The session timeout: still decodes, wrong checksum.
        bytes[16 + 4 + 8 + 3] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(load_latest(dir.path()).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn missing_acl_index_is_invalid() {
        // A node whose ACL index is not in the cache cannot be given an ACL.
        let mut buf = BytesMut::new();
        FileHeader { magic: SNAP_MAGIC, version: FILE_VERSION, dbid: -1 }.encode(&mut buf);
        buf.put_i32(0);
        buf.put_i32(0);
        put_str(&mut buf, "").unwrap();
        Some(Bytes::new()).encode(&mut buf);
        buf.put_i64(4);
        StatPersisted::default().encode(&mut buf);
        buf.put_slice(&SLASH);
        let sum = i64::from(adler32(&buf));
        buf.put_i64(sum);
        buf.put_slice(&SLASH);
        let err = parse_snapshot(1, buf.freeze()).unwrap_err();
        assert!(err.contains("ACL index 4"), "{err}");
    }

    fn touch(dir: &Path, name: &str) {
        fs::write(version_dir(dir).join(name), b"x").unwrap();
    }

    #[test]
    fn purge_keeps_the_right_files() {
        let dir = tempfile::tempdir().unwrap();
        let tree = || vec![node("/", Some(b""), Acl::open_unsafe(), 0)].into_iter();
        for z in [0x10, 0x20, 0x30, 0x40, 0x50] {
            write_snapshot(dir.path(), z, &[], tree()).unwrap();
        }
        for name in ["log.1", "log.15", "log.25", "log.45", "snapshot.8.gz", "tmp.snapshot.9", "unrelated"] {
            touch(dir.path(), name);
        }
        // An incomplete newest snapshot does not count.
        touch(dir.path(), "snapshot.60");

        let report = purge(dir.path(), 1).unwrap();
        let v = version_dir(dir.path());
        assert_eq!(
            report.kept_snapshots,
            vec![v.join("snapshot.50"), v.join("snapshot.40"), v.join("snapshot.30")]
        );
        assert_eq!(
            report.deleted_snapshots,
            vec![
                v.join("snapshot.10"),
                v.join("snapshot.20"),
                v.join("snapshot.8.gz"),
                v.join("tmp.snapshot.9")
            ]
        );
        // log.25 holds 0x31, the first txn after the oldest kept snapshot.
        assert_eq!(report.deleted_logs, vec![v.join("log.1"), v.join("log.15")]);
        assert_eq!(
            file_names(dir.path()),
            vec!["log.25", "log.45", "snapshot.30", "snapshot.40", "snapshot.50", "snapshot.60", "unrelated"]
        );
        // Nothing more to do.
        let again = purge(dir.path(), 3).unwrap();
        assert!(again.deleted_snapshots.is_empty() && again.deleted_logs.is_empty());

        // A log starting exactly at X+1 makes the one before it unneeded.
        touch(dir.path(), "log.31");
        let report = purge(dir.path(), 3).unwrap();
        assert_eq!(report.deleted_logs, vec![v.join("log.25")]);

        // Keeping more snapshots than exist deletes nothing.
        let report = purge(dir.path(), 10).unwrap();
        assert_eq!(report.kept_snapshots.len(), 3);
        assert!(report.deleted_snapshots.is_empty() && report.deleted_logs.is_empty());
    }

    #[test]
    fn compressed_snapshots_load_and_count_for_purge() {
        let dir = tempfile::tempdir().unwrap();
        let tree = sample_tree();
        let write = |z: i64, c: Compression| {
            write_snapshot_with(dir.path(), z, &[(7, 1)], c, |sink| {
                tree.iter().try_for_each(|n| sink.push(n.record()))
            })
            .unwrap()
        };
        write(0x10, Compression::None);
        let gz = write(0x20, Compression::Gzip);
        assert!(gz.ends_with("snapshot.20.gz"), "{}", gz.display());
        let loaded = load_latest(dir.path()).unwrap().unwrap();
        assert_eq!(
            (loaded.zxid, loaded.nodes.clone(), loaded.sessions.clone()),
            (0x20, tree.clone(), vec![(7, 1)])
        );
        let sn = write(0x30, Compression::Snappy);
        assert!(sn.ends_with("snapshot.30.snappy"), "{}", sn.display());
        assert_eq!(load_latest(dir.path()).unwrap().unwrap().zxid, 0x30);
        // The plain stream inside is the plain file, checksum included.
        let plain = fs::read(version_dir(dir.path()).join("snapshot.10")).unwrap();
        let inner = Compression::Snappy.decode(fs::read(&sn).unwrap()).unwrap();
        assert!(inner == plain, "the same bytes, compressed");
        // A damaged compressed snapshot: the next older one is used.
        let mut bytes = fs::read(&sn).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        bytes.truncate(bytes.len() - 3);
        fs::write(&sn, bytes).unwrap();
        assert_eq!(load_latest(dir.path()).unwrap().unwrap().zxid, 0x20);
        // Compressed snapshots count as kept ones for purging (checked by
        // their magic only, as Apache's isValidSnapshot does).
        write(0x40, Compression::Snappy);
        write(0x50, Compression::Gzip);
        let report = purge(dir.path(), 3).unwrap();
        let v = version_dir(dir.path());
        assert_eq!(
            report.kept_snapshots,
            vec![v.join("snapshot.50.gz"), v.join("snapshot.40.snappy"), v.join("snapshot.30.snappy")]
        );
        assert_eq!(report.deleted_snapshots, vec![v.join("snapshot.10"), v.join("snapshot.20.gz")]);
    }

    #[test]
    fn purge_without_snapshots_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(purge(dir.path(), 3).unwrap(), PurgeReport::default());
        fs::create_dir_all(version_dir(dir.path())).unwrap();
        touch(dir.path(), "log.1");
        assert_eq!(purge(dir.path(), 3).unwrap(), PurgeReport::default());
        assert_eq!(file_names(dir.path()), vec!["log.1"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), header in any::<bool>(), seal in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(version_dir(dir.path())).unwrap();
            let mut content = Vec::new();
            if header {
                FileHeader { magic: SNAP_MAGIC, version: FILE_VERSION, dbid: -1 }.encode(&mut content);
            }
            content.extend_from_slice(&bytes);
            if seal {
                content.extend_from_slice(&SLASH);
            }
            fs::write(version_dir(dir.path()).join("snapshot.1"), &content).unwrap();
            let _ = load_latest(dir.path());
            let _ = parse_snapshot(1, Bytes::from(content));
        }

        #[test]
        fn mutated_snapshots_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
            let dir = tempfile::tempdir().unwrap();
            let path = write_snapshot(dir.path(), 1, &[(1, 2)], sample_tree().into_iter()).unwrap();
            let mut bytes = fs::read(&path).unwrap();
            for (i, x) in flips {
                let i = i.index(bytes.len());
                bytes[i] ^= x;
            }
            let cut = cut.index(bytes.len() + 1);
            // Without the checksum in the way, to reach the decoder.
            let _ = parse_snapshot(1, Bytes::copy_from_slice(&bytes[..cut]));
            fs::write(&path, &bytes).unwrap();
            if let Ok(Some(snap)) = load_latest(dir.path()) {
                prop_assert_eq!(snap.nodes, sample_tree());
            }
        }
    }
}
