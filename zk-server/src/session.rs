//! Sessions: ids, passwords, timeouts and expiry in tick buckets (Apache's
//! `SessionTrackerImpl` and `ExpiryQueue`).
//!
//! Time is passed in (milliseconds on a monotonic clock), so expiry is
//! tested without sleeping.

use std::collections::BTreeMap;

use hashbrown::{HashMap, HashSet};

use bytes::Bytes;

/// The session password Apache derives from the id:
/// `new java.util.Random(id ^ 0xB3415C00L).nextBytes(16)`.
///
/// Reproducing Java's generator keeps a session valid when its client moves
/// between this server and an Apache one sharing the data (and matches what
/// Apache clients expect).
pub(crate) fn password(session_id: i64) -> Bytes {
    const MULT: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;
    let mut seed = ((session_id ^ 0xB341_5C00_i64) as u64 ^ MULT) & MASK;
    let mut next_int = || {
        seed = (seed.wrapping_mul(MULT).wrapping_add(0xB)) & MASK;
        (seed >> 16) as u32 as i32
    };
    let mut out = Vec::with_capacity(16);
    while out.len() < 16 {
        let mut rnd = next_int();
        for _ in 0..(16 - out.len()).min(4) {
            out.push(rnd as u8);
            rnd >>= 8;
        }
    }
    Bytes::from(out)
}

/// The first session id of a server: the server id in the top byte, the
/// time in the next 40 bits, a counter in the low 16.
pub(crate) fn initial_session_id(server_id: u8, now_ms: u64) -> i64 {
    let mut id = ((now_ms << 24) >> 8) as i64 | (i64::from(server_id) << 56);
    if id == i64::MIN {
        id += 1;
    }
    id
}

/// One session as the tracker knows it.
#[derive(Debug, Clone)]
pub(crate) struct SessionEntry {
    /// Negotiated timeout in ms.
    pub(crate) timeout_ms: i32,
    /// The bucket it expires in.
    pub(crate) expires_at: u64,
    /// Set once a closeSession is under way: not expired twice.
    pub(crate) closing: bool,
}

/// Tracks sessions and their expiry.
#[derive(Debug)]
pub(crate) struct SessionTracker {
    tick_ms: u64,
    next_id: i64,
    sessions: HashMap<i64, SessionEntry>,
    buckets: BTreeMap<u64, HashSet<i64>>,
}

impl SessionTracker {
    /// A tracker handing out ids from `first_id`.
    pub(crate) fn new(tick_ms: u64, first_id: i64) -> Self {
        SessionTracker {
            tick_ms: tick_ms.max(1),
            next_id: first_id,
            sessions: HashMap::new(),
            buckets: BTreeMap::new(),
        }
    }

    /// A fresh session id.
    pub(crate) fn next_id(&mut self) -> i64 {
        let mut id = self.next_id;
        while id == i64::MIN || id == 0 || self.sessions.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        id
    }

    /// Makes sure later ids are above `id` (after recovery).
    pub(crate) fn observe_id(&mut self, id: i64) {
        if (id >> 56) == (self.next_id >> 56) && id >= self.next_id {
            self.next_id = id + 1;
        }
    }

    fn bucket(&self, now_ms: u64, timeout_ms: i32) -> u64 {
        let t = now_ms + timeout_ms.max(0) as u64;
        (t / self.tick_ms + 1) * self.tick_ms
    }

    /// Adds (or re-adds) a session and touches it.
    pub(crate) fn add(&mut self, id: i64, timeout_ms: i32, now_ms: u64) {
        self.remove(id);
        let expires_at = self.bucket(now_ms, timeout_ms);
        self.sessions.insert(id, SessionEntry { timeout_ms, expires_at, closing: false });
        self.buckets.entry(expires_at).or_default().insert(id);
    }

    /// Forgets a session.
    pub(crate) fn remove(&mut self, id: i64) -> Option<SessionEntry> {
        let e = self.sessions.remove(&id)?;
        if let Some(b) = self.buckets.get_mut(&e.expires_at) {
            b.remove(&id);
            if b.is_empty() {
                self.buckets.remove(&e.expires_at);
            }
        }
        Some(e)
    }

    /// Extends a live session; false when it is unknown or closing.
    pub(crate) fn touch(&mut self, id: i64, now_ms: u64) -> bool {
        let Some(e) = self.sessions.get(&id) else { return false };
        if e.closing {
            return false;
        }
        let new = self.bucket(now_ms, e.timeout_ms);
        let old = e.expires_at;
        if new == old {
            return true;
        }
        if let Some(b) = self.buckets.get_mut(&old) {
            b.remove(&id);
            if b.is_empty() {
                self.buckets.remove(&old);
            }
        }
        self.buckets.entry(new).or_default().insert(id);
        if let Some(e) = self.sessions.get_mut(&id) {
            e.expires_at = new;
        }
        true
    }

    /// Marks a session as closing; false when unknown or already closing.
    pub(crate) fn set_closing(&mut self, id: i64) -> bool {
        match self.sessions.get_mut(&id) {
            Some(e) if !e.closing => {
                e.closing = true;
                true
            }
            _ => false,
        }
    }

    /// The sessions whose bucket has passed, marked closing.
    pub(crate) fn expired(&mut self, now_ms: u64) -> Vec<i64> {
        let mut out = Vec::new();
        let due: Vec<u64> = self.buckets.range(..=now_ms).map(|(k, _)| *k).collect();
        for k in due {
            if let Some(ids) = self.buckets.remove(&k) {
                for id in ids {
                    if let Some(e) = self.sessions.get_mut(&id) {
                        if !e.closing {
                            e.closing = true;
                            out.push(id);
                        }
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// When the earliest bucket expires (monotonic ms), if any session is
    /// tracked.
    pub(crate) fn next_expiry(&self) -> Option<u64> {
        self.buckets.keys().next().copied()
    }

    /// A session's entry.
    pub(crate) fn get(&self, id: i64) -> Option<&SessionEntry> {
        self.sessions.get(&id)
    }

    /// Every live session with its timeout (for snapshots).
    pub(crate) fn all(&self) -> Vec<(i64, i32)> {
        let mut v: Vec<(i64, i32)> = self.sessions.iter().map(|(k, e)| (*k, e.timeout_ms)).collect();
        v.sort_unstable();
        v
    }

    /// The expiry buckets: (expiry time in monotonic ms, sessions), soonest
    /// first (the AdminServer's `dump`).
    pub(crate) fn buckets(&self) -> Vec<(u64, Vec<i64>)> {
        self.buckets
            .iter()
            .map(|(t, ids)| {
                let mut ids: Vec<i64> = ids.iter().copied().collect();
                ids.sort_unstable();
                (*t, ids)
            })
            .collect()
    }

    /// Number of sessions.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_random_password() {
        // What Apache 3.8 sent for session 0x10000059ca40000 in the golden
        // recording (zk-proto/tests/golden/client_session.txt, line 9).
        let p = password(0x0100_0005_9ca4_0000);
        assert_eq!(
            &p[..],
            &[0x1e, 0xc1, 0xb8, 0x21, 0x53, 0x5f, 0x68, 0x31, 0x2c, 0xf4, 0x99, 0x51, 0x54, 0xc7, 0x1e, 0xe6]
        );
        assert_ne!(password(0x0100_0005_9ca4_0000), password(0x0100_0005_9ca4_0001));
        assert_ne!(password(1), password(2));
    }

    #[test]
    fn ids_carry_the_server_id() {
        let id = initial_session_id(1, 0x59ca4);
        assert_eq!(id >> 56, 1);
        assert_eq!(id, 0x0100_0005_9ca4_0000);
        let mut t = SessionTracker::new(2000, id);
        assert_eq!(t.next_id(), id);
        assert_eq!(t.next_id(), id + 1);
    }

    #[test]
    fn expiry_in_buckets() {
        let mut t = SessionTracker::new(1000, 100);
        t.add(1, 4000, 0);
        t.add(2, 10_000, 0);
        assert!(t.expired(4999).is_empty());
        assert_eq!(t.expired(5000), vec![1]);
        assert!(t.expired(6000).is_empty(), "expired once");
        assert!(t.touch(2, 5000));
        assert!(t.expired(11_000).is_empty());
        assert_eq!(t.expired(16_000), vec![2]);
        assert!(!t.touch(2, 16_000), "a closing session is not revived");
    }
}
