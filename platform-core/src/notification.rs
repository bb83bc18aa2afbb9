//! Database notifications (the panel's bell) and per-user preferences.
//!
//! A notification is a short message to one user, kept until deleted with
//! the user; the panel shows the unread ones and marks them read.
//! Preferences are small JSON values per user and name (the panel keeps
//! column toggles and similar choices there), at most
//! [`MAX_PREFERENCE_BYTES`] each.
//!
//! Every panel page shows the unread count and list pages read a
//! preference, so both are kept in the platform's cache for
//! [`READ_CACHE_TTL`], under one tag per user: this service's writes
//! (`send`, `mark_*`, `set_preference`, `forget_preference`) flush the
//! user's tag, which every node sees at once when the cache is shared
//! (Redis: see the scale-out chapter); a read that overlapped a write is
//! stored under the tag's old version and never read again.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cache::Cache;
use crate::db::{Db, detached, dialect};
use crate::error::{Error, FieldErrors, Result};
use crate::notify::{BroadcastHook, BroadcastMessage};
use crate::value::{FieldType, Value};

/// How long an unread count or a preference is reused from the cache.
pub const READ_CACHE_TTL: Duration = Duration::from_secs(30);

/// Largest accepted preference value, as JSON text.
pub const MAX_PREFERENCE_BYTES: usize = 16 * 1024;
/// Longest accepted notification body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// How a notification looks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Neutral information.
    #[default]
    Info,
    /// Something went well.
    Success,
    /// Something needs attention.
    Warning,
    /// Something failed.
    Danger,
}

impl Level {
    /// The stored name (`info`, `success`, `warning`, `danger`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Success => "success",
            Self::Warning => "warning",
            Self::Danger => "danger",
        }
    }
    /// The level with this stored name (unknown names read as `Info`).
    pub fn parse(s: &str) -> Self {
        match s {
            "success" => Self::Success,
            "warning" => Self::Warning,
            "danger" => Self::Danger,
            _ => Self::Info,
        }
    }
}

/// A notification to send.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    /// A short title (1 to 255 characters).
    pub title: String,
    /// The message (at most [`MAX_BODY_BYTES`]).
    pub body: String,
    /// Where clicking it leads (at most 2048 characters).
    pub url: Option<String>,
    /// How it looks.
    pub level: Level,
}

impl Notice {
    /// An `Info` notice without a link.
    pub fn new(title: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            body: body.into(),
            url: None,
            level: Level::Info,
        }
    }
    /// Sets the link.
    #[must_use]
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }
    /// Sets the level.
    #[must_use]
    pub fn with_level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notification {
    /// Id.
    pub id: i64,
    /// The recipient.
    pub user_id: i64,
    /// Title.
    pub title: String,
    /// Message.
    pub body: String,
    /// Link.
    pub url: Option<String>,
    /// Level.
    pub level: Level,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
}

/// Notifications and preferences of one database
/// ([`crate::Platform::notifications`]).
#[derive(Clone)]
pub struct Notifications {
    db: Db,
    cache: Cache,
    /// Told of every notice sent (the broadcasting capability installs
    /// it: the panel's bell counts up live).
    on_sent: Arc<OnceLock<Arc<dyn BroadcastHook>>>,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications").finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, user_id, title, body, url, level, read_at, created_at";
const TYPES: [FieldType; 8] = [
    FieldType::I64,
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::DateTime,
    FieldType::DateTime,
];

fn from_row(r: &[Value]) -> Notification {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let time = |v: &Value| match v {
        Value::DateTime(t) => Some(*t),
        _ => None,
    };
    Notification {
        id: r[0].as_i64().unwrap_or_default(),
        user_id: r[1].as_i64().unwrap_or_default(),
        title: text(&r[2]),
        body: text(&r[3]),
        url: r[4].as_str().map(str::to_owned),
        level: Level::parse(r[5].as_str().unwrap_or_default()),
        read_at: time(&r[6]),
        created_at: time(&r[7]).unwrap_or_default(),
    }
}

fn clamp_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, 500))
}

/// The cache tag of a user's notifications and preferences.
fn user_tag(user_id: i64) -> String {
    format!("notifications:{user_id}")
}

impl Notifications {
    /// Notifications over `db` (the framework migrations must have run),
    /// their reads cached in `cache`.
    pub fn new(db: Db, cache: Cache) -> Self {
        Self {
            db,
            cache,
            on_sent: Arc::default(),
        }
    }

    /// Has `hook` told of every notice sent from now on, as the event
    /// `notification.created` with `{id, title, url, level}` for the user
    /// (the broadcasting capability installs it on `private-user.{id}`, so
    /// an open panel's bell counts up). `false` when one was installed.
    pub fn announce_with(&self, hook: Arc<dyn BroadcastHook>) -> bool {
        self.on_sent.set(hook).is_ok()
    }

    /// Drops the cached reads of `user_id` (on every node sharing the cache).
    async fn forget_cached(&self, user_id: i64) {
        self.cache.flush_tag(&user_tag(user_id)).await;
    }

    /// Sends `notice` to `user_id` and returns its id.
    pub async fn send(&self, user_id: i64, notice: Notice) -> Result<i64> {
        let this = self.clone();
        detached(async move { this.send_inner(user_id, notice).await }).await
    }

    async fn send_inner(&self, user_id: i64, notice: Notice) -> Result<i64> {
        let mut errors = FieldErrors::default();
        let title = notice.title.trim();
        if title.is_empty() {
            errors.add("title", "required", "is required");
        } else if title.chars().count() > 255 {
            errors.add("title", "too_long", "must be at most 255 characters");
        }
        if notice.body.len() > MAX_BODY_BYTES {
            errors.add(
                "body",
                "too_long",
                format!("must be at most {MAX_BODY_BYTES} bytes"),
            );
        }
        if notice
            .url
            .as_ref()
            .is_some_and(|u| u.chars().count() > 2048)
        {
            errors.add("url", "too_long", "must be at most 2048 characters");
        }
        errors.into_result()?;
        let url = notice.url.clone();
        let mut tx = self.db.begin().await?;
        let mut q = tx.sql();
        q.push("INSERT INTO platform_notifications (user_id, title, body, url, level, created_at) VALUES (")
            .bind_i64(user_id)
            .push(", ")
            .bind_str(title)
            .push(", ")
            .bind_str(notice.body)
            .push(", ")
            .bind(url.clone().map_or(Value::Null, Value::Text), FieldType::Text)
            .push(", ")
            .bind_str(notice.level.as_str())
            .push(", ")
            .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
            .push(")");
        dialect::push_returning(&mut q, "id");
        let id = tx.insert_returning_id(q).await.map_err(|e| match e {
            Error::Conflict { .. } => Error::NotFound {
                resource: "user",
                id: user_id.to_string(),
            },
            e => e,
        });
        let id = tx.finish(id).await?;
        self.forget_cached(user_id).await;
        if let Some(hook) = self.on_sent.get() {
            let message = BroadcastMessage {
                event: "notification.created".to_owned(),
                data: serde_json::json!({
                    "id": id,
                    "title": title,
                    "url": url,
                    "level": notice.level.as_str(),
                }),
            };
            // The notice is stored: a missed announcement only means the
            // bell catches up at the next page.
            if let Err(e) = hook.broadcast(user_id, &message).await {
                tracing::warn!(error = %e, "notifications: announcing a notice failed");
            }
        }
        Ok(id)
    }

    /// The user's unread notifications, newest first, at most `limit`
    /// (1 to 500).
    pub async fn unread(&self, user_id: i64, limit: u32) -> Result<Vec<Notification>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM platform_notifications WHERE user_id = ")
            .bind_i64(user_id)
            .push(" AND read_at IS NULL ORDER BY id DESC LIMIT ")
            .int(clamp_limit(limit));
        Ok(self
            .db
            .fetch_all(q, &TYPES)
            .await?
            .iter()
            .map(|r| from_row(r))
            .collect())
    }

    /// The user's notifications, read or not, newest first, at most `limit`
    /// (1 to 500).
    pub async fn latest(&self, user_id: i64, limit: u32) -> Result<Vec<Notification>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM platform_notifications WHERE user_id = ")
            .bind_i64(user_id)
            .push(" ORDER BY id DESC LIMIT ")
            .int(clamp_limit(limit));
        Ok(self
            .db
            .fetch_all(q, &TYPES)
            .await?
            .iter()
            .map(|r| from_row(r))
            .collect())
    }

    /// How many notifications the user has not read (cached: see the
    /// [module docs](self)).
    pub async fn count_unread(&self, user_id: i64) -> Result<i64> {
        self.cache
            .tags(&[&user_tag(user_id)])
            .remember("unread", READ_CACHE_TTL, || async {
                let mut q = self.db.sql();
                q.push("SELECT COUNT(*) FROM platform_notifications WHERE user_id = ")
                    .bind_i64(user_id)
                    .push(" AND read_at IS NULL");
                Ok(self.db.fetch_i64(q).await?.unwrap_or(0))
            })
            .await
    }

    /// Marks one of the user's notifications read. `false` when it is not
    /// theirs, does not exist or was already read.
    pub async fn mark_read(&self, user_id: i64, id: i64) -> Result<bool> {
        let this = self.clone();
        detached(async move { this.mark_read_inner(user_id, id).await }).await
    }

    async fn mark_read_inner(&self, user_id: i64, id: i64) -> Result<bool> {
        let mut q = self.db.sql();
        q.push("UPDATE platform_notifications SET read_at = ")
            .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
            .push(" WHERE id = ")
            .bind_i64(id)
            .push(" AND user_id = ")
            .bind_i64(user_id)
            .push(" AND read_at IS NULL");
        let changed = self.db.execute(q).await;
        self.forget_cached(user_id).await;
        Ok(changed? == 1)
    }

    /// Marks every unread notification of the user read; returns how many.
    pub async fn mark_all_read(&self, user_id: i64) -> Result<u64> {
        let this = self.clone();
        detached(async move { this.mark_all_read_inner(user_id).await }).await
    }

    async fn mark_all_read_inner(&self, user_id: i64) -> Result<u64> {
        let mut q = self.db.sql();
        q.push("UPDATE platform_notifications SET read_at = ")
            .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
            .push(" WHERE user_id = ")
            .bind_i64(user_id)
            .push(" AND read_at IS NULL");
        let changed = self.db.execute(q).await;
        self.forget_cached(user_id).await;
        changed
    }

    // ---- preferences ----------------------------------------------------

    /// The user's preference `name`, if set (cached: see the
    /// [module docs](self)).
    pub async fn get_preference(
        &self,
        user_id: i64,
        name: &str,
    ) -> Result<Option<serde_json::Value>> {
        self.cache
            .tags(&[&user_tag(user_id)])
            .remember(&format!("pref:{name}"), READ_CACHE_TTL, || {
                self.read_preference(user_id, name)
            })
            .await
    }

    async fn read_preference(&self, user_id: i64, name: &str) -> Result<Option<serde_json::Value>> {
        let mut q = self.db.sql();
        q.push("SELECT value FROM platform_user_preferences WHERE user_id = ")
            .bind_i64(user_id)
            .push(" AND name = ")
            .bind_str(name);
        let row = self.db.fetch_optional(q, &[FieldType::Text]).await?;
        Ok(row
            .and_then(|r| r.into_iter().next())
            .and_then(|v| v.as_str().and_then(|s| serde_json::from_str(s).ok())))
    }

    /// Sets the user's preference `name` (1 to 191 characters) to `value`
    /// (at most [`MAX_PREFERENCE_BYTES`] as JSON), replacing any earlier
    /// value.
    pub async fn set_preference(
        &self,
        user_id: i64,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<()> {
        let (this, name, value) = (self.clone(), name.to_owned(), value.clone());
        detached(async move { this.set_preference_inner(user_id, &name, &value).await }).await
    }

    async fn set_preference_inner(
        &self,
        user_id: i64,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<()> {
        let mut errors = FieldErrors::default();
        let n = name.chars().count();
        if n == 0 || n > 191 {
            errors.add("name", "invalid", "must be 1 to 191 characters");
        }
        let text = value.to_string();
        if text.len() > MAX_PREFERENCE_BYTES {
            errors.add(
                "value",
                "too_long",
                format!("must be at most {MAX_PREFERENCE_BYTES} bytes as JSON"),
            );
        }
        errors.into_result()?;
        let now = Value::DateTime(Utc::now());
        let mut tx = self.db.begin().await?;
        let mut q = tx.sql();
        q.push("INSERT INTO platform_user_preferences (user_id, name, value, updated_at) VALUES (")
            .bind_i64(user_id)
            .push(", ")
            .bind_str(name)
            .push(", ")
            .bind_str(text)
            .push(", ")
            .bind(now, FieldType::DateTime)
            .push(")");
        dialect::push_upsert(&mut q, &["user_id", "name"], &["value", "updated_at"]);
        let result = tx.execute(q).await.map(|_| ()).map_err(|e| match e {
            Error::Conflict { .. } => Error::NotFound {
                resource: "user",
                id: user_id.to_string(),
            },
            e => e,
        });
        let result = tx.finish(result).await;
        self.forget_cached(user_id).await;
        result
    }

    /// Removes the user's preference `name`; `true` when it existed.
    pub async fn forget_preference(&self, user_id: i64, name: &str) -> Result<bool> {
        let (this, name) = (self.clone(), name.to_owned());
        detached(async move { this.forget_preference_inner(user_id, &name).await }).await
    }

    async fn forget_preference_inner(&self, user_id: i64, name: &str) -> Result<bool> {
        let mut q = self.db.sql();
        q.push("DELETE FROM platform_user_preferences WHERE user_id = ")
            .bind_i64(user_id)
            .push(" AND name = ")
            .bind_str(name);
        let deleted = self.db.execute(q).await;
        self.forget_cached(user_id).await;
        Ok(deleted? > 0)
    }
}

// ---- notification channel preferences ---------------------------------

/// The preference that holds a user's channel choices for one kind of
/// notification: `notifications.channels.<NAME>` (`NAME` is the
/// notification's name, or `*` for every kind). Its value is a JSON object
/// of channel names to booleans (`{"mail": false}`); a channel it does not
/// name is on.
pub fn channel_preference_key(notification: &str) -> String {
    format!("notifications.channels.{notification}")
}

/// The preference that holds a user's phone number for text messages.
pub const PHONE_PREFERENCE: &str = "notifications.phone";

/// Whether `phone` is a number in international format: `+`, then 8 to 15
/// digits (E.164).
pub fn is_phone_number(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

impl Notifications {
    /// Whether the user receives notifications called `notification`
    /// through `channel`: on unless they switched it off for this kind
    /// (`notifications.channels.<notification>`) or, when this kind does
    /// not say, for every kind (`notifications.channels.*`).
    pub async fn channel_enabled(
        &self,
        user_id: i64,
        notification: &str,
        channel: &str,
    ) -> Result<bool> {
        for key in [notification, "*"] {
            let pref = self
                .get_preference(user_id, &channel_preference_key(key))
                .await?;
            if let Some(on) = pref
                .as_ref()
                .and_then(|v| v.get(channel))
                .and_then(serde_json::Value::as_bool)
            {
                return Ok(on);
            }
        }
        Ok(true)
    }

    /// Switches `channel` on or off for the user's notifications called
    /// `notification` (`*`: every kind that does not say otherwise).
    pub async fn set_channel_enabled(
        &self,
        user_id: i64,
        notification: &str,
        channel: &str,
        enabled: bool,
    ) -> Result<()> {
        let key = channel_preference_key(notification);
        let mut value = match self.read_preference(user_id, &key).await? {
            Some(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        value.insert(channel.to_owned(), serde_json::Value::Bool(enabled));
        self.set_preference(user_id, &key, &serde_json::Value::Object(value))
            .await
    }

    /// The user's phone number for text messages, if they gave one.
    pub async fn phone(&self, user_id: i64) -> Result<Option<String>> {
        Ok(self
            .get_preference(user_id, PHONE_PREFERENCE)
            .await?
            .and_then(|v| v.as_str().map(str::to_owned)))
    }

    /// Sets (or, with `None`, removes) the user's phone number for text
    /// messages: `+` and 8 to 15 digits (E.164), spaces and dashes
    /// removed first.
    pub async fn set_phone(&self, user_id: i64, phone: Option<&str>) -> Result<()> {
        let Some(phone) = phone else {
            self.forget_preference(user_id, PHONE_PREFERENCE).await?;
            return Ok(());
        };
        let phone: String = phone
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect();
        if !is_phone_number(&phone) {
            return Err(Error::invalid(
                "phone",
                "invalid",
                "must be in international format: + and 8 to 15 digits",
            ));
        }
        self.set_preference(user_id, PHONE_PREFERENCE, &serde_json::Value::String(phone))
            .await
    }
}
