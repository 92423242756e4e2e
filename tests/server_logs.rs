//! The server's logs as an operator gets them from the `zk-server`
//! binary: no colour codes when stdout is not a terminal, JSON lines with
//! `log.format=json`, the level from `log.level` (overridden by
//! `RUST_LOG`), and a bad setting refused at start-up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::within;
use zk_test_support::container::ruok;

struct Running {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `lines` added to a minimal zoo.cfg and `env`
/// (RUST_LOG, ZK_LOG_FORMAT and NO_COLOR removed first); waits for `ruok`.
async fn start(lines: &str, env: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let port = zk_test_support::free_port();
    let cfg = dir.path().join("zoo.cfg");
    let data = dir.path().join("data");
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=ruok\n{lines}",
            data.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("out.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(zk_test_support::ours::zk_server_binary());
    cmd.arg(&cfg)
        .env_remove("RUST_LOG")
        .env_remove("ZK_LOG_FORMAT")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let r = Running { child, log, _dir: dir };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    within(30, "the server answers ruok", async {
        while !ruok(addr).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    r
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn text_logs_to_a_file_carry_no_colour_codes() {
    let r = start("", &[]).await;
    let log = read(&r.log);
    assert!(log.contains(" INFO ") && log.contains("serving"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file:\n{log:?}");
}

#[tokio::test]
async fn json_logs_are_one_object_a_line() {
    let r = start("log.format=json\n", &[]).await;
    let log = read(&r.log);
    let mut messages = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
        messages.push(v["fields"]["message"].as_str().unwrap_or_default().to_string());
    }
    assert!(messages.iter().any(|m| m == "serving"), "{messages:?}");
    // The environment overrides the file.
    let r = start("log.format=json\n", &[("ZK_LOG_FORMAT", "text")]).await;
    assert!(!read(&r.log).trim_start().starts_with('{'), "{}", read(&r.log));
}

#[tokio::test]
async fn the_level_comes_from_zoo_cfg_unless_rust_log_says() {
    let r = start("log.level=warn\n", &[]).await;
    let log = read(&r.log);
    assert!(!log.contains("INFO"), "INFO lines at log.level=warn:\n{log}");
    let r = start("log.level=warn\n", &[("RUST_LOG", "info")]).await;
    assert!(read(&r.log).contains("serving"));
}

#[test]
fn a_bad_log_setting_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    for (line, says) in [("log.format=xml", "log.format"), ("log.level=[[[", "log.level")] {
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(&cfg, format!("dataDir={}\nclientPort=0\n{line}\n", dir.path().display())).unwrap();
        let out = Command::new(zk_test_support::ours::zk_server_binary())
            .arg(&cfg)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{line}: {err}");
        assert!(err.contains(says), "{line}: {err}");
    }
}
