//! Notifications for Platform (Laravel Notifications): one call sends a
//! [`Notification`] to users (or addresses) through every channel it
//! declares, queued by default through `platform-jobs` (one job per
//! recipient and channel, retried with backoff, failures visible on the
//! queue dashboard), minding each user's channel preferences.
//!
//! ```no_run
//! use platform_core::notification::Notice;
//! use platform_jobs::Jobs;
//! use platform_notify::{MailMessage, Notification, Notifications, Notifier, Recipient, register_notification};
//! use serde::{Deserialize, Serialize};
//!
//! /// Tells a user their export is ready.
//! #[derive(Serialize, Deserialize)]
//! struct ExportReady {
//!     url: String,
//! }
//!
//! impl Notification for ExportReady {
//!     const NAME: &'static str = "export_ready";
//!     fn channels(&self, _to: &Recipient) -> Vec<&str> {
//!         vec!["database", "mail"]
//!     }
//!     fn to_database(&self, _to: &Recipient) -> Option<Notice> {
//!         Some(Notice::new("Export ready", "Your export can be downloaded.").with_url(&self.url))
//!     }
//!     fn to_mail(&self, _to: &Recipient) -> Option<MailMessage> {
//!         Some(MailMessage::new("Your export is ready").action("Download", &self.url))
//!     }
//! }
//! register_notification!(ExportReady);
//!
//! # async fn run() -> platform_core::Result<()> {
//! let platform = platform_core::Platform::builder()
//!     .with(Jobs::new())
//!     .with(Notifications::new())
//!     .build()
//!     .await?;
//! let notifier = platform.get::<Notifier>().expect("the notifications capability");
//! notifier.notify(7, &ExportReady { url: "https://example.com/e/1".into() }).await?;
//! # Ok(())
//! # }
//! ```
//!
//! The channels `database` (the panel's bell), `mail` (the platform's
//! mailer, laid out by a [`MailLayout`]), `broadcast` (once a
//! broadcasting capability provides a [`Broadcaster`]) and `log` are always
//! there; add others with [`Notifications::channel`] (`SlackChannel`,
//! `WebhookChannel`, an [`SmsChannel`] over `HttpSmsProvider` from
//! `platform-adapters`, or your own [`NotificationChannel`]).

mod job;
mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use platform_core::Platform;
use platform_core::access::Access;
use platform_core::capability::{Capability, Setup};
use platform_core::context::Context;
use platform_core::error::{Error, Result};
use platform_core::notification::Notifications as Bell;
pub use platform_core::notify::{
    AnyNotification, BroadcastChannel, BroadcastHook, BroadcastMessage, Broadcaster, Content,
    DatabaseChannel, Format, LogChannel, MailChannel, MailLayout, MailMessage, MemoryChannel,
    Notification, NotificationChannel, Recipient, RenderedMessage, SlackMessage, Sms, SmsChannel,
    SmsMessage, SmsProvider,
};
use platform_jobs::{Dispatched, Jobs, Options};
use serde::{Deserialize, Serialize};

use crate::job::DeliverNotification;

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}

// ---- notification types ------------------------------------------------------

/// A notification type as a queued delivery knows it (made by
/// [`register_notification!`] or [`Notifications::notification`]).
#[derive(Clone, Copy)]
pub struct NotificationType {
    /// [`Notification::NAME`].
    pub name: &'static str,
    type_name: fn() -> &'static str,
    decode:
        fn(serde_json::Value) -> std::result::Result<Box<dyn AnyNotification>, serde_json::Error>,
}

impl fmt::Debug for NotificationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationType")
            .field("name", &self.name)
            .field("type", &(self.type_name)())
            .finish()
    }
}

fn decode<N: Notification>(
    payload: serde_json::Value,
) -> std::result::Result<Box<dyn AnyNotification>, serde_json::Error> {
    Ok(Box::new(serde_json::from_value::<N>(payload)?))
}

impl NotificationType {
    /// The entry of `N`.
    pub const fn of<N: Notification>() -> Self {
        Self {
            name: N::NAME,
            type_name: std::any::type_name::<N>,
            decode: decode::<N>,
        }
    }
    /// The Rust type's name.
    pub fn type_name(&self) -> &'static str {
        (self.type_name)()
    }
}

/// A registration collected by `inventory`.
#[derive(Debug)]
pub struct NotificationRegistration(pub NotificationType);

inventory::collect!(NotificationRegistration);

/// Registers a [`Notification`] type so that every worker of the binary
/// can run its queued deliveries (no list to keep by hand).
///
/// ```
/// # use platform_notify::{Notification, Recipient};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Hello;
/// # impl Notification for Hello { const NAME: &'static str = "hello_doc";
/// #   fn channels(&self, _to: &Recipient) -> Vec<&str> { vec!["log"] } }
/// platform_notify::register_notification!(Hello);
/// ```
#[macro_export]
macro_rules! register_notification {
    ($ty:ty) => {
        $crate::__private::inventory::submit! {
            $crate::NotificationRegistration($crate::NotificationType::of::<$ty>())
        }
    };
}

// ---- recipients --------------------------------------------------------------

/// One recipient of a sending: a user by id (loaded from the users table
/// when sent, and again when a queued delivery runs), or an address given
/// on demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum To {
    /// A user.
    User(i64),
    /// An address given on demand ([`Recipient::anonymous`]).
    Address(Recipient),
}

/// The recipients of a sending; made from a user id, ids, a
/// [`Recipient`] or several.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients(pub Vec<To>);

impl From<i64> for Recipients {
    fn from(id: i64) -> Self {
        Self(vec![To::User(id)])
    }
}
impl From<Vec<i64>> for Recipients {
    fn from(ids: Vec<i64>) -> Self {
        Self(ids.into_iter().map(To::User).collect())
    }
}
impl From<&[i64]> for Recipients {
    fn from(ids: &[i64]) -> Self {
        Self(ids.iter().copied().map(To::User).collect())
    }
}
impl<const N: usize> From<[i64; N]> for Recipients {
    fn from(ids: [i64; N]) -> Self {
        Self(ids.into_iter().map(To::User).collect())
    }
}
impl From<Recipient> for Recipients {
    fn from(r: Recipient) -> Self {
        Self(vec![To::Address(r)])
    }
}
impl From<Vec<Recipient>> for Recipients {
    fn from(rs: Vec<Recipient>) -> Self {
        Self(rs.into_iter().map(To::Address).collect())
    }
}
impl From<To> for Recipients {
    fn from(t: To) -> Self {
        Self(vec![t])
    }
}
impl From<Vec<To>> for Recipients {
    fn from(ts: Vec<To>) -> Self {
        Self(ts)
    }
}

// ---- options and reports -----------------------------------------------------

/// How a notification is sent (see [`Notifier::notify_with`]).
#[derive(Debug, Clone, Default)]
pub struct NotifyOptions {
    delay: Option<Duration>,
    queue: Option<String>,
    max_attempts: Option<u32>,
    backoff: Option<Duration>,
    actor: Option<Context>,
    unique: Option<(String, Duration)>,
}

impl NotifyOptions {
    /// The notification's own settings.
    pub fn new() -> Self {
        Self::default()
    }
    /// Delivers no sooner than `delay` from now.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
    /// Puts the deliveries on `queue` instead of [`Notification::QUEUE`].
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    /// Tries each delivery `n` times instead of [`Notification::MAX_ATTEMPTS`].
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }
    /// Waits `first` before the first retry instead of [`Notification::BACKOFF`].
    #[must_use]
    pub fn backoff(mut self, first: Duration) -> Self {
        self.backoff = Some(first);
        self
    }
    /// Runs the deliveries on behalf of the user acting in `ctx` (shown
    /// on the queue dashboard; their account is checked again when a
    /// delivery runs).
    #[must_use]
    pub fn on_behalf_of(mut self, ctx: &Context) -> Self {
        self.actor = Some(ctx.clone());
        self
    }
    /// Sends at most once per recipient and channel under `key` within
    /// `window` (a second sending with the same key is skipped as
    /// [`SkipReason::Duplicate`]): no duplicate notifications when the
    /// code that sends runs twice.
    #[must_use]
    pub fn unique(mut self, key: impl Into<String>, window: Duration) -> Self {
        self.unique = Some((key.into(), window));
        self
    }
}

/// Why a delivery was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The user switched the channel off for this notification.
    Preference,
    /// [`Notification::should_send`] said no.
    Veto,
    /// The channel cannot reach the recipient (no e-mail address, no
    /// phone number).
    Unreachable,
    /// A sending with the same unique key was made within its window.
    Duplicate,
}

/// One recipient and channel of a sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The recipient ([`Recipient::label`]: `user 7`, `on demand`).
    pub recipient: String,
    /// The channel.
    pub channel: String,
    /// The queued job's id (queued sendings).
    pub job_id: Option<String>,
}

/// What a sending did.
#[derive(Debug, Default)]
pub struct Report {
    /// The sending's id ([`RenderedMessage::id`]).
    pub id: String,
    /// Deliveries queued (one job each).
    pub queued: Vec<Delivery>,
    /// Deliveries made now ([`Notifier::notify_now`], or without a queue).
    pub delivered: Vec<Delivery>,
    /// Deliveries not made, and why.
    pub skipped: Vec<(Delivery, SkipReason)>,
    /// Deliveries made now that failed (they are not retried).
    pub failed: Vec<(Delivery, Error)>,
}

impl Report {
    /// `Ok` unless a delivery failed; then the first failure, naming its
    /// channel and recipient.
    pub fn ok(self) -> Result<Self> {
        if let Some((d, e)) = self.failed.first() {
            return Err(Error::Backend {
                backend: "notification",
                source: format!(
                    "{} to {} failed: {e}{}",
                    d.channel,
                    d.recipient,
                    if self.failed.len() > 1 {
                        format!(" (and {} more)", self.failed.len() - 1)
                    } else {
                        String::new()
                    }
                )
                .into(),
            });
        }
        Ok(self)
    }
}

// ---- the capability ----------------------------------------------------------

/// The notifications capability: add it with `Platform::builder().with(..)`
/// after [`Jobs`] (or call [`Notifications::without_queue`]); it adds the
/// [`Notifier`] service.
#[derive(Clone)]
pub struct Notifications {
    channels: Vec<Arc<dyn NotificationChannel>>,
    layout: MailLayout,
    queue: bool,
    types: Vec<NotificationType>,
    broadcast_hook: Option<Arc<dyn BroadcastHook>>,
}

impl fmt::Debug for Notifications {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifications")
            .field(
                "channels",
                &self.channels.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Default for Notifications {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifications {
    /// The built-in channels (`database`, `mail`, `broadcast`, `log`),
    /// queued through [`Jobs`], the default [`MailLayout`].
    pub fn new() -> Self {
        Self {
            channels: Vec::new(),
            layout: MailLayout::new(),
            queue: true,
            types: Vec::new(),
            broadcast_hook: None,
        }
    }
    /// Adds `channel`; one named like a built-in replaces it.
    #[must_use]
    pub fn channel(mut self, channel: impl NotificationChannel) -> Self {
        self.channels.push(Arc::new(channel));
        self
    }
    /// Lays out notification mails with `layout` (your templates).
    #[must_use]
    pub fn mail_layout(mut self, layout: MailLayout) -> Self {
        self.layout = layout;
        self
    }
    /// Publishes the broadcast channel's events through `hook` (a
    /// [`Broadcaster`] service, when a capability adds one, is used
    /// otherwise).
    #[must_use]
    pub fn broadcast_hook(mut self, hook: Arc<dyn BroadcastHook>) -> Self {
        self.broadcast_hook = Some(hook);
        self
    }
    /// Registers `N` explicitly (on top of [`register_notification!`]).
    #[must_use]
    pub fn notification<N: Notification>(mut self) -> Self {
        self.types.push(NotificationType::of::<N>());
        self
    }
    /// Delivers every notification at once, in the sending call, without
    /// the [`Jobs`] capability (no retries; for small tools and tests).
    #[must_use]
    pub fn without_queue(mut self) -> Self {
        self.queue = false;
        self
    }

    fn make(&self, platform: &Platform) -> Result<Notifier> {
        let mut channels: BTreeMap<String, Arc<dyn NotificationChannel>> = BTreeMap::new();
        let broadcast = match &self.broadcast_hook {
            Some(h) => BroadcastChannel::with_hook(h.clone()),
            None => BroadcastChannel::new(),
        };
        let builtin: [Arc<dyn NotificationChannel>; 4] = [
            Arc::new(DatabaseChannel::new(platform.notifications().clone())),
            Arc::new(MailChannel::new(
                platform.mailer().clone(),
                self.layout.clone(),
            )),
            Arc::new(broadcast.clone()),
            Arc::new(LogChannel::new()),
        ];
        for c in builtin.into_iter().chain(self.channels.iter().cloned()) {
            channels.insert(c.name().to_owned(), c);
        }
        let mut types: BTreeMap<&'static str, NotificationType> = BTreeMap::new();
        for t in inventory::iter::<NotificationRegistration>
            .into_iter()
            .map(|r| r.0)
            .chain(self.types.iter().copied())
        {
            if let Some(old) = types.insert(t.name, t)
                && old.type_name() != t.type_name()
            {
                return Err(Error::Configuration(format!(
                    "two notification types are named `{}`: {} and {}",
                    t.name,
                    old.type_name(),
                    t.type_name()
                )));
            }
        }
        Ok(Notifier {
            inner: Arc::new(Inner {
                channels,
                broadcast,
                access: platform.access().clone(),
                bell: platform.notifications().clone(),
                jobs: OnceLock::new(),
                queue: self.queue,
                types,
            }),
        })
    }
}

impl Capability for Notifications {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn setup(&self, setup: &mut Setup) {
        let this = self.clone();
        setup.service(move |p: Platform| {
            let made = this.make(&p);
            async move { made }
        });
        settings::contribute(setup);
        setup.on_start(|p: Platform| async move {
            let notifier = p
                .get::<Notifier>()
                .ok_or_else(|| Error::Configuration("the notifier service was not made".into()))?;
            if let Some(b) = p.get::<Broadcaster>() {
                notifier.inner.broadcast.install(b.0.clone());
            }
            if notifier.inner.queue {
                let jobs = p.get::<Jobs>().ok_or_else(|| {
                    Error::Configuration(
                        "notifications are queued through the jobs capability, which is not \
                         added: add `.with(platform_jobs::Jobs::new())` to the builder, or \
                         call `Notifications::without_queue()` to deliver them at once"
                            .into(),
                    )
                })?;
                let _ = notifier.inner.jobs.set(jobs);
            }
            Ok(())
        });
    }
}

// ---- the service ---------------------------------------------------------------

struct Inner {
    channels: BTreeMap<String, Arc<dyn NotificationChannel>>,
    broadcast: BroadcastChannel,
    access: Access,
    bell: Bell,
    jobs: OnceLock<Arc<Jobs>>,
    queue: bool,
    types: BTreeMap<&'static str, NotificationType>,
}

/// Sends notifications (`platform.get::<Notifier>()`). Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("channels", &self.inner.channels.keys().collect::<Vec<_>>())
            .field("queued", &self.inner.queue)
            .finish_non_exhaustive()
    }
}

/// One planned delivery.
struct Planned {
    to: To,
    recipient: Recipient,
    channel: Arc<dyn NotificationChannel>,
    content: Content,
}

impl Notifier {
    /// The channel called `name`.
    pub fn channel(&self, name: &str) -> Option<Arc<dyn NotificationChannel>> {
        self.inner.channels.get(name).cloned()
    }
    /// The channels' names.
    pub fn channel_names(&self) -> Vec<&str> {
        self.inner.channels.keys().map(String::as_str).collect()
    }
    /// The names of the notification types this binary knows, sorted.
    pub fn type_names(&self) -> Vec<&'static str> {
        self.inner.types.keys().copied().collect()
    }
    /// Whether sendings are queued (else delivered at once).
    pub fn is_queued(&self) -> bool {
        self.inner.queue
    }

    /// Sends `notification` to `to` through each channel it declares:
    /// queued (one job per recipient and channel) unless the capability
    /// runs [without a queue](Notifications::without_queue).
    ///
    /// Everything that cannot work is checked first, and nothing is sent
    /// when it fails: an unknown user ([`Error::NotFound`]), a channel
    /// that is not configured, a channel the notification does not render
    /// for, a type that is not registered ([`Error::Configuration`]).
    pub async fn notify<N: Notification>(
        &self,
        to: impl Into<Recipients>,
        notification: &N,
    ) -> Result<Report> {
        self.notify_with(to, notification, NotifyOptions::new())
            .await
    }

    /// [`Notifier::notify`] with `options`.
    pub async fn notify_with<N: Notification>(
        &self,
        to: impl Into<Recipients>,
        notification: &N,
        options: NotifyOptions,
    ) -> Result<Report> {
        if !self.inner.queue {
            return self.notify_now(to, notification).await;
        }
        let jobs = self.inner.jobs.get().ok_or_else(|| {
            Error::Configuration("the notifier is not started (use the platform's)".into())
        })?;
        match self.inner.types.get(N::NAME) {
            Some(t) if t.type_name() == std::any::type_name::<N>() => {}
            Some(t) => {
                return Err(Error::Configuration(format!(
                    "the notification name `{}` belongs to {}, not {}",
                    N::NAME,
                    t.type_name(),
                    std::any::type_name::<N>()
                )));
            }
            None => {
                return Err(Error::Configuration(format!(
                    "the notification `{}` ({}) is not registered, so a worker could not \
                     run it: add `platform_notify::register_notification!({})`",
                    N::NAME,
                    std::any::type_name::<N>(),
                    std::any::type_name::<N>()
                        .rsplit("::")
                        .next()
                        .unwrap_or(N::NAME)
                )));
            }
        }
        let payload = AnyNotification::payload(notification)?;
        let (planned, mut report) = self.plan(to.into(), notification).await?;
        for p in planned {
            let delivery = Delivery {
                recipient: p.recipient.label(),
                channel: p.channel.name().to_owned(),
                job_id: None,
            };
            let job = DeliverNotification {
                id: report.id.clone(),
                notification: N::NAME.to_owned(),
                payload: payload.clone(),
                to: p.to,
                channel: delivery.channel.clone(),
            };
            let mut opts = Options::new()
                .queue(options.queue.clone().unwrap_or_else(|| N::QUEUE.to_owned()))
                .max_attempts(options.max_attempts.unwrap_or(N::MAX_ATTEMPTS))
                .backoff(options.backoff.unwrap_or(N::BACKOFF));
            if let Some(d) = options.delay {
                opts = opts.delay(d);
            }
            if let Some(ctx) = &options.actor {
                opts = opts.on_behalf_of(ctx);
            }
            if let Some((key, window)) = &options.unique {
                opts = opts
                    .unique_key(format!(
                        "notify:{}:{key}:{}:{}",
                        N::NAME,
                        delivery.recipient,
                        delivery.channel
                    ))
                    .unique_for(*window);
            }
            match jobs.dispatch_with(job, opts).await? {
                Dispatched::Queued(id) => report.queued.push(Delivery {
                    job_id: Some(id),
                    ..delivery
                }),
                Dispatched::Duplicate => report.skipped.push((delivery, SkipReason::Duplicate)),
            }
        }
        Ok(report)
    }

    /// Sends `notification` to `to` now, in this call, through each
    /// channel it declares (no queue, no retries). Checks like
    /// [`Notifier::notify`]; a failed delivery does not stop the others
    /// and is in [`Report::failed`] (use [`Report::ok`] to make it an
    /// error).
    pub async fn notify_now<N: Notification>(
        &self,
        to: impl Into<Recipients>,
        notification: &N,
    ) -> Result<Report> {
        let (planned, mut report) = self.plan(to.into(), notification).await?;
        for p in planned {
            let delivery = Delivery {
                recipient: p.recipient.label(),
                channel: p.channel.name().to_owned(),
                job_id: None,
            };
            let message = RenderedMessage {
                notification: N::NAME.to_owned(),
                id: report.id.clone(),
                content: p.content,
            };
            match p.channel.send(&p.recipient, &message).await {
                Ok(()) => report.delivered.push(delivery),
                Err(e) => {
                    tracing::warn!(
                        notification = N::NAME,
                        channel = %delivery.channel,
                        recipient = %delivery.recipient,
                        error = %e,
                        "notification delivery failed"
                    );
                    report.failed.push((delivery, e));
                }
            }
        }
        Ok(report)
    }

    async fn recipient(&self, to: &To) -> Result<Recipient> {
        match to {
            To::User(id) => Recipient::load_from(&self.inner.access, &self.inner.bell, *id)
                .await?
                .ok_or_else(|| Error::NotFound {
                    resource: "user",
                    id: id.to_string(),
                }),
            To::Address(r) => Ok(r.clone()),
        }
    }

    fn channel_for(&self, name: &str, notification: &str) -> Result<Arc<dyn NotificationChannel>> {
        self.channel(name).ok_or_else(|| {
            Error::Configuration(format!(
                "the notification `{notification}` goes through the channel `{name}`, which is \
                 not configured (the channels are {}; add it with `Notifications::channel`)",
                self.channel_names().join(", ")
            ))
        })
    }

    /// Why `channel` should not deliver `n` to `r` now, if it should not.
    async fn skip_reason(
        &self,
        n: &dyn AnyNotification,
        r: &Recipient,
        channel: &dyn NotificationChannel,
    ) -> Result<Option<SkipReason>> {
        if let Some(user) = r.user_id
            && !self
                .inner
                .bell
                .channel_enabled(user, n.name(), channel.name())
                .await?
        {
            return Ok(Some(SkipReason::Preference));
        }
        if !n.should_send(r, channel.name()) {
            return Ok(Some(SkipReason::Veto));
        }
        if !channel.can_reach(r) {
            return Ok(Some(SkipReason::Unreachable));
        }
        Ok(None)
    }

    fn render(
        n: &dyn AnyNotification,
        r: &Recipient,
        channel: &dyn NotificationChannel,
    ) -> Result<Content> {
        n.render(channel.format(), r).ok_or_else(|| {
            Error::Configuration(format!(
                "the notification `{}` goes through the channel `{}` but does not render for \
                 it: implement `{}`",
                n.name(),
                channel.name(),
                channel.format().method()
            ))
        })
    }

    /// Checks everything and lists the deliveries to make.
    async fn plan(
        &self,
        to: Recipients,
        n: &dyn AnyNotification,
    ) -> Result<(Vec<Planned>, Report)> {
        let mut report = Report {
            id: uuid::Uuid::now_v7().to_string(),
            ..Report::default()
        };
        let mut planned = Vec::new();
        for target in to.0 {
            let recipient = self.recipient(&target).await?;
            for name in n.channels(&recipient) {
                let channel = self.channel_for(&name, n.name())?;
                let content = Self::render(n, &recipient, channel.as_ref())?;
                if let Some(reason) = self.skip_reason(n, &recipient, channel.as_ref()).await? {
                    report.skipped.push((
                        Delivery {
                            recipient: recipient.label(),
                            channel: name,
                            job_id: None,
                        },
                        reason,
                    ));
                    continue;
                }
                planned.push(Planned {
                    to: target.clone(),
                    recipient: recipient.clone(),
                    channel,
                    content,
                });
            }
        }
        Ok((planned, report))
    }

    /// Runs one queued delivery (the job's body).
    pub(crate) async fn deliver(&self, job: &DeliverNotification) -> Result<Option<SkipReason>> {
        let ty = self
            .inner
            .types
            .get(job.notification.as_str())
            .ok_or_else(|| {
                Error::Configuration(format!(
                    "unknown notification `{}`: no type of that name is registered in this binary \
                 (renamed or removed after it was queued?)",
                    job.notification
                ))
            })?;
        let n = (ty.decode)(job.payload.clone()).map_err(|e| {
            Error::Configuration(format!(
                "the queued notification `{}` no longer deserialises into {}: {e}",
                job.notification,
                ty.type_name()
            ))
        })?;
        let recipient = self.recipient(&job.to).await?;
        let channel = self.channel_for(&job.channel, n.name())?;
        if let Some(reason) = self
            .skip_reason(n.as_ref(), &recipient, channel.as_ref())
            .await?
        {
            return Ok(Some(reason));
        }
        let content = Self::render(n.as_ref(), &recipient, channel.as_ref())?;
        let message = RenderedMessage {
            notification: job.notification.clone(),
            id: job.id.clone(),
            content,
        };
        channel.send(&recipient, &message).await?;
        Ok(None)
    }
}
