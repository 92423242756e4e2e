//! `org.apache.zookeeper.server.persistence`: the header of log and
//! snapshot files.

use crate::jute::jute_record;

jute_record! {
    /// The first record of a transaction log or snapshot file.
    #[derive(Copy)]
    pub struct FileHeader {
        /// [`TXNLOG_MAGIC`] or [`SNAP_MAGIC`].
        pub magic: i32,
        /// [`FILE_VERSION`].
        pub version: i32,
        /// Database id (0 in logs, -1 in snapshots).
        pub dbid: i64,
    }
}

/// `"ZKLG"`, the magic of a transaction log.
pub const TXNLOG_MAGIC: i32 = i32::from_be_bytes(*b"ZKLG");
/// `"ZKSN"`, the magic of a snapshot.
pub const SNAP_MAGIC: i32 = i32::from_be_bytes(*b"ZKSN");
/// The file format version.
pub const FILE_VERSION: i32 = 2;
/// The byte that ends every log entry (`'B'`).
pub const END_OF_RECORD: u8 = 0x42;
