//! Retry policies with Curator's formulas, an adapter for any `backoff`
//! crate policy, and the one retry loop every framework call and recipe
//! uses.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use zk_client::Error as ZkError;

/// Decides whether (and after how long) a failed operation is retried.
///
/// Only errors that a retry can fix reach a policy: ConnectionLoss,
/// OperationTimeout, SessionMoved and SessionExpired (Curator's
/// `RetryLoop.shouldRetry`).
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{ExponentialBackoffRetry, RetryPolicy};
/// let p = ExponentialBackoffRetry::new(Duration::from_millis(100), 3);
/// assert!(p.allow_retry(0, Duration::ZERO, &zk_client::Error::ConnectionLoss).is_some());
/// assert!(p.allow_retry(3, Duration::ZERO, &zk_client::Error::ConnectionLoss).is_none());
/// ```
pub trait RetryPolicy: Send + Sync + Debug {
    /// `retry_count` retries were made so far (0 before the first retry),
    /// `elapsed` since the first attempt. `Some(sleep)`: retry after
    /// sleeping; `None`: give up.
    fn allow_retry(&self, retry_count: u32, elapsed: Duration, error: &ZkError) -> Option<Duration>;
}

/// Whether `e` is one a retry can fix.
///
/// ```
/// assert!(zk_recipes::retry::is_retriable(&zk_recipes::ZkError::ConnectionLoss));
/// assert!(!zk_recipes::retry::is_retriable(&zk_recipes::ZkError::NoNode));
/// ```
pub fn is_retriable(e: &ZkError) -> bool {
    e.is_retriable()
}

/// Curator's `ExponentialBackoffRetry`: sleeps
/// `base * max(1, random(0 .. 2^(retry+1)))`, capped at `max_sleep`, at
/// most `max_retries` (capped at 29) times.
///
/// ```
/// use std::time::Duration;
/// let p = zk_recipes::retry::ExponentialBackoffRetry::new(Duration::from_millis(100), 5);
/// assert!(p.sleep_for(3) >= Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
pub struct ExponentialBackoffRetry {
    base_sleep: Duration,
    max_retries: u32,
    max_sleep: Duration,
}

impl ExponentialBackoffRetry {
    /// With no bound on one sleep.
    pub fn new(base_sleep: Duration, max_retries: u32) -> Self {
        Self::with_max_sleep(base_sleep, max_retries, Duration::from_millis(i32::MAX as u64))
    }

    /// With one sleep bounded by `max_sleep`.
    pub fn with_max_sleep(base_sleep: Duration, max_retries: u32, max_sleep: Duration) -> Self {
        ExponentialBackoffRetry { base_sleep, max_retries: max_retries.min(29), max_sleep }
    }

    /// The sleep before retry number `retry_count` (0-based).
    pub fn sleep_for(&self, retry_count: u32) -> Duration {
        let bound = 1u64 << (retry_count.min(29) + 1);
        let factor = rand::thread_rng().gen_range(0..bound).max(1);
        self.base_sleep.saturating_mul(factor as u32).min(self.max_sleep)
    }
}

impl RetryPolicy for ExponentialBackoffRetry {
    fn allow_retry(&self, retry_count: u32, _elapsed: Duration, _e: &ZkError) -> Option<Duration> {
        (retry_count < self.max_retries).then(|| self.sleep_for(retry_count))
    }
}

/// Curator's `BoundedExponentialBackoffRetry`.
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{BoundedExponentialBackoffRetry, RetryPolicy};
/// let p = BoundedExponentialBackoffRetry::new(Duration::from_millis(100), Duration::from_secs(1), 10);
/// assert!(p.allow_retry(9, Duration::ZERO, &zk_recipes::ZkError::ConnectionLoss).unwrap() <= Duration::from_secs(1));
/// ```
#[derive(Debug, Clone)]
pub struct BoundedExponentialBackoffRetry(ExponentialBackoffRetry);

impl BoundedExponentialBackoffRetry {
    /// Exponential backoff whose sleeps never exceed `max_sleep`.
    pub fn new(base_sleep: Duration, max_sleep: Duration, max_retries: u32) -> Self {
        BoundedExponentialBackoffRetry(ExponentialBackoffRetry::with_max_sleep(
            base_sleep,
            max_retries,
            max_sleep,
        ))
    }
}

impl RetryPolicy for BoundedExponentialBackoffRetry {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration, e: &ZkError) -> Option<Duration> {
        self.0.allow_retry(retry_count, elapsed, e)
    }
}

/// Curator's `RetryNTimes`: `n` retries, a fixed sleep between them.
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{RetryNTimes, RetryPolicy};
/// let p = RetryNTimes::new(2, Duration::from_millis(50));
/// assert!(p.allow_retry(1, Duration::ZERO, &zk_recipes::ZkError::ConnectionLoss).is_some());
/// assert!(p.allow_retry(2, Duration::ZERO, &zk_recipes::ZkError::ConnectionLoss).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct RetryNTimes {
    n: u32,
    sleep: Duration,
}

impl RetryNTimes {
    /// `n` retries with `sleep` between them.
    pub fn new(n: u32, sleep: Duration) -> Self {
        RetryNTimes { n, sleep }
    }
}

impl RetryPolicy for RetryNTimes {
    fn allow_retry(&self, retry_count: u32, _elapsed: Duration, _e: &ZkError) -> Option<Duration> {
        (retry_count < self.n).then_some(self.sleep)
    }
}

/// Curator's `RetryOneTime`.
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{RetryOneTime, RetryPolicy};
/// let p = RetryOneTime::new(Duration::from_millis(10));
/// assert!(p.allow_retry(1, Duration::ZERO, &zk_recipes::ZkError::ConnectionLoss).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct RetryOneTime(RetryNTimes);

impl RetryOneTime {
    /// One retry after `sleep`.
    pub fn new(sleep: Duration) -> Self {
        RetryOneTime(RetryNTimes::new(1, sleep))
    }
}

impl RetryPolicy for RetryOneTime {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration, e: &ZkError) -> Option<Duration> {
        self.0.allow_retry(retry_count, elapsed, e)
    }
}

/// Curator's `RetryUntilElapsed`: retries until `max_elapsed` passed.
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{RetryPolicy, RetryUntilElapsed};
/// let p = RetryUntilElapsed::new(Duration::from_secs(1), Duration::from_millis(100));
/// assert!(p.allow_retry(0, Duration::from_secs(2), &zk_recipes::ZkError::ConnectionLoss).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct RetryUntilElapsed {
    max_elapsed: Duration,
    sleep: Duration,
}

impl RetryUntilElapsed {
    /// Retry every `sleep` until `max_elapsed`.
    pub fn new(max_elapsed: Duration, sleep: Duration) -> Self {
        RetryUntilElapsed { max_elapsed, sleep }
    }
}

impl RetryPolicy for RetryUntilElapsed {
    fn allow_retry(&self, _retry_count: u32, elapsed: Duration, _e: &ZkError) -> Option<Duration> {
        (elapsed < self.max_elapsed).then_some(self.sleep)
    }
}

/// Curator's `RetryForever`.
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{RetryForever, RetryPolicy};
/// let p = RetryForever::new(Duration::from_millis(100));
/// assert!(p.allow_retry(1_000_000, Duration::ZERO, &zk_recipes::ZkError::ConnectionLoss).is_some());
/// ```
#[derive(Debug, Clone)]
pub struct RetryForever {
    sleep: Duration,
}

impl RetryForever {
    /// Retry every `sleep`, forever.
    pub fn new(sleep: Duration) -> Self {
        RetryForever { sleep }
    }
}

impl RetryPolicy for RetryForever {
    fn allow_retry(&self, _retry_count: u32, _elapsed: Duration, _e: &ZkError) -> Option<Duration> {
        Some(self.sleep)
    }
}

/// Curator's `SessionFailedRetryPolicy`: never retries a session
/// expiry, otherwise defers to `inner`.
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{RetryNTimes, RetryPolicy, SessionFailedRetryPolicy};
/// let p = SessionFailedRetryPolicy(RetryNTimes::new(3, Duration::ZERO));
/// assert!(p.allow_retry(0, Duration::ZERO, &zk_recipes::ZkError::SessionExpired).is_none());
/// ```
#[derive(Debug)]
pub struct SessionFailedRetryPolicy<P>(pub P);

impl<P: RetryPolicy> RetryPolicy for SessionFailedRetryPolicy<P> {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration, e: &ZkError) -> Option<Duration> {
        if *e == ZkError::SessionExpired { None } else { self.0.allow_retry(retry_count, elapsed, e) }
    }
}

/// Any `backoff::backoff::Backoff` as a retry policy: a team's existing
/// backoff settings plug in. The backoff is reset at the start of each
/// operation's retries.
///
/// ```
/// use zk_recipes::retry::{BackoffPolicy, RetryPolicy};
/// let p = BackoffPolicy::new(backoff::ExponentialBackoff::default());
/// assert!(p.allow_retry(0, std::time::Duration::ZERO, &zk_client::Error::ConnectionLoss).is_some());
/// ```
#[derive(Debug)]
pub struct BackoffPolicy<B> {
    backoff: Mutex<B>,
}

impl<B: backoff::backoff::Backoff> BackoffPolicy<B> {
    /// Wraps `backoff`.
    pub fn new(backoff: B) -> Self {
        BackoffPolicy { backoff: Mutex::new(backoff) }
    }
}

impl<B: backoff::backoff::Backoff + Send + Debug> RetryPolicy for BackoffPolicy<B> {
    fn allow_retry(&self, retry_count: u32, _elapsed: Duration, _e: &ZkError) -> Option<Duration> {
        let mut b = self.backoff.lock().ok()?;
        if retry_count == 0 {
            b.reset();
        }
        b.next_backoff()
    }
}

/// Runs `op` until it succeeds, fails with an error a retry cannot fix,
/// or `policy` gives up.
///
/// # Errors
/// The last error of `op`.
pub async fn retry_loop<T, F, Fut>(policy: &dyn RetryPolicy, mut op: F) -> Result<T, ZkError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, ZkError>>,
{
    let started = Instant::now();
    let mut count = 0u32;
    loop {
        match op(count).await {
            Ok(v) => return Ok(v),
            Err(e) if is_retriable(&e) => match policy.allow_retry(count, started.elapsed(), &e) {
                Some(sleep) => {
                    tracing::debug!(error = %e, retry = count, ?sleep, "retrying");
                    tokio::time::sleep(sleep).await;
                    count += 1;
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_follows_curators_formula() {
        let p = ExponentialBackoffRetry::new(Duration::from_millis(10), 50);
        assert_eq!(p.max_retries, 29, "capped as Curator caps it");
        for retry in 0..10 {
            let s = p.sleep_for(retry);
            assert!(s >= Duration::from_millis(10), "at least one base sleep");
            assert!(s < Duration::from_millis(10) * (1 << (retry + 1)), "below base * 2^(retry+1)");
        }
        let b =
            ExponentialBackoffRetry::with_max_sleep(Duration::from_millis(10), 5, Duration::from_millis(15));
        assert!((0..100).all(|_| b.sleep_for(4) <= Duration::from_millis(15)));
    }

    #[test]
    fn fixed_policies() {
        let e = ZkError::ConnectionLoss;
        assert_eq!(
            RetryNTimes::new(2, Duration::from_millis(5)).allow_retry(1, Duration::ZERO, &e),
            Some(Duration::from_millis(5))
        );
        assert_eq!(RetryNTimes::new(2, Duration::from_millis(5)).allow_retry(2, Duration::ZERO, &e), None);
        assert_eq!(RetryOneTime::new(Duration::ZERO).allow_retry(1, Duration::ZERO, &e), None);
        let u = RetryUntilElapsed::new(Duration::from_secs(1), Duration::from_millis(1));
        assert!(u.allow_retry(100, Duration::from_millis(999), &e).is_some());
        assert!(u.allow_retry(0, Duration::from_secs(1), &e).is_none());
        assert!(RetryForever::new(Duration::ZERO).allow_retry(u32::MAX, Duration::MAX, &e).is_some());
        let s = SessionFailedRetryPolicy(RetryForever::new(Duration::ZERO));
        assert!(s.allow_retry(0, Duration::ZERO, &ZkError::SessionExpired).is_none());
        assert!(s.allow_retry(0, Duration::ZERO, &e).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_retries_only_retriable_errors() {
        let policy = RetryNTimes::new(3, Duration::from_millis(10));
        let mut calls = 0;
        let r: Result<(), ZkError> = retry_loop(&policy, |_| {
            calls += 1;
            async { Err(ZkError::ConnectionLoss) }
        })
        .await;
        assert_eq!((r, calls), (Err(ZkError::ConnectionLoss), 4));
        let mut calls = 0;
        let r: Result<(), ZkError> = retry_loop(&policy, |_| {
            calls += 1;
            async { Err(ZkError::NoNode) }
        })
        .await;
        assert_eq!((r, calls), (Err(ZkError::NoNode), 1));
        let r = retry_loop(
            &policy,
            |n| async move { if n < 2 { Err(ZkError::OperationTimeout) } else { Ok(n) } },
        )
        .await;
        assert_eq!(r, Ok(2));
    }
}
