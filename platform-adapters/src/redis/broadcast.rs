//! [`RedisBroadcastBackplane`]: `platform-broadcast`'s events and presence
//! shared by several nodes over Redis (feature `broadcast-redis`).
//!
//! It lives here rather than in `platform-broadcast` because it reuses this
//! module's connection handling (timeouts, error mapping, reconnection with
//! backoff) and keeps the Redis client out of `platform-broadcast`'s build;
//! `platform-broadcast` is an optional dependency that only this feature
//! pulls in.
//!
//! Layout, every key under a prefix (`platform:bc:` by default):
//!
//! | key | what |
//! |---|---|
//! | `<prefix>events` | the pub/sub channel every node publishes its events to |
//! | `<prefix>node:<id>` | a node's heartbeat, expiring after the node TTL |
//! | `<prefix>nodes` | the ids of the nodes that hold presence sockets |
//! | `<prefix>nchan:<id>` | the presence channels a node has sockets in |
//! | `<prefix>ps:<channel>` | hash `<node id>\|<socket id>` → user id |
//! | `<prefix>pc:<channel>` | hash user id → sockets of that user, cluster-wide |
//! | `<prefix>pm:<channel>` | hash user id → `user_info` (JSON) |

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use platform_broadcast::backplane::{BackplaneSink, BroadcastBackplane, Envelope, Member};
use platform_core::async_trait;
use platform_core::{Error, Result};
use redis::aio::ConnectionManager;
use tokio::sync::Notify;

use super::{BACKEND, client, manager, unavailable};

/// Adds a socket: returns 1 when it is the user's first on the channel.
const JOIN: &str = r"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('SADD', KEYS[4], ARGV[4])
if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
  return 1
end
return 0
";

/// Removes a socket: returns 1 when it was the user's last on the channel.
const LEAVE: &str = r"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return 1
end
return 0
";

/// Renews this node's heartbeat: returns whether it still existed (a
/// missing one means Redis lost it, or other nodes took this one for dead).
const HEARTBEAT: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return existed
";

/// Removes the sockets of every node whose heartbeat expired: returns the
/// users gone from their channels, as `channel, user id, channel, ...`.
const REAP: &str = r"
local p = ARGV[1]
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', p .. 'node:' .. node) == 0 then
    local nchan = p .. 'nchan:' .. node
    local mine = node .. '|'
    for _, ch in ipairs(redis.call('SMEMBERS', nchan)) do
      local ps, pc, pm = p .. 'ps:' .. ch, p .. 'pc:' .. ch, p .. 'pm:' .. ch
      local flat = redis.call('HGETALL', ps)
      for i = 1, #flat, 2 do
        if string.sub(flat[i], 1, #mine) == mine then
          redis.call('HDEL', ps, flat[i])
          local uid = flat[i + 1]
          if redis.call('HINCRBY', pc, uid, -1) <= 0 then
            redis.call('HDEL', pc, uid)
            redis.call('HDEL', pm, uid)
            table.insert(out, ch)
            table.insert(out, uid)
          end
        end
      end
    end
    redis.call('DEL', nchan)
    redis.call('SREM', KEYS[1], node)
  end
end
return out
";

/// A [`BroadcastBackplane`] over Redis: several nodes share channels and
/// presence.
///
/// - Events go to every node over one pub/sub channel; the publishing node
///   hands its own straight to its sockets and skips its echo, so each node
///   delivers an event once.
/// - Presence lives in Redis hashes per channel, updated by Lua scripts
///   (atomically), counted per user across nodes: `member_added` and
///   `member_removed` go out once per user however many nodes it is
///   connected to.
/// - Each node renews a heartbeat key (every third of the node TTL, 15 s
///   by default); a node whose heartbeat expires (it died without closing
///   its sockets) has its sockets removed by the next heartbeat of any
///   other node, which publishes the `member_removed` events.
/// - While Redis is unreachable a warning is logged, events still reach
///   this node's own sockets, and [`publish`](BroadcastBackplane::publish)
///   does not fail (the other nodes miss them). When it is back the
///   subscription is made again and every node re-asserts its sockets'
///   presence (quietly: clients kept their member lists).
/// - It needs one Redis server (or a primary with replicas), not Redis
///   Cluster: the expiry script reaches keys of several channels.
///
/// ```no_run
/// # async fn f() -> platform_core::Result<()> {
/// use std::sync::Arc;
/// use platform_adapters::redis::RedisBroadcastBackplane;
/// use platform_broadcast::{BroadcastConfig, Broadcasting};
///
/// let backplane = RedisBroadcastBackplane::connect("redis://127.0.0.1:6379/0").await?;
/// let config = BroadcastConfig {
///     backplane: Arc::new(backplane),
///     ..BroadcastConfig::new("app-1", "app-key", "app-secret-0123456789")
/// };
/// let platform = platform_core::Platform::builder()
///     .with(Broadcasting::new(config))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
pub struct RedisBroadcastBackplane {
    shared: Arc<Shared>,
    node_ttl: Duration,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

struct Shared {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    node: String,
    /// This node's presence sockets: channel → socket id → member.
    local: Mutex<HashMap<String, HashMap<String, Member>>>,
    sink: OnceLock<Arc<dyn BackplaneSink>>,
    /// Set while Redis is unreachable (to warn once, and to re-assert
    /// presence quietly when it is back).
    down: AtomicBool,
    /// Wakes the heartbeat early (after a reconnection).
    wake: Notify,
    join: redis::Script,
    leave: redis::Script,
    heartbeat: redis::Script,
    reap: redis::Script,
}

impl fmt::Debug for RedisBroadcastBackplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBroadcastBackplane")
            .field("prefix", &self.shared.prefix)
            .field("node", &self.shared.node)
            .field("node_ttl", &self.node_ttl)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBroadcastBackplane {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|e| e.into_inner());
        for t in tasks.drain(..) {
            t.abort();
        }
    }
}

impl RedisBroadcastBackplane {
    /// Connects to `url`, with keys and the events channel under
    /// `platform:bc:`; fails when the server does not answer. Must be called
    /// inside a Tokio runtime.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_prefix(url, "platform:bc:").await
    }

    /// As [`RedisBroadcastBackplane::connect`], with keys under `prefix`
    /// (several applications on one Redis database).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self> {
        Self::with_client(client(url)?, prefix).await
    }

    pub(super) async fn with_client(client: redis::Client, prefix: &str) -> Result<Self> {
        let conn = manager(&client).await?;
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                conn,
                prefix: prefix.to_owned(),
                node: platform_core::backplane::new_sender_id(),
                local: Mutex::default(),
                sink: OnceLock::new(),
                down: AtomicBool::new(false),
                wake: Notify::new(),
                join: redis::Script::new(JOIN),
                leave: redis::Script::new(LEAVE),
                heartbeat: redis::Script::new(HEARTBEAT),
                reap: redis::Script::new(REAP),
            }),
            node_ttl: Duration::from_secs(15),
            tasks: Mutex::default(),
        })
    }

    /// How long a node's presence outlives its last heartbeat (default
    /// 15 s, at least 1 s); heartbeats go every third of it.
    pub fn with_node_ttl(mut self, ttl: Duration) -> Self {
        self.node_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// This node's id (random, made at connection).
    pub fn node_id(&self) -> &str {
        &self.shared.node
    }
}

fn poisoned() -> Error {
    Error::Configuration("the broadcast presence table was poisoned by a panic".into())
}

impl Shared {
    fn key(&self, what: &str, name: &str) -> String {
        format!("{}{what}:{name}", self.prefix)
    }

    fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    fn field(&self, socket_id: &str) -> String {
        format!("{}|{socket_id}", self.node)
    }

    fn went_down(&self, e: &Error) {
        if !self.down.swap(true, Ordering::SeqCst) {
            tracing::warn!(error = %e, "broadcasting: Redis is unreachable; events reach this node's sockets only until it is back");
        }
    }

    async fn join_redis(&self, channel: &str, socket_id: &str, member: &Member) -> Result<bool> {
        let info = serde_json::to_string(&member.user_info).unwrap_or_else(|_| "null".into());
        let mut c = self.conn.clone();
        let first: i64 = self
            .join
            .key(self.key("ps", channel))
            .key(self.key("pc", channel))
            .key(self.key("pm", channel))
            .key(self.key("nchan", &self.node))
            .arg(self.field(socket_id))
            .arg(&member.user_id)
            .arg(info)
            .arg(channel)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(first == 1)
    }

    async fn publish_remote(&self, envelope: &Envelope) -> Result<()> {
        let payload = serde_json::to_vec(&(&self.node, envelope))
            .map_err(|e| Error::Configuration(format!("an event could not be encoded: {e}")))?;
        let mut c = self.conn.clone();
        redis::cmd("PUBLISH")
            .arg(self.events())
            .arg(payload)
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }

    /// Renews the heartbeat and, when it had expired, re-asserts this
    /// node's sockets (announcing the users it brings back unless Redis was
    /// down: then the clients never saw them leave).
    async fn beat(&self, ttl: Duration) -> Result<()> {
        let mut c = self.conn.clone();
        let existed: i64 = self
            .heartbeat
            .key(self.key("node", &self.node))
            .key(format!("{}nodes", self.prefix))
            .arg(&self.node)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        let was_down = self.down.swap(false, Ordering::SeqCst);
        if was_down {
            tracing::warn!("broadcasting: Redis is reachable again");
        }
        if existed == 0 {
            self.reassert(!was_down).await?;
        }
        Ok(())
    }

    async fn reassert(&self, announce: bool) -> Result<()> {
        let sockets: Vec<(String, String, Member)> = {
            let local = self.local.lock().map_err(|_| poisoned())?;
            local
                .iter()
                .flat_map(|(ch, s)| s.iter().map(|(id, m)| (ch.clone(), id.clone(), m.clone())))
                .collect()
        };
        for (channel, socket, member) in sockets {
            let first = self.join_redis(&channel, &socket, &member).await?;
            if first && announce {
                self.announce(Envelope {
                    channel,
                    event: "pusher_internal:member_added".into(),
                    data: serde_json::to_string(&member).unwrap_or_default(),
                    except: None,
                    user_id: None,
                    pii_data: None,
                })
                .await;
            }
        }
        Ok(())
    }

    /// Removes the sockets of dead nodes and tells every node's clients.
    async fn reap(&self) -> Result<()> {
        let mut c = self.conn.clone();
        let gone: Vec<String> = self
            .reap
            .key(format!("{}nodes", self.prefix))
            .arg(&self.prefix)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        for pair in gone.chunks_exact(2) {
            self.announce(Envelope {
                channel: pair[0].clone(),
                event: "pusher_internal:member_removed".into(),
                data: serde_json::json!({ "user_id": pair[1] }).to_string(),
                except: None,
                user_id: None,
                pii_data: None,
            })
            .await;
        }
        Ok(())
    }

    async fn announce(&self, envelope: Envelope) {
        if let Some(sink) = self.sink.get() {
            sink.deliver(&envelope);
        }
        if let Err(e) = self.publish_remote(&envelope).await {
            self.went_down(&e);
        }
    }

    fn receive(&self, payload: &[u8]) {
        match serde_json::from_slice::<(String, Envelope)>(payload) {
            Ok((node, _)) if node == self.node => {}
            Ok((_, envelope)) => {
                if let Some(sink) = self.sink.get() {
                    sink.deliver(&envelope);
                }
            }
            Err(e) => tracing::warn!(error = %e, "broadcasting: an undecodable event on Redis"),
        }
    }
}

async fn subscribe(shared: &Shared) -> Result<redis::aio::PubSub> {
    let mut pubsub = tokio::time::timeout(Duration::from_secs(2), shared.client.get_async_pubsub())
        .await
        .map_err(|_| Error::Unavailable {
            backend: BACKEND,
            source: "connecting timed out".into(),
        })?
        .map_err(unavailable)?;
    pubsub
        .subscribe(shared.events())
        .await
        .map_err(unavailable)?;
    Ok(pubsub)
}

async fn listen(shared: Arc<Shared>, first: redis::aio::PubSub) {
    use futures::StreamExt;
    let mut pubsub = Some(first);
    let mut delay = Duration::from_millis(100);
    loop {
        let current = match pubsub.take() {
            Some(p) => p,
            None => match subscribe(&shared).await {
                Ok(p) => {
                    delay = Duration::from_millis(100);
                    shared.wake.notify_one();
                    p
                }
                Err(e) => {
                    shared.went_down(&e);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        let mut messages = current.into_on_message();
        while let Some(msg) = messages.next().await {
            shared.receive(msg.get_payload_bytes());
        }
        shared.went_down(&Error::Unavailable {
            backend: BACKEND,
            source: "the subscription connection was lost".into(),
        });
    }
}

async fn heartbeat(shared: Arc<Shared>, ttl: Duration) {
    let every = ttl / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shared.wake.notified() => {}
        }
        match shared.beat(ttl).await {
            Ok(()) => {
                if let Err(e) = shared.reap().await {
                    tracing::warn!(error = %e, "broadcasting: expired presence not removed");
                }
            }
            Err(e) => shared.went_down(&e),
        }
    }
}

#[async_trait]
impl BroadcastBackplane for RedisBroadcastBackplane {
    async fn start(&self, sink: Arc<dyn BackplaneSink>) -> Result<()> {
        self.shared
            .sink
            .set(sink)
            .map_err(|_| Error::Configuration("the Redis back plane was started twice".into()))?;
        // Subscribed and alive before returning: nothing published after
        // the platform is built is missed.
        self.shared.beat(self.node_ttl).await?;
        let first = subscribe(&self.shared).await?;
        let mut tasks = self.tasks.lock().map_err(|_| poisoned())?;
        tasks.push(tokio::spawn(listen(self.shared.clone(), first)));
        tasks.push(tokio::spawn(heartbeat(self.shared.clone(), self.node_ttl)));
        Ok(())
    }

    async fn publish(&self, envelope: Envelope) -> Result<()> {
        self.shared.announce(envelope).await;
        Ok(())
    }

    async fn join(&self, channel: &str, socket_id: &str, member: &Member) -> Result<bool> {
        self.shared
            .local
            .lock()
            .map_err(|_| poisoned())?
            .entry(channel.to_owned())
            .or_default()
            .insert(socket_id.to_owned(), member.clone());
        let first = self.shared.join_redis(channel, socket_id, member).await;
        if let Err(e) = &first {
            self.shared.went_down(e);
            self.forget(channel, socket_id)?;
        }
        first
    }

    async fn leave(&self, channel: &str, socket_id: &str, user_id: &str) -> Result<bool> {
        self.forget(channel, socket_id)?;
        let mut c = self.shared.conn.clone();
        let last: i64 = self
            .shared
            .leave
            .key(self.shared.key("ps", channel))
            .key(self.shared.key("pc", channel))
            .key(self.shared.key("pm", channel))
            .arg(self.shared.field(socket_id))
            .arg(user_id)
            .invoke_async(&mut c)
            .await
            .map_err(|e| {
                let e = unavailable(e);
                self.shared.went_down(&e);
                e
            })?;
        Ok(last == 1)
    }

    async fn members(&self, channel: &str) -> Result<Vec<Member>> {
        let mut c = self.shared.conn.clone();
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.shared.key("pm", channel))
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let mut members: Vec<Member> = all
            .into_iter()
            .map(|(user_id, info)| Member {
                user_id,
                user_info: serde_json::from_str(&info).unwrap_or(serde_json::Value::Null),
            })
            .collect();
        members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        Ok(members)
    }
}

impl RedisBroadcastBackplane {
    fn forget(&self, channel: &str, socket_id: &str) -> Result<()> {
        let mut local = self.shared.local.lock().map_err(|_| poisoned())?;
        if let Some(sockets) = local.get_mut(channel) {
            sockets.remove(socket_id);
            if sockets.is_empty() {
                local.remove(channel);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique() -> String {
        format!("bc-{}:", platform_core::backplane::new_sender_id())
    }

    fn ada() -> Member {
        Member {
            user_id: "1".into(),
            user_info: serde_json::json!({"name": "Ada"}),
        }
    }

    struct Collect(Mutex<Vec<Envelope>>);
    impl BackplaneSink for Collect {
        fn deliver(&self, envelope: &Envelope) {
            self.0.lock().unwrap().push(envelope.clone());
        }
    }

    #[tokio::test]
    async fn presence_counts_users_across_nodes() {
        let Some(url) = super::super::tests::url() else {
            return;
        };
        let prefix = unique();
        let a = RedisBroadcastBackplane::connect_with_prefix(&url, &prefix)
            .await
            .unwrap();
        let b = RedisBroadcastBackplane::connect_with_prefix(&url, &prefix)
            .await
            .unwrap();
        let (sa, sb) = (
            Arc::new(Collect(Mutex::default())),
            Arc::new(Collect(Mutex::default())),
        );
        a.start(sa.clone()).await.unwrap();
        b.start(sb.clone()).await.unwrap();
        assert!(a.join("presence-x", "1.1", &ada()).await.unwrap());
        assert!(!b.join("presence-x", "2.1", &ada()).await.unwrap());
        assert!(!a.join("presence-x", "1.1", &ada()).await.unwrap());
        assert_eq!(b.members("presence-x").await.unwrap(), vec![ada()]);
        assert!(!a.leave("presence-x", "1.1", "1").await.unwrap());
        assert!(!a.leave("presence-x", "1.1", "1").await.unwrap());
        assert!(b.leave("presence-x", "2.1", "1").await.unwrap());
        assert!(a.members("presence-x").await.unwrap().is_empty());

        let ev = Envelope {
            channel: "orders".into(),
            event: "e".into(),
            data: "{}".into(),
            except: None,
            user_id: None,
            pii_data: None,
        };
        a.publish(ev.clone()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while sb.0.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("node b got the event");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*sa.0.lock().unwrap(), vec![ev.clone()], "once on node a");
        assert_eq!(*sb.0.lock().unwrap(), vec![ev], "once on node b");
        clean(&url, &prefix).await;
    }

    async fn clean(url: &str, prefix: &str) {
        use platform_core::cache::CacheStore;
        let keys = super::super::RedisStore::connect_with_prefix(url, prefix)
            .await
            .unwrap();
        keys.clear().await.unwrap();
    }

    #[tokio::test]
    async fn the_scale_out_makes_one_under_its_prefix() {
        let Some(url) = super::super::tests::url() else {
            return;
        };
        let prefix = unique();
        let scale = super::super::RedisScaleOut::connect_with_prefix(&url, &prefix)
            .await
            .unwrap();
        let a = scale.broadcast_backplane().await.unwrap();
        let b = RedisBroadcastBackplane::connect_with_prefix(&url, &format!("{prefix}bc:"))
            .await
            .unwrap();
        assert_ne!(a.node_id(), b.node_id());
        a.start(Arc::new(Collect(Mutex::default()))).await.unwrap();
        assert!(a.join("presence-y", "1.1", &ada()).await.unwrap());
        assert_eq!(b.members("presence-y").await.unwrap(), vec![ada()]);
        assert!(a.leave("presence-y", "1.1", "1").await.unwrap());
        clean(&url, &prefix).await;
    }
}
