//! Notifications over several channels (Laravel Notifications): the
//! [`Notification`] a host writes, the [`NotificationChannel`] adapter
//! trait, the [`Recipient`] it goes to and the channels core provides.
//!
//! A notification is a serde type that says which channels it goes
//! through ([`Notification::channels`]) and how it looks on each
//! ([`Notification::to_database`], [`Notification::to_mail`], ...). The
//! `platform-notify` crate sends it (queued by default, one job per
//! recipient and channel); this module holds what adapters and hosts
//! implement against:
//!
//! ```
//! use platform_core::notify::{MailMessage, Notification, Recipient};
//! use platform_core::notification::Notice;
//! use platform_core::serde::{Deserialize, Serialize};
//!
//! /// Tells a customer their invoice was paid.
//! #[derive(Serialize, Deserialize)]
//! #[serde(crate = "platform_core::serde")]
//! struct InvoicePaid {
//!     number: String,
//! }
//!
//! impl Notification for InvoicePaid {
//!     const NAME: &'static str = "invoice_paid";
//!     fn channels(&self, _to: &Recipient) -> Vec<&str> {
//!         vec!["database", "mail"]
//!     }
//!     fn to_database(&self, _to: &Recipient) -> Option<Notice> {
//!         Some(Notice::new("Invoice paid", format!("{} was paid.", self.number)))
//!     }
//!     fn to_mail(&self, to: &Recipient) -> Option<MailMessage> {
//!         Some(
//!             MailMessage::new(format!("Invoice {} paid", self.number))
//!                 .greeting(format!("Hello {},", to.display_name()))
//!                 .line(format!("Invoice {} was paid. Thank you!", self.number))
//!                 .action("View the invoice", "https://example.com/invoices/1"),
//!         )
//!     }
//! }
//! ```
//!
//! ## Channels
//!
//! | channel | name | renders | reaches |
//! |---|---|---|---|
//! | [`DatabaseChannel`] | `database` | [`Notification::to_database`] | users (the panel's bell) |
//! | [`MailChannel`] | `mail` | [`Notification::to_mail`], through a [`MailLayout`] | an e-mail address |
//! | [`BroadcastChannel`] | `broadcast` | [`Notification::to_broadcast`] | users, once a [`BroadcastHook`] is installed |
//! | [`SmsChannel`] | `sms` | [`Notification::to_sms`], through an [`SmsProvider`] | a phone number |
//! | [`LogChannel`] | `log` | [`Notification::to_data`] | anyone (logs, delivers nothing) |
//! | `SlackChannel`, `WebhookChannel` (`platform-adapters`, `channel-slack`) | `slack`, `webhook` | [`Notification::to_slack`], [`Notification::to_data`] | a configured URL |
//!
//! ## Contract of a channel (checked by `testing::notify`)
//! - [`NotificationChannel::name`] is short, lower-case and stable.
//! - [`NotificationChannel::send`] delivers a message of its
//!   [`NotificationChannel::format`] to a recipient it
//!   [can reach](NotificationChannel::can_reach); a message of another
//!   format, or a recipient it cannot reach, is an
//!   [`Error::Validation`] (never a panic, never a retry).
//! - A server that cannot be reached or times out is
//!   [`Error::Unavailable`], one that fails is [`Error::Backend`]: both
//!   are retried by the queue. A refusal that retrying cannot fix (a
//!   forbidden address, a missing configuration) is
//!   [`Error::Configuration`].
//!
//! ## Preferences
//! A user may switch a channel off per kind of notification: the
//! preference `notifications.channels.<NAME>` (see
//! [`Notifications::set_channel_enabled`]) is read when the notification
//! is sent and again when its queued delivery runs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldErrors, Result};
use crate::mail::{Mail, Mailer};
use crate::notification::{Level, Notice, Notifications, is_phone_number};

// ---- what a host writes ----------------------------------------------------

/// A notification: a serde type (so that it can be queued) with a stable
/// name, the channels it goes through and how it looks on each.
///
/// Every `to_*` method has a default: `None` (this notification does not
/// render for that channel), except [`Notification::to_data`] (the
/// notification itself as JSON) and [`Notification::to_broadcast`] (that
/// data). Listing a channel in [`Notification::channels`] whose rendering
/// is `None` is a configuration error, reported when it is sent.
pub trait Notification: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable name (`invoice_paid`): it keys the users' preferences
    /// (`notifications.channels.invoice_paid`) and the queued deliveries;
    /// never rename it while deliveries may be queued.
    const NAME: &'static str;
    /// The queue its deliveries go to (when queued).
    const QUEUE: &'static str = "default";
    /// How many times a delivery is tried before it is failed.
    const MAX_ATTEMPTS: u32 = 3;
    /// The first retry's delay; each further retry doubles it.
    const BACKOFF: Duration = Duration::from_secs(10);

    /// The names of the channels it goes through for `to` (`database`,
    /// `mail`, `slack`, ...).
    fn channels(&self, to: &Recipient) -> Vec<&str>;

    /// Whether it should still go to `to` through `channel` (checked when
    /// sent and again when a queued delivery runs): a veto, say for an
    /// invoice paid in the meantime. Default: yes.
    fn should_send(&self, to: &Recipient, channel: &str) -> bool {
        let _ = (to, channel);
        true
    }

    /// The panel's bell ([`DatabaseChannel`]).
    fn to_database(&self, to: &Recipient) -> Option<Notice> {
        let _ = to;
        None
    }
    /// An e-mail ([`MailChannel`]), laid out by its [`MailLayout`].
    fn to_mail(&self, to: &Recipient) -> Option<MailMessage> {
        let _ = to;
        None
    }
    /// A real-time event ([`BroadcastChannel`]); default: the event named
    /// after the notification carrying [`Notification::to_data`].
    fn to_broadcast(&self, to: &Recipient) -> Option<BroadcastMessage> {
        self.to_data(to).map(|data| BroadcastMessage {
            event: Self::NAME.to_owned(),
            data,
        })
    }
    /// A Slack message (`SlackChannel` of `platform-adapters`).
    fn to_slack(&self, to: &Recipient) -> Option<SlackMessage> {
        let _ = to;
        None
    }
    /// A text message ([`SmsChannel`]).
    fn to_sms(&self, to: &Recipient) -> Option<SmsMessage> {
        let _ = to;
        None
    }
    /// The notification as data, for webhooks, logs and custom channels
    /// (Laravel's `toArray`); default: the notification serialised.
    fn to_data(&self, to: &Recipient) -> Option<serde_json::Value> {
        let _ = to;
        serde_json::to_value(self).ok()
    }

    /// Renders it for a channel of `format` (calls the matching `to_*`).
    fn render(&self, format: Format, to: &Recipient) -> Option<Content> {
        match format {
            Format::Database => self.to_database(to).map(Content::Database),
            Format::Mail => self.to_mail(to).map(Content::Mail),
            Format::Broadcast => self.to_broadcast(to).map(Content::Broadcast),
            Format::Slack => self.to_slack(to).map(Content::Slack),
            Format::Sms => self.to_sms(to).map(Content::Sms),
            Format::Data => self.to_data(to).map(Content::Data),
        }
    }
}

/// A [`Notification`] behind a pointer, whatever its type (what the
/// sender and the queued delivery hold).
pub trait AnyNotification: Send + Sync {
    /// [`Notification::NAME`].
    fn name(&self) -> &'static str;
    /// [`Notification::channels`], owned.
    fn channels(&self, to: &Recipient) -> Vec<String>;
    /// [`Notification::should_send`].
    fn should_send(&self, to: &Recipient, channel: &str) -> bool;
    /// [`Notification::render`].
    fn render(&self, format: Format, to: &Recipient) -> Option<Content>;
    /// The notification as JSON (what a queued delivery stores).
    fn payload(&self) -> Result<serde_json::Value>;
}

impl<N: Notification> AnyNotification for N {
    fn name(&self) -> &'static str {
        N::NAME
    }
    fn channels(&self, to: &Recipient) -> Vec<String> {
        Notification::channels(self, to)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
    fn should_send(&self, to: &Recipient, channel: &str) -> bool {
        Notification::should_send(self, to, channel)
    }
    fn render(&self, format: Format, to: &Recipient) -> Option<Content> {
        Notification::render(self, format, to)
    }
    fn payload(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| {
            Error::Configuration(format!(
                "the notification `{}` does not serialise: {e}",
                N::NAME
            ))
        })
    }
}

// ---- recipients --------------------------------------------------------------

/// Who a notification goes to: a user (loaded from the users table with
/// [`Recipient::load`]) or an address given on demand
/// ([`Recipient::anonymous`], Laravel's `Notification::route`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The user's id (`None` on demand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// Their name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Their e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Their phone number (E.164: `+4930123456`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Addresses for other channels, by channel name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, String>,
}

impl fmt::Debug for Recipient {
    /// Shows the user id and which addresses are known, not the addresses
    /// (personal data).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipient")
            .field("user_id", &self.user_id)
            .field("email", &self.email.as_ref().map(|_| "***"))
            .field("phone", &self.phone.as_ref().map(|_| "***"))
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Recipient {
    /// A recipient who is not a user: give the addresses with
    /// [`Recipient::with_email`], [`Recipient::with_phone`],
    /// [`Recipient::with_route`].
    pub fn anonymous() -> Self {
        Self::default()
    }
    /// The user `user_id` from the users table (name and e-mail address)
    /// and their phone number preference; `None` when there is no such
    /// user.
    pub async fn load(platform: &crate::Platform, user_id: i64) -> Result<Option<Self>> {
        Self::load_from(platform.access(), platform.notifications(), user_id).await
    }
    /// [`Recipient::load`] from the services themselves.
    pub async fn load_from(
        access: &crate::access::Access,
        notifications: &Notifications,
        user_id: i64,
    ) -> Result<Option<Self>> {
        let Some(user) = access.user(user_id).await? else {
            return Ok(None);
        };
        Ok(Some(Self {
            user_id: Some(user.id),
            name: Some(user.name),
            email: Some(user.email),
            phone: notifications.phone(user_id).await?,
            routes: BTreeMap::new(),
        }))
    }
    /// Sets the name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the e-mail address.
    #[must_use]
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }
    /// Sets the phone number.
    #[must_use]
    pub fn with_phone(mut self, phone: impl Into<String>) -> Self {
        self.phone = Some(phone.into());
        self
    }
    /// Sets the address for a custom channel.
    #[must_use]
    pub fn with_route(mut self, channel: impl Into<String>, address: impl Into<String>) -> Self {
        self.routes.insert(channel.into(), address.into());
        self
    }
    /// The address for `channel`, if given.
    pub fn route(&self, channel: &str) -> Option<&str> {
        self.routes.get(channel).map(String::as_str)
    }
    /// The name, or the e-mail address, or `there` (for greetings).
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .or(self.email.as_deref())
            .unwrap_or("there")
    }
    /// A short description for logs and reports (`user 7`, `on demand`).
    pub fn label(&self) -> String {
        match self.user_id {
            Some(id) => format!("user {id}"),
            None => "on demand".to_owned(),
        }
    }
}

// ---- rendered messages -----------------------------------------------------

/// What a channel asks a notification to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// [`Notification::to_database`].
    Database,
    /// [`Notification::to_mail`].
    Mail,
    /// [`Notification::to_broadcast`].
    Broadcast,
    /// [`Notification::to_slack`].
    Slack,
    /// [`Notification::to_sms`].
    Sms,
    /// [`Notification::to_data`].
    Data,
}

impl Format {
    /// The `to_*` method that renders it (for messages).
    pub fn method(self) -> &'static str {
        match self {
            Self::Database => "to_database",
            Self::Mail => "to_mail",
            Self::Broadcast => "to_broadcast",
            Self::Slack => "to_slack",
            Self::Sms => "to_sms",
            Self::Data => "to_data",
        }
    }
}

/// A notification rendered for one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", content = "content", rename_all = "snake_case")]
pub enum Content {
    /// For the bell.
    Database(Notice),
    /// For e-mail.
    Mail(MailMessage),
    /// For a real-time event.
    Broadcast(BroadcastMessage),
    /// For Slack.
    Slack(SlackMessage),
    /// For a text message.
    Sms(SmsMessage),
    /// As data.
    Data(serde_json::Value),
}

impl Content {
    /// Its format.
    pub fn format(&self) -> Format {
        match self {
            Self::Database(_) => Format::Database,
            Self::Mail(_) => Format::Mail,
            Self::Broadcast(_) => Format::Broadcast,
            Self::Slack(_) => Format::Slack,
            Self::Sms(_) => Format::Sms,
            Self::Data(_) => Format::Data,
        }
    }
}

/// What a channel is given: one notification rendered for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedMessage {
    /// The notification's name ([`Notification::NAME`]).
    pub notification: String,
    /// The id of this sending, the same on every channel, recipient and
    /// retry: receivers can use it to drop duplicates (webhooks send it as
    /// `Idempotency-Key`).
    pub id: String,
    /// The rendering.
    pub content: Content,
}

impl RenderedMessage {
    /// `content` of the notification `notification`, with a new id.
    pub fn new(notification: impl Into<String>, content: Content) -> Self {
        Self {
            notification: notification.into(),
            id: uuid::Uuid::now_v7().to_string(),
            content,
        }
    }
    /// The error a channel answers for a message of another format.
    pub fn wrong_format(&self, channel: &str, expected: Format) -> Error {
        Error::invalid(
            "format",
            "invalid",
            format!(
                "the channel `{channel}` sends {expected:?} messages, not {:?}",
                self.content.format()
            ),
        )
    }
}

/// An e-mail notification, laid out by a [`MailLayout`]: a greeting,
/// lines, an optional button, closing lines and a salutation. Every part
/// is plain text (the layout escapes it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MailMessage {
    /// The subject (line breaks become spaces).
    pub subject: String,
    /// How it looks (`danger` colours the button red).
    #[serde(default)]
    pub level: Level,
    /// The greeting (`Hello Ada,`); the layout's default when `None`.
    #[serde(default)]
    pub greeting: Option<String>,
    /// The paragraphs before the button.
    #[serde(default)]
    pub intro: Vec<String>,
    /// The button: its label and link.
    #[serde(default)]
    pub action: Option<(String, String)>,
    /// The paragraphs after the button.
    #[serde(default)]
    pub outro: Vec<String>,
    /// The closing (`Regards, Platform`); the layout's default when `None`.
    #[serde(default)]
    pub salutation: Option<String>,
}

impl MailMessage {
    /// A message with this subject.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            ..Self::default()
        }
    }
    /// Sets the greeting.
    #[must_use]
    pub fn greeting(mut self, greeting: impl Into<String>) -> Self {
        self.greeting = Some(greeting.into());
        self
    }
    /// Adds a paragraph: before the button if none was set yet, after it
    /// otherwise.
    #[must_use]
    pub fn line(mut self, line: impl Into<String>) -> Self {
        if self.action.is_none() {
            self.intro.push(line.into());
        } else {
            self.outro.push(line.into());
        }
        self
    }
    /// Sets the button.
    #[must_use]
    pub fn action(mut self, label: impl Into<String>, url: impl Into<String>) -> Self {
        self.action = Some((label.into(), url.into()));
        self
    }
    /// Sets the level.
    #[must_use]
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
    /// Sets the closing.
    #[must_use]
    pub fn salutation(mut self, salutation: impl Into<String>) -> Self {
        self.salutation = Some(salutation.into());
        self
    }
}

/// A real-time event for the broadcast channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastMessage {
    /// The event's name (default: the notification's).
    pub event: String,
    /// Its data.
    pub data: serde_json::Value,
}

/// A Slack message: text, and optionally Block Kit blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlackMessage {
    /// The text (Slack's `mrkdwn`; the fallback when blocks are given).
    pub text: String,
    /// Block Kit blocks, sent as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<serde_json::Value>,
}

impl SlackMessage {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            blocks: None,
        }
    }
    /// Adds Block Kit blocks (a JSON array).
    #[must_use]
    pub fn blocks(mut self, blocks: serde_json::Value) -> Self {
        self.blocks = Some(blocks);
        self
    }
}

/// A text message's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsMessage {
    /// The text (at most [`MAX_SMS_CHARS`] characters).
    pub text: String,
}

impl SmsMessage {
    /// A message with this text.
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }
}

// ---- the channel trait -----------------------------------------------------

/// A way to deliver notifications (mail, Slack, SMS...). Implementations
/// are held as `Arc<dyn NotificationChannel>`; see the
/// [module docs](self) for the contract.
#[async_trait]
pub trait NotificationChannel: Send + Sync + fmt::Debug + 'static {
    /// Its name, as notifications list it (`mail`, `slack`).
    fn name(&self) -> &str;
    /// What it asks notifications to render.
    fn format(&self) -> Format;
    /// Whether it can reach `to` at all (an e-mail address for mail, a
    /// user for the bell): a recipient it cannot reach is skipped, not
    /// failed.
    fn can_reach(&self, to: &Recipient) -> bool {
        let _ = to;
        true
    }
    /// Delivers `message` to `to`.
    async fn send(&self, to: &Recipient, message: &RenderedMessage) -> Result<()>;
}

fn unreachable(channel: &str, to: &Recipient, what: &str) -> Error {
    Error::invalid(
        "recipient",
        "invalid",
        format!(
            "the channel `{channel}` cannot reach {}: it has no {what}",
            to.label()
        ),
    )
}

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

/// E-mail through the platform's [`Mailer`], laid out by a [`MailLayout`].
#[derive(Debug, Clone)]
pub struct MailChannel {
    name: String,
    mailer: Arc<dyn Mailer>,
    layout: Arc<MailLayout>,
}

impl MailChannel {
    /// The channel `mail`, sending through `mailer` with `layout`.
    pub fn new(mailer: Arc<dyn Mailer>, layout: MailLayout) -> Self {
        Self {
            name: "mail".into(),
            mailer,
            layout: Arc::new(layout),
        }
    }
    /// Renames it (a second mailer, say for bulk mail).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

#[async_trait]
impl NotificationChannel for MailChannel {
    fn name(&self) -> &str {
        &self.name
    }
    fn format(&self) -> Format {
        Format::Mail
    }
    fn can_reach(&self, to: &Recipient) -> bool {
        to.email.as_deref().is_some_and(|e| !e.is_empty())
    }
    async fn send(&self, to: &Recipient, message: &RenderedMessage) -> Result<()> {
        let Content::Mail(mail) = &message.content else {
            return Err(message.wrong_format(&self.name, Format::Mail));
        };
        let Some(address) = to.email.as_deref().filter(|e| !e.is_empty()) else {
            return Err(unreachable(&self.name, to, "e-mail address"));
        };
        let rendered = self.layout.render(mail, to)?;
        let mail = Mail::new(address, rendered.subject, rendered.text).with_html(rendered.html);
        self.mailer.send(&mail).await
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
    /// The channel `log`, rendering [`Notification::to_data`].
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

// ---- SMS -------------------------------------------------------------------

/// Longest accepted text message, in characters (ten concatenated parts).
pub const MAX_SMS_CHARS: usize = 1600;

/// One text message to one phone number.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sms {
    /// The number, E.164 (`+4930123456`).
    pub to: String,
    /// The text.
    pub text: String,
}

impl fmt::Debug for Sms {
    /// Shows the length, not the text (it may hold a one-time code).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sms")
            .field("to", &self.to)
            .field(
                "text",
                &format_args!("<{} chars>", self.text.chars().count()),
            )
            .finish()
    }
}

impl Sms {
    /// A message.
    pub fn new(to: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            text: text.into(),
        }
    }
    /// Checks what every provider checks before sending: `to` is an
    /// E.164 number and the text has 1 to [`MAX_SMS_CHARS`] characters.
    pub fn validate(&self) -> Result<()> {
        let mut errors = FieldErrors::default();
        if !is_phone_number(&self.to) {
            errors.add(
                "to",
                "invalid",
                "must be a phone number in international format (+ and 8 to 15 digits)",
            );
        }
        let n = self.text.chars().count();
        if self.text.trim().is_empty() {
            errors.add("text", "required", "is required");
        } else if n > MAX_SMS_CHARS {
            errors.add(
                "text",
                "too_long",
                format!("must be at most {MAX_SMS_CHARS} characters"),
            );
        }
        errors.into_result()
    }
}

/// Sends text messages (an HTTP API in `platform-adapters`, feature
/// `channel-sms`). Held as `Arc<dyn SmsProvider>`.
///
/// Contract (checked by `testing::sms`): [`SmsProvider::send`] first
/// checks the message with [`Sms::validate`] and answers
/// [`Error::Validation`] without sending anything; a provider it cannot
/// reach is [`Error::Unavailable`], one that refuses is
/// [`Error::Backend`] (retried) or [`Error::Configuration`] (not); no
/// error shows a credential.
#[async_trait]
pub trait SmsProvider: Send + Sync + fmt::Debug + 'static {
    /// Its name, for logs (`twilio`, `http`).
    fn name(&self) -> &str;
    /// Sends `sms`.
    async fn send(&self, sms: &Sms) -> Result<()>;
}

/// Keeps every text message it accepts, for tests.
#[derive(Debug, Default, Clone)]
pub struct MemorySmsProvider {
    sent: Arc<Mutex<Vec<Sms>>>,
}

impl MemorySmsProvider {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }
    /// Every message accepted so far, oldest first.
    pub fn sent(&self) -> Vec<Sms> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl SmsProvider for MemorySmsProvider {
    fn name(&self) -> &str {
        "memory"
    }
    async fn send(&self, sms: &Sms) -> Result<()> {
        sms.validate()?;
        self.sent
            .lock()
            .map_err(|_| Error::Backend {
                backend: "memory sms",
                source: "the lock is poisoned".into(),
            })?
            .push(sms.clone());
        Ok(())
    }
}

/// Logs the recipient and length of each text message (never the text)
/// and delivers nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSmsProvider;

#[async_trait]
impl SmsProvider for LogSmsProvider {
    fn name(&self) -> &str {
        "log"
    }
    async fn send(&self, sms: &Sms) -> Result<()> {
        sms.validate()?;
        tracing::info!(
            to = %sms.to,
            chars = sms.text.chars().count(),
            "text message not delivered (LogSmsProvider): configure a provider to send it"
        );
        Ok(())
    }
}

/// Text messages through an [`SmsProvider`], to the recipient's phone
/// number.
#[derive(Debug, Clone)]
pub struct SmsChannel {
    name: String,
    provider: Arc<dyn SmsProvider>,
}

impl SmsChannel {
    /// The channel `sms` over `provider`.
    pub fn new(provider: Arc<dyn SmsProvider>) -> Self {
        Self {
            name: "sms".into(),
            provider,
        }
    }
    /// Renames it (two providers, two channels).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

#[async_trait]
impl NotificationChannel for SmsChannel {
    fn name(&self) -> &str {
        &self.name
    }
    fn format(&self) -> Format {
        Format::Sms
    }
    fn can_reach(&self, to: &Recipient) -> bool {
        to.phone.as_deref().is_some_and(|p| !p.is_empty())
    }
    async fn send(&self, to: &Recipient, message: &RenderedMessage) -> Result<()> {
        let Content::Sms(sms) = &message.content else {
            return Err(message.wrong_format(&self.name, Format::Sms));
        };
        let Some(phone) = to.phone.as_deref().filter(|p| !p.is_empty()) else {
            return Err(unreachable(&self.name, to, "phone number"));
        };
        self.provider.send(&Sms::new(phone, sms.text.clone())).await
    }
}

// ---- mail layout -------------------------------------------------------------

/// The default HTML template of [`MailLayout`].
pub const DEFAULT_MAIL_HTML: &str = include_str!("notify/mail.html");
/// The default text template of [`MailLayout`].
pub const DEFAULT_MAIL_TEXT: &str = include_str!("notify/mail.txt");

/// A mail laid out: what the mail channel sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// The subject, on one line.
    pub subject: String,
    /// The HTML body.
    pub html: String,
    /// The plain-text body.
    pub text: String,
}

/// How notification mails look: an HTML and a text template (minijinja),
/// each overridable. The HTML template escapes every value unless told
/// otherwise (`|safe`), so a notification's text cannot inject markup.
///
/// Templates see `mail` (the [`MailMessage`]: `subject`, `level`,
/// `greeting`, `intro`, `action` as `[label, url]`, `outro`,
/// `salutation`), `recipient` (`name`, `display_name`) and `app` (the
/// application's name).
///
/// ```
/// use platform_core::notify::{MailLayout, MailMessage, Recipient};
///
/// let layout = MailLayout::new()
///     .app_name("Acme")
///     .text_template("{{ mail.subject }}\n{% for l in mail.intro %}{{ l }}\n{% endfor %}-- {{ app }}")
///     .unwrap();
/// let mail = layout
///     .render(&MailMessage::new("Hi").line("<b>bold?</b>"), &Recipient::anonymous())
///     .unwrap();
/// assert_eq!(mail.text, "Hi\n<b>bold?</b>\n-- Acme");
/// assert!(mail.html.contains("&lt;b&gt;bold?&lt;&#x2f;b&gt;"));
/// ```
#[derive(Debug, Clone)]
pub struct MailLayout {
    html: String,
    text: String,
    app: String,
}

impl Default for MailLayout {
    fn default() -> Self {
        Self::new()
    }
}

fn mail_env(html: bool) -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(move |_| {
        if html {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env
}

fn template_error(which: &str, e: &minijinja::Error) -> Error {
    Error::Configuration(format!("the notification mail {which} template: {e:#}"))
}

impl MailLayout {
    /// The default templates, signed `Platform`.
    pub fn new() -> Self {
        Self {
            html: DEFAULT_MAIL_HTML.to_owned(),
            text: DEFAULT_MAIL_TEXT.to_owned(),
            app: "Platform".to_owned(),
        }
    }
    /// The application's name in the default salutation and footer.
    #[must_use]
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app = name.into();
        self
    }
    /// Replaces the HTML template; an error when it does not compile.
    pub fn html_template(mut self, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        mail_env(true)
            .template_from_str(&source)
            .map_err(|e| template_error("HTML", &e))?;
        self.html = source;
        Ok(self)
    }
    /// Replaces the text template; an error when it does not compile.
    pub fn text_template(mut self, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        mail_env(false)
            .template_from_str(&source)
            .map_err(|e| template_error("text", &e))?;
        self.text = source;
        Ok(self)
    }
    /// Lays `mail` out for `to`.
    pub fn render(&self, mail: &MailMessage, to: &Recipient) -> Result<RenderedMail> {
        let subject: String = mail
            .subject
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_owned();
        if let Some((_, url)) = &mail.action {
            let lower = url.trim_start().to_ascii_lowercase();
            if !(lower.starts_with("https://")
                || lower.starts_with("http://")
                || lower.starts_with("mailto:")
                || (lower.starts_with('/') && !lower.starts_with("//")))
            {
                return Err(Error::invalid(
                    "action",
                    "invalid",
                    "the button's link must be an http(s) or mailto: address, or a path",
                ));
            }
        }
        let mut mail = mail.clone();
        mail.subject.clone_from(&subject);
        let ctx = minijinja::context! {
            mail => minijinja::Value::from(minijinja::value::Serde(&mail)),
            recipient => minijinja::context! {
                name => to.name.clone(),
                display_name => to.display_name(),
            },
            app => self.app.clone(),
        };
        let render = |html: bool, source: &str, which: &str| -> Result<String> {
            let env = mail_env(html);
            let t = env
                .template_from_str(source)
                .map_err(|e| template_error(which, &e))?;
            t.render(&ctx).map_err(|e| template_error(which, &e))
        };
        Ok(RenderedMail {
            html: render(true, &self.html, "HTML")?,
            text: render(false, &self.text, "text")?,
            subject,
        })
    }
}

// ---- conformance ---------------------------------------------------------------

/// Checks every [`NotificationChannel`] must pass (`testing::notify`).
#[cfg(any(test, feature = "testing"))]
pub mod conformance {
    use super::*;

    /// A message of `format` with hostile and non-ASCII text.
    pub fn sample(format: Format) -> RenderedMessage {
        let text = "Grüße <script>alert(1)</script> & \"quotes\" — 你好";
        let content = match format {
            Format::Database => Content::Database(Notice::new("Conformance", text)),
            Format::Mail => Content::Mail(
                MailMessage::new("Conformance")
                    .line(text)
                    .action("Open", "https://example.com/x?a=1&b=2"),
            ),
            Format::Broadcast => Content::Broadcast(BroadcastMessage {
                event: "conformance".into(),
                data: serde_json::json!({ "text": text }),
            }),
            Format::Slack => Content::Slack(SlackMessage::text(text)),
            Format::Sms => Content::Sms(SmsMessage::new(text)),
            Format::Data => Content::Data(serde_json::json!({ "text": text, "n": 1 })),
        };
        RenderedMessage::new("conformance", content)
    }

    /// Runs every check against `channel`, which must reach `to`.
    pub async fn run_all(channel: &dyn NotificationChannel, to: &Recipient) {
        has_a_stable_name(channel);
        delivers_its_format(channel, to).await;
        refuses_other_formats(channel, to).await;
    }

    /// The name is 1 to 64 characters of `a-z`, `0-9`, `_`, `-`, and the
    /// same on every call.
    pub fn has_a_stable_name(channel: &dyn NotificationChannel) {
        let name = channel.name().to_owned();
        assert!(
            !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'),
            "channel name {name:?}"
        );
        assert_eq!(channel.name(), name, "the name is stable");
    }

    /// A message of its format to a recipient it reaches is delivered,
    /// twice (a retry must not fail because the first went through).
    pub async fn delivers_its_format(channel: &dyn NotificationChannel, to: &Recipient) {
        assert!(
            channel.can_reach(to),
            "the channel reaches the test recipient"
        );
        let message = sample(channel.format());
        for attempt in 1..=2 {
            channel
                .send(to, &message)
                .await
                .unwrap_or_else(|e| panic!("delivery {attempt} of {:?}: {e}", channel.format()));
        }
    }

    /// A message of another format is a validation error, not a panic.
    pub async fn refuses_other_formats(channel: &dyn NotificationChannel, to: &Recipient) {
        let other = if channel.format() == Format::Data {
            Format::Sms
        } else {
            Format::Data
        };
        let err = channel
            .send(to, &sample(other))
            .await
            .expect_err("a message of another format is refused");
        assert!(matches!(err, Error::Validation(_)), "{err:?}");
    }

    /// A recipient the channel says it cannot reach is refused with a
    /// validation error (run it with such a recipient).
    pub async fn refuses_unreachable(channel: &dyn NotificationChannel, nobody: &Recipient) {
        assert!(!channel.can_reach(nobody), "the channel cannot reach it");
        let err = channel
            .send(nobody, &sample(channel.format()))
            .await
            .expect_err("an unreachable recipient is refused");
        assert!(matches!(err, Error::Validation(_)), "{err:?}");
    }
}

/// Checks every [`SmsProvider`] must pass (`testing::sms`).
#[cfg(any(test, feature = "testing"))]
pub mod sms_conformance {
    use super::*;

    /// Runs every check; `to` is a number the provider accepts.
    pub async fn run_all(provider: &dyn SmsProvider, to: &str) {
        assert!(!provider.name().is_empty(), "a provider has a name");
        sends_plain_text(provider, to).await;
        sends_unicode_and_long_text(provider, to).await;
        refuses_bad_numbers(provider).await;
        refuses_bad_text(provider, to).await;
    }

    /// A short ASCII message is accepted.
    pub async fn sends_plain_text(provider: &dyn SmsProvider, to: &str) {
        provider
            .send(&Sms::new(to, "Your code is 123456"))
            .await
            .expect("a plain message is accepted");
    }

    /// Non-ASCII text and a message of [`MAX_SMS_CHARS`] characters are
    /// accepted.
    pub async fn sends_unicode_and_long_text(provider: &dyn SmsProvider, to: &str) {
        provider
            .send(&Sms::new(to, "Grüße — 你好 ✓ & <b>"))
            .await
            .expect("a unicode message is accepted");
        provider
            .send(&Sms::new(to, "x".repeat(MAX_SMS_CHARS)))
            .await
            .expect("a message of the longest length is accepted");
    }

    /// A number that is not E.164 is a validation error on `to`.
    pub async fn refuses_bad_numbers(provider: &dyn SmsProvider) {
        for to in [
            "",
            "12345",
            "0049301234567",
            "+49 30 1234",
            "+4930abc123",
            "+1234567890123456",
        ] {
            let err = provider
                .send(&Sms::new(to, "hi"))
                .await
                .expect_err("a bad number is refused");
            assert!(
                matches!(&err, Error::Validation(e) if e.has("to")),
                "number {to:?}: {err:?}"
            );
        }
    }

    /// An empty or too long text is a validation error on `text`.
    pub async fn refuses_bad_text(provider: &dyn SmsProvider, to: &str) {
        for text in [String::new(), "  ".into(), "x".repeat(MAX_SMS_CHARS + 1)] {
            let err = provider
                .send(&Sms::new(to, text.clone()))
                .await
                .expect_err("a bad text is refused");
            assert!(
                matches!(&err, Error::Validation(e) if e.has("text")),
                "text of {} chars: {err:?}",
                text.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Ping {
        who: String,
    }
    impl Notification for Ping {
        const NAME: &'static str = "ping";
        fn channels(&self, _to: &Recipient) -> Vec<&str> {
            vec!["log", "sms"]
        }
        fn to_sms(&self, _to: &Recipient) -> Option<SmsMessage> {
            Some(SmsMessage::new(format!("ping {}", self.who)))
        }
    }

    fn someone() -> Recipient {
        Recipient::anonymous()
            .with_name("Ada")
            .with_email("ada@example.com")
            .with_phone("+4930123456")
    }

    #[test]
    fn renders_per_format_with_defaults() {
        let p = Ping { who: "x".into() };
        let to = someone();
        assert_eq!(
            Notification::render(&p, Format::Sms, &to),
            Some(Content::Sms(SmsMessage::new("ping x")))
        );
        assert_eq!(
            Notification::render(&p, Format::Data, &to),
            Some(Content::Data(serde_json::json!({"who": "x"})))
        );
        assert!(Notification::render(&p, Format::Mail, &to).is_none());
        assert!(matches!(
            Notification::render(&p, Format::Broadcast, &to),
            Some(Content::Broadcast(BroadcastMessage { ref event, .. })) if event == "ping"
        ));
        let any: &dyn AnyNotification = &p;
        assert_eq!(any.channels(&to), vec!["log", "sms"]);
    }

    #[tokio::test]
    async fn core_channels_conform() {
        let to = someone();
        conformance::run_all(&LogChannel::new(), &to).await;
        for format in [Format::Mail, Format::Slack, Format::Data, Format::Database] {
            conformance::run_all(&MemoryChannel::new("mem", format), &to).await;
        }
        let provider = MemorySmsProvider::new();
        let sms = SmsChannel::new(Arc::new(provider.clone()));
        conformance::run_all(&sms, &to).await;
        conformance::refuses_unreachable(&sms, &Recipient::anonymous()).await;
        assert_eq!(provider.sent().len(), 2);
        assert_eq!(provider.sent()[0].to, "+4930123456");
        let mailer = Arc::new(crate::mail::MemoryMailer::new());
        let mail = MailChannel::new(mailer.clone(), MailLayout::new());
        conformance::run_all(&mail, &to).await;
        conformance::refuses_unreachable(&mail, &Recipient::anonymous()).await;
        let sent = mailer.last_to("ada@example.com").unwrap();
        let html = sent.html.unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(sent.text.contains("<script>"), "text is not HTML");
        conformance::refuses_unreachable(&BroadcastChannel::new(), &Recipient::anonymous()).await;
    }

    #[tokio::test]
    async fn broadcast_without_a_hook_says_so() {
        let to = Recipient {
            user_id: Some(1),
            ..Recipient::default()
        };
        let err = BroadcastChannel::new()
            .send(&to, &conformance::sample(Format::Broadcast))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not configured"), "{err}");
    }

    #[tokio::test]
    async fn sms_providers_conform() {
        sms_conformance::run_all(&MemorySmsProvider::new(), "+4930123456").await;
        sms_conformance::run_all(&LogSmsProvider, "+4930123456").await;
    }

    #[test]
    fn layout_escapes_and_flattens_the_subject() {
        let m = MailMessage::new("Hi\r\nBcc: x@example.com")
            .greeting("Hello <i>you</i>")
            .line("one")
            .action("Go", "https://example.com/?a=1&b=\"2\"")
            .line("two");
        let r = MailLayout::new()
            .app_name("Acme & Co")
            .render(&m, &someone())
            .unwrap();
        assert_eq!(r.subject, "Hi  Bcc: x@example.com");
        assert!(
            r.html.contains("Hello &lt;i&gt;you&lt;&#x2f;i&gt;"),
            "{}",
            r.html
        );
        assert!(!r.html.contains("<i>"), "{}", r.html);
        assert!(r.html.contains("Acme &amp; Co"), "{}", r.html);
        assert!(r.html.contains("a=1&amp;b=&quot;2&quot;"), "{}", r.html);
        let err = MailLayout::new()
            .render(
                &MailMessage::new("x").action("Go", "javascript:alert(1)"),
                &someone(),
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.has("action")),
            "{err}"
        );
        assert!(
            r.text.contains("Go: https://example.com/?a=1&b=\"2\""),
            "{}",
            r.text
        );
        let (one, two) = (r.text.find("one").unwrap(), r.text.find("two").unwrap());
        assert!(one < two);
        let err = MailLayout::new().html_template("{% if %}").unwrap_err();
        assert!(matches!(err, Error::Configuration(_)), "{err}");
    }
}
