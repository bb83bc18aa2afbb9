//! Where sessions live when they are not in the main database: the
//! [`SessionStore`] trait (Redis in `platform-adapters`, feature
//! `session-redis`; [`MemorySessionStore`] for tests and single processes)
//! and its conformance suite ([`conformance::run_all`]).
//!
//! Without a store, sessions are rows of `platform_sessions`, written in
//! the same transaction as the audit entry of the sign-in. With one, the
//! store holds them (the audit entries stay in the database) and every
//! session operation is one atomic call of the store.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One session as a store keeps it. `id` is the SHA-256 of the cookie's
/// token, never the token; `data` is the session's JSON data as text.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The SHA-256 (hex) of the token.
    pub id: String,
    /// The signed-in user (`None` while anonymous).
    pub user_id: Option<i64>,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// The session's data (JSON object, as text).
    pub data: String,
    /// The address the session started from.
    pub ip: Option<String>,
    /// The browser's user agent (at most 512 characters).
    pub user_agent: Option<String>,
    /// Whether the second factor was passed.
    pub two_factor_passed: bool,
    /// When the password was last confirmed.
    pub password_confirmed_at: Option<DateTime<Utc>>,
    /// When the session started.
    pub created_at: DateTime<Utc>,
    /// When it was last used (written at most once a minute).
    pub last_seen_at: DateTime<Utc>,
    /// When it ends unless used again: a store forgets it then.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for SessionRecord {
    // The CSRF token and the data stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("user_id", &self.user_id)
            .field("two_factor_passed", &self.two_factor_passed)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A place for sessions shared by every node (Redis, say). Each method is
/// atomic on its own; a record is gone once its `expires_at` has passed
/// (the store forgets it, or at least never returns it).
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Stores `record` under its id, replacing any record of that id.
    async fn put(&self, record: &SessionRecord) -> Result<()>;
    /// The live record of `id`.
    async fn get(&self, id: &str) -> Result<Option<SessionRecord>>;
    /// Replaces the record of `record.id` only if it still exists; whether
    /// it did (a session ended meanwhile stays ended).
    async fn update(&self, record: &SessionRecord) -> Result<bool>;
    /// Removes the record of `old_id` and stores `record` (under its new
    /// id) in one step, only if `old_id` still exists and, when `user_id`
    /// is given, belongs to that user; whether it did. There is no moment
    /// with both ids or neither.
    async fn replace(
        &self,
        old_id: &str,
        record: &SessionRecord,
        user_id: Option<i64>,
    ) -> Result<bool>;
    /// Removes the record of `id`; the removed record, if it existed.
    async fn remove(&self, id: &str) -> Result<Option<SessionRecord>>;
    /// Removes every record of `user_id` but the one with id `except`; how
    /// many it removed.
    async fn remove_user(&self, user_id: i64, except: Option<&str>) -> Result<u64>;
    /// How many live records `user_id` has.
    async fn count_user(&self, user_id: i64) -> Result<i64>;
}

/// A [`SessionStore`] in this process's memory: for tests and for a single
/// process that does not want sessions in its database. Sessions end with
/// the process.
#[derive(Default)]
pub struct MemorySessionStore {
    records: Mutex<HashMap<String, SessionRecord>>,
}

impl fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.records.lock().map(|m| m.len()).unwrap_or_default();
        f.debug_struct("MemorySessionStore")
            .field("sessions", &n)
            .finish()
    }
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionRecord>> {
        let mut m = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Utc::now();
        m.retain(|_, r| r.expires_at > now);
        m
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn put(&self, record: &SessionRecord) -> Result<()> {
        self.live().insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<SessionRecord>> {
        Ok(self.live().get(id).cloned())
    }

    async fn update(&self, record: &SessionRecord) -> Result<bool> {
        let mut m = self.live();
        match m.get_mut(&record.id) {
            Some(r) => {
                *r = record.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn replace(
        &self,
        old_id: &str,
        record: &SessionRecord,
        user_id: Option<i64>,
    ) -> Result<bool> {
        let mut m = self.live();
        match m.get(old_id) {
            Some(old) if user_id.is_none() || old.user_id == user_id => {
                m.remove(old_id);
                m.insert(record.id.clone(), record.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remove(&self, id: &str) -> Result<Option<SessionRecord>> {
        Ok(self.live().remove(id))
    }

    async fn remove_user(&self, user_id: i64, except: Option<&str>) -> Result<u64> {
        let mut m = self.live();
        let before = m.len();
        m.retain(|id, r| r.user_id != Some(user_id) || Some(id.as_str()) == except);
        Ok((before - m.len()) as u64)
    }

    async fn count_user(&self, user_id: i64) -> Result<i64> {
        Ok(self
            .live()
            .values()
            .filter(|r| r.user_id == Some(user_id))
            .count() as i64)
    }
}

/// Checks every [`SessionStore`] must pass (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod conformance {
    use std::time::Duration;

    use chrono::Utc;

    use super::{SessionRecord, SessionStore};
    use crate::crypto::random_token;

    fn record(user_id: Option<i64>, ttl: Duration) -> SessionRecord {
        let now = crate::db::truncate_micros(Utc::now());
        SessionRecord {
            id: random_token(32),
            user_id,
            csrf_token: random_token(32),
            data: r#"{"tab":"invoices","note":"ünïcødé <b>"}"#.into(),
            ip: Some("203.0.113.7".into()),
            user_agent: Some("Mozilla/5.0 (conformance)".into()),
            two_factor_passed: user_id.is_some(),
            password_confirmed_at: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now + chrono::Duration::from_std(ttl).unwrap(),
        }
    }

    /// Runs every check. `a` and `b` are two instances over the same
    /// server (two nodes); for an in-process store pass the same one
    /// twice. User ids are random, so the suite can share a server.
    pub async fn run_all(a: &dyn SessionStore, b: &dyn SessionStore) {
        let user = i64::from(rand::random::<u32>()) + 1_000_000;
        let hour = Duration::from_secs(3600);

        // put / get round trip, seen by the other node.
        let s = record(Some(user), hour);
        a.put(&s).await.expect("put");
        assert_eq!(b.get(&s.id).await.expect("get"), Some(s.clone()));
        assert_eq!(b.get("missing").await.expect("get"), None);

        // update only while it exists.
        let mut changed = s.clone();
        changed.data = r#"{"tab":"customers"}"#.into();
        changed.two_factor_passed = false;
        assert!(b.update(&changed).await.expect("update"));
        assert_eq!(a.get(&s.id).await.unwrap(), Some(changed.clone()));
        let ghost = record(Some(user), hour);
        assert!(
            !a.update(&ghost).await.unwrap(),
            "no update of a missing id"
        );
        assert_eq!(a.get(&ghost.id).await.unwrap(), None, "nor an insert");

        // replace moves the record to a new id, once.
        let mut moved = changed.clone();
        moved.id = random_token(32);
        assert!(a.replace(&s.id, &moved, Some(user)).await.unwrap());
        assert_eq!(b.get(&s.id).await.unwrap(), None, "the old id is gone");
        assert_eq!(b.get(&moved.id).await.unwrap(), Some(moved.clone()));
        let mut again = moved.clone();
        again.id = random_token(32);
        assert!(
            !b.replace(&s.id, &again, None).await.unwrap(),
            "the old id moves only once"
        );
        assert!(
            !b.replace(&moved.id, &again, Some(user + 1)).await.unwrap(),
            "not for another user"
        );
        assert_eq!(a.get(&again.id).await.unwrap(), None);

        // count, remove_user with an exception, remove.
        let second = record(Some(user), hour);
        let third = record(Some(user), hour);
        let anonymous = record(None, hour);
        for r in [&second, &third, &anonymous] {
            b.put(r).await.unwrap();
        }
        assert_eq!(a.count_user(user).await.unwrap(), 3);
        assert_eq!(
            a.remove_user(user, Some(&third.id)).await.unwrap(),
            2,
            "all but the kept one"
        );
        assert_eq!(b.count_user(user).await.unwrap(), 1);
        assert_eq!(b.get(&third.id).await.unwrap(), Some(third.clone()));
        assert_eq!(b.get(&anonymous.id).await.unwrap(), Some(anonymous.clone()));
        assert_eq!(
            a.remove(&third.id).await.unwrap().map(|r| r.user_id),
            Some(Some(user))
        );
        assert_eq!(a.remove(&third.id).await.unwrap(), None, "removed once");
        assert_eq!(b.count_user(user).await.unwrap(), 0);
        assert_eq!(a.remove(&anonymous.id).await.unwrap(), Some(anonymous));

        // An expired record is never returned nor counted.
        let short = record(Some(user), Duration::from_millis(1200));
        a.put(&short).await.unwrap();
        assert!(b.get(&short.id).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(b.get(&short.id).await.unwrap(), None, "expired");
        assert_eq!(b.count_user(user).await.unwrap(), 0, "not counted");
        let mut revived = short.clone();
        revived.expires_at = Utc::now() + chrono::Duration::hours(1);
        assert!(
            !a.update(&revived).await.unwrap(),
            "an expired session is not brought back"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_conforms() {
        let s = MemorySessionStore::new();
        conformance::run_all(&s, &s).await;
    }
}
