//! Shared pieces of the cross-crate tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

/// Awaits `f` for at most `secs` seconds, failing the test with `what`.
pub async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn trace_init() {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}
