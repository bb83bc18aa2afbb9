//! [`DatabaseStore`]: a [`CacheStore`] in the main database (L3), so that
//! `remember()` survives a restart without Redis, and several nodes share
//! it without one.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{CacheStore, parse_counter};
use crate::db::{Db, dialect};
use crate::error::Result;
use crate::value::{FieldType, Value};

/// Keys longer than this are stored by their SHA-256 (the column holds 250
/// characters).
const MAX_KEY: usize = 200;

/// The cache in the `platform_cache` table (framework migration 0007):
/// values as base64 text, expiry in Unix milliseconds. Expired rows are
/// ignored when read and deleted by [`DatabaseStore::purge_expired`]
/// (and, a batch at a time, after every 1,000th write).
#[derive(Debug, Clone)]
pub struct DatabaseStore {
    db: Db,
    writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn db_key(key: &str) -> String {
    if key.len() <= MAX_KEY {
        key.to_owned()
    } else {
        format!("sha256:{}", crate::crypto::sha256_hex(key.as_bytes()))
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn expiry(ttl: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

impl DatabaseStore {
    /// A store in `db` (the framework migrations must have run).
    pub fn new(db: Db) -> Self {
        Self {
            db,
            writes: std::sync::Arc::default(),
        }
    }

    /// Deletes expired rows; returns how many.
    pub async fn purge_expired(&self) -> Result<u64> {
        let mut q = self.db.sql();
        q.push("DELETE FROM platform_cache WHERE expires_at <= ")
            .bind_i64(now_ms());
        self.db.execute(q).await
    }

    async fn wrote(&self) {
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % 1000 == 999
            && let Err(e) = self.purge_expired().await
        {
            tracing::debug!(error = %e, "could not purge the database cache");
        }
    }
}

#[async_trait]
impl CacheStore for DatabaseStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut q = self.db.sql();
        q.push("SELECT value FROM platform_cache WHERE cache_key = ")
            .bind_str(db_key(key))
            .push(" AND expires_at > ")
            .bind_i64(now_ms());
        let row = self.db.fetch_optional(q, &[FieldType::Text]).await?;
        Ok(row
            .and_then(|r| r.into_iter().next())
            .and_then(|v| v.as_str().and_then(|s| STANDARD.decode(s).ok())))
    }
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<()> {
        let mut q = self.db.sql();
        q.push("INSERT INTO platform_cache (cache_key, value, expires_at) VALUES (")
            .bind_str(db_key(key))
            .push(", ")
            .bind_str(STANDARD.encode(value))
            .push(", ")
            .bind_i64(expiry(ttl))
            .push(")");
        dialect::push_upsert(&mut q, &["cache_key"], &["value", "expires_at"]);
        self.db.execute(q).await?;
        self.wrote().await;
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<()> {
        let mut q = self.db.sql();
        q.push("DELETE FROM platform_cache WHERE cache_key = ")
            .bind_str(db_key(key));
        self.db.execute(q).await.map(|_| ())
    }
    async fn clear(&self) -> Result<()> {
        let q = crate::db::Sql::literal(self.db.backend(), "DELETE FROM platform_cache");
        self.db.execute(q).await.map(|_| ())
    }
    async fn increment(&self, key: &str, by: i64, ttl: Duration) -> Result<i64> {
        let key = db_key(key);
        // A deadlock between two first increments of one key is possible
        // on InnoDB (both insert into the same gap); the loser retries.
        let mut attempt = 0;
        loop {
            match self.increment_once(&key, by, ttl).await {
                Err(e) if attempt < 5 && is_deadlock(&e) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 * attempt)).await;
                }
                other => return other,
            }
        }
    }
}

/// Whether `e` is a deadlock or serialization failure worth retrying.
fn is_deadlock(e: &crate::Error) -> bool {
    let text = e.to_string();
    text.contains("40001") || text.contains("40P01") || text.contains("Deadlock")
}

impl DatabaseStore {
    /// One transaction: the row is made to exist and locked by an upsert
    /// (which takes the row's write lock even when it exists, so two nodes
    /// adding at once queue instead of deadlocking; on SQLite the
    /// transaction holds the write lock from its start), then read and
    /// updated.
    async fn increment_once(&self, key: &str, by: i64, ttl: Duration) -> Result<i64> {
        let mut tx = self.db.begin().await?;
        let result: Result<i64> = async {
            let mut ins = tx.sql();
            ins.push("INSERT INTO platform_cache (cache_key, value, expires_at) VALUES (")
                .bind_str(key)
                .push(", ")
                .bind_str(STANDARD.encode("0"))
                .push(", ")
                .bind_i64(expiry(ttl))
                .push(")");
            dialect::push_upsert(&mut ins, &["cache_key"], &["cache_key"]);
            tx.execute(ins).await?;
            let mut sel = tx.sql();
            sel.push("SELECT value, expires_at FROM platform_cache WHERE cache_key = ")
                .bind_str(key);
            dialect::push_for_update(&mut sel);
            let row = tx
                .fetch_optional(sel, &[FieldType::Text, FieldType::I64])
                .await?
                .unwrap_or_default();
            let live = row
                .get(1)
                .and_then(Value::as_i64)
                .is_some_and(|e| e > now_ms());
            let old = row
                .first()
                .and_then(|v| v.as_str())
                .and_then(|s| STANDARD.decode(s).ok())
                .and_then(|b| parse_counter(&b))
                .filter(|_| live)
                .unwrap_or(0);
            let new = old.saturating_add(by);
            let mut upd = tx.sql();
            upd.push("UPDATE platform_cache SET value = ")
                .bind_str(STANDARD.encode(new.to_string()));
            if !live {
                // A new window.
                upd.push(", expires_at = ").bind_i64(expiry(ttl));
            }
            upd.push(" WHERE cache_key = ").bind_str(key);
            tx.execute(upd).await?;
            Ok(new)
        }
        .await;
        tx.finish(result).await
    }
}
