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

/// How long the log thread keeps looking for the next command, after a
/// batch of at most [`SPIN_AFTER_BATCH`] commands, before it sleeps. A
/// thread put to sleep and woken on an idle virtual CPU can wait 100 µs
/// and more for it (measured here: two threads handing a message back and
/// forth after 200 µs idle took 21 µs at the median and 150 µs at p90,
/// against 9 and 9 when busy), which made one-at-a-time writes three times
/// slower than the fsync they wait on. The next write of such a client
/// comes within a round trip of the last reply. After bigger batches the
/// load keeps the thread busy anyway, and a spin would only take a core
/// from the threads making the next batch.
const LOG_SPIN: std::time::Duration = std::time::Duration::from_micros(200);

/// Batches up to this size are followed by a spin (see [`LOG_SPIN`]).
const SPIN_AFTER_BATCH: usize = 8;

/// The next command: looked for during `spin`, then waited for.
fn next_cmd(rx: &std::sync::mpsc::Receiver<LogCmd>, spin: std::time::Duration) -> Option<LogCmd> {
    if !spin.is_zero() {
        let start = std::time::Instant::now();
        loop {
            match rx.try_recv() {
                Ok(c) => return Some(c),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            if start.elapsed() >= spin {
                break;
            }
            std::hint::spin_loop();
        }
    }
    rx.recv().ok()
}

/// Runs the log stage until its command channel closes. `panic_on_path`
/// is fault injection for the fail-stop tests: the thread dies on a
/// create of that path.
pub(crate) fn run_log_thread(
    mut log: TxnLog,
    rx: std::sync::mpsc::Receiver<LogCmd>,
    events: mpsc::UnboundedSender<LogEvent>,
    panic_on_path: Option<String>,
) {
    let mut spin = std::time::Duration::ZERO;
    while let Some(first) = next_cmd(&rx, spin) {
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
        spin = if n <= SPIN_AFTER_BATCH { LOG_SPIN } else { std::time::Duration::ZERO };
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_spin_ends_when_the_channel_closes_and_takes_what_arrives() {
        let (tx, rx) = std::sync::mpsc::channel::<LogCmd>();
        tx.send(LogCmd::Roll).unwrap();
        assert!(matches!(next_cmd(&rx, LOG_SPIN), Some(LogCmd::Roll)), "a queued command at once");
        // Sent during the spin: taken by it.
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(50));
            tx.send(LogCmd::Discard).unwrap();
            tx
        });
        assert!(matches!(next_cmd(&rx, Duration::from_secs(5)), Some(LogCmd::Discard)));
        drop(sender.join().unwrap());
        // Closed: no command, and no wait for the spin to run out.
        let t = Instant::now();
        assert!(next_cmd(&rx, Duration::from_secs(5)).is_none());
        assert!(t.elapsed() < Duration::from_secs(4), "the spin outlived the channel");
    }
}
