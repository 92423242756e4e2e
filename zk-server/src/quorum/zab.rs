//! ZAB as Apache implements it ("Zab 1.0"), the leader's and the
//! learner's side, as sans-io state machines: quorum packets, log
//! durability and the time in; packets, log commands, deliveries and the
//! end of a role out.
//!
//! ```text
//!  leader                                   learner
//!  ──────                                   ───────
//!  discovery  ◀── FOLLOWERINFO(acceptedEpoch) ──
//!             (a quorum: newEpoch = max + 1, persist acceptedEpoch)
//!             ── LEADERINFO(newEpoch) ──▶    persist acceptedEpoch
//!             ◀── ACKEPOCH(lastZxid, currentEpoch)
//!             (a learner ahead of me: step down)
//!  sync       ── DIFF | TRUNC | SNAP, PROPOSAL/COMMIT... ──▶ log them
//!             ── NEWLEADER ──▶              make the log durable, persist
//!             ◀── ACK(NEWLEADER) ──          currentEpoch, then ACK
//!             (a quorum: established; my whole log is committed)
//!             ── UPTODATE ──▶               serve
//!  broadcast  ── PROPOSAL(zxid) ──▶          log; once durable ──▶ ACK
//!             (a quorum of durable ACKs, in zxid order) ── COMMIT ──▶ deliver
//!             ── PING ──▶ ◀── PING           no word from the leader for
//!  no quorum heard from for syncLimit:       syncLimit ticks: step down
//!  step down
//! ```
//!
//! A learner ACKs NEWLEADER only once every txn of its sync is durable and
//! its new currentEpoch is persisted (the order whose absence lost
//! committed txns in Apache, ZOOKEEPER-4394/4785). Packets are
//! [`QuorumPacket`]s with Apache's types; the txn payload is opaque here.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use zk_proto::records::packet_type as pt;
use zk_proto::records::{LearnerInfo, QuorumPacket};

use super::config::QuorumVerifier;

/// One txn of the history: its zxid and its bytes (a serialised
/// `TxnHeader` and txn in the real server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// The zxid: epoch in the high 32 bits, counter in the low 32.
    pub zxid: i64,
    /// The payload.
    pub data: Bytes,
}

/// What a server keeps on disk for ZAB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durable {
    /// `acceptedEpoch`: the newest epoch this server agreed to join.
    pub accepted_epoch: i64,
    /// `currentEpoch`: the epoch of the leader it last synced with.
    pub current_epoch: i64,
    /// The history up to this zxid is held as state (a snapshot, the
    /// tree), not as txns: a learner further behind gets a SNAP.
    pub base: i64,
    /// The logged txns after `base` that are kept in memory for syncing
    /// learners (the tail of the log, Apache's `committedLog`), in zxid
    /// order.
    pub log: Vec<Txn>,
}

impl Durable {
    /// The last logged zxid (`base` when the window is empty).
    pub fn last_zxid(&self) -> i64 {
        self.log.last().map_or(self.base, |t| t.zxid)
    }

    /// Keeps about `keep` txns in the window, dropping only txns at or
    /// below `committed` (they live on in the state). The window may grow
    /// to a quarter past `keep` before it is cut back, so that cutting it
    /// (moving what stays) is not paid on every commit.
    pub fn trim(&mut self, keep: usize, committed: i64) {
        if self.log.len() <= keep + keep / 4 {
            return;
        }
        let excess = self.log.len() - keep;
        let n = self.log[..excess].partition_point(|t| t.zxid <= committed);
        if n > 0 {
            self.base = self.log[n - 1].zxid;
            self.log.drain(..n);
        }
    }
}

/// How many txns a role keeps in memory for syncing learners by DIFF
/// unless told otherwise (Apache's `commitLogCount` is 500).
pub const DEFAULT_WINDOW: usize = 10_000;

/// What comes into a role.
#[derive(Debug, Clone)]
pub enum ZabIn {
    /// A packet from a peer.
    Packet {
        /// The peer.
        from: i64,
        /// The packet.
        pkt: QuorumPacket,
    },
    /// The log is durable up to this zxid.
    Synced(i64),
    /// A tick of `tickTime` passed.
    Tick,
    /// Leader: replicate this txn (its zxid must be [`Leader::next_zxid`]).
    Propose(Txn),
    /// Learner: the host installed the leader's snapshot (the SNAP that
    /// came with the sync) at this zxid, durably; its log after the
    /// snapshot is gone.
    Snapshot(i64),
}

/// What a role asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZabOut {
    /// Send a packet.
    Send {
        /// The peer.
        to: i64,
        /// The packet.
        pkt: QuorumPacket,
    },
    /// Append to the log (report [`ZabIn::Synced`] when durable).
    Append(Vec<Txn>),
    /// Cut the log after this zxid (a diverged tail), durably.
    Truncate(i64),
    /// Leader: send `to` a SNAP packet with this zxid followed by this
    /// server's state (the committed history up to `zxid`, which is what
    /// the host has applied at this point of the outputs).
    SendSnapshot {
        /// The learner.
        to: i64,
        /// The zxid the state is at.
        zxid: i64,
    },
    /// Persist `acceptedEpoch` (before anything else is sent).
    PersistAcceptedEpoch(i64),
    /// Persist `currentEpoch`.
    PersistCurrentEpoch(i64),
    /// This txn is committed: apply it (in order).
    Deliver(Txn),
    /// The leader is established in this epoch (a quorum synced).
    Established(i64),
    /// The role is over: elect again.
    StepDown(String),
}

fn epoch_of(zxid: i64) -> i64 {
    zxid >> 32
}

fn packet(kind: i32, zxid: i64, data: Option<Bytes>) -> QuorumPacket {
    QuorumPacket { packet_type: kind, zxid, data, authinfo: None }
}

fn int_data(v: i32) -> Bytes {
    Bytes::copy_from_slice(&v.to_be_bytes())
}

fn read_int(data: &Option<Bytes>) -> Option<i32> {
    let mut b = data.clone()?;
    (b.remaining() >= 4).then(|| b.get_i32())
}

/// Limits in ticks.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `initLimit`: discovery and sync.
    pub init: u32,
    /// `syncLimit`: broadcast.
    pub sync: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaderPhase {
    Discovery,
    AwaitAckEpoch,
    AwaitNewLeaderAcks,
    Broadcast,
}

/// The leader's side.
#[derive(Debug)]
pub struct Leader {
    me: i64,
    verifier: QuorumVerifier,
    limits: Limits,
    /// The durable state as this role sees it (the driver mirrors it).
    pub state: Durable,
    phase: LeaderPhase,
    followerinfo: BTreeMap<i64, i64>,
    new_epoch: i64,
    ackepoch: BTreeSet<i64>,
    newleader_acks: BTreeSet<i64>,
    /// Learners that were synced and get proposals and commits.
    forwarding: BTreeSet<i64>,
    /// Learners that said OBSERVERINFO: they get INFORMs, not proposals.
    observers: BTreeSet<i64>,
    /// Learners that got UPTODATE.
    uptodate: BTreeSet<i64>,
    durable_upto: i64,
    committed: i64,
    counter: i64,
    acks: BTreeMap<i64, BTreeSet<i64>>,
    acked_upto: BTreeMap<i64, i64>,
    ticks: u32,
    heard: BTreeMap<i64, u32>,
    window: usize,
    snap_not_trunc: bool,
    /// How far each learner applied its log, when it said (ours do).
    learner_applied: BTreeMap<i64, i64>,
    out: Vec<ZabOut>,
}

impl Leader {
    /// Takes the lead after an election (whose decision said LEADING),
    /// from this server's state: `durable_upto` says how much of its log
    /// is on disk, `applied` what it already applied.
    pub fn new(
        me: i64,
        verifier: QuorumVerifier,
        limits: Limits,
        state: Durable,
        durable_upto: i64,
        applied: i64,
    ) -> Leader {
        let mut l = Leader {
            me,
            verifier,
            limits,
            phase: LeaderPhase::Discovery,
            followerinfo: BTreeMap::new(),
            new_epoch: 0,
            ackepoch: BTreeSet::new(),
            newleader_acks: BTreeSet::new(),
            forwarding: BTreeSet::new(),
            observers: BTreeSet::new(),
            uptodate: BTreeSet::new(),
            durable_upto,
            committed: applied,
            counter: 0,
            acks: BTreeMap::new(),
            acked_upto: BTreeMap::new(),
            ticks: 0,
            heard: BTreeMap::new(),
            window: DEFAULT_WINDOW,
            snap_not_trunc: false,
            learner_applied: BTreeMap::new(),
            out: Vec::new(),
            state,
        };
        l.followerinfo.insert(me, l.state.accepted_epoch);
        l
    }

    /// Keeps at most `n` committed txns in memory for DIFFs (at least 1).
    pub fn set_window(&mut self, n: usize) {
        self.window = n.max(1);
    }

    /// Syncs a learner with a diverged tail by SNAP instead of TRUNC.
    pub fn set_snap_not_trunc(&mut self, yes: bool) {
        self.snap_not_trunc = yes;
    }

    /// The zxid the next proposal must carry.
    pub fn next_zxid(&self) -> i64 {
        (self.new_epoch << 32) | (self.counter + 1)
    }

    /// The last committed zxid.
    pub fn committed(&self) -> i64 {
        self.committed
    }

    /// The last proposed zxid (the committed one when none is pending).
    pub fn last_proposed(&self) -> i64 {
        self.acks.keys().next_back().copied().unwrap_or(self.committed)
    }

    /// Learners that are synced and serving.
    pub fn synced_learners(&self) -> Vec<i64> {
        self.uptodate.iter().copied().collect()
    }

    /// Learners connected (synced or syncing).
    pub fn learners(&self) -> Vec<i64> {
        self.forwarding.iter().copied().collect()
    }

    /// The outputs so far.
    pub fn drain(&mut self) -> Vec<ZabOut> {
        std::mem::take(&mut self.out)
    }

    /// The epoch this leader leads, once chosen.
    pub fn epoch(&self) -> i64 {
        self.new_epoch
    }

    /// Whether a quorum synced with it and it serves.
    pub fn established(&self) -> bool {
        self.phase == LeaderPhase::Broadcast
    }

    fn quorum(&self, set: &BTreeSet<i64>) -> bool {
        self.verifier.contains_quorum(set)
    }

    fn step_down(&mut self, why: String) {
        self.out.push(ZabOut::StepDown(why));
    }

    /// Takes one input.
    pub fn step(&mut self, input: ZabIn) {
        match input {
            ZabIn::Packet { from, pkt } => {
                self.heard.insert(from, self.ticks);
                self.on_packet(from, pkt);
            }
            ZabIn::Synced(z) => {
                self.durable_upto = self.durable_upto.max(z);
                if self.phase == LeaderPhase::AwaitNewLeaderAcks {
                    self.self_ack_newleader();
                }
                if self.phase == LeaderPhase::Broadcast {
                    self.acked_upto.insert(self.me, self.durable_upto);
                    self.try_commit();
                }
            }
            ZabIn::Tick => self.on_tick(),
            ZabIn::Propose(t) => self.propose(t),
            ZabIn::Snapshot(_) => {}
        }
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        let limit = if self.phase == LeaderPhase::Broadcast { self.limits.sync } else { self.limits.init };
        if self.phase != LeaderPhase::Broadcast && self.ticks > self.limits.init {
            return self.step_down(format!("not established within initLimit ({} ticks)", self.limits.init));
        }
        if self.phase == LeaderPhase::Broadcast {
            let mut alive: BTreeSet<i64> = self
                .uptodate
                .iter()
                .filter(|s| self.heard.get(s).is_some_and(|t| self.ticks - t <= limit))
                .copied()
                .collect();
            alive.insert(self.me);
            if !self.quorum(&alive) {
                return self.step_down("lost the quorum of followers (syncLimit)".into());
            }
            for s in self.uptodate.clone() {
                self.out.push(ZabOut::Send { to: s, pkt: packet(pt::PING, self.committed, None) });
            }
        }
    }

    fn on_packet(&mut self, from: i64, pkt: QuorumPacket) {
        match pkt.packet_type {
            pt::FOLLOWERINFO | pt::OBSERVERINFO => {
                let accepted = epoch_of(pkt.zxid);
                if pkt.packet_type == pt::OBSERVERINFO {
                    self.observers.insert(from);
                } else {
                    self.observers.remove(&from);
                }
                // A new connection from this learner: it gets nothing more
                // of the broadcast until it is synced again (else proposals
                // would overtake its sync and leave a hole in its log).
                self.forwarding.remove(&from);
                self.uptodate.remove(&from);
                self.acked_upto.remove(&from);
                self.followerinfo.insert(from, accepted);
                if self.phase == LeaderPhase::Discovery {
                    if self.quorum(&self.followerinfo.keys().copied().collect()) {
                        self.new_epoch = self.followerinfo.values().max().copied().unwrap_or(0) + 1;
                        self.state.accepted_epoch = self.new_epoch;
                        self.out.push(ZabOut::PersistAcceptedEpoch(self.new_epoch));
                        self.ackepoch.insert(self.me);
                        self.phase = LeaderPhase::AwaitAckEpoch;
                        for s in self.followerinfo.keys().copied().collect::<Vec<_>>() {
                            if s != self.me {
                                self.send_leaderinfo(s);
                            }
                        }
                    }
                } else {
                    // A learner joining after the epoch was chosen is told it
                    // (as Apache's getEpochToPropose does once decided); one
                    // that accepted a newer epoch refuses it and elects again.
                    self.send_leaderinfo(from);
                }
            }
            pt::ACKEPOCH => {
                let their_epoch = read_int(&pkt.data).unwrap_or(-1);
                match pkt.data.as_ref().filter(|d| d.len() >= 12) {
                    Some(d) => {
                        let mut d = d.slice(4..);
                        self.learner_applied.insert(from, d.get_i64());
                    }
                    None => {
                        self.learner_applied.remove(&from);
                    }
                }
                let mine = (self.state.current_epoch, self.state.last_zxid());
                if their_epoch != -1 && (i64::from(their_epoch), pkt.zxid) > mine {
                    return self
                        .step_down(format!("server {from} is ahead of me ({their_epoch}, {:#x})", pkt.zxid));
                }
                self.ackepoch.insert(from);
                match self.phase {
                    LeaderPhase::AwaitAckEpoch => {
                        // Sync every learner as its ACKEPOCH comes; the
                        // epoch is established by NEWLEADER's quorum.
                        self.sync_learner(from, pkt.zxid);
                        if self.quorum(&self.ackepoch) {
                            self.phase = LeaderPhase::AwaitNewLeaderAcks;
                            self.state.current_epoch = self.new_epoch;
                            self.out.push(ZabOut::PersistCurrentEpoch(self.new_epoch));
                            self.self_ack_newleader();
                        }
                    }
                    _ => self.sync_learner(from, pkt.zxid),
                }
            }
            pt::ACK => {
                if pkt.zxid == self.new_epoch << 32 {
                    self.newleader_acks.insert(from);
                    if self.phase == LeaderPhase::Broadcast {
                        // Apache's learners ACK UPTODATE with the same zxid:
                        // only a learner not yet up to date gets UPTODATE.
                        if self.uptodate.insert(from) {
                            self.out.push(ZabOut::Send { to: from, pkt: packet(pt::UPTODATE, 0, None) });
                        }
                    } else {
                        self.check_established();
                    }
                } else if self.phase == LeaderPhase::Broadcast {
                    let e = self.acked_upto.entry(from).or_default();
                    *e = (*e).max(pkt.zxid);
                    self.try_commit();
                }
            }
            pt::PING => {}
            _ => {}
        }
    }

    /// The leader counts itself for NEWLEADER once its own log is durable.
    fn self_ack_newleader(&mut self) {
        if self.durable_upto >= self.state.last_zxid() {
            self.newleader_acks.insert(self.me);
            self.check_established();
        }
    }

    fn send_leaderinfo(&mut self, to: i64) {
        let pkt = packet(pt::LEADERINFO, self.new_epoch << 32, Some(int_data(0x10000)));
        self.out.push(ZabOut::Send { to, pkt });
    }

    /// DIFF (what it lacks), TRUNC (a tail it has that the leader does
    /// not) or SNAP (the committed history as state), then NEWLEADER.
    fn sync_learner(&mut self, to: i64, their_last: i64) {
        let mine_last = self.state.last_zxid();
        let base = self.state.base;
        // Before establishment the whole log is committed by NEWLEADER's
        // quorum; during broadcast, only up to the commit point.
        let committed_upto = if self.phase == LeaderPhase::Broadcast { self.committed } else { mine_last };
        let log = &self.state.log;
        let mut pkts = Vec::new();
        let mut snap = None;
        // Ours say how far they applied; Apache's do not, and apply every
        // txn they log only on its COMMIT in this very stream.
        let ours = self.learner_applied.contains_key(&to);
        let may_trunc = !self.snap_not_trunc || !ours;
        // `shared`: how far the learner's log matches mine (`None`: it is
        // behind my window, or shares nothing with it); whether it holds
        // more than that (a tail to cut).
        let in_window = their_last == base || log.binary_search_by_key(&their_last, |t| t.zxid).is_ok();
        let (mut shared, mut has_more) = if their_last >= mine_last {
            (Some(mine_last), their_last > mine_last)
        } else if in_window && their_last >= base {
            (Some(their_last), false)
        } else if their_last > base {
            // Their tail diverged below my last zxid.
            let keep = log.partition_point(|t| t.zxid < their_last);
            (Some(if keep == 0 { base } else { log[keep - 1].zxid }), true)
        } else {
            (None, true)
        };
        // An Apache learner holding txns past the commit point would get
        // their COMMITs without their PROPOSALs (and stop): as Apache's
        // leader does, cut it to the commit point and send them again.
        if let Some(sh) = shared.filter(|sh| !ours && *sh > committed_upto) {
            debug_assert!(sh > committed_upto);
            shared = Some(committed_upto);
            has_more = true;
        }
        // `start`: the first txn to send; `common`: how far the learner's
        // log matches mine after the DIFF, TRUNC or SNAP.
        let (start, common) = match shared {
            Some(sh) if !has_more => {
                pkts.push(packet(pt::DIFF, mine_last, None));
                (log.partition_point(|t| t.zxid <= sh), sh)
            }
            Some(sh) if may_trunc && sh >= base => {
                pkts.push(packet(pt::TRUNC, sh, None));
                (log.partition_point(|t| t.zxid <= sh), sh)
            }
            _ => {
                // The committed history as state, the rest after it.
                let end = log.partition_point(|t| t.zxid <= committed_upto);
                let at = if end == 0 { base } else { log[end - 1].zxid };
                snap = Some(at);
                (end, at)
            }
        };
        if let Some(at) = snap {
            self.out.push(ZabOut::SendSnapshot { to, zxid: at });
        }
        // What the learner already holds is committed up to here: told
        // only to a learner that said it has not applied all of it.
        let upto = common.min(committed_upto);
        if upto > 0 && snap.is_none() && self.learner_applied.get(&to).is_some_and(|a| *a < upto) {
            pkts.push(packet(pt::COMMIT, upto, None));
        }
        let observer = self.observers.contains(&to);
        for t in &log[start..] {
            let committed = t.zxid <= self.committed || self.phase != LeaderPhase::Broadcast;
            if observer && !committed {
                // An observer learns of it by INFORM once it commits.
                continue;
            }
            pkts.push(packet(pt::PROPOSAL, t.zxid, Some(t.data.clone())));
            if committed {
                pkts.push(packet(pt::COMMIT, t.zxid, None));
            }
        }
        pkts.push(packet(pt::NEWLEADER, self.new_epoch << 32, None));
        for pkt in pkts {
            self.out.push(ZabOut::Send { to, pkt });
        }
        self.forwarding.insert(to);
    }

    fn check_established(&mut self) {
        if self.phase != LeaderPhase::AwaitNewLeaderAcks || !self.quorum(&self.newleader_acks) {
            return;
        }
        self.phase = LeaderPhase::Broadcast;
        self.out.push(ZabOut::Established(self.new_epoch));
        // The new leader's whole log is committed now.
        let upto = self.state.last_zxid();
        for t in self.state.log.iter().filter(|t| t.zxid > self.committed).cloned().collect::<Vec<_>>() {
            self.out.push(ZabOut::Deliver(t));
        }
        self.committed = upto;
        for s in self.newleader_acks.clone() {
            if s != self.me {
                self.uptodate.insert(s);
                self.out.push(ZabOut::Send { to: s, pkt: packet(pt::UPTODATE, 0, None) });
            }
        }
        let ticks = self.ticks;
        for s in self.uptodate.clone() {
            self.heard.insert(s, ticks);
        }
    }

    fn propose(&mut self, t: Txn) {
        if self.phase != LeaderPhase::Broadcast {
            return self.step_down("a proposal before the leader was established".into());
        }
        if t.zxid != self.next_zxid() {
            return self.step_down(format!(
                "a proposal out of order: {:#x}, expected {:#x}",
                t.zxid,
                self.next_zxid()
            ));
        }
        self.counter += 1;
        let zxid = t.zxid;
        let data = t.data.clone();
        self.state.log.push(t.clone());
        self.out.push(ZabOut::Append(vec![t]));
        self.acks.insert(zxid, BTreeSet::new());
        for s in self.forwarding.clone() {
            if !self.observers.contains(&s) {
                self.out.push(ZabOut::Send { to: s, pkt: packet(pt::PROPOSAL, zxid, Some(data.clone())) });
            }
        }
    }

    fn try_commit(&mut self) {
        loop {
            let Some((&zxid, _)) = self.acks.iter().next() else { return };
            let mut acked: BTreeSet<i64> =
                self.acked_upto.iter().filter(|(_, z)| **z >= zxid).map(|(s, _)| *s).collect();
            if self.durable_upto >= zxid {
                acked.insert(self.me);
            }
            if !self.quorum(&acked) {
                return;
            }
            self.acks.remove(&zxid);
            self.committed = zxid;
            let txn = self.state.log.iter().find(|t| t.zxid == zxid).cloned();
            for s in self.forwarding.clone() {
                let pkt = if self.observers.contains(&s) {
                    packet(pt::INFORM, zxid, txn.as_ref().map(|t| t.data.clone()))
                } else {
                    packet(pt::COMMIT, zxid, None)
                };
                self.out.push(ZabOut::Send { to: s, pkt });
            }
            if let Some(t) = txn {
                self.out.push(ZabOut::Deliver(t));
            }
            self.state.trim(self.window, self.committed);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LearnerPhase {
    AwaitLeaderInfo,
    Syncing,
    AwaitUptodate,
    Broadcast,
}

/// A follower's (or observer's) side.
#[derive(Debug)]
pub struct Learner {
    leader: i64,
    observer: bool,
    limits: Limits,
    /// The durable state as this role sees it.
    pub state: Durable,
    phase: LearnerPhase,
    new_epoch: i64,
    durable_upto: i64,
    delivered: i64,
    /// Commits received during sync, delivered at UPTODATE.
    sync_committed: i64,
    /// Proposals logged and not yet acknowledged.
    to_ack: Vec<i64>,
    ack_newleader_at: Option<i64>,
    ticks_since_heard: u32,
    window: usize,
    out: Vec<ZabOut>,
}

impl Learner {
    /// Joins `leader` after an election, from this server's state
    /// (`durable_upto`, `applied` as for [`Leader::new`]).
    pub fn new(
        me: i64,
        leader: i64,
        limits: Limits,
        state: Durable,
        durable_upto: i64,
        applied: i64,
    ) -> Learner {
        Self::with_role(me, leader, false, limits, state, durable_upto, applied)
    }

    /// Joins `leader` as an observer (OBSERVERINFO; commits come as
    /// INFORM and it never acknowledges proposals).
    pub fn observer(
        me: i64,
        leader: i64,
        limits: Limits,
        state: Durable,
        durable_upto: i64,
        applied: i64,
    ) -> Learner {
        Self::with_role(me, leader, true, limits, state, durable_upto, applied)
    }

    fn with_role(
        me: i64,
        leader: i64,
        observer: bool,
        limits: Limits,
        state: Durable,
        durable_upto: i64,
        applied: i64,
    ) -> Learner {
        let mut l = Learner {
            leader,
            observer,
            limits,
            phase: LearnerPhase::AwaitLeaderInfo,
            new_epoch: 0,
            durable_upto,
            delivered: applied,
            sync_committed: applied,
            to_ack: Vec::new(),
            ack_newleader_at: None,
            ticks_since_heard: 0,
            window: DEFAULT_WINDOW,
            out: Vec::new(),
            state,
        };
        let mut info = BytesMut::new();
        zk_proto::Record::encode(
            &LearnerInfo { serverid: me, protocol_version: 0x10000, config_version: 0 },
            &mut info,
        );
        let kind = if observer { pt::OBSERVERINFO } else { pt::FOLLOWERINFO };
        let pkt = packet(kind, l.state.accepted_epoch << 32, Some(info.freeze()));
        l.out.push(ZabOut::Send { to: leader, pkt });
        l
    }

    /// The outputs so far.
    pub fn drain(&mut self) -> Vec<ZabOut> {
        std::mem::take(&mut self.out)
    }

    /// Keeps at most `n` committed txns in memory (at least 1).
    pub fn set_window(&mut self, n: usize) {
        self.window = n.max(1);
    }

    /// Whether this learner is an observer.
    pub fn is_observer(&self) -> bool {
        self.observer
    }

    /// The epoch of the leader it syncs with, once told (LEADERINFO).
    pub fn epoch(&self) -> i64 {
        self.new_epoch
    }

    /// The leader it follows.
    pub fn leader(&self) -> i64 {
        self.leader
    }

    /// Whether it is synced and serving.
    pub fn serving(&self) -> bool {
        self.phase == LearnerPhase::Broadcast
    }

    fn send(&mut self, pkt: QuorumPacket) {
        self.out.push(ZabOut::Send { to: self.leader, pkt });
    }

    /// Takes one input.
    pub fn step(&mut self, input: ZabIn) {
        match input {
            ZabIn::Packet { from, pkt } if from == self.leader => {
                self.ticks_since_heard = 0;
                self.on_packet(pkt);
            }
            ZabIn::Packet { .. } | ZabIn::Propose(_) => {}
            ZabIn::Snapshot(zxid) => {
                if self.phase == LearnerPhase::Syncing {
                    self.state.log.clear();
                    self.state.base = zxid;
                    self.durable_upto = zxid;
                    self.delivered = zxid;
                    self.sync_committed = zxid;
                } else {
                    self.out.push(ZabOut::StepDown("a snapshot outside the sync".into()));
                }
            }
            ZabIn::Synced(z) => {
                self.durable_upto = self.durable_upto.max(z);
                self.on_durable();
            }
            ZabIn::Tick => {
                self.ticks_since_heard += 1;
                let limit =
                    if self.phase == LearnerPhase::Broadcast { self.limits.sync } else { self.limits.init };
                if self.ticks_since_heard > limit {
                    self.out.push(ZabOut::StepDown(format!(
                        "no word from leader {} for {limit} ticks",
                        self.leader
                    )));
                }
            }
        }
    }

    fn on_durable(&mut self) {
        if let Some(z) = self.ack_newleader_at {
            if self.durable_upto >= z {
                // Only now: the sync is on disk, then the epoch, then the ACK.
                self.ack_newleader_at = None;
                self.state.current_epoch = self.new_epoch;
                self.out.push(ZabOut::PersistCurrentEpoch(self.new_epoch));
                self.send(packet(pt::ACK, self.new_epoch << 32, None));
            }
        }
        if self.phase == LearnerPhase::Broadcast {
            let durable = self.durable_upto;
            let (done, rest): (Vec<i64>, Vec<i64>) = self.to_ack.iter().partition(|z| **z <= durable);
            self.to_ack = rest;
            for z in done {
                self.send(packet(pt::ACK, z, None));
            }
        }
    }

    fn on_packet(&mut self, pkt: QuorumPacket) {
        match (self.phase, pkt.packet_type) {
            (LearnerPhase::AwaitLeaderInfo, pt::LEADERINFO) => {
                let epoch = epoch_of(pkt.zxid);
                let data = if epoch > self.state.accepted_epoch {
                    self.state.accepted_epoch = epoch;
                    self.out.push(ZabOut::PersistAcceptedEpoch(epoch));
                    self.state.current_epoch as i32
                } else if epoch == self.state.accepted_epoch {
                    -1
                } else {
                    return self.out.push(ZabOut::StepDown(format!(
                        "leader offers epoch {epoch} below my accepted {}",
                        self.state.accepted_epoch
                    )));
                };
                self.new_epoch = epoch;
                self.phase = LearnerPhase::Syncing;
                // Apache's leaders read the epoch and ignore what follows;
                // ours learn how far this learner applied its log, so that
                // they commit its unapplied tail (an Apache learner applied
                // its whole log, and would fail on a COMMIT without its
                // PROPOSAL in the sync).
                let mut b = BytesMut::with_capacity(12);
                b.put_i32(data);
                b.put_i64(self.delivered);
                self.send(packet(pt::ACKEPOCH, self.state.last_zxid(), Some(b.freeze())));
            }
            (LearnerPhase::Syncing, pt::DIFF) => {}
            (LearnerPhase::Syncing, pt::TRUNC) => {
                if pkt.zxid < self.state.base || pkt.zxid < self.delivered {
                    // The host applied past the cut (it replays its whole
                    // log at start-up, as Apache does): it cuts the log,
                    // reads its state back from disk and elects again.
                    self.state.log.retain(|t| t.zxid <= pkt.zxid);
                    self.state.base = self.state.base.min(pkt.zxid);
                    self.durable_upto = self.durable_upto.min(pkt.zxid);
                    self.out.push(ZabOut::Truncate(pkt.zxid));
                    return self.out.push(ZabOut::StepDown(format!(
                        "TRUNC to {:#x} below what this server applied ({:#x})",
                        pkt.zxid, self.delivered
                    )));
                }
                self.state.log.retain(|t| t.zxid <= pkt.zxid);
                self.durable_upto = self.durable_upto.min(pkt.zxid);
                self.out.push(ZabOut::Truncate(pkt.zxid));
            }
            (LearnerPhase::Syncing | LearnerPhase::AwaitUptodate | LearnerPhase::Broadcast, pt::PROPOSAL) => {
                let Some(data) = pkt.data else { return };
                if pkt.zxid <= self.state.last_zxid() {
                    return;
                }
                let t = Txn { zxid: pkt.zxid, data };
                self.state.log.push(t.clone());
                self.out.push(ZabOut::Append(vec![t]));
                if self.phase != LearnerPhase::Syncing && !self.observer {
                    self.to_ack.push(pkt.zxid);
                }
            }
            (LearnerPhase::Syncing, pt::COMMIT) => self.sync_committed = self.sync_committed.max(pkt.zxid),
            (LearnerPhase::Syncing, pt::NEWLEADER) => {
                self.phase = LearnerPhase::AwaitUptodate;
                self.ack_newleader_at = Some(self.state.last_zxid());
                self.on_durable();
            }
            (LearnerPhase::AwaitUptodate, pt::COMMIT) => {
                self.sync_committed = self.sync_committed.max(pkt.zxid)
            }
            (LearnerPhase::AwaitUptodate, pt::UPTODATE) => {
                self.phase = LearnerPhase::Broadcast;
                self.deliver_upto(self.sync_committed);
                self.on_durable();
            }
            (LearnerPhase::Broadcast, pt::COMMIT) => self.deliver_upto(pkt.zxid),
            (LearnerPhase::AwaitUptodate | LearnerPhase::Broadcast, pt::INFORM) if self.observer => {
                let Some(data) = pkt.data else { return };
                if pkt.zxid > self.state.last_zxid() {
                    let t = Txn { zxid: pkt.zxid, data };
                    self.state.log.push(t.clone());
                    self.out.push(ZabOut::Append(vec![t]));
                }
                if self.phase == LearnerPhase::Broadcast {
                    self.deliver_upto(pkt.zxid);
                } else {
                    self.sync_committed = self.sync_committed.max(pkt.zxid);
                }
            }
            // The reply carries the session touches (none here); never null:
            // Apache's leader reads the buffer without a null check.
            (LearnerPhase::Broadcast, pt::PING) => self.send(packet(pt::PING, pkt.zxid, Some(Bytes::new()))),
            _ => {}
        }
    }

    fn deliver_upto(&mut self, zxid: i64) {
        for t in self
            .state
            .log
            .iter()
            .filter(|t| t.zxid > self.delivered && t.zxid <= zxid)
            .cloned()
            .collect::<Vec<_>>()
        {
            self.delivered = t.zxid;
            self.out.push(ZabOut::Deliver(t));
        }
        self.state.trim(self.window, self.delivered);
    }

    /// The last zxid delivered.
    pub fn delivered(&self) -> i64 {
        self.delivered
    }
}
