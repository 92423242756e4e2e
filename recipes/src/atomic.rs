//! Curator's distributed atomics: a number (or bytes) in one persistent
//! node, changed by optimistic compare-and-set (read, then write at the
//! version read) retried under a retry policy, then, if configured,
//! under a mutex (Curator's `PromotedToLock`).
//!
//! Layouts: [`DistributedAtomicLong`] stores an 8-byte big-endian `i64`,
//! [`DistributedAtomicInteger`] a 4-byte big-endian `i32`, as Curator.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zk_client::Error as ZkError;

use crate::error::{Error, Result};
use crate::framework::Framework;
use crate::locks::InterProcessMutex;
use crate::retry::{RetryNTimes, RetryPolicy};

/// What an atomic operation did (Curator's `AtomicValue`): whether it
/// succeeded, the value before and after, and how hard it tried.
///
/// ```
/// use zk_recipes::atomic::{AtomicStats, AtomicValue};
/// let v = AtomicValue { succeeded: true, pre_value: 1i64, post_value: 2, stats: AtomicStats::default() };
/// assert_eq!(v.post_value - v.pre_value, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtomicValue<T> {
    /// Whether the operation took effect. When `false` the value is
    /// unchanged by it and `post_value` is meaningless.
    pub succeeded: bool,
    /// The value before (the type's zero if the node did not exist).
    pub pre_value: T,
    /// The value after.
    pub post_value: T,
    /// Tries and times.
    pub stats: AtomicStats,
}

/// How an atomic operation went (Curator's `AtomicStats`).
///
/// ```
/// let s = zk_recipes::atomic::AtomicStats::default();
/// assert_eq!(s.optimistic_tries, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AtomicStats {
    /// Optimistic compare-and-set attempts.
    pub optimistic_tries: u32,
    /// Attempts under the promoted lock.
    pub promoted_lock_tries: u32,
    /// Time spent optimistic.
    pub optimistic_time: Duration,
    /// Time spent under the promoted lock.
    pub promoted_time: Duration,
}

/// Curator's `PromotedToLock`: when optimistic tries run out, take a mutex
/// at `lock_path` (at most `timeout`) and try again under it.
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::atomic::PromotedToLock;
/// use zk_recipes::retry::RetryNTimes;
/// let p = PromotedToLock::new("/counters/hits-lock")
///     .timeout(Duration::from_secs(5))
///     .retry_policy(RetryNTimes::new(3, Duration::from_millis(10)));
/// # let _ = p;
/// ```
#[derive(Debug, Clone)]
pub struct PromotedToLock {
    lock_path: String,
    timeout: Option<Duration>,
    retry: Arc<dyn RetryPolicy>,
}

impl PromotedToLock {
    /// Promotion to an [`InterProcessMutex`] at `lock_path`, one try under
    /// it, waiting for ever for the lock.
    pub fn new(lock_path: &str) -> Self {
        PromotedToLock {
            lock_path: lock_path.to_string(),
            timeout: None,
            retry: Arc::new(RetryNTimes::new(0, Duration::ZERO)),
        }
    }

    /// Waits at most `timeout` for the lock.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retries under the lock as `policy` allows.
    pub fn retry_policy(mut self, policy: impl RetryPolicy + 'static) -> Self {
        self.retry = Arc::new(policy);
        self
    }
}

/// A number stored big-endian in a node.
///
/// ```
/// use zk_recipes::atomic::AtomicNumber;
/// assert_eq!(7i64.to_bytes(), vec![0, 0, 0, 0, 0, 0, 0, 7]);
/// assert_eq!(<i32 as AtomicNumber>::from_bytes(&[0, 0, 1, 0]), Some(256));
/// ```
pub trait AtomicNumber: Copy + Default + Send + Sync + std::fmt::Debug + PartialEq + 'static {
    /// The encoding.
    fn to_bytes(self) -> Vec<u8>;
    /// The decoding (`None` for the wrong length).
    fn from_bytes(b: &[u8]) -> Option<Self>;
    /// Wrapping addition.
    fn wrapping_add(self, other: Self) -> Self;
    /// Wrapping negation.
    fn wrapping_neg(self) -> Self;
    /// One.
    fn one() -> Self;
}

macro_rules! number {
    ($t:ty, $n:literal) => {
        impl AtomicNumber for $t {
            fn to_bytes(self) -> Vec<u8> {
                self.to_be_bytes().to_vec()
            }
            fn from_bytes(b: &[u8]) -> Option<Self> {
                <[u8; $n]>::try_from(b).ok().map(<$t>::from_be_bytes)
            }
            fn wrapping_add(self, other: Self) -> Self {
                <$t>::wrapping_add(self, other)
            }
            fn wrapping_neg(self) -> Self {
                <$t>::wrapping_neg(self)
            }
            fn one() -> Self {
                1
            }
        }
    };
}
number!(i64, 8);
number!(i32, 4);

/// The byte-level engine (Curator's `DistributedAtomicValue`).
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::atomic::DistributedAtomicValue;
/// use zk_recipes::retry::RetryNTimes;
///
/// let v = DistributedAtomicValue::new(&fw, "/atomics/owner", RetryNTimes::new(10, Duration::from_millis(10)));
/// let r = v.compare_and_set(b"alice", b"bob").await?;
/// println!("moved from alice to bob: {}", r.succeeded);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DistributedAtomicValue {
    fw: Framework,
    path: String,
    retry: Arc<dyn RetryPolicy>,
    promoted: Option<(PromotedToLock, InterProcessMutex)>,
}

/// Bytes before and after one attempt.
struct Attempt {
    pre: Option<Vec<u8>>,
    post: Option<Vec<u8>>,
}

impl DistributedAtomicValue {
    /// An atomic value at `path`; failed optimistic tries are retried as
    /// `retry` allows (it sees `BadVersion`).
    pub fn new(fw: &Framework, path: &str, retry: impl RetryPolicy + 'static) -> Self {
        DistributedAtomicValue {
            fw: fw.clone(),
            path: path.to_string(),
            retry: Arc::new(retry),
            promoted: None,
        }
    }

    /// With promotion to a lock when optimistic tries run out.
    pub fn with_promoted_to_lock(mut self, promoted: PromotedToLock) -> Self {
        let mutex = InterProcessMutex::new(&self.fw, &promoted.lock_path);
        self.promoted = Some((promoted, mutex));
        self
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The current value (`None` when the node does not exist).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn get(&self) -> Result<Option<Vec<u8>>> {
        match self.fw.get_data(&self.path).await {
            Ok((d, _)) => Ok(Some(d.to_vec())),
            Err(Error::Zk(ZkError::NoNode)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets the value regardless of what it was (creating the node).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn force_set(&self, value: &[u8]) -> Result<()> {
        match self.fw.set_data(&self.path, value, None).await {
            Ok(_) => Ok(()),
            Err(Error::Zk(ZkError::NoNode)) => {
                match self
                    .fw
                    .create()
                    .creating_parent_containers_if_needed()
                    .for_path(&self.path, value)
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(Error::Zk(ZkError::NodeExists)) => {
                        self.fw.set_data(&self.path, value, None).await.map(drop)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Creates the node with `value` if it does not exist; whether it did
    /// not.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn initialize(&self, value: &[u8]) -> Result<bool> {
        match self.fw.create().creating_parent_containers_if_needed().for_path(&self.path, value).await {
            Ok(_) => Ok(true),
            Err(Error::Zk(ZkError::NodeExists)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets `new` only if the value is `expected` (one attempt, no
    /// retries: a concurrent change makes it fail).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn compare_and_set(&self, expected: &[u8], new: &[u8]) -> Result<AtomicValue<Option<Vec<u8>>>> {
        let (pre, version) = match self.fw.get_data(&self.path).await {
            Ok((d, s)) => (Some(d.to_vec()), Some(s.version)),
            Err(Error::Zk(ZkError::NoNode)) => (None, None),
            Err(e) => return Err(e),
        };
        let mut out = AtomicValue {
            succeeded: false,
            pre_value: pre.clone(),
            post_value: pre.clone(),
            stats: AtomicStats::default(),
        };
        if let (Some(cur), Some(v)) = (&pre, version) {
            if cur.as_slice() == expected {
                match self.fw.set_data(&self.path, new, Some(v)).await {
                    Ok(_) => {
                        out.succeeded = true;
                        out.post_value = Some(new.to_vec());
                    }
                    Err(Error::Zk(ZkError::BadVersion | ZkError::NoNode)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// Sets `value` (optimistic, retried, then promoted).
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn try_set(&self, value: &[u8]) -> Result<AtomicValue<Option<Vec<u8>>>> {
        let v = value.to_vec();
        self.apply(move |_| Ok(v.clone())).await
    }

    /// Reads, computes with `make` and writes at the version read, until
    /// it succeeds or tries run out.
    async fn apply<F>(&self, make: F) -> Result<AtomicValue<Option<Vec<u8>>>>
    where
        F: Fn(Option<&[u8]>) -> Result<Vec<u8>> + Send + Sync,
    {
        let mut stats = AtomicStats::default();
        let started = Instant::now();
        let mut retries = 0u32;
        let mut last = loop {
            stats.optimistic_tries += 1;
            let (ok, last) = self.try_once(&make).await?;
            if ok {
                stats.optimistic_time = started.elapsed();
                return Ok(AtomicValue {
                    succeeded: true,
                    pre_value: last.pre,
                    post_value: last.post,
                    stats,
                });
            }
            match self.retry.allow_retry(retries, started.elapsed(), &ZkError::BadVersion) {
                Some(sleep) => {
                    tokio::time::sleep(sleep).await;
                    retries += 1;
                }
                None => break last,
            }
        };
        stats.optimistic_time = started.elapsed();
        if let Some((p, mutex)) = &self.promoted {
            let started = Instant::now();
            let got = match p.timeout {
                None => mutex.acquire().await.map(|()| true)?,
                Some(t) => mutex.try_acquire(t).await?,
            };
            if got {
                let mut retries = 0u32;
                let r = async {
                    loop {
                        stats.promoted_lock_tries += 1;
                        let (ok, a) = self.try_once(&make).await?;
                        last = a;
                        if ok {
                            return Ok::<bool, Error>(true);
                        }
                        match p.retry.allow_retry(retries, started.elapsed(), &ZkError::BadVersion) {
                            Some(sleep) => {
                                tokio::time::sleep(sleep).await;
                                retries += 1;
                            }
                            None => return Ok(false),
                        }
                    }
                }
                .await;
                let released = mutex.release().await;
                stats.promoted_time = started.elapsed();
                let ok = r?;
                released?;
                if ok {
                    return Ok(AtomicValue {
                        succeeded: true,
                        pre_value: last.pre,
                        post_value: last.post,
                        stats,
                    });
                }
            } else {
                stats.promoted_time = started.elapsed();
            }
        }
        Ok(AtomicValue { succeeded: false, pre_value: last.pre.clone(), post_value: last.pre, stats })
    }

    /// One read-compute-write; whether the write took.
    async fn try_once<F>(&self, make: &F) -> Result<(bool, Attempt)>
    where
        F: Fn(Option<&[u8]>) -> Result<Vec<u8>>,
    {
        let (pre, version) = match self.fw.get_data(&self.path).await {
            Ok((d, s)) => (Some(d.to_vec()), Some(s.version)),
            Err(Error::Zk(ZkError::NoNode)) => (None, None),
            Err(e) => return Err(e),
        };
        let new = make(pre.as_deref())?;
        let r = match version {
            None => self
                .fw
                .create()
                .creating_parent_containers_if_needed()
                .for_path(&self.path, &new)
                .await
                .map(drop),
            Some(v) => self.fw.set_data(&self.path, &new, Some(v)).await.map(drop),
        };
        match r {
            Ok(()) => Ok((true, Attempt { pre, post: Some(new) })),
            Err(Error::Zk(ZkError::NodeExists | ZkError::BadVersion | ZkError::NoNode)) => {
                Ok((false, Attempt { pre, post: None }))
            }
            Err(e) => Err(e),
        }
    }
}

/// A distributed number (Curator's `DistributedAtomicLong` and
/// `DistributedAtomicInteger`, see the aliases): increments, adds and
/// compare-and-set, each optimistic with retries, then promoted to a lock
/// if so configured. A missing node counts as zero and is created.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::atomic::{DistributedAtomicLong, PromotedToLock};
/// use zk_recipes::retry::RetryNTimes;
///
/// let hits = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(10, Duration::from_millis(5)))
///     .with_promoted_to_lock(PromotedToLock::new("/counters/hits-lock").timeout(Duration::from_secs(5)));
/// let r = hits.increment().await?;
/// if r.succeeded {
///     println!("{} -> {}", r.pre_value, r.post_value);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DistributedAtomicNumber<T: AtomicNumber> {
    value: DistributedAtomicValue,
    _t: PhantomData<T>,
}

/// Curator's `DistributedAtomicLong`: an `i64`, 8 bytes big-endian.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// let n = zk_recipes::atomic::DistributedAtomicLong::new(&fw, "/n", zk_recipes::retry::RetryNTimes::new(5, Duration::ZERO));
/// n.add(10).await?;
/// # Ok(()) }
/// ```
pub type DistributedAtomicLong = DistributedAtomicNumber<i64>;
/// Curator's `DistributedAtomicInteger`: an `i32`, 4 bytes big-endian.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// let n = zk_recipes::atomic::DistributedAtomicInteger::new(&fw, "/i", zk_recipes::retry::RetryNTimes::new(5, Duration::ZERO));
/// n.decrement().await?;
/// # Ok(()) }
/// ```
pub type DistributedAtomicInteger = DistributedAtomicNumber<i32>;

fn decode<T: AtomicNumber>(path: &str, b: Option<&[u8]>) -> Result<T> {
    match b {
        None => Ok(T::default()),
        Some(b) => T::from_bytes(b)
            .ok_or_else(|| Error::CorruptData(format!("{path}: {} bytes, not a number", b.len()))),
    }
}

impl<T: AtomicNumber> DistributedAtomicNumber<T> {
    /// A number at `path`; optimistic tries are retried as `retry` allows.
    pub fn new(fw: &Framework, path: &str, retry: impl RetryPolicy + 'static) -> Self {
        DistributedAtomicNumber { value: DistributedAtomicValue::new(fw, path, retry), _t: PhantomData }
    }

    /// With promotion to a lock when optimistic tries run out.
    pub fn with_promoted_to_lock(self, promoted: PromotedToLock) -> Self {
        DistributedAtomicNumber { value: self.value.with_promoted_to_lock(promoted), _t: PhantomData }
    }

    fn typed(&self, v: AtomicValue<Option<Vec<u8>>>) -> Result<AtomicValue<T>> {
        let path = self.value.path();
        let pre = decode(path, v.pre_value.as_deref())?;
        let post = if v.succeeded { decode(path, v.post_value.as_deref())? } else { pre };
        Ok(AtomicValue { succeeded: v.succeeded, pre_value: pre, post_value: post, stats: v.stats })
    }

    /// The current value (zero when the node does not exist).
    ///
    /// # Errors
    /// [`Error::CorruptData`] when the node holds something else; client
    /// errors after retries.
    pub async fn get(&self) -> Result<AtomicValue<T>> {
        let cur = decode(self.value.path(), self.value.get().await?.as_deref())?;
        Ok(AtomicValue { succeeded: true, pre_value: cur, post_value: cur, stats: AtomicStats::default() })
    }

    /// Adds `delta`.
    ///
    /// # Errors
    /// As [`DistributedAtomicNumber::get`].
    pub async fn add(&self, delta: T) -> Result<AtomicValue<T>> {
        let path = self.value.path().to_string();
        let v =
            self.value.apply(move |pre| Ok(decode::<T>(&path, pre)?.wrapping_add(delta).to_bytes())).await?;
        self.typed(v)
    }

    /// Subtracts `delta`.
    ///
    /// # Errors
    /// As [`DistributedAtomicNumber::get`].
    pub async fn subtract(&self, delta: T) -> Result<AtomicValue<T>> {
        self.add(delta.wrapping_neg()).await
    }

    /// Adds one.
    ///
    /// # Errors
    /// As [`DistributedAtomicNumber::get`].
    pub async fn increment(&self) -> Result<AtomicValue<T>> {
        self.add(T::one()).await
    }

    /// Subtracts one.
    ///
    /// # Errors
    /// As [`DistributedAtomicNumber::get`].
    pub async fn decrement(&self) -> Result<AtomicValue<T>> {
        self.add(T::one().wrapping_neg()).await
    }

    /// Sets `new` (optimistic, retried, then promoted).
    ///
    /// # Errors
    /// As [`DistributedAtomicNumber::get`].
    pub async fn try_set(&self, new: T) -> Result<AtomicValue<T>> {
        let v = self.value.try_set(&new.to_bytes()).await?;
        self.typed(v)
    }

    /// Sets `new` only if the value is `expected` (one attempt).
    ///
    /// # Errors
    /// As [`DistributedAtomicNumber::get`].
    pub async fn compare_and_set(&self, expected: T, new: T) -> Result<AtomicValue<T>> {
        let v = self.value.compare_and_set(&expected.to_bytes(), &new.to_bytes()).await?;
        self.typed(v)
    }

    /// Sets `new` whatever the value was.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn force_set(&self, new: T) -> Result<()> {
        self.value.force_set(&new.to_bytes()).await
    }

    /// Creates the node with `value` if absent; whether it was.
    ///
    /// # Errors
    /// Client errors after retries.
    pub async fn initialize(&self, value: T) -> Result<bool> {
        self.value.initialize(&value.to_bytes()).await
    }
}

/// Curator's `CachedAtomicLong`: hands out ids from blocks of
/// `cache_factor` reserved at once with one [`DistributedAtomicLong::add`],
/// so that most calls make no request. Ids are unique across processes,
/// but not in order across them.
///
/// ```no_run
/// # async fn f(fw: zk_recipes::Framework) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::atomic::{CachedAtomicLong, DistributedAtomicLong};
/// use zk_recipes::retry::RetryNTimes;
///
/// let ids = CachedAtomicLong::new(DistributedAtomicLong::new(&fw, "/ids", RetryNTimes::new(20, Duration::from_millis(5))), 100);
/// let id = ids.next().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CachedAtomicLong {
    number: DistributedAtomicLong,
    cache_factor: i64,
    block: Mutex<(i64, i64)>,
    refill: tokio::sync::Mutex<()>,
}

impl CachedAtomicLong {
    /// Reserves `cache_factor` ids at a time from `number`.
    pub fn new(number: DistributedAtomicLong, cache_factor: i64) -> Self {
        CachedAtomicLong {
            number,
            cache_factor: cache_factor.max(1),
            block: Mutex::new((0, 0)),
            refill: tokio::sync::Mutex::new(()),
        }
    }

    fn take(&self) -> Option<i64> {
        let mut b = self.block.lock().ok()?;
        if b.0 < b.1 {
            b.0 += 1;
            return Some(b.0);
        }
        None
    }

    /// The next id.
    ///
    /// # Errors
    /// [`Error::Lost`] when the block could not be reserved (tries ran
    /// out); client errors after retries.
    pub async fn next(&self) -> Result<i64> {
        if let Some(v) = self.take() {
            return Ok(v);
        }
        let _one = self.refill.lock().await;
        if let Some(v) = self.take() {
            return Ok(v);
        }
        let r = self.number.add(self.cache_factor).await?;
        if !r.succeeded {
            return Err(Error::Lost("could not reserve a block of ids"));
        }
        if let Ok(mut b) = self.block.lock() {
            *b = (r.pre_value, r.post_value);
        }
        self.take().ok_or(Error::Lost("could not reserve a block of ids"))
    }
}
