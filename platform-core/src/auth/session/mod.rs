//! Server-side sessions: random tokens in a cookie, their SHA-256 in
//! `platform_sessions` or, when the platform has one, in a
//! [`SessionStore`](crate::auth::session_store::SessionStore) (Redis)
//! shared by every node. The session itself is here; [`Sessions`] (the
//! store of them) is in `store.rs`.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crypto::constant_time_eq;

mod store;

pub use store::Sessions;
pub(in crate::auth) use store::token_hash;

/// How often `last_seen_at` of one session is written at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Largest accepted session data, as JSON text.
pub const MAX_DATA_BYTES: usize = 64 * 1024;

const FLASH: &str = "_flash";
const INTENDED: &str = "_intended";
const PENDING: &str = "_pending_login";

/// A session's small key/value store (JSON values), saved with
/// [`Sessions::save`]. Keys starting with `_` are used by the platform
/// (flash messages, the intended URL, a sign-in waiting for its second
/// factor).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionData(serde_json::Map<String, serde_json::Value>);

impl SessionData {
    /// The value under `key`, if present and of type `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.0
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
    /// Stores `value` under `key` (values that do not serialise are
    /// skipped).
    pub fn insert<T: Serialize + ?Sized>(&mut self, key: impl Into<String>, value: &T) {
        if let Ok(v) = serde_json::to_value(value) {
            self.0.insert(key.into(), v);
        }
    }
    /// Removes and returns the raw value under `key`.
    pub fn remove(&mut self, key: &str) -> Option<serde_json::Value> {
        self.0.remove(key)
    }
    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
    /// Whether there is nothing stored.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn to_json(&self) -> String {
        serde_json::Value::Object(self.0.clone()).to_string()
    }
    fn from_json(text: &str) -> Self {
        match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(m)) => Self(m),
            _ => Self::default(),
        }
    }
}

/// A one-time message shown on the next page (`status`, `error`, ...).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    /// A kind the page styles by (`success`, `error`, `status`...).
    pub kind: String,
    /// The text.
    pub message: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    user_id: i64,
    at: i64,
}

/// One session, as loaded by [`Sessions::load`]. Holds the SHA-256 of its
/// token, never the token.
#[derive(Clone)]
pub struct Session {
    id: String,
    user_id: Option<i64>,
    /// The user as read with the session (`None` for anonymous sessions
    /// and sessions not read by [`Sessions::load`]).
    user: Option<crate::access::User>,
    csrf_token: String,
    two_factor_passed: bool,
    password_confirmed_at: Option<DateTime<Utc>>,
    /// Flash messages, the intended URL and anything else the host keeps;
    /// written by [`Sessions::save`].
    pub data: SessionData,
    ip: Option<String>,
    user_agent: Option<String>,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    confirm_timeout: Duration,
    pending_ttl: Duration,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("two_factor_passed", &self.two_factor_passed)
            .field("password_confirmed_at", &self.password_confirmed_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The signed-in user (`None` for an anonymous session).
    pub fn user_id(&self) -> Option<i64> {
        self.user_id
    }
    /// The signed-in user as read with the session by [`Sessions::load`]
    /// (`None` for anonymous sessions).
    pub fn user(&self) -> Option<&crate::access::User> {
        self.user.as_ref()
    }
    /// Whether the session is signed in.
    pub fn is_authenticated(&self) -> bool {
        self.user_id.is_some()
    }
    /// The session's CSRF token, for forms and the `X-CSRF-Token` header.
    pub fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
    /// Whether `token` is this session's CSRF token (constant time).
    pub fn verify_csrf(&self, token: &str) -> bool {
        constant_time_eq(self.csrf_token.as_bytes(), token.as_bytes())
    }
    /// Whether a second factor (TOTP or recovery code) was proved when this
    /// session signed in. `false` for accounts without two-factor
    /// authentication, and for sessions signed in before the account turned
    /// it on.
    pub fn two_factor_passed(&self) -> bool {
        self.two_factor_passed
    }
    /// When the password was last confirmed in this session.
    pub fn password_confirmed_at(&self) -> Option<DateTime<Utc>> {
        self.password_confirmed_at
    }
    /// Whether the password was confirmed within the configured timeout
    /// ([`crate::auth::AuthConfig::password_timeout`], default 15 min).
    pub fn password_recently_confirmed(&self) -> bool {
        self.password_confirmed_at.is_some_and(|t| {
            Utc::now()
                .signed_duration_since(t)
                .to_std()
                .is_ok_and(|d| d < self.confirm_timeout)
                || t > Utc::now()
        })
    }
    /// The client address the session started from.
    pub fn ip(&self) -> Option<&str> {
        self.ip.as_deref()
    }
    /// The user agent the session started with.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
    /// When the session started.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// When the session was last used (written at most once a minute).
    pub fn last_seen_at(&self) -> DateTime<Utc> {
        self.last_seen_at
    }
    /// When the session ends unless used again.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// Adds a flash message for the next page.
    pub fn flash(&mut self, kind: impl Into<String>, message: impl Into<String>) {
        let mut all: Vec<Flash> = self.data.get(FLASH).unwrap_or_default();
        all.push(Flash {
            kind: kind.into(),
            message: message.into(),
        });
        self.data.insert(FLASH, &all);
    }
    /// Takes the flash messages (they are gone once the session is saved).
    pub fn take_flash(&mut self) -> Vec<Flash> {
        self.data
            .remove(FLASH)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }
    /// Remembers the URL to return to after signing in.
    pub fn set_intended(&mut self, url: impl Into<String>) {
        self.data.insert(INTENDED, &url.into());
    }
    /// Takes the URL to return to after signing in.
    pub fn take_intended(&mut self) -> Option<String> {
        self.data
            .remove(INTENDED)
            .and_then(|v| v.as_str().map(str::to_owned))
    }
    /// Remembers that `user_id` gave the right password and still owes the
    /// second factor ([`crate::auth::LoginOutcome::TwoFactorRequired`]).
    /// The session stays anonymous until [`Sessions::login`].
    pub fn set_pending_login(&mut self, user_id: i64) {
        self.data.insert(
            PENDING,
            &Pending {
                user_id,
                at: Utc::now().timestamp(),
            },
        );
    }
    /// The user waiting for the two-factor step, if they passed the password
    /// step within [`crate::auth::AuthConfig::two_factor_challenge_ttl`].
    pub fn pending_login(&self) -> Option<i64> {
        let p: Pending = self.data.get(PENDING)?;
        let age = Utc::now().timestamp().saturating_sub(p.at);
        let ttl = i64::try_from(self.pending_ttl.as_secs()).unwrap_or(i64::MAX);
        (0..=ttl).contains(&age).then_some(p.user_id)
    }
    /// Forgets a pending two-factor sign-in.
    pub fn clear_pending_login(&mut self) {
        self.data.remove(PENDING);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips() {
        let mut d = SessionData::default();
        d.insert("tab", "invoices");
        d.insert("n", &3);
        let back = SessionData::from_json(&d.to_json());
        assert_eq!(back.get::<String>("tab").as_deref(), Some("invoices"));
        assert_eq!(back.get::<i64>("n"), Some(3));
        assert_eq!(back.get::<i64>("tab"), None, "wrong type reads as None");
        assert_eq!(SessionData::from_json("not json"), SessionData::default());
    }
}
