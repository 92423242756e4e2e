//! What peers exchange on the election port, byte for byte as Apache's
//! `QuorumCnxManager` and `FastLeaderElection` write it.
//!
//! A connection opens with the initial message:
//!
//! ```text
//! long protocolVersion (-65536: v1, -65535: v2 with several addresses)
//! long sid
//! int  length, then `host:port` of the sender's election address (UTF-8, <= 2048)
//! ```
//!
//! (a first long >= 0 is the sid itself, from servers older than 3.5).
//! After it, each message is `int length` (1..=512 KiB) and that many
//! bytes; election messages are notifications:
//!
//! ```text
//! int state  long leader  long zxid  long electionEpoch  long peerEpoch
//! int version (2)  int configLength  configLength bytes of config
//! ```
//!
//! (28-byte and 40-byte forms from older servers are read too).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// `PROTOCOL_VERSION_V1`: one address in the initial message.
pub const PROTOCOL_VERSION_V1: i64 = -65536;
/// `PROTOCOL_VERSION_V2`: `|`-separated addresses.
pub const PROTOCOL_VERSION_V2: i64 = -65535;
/// The longest address string an initial message may carry.
pub const MAX_INITIAL_ADDRESS: usize = 2048;
/// The largest message on the election port (`PACKETMAXSIZE`).
pub const MAX_MESSAGE: usize = 512 * 1024;
/// The notification format this server sends (with config).
pub const NOTIFICATION_VERSION: i32 = 2;

/// Why bytes from a peer were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the format needs.
    #[error("message too short: {0} bytes")]
    Short(usize),
    /// An unknown protocol version in the initial message.
    #[error("unknown protocol version {0}")]
    Protocol(i64),
    /// A length field out of its bounds.
    #[error("length {0} out of bounds")]
    Length(i64),
    /// Bytes that are not what the field holds.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// A peer's state as notifications carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// In an election.
    Looking,
    /// Following a leader.
    Following,
    /// Leading.
    Leading,
    /// Observing a leader.
    Observing,
}

impl PeerState {
    /// The number on the wire.
    pub fn code(self) -> i32 {
        match self {
            PeerState::Looking => 0,
            PeerState::Following => 1,
            PeerState::Leading => 2,
            PeerState::Observing => 3,
        }
    }

    /// From the wire; `None` for an unknown number (Apache skips such a
    /// notification).
    pub fn from_code(c: i32) -> Option<PeerState> {
        Some(match c {
            0 => PeerState::Looking,
            1 => PeerState::Following,
            2 => PeerState::Leading,
            3 => PeerState::Observing,
            _ => return None,
        })
    }

    /// Apache's name (`mntr`'s zk_peer_state, logs).
    pub fn name(self) -> &'static str {
        match self {
            PeerState::Looking => "looking",
            PeerState::Following => "following",
            PeerState::Leading => "leading",
            PeerState::Observing => "observing",
        }
    }
}

/// The opening of an election connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMessage {
    /// The sender's server id.
    pub sid: i64,
    /// Its election address(es), `host:port`.
    pub addrs: Vec<String>,
}

impl InitialMessage {
    /// Writes it in the v1 form (one address).
    pub fn encode(&self, out: &mut BytesMut) {
        let addr = self.addrs.first().map(String::as_str).unwrap_or("");
        out.put_i64(PROTOCOL_VERSION_V1);
        out.put_i64(self.sid);
        out.put_i32(addr.len() as i32);
        out.put_slice(addr.as_bytes());
    }

    /// Reads one from the front of `buf`: `Ok(None)` when more bytes are
    /// needed.
    ///
    /// # Errors
    /// [`WireError`] for a version, length or address that cannot be.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<InitialMessage>, WireError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let version = i64::from_be_bytes(buf[..8].try_into().map_err(|_| WireError::Short(buf.len()))?);
        if version >= 0 {
            // A pre-3.5 server: the first long is its sid, nothing follows.
            buf.advance(8);
            return Ok(Some(InitialMessage { sid: version, addrs: Vec::new() }));
        }
        if version != PROTOCOL_VERSION_V1 && version != PROTOCOL_VERSION_V2 {
            return Err(WireError::Protocol(version));
        }
        if buf.len() < 20 {
            return Ok(None);
        }
        let sid = i64::from_be_bytes(buf[8..16].try_into().map_err(|_| WireError::Short(buf.len()))?);
        let len = i32::from_be_bytes(buf[16..20].try_into().map_err(|_| WireError::Short(buf.len()))?);
        if len <= 0 || len as usize > MAX_INITIAL_ADDRESS {
            return Err(WireError::Length(i64::from(len)));
        }
        let len = len as usize;
        if buf.len() < 20 + len {
            return Ok(None);
        }
        let text = std::str::from_utf8(&buf[20..20 + len]).map_err(|_| WireError::Malformed("address"))?;
        let addrs: Vec<String> = text.split('|').map(str::to_string).collect();
        for a in &addrs {
            let port = a.rsplit_once(':').map(|(_, p)| p).ok_or(WireError::Malformed("address"))?;
            port.parse::<u16>().map_err(|_| WireError::Malformed("address port"))?;
        }
        buf.advance(20 + len);
        Ok(Some(InitialMessage { sid, addrs }))
    }
}

/// One election notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The sender's state.
    pub state: PeerState,
    /// The server it votes for.
    pub leader: i64,
    /// That server's last zxid.
    pub zxid: i64,
    /// The election round (logical clock).
    pub election_epoch: i64,
    /// That server's epoch.
    pub peer_epoch: i64,
    /// The format version (0: 40-byte form, 1, 2: with config).
    pub version: i32,
    /// The sender's ensemble config (`server.N=...` lines and
    /// `version=`), empty before version 2.
    pub config: Bytes,
}

impl Notification {
    /// The message body (version 2, with config).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(44 + self.config.len());
        b.put_i32(self.state.code());
        b.put_i64(self.leader);
        b.put_i64(self.zxid);
        b.put_i64(self.election_epoch);
        b.put_i64(self.peer_epoch);
        b.put_i32(NOTIFICATION_VERSION);
        b.put_i32(self.config.len() as i32);
        b.put_slice(&self.config);
        b.freeze()
    }

    /// Reads a message body as Apache's `WorkerReceiver` does.
    ///
    /// # Errors
    /// [`WireError`] for a short body, an unknown state or a config length
    /// out of bounds.
    pub fn decode(mut b: Bytes) -> Result<Notification, WireError> {
        let cap = b.len();
        if cap < 28 {
            return Err(WireError::Short(cap));
        }
        let state = PeerState::from_code(b.get_i32()).ok_or(WireError::Malformed("state"))?;
        let leader = b.get_i64();
        let zxid = b.get_i64();
        let election_epoch = b.get_i64();
        let (peer_epoch, mut version) = if cap == 28 { (zxid >> 32, 0) } else { (b.get_i64(), 0) };
        let mut config = Bytes::new();
        if cap > 40 {
            if b.remaining() < 4 {
                return Err(WireError::Short(cap));
            }
            version = b.get_i32();
            if version > 1 {
                if b.remaining() < 4 {
                    return Err(WireError::Short(cap));
                }
                let len = b.get_i32();
                if len < 0 || len as usize > b.remaining() {
                    return Err(WireError::Length(i64::from(len)));
                }
                config = b.split_to(len as usize);
            }
        }
        Ok(Notification { state, leader, zxid, election_epoch, peer_epoch, version, config })
    }

    /// The `version=` of the config it carries, if any (hex, as Apache
    /// writes it).
    pub fn config_version(&self) -> Option<i64> {
        let text = std::str::from_utf8(&self.config).ok()?;
        let v = text.lines().rev().find_map(|l| l.trim().strip_prefix("version="))?;
        i64::from_str_radix(v.trim(), 16).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn initial_message_both_ways() {
        let m = InitialMessage { sid: 3, addrs: vec!["127.0.0.1:3888".into()] };
        let mut b = BytesMut::new();
        m.encode(&mut b);
        assert_eq!(&b[..8], &(-65536i64).to_be_bytes());
        let mut partial = BytesMut::from(&b[..15]);
        assert_eq!(InitialMessage::decode(&mut partial), Ok(None), "needs more bytes");
        assert_eq!(InitialMessage::decode(&mut b).unwrap(), Some(m));
        assert!(b.is_empty());
        let mut old = BytesMut::from(&7i64.to_be_bytes()[..]);
        assert_eq!(InitialMessage::decode(&mut old).unwrap().unwrap().sid, 7, "pre-3.5 form");
        let mut bad = BytesMut::new();
        bad.put_i64(-1);
        assert_eq!(InitialMessage::decode(&mut bad), Err(WireError::Protocol(-1)));
        let mut huge = BytesMut::new();
        huge.put_i64(PROTOCOL_VERSION_V1);
        huge.put_i64(1);
        huge.put_i32(1 << 30);
        assert!(matches!(InitialMessage::decode(&mut huge), Err(WireError::Length(_))));
        let mut noport = BytesMut::new();
        InitialMessage { sid: 1, addrs: vec!["host".into()] }.encode(&mut noport);
        assert!(InitialMessage::decode(&mut noport).is_err());
    }

    #[test]
    fn notifications_in_every_form() {
        let n = Notification {
            state: PeerState::Looking,
            leader: 3,
            zxid: 0x1_0000_0005,
            election_epoch: 2,
            peer_epoch: 1,
            version: 2,
            config: Bytes::from_static(b"server.1=a:1:2:participant\nversion=1f"),
        };
        let bytes = n.encode();
        assert_eq!(bytes.len(), 44 + n.config.len());
        assert_eq!(Notification::decode(bytes).unwrap(), n);
        assert_eq!(n.config_version(), Some(0x1f));
        // The 40-byte form (no version) and the 28-byte one (no peer epoch).
        let mut b40 = BytesMut::new();
        b40.put_i32(2);
        b40.put_i64(1);
        b40.put_i64(0x2_0000_0001);
        b40.put_i64(4);
        b40.put_i64(2);
        let d = Notification::decode(b40.clone().freeze()).unwrap();
        assert_eq!((d.state, d.peer_epoch, d.version), (PeerState::Leading, 2, 0));
        let d = Notification::decode(b40.split_to(28).freeze()).unwrap();
        assert_eq!(d.peer_epoch, 2, "the epoch comes from the zxid");
        // Malformed ones are refused, never panic.
        assert!(Notification::decode(Bytes::from_static(&[0; 10])).is_err());
        let mut bad_len = BytesMut::from(&n.encode()[..44]);
        bad_len[40..44].copy_from_slice(&1000i32.to_be_bytes());
        assert!(matches!(Notification::decode(bad_len.freeze()), Err(WireError::Length(1000))));
        let mut bad_state = BytesMut::from(&n.encode()[..]);
        bad_state[..4].copy_from_slice(&9i32.to_be_bytes());
        assert!(Notification::decode(bad_state.freeze()).is_err());
        for len in 0..60 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = Notification::decode(Bytes::from(junk));
        }
    }
}
