//! Commit and apply: committed txns change the tree in zxid order, fire
//! watches, and answer whoever waits for them (Apache's
//! `FinalRequestProcessor`). Reads a session queued behind its writes are
//! answered as soon as the writes before them are.

use zk_proto::records::*;
use zk_proto::{ErrorCode, EventType, KeeperState, OpCode, Response};

use super::core::{Core, InFlight, Origin, Queued};
use super::{ConnId, Out};
use crate::session::password;
use crate::tree::Applied;

impl Core {
    /// Every txn up to `zxid` is committed (standalone: durable in the
    /// log): apply them in order.
    pub(super) fn commit_through(&mut self, zxid: i64) {
        while self.in_flight.front().is_some_and(|f| f.txn.header.zxid <= zxid) {
            let Some(f) = self.in_flight.pop_front() else { break };
            self.apply(f);
        }
        self.maybe_snapshot();
    }

    pub(super) fn apply(&mut self, f: InFlight) {
        let InFlight { txn, origin } = f;
        let zxid = txn.header.zxid;
        let applied = self.tree.apply(&txn.header, &txn.body);
        self.prep.applied(zxid);
        self.txns_since_snapshot += 1;
        if let TxnBody::CreateSession(c) = &txn.body {
            // A session another server of the ensemble created.
            let id = txn.header.client_id;
            if self.sessions.get(id).is_none() {
                self.sessions.observe_id(id);
                self.sessions.add(id, c.time_out, self.now.mono_ms);
            }
        }
        if let TxnBody::CloseSession(_) = &txn.body {
            let id = txn.header.client_id;
            self.sessions.remove(id);
            // Reads queued behind the session's writes die with it; their
            // places in globalOutstandingLimit are freed.
            if let Some(q) = self.queues.remove(&id) {
                self.answered += q.iter().filter(|x| matches!(x, Queued::Read { .. })).count();
            }
        }
        self.fire(&applied, zxid);
        match origin {
            Origin::NewSession { conn, timeout, read_only_flag } => {
                let id = txn.header.client_id;
                let rsp = ConnectResponse {
                    protocol_version: 0,
                    time_out: timeout,
                    session_id: id,
                    passwd: password(id),
                    read_only: read_only_flag,
                };
                if self.conns.contains_key(&conn) {
                    self.out.push(super::Output::Send(conn, Out::Connected(rsp)));
                } else {
                    tracing::debug!(session = id, "client left before its session was created");
                }
            }
            Origin::Client { conn, session, xid, opcode, multi_ops, received_ms } => {
                let response = build_write_response(opcode, &applied, &multi_ops);
                let header = ReplyHeader {
                    xid,
                    zxid,
                    err: if opcode == OpCode::Multi { ErrorCode::Ok } else { applied.err },
                };
                let body = if header.err.is_ok() { Some(response) } else { None };
                self.record_latency(self.now.mono_ms.saturating_sub(received_ms));
                self.reply(conn, header, body);
                if opcode == OpCode::CloseSession {
                    self.close_conn(conn);
                    self.session_conn.remove(&session);
                    return;
                }
                self.release_queue(session, |q| match q {
                    Queued::Write(z) => *z == zxid,
                    Queued::Forwarded(x) => *x == xid,
                    Queued::Read { .. } => false,
                });
            }
            Origin::Expire => {
                let id = txn.header.client_id;
                if let Some(conn) = self.session_conn.remove(&id) {
                    self.close_conn(conn);
                }
            }
            // A session closed through another server (a learner forwarded
            // the closeSession to this leader): its connection here goes
            // too, as Apache's FinalRequestProcessor closes it on every
            // server, so its client learns the session is gone.
            Origin::Internal if matches!(txn.body, TxnBody::CloseSession(_)) => {
                if let Some(conn) = self.session_conn.remove(&txn.header.client_id) {
                    self.close_conn(conn);
                }
            }
            Origin::Internal => {}
        }
    }

    /// The session's write (or forwarded sync) at the front of its queue
    /// is done if `done` says so: it leaves the queue, and the reads
    /// queued behind it are answered.
    pub(super) fn release_queue(&mut self, session: i64, done: impl Fn(&Queued) -> bool) {
        let mut ready = Vec::new();
        if let Some(q) = self.queues.get_mut(&session) {
            if q.front().is_some_and(&done) {
                q.pop_front();
            }
            while let Some(Queued::Read { .. }) = q.front() {
                if let Some(Queued::Read { conn, xid, req, at }) = q.pop_front() {
                    ready.push((conn, xid, req, at));
                }
            }
            if q.is_empty() {
                self.queues.remove(&session);
            }
        }
        for (c, x, r, at) in ready {
            self.answer_read(c, x, r, at);
        }
    }

    fn record_latency(&mut self, ms: u64) {
        let s = &mut self.stats;
        s.latency_min = if s.latency_count == 0 { ms } else { s.latency_min.min(ms) };
        s.latency_max = s.latency_max.max(ms);
        s.latency_total = s.latency_total.saturating_add(ms);
        s.latency_count += 1;
        if let Some(m) = &self.metrics {
            m.update_latency.record(ms as f64);
        }
    }

    fn fire(&mut self, applied: &Applied, zxid: i64) {
        for t in &applied.triggers {
            let conns = self.watches.trigger(&t.path, t.event);
            for conn in conns {
                self.send_event(conn, t.event, &t.path, zxid);
            }
        }
    }

    pub(super) fn send_event(&mut self, conn: ConnId, event: EventType, path: &str, zxid: i64) {
        let ev = WatcherEvent {
            event_type: event.code(),
            state: KeeperState::SyncConnected.code(),
            path: path.to_string(),
        };
        self.send_out(conn, Out::Event(zxid, ev));
    }
}

fn build_write_response(opcode: OpCode, a: &Applied, multi_ops: &[OpCode]) -> Response {
    match opcode {
        OpCode::Create => Response::Create(CreateResponse { path: a.path.clone() }),
        OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            Response::Create2(Create2Response { path: a.path.clone(), stat: a.stat.unwrap_or_default() })
        }
        OpCode::SetData => Response::SetData(SetDataResponse { stat: a.stat.unwrap_or_default() }),
        OpCode::SetAcl => Response::SetAcl(SetAclResponse { stat: a.stat.unwrap_or_default() }),
        OpCode::Reconfig => {
            Response::GetData(GetDataResponse { data: None, stat: a.stat.unwrap_or_default() })
        }
        OpCode::Multi => {
            let failed = a.multi.iter().any(|s| !s.err.is_ok());
            let results = a
                .multi
                .iter()
                .zip(multi_ops.iter().copied().chain(std::iter::repeat(OpCode::Error)))
                .map(|(s, op)| {
                    if failed {
                        return MultiResult::Error { err: s.err };
                    }
                    match op {
                        // Apache turns a create2 inside a multi into a plain
                        // create (MultiOperationRecord rebuilds it with
                        // Op.create), so its result carries no Stat.
                        OpCode::Create | OpCode::Create2 => MultiResult::Create { path: s.path.clone() },
                        OpCode::CreateContainer | OpCode::CreateTtl => {
                            MultiResult::Create2 { path: s.path.clone(), stat: s.stat.unwrap_or_default() }
                        }
                        OpCode::Delete => MultiResult::Delete,
                        OpCode::SetData => MultiResult::SetData { stat: s.stat.unwrap_or_default() },
                        OpCode::Check => MultiResult::Check,
                        _ => MultiResult::Error { err: s.err },
                    }
                })
                .collect();
            Response::Multi(MultiResponse { results })
        }
        _ => Response::Empty,
    }
}
