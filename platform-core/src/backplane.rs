//! The backplane: short messages between the processes (nodes) of one
//! deployment, so that a write on one node drops the cached copies of the
//! others (cache keys, permission grants).
//!
//! [`LocalBackplane`] (the default) reaches this process only: one node
//! needs nothing more. `platform-adapters` has a Redis one (`cache-redis`)
//! over Redis pub/sub. Delivery is best effort, as pub/sub is: a node that
//! was disconnected gets [`BackplaneMessage::Reconnected`] when it is back
//! and must then drop everything it caches, because it may have missed
//! messages meanwhile.

use std::fmt;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::error::Result;

/// What subscribers receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackplaneMessage {
    /// A message published on `channel` (by any node, this one included).
    Message {
        /// The channel (`cache`, `access`).
        channel: String,
        /// The payload.
        payload: Vec<u8>,
    },
    /// The connection to the other nodes was lost and is back: messages
    /// may have been missed, so drop whatever is cached.
    Reconnected,
}

/// Messages between nodes.
///
/// Contract (checked by [`crate::testing::backplane`]): a message published
/// on a channel reaches every subscriber of every node, this node's
/// included, in the order it was published by one node; `subscribe` sees
/// what is published after it was called.
#[async_trait]
pub trait Backplane: Send + Sync + fmt::Debug {
    /// Sends `payload` on `channel` to every node.
    async fn publish(&self, channel: &str, payload: &[u8]) -> Result<()>;
    /// Every message from now on, on every channel.
    fn subscribe(&self) -> broadcast::Receiver<BackplaneMessage>;
    /// Whether messages reach other processes (false for
    /// [`LocalBackplane`]: then changes made by other processes must be
    /// found by polling).
    fn is_shared(&self) -> bool;
}

/// The in-process backplane.
#[derive(Clone, Debug, Default)]
pub struct LocalBackplane {
    fanout: Fanout,
}

#[async_trait]
impl Backplane for LocalBackplane {
    async fn publish(&self, channel: &str, payload: &[u8]) -> Result<()> {
        self.fanout.send(BackplaneMessage::Message {
            channel: channel.to_owned(),
            payload: payload.to_vec(),
        });
        Ok(())
    }
    fn subscribe(&self) -> broadcast::Receiver<BackplaneMessage> {
        self.fanout.subscribe()
    }
    fn is_shared(&self) -> bool {
        false
    }
}

/// A new random id for a sender (a cache, the access service), put in
/// front of what it publishes so that it can skip its own messages.
pub fn new_sender_id() -> String {
    let mut b = [0u8; 8];
    crate::crypto::random_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Splits a payload made by [`tagged`] into the sender's id and the rest.
pub fn untag(payload: &[u8]) -> Option<(&str, &[u8])> {
    let at = payload.iter().position(|b| *b == b'|')?;
    let sender = std::str::from_utf8(&payload[..at]).ok()?;
    Some((sender, &payload[at + 1..]))
}

/// `body` with `sender`'s id in front (see [`untag`]).
pub fn tagged(sender: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sender.len() + 1 + body.len());
    out.extend_from_slice(sender.as_bytes());
    out.push(b'|');
    out.extend_from_slice(body);
    out
}

/// Fans messages out to local subscribers, one channel of the
/// `tokio::sync::broadcast` kind for all; back ends use it to hand on what
/// they receive.
#[derive(Debug, Clone)]
pub struct Fanout {
    tx: broadcast::Sender<BackplaneMessage>,
}

impl Default for Fanout {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(4096).0,
        }
    }
}

impl Fanout {
    /// Hands `message` to every local subscriber (none is not an error).
    pub fn send(&self, message: BackplaneMessage) {
        let _ = self.tx.send(message);
    }
    /// A new local subscriber.
    pub fn subscribe(&self) -> broadcast::Receiver<BackplaneMessage> {
        self.tx.subscribe()
    }
}
