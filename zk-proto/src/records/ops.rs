//! `org.apache.zookeeper.proto`: the request and response record of every
//! client operation.

use bytes::Bytes;

use crate::jute::jute_record;
use crate::records::data::{Acl, ClientInfo, Stat, StatPersisted};

jute_record! {
    /// The body of create, create2 and createContainer.
    pub struct CreateRequest {
        /// Path of the node (for sequential nodes, the prefix).
        pub path: String,
        /// Initial data; `None` is Java's null.
        pub data: Option<Bytes>,
        /// The node's ACL.
        pub acl: Vec<Acl>,
        /// [`crate::types::CreateMode`] number.
        pub flags: i32,
    }
}

jute_record! {
    /// The body of createTTL.
    pub struct CreateTtlRequest {
        /// Path of the node (for sequential nodes, the prefix).
        pub path: String,
        /// Initial data.
        pub data: Option<Bytes>,
        /// The node's ACL.
        pub acl: Vec<Acl>,
        /// [`crate::types::CreateMode`] number (5 or 6).
        pub flags: i32,
        /// Time to live in milliseconds.
        pub ttl: i64,
    }
}

jute_record! {
    /// The reply to create.
    pub struct CreateResponse {
        /// The path actually created (with the sequence suffix).
        pub path: String,
    }
}

jute_record! {
    /// The reply to create2, createContainer and createTTL.
    pub struct Create2Response {
        /// The path actually created.
        pub path: String,
        /// The new node's Stat.
        pub stat: Stat,
    }
}

jute_record! {
    /// The body of delete.
    pub struct DeleteRequest {
        /// Path of the node.
        pub path: String,
        /// Expected version, -1 for any.
        pub version: i32,
    }
}

jute_record! {
    /// The body of exists.
    pub struct ExistsRequest {
        /// Path of the node.
        pub path: String,
        /// Leave a watch (also when the node does not exist).
        pub watch: bool,
    }
}

jute_record! {
    /// The reply to exists.
    pub struct ExistsResponse {
        /// The node's Stat.
        pub stat: Stat,
    }
}

jute_record! {
    /// The body of getData.
    pub struct GetDataRequest {
        /// Path of the node.
        pub path: String,
        /// Leave a data watch.
        pub watch: bool,
    }
}

jute_record! {
    /// The reply to getData (and to reconfig).
    pub struct GetDataResponse {
        /// The data; `None` is Java's null.
        pub data: Option<Bytes>,
        /// The node's Stat.
        pub stat: Stat,
    }
}

jute_record! {
    /// The body of setData.
    pub struct SetDataRequest {
        /// Path of the node.
        pub path: String,
        /// New data.
        pub data: Option<Bytes>,
        /// Expected version, -1 for any.
        pub version: i32,
    }
}

jute_record! {
    /// The reply to setData.
    pub struct SetDataResponse {
        /// The node's Stat after the change.
        pub stat: Stat,
    }
}

jute_record! {
    /// The body of getACL.
    pub struct GetAclRequest {
        /// Path of the node.
        pub path: String,
    }
}

jute_record! {
    /// The reply to getACL.
    pub struct GetAclResponse {
        /// The node's ACL.
        pub acl: Vec<Acl>,
        /// The node's Stat.
        pub stat: Stat,
    }
}

jute_record! {
    /// The body of setACL.
    pub struct SetAclRequest {
        /// Path of the node.
        pub path: String,
        /// New ACL.
        pub acl: Vec<Acl>,
        /// Expected ACL version (aversion), -1 for any.
        pub version: i32,
    }
}

jute_record! {
    /// The reply to setACL.
    pub struct SetAclResponse {
        /// The node's Stat after the change.
        pub stat: Stat,
    }
}

jute_record! {
    /// The body of getChildren.
    pub struct GetChildrenRequest {
        /// Path of the node.
        pub path: String,
        /// Leave a child watch.
        pub watch: bool,
    }
}

jute_record! {
    /// The reply to getChildren.
    pub struct GetChildrenResponse {
        /// Child names (not paths), in no particular order.
        pub children: Vec<String>,
    }
}

jute_record! {
    /// The body of getChildren2.
    pub struct GetChildren2Request {
        /// Path of the node.
        pub path: String,
        /// Leave a child watch.
        pub watch: bool,
    }
}

jute_record! {
    /// The reply to getChildren2.
    pub struct GetChildren2Response {
        /// Child names.
        pub children: Vec<String>,
        /// The parent's Stat.
        pub stat: Stat,
    }
}

jute_record! {
    /// The body of getAllChildrenNumber.
    pub struct GetAllChildrenNumberRequest {
        /// Path of the node.
        pub path: String,
    }
}

jute_record! {
    /// The reply to getAllChildrenNumber.
    pub struct GetAllChildrenNumberResponse {
        /// Number of descendants.
        pub total_number: i32,
    }
}

jute_record! {
    /// The body of getEphemerals.
    pub struct GetEphemeralsRequest {
        /// Only ephemerals whose path starts with this prefix.
        pub prefix_path: String,
    }
}

jute_record! {
    /// The reply to getEphemerals.
    pub struct GetEphemeralsResponse {
        /// Paths of the session's ephemeral nodes.
        pub ephemerals: Vec<String>,
    }
}

jute_record! {
    /// The body of sync.
    pub struct SyncRequest {
        /// Path to sync.
        pub path: String,
    }
}

jute_record! {
    /// The reply to sync.
    pub struct SyncResponse {
        /// The path synced.
        pub path: String,
    }
}

jute_record! {
    /// The body of check (inside a multi).
    pub struct CheckVersionRequest {
        /// Path of the node.
        pub path: String,
        /// Expected version, -1 for any.
        pub version: i32,
    }
}

jute_record! {
    /// The body of reconfig.
    pub struct ReconfigRequest {
        /// Servers to add (incremental mode).
        pub joining_servers: String,
        /// Server ids to remove (incremental mode).
        pub leaving_servers: String,
        /// The whole new membership (non-incremental mode).
        pub new_members: String,
        /// Expected current config version, -1 for any.
        pub cur_config_id: i64,
    }
}

jute_record! {
    /// The body of an auth packet (xid -4).
    pub struct AuthPacket {
        /// Always 0.
        pub auth_type: i32,
        /// Auth scheme, e.g. `digest`.
        pub scheme: String,
        /// Credentials, e.g. `user:password`.
        pub auth: Bytes,
    }
}

jute_record! {
    /// The body of addWatch.
    pub struct AddWatchRequest {
        /// Path to watch.
        pub path: String,
        /// [`crate::types::AddWatchMode`] number.
        pub mode: i32,
    }
}

jute_record! {
    /// The body of checkWatches.
    pub struct CheckWatchesRequest {
        /// Path of the watch.
        pub path: String,
        /// [`crate::types::WatcherType`] number.
        pub watcher_type: i32,
    }
}

jute_record! {
    /// The body of removeWatches.
    pub struct RemoveWatchesRequest {
        /// Path of the watch.
        pub path: String,
        /// [`crate::types::WatcherType`] number.
        pub watcher_type: i32,
    }
}

jute_record! {
    /// The body of setWatches (xid -8): watches to re-register after a
    /// reconnect, relative to the last zxid the client saw.
    pub struct SetWatches {
        /// Last zxid seen; changes after it fire at once.
        pub relative_zxid: i64,
        /// Paths with data watches.
        pub data_watches: Vec<String>,
        /// Paths with exists watches (on missing nodes).
        pub exist_watches: Vec<String>,
        /// Paths with child watches.
        pub child_watches: Vec<String>,
    }
}

jute_record! {
    /// The body of setWatches2 (xid -8), which adds persistent watches.
    pub struct SetWatches2 {
        /// Last zxid seen.
        pub relative_zxid: i64,
        /// Paths with data watches.
        pub data_watches: Vec<String>,
        /// Paths with exists watches.
        pub exist_watches: Vec<String>,
        /// Paths with child watches.
        pub child_watches: Vec<String>,
        /// Paths with persistent watches.
        pub persistent_watches: Vec<String>,
        /// Paths with persistent recursive watches.
        pub persistent_recursive_watches: Vec<String>,
    }
}

jute_record! {
    /// A watch notification (xid -1).
    pub struct WatcherEvent {
        /// [`crate::types::EventType`] number.
        pub event_type: i32,
        /// [`crate::types::KeeperState`] number.
        pub state: i32,
        /// Path of the node (server-side path, chroot included).
        pub path: String,
    }
}

jute_record! {
    /// An error result inside a multi response, and the addWatch reply.
    #[derive(Copy)]
    pub struct ErrorResponse {
        /// The error code.
        pub err: i32,
    }
}

jute_record! {
    /// The reply to whoAmI.
    pub struct WhoAmIResponse {
        /// One entry per authentication of the session.
        pub client_info: Vec<ClientInfo>,
    }
}

jute_record! {
    /// The body of a SASL request.
    pub struct GetSaslRequest {
        /// SASL token.
        pub token: Option<Bytes>,
    }
}

jute_record! {
    /// A SASL request record (unused on the wire by current clients).
    pub struct SetSaslRequest {
        /// SASL token.
        pub token: Option<Bytes>,
    }
}

jute_record! {
    /// The reply to a SASL request.
    pub struct SetSaslResponse {
        /// SASL token.
        pub token: Option<Bytes>,
    }
}

jute_record! {
    /// Legacy: never sent by current clients.
    pub struct GetMaxChildrenRequest {
        /// Path of the node.
        pub path: String,
    }
}

jute_record! {
    /// Legacy: never sent by current servers.
    pub struct GetMaxChildrenResponse {
        /// The limit.
        pub max: i32,
    }
}

jute_record! {
    /// Legacy: never sent by current clients.
    pub struct SetMaxChildrenRequest {
        /// Path of the node.
        pub path: String,
        /// The limit.
        pub max: i32,
    }
}

jute_record! {
    /// Server-internal request record.
    pub struct GetStatPersistedRequest {
        /// Path of the node.
        pub path: String,
    }
}

jute_record! {
    /// Server-internal response record.
    pub struct GetStatPersistedResponse {
        /// The persisted Stat.
        pub stat_persisted: StatPersisted,
    }
}
