//! SASL on the client port (DIGEST-MD5 with the users of a JAAS `Server`
//! section, as Apache's `DigestLoginModule`), and `enforce.auth`: a
//! connection without an identity of the required schemes gets
//! SESSIONCLOSEDREQUIRESASLAUTH and is closed, as Apache does.

use rand::Rng;
use tracing::{info, warn};
use zk_proto::records::{Id, ReplyHeader, SetSaslResponse};
use zk_proto::sasl::{DigestServer, ServerStep};
use zk_proto::{ErrorCode, Response};

use super::ConnId;
use super::core::Core;

impl Core {
    /// One SASL token from `conn`.
    pub(super) fn on_sasl(&mut self, conn: ConnId, xid: i32, token: &[u8]) {
        let required = self.cfg.enforce_auth.iter().any(|s| s == "sasl");
        let Some(users) = self.cfg.sasl_users.as_ref() else {
            warn!(
                "SASL request, but no JAAS Server section with users is configured; closing the connection"
            );
            return self.sasl_failed(conn, xid, required);
        };
        let mut random = [0u8; 24];
        self.rng.fill(&mut random[..]);
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let server = c.sasl.get_or_insert_with(|| Box::new(DigestServer::new(random)));
        match server.step(token, |u| users.get(u).cloned()) {
            Ok(ServerStep::Challenge(t)) => self.sasl_reply(conn, xid, Some(t)),
            Ok(ServerStep::Done { authorization_id, rspauth }) => {
                info!(id = %authorization_id, "SASL authenticated");
                let sup = self.cfg.sasl_super_users.contains(&authorization_id);
                if let Some(c) = self.conns.get_mut(&conn) {
                    let id = Id::new("sasl", authorization_id);
                    if !c.auth.contains(&id) {
                        c.auth.push(id);
                    }
                    if sup {
                        c.auth.push(Id::new("super", ""));
                    }
                }
                self.sasl_reply(conn, xid, Some(rspauth));
            }
            Err(e) => {
                warn!(error = %e, "client failed to SASL authenticate");
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.sasl = None;
                }
                if self.cfg.allow_sasl_failed_clients && !required {
                    // Apache's zookeeper.allowSaslFailedClients: the
                    // connection stays, without the identity.
                    self.sasl_reply(conn, xid, None);
                } else {
                    self.sasl_failed(conn, xid, required);
                }
            }
        }
    }

    fn sasl_reply(&mut self, conn: ConnId, xid: i32, token: Option<Vec<u8>>) {
        let body = Response::Sasl(SetSaslResponse { token: token.map(bytes::Bytes::from) });
        self.reply(conn, ReplyHeader { xid, zxid: 0, err: ErrorCode::Ok }, Some(body));
    }

    fn sasl_failed(&mut self, conn: ConnId, xid: i32, required: bool) {
        let err = if required { ErrorCode::SessionClosedRequireSaslAuth } else { ErrorCode::AuthFailed };
        let body = Response::Sasl(SetSaslResponse { token: None });
        self.reply(conn, ReplyHeader { xid, zxid: 0, err }, Some(body));
        self.close_conn(conn);
    }

    /// `enforce.auth.enabled`: whether `conn` may send requests. When it
    /// may not, it has been answered SESSIONCLOSEDREQUIRESASLAUTH and
    /// closed (the session stays until it expires, as on Apache).
    pub(super) fn auth_enforced(&mut self, conn: ConnId, xid: i32) -> bool {
        if self.cfg.enforce_auth.is_empty() {
            return true;
        }
        let schemes = &self.cfg.enforce_auth;
        let ok = self.conns.get(&conn).is_some_and(|c| c.auth.iter().any(|id| schemes.contains(&id.scheme)));
        if !ok {
            info!(schemes = ?schemes, "a request from a connection without the required authentication; closing it");
            let h = ReplyHeader { xid, zxid: 0, err: ErrorCode::SessionClosedRequireSaslAuth };
            self.reply(conn, h, None);
            self.close_conn(conn);
        }
        ok
    }
}
