//! The driver: the one place where the core meets channels, clocks and
//! threads. It feeds the core ([`crate::pipeline::core::Core`]) its inputs
//! with the time, carries out its outputs (queue a reply, kill a
//! connection, hand a txn to the log thread, write a snapshot), and stops
//! the server when the core or the log cannot go on.
//!
//! Nothing is preferred in the wait: requests, log completions, snapshot
//! completions and the core's timer are taken as they come (and the core
//! runs due timers inside every step anyway), so no kind of input can
//! starve another.

use hashbrown::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{error, warn};
use zk_proto::Request;
use zk_proto::records::{ConnectRequest, QuorumPacket};

use crate::pipeline::core::Core;
use crate::pipeline::quorum::RoleKind;
use crate::pipeline::reply::out_weight;
use crate::pipeline::{ConnId, Input, LogCmd, Now, Out, Output};
use crate::quorum::serve::{PeerLink, PeerOut, connect_leader, next_link, write_epoch};
use crate::stats::{Needs, Report};

/// Requests taken in from connections and not yet answered by the core:
/// what `globalOutstandingLimit` bounds. A request counts from the moment
/// its connection reads it until the core has answered it (queued its
/// reply), not until the reply is written, so a client that stops reading
/// cannot hold other clients' share. Four-letter words take a place too.
#[derive(Debug)]
pub(crate) struct Outstanding {
    count: AtomicUsize,
    limit: usize,
    freed: Notify,
}

impl Outstanding {
    /// A counter with `limit` places.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Outstanding { count: AtomicUsize::new(0), limit: limit.max(1), freed: Notify::new() })
    }

    /// Takes a place if one is free.
    fn try_take(&self) -> bool {
        if self.count.fetch_add(1, Ordering::AcqRel) < self.limit {
            return true;
        }
        self.count.fetch_sub(1, Ordering::AcqRel);
        false
    }

    /// Waits for a place.
    pub(crate) async fn acquire(&self) {
        // The common case takes no lock: the waiter list is only touched
        // when the server is at its limit.
        if self.try_take() {
            return;
        }
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Checked after registering, so a release in between is not missed.
            if self.try_take() {
                return;
            }
            notified.await;
        }
    }

    /// Frees `n` places.
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.count.fetch_sub(n, Ordering::AcqRel);
            self.freed.notify_waiters();
        }
    }
}

/// The most bytes of replies and events that may wait for one connection
/// before the server decides its client stopped reading and closes it.
pub(crate) const MAX_QUEUED_BYTES: usize = 64 << 20;

/// The most bytes that may wait for all connections together. Past it, a
/// connection with more than [`FAIR_QUEUED_BYTES`] waiting is closed when
/// more is queued for it: slow readers cannot together hold the server's
/// memory, and a reading client with a small backlog is never the one cut.
pub(crate) const GLOBAL_QUEUED_BYTES: usize = 512 << 20;

/// See [`GLOBAL_QUEUED_BYTES`].
pub(crate) const FAIR_QUEUED_BYTES: usize = 4 << 20;

/// How many messages may wait for a connection.
pub(crate) const OUT_QUEUE: usize = 65_536;

/// The driver's side of a connection: where its messages go.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    /// The connection's writer queue.
    pub(crate) out: mpsc::Sender<Out>,
    /// Notified to close the connection at once (without flushing).
    pub(crate) kill: Arc<Notify>,
    /// Bytes queued for it and not yet taken by its writer.
    pub(crate) queued: Arc<AtomicUsize>,
}

/// What the network side sends the driver.
#[derive(Debug)]
pub(crate) enum CoreMsg {
    /// A new connection's handshake.
    Connect {
        conn: ConnId,
        peer: Option<SocketAddr>,
        ids: Vec<zk_proto::records::Id>,
        req: ConnectRequest,
        handle: ConnHandle,
    },
    /// The state read back from disk after the log was cut.
    Reloaded(Result<Box<crate::pipeline::core::Recovered>, String>),
    /// A request after the handshake.
    Request { conn: ConnId, xid: i32, req: Request },
    /// The connection is gone.
    Disconnected { conn: ConnId },
    /// A four-letter word's report, after an optional reset.
    Report { needs: Needs, reset: Option<Reset>, reply: oneshot::Sender<Report> },
    /// Stop.
    Shutdown,
    /// The election loop asks for the last zxid and `currentEpoch`.
    ElectionState(oneshot::Sender<(i64, i64)>),
    /// The election decided this server's role; a learner's link to
    /// `leader_addr` is made by the driver.
    BeginRole { kind: RoleKind, leader_addr: Option<String> },
    /// A learner connected to the quorum port, with its first packet.
    PeerJoined { sid: i64, link: u64, tx: mpsc::UnboundedSender<PeerOut>, first: QuorumPacket },
    /// A packet on a quorum link.
    Peer { link: u64, from: i64, pkt: QuorumPacket },
    /// A SNAP and its state on a learner's link.
    PeerSnapshot { link: u64, from: i64, zxid: i64, snapshot: crate::persist::snapshot::Snapshot },
    /// A quorum link closed.
    PeerGone { link: u64, from: i64 },
}

/// Which counters a four-letter word resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reset {
    /// `srst`.
    Server,
    /// `crst`.
    Connections,
}

/// What the log stage reports.
#[derive(Debug)]
pub(crate) enum LogEvent {
    /// Every txn up to this zxid is on disk.
    Durable(i64),
    /// The log was cut after this zxid.
    Truncated(i64),
    /// The log failed: the server cannot promise durability any more.
    Failed(String),
}

/// The driver's channels and shared counters.
pub(crate) struct Driver {
    pub(crate) core: Core,
    pub(crate) rx: mpsc::UnboundedReceiver<CoreMsg>,
    pub(crate) log_events: mpsc::UnboundedReceiver<LogEvent>,
    pub(crate) log_tx: std::sync::mpsc::Sender<LogCmd>,
    pub(crate) outstanding: Arc<Outstanding>,
    /// Bytes queued for every connection together.
    pub(crate) global_queued: Arc<AtomicUsize>,
    /// Set to the reason when the server must stop.
    pub(crate) fatal: watch::Sender<Option<String>>,
    /// Where snapshots are written.
    pub(crate) data_dir: std::path::PathBuf,
    /// How snapshots are compressed.
    pub(crate) snapshot_compression: crate::persist::compress::Compression,
    /// Fault injection for fail-stop tests: panic on a request for this
    /// path.
    pub(crate) panic_on_path: Option<String>,
    /// The ensemble's side, when this server is a member of one.
    pub(crate) quorum: Option<DriverQuorum>,
    /// The outputs being carried out (kept for its capacity).
    pub(crate) scratch: Vec<Output>,
    /// The thread that writes the periodic snapshots (started by `run`).
    pub(crate) snapshot_worker: Option<std::sync::mpsc::Sender<SnapshotTask>>,
    /// The last zxid handed to the log thread and the last it reported
    /// durable: while the first is ahead, an fsync is under way.
    pub(crate) log_behind: (i64, i64),
}

/// How long the driver stays awake, with nothing else to do, for the
/// fsync of a lone write before it sleeps: a worker put to sleep and woken
/// on an idle virtual CPU can wait 100 µs and more (see
/// `persist::log::LOG_SPIN`), more than the fsync itself on a fast disk.
const DURABLE_SPIN: std::time::Duration = std::time::Duration::from_micros(300);

/// What the election loop hears of a role.
#[derive(Debug)]
pub(crate) enum RoleEvent {
    /// It serves, in this epoch.
    Serving(i64),
    /// It ended, for this reason.
    Ended(String),
}

/// The driver's part of the ensemble: the quorum links and where a role's
/// end is reported.
pub(crate) struct DriverQuorum {
    /// The open quorum links by peer.
    pub(crate) peers: HashMap<i64, PeerLink>,
    /// The election loop, told when a role ends.
    pub(crate) role_events: mpsc::UnboundedSender<RoleEvent>,
    /// The driver's own channel, for the links it starts.
    pub(crate) core_tx: mpsc::UnboundedSender<CoreMsg>,
    /// How long a learner tries to reach its leader.
    pub(crate) connect_within: std::time::Duration,
    /// Stops the links with the server.
    pub(crate) stop: watch::Receiver<bool>,
    /// Learners that connected while this server was still electing (it
    /// may be about to lead): taken if it leads, dropped otherwise.
    pub(crate) pending: Vec<(i64, u64, mpsc::UnboundedSender<PeerOut>, QuorumPacket)>,
}

/// A periodic snapshot, to be written off the request path.
pub(crate) type SnapshotTask = Box<dyn FnOnce() + Send>;

/// The nice value of the snapshot thread: under a load that keeps both
/// cores busy the requests come first and the snapshot takes what is left
/// (CFS weight 110 against 1024 for the server's other threads); on an
/// idle server it runs at full speed. A snapshot that takes longer only
/// means a longer log to replay, and the core skips the next snapshot
/// while one is running (as Apache does).
const SNAPSHOT_NICE: i32 = 10;

/// Starts the thread that writes the periodic snapshots, one after the
/// other, at a lower CPU priority; it ends when its sender is dropped.
/// `None` if the thread cannot be started (the blocking pool then writes
/// them).
fn start_snapshot_worker() -> Option<std::sync::mpsc::Sender<SnapshotTask>> {
    let (tx, rx) = std::sync::mpsc::channel::<SnapshotTask>();
    let started = std::thread::Builder::new().name("zk-snapshot".into()).spawn(move || {
        lower_priority(SNAPSHOT_NICE);
        while let Ok(task) = rx.recv() {
            task();
        }
    });
    match started {
        Ok(_) => Some(tx),
        Err(e) => {
            warn!(error = %e, "could not start the snapshot thread; snapshots use the blocking pool");
            None
        }
    }
}

/// Lowers the calling thread's CPU priority (its nice value; on Linux a
/// thread's own). A failure only leaves it where it was.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        warn!(error = %e, "could not lower the snapshot thread's priority");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

impl Driver {
    /// Runs until shutdown or a fatal error.
    pub(crate) async fn run(mut self) {
        let clock = Instant::now();
        let now = move || Now {
            mono_ms: clock.elapsed().as_millis() as u64,
            wall_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64),
        };
        let (snap_tx, mut snap_rx) = mpsc::unbounded_channel::<Result<i64, String>>();
        self.snapshot_worker = start_snapshot_worker();
        let mut conns: HashMap<ConnId, ConnHandle> = HashMap::new();
        let mut log_open = true;
        // One timer, reset only when the core's deadline changes (a timer
        // made afresh on every pass costs two timer-wheel locks a pass).
        let timer = tokio::time::sleep(std::time::Duration::ZERO);
        tokio::pin!(timer);
        let mut timer_at = None;
        loop {
            let deadline = clock + std::time::Duration::from_millis(self.core.next_deadline().min(1 << 40));
            if timer_at != Some(deadline) {
                timer.as_mut().reset(deadline.into());
                timer_at = Some(deadline);
            }
            // A lone write being made durable and nothing else to do: stay
            // awake for its answer (yielding, so every other task and the
            // sockets are still polled) rather than sleep. Only for one
            // write in flight: with more, the spin took CPU from the
            // threads serving them (10 sessions x 1: a quarter less).
            if self.log_behind.0 - self.log_behind.1 == 1 {
                let start = std::time::Instant::now();
                while self.log_events.is_empty() && self.rx.is_empty() && start.elapsed() < DURABLE_SPIN {
                    tokio::task::yield_now().await;
                }
            }
            let mut stopping = false;
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    None => stopping = true,
                    Some(msg) => {
                        stopping = !self.on_msg(msg, &mut conns, now()).await;
                        // Take what else is waiting, up to a batch, before flushing.
                        for _ in 0..64 {
                            if stopping {
                                break;
                            }
                            match self.rx.try_recv() {
                                Ok(msg) => stopping = !self.on_msg(msg, &mut conns, now()).await,
                                Err(_) => break,
                            }
                        }
                    }
                },
                ev = self.log_events.recv(), if log_open => match ev {
                    Some(LogEvent::Durable(z)) => {
                        self.log_behind.1 = z;
                        self.core.step(Input::Durable(z), now())
                    }
                    Some(LogEvent::Truncated(z)) => {
                        self.log_behind = (self.log_behind.0.min(z), self.log_behind.1.min(z));
                        self.core.step(Input::LogTruncated(z), now())
                    }
                    Some(LogEvent::Failed(why)) => self.core.step(Input::LogFailed(why), now()),
                    None => {
                        log_open = false;
                        self.core.step(Input::LogFailed("the log thread ended".into()), now());
                    }
                },
                done = snap_rx.recv() => {
                    if let Some(r) = done {
                        self.core.step(Input::SnapshotDone(r), now());
                    }
                }
                () = &mut timer => {
                    // Fired: re-armed on the next pass even if the deadline stays.
                    timer_at = None;
                    self.core.step(Input::Tick, now());
                }
            }
            let keep_going = self.flush(&mut conns, &snap_tx, now);
            if stopping || !keep_going {
                break;
            }
        }
        self.stop(&conns);
        // A snapshot being written finishes before the server reports it
        // stopped (bounded), so a stopped server's data dir is settled.
        if self.core.snapshot_running() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), snap_rx.recv()).await;
        }
    }

    fn stop(&mut self, conns: &HashMap<ConnId, ConnHandle>) {
        for h in conns.values() {
            let _ = h.out.try_send(Out::Close);
        }
    }

    /// One message from the network side; false to stop.
    async fn on_msg(&mut self, msg: CoreMsg, conns: &mut HashMap<ConnId, ConnHandle>, now: Now) -> bool {
        match msg {
            CoreMsg::Connect { conn, peer, ids, req, handle } => {
                conns.insert(conn, handle);
                self.core.step(Input::Connect { conn, peer, ids, req }, now);
            }
            CoreMsg::Request { conn, xid, req } => {
                if let Some(p) = &self.panic_on_path {
                    if req.path().is_some_and(|x| x == p) {
                        panic!("fault injection: the core dies on a request for {p}");
                    }
                }
                self.core.step(Input::Request { conn, xid, req }, now);
            }
            CoreMsg::Disconnected { conn } => {
                conns.remove(&conn);
                self.core.step(Input::Disconnected { conn }, now);
            }
            CoreMsg::Report { needs, reset, reply } => {
                match reset {
                    Some(Reset::Server) => self.core.step(Input::ResetStats, now),
                    Some(Reset::Connections) => self.core.step(Input::ResetConnStats, now),
                    None => {}
                }
                let _ = reply.send(self.core.report(needs));
            }
            CoreMsg::Shutdown => return false,
            CoreMsg::ElectionState(reply) => {
                let _ = reply.send(self.core.election_state());
            }
            CoreMsg::BeginRole { kind, leader_addr } => {
                let mut joined = Vec::new();
                if let Some(q) = self.quorum.as_mut() {
                    q.peers.clear();
                    let pending = std::mem::take(&mut q.pending);
                    if kind == RoleKind::Lead {
                        joined = pending;
                    }
                    if let (RoleKind::Follow(leader) | RoleKind::Observe(leader), Some(addr)) =
                        (kind, leader_addr)
                    {
                        let link = next_link();
                        let (tx, rx) = mpsc::unbounded_channel();
                        q.peers.insert(leader, PeerLink { link, tx });
                        tokio::spawn(connect_leader(
                            leader,
                            addr,
                            link,
                            q.connect_within,
                            rx,
                            q.core_tx.clone(),
                            q.stop.clone(),
                        ));
                    }
                }
                self.core.step(Input::BeginRole(kind), now);
                for (sid, link, tx, first) in joined {
                    if let Some(q) = self.quorum.as_mut() {
                        q.peers.insert(sid, PeerLink { link, tx });
                    }
                    self.core.step(Input::Peer { from: sid, pkt: first }, now);
                }
            }
            CoreMsg::PeerJoined { sid, link, tx, first } => match self.core.mode() {
                "leader" => {
                    if let Some(q) = self.quorum.as_mut() {
                        q.peers.insert(sid, PeerLink { link, tx });
                        self.core.step(Input::Peer { from: sid, pkt: first }, now);
                    }
                }
                "looking" => {
                    if let Some(q) = self.quorum.as_mut() {
                        q.pending.retain(|p| p.0 != sid);
                        q.pending.push((sid, link, tx, first));
                    }
                }
                _ => {}
            },
            CoreMsg::Peer { link, from, pkt } => {
                if self.current_link(from, link) {
                    self.core.step(Input::Peer { from, pkt }, now);
                }
            }
            CoreMsg::PeerGone { link, from } => {
                if let Some(q) = self.quorum.as_mut() {
                    q.pending.retain(|p| p.1 != link);
                }
                if self.current_link(from, link) {
                    if let Some(q) = self.quorum.as_mut() {
                        q.peers.remove(&from);
                    }
                    self.core.step(Input::PeerGone(from), now);
                }
            }
            CoreMsg::Reloaded(r) => self.core.step(Input::Reloaded(r), now),
            CoreMsg::PeerSnapshot { link, from, zxid, snapshot } => {
                if self.current_link(from, link) {
                    match self.persist_snapshot(zxid, snapshot).await {
                        Ok(snapshot) => self.core.step(Input::PeerSnapshot { zxid, snapshot }, now),
                        Err(e) => self
                            .core
                            .step(Input::LogFailed(format!("writing the leader's snapshot: {e}")), now),
                    }
                }
            }
        }
        true
    }

    fn current_link(&self, peer: i64, link: u64) -> bool {
        self.quorum.as_ref().and_then(|q| q.peers.get(&peer)).is_some_and(|p| p.link == link)
    }

    /// A learner's SNAP goes to disk before the core takes it: the
    /// snapshot file, then the old log is dropped (in order with the log
    /// stage's appends).
    async fn persist_snapshot(
        &mut self,
        zxid: i64,
        snapshot: crate::persist::snapshot::Snapshot,
    ) -> Result<crate::persist::snapshot::Snapshot, String> {
        let dir = self.data_dir.clone();
        let compression = self.snapshot_compression;
        let snapshot = tokio::task::spawn_blocking(move || {
            crate::persist::snapshot::write_snapshot_with(
                &dir,
                zxid,
                &snapshot.sessions,
                compression,
                |sink| snapshot.nodes.iter().try_for_each(|n| sink.push(n.record())),
            )
            .map(|_| snapshot)
            .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        self.log_tx.send(LogCmd::Discard).map_err(|_| "the log thread is gone".to_string())?;
        self.log_behind.0 = self.log_behind.1;
        Ok(snapshot)
    }

    /// Carries out the core's outputs; false when the server must stop.
    fn flush(
        &mut self,
        conns: &mut HashMap<ConnId, ConnHandle>,
        snap_tx: &mpsc::UnboundedSender<Result<i64, String>>,
        now: impl Fn() -> Now,
    ) -> bool {
        let mut keep_going = true;
        // Reused from pass to pass: no allocation per batch of outputs.
        let mut outputs = std::mem::take(&mut self.scratch);
        loop {
            let mut gone = Vec::new();
            outputs.extend(self.core.drain());
            if outputs.is_empty() {
                break;
            }
            for o in outputs.drain(..) {
                match o {
                    Output::Send(conn, out) => {
                        let Some(h) = conns.get(&conn) else { continue };
                        if !self.queue(h, out) {
                            warn!(conn, "client is not reading what it is sent; closing its connection");
                            h.kill.notify_one();
                            conns.remove(&conn);
                            gone.push(conn);
                        }
                    }
                    Output::Kill(conn) => {
                        if let Some(h) = conns.remove(&conn) {
                            h.kill.notify_one();
                        }
                    }
                    Output::Log(cmd) => {
                        match &cmd {
                            LogCmd::Append(t) => self.log_behind.0 = t.header.zxid,
                            LogCmd::Discard => self.log_behind.0 = self.log_behind.1,
                            LogCmd::Roll | LogCmd::Truncate(_) => {}
                        }
                        if self.log_tx.send(cmd).is_err() {
                            self.core.step(Input::LogFailed("the log thread is gone".into()), now());
                        }
                    }
                    Output::Snapshot(job) => {
                        let dir = self.data_dir.clone();
                        let done = snap_tx.clone();
                        let compression = self.snapshot_compression;
                        let task: SnapshotTask = Box::new(move || {
                            let r = crate::persist::log::write_snapshot_job(&dir, compression, job);
                            let _ = done.send(r);
                        });
                        // On the snapshot thread; on the blocking pool if
                        // that thread could not be started.
                        let unsent = match &self.snapshot_worker {
                            Some(w) => w.send(task).err().map(|e| e.0),
                            None => Some(task),
                        };
                        if let Some(task) = unsent {
                            tokio::task::spawn_blocking(task);
                        }
                    }
                    Output::Fatal(why) => {
                        error!(%why, "stopping the server");
                        let _ = self.fatal.send(Some(why));
                        keep_going = false;
                    }
                    Output::Peer { to, pkt } => {
                        if let Some(p) = self.quorum.as_ref().and_then(|q| q.peers.get(&to)) {
                            let _ = p.tx.send(PeerOut::Packet(pkt));
                        }
                    }
                    Output::PeerSnapshot { to, job } => {
                        if let Some(p) = self.quorum.as_ref().and_then(|q| q.peers.get(&to)) {
                            let _ = p.tx.send(PeerOut::Snapshot(job));
                        }
                    }
                    Output::Epoch { accepted, current } => {
                        // Small and rare (once per role): written here, so
                        // that nothing after it is carried out before it is
                        // on disk.
                        let r = accepted
                            .map_or(Ok(()), |e| write_epoch(&self.data_dir, "acceptedEpoch", e))
                            .and_then(|()| {
                                current.map_or(Ok(()), |e| write_epoch(&self.data_dir, "currentEpoch", e))
                            });
                        if let Err(e) = r {
                            self.core.step(Input::LogFailed(format!("writing an epoch file: {e}")), now());
                        }
                    }
                    Output::RoleEnded(why) => {
                        if let Some(q) = self.quorum.as_mut() {
                            q.peers.clear();
                            let _ = q.role_events.send(RoleEvent::Ended(why));
                        }
                    }
                    Output::Reload { after, cfg } => {
                        let Some(tx) = self.quorum.as_ref().map(|q| q.core_tx.clone()) else { continue };
                        tokio::task::spawn_blocking(move || {
                            let r = crate::persist::snapshot::remove_after(&cfg.data_dir, after)
                                .map_err(|e| format!("removing snapshots after {after:#x}: {e}"))
                                .and_then(|n| {
                                    if n > 0 {
                                        tracing::info!(
                                            removed = n,
                                            "removed snapshots past the leader's TRUNC"
                                        );
                                    }
                                    crate::server::recover(&cfg).map(Box::new).map_err(|e| e.to_string())
                                });
                            let _ = tx.send(CoreMsg::Reloaded(r));
                        });
                    }
                    Output::RoleServing(epoch) => {
                        if let Some(q) = self.quorum.as_mut() {
                            let _ = q.role_events.send(RoleEvent::Serving(epoch));
                        }
                    }
                }
            }
            for conn in gone {
                self.core.step(Input::Disconnected { conn }, now());
            }
        }
        self.scratch = outputs;
        self.outstanding.release(self.core.take_answered());
        keep_going
    }

    /// Queues a message for a connection within the byte bounds; false
    /// when the connection must go instead.
    fn queue(&self, h: &ConnHandle, out: Out) -> bool {
        let weight = out_weight(&out);
        let mine = h.queued.fetch_add(weight, Ordering::AcqRel) + weight;
        let all = self.global_queued.fetch_add(weight, Ordering::AcqRel) + weight;
        let over = mine > MAX_QUEUED_BYTES || (all > GLOBAL_QUEUED_BYTES && mine > FAIR_QUEUED_BYTES);
        if over || h.out.try_send(out).is_err() {
            h.queued.fetch_sub(weight, Ordering::AcqRel);
            self.global_queued.fetch_sub(weight, Ordering::AcqRel);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outstanding_waits_at_the_limit_and_wakes_on_release() {
        let o = Outstanding::new(2);
        o.acquire().await;
        o.acquire().await;
        let third = tokio::spawn({
            let o = o.clone();
            async move { o.acquire().await }
        });
        tokio::task::yield_now().await;
        assert!(!third.is_finished(), "a third place is not free");
        o.release(1);
        tokio::time::timeout(std::time::Duration::from_secs(5), third).await.unwrap().unwrap();
        assert_eq!(o.count.load(Ordering::Acquire), 2);
    }
}
