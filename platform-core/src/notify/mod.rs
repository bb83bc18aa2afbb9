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

mod channels;
mod mail;
mod message;
mod sms;

pub use channels::{
    BroadcastChannel, BroadcastHook, Broadcaster, DatabaseChannel, LogChannel, MemoryChannel,
};
pub use mail::{DEFAULT_MAIL_HTML, DEFAULT_MAIL_TEXT, MailChannel, MailLayout, RenderedMail};
pub use message::{
    BroadcastMessage, Content, Format, MailMessage, RenderedMessage, SlackMessage, SmsMessage,
};
pub use sms::{LogSmsProvider, MAX_SMS_CHARS, MemorySmsProvider, Sms, SmsChannel, SmsProvider};

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::notification::{Notice, Notifications};

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

// ---- conformance ---------------------------------------------------------------

/// Checks every [`NotificationChannel`] must pass (`testing::notify`).
#[cfg(any(test, feature = "testing"))]
pub mod conformance;

/// Checks every [`SmsProvider`] must pass (`testing::sms`).
#[cfg(any(test, feature = "testing"))]
pub mod sms_conformance;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
