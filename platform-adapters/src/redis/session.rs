//! [`RedisSessionStore`]: sessions on Redis (feature `session-redis`).

use std::fmt;
use std::sync::{Arc, LazyLock};

use chrono::Utc;
use platform_core::async_trait;
use platform_core::auth::{SessionRecord, SessionStore};
use platform_core::{Error, Result};
use redis::aio::ConnectionManager;

use super::{client, manager, unavailable};

/// Sessions on Redis, shared by every node: each session is one key
/// (`<prefix>s:<id>`, the SHA-256 of its token, never the token) holding
/// its JSON record and expiring with it; each user's session ids are a set
/// (`<prefix>u:<user id>`), so "sign out everywhere" and password changes
/// end them all. Every operation is one command or one Lua script, so it
/// is atomic. Not for Redis Cluster (a script touches a session and its
/// user's set, which may sit in different slots).
#[derive(Clone)]
pub struct RedisSessionStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
}

impl fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

// KEYS: session, [user set]; ARGV: json, ttl ms, id.
const PUT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if KEYS[2] then
  redis.call('SADD', KEYS[2], ARGV[3])
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
end
return 1";

// KEYS: old session, new session, [user set]; ARGV: json, ttl ms, old id,
// new id, '1' when the old id must be in the user set.
const REPLACE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[5] == '1' and (not KEYS[3] or redis.call('SISMEMBER', KEYS[3], ARGV[3]) == 0) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
if KEYS[3] then
  redis.call('SREM', KEYS[3], ARGV[3])
  redis.call('SADD', KEYS[3], ARGV[4])
  if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[3], ARGV[2])
  end
end
return 1";

// KEYS: session; returns the removed value.
const REMOVE: &str = r"
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v";

// KEYS: user set; ARGV: session key prefix, kept id ('' for none).
const REMOVE_USER: &str = r"
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[2] then
    n = n + redis.call('DEL', ARGV[1] .. id)
    redis.call('SREM', KEYS[1], id)
  end
end
return n";

// KEYS: user set; ARGV: session key prefix. Drops ids whose session expired.
const COUNT_USER: &str = r"
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then
    n = n + 1
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return n";

// Compiled (hashed) once; `invoke` sends EVALSHA and loads on a miss.
static PUT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PUT));
static REPLACE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(REPLACE));
static REMOVE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(REMOVE));
static REMOVE_USER_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(REMOVE_USER));
static COUNT_USER_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(COUNT_USER));

fn encode(r: &SessionRecord) -> Result<String> {
    serde_json::to_string(r).map_err(|e| Error::Backend {
        backend: super::BACKEND,
        source: Box::new(e),
    })
}

fn decode(text: &str) -> Option<SessionRecord> {
    // A record that no longer decodes (written by another version) is no
    // session: the user signs in again.
    serde_json::from_str(text).ok()
}

/// Milliseconds `r` has left (`None` when it has expired).
fn ttl_ms(r: &SessionRecord) -> Option<i64> {
    let ms = r
        .expires_at
        .signed_duration_since(Utc::now())
        .num_milliseconds();
    (ms > 0).then_some(ms)
}

impl RedisSessionStore {
    /// Connects to `url` (`redis://[:password@]host:port/db`, `rediss://`
    /// for TLS), keys under `platform:sess:`; fails when the server does
    /// not answer.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_prefix(url, "platform:sess:").await
    }

    /// As [`RedisSessionStore::connect`], with keys under `prefix`.
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self> {
        Ok(Self::with_connection(manager(&client(url)?).await?, prefix))
    }

    pub(super) fn with_connection(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }

    fn session_key(&self, id: &str) -> String {
        format!("{}s:{id}", self.prefix)
    }

    fn user_key(&self, user_id: i64) -> String {
        format!("{}u:{user_id}", self.prefix)
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn put(&self, record: &SessionRecord) -> Result<()> {
        let Some(ttl) = ttl_ms(record) else {
            return self.remove(&record.id).await.map(|_| ());
        };
        let mut script = PUT_SCRIPT.prepare_invoke();
        script.key(self.session_key(&record.id));
        if let Some(uid) = record.user_id {
            script.key(self.user_key(uid));
        }
        script.arg(encode(record)?).arg(ttl).arg(&record.id);
        let mut c = self.conn.clone();
        let _: i64 = script.invoke_async(&mut c).await.map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<SessionRecord>> {
        let mut c = self.conn.clone();
        let text: Option<String> = redis::cmd("GET")
            .arg(self.session_key(id))
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(text
            .as_deref()
            .and_then(decode)
            .filter(|r| ttl_ms(r).is_some()))
    }

    async fn update(&self, record: &SessionRecord) -> Result<bool> {
        let Some(ttl) = ttl_ms(record) else {
            // Expired: it ends now rather than being brought back.
            self.remove(&record.id).await?;
            return Ok(false);
        };
        let mut c = self.conn.clone();
        let done: Option<String> = redis::cmd("SET")
            .arg(self.session_key(&record.id))
            .arg(encode(record)?)
            .arg("PX")
            .arg(ttl)
            .arg("XX")
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(done.is_some())
    }

    async fn replace(
        &self,
        old_id: &str,
        record: &SessionRecord,
        user_id: Option<i64>,
    ) -> Result<bool> {
        if user_id.is_some() && user_id != record.user_id {
            return Ok(false);
        }
        let Some(ttl) = ttl_ms(record) else {
            return Ok(false);
        };
        let mut script = REPLACE_SCRIPT.prepare_invoke();
        script
            .key(self.session_key(old_id))
            .key(self.session_key(&record.id));
        if let Some(uid) = record.user_id {
            script.key(self.user_key(uid));
        }
        script
            .arg(encode(record)?)
            .arg(ttl)
            .arg(old_id)
            .arg(&record.id)
            .arg(if user_id.is_some() { "1" } else { "0" });
        let mut c = self.conn.clone();
        let n: i64 = script.invoke_async(&mut c).await.map_err(unavailable)?;
        Ok(n == 1)
    }

    async fn remove(&self, id: &str) -> Result<Option<SessionRecord>> {
        let mut c = self.conn.clone();
        let text: Option<String> = REMOVE_SCRIPT
            .key(self.session_key(id))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        let record = text.as_deref().and_then(decode);
        if let Some(uid) = record.as_ref().and_then(|r| r.user_id) {
            let _: i64 = redis::cmd("SREM")
                .arg(self.user_key(uid))
                .arg(id)
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
        }
        Ok(record.filter(|r| ttl_ms(r).is_some()))
    }

    async fn remove_user(&self, user_id: i64, except: Option<&str>) -> Result<u64> {
        let mut c = self.conn.clone();
        let n: i64 = REMOVE_USER_SCRIPT
            .key(self.user_key(user_id))
            .arg(format!("{}s:", self.prefix))
            .arg(except.unwrap_or(""))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn count_user(&self, user_id: i64) -> Result<i64> {
        let mut c = self.conn.clone();
        COUNT_USER_SCRIPT
            .key(self.user_key(user_id))
            .arg(format!("{}s:", self.prefix))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_session_store_conforms() {
        let Some(url) = super::super::tests::url() else {
            return;
        };
        let prefix = format!("sess-{}:", platform_core::backplane::new_sender_id());
        let a = RedisSessionStore::connect_with_prefix(&url, &prefix)
            .await
            .unwrap();
        let b = RedisSessionStore::connect_with_prefix(&url, &prefix)
            .await
            .unwrap();
        platform_core::testing::sessions::run_all(&a, &b).await;
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        let err = RedisSessionStore::connect("redis://127.0.0.1:1/0")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    }
}
