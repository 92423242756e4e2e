//! Four-letter words on the client port (`ruok`, `srvr`, `stat`, `conf`,
//! `cons`, `crst`, `srst`, `mntr`, `wchs`, `wchc`, `wchp`, `dump`, `envi`,
//! `dirs`, `isro`), in Apache's output format, behind
//! `4lw.commands.whitelist`.

use std::path::Path;

use crate::config::ServerConfig;
use crate::stats::{Needs, Report};

/// The version this server reports (Apache's API level it implements).
pub(crate) const VERSION: &str =
    concat!("3.9.2-zk-rs-", env!("CARGO_PKG_VERSION"), ", built on 01/01/2026 00:00 GMT");

/// Every command this server knows.
pub(crate) const COMMANDS: &[&str] = &[
    "ruok", "srvr", "stat", "conf", "cons", "crst", "srst", "mntr", "wchs", "wchc", "wchp", "dump", "envi",
    "dirs", "isro",
];

/// What `cmd` needs from the core; `None` when it needs nothing of it
/// (`ruok`, `conf`, `envi`, `dirs` are answered without asking
/// the core).
pub(crate) fn needs(cmd: &str) -> Option<Needs> {
    let base = Needs::default();
    match cmd {
        "ruok" | "conf" | "envi" | "dirs" => None,
        "stat" | "cons" => Some(Needs { connections: true, ..base }),
        "wchs" => Some(Needs { watch_summary: true, ..base }),
        "wchc" | "wchp" => Some(Needs { watch_lists: true, ..base }),
        "dump" => Some(Needs { session_lists: true, ..base }),
        _ => Some(base),
    }
}

/// The text answer to `cmd`; `None` when `cmd` is not a four-letter word.
pub(crate) fn answer(cmd: &str, cfg: &ServerConfig, s: &Report, client_port: u16) -> Option<String> {
    if !COMMANDS.contains(&cmd) {
        return None;
    }
    if !cfg.four_letter_word_enabled(cmd) {
        return Some(format!("{cmd} is not executed because it is not in the whitelist.\n"));
    }
    let avg = if s.stats.latency_count == 0 {
        0.0
    } else {
        s.stats.latency_total as f64 / s.stats.latency_count as f64
    };
    let srvr_body = format!(
        "Latency min/avg/max: {}/{avg:.4}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: {:#x}\nMode: {}\nNode count: {}\n",
        s.stats.latency_min,
        s.stats.latency_max,
        s.stats.packets_received,
        s.stats.packets_sent,
        s.connection_count,
        s.outstanding,
        s.zxid,
        s.mode,
        s.node_count
    );
    let serving = s.serving;
    let not_serving = "This ZooKeeper instance is not currently serving requests\n".to_string();
    Some(match cmd {
        "ruok" => "imok".to_string(),
        // Apache's: "ro" in read-only mode, "null" while not serving.
        "isro" if s.mode == "read-only" => "ro".to_string(),
        "isro" if !serving => "null".to_string(),
        "isro" => "rw".to_string(),
        "srvr" | "stat" if !serving => not_serving,
        "srvr" => format!("Zookeeper version: {VERSION}\n{srvr_body}"),
        "stat" => {
            let mut out = format!("Zookeeper version: {VERSION}\nClients:\n");
            for c in &s.connections {
                out.push_str(&format!(
                    " /{}[1](queued={},recved={},sent={})\n",
                    c.peer.map_or("unknown".to_string(), |p| p.to_string()),
                    c.stats.outstanding,
                    c.stats.received,
                    c.stats.sent
                ));
            }
            out.push('\n');
            out.push_str(&srvr_body);
            out
        }
        "conf" => format!(
            "clientPort={client_port}\nsecureClientPort={}\ndataDir={}\ndataDirSize={}\ndataLogDir={}\ndataLogSize={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nclientPortListenBacklog=-1\nserverId={}\n",
            cfg.secure_client_port.map_or(-1, i32::from),
            cfg.data_dir.join("version-2").display(),
            dir_size(&cfg.data_dir),
            cfg.data_log_dir.join("version-2").display(),
            dir_size(&cfg.data_log_dir),
            cfg.tick_time.as_millis(),
            cfg.max_client_cnxns,
            cfg.min_session().as_millis(),
            cfg.max_session().as_millis(),
            cfg.server_id
        ),
        "cons" => {
            let mut out = String::new();
            for c in &s.connections {
                out.push_str(&format!(
                    " /{}[1](queued={},recved={},sent={},sid={:#x},lop={},lzxid={:#x})\n",
                    c.peer.map_or("unknown".to_string(), |p| p.to_string()),
                    c.stats.outstanding,
                    c.stats.received,
                    c.stats.sent,
                    c.session,
                    if c.stats.last_op.is_empty() { "NA" } else { &c.stats.last_op },
                    c.stats.last_zxid
                ));
            }
            out.push('\n');
            out
        }
        "crst" => "Connection stats reset.\n".to_string(),
        "srst" => "Server stats reset.\n".to_string(),
        "mntr" => {
            let lines = [
                ("zk_version", VERSION.to_string()),
                ("zk_server_state", s.mode.to_string()),
                ("zk_avg_latency", format!("{avg:.4}")),
                ("zk_max_latency", s.stats.latency_max.to_string()),
                ("zk_min_latency", s.stats.latency_min.to_string()),
                ("zk_packets_received", s.stats.packets_received.to_string()),
                ("zk_packets_sent", s.stats.packets_sent.to_string()),
                ("zk_num_alive_connections", s.connection_count.to_string()),
                ("zk_outstanding_requests", s.outstanding.to_string()),
                ("zk_znode_count", s.node_count.to_string()),
                ("zk_watch_count", s.watch_count.to_string()),
                ("zk_ephemerals_count", s.ephemerals.to_string()),
                ("zk_approximate_data_size", s.approximate_data_size.to_string()),
                ("zk_open_file_descriptor_count", open_fds().to_string()),
                ("zk_max_file_descriptor_count", max_fds().to_string()),
                ("zk_global_sessions", s.sessions.to_string()),
                ("zk_local_sessions", "0".to_string()),
            ];
            let mut out: String = lines.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect();
            if let Some((learners, synced)) = s.learners {
                out.push_str(&format!(
                    "zk_learners\t{learners}\nzk_synced_followers\t{synced}\nzk_synced_non_voting_followers\t0\nzk_pending_syncs\t0\n"
                ));
            }
            let peer_state = match s.mode {
                "leader" => "leading - broadcast",
                "follower" => "following - broadcast",
                "observer" => "observing - broadcast",
                "looking" | "read-only" => "looking",
                _ => "",
            };
            if !peer_state.is_empty() {
                out.push_str(&format!("zk_peer_state\t{peer_state}\n"));
            }
            out
        }
        "wchs" => format!(
            "{} connections watching {} paths\nTotal watches:{}\n",
            s.watching_connections, s.watched_paths, s.data_watch_count
        ),
        "wchc" => {
            let mut out = String::new();
            for (conn, paths) in &s.watches_by_conn {
                out.push_str(&format!("{:#x}\n", s.session_of(*conn)));
                for p in paths {
                    out.push_str(&format!("\t{p}\n"));
                }
            }
            out
        }
        "wchp" => {
            let mut out = String::new();
            for (path, conns) in &s.watches_by_path {
                out.push_str(&format!("{path}\n"));
                for c in conns {
                    out.push_str(&format!("\t{:#x}\n", s.session_of(*c)));
                }
            }
            out
        }
        "dump" => {
            let mut out = format!("SessionTracker dump:\nGlobal Sessions({}):\n", s.session_timeouts.len());
            for (id, to) in &s.session_timeouts {
                out.push_str(&format!("{id:#x}\t{to}ms\n"));
            }
            out.push_str(&format!(
                "ephemeral nodes dump:\nSessions with Ephemerals ({}):\n",
                s.ephemerals_by_session.len()
            ));
            for (id, paths) in &s.ephemerals_by_session {
                out.push_str(&format!("{id:#x}:\n"));
                for p in paths {
                    out.push_str(&format!("\t{p}\n"));
                }
            }
            out
        }
        "envi" => format!(
            "Environment:\nzookeeper.version={VERSION}\nhost.name={}\nos.name={}\nos.arch={}\nuser.dir={}\nimplementation=zk-rs\n",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default()
        ),
        "dirs" => format!(
            "datadir_size: {}\nlogdir_size: {}\n",
            dir_size(&cfg.data_dir),
            dir_size(&cfg.data_log_dir)
        ),
        _ => return None,
    })
}

pub(crate) fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("version-2"))
        .map(|it| it.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

pub(crate) fn max_fds() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max open files"))
                .and_then(|x| x.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelist_and_formats() {
        let cfg = ServerConfig::new("/tmp/x");
        let s = Report { mode: "standalone", serving: true, zxid: 0x10, node_count: 4, ..Report::default() };
        assert_eq!(
            answer("ruok", &cfg, &s, 1).unwrap(),
            "ruok is not executed because it is not in the whitelist.\n"
        );
        let srvr = answer("srvr", &cfg, &s, 1).unwrap();
        assert!(
            srvr.contains("Mode: standalone\n")
                && srvr.contains("Zxid: 0x10\n")
                && srvr.contains("Node count: 4\n")
        );
        assert_eq!(answer("nope", &cfg, &s, 1), None);
        let mut all = cfg.clone();
        all.four_letter_words = vec!["*".into()];
        assert_eq!(answer("ruok", &all, &s, 1).unwrap(), "imok");
        assert!(answer("mntr", &all, &s, 1).unwrap().contains("zk_znode_count\t4\n"));
    }
}
