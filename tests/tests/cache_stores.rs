//! The database cache store (L3) on every configured database: the
//! `CacheStore` conformance suite (values, expiry, `clear`, atomic counters
//! under concurrent callers), long keys, and two layered nodes sharing it.

use std::sync::Arc;
use std::time::Duration;

use platform_core::Platform;
use platform_core::backplane::LocalBackplane;
use platform_core::cache::{CacheStore, DatabaseStore, LayeredStore, MemoryStore};
use platform_core::resource::Registry;
use platform_tests::{all_backends, test_key};

#[tokio::test]
async fn the_database_store_conforms_on_every_database() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let p = Platform::builder()
            .ignore_env()
            .database_url(&db.url)
            .app_key(test_key())
            .registry(Registry::default())
            .background_tasks(false)
            .build()
            .await
            .unwrap();
        let store = DatabaseStore::new(p.db().clone());
        platform_core::testing::cache::run_all(&store).await;

        // Keys longer than the column are stored by their hash, distinctly.
        let long_a = "a".repeat(600);
        let long_b = format!("{}b", "a".repeat(599));
        let ttl = Duration::from_secs(60);
        store.put(&long_a, b"A".to_vec(), ttl).await.unwrap();
        store.put(&long_b, b"B".to_vec(), ttl).await.unwrap();
        assert_eq!(
            store.get(&long_a).await.unwrap(),
            Some(b"A".to_vec()),
            "{backend}"
        );
        assert_eq!(
            store.get(&long_b).await.unwrap(),
            Some(b"B".to_vec()),
            "{backend}"
        );
        // Arbitrary bytes survive.
        let bytes: Vec<u8> = (0..=255u8).collect();
        store.put("bytes", bytes.clone(), ttl).await.unwrap();
        assert_eq!(store.get("bytes").await.unwrap(), Some(bytes), "{backend}");
        // Expired rows are purged.
        store
            .put("short", b"x".to_vec(), Duration::from_millis(10))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(store.purge_expired().await.unwrap() >= 1, "{backend}");

        // Two nodes layered over it: one's write reaches the other.
        let shared: Arc<dyn CacheStore> = Arc::new(store.clone());
        let bp = Arc::new(LocalBackplane::default());
        let a = LayeredStore::new(MemoryStore::default(), shared.clone(), bp.clone(), ttl);
        let b = LayeredStore::new(MemoryStore::default(), shared, bp, ttl);
        a.put("k", b"1".to_vec(), ttl).await.unwrap();
        assert_eq!(b.get("k").await.unwrap(), Some(b"1".to_vec()), "{backend}");
        a.put("k", b"2".to_vec(), ttl).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(b.get("k").await.unwrap(), Some(b"2".to_vec()), "{backend}");
        assert_eq!(a.increment("n", 2, ttl).await.unwrap(), 2);
        assert_eq!(b.increment("n", 3, ttl).await.unwrap(), 5, "{backend}");
        p.shutdown().await;
    }
}
