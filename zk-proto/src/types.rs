//! The small numbered enums and constants of `Watcher`, `CreateMode` and
//! `ZooDefs`.

use crate::code_enum::code_enum;

code_enum! {
    /// `Watcher.Event.EventType`: what a watch notification reports.
    pub enum EventType {
        /// A change of connection state, not of a node.
        None = -1, "None";
        /// The node was created.
        NodeCreated = 1, "NodeCreated";
        /// The node was deleted.
        NodeDeleted = 2, "NodeDeleted";
        /// The node's data changed.
        NodeDataChanged = 3, "NodeDataChanged";
        /// The node's children changed.
        NodeChildrenChanged = 4, "NodeChildrenChanged";
        /// A data watch was removed.
        DataWatchRemoved = 5, "DataWatchRemoved";
        /// A child watch was removed.
        ChildWatchRemoved = 6, "ChildWatchRemoved";
        /// A persistent watch was removed.
        PersistentWatchRemoved = 7, "PersistentWatchRemoved";
    }
}

code_enum! {
    /// `Watcher.Event.KeeperState`: the session state carried by an event.
    pub enum KeeperState {
        /// Unused (`Unknown` in Java).
        UnknownState = -1, "Unknown";
        /// The client is disconnected from every server.
        Disconnected = 0, "Disconnected";
        /// Unused (`NoSyncConnected` in Java).
        NoSyncConnected = 1, "NoSyncConnected";
        /// The client is connected to a server of the quorum.
        SyncConnected = 3, "SyncConnected";
        /// Authentication failed.
        AuthFailed = 4, "AuthFailed";
        /// Connected to a read-only server.
        ConnectedReadOnly = 5, "ConnectedReadOnly";
        /// SASL authentication succeeded.
        SaslAuthenticated = 6, "SaslAuthenticated";
        /// The session expired.
        Expired = -112, "Expired";
        /// The client closed the session.
        Closed = 7, "Closed";
    }
}

code_enum! {
    /// `Watcher.WatcherType`: the `type` of checkWatches / removeWatches.
    pub enum WatcherType {
        /// Child watches.
        Children = 1, "Children";
        /// Data (and exists) watches.
        Data = 2, "Data";
        /// Any watch.
        Any = 3, "Any";
        /// Persistent watches.
        Persistent = 4, "Persistent";
        /// Persistent recursive watches.
        PersistentRecursive = 5, "PersistentRecursive";
    }
}

code_enum! {
    /// `AddWatchMode`: the `mode` of an addWatch request.
    pub enum AddWatchMode {
        /// A watch on one node that stays after it fires.
        Persistent = 0, "PERSISTENT";
        /// A watch on a node and all its descendants that stays after it fires.
        PersistentRecursive = 1, "PERSISTENT_RECURSIVE";
    }
}

code_enum! {
    /// `CreateMode`: the `flags` of a create request.
    pub enum CreateMode {
        /// A node that lives until deleted.
        Persistent = 0, "PERSISTENT";
        /// A node deleted when its session ends.
        Ephemeral = 1, "EPHEMERAL";
        /// A persistent node with a sequence suffix.
        PersistentSequential = 2, "PERSISTENT_SEQUENTIAL";
        /// An ephemeral node with a sequence suffix.
        EphemeralSequential = 3, "EPHEMERAL_SEQUENTIAL";
        /// A node removed by the server once its last child is gone.
        Container = 4, "CONTAINER";
        /// A persistent node removed after its TTL when childless and unchanged.
        PersistentWithTtl = 5, "PERSISTENT_WITH_TTL";
        /// A sequential persistent node with a TTL.
        PersistentSequentialWithTtl = 6, "PERSISTENT_SEQUENTIAL_WITH_TTL";
    }
}

impl CreateMode {
    /// Whether the node is ephemeral.
    pub const fn is_ephemeral(self) -> bool {
        matches!(self, CreateMode::Ephemeral | CreateMode::EphemeralSequential)
    }

    /// Whether the server appends a sequence suffix.
    pub const fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    /// Whether the node is a container.
    pub const fn is_container(self) -> bool {
        matches!(self, CreateMode::Container)
    }

    /// Whether the node carries a TTL.
    pub const fn is_ttl(self) -> bool {
        matches!(self, CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl)
    }
}

/// `ZooDefs.Perms`: ACL permission bits.
pub mod perms {
    /// Read data and list children.
    pub const READ: i32 = 1;
    /// Set data.
    pub const WRITE: i32 = 2;
    /// Create children.
    pub const CREATE: i32 = 4;
    /// Delete children.
    pub const DELETE: i32 = 8;
    /// Set the ACL.
    pub const ADMIN: i32 = 16;
    /// Every permission.
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// The protocol version of `ConnectRequest`/`ConnectResponse` (always 0).
pub const PROTOCOL_VERSION: i32 = 0;

/// Length of the session password.
pub const SESSION_PASSWD_LEN: usize = 16;
