//! The session: the one place that owns the socket.
//!
//! Every [`crate::Client`] clone sends [`Command`]s over one channel to the
//! session task. The session is split in two:
//!
//! - [`machine::Machine`], a state machine with no sockets, no clock and no
//!   global randomness: commands, bytes read, connect outcomes and `now` go
//!   in; bytes to write, connect/disconnect orders, replies and state
//!   changes come out. It gives each request an xid, matches replies in
//!   order, pings, notices a silent server, re-attaches the session to
//!   another server (auth, SetWatches, then the requests that waited) and
//!   declares the session expired when the server says so or when the
//!   session timeout passes without reaching any server.
//! - [`driver`], the tokio task around it: it opens connections (TCP or
//!   TLS, the handshake, SASL), reads and writes bytes, sleeps until the
//!   machine's next deadline and carries the machine's outputs out.
//!
//! Replies are not decoded here: the caller gets the header and the raw
//! body and decodes it on its own task, which keeps the loop short.

mod driver;
mod machine;

pub(crate) use driver::run;
pub(crate) use machine::Settings;

use std::sync::Mutex;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::info;
use zk_proto::records::{AuthPacket, ReplyHeader, RequestHeader};
use zk_proto::{OpCode, Record, WatcherType};

use crate::error::Result;
use crate::state::SessionState;
use crate::watch::{WatchKind, WatchRegistration};

/// A reply as the session task hands it over: header and raw body.
pub(crate) type Reply = (ReplyHeader, Bytes);
pub(crate) type ReplyTx = oneshot::Sender<Result<Reply>>;

/// What a request does to the watch registry when its reply arrives.
#[derive(Debug)]
pub(crate) enum Action {
    None,
    /// Register a watch (if the reply allows it).
    Watch(WatchRegistration),
    /// Remove local watches once the server removed its own.
    RemoveWatches {
        server_path: String,
        client_path: String,
        watcher_type: WatcherType,
    },
    /// closeSession: the session ends with the reply.
    Close,
}

/// One request from a client handle.
#[derive(Debug)]
pub(crate) struct Req {
    /// The whole frame: length, xid (patched here), type, body.
    pub(crate) frame: BytesMut,
    /// A reserved xid (auth) instead of the next counter value.
    pub(crate) fixed_xid: Option<i32>,
    pub(crate) action: Action,
    pub(crate) reply: Option<ReplyTx>,
}

/// Messages from the handles to the session task.
#[derive(Debug)]
pub(crate) enum Command {
    Request(Req),
    /// Register auth info to replay on reconnects (sent with the request).
    RememberAuth(AuthPacket),
    Close(oneshot::Sender<Result<()>>),
    /// A one-shot watch was dropped before it fired.
    WatchDropped {
        kind: WatchKind,
        server_path: String,
    },
}

/// Session facts the handles can read.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionInfo {
    pub(crate) id: i64,
    pub(crate) password: Bytes,
    pub(crate) timeout: Duration,
    /// `host:port` of the server the session is attached to.
    pub(crate) server: Option<String>,
}

/// State shared between the handles and the task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: watch::Sender<SessionState>,
    listeners: Mutex<Vec<mpsc::UnboundedSender<SessionState>>>,
    pub(crate) info: Mutex<SessionInfo>,
    /// Why the last connect attempt failed (for the error of a first
    /// connect that times out).
    pub(crate) last_failure: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            state: watch::Sender::new(SessionState::Connecting),
            listeners: Mutex::new(Vec::new()),
            info: Mutex::new(SessionInfo::default()),
            last_failure: Mutex::new(None),
        }
    }

    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<SessionState> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut l) = self.listeners.lock() {
            l.push(tx);
        }
        rx
    }

    pub(crate) fn set_state(&self, s: SessionState) {
        // The listeners' lock is held while the current state changes, so a
        // subscriber sees either the old state and this change, or only the
        // new state: never a change it did not live through.
        let Ok(mut listeners) = self.listeners.lock() else { return };
        let changed = self.state.send_if_modified(|cur| {
            let changed = *cur != s;
            *cur = s;
            changed
        });
        if changed {
            info!(state = ?s, "session state");
            listeners.retain(|tx| tx.send(s).is_ok());
        }
    }

    pub(crate) fn update_info(&self, f: impl FnOnce(&mut SessionInfo)) {
        if let Ok(mut i) = self.info.lock() {
            f(&mut i);
        }
    }
}

/// Settings of the session task: the machine's, and how to reach servers.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) settings: Settings,
    /// Plain TCP or TLS.
    pub(crate) transport: crate::transport::Transport,
    /// SASL DIGEST-MD5 user and password, authenticated on every
    /// connection before anything else is sent.
    pub(crate) sasl: Option<(String, String)>,
}

/// A request frame: length, xid, type and body.
pub(crate) fn frame_of<R: Record>(xid: i32, opcode: OpCode, body: &R) -> BytesMut {
    let mut f = BytesMut::with_capacity(64);
    f.put_i32(0);
    RequestHeader { xid, opcode }.encode(&mut f);
    body.encode(&mut f);
    let len = i32::try_from(f.len() - 4).unwrap_or(i32::MAX);
    f[..4].copy_from_slice(&len.to_be_bytes());
    f
}
