//! [`Client`]: the handle, its builder, and every ZooKeeper operation.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use zk_proto::records::*;
use zk_proto::{AddWatchMode, CreateMode, ErrorCode, OpCode, Record, WatcherType, xid};

use crate::connect_string::{Chroot, ConnectString};
use crate::error::{Error, Result};
use crate::ops::{CreateOptions, Op, OpResult, ReadOp, ReadResult};
use crate::session::{Action, Command, Config, Reply, Req, Settings, Shared, frame_of};
use crate::state::SessionState;
use crate::watch::{OneshotWatcher, PersistentWatcher, WatchKind, WatchRegistration};

/// The largest TTL Apache accepts (`EphemeralType.MAX_EXTENDED_SERVER_ID` bits: 2^40 - 1 ms).
const MAX_TTL_MS: u128 = 0xFF_FFFF_FFFF;

/// Builds a [`Client`].
///
/// ```no_run
/// # async fn f() -> zk_client::Result<()> {
/// use std::time::Duration;
/// let client = zk_client::Client::builder("127.0.0.1:2181,127.0.0.1:2182/app")
///     .session_timeout(Duration::from_secs(10))
///     .connection_timeout(Duration::from_secs(5))
///     .auth("digest", b"user:pass".to_vec())
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    connect_string: String,
    session_timeout: Duration,
    connection_timeout: Duration,
    read_only: bool,
    auth: Vec<(String, Vec<u8>)>,
    max_frame: usize,
    resume: Option<(i64, Bytes)>,
    sasl: Option<(String, String)>,
    #[cfg(feature = "tls")]
    tls: Option<zk_tls::TlsSettings>,
}

impl ClientBuilder {
    /// Connects with TLS (a server's `secureClientPort`; the `tls`
    /// feature), configured as Apache's Java client is with its
    /// `zookeeper.ssl.*` properties: the trust store holds the CA the
    /// servers' certificates chain to, the key store (optional) the
    /// client's certificate, and the server's certificate must name the
    /// host of the connect string unless `hostnameVerification` is off.
    ///
    /// ```no_run
    /// # async fn f() -> zk_client::Result<()> {
    /// let mut tls = zk_tls::TlsSettings::default();
    /// tls.trust_store = Some(zk_tls::StoreSpec::new("/etc/zk/ca.pem", None));
    /// tls.key_store = Some(zk_tls::StoreSpec::new("/etc/zk/client.p12", Some("secret")));
    /// let client = zk_client::Client::builder("zk1.example.com:2281").tls(tls).connect().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, settings: zk_tls::TlsSettings) -> Self {
        self.tls = Some(settings);
        self
    }

    /// Attaches to an existing session instead of making one (Apache's
    /// `ZooKeeper(connectString, timeout, watcher, sessionId, passwd)`): a
    /// process taking over another's session, or a test expiring it
    /// (closing the resumed handle ends the session for both).
    pub fn session(mut self, session_id: i64, password: &[u8]) -> Self {
        self.resume = Some((session_id, Bytes::copy_from_slice(password)));
        self
    }

    /// The session timeout to ask for (the server clamps it between its
    /// min and max, by default 2 and 20 ticks). Default 30 s.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long [`ClientBuilder::connect`] waits for the first connection.
    /// Default 15 s (Curator's default).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Accept read-only servers (a partitioned member of an ensemble run
    /// with `readonlymode.enabled`); the client moves to a read-write server
    /// as soon as it finds one. Default false.
    pub fn read_only(mut self, allowed: bool) -> Self {
        self.read_only = allowed;
        self
    }

    /// SASL DIGEST-MD5 as `user` (a `user_<name>` of the server's JAAS
    /// `Server` section): done on every connection before any request, as
    /// Apache's client does with a JAAS `Client` section. The connection
    /// gets the identity `sasl:<user>`, which `sasl` ACLs name; refused
    /// credentials fail [`ClientBuilder::connect`] with
    /// [`Error::AuthFailed`]. (Kerberos/GSSAPI is not supported.)
    ///
    /// ```no_run
    /// # async fn f() -> zk_client::Result<()> {
    /// let client = zk_client::Client::builder("127.0.0.1:2181").sasl_digest("bob", "bobsecret").connect().await?;
    /// # Ok(()) }
    /// ```
    pub fn sasl_digest(mut self, user: &str, password: &str) -> Self {
        self.sasl = Some((user.to_string(), password.to_string()));
        self
    }

    /// Authentication sent on every connection before any request.
    pub fn auth(mut self, scheme: impl Into<String>, auth: impl Into<Vec<u8>>) -> Self {
        self.auth.push((scheme.into(), auth.into()));
        self
    }

    /// The largest frame accepted from or sent to the server
    /// (`jute.maxbuffer` plus headroom by default).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Connects and returns once a session is established.
    ///
    /// # Errors
    /// [`Error::InvalidConnectString`] / [`Error::InvalidPath`] for a bad
    /// connect string, [`Error::ConnectTimeout`] when no server answered in
    /// time, [`Error::AuthFailed`] when the configured auth was refused,
    /// [`Error::SessionExpired`] when a session given to
    /// [`ClientBuilder::session`] is gone.
    pub async fn connect(self) -> Result<Client> {
        let cs = ConnectString::parse(&self.connect_string)?;
        #[allow(unused_mut)]
        let mut transport = crate::transport::Transport::default();
        #[cfg(feature = "tls")]
        if let Some(t) = &self.tls {
            transport.tls = Some(t.client_config().map_err(|e| Error::Tls(e.to_string()))?);
        }
        let hosts = cs.hosts.len().max(1) as u32;
        let chroot = Chroot::new(cs.chroot);
        let cfg = Config {
            settings: Settings {
                hosts: cs.hosts,
                chroot: chroot.clone(),
                session_timeout: self.session_timeout,
                connect_timeout: (self.session_timeout / hosts).max(Duration::from_millis(500)),
                can_be_read_only: self.read_only,
                max_frame: self.max_frame,
                resume: self.resume,
                seed: rand::random(),
            },
            transport,
            sasl: self.sasl,
        };
        let shared = Arc::new(Shared::new());
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = shared.state.subscribe();
        for (scheme, auth) in self.auth {
            let packet = AuthPacket { auth_type: 0, scheme, auth: auth.into() };
            let _ = tx.send(Command::RememberAuth(packet));
        }
        tokio::spawn(crate::session::run(cfg, rx, shared.clone()));
        let client = Client { tx, shared, chroot, max_frame: self.max_frame };
        // Copy the state out so no watch guard lives across an await
        // (the connect future must be Send).
        let outcome = match tokio::time::timeout(
            self.connection_timeout,
            state.wait_for(|s| s.is_connected() || s.is_terminal()),
        )
        .await
        {
            Ok(Ok(s)) => Some(*s),
            Ok(Err(_)) => Some(SessionState::Closed),
            Err(_) => None,
        };
        match outcome {
            Some(s) if s.is_connected() => Ok(client),
            Some(SessionState::AuthFailed) => Err(Error::AuthFailed),
            // A resumed session the server no longer knows.
            Some(SessionState::Expired) => Err(Error::SessionExpired),
            Some(_) => Err(Error::ConnectTimeout),
            None => {
                let _ = client.close().await;
                // A TLS handshake that failed says why (an unknown CA, an
                // expired or misnamed certificate) rather than just "timed out".
                let last = client.shared.last_failure.lock().ok().and_then(|f| f.clone());
                match last {
                    Some(why) if why.contains("TLS handshake") => Err(Error::Tls(why)),
                    _ => Err(Error::ConnectTimeout),
                }
            }
        }
    }
}

/// A ZooKeeper client: a cheap, cloneable handle to one session.
///
/// Every method sends its request at once (so requests keep the order of
/// the calls, not of the polls) and returns a future of the reply. Many
/// requests can be in flight at once from many tasks; they are written back
/// to back on one connection and answered in order.
///
/// # Cancellation safety
/// Dropping a returned future never corrupts the connection: the request
/// may still be applied by the server, and its reply is discarded.
///
/// # Connection loss
/// A request in flight when the connection drops fails with
/// [`Error::ConnectionLoss`] and is never retried by the client (it may or
/// may not have been applied); retrying belongs to the caller (see
/// `zk-recipes`). Watches survive reconnects.
///
/// ```no_run
/// # async fn f() -> zk_client::Result<()> {
/// use zk_client::Client;
/// use zk_client::CreateMode;
///
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let (path, _stat) = client.create("/app", b"hello", CreateMode::Persistent).await?;
/// let (data, stat, watch) = client.get_data_watch(&path).await?;
/// assert_eq!(&data[..], b"hello");
/// client.set_data(&path, b"world", Some(stat.version)).await?;
/// let event = watch.await; // NodeDataChanged
/// client.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    tx: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    chroot: Chroot,
    max_frame: usize,
}

/// The session states of a client, as a stream (see [`Client::state_events`]).
#[derive(Debug)]
pub struct StateEvents {
    rx: mpsc::UnboundedReceiver<SessionState>,
}

impl Stream for StateEvents {
    type Item = SessionState;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SessionState>> {
        self.rx.poll_recv(cx)
    }
}

fn version(v: Option<i32>) -> i32 {
    v.unwrap_or(-1)
}

impl Client {
    /// Connects with default settings (session timeout 30 s).
    ///
    /// # Errors
    /// As [`ClientBuilder::connect`].
    pub async fn connect(connect_string: &str) -> Result<Client> {
        Client::builder(connect_string).connect().await
    }

    /// A builder for a client of `connect_string`
    /// (`host:port[,host:port...][/chroot]`).
    pub fn builder(connect_string: &str) -> ClientBuilder {
        ClientBuilder {
            connect_string: connect_string.to_string(),
            session_timeout: Duration::from_secs(30),
            connection_timeout: Duration::from_secs(15),
            read_only: false,
            auth: Vec::new(),
            max_frame: zk_proto::frame::DEFAULT_MAX_FRAME,
            resume: None,
            sasl: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The current session state.
    pub fn state(&self) -> SessionState {
        *self.shared.state.borrow()
    }

    /// Every session state change from now on, in order.
    pub fn state_events(&self) -> StateEvents {
        StateEvents { rx: self.shared.subscribe() }
    }

    /// The session id (0 before the first connection).
    pub fn session_id(&self) -> i64 {
        self.shared.info.lock().map(|i| i.id).unwrap_or(0)
    }

    /// The session password.
    pub fn session_password(&self) -> Bytes {
        self.shared.info.lock().map(|i| i.password.clone()).unwrap_or_default()
    }

    /// The session timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        self.shared.info.lock().map(|i| i.timeout).unwrap_or_default()
    }

    /// `host:port` of the server the session is (or was last) attached to.
    pub fn current_server(&self) -> Option<String> {
        self.shared.info.lock().ok().and_then(|i| i.server.clone())
    }

    fn server_path(&self, path: &str, sequential: bool) -> Result<String> {
        zk_proto::path::validate_path(path, sequential)?;
        Ok(self.chroot.to_server(path))
    }

    /// Hands a request to the session task now, and returns the future of
    /// its reply: requests go out in the order of the calls.
    fn submit(&self, frame: BytesMut, fixed_xid: Option<i32>, action: Action) -> ReplyFuture {
        if frame.len() - 4 > self.max_frame {
            return ReplyFuture(Err(Error::BadArguments));
        }
        let (tx, rx) = oneshot::channel();
        let req = Req { frame, fixed_xid, action, reply: Some(tx) };
        match self.tx.send(Command::Request(req)) {
            Ok(()) => ReplyFuture(Ok(rx)),
            Err(_) => ReplyFuture(Err(Error::ClientClosed)),
        }
    }

    /// Sends a request now; the future yields the body of a successful
    /// reply or the error code as an [`Error`].
    /// A one-shot watch registration whose watcher, dropped unfired,
    /// removes the server watch.
    fn oneshot_watch(&self, kind: WatchKind, path: &str) -> (WatchRegistration, OneshotWatcher) {
        let server_path = self.chroot.to_server(path);
        let (reg, w) = WatchRegistration::oneshot(kind, server_path.clone());
        (reg, w.cancel_on_drop(self.tx.clone(), kind, server_path))
    }

    fn send<R: Record>(
        &self,
        opcode: OpCode,
        body: Result<R>,
        action: Action,
    ) -> impl Future<Output = Result<Bytes>> + Send + 'static + use<R> {
        self.send_frame(body.map(|b| frame_of(0, opcode, &b)), action)
    }

    fn send_frame(
        &self,
        frame: Result<BytesMut>,
        action: Action,
    ) -> impl Future<Output = Result<Bytes>> + Send + 'static + use<> {
        let fut = match frame {
            Ok(frame) => self.submit(frame, None, action),
            Err(e) => ReplyFuture(Err(e)),
        };
        async move {
            let (h, body) = fut.await?;
            if h.err.is_ok() { Ok(body) } else { Err(Error::from(h.err)) }
        }
    }

    /// Creates a node and returns its actual path (with the sequence
    /// suffix for sequential modes, relative to the chroot) and its Stat.
    ///
    /// Uses create2, createContainer or createTTL as the mode needs.
    ///
    /// # Errors
    /// [`Error::NodeExists`], [`Error::NoNode`] (no parent),
    /// [`Error::NoChildrenForEphemerals`], [`Error::InvalidAcl`] (also for
    /// an empty ACL), [`Error::BadArguments`] for a TTL without a TTL mode
    /// or out of range, [`Error::Unimplemented`] for TTL nodes on a server
    /// without extended types, and the connection errors.
    pub fn create<O: Into<CreateOptions>>(
        &self,
        path: &str,
        data: &[u8],
        options: O,
    ) -> impl Future<Output = Result<(String, Stat)>> + Send + 'static + use<O> {
        let options = options.into();
        let frame =
            self.create_record(path, Bytes::copy_from_slice(data), &options).map(|(opcode, r)| match r {
                CreateRecord::Plain(r) => frame_of(0, opcode, &r),
                CreateRecord::Ttl(r) => frame_of(0, opcode, &r),
            });
        let fut = self.send_frame(frame, Action::None);
        let chroot = self.chroot.clone();
        async move {
            let rsp = Create2Response::decode(&mut fut.await?)?;
            Ok((chroot.to_client(&rsp.path), rsp.stat))
        }
    }

    fn create_record(&self, path: &str, data: Bytes, o: &CreateOptions) -> Result<(OpCode, CreateRecord)> {
        let server_path = self.server_path(path, o.mode.is_sequential())?;
        if o.acl.is_empty() {
            return Err(Error::InvalidAcl);
        }
        let flags = o.mode.code();
        if o.mode.is_ttl() {
            let ttl = o.ttl.ok_or(Error::BadArguments)?.as_millis();
            if ttl == 0 || ttl > MAX_TTL_MS {
                return Err(Error::BadArguments);
            }
            let r = CreateTtlRequest {
                path: server_path,
                data: Some(data),
                acl: o.acl.clone(),
                flags,
                ttl: ttl as i64,
            };
            return Ok((OpCode::CreateTtl, CreateRecord::Ttl(r)));
        }
        if o.ttl.is_some() {
            return Err(Error::BadArguments);
        }
        let opcode = if o.mode == CreateMode::Container { OpCode::CreateContainer } else { OpCode::Create2 };
        Ok((
            opcode,
            CreateRecord::Plain(CreateRequest {
                path: server_path,
                data: Some(data),
                acl: o.acl.clone(),
                flags,
            }),
        ))
    }

    /// Deletes a node, if its version is `version` (`None`: any version).
    ///
    /// # Errors
    /// [`Error::NoNode`], [`Error::BadVersion`], [`Error::NotEmpty`],
    /// [`Error::NoAuth`], and the connection errors.
    pub fn delete(
        &self,
        path: &str,
        version: Option<i32>,
    ) -> impl Future<Output = Result<()>> + Send + 'static + use<> {
        let body =
            self.server_path(path, false).map(|path| DeleteRequest { path, version: self::version(version) });
        let fut = self.send(OpCode::Delete, body, Action::None);
        async move { fut.await.map(drop) }
    }

    fn exists_inner(
        &self,
        path: &str,
        watch: Option<WatchRegistration>,
    ) -> impl Future<Output = Result<Option<Stat>>> + Send + 'static + use<> {
        let body = self.server_path(path, false).map(|path| ExistsRequest { path, watch: watch.is_some() });
        let fut = self.send(OpCode::Exists, body, watch.map_or(Action::None, Action::Watch));
        async move {
            match fut.await {
                Ok(mut b) => Ok(Some(ExistsResponse::decode(&mut b)?.stat)),
                Err(Error::NoNode) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }

    /// The node's Stat, or `None` if it does not exist.
    ///
    /// # Errors
    /// The connection errors.
    pub fn exists(&self, path: &str) -> impl Future<Output = Result<Option<Stat>>> + Send + 'static + use<> {
        self.exists_inner(path, None)
    }

    /// As [`Client::exists`], leaving a watch that fires when the node is
    /// created, changed or deleted (also when it does not exist yet).
    ///
    /// # Errors
    /// The connection errors.
    pub fn exists_watch(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Option<Stat>, OneshotWatcher)>> + Send + 'static + use<> {
        let (reg, w) = self.oneshot_watch(WatchKind::Exist, path);
        let fut = self.exists_inner(path, Some(reg));
        async move { Ok((fut.await?, w)) }
    }

    fn get_data_inner(
        &self,
        path: &str,
        watch: Option<WatchRegistration>,
    ) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + 'static + use<> {
        let body = self.server_path(path, false).map(|path| GetDataRequest { path, watch: watch.is_some() });
        let fut = self.send(OpCode::GetData, body, watch.map_or(Action::None, Action::Watch));
        async move {
            let rsp = GetDataResponse::decode(&mut fut.await?)?;
            Ok((rsp.data.unwrap_or_default(), rsp.stat))
        }
    }

    /// The node's data (empty for null data) and Stat.
    ///
    /// # Errors
    /// [`Error::NoNode`], [`Error::NoAuth`], and the connection errors.
    pub fn get_data(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + 'static + use<> {
        self.get_data_inner(path, None)
    }

    /// As [`Client::get_data`], leaving a watch that fires when the data
    /// changes or the node is deleted.
    ///
    /// # Errors
    /// As [`Client::get_data`]; no watch is left when it fails.
    pub fn get_data_watch(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Bytes, Stat, OneshotWatcher)>> + Send + 'static + use<> {
        let (reg, w) = self.oneshot_watch(WatchKind::Data, path);
        let fut = self.get_data_inner(path, Some(reg));
        async move {
            let (data, stat) = fut.await?;
            Ok((data, stat, w))
        }
    }

    /// Sets the node's data if its version is `version` (`None`: any).
    ///
    /// # Errors
    /// [`Error::NoNode`], [`Error::BadVersion`], [`Error::NoAuth`], and the
    /// connection errors.
    pub fn set_data(
        &self,
        path: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> impl Future<Output = Result<Stat>> + Send + 'static + use<> {
        let body = self.server_path(path, false).map(|path| SetDataRequest {
            path,
            data: Some(Bytes::copy_from_slice(data)),
            version: self::version(version),
        });
        let fut = self.send(OpCode::SetData, body, Action::None);
        async move { Ok(SetDataResponse::decode(&mut fut.await?)?.stat) }
    }

    /// The node's ACL and Stat.
    ///
    /// # Errors
    /// [`Error::NoNode`], and the connection errors.
    pub fn get_acl(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<Acl>, Stat)>> + Send + 'static + use<> {
        let body = self.server_path(path, false).map(|path| GetAclRequest { path });
        let fut = self.send(OpCode::GetAcl, body, Action::None);
        async move {
            let rsp = GetAclResponse::decode(&mut fut.await?)?;
            Ok((rsp.acl, rsp.stat))
        }
    }

    /// Sets the node's ACL if its ACL version is `version` (`None`: any).
    ///
    /// # Errors
    /// [`Error::NoNode`], [`Error::BadVersion`], [`Error::InvalidAcl`],
    /// [`Error::NoAuth`], and the connection errors.
    pub fn set_acl(
        &self,
        path: &str,
        acl: &[Acl],
        version: Option<i32>,
    ) -> impl Future<Output = Result<Stat>> + Send + 'static + use<> {
        let body = if acl.is_empty() {
            Err(Error::InvalidAcl)
        } else {
            self.server_path(path, false).map(|path| SetAclRequest {
                path,
                acl: acl.to_vec(),
                version: self::version(version),
            })
        };
        let fut = self.send(OpCode::SetAcl, body, Action::None);
        async move { Ok(SetAclResponse::decode(&mut fut.await?)?.stat) }
    }

    fn children_inner(
        &self,
        path: &str,
        watch: Option<WatchRegistration>,
    ) -> impl Future<Output = Result<(Vec<String>, Stat)>> + Send + 'static + use<> {
        let body =
            self.server_path(path, false).map(|path| GetChildren2Request { path, watch: watch.is_some() });
        let fut = self.send(OpCode::GetChildren2, body, watch.map_or(Action::None, Action::Watch));
        async move {
            let rsp = GetChildren2Response::decode(&mut fut.await?)?;
            Ok((rsp.children, rsp.stat))
        }
    }

    fn children1_inner(
        &self,
        path: &str,
        watch: Option<WatchRegistration>,
    ) -> impl Future<Output = Result<Vec<String>>> + Send + 'static + use<> {
        let body =
            self.server_path(path, false).map(|path| GetChildrenRequest { path, watch: watch.is_some() });
        let fut = self.send(OpCode::GetChildren, body, watch.map_or(Action::None, Action::Watch));
        async move { Ok(GetChildrenResponse::decode(&mut fut.await?)?.children) }
    }

    /// The names of the node's children (in no particular order).
    ///
    /// # Errors
    /// [`Error::NoNode`], [`Error::NoAuth`], and the connection errors.
    pub fn get_children(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send + 'static + use<> {
        self.children1_inner(path, None)
    }

    /// As [`Client::get_children`], leaving a watch that fires when a child
    /// is created or deleted, or the node is deleted.
    ///
    /// # Errors
    /// As [`Client::get_children`]; no watch is left when it fails.
    pub fn get_children_watch(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, OneshotWatcher)>> + Send + 'static + use<> {
        let (reg, w) = self.oneshot_watch(WatchKind::Child, path);
        let fut = self.children1_inner(path, Some(reg));
        async move { Ok((fut.await?, w)) }
    }

    /// The node's children and its Stat (getChildren2).
    ///
    /// # Errors
    /// As [`Client::get_children`].
    pub fn get_children2(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, Stat)>> + Send + 'static + use<> {
        self.children_inner(path, None)
    }

    /// As [`Client::get_children2`], leaving a child watch.
    ///
    /// # Errors
    /// As [`Client::get_children`].
    pub fn get_children2_watch(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, Stat, OneshotWatcher)>> + Send + 'static + use<> {
        let (reg, w) = self.oneshot_watch(WatchKind::Child, path);
        let fut = self.children_inner(path, Some(reg));
        async move {
            let (c, s) = fut.await?;
            Ok((c, s, w))
        }
    }

    /// The number of descendants of the node (3.6+).
    ///
    /// # Errors
    /// [`Error::NoNode`], and the connection errors.
    pub fn get_all_children_number(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<i32>> + Send + 'static + use<> {
        let body = self.server_path(path, false).map(|path| GetAllChildrenNumberRequest { path });
        let fut = self.send(OpCode::GetAllChildrenNumber, body, Action::None);
        async move { Ok(GetAllChildrenNumberResponse::decode(&mut fut.await?)?.total_number) }
    }

    /// The paths of this session's ephemeral nodes under `prefix` (`/` for
    /// all) (3.6+).
    ///
    /// # Errors
    /// The connection errors.
    pub fn get_ephemerals(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send + 'static + use<> {
        let body = self.server_path(prefix, false).map(|prefix_path| GetEphemeralsRequest { prefix_path });
        let fut = self.send(OpCode::GetEphemerals, body, Action::None);
        let chroot = self.chroot.clone();
        async move {
            let rsp = GetEphemeralsResponse::decode(&mut fut.await?)?;
            Ok(rsp.ephemerals.iter().map(|p| chroot.to_client(p)).collect())
        }
    }

    /// Waits until the server this client is connected to has caught up
    /// with the leader (up to the time of the call).
    ///
    /// # Errors
    /// The connection errors.
    pub fn sync(&self, path: &str) -> impl Future<Output = Result<()>> + Send + 'static + use<> {
        let body = self.server_path(path, false).map(|path| SyncRequest { path });
        let fut = self.send(OpCode::Sync, body, Action::None);
        async move { fut.await.map(drop) }
    }

    fn multi_request(&self, ops: &[Op]) -> Result<MultiRequest> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(match op {
                Op::Create { path, data, options } => {
                    match self.create_record(path, data.clone(), options)? {
                        (OpCode::CreateContainer, CreateRecord::Plain(r)) => MultiOp::CreateContainer(r),
                        (_, CreateRecord::Plain(r)) => MultiOp::Create2(r),
                        (_, CreateRecord::Ttl(r)) => MultiOp::CreateTtl(r),
                    }
                }
                Op::Delete { path, version } => MultiOp::Delete(DeleteRequest {
                    path: self.server_path(path, false)?,
                    version: self::version(*version),
                }),
                Op::SetData { path, data, version } => MultiOp::SetData(SetDataRequest {
                    path: self.server_path(path, false)?,
                    data: Some(data.clone()),
                    version: self::version(*version),
                }),
                Op::Check { path, version } => MultiOp::Check(CheckVersionRequest {
                    path: self.server_path(path, false)?,
                    version: self::version(*version),
                }),
            });
        }
        Ok(MultiRequest { ops: out })
    }

    /// Applies `ops` atomically and returns one result per op; a failed
    /// transaction is not an `Err` here but a list of
    /// [`OpResult::Error`]s (see [`Client::multi`] for the short form).
    ///
    /// # Errors
    /// Validation errors and the connection errors.
    pub fn try_multi(
        &self,
        ops: &[Op],
    ) -> impl Future<Output = Result<Vec<OpResult>>> + Send + 'static + use<> {
        let fut = self.send(OpCode::Multi, self.multi_request(ops), Action::None);
        let chroot = self.chroot.clone();
        async move {
            let rsp = MultiResponse::decode(&mut fut.await?)?;
            Ok(rsp
                .results
                .into_iter()
                .map(|r| match r {
                    MultiResult::Create { path } => {
                        OpResult::Create { path: chroot.to_client(&path), stat: Stat::default() }
                    }
                    MultiResult::Create2 { path, stat } => {
                        OpResult::Create { path: chroot.to_client(&path), stat }
                    }
                    MultiResult::Delete => OpResult::Delete,
                    MultiResult::SetData { stat } => OpResult::SetData { stat },
                    MultiResult::Check => OpResult::Check,
                    MultiResult::Error { err: ErrorCode::Ok } => OpResult::Error(Ok(())),
                    MultiResult::Error { err } => OpResult::Error(Err(Error::from(err))),
                    other => {
                        OpResult::Error(Err(Error::Protocol(format!("unexpected multi result {other:?}"))))
                    }
                })
                .collect())
        }
    }

    /// Applies `ops` atomically: all or nothing.
    ///
    /// # Errors
    /// The error of the first failing op (as Apache's client throws it),
    /// or the connection errors.
    pub fn multi(&self, ops: &[Op]) -> impl Future<Output = Result<Vec<OpResult>>> + Send + 'static + use<> {
        let fut = self.try_multi(ops);
        async move {
            let results = fut.await?;
            match results.iter().find_map(|r| match r {
                OpResult::Error(Err(e)) => Some(e.clone()),
                _ => None,
            }) {
                Some(e) => Err(e),
                None => Ok(results),
            }
        }
    }

    /// Several reads in one round trip (3.6+); each read succeeds or fails
    /// on its own.
    ///
    /// # Errors
    /// Validation errors and the connection errors.
    pub fn multi_read(
        &self,
        ops: &[ReadOp],
    ) -> impl Future<Output = Result<Vec<ReadResult>>> + Send + 'static + use<> {
        let body = ops
            .iter()
            .map(|op| {
                Ok(match op {
                    ReadOp::GetData(p) => {
                        MultiOp::GetData(GetDataRequest { path: self.server_path(p, false)?, watch: false })
                    }
                    ReadOp::GetChildren(p) => MultiOp::GetChildren(GetChildrenRequest {
                        path: self.server_path(p, false)?,
                        watch: false,
                    }),
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(|ops| MultiRequest { ops });
        let fut = self.send(OpCode::MultiRead, body, Action::None);
        async move {
            let rsp = MultiResponse::decode(&mut fut.await?)?;
            Ok(rsp
                .results
                .into_iter()
                .map(|r| match r {
                    MultiResult::GetData { data, stat } => {
                        ReadResult::Data { data: data.unwrap_or_default(), stat }
                    }
                    MultiResult::GetChildren { children } => ReadResult::Children(children),
                    MultiResult::Error { err } => ReadResult::Error(Error::from(err)),
                    other => {
                        ReadResult::Error(Error::Protocol(format!("unexpected multiRead result {other:?}")))
                    }
                })
                .collect())
        }
    }

    /// Adds authentication to the session (e.g. `digest`, `user:password`);
    /// it is sent again on every reconnect.
    ///
    /// # Errors
    /// [`Error::AuthFailed`] (the server then closes the session), and the
    /// connection errors.
    pub fn add_auth(
        &self,
        scheme: &str,
        auth: &[u8],
    ) -> impl Future<Output = Result<()>> + Send + 'static + use<> {
        let packet =
            AuthPacket { auth_type: 0, scheme: scheme.to_string(), auth: Bytes::copy_from_slice(auth) };
        let frame = frame_of(xid::AUTH, OpCode::Auth, &packet);
        let remembered = self.tx.send(Command::RememberAuth(packet)).map_err(|_| Error::ClientClosed);
        let fut = self.submit(frame, Some(xid::AUTH), Action::None);
        async move {
            remembered?;
            let (h, _) = fut.await?;
            if h.err.is_ok() { Ok(()) } else { Err(Error::from(h.err)) }
        }
    }

    /// Adds a persistent (or persistent-recursive) watch on `path` and
    /// returns its events as a stream (3.6+).
    ///
    /// # Errors
    /// The connection errors; [`Error::Unimplemented`] on older servers.
    pub fn add_watch(
        &self,
        path: &str,
        mode: AddWatchMode,
    ) -> impl Future<Output = Result<PersistentWatcher>> + Send + 'static + use<> {
        let kind = match mode {
            AddWatchMode::PersistentRecursive => WatchKind::PersistentRecursive,
            _ => WatchKind::Persistent,
        };
        let (reg, w) = WatchRegistration::stream(kind, self.chroot.to_server(path));
        let body = self.server_path(path, false).map(|path| AddWatchRequest { path, mode: mode.code() });
        let fut = self.send(OpCode::AddWatch, body, Action::Watch(reg));
        async move {
            fut.await?;
            Ok(w)
        }
    }

    /// Removes every watch of `watcher_type` on `path`, on the server and
    /// here; each removed watcher receives a `*WatchRemoved` event.
    ///
    /// # Errors
    /// [`Error::NoWatcher`] when the server has no such watch, and the
    /// connection errors.
    pub fn remove_watches(
        &self,
        path: &str,
        watcher_type: WatcherType,
    ) -> impl Future<Output = Result<()>> + Send + 'static + use<> {
        let server_path = self.chroot.to_server(path);
        let action = Action::RemoveWatches { server_path, client_path: path.to_string(), watcher_type };
        let body = self
            .server_path(path, false)
            .map(|path| RemoveWatchesRequest { path, watcher_type: watcher_type.code() });
        let fut = self.send(OpCode::RemoveWatches, body, action);
        async move { fut.await.map(drop) }
    }

    /// Asks the server whether a watch of `watcher_type` is set on `path`
    /// for this session.
    ///
    /// # Errors
    /// [`Error::NoWatcher`] when there is none, and the connection errors.
    pub fn check_watches(
        &self,
        path: &str,
        watcher_type: WatcherType,
    ) -> impl Future<Output = Result<()>> + Send + 'static + use<> {
        let body = self
            .server_path(path, false)
            .map(|path| CheckWatchesRequest { path, watcher_type: watcher_type.code() });
        let fut = self.send(OpCode::CheckWatches, body, Action::None);
        async move { fut.await.map(drop) }
    }

    /// The identities this session is authenticated as (3.7+).
    ///
    /// # Errors
    /// The connection errors; [`Error::Unimplemented`] on older servers.
    pub fn who_am_i(&self) -> impl Future<Output = Result<Vec<ClientInfo>>> + Send + 'static + use<> {
        let fut = self.send(OpCode::WhoAmI, Ok(()), Action::None);
        async move { Ok(WhoAmIResponse::decode(&mut fut.await?)?.client_info) }
    }

    /// The ensemble's dynamic configuration (`/zookeeper/config`) and its
    /// Stat.
    ///
    /// # Errors
    /// The connection errors.
    pub fn get_config(&self) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + 'static + use<> {
        let body = GetDataRequest { path: "/zookeeper/config".into(), watch: false };
        let fut = self.send(OpCode::GetData, Ok(body), Action::None);
        async move {
            let rsp = GetDataResponse::decode(&mut fut.await?)?;
            Ok((rsp.data.unwrap_or_default(), rsp.stat))
        }
    }

    /// Changes the ensemble's membership (incremental: `joining` and
    /// `leaving`; or a whole `new_members` list), if the config version is
    /// `from_config` (-1: any). Returns the new config.
    ///
    /// # Errors
    /// [`Error::ReconfigDisabled`] / [`Error::Unimplemented`] where dynamic
    /// reconfiguration is off, [`Error::NewConfigNoQuorum`],
    /// [`Error::ReconfigInProgress`], [`Error::BadVersion`], [`Error::NoAuth`].
    pub fn reconfig(
        &self,
        joining: &str,
        leaving: &str,
        new_members: &str,
        from_config: i64,
    ) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + 'static + use<> {
        let body = ReconfigRequest {
            joining_servers: joining.into(),
            leaving_servers: leaving.into(),
            new_members: new_members.into(),
            cur_config_id: from_config,
        };
        let fut = self.send(OpCode::Reconfig, Ok(body), Action::None);
        async move {
            let rsp = GetDataResponse::decode(&mut fut.await?)?;
            Ok((rsp.data.unwrap_or_default(), rsp.stat))
        }
    }

    /// Closes the session (closeSession) and waits for the server to
    /// confirm. Every later call fails with [`Error::ClientClosed`];
    /// ephemeral nodes of the session are deleted.
    ///
    /// # Errors
    /// None in practice; closing a closed client is fine.
    pub async fn close(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Close(tx)).is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }
}

/// The reply of a request already handed to the session task.
struct ReplyFuture(Result<oneshot::Receiver<Result<Reply>>>);

impl Future for ReplyFuture {
    type Output = Result<Reply>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Reply>> {
        match &mut self.0 {
            Err(e) => Poll::Ready(Err(e.clone())),
            Ok(rx) => Pin::new(rx).poll(cx).map(|r| r.unwrap_or(Err(Error::ClientClosed))),
        }
    }
}

enum CreateRecord {
    Plain(CreateRequest),
    Ttl(CreateTtlRequest),
}
