//! The quorum port: [`QuorumPacket`]s over TCP as Apache's `Learner` and
//! `LearnerHandler` exchange them (jute records back to back, no length
//! prefix; a learner's first packet is FOLLOWERINFO or OBSERVERINFO with
//! its `LearnerInfo`), and thin drivers that run a [`Leader`] or a
//! [`Learner`] over it.
//!
//! The drivers keep the log through a [`ZabLog`]; the one here,
//! [`MemLog`], keeps it in memory (for tests and the simulation's
//! counterpart over real sockets). The server's log stage takes its place
//! when the roles are wired into the pipeline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};
use zk_proto::records::{LearnerInfo, QuorumPacket, packet_type as pt};
use zk_proto::{ProtoError, Record};

use super::zab::{Durable, Leader, Learner, Txn, ZabIn, ZabOut};

/// The largest quorum packet read (Apache bounds them by `jute.maxbuffer`
/// plus headroom).
pub const MAX_PACKET: usize = 4 << 20;

/// Reads quorum packets off a stream.
#[derive(Debug)]
pub struct PacketReader<R> {
    rd: R,
    buf: BytesMut,
}

impl<R: AsyncReadExt + Unpin> PacketReader<R> {
    /// Wraps a stream.
    pub fn new(rd: R) -> Self {
        PacketReader { rd, buf: BytesMut::with_capacity(4096) }
    }

    /// The next packet; `None` at the end of the stream.
    ///
    /// # Errors
    /// A malformed or oversized packet, or the stream's error.
    pub async fn next(&mut self) -> std::io::Result<Option<QuorumPacket>> {
        loop {
            if !self.buf.is_empty() {
                let mut b = Bytes::copy_from_slice(&self.buf);
                match QuorumPacket::decode(&mut b) {
                    Ok(p) => {
                        let used = self.buf.len() - b.remaining();
                        self.buf.advance(used);
                        return Ok(Some(p));
                    }
                    // A field longer than what has arrived: read more.
                    Err(ProtoError::UnexpectedEof { .. } | ProtoError::LengthBeyondFrame { .. }) => {}
                    Err(e) => {
                        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()));
                    }
                }
            }
            if self.buf.len() > MAX_PACKET {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "quorum packet too large"));
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }
}

impl<R: AsyncReadExt + Unpin> PacketReader<R> {
    /// The bytes read and not yet taken.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Takes `n` buffered bytes.
    pub fn consume(&mut self, n: usize) {
        self.buf.advance(n.min(self.buf.len()));
    }

    /// Reads more into the buffer; 0 at the end of the stream.
    ///
    /// # Errors
    /// The stream's error.
    pub async fn fill(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 64 << 10 {
            self.buf.reserve(self.buf.len().max(64 << 10));
        }
        self.rd.read_buf(&mut self.buf).await
    }
}

/// Writes one packet.
///
/// # Errors
/// The stream's error.
pub async fn write_packet(wr: &mut (impl AsyncWriteExt + Unpin), pkt: &QuorumPacket) -> std::io::Result<()> {
    let mut b = BytesMut::new();
    pkt.encode(&mut b);
    wr.write_all(&b).await
}

/// Where a role's log and epochs go.
pub trait ZabLog: Send {
    /// Appends (durably) txns.
    ///
    /// # Errors
    /// When the log cannot be written.
    fn append(&mut self, txns: &[Txn]) -> std::io::Result<()>;
    /// Cuts the log after `zxid`.
    ///
    /// # Errors
    /// As [`ZabLog::append`].
    fn truncate(&mut self, zxid: i64) -> std::io::Result<()>;
    /// Replaces the log.
    ///
    /// # Errors
    /// As [`ZabLog::append`].
    fn replace(&mut self, txns: &[Txn]) -> std::io::Result<()>;
    /// Persists `acceptedEpoch` or `currentEpoch`.
    ///
    /// # Errors
    /// As [`ZabLog::append`].
    fn persist_epoch(&mut self, accepted: Option<i64>, current: Option<i64>) -> std::io::Result<()>;
}

/// A log in memory.
#[derive(Debug, Default, Clone)]
pub struct MemLog {
    /// What it holds.
    pub state: Durable,
}

impl ZabLog for MemLog {
    fn append(&mut self, txns: &[Txn]) -> std::io::Result<()> {
        self.state.log.extend_from_slice(txns);
        Ok(())
    }
    fn truncate(&mut self, zxid: i64) -> std::io::Result<()> {
        self.state.log.retain(|t| t.zxid <= zxid);
        Ok(())
    }
    fn replace(&mut self, txns: &[Txn]) -> std::io::Result<()> {
        self.state.log = txns.to_vec();
        Ok(())
    }
    fn persist_epoch(&mut self, accepted: Option<i64>, current: Option<i64>) -> std::io::Result<()> {
        if let Some(a) = accepted {
            self.state.accepted_epoch = a;
        }
        if let Some(c) = current {
            self.state.current_epoch = c;
        }
        Ok(())
    }
}

/// Carries out the log side of a role's outputs; `Err` ends the role.
/// Returns the zxid made durable, if any.
fn log_output(log: &mut dyn ZabLog, o: &ZabOut) -> Result<Option<i64>, String> {
    let r = match o {
        ZabOut::Append(t) => log.append(t).map(|()| t.last().map(|t| t.zxid)),
        ZabOut::Truncate(z) => log.truncate(*z).map(|()| None),
        ZabOut::PersistAcceptedEpoch(e) => log.persist_epoch(Some(*e), None).map(|()| None),
        ZabOut::PersistCurrentEpoch(e) => log.persist_epoch(None, Some(*e)).map(|()| None),
        _ => Ok(None),
    };
    r.map_err(|e| format!("the log failed: {e}"))
}

enum LeaderEvent {
    Joined(i64, mpsc::UnboundedSender<QuorumPacket>),
    Packet(i64, QuorumPacket),
}

/// Runs `leader` on `listener` until it steps down; returns why.
/// Committed txns go to `deliver`; payloads from `propose` are
/// replicated once the leader is established.
pub async fn lead(
    mut leader: Leader,
    listener: TcpListener,
    tick: Duration,
    log: &mut dyn ZabLog,
    deliver: mpsc::UnboundedSender<Txn>,
    mut propose: mpsc::UnboundedReceiver<Bytes>,
) -> String {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let acceptor = tokio::spawn(accept_learners(listener, ev_tx));
    let mut learners: HashMap<i64, mpsc::UnboundedSender<QuorumPacket>> = HashMap::new();
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut proposals_open = true;
    let why = loop {
        let input = tokio::select! {
            ev = ev_rx.recv() => match ev {
                Some(LeaderEvent::Joined(sid, tx)) => {
                    learners.insert(sid, tx);
                    continue;
                }
                Some(LeaderEvent::Packet(sid, pkt)) => ZabIn::Packet { from: sid, pkt },
                None => break "the quorum port closed".to_string(),
            },
            _ = ticker.tick() => ZabIn::Tick,
            p = propose.recv(), if proposals_open => match p {
                // Not yet established: the proposal is dropped (the caller
                // probes until one is delivered).
                Some(_) if !leader.established() => continue,
                Some(data) => ZabIn::Propose(Txn { zxid: leader.next_zxid(), data }),
                None => {
                    proposals_open = false;
                    continue;
                }
            },
        };
        leader.step(input);
        let mut pending = leader.drain();
        let mut stepped = None;
        while !pending.is_empty() {
            for o in std::mem::take(&mut pending) {
                match log_output(log, &o) {
                    Err(e) => stepped = Some(e),
                    Ok(Some(z)) => {
                        leader.step(ZabIn::Synced(z));
                    }
                    Ok(None) => {}
                }
                match o {
                    ZabOut::Send { to, pkt } => {
                        if let Some(tx) = learners.get(&to) {
                            let _ = tx.send(pkt);
                        }
                    }
                    ZabOut::Deliver(t) => {
                        let _ = deliver.send(t);
                    }
                    ZabOut::Established(e) => info!(epoch = e, "leading: a quorum is synced"),
                    ZabOut::SendSnapshot { to, .. } => {
                        stepped = Some(format!("learner {to} needs a snapshot, which a MemLog cannot make"))
                    }
                    ZabOut::StepDown(why) => stepped = Some(why),
                    _ => {}
                }
            }
            pending = leader.drain();
        }
        if let Some(why) = stepped {
            break why;
        }
    };
    acceptor.abort();
    why
}

async fn accept_learners(listener: TcpListener, events: mpsc::UnboundedSender<LeaderEvent>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let events = events.clone();
        tokio::spawn(
            async move {
                let _ = stream.set_nodelay(true);
                let (rd, mut wr) = stream.into_split();
                let mut reader = PacketReader::new(rd);
                let first = match tokio::time::timeout(Duration::from_secs(10), reader.next()).await {
                    Ok(Ok(Some(p))) => p,
                    _ => return,
                };
                if first.packet_type != pt::FOLLOWERINFO && first.packet_type != pt::OBSERVERINFO {
                    warn!(%peer, kind = first.packet_type, "a learner must start with FOLLOWERINFO");
                    return;
                }
                let Some(info) = first.data.clone().and_then(|mut d| LearnerInfo::decode(&mut d).ok()) else {
                    warn!(%peer, "a FOLLOWERINFO without a LearnerInfo");
                    return;
                };
                let sid = info.serverid;
                let (tx, mut rx) = mpsc::unbounded_channel::<QuorumPacket>();
                if events.send(LeaderEvent::Joined(sid, tx)).is_err()
                    || events.send(LeaderEvent::Packet(sid, first)).is_err()
                {
                    return;
                }
                debug!(sid, "learner connected");
                let writer = async move {
                    while let Some(pkt) = rx.recv().await {
                        if write_packet(&mut wr, &pkt).await.is_err() {
                            return;
                        }
                    }
                };
                let read = async {
                    while let Ok(Some(pkt)) = reader.next().await {
                        if events.send(LeaderEvent::Packet(sid, pkt)).is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    _ = writer => {}
                    _ = read => {}
                }
                debug!(sid, "learner gone");
            }
            .instrument(info_span!("learner", %peer)),
        );
    }
}

/// Runs `learner` against the leader at `leader_addr` until it steps down
/// (or the connection fails); returns why. Committed txns go to
/// `deliver`. Connecting is retried for `connect_within`.
pub async fn follow(
    mut learner: Learner,
    leader_addr: SocketAddr,
    connect_within: Duration,
    tick: Duration,
    log: &mut dyn ZabLog,
    deliver: mpsc::UnboundedSender<Txn>,
) -> String {
    // The leader may not listen yet: try again until `connect_within`
    // (Apache's learners retry within initLimit).
    let deadline = tokio::time::Instant::now() + connect_within;
    let stream = loop {
        let last = match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(leader_addr)).await {
            Ok(Ok(s)) => break s,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return format!("cannot connect to the leader at {leader_addr}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut reader = PacketReader::new(rd);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let leader_id = learner.leader();
    loop {
        let mut stepped = None;
        let mut pending = learner.drain();
        while !pending.is_empty() {
            for o in std::mem::take(&mut pending) {
                match log_output(log, &o) {
                    Err(e) => stepped = Some(e),
                    Ok(Some(z)) => learner.step(ZabIn::Synced(z)),
                    Ok(None) => {}
                }
                match o {
                    ZabOut::Send { pkt, .. } => {
                        if let Err(e) = write_packet(&mut wr, &pkt).await {
                            stepped = Some(format!("the connection to the leader failed: {e}"));
                        }
                    }
                    ZabOut::Deliver(t) => {
                        let _ = deliver.send(t);
                    }
                    ZabOut::StepDown(why) => stepped = Some(why),
                    _ => {}
                }
            }
            pending = learner.drain();
        }
        if let Some(why) = stepped {
            return why;
        }
        tokio::select! {
            p = reader.next() => match p {
                Ok(Some(pkt)) if pkt.packet_type == pt::SNAP => {
                    return "the leader sent a SNAP, which a MemLog cannot load".into();
                }
                Ok(Some(pkt)) => learner.step(ZabIn::Packet { from: leader_id, pkt }),
                Ok(None) => return "the leader closed the connection".into(),
                Err(e) => return format!("a bad packet from the leader: {e}"),
            },
            _ = ticker.tick() => learner.step(ZabIn::Tick),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A packet that arrives a byte at a time is read whole: a length
    /// field that points past what has arrived means "read more".
    #[tokio::test]
    async fn packets_split_anywhere_are_read_whole() {
        let pkts: Vec<QuorumPacket> = (0..3)
            .map(|i| QuorumPacket {
                packet_type: pt::PROPOSAL,
                zxid: 0x1_0000_0000 + i,
                data: Some(Bytes::from(vec![i as u8; 80])),
                authinfo: None,
            })
            .collect();
        let mut bytes = BytesMut::new();
        for p in &pkts {
            p.encode(&mut bytes);
        }
        let (mut tx, rx) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            for b in bytes.iter() {
                tx.write_all(&[*b]).await.unwrap();
            }
        });
        let mut reader = PacketReader::new(rx);
        for p in &pkts {
            assert_eq!(reader.next().await.unwrap().as_ref(), Some(p));
        }
        writer.await.unwrap();
        assert_eq!(reader.next().await.unwrap(), None);
    }
}
