//! Redis back ends (feature `cache-redis`): [`RedisStore`], a
//! [`CacheStore`] shared by every node; [`RedisBackplane`], the
//! [`Backplane`] over Redis pub/sub; and [`RedisScaleOut`], which puts both
//! under a platform: L1 in process, L2 on Redis, invalidated across nodes.
//! With the feature `session-redis`, `RedisSessionStore` keeps the
//! sessions there too. With the feature `broadcast-redis`,
//! `RedisBroadcastBackplane` shares `platform-broadcast`'s channels and
//! presence between nodes.
//!
//! ```no_run
//! # async fn f() -> platform_core::Result<()> {
//! use platform_adapters::redis::RedisScaleOut;
//!
//! let builder = platform_core::Platform::builder();
//! let builder = RedisScaleOut::connect("redis://127.0.0.1:6379/0").await?.apply(builder);
//! let platform = builder.build().await?;
//! # Ok(()) }
//! ```
//!
//! Failures map to [`Error::Unavailable`] (the server cannot be reached;
//! the connection is re-made on the next call) or [`Error::Backend`].
//! Connections time out after 2 s and commands after 1 s, so a hung server
//! slows a request by at most that before the cache falls back to L1.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use platform_core::async_trait;
use platform_core::backplane::{Backplane, BackplaneMessage, Fanout};
use platform_core::cache::{CacheStore, LayeredStore, MemoryStore};
use platform_core::platform::PlatformBuilder;
use platform_core::{Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[cfg(feature = "broadcast-redis")]
mod broadcast;
#[cfg(feature = "broadcast-redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "broadcast-redis")))]
pub use broadcast::RedisBroadcastBackplane;
#[cfg(feature = "session-redis")]
mod session;
#[cfg(feature = "session-redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "session-redis")))]
pub use session::RedisSessionStore;

const BACKEND: &str = "redis";

fn unavailable(e: redis::RedisError) -> Error {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        Error::Unavailable {
            backend: BACKEND,
            source: Box::new(e),
        }
    } else {
        Error::Backend {
            backend: BACKEND,
            source: Box::new(e),
        }
    }
}

fn client(url: &str) -> Result<redis::Client> {
    redis::Client::open(url).map_err(|e| {
        Error::Configuration(format!(
            "the Redis URL {} is not valid: {e}",
            platform_core::platform::redact_url(url)
        ))
    })
}

async fn manager(client: &redis::Client) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(unavailable)
}

/// A [`CacheStore`] on Redis: every key under a prefix (`platform:` by
/// default), `clear` removing only those.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Adds to a counter and starts its window when the key is new (a key
/// with no expiry gets one).
const INCREMENT: &str = r"
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v";

impl RedisStore {
    /// Connects to `url` (`redis://[:password@]host:port/db`, `rediss://`
    /// for TLS); fails when the server does not answer.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_prefix(url, "platform:").await
    }

    /// As [`RedisStore::connect`], with every key under `prefix` (several
    /// applications on one Redis database).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self> {
        let conn = manager(&client(url)?).await?;
        Ok(Self {
            conn,
            prefix: prefix.into(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl CacheStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut c = self.conn.clone();
        redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut c)
            .await
            .map_err(unavailable)
    }
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<()> {
        let mut c = self.conn.clone();
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }
    async fn delete(&self, key: &str) -> Result<()> {
        let mut c = self.conn.clone();
        redis::cmd("DEL")
            .arg(self.key(key))
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }
    async fn clear(&self) -> Result<()> {
        // SCAN in steps (never KEYS, which blocks the server), deleting
        // each batch of this prefix's keys.
        let mut c = self.conn.clone();
        let pattern = format!("{}*", redis_glob_escape(&self.prefix));
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
            if !keys.is_empty() {
                redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(unavailable)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
    async fn increment(&self, key: &str, by: i64, ttl: Duration) -> Result<i64> {
        let mut c = self.conn.clone();
        redis::Script::new(INCREMENT)
            .key(self.key(key))
            .arg(by)
            .arg(millis(ttl))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)
    }
}

/// `s` with Redis glob characters escaped.
fn redis_glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// A [`Backplane`] over Redis pub/sub: channels are `<prefix><channel>`
/// (`platform:bp:cache`). One subscriber connection per backplane,
/// re-made with backoff (100 ms doubling to 2 s) when it drops; after a
/// reconnection subscribers get [`BackplaneMessage::Reconnected`].
pub struct RedisBackplane {
    conn: ConnectionManager,
    prefix: Arc<str>,
    fanout: Fanout,
    listener: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBackplane {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl RedisBackplane {
    /// Connects to `url`, with channels under `platform:bp:`; fails when the
    /// server does not answer. Must be called inside a Tokio runtime.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_prefix(url, "platform:bp:").await
    }

    /// As [`RedisBackplane::connect`], with channels under `prefix`.
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self> {
        let client = client(url)?;
        let conn = manager(&client).await?;
        let fanout = Fanout::default();
        let prefix: Arc<str> = prefix.into();
        // The first subscription is made before returning, so that nothing
        // published after `connect` is missed.
        let first = subscribe(&client, &prefix).await?;
        let listener = tokio::spawn(listen(client, prefix.clone(), fanout.clone(), first));
        Ok(Self {
            conn,
            prefix,
            fanout,
            listener,
        })
    }
}

async fn subscribe(client: &redis::Client, prefix: &str) -> Result<redis::aio::PubSub> {
    let mut pubsub = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
        .await
        .map_err(|_| Error::Unavailable {
            backend: BACKEND,
            source: "connecting timed out".into(),
        })?
        .map_err(unavailable)?;
    pubsub
        .psubscribe(format!("{}*", redis_glob_escape(prefix)))
        .await
        .map_err(unavailable)?;
    Ok(pubsub)
}

async fn listen(
    client: redis::Client,
    prefix: Arc<str>,
    fanout: Fanout,
    first: redis::aio::PubSub,
) {
    use futures::StreamExt;
    let mut pubsub = Some(first);
    let mut delay = Duration::from_millis(100);
    loop {
        let current = match pubsub.take() {
            Some(p) => p,
            None => match subscribe(&client, &prefix).await {
                Ok(p) => {
                    tracing::warn!("the Redis backplane is connected again");
                    fanout.send(BackplaneMessage::Reconnected);
                    delay = Duration::from_millis(100);
                    p
                }
                Err(e) => {
                    tracing::debug!(error = %e, "the Redis backplane cannot reconnect yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        let mut messages = current.into_on_message();
        while let Some(msg) = messages.next().await {
            let Some(channel) = msg.get_channel_name().strip_prefix(&*prefix) else {
                continue;
            };
            fanout.send(BackplaneMessage::Message {
                channel: channel.to_owned(),
                payload: msg.get_payload_bytes().to_vec(),
            });
        }
        tracing::warn!("the Redis backplane lost its connection; reconnecting");
    }
}

#[async_trait]
impl Backplane for RedisBackplane {
    async fn publish(&self, channel: &str, payload: &[u8]) -> Result<()> {
        let mut c = self.conn.clone();
        redis::cmd("PUBLISH")
            .arg(format!("{}{channel}", self.prefix))
            .arg(payload)
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<BackplaneMessage> {
        self.fanout.subscribe()
    }
    fn is_shared(&self) -> bool {
        true
    }
}

/// Several nodes on one Redis: the platform's cache as L1 (moka, in
/// process) over L2 (Redis), invalidated across nodes over Redis pub/sub,
/// and the same backplane for permission changes.
#[derive(Debug, Clone)]
pub struct RedisScaleOut {
    store: Arc<LayeredStore>,
    backplane: Arc<RedisBackplane>,
    #[cfg(feature = "session-redis")]
    sessions: Arc<RedisSessionStore>,
    #[cfg(feature = "broadcast-redis")]
    broadcast: (redis::Client, Arc<str>),
}

impl RedisScaleOut {
    /// How long L1 keeps a value at most (a bound on staleness should an
    /// invalidation be lost while Redis is unreachable).
    pub const L1_TTL: Duration = Duration::from_secs(60);

    /// Connects the store and the backplane to `url` (keys under
    /// `platform:`, channels under `platform:bp:`).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_prefix(url, "platform:").await
    }

    /// As [`RedisScaleOut::connect`], with keys under `prefix` and channels
    /// under `<prefix>bp:` (several applications on one Redis database).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self> {
        let l2 = Arc::new(RedisStore::connect_with_prefix(url, &format!("{prefix}c:")).await?);
        #[cfg(feature = "session-redis")]
        let sessions = Arc::new(RedisSessionStore::with_connection(
            l2.conn.clone(),
            &format!("{prefix}sess:"),
        ));
        let backplane =
            Arc::new(RedisBackplane::connect_with_prefix(url, &format!("{prefix}bp:")).await?);
        let store = Arc::new(LayeredStore::new(
            MemoryStore::default(),
            l2,
            backplane.clone(),
            Self::L1_TTL,
        ));
        Ok(Self {
            store,
            backplane,
            #[cfg(feature = "session-redis")]
            sessions,
            #[cfg(feature = "broadcast-redis")]
            broadcast: (client(url)?, format!("{prefix}bc:").into()),
        })
    }

    /// The layered store.
    pub fn store(&self) -> &Arc<LayeredStore> {
        &self.store
    }

    /// The backplane.
    pub fn backplane(&self) -> &Arc<RedisBackplane> {
        &self.backplane
    }

    /// The session store on the same server (keys under `<prefix>sess:`),
    /// for [`PlatformBuilder::session_store`]; [`RedisScaleOut::apply`]
    /// does not set it, since sessions in the main database are shared by
    /// the nodes already.
    #[cfg(feature = "session-redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "session-redis")))]
    pub fn sessions(&self) -> &Arc<RedisSessionStore> {
        &self.sessions
    }

    /// A broadcasting back plane on the same server (keys under
    /// `<prefix>bc:`), for `BroadcastConfig::backplane`; each call
    /// connects a new one (one node), so call it once per process.
    /// [`RedisScaleOut::apply`] does not set it: broadcasting is a
    /// capability of its own.
    #[cfg(feature = "broadcast-redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "broadcast-redis")))]
    pub async fn broadcast_backplane(&self) -> Result<RedisBroadcastBackplane> {
        RedisBroadcastBackplane::with_client(self.broadcast.0.clone(), &self.broadcast.1).await
    }

    /// `builder` with this cache store and backplane.
    pub fn apply(&self, builder: PlatformBuilder) -> PlatformBuilder {
        builder
            .cache_store(self.store.clone())
            .backplane(self.backplane.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn url() -> Option<String> {
        match std::env::var("PLATFORM_TEST_REDIS_URL") {
            Ok(u) if !u.trim().is_empty() => Some(u),
            _ => {
                assert!(
                    std::env::var("CI").map_or(true, |v| v != "true"),
                    "PLATFORM_TEST_REDIS_URL must be set under CI=true"
                );
                eprintln!("skipping: PLATFORM_TEST_REDIS_URL is not set");
                None
            }
        }
    }

    fn unique(prefix: &str) -> String {
        format!("{prefix}{}:", platform_core::backplane::new_sender_id())
    }

    #[tokio::test]
    async fn the_store_conforms() {
        let Some(url) = url() else { return };
        let store = RedisStore::connect_with_prefix(&url, &unique("conf-"))
            .await
            .unwrap();
        platform_core::testing::cache::run_all(&store).await;
    }

    #[tokio::test]
    async fn the_backplane_conforms() {
        let Some(url) = url() else { return };
        let prefix = unique("bp-");
        let a = RedisBackplane::connect_with_prefix(&url, &prefix)
            .await
            .unwrap();
        let b = RedisBackplane::connect_with_prefix(&url, &prefix)
            .await
            .unwrap();
        platform_core::testing::backplane::run_all(&a, &b).await;
    }

    #[tokio::test]
    async fn clear_removes_only_its_prefix() {
        let Some(url) = url() else { return };
        let mine = RedisStore::connect_with_prefix(&url, &unique("mine*["))
            .await
            .unwrap();
        let other = RedisStore::connect_with_prefix(&url, &unique("other-"))
            .await
            .unwrap();
        let ttl = Duration::from_secs(60);
        mine.put("a", b"1".to_vec(), ttl).await.unwrap();
        other.put("a", b"2".to_vec(), ttl).await.unwrap();
        mine.clear().await.unwrap();
        assert_eq!(mine.get("a").await.unwrap(), None);
        assert_eq!(other.get("a").await.unwrap(), Some(b"2".to_vec()));
        other.clear().await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        // A port nothing listens on.
        let err = RedisStore::connect("redis://127.0.0.1:1/0")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        let err = RedisStore::connect("http://nope").await.unwrap_err();
        assert!(matches!(err, Error::Configuration(_)), "{err:?}");
    }
}
