//! The cache: a [`CacheStore`] back end (moka in process here; Redis in
//! `platform-adapters`) behind a [`Cache`] with `remember` and tags.
//!
//! Tags are versions: a tagged key is stored under a name that includes the
//! current version of each of its tags, and flushing a tag bumps its
//! version, so every key under the old version becomes unreachable at once
//! (and expires on its own). That works the same on any store, and the
//! write path flushes a resource's tag after every committed write.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;

mod database;
mod layered;

pub use database::DatabaseStore;
pub use layered::LayeredStore;

/// A key-value store with per-key expiry.
///
/// Contract (checked by the conformance suite): `get` after `put` returns
/// the value until `ttl` passes or the key is deleted; `delete` of a missing
/// key is not an error; `clear` removes every key of this store.
#[async_trait]
pub trait CacheStore: Send + Sync + fmt::Debug {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value` under `key` for `ttl`.
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<()>;
    /// Removes `key`.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Removes every key.
    async fn clear(&self) -> Result<()>;
    /// Adds `by` to the integer under `key` (0 when absent or expired) and
    /// returns the sum, atomically: two nodes counting at once both count.
    /// A new key expires `ttl` after it was created; adding to it does not
    /// move that (a fixed window, for throttles).
    async fn increment(&self, key: &str, by: i64, ttl: Duration) -> Result<i64>;
}

#[derive(Clone)]
pub(crate) struct Entry {
    bytes: Arc<[u8]>,
    ttl: Duration,
    /// A counter: updates keep the expiry of its creation.
    fixed: bool,
}

struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _updated_at: std::time::Instant,
        duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        if value.fixed {
            duration_until_expiry
        } else {
            Some(value.ttl)
        }
    }
}

/// The in-process store (moka), bounded by total bytes.
#[derive(Clone)]
pub struct MemoryStore {
    pub(crate) inner: moka::sync::Cache<String, Entry>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

impl MemoryStore {
    /// A store holding at most `max_bytes` of values.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            inner: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, v: &Entry| {
                    u32::try_from(k.len() + v.bytes.len() + 32).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntryTtl)
                .build(),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(64 * 1024 * 1024)
    }
}

#[async_trait]
impl CacheStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.get(key).map(|e| e.bytes.to_vec()))
    }
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<()> {
        self.inner.insert(
            key.to_owned(),
            Entry {
                bytes: value.into(),
                ttl,
                fixed: false,
            },
        );
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.invalidate(key);
        Ok(())
    }
    async fn clear(&self) -> Result<()> {
        self.inner.invalidate_all();
        Ok(())
    }
    async fn increment(&self, key: &str, by: i64, ttl: Duration) -> Result<i64> {
        let mut result = by;
        // `and_compute_with` runs under the entry's lock: atomic per key.
        self.inner
            .entry(key.to_owned())
            .and_compute_with(|current| {
                let old = current
                    .and_then(|e| parse_counter(&e.into_value().bytes))
                    .unwrap_or(0);
                result = old.saturating_add(by);
                moka::ops::compute::Op::Put(Entry {
                    bytes: result.to_string().into_bytes().into(),
                    ttl,
                    fixed: true,
                })
            });
        Ok(result)
    }
}

/// A counter's value as stored (decimal ASCII, as Redis keeps it).
pub fn parse_counter(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// A store that keeps nothing: every `get` misses, every write succeeds.
/// Use it to turn caching off without changing code.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullStore;

#[async_trait]
impl CacheStore for NullStore {
    async fn get(&self, _key: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    async fn put(&self, _key: &str, _value: Vec<u8>, _ttl: Duration) -> Result<()> {
        Ok(())
    }
    async fn delete(&self, _key: &str) -> Result<()> {
        Ok(())
    }
    async fn clear(&self) -> Result<()> {
        Ok(())
    }
    async fn increment(&self, _key: &str, by: i64, _ttl: Duration) -> Result<i64> {
        Ok(by)
    }
}

/// How long a tag version lives (longer than any tagged entry).
const TAG_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The cache facade: `remember`, tags, and a failing store never failing
/// the caller (errors are logged and the value is computed).
#[derive(Clone)]
pub struct Cache {
    store: Arc<dyn CacheStore>,
    prefix: Arc<str>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("store", &self.store)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Cache {
    /// A cache over `store`, with every key prefixed by `prefix`.
    pub fn new(store: Arc<dyn CacheStore>, prefix: &str) -> Self {
        Self {
            store,
            prefix: prefix.into(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn CacheStore> {
        &self.store
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The value under `key`, if any and readable as `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        match self.store.get(&self.key(key)).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cache read failed");
                None
            }
        }
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn put<T: Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        let Ok(bytes) = serde_json::to_vec(value) else {
            return;
        };
        if let Err(e) = self.store.put(&self.key(key), bytes, ttl).await {
            tracing::warn!(error = %e, "cache write failed");
        }
    }

    /// Removes `key`.
    pub async fn forget(&self, key: &str) {
        if let Err(e) = self.store.delete(&self.key(key)).await {
            tracing::warn!(error = %e, "cache delete failed");
        }
    }

    /// The cached value under `key`, or `f()`'s value, stored for `ttl`.
    /// Errors from `f` are returned and nothing is stored.
    pub async fn remember<T, F, Fut>(&self, key: &str, ttl: Duration, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        if let Some(v) = self.get(key).await {
            return Ok(v);
        }
        let v = f().await?;
        self.put(key, &v, ttl).await;
        Ok(v)
    }

    /// A view of this cache whose keys are invalidated together when any of
    /// `tags` is flushed.
    pub fn tags(&self, tags: &[&str]) -> TaggedCache {
        TaggedCache {
            cache: self.clone(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    /// Invalidates every key stored under `tag`.
    pub async fn flush_tag(&self, tag: &str) {
        self.put(&format!("tag:{tag}"), &next_version(), TAG_TTL)
            .await;
    }

    async fn tag_version(&self, tag: &str) -> u64 {
        let key = format!("tag:{tag}");
        if let Some(v) = self.get::<u64>(&key).await {
            return v;
        }
        // First use: fix a version so later flushes change it.
        let v = next_version();
        self.put(&key, &v, TAG_TTL).await;
        v
    }
}

/// A new tag version, never given before by this process (a counter) nor,
/// with overwhelming likelihood, by another one sharing the store (the
/// counter starts from a random point drawn once per process). Every write
/// flushes a tag: drawing each version from the operating system was a
/// system call per write.
fn next_version() -> u64 {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static START: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| {
        let mut b = [0u8; 8];
        crate::crypto::random_bytes(&mut b);
        u64::from_le_bytes(b)
    });
    // An odd multiplier spreads consecutive versions over the whole range.
    start.wrapping_add(
        COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

/// Keys that belong to tags (see [`Cache::tags`]).
#[derive(Debug, Clone)]
pub struct TaggedCache {
    cache: Cache,
    tags: Vec<String>,
}

impl TaggedCache {
    async fn key(&self, key: &str) -> String {
        let mut k = String::from("t");
        for tag in &self.tags {
            use std::fmt::Write;
            let _ = write!(k, ":{:x}", self.cache.tag_version(tag).await);
        }
        k.push(':');
        k.push_str(key);
        k
    }
    /// The value under `key`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let k = self.key(key).await;
        self.cache.get(&k).await
    }
    /// Stores `value` under `key`.
    pub async fn put<T: Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        let k = self.key(key).await;
        self.cache.put(&k, value, ttl).await;
    }
    /// As [`Cache::remember`], under the tags.
    pub async fn remember<T, F, Fut>(&self, key: &str, ttl: Duration, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let k = self.key(key).await;
        self.cache.remember(&k, ttl, f).await
    }
}

/// Conformance checks every [`CacheStore`] must pass.
#[cfg(any(test, feature = "testing"))]
pub mod conformance {
    use super::*;

    /// Runs every check against `store` (which should start empty).
    pub async fn run_all(store: &dyn CacheStore) {
        put_get_delete(store).await;
        expiry(store).await;
        clear(store).await;
        increment(store).await;
    }

    /// `increment` counts from 0, is atomic under concurrent callers, and
    /// keeps the window of the key's creation.
    pub async fn increment(store: &dyn CacheStore) {
        let ttl = Duration::from_millis(1500);
        assert_eq!(store.increment("conf:n", 1, ttl).await.unwrap(), 1);
        assert_eq!(store.increment("conf:n", 4, ttl).await.unwrap(), 5);
        // Fixed window: adding does not extend it.
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(store.increment("conf:n", 1, ttl).await.unwrap(), 6);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            store.increment("conf:n", 1, ttl).await.unwrap(),
            1,
            "the window ended"
        );
        // 8 callers x 25 increments at once: none lost.
        let each = |_| async {
            for _ in 0..25 {
                store
                    .increment("conf:many", 1, Duration::from_secs(60))
                    .await
                    .unwrap();
            }
        };
        futures::future::join_all((0..8).map(each)).await;
        assert_eq!(
            store
                .increment("conf:many", 0, Duration::from_secs(60))
                .await
                .unwrap(),
            200
        );
        store.delete("conf:n").await.unwrap();
        store.delete("conf:many").await.unwrap();
    }

    /// `get` after `put` sees the value; `delete` removes it; deleting a
    /// missing key is fine.
    pub async fn put_get_delete(store: &dyn CacheStore) {
        assert_eq!(store.get("conf:a").await.unwrap(), None);
        store
            .put("conf:a", b"1".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.get("conf:a").await.unwrap(), Some(b"1".to_vec()));
        store
            .put("conf:a", b"2".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.get("conf:a").await.unwrap(), Some(b"2".to_vec()));
        store.delete("conf:a").await.unwrap();
        assert_eq!(store.get("conf:a").await.unwrap(), None);
        store.delete("conf:missing").await.unwrap();
    }

    /// Entries disappear after their ttl.
    pub async fn expiry(store: &dyn CacheStore) {
        store
            .put("conf:ttl", b"x".to_vec(), Duration::from_millis(1100))
            .await
            .unwrap();
        assert!(store.get("conf:ttl").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(store.get("conf:ttl").await.unwrap(), None);
    }

    /// `clear` removes everything.
    pub async fn clear(store: &dyn CacheStore) {
        for k in ["conf:c1", "conf:c2"] {
            store
                .put(k, b"v".to_vec(), Duration::from_secs(60))
                .await
                .unwrap();
        }
        store.clear().await.unwrap();
        assert_eq!(store.get("conf:c1").await.unwrap(), None);
        assert_eq!(store.get("conf:c2").await.unwrap(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_versions_are_never_repeated() {
        let versions: std::collections::HashSet<u64> =
            (0..10_000).map(|_| next_version()).collect();
        assert_eq!(versions.len(), 10_000);
    }

    #[tokio::test]
    async fn memory_store_conforms() {
        conformance::run_all(&MemoryStore::default()).await;
    }

    #[tokio::test]
    async fn local_backplane_conforms() {
        let bp = crate::backplane::LocalBackplane::default();
        crate::testing::backplane::run_all(&bp, &bp).await;
    }

    #[tokio::test]
    async fn layered_stores_conform_and_invalidate_each_other() {
        let shared: Arc<dyn CacheStore> = Arc::new(MemoryStore::default());
        let bp: Arc<dyn crate::backplane::Backplane> =
            Arc::new(crate::backplane::LocalBackplane::default());
        let a = LayeredStore::new(
            MemoryStore::default(),
            shared.clone(),
            bp.clone(),
            Duration::from_secs(60),
        );
        conformance::run_all(&a).await;
        // Two nodes share L2 and the backplane; a write on one drops the
        // other's L1 copy.
        let b = LayeredStore::new(
            MemoryStore::default(),
            shared.clone(),
            bp.clone(),
            Duration::from_secs(60),
        );
        a.put("k", b"1".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            b.get("k").await.unwrap(),
            Some(b"1".to_vec()),
            "b reads L2 into its L1"
        );
        a.put("k", b"2".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen = b.get("k").await.unwrap().unwrap();
            if seen == b"2" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(seen, b"2".to_vec(), "b's L1 copy was dropped");
        a.delete("k").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(b.get("k").await.unwrap(), None);
        // Counters are L2's: both nodes count into one.
        a.increment("n", 2, Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            b.increment("n", 3, Duration::from_secs(60)).await.unwrap(),
            5
        );
        // When L2 fails, L1 answers alone.
        let failing = LayeredStore::new(
            MemoryStore::default(),
            Arc::new(FailingStore),
            bp,
            Duration::from_secs(60),
        );
        failing
            .put("x", b"1".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(failing.get("x").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(
            failing
                .increment("c", 1, Duration::from_secs(60))
                .await
                .unwrap(),
            1
        );
    }

    /// A shared store whose server is down.
    #[derive(Debug)]
    struct FailingStore;

    #[async_trait]
    impl CacheStore for FailingStore {
        async fn get(&self, _key: &str) -> Result<Option<Vec<u8>>> {
            Err(crate::Error::Unsupported("down".into()))
        }
        async fn put(&self, _key: &str, _value: Vec<u8>, _ttl: Duration) -> Result<()> {
            Err(crate::Error::Unsupported("down".into()))
        }
        async fn delete(&self, _key: &str) -> Result<()> {
            Err(crate::Error::Unsupported("down".into()))
        }
        async fn clear(&self) -> Result<()> {
            Err(crate::Error::Unsupported("down".into()))
        }
        async fn increment(&self, _key: &str, _by: i64, _ttl: Duration) -> Result<i64> {
            Err(crate::Error::Unsupported("down".into()))
        }
    }

    #[tokio::test]
    async fn null_store_keeps_nothing() {
        let s = NullStore;
        s.put("k", b"v".to_vec(), Duration::from_secs(9))
            .await
            .unwrap();
        assert_eq!(s.get("k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn remember_and_tags() {
        let cache = Cache::new(Arc::new(MemoryStore::default()), "t:");
        let mut calls = 0;
        for _ in 0..3 {
            let v: i64 = cache
                .tags(&["invoices"])
                .remember("count", Duration::from_secs(60), || {
                    calls += 1;
                    async { Ok(42) }
                })
                .await
                .unwrap();
            assert_eq!(v, 42);
        }
        assert_eq!(calls, 1);
        cache.flush_tag("invoices").await;
        assert_eq!(cache.tags(&["invoices"]).get::<i64>("count").await, None);
        // Other tags are untouched.
        cache
            .tags(&["customers"])
            .put("n", &7_i64, Duration::from_secs(60))
            .await;
        cache.flush_tag("invoices").await;
        assert_eq!(cache.tags(&["customers"]).get::<i64>("n").await, Some(7));
        // Errors from the producer are returned and nothing is cached.
        let r: Result<i64> = cache
            .remember("e", Duration::from_secs(60), || async {
                Err(crate::Error::Unsupported("x".into()))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(cache.get::<i64>("e").await, None);
    }
}
