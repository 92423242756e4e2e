//! A deterministic simulation of an ensemble: the election and the ZAB
//! roles of 3 or 5 servers, driven by one seeded generator through a
//! network that delays, drops (election messages) and partitions, with
//! crashes that lose what was not fsynced. After every step, checkers
//! watch from outside:
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
//! A failing run prints its seed; `ZK_SIM_SEEDS=<n>` runs more seeds (a
//! soak), `ZK_SIM_SEED=<seed>` replays one and `ZK_SIM_TRACE=1` prints its
//! role changes. `cargo test` runs 1,500 seeds of 3 servers, 800 of 5 and
//! 400 of 3 voters with an observer (about 45 s in a debug build): enough
//! to catch a learner that ACKs NEWLEADER before its sync is durable
//! (ZOOKEEPER-4394's class of bug). After the faults stop and the last
//! write, every server must come to apply the whole history.
//!
//! Not yet: clients whose reads and writes are checked for
//! linearizability; the ZAB roles are not yet wired into the server.
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
use super::wire::{Notification, PeerState};
use super::zab::{Durable, Leader, Learner, Limits, Txn, ZabIn, ZabOut};

const TICK_MS: u64 = 50;
const LIMITS: Limits = Limits { init: 10, sync: 5 };

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
            });
        }
        for i in 0..sim.peers.len() {
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
            Msg::Vote(_) => {
                if self.rng.gen_bool(0.1) {
                    return;
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
        if matches!(p.role, Role::Leading(..)) {
            self.acked.push(t);
        }
    }

    fn crash(&mut self, i: usize) {
        let until = self.now + self.rng.gen_range(100..800);
        let p = &mut self.peers[i];
        p.volatile.clear();
        p.fsync_at = None;
        // It rebuilds its state from the log when it is back.
        p.applied.clear();
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
            match &mut self.peers[i].role {
                Role::Looking(e) => e.tick(now),
                Role::Leading(l, _) if now % TICK_MS == 0 => l.step(ZabIn::Tick),
                Role::Following(l, _) if now % TICK_MS == 0 => l.step(ZabIn::Tick),
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
