//! The reserved xids of `ClientCnxn`. Client requests use positive xids.

/// A watch notification from the server.
pub const NOTIFICATION: i32 = -1;
/// A ping request and its reply.
pub const PING: i32 = -2;
/// An `AuthPacket` and its reply.
pub const AUTH: i32 = -4;
/// A `SetWatches`/`SetWatches2` request and its reply.
pub const SET_WATCHES: i32 = -8;

/// The largest total of watch path bytes Apache's client puts into one
/// `SetWatches` request (`ClientCnxn.SET_WATCHES_MAX_LENGTH`).
pub const SET_WATCHES_MAX_LENGTH: usize = 128 * 1024;
