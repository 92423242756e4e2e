//! The core's side of the ensemble: the ZAB role (leader, follower or
//! observer, from `crate::quorum::zab`) runs inside the core, between prep
//! and apply, so that a write flows
//!
//! ```text
//!  leader:   client ─▶ prep ─▶ txn ─┬─▶ log stage ──Durable──▶ role (self-ACK)
//!                                   └─▶ role: PROPOSAL ─▶ learners ─ACK─▶ role
//!            role: quorum of ACKs ─▶ COMMIT ─▶ learners;  Deliver ─▶ apply ─▶ reply
//!  learner:  client ─▶ REQUEST ─▶ leader ... PROPOSAL ─▶ role ─▶ log stage ─▶ ACK
//!            COMMIT ─▶ role: Deliver ─▶ apply ─▶ reply to the client that asked
//! ```
//!
//! Sessions are global: a learner forwards createSession and closeSession
//! as REQUESTs, reports the sessions its clients touched in its PING
//! replies, and never expires a session itself (the leader does, by a
//! closeSession txn). Between roles (while electing) the core serves no
//! client: every connection is closed when a role ends, as Apache does, and
//! the clients move to a server that serves.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tracing::{debug, info, warn};
use zk_proto::records::{
    ConnectResponse, CreateSessionTxn, ErrorTxn, Id, LoggedTxn, QuorumPacket, SyncResponse, TxnBody,
    TxnHeader, packet_type as pt,
};
use zk_proto::{ErrorCode, OpCode, Record, Request, Response};

use super::core::{Core, InFlight, Origin, Queued};
use super::prep::{Prep, PrepContext};
use super::{ConnId, Output, SnapshotJob};
use crate::persist::snapshot::Snapshot;
use crate::quorum::config::QuorumVerifier;
use crate::quorum::zab::{Durable, Leader, Learner, Limits, Txn, ZabIn, ZabOut};

/// Which role the election gave this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleKind {
    /// Lead.
    Lead,
    /// Follow this leader.
    Follow(i64),
    /// Observe this leader.
    Observe(i64),
}

/// The role being played.
#[derive(Debug)]
pub(crate) enum Role {
    /// Electing: no role, no clients served.
    Looking,
    /// Leading.
    Leader(Box<Leader>),
    /// Following or observing.
    Learner(Box<Learner>),
}

/// A write a learner forwarded and waits to see committed.
#[derive(Debug)]
pub(crate) struct Forwarded {
    pub(super) origin: Origin,
    pub(crate) xid: i32,
}

/// The ensemble's state in the core.
#[derive(Debug)]
pub(crate) struct QuorumCore {
    pub(crate) my_id: i64,
    pub(crate) verifier: QuorumVerifier,
    pub(crate) limits: Limits,
    pub(crate) tick_ms: u64,
    /// The ZAB state between roles (a role holds it while it runs).
    pub(crate) durable: Durable,
    pub(crate) role: Role,
    pub(crate) next_tick: u64,
    /// The last zxid the log stage reported durable.
    pub(crate) log_durable: i64,
    /// Learner: sessions its clients touched since the last PING.
    pub(crate) touched: BTreeMap<i64, i32>,
    /// Learner: forwarded writes and syncs by session, in order.
    pub(super) forwarded: HashMap<i64, VecDeque<Forwarded>>,
    /// Learner: sessions it asked the leader to create.
    pub(super) new_sessions: HashMap<i64, Origin>,
    /// Learner: syncs forwarded, answered in order by the leader's SYNC.
    pub(crate) syncs: VecDeque<(ConnId, i64, i32, String)>,
    /// Leader: learners' syncs, answered once this zxid is committed.
    pub(crate) leader_syncs: Vec<(i64, i64)>,
    /// Whether the role's start of serving was reported.
    pub(crate) serving_reported: bool,
    /// Learner: sessions that moved here, waiting for the leader's word.
    pub(crate) revalidating: HashMap<i64, (ConnId, ConnectResponse)>,
    /// Since when this server has been looking (monotonic ms).
    pub(crate) looking_since: Option<u64>,
    /// Whether it serves read-only clients (`readonlymode.enabled`).
    pub(crate) read_only: bool,
    /// The read-only clients' sessions: local, never replicated.
    pub(crate) ro_sessions: std::collections::HashSet<i64>,
    /// A TRUNC below what this server applied: the log is being cut after
    /// this zxid and the state read back from disk; no role meanwhile.
    pub(crate) reload: Option<i64>,
    /// A role the election decided while reloading, begun once done.
    pub(crate) deferred_role: Option<RoleKind>,
}

impl QuorumCore {
    /// The ensemble's state for a server that recovered up to `zxid`.
    pub(crate) fn new(
        my_id: i64,
        verifier: QuorumVerifier,
        limits: Limits,
        tick_ms: u64,
        epochs: (i64, i64),
        zxid: i64,
    ) -> QuorumCore {
        QuorumCore {
            my_id,
            verifier,
            limits,
            tick_ms: tick_ms.max(1),
            durable: Durable {
                accepted_epoch: epochs.0,
                current_epoch: epochs.1,
                base: zxid,
                log: Vec::new(),
            },
            role: Role::Looking,
            next_tick: 0,
            log_durable: zxid,
            touched: BTreeMap::new(),
            forwarded: HashMap::new(),
            new_sessions: HashMap::new(),
            syncs: VecDeque::new(),
            leader_syncs: Vec::new(),
            serving_reported: false,
            revalidating: HashMap::new(),
            looking_since: None,
            read_only: false,
            ro_sessions: Default::default(),
            reload: None,
            deferred_role: None,
        }
    }
}

/// Encodes a txn as Apache's PROPOSAL data (`TxnHeader`, txn, digest).
pub(crate) fn encode_txn(t: &LoggedTxn) -> Bytes {
    let mut b = BytesMut::new();
    t.encode(&mut b);
    b.freeze()
}

/// Apache's session touches in a learner's PING: (id, timeout) pairs.
fn encode_touches(t: &BTreeMap<i64, i32>) -> Bytes {
    let mut b = BytesMut::with_capacity(t.len() * 12);
    for (id, to) in t {
        b.put_i64(*id);
        b.put_i32(*to);
    }
    b.freeze()
}

impl Core {
    /// Whether this server answers clients now: standalone, an
    /// established leader, or a synced learner.
    pub(crate) fn serving(&self) -> bool {
        match &self.quorum {
            None => true,
            Some(q) => match &q.role {
                Role::Looking => false,
                Role::Leader(l) => l.established(),
                Role::Learner(l) => l.serving(),
            },
        }
    }

    /// Whether this server decides session expiry and runs the container
    /// sweep (standalone, or the established leader).
    pub(super) fn decides(&self) -> bool {
        match &self.quorum {
            None => true,
            Some(q) => matches!(&q.role, Role::Leader(l) if l.established()),
        }
    }

    /// `Mode:` as `srvr` prints it.
    pub(crate) fn mode(&self) -> &'static str {
        match &self.quorum {
            None => "standalone",
            Some(q) => match &q.role {
                Role::Looking if q.read_only => "read-only",
                Role::Looking => "looking",
                Role::Leader(_) => "leader",
                Role::Learner(l) if l.is_observer() => "observer",
                Role::Learner(_) => "follower",
            },
        }
    }

    /// The leader's learners: (connected, synced).
    pub(crate) fn learner_counts(&self) -> Option<(usize, usize)> {
        match self.quorum.as_ref().map(|q| &q.role) {
            Some(Role::Leader(l)) => Some((l.learners().len(), l.synced_learners().len())),
            _ => None,
        }
    }

    /// What an election needs: the last logged zxid and `currentEpoch`.
    pub(crate) fn election_state(&self) -> (i64, i64) {
        match &self.quorum {
            None => (self.tree.last_zxid, 0),
            Some(q) => {
                let state = match &q.role {
                    Role::Looking => &q.durable,
                    Role::Leader(l) => &l.state,
                    Role::Learner(l) => &l.state,
                };
                (state.last_zxid().max(self.tree.last_zxid), state.current_epoch)
            }
        }
    }

    /// The time of the role's next tick, if one runs.
    pub(super) fn role_deadline(&self) -> Option<u64> {
        let q = self.quorum.as_ref()?;
        (!matches!(q.role, Role::Looking)).then_some(q.next_tick)
    }

    /// Runs the role's ticks that are due.
    pub(super) fn role_ticks(&mut self) {
        let now = self.now.mono_ms;
        loop {
            let Some(q) = self.quorum.as_mut() else { return };
            if matches!(q.role, Role::Looking) || q.next_tick > now {
                return;
            }
            q.next_tick += q.tick_ms;
            self.role_step(ZabIn::Tick);
        }
    }

    /// Starts the role the election decided.
    pub(crate) fn begin_role(&mut self, kind: RoleKind) {
        if let Some(q) = self.quorum.as_mut().filter(|q| q.reload.is_some()) {
            info!(?kind, "the election decided while the state is being reloaded; the role waits");
            q.deferred_role = Some(kind);
            return;
        }
        self.leave_read_only();
        let applied = self.tree.last_zxid;
        let now = self.now.mono_ms;
        let Some(q) = self.quorum.as_mut() else { return };
        if !matches!(q.role, Role::Looking) {
            warn!("a role began while another ran; ending the old one");
            self.end_role("a new role began".into(), false);
        }
        let Some(q) = self.quorum.as_mut() else { return };
        let state = std::mem::take(&mut q.durable);
        let durable_upto = q.log_durable.max(state.base);
        q.role = match kind {
            RoleKind::Lead => {
                // A learner with a diverged tail gets a TRUNC, as from
                // Apache's leader (one that applied past the cut reads its
                // state back from disk).
                let l = Leader::new(q.my_id, q.verifier.clone(), q.limits, state, durable_upto, applied);
                Role::Leader(Box::new(l))
            }
            RoleKind::Follow(leader) => {
                Role::Learner(Box::new(Learner::new(q.my_id, leader, q.limits, state, durable_upto, applied)))
            }
            RoleKind::Observe(leader) => Role::Learner(Box::new(Learner::observer(
                q.my_id,
                leader,
                q.limits,
                state,
                durable_upto,
                applied,
            ))),
        };
        q.next_tick = now + q.tick_ms;
        q.serving_reported = false;
        info!(role = self.mode(), "role begins");
        self.pump();
    }

    /// Ends the role: every client connection closes (their requests in
    /// flight are not answered), and the driver is told to elect again.
    pub(crate) fn end_role(&mut self, why: String, report: bool) {
        let Some(q) = self.quorum.as_mut() else { return };
        let role = std::mem::replace(&mut q.role, Role::Looking);
        q.looking_since = Some(self.now.mono_ms);
        q.durable = match role {
            Role::Looking => return,
            Role::Leader(l) => l.state,
            Role::Learner(l) => l.state,
        };
        info!(%why, "role ends; closing every client connection");
        // Every request taken in and not answered frees its place.
        let mut dropped = q.forwarded.values().map(VecDeque::len).sum::<usize>() + q.syncs.len();
        q.forwarded.clear();
        q.new_sessions.clear();
        q.syncs.clear();
        q.leader_syncs.clear();
        q.touched.clear();
        q.revalidating.clear();
        dropped += self.in_flight.iter().filter(|f| matches!(f.origin, Origin::Client { .. })).count();
        dropped +=
            self.queues.values().flat_map(|q| q.iter()).filter(|x| matches!(x, Queued::Read { .. })).count();
        self.answered += dropped;
        self.in_flight.clear();
        self.queues.clear();
        self.prep = Prep::default();
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in conns {
            self.close_conn(c);
        }
        self.session_conn.clear();
        for (id, _) in self.sessions.all() {
            if self.sessions.get(id).is_some_and(|e| e.closing) {
                // A close that was not committed: the session lives on.
                if let Some(e) = self.sessions.remove(id) {
                    self.sessions.add(id, e.timeout_ms, self.now.mono_ms);
                }
            }
        }
        if report {
            self.out.push(Output::RoleEnded(why));
        }
    }

    /// A packet from a peer (the leader, or one of the leader's learners).
    pub(crate) fn on_peer(&mut self, from: i64, pkt: QuorumPacket) {
        tracing::trace!(
            from,
            kind = pkt.packet_type,
            zxid = format_args!("{:#x}", pkt.zxid),
            "quorum packet"
        );
        let Some(q) = self.quorum.as_mut() else { return };
        match (&q.role, pkt.packet_type) {
            (Role::Leader(_), pt::REQUEST) => return self.on_learner_request(from, pkt),
            (Role::Leader(_), pt::REVALIDATE) => return self.on_revalidate(from, pkt),
            (Role::Leader(_), pt::PING) => {
                if let Some(mut d) = pkt.data.clone() {
                    let now = self.now.mono_ms;
                    while d.remaining() >= 12 {
                        let (id, _timeout) = (d.get_i64(), d.get_i32());
                        self.sessions.touch(id, now);
                    }
                }
            }
            (Role::Learner(l), pt::SYNC) if l.serving() => return self.on_sync_done(),
            (Role::Learner(_), pt::REVALIDATE) => return self.on_revalidated(pkt),
            _ => {}
        }
        self.role_step(ZabIn::Packet { from, pkt });
    }

    /// The link to a peer closed: a learner that lost its leader ends the
    /// role at once (no need to wait for syncLimit).
    pub(crate) fn on_peer_gone(&mut self, peer: i64) {
        let lost_leader = matches!(
            self.quorum.as_ref().map(|q| &q.role),
            Some(Role::Learner(l)) if l.leader() == peer
        );
        if lost_leader {
            self.end_role(format!("the connection to leader {peer} closed"), true);
        }
    }

    /// A learner: the leader's snapshot, already on disk (the driver wrote
    /// it and dropped the log it replaces).
    pub(crate) fn install_snapshot(&mut self, zxid: i64, snap: Snapshot) {
        let (tree, sessions) = match crate::server::tree_from_snapshot(snap) {
            Ok(x) => x,
            Err(e) => {
                self.end_role(format!("the leader's snapshot does not make a tree: {e}"), true);
                return;
            }
        };
        info!(zxid = format_args!("{zxid:#x}"), nodes = tree.node_count(), "installed the leader's snapshot");
        self.tree = tree;
        self.prep = Prep::default();
        let now = self.now.mono_ms;
        for (id, _) in self.sessions.all() {
            self.sessions.remove(id);
        }
        for (id, to) in sessions {
            self.sessions.observe_id(id);
            self.sessions.add(id, to, now);
        }
        self.next_zxid = zxid + 1;
        if let Some(q) = self.quorum.as_mut() {
            q.log_durable = zxid;
        }
        self.role_step(ZabIn::Snapshot(zxid));
    }

    /// The log stage cut the log: read the state back if a TRUNC asked.
    pub(super) fn on_log_truncated(&mut self, zxid: i64) {
        if self.quorum.as_ref().is_some_and(|q| q.reload == Some(zxid)) {
            info!(zxid = format_args!("{zxid:#x}"), "log cut; reading the state back from disk");
            self.out.push(Output::Reload { after: zxid, cfg: self.cfg.clone() });
        }
    }

    /// The state read back after a TRUNC: it replaces the tree and the
    /// sessions, and the role the election decided meanwhile begins.
    pub(super) fn on_reloaded(&mut self, r: Result<Box<super::core::Recovered>, String>) {
        let rec = match r {
            Ok(rec) => rec,
            Err(e) => return self.fail(format!("reloading the state after a TRUNC: {e}")),
        };
        let now = self.now.mono_ms;
        let rec = *rec;
        info!(
            zxid = format_args!("{:#x}", rec.tree.last_zxid),
            nodes = rec.tree.node_count(),
            "state reloaded"
        );
        let config = self.tree.get("/zookeeper/config").and_then(|n| n.data_bytes());
        self.tree = rec.tree;
        if let Some(c) = config {
            self.tree.set_config(c);
        }
        self.prep = Prep::default();
        for (id, _) in self.sessions.all() {
            self.sessions.remove(id);
        }
        for (id, to) in rec.sessions {
            self.sessions.observe_id(id);
            self.sessions.add(id, to, now);
        }
        self.next_zxid = self.tree.last_zxid + 1;
        let last = self.tree.last_zxid;
        let Some(q) = self.quorum.as_mut() else { return };
        q.reload = None;
        q.log_durable = last;
        q.durable.base = rec.tail_base;
        q.durable.log =
            rec.log_tail.iter().map(|t| Txn { zxid: t.header.zxid, data: encode_txn(t) }).collect();
        if q.durable.last_zxid() != last {
            q.durable.base = last;
            q.durable.log.clear();
        }
        if let Some(kind) = q.deferred_role.take() {
            self.begin_role(kind);
        }
    }

    /// The log stage made everything up to `zxid` durable.
    pub(super) fn on_durable(&mut self, zxid: i64) {
        if let Some(q) = self.quorum.as_mut() {
            q.log_durable = q.log_durable.max(zxid);
            self.role_step(ZabIn::Synced(zxid));
        }
    }

    /// Leader: replicate a txn the core prepped (already queued in flight
    /// and for the log stage).
    pub(super) fn propose(&mut self, txn: &LoggedTxn) {
        let t = Txn { zxid: txn.header.zxid, data: encode_txn(txn) };
        self.role_step(ZabIn::Propose(t));
    }

    /// Whether this server is a learner (writes go to the leader).
    pub(super) fn is_learner(&self) -> bool {
        matches!(self.quorum.as_ref().map(|q| &q.role), Some(Role::Learner(_)))
    }

    /// Whether this server leads (its txns go through the quorum).
    pub(super) fn is_leader(&self) -> bool {
        matches!(self.quorum.as_ref().map(|q| &q.role), Some(Role::Leader(_)))
    }

    fn leader_id(&self) -> Option<i64> {
        match self.quorum.as_ref().map(|q| &q.role) {
            Some(Role::Learner(l)) => Some(l.leader()),
            _ => None,
        }
    }

    /// Learner: a session's client touched it.
    pub(super) fn note_touch(&mut self, session: i64) {
        let timeout = self.sessions.get(session).map_or(0, |e| e.timeout_ms);
        if let Some(q) = self.quorum.as_mut() {
            if matches!(q.role, Role::Learner(_)) {
                q.touched.insert(session, timeout);
            }
        }
    }

    /// Learner: sends a request to the leader as Apache's `Learner.request`
    /// does: session id, cxid, type, then the request's body.
    fn forward(&mut self, session: i64, cxid: i32, op: OpCode, body: Bytes, auth: Vec<Id>) {
        let Some(leader) = self.leader_id() else { return };
        let mut b = BytesMut::with_capacity(16 + body.len());
        b.put_i64(session);
        b.put_i32(cxid);
        b.put_i32(op.code());
        b.put_slice(&body);
        let authinfo = Some(auth);
        let pkt = QuorumPacket { packet_type: pt::REQUEST, zxid: -1, data: Some(b.freeze()), authinfo };
        self.out.push(Output::Peer { to: leader, pkt });
    }

    /// Learner: a new session is created by the leader.
    pub(super) fn forward_create_session(&mut self, id: i64, timeout: i32, origin: Origin) {
        if let Some(q) = self.quorum.as_mut() {
            q.new_sessions.insert(id, origin);
        }
        self.forward(
            id,
            0,
            OpCode::CreateSession,
            Bytes::copy_from_slice(&timeout.to_be_bytes()),
            Vec::new(),
        );
    }

    /// Learner: a client's write goes to the leader; its reply is sent when
    /// the txn comes back committed.
    pub(super) fn forward_write(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        req: &Request,
        origin: Origin,
    ) {
        let auth = self.conns.get(&conn).map(|c| c.auth.clone()).unwrap_or_default();
        if let Some(q) = self.quorum.as_mut() {
            q.forwarded.entry(session).or_default().push_back(Forwarded { origin, xid });
        }
        self.queues.entry(session).or_default().push_back(Queued::Forwarded(xid));
        self.forward(session, xid, req.opcode(), req.body_bytes(), auth);
    }

    /// Learner: a sync goes to the leader, and is answered when the
    /// leader's SYNC comes back (after every commit before it).
    pub(super) fn forward_sync(&mut self, conn: ConnId, session: i64, xid: i32, req: &Request) {
        let path = req.path().unwrap_or("/").to_string();
        if let Some(q) = self.quorum.as_mut() {
            q.syncs.push_back((conn, session, xid, path));
        }
        self.queues.entry(session).or_default().push_back(Queued::Forwarded(xid));
        self.forward(session, xid, OpCode::Sync, req.body_bytes(), Vec::new());
    }

    fn on_sync_done(&mut self) {
        let Some((conn, session, xid, path)) = self.quorum.as_mut().and_then(|q| q.syncs.pop_front()) else {
            return warn!("a SYNC from the leader that no one asked for");
        };
        let h = zk_proto::records::ReplyHeader { xid, zxid: self.tree.last_zxid, err: ErrorCode::Ok };
        self.reply(conn, h, Some(Response::Sync(SyncResponse { path })));
        self.release_queue(session, |q| matches!(q, Queued::Forwarded(x) if *x == xid));
    }

    /// Leader: a learner's REQUEST.
    fn on_learner_request(&mut self, from: i64, pkt: QuorumPacket) {
        let Some(mut d) = pkt.data.filter(|d| d.len() >= 16) else {
            return warn!(from, "a REQUEST without its header");
        };
        let session = d.get_i64();
        let cxid = d.get_i32();
        let op = OpCode::from(d.get_i32());
        let now = self.now.mono_ms;
        if !self.decides() {
            return debug!(from, "a REQUEST before the leader is established");
        }
        match op {
            OpCode::Sync => {
                let (proposed, committed) = match self.quorum.as_ref().map(|q| &q.role) {
                    Some(Role::Leader(l)) => (l.last_proposed(), l.committed()),
                    _ => return,
                };
                if proposed <= committed {
                    self.out.push(Output::Peer { to: from, pkt: sync_packet() });
                } else if let Some(q) = self.quorum.as_mut() {
                    q.leader_syncs.push((proposed, from));
                }
                return;
            }
            OpCode::CreateSession => {
                let timeout =
                    if d.remaining() >= 4 { d.get_i32() } else { self.cfg.min_session().as_millis() as i32 };
                self.sessions.observe_id(session);
                self.sessions.add(session, timeout, now);
                let zxid = self.take_zxid();
                let header = TxnHeader {
                    client_id: session,
                    cxid,
                    zxid,
                    time: self.now.wall_ms,
                    txn_type: OpCode::CreateSession,
                };
                let body = TxnBody::CreateSession(CreateSessionTxn { time_out: timeout });
                return self.submit(LoggedTxn { header, body, digest: None }, Origin::Internal);
            }
            _ => {}
        }
        let req = match Request::decode(op, d) {
            Ok(r) => r,
            Err(e) => return warn!(from, op = %op, error = %e, "a REQUEST that does not decode"),
        };
        if !super::core::is_write(&req) {
            return debug!(from, op = %op, "a REQUEST for a read; ignored");
        }
        let zxid = self.take_zxid();
        let known =
            self.sessions.get(session).is_some_and(|e| !e.closing) && self.sessions.touch(session, now);
        let (txn_type, body) = if !known {
            (OpCode::Error, TxnBody::Error(ErrorTxn { err: ErrorCode::SessionExpired.code() }))
        } else if let Request::CloseSession = req {
            self.sessions.set_closing(session);
            self.prep.prep_close_session(&self.tree, session, zxid)
        } else {
            let auth = pkt.authinfo.unwrap_or_default();
            let ctx = PrepContext {
                session_id: session,
                auth: &auth,
                zxid,
                extended_types: self.cfg.extended_types_enabled,
                enforce_quota: self.cfg.enforce_quota,
            };
            self.prep.prep(&self.tree, ctx, &req)
        };
        let header = TxnHeader { client_id: session, cxid, zxid, time: self.now.wall_ms, txn_type };
        self.submit(LoggedTxn { header, body, digest: None }, Origin::Internal);
    }

    /// Learner: asks the leader about a session that moved here, as
    /// Apache's `Learner.validateSession` (session id, timeout).
    pub(super) fn revalidate(&mut self, id: i64, conn: ConnId, rsp: ConnectResponse) {
        let Some(leader) = self.leader_id() else { return };
        let mut b = BytesMut::with_capacity(12);
        b.put_i64(id);
        b.put_i32(rsp.time_out);
        if let Some(q) = self.quorum.as_mut() {
            q.revalidating.insert(id, (conn, rsp));
        }
        let pkt =
            QuorumPacket { packet_type: pt::REVALIDATE, zxid: -1, data: Some(b.freeze()), authinfo: None };
        self.out.push(Output::Peer { to: leader, pkt });
    }

    /// Learner: the leader's word on a moved session.
    fn on_revalidated(&mut self, pkt: QuorumPacket) {
        let Some(mut d) = pkt.data.filter(|d| d.len() >= 9) else { return };
        let id = d.get_i64();
        let valid = d.get_u8() != 0;
        let Some((conn, rsp)) = self.quorum.as_mut().and_then(|q| q.revalidating.remove(&id)) else { return };
        if !self.conns.contains_key(&conn) {
            return;
        }
        if valid {
            self.out.push(Output::Send(conn, super::Out::Connected(rsp)));
        } else {
            info!(session = format_args!("{id:#x}"), "the leader says the session expired");
            let expired =
                ConnectResponse { time_out: 0, session_id: 0, passwd: Bytes::from_static(&[0; 16]), ..rsp };
            self.out.push(Output::Send(conn, super::Out::Connected(expired)));
            self.close_conn(conn);
        }
    }

    /// Leader: a learner asks whether a session that moved to it is valid.
    fn on_revalidate(&mut self, from: i64, pkt: QuorumPacket) {
        let Some(mut d) = pkt.data.filter(|d| d.len() >= 12) else { return };
        let session = d.get_i64();
        let valid = self.sessions.touch(session, self.now.mono_ms);
        let mut b = BytesMut::with_capacity(9);
        b.put_i64(session);
        b.put_u8(u8::from(valid));
        let pkt =
            QuorumPacket { packet_type: pt::REVALIDATE, zxid: -1, data: Some(b.freeze()), authinfo: None };
        self.out.push(Output::Peer { to: from, pkt });
    }

    /// Feeds the role one input and carries out what it asks.
    pub(super) fn role_step(&mut self, input: ZabIn) {
        let Some(q) = self.quorum.as_mut() else { return };
        match &mut q.role {
            Role::Looking => return,
            Role::Leader(l) => l.step(input),
            Role::Learner(l) => l.step(input),
        }
        self.pump();
    }

    /// Carries out the role's outputs until it has none.
    fn pump(&mut self) {
        loop {
            let serving = self.serving();
            let Some(q) = self.quorum.as_mut() else { return };
            if serving && !q.serving_reported {
                q.serving_reported = true;
                let epoch = match &q.role {
                    Role::Leader(l) => l.epoch(),
                    Role::Learner(l) => l.epoch(),
                    Role::Looking => 0,
                };
                self.out.push(Output::RoleServing(epoch));
            }
            let Some(q) = self.quorum.as_mut() else { return };
            let outs = match &mut q.role {
                Role::Looking => return,
                Role::Leader(l) => l.drain(),
                Role::Learner(l) => l.drain(),
            };
            if outs.is_empty() {
                return;
            }
            let leading = self.is_leader();
            for o in outs {
                match o {
                    ZabOut::Send { to, mut pkt } => {
                        if !leading && pkt.packet_type == pt::PING {
                            if let Some(q) = self.quorum.as_mut() {
                                pkt.data = Some(encode_touches(&q.touched));
                                q.touched.clear();
                            }
                        }
                        self.out.push(Output::Peer { to, pkt });
                    }
                    ZabOut::Append(txns) => {
                        // The leader logged its proposals when it prepped them.
                        if !leading {
                            for t in txns {
                                match LoggedTxn::decode(&mut t.data.clone()) {
                                    Ok(txn) => self.out.push(Output::Log(super::LogCmd::Append(txn))),
                                    Err(e) => {
                                        return self.end_role(
                                            format!("a proposal {:#x} that does not decode: {e}", t.zxid),
                                            true,
                                        );
                                    }
                                }
                            }
                        }
                    }
                    ZabOut::Truncate(z) => {
                        // The log stage cuts the log (in order with the
                        // appends before and after).
                        self.out.push(Output::Log(super::LogCmd::Truncate(z)));
                        if let Some(q) = self.quorum.as_mut() {
                            q.log_durable = q.log_durable.min(z);
                        }
                        if z < self.tree.last_zxid {
                            // Recovery replayed the whole log, a tail the
                            // quorum never committed included: as Apache,
                            // read the state back from disk once the log
                            // is cut, then elect and sync again.
                            let applied = self.tree.last_zxid;
                            if let Some(q) = self.quorum.as_mut() {
                                q.reload = Some(z);
                            }
                            return self.end_role(
                                format!(
                                    "the leader's TRUNC to {z:#x} is below what this server applied \
                                     ({applied:#x}); reloading the state from disk"
                                ),
                                true,
                            );
                        }
                    }
                    ZabOut::SendSnapshot { to, zxid } => {
                        if zxid != self.tree.last_zxid {
                            let why = format!(
                                "a snapshot at {zxid:#x} asked while the tree is at {:#x}",
                                self.tree.last_zxid
                            );
                            return self.end_role(why, true);
                        }
                        let view = self.tree.snapshot_view();
                        let job = SnapshotJob { zxid, sessions: self.sessions.all(), view };
                        self.out.push(Output::PeerSnapshot { to, job });
                    }
                    ZabOut::PersistAcceptedEpoch(e) => {
                        self.out.push(Output::Epoch { accepted: Some(e), current: None })
                    }
                    ZabOut::PersistCurrentEpoch(e) => {
                        self.out.push(Output::Epoch { accepted: None, current: Some(e) })
                    }
                    ZabOut::Deliver(t) => {
                        self.deliver(t);
                        if leading {
                            self.answer_leader_syncs();
                        }
                    }
                    ZabOut::Established(epoch) => {
                        info!(epoch, "leading: a quorum is synced; serving");
                        self.next_zxid = (epoch << 32) + 1;
                        // Every session starts a fresh timeout under a new
                        // leader (its learners' touches were not seen).
                        let now = self.now.mono_ms;
                        for (id, _) in self.sessions.all() {
                            self.sessions.touch(id, now);
                        }
                    }
                    ZabOut::StepDown(why) => return self.end_role(why, true),
                }
            }
        }
    }

    fn answer_leader_syncs(&mut self) {
        let committed = match self.quorum.as_ref().map(|q| &q.role) {
            Some(Role::Leader(l)) => l.committed(),
            _ => return,
        };
        let Some(q) = self.quorum.as_mut() else { return };
        let (due, rest): (Vec<_>, Vec<_>) = q.leader_syncs.drain(..).partition(|(z, _)| *z <= committed);
        q.leader_syncs = rest;
        for (_, to) in due {
            self.out.push(Output::Peer { to, pkt: sync_packet() });
        }
    }

    /// A committed txn: applied in order, answering whoever waits here.
    fn deliver(&mut self, t: Txn) {
        if self.in_flight.front().is_some_and(|f| f.txn.header.zxid == t.zxid) {
            if let Some(f) = self.in_flight.pop_front() {
                self.apply(f);
            }
        } else {
            let txn = match LoggedTxn::decode(&mut t.data.clone()) {
                Ok(txn) => txn,
                Err(e) => {
                    return self
                        .end_role(format!("a committed txn {:#x} that does not decode: {e}", t.zxid), true);
                }
            };
            if txn.header.zxid <= self.tree.last_zxid {
                return;
            }
            let origin = self.origin_of(&txn);
            self.apply(InFlight { txn, origin });
        }
        self.next_zxid = self.next_zxid.max(t.zxid + 1);
        self.maybe_snapshot();
    }

    /// Who waits here for a committed txn that came from the leader.
    fn origin_of(&mut self, txn: &LoggedTxn) -> Origin {
        let session = txn.header.client_id;
        let closes = matches!(txn.body, TxnBody::CloseSession(_));
        let Some(q) = self.quorum.as_mut() else { return Origin::Internal };
        if txn.header.txn_type == OpCode::CreateSession {
            return q.new_sessions.remove(&session).unwrap_or(Origin::Internal);
        }
        if let Some(list) = q.forwarded.get_mut(&session) {
            if list.front().is_some_and(|f| f.xid == txn.header.cxid) {
                if let Some(f) = list.pop_front() {
                    if list.is_empty() {
                        q.forwarded.remove(&session);
                    }
                    return f.origin;
                }
            }
        }
        if closes { Origin::Expire } else { Origin::Internal }
    }
}

fn sync_packet() -> QuorumPacket {
    QuorumPacket { packet_type: pt::SYNC, zxid: 0, data: None, authinfo: None }
}
