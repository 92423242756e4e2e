//! `ZooDefs.OpCode`: the request types.

use crate::code_enum::code_enum;

code_enum! {
    /// A request type (`ZooDefs.OpCode`), the `type` of a `RequestHeader`
    /// and of a `TxnHeader`.
    ///
    /// ```
    /// use zk_proto::OpCode;
    /// assert_eq!(OpCode::from(4), OpCode::GetData);
    /// assert_eq!(OpCode::from(999), OpCode::Unknown(999));
    /// assert_eq!(i32::from(OpCode::Unknown(999)), 999);
    /// ```
    pub enum OpCode {
        /// A watch notification (server to client, xid -1).
        Notification = 0, "notification";
        /// Create a node.
        Create = 1, "create";
        /// Delete a node.
        Delete = 2, "delete";
        /// Stat a node, possibly leaving a watch.
        Exists = 3, "exists";
        /// Read a node's data.
        GetData = 4, "getData";
        /// Write a node's data.
        SetData = 5, "setData";
        /// Read a node's ACL.
        GetAcl = 6, "getACL";
        /// Write a node's ACL.
        SetAcl = 7, "setACL";
        /// List a node's children.
        GetChildren = 8, "getChildren";
        /// Sync the server with the leader.
        Sync = 9, "sync";
        /// Keep the session alive (xid -2).
        Ping = 11, "ping";
        /// List a node's children with its Stat.
        GetChildren2 = 12, "getChildren2";
        /// Check a node's version (only inside a multi).
        Check = 13, "check";
        /// An atomic transaction of several ops.
        Multi = 14, "multi";
        /// Create a node, returning its Stat.
        Create2 = 15, "create2";
        /// Dynamic reconfiguration.
        Reconfig = 16, "reconfig";
        /// Check that a watch exists.
        CheckWatches = 17, "checkWatches";
        /// Remove watches.
        RemoveWatches = 18, "removeWatches";
        /// Create a container node.
        CreateContainer = 19, "createContainer";
        /// Delete a container node (server internal).
        DeleteContainer = 20, "deleteContainer";
        /// Create a node with a time to live.
        CreateTtl = 21, "createTTL";
        /// Several reads at once.
        MultiRead = 22, "multiRead";
        /// Add authentication (xid -4).
        Auth = 100, "auth";
        /// Re-register watches after a reconnect (xid -8).
        SetWatches = 101, "setWatches";
        /// SASL authentication.
        Sasl = 102, "sasl";
        /// List the session's ephemeral nodes.
        GetEphemerals = 103, "getEphemerals";
        /// Count all descendants of a node.
        GetAllChildrenNumber = 104, "getAllChildrenNumber";
        /// Re-register watches, persistent ones included (xid -8).
        SetWatches2 = 105, "setWatches2";
        /// Add a persistent or persistent-recursive watch.
        AddWatch = 106, "addWatch";
        /// Ask the server who this session is authenticated as.
        WhoAmI = 107, "whoAmI";
        /// Create a session (txn type).
        CreateSession = -10, "createSession";
        /// Close the session.
        CloseSession = -11, "closeSession";
        /// A failed txn (txn type).
        Error = -1, "error";
    }
}

impl OpCode {
    /// Whether this request changes the tree and so becomes a txn
    /// (`Request.isQuorum` for client requests).
    pub const fn is_write(self) -> bool {
        matches!(
            self,
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::SetData
                | OpCode::SetAcl
                | OpCode::Check
                | OpCode::Multi
                | OpCode::Reconfig
                | OpCode::CreateSession
                | OpCode::CloseSession
        )
    }
}
