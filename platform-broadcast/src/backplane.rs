//! [`BroadcastBackplane`]: how events and presence reach every node, and
//! [`LocalBackplane`], the in-process default.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use platform_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// One event on its way to a channel's subscribers, on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The channel (`private-invoices.42`).
    pub channel: String,
    /// The event (`invoice.paid`, `client-typing`, `pusher_internal:member_added`).
    pub event: String,
    /// The data, as the JSON string the protocol sends.
    pub data: String,
    /// A socket that must not receive it (the sender of a client event, or
    /// the `socket_id` of a publish call).
    #[serde(default)]
    pub except: Option<String>,
    /// The member who sent a client event on a presence channel.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The data as subscribers allowed to see personal data get it (a
    /// resource event's `pii` fields unmasked); `data` is what everyone
    /// else gets. Only subscriptions authorised with `view_pii` (their
    /// signed `channel_data` says so) receive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii_data: Option<String>,
}

/// A member of a presence channel: its user id and the `user_info` shown
/// to the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The user id (a string, as the protocol has it).
    pub user_id: String,
    /// What the others see (`{"name": "Ada"}`).
    pub user_info: serde_json::Value,
}

/// Where a back plane hands the events it receives: this node's sockets.
pub trait BackplaneSink: Send + Sync + 'static {
    /// Sends `envelope` to this node's subscribers of its channel. Never
    /// blocks: a subscriber whose queue is full is disconnected.
    fn deliver(&self, envelope: &Envelope);
}

/// Carries events and presence between the nodes that serve one
/// application's WebSocket connections.
///
/// Contract:
/// - [`BroadcastBackplane::publish`] reaches the [`BackplaneSink`] of every
///   node that [started](BroadcastBackplane::start), this one included,
///   at most once each; an error means no node got it.
/// - Presence is counted per user id across nodes:
///   [`join`](BroadcastBackplane::join) returns `true` only for a user's
///   first socket on the channel, [`leave`](BroadcastBackplane::leave) only
///   for its last, so `member_added` and `member_removed` go out once per
///   user, not per socket.
/// - A node that stops (or dies) must not leave members behind forever: a
///   shared back end expires the sockets of a node that stopped renewing
///   them.
///
/// The in-process default is [`LocalBackplane`]; a Redis pub/sub back end
/// (`RedisBroadcastBackplane`, feature `broadcast-redis` of
/// `platform-adapters`) shares channels and presence
/// between nodes.
#[async_trait]
pub trait BroadcastBackplane: Send + Sync + fmt::Debug + 'static {
    /// Starts delivering every node's events to `sink` (called once, when
    /// the platform is built).
    async fn start(&self, sink: Arc<dyn BackplaneSink>) -> Result<()>;
    /// Sends `envelope` to every node.
    async fn publish(&self, envelope: Envelope) -> Result<()>;
    /// Adds socket `socket_id` of `member` to presence channel `channel`;
    /// whether the user was not a member before.
    async fn join(&self, channel: &str, socket_id: &str, member: &Member) -> Result<bool>;
    /// Removes socket `socket_id` of user `user_id` from `channel`; whether
    /// it was the user's last socket there.
    async fn leave(&self, channel: &str, socket_id: &str, user_id: &str) -> Result<bool>;
    /// The members of `channel`, one per user, ordered by user id.
    async fn members(&self, channel: &str) -> Result<Vec<Member>>;
    /// Whether every socket is on this node (the in-process back plane).
    /// Then an event for channels nobody here subscribes to reaches no
    /// one, and resource events nobody listens to are not stored in the
    /// outbox. Default: `false` (a shared back end: other nodes may have
    /// subscribers).
    fn single_node(&self) -> bool {
        false
    }
}

type Presence = HashMap<String, HashMap<String, (serde_json::Value, HashSet<String>)>>;

/// The in-process back plane: one node, events handed straight to its
/// sockets, presence in memory.
#[derive(Default)]
pub struct LocalBackplane {
    sink: OnceLock<Arc<dyn BackplaneSink>>,
    presence: Mutex<Presence>,
}

impl fmt::Debug for LocalBackplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBackplane")
            .field("presence_channels", &self.presence_channels())
            .finish_non_exhaustive()
    }
}

impl LocalBackplane {
    /// An empty back plane.
    pub fn new() -> Self {
        Self::default()
    }
    /// How many presence channels have members (for leak checks).
    pub fn presence_channels(&self) -> usize {
        self.presence.lock().map_or(0, |p| p.len())
    }
}

fn poisoned() -> Error {
    Error::Configuration("the broadcast presence table was poisoned by a panic".into())
}

#[async_trait]
impl BroadcastBackplane for LocalBackplane {
    fn single_node(&self) -> bool {
        true
    }

    async fn start(&self, sink: Arc<dyn BackplaneSink>) -> Result<()> {
        self.sink
            .set(sink)
            .map_err(|_| Error::Configuration("the local back plane was started twice".into()))
    }

    async fn publish(&self, envelope: Envelope) -> Result<()> {
        if let Some(sink) = self.sink.get() {
            sink.deliver(&envelope);
        }
        Ok(())
    }

    async fn join(&self, channel: &str, socket_id: &str, member: &Member) -> Result<bool> {
        let mut p = self.presence.lock().map_err(|_| poisoned())?;
        let users = p.entry(channel.to_owned()).or_default();
        let (info, sockets) = users
            .entry(member.user_id.clone())
            .or_insert_with(|| (member.user_info.clone(), HashSet::new()));
        let first = sockets.is_empty();
        if first {
            *info = member.user_info.clone();
        }
        sockets.insert(socket_id.to_owned());
        Ok(first)
    }

    async fn leave(&self, channel: &str, socket_id: &str, user_id: &str) -> Result<bool> {
        let mut p = self.presence.lock().map_err(|_| poisoned())?;
        let Some(users) = p.get_mut(channel) else {
            return Ok(false);
        };
        let Some((_, sockets)) = users.get_mut(user_id) else {
            return Ok(false);
        };
        let removed = sockets.remove(socket_id);
        let last = removed && sockets.is_empty();
        if sockets.is_empty() {
            users.remove(user_id);
        }
        if users.is_empty() {
            p.remove(channel);
        }
        Ok(last)
    }

    async fn members(&self, channel: &str) -> Result<Vec<Member>> {
        let p = self.presence.lock().map_err(|_| poisoned())?;
        let mut members: Vec<Member> = p
            .get(channel)
            .map(|users| {
                users
                    .iter()
                    .map(|(id, (info, _))| Member {
                        user_id: id.clone(),
                        user_info: info.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        Ok(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn presence_counts_users_not_sockets() {
        let b = LocalBackplane::new();
        let ada = Member {
            user_id: "1".into(),
            user_info: serde_json::json!({"name": "Ada"}),
        };
        assert!(b.join("presence-x", "1.1", &ada).await.unwrap());
        assert!(!b.join("presence-x", "1.2", &ada).await.unwrap());
        assert_eq!(b.members("presence-x").await.unwrap().len(), 1);
        assert!(!b.leave("presence-x", "1.1", "1").await.unwrap());
        assert!(!b.leave("presence-x", "1.1", "1").await.unwrap());
        assert!(b.leave("presence-x", "1.2", "1").await.unwrap());
        assert_eq!(b.presence_channels(), 0);
    }
}
