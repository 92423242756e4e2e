//! The compact node store under the data tree.
//!
//! A znode costs what it holds plus a few dozen bytes:
//!
//! - a 32-byte [`Slot`] in a table of fixed-size chunks, addressed by a
//!   `u32` id: where its record is, its children index, and the fields
//!   that change when its children change (`pzxid`, `cversion`), plus
//!   the id of its interned ACL list;
//! - a record in a page of an append-only byte arena: its name (not its
//!   path: paths are walked from the root through the children indexes),
//!   the rest of its Stat packed as varints (zxids and times that rarely
//!   differ are stored as differences), and its data;
//! - an entry of 4 bytes in its parent's children index, a hash table of
//!   child ids keyed by the names in the records.
//!
//! Records never change in place: a new version is appended and the old
//! one counted as garbage in its page; a page that is half garbage has its
//! live records moved to the tail and is dropped. A snapshot view shares
//! the chunks and pages (`Arc`); a chunk or the tail page that the tree
//! changes while a view is alive is copied first, so a view costs nothing
//! at rest and holds only what changed while it lived.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

/// The root's id.
pub(crate) const ROOT: u32 = 0;
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;
/// Arena page size; records larger than a quarter of it get a page each.
const PAGE: usize = 1 << 20;
const BIG: usize = PAGE / 4;
/// A slot not in use.
const FREE: u64 = u64::MAX;
/// Record header: total length (u32 LE) and slot id (u32 LE).
const HEAD: usize = 8;

/// Children tables of at least this many entries grow and shrink
/// incrementally (smaller ones at once: cheap).
const MOVE_FROM: usize = 1024;
/// Buckets of the old table moved per change while a table moves.
const MOVE_STEP: usize = 8;

/// A node's children: their ids in a hash table keyed by the names in
/// their records.
///
/// A big table does not rehash all at once when it must grow or shrink
/// (that would stop the server for the whole rehash: 80 ms at 450 k
/// children, 300 ms at 1.8 M, every name read back from its record).
/// Instead a table of the new size is started and every later change
/// moves [`MOVE_STEP`] buckets of the old one into it; lookups look in
/// both meanwhile. The new table is made large enough that it never
/// itself grows before the move is over.
#[derive(Debug, Clone, Default)]
pub(crate) struct Kids {
    cur: HashTable<u32>,
    /// The table being moved out of, and its next bucket to move.
    /// (Boxed: a word in every parent's table while none moves.)
    old: Option<Box<(HashTable<u32>, usize)>>,
}

impl Kids {
    pub(crate) fn len(&self) -> usize {
        self.cur.len() + self.old.as_ref().map_or(0, |m| m.0.len())
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn iter(&self) -> impl Iterator<Item = &u32> {
        self.cur.iter().chain(self.old.iter().flat_map(|m| m.0.iter()))
    }

    fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if let Some(&id) = self.cur.find(h, |&k| eq(k)) {
            return Some(id);
        }
        self.old.as_ref().and_then(|m| m.0.find(h, |&k| eq(k)).copied())
    }

    /// Moves the next buckets of a table being moved out of.
    fn step(&mut self, rehash: &impl Fn(u32) -> u64) {
        let Some(m) = &mut self.old else { return };
        let (old, next) = &mut **m;
        let end = (*next + MOVE_STEP).min(old.num_buckets());
        while *next < end {
            if let Ok(e) = old.get_bucket_entry(*next) {
                let (id, _) = e.remove();
                self.cur.insert_unique(rehash(id), id, |&k| rehash(k));
            }
            *next += 1;
        }
        if *next >= old.num_buckets() || old.is_empty() {
            self.old = None;
        }
    }

    /// Starts moving every entry into a table for `capacity` entries.
    fn start_move(&mut self, capacity: usize, rehash: &impl Fn(u32) -> u64) {
        self.finish_move(rehash);
        let old = std::mem::replace(&mut self.cur, HashTable::with_capacity(capacity));
        self.old = Some(Box::new((old, 0)));
    }

    /// Ends a move at once (bulk loads).
    fn finish_move(&mut self, rehash: &impl Fn(u32) -> u64) {
        while self.old.is_some() {
            self.step(rehash);
        }
    }

    /// Adds `id` (not there yet) under hash `h`.
    fn insert(&mut self, h: u64, id: u32, rehash: &impl Fn(u32) -> u64) {
        self.step(rehash);
        let full = self.cur.len() == self.cur.capacity();
        if full && self.old.is_none() && self.cur.len() >= MOVE_FROM {
            // One more than fits: twice the buckets, as hashbrown grows;
            // the move (MOVE_STEP buckets per change) ends long before
            // the new table fills.
            self.start_move(self.cur.capacity() + 1, rehash);
        }
        self.cur.insert_unique(h, id, |&k| rehash(k));
    }

    /// Removes `id` (hash `h`); shrinks a table three quarters empty.
    fn remove(&mut self, h: u64, id: u32, rehash: &impl Fn(u32) -> u64) {
        if let Ok(e) = self.cur.find_entry(h, |&k| k == id) {
            e.remove();
        } else if let Some(m) = &mut self.old {
            if let Ok(e) = m.0.find_entry(h, |&k| k == id) {
                e.remove();
            }
        }
        self.step(rehash);
        let (len, cap) = (self.len(), self.cur.capacity());
        if self.old.is_none() && cap > 64 && len * 4 < cap {
            // Give memory back when a big directory empties out.
            if len >= MOVE_FROM {
                self.start_move(len * 2, rehash);
            } else {
                self.cur.shrink_to(len * 2, |&k| rehash(k));
            }
        }
    }

    /// Room for `more` entries without growing (bulk loads).
    fn reserve(&mut self, more: usize, rehash: &impl Fn(u32) -> u64) {
        self.finish_move(rehash);
        self.cur.reserve(more, |&k| rehash(k));
    }
}

/// One node's fixed-size part.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// `(page << 32) | offset` of the record; [`FREE`] when unused.
    rec: u64,
    /// Children ids, keyed by name (`None` while there are none).
    kids: Option<Box<Kids>>,
    pub(crate) pzxid: i64,
    /// Apache's persisted cversion: the count of child creates.
    pub(crate) cversion: i32,
    /// Interned ACL list id.
    pub(crate) acl: u32,
}

impl Slot {
    fn free() -> Slot {
        Slot { rec: FREE, kids: None, pzxid: 0, cversion: 0, acl: 0 }
    }

    /// Number of children.
    pub(crate) fn num_children(&self) -> usize {
        self.kids.as_ref().map_or(0, |k| k.len())
    }
}

/// The Stat fields kept in a node's record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fixed {
    pub(crate) czxid: i64,
    pub(crate) mzxid: i64,
    pub(crate) ctime: i64,
    pub(crate) mtime: i64,
    pub(crate) version: i32,
    pub(crate) aversion: i32,
    pub(crate) owner: i64,
}

/// A decoded record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub(crate) name: &'a str,
    pub(crate) fixed: Fixed,
    pub(crate) data: Option<&'a [u8]>,
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0u32;
    while let Some(&byte) = b.get(*pos) {
        *pos += 1;
        if shift < 64 {
            v |= u64::from(byte & 0x7f) << shift;
        }
        if byte < 0x80 {
            break;
        }
        shift += 7;
    }
    v
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// The name of a record, the first thing after its header.
fn name_of(rec: &[u8]) -> &[u8] {
    let mut pos = HEAD;
    let len = get_varint(rec, &mut pos) as usize;
    rec.get(pos..pos + len).unwrap_or_default()
}

/// Decodes a record (written by [`encode`]; a record cut short decodes as
/// empty fields rather than panicking).
pub(crate) fn decode(rec: &[u8]) -> Record<'_> {
    let mut pos = HEAD;
    let len = get_varint(rec, &mut pos) as usize;
    let name = rec.get(pos..pos + len).and_then(|n| std::str::from_utf8(n).ok()).unwrap_or_default();
    pos += len;
    let mut next = || unzigzag(get_varint(rec, &mut pos));
    let czxid = next();
    let mzxid = czxid.wrapping_add(next());
    let ctime = next();
    let mtime = ctime.wrapping_add(next());
    let version = next() as i32;
    let aversion = next() as i32;
    let owner = next();
    let dlen = get_varint(rec, &mut pos) as usize;
    let data = if dlen == 0 { None } else { Some(rec.get(pos..pos + dlen - 1).unwrap_or_default()) };
    Record { name, fixed: Fixed { czxid, mzxid, ctime, mtime, version, aversion, owner }, data }
}

fn encode(out: &mut Vec<u8>, id: u32, name: &str, f: &Fixed, data: Option<&[u8]>) {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&id.to_le_bytes());
    put_varint(out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
    put_varint(out, zigzag(f.czxid));
    put_varint(out, zigzag(f.mzxid.wrapping_sub(f.czxid)));
    put_varint(out, zigzag(f.ctime));
    put_varint(out, zigzag(f.mtime.wrapping_sub(f.ctime)));
    put_varint(out, zigzag(i64::from(f.version)));
    put_varint(out, zigzag(i64::from(f.aversion)));
    put_varint(out, zigzag(f.owner));
    match data {
        None => put_varint(out, 0),
        Some(d) => {
            put_varint(out, d.len() as u64 + 1);
            out.extend_from_slice(d);
        }
    }
    let len = out.len() as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
}

#[derive(Debug, Clone, Default)]
struct Chunk {
    slots: Vec<Slot>,
}

/// The chunks and pages, shareable with views.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shared {
    chunks: Vec<Arc<Chunk>>,
    pages: Vec<Option<Arc<Vec<u8>>>>,
}

impl Shared {
    /// The slot of a live node.
    pub(crate) fn slot(&self, id: u32) -> Option<&Slot> {
        let s = self.chunks.get((id >> CHUNK_BITS) as usize)?.slots.get(id as usize & (CHUNK - 1))?;
        (s.rec != FREE).then_some(s)
    }

    /// The record bytes at `addr`.
    fn rec(&self, addr: u64) -> &[u8] {
        let Some(Some(page)) = self.pages.get((addr >> 32) as usize) else { return &[] };
        let off = addr as u32 as usize;
        let len = u32_at(page, off) as usize;
        page.get(off..off + len).unwrap_or_default()
    }

    /// The record of a live node's slot.
    pub(crate) fn record(&self, slot: &Slot) -> Record<'_> {
        decode(self.rec(slot.rec))
    }

    /// The ids of a node's children.
    pub(crate) fn kids<'a>(&self, slot: &'a Slot) -> impl Iterator<Item = u32> + use<'a> {
        slot.kids.as_deref().into_iter().flat_map(|k| k.iter().copied())
    }

    fn name(&self, id: u32) -> &[u8] {
        match self.slot(id) {
            Some(s) => name_of(self.rec(s.rec)),
            None => &[],
        }
    }
}

/// The store.
#[derive(Debug)]
pub(crate) struct Store {
    shared: Shared,
    free_slots: Vec<u32>,
    live: usize,
    /// Bytes of dead records per page.
    garbage: Vec<usize>,
    free_pages: Vec<u32>,
    tail: Option<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    scratch: Vec<u8>,
    /// `(parent, child)` links of a bulk load, made by
    /// [`Store::finish_load`].
    loaded: Vec<(u32, u32)>,
}

impl Store {
    /// A store holding only the root, with `fixed` and `acl`.
    pub(crate) fn new(fixed: &Fixed, acl: u32, data: Option<&[u8]>) -> Store {
        let mut s = Store {
            shared: Shared::default(),
            free_slots: Vec::new(),
            live: 0,
            garbage: Vec::new(),
            free_pages: Vec::new(),
            tail: None,
            hasher: hashbrown::DefaultHashBuilder::default(),
            scratch: Vec::new(),
            loaded: Vec::new(),
        };
        let id = s.alloc_slot();
        debug_assert_eq!(id, ROOT);
        let rec = s.write(id, "", fixed, data);
        if let Some(slot) = s.slot_mut(id) {
            *slot = Slot { rec, kids: None, pzxid: 0, cversion: 0, acl };
        }
        s
    }

    /// What views share.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Number of live nodes.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    fn hash(&self, name: &[u8]) -> u64 {
        self.hasher.hash_one(name)
    }

    pub(crate) fn slot(&self, id: u32) -> Option<&Slot> {
        self.shared.slot(id)
    }

    /// The slot of `id` to change (its chunk copied first if a view
    /// shares it).
    pub(crate) fn slot_mut(&mut self, id: u32) -> Option<&mut Slot> {
        let chunk = self.shared.chunks.get_mut((id >> CHUNK_BITS) as usize)?;
        Arc::make_mut(chunk).slots.get_mut(id as usize & (CHUNK - 1))
    }

    fn alloc_slot(&mut self) -> u32 {
        if let Some(id) = self.free_slots.pop() {
            return id;
        }
        let need_chunk = self.shared.chunks.last().is_none_or(|c| c.slots.len() == CHUNK);
        if need_chunk {
            self.shared.chunks.push(Arc::new(Chunk { slots: Vec::with_capacity(CHUNK) }));
        }
        let n = self.shared.chunks.len() - 1;
        let chunk = Arc::make_mut(&mut self.shared.chunks[n]);
        chunk.slots.push(Slot::free());
        ((n << CHUNK_BITS) + chunk.slots.len() - 1) as u32
    }

    /// The child of `parent` named `name`.
    pub(crate) fn child(&self, parent: u32, name: &str) -> Option<u32> {
        let kids = self.slot(parent)?.kids.as_deref()?;
        let h = self.hash(name.as_bytes());
        kids.find(h, |id| self.shared.name(id) == name.as_bytes())
    }

    /// The node at an absolute path.
    pub(crate) fn lookup(&self, path: &str) -> Option<u32> {
        let rest = path.strip_prefix('/')?;
        if rest.is_empty() {
            return Some(ROOT);
        }
        let mut id = ROOT;
        for part in rest.split('/') {
            id = self.child(id, part)?;
        }
        Some(id)
    }

    /// Appends a record; its address.
    fn append(&mut self, rec_len: usize) -> u64 {
        let page = if rec_len > BIG {
            self.new_page(rec_len)
        } else {
            match self.tail {
                Some(t) if self.page_len(t) + rec_len <= PAGE => t,
                _ => {
                    let t = self.new_page(PAGE);
                    self.tail = Some(t);
                    t
                }
            }
        };
        let Some(Some(bytes)) = self.shared.pages.get_mut(page as usize) else { return FREE };
        let bytes = Arc::make_mut(bytes);
        let off = bytes.len();
        bytes.extend_from_slice(&self.scratch[..rec_len]);
        (u64::from(page) << 32) | off as u64
    }

    fn page_len(&self, page: u32) -> usize {
        self.shared.pages.get(page as usize).and_then(Option::as_ref).map_or(0, |p| p.len())
    }

    fn new_page(&mut self, capacity: usize) -> u32 {
        let bytes = Some(Arc::new(Vec::with_capacity(capacity)));
        if let Some(p) = self.free_pages.pop() {
            self.shared.pages[p as usize] = bytes;
            self.garbage[p as usize] = 0;
            p
        } else {
            self.shared.pages.push(bytes);
            self.garbage.push(0);
            (self.shared.pages.len() - 1) as u32
        }
    }

    /// Writes a record for slot `id`; its address.
    fn write(&mut self, id: u32, name: &str, fixed: &Fixed, data: Option<&[u8]>) -> u64 {
        let mut scratch = std::mem::take(&mut self.scratch);
        encode(&mut scratch, id, name, fixed, data);
        let len = scratch.len();
        self.scratch = scratch;
        self.append(len)
    }

    /// Counts the record at `addr` as garbage; a page that is half garbage
    /// (or all of it) is emptied.
    fn free_rec(&mut self, addr: u64) {
        let page = (addr >> 32) as u32;
        let len = u32_at(self.shared.rec(addr), 0) as usize;
        let Some(g) = self.garbage.get_mut(page as usize) else { return };
        *g += len;
        let (garbage, used) = (*g, self.page_len(page));
        if garbage >= used && Some(page) != self.tail {
            self.drop_page(page);
        } else if garbage * 2 >= used && Some(page) != self.tail {
            self.compact(page);
        }
    }

    fn drop_page(&mut self, page: u32) {
        self.shared.pages[page as usize] = None;
        self.garbage[page as usize] = 0;
        self.free_pages.push(page);
    }

    /// Moves a page's live records to the tail and drops the page.
    fn compact(&mut self, page: u32) {
        let Some(Some(bytes)) = self.shared.pages.get(page as usize).cloned() else { return };
        let mut off = 0usize;
        while off + HEAD <= bytes.len() {
            let len = u32_at(&bytes, off) as usize;
            if len < HEAD {
                break;
            }
            let id = u32_at(&bytes, off + 4);
            let addr = (u64::from(page) << 32) | off as u64;
            if self.slot(id).is_some_and(|s| s.rec == addr) {
                if let Some(rec) = bytes.get(off..off + len) {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(rec);
                    let new = self.append(len);
                    if let Some(s) = self.slot_mut(id) {
                        s.rec = new;
                    }
                }
            }
            off += len;
        }
        self.drop_page(page);
    }

    /// Adds a child named `name` under `parent`; its id, or `None` when the
    /// parent is missing or has that child already.
    pub(crate) fn insert(
        &mut self,
        parent: u32,
        name: &str,
        fixed: &Fixed,
        data: Option<&[u8]>,
        acl: u32,
    ) -> Option<u32> {
        self.slot(parent)?;
        if self.child(parent, name).is_some() {
            return None;
        }
        let id = self.alloc_slot();
        let rec = self.write(id, name, fixed, data);
        if let Some(slot) = self.slot_mut(id) {
            *slot = Slot { rec, kids: None, pzxid: fixed.czxid, cversion: 0, acl };
        }
        self.live += 1;
        let h = self.hash(name.as_bytes());
        let mut kids = self.slot_mut(parent).and_then(|p| p.kids.take()).unwrap_or_default();
        let (shared, hasher) = (&self.shared, &self.hasher);
        kids.insert(h, id, &|k| hasher.hash_one(shared.name(k)));
        if let Some(p) = self.slot_mut(parent) {
            p.kids = Some(kids);
        }
        Some(id)
    }

    /// Adds a node of a bulk load under `parent` (which must be live):
    /// the link to its parent is made by [`Store::finish_load`], with
    /// every child index built at its final size.
    pub(crate) fn push_loaded(&mut self, parent: u32, name: &str, fixed: &Fixed, data: Option<&[u8]>) -> u32 {
        let id = self.alloc_slot();
        let rec = self.write(id, name, fixed, data);
        if let Some(slot) = self.slot_mut(id) {
            *slot = Slot { rec, kids: None, pzxid: fixed.czxid, cversion: 0, acl: 0 };
        }
        self.live += 1;
        self.loaded.push((parent, id));
        id
    }

    /// Links the nodes of a bulk load to their parents.
    ///
    /// # Errors
    /// The name of a node given twice under one parent.
    pub(crate) fn finish_load(&mut self) -> Result<(), String> {
        let mut links = std::mem::take(&mut self.loaded);
        links.sort_unstable();
        let mut start = 0;
        while start < links.len() {
            let parent = links[start].0;
            let end = start + links[start..].iter().take_while(|l| l.0 == parent).count();
            let mut kids = self.slot_mut(parent).and_then(|p| p.kids.take()).unwrap_or_default();
            let (shared, hasher) = (&self.shared, &self.hasher);
            let rehash = |k| hasher.hash_one(shared.name(k));
            kids.reserve(end - start, &rehash);
            for &(_, child) in &links[start..end] {
                let name = shared.name(child);
                let h = hasher.hash_one(name);
                if kids.find(h, |k| shared.name(k) == name).is_some() {
                    return Err(format!(
                        "node {:?} appears twice under one parent",
                        String::from_utf8_lossy(name)
                    ));
                }
                kids.insert(h, child, &rehash);
            }
            if let Some(p) = self.slot_mut(parent) {
                p.kids = Some(kids);
            }
            start = end;
        }
        Ok(())
    }

    /// Removes the childless child `name` of `parent`; false when it is
    /// not there or has children.
    pub(crate) fn remove(&mut self, parent: u32, name: &str) -> bool {
        let Some(id) = self.child(parent, name) else { return false };
        if self.slot(id).is_none_or(|s| s.num_children() > 0) {
            return false;
        }
        let h = self.hash(name.as_bytes());
        if let Some(mut kids) = self.slot_mut(parent).and_then(|p| p.kids.take()) {
            let (shared, hasher) = (&self.shared, &self.hasher);
            kids.remove(h, id, &|k| hasher.hash_one(shared.name(k)));
            if !kids.is_empty() {
                if let Some(p) = self.slot_mut(parent) {
                    p.kids = Some(kids);
                }
            }
        }
        let rec = self.slot(id).map_or(FREE, |s| s.rec);
        if let Some(s) = self.slot_mut(id) {
            *s = Slot::free();
        }
        self.free_slots.push(id);
        self.live -= 1;
        if rec != FREE {
            self.free_rec(rec);
        }
        true
    }

    /// Rewrites a node's record with new fields and data.
    pub(crate) fn rewrite(&mut self, id: u32, fixed: &Fixed, data: Option<&[u8]>) {
        let Store { shared, scratch, .. } = self;
        let Some(slot) = shared.slot(id) else { return };
        let old = slot.rec;
        // The new record is encoded from the old one's name, in place.
        encode(scratch, id, shared.record(slot).name, fixed, data);
        let len = scratch.len();
        let rec = self.append(len);
        if let Some(s) = self.slot_mut(id) {
            s.rec = rec;
        }
        self.free_rec(old);
    }

    /// Bytes held by arena pages and chunks (for tests and reports).
    #[cfg(test)]
    pub(crate) fn arena_bytes(&self) -> usize {
        self.shared.pages.iter().flatten().map(|p| p.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(z: i64) -> Fixed {
        Fixed {
            czxid: z,
            mzxid: z + 3,
            ctime: 1_700_000_000_000,
            mtime: 1_700_000_000_500,
            version: 2,
            aversion: -1,
            owner: i64::MIN,
        }
    }

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        for data in [None, Some(&b""[..]), Some(&b"hello"[..])] {
            encode(&mut out, 7, "name", &f(0x1_0000_0001), data);
            let r = decode(&out);
            assert_eq!((r.name, r.fixed, r.data), ("name", f(0x1_0000_0001), data));
            assert_eq!(u32_at(&out, 4), 7);
        }
        // A record cut short decodes without panicking.
        for cut in 0..out.len() {
            let _ = decode(&out[..cut]);
        }
    }

    #[test]
    fn insert_lookup_remove_and_compaction() {
        let mut s = Store::new(&Fixed::default(), 0, Some(b""));
        let dir = s.insert(ROOT, "dir", &f(1), None, 0).unwrap();
        assert!(s.insert(ROOT, "dir", &f(1), None, 0).is_none(), "duplicate");
        assert!(s.insert(999, "x", &f(1), None, 0).is_none(), "no parent");
        let data = vec![b'd'; 100];
        let n = 30_000;
        for i in 0..n {
            s.insert(dir, &format!("n{i}"), &f(i), Some(&data), 0).unwrap();
        }
        assert_eq!(s.len(), n as usize + 1);
        assert_eq!(s.lookup("/dir/n123"), s.child(dir, "n123"));
        assert!(s.lookup("/dir/none").is_none() && s.lookup("dir").is_none() && s.lookup("/dir/").is_none());
        assert!(!s.remove(ROOT, "dir"), "has children");
        let before = s.arena_bytes();
        // A view taken now keeps seeing the old state.
        let view = s.shared().clone();
        for i in 0..n {
            assert!(s.remove(dir, &format!("n{i}")));
        }
        assert!(
            s.arena_bytes() * 2 < before,
            "pages of dead records were dropped: {} of {before}",
            s.arena_bytes()
        );
        assert_eq!(s.len(), 1);
        let old_dir = view.slot(dir).unwrap();
        assert_eq!(view.kids(old_dir).count(), n as usize, "the view is untouched");
        let some = view.kids(old_dir).next().unwrap();
        assert_eq!(view.record(view.slot(some).unwrap()).data, Some(&data[..]));
        // Rewrites move records and keep the rest of the tree readable.
        for i in 0..n {
            s.insert(dir, &format!("m{i}"), &f(i), Some(&data), 0).unwrap();
        }
        for round in 0..4u8 {
            for i in (0..n).step_by(2) {
                let id = s.child(dir, &format!("m{i}")).unwrap();
                s.rewrite(id, &f(i + 1), Some(&[round; 50]));
            }
        }
        for i in 0..n {
            let id = s.lookup(&format!("/dir/m{i}")).unwrap();
            let r = s.shared().record(s.slot(id).unwrap());
            assert_eq!(r.name, format!("m{i}"));
            let want: Vec<u8> = if i % 2 == 0 { vec![3; 50] } else { data.clone() };
            assert_eq!(r.data, Some(&want[..]), "node {i}");
        }
        assert!(s.arena_bytes() < 3 * 30_000 * 160, "garbage is reclaimed: {}", s.arena_bytes());
    }

    /// A big children table grows and shrinks a few buckets per change:
    /// no insert or remove rehashes more than [`MOVE_STEP`] entries once
    /// the table is past 1024 entries, and every child stays findable,
    /// listed once and counted right while a table moves.
    #[test]
    fn big_children_tables_move_a_few_buckets_per_change() {
        let hash = |id: u32| u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
        let calls = std::cell::Cell::new(0usize);
        let rehash = |id: u32| {
            calls.set(calls.get() + 1);
            hash(id)
        };
        let mut kids = Kids::default();
        let n = 200_000u32;
        let mut worst = 0;
        let mut moves = 0;
        for id in 0..n {
            calls.set(0);
            let moving = kids.old.is_some();
            kids.insert(hash(id), id, &rehash);
            if kids.len() > 1024 {
                worst = worst.max(calls.get());
            }
            moves += usize::from(!moving && kids.old.is_some());
            assert_eq!(kids.len(), id as usize + 1);
            if id % 997 == 0 {
                for probe in [0, id / 2, id] {
                    assert_eq!(kids.find(hash(probe), |k| k == probe), Some(probe), "{probe} of {id}");
                }
            }
        }
        assert!(worst <= MOVE_STEP, "an insert rehashed {worst} entries");
        assert!(moves >= 7, "grew by moves, not at once: {moves}");
        let mut all: Vec<u32> = kids.iter().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "each child listed once");
        // Empty it: shrinks move too, and lookups hold throughout.
        let mut shrinks = 0;
        for id in 0..n {
            calls.set(0);
            let cap = kids.cur.capacity();
            kids.remove(hash(id), id, &rehash);
            if kids.len() >= 1024 {
                assert!(calls.get() <= MOVE_STEP, "a remove rehashed {} entries", calls.get());
            }
            shrinks += usize::from(kids.cur.capacity() < cap && kids.old.is_some());
            assert_eq!(kids.len(), (n - id - 1) as usize);
            assert_eq!(kids.find(hash(id), |k| k == id), None);
            if id % 997 == 0 && id + 1 < n {
                let probe = (id + 1 + n) / 2;
                assert_eq!(kids.find(hash(probe), |k| k == probe), Some(probe));
            }
        }
        assert!(shrinks >= 2, "shrank by moves: {shrinks}");
        assert!(kids.is_empty() && kids.cur.capacity() < 1024, "memory given back: {}", kids.cur.capacity());
    }
}
