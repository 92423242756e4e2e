//! Fast leader election as Apache's `FastLeaderElection` runs it, as a
//! sans-io state machine: notifications and the time in
//! ([`Election::receive`], [`Election::tick`]); notifications to send and
//! the decision out ([`Election::drain`]).
//!
//! ```text
//!            start: round+1, vote for myself, notify every voter
//!                 │
//!   ┌──────── LOOKING ◀──────────────────────────────────────────┐
//!   │ LOOKING note, newer round: adopt the round, best vote wins │
//!   │ LOOKING note, same round, better vote: adopt it, notify    │
//!   │ a quorum votes as I do ──▶ finalize wait (200 ms): a better │
//!   │                            vote restarts, silence decides ─┼──▶ LEADING (me)
//!   │ FOLLOWING/LEADING notes: a quorum follows a leader that    │    FOLLOWING / OBSERVING
//!   │ says it leads ─────────────────────────────────────────────┼──▶ (join it)
//!   │ no note for a while: notify again, wait twice as long      │
//!   └────────────────────────────────────────────────────────────┘
//! ```
//!
//! Votes are ordered by peer epoch, then zxid, then server id
//! (`totalOrderPredicate`); a server of weight 0 (an observer) is never
//! voted for. The rules, including what Apache answers a peer that is
//! behind or is not a voter, follow the 3.8 source line by line, so an
//! Apache peer and this one reach the same decision from the same
//! messages.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::config::{LearnerType, QuorumVerifier};
use super::wire::{Notification, PeerState};

/// `finalizeWait`: how long a quorum's agreement must stand unchallenged.
pub const FINALIZE_WAIT_MS: u64 = 200;
/// The notification timeout starts here (`minNotificationInterval`)...
pub const MIN_NOTIFICATION_INTERVAL_MS: u64 = 200;
/// ...and doubles up to this (`maxNotificationInterval`).
pub const MAX_NOTIFICATION_INTERVAL_MS: u64 = 60_000;

/// A vote as the election keeps it (Apache's `Vote`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    /// The server voted for.
    pub leader: i64,
    /// Its last zxid.
    pub zxid: i64,
    /// The round.
    pub election_epoch: i64,
    /// Its epoch.
    pub peer_epoch: i64,
    /// The voter's state.
    pub state: PeerState,
    /// The voter's notification format.
    pub version: i32,
}

impl Vote {
    /// Apache's `Vote.equals`: all four numbers while either side is
    /// looking; otherwise the leader (and its epoch, unless the two sides
    /// speak different notification versions, ZOOKEEPER-1732).
    fn same(&self, o: &Vote) -> bool {
        if self.state == PeerState::Looking || o.state == PeerState::Looking {
            self.leader == o.leader
                && self.zxid == o.zxid
                && self.election_epoch == o.election_epoch
                && self.peer_epoch == o.peer_epoch
        } else if (self.version > 0) ^ (o.version > 0) {
            self.leader == o.leader
        } else {
            self.leader == o.leader && self.peer_epoch == o.peer_epoch
        }
    }
}

/// How an election ended for this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The leader.
    pub leader: i64,
    /// The leader's zxid as voted.
    pub zxid: i64,
    /// The round it was decided in.
    pub election_epoch: i64,
    /// The leader's epoch as voted.
    pub peer_epoch: i64,
    /// What this server becomes: leading, following or observing.
    pub state: PeerState,
}

/// What the election asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionOut {
    /// Send a notification to a peer.
    Send {
        /// The peer's server id.
        to: i64,
        /// The notification.
        msg: Notification,
    },
    /// The election is over.
    Decided(Decision),
}

/// Who this server is in the election.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `myid`.
    pub my_id: i64,
    /// Participant or observer.
    pub learner_type: LearnerType,
    /// The quorum rule.
    pub verifier: QuorumVerifier,
    /// The config string notifications carry.
    pub config: Bytes,
}

/// One election round of one server.
#[derive(Debug)]
pub struct Election {
    me: Identity,
    logical_clock: i64,
    proposed: (i64, i64, i64),
    init: (i64, i64, i64),
    recvset: BTreeMap<i64, Vote>,
    outofelection: BTreeMap<i64, Vote>,
    not_timeout: u64,
    next_timeout: u64,
    finalize_at: Option<u64>,
    max_interval: u64,
    decided: Option<Decision>,
    loopback: VecDeque<Notification>,
    out: Vec<ElectionOut>,
}

impl Election {
    /// Starts an election (Apache's `lookForLeader`): the round after
    /// `last_round`, a vote for this server with its `last_zxid` and
    /// `current_epoch`, sent to every voter.
    pub fn start(me: Identity, last_round: i64, last_zxid: i64, current_epoch: i64, now_ms: u64) -> Election {
        let participant = me.learner_type == LearnerType::Participant;
        let init = (
            if me.verifier.is_voter(me.my_id) { me.my_id } else { i64::MIN },
            if participant { last_zxid } else { i64::MIN },
            if participant { current_epoch } else { i64::MIN },
        );
        let mut e = Election {
            me,
            logical_clock: last_round + 1,
            proposed: init,
            init,
            recvset: BTreeMap::new(),
            outofelection: BTreeMap::new(),
            not_timeout: MIN_NOTIFICATION_INTERVAL_MS,
            next_timeout: now_ms + MIN_NOTIFICATION_INTERVAL_MS,
            finalize_at: None,
            max_interval: MAX_NOTIFICATION_INTERVAL_MS,
            decided: None,
            loopback: VecDeque::new(),
            out: Vec::new(),
        };
        e.send_notifications();
        e.run_loopback(now_ms);
        e
    }

    /// Caps the notification timeout's doubling
    /// (`zookeeper.fastleader.maxNotificationInterval`, 60 s by default).
    pub fn set_max_notification_interval(&mut self, ms: u64) {
        self.max_interval = ms.max(MIN_NOTIFICATION_INTERVAL_MS);
    }

    /// The round (logical clock).
    pub fn round(&self) -> i64 {
        self.logical_clock
    }

    /// The current proposal: (leader, zxid, peer epoch).
    pub fn proposal(&self) -> (i64, i64, i64) {
        self.proposed
    }

    /// The decision, once made.
    pub fn decision(&self) -> Option<Decision> {
        self.decided
    }

    /// What to send and whether it is decided, in order.
    pub fn drain(&mut self) -> Vec<ElectionOut> {
        std::mem::take(&mut self.out)
    }

    /// When [`Election::tick`] has something to do.
    pub fn next_deadline(&self) -> u64 {
        match self.finalize_at {
            Some(f) => f,
            None => self.next_timeout,
        }
    }

    /// A notification from peer `from`.
    pub fn receive(&mut self, from: i64, n: Notification, now_ms: u64) {
        if self.decided.is_some() {
            return;
        }
        // WorkerReceiver: a peer that is not a voter is only told our vote.
        if !self.me.verifier.is_voter(from) {
            let reply = self.notification(PeerState::Looking);
            self.out.push(ElectionOut::Send { to: from, msg: reply });
            return;
        }
        // A looking peer in an older round is told ours.
        if n.state == PeerState::Looking && n.election_epoch < self.logical_clock {
            let reply = self.notification(PeerState::Looking);
            self.out.push(ElectionOut::Send { to: from, msg: reply });
        }
        self.next_timeout = now_ms + self.not_timeout;
        self.process(from, n, now_ms);
        self.run_loopback(now_ms);
    }

    /// The time passes: the finalize wait ends, or notifications go out
    /// again when nothing came for a while.
    pub fn tick(&mut self, now_ms: u64) {
        if self.decided.is_some() {
            return;
        }
        if let Some(f) = self.finalize_at {
            if now_ms >= f {
                let (leader, zxid, epoch) = self.proposed;
                self.decide(leader, zxid, self.logical_clock, epoch);
            }
            return;
        }
        if now_ms >= self.next_timeout {
            self.send_notifications();
            self.not_timeout = (self.not_timeout * 2).min(self.max_interval);
            self.next_timeout = now_ms + self.not_timeout;
            self.run_loopback(now_ms);
        }
    }

    fn run_loopback(&mut self, now_ms: u64) {
        while self.decided.is_none() {
            let Some(n) = self.loopback.pop_front() else { break };
            self.process(self.me.my_id, n, now_ms);
        }
    }

    fn notification(&self, state: PeerState) -> Notification {
        Notification {
            state,
            leader: self.proposed.0,
            zxid: self.proposed.1,
            election_epoch: self.logical_clock,
            peer_epoch: self.proposed.2,
            version: super::wire::NOTIFICATION_VERSION,
            config: self.me.config.clone(),
        }
    }

    fn send_notifications(&mut self) {
        let n = self.notification(PeerState::Looking);
        for sid in self.me.verifier.voters() {
            if sid == self.me.my_id {
                self.loopback.push_back(n.clone());
            } else {
                self.out.push(ElectionOut::Send { to: sid, msg: n.clone() });
            }
        }
    }

    /// `totalOrderPredicate`: whether the vote (new) beats (cur).
    fn beats(&self, new: (i64, i64, i64), cur: (i64, i64, i64)) -> bool {
        let (new_id, new_zxid, new_epoch) = new;
        let (cur_id, cur_zxid, cur_epoch) = cur;
        if self.me.verifier.weight(new_id) == 0 {
            return false;
        }
        new_epoch > cur_epoch
            || (new_epoch == cur_epoch && (new_zxid > cur_zxid || (new_zxid == cur_zxid && new_id > cur_id)))
    }

    fn has_quorum(&self, votes: &BTreeMap<i64, Vote>, vote: &Vote) -> bool {
        let acks: BTreeSet<i64> = votes.iter().filter(|(_, v)| vote.same(v)).map(|(s, _)| *s).collect();
        self.me.verifier.contains_quorum(&acks)
    }

    fn check_leader(&self, votes: &BTreeMap<i64, Vote>, leader: i64, election_epoch: i64) -> bool {
        if leader != self.me.my_id {
            votes.get(&leader).is_some_and(|v| v.state == PeerState::Leading)
        } else {
            self.logical_clock == election_epoch
        }
    }

    fn decide(&mut self, leader: i64, zxid: i64, election_epoch: i64, peer_epoch: i64) {
        let state = if leader == self.me.my_id {
            PeerState::Leading
        } else if self.me.learner_type == LearnerType::Observer {
            PeerState::Observing
        } else {
            PeerState::Following
        };
        let d = Decision { leader, zxid, election_epoch, peer_epoch, state };
        self.decided = Some(d);
        self.finalize_at = None;
        self.out.push(ElectionOut::Decided(d));
    }

    fn process(&mut self, from: i64, n: Notification, now_ms: u64) {
        let vote = (n.leader, n.zxid, n.peer_epoch);
        if self.finalize_at.is_some() {
            // Apache's finalize loop: a better vote goes back to the main
            // loop; anything else is dropped and the wait starts again.
            if self.beats(vote, self.proposed) {
                self.finalize_at = None;
            } else {
                self.finalize_at = Some(now_ms + FINALIZE_WAIT_MS);
                return;
            }
        }
        let voter = |s: i64| self.me.verifier.is_voter(s);
        if !voter(from) || !voter(n.leader) {
            return;
        }
        match n.state {
            PeerState::Looking => {
                if self.init.1 == -1 || n.zxid == -1 {
                    return;
                }
                if n.election_epoch > self.logical_clock {
                    self.logical_clock = n.election_epoch;
                    self.recvset.clear();
                    self.proposed = if self.beats(vote, self.init) { vote } else { self.init };
                    self.send_notifications();
                } else if n.election_epoch < self.logical_clock {
                    return;
                } else if self.beats(vote, self.proposed) {
                    self.proposed = vote;
                    self.send_notifications();
                }
                self.recvset.insert(
                    from,
                    Vote {
                        leader: n.leader,
                        zxid: n.zxid,
                        election_epoch: n.election_epoch,
                        peer_epoch: n.peer_epoch,
                        state: PeerState::Looking,
                        version: 0,
                    },
                );
                let mine = Vote {
                    leader: self.proposed.0,
                    zxid: self.proposed.1,
                    election_epoch: self.logical_clock,
                    peer_epoch: self.proposed.2,
                    state: PeerState::Looking,
                    version: 0,
                };
                if self.has_quorum(&self.recvset, &mine) {
                    self.finalize_at = Some(now_ms + FINALIZE_WAIT_MS);
                }
            }
            PeerState::Observing => {}
            PeerState::Following | PeerState::Leading => self.received_settled(from, &n),
        }
    }

    /// `receivedFollowingNotification`: join a leader that a quorum
    /// follows and that says it leads.
    fn received_settled(&mut self, from: i64, n: &Notification) {
        let stored = Vote {
            leader: n.leader,
            zxid: n.zxid,
            election_epoch: n.election_epoch,
            peer_epoch: n.peer_epoch,
            state: n.state,
            version: 0,
        };
        let theirs = Vote { version: n.version, ..stored };
        if n.election_epoch == self.logical_clock {
            self.recvset.insert(from, stored);
            if self.has_quorum(&self.recvset, &theirs)
                && self.check_leader(&self.recvset, n.leader, n.election_epoch)
            {
                self.decide(n.leader, n.zxid, n.election_epoch, n.peer_epoch);
                return;
            }
        }
        self.outofelection.insert(from, theirs);
        if self.has_quorum(&self.outofelection, &theirs)
            && self.check_leader(&self.outofelection, n.leader, n.election_epoch)
        {
            self.logical_clock = n.election_epoch;
            self.decide(n.leader, n.zxid, n.election_epoch, n.peer_epoch);
        }
    }
}

/// What a server that is not looking answers a looking peer (its current
/// vote, in its state; Apache's `WorkerReceiver`).
pub fn answer_when_settled(d: &Decision, config: Bytes) -> Notification {
    Notification {
        state: d.state,
        leader: d.leader,
        zxid: d.zxid,
        election_epoch: d.election_epoch,
        peer_epoch: d.peer_epoch,
        version: super::wire::NOTIFICATION_VERSION,
        config,
    }
}

#[cfg(test)]
mod tests {
    //! Elections among simulated peers: a seeded network that delays,
    //! reorders, duplicates and drops notifications, and partitions.
    #![allow(clippy::unwrap_used)]

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn verifier(n: i64, observers: &[i64]) -> QuorumVerifier {
        QuorumVerifier::Majority { voters: (1..=n).filter(|s| !observers.contains(s)).collect() }
    }

    fn identity(id: i64, n: i64, observers: &[i64]) -> Identity {
        let learner_type =
            if observers.contains(&id) { LearnerType::Observer } else { LearnerType::Participant };
        Identity {
            my_id: id,
            learner_type,
            verifier: verifier(n, observers),
            config: Bytes::from_static(b"version=0"),
        }
    }

    /// A peer that has decided answers like Apache's settled peers do.
    struct Peer {
        id: i64,
        zxid: i64,
        epoch: i64,
        election: Election,
        settled: Option<(Decision, u64)>,
    }

    struct Net {
        rng: StdRng,
        now: u64,
        /// (deliver at, from, to, msg)
        flight: Vec<(u64, i64, i64, Notification)>,
        /// Peers that cannot reach each other.
        cut: BTreeSet<(i64, i64)>,
        loss: f64,
    }

    impl Net {
        fn send(&mut self, from: i64, to: i64, msg: Notification) {
            if self.cut.contains(&(from, to)) || self.rng.gen_bool(self.loss) {
                return;
            }
            let copies = if self.rng.gen_bool(0.05) { 2 } else { 1 };
            for _ in 0..copies {
                let at = self.now + self.rng.gen_range(1..40);
                self.flight.push((at, from, to, msg.clone()));
            }
        }
    }

    /// Runs an election among `peers` (id, last zxid, epoch) until every
    /// reachable peer decided or `limit_ms` passed; returns decisions.
    fn elect(
        seed: u64,
        n: i64,
        state: &[(i64, i64, i64)],
        observers: &[i64],
        cut_off: &[i64],
        loss: f64,
        limit_ms: u64,
    ) -> BTreeMap<i64, Decision> {
        let mut net =
            Net { rng: StdRng::seed_from_u64(seed), now: 0, flight: Vec::new(), cut: BTreeSet::new(), loss };
        for a in cut_off {
            for b in 1..=n {
                if *a != b {
                    net.cut.insert((*a, b));
                    net.cut.insert((b, *a));
                }
            }
        }
        let mut peers: Vec<Peer> = state
            .iter()
            .map(|(id, zxid, epoch)| {
                let start = net.rng.gen_range(0..50);
                Peer {
                    id: *id,
                    zxid: *zxid,
                    epoch: *epoch,
                    election: Election::start(identity(*id, n, observers), 0, *zxid, *epoch, start),
                    settled: None,
                }
            })
            .collect();
        let mut decisions = BTreeMap::new();
        while net.now < limit_ms {
            net.now += 1;
            for p in peers.iter_mut() {
                p.election.tick(net.now);
            }
            // Deliver what is due, in random order.
            let (due, later): (Vec<_>, Vec<_>) = net.flight.drain(..).partition(|m| m.0 <= net.now);
            net.flight = later;
            let mut due = due;
            for i in (1..due.len()).rev() {
                let j = net.rng.gen_range(0..=i);
                due.swap(i, j);
            }
            for (_, from, to, msg) in due {
                let Some(p) = peers.iter_mut().find(|p| p.id == to) else { continue };
                match p.settled.map(|x| x.0) {
                    Some(d) if msg.state == PeerState::Looking => {
                        net.send(to, from, answer_when_settled(&d, Bytes::new()));
                    }
                    Some(_) => {}
                    None => p.election.receive(from, msg, net.now),
                }
            }
            for p in peers.iter_mut() {
                for o in p.election.drain() {
                    match o {
                        ElectionOut::Send { to, msg } => net.send(p.id, to, msg),
                        ElectionOut::Decided(d) => {
                            p.settled = Some((d, net.now));
                            decisions.insert(p.id, d);
                        }
                    }
                }
            }
            // What ZAB does with a decision that cannot stand: a follower
            // whose leader is not leading, or a leader without a quorum of
            // followers, gives up after a while (initLimit) and elects again.
            let q = verifier(n, observers);
            let stands = |all: &BTreeMap<i64, Decision>, d: &Decision| {
                all.get(&d.leader).is_some_and(|l| l.state == PeerState::Leading)
                    && !cut_off.contains(&d.leader)
                    && q.contains_quorum(
                        &all.iter().filter(|(_, x)| x.leader == d.leader).map(|(s, _)| *s).collect(),
                    )
            };
            let snapshot = decisions.clone();
            for p in peers.iter_mut() {
                if let Some((d, at)) = p.settled {
                    if at + 1000 <= net.now && !stands(&snapshot, &d) {
                        p.election = Election::start(
                            identity(p.id, n, observers),
                            d.election_epoch,
                            p.zxid,
                            p.epoch,
                            net.now,
                        );
                        p.settled = None;
                        decisions.remove(&p.id);
                    }
                }
            }
            let reachable = peers.iter().filter(|p| !cut_off.contains(&p.id)).count();
            if decisions.len() >= reachable && decisions.values().all(|d| stands(&decisions, d)) {
                break;
            }
        }
        decisions
    }

    fn check_one_leader(seed: u64, d: &BTreeMap<i64, Decision>, want: i64) {
        let leaders: BTreeSet<i64> = d.values().map(|x| x.leader).collect();
        assert_eq!(leaders, BTreeSet::from([want]), "seed {seed}: {d:?}");
        for (id, x) in d {
            let expect = if *id == want { PeerState::Leading } else { x.state };
            assert_eq!(x.state, expect, "seed {seed}");
        }
    }

    #[test]
    fn the_highest_epoch_then_zxid_then_id_leads() {
        for seed in 0..200 {
            // 3 servers, all fresh: the highest id.
            let d = elect(seed, 3, &[(1, 0, 0), (2, 0, 0), (3, 0, 0)], &[], &[], 0.0, 20_000);
            assert_eq!(d.len(), 3, "seed {seed}");
            check_one_leader(seed, &d, 3);
            // 5 servers: the highest zxid wins over a higher id, the highest
            // epoch over a higher zxid.
            let s = [
                (1, 0x1_0000_0009, 1),
                (2, 0x2_0000_0001, 2),
                (3, 0x1_0000_0010, 1),
                (4, 5, 0),
                (5, 0x2_0000_0001, 2),
            ];
            let d = elect(seed, 5, &s, &[], &[], 0.0, 20_000);
            assert_eq!(d.len(), 5, "seed {seed}");
            check_one_leader(seed, &d, 5);
            let s = [(1, 0x3_0000_0001, 3), (2, 0x2_0000_0005, 2), (3, 0x2_0000_0005, 2)];
            check_one_leader(seed, &elect(seed, 3, &s, &[], &[], 0.0, 20_000), 1);
        }
    }

    #[test]
    fn a_majority_elects_without_a_cut_off_server() {
        for seed in 0..200 {
            let s = [(1, 7, 1), (2, 7, 1), (3, 7, 1), (4, 7, 1), (5, 7, 1)];
            // Server 5 (the would-be leader) is cut off: 4 leads the rest.
            let d = elect(seed, 5, &s, &[], &[5], 0.0, 120_000);
            assert!(!d.contains_key(&5), "seed {seed}: a server alone never decides");
            assert_eq!(d.len(), 4, "seed {seed}: {d:?}");
            check_one_leader(seed, &d, 4);
        }
    }

    /// With lost notifications a server can decide on a leader that ends
    /// up following someone else (Apache's FLE does too); it fails to
    /// join, gives up and elects again. Under loss, duplication and
    /// reordering the majority still settles on one leader that all of it
    /// follows.
    #[test]
    fn under_loss_the_majority_settles_on_one_leader() {
        for seed in 0..300 {
            let s = [(1, 7, 1), (2, 7, 1), (3, 7, 1), (4, 7, 1), (5, 7, 1)];
            let d = elect(seed, 5, &s, &[], &[5], 0.25, 600_000);
            assert_eq!(d.len(), 4, "seed {seed}: not settled: {d:?}");
            let leaders: BTreeSet<i64> = d.values().map(|x| x.leader).collect();
            assert_eq!(leaders.len(), 1, "seed {seed}: {d:?}");
            let l = *leaders.iter().next().unwrap();
            assert_eq!(d[&l].state, PeerState::Leading, "seed {seed}");
        }
    }

    #[test]
    fn a_minority_never_decides() {
        for seed in 0..50 {
            let d = elect(seed, 3, &[(1, 0, 0), (2, 0, 0), (3, 0, 0)], &[], &[1, 2], 0.0, 5_000);
            assert!(d.is_empty(), "seed {seed}: {d:?}");
        }
    }

    #[test]
    fn observers_follow_and_never_lead() {
        for seed in 0..100 {
            // Server 4 is an observer with the highest id and zxid.
            let s = [(1, 3, 1), (2, 3, 1), (3, 3, 1), (4, 99, 9)];
            let d = elect(seed, 4, &s, &[4], &[], 0.0, 20_000);
            assert_eq!(d.len(), 4, "seed {seed}: {d:?}");
            check_one_leader(seed, &d, 3);
            assert_eq!(d[&4].state, PeerState::Observing);
        }
    }

    #[test]
    fn a_late_server_joins_the_established_leader() {
        // 1 and 2 elect 2; 3 starts afterwards with a higher zxid and must
        // still follow 2 (told by the settled peers), not force a new round.
        let n = 3;
        let mut e1 = Election::start(identity(1, n, &[]), 0, 5, 1, 0);
        let mut e2 = Election::start(identity(2, n, &[]), 0, 5, 1, 0);
        let mut now = 0;
        let mut decided = BTreeMap::new();
        for _ in 0..20 {
            now += 50;
            let o1 = e1.drain();
            let o2 = e2.drain();
            for o in o1 {
                match o {
                    ElectionOut::Send { to: 2, msg } => e2.receive(1, msg, now),
                    ElectionOut::Decided(d) => {
                        decided.insert(1, d);
                    }
                    _ => {}
                }
            }
            for o in o2 {
                match o {
                    ElectionOut::Send { to: 1, msg } => e1.receive(2, msg, now),
                    ElectionOut::Decided(d) => {
                        decided.insert(2, d);
                    }
                    _ => {}
                }
            }
            e1.tick(now);
            e2.tick(now);
        }
        for o in e1.drain().into_iter().chain(e2.drain()) {
            if let ElectionOut::Decided(d) = o {
                decided.insert(if d.state == PeerState::Leading { 2 } else { 1 }, d);
            }
        }
        assert_eq!(decided[&2].state, PeerState::Leading);
        assert_eq!(decided[&1].leader, 2);
        let mut e3 = Election::start(identity(3, n, &[]), 0, 99, 1, now);
        let _ = e3.drain();
        e3.receive(1, answer_when_settled(&decided[&1], Bytes::new()), now);
        assert!(e3.decision().is_none(), "one follower is not a quorum");
        e3.receive(2, answer_when_settled(&decided[&2], Bytes::new()), now);
        let d3 = e3.decision().expect("joins");
        assert_eq!((d3.leader, d3.state), (2, PeerState::Following));
    }
}
