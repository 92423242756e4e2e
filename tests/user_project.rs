//! A user's project outside this workspace: generated into a temporary
//! dir with path dependencies on `zk-recipes` and `zk-testing` (as a user
//! would depend on the published crates), it builds and passes its own
//! integration tests: a lock keeps a counter exact between two sessions,
//! and a leader whose session is expired by `zk_testing::expire_session`
//! loses leadership to the other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

const CARGO_TOML: &str = r#"[package]
name = "user-app"
version = "0.1.0"
edition = "2024"

[dependencies]
zk-recipes = { path = "@ROOT@/recipes" }
tokio = { version = "1", features = ["full"] }

[dev-dependencies]
zk-testing = { path = "@ROOT@/zk-testing" }

[workspace]
"#;

const LIB_RS: &str = r#"//! The user's service: adds one to a counter under a lock.
use zk_recipes::{Framework, locks::InterProcessMutex};

pub async fn add_one(fw: &Framework, lock: &InterProcessMutex) -> zk_recipes::Result<u64> {
    lock.acquire().await?;
    let (data, _) = fw.get_data("/counter").await?;
    let n: u64 = String::from_utf8_lossy(&data).parse().unwrap_or(0) + 1;
    fw.set_data("/counter", n.to_string().as_bytes(), None).await?;
    lock.release().await?;
    Ok(n)
}
"#;

const TEST_RS: &str = r#"use std::time::Duration;
use zk_recipes::leader::LeaderLatch;
use zk_recipes::locks::InterProcessMutex;
use zk_recipes::retry::ExponentialBackoffRetry;
use zk_recipes::Framework;
use zk_testing::TestingServer;

async fn framework(cs: &str) -> Framework {
    let fw = Framework::builder(cs)
        .session_timeout(Duration::from_secs(10))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(50), 5))
        .build();
    fw.start().await.unwrap();
    assert!(fw.block_until_connected(Duration::from_secs(10)).await);
    fw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_keeps_the_counter_exact() {
    let server = TestingServer::start().await.unwrap();
    let a = framework(&server.connect_string()).await;
    let b = framework(&server.connect_string()).await;
    a.create().for_path("/counter", b"0").await.unwrap();
    let (la, lb) = (InterProcessMutex::new(&a, "/lock"), InterProcessMutex::new(&b, "/lock"));
    let (ra, rb) = tokio::join!(
        async { for _ in 0..20 { user_app::add_one(&a, &la).await.unwrap(); } },
        async { for _ in 0..20 { user_app::add_one(&b, &lb).await.unwrap(); } }
    );
    let _ = (ra, rb);
    assert_eq!(&a.get_data("/counter").await.unwrap().0[..], b"40");
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_leader_hands_over() {
    let server = TestingServer::start().await.unwrap();
    let a = framework(&server.connect_string()).await;
    let b = framework(&server.connect_string()).await;
    let first = LeaderLatch::new(&a, "/leader", "a");
    first.start().await.unwrap();
    assert!(first.await_leadership(Some(Duration::from_secs(10))).await);
    let second = LeaderLatch::new(&b, "/leader", "b");
    second.start().await.unwrap();
    server.expire_session(a.client().unwrap().session_id()).await.unwrap();
    assert!(second.await_leadership(Some(Duration::from_secs(20))).await, "b leads once a's session is gone");
    second.close().await;
    first.close().await;
    server.close().await;
}
"#;

#[test]
fn a_user_project_tests_its_lock_with_zk_testing() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("src")).unwrap();
    std::fs::create_dir_all(p.join("tests")).unwrap();
    std::fs::write(p.join("Cargo.toml"), CARGO_TOML.replace("@ROOT@", root)).unwrap();
    std::fs::write(p.join("src/lib.rs"), LIB_RS).unwrap();
    std::fs::write(p.join("tests/lock.rs"), TEST_RS).unwrap();
    // The workspace's lock file: the same versions, nothing to download.
    std::fs::copy(Path::new(root).join("Cargo.lock"), p.join("Cargo.lock")).unwrap();
    // Its own target dir (the outer `cargo test` holds the workspace's),
    // kept between runs under the workspace's target dir.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("user-project-target");
    let out = Command::new(env!("CARGO"))
        .args(["test", "--offline", "--quiet"])
        .current_dir(p)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the user's project failed:\n{text}");
    assert!(text.contains("test result: ok. 2 passed"), "both of the user's tests ran:\n{text}");
}
