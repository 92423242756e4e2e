//! Server-side watches (Apache's `WatchManager`): which connection watches
//! which path, in which mode, and who an event goes to.

use hashbrown::{HashMap, HashSet};

use zk_proto::{EventType, WatcherType};

/// A connection id.
pub(crate) type ConnId = u64;

/// Watch tables.
#[derive(Debug, Default)]
pub(crate) struct WatchManager {
    data: HashMap<String, HashSet<ConnId>>,
    child: HashMap<String, HashSet<ConnId>>,
    persistent: HashMap<String, HashSet<ConnId>>,
    recursive: HashMap<String, HashSet<ConnId>>,
    by_conn: HashMap<ConnId, HashSet<(u8, String)>>,
    /// Watches in all tables, kept as they come and go (`mntr`, `wchs`).
    total: usize,
    /// Of those, child watches (not in Apache's data-watch table).
    child_total: usize,
}

const DATA: u8 = 0;
const CHILD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 3;

impl WatchManager {
    fn table(&mut self, kind: u8) -> &mut HashMap<String, HashSet<ConnId>> {
        match kind {
            DATA => &mut self.data,
            CHILD => &mut self.child,
            PERSISTENT => &mut self.persistent,
            _ => &mut self.recursive,
        }
    }

    fn counted(&mut self, kind: u8, added: bool) {
        if added {
            self.total += 1;
            self.child_total += usize::from(kind == CHILD);
        } else {
            self.total = self.total.saturating_sub(1);
            if kind == CHILD {
                self.child_total = self.child_total.saturating_sub(1);
            }
        }
    }

    fn add(&mut self, kind: u8, path: &str, conn: ConnId) {
        self.table(kind).entry(path.to_string()).or_default().insert(conn);
        if self.by_conn.entry(conn).or_default().insert((kind, path.to_string())) {
            self.counted(kind, true);
        }
    }

    fn take(&mut self, kind: u8, path: &str) -> HashSet<ConnId> {
        let set = self.table(kind).remove(path).unwrap_or_default();
        let key = (kind, path.to_string());
        for c in &set {
            if self.by_conn.get_mut(c).is_some_and(|s| s.remove(&key)) {
                self.counted(kind, false);
            }
        }
        set
    }

    /// A data watch (getData, exists).
    pub(crate) fn add_data(&mut self, path: &str, conn: ConnId) {
        self.add(DATA, path, conn);
    }

    /// A child watch (getChildren).
    pub(crate) fn add_child(&mut self, path: &str, conn: ConnId) {
        self.add(CHILD, path, conn);
    }

    /// A persistent watch (addWatch mode 0). A connection has one
    /// persistent mode per path, as in Apache: the last addWatch wins.
    pub(crate) fn add_persistent(&mut self, path: &str, conn: ConnId) {
        self.remove(path, WatcherType::PersistentRecursive, conn);
        self.add(PERSISTENT, path, conn);
    }

    /// A persistent recursive watch (addWatch mode 1); replaces a
    /// persistent one of the same connection on the same path.
    pub(crate) fn add_recursive(&mut self, path: &str, conn: ConnId) {
        self.remove(path, WatcherType::Persistent, conn);
        self.add(RECURSIVE, path, conn);
    }

    /// The connections an event on `path` goes to, each once; one-shot
    /// watches are consumed.
    pub(crate) fn trigger(&mut self, path: &str, event: EventType) -> HashSet<ConnId> {
        let mut out = HashSet::new();
        match event {
            EventType::NodeCreated | EventType::NodeDataChanged => out.extend(self.take(DATA, path)),
            EventType::NodeDeleted => {
                out.extend(self.take(DATA, path));
                out.extend(self.take(CHILD, path));
            }
            EventType::NodeChildrenChanged => out.extend(self.take(CHILD, path)),
            _ => {}
        }
        if let Some(s) = self.persistent.get(path) {
            out.extend(s.iter().copied());
        }
        if event != EventType::NodeChildrenChanged {
            let mut p = path;
            loop {
                if let Some(s) = self.recursive.get(p) {
                    out.extend(s.iter().copied());
                }
                if p == "/" {
                    break;
                }
                p = zk_proto::path::parent(p);
            }
        }
        out
    }

    /// Whether `conn` has a watch of `wt` on `path`.
    pub(crate) fn contains(&self, path: &str, wt: WatcherType, conn: ConnId) -> bool {
        let has = |m: &HashMap<String, HashSet<ConnId>>| m.get(path).is_some_and(|s| s.contains(&conn));
        match wt {
            WatcherType::Data => has(&self.data),
            WatcherType::Children => has(&self.child),
            WatcherType::Persistent => has(&self.persistent),
            WatcherType::PersistentRecursive => has(&self.recursive),
            _ => has(&self.data) || has(&self.child) || has(&self.persistent) || has(&self.recursive),
        }
    }

    /// Removes `conn`'s watches of `wt` on `path`; the removal events to
    /// send (at most one per kind). Empty when there was none.
    pub(crate) fn remove(&mut self, path: &str, wt: WatcherType, conn: ConnId) -> Vec<EventType> {
        let mut events = Vec::new();
        let mut drop_kind = |me: &mut Self, kind: u8, ev: EventType| {
            if let Some(s) = me.table(kind).get_mut(path) {
                if s.remove(&conn) {
                    if s.is_empty() {
                        me.table(kind).remove(path);
                    }
                    if me.by_conn.get_mut(&conn).is_some_and(|c| c.remove(&(kind, path.to_string()))) {
                        me.counted(kind, false);
                    }
                    if !events.contains(&ev) {
                        events.push(ev);
                    }
                }
            }
        };
        let any = wt == WatcherType::Any;
        if any || wt == WatcherType::Data {
            drop_kind(self, DATA, EventType::DataWatchRemoved);
        }
        if any || wt == WatcherType::Children {
            drop_kind(self, CHILD, EventType::ChildWatchRemoved);
        }
        if any || wt == WatcherType::Persistent {
            drop_kind(self, PERSISTENT, EventType::PersistentWatchRemoved);
        }
        if any || wt == WatcherType::PersistentRecursive {
            drop_kind(self, RECURSIVE, EventType::PersistentWatchRemoved);
        }
        events
    }

    /// Drops every watch of a closed connection.
    pub(crate) fn remove_conn(&mut self, conn: ConnId) {
        if let Some(set) = self.by_conn.remove(&conn) {
            for (kind, path) in set {
                self.counted(kind, false);
                let t = self.table(kind);
                if let Some(s) = t.get_mut(&path) {
                    s.remove(&conn);
                    if s.is_empty() {
                        t.remove(&path);
                    }
                }
            }
        }
    }

    /// Total watches (for `wchs` / `mntr`).
    pub(crate) fn count(&self) -> usize {
        self.total
    }

    /// Connections holding at least one watch in the data-watch table
    /// (what `wchs` counts).
    pub(crate) fn connection_count(&self) -> usize {
        self.by_conn.values().filter(|s| s.iter().any(|(k, _)| *k != CHILD)).count()
    }

    /// Watches in Apache's data-watch table (data, exists, persistent and
    /// recursive ones; child watches are not in it): what `wchs`, `wchc`
    /// and `wchp` report, as Apache's do.
    pub(crate) fn data_count(&self) -> usize {
        self.total - self.child_total
    }

    /// Number of watched paths (data-watch table, as `wchs`): the one-shot
    /// data table's size plus the persistent paths not already in it, so
    /// the cost follows the (few) persistent watches, not every watch.
    pub(crate) fn path_count(&self) -> usize {
        let extra_persistent = self.persistent.keys().filter(|p| !self.data.contains_key(*p)).count();
        let extra_recursive = self
            .recursive
            .keys()
            .filter(|p| !self.data.contains_key(*p) && !self.persistent.contains_key(*p))
            .count();
        self.data.len() + extra_persistent + extra_recursive
    }

    /// Watches by connection: conn → paths (for `wchc`).
    pub(crate) fn by_connection(&self) -> Vec<(ConnId, Vec<String>)> {
        let mut v: Vec<(ConnId, Vec<String>)> = self
            .by_conn
            .iter()
            .map(|(c, s)| {
                let mut p: Vec<String> =
                    s.iter().filter(|(k, _)| *k != CHILD).map(|(_, p)| p.clone()).collect();
                p.sort();
                p.dedup();
                (*c, p)
            })
            .filter(|(_, p)| !p.is_empty())
            .collect();
        v.sort();
        v
    }

    /// Watches by path: path → connections (for `wchp`).
    pub(crate) fn by_path(&self) -> Vec<(String, Vec<ConnId>)> {
        let mut m: HashMap<String, HashSet<ConnId>> = HashMap::new();
        for t in [&self.data, &self.persistent, &self.recursive] {
            for (p, s) in t {
                m.entry(p.clone()).or_default().extend(s.iter().copied());
            }
        }
        let mut v: Vec<(String, Vec<ConnId>)> = m
            .into_iter()
            .map(|(p, s)| {
                let mut c: Vec<ConnId> = s.into_iter().collect();
                c.sort_unstable();
                (p, c)
            })
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_persistent_and_recursive() {
        let mut w = WatchManager::default();
        w.add_data("/a", 1);
        w.add_child("/a", 2);
        w.add_persistent("/a", 3);
        w.add_recursive("/", 4);
        let got = w.trigger("/a", EventType::NodeDataChanged);
        assert_eq!(got, HashSet::from([1, 3, 4]));
        let got = w.trigger("/a", EventType::NodeDataChanged);
        assert_eq!(got, HashSet::from([3, 4]), "one-shot data watch consumed");
        let got = w.trigger("/a", EventType::NodeChildrenChanged);
        assert_eq!(got, HashSet::from([2, 3]), "recursive watches get no child events");
        assert_eq!(w.count(), 2);
        w.remove_conn(3);
        assert!(!w.contains("/a", WatcherType::Persistent, 3));
        assert_eq!(w.remove("/", WatcherType::Any, 4), vec![EventType::PersistentWatchRemoved]);
        assert_eq!(w.count(), 0);
        assert_eq!(w.data_count(), 0);
    }

    #[test]
    fn counts_follow_every_change() {
        let mut w = WatchManager::default();
        let recount = |w: &WatchManager| {
            let all: usize = w.by_conn.values().map(HashSet::len).sum();
            let data: usize = w.by_conn.values().map(|s| s.iter().filter(|(k, _)| *k != CHILD).count()).sum();
            (all, data)
        };
        w.add_data("/a", 1);
        w.add_data("/a", 1);
        w.add_child("/a", 1);
        w.add_child("/b", 2);
        w.add_persistent("/a", 2);
        w.add_recursive("/a", 2);
        assert_eq!((w.count(), w.data_count()), recount(&w));
        assert_eq!((w.count(), w.data_count()), (4, 2));
        w.trigger("/a", EventType::NodeDeleted);
        assert_eq!((w.count(), w.data_count()), recount(&w));
        w.remove("/b", WatcherType::Children, 2);
        assert_eq!((w.count(), w.data_count()), recount(&w));
        w.add_data("/c", 3);
        w.remove_conn(2);
        assert_eq!((w.count(), w.data_count()), recount(&w));
        assert_eq!((w.count(), w.data_count()), (1, 1));
    }
}
