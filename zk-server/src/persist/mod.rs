//! Durable state: the transaction log and snapshots, in Apache ZooKeeper's
//! on-disk formats (`dataDir/version-2/log.<zxid>`, `snapshot.<zxid>`), and
//! recovery from them.
//!
//! Both formats are Apache ZooKeeper 3.8's, so a data directory written by
//! Apache can be loaded here and the other way round:
//!
//! * [`txnlog`]: `log.<hex zxid of the first txn>`, a `FileHeader` then
//!   `{long adler32, buffer txn, byte 'B'}*`, preallocated with zeros.
//! * [`snapshot`]: `snapshot.<hex zxid>`, the sessions, the ACL cache and
//!   the nodes of the tree, sealed with an Adler32 checksum.
//!
//! Everything here is blocking `std::fs` I/O, meant to run on a blocking
//! thread.

pub mod compress;
pub(crate) mod log;
pub mod snapshot;
pub mod txnlog;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// The subdirectory of a data dir that holds the files of format version 2.
pub const VERSION_DIR: &str = "version-2";

/// `dir/version-2`.
pub(crate) fn version_dir(dir: &Path) -> PathBuf {
    dir.join(VERSION_DIR)
}

/// Creates `dir/version-2` when missing (making the new directory entry
/// durable) and returns its path.
pub(crate) fn ensure_version_dir(dir: &Path) -> io::Result<PathBuf> {
    let vdir = version_dir(dir);
    if !vdir.is_dir() {
        fs::create_dir_all(&vdir)?;
        sync_dir(dir)?;
    }
    Ok(vdir)
}

/// `<prefix>.<lowercase hex zxid>`, as Apache's `Util.makeLogName` /
/// `makeSnapshotName` (`Long.toHexString`).
pub(crate) fn zxid_file_name(prefix: &str, zxid: i64) -> String {
    format!("{prefix}.{zxid:x}")
}

/// The zxid of a file named exactly `<prefix>.<hex>`; `None` for any other
/// name (other suffixes, temp files, negative or oversized numbers).
pub(crate) fn parse_zxid_name(name: &str, prefix: &str) -> Option<i64> {
    let hex = name.strip_prefix(prefix)?.strip_prefix('.')?;
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(hex, 16).ok()
}

/// The zxid of a file as Apache's `Util.getZxidFromName` reads it: the name
/// split at dots, the first part `prefix`, the second part hex (so
/// `snapshot.1f.gz` is 0x1f). Used when deciding what to purge.
pub(crate) fn parse_zxid_name_lenient(name: &str, prefix: &str) -> Option<i64> {
    let mut parts = name.split('.');
    if parts.next()? != prefix {
        return None;
    }
    let hex = parts.next()?;
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(hex, 16).ok()
}

/// The files of `vdir` named exactly `<prefix>.<hex>`, by ascending zxid.
/// A missing directory has no files.
pub(crate) fn list_zxid_files(vdir: &Path, prefix: &str) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for (name, path) in list_dir(vdir)? {
        if let Some(zxid) = parse_zxid_name(&name, prefix) {
            out.push((zxid, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The regular files of `vdir` (symlinks followed) with UTF-8 names; a
/// missing directory is empty.
pub(crate) fn list_dir(vdir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let entries = match fs::read_dir(vdir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        // Follows symlinks; a file removed meanwhile is skipped.
        if !path.is_file() {
            continue;
        }
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, path));
        }
    }
    Ok(out)
}

/// Makes the entries of directory `dir` (created, renamed, removed files)
/// durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

/// An `InvalidData` error.
pub(crate) fn invalid_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// An `InvalidInput` error.
pub(crate) fn invalid_input(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// Adler-32 (RFC 1950), the checksum of Apache's log entries and snapshots
/// (`java.util.zip.Adler32`). Java's `getValue()` is the 32-bit value as an
/// unsigned `long`, which is what the files store.
#[derive(Clone)]
pub(crate) struct Adler32(simd_adler32::Adler32);

impl std::fmt::Debug for Adler32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Adler32({:#010x})", self.value())
    }
}

impl Adler32 {
    /// A checksum of no bytes (1).
    pub(crate) fn new() -> Self {
        Adler32(simd_adler32::Adler32::new())
    }

    /// Adds `data` to the checksum (SIMD where the CPU has it).
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.0.write(data);
    }

    /// The checksum of the bytes so far.
    pub(crate) fn value(&self) -> u32 {
        self.0.finish()
    }

    /// The checksum as the `long` Apache writes.
    pub(crate) fn value_i64(&self) -> i64 {
        i64::from(self.value())
    }
}

/// The Adler-32 of `data`.
pub(crate) fn adler32(data: &[u8]) -> u32 {
    let mut c = Adler32::new();
    c.update(data);
    c.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytewise definition, to check the chunked one against.
    fn naive(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + u32::from(x)) % 65_521;
            b = (b + a) % 65_521;
        }
        (b << 16) | a
    }

    #[test]
    fn adler32_known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"a"), 0x0062_0062);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + 0xff) as u8).collect();
        assert_eq!(adler32(&big), naive(&big));
        let ones = vec![0xffu8; 20_000];
        assert_eq!(adler32(&ones), naive(&ones));
        let mut inc = Adler32::new();
        for chunk in big.chunks(333) {
            inc.update(chunk);
        }
        assert_eq!(inc.value(), naive(&big));
    }

    #[test]
    fn file_names() {
        assert_eq!(zxid_file_name("log", 0x1_0000_00ab), "log.1000000ab");
        assert_eq!(parse_zxid_name("log.1000000ab", "log"), Some(0x1_0000_00ab));
        assert_eq!(parse_zxid_name("log.1F", "log"), Some(0x1f));
        assert_eq!(parse_zxid_name("log.", "log"), None);
        assert_eq!(parse_zxid_name("log.+1", "log"), None);
        assert_eq!(parse_zxid_name("log.1.tmp", "log"), None);
        assert_eq!(parse_zxid_name("logx.1", "log"), None);
        assert_eq!(parse_zxid_name("snapshot.ffffffffffffffff", "snapshot"), None);
        assert_eq!(parse_zxid_name_lenient("snapshot.1f.gz", "snapshot"), Some(0x1f));
        assert_eq!(parse_zxid_name_lenient("tmp.snapshot.1f", "snapshot"), None);
    }
}
