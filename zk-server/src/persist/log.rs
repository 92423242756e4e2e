//! The log stage and the snapshot writer: the pipeline's blocking I/O, each
//! on a thread of its own.
//!
//! The log thread appends txns in zxid order and fsyncs them in batches
//! (group commit: everything that arrived while the last fsync ran goes
//! into the next one), then reports the last durable zxid. A failed write
//! or fsync is reported once and ends the thread: the log is not trusted
//! after it (fsync errors are not retried, see "fsyncgate").

use std::path::Path;

use tokio::sync::mpsc;
use tracing::error;
use zk_proto::records::TxnBody;

use super::txnlog::TxnLog;
use crate::driver::LogEvent;
use crate::pipeline::{LogCmd, SnapshotJob};

/// At most this many commands go into one fsync.
const MAX_BATCH: usize = 1000;

/// Runs the log stage until its command channel closes. `panic_on_path`
/// is fault injection for the fail-stop tests: the thread dies on a
/// create of that path.
pub(crate) fn run_log_thread(
    mut log: TxnLog,
    rx: std::sync::mpsc::Receiver<LogCmd>,
    events: mpsc::UnboundedSender<LogEvent>,
    panic_on_path: Option<String>,
) {
    while let Ok(first) = rx.recv() {
        let mut last = None;
        let mut truncated = None;
        let mut next = Some(first);
        let mut n = 0;
        let mut result = Ok(());
        while let Some(cmd) = next.take() {
            result = match cmd {
                LogCmd::Append(t) => {
                    if let (Some(p), TxnBody::Create(c)) = (&panic_on_path, &t.body) {
                        if &c.path == p {
                            panic!("fault injection: the log thread dies on a create of {p}");
                        }
                    }
                    last = Some(t.header.zxid);
                    log.append(&t)
                }
                LogCmd::Roll => log.sync().and_then(|()| log.roll()),
                LogCmd::Discard => log.discard(),
                LogCmd::Truncate(z) => {
                    truncated = Some(z);
                    last = last.filter(|l| *l <= z);
                    log.truncate(z)
                }
            };
            if result.is_err() {
                break;
            }
            n += 1;
            if n < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        match result.and_then(|()| log.sync()) {
            Ok(()) => {
                if let Some(z) = truncated {
                    if events.send(LogEvent::Truncated(z)).is_err() {
                        return;
                    }
                }
                if let Some(z) = last {
                    if events.send(LogEvent::Durable(z)).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                error!(error = %e, "transaction log write or fsync failed");
                let _ = events.send(LogEvent::Failed(e.to_string()));
                return;
            }
        }
    }
}

/// Writes a snapshot job (on a blocking thread); the zxid it covers.
pub(crate) fn write_snapshot_job(
    dir: &Path,
    compression: super::compress::Compression,
    job: SnapshotJob,
) -> Result<i64, String> {
    let SnapshotJob { zxid, sessions, view } = job;
    let r = super::snapshot::write_ordered_snapshot(
        dir,
        zxid,
        &sessions,
        compression,
        view.acl_table(),
        |sink| view.walk(|path, n| sink.push(path, n.data(), n.acl_id(), &n.stat())),
    )
    .map(|_| zxid)
    .map_err(|e| e.to_string());
    drop(view);
    r
}
