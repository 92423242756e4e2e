//! The ensemble's thin driver in a running server: the election loop, the
//! quorum port's links (a leader's learners, a learner's leader) and the
//! epoch files. The roles themselves run inside the core (see
//! `pipeline/quorum.rs`); this file only moves bytes and waits.
//!
//! ```text
//!  election loop ──elect (runner.rs)──▶ CoreMsg::BeginRole ──▶ driver ──▶ core
//!        ▲                                                       │
//!        └──────────────── role ended ◀── Output::RoleEnded ◀────┘
//!  quorum port: acceptor ──PeerJoined/Peer/PeerGone──▶ driver   (leader)
//!               link to the leader ──Peer/PeerSnapshot──▶ driver (learner)
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{Instrument, debug, info, info_span, warn};
use zk_proto::Record;
use zk_proto::records::{LearnerInfo, QuorumPacket, packet_type as pt};

use super::config::{LearnerType, QuorumConfig};
use super::election::Identity;
use super::peer_net::PeerNet;
use super::runner::{answer_while_settled, elect};
use super::wire::PeerState;
use super::zab_net::PacketReader;
use crate::driver::{CoreMsg, RoleEvent};
use crate::persist::snapshot::{Snapshot, encode_ordered_stream, parse_stream};
use crate::pipeline::SnapshotJob;
use crate::pipeline::quorum::RoleKind;

/// The largest state a SNAP may carry.
pub(crate) const MAX_SNAPSHOT: usize = 2 << 30;

/// What goes out on a quorum link.
#[derive(Debug)]
pub(crate) enum PeerOut {
    /// A packet.
    Packet(QuorumPacket),
    /// A SNAP packet and the state after it.
    Snapshot(SnapshotJob),
}

/// The driver's end of a quorum link.
#[derive(Debug)]
pub(crate) struct PeerLink {
    /// Which link (a peer's newer link replaces its older one).
    pub(crate) link: u64,
    /// Where its packets go.
    pub(crate) tx: mpsc::UnboundedSender<PeerOut>,
}

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

/// A fresh link id.
pub(crate) fn next_link() -> u64 {
    NEXT_LINK.fetch_add(1, Ordering::Relaxed)
}

/// `acceptedEpoch` and `currentEpoch` as Apache keeps them: a decimal
/// number in a file of that name in `dataDir/version-2`. Missing files
/// mean the epoch of the last zxid.
pub(crate) fn read_epochs(data_dir: &Path, last_zxid: i64) -> std::io::Result<(i64, i64)> {
    let dir = crate::persist::version_dir(data_dir);
    let read = |name: &str| -> std::io::Result<i64> {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(s) => s.trim().parse::<i64>().map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{name}: {s:?}: {e}"))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(last_zxid >> 32),
            Err(e) => Err(e),
        }
    };
    Ok((read("acceptedEpoch")?, read("currentEpoch")?))
}

/// Writes an epoch file atomically and durably.
pub(crate) fn write_epoch(data_dir: &Path, name: &str, epoch: i64) -> std::io::Result<()> {
    let dir = crate::persist::ensure_version_dir(data_dir)?;
    let tmp: PathBuf = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, epoch.to_string().as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    crate::persist::sync_dir(&dir)
}

/// The election loop: elect, tell the core its role, answer late peers
/// while the role runs, and elect again when it ends. Runs until the core
/// is gone or `stop` turns true.
pub(crate) async fn election_loop(
    q: QuorumConfig,
    my_id: i64,
    core: mpsc::UnboundedSender<CoreMsg>,
    mut role_events: mpsc::UnboundedReceiver<RoleEvent>,
    net: PeerNet,
    mut incoming: mpsc::UnboundedReceiver<(i64, Bytes)>,
    mut stop: watch::Receiver<bool>,
) {
    let me = q.servers.get(&my_id).cloned();
    let learner_type = me.as_ref().map_or(LearnerType::Participant, |s| s.learner_type);
    let config = Bytes::from(q.to_config_string());
    let identity = Identity { my_id, learner_type, verifier: q.verifier.clone(), config: config.clone() };
    let mut last_round = 0;
    loop {
        let (tx, rx) = oneshot::channel();
        if core.send(CoreMsg::ElectionState(tx)).is_err() {
            break;
        }
        let Ok((zxid, epoch)) = rx.await else { break };
        info!(zxid = format_args!("{zxid:#x}"), epoch, "looking for a leader");
        let decided = tokio::select! {
            d = elect(identity.clone(), last_round, zxid, epoch, &net, &mut incoming) => d,
            _ = stop.changed() => None,
        };
        let Some(d) = decided else { break };
        last_round = d.election_epoch;
        let (kind, leader_addr) = match d.state {
            PeerState::Leading => (RoleKind::Lead, None),
            PeerState::Observing => {
                (RoleKind::Observe(d.leader), q.servers.get(&d.leader).map(|s| s.quorum_addr()))
            }
            _ => (RoleKind::Follow(d.leader), q.servers.get(&d.leader).map(|s| s.quorum_addr())),
        };
        if kind != RoleKind::Lead && leader_addr.is_none() {
            warn!(leader = d.leader, "the elected leader is not in the configuration; electing again");
            continue;
        }
        if core.send(CoreMsg::BeginRole { kind, leader_addr }).is_err() {
            break;
        }
        // Late peers are answered with this decision; once the role serves,
        // with its new epoch (as Apache's, ZOOKEEPER-1732: every member
        // then reports the same vote).
        let mut d = d;
        let why = loop {
            let (stop_answers, answers_stopped) = watch::channel(false);
            let event = tokio::select! {
                ev = role_events.recv() => ev,
                () = answer_while_settled(d, config.clone(), &net, &mut incoming, answers_stopped) => None,
                _ = stop.changed() => None,
            };
            let _ = stop_answers.send(true);
            match event {
                Some(RoleEvent::Serving(epoch)) => d.peer_epoch = epoch,
                Some(RoleEvent::Ended(why)) => break Some(why),
                None => break None,
            }
        };
        match why {
            Some(why) => info!(%why, "the role ended; electing again"),
            None => break,
        }
    }
    net.shutdown();
}

/// The quorum port's acceptor: learners connect here; the driver keeps
/// their links only while this server leads.
pub(crate) async fn accept_learners(
    listener: TcpListener,
    core: mpsc::UnboundedSender<CoreMsg>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let core = core.clone();
        let stop = stop.clone();
        tokio::spawn(
            async move {
                let _ = stream.set_nodelay(true);
                let (rd, wr) = stream.into_split();
                let mut reader = PacketReader::new(rd);
                let first = match tokio::time::timeout(Duration::from_secs(10), reader.next()).await {
                    Ok(Ok(Some(p))) => p,
                    _ => return,
                };
                if first.packet_type != pt::FOLLOWERINFO && first.packet_type != pt::OBSERVERINFO {
                    return warn!(kind = first.packet_type, "a learner must start with FOLLOWERINFO");
                }
                let Some(info) = first.data.clone().and_then(|mut d| LearnerInfo::decode(&mut d).ok()) else {
                    return warn!("a FOLLOWERINFO without a LearnerInfo");
                };
                let sid = info.serverid;
                let link = next_link();
                let (tx, rx) = mpsc::unbounded_channel();
                if core.send(CoreMsg::PeerJoined { sid, link, tx, first }).is_err() {
                    return;
                }
                debug!(sid, "learner connected");
                run_link(sid, link, reader, wr, rx, core, stop).await;
                debug!(sid, "learner gone");
            }
            .instrument(info_span!("learner", %peer)),
        );
    }
}

/// A learner's link to its leader: connects (retrying for
/// `connect_within`), then carries packets both ways.
pub(crate) async fn connect_leader(
    leader: i64,
    addr: String,
    link: u64,
    connect_within: Duration,
    rx: mpsc::UnboundedReceiver<PeerOut>,
    core: mpsc::UnboundedSender<CoreMsg>,
    stop: watch::Receiver<bool>,
) {
    let deadline = tokio::time::Instant::now() + connect_within;
    let stream = loop {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr.as_str())).await {
            Ok(Ok(s)) => break s,
            Ok(Err(e)) => debug!(%addr, error = %e, "cannot connect to the leader yet"),
            Err(_) => debug!(%addr, "connecting to the leader timed out"),
        }
        if tokio::time::Instant::now() >= deadline || core.is_closed() {
            warn!(leader, %addr, "cannot connect to the leader");
            let _ = core.send(CoreMsg::PeerGone { link, from: leader });
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    run_link(leader, link, PacketReader::new(rd), wr, rx, core, stop).await;
}

/// Carries a link's packets until either side ends it.
async fn run_link(
    peer: i64,
    link: u64,
    mut reader: PacketReader<tokio::net::tcp::OwnedReadHalf>,
    wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<PeerOut>,
    core: mpsc::UnboundedSender<CoreMsg>,
    mut stop: watch::Receiver<bool>,
) {
    let writer = async move {
        let mut wr = BufWriter::with_capacity(64 << 10, wr);
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(o) = next.take() {
                if write_out(&mut wr, o).await.is_err() {
                    return;
                }
                next = rx.try_recv().ok();
            }
            if wr.flush().await.is_err() {
                return;
            }
        }
    };
    let core2 = core.clone();
    let read = async move {
        loop {
            match reader.next().await {
                Ok(Some(pkt)) if pkt.packet_type == pt::SNAP => {
                    let zxid = pkt.zxid;
                    match read_snapshot(&mut reader, zxid).await {
                        Ok(snapshot) => {
                            if core2.send(CoreMsg::PeerSnapshot { link, from: peer, zxid, snapshot }).is_err()
                            {
                                return;
                            }
                        }
                        Err(e) => return warn!(peer, error = %e, "a SNAP that does not load"),
                    }
                }
                Ok(Some(pkt)) => {
                    if core2.send(CoreMsg::Peer { link, from: peer, pkt }).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => return warn!(peer, error = %e, "a bad quorum packet"),
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = read => {}
        _ = stop.changed() => {}
    }
    let _ = core.send(CoreMsg::PeerGone { link, from: peer });
}

async fn write_out(wr: &mut (impl AsyncWriteExt + Unpin), o: PeerOut) -> std::io::Result<()> {
    match o {
        PeerOut::Packet(pkt) => {
            let mut b = BytesMut::new();
            pkt.encode(&mut b);
            wr.write_all(&b).await
        }
        PeerOut::Snapshot(job) => {
            let zxid = job.zxid;
            let bytes = tokio::task::spawn_blocking(move || encode_job(job))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
            let mut b = BytesMut::new();
            QuorumPacket { packet_type: pt::SNAP, zxid, data: None, authinfo: None }.encode(&mut b);
            wr.write_all(&b).await?;
            wr.write_all(&bytes).await
        }
    }
}

fn encode_job(job: SnapshotJob) -> std::io::Result<Bytes> {
    let SnapshotJob { sessions, view, .. } = job;
    encode_ordered_stream(&sessions, view.acl_table(), |sink| {
        view.walk(|path, n| sink.push(path, n.data(), n.acl_id(), &n.stat()))
    })
}

/// Reads the state that follows a SNAP packet.
async fn read_snapshot(
    reader: &mut PacketReader<tokio::net::tcp::OwnedReadHalf>,
    zxid: i64,
) -> std::io::Result<Snapshot> {
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    // Parse again once the buffer doubled, or once a read found the
    // socket drained (the sender is slower than the parse): linear in the
    // state's size either way.
    let mut try_at = 0usize;
    let mut drained = true;
    loop {
        let have = reader.buffered();
        if have.len() >= try_at || drained {
            let bytes = Bytes::copy_from_slice(have);
            if let Some((snap, used)) = parse_stream(zxid, &bytes).map_err(bad)? {
                reader.consume(used);
                return Ok(snap);
            }
            try_at = have.len() * 2;
        }
        if have.len() > MAX_SNAPSHOT {
            return Err(bad(format!("a SNAP larger than {MAX_SNAPSHOT} bytes")));
        }
        let n = reader.fill().await?;
        if n == 0 {
            return Err(bad("the leader closed the link in a SNAP".into()));
        }
        drained = n < 64 << 10;
    }
}

/// Connect within this long: Apache's learners retry within initLimit.
pub(crate) fn connect_within(q: &QuorumConfig, tick: Duration) -> Duration {
    tick * q.init_limit.max(1)
}
