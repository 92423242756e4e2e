//! The transaction log, in Apache ZooKeeper's format (`FileTxnLog`).
//!
//! A log file is `version-2/log.<lowercase hex zxid of its first txn>`:
//! a `FileHeader{"ZKLG", 2, dbid 0}`, then one entry per txn:
//!
//! ```text
//! long   checksum   Adler32 of the txn bytes (an unsigned 32-bit value)
//! int    length     of the txn bytes
//! byte[] txn        TxnHeader, txn record, optional TxnDigest (LoggedTxn)
//! byte   0x42       'B', end of record
//! ```
//!
//! Files are preallocated with zeros (64 MiB at a time, as Apache does), so
//! an all-zero entry header is the normal end of a file. A crash can leave a
//! *torn tail*: an entry cut short, with a wrong checksum or without its end
//! marker. [`read_log`] stops there, reports it, and can truncate the file
//! back to its last good entry. The writer, [`TxnLog`], never appends to an
//! existing file: every process (and every [`TxnLog::roll`]) starts a new
//! file named after the first txn written to it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tracing::{debug, warn};
use zk_proto::Record;
use zk_proto::records::{END_OF_RECORD, FILE_VERSION, FileHeader, LoggedTxn, TXNLOG_MAGIC};

use super::{
    adler32, ensure_version_dir, invalid_data, invalid_input, list_zxid_files, sync_dir, version_dir,
    zxid_file_name,
};

/// The name prefix of log files (`log.<hex zxid>`).
pub const LOG_PREFIX: &str = "log";

/// Apache's default preallocation step (`zookeeper.preAllocSize`, 64 MiB).
pub const DEFAULT_PREALLOC_BYTES: u64 = 64 * 1024 * 1024;

/// Length of the `FileHeader` at the start of a log.
const HEADER_LEN: u64 = 16;
/// Checksum and length before the txn bytes.
const ENTRY_HEAD_LEN: usize = 12;
/// Buffered bytes that trigger a write to the file before the next sync.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// An fsync slower than this is logged (Apache's `fsync.warningthresholdms`).
const FSYNC_WARN: Duration = Duration::from_secs(1);

/// The file being appended to.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: File,
    /// Bytes handed to the OS so far (the header included).
    written: u64,
    /// The file's length after preallocation.
    allocated: u64,
    /// Whether the directory entry of the file has been synced.
    dir_synced: bool,
}

/// The transaction log writer: appends txns to `dataLogDir/version-2`.
///
/// Appends are buffered; [`TxnLog::sync`] writes them out and (unless
/// `force_sync` is off) fdatasyncs, once per group-commit batch. After an
/// I/O error the log refuses further use, since the file may then end in a
/// partial entry: the server must stop and recover from disk.
#[derive(Debug)]
pub struct TxnLog {
    /// `dataLogDir/version-2`.
    dir: PathBuf,
    force_sync: bool,
    prealloc: u64,
    current: Option<LogFile>,
    /// Encoded entries not yet written to the file.
    buf: Vec<u8>,
    /// Scratch space for encoding one txn.
    scratch: BytesMut,
    last_zxid: Option<i64>,
    failed: bool,
    on_fsync: Option<FsyncObserver>,
}

/// Told the duration of each fsync (the `fsynctime` metric).
struct FsyncObserver(Box<dyn Fn(std::time::Duration) + Send>);

impl std::fmt::Debug for FsyncObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FsyncObserver")
    }
}

impl TxnLog {
    /// Opens `dir/version-2` (creating it when missing) for appending after
    /// recovery. Nothing is written until the first [`TxnLog::append`],
    /// which starts the file `log.<hex zxid of that txn>`: Apache also
    /// starts a new file at each roll and restart, and never appends to an
    /// old one.
    ///
    /// With `force_sync` false, [`TxnLog::sync`] writes to the OS but does
    /// not fsync (Apache's `forceSync=no`).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: &Path, force_sync: bool) -> io::Result<TxnLog> {
        let dir = ensure_version_dir(dir)?;
        Ok(TxnLog {
            dir,
            force_sync,
            prealloc: DEFAULT_PREALLOC_BYTES,
            current: None,
            buf: Vec::new(),
            scratch: BytesMut::new(),
            last_zxid: None,
            failed: false,
            on_fsync: None,
        })
    }

    /// Calls `f` with the duration of every fsync from now on.
    pub fn on_fsync(&mut self, f: impl Fn(std::time::Duration) + Send + 'static) {
        self.on_fsync = Some(FsyncObserver(Box::new(f)));
    }

    /// Sets the preallocation step for files: a file is extended with zeros
    /// by this many bytes whenever the entries reach its end, so that an
    /// fdatasync rarely has to update the file size. 0 turns preallocation
    /// off. Default [`DEFAULT_PREALLOC_BYTES`].
    pub fn set_preallocate_size(&mut self, bytes: u64) {
        self.prealloc = bytes;
    }

    /// Appends `txn` to the buffer (in order; durable only after
    /// [`TxnLog::sync`]). The first append after [`TxnLog::open`] or
    /// [`TxnLog::roll`] starts a new file named after this txn's zxid.
    ///
    /// # Errors
    /// When the file cannot be created or written, when a file of that name
    /// already holds txns, when the txn is too large to frame, or after an
    /// earlier I/O error.
    pub fn append(&mut self, txn: &LoggedTxn) -> io::Result<()> {
        self.check_usable()?;
        let zxid = txn.header.zxid;
        if let Some(last) = self.last_zxid.filter(|&last| zxid <= last) {
            warn!(
                zxid = format_args!("{zxid:#x}"),
                last = format_args!("{last:#x}"),
                "txn zxid is not above the last logged zxid"
            );
        }
        self.scratch.clear();
        txn.encode(&mut self.scratch);
        let len = i32::try_from(self.scratch.len()).map_err(|_| {
            invalid_input(format!("txn {zxid:#x} of {} bytes is too large", self.scratch.len()))
        })?;
        if self.current.is_none() {
            self.start_file(zxid)?;
        }
        self.buf.put_i64(i64::from(adler32(&self.scratch)));
        self.buf.put_i32(len);
        self.buf.extend_from_slice(&self.scratch);
        self.buf.push(END_OF_RECORD);
        self.last_zxid = Some(zxid);
        if self.buf.len() >= WRITE_BUFFER_BYTES {
            let r = self.write_buffer();
            self.poison_on_err(r)?;
        }
        Ok(())
    }

    /// Writes the buffered entries to the file and, with `force_sync`,
    /// fdatasyncs it (and, the first time, its directory). Group commit calls
    /// this once per batch; txns appended before it returns are durable.
    ///
    /// # Errors
    /// On a write or sync error (the log is unusable afterwards).
    pub fn sync(&mut self) -> io::Result<()> {
        self.check_usable()?;
        let r = self.sync_inner();
        self.poison_on_err(r)
    }

    /// Syncs and closes the current file; the next append starts a new one.
    /// Apache rolls the log when it takes a snapshot.
    ///
    /// # Errors
    /// As [`TxnLog::sync`].
    pub fn roll(&mut self) -> io::Result<()> {
        self.sync()?;
        if let Some(cur) = self.current.take() {
            debug!(file = %cur.path.display(), bytes = cur.written, "rolled transaction log");
        }
        Ok(())
    }

    /// Drops the whole log: closes the current file and deletes every log
    /// file. For a learner that installed its leader's snapshot (written
    /// before this is called): what the log held is either in the snapshot
    /// or a tail the leader does not have, which must not be replayed.
    ///
    /// # Errors
    /// As [`TxnLog::sync`], or when a file cannot be deleted.
    pub fn discard(&mut self) -> io::Result<()> {
        self.roll()?;
        for (_, path) in super::list_zxid_files(&self.dir, LOG_PREFIX)? {
            fs::remove_file(&path)?;
        }
        super::sync_dir(&self.dir)?;
        self.last_zxid = None;
        Ok(())
    }

    /// Cuts the log after `zxid`, as Apache's `FileTxnLog.truncate` for a
    /// learner whose leader sent TRUNC: the files that start after it are
    /// deleted and the one holding it is cut after its entry; the next
    /// append starts a new file.
    ///
    /// # Errors
    /// As [`TxnLog::sync`], or when a file cannot be read, cut or deleted.
    pub fn truncate(&mut self, zxid: i64) -> io::Result<()> {
        self.roll()?;
        for (start, path) in super::list_zxid_files(&self.dir, LOG_PREFIX)?.into_iter().rev() {
            if start > zxid {
                fs::remove_file(&path)?;
                continue;
            }
            let mut cut = None;
            let mut last = None;
            scan_file(&path, &mut |t, end| {
                last = Some(t.header.zxid);
                if t.header.zxid <= zxid {
                    cut = Some(end);
                }
            })?;
            if let (Some(end), Some(last)) = (cut, last) {
                if last > zxid {
                    truncate_file(&path, end)?;
                }
            }
            break;
        }
        super::sync_dir(&self.dir)?;
        self.last_zxid = Some(zxid);
        Ok(())
    }

    /// Bytes in the current file, header and buffered entries included
    /// (without the preallocated zeros); 0 when no file is open.
    pub fn bytes_in_current(&self) -> u64 {
        match &self.current {
            Some(cur) => cur.written + self.buf.len() as u64,
            None => 0,
        }
    }

    /// The file being appended to, if any.
    pub fn current_file(&self) -> Option<&Path> {
        self.current.as_ref().map(|c| c.path.as_path())
    }

    /// The zxid of the last txn appended by this writer.
    pub fn last_zxid(&self) -> Option<i64> {
        self.last_zxid
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.failed {
            Err(io::Error::other("the transaction log is unusable after an earlier I/O error"))
        } else {
            Ok(())
        }
    }

    fn poison_on_err<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r {
            warn!(error = %e, "transaction log write failed; refusing further appends");
            self.failed = true;
        }
        r
    }

    /// Creates `log.<zxid>` and queues its header.
    fn start_file(&mut self, zxid: i64) -> io::Result<()> {
        let path = self.dir.join(zxid_file_name(LOG_PREFIX, zxid));
        let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by a process that died before logging anything
                // readable there (or truncated to nothing by recovery):
                // reuse it. A file that holds txns is never overwritten.
                let mut count = 0usize;
                match scan_file(&path, &mut |_, _| count += 1) {
                    Ok(_) if count == 0 => {
                        warn!(file = %path.display(), "reusing a log file that holds no txns");
                        OpenOptions::new().write(true).truncate(true).open(&path)?
                    }
                    Ok(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("{} already holds {count} txns", path.display()),
                        ));
                    }
                    Err(e) => {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("{} already exists and is unreadable: {e}", path.display()),
                        ));
                    }
                }
            }
            Err(e) => return Err(e),
        };
        debug!(file = %path.display(), "started transaction log file");
        self.buf.clear();
        FileHeader { magic: TXNLOG_MAGIC, version: FILE_VERSION, dbid: 0 }.encode(&mut self.buf);
        self.current = Some(LogFile { path, file, written: 0, allocated: 0, dir_synced: false });
        Ok(())
    }

    /// Hands the buffered bytes to the OS, preallocating first.
    fn write_buffer(&mut self) -> io::Result<()> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        let end = cur.written + self.buf.len() as u64;
        if self.prealloc > 0 && end > cur.allocated {
            let size = end.div_ceil(self.prealloc).saturating_mul(self.prealloc);
            cur.file.set_len(size)?;
            cur.allocated = size;
        }
        cur.file.write_all(&self.buf)?;
        cur.written = end;
        self.buf.clear();
        Ok(())
    }

    fn sync_inner(&mut self) -> io::Result<()> {
        self.write_buffer()?;
        if !self.force_sync {
            return Ok(());
        }
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        let start = Instant::now();
        cur.file.sync_data()?;
        if !cur.dir_synced {
            sync_dir(&self.dir)?;
            cur.dir_synced = true;
        }
        let took = start.elapsed();
        if let Some(f) = &self.on_fsync {
            (f.0)(took);
        }
        if took > FSYNC_WARN {
            warn!(file = %cur.path.display(), took_ms = took.as_millis(), "fsync of the transaction log was slow");
        }
        Ok(())
    }
}

impl Drop for TxnLog {
    fn drop(&mut self) {
        // Hand what is buffered to the OS (not durable: it was never
        // acknowledged). A partial write is a torn tail for recovery.
        if !self.failed {
            let _ = self.write_buffer();
        }
    }
}

/// The incomplete end of the last log file, where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The log file.
    pub file: PathBuf,
    /// The length of its intact part: the header and the entries before the
    /// torn one. Repair truncates the file to this length.
    pub good_len: u64,
    /// What was wrong with the entry at `good_len`.
    pub reason: String,
}

/// What [`read_log`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogRead {
    /// The txns after the requested zxid, in zxid order.
    pub txns: Vec<LoggedTxn>,
    /// The torn tail of the last file, if it had one.
    pub torn: Option<TornTail>,
}

/// Reads the log files of `dir/version-2` in zxid order and returns the txns
/// with a zxid above `after_zxid` (the snapshot's zxid; -1 or 0 for all).
///
/// Only the files that can hold such txns are read: the last one starting
/// at or before `after_zxid + 1`, and all later ones. Reading a file stops
/// at its first all-zero entry header (Apache's preallocation) or at a torn
/// entry. A torn tail in the last file is logged, returned in
/// [`LogRead::torn`] and, with `repair`, truncated away (then fsynced) so
/// that the next writer continues from a clean file. A torn entry in an
/// earlier file is an error, except when the next file starts exactly at
/// the zxid after the last intact entry: then the tail was never recovered
/// or acknowledged (a restarted Apache server leaves such files behind)
/// and is skipped with a warning. Entries whose zxid is not above the
/// previous one are skipped with a warning.
///
/// # Errors
/// On I/O errors, a file that is not a transaction log (bad magic), an
/// entry with a valid checksum that does not decode, or corruption in a
/// file other than the last.
pub fn read_log(dir: &Path, after_zxid: i64, repair: bool) -> io::Result<LogRead> {
    let files = list_zxid_files(&version_dir(dir), LOG_PREFIX)?;
    let mut out = LogRead::default();
    let first_needed = after_zxid.saturating_add(1);
    let start = files.iter().rposition(|(z, _)| *z <= first_needed).unwrap_or(0);
    let mut last_seen: Option<i64> = None;
    for (i, (file_zxid, path)) in files.iter().enumerate().skip(start) {
        let txns = &mut out.txns;
        let scan = scan_file(path, &mut |txn, _| {
            let zxid = txn.header.zxid;
            if zxid <= after_zxid {
                return;
            }
            if let Some(prev) = last_seen.filter(|&prev| zxid <= prev) {
                warn!(
                    zxid = format_args!("{zxid:#x}"),
                    prev = format_args!("{prev:#x}"),
                    "skipping an out-of-order txn in the log"
                );
                return;
            }
            last_seen = Some(zxid);
            txns.push(txn);
        })?;
        let Some(reason) = scan.torn else {
            continue;
        };
        match files.get(i + 1) {
            None => {
                // A crash tears only the entry being written, at the end. An
                // intact entry after the damaged one means the damage is in
                // the middle of the log: cutting there would drop
                // acknowledged txns, so (as Apache) refuse to start.
                if intact_entry_after(path, scan.good_len)? {
                    return Err(invalid_data(format!(
                        "corrupt transaction log {} at offset {} ({reason}), with intact entries after it; \
                         refusing to drop them (restore the file or remove the damaged entries by hand)",
                        path.display(),
                        scan.good_len
                    )));
                }
                warn!(
                    file = %path.display(),
                    good_len = scan.good_len,
                    reason = %reason,
                    repair,
                    "transaction log ends in a torn entry"
                );
                if repair {
                    truncate_file(path, scan.good_len)?;
                }
                out.torn = Some(TornTail { file: path.clone(), good_len: scan.good_len, reason });
            }
            Some((next_zxid, _)) => {
                let expected = scan.last_zxid.map_or(*file_zxid, |z| z.saturating_add(1));
                if *next_zxid == expected {
                    warn!(
                        file = %path.display(),
                        good_len = scan.good_len,
                        reason = %reason,
                        "ignoring the torn tail of a log file; the next file continues after its last intact txn"
                    );
                } else {
                    return Err(invalid_data(format!(
                        "corrupt transaction log {} at offset {} ({reason}), and it is not the last log file",
                        path.display(),
                        scan.good_len
                    )));
                }
            }
        }
    }
    if let Some(first) = out.txns.first().map(|t| t.header.zxid) {
        // Within an epoch zxids are consecutive; a new epoch restarts the
        // counter, so only a same-epoch jump is a sign of missing files.
        if after_zxid > 0 && first > after_zxid.saturating_add(1) && first >> 32 == after_zxid >> 32 {
            warn!(
                after = format_args!("{after_zxid:#x}"),
                first = format_args!("{first:#x}"),
                "the transaction log does not continue where the snapshot ends; txns may be missing"
            );
        }
    }
    Ok(out)
}

/// Truncates `path` to `len` bytes and makes that durable.
fn truncate_file(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

/// How the entries of one file end.
#[derive(Debug)]
struct Scan {
    /// Length of the header and intact entries.
    good_len: u64,
    /// Why the entry at `good_len` is torn; `None` at a clean end.
    torn: Option<String>,
    /// The zxid of the last intact entry.
    last_zxid: Option<i64>,
}

/// Reads as many bytes as are left, up to `buf.len()`.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads the entries of one log file, passing each intact txn to `on_txn`.
/// Whether, after the damaged entry at `at`, the file still holds an intact
/// entry (found by skipping the damaged one by its length, or by searching
/// forward for an entry whose checksum holds).
fn intact_entry_after(path: &Path, at: u64) -> io::Result<bool> {
    let data = std::fs::read(path)?;
    let Ok(start) = usize::try_from(at) else { return Ok(false) };
    let entry_at = |off: usize| -> bool {
        let Some(head) = data.get(off..off + ENTRY_HEAD_LEN) else { return false };
        let crc =
            i64::from_be_bytes([head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]]);
        let len = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        if len <= 0 || crc == 0 {
            return false;
        }
        let body_start = off + ENTRY_HEAD_LEN;
        let Some(body) = data.get(body_start..body_start + len as usize) else { return false };
        data.get(body_start + len as usize) == Some(&END_OF_RECORD) && i64::from(adler32(body)) == crc
    };
    // Search every offset after the damaged entry's header: cheap next to
    // a restart, and it finds intact entries whatever field was damaged.
    Ok((start + 1..data.len().saturating_sub(ENTRY_HEAD_LEN)).any(entry_at))
}

/// Reads one log file's entries, handing each to `on_txn` with the offset
/// just past it.
fn scan_file(path: &Path, on_txn: &mut dyn FnMut(LoggedTxn, u64)) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(64 * 1024, file);
    let torn = |good_len: u64, last_zxid: Option<i64>, reason: String| Scan {
        good_len,
        torn: Some(reason),
        last_zxid,
    };

    let mut head = [0u8; HEADER_LEN as usize];
    let n = read_up_to(&mut r, &mut head)?;
    if n == 0 {
        return Ok(Scan { good_len: 0, torn: None, last_zxid: None });
    }
    if n < head.len() || head.iter().all(|&b| b == 0) {
        return Ok(torn(0, None, format!("incomplete file header ({n} bytes)")));
    }
    let header =
        FileHeader::decode(&mut Bytes::copy_from_slice(&head)).map_err(|e| invalid_data(e.to_string()))?;
    if header.magic != TXNLOG_MAGIC {
        return Err(invalid_data(format!(
            "{} is not a transaction log (magic {:#010x})",
            path.display(),
            header.magic
        )));
    }

    let mut off = HEADER_LEN;
    let mut last_zxid = None;
    loop {
        let mut eh = [0u8; ENTRY_HEAD_LEN];
        let n = read_up_to(&mut r, &mut eh)?;
        if eh[..n].iter().all(|&b| b == 0) {
            // End of file, or the preallocated zeros.
            return Ok(Scan { good_len: off, torn: None, last_zxid });
        }
        if n < ENTRY_HEAD_LEN {
            return Ok(torn(off, last_zxid, format!("partial entry header ({n} of {ENTRY_HEAD_LEN} bytes)")));
        }
        let (crc_bytes, len_bytes) = eh.split_at(8);
        let crc = i64::from_be_bytes(crc_bytes.try_into().map_err(|_| invalid_data("entry header"))?);
        let len = i32::from_be_bytes(len_bytes.try_into().map_err(|_| invalid_data("entry header"))?);
        if len == 0 {
            return Ok(torn(off, last_zxid, "zero entry length after a non-zero checksum".into()));
        }
        let Ok(len) = u64::try_from(len) else {
            return Ok(torn(off, last_zxid, format!("negative entry length {len}")));
        };
        let entry_end = off + ENTRY_HEAD_LEN as u64 + len + 1;
        if entry_end > file_len {
            return Ok(torn(off, last_zxid, format!("entry of {len} bytes runs past the end of the file")));
        }
        // Bounded by the file length checked above.
        let mut body = vec![0u8; len as usize + 1];
        let n = read_up_to(&mut r, &mut body)?;
        if n < body.len() {
            return Ok(torn(off, last_zxid, "file ended inside an entry".into()));
        }
        let eor = body.pop().unwrap_or(0);
        if eor != END_OF_RECORD {
            return Ok(torn(off, last_zxid, format!("missing end-of-record marker (found {eor:#04x})")));
        }
        let actual = i64::from(adler32(&body));
        if actual != crc {
            return Ok(torn(
                off,
                last_zxid,
                format!("checksum mismatch (stored {crc:#x}, computed {actual:#x})"),
            ));
        }
        let txn = LoggedTxn::decode_exact(Bytes::from(body)).map_err(|e| {
            invalid_data(format!(
                "{}: the entry at offset {off} passes its checksum but does not decode: {e}",
                path.display()
            ))
        })?;
        last_zxid = Some(txn.header.zxid);
        on_txn(txn, entry_end);
        off = entry_end;
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use proptest::prelude::*;
    use zk_proto::OpCode;
    use zk_proto::records::{Acl, CreateTxn, DeleteTxn, SetDataTxn, TxnBody, TxnDigest, TxnHeader};

    use super::*;

    const GOLDEN_LOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../zk-proto/tests/golden/txnlog.bin");

    fn vdir(dir: &Path) -> PathBuf {
        version_dir(dir)
    }

    fn txn(zxid: i64) -> LoggedTxn {
        let body = match zxid % 3 {
            0 => TxnBody::Create(CreateTxn {
                path: format!("/n{zxid}"),
                data: Some(Bytes::from(vec![zxid as u8; (zxid as usize * 7) % 50])),
                acl: Acl::open_unsafe(),
                ephemeral: false,
                parent_c_version: zxid as i32,
            }),
            1 => TxnBody::SetData(SetDataTxn { path: format!("/n{zxid}"), data: None, version: 3 }),
            _ => TxnBody::Delete(DeleteTxn { path: format!("/n{zxid}") }),
        };
        let txn_type = match zxid % 3 {
            0 => OpCode::Create,
            1 => OpCode::SetData,
            _ => OpCode::Delete,
        };
        LoggedTxn {
            header: TxnHeader {
                client_id: 0x1234,
                cxid: zxid as i32,
                zxid,
                time: 1_700_000_000_000 + zxid,
                txn_type,
            },
            body,
            digest: (zxid % 2 == 0).then_some(TxnDigest { version: 2, tree_digest: zxid * 31 }),
        }
    }

    fn write_log(dir: &Path, zxids: std::ops::RangeInclusive<i64>, prealloc: u64) -> PathBuf {
        let mut log = TxnLog::open(dir, true).unwrap();
        log.set_preallocate_size(prealloc);
        for z in zxids {
            log.append(&txn(z)).unwrap();
        }
        log.sync().unwrap();
        let path = log.current_file().unwrap().to_path_buf();
        drop(log);
        path
    }

    fn zxids(read: &LogRead) -> Vec<i64> {
        read.txns.iter().map(|t| t.header.zxid).collect()
    }

    fn golden_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(vdir(dir.path())).unwrap();
        fs::copy(GOLDEN_LOG, vdir(dir.path()).join("log.1")).unwrap();
        dir
    }

    #[test]
    fn truncate_cuts_the_log_after_a_zxid_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = TxnLog::open(dir.path(), true).unwrap();
        log.set_preallocate_size(4096);
        for z in 1..=12 {
            log.append(&txn(z)).unwrap();
            if z == 4 || z == 8 {
                log.sync().unwrap();
                log.roll().unwrap();
            }
        }
        log.sync().unwrap();
        // In the middle of the second file: the third goes, the second is cut.
        log.truncate(6).unwrap();
        assert_eq!(zxids(&read_log(dir.path(), 0, false).unwrap()), (1..=6).collect::<Vec<_>>());
        let files = list_zxid_files(&vdir(dir.path()), LOG_PREFIX).unwrap();
        assert_eq!(files.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 5]);
        // The next ones go on, in a new file.
        for z in 7..=9 {
            log.append(&txn(z)).unwrap();
        }
        log.sync().unwrap();
        assert_eq!(zxids(&read_log(dir.path(), 0, false).unwrap()), (1..=9).collect::<Vec<_>>());
        // At a file's end: nothing is cut; past the end: nothing changes.
        log.truncate(9).unwrap();
        log.truncate(4).unwrap();
        assert_eq!(zxids(&read_log(dir.path(), 0, false).unwrap()), (1..=4).collect::<Vec<_>>());
        log.truncate(0).unwrap();
        assert_eq!(zxids(&read_log(dir.path(), 0, false).unwrap()), Vec::<i64>::new());
    }

    #[test]
    fn reads_the_golden_apache_log() {
        let dir = golden_dir();
        let read = read_log(dir.path(), 0, false).unwrap();
        assert_eq!(read.torn, None);
        assert_eq!(zxids(&read), (1..=19).collect::<Vec<_>>());
        assert_eq!(read.txns[0].header.txn_type, OpCode::CreateSession);
        assert_eq!(read.txns[18].header.txn_type, OpCode::CloseSession);
        // after_zxid filters.
        let read = read_log(dir.path(), 0x10, false).unwrap();
        assert_eq!(zxids(&read), vec![0x11, 0x12, 0x13]);
        assert!(read_log(dir.path(), 0x13, false).unwrap().txns.is_empty());
    }

    #[test]
    fn writes_the_golden_log_byte_for_byte() {
        let golden = fs::read(GOLDEN_LOG).unwrap();
        let src = golden_dir();
        let txns = read_log(src.path(), 0, false).unwrap().txns;
        let dir = tempfile::tempdir().unwrap();
        let mut log = TxnLog::open(dir.path(), false).unwrap();
        log.set_preallocate_size(0);
        for t in &txns {
            log.append(t).unwrap();
        }
        assert_eq!(log.bytes_in_current(), golden.len() as u64);
        log.sync().unwrap();
        let written = fs::read(vdir(dir.path()).join("log.1")).unwrap();
        assert_eq!(written, golden);
    }

    #[test]
    fn preallocated_zero_tail_is_a_clean_end() {
        let dir = golden_dir();
        let path = vdir(dir.path()).join("log.1");
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len + 100_000).unwrap();
        let read = read_log(dir.path(), 0, true).unwrap();
        assert_eq!(read.torn, None);
        assert_eq!(read.txns.len(), 19);
        // A clean end is left alone.
        assert_eq!(fs::metadata(&path).unwrap().len(), len + 100_000);
    }

    #[test]
    fn write_reopen_append_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_log(dir.path(), 1..=10, DEFAULT_PREALLOC_BYTES);
        assert_eq!(first.file_name().unwrap(), "log.1");
        // Preallocated with zeros.
        assert_eq!(fs::metadata(&first).unwrap().len(), DEFAULT_PREALLOC_BYTES);
        let read = read_log(dir.path(), 0, true).unwrap();
        assert_eq!((zxids(&read), read.torn), ((1..=10).collect(), None));

        // A restart starts a new file named after the next zxid.
        let second = write_log(dir.path(), 11..=25, 4096);
        assert_eq!(second.file_name().unwrap(), "log.b");
        let mut log = TxnLog::open(dir.path(), false).unwrap();
        for z in 26..=30 {
            log.append(&txn(z)).unwrap();
        }
        log.roll().unwrap();
        assert_eq!(log.bytes_in_current(), 0);
        for z in 31..=0x40 {
            log.append(&txn(z)).unwrap();
        }
        assert_eq!(log.current_file().unwrap().file_name().unwrap(), "log.1f");
        log.sync().unwrap();
        assert_eq!(log.last_zxid(), Some(0x40));

        let read = read_log(dir.path(), 0, true).unwrap();
        assert_eq!(read.torn, None);
        assert_eq!(zxids(&read), (1..=0x40).collect::<Vec<_>>());
        for t in &read.txns {
            assert_eq!(t, &txn(t.header.zxid));
        }
        // Only the files that can hold txns after the zxid are read.
        assert_eq!(zxids(&read_log(dir.path(), 0x1e, false).unwrap()), (0x1f..=0x40).collect::<Vec<_>>());
        assert_eq!(zxids(&read_log(dir.path(), 12, false).unwrap()), (13..=0x40).collect::<Vec<_>>());
    }

    #[test]
    fn big_batches_are_flushed_and_synced() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = TxnLog::open(dir.path(), true).unwrap();
        log.set_preallocate_size(1 << 20);
        let big = Bytes::from(vec![7u8; 100_000]);
        for z in 1..=30 {
            let mut t = txn(z);
            t.header.txn_type = OpCode::SetData;
            t.body = TxnBody::SetData(SetDataTxn {
                path: "/big".into(),
                data: Some(big.clone()),
                version: z as i32,
            });
            log.append(&t).unwrap();
        }
        let expected = log.bytes_in_current();
        assert!(expected > 3_000_000);
        log.sync().unwrap();
        let size = fs::metadata(log.current_file().unwrap()).unwrap().len();
        assert_eq!(size, expected.div_ceil(1 << 20) * (1 << 20));
        drop(log);
        let read = read_log(dir.path(), 0, false).unwrap();
        assert_eq!(read.txns.len(), 30);
    }

    /// Offsets of the entries of a file written without preallocation.
    fn entry_offsets(bytes: &[u8]) -> Vec<usize> {
        let mut offs = Vec::new();
        let mut off = HEADER_LEN as usize;
        while off < bytes.len() {
            offs.push(off);
            let len = i32::from_be_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
            off += 12 + len + 1;
        }
        offs
    }

    /// Checks recovery from a damaged last file: the intact entries come
    /// back, the tail is reported and repaired, and appending continues.
    ///
    /// Only the low 4 bytes of the 8-byte checksum are ever non-zero, so a
    /// tail of zero bytes cannot be told apart from preallocation: it is a
    /// clean end, and the file is left as it is.
    fn check_torn(bytes: &[u8], good_len: u64, intact: i64) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(vdir(dir.path())).unwrap();
        let path = vdir(dir.path()).join("log.1");
        fs::write(&path, bytes).unwrap();
        let read = read_log(dir.path(), 0, true).unwrap();
        assert_eq!(zxids(&read), (1..=intact).collect::<Vec<_>>());
        if bytes[good_len as usize..].iter().all(|&b| b == 0) {
            assert_eq!(read.torn, None);
            assert_eq!(fs::metadata(&path).unwrap().len(), bytes.len() as u64);
        } else {
            let torn = read.torn.expect("torn tail reported");
            assert_eq!((torn.file.as_path(), torn.good_len), (path.as_path(), good_len), "{}", torn.reason);
            assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
        }
        // Repaired: reads clean now, and a new writer continues.
        assert_eq!(read_log(dir.path(), 0, true).unwrap().torn, None);
        let mut log = TxnLog::open(dir.path(), true).unwrap();
        for z in intact + 1..=intact + 3 {
            log.append(&txn(z)).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        let read = read_log(dir.path(), 0, true).unwrap();
        assert_eq!(read.torn, None);
        assert_eq!(zxids(&read), (1..=intact + 3).collect::<Vec<_>>());
    }

    #[test]
    fn torn_tail_at_every_length_of_the_last_entry() {
        let src = tempfile::tempdir().unwrap();
        let path = write_log(src.path(), 1..=5, 0);
        let full = fs::read(path).unwrap();
        let last = *entry_offsets(&full).last().unwrap();
        // Cut inside the last entry: torn (except while only the zero high
        // bytes of its checksum are left).
        assert!(full[last..last + 4].iter().all(|&b| b == 0));
        assert!(full[last + 4..last + 8].iter().any(|&b| b != 0));
        for cut in last + 1..full.len() {
            check_torn(&full[..cut], last as u64, 4);
        }
        // Cut exactly at the entry boundary: clean.
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(vdir(dir.path())).unwrap();
        fs::write(vdir(dir.path()).join("log.1"), &full[..last]).unwrap();
        let read = read_log(dir.path(), 0, true).unwrap();
        assert_eq!((read.txns.len(), read.torn), (4, None));
    }

    #[test]
    fn torn_tail_followed_by_preallocated_zeros() {
        let src = tempfile::tempdir().unwrap();
        let path = write_log(src.path(), 1..=5, 0);
        let full = fs::read(path).unwrap();
        let last = *entry_offsets(&full).last().unwrap();
        for cut in [last + 3, last + 9, last + 12, last + 20, full.len() - 1] {
            let mut bytes = full[..cut].to_vec();
            bytes.resize(full.len() + 4096, 0);
            check_torn(&bytes, last as u64, 4);
        }
    }

    #[test]
    fn flipped_byte_in_the_last_entry() {
        let src = tempfile::tempdir().unwrap();
        let path = write_log(src.path(), 1..=5, 0);
        let full = fs::read(path).unwrap();
        let last = *entry_offsets(&full).last().unwrap();
        for pos in last..full.len() {
            let mut bytes = full.clone();
            bytes[pos] ^= 0x5a;
            // A corrupted length can make the entry look clean-but-short or
            // run past the end; any way, entry 5 must not come back.
            check_torn(&bytes, last as u64, 4);
        }
    }

    #[test]
    fn headerless_last_file() {
        for bytes in [vec![0u8; 16], b"ZKLG".to_vec(), vec![0u8; 4096]] {
            let dir = tempfile::tempdir().unwrap();
            let first = write_log(dir.path(), 1..=3, 0);
            drop(first);
            let path = vdir(dir.path()).join("log.4");
            fs::write(&path, &bytes).unwrap();
            let read = read_log(dir.path(), 0, true).unwrap();
            assert_eq!(zxids(&read), vec![1, 2, 3]);
            assert_eq!(read.torn.map(|t| t.good_len), Some(0));
            // The empty leftover is reused by the next writer.
            let mut log = TxnLog::open(dir.path(), true).unwrap();
            log.append(&txn(4)).unwrap();
            log.sync().unwrap();
            assert_eq!(log.current_file(), Some(path.as_path()));
            drop(log);
            assert_eq!(zxids(&read_log(dir.path(), 0, true).unwrap()), vec![1, 2, 3, 4]);
        }
    }

    #[test]
    fn never_overwrites_a_file_with_txns() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 1..=3, 0);
        let mut log = TxnLog::open(dir.path(), true).unwrap();
        let err = log.append(&txn(1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(zxids(&read_log(dir.path(), 0, false).unwrap()), vec![1, 2, 3]);
    }

    #[test]
    fn corruption_in_an_earlier_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_log(dir.path(), 1..=5, 0);
        write_log(dir.path(), 6..=8, 0);
        let mut bytes = fs::read(&first).unwrap();
        let offs = entry_offsets(&bytes);
        // Damage entry 3 of 5: txns 3..5 would be lost, the next file does
        // not continue at 3.
        bytes[offs[2] + 14] ^= 0xff;
        fs::write(&first, &bytes).unwrap();
        let err = read_log(dir.path(), 0, true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A later snapshot makes the damaged file irrelevant.
        assert_eq!(zxids(&read_log(dir.path(), 5, true).unwrap()), vec![6, 7, 8]);
    }

    #[test]
    fn torn_tail_left_by_a_restarted_server_is_skipped() {
        // Apache never truncates: after a crash it starts a new file at the
        // next zxid and the torn entry stays in the old file.
        let dir = tempfile::tempdir().unwrap();
        let first = write_log(dir.path(), 1..=5, 0);
        let bytes = fs::read(&first).unwrap();
        fs::write(&first, &bytes[..bytes.len() - 3]).unwrap();
        write_log(dir.path(), 5..=7, 0);
        let read = read_log(dir.path(), 0, true).unwrap();
        assert_eq!(read.torn, None);
        assert_eq!(zxids(&read), (1..=7).collect::<Vec<_>>());
        // Only the last file is ever repaired.
        assert_eq!(fs::metadata(&first).unwrap().len(), bytes.len() as u64 - 3);
    }

    #[test]
    fn not_a_log_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(vdir(dir.path())).unwrap();
        fs::write(vdir(dir.path()).join("log.1"), b"ZKSN\0\0\0\x02\xff\xff\xff\xff\xff\xff\xff\xff").unwrap();
        assert_eq!(read_log(dir.path(), 0, true).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // Missing directory: nothing to read.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(read_log(&empty.path().join("nope"), 0, true).unwrap(), LogRead::default());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), with_header in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(vdir(dir.path())).unwrap();
            let mut content = Vec::new();
            if with_header {
                FileHeader { magic: TXNLOG_MAGIC, version: FILE_VERSION, dbid: 0 }.encode(&mut content);
            }
            content.extend_from_slice(&bytes);
            fs::write(vdir(dir.path()).join("log.1"), &content).unwrap();
            if let Ok(read) = read_log(dir.path(), 0, true) {
                // Whatever was kept reads back the same and cleanly.
                let again = read_log(dir.path(), 0, true).unwrap();
                prop_assert_eq!(again.txns, read.txns);
                prop_assert_eq!(again.torn, None);
            }
        }

        #[test]
        fn mutated_logs_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
            let dir = tempfile::tempdir().unwrap();
            let path = write_log(dir.path(), 1..=6, 0);
            let mut bytes = fs::read(&path).unwrap();
            for (i, x) in flips {
                let i = i.index(bytes.len());
                bytes[i] ^= x;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            fs::write(&path, &bytes).unwrap();
            if let Ok(read) = read_log(dir.path(), 0, true) {
                for t in &read.txns {
                    prop_assert_eq!(t, &txn(t.header.zxid));
                }
            }
        }
    }
}
