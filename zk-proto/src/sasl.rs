//! SASL DIGEST-MD5 (RFC 2831) as ZooKeeper uses it: the tokens carried by
//! `sasl` requests (`GetSASLRequest`/`SetSASLResponse`), with the realm and
//! server name Apache hard-codes (`zk-sasl-md5`, service `zookeeper`),
//! `qop=auth` (authentication only) and `algorithm=md5-sess`.
//!
//! Both sides are sans-io: [`DigestServer`] takes the client's tokens and
//! answers; [`DigestClient`] answers the server's challenge. The
//! randomness (nonces) comes from the caller.
//!
//! ```
//! use zk_proto::sasl::{DigestClient, DigestServer, ServerStep};
//! let mut server = DigestServer::new([7u8; 24]);
//! let challenge = match server.step(b"", |user| (user == "bob").then(|| "secret".to_string())).unwrap() {
//!     ServerStep::Challenge(c) => c,
//!     other => panic!("{other:?}"),
//! };
//! let client = DigestClient::new("bob", "secret", [9u8; 24]);
//! let (response, expect) = client.respond(&challenge).unwrap();
//! match server.step(&response, |user| (user == "bob").then(|| "secret".to_string())).unwrap() {
//!     ServerStep::Done { authorization_id, rspauth } => {
//!         assert_eq!(authorization_id, "bob");
//!         assert!(DigestClient::verify(&rspauth, &expect));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

use md5::{Digest, Md5};

/// The realm and server name ZooKeeper uses for DIGEST-MD5.
pub const REALM: &str = "zk-sasl-md5";
/// The digest-uri the client must name: `zookeeper/zk-sasl-md5`.
pub const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";

/// Why a DIGEST-MD5 exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// A token that is not what the step expects.
    #[error("malformed DIGEST-MD5 token: {0}")]
    Malformed(String),
    /// Unknown user or wrong password (the response does not match).
    #[error("authentication failed for {0:?}")]
    Failed(String),
    /// A directive with a value this implementation does not take.
    #[error("unsupported DIGEST-MD5 directive: {0}")]
    Unsupported(String),
}

/// Parses `key=value, key="quoted \" value"` directives.
///
/// # Errors
/// [`SaslError::Malformed`] for text that is not a directive list.
pub fn directives(token: &[u8]) -> Result<Vec<(String, String)>, SaslError> {
    let text = std::str::from_utf8(token).map_err(|_| SaslError::Malformed("not UTF-8".into()))?;
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(SaslError::Malformed(format!("directive {key:?} without a value")));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(SaslError::Malformed("unterminated quote".into())),
                    },
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(SaslError::Malformed("unterminated quote".into())),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.push((key.trim().to_ascii_lowercase(), value));
    }
}

fn get<'a>(d: &'a [(String, String)], key: &str) -> Option<&'a str> {
    d.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A string as RFC 2831 hashes it with `charset=utf-8`: ISO 8859-1 when
/// every character fits, UTF-8 otherwise.
fn sasl_bytes(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) < 256) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

/// The response value (`rspauth` when `a2_prefix` is empty, the client's
/// `response` when it is `AUTHENTICATE`).
#[allow(clippy::too_many_arguments)]
fn response_value(
    user: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: &str,
    nc: &str,
    authzid: Option<&str>,
    digest_uri: &str,
    a2_prefix: &str,
) -> String {
    let mut inner = Md5::new();
    inner.update(sasl_bytes(user));
    inner.update(b":");
    inner.update(sasl_bytes(realm));
    inner.update(b":");
    inner.update(sasl_bytes(password));
    let mut a1 = inner.finalize().to_vec();
    a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
    if let Some(z) = authzid {
        a1.extend_from_slice(b":");
        a1.extend_from_slice(z.as_bytes());
    }
    let ha1 = hex(&Md5::digest(&a1));
    let ha2 = hex(&Md5::digest(format!("{a2_prefix}:{digest_uri}").as_bytes()));
    hex(&Md5::digest(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}").as_bytes()))
}

fn nonce_text(random: &[u8]) -> String {
    // Base64 without padding: quoted-string safe, as Java's nonces.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in random.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// What the server says after a client token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// The digest-challenge to send.
    Challenge(Vec<u8>),
    /// Authenticated: the identity (`sasl:<authorization_id>`) and the
    /// `rspauth` token to send.
    Done {
        /// Who the client is.
        authorization_id: String,
        /// The server's proof, sent as the last token.
        rspauth: Vec<u8>,
    },
}

/// The server side of one DIGEST-MD5 exchange (one connection).
#[derive(Debug, Clone)]
pub struct DigestServer {
    nonce: String,
    state: ServerState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ServerState {
    Start,
    Challenged,
    Done,
}

impl DigestServer {
    /// An exchange whose nonce is made from `random`.
    pub fn new(random: [u8; 24]) -> DigestServer {
        DigestServer { nonce: nonce_text(&random), state: ServerState::Start }
    }

    /// Whether the client is authenticated.
    pub fn is_complete(&self) -> bool {
        self.state == ServerState::Done
    }

    /// Takes the client's next token; `password_of(user)` gives a user's
    /// password (`None`: no such user).
    ///
    /// # Errors
    /// [`SaslError`] when the token is malformed, the user unknown, the
    /// password wrong, or the exchange is already over.
    pub fn step(
        &mut self,
        token: &[u8],
        password_of: impl FnOnce(&str) -> Option<String>,
    ) -> Result<ServerStep, SaslError> {
        match self.state {
            ServerState::Start => {
                // The client's first token is empty (DIGEST-MD5 has no
                // initial response).
                self.state = ServerState::Challenged;
                Ok(ServerStep::Challenge(
                    format!(
                        "realm=\"{REALM}\",nonce=\"{}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess",
                        self.nonce
                    )
                    .into_bytes(),
                ))
            }
            ServerState::Challenged => {
                let d = directives(token)?;
                let need = |k: &str| get(&d, k).ok_or_else(|| SaslError::Malformed(format!("no {k}")));
                let user = need("username")?;
                let nonce = need("nonce")?;
                let cnonce = need("cnonce")?;
                let nc = need("nc")?;
                let uri = need("digest-uri")?;
                let response = need("response")?;
                let realm = get(&d, "realm").unwrap_or(REALM);
                if nonce != self.nonce {
                    return Err(SaslError::Malformed("the nonce is not the one sent".into()));
                }
                if get(&d, "qop").is_some_and(|q| q != "auth") {
                    return Err(SaslError::Unsupported(format!("qop={}", get(&d, "qop").unwrap_or(""))));
                }
                if uri != DIGEST_URI {
                    return Err(SaslError::Malformed(format!("digest-uri {uri:?}, not {DIGEST_URI:?}")));
                }
                let authzid = get(&d, "authzid");
                if authzid.is_some_and(|z| z != user) {
                    // ZooKeeper's callback authorizes a user only as itself.
                    return Err(SaslError::Failed(user.to_string()));
                }
                let Some(password) = password_of(user) else {
                    return Err(SaslError::Failed(user.to_string()));
                };
                let want =
                    response_value(user, realm, &password, nonce, cnonce, nc, authzid, uri, "AUTHENTICATE");
                if !want.eq_ignore_ascii_case(response) {
                    return Err(SaslError::Failed(user.to_string()));
                }
                let rspauth = response_value(user, realm, &password, nonce, cnonce, nc, authzid, uri, "");
                self.state = ServerState::Done;
                Ok(ServerStep::Done {
                    authorization_id: user.to_string(),
                    rspauth: format!("rspauth={rspauth}").into_bytes(),
                })
            }
            ServerState::Done => Err(SaslError::Malformed("the exchange is over".into())),
        }
    }
}

/// The client side of DIGEST-MD5.
#[derive(Debug, Clone)]
pub struct DigestClient {
    user: String,
    password: String,
    cnonce: String,
}

impl DigestClient {
    /// A client for `user` with `password`, its cnonce made from `random`.
    pub fn new(user: &str, password: &str, random: [u8; 24]) -> DigestClient {
        DigestClient { user: user.to_string(), password: password.to_string(), cnonce: nonce_text(&random) }
    }

    /// The response to the server's `challenge`, and the `rspauth` the
    /// server must answer with.
    ///
    /// # Errors
    /// [`SaslError`] for a challenge without a nonce or without `auth` among
    /// its qop options.
    pub fn respond(&self, challenge: &[u8]) -> Result<(Vec<u8>, String), SaslError> {
        let d = directives(challenge)?;
        let nonce =
            get(&d, "nonce").ok_or_else(|| SaslError::Malformed("no nonce in the challenge".into()))?;
        let realm = get(&d, "realm").unwrap_or(REALM);
        if let Some(q) = get(&d, "qop") {
            if !q.split(',').any(|o| o.trim() == "auth") {
                return Err(SaslError::Unsupported(format!("qop={q}")));
            }
        }
        let nc = "00000001";
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let response = response_value(
            &self.user,
            realm,
            &self.password,
            nonce,
            &self.cnonce,
            nc,
            None,
            DIGEST_URI,
            "AUTHENTICATE",
        );
        let expect =
            response_value(&self.user, realm, &self.password, nonce, &self.cnonce, nc, None, DIGEST_URI, "");
        let token = format!(
            "charset=utf-8,username=\"{}\",realm=\"{}\",nonce=\"{}\",nc={nc},cnonce=\"{}\",digest-uri=\"{DIGEST_URI}\",maxbuf=65536,response={response},qop=auth",
            esc(&self.user),
            esc(realm),
            esc(nonce),
            self.cnonce
        );
        Ok((token.into_bytes(), expect))
    }

    /// Whether the server's last token proves it knows the password.
    pub fn verify(rspauth: &[u8], expect: &str) -> bool {
        directives(rspauth).ok().and_then(|d| get(&d, "rspauth").map(|v| v.eq_ignore_ascii_case(expect)))
            == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2831_example() {
        // RFC 2831 section 4 (its digest-uri is imap/elwood.innosoft.com;
        // qop=auth, nc=00000001).
        let r = response_value(
            "chris",
            "elwood.innosoft.com",
            "secret",
            "OA6MG9tEQGm2hh",
            "OA6MHXh6VqTrRk",
            "00000001",
            None,
            "imap/elwood.innosoft.com",
            "AUTHENTICATE",
        );
        assert_eq!(r, "d388dad90d4bbd760a152321f2143af7");
        let rsp = response_value(
            "chris",
            "elwood.innosoft.com",
            "secret",
            "OA6MG9tEQGm2hh",
            "OA6MHXh6VqTrRk",
            "00000001",
            None,
            "imap/elwood.innosoft.com",
            "",
        );
        assert_eq!(rsp, "ea40f60335c427b5527b84dbabcdfffd");
    }

    #[test]
    fn wrong_password_unknown_user_and_garbage_fail() {
        let users = |u: &str| (u == "bob").then(|| "secret".to_string());
        let challenge = |s: &mut DigestServer| match s.step(b"", users).unwrap() {
            ServerStep::Challenge(c) => c,
            other => panic!("{other:?}"),
        };
        let mut s = DigestServer::new([1; 24]);
        let c = challenge(&mut s);
        let (rsp, _) = DigestClient::new("bob", "nope", [2; 24]).respond(&c).unwrap();
        assert_eq!(s.step(&rsp, users), Err(SaslError::Failed("bob".into())));
        let mut s = DigestServer::new([1; 24]);
        let c = challenge(&mut s);
        let (rsp, _) = DigestClient::new("eve", "secret", [2; 24]).respond(&c).unwrap();
        assert!(s.step(&rsp, users).is_err());
        for junk in [&b"\xff\xfe"[..], b"username", b"username=\"bob", b"a=b"] {
            let mut s = DigestServer::new([1; 24]);
            challenge(&mut s);
            assert!(s.step(junk, users).is_err(), "{junk:?}");
        }
        assert_eq!(
            directives(b"a=1, b=\"x,\\\"y\" ,c=z").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x,\"y".into()), ("c".into(), "z".into())]
        );
    }
}
