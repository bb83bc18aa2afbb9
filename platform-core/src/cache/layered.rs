//! [`LayeredStore`]: a fast store in process (L1) in front of a shared one
//! (L2: Redis, or the database), kept true across nodes by the
//! [`Backplane`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast::error::RecvError;

use super::{CacheStore, MemoryStore};
use crate::backplane::{Backplane, BackplaneMessage, new_sender_id, tagged, untag};
use crate::error::Result;

/// The backplane channel of cache invalidations.
pub(crate) const CHANNEL: &str = "cache";

/// L1 in process over a shared L2.
///
/// - `get` answers from L1, else from L2 (and keeps the value in L1 for at
///   most `l1_ttl`);
/// - `put`, `delete` and `clear` go to both, then tell the other nodes to
///   drop their L1 copy, so a write on one node is seen by every node as
///   soon as the message arrives (a few milliseconds on Redis pub/sub);
/// - `increment` is L2's (atomic across nodes).
///
/// When L2 fails, the store keeps answering from L1 alone and logs one
/// warning per outage (values then live only in this process); when the
/// backplane reconnects, L1 is emptied, since invalidations may have been
/// missed.
#[derive(Clone)]
pub struct LayeredStore {
    l1: MemoryStore,
    l2: Arc<dyn CacheStore>,
    backplane: Arc<dyn Backplane>,
    l1_ttl: Duration,
    degraded: Arc<AtomicBool>,
    /// This store's id on the backplane (one per node).
    sender: Arc<str>,
}

impl fmt::Debug for LayeredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayeredStore")
            .field("l1", &self.l1)
            .field("l2", &self.l2)
            .field("backplane", &self.backplane)
            .field("l1_ttl", &self.l1_ttl)
            .finish()
    }
}

impl LayeredStore {
    /// `l1` in front of `l2`, invalidated over `backplane`; L1 keeps a
    /// value at most `l1_ttl` (a bound on staleness should a message be
    /// lost). Starts the task that applies other nodes' invalidations, so
    /// it must be called inside a Tokio runtime.
    pub fn new(
        l1: MemoryStore,
        l2: Arc<dyn CacheStore>,
        backplane: Arc<dyn Backplane>,
        l1_ttl: Duration,
    ) -> Self {
        let store = Self {
            l1,
            l2,
            backplane,
            l1_ttl,
            degraded: Arc::new(AtomicBool::new(false)),
            sender: new_sender_id().into(),
        };
        tokio::spawn(apply_invalidations(
            store.l1.clone(),
            store.sender.clone(),
            store.backplane.subscribe(),
        ));
        store
    }

    /// The shared store.
    pub fn shared(&self) -> &Arc<dyn CacheStore> {
        &self.l2
    }

    fn l2_failed(&self, op: &str, e: &crate::Error) {
        if !self.degraded.swap(true, Ordering::SeqCst) {
            tracing::warn!(error = %e, op, "the shared cache failed; answering from this process's cache until it is back");
        }
    }

    fn l2_ok(&self) {
        if self.degraded.swap(false, Ordering::SeqCst) {
            tracing::warn!("the shared cache is back");
        }
    }

    async fn tell_others(&self, body: &[u8]) {
        if let Err(e) = self
            .backplane
            .publish(CHANNEL, &tagged(&self.sender, body))
            .await
        {
            tracing::warn!(error = %e, "could not send a cache invalidation to the other nodes");
        }
    }
}

/// Drops L1 entries other nodes changed.
async fn apply_invalidations(
    l1: MemoryStore,
    me: Arc<str>,
    mut rx: tokio::sync::broadcast::Receiver<BackplaneMessage>,
) {
    loop {
        match rx.recv().await {
            Ok(BackplaneMessage::Message { channel, payload }) if channel == CHANNEL => {
                let Some((sender, body)) = untag(&payload) else {
                    continue;
                };
                if sender == &*me {
                    continue;
                }
                if let Some(key) = body.strip_prefix(b"k:") {
                    if let Ok(key) = std::str::from_utf8(key) {
                        l1.inner.invalidate(key);
                    }
                } else if body == b"c" {
                    l1.inner.invalidate_all();
                }
            }
            Ok(BackplaneMessage::Reconnected) | Err(RecvError::Lagged(_)) => {
                l1.inner.invalidate_all();
            }
            Ok(BackplaneMessage::Message { .. }) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

fn key_message(key: &str) -> Vec<u8> {
    let mut m = b"k:".to_vec();
    m.extend_from_slice(key.as_bytes());
    m
}

#[async_trait]
impl CacheStore for LayeredStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.l1.get(key).await? {
            return Ok(Some(v));
        }
        match self.l2.get(key).await {
            Ok(Some(v)) => {
                self.l2_ok();
                self.l1.put(key, v.clone(), self.l1_ttl).await?;
                Ok(Some(v))
            }
            Ok(None) => {
                self.l2_ok();
                Ok(None)
            }
            Err(e) => {
                self.l2_failed("get", &e);
                Ok(None)
            }
        }
    }
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<()> {
        self.l1
            .put(key, value.clone(), ttl.min(self.l1_ttl))
            .await?;
        match self.l2.put(key, value, ttl).await {
            Ok(()) => self.l2_ok(),
            Err(e) => self.l2_failed("put", &e),
        }
        self.tell_others(&key_message(key)).await;
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.l1.delete(key).await?;
        match self.l2.delete(key).await {
            Ok(()) => self.l2_ok(),
            Err(e) => self.l2_failed("delete", &e),
        }
        self.tell_others(&key_message(key)).await;
        Ok(())
    }
    async fn clear(&self) -> Result<()> {
        self.l1.clear().await?;
        let r = self.l2.clear().await;
        self.tell_others(b"c").await;
        r
    }
    async fn increment(&self, key: &str, by: i64, ttl: Duration) -> Result<i64> {
        match self.l2.increment(key, by, ttl).await {
            Ok(n) => {
                self.l2_ok();
                Ok(n)
            }
            Err(e) => {
                // Counting in this process only is better than not at all.
                self.l2_failed("increment", &e);
                self.l1.increment(key, by, ttl).await
            }
        }
    }
}
