//! The election's thin driver: feeds [`Election`] the notifications
//! [`PeerNet`] receives and the time, and sends what it asks for. The
//! state machine itself has no I/O (see `election.rs`).

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::election::{Decision, Election, ElectionOut, Identity, answer_when_settled};
use super::peer_net::PeerNet;
use super::wire::{Notification, PeerState};

/// Runs one election (Apache's `lookForLeader`) over `net`: the round
/// after `last_round`, voting first for this server with `last_zxid` and
/// `current_epoch`. Returns the decision, or `None` when `net` closed.
pub async fn elect(
    me: Identity,
    last_round: i64,
    last_zxid: i64,
    current_epoch: i64,
    net: &PeerNet,
    rx: &mut mpsc::UnboundedReceiver<(i64, Bytes)>,
) -> Option<Decision> {
    let clock = Instant::now();
    let now = || clock.elapsed().as_millis() as u64;
    let mut e = Election::start(me, last_round, last_zxid, current_epoch, now());
    loop {
        for o in e.drain() {
            match o {
                ElectionOut::Send { to, msg } => net.send(to, msg.encode()),
                ElectionOut::Decided(d) => {
                    info!(
                        leader = d.leader,
                        round = d.election_epoch,
                        state = d.state.name(),
                        "election decided"
                    );
                    return Some(d);
                }
            }
        }
        let deadline = clock + Duration::from_millis(e.next_deadline());
        tokio::select! {
            m = rx.recv() => {
                let (from, bytes) = m?;
                match Notification::decode(bytes) {
                    Ok(n) => e.receive(from, n, now()),
                    Err(err) => warn!(from, error = %err, "skipped a malformed notification"),
                }
            }
            _ = tokio::time::sleep_until(deadline) => e.tick(now()),
        }
    }
}

/// While this server follows, leads or observes: answers every looking
/// peer with its decision (so late peers join it), until `stop` turns
/// true.
pub async fn answer_while_settled(
    decision: Decision,
    config: Bytes,
    net: &PeerNet,
    rx: &mut mpsc::UnboundedReceiver<(i64, Bytes)>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some((from, bytes)) = m else { return };
                if let Ok(n) = Notification::decode(bytes) {
                    if n.state == PeerState::Looking {
                        net.send(from, answer_when_settled(&decision, config.clone()).encode());
                    }
                }
            }
            _ = stop.changed() => return,
        }
    }
}
