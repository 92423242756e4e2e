//! Read-only mode (`readonlymode.enabled`), as Apache's
//! `ReadOnlyZooKeeperServer`: a server of an ensemble that has been looking
//! for a quorum for `max(2 s, tickTime)` serves the clients that say they
//! accept a read-only server (`ConnectRequest.readOnly`), and only them:
//!
//! - their sessions are local to this server (never replicated, gone when
//!   the server takes a role again) and the connect response says
//!   `readOnly`;
//! - a client reconnecting with a global session is refused (it looks for
//!   a read-write server), as is a client that does not accept read-only;
//! - reads are answered from the tree as it stands; writes, `sync` and
//!   `check` get `NotReadOnly`;
//! - `isro` answers `ro`, `srvr` `Mode: read-only`.
//!
//! When the election gives the server a role, every read-only connection
//! is closed and its clients move to a read-write server.

use std::net::SocketAddr;

use tracing::info;
use zk_proto::records::{ConnectRequest, ConnectResponse, ReplyHeader};
use zk_proto::{ErrorCode, Request};

use super::core::{Conn, Core, Queued, is_write};
use super::quorum::Role;
use super::{ConnId, Out, Output};
use crate::session::password;
use crate::stats::ConnStats;

/// How long a server looks for a quorum before it serves read-only
/// clients: Apache's `max(2000, tickTime)` ms.
fn grace(tick_ms: u64) -> u64 {
    tick_ms.max(2_000)
}

impl Core {
    /// Whether this server is in read-only mode now.
    pub(crate) fn read_only_active(&self) -> bool {
        self.quorum.as_ref().is_some_and(|q| q.read_only && matches!(q.role, Role::Looking))
    }

    /// The sessions that live on beyond this server (the read-only ones
    /// are not written to snapshots).
    pub(super) fn global_sessions(&self) -> Vec<(i64, i32)> {
        let ro = self.quorum.as_ref().map(|q| &q.ro_sessions);
        self.sessions.all().into_iter().filter(|(id, _)| !ro.is_some_and(|r| r.contains(id))).collect()
    }

    /// When read-only mode's next timer is due: its start, or the expiry
    /// of a read-only session.
    pub(super) fn read_only_deadline(&self) -> Option<u64> {
        let q = self.quorum.as_ref()?;
        if !self.cfg.read_only_mode || !matches!(q.role, Role::Looking) {
            return None;
        }
        if !q.read_only {
            return Some(q.looking_since.map_or(self.now.mono_ms, |s| s + grace(q.tick_ms)));
        }
        q.ro_sessions.iter().filter_map(|id| self.sessions.get(*id)).map(|e| e.expires_at).min()
    }

    /// Starts read-only mode once the grace is over; expires read-only
    /// sessions (this server alone decides them).
    pub(super) fn read_only_timers(&mut self) {
        let now = self.now.mono_ms;
        let enabled = self.cfg.read_only_mode;
        let Some(q) = self.quorum.as_mut() else { return };
        if !enabled || !matches!(q.role, Role::Looking) {
            return;
        }
        let since = *q.looking_since.get_or_insert(now);
        if !q.read_only && now >= since + grace(q.tick_ms) {
            q.read_only = true;
            info!("no quorum for {} ms: read-only mode, serving read-only clients", now - since);
        }
        let expired: Vec<i64> = q
            .ro_sessions
            .iter()
            .copied()
            .filter(|id| self.sessions.get(*id).is_none_or(|e| e.expires_at <= now))
            .collect();
        for id in expired {
            info!(session = format_args!("{id:#x}"), "read-only session expired");
            self.drop_ro_session(id);
        }
    }

    fn drop_ro_session(&mut self, id: i64) {
        if let Some(q) = self.quorum.as_mut() {
            q.ro_sessions.remove(&id);
        }
        self.sessions.remove(id);
        if let Some(conn) = self.session_conn.remove(&id) {
            self.close_conn(conn);
        }
    }

    /// Ends read-only mode (a role begins): its clients go.
    pub(super) fn leave_read_only(&mut self) {
        let Some(q) = self.quorum.as_mut() else { return };
        q.looking_since = None;
        if !std::mem::take(&mut q.read_only) {
            return;
        }
        info!(clients = q.ro_sessions.len(), "leaving read-only mode; closing its connections");
        let ids: Vec<i64> = q.ro_sessions.iter().copied().collect();
        for id in ids {
            self.drop_ro_session(id);
        }
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in conns {
            self.close_conn(c);
        }
    }

    /// A client connects to a server in read-only mode.
    pub(super) fn connect_read_only(
        &mut self,
        conn: ConnId,
        peer: Option<SocketAddr>,
        ids: Vec<zk_proto::records::Id>,
        req: ConnectRequest,
    ) {
        if req.read_only != Some(true) {
            info!("refusing a client that does not accept a read-only server");
            self.out.push(Output::Send(conn, Out::Close));
            return;
        }
        if self.refuse_from_the_future(conn, &req) {
            return;
        }
        let now = self.now.mono_ms;
        let min = self.cfg.min_session().as_millis() as i32;
        let max = self.cfg.max_session().as_millis() as i32;
        let ro = |s: &Self, id: i64| s.quorum.as_ref().is_some_and(|q| q.ro_sessions.contains(&id));
        let id = if req.session_id == 0 {
            let id = self.sessions.next_id();
            self.sessions.add(id, req.time_out.clamp(min, max), now);
            if let Some(q) = self.quorum.as_mut() {
                q.ro_sessions.insert(id);
            }
            id
        } else if ro(self, req.session_id) && req.passwd == password(req.session_id) {
            req.session_id
        } else if self.sessions.get(req.session_id).is_some() {
            info!(
                session = format_args!("{:#x}", req.session_id),
                "refusing a global session in read-only mode"
            );
            self.out.push(Output::Send(conn, Out::Close));
            return;
        } else {
            return self.answer_expired(conn, Some(true));
        };
        let mut auth =
            peer.map(|p| vec![zk_proto::records::Id::new("ip", p.ip().to_string())]).unwrap_or_default();
        auth.extend(ids);
        let stats = ConnStats { established_ms: self.now.wall_ms, ..ConnStats::default() };
        self.conns.insert(conn, Conn { session: id, peer, auth, stats, sasl: None });
        self.attach(id, conn);
        self.sessions.touch(id, now);
        let time_out = self.sessions.get(id).map_or(min, |e| e.timeout_ms);
        let rsp = ConnectResponse {
            protocol_version: 0,
            time_out,
            session_id: id,
            passwd: password(id),
            read_only: Some(true),
        };
        self.out.push(Output::Send(conn, Out::Connected(rsp)));
    }

    /// A read-only client's request: reads are answered, a close ends its
    /// local session, anything that would change the tree (or `sync`,
    /// which needs the leader) is `NotReadOnly`.
    pub(super) fn read_only_request(&mut self, conn: ConnId, session: i64, xid: i32, req: Request) {
        match req {
            Request::CloseSession => {
                let h = ReplyHeader { xid, zxid: self.tree.last_zxid, err: ErrorCode::Ok };
                self.reply(conn, h, None);
                if let Some(q) = self.quorum.as_mut() {
                    q.ro_sessions.remove(&session);
                }
                self.sessions.remove(session);
                self.session_conn.remove(&session);
                self.out.push(Output::Send(conn, Out::Close));
                self.on_disconnected(conn);
            }
            ref r if is_write(r) || matches!(r, Request::Sync(_) | Request::Check(_)) => {
                self.reply_err(conn, xid, ErrorCode::NotReadOnly)
            }
            req => {
                let queue = self.queues.entry(session).or_default();
                if queue.is_empty() {
                    self.answer_read(conn, xid, req, self.now.mono_ms);
                } else {
                    queue.push_back(Queued::Read { conn, xid, req, at: self.now.mono_ms });
                }
            }
        }
    }
}
