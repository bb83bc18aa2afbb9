//! [`Sessions`]: sessions kept in `platform_sessions` or a
//! [`SessionStore`], created, loaded, saved, rotated and destroyed.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{FLASH, INTENDED, MAX_DATA_BYTES, Session, SessionData, TOUCH_EVERY};
use crate::audit::AuditValues;
use crate::auth::session_store::{SessionRecord, SessionStore};
use crate::auth::{Inner, acting_as, audit_user, authorize_self, user_ctx};
use crate::context::Context;
use crate::crypto::{random_token, sha256_hex};
use crate::db::{Tx, detached};
use crate::error::{Error, Result};
use crate::value::{FieldType, Value};

/// Session storage ([`crate::auth::Auth::sessions`]).
#[derive(Clone)]
pub struct Sessions {
    pub(in crate::auth) inner: Arc<Inner>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("idle_timeout", &self.inner.config.session_idle_timeout)
            .field("lifetime", &self.inner.config.session_lifetime)
            .finish()
    }
}

// The session with its user (one query per request: the panel takes the
// user from here instead of reading it again).
const SELECT: &str = "SELECT s.id, s.user_id, s.csrf_token, s.data, s.ip, s.user_agent, s.two_factor_passed, s.password_confirmed_at, s.created_at, s.last_seen_at, s.expires_at, u.disabled_at, u.email, u.name, u.two_factor_confirmed_at, u.email_verified_at, u.created_at, u.password_change_required FROM platform_sessions s LEFT JOIN platform_users u ON u.id = s.user_id WHERE s.id = ";
const TYPES: [FieldType; 18] = [
    FieldType::Text,
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Bool,
    FieldType::DateTime,
    FieldType::DateTime,
    FieldType::DateTime,
    FieldType::DateTime,
    FieldType::DateTime,
    FieldType::Text,
    FieldType::Text,
    FieldType::DateTime,
    FieldType::DateTime,
    FieldType::DateTime,
    FieldType::Bool,
];

fn time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::DateTime(t) => Some(*t),
        _ => None,
    }
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Whether `token` has the shape of one of our tokens (43 base64url
/// characters), so junk never reaches the database.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The hash stored for a session token.
pub(in crate::auth) fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// The record a [`SessionStore`] keeps of `s`.
fn record_of(s: &Session) -> SessionRecord {
    SessionRecord {
        id: s.id.clone(),
        user_id: s.user_id,
        csrf_token: s.csrf_token.clone(),
        data: s.data.to_json(),
        ip: s.ip.clone(),
        user_agent: s.user_agent.clone(),
        two_factor_passed: s.two_factor_passed,
        password_confirmed_at: s.password_confirmed_at,
        created_at: s.created_at,
        last_seen_at: s.last_seen_at,
        expires_at: s.expires_at,
    }
}

impl Sessions {
    /// The external store, when sessions are not in the database.
    fn store(&self) -> Option<&dyn SessionStore> {
        self.inner.session_store.as_deref()
    }

    fn session_of(&self, r: SessionRecord, user: Option<crate::access::User>) -> Session {
        Session {
            id: r.id,
            user_id: r.user_id,
            user,
            csrf_token: r.csrf_token,
            two_factor_passed: r.two_factor_passed,
            password_confirmed_at: r.password_confirmed_at,
            data: SessionData::from_json(&r.data),
            ip: r.ip,
            user_agent: r.user_agent,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
            confirm_timeout: self.inner.config.password_timeout,
            pending_ttl: self.inner.config.two_factor_challenge_ttl,
        }
    }

    /// [`Sessions::load`] from the external store: the record, then its
    /// user from the database.
    async fn load_stored(&self, store: &dyn SessionStore, id: String) -> Result<Option<Session>> {
        let Some(r) = store.get(&id).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        if self.expiry(r.created_at, r.last_seen_at) <= now {
            store.remove(&id).await?;
            return Ok(None);
        }
        let user = match r.user_id {
            Some(uid) => match self.inner.access.user(uid).await? {
                Some(u) if u.disabled_at.is_none() => Some(u),
                // A deleted or disabled user's session ends.
                _ => {
                    store.remove(&id).await?;
                    return Ok(None);
                }
            },
            None => None,
        };
        let mut s = self.session_of(r, user);
        if now.signed_duration_since(s.last_seen_at) >= chrono(TOUCH_EVERY) {
            let now = crate::db::truncate_micros(now);
            s.last_seen_at = now;
            s.expires_at = self.expiry(s.created_at, now);
            store.update(&record_of(&s)).await?;
        }
        Ok(Some(s))
    }

    /// Ends the sessions of `user_id` but the one with id `except`, in the
    /// database (in `tx`) or in the external store; how many ended.
    pub(in crate::auth) async fn end_user_sessions(
        &self,
        tx: &mut Tx,
        user_id: i64,
        except: Option<String>,
    ) -> Result<u64> {
        match self.store() {
            Some(store) => store.remove_user(user_id, except.as_deref()).await,
            None => delete_user_sessions(tx, user_id, except).await,
        }
    }

    /// Moves the session `old_id` of `user_id` to `new_id` (the password
    /// change keeping the current device); whether it still existed.
    pub(in crate::auth) async fn move_user_session(
        &self,
        tx: &mut Tx,
        old_id: &str,
        new_id: &str,
        user_id: i64,
    ) -> Result<bool> {
        match self.store() {
            Some(store) => {
                let Some(mut r) = store.get(old_id).await? else {
                    return Ok(false);
                };
                r.id = new_id.to_owned();
                store.replace(old_id, &r, Some(user_id)).await
            }
            None => {
                let mut q = tx.sql();
                q.push("UPDATE platform_sessions SET id = ")
                    .bind_str(new_id.to_owned())
                    .push(" WHERE id = ")
                    .bind_str(old_id.to_owned())
                    .push(" AND user_id = ")
                    .bind_i64(user_id);
                Ok(tx.execute(q).await? == 1)
            }
        }
    }

    fn expiry(&self, created: DateTime<Utc>, seen: DateTime<Utc>) -> DateTime<Utc> {
        let c = &self.inner.config;
        let absolute = created
            .checked_add_signed(chrono(c.session_lifetime))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let idle = seen
            .checked_add_signed(chrono(c.session_idle_timeout))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        absolute.min(idle)
    }

    fn blank(&self, id: String, ip: Option<String>, user_agent: Option<String>) -> Session {
        let now = crate::db::truncate_micros(Utc::now());
        Session {
            id,
            user_id: None,
            user: None,
            csrf_token: random_token(32),
            two_factor_passed: false,
            password_confirmed_at: None,
            data: SessionData::default(),
            ip,
            user_agent,
            created_at: now,
            last_seen_at: now,
            expires_at: self.expiry(now, now),
            confirm_timeout: self.inner.config.password_timeout,
            pending_ttl: self.inner.config.two_factor_challenge_ttl,
        }
    }

    async fn insert(&self, tx: &mut Tx, s: &Session) -> Result<()> {
        let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::Text);
        let mut q = tx.sql();
        q.push("INSERT INTO platform_sessions (id, user_id, csrf_token, data, ip, user_agent, two_factor_passed, password_confirmed_at, created_at, last_seen_at, expires_at) VALUES (")
            .bind_str(s.id.clone())
            .push(", ")
            .bind(s.user_id.map_or(Value::Null, Value::Int), FieldType::I64)
            .push(", ")
            .bind_str(s.csrf_token.clone())
            .push(", ")
            .bind_str(s.data.to_json())
            .push(", ")
            .bind(opt(&s.ip), FieldType::Text)
            .push(", ")
            .bind(opt(&s.user_agent), FieldType::Text)
            .push(", ")
            .bind(Value::Bool(s.two_factor_passed), FieldType::Bool)
            .push(", ")
            .bind(
                s.password_confirmed_at.map_or(Value::Null, Value::DateTime),
                FieldType::DateTime,
            )
            .push(", ")
            .bind(Value::DateTime(s.created_at), FieldType::DateTime)
            .push(", ")
            .bind(Value::DateTime(s.last_seen_at), FieldType::DateTime)
            .push(", ")
            .bind(Value::DateTime(s.expires_at), FieldType::DateTime)
            .push(")");
        tx.execute(q).await?;
        Ok(())
    }

    /// Starts an anonymous session (for the sign-in form's CSRF token) and
    /// returns its token, for the cookie, and the session. The user agent is
    /// cut to 512 characters.
    pub async fn start(
        &self,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
    ) -> Result<(String, Session)> {
        let (this, user_agent) = (self.clone(), user_agent.map(str::to_owned));
        detached(async move { this.start_inner(ip, user_agent.as_deref()).await }).await
    }

    async fn start_inner(
        &self,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
    ) -> Result<(String, Session)> {
        let token = random_token(32);
        let ua = user_agent.map(|u| u.chars().take(512).collect::<String>());
        let s = self.blank(token_hash(&token), ip.map(|i| i.to_string()), ua);
        if let Some(store) = self.store() {
            store.put(&record_of(&s)).await?;
            return Ok((token, s));
        }
        let mut tx = self.inner.db.begin().await?;
        let r = self.insert(&mut tx, &s).await;
        tx.finish(r).await?;
        Ok((token, s))
    }

    /// The live session of `token`: `None` for unknown, malformed and
    /// expired tokens (idle longer than
    /// [`crate::auth::AuthConfig::session_idle_timeout`] or older than
    /// [`crate::auth::AuthConfig::session_lifetime`]) and for sessions of
    /// disabled users. Records the use at most once a minute.
    pub async fn load(&self, token: &str) -> Result<Option<Session>> {
        if !well_formed(token) {
            return Ok(None);
        }
        let id = token_hash(token);
        if let Some(store) = self.store() {
            return self.load_stored(store, id).await;
        }
        let db = &self.inner.db;
        let mut q = db.sql();
        q.push(SELECT).bind_str(id.clone());
        let Some(r) = db.fetch_optional(q, &TYPES).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        let created = time(&r[8]).unwrap_or_default();
        let seen = time(&r[9]).unwrap_or_default();
        let user_id = r[1].as_i64();
        let disabled = user_id.is_some() && !r[11].is_null();
        if self.expiry(created, seen) <= now || disabled {
            let mut d = db.sql();
            d.push("DELETE FROM platform_sessions WHERE id = ")
                .bind_str(id);
            db.execute(d).await?;
            return Ok(None);
        }
        // The user's columns, in `access::USER_COLUMNS` order.
        let user = match user_id {
            Some(uid) if !r[12].is_null() => Some(crate::access::user_from_row(&[
                Value::Int(uid),
                r[12].clone(),
                r[13].clone(),
                r[14].clone(),
                r[15].clone(),
                r[11].clone(),
                r[16].clone(),
                r[17].clone(),
            ])),
            _ => None,
        };
        let mut s = Session {
            id,
            user_id,
            user,
            csrf_token: r[2].as_str().unwrap_or_default().to_owned(),
            two_factor_passed: matches!(r[6], Value::Bool(true)) || r[6].as_i64() == Some(1),
            password_confirmed_at: time(&r[7]),
            data: SessionData::from_json(r[3].as_str().unwrap_or("{}")),
            ip: r[4].as_str().map(str::to_owned),
            user_agent: r[5].as_str().map(str::to_owned),
            created_at: created,
            last_seen_at: seen,
            expires_at: time(&r[10]).unwrap_or_default(),
            confirm_timeout: self.inner.config.password_timeout,
            pending_ttl: self.inner.config.two_factor_challenge_ttl,
        };
        if now.signed_duration_since(seen) >= chrono(TOUCH_EVERY) {
            let now = crate::db::truncate_micros(now);
            s.last_seen_at = now;
            s.expires_at = self.expiry(created, now);
            let mut u = db.sql();
            u.push("UPDATE platform_sessions SET last_seen_at = ")
                .bind(Value::DateTime(now), FieldType::DateTime)
                .push(", expires_at = ")
                .bind(Value::DateTime(s.expires_at), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_str(s.id.clone());
            db.execute(u).await?;
        }
        Ok(Some(s))
    }

    /// Writes the session's [`Session::data`]. A session that ended in the
    /// meantime (signed out, expired) is left ended.
    pub async fn save(&self, session: &Session) -> Result<()> {
        let data = session.data.to_json();
        if data.len() > MAX_DATA_BYTES {
            return Err(Error::invalid(
                "session",
                "too_long",
                format!("session data must be at most {MAX_DATA_BYTES} bytes"),
            ));
        }
        if let Some(store) = self.store() {
            // Only the data changes: the rest is read again so that a
            // rotation or touch made meanwhile is kept.
            if let Some(mut r) = store.get(&session.id).await? {
                r.data = data;
                store.update(&r).await?;
            }
            return Ok(());
        }
        let mut q = self.inner.db.sql();
        q.push("UPDATE platform_sessions SET data = ")
            .bind_str(data)
            .push(" WHERE id = ")
            .bind_str(session.id.clone());
        self.inner.db.execute(q).await?;
        Ok(())
    }

    /// Signs `user_id` in on `session` and returns the new token for the
    /// cookie. The old token stops working at once (session fixation
    /// defence): the session gets a new id and a new CSRF token, and keeps
    /// nothing of the old one but its flash messages and intended URL.
    ///
    /// Call it only after every factor the account needs: the password
    /// ([`crate::auth::Auth::attempt_login`]) and, for
    /// [`crate::auth::LoginOutcome::TwoFactorRequired`], a TOTP or recovery
    /// code. [`Session::two_factor_passed`] is set when the account has
    /// two-factor authentication. Audited as `login`. Fails with
    /// [`Error::Unauthenticated`] for unknown and disabled users.
    pub async fn login(
        &self,
        ctx: &Context,
        session: &mut Session,
        user_id: i64,
    ) -> Result<String> {
        let (this, ctx, mut fresh) = (self.clone(), ctx.clone(), session.clone());
        let (token, fresh) = detached(async move {
            let token = this.login_inner(&ctx, &mut fresh, user_id).await?;
            Ok((token, fresh))
        })
        .await?;
        *session = fresh;
        Ok(token)
    }

    async fn login_inner(
        &self,
        ctx: &Context,
        session: &mut Session,
        user_id: i64,
    ) -> Result<String> {
        let user = self
            .inner
            .access
            .user(user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(Error::Unauthenticated)?;
        let token = random_token(32);
        let mut fresh = self.blank(
            token_hash(&token),
            ctx.ip()
                .map(|i| i.to_string())
                .or_else(|| session.ip.clone()),
            ctx.user_agent()
                .map(str::to_owned)
                .or_else(|| session.user_agent.clone()),
        );
        fresh.user_id = Some(user.id);
        fresh.two_factor_passed = user.two_factor_confirmed_at.is_some();
        fresh.user = Some(user.clone());
        for key in [FLASH, INTENDED] {
            if let Some(v) = session.data.0.get(key) {
                fresh.data.0.insert(key.to_owned(), v.clone());
            }
        }
        let actor = acting_as(ctx, &user);
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            if let Some(store) = self.store() {
                store.remove(&session.id).await?;
                store.put(&record_of(&fresh)).await?;
            } else {
                let mut d = tx.sql();
                d.push("DELETE FROM platform_sessions WHERE id = ")
                    .bind_str(session.id.clone());
                tx.execute(d).await?;
                self.insert(&mut tx, &fresh).await?;
            }
            let mut v = AuditValues::new();
            v.insert("two_factor".into(), fresh.two_factor_passed.into());
            audit_user(&mut tx, &actor, "login", user.id, None, Some(v)).await
        }
        .await;
        tx.finish(result).await?;
        *session = fresh;
        Ok(token)
    }

    /// Gives `session` a new id and returns the new token for the cookie;
    /// the old token stops working at once. Call it at every change of
    /// privilege that does not sign in anew ([`Sessions::login`] rotates on
    /// its own): the password confirmed again, the password changed, the
    /// signed-in user's roles or permissions changed. Everything else of
    /// the session stays (user, factors, password confirmation, data, CSRF
    /// token, expiry), so the user's open pages keep working. A session
    /// that ended meanwhile is not brought back: [`Error::Unauthenticated`].
    pub async fn rotate(&self, session: &mut Session) -> Result<String> {
        let token = random_token(32);
        let new_id = token_hash(&token);
        if let Some(store) = self.store() {
            let moved = match store.get(&session.id).await? {
                Some(mut r) => {
                    r.id = new_id.clone();
                    store.replace(&session.id, &r, None).await?
                }
                None => false,
            };
            if !moved {
                return Err(Error::Unauthenticated);
            }
            session.id = new_id;
            return Ok(token);
        }
        let mut tx = self.inner.db.begin().await?;
        let result = rotate_id(&mut tx, &session.id, &new_id, None, None).await;
        if tx.finish(result).await? {
            session.id = new_id;
            Ok(token)
        } else {
            Err(Error::Unauthenticated)
        }
    }

    /// The password step of a sign-in whose account has two-factor
    /// authentication ([`crate::auth::LoginOutcome::TwoFactorRequired`]):
    /// remembers `user_id` as waiting for its second factor
    /// ([`Session::pending_login`]) and rotates the session, with a new id
    /// and a new CSRF token, keeping only its flash messages and intended
    /// URL. Returns the new token for the cookie; the old one stops working
    /// at once (a session id planted before the password step is worthless
    /// after it). The session stays anonymous until [`Sessions::login`].
    pub async fn begin_two_factor(&self, session: &mut Session, user_id: i64) -> Result<String> {
        let mut data = SessionData::default();
        for key in [FLASH, INTENDED] {
            if let Some(v) = session.data.0.get(key) {
                data.0.insert(key.to_owned(), v.clone());
            }
        }
        let mut next = session.clone();
        next.data = data;
        next.set_pending_login(user_id);
        next.csrf_token = random_token(32);
        let token = random_token(32);
        let new_id = token_hash(&token);
        if let Some(store) = self.store() {
            let mut r = record_of(&next);
            r.id = new_id.clone();
            if !store.replace(&session.id, &r, None).await? {
                return Err(Error::Unauthenticated);
            }
            next.id = new_id;
            *session = next;
            return Ok(token);
        }
        let json = next.data.to_json();
        let mut tx = self.inner.db.begin().await?;
        let result = rotate_id(
            &mut tx,
            &session.id,
            &new_id,
            Some(&next.csrf_token),
            Some(&json),
        )
        .await;
        if !tx.finish(result).await? {
            return Err(Error::Unauthenticated);
        }
        next.id = new_id;
        *session = next;
        Ok(token)
    }

    /// Ends the session of `token` (signing out). Audited as `logout` for a
    /// signed-in session.
    pub async fn logout(&self, ctx: &Context, token: &str) -> Result<()> {
        let (this, ctx, token) = (self.clone(), ctx.clone(), token.to_owned());
        detached(async move { this.logout_inner(&ctx, &token).await }).await
    }

    async fn logout_inner(&self, ctx: &Context, token: &str) -> Result<()> {
        if !well_formed(token) {
            return Ok(());
        }
        let id = token_hash(token);
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let user_id = match self.store() {
                Some(store) => store.remove(&id).await?.and_then(|r| r.user_id),
                None => {
                    let mut q = tx.sql();
                    q.push("SELECT user_id FROM platform_sessions WHERE id = ")
                        .bind_str(id.clone());
                    let user_id = tx.fetch_i64(q).await?;
                    let mut d = tx.sql();
                    d.push("DELETE FROM platform_sessions WHERE id = ")
                        .bind_str(id);
                    tx.execute(d).await?;
                    user_id
                }
            };
            if let Some(uid) = user_id {
                let actor = user_ctx(&self.inner.access, ctx, uid).await?;
                audit_user(&mut tx, &actor, "logout", uid, None, None).await?;
            }
            Ok(())
        }
        .await;
        tx.finish(result).await
    }

    /// Ends every session of `user_id` except the one of `except` (a
    /// token), e.g. "sign out my other devices"; returns how many ended.
    /// The user themself or someone with `update_user` may. Audited as
    /// `sessions_revoked` when any did. (Password changes and resets end
    /// sessions on their own.)
    pub async fn destroy_user_sessions(
        &self,
        ctx: &Context,
        user_id: i64,
        except: Option<&str>,
    ) -> Result<u64> {
        let (this, ctx, except) = (self.clone(), ctx.clone(), except.map(str::to_owned));
        detached(async move {
            this.destroy_user_sessions_inner(&ctx, user_id, except.as_deref())
                .await
        })
        .await
    }

    async fn destroy_user_sessions_inner(
        &self,
        ctx: &Context,
        user_id: i64,
        except: Option<&str>,
    ) -> Result<u64> {
        authorize_self(ctx, user_id)?;
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let n = self
                .end_user_sessions(&mut tx, user_id, except.map(token_hash))
                .await?;
            if n > 0 {
                let mut v = AuditValues::new();
                v.insert("sessions".into(), n.into());
                audit_user(&mut tx, ctx, "sessions_revoked", user_id, Some(v), None).await?;
            }
            Ok(n)
        }
        .await;
        tx.finish(result).await
    }

    /// Deletes every expired session; returns how many. Run it now and then
    /// (expired sessions never load, so this only reclaims space).
    pub async fn prune_expired(&self) -> Result<u64> {
        if self.store().is_some() {
            // The store forgets expired sessions on its own.
            return Ok(0);
        }
        let db = &self.inner.db;
        let mut q = db.sql();
        q.push("DELETE FROM platform_sessions WHERE expires_at <= ")
            .bind(Value::DateTime(Utc::now()), FieldType::DateTime);
        db.execute(q).await
    }

    /// How many live sessions `user_id` has.
    pub async fn count_for_user(&self, user_id: i64) -> Result<i64> {
        if let Some(store) = self.store() {
            return store.count_user(user_id).await;
        }
        let db = &self.inner.db;
        let mut q = db.sql();
        q.push("SELECT COUNT(*) FROM platform_sessions WHERE user_id = ")
            .bind_i64(user_id)
            .push(" AND expires_at > ")
            .bind(Value::DateTime(Utc::now()), FieldType::DateTime);
        Ok(db.fetch_i64(q).await?.unwrap_or(0))
    }

    /// Records that the password was just confirmed in `session` and
    /// rotates it (a privilege change); returns the new token.
    pub(in crate::auth) async fn mark_password_confirmed(
        &self,
        session: &mut Session,
    ) -> Result<String> {
        let now = crate::db::truncate_micros(Utc::now());
        let token = random_token(32);
        let new_id = token_hash(&token);
        if let Some(store) = self.store() {
            let moved = match store.get(&session.id).await? {
                Some(mut r) => {
                    r.id = new_id.clone();
                    r.password_confirmed_at = Some(now);
                    store.replace(&session.id, &r, None).await?
                }
                None => false,
            };
            if !moved {
                return Err(Error::Unauthenticated);
            }
            session.id = new_id;
            session.password_confirmed_at = Some(now);
            return Ok(token);
        }
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let mut q = tx.sql();
            q.push("UPDATE platform_sessions SET password_confirmed_at = ")
                .bind(Value::DateTime(now), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_str(session.id.clone());
            tx.execute(q).await?;
            rotate_id(&mut tx, &session.id, &new_id, None, None).await
        }
        .await;
        if !tx.finish(result).await? {
            return Err(Error::Unauthenticated);
        }
        session.id = new_id;
        session.password_confirmed_at = Some(now);
        Ok(token)
    }
}

/// Moves the session `old_id` to `new_id` (optionally with a new CSRF
/// token and data); whether it still existed. One `UPDATE` of the key, so
/// there is no moment with both ids or neither.
pub(in crate::auth) async fn rotate_id(
    tx: &mut Tx,
    old_id: &str,
    new_id: &str,
    csrf_token: Option<&str>,
    data: Option<&str>,
) -> Result<bool> {
    let mut q = tx.sql();
    q.push("UPDATE platform_sessions SET id = ")
        .bind_str(new_id.to_owned());
    if let Some(c) = csrf_token {
        q.push(", csrf_token = ").bind_str(c.to_owned());
    }
    if let Some(d) = data {
        q.push(", data = ").bind_str(d.to_owned());
    }
    q.push(" WHERE id = ").bind_str(old_id.to_owned());
    Ok(tx.execute(q).await? == 1)
}

/// Deletes the sessions of `user_id` but the one with id `except`.
pub(in crate::auth) async fn delete_user_sessions(
    tx: &mut Tx,
    user_id: i64,
    except: Option<String>,
) -> Result<u64> {
    let mut q = tx.sql();
    q.push("DELETE FROM platform_sessions WHERE user_id = ")
        .bind_i64(user_id);
    if let Some(id) = except {
        q.push(" AND id <> ").bind_str(id);
    }
    tx.execute(q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        assert!(well_formed(&random_token(32)));
        assert!(!well_formed("short"));
        assert!(!well_formed(
            &"a".repeat(42).chars().chain(['!']).collect::<String>()
        ));
    }
}
