//! The channels of the core that need no outside service: the database
//! (the panel's bell), broadcast, log and memory.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::message::{BroadcastMessage, Content, Format, RenderedMessage};
use super::{NotificationChannel, Recipient, unreachable};
use crate::error::{Error, Result};
use crate::notification::Notifications;

/// The bell of the panel: writes the existing database notifications.
#[derive(Debug, Clone)]
pub struct DatabaseChannel {
    notifications: Notifications,
}

impl DatabaseChannel {
    /// Writes through `notifications` ([`crate::Platform::notifications`]).
    pub fn new(notifications: Notifications) -> Self {
        Self { notifications }
    }
}

#[async_trait]
impl NotificationChannel for DatabaseChannel {
    fn name(&self) -> &str {
        "database"
    }
    fn format(&self) -> Format {
        Format::Database
    }
    fn can_reach(&self, to: &Recipient) -> bool {
        to.user_id.is_some()
    }
    async fn send(&self, to: &Recipient, message: &RenderedMessage) -> Result<()> {
        let Content::Database(notice) = &message.content else {
            return Err(message.wrong_format(self.name(), Format::Database));
        };
        let Some(user_id) = to.user_id else {
            return Err(unreachable(self.name(), to, "user account"));
        };
        self.notifications.send(user_id, notice.clone()).await?;
        Ok(())
    }
}

/// Where the broadcast channel hands its events: filled by the
/// broadcasting capability (or a host) with
/// [`BroadcastChannel::with_hook`], or as a service of type [`Broadcaster`].
#[async_trait]
pub trait BroadcastHook: Send + Sync + fmt::Debug + 'static {
    /// Publishes `message` on the private channel of user `user_id`
    /// (`private-user.{id}`).
    async fn broadcast(&self, user_id: i64, message: &BroadcastMessage) -> Result<()>;
}

/// A [`BroadcastHook`] as a service (`platform.get::<Broadcaster>()`): a
/// broadcasting capability adds one, and the notifications capability
/// hands it to its broadcast channel.
#[derive(Debug, Clone)]
pub struct Broadcaster(pub Arc<dyn BroadcastHook>);

/// Real-time events to users, through a [`BroadcastHook`]. Without one
/// every delivery fails with a configuration error that says so.
#[derive(Debug, Clone, Default)]
pub struct BroadcastChannel {
    hook: Arc<std::sync::OnceLock<Arc<dyn BroadcastHook>>>,
}

impl BroadcastChannel {
    /// A channel without a hook yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// A channel that publishes through `hook`.
    pub fn with_hook(hook: Arc<dyn BroadcastHook>) -> Self {
        let c = Self::new();
        c.install(hook);
        c
    }
    /// Installs `hook` if none is installed yet; `false` when one was.
    pub fn install(&self, hook: Arc<dyn BroadcastHook>) -> bool {
        self.hook.set(hook).is_ok()
    }
    /// Whether a hook is installed.
    pub fn is_configured(&self) -> bool {
        self.hook.get().is_some()
    }
}

#[async_trait]
impl NotificationChannel for BroadcastChannel {
    fn name(&self) -> &str {
        "broadcast"
    }
    fn format(&self) -> Format {
        Format::Broadcast
    }
    fn can_reach(&self, to: &Recipient) -> bool {
        to.user_id.is_some()
    }
    async fn send(&self, to: &Recipient, message: &RenderedMessage) -> Result<()> {
        let Content::Broadcast(event) = &message.content else {
            return Err(message.wrong_format(self.name(), Format::Broadcast));
        };
        let Some(user_id) = to.user_id else {
            return Err(unreachable(self.name(), to, "user account"));
        };
        let Some(hook) = self.hook.get() else {
            return Err(Error::Configuration(
                "the broadcast channel is not configured: add a broadcasting capability \
                 (or a `Broadcaster` service) to deliver real-time notifications"
                    .into(),
            ));
        };
        hook.broadcast(user_id, event).await
    }
}

/// Logs each notification (its name, recipient and id at `info`, the
/// content at `debug`) and delivers nothing: for development, and as a
/// stand-in for a channel not set up yet.
#[derive(Debug, Clone)]
pub struct LogChannel {
    name: String,
    format: Format,
}

impl Default for LogChannel {
    fn default() -> Self {
        Self::new()
    }
}

impl LogChannel {
    /// The channel `log`, rendering [`Notification::to_data`](super::Notification::to_data).
    pub fn new() -> Self {
        Self::named("log", Format::Data)
    }
    /// A log channel standing in for the channel `name` of `format`.
    pub fn named(name: impl Into<String>, format: Format) -> Self {
        Self {
            name: name.into(),
            format,
        }
    }
}

#[async_trait]
impl NotificationChannel for LogChannel {
    fn name(&self) -> &str {
        &self.name
    }
    fn format(&self) -> Format {
        self.format
    }
    async fn send(&self, to: &Recipient, message: &RenderedMessage) -> Result<()> {
        if message.content.format() != self.format {
            return Err(message.wrong_format(&self.name, self.format));
        }
        tracing::info!(
            channel = %self.name,
            notification = %message.notification,
            id = %message.id,
            recipient = %to.label(),
            "notification not delivered (LogChannel)"
        );
        tracing::debug!(content = ?message.content, "notification content");
        Ok(())
    }
}

/// Keeps every message it is given, for tests.
#[derive(Debug, Clone)]
pub struct MemoryChannel {
    name: String,
    format: Format,
    sent: Arc<Mutex<Vec<(Recipient, RenderedMessage)>>>,
}

impl MemoryChannel {
    /// A channel called `name` that asks for `format`.
    pub fn new(name: impl Into<String>, format: Format) -> Self {
        Self {
            name: name.into(),
            format,
            sent: Arc::default(),
        }
    }
    /// Every message accepted so far, oldest first (a clone of the
    /// channel shares them).
    pub fn sent(&self) -> Vec<(Recipient, RenderedMessage)> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
    /// Forgets every message.
    pub fn clear(&self) {
        if let Ok(mut s) = self.sent.lock() {
            s.clear();
        }
    }
}

#[async_trait]
impl NotificationChannel for MemoryChannel {
    fn name(&self) -> &str {
        &self.name
    }
    fn format(&self) -> Format {
        self.format
    }
    async fn send(&self, to: &Recipient, message: &RenderedMessage) -> Result<()> {
        if message.content.format() != self.format {
            return Err(message.wrong_format(&self.name, self.format));
        }
        self.sent
            .lock()
            .map_err(|_| Error::Backend {
                backend: "memory channel",
                source: "the lock is poisoned".into(),
            })?
            .push((to.clone(), message.clone()));
        Ok(())
    }
}
