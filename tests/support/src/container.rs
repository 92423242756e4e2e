//! zk-server in Docker for this workspace's tests: `zk_testing::container`
//! (the published helper) with the image built from this work tree.
//!
//! [`ensure_image`] runs, once per process: `docker info` (when it fails,
//! [`external::missing`]: a loud skip, or a panic under
//! `ZK_REQUIRE_EXTERNAL=1`); `cargo build --release -p zk-server --bin
//! zk-server --target <host>` with `RUSTFLAGS='-C target-feature=+crt-static'`
//! (a no-op when up to date), or the binary named by `ZK_SERVER_STATIC_BIN`;
//! then `zk_testing::container::ensure_image` with that binary. The image
//! is rebuilt on every run: Docker's layer cache makes that cheap, and it
//! can never serve an old binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use zk_testing::container::{
    ADMIN_PORT, BINARY_ENV, CLIENT_PORT, DATA_DIR, DOCKERFILE, DataVolume, IMAGE, IMAGE_NAME, IMAGE_TAG,
    METRICS_PORT, ZOO_CFG, ZkContainer, ZkServerImage, docker_available, four_letter_word, ruok,
};

use crate::external;

/// The longest the static `cargo build` may take (a cold release build of
/// zk-server takes about three minutes on two cores).
const CARGO_BUILD_LIMIT: Duration = Duration::from_secs(900);

/// Why the image is not there.
enum Failure {
    /// No Docker: skip (or fail under `ZK_REQUIRE_EXTERNAL=1`).
    NoDocker(String),
    /// Docker is there but the image could not be built: always a failure.
    Build(String),
}

static BUILT: OnceLock<Result<(), Failure>> = OnceLock::new();

/// Builds the image from this work tree once per process; `Some(IMAGE)`
/// when it is there, `None` after the loud skip line of
/// [`external::missing`] when no Docker daemon is reachable. Blocking.
///
/// # Panics
/// When the static binary or the image cannot be built, and when Docker is
/// missing and `ZK_REQUIRE_EXTERNAL=1`.
pub fn ensure_image() -> Option<&'static str> {
    let built = BUILT.get_or_init(|| {
        docker_available().map_err(Failure::NoDocker)?;
        let binary = static_binary().map_err(|e| Failure::Build(format!("a static zk-server: {e}")))?;
        zk_testing::container::ensure_image(Some(&binary))
            .map(|_| ())
            .map_err(|e| Failure::Build(e.to_string()))
    });
    match built {
        Ok(()) => Some(IMAGE),
        Err(Failure::NoDocker(why)) => {
            external::missing("Docker", why);
            None
        }
        Err(Failure::Build(why)) => panic!("cannot build the {IMAGE} image: {why}"),
    }
}

/// A container of `image` (the image built first, see [`ensure_image`]);
/// `None` without Docker.
///
/// # Panics
/// When the container does not start or become ready.
pub async fn start(image: ZkServerImage) -> Option<ZkContainer> {
    tokio::task::spawn_blocking(ensure_image)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    Some(ZkContainer::start_with(image).await.unwrap_or_else(|e| panic!("{e}")))
}

/// An ensemble of `n` containers (see `zk_testing::container::start_ensemble`);
/// `None` without Docker.
///
/// # Panics
/// As [`start`].
pub async fn start_ensemble(n: usize, lines: &[&str]) -> Option<(String, Vec<ZkContainer>)> {
    tokio::task::spawn_blocking(ensure_image)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    Some(zk_testing::container::start_ensemble(n, lines).await.unwrap_or_else(|e| panic!("{e}")))
}

/// The workspace root (this crate lives in `tests/support`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `cmd`, killing it after `limit`: its output.
fn run(cmd: &mut Command, limit: Duration) -> Result<std::process::Output, String> {
    let what = format!("{:?}", cmd.get_program());
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let id = child.id();
    let started = Instant::now();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    while !waiter.is_finished() {
        if started.elapsed() > limit {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            return Err(format!("{what} did not finish within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter.join().map_err(|_| format!("waiting for {what}"))?.map_err(|e| format!("{what}: {e}"))
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Result<String, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = run(Command::new(&rustc).arg("-vV"), Duration::from_secs(30))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(|h| h.trim().to_string()))
        .ok_or_else(|| format!("`{rustc} -vV` names no host"))
}

/// Builds (or finds) the static zk-server binary.
fn static_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        return Ok(PathBuf::from(path));
    }
    let triple = host_triple()?;
    if !triple.ends_with("-linux-gnu") {
        return Err(format!(
            "a static Linux zk-server cannot be built on host {triple}; build one and set {BINARY_ENV}"
        ));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--release", "-p", "zk-server", "--bin", "zk-server", "--target", &triple])
        .args(["--message-format", "json-render-diagnostics"])
        // With --target these flags reach only the target's crates, not
        // build scripts; the output goes to target/<triple>/release.
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    let out = run(&mut cmd, CARGO_BUILD_LIMIT)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        return Err(format!(
            "the static cargo build failed:\n{}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        ));
    }
    // The path from cargo's own report, so any target-dir setting is honoured.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let exe = stdout
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .filter_map(|l| l.split("\"executable\":\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(PathBuf::from)
        .find(|p| p.file_name().is_some_and(|n| n == "zk-server"));
    exe.ok_or_else(|| "cargo reported no zk-server executable".to_string())
}
