//! `org.apache.zookeeper.data`: Id, ACL, Stat, StatPersisted, ClientInfo.

use crate::jute::jute_record;
use crate::types::perms;

jute_record! {
    /// An identity: an auth scheme and an id within it (`world:anyone`,
    /// `digest:user:hash`, `ip:10.0.0.0/8` ...).
    pub struct Id {
        /// The scheme (`world`, `auth`, `digest`, `ip`, `sasl`, `x509`).
        pub scheme: String,
        /// The id within the scheme.
        pub id: String,
    }
}

impl Id {
    /// An id from its scheme and value.
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Self {
        Id { scheme: scheme.into(), id: id.into() }
    }

    /// `world:anyone` (`Ids.ANYONE_ID_UNSAFE`).
    pub fn anyone() -> Self {
        Id::new("world", "anyone")
    }

    /// `auth:` (`Ids.AUTH_IDS`): the ids the creating session authenticated as.
    pub fn auth_ids() -> Self {
        Id::new("auth", "")
    }
}

jute_record! {
    /// An access control entry: permission bits granted to an id.
    pub struct Acl {
        /// Permission bits, see [`crate::types::perms`].
        pub perms: i32,
        /// Who gets them.
        pub id: Id,
    }
}

impl Acl {
    /// An ACL entry.
    pub fn new(perms: i32, id: Id) -> Self {
        Acl { perms, id }
    }

    /// `Ids.OPEN_ACL_UNSAFE`: everything for everyone.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(perms::ALL, Id::anyone())]
    }

    /// `Ids.READ_ACL_UNSAFE`: read for everyone.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(perms::READ, Id::anyone())]
    }

    /// `Ids.CREATOR_ALL_ACL`: everything for the creator's authenticated ids.
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl::new(perms::ALL, Id::auth_ids())]
    }
}

jute_record! {
    /// A node's metadata as a client sees it (68 bytes on the wire).
    #[derive(Copy)]
    pub struct Stat {
        /// The zxid of the change that created the node.
        pub czxid: i64,
        /// The zxid of the change that last modified the node's data.
        pub mzxid: i64,
        /// Creation time, milliseconds since the epoch.
        pub ctime: i64,
        /// Last modification time, milliseconds since the epoch.
        pub mtime: i64,
        /// Number of changes to the data.
        pub version: i32,
        /// Number of changes to the children.
        pub cversion: i32,
        /// Number of changes to the ACL.
        pub aversion: i32,
        /// The owning session of an ephemeral node, 0 otherwise (TTL and
        /// container nodes carry a marker here on the server).
        pub ephemeral_owner: i64,
        /// Length of the data.
        pub data_length: i32,
        /// Number of children.
        pub num_children: i32,
        /// The zxid of the change that last modified the children.
        pub pzxid: i64,
    }
}

jute_record! {
    /// A node's metadata as the server stores it (no derived fields).
    #[derive(Copy)]
    pub struct StatPersisted {
        /// The zxid of the change that created the node.
        pub czxid: i64,
        /// The zxid of the change that last modified the node's data.
        pub mzxid: i64,
        /// Creation time, milliseconds since the epoch.
        pub ctime: i64,
        /// Last modification time, milliseconds since the epoch.
        pub mtime: i64,
        /// Number of changes to the data.
        pub version: i32,
        /// Number of changes to the children.
        pub cversion: i32,
        /// Number of changes to the ACL.
        pub aversion: i32,
        /// Owner session or TTL/container marker.
        pub ephemeral_owner: i64,
        /// The zxid of the change that last modified the children.
        pub pzxid: i64,
    }
}

jute_record! {
    /// One authentication of a session, as whoAmI reports it.
    pub struct ClientInfo {
        /// The auth scheme.
        pub auth_scheme: String,
        /// The user within it.
        pub user: String,
    }
}
