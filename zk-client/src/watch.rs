//! Watches: what callers hold ([`OneshotWatcher`], [`PersistentWatcher`])
//! and the registry the session task keeps.
//!
//! The registry lives inside the session task only (no lock). A watch is
//! registered when the reply of the request that set it arrives, and only
//! if that request succeeded (exists on a missing node registers an
//! exists-watch, as in Apache's client), so a failed request leaves nothing
//! behind. Which watches an event triggers follows Apache's
//! `ZKWatchManager.materialize`:
//!
//! | event | one-shot watches fired | persistent | recursive (path and ancestors) |
//! |---|---|---|---|
//! | NodeCreated, NodeDataChanged | data, exists | yes | yes |
//! | NodeDeleted | data, exists, child | yes | yes |
//! | NodeChildrenChanged | child | yes | no |

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use zk_proto::{EventType, KeeperState, WatcherType};

use crate::session::Command;

/// A watch notification, or the end of a session for the watches it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    /// What happened; [`EventType::None`] for a session state change.
    pub event_type: EventType,
    /// The session state when the event was delivered.
    pub state: KeeperState,
    /// The node's path (relative to the chroot); empty for session events.
    pub path: String,
    /// The zxid of the change (Apache 3.9+), or -1 where the server does
    /// not send it (3.8 and older) and for session events.
    pub zxid: i64,
}

impl WatchedEvent {
    pub(crate) fn session(state: KeeperState) -> Self {
        WatchedEvent { event_type: EventType::None, state, path: String::new(), zxid: -1 }
    }
}

/// A one-shot watch: a future that completes once, with the event that
/// triggered the watch.
///
/// If the session ends first (expired, closed, auth failed), it completes
/// with an event of type [`EventType::None`] carrying that state.
///
/// Dropping it before it fires cancels the watch: when no other watch of
/// this session needs the server-side watch on that path (no other live
/// one-shot watch of the same type, none being set, no persistent watch on
/// the path), the client removes it on the server (`removeWatches`), so a
/// dropped recipe or a timed-out wait leaves no watch behind.
#[derive(Debug)]
#[must_use = "a watcher does nothing unless awaited"]
pub struct OneshotWatcher {
    rx: oneshot::Receiver<WatchedEvent>,
    on_drop: Option<(mpsc::UnboundedSender<Command>, WatchKind, String)>,
}

impl OneshotWatcher {
    /// Asks the session task to remove the server watch if this one is
    /// dropped unfired.
    pub(crate) fn cancel_on_drop(
        mut self,
        tx: mpsc::UnboundedSender<Command>,
        kind: WatchKind,
        path: String,
    ) -> Self {
        self.on_drop = Some((tx, kind, path));
        self
    }
}

impl Future for OneshotWatcher {
    type Output = WatchedEvent;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WatchedEvent> {
        let r = Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| WatchedEvent::session(KeeperState::Closed)));
        if r.is_ready() {
            self.on_drop = None;
        }
        r
    }
}

impl Drop for OneshotWatcher {
    fn drop(&mut self) {
        let Some((tx, kind, server_path)) = self.on_drop.take() else { return };
        // Fired but never read, or the session ended: nothing to remove.
        if matches!(self.rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
            self.rx.close();
            let _ = tx.send(Command::WatchDropped { kind, server_path });
        }
    }
}

/// A persistent or persistent-recursive watch: a stream of every event on
/// the watched node (or subtree), in zxid order.
///
/// The stream ends after a final event of type [`EventType::None`] when the
/// session ends, or after [`EventType::PersistentWatchRemoved`] when the
/// watch is removed.
#[derive(Debug)]
pub struct PersistentWatcher {
    rx: mpsc::UnboundedReceiver<WatchedEvent>,
}

impl Stream for PersistentWatcher {
    type Item = WatchedEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// The kind of watch a request leaves when it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum WatchKind {
    /// getData (and exists on an existing node).
    Data,
    /// exists: a data watch if the node exists, an exists-watch if not.
    Exist,
    /// getChildren.
    Child,
    /// addWatch PERSISTENT.
    Persistent,
    /// addWatch PERSISTENT_RECURSIVE.
    PersistentRecursive,
}

/// The caller's end of a watch being registered.
#[derive(Debug)]
pub(crate) enum WatchSender {
    Oneshot(oneshot::Sender<WatchedEvent>),
    Stream(mpsc::UnboundedSender<WatchedEvent>),
}

/// A watch to register when the request's reply arrives.
#[derive(Debug)]
pub(crate) struct WatchRegistration {
    pub(crate) kind: WatchKind,
    /// The server path (chroot included).
    pub(crate) path: String,
    pub(crate) sender: WatchSender,
}

impl WatchRegistration {
    pub(crate) fn oneshot(kind: WatchKind, path: String) -> (Self, OneshotWatcher) {
        let (tx, rx) = oneshot::channel();
        (
            WatchRegistration { kind, path, sender: WatchSender::Oneshot(tx) },
            OneshotWatcher { rx, on_drop: None },
        )
    }

    pub(crate) fn stream(kind: WatchKind, path: String) -> (Self, PersistentWatcher) {
        let (tx, rx) = mpsc::unbounded_channel();
        (WatchRegistration { kind, path, sender: WatchSender::Stream(tx) }, PersistentWatcher { rx })
    }
}

type Oneshots = HashMap<String, Vec<oneshot::Sender<WatchedEvent>>>;
type Streams = HashMap<String, Vec<mpsc::UnboundedSender<WatchedEvent>>>;

/// The watches of one session, keyed by server path.
#[derive(Debug, Default)]
pub(crate) struct WatchRegistry {
    data: Oneshots,
    exist: Oneshots,
    child: Oneshots,
    persistent: Streams,
    recursive: Streams,
}

/// The paths to replay with SetWatches/SetWatches2 after a reconnect.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct WatchPaths {
    pub(crate) data: Vec<String>,
    pub(crate) exist: Vec<String>,
    pub(crate) child: Vec<String>,
    pub(crate) persistent: Vec<String>,
    pub(crate) recursive: Vec<String>,
}

impl WatchPaths {
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.recursive.is_empty()
    }
}

impl WatchRegistry {
    /// Registers `reg` after its request finished with `ok` (success) or
    /// `no_node` (exists on a missing node). Returns false when nothing
    /// was registered.
    pub(crate) fn register(&mut self, reg: WatchRegistration, ok: bool, no_node: bool) -> bool {
        let WatchRegistration { kind, path, sender } = reg;
        match (kind, sender) {
            (WatchKind::Exist, WatchSender::Oneshot(tx)) if no_node => {
                self.exist.entry(path).or_default().push(tx)
            }
            (WatchKind::Exist | WatchKind::Data, WatchSender::Oneshot(tx)) if ok => {
                self.data.entry(path).or_default().push(tx)
            }
            (WatchKind::Child, WatchSender::Oneshot(tx)) if ok => {
                self.child.entry(path).or_default().push(tx)
            }
            (WatchKind::Persistent, WatchSender::Stream(tx)) if ok => {
                self.persistent.entry(path).or_default().push(tx)
            }
            (WatchKind::PersistentRecursive, WatchSender::Stream(tx)) if ok => {
                self.recursive.entry(path).or_default().push(tx)
            }
            _ => return false,
        }
        true
    }

    /// Whether the server watch that a one-shot watch of `kind` on `path`
    /// shares is still needed here: a live one-shot watch of the same
    /// server type, or a persistent watch on the path (the server keeps
    /// those in the same tables). Dropped watches are pruned on the way.
    pub(crate) fn server_watch_needed(&mut self, kind: WatchKind, path: &str) -> bool {
        fn live(m: &mut Oneshots, path: &str) -> bool {
            let Some(v) = m.get_mut(path) else { return false };
            v.retain(|tx| !tx.is_closed());
            if v.is_empty() {
                m.remove(path);
                return false;
            }
            true
        }
        let persistent = self.persistent.get(path).is_some_and(|v| v.iter().any(|tx| !tx.is_closed()));
        match kind {
            WatchKind::Data | WatchKind::Exist => {
                let data = live(&mut self.data, path);
                let exist = live(&mut self.exist, path);
                data || exist || persistent
            }
            WatchKind::Child => live(&mut self.child, path) || persistent,
            WatchKind::Persistent | WatchKind::PersistentRecursive => true,
        }
    }

    /// Delivers a notification for server path `server_path`; `event`
    /// carries the client path.
    pub(crate) fn fire(&mut self, server_path: &str, event: &WatchedEvent) {
        let mut oneshots = Vec::new();
        match event.event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                oneshots.extend(self.data.remove(server_path).unwrap_or_default());
                oneshots.extend(self.exist.remove(server_path).unwrap_or_default());
            }
            EventType::NodeDeleted => {
                oneshots.extend(self.data.remove(server_path).unwrap_or_default());
                oneshots.extend(self.exist.remove(server_path).unwrap_or_default());
                oneshots.extend(self.child.remove(server_path).unwrap_or_default());
            }
            EventType::NodeChildrenChanged => {
                oneshots.extend(self.child.remove(server_path).unwrap_or_default());
            }
            _ => {}
        }
        for tx in oneshots {
            let _ = tx.send(event.clone());
        }
        send_all(&mut self.persistent, server_path, event);
        if event.event_type != EventType::NodeChildrenChanged {
            for ancestor in ancestors(server_path) {
                send_all(&mut self.recursive, ancestor, event);
            }
        }
    }

    /// Removes the watches of `watcher_type` on `server_path`, telling each
    /// holder with a `*WatchRemoved` event. Returns whether any existed.
    pub(crate) fn remove(&mut self, server_path: &str, watcher_type: WatcherType, client_path: &str) -> bool {
        let event = |t| WatchedEvent {
            event_type: t,
            state: KeeperState::SyncConnected,
            path: client_path.to_string(),
            zxid: -1,
        };
        let mut found = false;
        let any = watcher_type == WatcherType::Any;
        if any || watcher_type == WatcherType::Data {
            for map in [&mut self.data, &mut self.exist] {
                for tx in map.remove(server_path).unwrap_or_default() {
                    found = true;
                    let _ = tx.send(event(EventType::DataWatchRemoved));
                }
            }
        }
        if any || watcher_type == WatcherType::Children {
            for tx in self.child.remove(server_path).unwrap_or_default() {
                found = true;
                let _ = tx.send(event(EventType::ChildWatchRemoved));
            }
        }
        if any || watcher_type == WatcherType::Persistent {
            for tx in self.persistent.remove(server_path).unwrap_or_default() {
                found = true;
                let _ = tx.send(event(EventType::PersistentWatchRemoved));
            }
        }
        if any || watcher_type == WatcherType::PersistentRecursive {
            for tx in self.recursive.remove(server_path).unwrap_or_default() {
                found = true;
                let _ = tx.send(event(EventType::PersistentWatchRemoved));
            }
        }
        found
    }

    /// Whether a watch of `watcher_type` is registered on `server_path`.
    #[cfg(test)]
    pub(crate) fn contains(&self, server_path: &str, watcher_type: WatcherType) -> bool {
        let has = |m: &Oneshots| m.get(server_path).is_some_and(|v| !v.is_empty());
        let has_s = |m: &Streams| m.get(server_path).is_some_and(|v| !v.is_empty());
        match watcher_type {
            WatcherType::Data => has(&self.data) || has(&self.exist),
            WatcherType::Children => has(&self.child),
            WatcherType::Persistent => has_s(&self.persistent),
            WatcherType::PersistentRecursive => has_s(&self.recursive),
            _ => {
                has(&self.data)
                    || has(&self.exist)
                    || has(&self.child)
                    || has_s(&self.persistent)
                    || has_s(&self.recursive)
            }
        }
    }

    /// Drops watches nobody listens to any more and returns the paths to
    /// re-register after a reconnect.
    pub(crate) fn paths_to_replay(&mut self) -> WatchPaths {
        fn live_oneshots(m: &mut Oneshots) -> Vec<String> {
            m.retain(|_, v| {
                v.retain(|tx| !tx.is_closed());
                !v.is_empty()
            });
            let mut keys: Vec<String> = m.keys().cloned().collect();
            keys.sort();
            keys
        }
        fn live_streams(m: &mut Streams) -> Vec<String> {
            m.retain(|_, v| {
                v.retain(|tx| !tx.is_closed());
                !v.is_empty()
            });
            let mut keys: Vec<String> = m.keys().cloned().collect();
            keys.sort();
            keys
        }
        WatchPaths {
            data: live_oneshots(&mut self.data),
            exist: live_oneshots(&mut self.exist),
            child: live_oneshots(&mut self.child),
            persistent: live_streams(&mut self.persistent),
            recursive: live_streams(&mut self.recursive),
        }
    }

    /// Ends every watch with a session event (expired, closed, auth failed).
    pub(crate) fn close_all(&mut self, state: KeeperState) {
        let event = WatchedEvent::session(state);
        for map in [&mut self.data, &mut self.exist, &mut self.child] {
            for (_, txs) in map.drain() {
                for tx in txs {
                    let _ = tx.send(event.clone());
                }
            }
        }
        for map in [&mut self.persistent, &mut self.recursive] {
            for (_, txs) in map.drain() {
                for tx in txs {
                    let _ = tx.send(event.clone());
                }
            }
        }
    }

    /// Number of registered watches (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let o = |m: &Oneshots| m.values().map(Vec::len).sum::<usize>();
        let s = |m: &Streams| m.values().map(Vec::len).sum::<usize>();
        o(&self.data) + o(&self.exist) + o(&self.child) + s(&self.persistent) + s(&self.recursive)
    }
}

fn send_all(map: &mut Streams, path: &str, event: &WatchedEvent) {
    if let Some(txs) = map.get_mut(path) {
        txs.retain(|tx| tx.send(event.clone()).is_ok());
        if txs.is_empty() {
            map.remove(path);
        }
    }
}

/// `path` and each of its ancestors up to `/`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let cur = next?;
        next = if cur == "/" {
            None
        } else {
            match cur.rfind('/') {
                Some(0) => Some("/"),
                Some(i) => Some(&cur[..i]),
                None => None,
            }
        };
        Some(cur)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn ev(t: EventType, path: &str) -> WatchedEvent {
        WatchedEvent { event_type: t, state: KeeperState::SyncConnected, path: path.into(), zxid: -1 }
    }

    #[test]
    fn ancestors_walk_to_root() {
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), vec!["/a/b/c", "/a/b", "/a", "/"]);
        assert_eq!(ancestors("/").collect::<Vec<_>>(), vec!["/"]);
    }

    #[test]
    fn failed_requests_register_nothing() {
        let mut r = WatchRegistry::default();
        let (reg, _w) = WatchRegistration::oneshot(WatchKind::Data, "/a".into());
        assert!(!r.register(reg, false, true));
        let (reg, _w) = WatchRegistration::oneshot(WatchKind::Child, "/a".into());
        assert!(!r.register(reg, false, false));
        assert_eq!(r.len(), 0);
        let (reg, _w) = WatchRegistration::oneshot(WatchKind::Exist, "/a".into());
        assert!(r.register(reg, false, true), "exists on a missing node leaves an exists-watch");
        assert_eq!(r.paths_to_replay().exist, vec!["/a".to_string()]);
    }

    #[test]
    fn events_fire_the_right_watches_once() {
        let mut r = WatchRegistry::default();
        let (reg, mut data) = WatchRegistration::oneshot(WatchKind::Data, "/a".into());
        r.register(reg, true, false);
        let (reg, child) = WatchRegistration::oneshot(WatchKind::Child, "/a".into());
        r.register(reg, true, false);
        let (reg, mut rec) = WatchRegistration::stream(WatchKind::PersistentRecursive, "/".into());
        r.register(reg, true, false);

        r.fire("/a", &ev(EventType::NodeChildrenChanged, "/a"));
        assert_eq!(child.now_or_never().map(|e| e.event_type), Some(EventType::NodeChildrenChanged));
        assert!((&mut data).now_or_never().is_none());
        assert!(rec.rx.try_recv().is_err(), "recursive watches see no child events");

        r.fire("/a", &ev(EventType::NodeDataChanged, "/a"));
        assert_eq!(data.now_or_never().map(|e| e.event_type), Some(EventType::NodeDataChanged));
        assert_eq!(rec.rx.try_recv().map(|e| e.path), Ok("/a".to_string()));
        assert_eq!(r.len(), 1, "only the persistent watch stays");
        r.fire("/a", &ev(EventType::NodeDataChanged, "/a"));
        assert!(rec.rx.try_recv().is_ok());
    }

    #[test]
    fn remove_and_close_notify_holders() {
        let mut r = WatchRegistry::default();
        let (reg, w) = WatchRegistration::oneshot(WatchKind::Data, "/a".into());
        r.register(reg, true, false);
        let (reg, mut p) = WatchRegistration::stream(WatchKind::Persistent, "/b".into());
        r.register(reg, true, false);
        assert!(r.contains("/a", WatcherType::Data));
        assert!(r.remove("/a", WatcherType::Data, "/a"));
        assert_eq!(w.now_or_never().map(|e| e.event_type), Some(EventType::DataWatchRemoved));
        assert!(!r.remove("/a", WatcherType::Data, "/a"));
        r.close_all(KeeperState::Expired);
        assert_eq!(p.rx.try_recv().map(|e| e.state), Ok(KeeperState::Expired));
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn dropped_watchers_are_not_replayed() {
        let mut r = WatchRegistry::default();
        let (reg, w) = WatchRegistration::oneshot(WatchKind::Data, "/a".into());
        r.register(reg, true, false);
        let (reg, _keep) = WatchRegistration::oneshot(WatchKind::Data, "/b".into());
        r.register(reg, true, false);
        drop(w);
        assert_eq!(r.paths_to_replay().data, vec!["/b".to_string()]);
    }
}
