//! Outside components a test may need, and what to do when one is missing.

/// The environment variable that turns "skip loudly" into "fail".
pub const REQUIRE_ENV: &str = "ZK_REQUIRE_EXTERNAL";

/// Whether missing outside components must fail the test.
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).map(|v| v == "1" || v.eq_ignore_ascii_case("true")).unwrap_or(false)
}

/// Called when `component` is missing: prints one loud line and returns
/// (the caller then returns early, skipping the test), or panics when
/// [`required`].
///
/// # Panics
/// When `ZK_REQUIRE_EXTERNAL=1`.
pub fn missing(component: &str, why: &str) {
    let line = format!("SKIPPED: {component} is not available ({why}); install it or run .ci/run");
    if required() {
        panic!("{line} -- and {REQUIRE_ENV}=1 forbids skipping");
    }
    eprintln!("\n!!!!!! {line} !!!!!!\n");
}
