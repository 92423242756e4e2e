//! A deterministic simulation of an ensemble: the election and the ZAB
//! roles of 3 or 5 servers, driven by one seeded generator through a
//! network that delays, drops, duplicates and reorders (election
//! messages) and partitions (one server, or two of five, cut off from the
//! rest), with crashes that lose what was not fsynced and clocks that
//! drift (each server's tick is up to a fifth fast or slow). After every
//! step, checkers watch from outside:
//!
//! - every server applies one and the same sequence of txns (a prefix of
//!   the history), in zxid order;
//! - a txn committed by a leader (what a client would be acknowledged) is
//!   in the log of every leader established after it;
//! - at most one leader is established per epoch;
//! - nothing a server applied is ever truncated;
//! - an observer (fed by INFORM) applies the same history and never
//!   counts towards a quorum.
//!
//! Clients run against it too: each keeps one operation at a time on a
//! serving server of its choice (moving when that server stops serving or
//! it times out), writing a key of a small key space or reading it after
//! a `sync`. Learners forward writes and syncs to the leader as REQUESTs,
//! the leader answers a sync with SYNC once every txn it had proposed is
//! committed, and a write is answered when the client's server applies it
//! (as `pipeline/quorum.rs` does). The history of every key is checked
//! for linearizability (`lincheck.rs`); a write whose answer never came may
//! or may not have taken effect. A learner that answered a read after
//! `sync` from its own state without the leader's SYNC, or a leader that
//! answered a write once proposed rather than committed, fails the first
//! seeds. (The leader's wait for its pending proposals before SYNC is
//! Apache's; linearizability needs only the SYNC's place after the
//! COMMITs on the connection.) Reads at a deposed leader that has not yet
//! noticed rely, as in Apache, on it stepping down within syncLimit
//! before a new leader can be established; the drift simulated keeps
//! that true.
//!
//! A failing run prints its seed; `ZK_SIM_SEEDS=<n>` runs more seeds (a
//! soak), `ZK_SIM_SEED=<seed>` replays one and `ZK_SIM_TRACE=1` prints its
//! role changes. `cargo test` runs 1,500 seeds of 3 servers, 800 of 5 and
//! 400 of 3 voters with an observer (about 75 s in a debug build): enough
//! to catch a learner that ACKs NEWLEADER before its sync is durable
//! (ZOOKEEPER-4394's class of bug). After the faults stop and the last
//! write, every server must come to apply the whole history.
//!
//! Simplifications, each on the safe side of what a real server does:
//! election messages may be lost, ZAB packets travel in order on
//! connections that a partition or a crash cuts (as TCP); truncating or
//! replacing a log is durable at once.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zk_proto::records::{QuorumPacket, packet_type as pt};

use super::config::{LearnerType, QuorumVerifier};
use super::election::{Decision, Election, ElectionOut, Identity, answer_when_settled};
use super::lincheck::{self, Kind};
use super::wire::{Notification, PeerState};
use super::zab::{Durable, Leader, Learner, Limits, Txn, ZabIn, ZabOut};

const TICK_MS: u64 = 50;
const LIMITS: Limits = Limits { init: 10, sync: 5 };
/// The clients' key space.
const KEYS: u8 = 3;
const CLIENTS: usize = 4;
/// A client gives up on an operation after this long.
const CLIENT_TIMEOUT_MS: u64 = 3_000;

/// What a server does for its clients (reset when its role changes, as
/// the real server drops its connections' pending work).
#[derive(Default)]
struct Serve {
    /// Writes waiting to be applied here: operation -> client.
    writes: BTreeMap<usize, usize>,
    /// Learner: syncs sent to the leader, answered in order by SYNC:
    /// (client, operation, key).
    syncs: VecDeque<(usize, usize, u8)>,
    /// Leader: learners' syncs, answered once this zxid is committed.
    leader_syncs: Vec<(i64, i64)>,
}

/// One client operation of the history.
#[derive(Clone, Copy)]
struct HistOp {
    key: u8,
    op: lincheck::Op,
}

struct Pending {
    op: usize,
    server: i64,
    inst: u64,
    deadline: u64,
}

#[derive(Default)]
struct Client {
    server: Option<i64>,
    pending: Option<Pending>,
    idle_until: u64,
}

/// A client's write as a txn's payload.
fn client_txn(op: usize, key: u8, value: u64) -> Bytes {
    Bytes::from(format!("c{op}:{key}:{value}"))
}

fn parse_client_txn(data: &[u8]) -> Option<(usize, u8, u64)> {
    let s = std::str::from_utf8(data).ok()?.strip_prefix(['c', 'W'])?;
    let mut it = s.split(':');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

enum Role {
    Looking(Election),
    Leading(Leader, Decision),
    Following(Learner, Decision),
    Down(u64),
}

struct Peer {
    id: i64,
    role: Role,
    /// Which incarnation of a role is running (a connection's identity).
    inst: u64,
    /// The instance of the other end of this server's ZAB connections.
    links: BTreeMap<i64, u64>,
    disk: Durable,
    /// Log entries not yet fsynced (lost on a crash), and when the fsync
    /// completes.
    volatile: Vec<Txn>,
    fsync_at: Option<u64>,
    applied: Vec<Txn>,
    last_round: i64,
    /// The clients' keys as applied here.
    kv: BTreeMap<u8, u64>,
    serve: Serve,
    /// This server's tick in the simulation's time: clocks drift.
    tick_ms: u64,
}

enum Msg {
    Vote(Notification),
    Zab { from_inst: u64, to_inst: Option<u64>, pkt: QuorumPacket },
}

struct Envelope {
    at: u64,
    from: i64,
    to: i64,
    msg: Msg,
}

struct Sim {
    rng: StdRng,
    now: u64,
    n: i64,
    verifier: QuorumVerifier,
    observers: BTreeSet<i64>,
    peers: Vec<Peer>,
    flight: VecDeque<Envelope>,
    /// The last delivery time per directed link (keeps ZAB in order).
    link_clock: BTreeMap<(i64, i64), u64>,
    isolated: BTreeSet<i64>,
    /// ZAB connections a partition broke, by both ends' instances
    /// (server, instance, peer, peer's instance): nothing more travels on
    /// them (as on a reset TCP connection).
    broken: BTreeSet<(i64, u64, i64, u64)>,
    next_inst: u64,
    /// Whether faults are being injected.
    chaos: bool,
    /// No more client writes.
    quiet: bool,
    // What the checkers know.
    history: Vec<Txn>,
    acked: Vec<Txn>,
    established: BTreeMap<i64, i64>,
    proposals: u64,
    /// Each seed runs with a window of txns kept in memory (small ones
    /// force SNAPs) and with TRUNC or SNAP for diverged learners.
    window: usize,
    snap_not_trunc: bool,
    clients: Vec<Client>,
    ops: Vec<HistOp>,
    /// The logical clock of calls and returns.
    seq: u64,
}

/// The simulation's state transfer: the history as counted txns (the real
/// server ships its tree).
fn encode_history(log: &[Txn]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u32(log.len() as u32);
    for t in log {
        b.put_i64(t.zxid);
        b.put_u32(t.data.len() as u32);
        b.put_slice(&t.data);
    }
    b.freeze()
}

fn decode_history(mut b: Bytes) -> Vec<Txn> {
    let n = b.get_u32() as usize;
    (0..n)
        .map(|_| {
            let zxid = b.get_i64();
            let len = b.get_u32() as usize;
            Txn { zxid, data: b.split_to(len) }
        })
        .collect()
}

/// `maxNotificationInterval` in the simulation (an operator's setting;
/// Apache's default of 60 s would make a healed server wait that long).
const MAX_NOTIFICATION_INTERVAL_MS: u64 = 2_000;

fn looking(
    id: i64,
    verifier: &QuorumVerifier,
    last_round: i64,
    last_zxid: i64,
    epoch: i64,
    now: u64,
) -> Election {
    let mut e = Election::start(identity(id, verifier), last_round, last_zxid, epoch, now);
    e.set_max_notification_interval(MAX_NOTIFICATION_INTERVAL_MS);
    e
}

fn identity(id: i64, verifier: &QuorumVerifier) -> Identity {
    let learner_type = if verifier.is_voter(id) { LearnerType::Participant } else { LearnerType::Observer };
    Identity { my_id: id, learner_type, verifier: verifier.clone(), config: Bytes::new() }
}

impl Sim {
    fn new(seed: u64, n: i64, observers: &[i64]) -> Sim {
        let observers: BTreeSet<i64> = observers.iter().copied().collect();
        let verifier =
            QuorumVerifier::Majority { voters: (1..=n).filter(|s| !observers.contains(s)).collect() };
        let mut sim = Sim {
            // The same seed gives other runs for other ensembles.
            rng: StdRng::seed_from_u64(seed ^ ((n as u64) << 56) ^ ((observers.len() as u64) << 48)),
            now: 0,
            n,
            peers: Vec::new(),
            flight: VecDeque::new(),
            link_clock: BTreeMap::new(),
            isolated: BTreeSet::new(),
            broken: BTreeSet::new(),
            next_inst: 1,
            chaos: true,
            quiet: false,
            history: Vec::new(),
            acked: Vec::new(),
            established: BTreeMap::new(),
            proposals: 0,
            window: 1,
            snap_not_trunc: false,
            clients: (0..CLIENTS).map(|_| Client::default()).collect(),
            ops: Vec::new(),
            seq: 0,
            verifier,
            observers,
        };
        sim.window = [1usize, 3, 20, 1000][sim.rng.gen_range(0..4)];
        sim.snap_not_trunc = sim.rng.gen_bool(0.5);
        for id in 1..=n {
            let e = looking(id, &sim.verifier, 0, 0, 0, 0);
            sim.peers.push(Peer {
                id,
                role: Role::Looking(e),
                inst: 0,
                links: BTreeMap::new(),
                disk: Durable::default(),
                volatile: Vec::new(),
                fsync_at: None,
                applied: Vec::new(),
                last_round: 0,
                kv: BTreeMap::new(),
                serve: Serve::default(),
                tick_ms: 0,
            });
        }
        for i in 0..sim.peers.len() {
            // Clocks run up to a fifth fast or slow.
            sim.peers[i].tick_ms = sim.rng.gen_range(TICK_MS * 4 / 5..=TICK_MS * 6 / 5);
            sim.flush(i);
        }
        sim
    }

    fn idx(&self, id: i64) -> usize {
        (id - 1) as usize
    }

    fn cut(&self, a: i64, b: i64) -> bool {
        self.isolated.contains(&a) != self.isolated.contains(&b)
    }

    fn send(&mut self, from: i64, to: i64, msg: Msg) {
        if self.is_broken(from, to, &msg) {
            return;
        }
        if self.cut(from, to) {
            self.break_link(from, to, &msg);
            return;
        }
        let delay = self.rng.gen_range(1..15);
        let at = match &msg {
            Msg::Vote(n) => {
                if self.rng.gen_bool(0.1) {
                    return;
                }
                if self.rng.gen_bool(0.05) {
                    // Delivered twice (the second copy later, out of order).
                    let again = self.now + self.rng.gen_range(1..40);
                    self.flight.push_back(Envelope { at: again, from, to, msg: Msg::Vote(n.clone()) });
                }
                self.now + delay
            }
            Msg::Zab { .. } => {
                let c = self.link_clock.entry((from, to)).or_default();
                *c = (*c).max(self.now + delay);
                *c
            }
        };
        self.flight.push_back(Envelope { at, from, to, msg });
    }

    /// The connection a ZAB packet travels on: both ends' instances.
    fn connection(&self, to: i64, msg: &Msg) -> Option<(u64, u64)> {
        match msg {
            Msg::Zab { from_inst, to_inst, .. } => {
                Some((*from_inst, to_inst.unwrap_or(self.peers[self.idx(to)].inst)))
            }
            Msg::Vote(_) => None,
        }
    }

    fn is_broken(&self, from: i64, to: i64, msg: &Msg) -> bool {
        self.connection(to, msg).is_some_and(|(fi, ti)| self.broken.contains(&(from, fi, to, ti)))
    }

    /// A partition resets the ZAB connection a packet was on, both ways.
    fn break_link(&mut self, from: i64, to: i64, msg: &Msg) {
        if let Some((fi, ti)) = self.connection(to, msg) {
            self.broken.insert((from, fi, to, ti));
            self.broken.insert((to, ti, from, fi));
        }
    }

    /// Carries out what peer `i`'s role asked for.
    fn flush(&mut self, i: usize) {
        loop {
            let id = self.peers[i].id;
            let inst = self.peers[i].inst;
            let outs: Vec<Out> = match &mut self.peers[i].role {
                Role::Looking(e) => e.drain().into_iter().map(Out::Election).collect(),
                Role::Leading(l, _) => l.drain().into_iter().map(Out::Zab).collect(),
                Role::Following(l, _) => l.drain().into_iter().map(Out::Zab).collect(),
                Role::Down(_) => Vec::new(),
            };
            if outs.is_empty() {
                self.answer_leader_syncs(i);
                return;
            }
            for o in outs {
                match o {
                    Out::Election(ElectionOut::Send { to, msg }) => self.send(id, to, Msg::Vote(msg)),
                    Out::Election(ElectionOut::Decided(d)) => self.take_role(i, d),
                    Out::Zab(z) => self.zab_out(i, id, inst, z),
                }
            }
        }
    }

    fn trace(&self, what: String) {
        if std::env::var("ZK_SIM_TRACE").is_ok() {
            eprintln!("{:>6} {what}", self.now);
        }
    }

    fn take_role(&mut self, i: usize, d: Decision) {
        self.trace(format!("server {} decided {:?}", self.peers[i].id, d));
        self.next_inst += 1;
        let p = &mut self.peers[i];
        p.inst = self.next_inst;
        p.links.clear();
        p.serve = Serve::default();
        p.last_round = d.election_epoch;
        let mut state = p.disk.clone();
        state.log.extend(p.volatile.iter().cloned());
        let durable = p.disk.last_zxid();
        let applied = p.applied.last().map_or(0, |t| t.zxid);
        p.role = match d.state {
            PeerState::Leading => {
                let mut l = Leader::new(p.id, self.verifier.clone(), LIMITS, state, durable, applied);
                l.set_window(self.window);
                l.set_snap_not_trunc(self.snap_not_trunc);
                Role::Leading(l, d)
            }
            PeerState::Observing => {
                let mut l = Learner::observer(p.id, d.leader, LIMITS, state, durable, applied);
                l.set_window(self.window);
                Role::Following(l, d)
            }
            _ => {
                let mut l = Learner::new(p.id, d.leader, LIMITS, state, durable, applied);
                l.set_window(self.window);
                Role::Following(l, d)
            }
        };
    }

    fn elect_again(&mut self, i: usize) {
        let p = &mut self.peers[i];
        let last = p.volatile.last().map_or(p.disk.last_zxid(), |t| t.zxid);
        p.inst = 0;
        p.links.clear();
        p.serve = Serve::default();
        p.role =
            Role::Looking(looking(p.id, &self.verifier, p.last_round, last, p.disk.current_epoch, self.now));
    }

    fn zab_out(&mut self, i: usize, id: i64, inst: u64, z: ZabOut) {
        match z {
            ZabOut::Send { to, pkt } => {
                let to_inst = self.peers[i].links.get(&to).copied();
                self.send(id, to, Msg::Zab { from_inst: inst, to_inst, pkt });
            }
            ZabOut::Append(txns) => {
                let p = &mut self.peers[i];
                p.volatile.extend(txns);
                if p.fsync_at.is_none() {
                    p.fsync_at = Some(self.now + self.rng.gen_range(1..10));
                }
            }
            ZabOut::Truncate(z) => {
                let p = &mut self.peers[i];
                let applied = p.applied.last().map_or(0, |t| t.zxid);
                assert!(applied <= z, "server {id} truncates to {z:#x} below what it applied ({applied:#x})");
                p.disk.log.retain(|t| t.zxid <= z);
                p.volatile.retain(|t| t.zxid <= z);
            }
            ZabOut::SendSnapshot { to, zxid } => {
                // The committed history up to `zxid`: what this leader
                // applied, and (before it is established) its log after.
                let p = &self.peers[i];
                let applied_last = p.applied.last().map_or(0, |t| t.zxid);
                let mut history: Vec<Txn> = p.applied.iter().filter(|t| t.zxid <= zxid).cloned().collect();
                history.extend(
                    p.disk
                        .log
                        .iter()
                        .chain(p.volatile.iter())
                        .filter(|t| t.zxid > applied_last && t.zxid <= zxid)
                        .cloned(),
                );
                assert_eq!(
                    history.last().map_or(0, |t| t.zxid),
                    zxid,
                    "leader {id} cannot make its snapshot"
                );
                let pkt = QuorumPacket {
                    packet_type: pt::SNAP,
                    zxid,
                    data: Some(encode_history(&history)),
                    authinfo: None,
                };
                let to_inst = self.peers[i].links.get(&to).copied();
                self.send(id, to, Msg::Zab { from_inst: inst, to_inst, pkt });
            }
            ZabOut::PersistAcceptedEpoch(e) => self.peers[i].disk.accepted_epoch = e,
            ZabOut::PersistCurrentEpoch(e) => self.peers[i].disk.current_epoch = e,
            ZabOut::Deliver(t) => self.deliver(i, t),
            ZabOut::Established(epoch) => {
                self.trace(format!("server {id} established epoch {epoch}"));
                if let Some(other) = self.established.insert(epoch, id) {
                    assert_eq!(other, id, "two leaders established in epoch {epoch}");
                }
                let p = &self.peers[i];
                let log: Vec<&Txn> = p.disk.log.iter().chain(p.volatile.iter()).collect();
                for t in &self.acked {
                    assert!(
                        log.contains(&t),
                        "leader {id} of epoch {epoch} lacks committed txn {:#x}",
                        t.zxid
                    );
                }
            }
            ZabOut::StepDown(why) => {
                self.trace(format!("server {id} steps down: {why}"));
                self.elect_again(i)
            }
        }
    }

    fn deliver(&mut self, i: usize, t: Txn) {
        let p = &mut self.peers[i];
        if let Some(last) = p.applied.last() {
            assert!(t.zxid > last.zxid, "server {}: zxid order broken", p.id);
        }
        let k = p.applied.len();
        match self.history.get(k) {
            Some(h) => assert_eq!(h, &t, "server {} applied a different txn at position {k}", p.id),
            None => self.history.push(t.clone()),
        }
        p.applied.push(t.clone());
        let leading = matches!(p.role, Role::Leading(..));
        if let Some((op, key, value)) = parse_client_txn(&t.data) {
            p.kv.insert(key, value);
            if let Some(c) = p.serve.writes.remove(&op) {
                self.respond(c, op, None);
            }
        }
        if leading {
            self.acked.push(t);
        }
    }

    /// Whether server `i` serves clients (an established leader, or a
    /// learner synced with its leader).
    fn serving(&self, i: usize) -> bool {
        match &self.peers[i].role {
            Role::Leading(l, _) => l.established(),
            Role::Following(l, _) => l.serving(),
            _ => false,
        }
    }

    /// Sends a packet on server `i`'s ZAB connection to `to`.
    fn send_zab(&mut self, i: usize, to: i64, pkt: QuorumPacket) {
        let (id, inst) = (self.peers[i].id, self.peers[i].inst);
        let to_inst = self.peers[i].links.get(&to).copied();
        self.send(id, to, Msg::Zab { from_inst: inst, to_inst, pkt });
    }

    /// A client's operation is answered (`read` is the value a read saw).
    fn respond(&mut self, c: usize, op: usize, read: Option<u64>) {
        if self.clients[c].pending.as_ref().is_none_or(|p| p.op != op) {
            return;
        }
        self.seq += 1;
        let h = &mut self.ops[op];
        h.op.ret = Some(self.seq);
        if let Some(v) = read {
            h.op.kind = Kind::Read(v);
        }
        self.clients[c].pending = None;
        self.clients[c].idle_until = self.now + self.rng.gen_range(0..30);
    }

    /// The clients: give up on what took too long or whose server left
    /// its role, and start new operations.
    fn clients_step(&mut self) {
        for c in 0..self.clients.len() {
            if let Some(p) = &self.clients[c].pending {
                let srv = &self.peers[self.idx(p.server)];
                if srv.inst != p.inst || self.now >= p.deadline {
                    // The outcome is unknown: the client moves on.
                    let client = &mut self.clients[c];
                    client.pending = None;
                    client.server = None;
                    client.idle_until = self.now + self.rng.gen_range(1..50);
                }
                continue;
            }
            if self.quiet || self.now < self.clients[c].idle_until {
                continue;
            }
            let server = match self.clients[c].server.filter(|s| self.serving(self.idx(*s))) {
                Some(s) => s,
                None => {
                    let serving: Vec<i64> = (0..self.peers.len())
                        .filter(|i| self.serving(*i))
                        .map(|i| self.peers[i].id)
                        .collect();
                    if serving.is_empty() {
                        continue;
                    }
                    serving[self.rng.gen_range(0..serving.len())]
                }
            };
            let i = self.idx(server);
            let key = self.rng.gen_range(0..KEYS);
            let op = self.ops.len();
            let kind = if self.rng.gen_bool(0.5) { Kind::Write(op as u64 + 1) } else { Kind::Read(0) };
            self.seq += 1;
            self.ops.push(HistOp { key, op: lincheck::Op { kind, call: self.seq, ret: None } });
            self.clients[c].server = Some(server);
            self.clients[c].pending = Some(Pending {
                op,
                server,
                inst: self.peers[i].inst,
                deadline: self.now + CLIENT_TIMEOUT_MS,
            });
            let p = &mut self.peers[i];
            match (&mut p.role, kind) {
                (Role::Leading(l, _), Kind::Write(v)) => {
                    p.serve.writes.insert(op, c);
                    l.step(ZabIn::Propose(Txn { zxid: l.next_zxid(), data: client_txn(op, key, v) }));
                }
                (Role::Leading(..), Kind::Read(_)) => {
                    let v = p.kv.get(&key).copied().unwrap_or(0);
                    self.respond(c, op, Some(v));
                }
                (Role::Following(l, _), Kind::Write(v)) => {
                    let leader = l.leader();
                    p.serve.writes.insert(op, c);
                    let data = Bytes::from(format!("W{op}:{key}:{v}"));
                    self.send_zab(
                        i,
                        leader,
                        QuorumPacket { packet_type: pt::REQUEST, zxid: -1, data: Some(data), authinfo: None },
                    );
                }
                (Role::Following(l, _), Kind::Read(_)) => {
                    let leader = l.leader();
                    p.serve.syncs.push_back((c, op, key));
                    let data = Bytes::from_static(b"S");
                    self.send_zab(
                        i,
                        leader,
                        QuorumPacket { packet_type: pt::REQUEST, zxid: -1, data: Some(data), authinfo: None },
                    );
                }
                _ => {}
            }
            self.flush(i);
        }
    }

    /// Leader: a learner's forwarded write or sync.
    fn on_request(&mut self, i: usize, from: i64, data: Bytes) {
        let Role::Leading(l, _) = &mut self.peers[i].role else { return };
        if !l.established() {
            return;
        }
        if let Some((op, key, value)) = parse_client_txn(&data) {
            l.step(ZabIn::Propose(Txn { zxid: l.next_zxid(), data: client_txn(op, key, value) }));
        } else if l.last_proposed() <= l.committed() {
            self.send_zab(i, from, sync_packet());
        } else {
            let z = l.last_proposed();
            self.peers[i].serve.leader_syncs.push((z, from));
        }
    }

    /// Leader: answers the syncs whose txns are all committed (after the
    /// COMMITs, on the same connections).
    fn answer_leader_syncs(&mut self, i: usize) {
        let Role::Leading(l, _) = &self.peers[i].role else { return };
        let committed = l.committed();
        let serve = &mut self.peers[i].serve;
        let (due, rest): (Vec<_>, Vec<_>) = serve.leader_syncs.drain(..).partition(|(z, _)| *z <= committed);
        serve.leader_syncs = rest;
        for (_, to) in due {
            self.send_zab(i, to, sync_packet());
        }
    }

    /// Learner: the leader's SYNC answers the oldest sync.
    fn on_sync(&mut self, i: usize) {
        if !self.serving(i) {
            return;
        }
        let p = &mut self.peers[i];
        let Some((c, op, key)) = p.serve.syncs.pop_front() else { return };
        let v = p.kv.get(&key).copied().unwrap_or(0);
        self.respond(c, op, Some(v));
    }

    /// Checks every key's history for linearizability.
    fn check_linearizable(&self) {
        for key in 0..KEYS {
            let ops: Vec<lincheck::Op> = self.ops.iter().filter(|h| h.key == key).map(|h| h.op).collect();
            if let Err(e) = lincheck::check(&ops) {
                if std::env::var("ZK_SIM_TRACE").is_ok() {
                    for o in &ops {
                        eprintln!("key {key}: {o:?}");
                    }
                }
                panic!("key {key}: {e}");
            }
        }
    }

    fn crash(&mut self, i: usize) {
        let until = self.now + self.rng.gen_range(100..800);
        let p = &mut self.peers[i];
        p.volatile.clear();
        p.fsync_at = None;
        // It rebuilds its state from the log when it is back.
        p.applied.clear();
        p.kv.clear();
        p.serve = Serve::default();
        p.role = Role::Down(until);
        p.inst = 0;
    }

    fn step(&mut self) {
        self.now += 1;
        let now = self.now;
        // Faults.
        if self.chaos && now % 300 == 0 {
            let victim = self.rng.gen_range(0..self.peers.len());
            let voters = self.n - self.observers.len() as i64;
            let down = self.peers.iter().filter(|p| matches!(p.role, Role::Down(_))).count() as i64;
            match self.rng.gen_range(0..4) {
                0 if down < (voters - 1) / 2 => self.crash(victim),
                1 => {
                    self.isolated.clear();
                    if self.rng.gen_bool(0.5) {
                        self.isolated.insert(victim as i64 + 1);
                        // In 5 servers, a minority of two now and then.
                        if self.n >= 5 && self.rng.gen_bool(0.5) {
                            self.isolated.insert(self.rng.gen_range(1..=self.n));
                        }
                    }
                }
                _ => {}
            }
        }
        // fsyncs, restarts, ticks.
        for i in 0..self.peers.len() {
            if self.peers[i].fsync_at.is_some_and(|t| t <= now) {
                let p = &mut self.peers[i];
                p.fsync_at = None;
                let synced: Vec<Txn> = std::mem::take(&mut p.volatile);
                let last = synced.last().map(|t| t.zxid);
                p.disk.log.extend(synced);
                if let Some(z) = last {
                    match &mut p.role {
                        Role::Leading(l, _) => l.step(ZabIn::Synced(z)),
                        Role::Following(l, _) => l.step(ZabIn::Synced(z)),
                        _ => {}
                    }
                }
            }
            if let Role::Down(until) = self.peers[i].role {
                if until <= now {
                    self.elect_again(i);
                }
            }
            let tick_ms = self.peers[i].tick_ms;
            match &mut self.peers[i].role {
                Role::Looking(e) => e.tick(now),
                Role::Leading(l, _) if now % tick_ms == 0 => l.step(ZabIn::Tick),
                Role::Following(l, _) if now % tick_ms == 0 => l.step(ZabIn::Tick),
                _ => {}
            }
            // A client write now and then at an established leader.
            if now % 7 == 0 && !self.quiet {
                if let Role::Leading(l, _) = &mut self.peers[i].role {
                    if l.established() {
                        self.proposals += 1;
                        let t =
                            Txn { zxid: l.next_zxid(), data: Bytes::from(format!("w{}", self.proposals)) };
                        l.step(ZabIn::Propose(t));
                    }
                }
            }
            self.flush(i);
        }
        self.clients_step();
        // Deliveries due now, in arrival order.
        let mut due = Vec::new();
        let mut later = VecDeque::new();
        for e in self.flight.drain(..) {
            if e.at <= now { due.push(e) } else { later.push_back(e) }
        }
        self.flight = later;
        due.sort_by_key(|e| e.at);
        for e in due {
            if self.is_broken(e.from, e.to, &e.msg) {
                continue;
            }
            if self.cut(e.from, e.to) {
                self.break_link(e.from, e.to, &e.msg);
                continue;
            }
            let i = self.idx(e.to);
            let me = self.peers[i].id;
            match (e.msg, &mut self.peers[i].role) {
                (Msg::Vote(n), Role::Looking(el)) => el.receive(e.from, n, now),
                (Msg::Vote(n), Role::Leading(_, d) | Role::Following(_, d))
                    if n.state == PeerState::Looking =>
                {
                    let answer = answer_when_settled(d, Bytes::new());
                    self.send(me, e.from, Msg::Vote(answer));
                }
                (Msg::Zab { from_inst, to_inst, pkt }, _) => {
                    let p = &mut self.peers[i];
                    if p.inst == 0 || to_inst.is_some_and(|t| t != p.inst) {
                        continue;
                    }
                    match p.links.get(&e.from) {
                        Some(known) if *known != from_inst => {
                            // A newer connection from the same peer replaces the old.
                            if from_inst < *known {
                                continue;
                            }
                            p.links.insert(e.from, from_inst);
                        }
                        None => {
                            p.links.insert(e.from, from_inst);
                        }
                        _ => {}
                    }
                    if pkt.packet_type == pt::SNAP {
                        // The host installs the state, durably, then tells the role.
                        let history = decode_history(pkt.data.clone().unwrap_or_default());
                        for (k, t) in p.applied.iter().enumerate() {
                            assert_eq!(
                                history.get(k),
                                Some(t),
                                "server {me}: a SNAP without a txn it applied"
                            );
                        }
                        p.disk.log = history.clone();
                        p.volatile.clear();
                        p.fsync_at = None;
                        let from = p.applied.len();
                        for t in history[from..].iter().cloned() {
                            self.deliver(i, t);
                        }
                        let p = &mut self.peers[i];
                        if let Role::Following(l, _) = &mut p.role {
                            l.step(ZabIn::Snapshot(pkt.zxid));
                        }
                        self.flush(i);
                        continue;
                    }
                    match (&p.role, pkt.packet_type) {
                        (Role::Leading(..), pt::REQUEST) => {
                            self.on_request(i, e.from, pkt.data.unwrap_or_default());
                            self.flush(i);
                            continue;
                        }
                        (Role::Following(..), pt::SYNC) => {
                            self.on_sync(i);
                            continue;
                        }
                        _ => {}
                    }
                    let input = ZabIn::Packet { from: e.from, pkt };
                    match &mut p.role {
                        Role::Leading(l, _) => l.step(input),
                        Role::Following(l, _) => l.step(input),
                        _ => {}
                    }
                }
                _ => {}
            }
            self.flush(i);
        }
    }

    fn heal(&mut self) {
        self.trace("healed".into());
        self.chaos = false;
        self.isolated.clear();
        for i in 0..self.peers.len() {
            if matches!(self.peers[i].role, Role::Down(_)) {
                self.elect_again(i);
                self.flush(i);
            }
        }
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for p in &self.peers {
            let role = match &p.role {
                Role::Looking(e) => format!("looking round {} proposal {:?}", e.round(), e.proposal()),
                Role::Leading(l, d) => format!(
                    "leading epoch {} established {} (round {})",
                    l.epoch(),
                    l.established(),
                    d.election_epoch
                ),
                Role::Following(l, d) => {
                    format!("following {} serving {} (round {})", l.leader(), l.serving(), d.election_epoch)
                }
                Role::Down(_) => "down".into(),
            };
            out.push_str(&format!(
                "\n  server {}: {role}; accepted {} current {} last {:#x} applied {} (last {:#x})",
                p.id,
                p.disk.accepted_epoch,
                p.disk.current_epoch,
                p.volatile.last().map_or(p.disk.last_zxid(), |t| t.zxid),
                p.applied.len(),
                p.applied.last().map_or(0, |t| t.zxid)
            ));
        }
        out
    }

    /// Whether an established leader has every server serving with it.
    fn settled(&self) -> bool {
        let leaders: Vec<i64> = self
            .peers
            .iter()
            .filter_map(|p| match &p.role {
                Role::Leading(l, _) if l.established() => Some(p.id),
                _ => None,
            })
            .collect();
        let [leader] = leaders[..] else { return false };
        let leader_inst = self.peers[self.idx(leader)].inst;
        self.peers.iter().all(|p| match &p.role {
            Role::Leading(..) => p.id == leader,
            // Serving, and on a connection to this leader's current role.
            Role::Following(l, _) => {
                l.leader() == leader && l.serving() && p.links.get(&leader) == Some(&leader_inst)
            }
            _ => false,
        })
    }
}

enum Out {
    Election(ElectionOut),
    Zab(ZabOut),
}

fn sync_packet() -> QuorumPacket {
    QuorumPacket { packet_type: pt::SYNC, zxid: 0, data: None, authinfo: None }
}

/// Runs one seed: faults for `chaos_ms`, then heals and expects the
/// ensemble to settle and every server to apply the whole history.
fn run(seed: u64, n: i64, observers: &[i64], chaos_ms: u64) {
    let result = std::panic::catch_unwind(|| {
        let mut sim = Sim::new(seed, n, observers);
        while sim.now < chaos_ms {
            sim.step();
        }
        sim.heal();
        let deadline = sim.now + 20_000;
        while !sim.settled() {
            assert!(sim.now < deadline, "not settled 20 s after healing: {}", sim.describe());
            sim.step();
        }
        // Let the last commits reach everyone.
        for _ in 0..200 {
            sim.step();
        }
        assert!(!sim.acked.is_empty(), "no write was ever committed");
        // No more writes: everyone, observers included, comes to apply the
        // whole history.
        sim.quiet = true;
        let deadline = sim.now + 20_000;
        loop {
            sim.step();
            let caught_up = sim.peers.iter().all(|p| p.applied.len() == sim.history.len());
            if caught_up && sim.settled() {
                break;
            }
            assert!(
                sim.now < deadline,
                "servers still behind the history 20 s after the last write: {}",
                sim.describe()
            );
        }
        let longest = sim.peers.iter().map(|p| p.applied.len()).max().unwrap_or(0);
        assert!(longest >= sim.acked.len().min(sim.history.len()));
        sim.check_linearizable();
        let answered = |read: bool| {
            sim.ops
                .iter()
                .filter(|h| h.op.ret.is_some() && matches!(h.op.kind, Kind::Read(_)) == read)
                .count()
        };
        assert!(answered(true) > 0 && answered(false) > 0, "no client read or write was answered");
        (sim.acked.len(), sim.established.len())
    });
    match result {
        Ok(_) => {}
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!(
                "simulation failed with seed {seed} ({n} servers): {}; replay with ZK_SIM_SEED={seed}",
                msg.unwrap_or_default()
            );
        }
    }
}

fn seeds(default: u64) -> Vec<u64> {
    if let Some(s) = std::env::var("ZK_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![s];
    }
    let n = std::env::var("ZK_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    (0..n).collect()
}

#[test]
fn three_servers_keep_zab_s_properties_under_faults() {
    for seed in seeds(1500) {
        run(seed, 3, &[], 6_000);
    }
}

#[test]
fn five_servers_keep_zab_s_properties_under_faults() {
    for seed in seeds(800) {
        run(seed, 5, &[], 6_000);
    }
}

#[test]
fn three_voters_and_an_observer_keep_zab_s_properties_under_faults() {
    for seed in seeds(400) {
        run(seed, 4, &[4], 6_000);
    }
}
