//! Authentication for the admin panel: sessions, sign-in, TOTP two-factor
//! authentication with recovery codes, password reset and confirmation,
//! e-mail verification, profile and password changes, registration, and
//! throttling of every credential check. The back end of Laravel Fortify,
//! without the routes (the panel owns those).
//!
//! Get the service from [`crate::Platform::auth`]:
//!
//! ```no_run
//! # async fn f(platform: platform_core::Platform, ctx: platform_core::Context) -> platform_core::Result<()> {
//! use platform_core::auth::LoginOutcome;
//! let auth = platform.auth();
//! let (token, mut session) = auth.sessions().start(ctx.ip(), ctx.user_agent()).await?;
//! match auth.attempt_login(&ctx, "ada@example.com", "correct horse").await? {
//!     LoginOutcome::Success(user) => {
//!         let new_token = auth.sessions().login(&ctx, &mut session, user.id).await?;
//!         // set the cookie to `new_token`; `token` no longer works
//!     }
//!     LoginOutcome::TwoFactorRequired(user) => {
//!         // the password is a privilege: a new session id already
//!         let new_token = auth.sessions().begin_two_factor(&mut session, user.id).await?;
//!         // set the cookie to `new_token`, show the code form; on submit:
//!         // two_factor().verify_code(..), then login(..)
//!     }
//!     LoginOutcome::Failed => { /* show LOGIN_FAILED_MESSAGE */ }
//!     LoginOutcome::Throttled { retry_after } => { /* 429, Retry-After */ }
//! }
//! # Ok(()) }
//! ```
//!
//! ## What is stored
//! - Session tokens, password reset tokens: only their SHA-256.
//! - The TOTP secret: encrypted with the application key.
//! - Recovery codes: SHA-256 hashes, as a JSON array.
//! - Passwords: argon2id hashes.
//!
//! Every change of security state (sign-in, sign-out, two-factor changes,
//! password reset and change, profile change, e-mail verification) is
//! written to the audit trail in the same transaction, never with a secret
//! in it. Failed sign-ins, lock-outs and wrong codes are written too, within
//! limits ([`security_events`]).
//!
//! ## Sessions rotate
//! Every change of privilege gives the session a new id, and the old one
//! stops working: the password step ([`Sessions::begin_two_factor`] or
//! [`Sessions::login`]), the second factor ([`Sessions::login`]), a password
//! confirmation ([`Auth::confirm_password`]), a password change
//! ([`Auth::change_password`]), and whatever else the host decides
//! ([`Sessions::rotate`]).
//!
//! ## Throttling
//! Every credential check counts against an in-memory limit
//! ([`ThrottleConfig`]); over it, [`Auth::attempt_login`] answers
//! [`LoginOutcome::Throttled`] and the other checks a validation error with
//! code `throttled` on the field checked.

pub mod security_events;
mod session;
pub mod session_store;
mod throttle;
mod two_factor;

pub use security_events::{
    LOCKED_OUT, LOGIN_FAILED, RECOVERY_CODE_FAILED, TWO_FACTOR_FAILED, UNKNOWN_ACCOUNT,
    USER_SECURITY_EVENTS, event_label, reason_label,
};

pub use session::{Flash, MAX_DATA_BYTES, Session, SessionData, Sessions};
pub use session_store::{MemorySessionStore, SessionRecord, SessionStore};
pub use throttle::{Limit, Throttle, ThrottleConfig, Throttled};
pub use two_factor::{
    RECOVERY_CODES, RecoveryCodes, TwoFactor, TwoFactorSetup, code_at, current_code,
};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::access::{
    Access, MAX_PASSWORD_LEN, NewUser, User, hash_password, normalize_email, validate_email,
    validate_password, verify_password,
};
use crate::audit::{AuditValues, NewEntry, REDACTED, insert_entries};
use crate::context::{Actor, Context, Grants, Principal};
use crate::crypto::{Crypto, random_token, sha256_hex};
use crate::db::{Db, Tx, detached};
use crate::error::{Error, FieldErrors, Result};
use crate::permission::{Ability, permission_name};
use crate::value::{FieldType, Value};

/// The message to show for every failed sign-in, whatever failed (unknown
/// e-mail, wrong password, disabled account).
pub const LOGIN_FAILED_MESSAGE: &str = "These credentials do not match our records.";

/// The message of every refused password reset token (forged, expired,
/// used).
pub const RESET_INVALID_MESSAGE: &str = "This password reset link is invalid or has expired.";

/// The message of every refused e-mail verification link.
pub const VERIFY_INVALID_MESSAGE: &str = "This verification link is invalid or has expired.";

/// Authentication settings. The defaults are safe for an admin panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The issuer shown in authenticator apps (default `Platform`).
    pub app_name: String,
    /// A session ends after this long without a request (default 2 h).
    pub session_idle_timeout: Duration,
    /// A session ends this long after sign-in, used or not (default 12 h).
    pub session_lifetime: Duration,
    /// How long a password confirmation counts
    /// ([`Session::password_recently_confirmed`], default 15 min).
    pub password_timeout: Duration,
    /// How long a password reset link works (default 60 min).
    pub password_reset_ttl: Duration,
    /// How long an e-mail verification link works (default 60 min).
    pub email_verification_ttl: Duration,
    /// How long a sign-in may wait between the password and the
    /// two-factor step ([`Session::pending_login`], default 10 min).
    pub two_factor_challenge_ttl: Duration,
    /// Whether [`Auth::register`] creates accounts (default: no; an admin
    /// panel's users are usually invited).
    pub registration: bool,
    /// The limits of credential checks.
    pub throttle: ThrottleConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            app_name: "Platform".into(),
            session_idle_timeout: Duration::from_secs(2 * 3600),
            session_lifetime: Duration::from_secs(12 * 3600),
            password_timeout: Duration::from_secs(15 * 60),
            password_reset_ttl: Duration::from_secs(3600),
            email_verification_ttl: Duration::from_secs(3600),
            two_factor_challenge_ttl: Duration::from_secs(600),
            registration: false,
            throttle: ThrottleConfig::default(),
        }
    }
}

/// The result of [`Auth::attempt_login`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The password is right and the account has no second factor: sign the
    /// session in ([`Sessions::login`]).
    Success(User),
    /// The password is right and the account has two-factor
    /// authentication: remember the user ([`Session::set_pending_login`])
    /// and ask for a code before [`Sessions::login`].
    TwoFactorRequired(User),
    /// Unknown e-mail, wrong password or disabled account: one answer for
    /// all, shown as [`LOGIN_FAILED_MESSAGE`].
    Failed,
    /// Too many attempts; nothing was checked.
    Throttled {
        /// When to try again.
        retry_after: Duration,
    },
}

/// A password reset token just issued: mail a link holding `token` to
/// `user.email`. Its `Debug` form hides the token.
#[derive(Clone)]
pub struct ResetToken {
    /// The account.
    pub user: User,
    /// The token for the link (not stored anywhere).
    pub token: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResetToken")
            .field("user_id", &self.user.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The parts of a signed e-mail verification link
/// (`/email/verify/{user_id}?email=..&expires=..&signature=..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailVerification {
    /// The account.
    pub user_id: i64,
    /// The address being verified.
    pub email: String,
    /// Expiry, in Unix seconds.
    pub expires: i64,
    /// HMAC-SHA256 of the three, as hex.
    pub signature: String,
}

/// A profile change ([`Auth::update_profile`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// Display name (1 to 255 characters).
    pub name: String,
    /// E-mail address; changing it clears `email_verified_at`.
    pub email: String,
}

/// A password change ([`Auth::change_password`]). Its `Debug` form hides
/// both passwords.
#[derive(Clone)]
pub struct PasswordChange {
    /// The password in use.
    pub current_password: String,
    /// The new password.
    pub password: String,
}

impl fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordChange").finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    db: Db,
    access: Access,
    crypto: Arc<Crypto>,
    config: AuthConfig,
    throttle: Throttle,
    events: security_events::Recorder,
    /// Where sessions live when not in `platform_sessions`.
    session_store: Option<Arc<dyn SessionStore>>,
}

/// The authentication service of one platform ([`crate::Platform::auth`]).
/// Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

// ---- shared helpers ---------------------------------------------------------

/// `ctx`, or, when it is anonymous, `ctx` acting as `user` (for the audit
/// trail of a user's own sign-in steps).
fn acting_as(ctx: &Context, user: &User) -> Context {
    if !matches!(ctx.actor(), Actor::Anonymous) {
        return ctx.clone();
    }
    let principal = Principal {
        user_id: user.id,
        email: user.email.clone(),
        // Only for the audit trail: never used to authorize.
        grants: Arc::new(Grants::default()),
    };
    let mut c = Context::new(Actor::User(Arc::new(principal)));
    if let Some(ip) = ctx.ip() {
        c = c.with_ip(ip);
    }
    if let Some(ua) = ctx.user_agent() {
        c = c.with_user_agent(ua);
    }
    if let Some(url) = ctx.url() {
        c = c.with_url(url);
    }
    if let Some(id) = ctx.request_id() {
        c = c.with_request_id(id);
    }
    for t in ctx.tags() {
        c = c.with_tag(t.clone());
    }
    c
}

/// [`acting_as`] by user id (looked up only when `ctx` is anonymous).
async fn user_ctx(access: &Access, ctx: &Context, user_id: i64) -> Result<Context> {
    if !matches!(ctx.actor(), Actor::Anonymous) {
        return Ok(ctx.clone());
    }
    Ok(match access.user(user_id).await? {
        Some(u) => acting_as(ctx, &u),
        None => ctx.clone(),
    })
}

async fn audit_user(
    tx: &mut Tx,
    ctx: &Context,
    event: &str,
    user_id: i64,
    old: Option<AuditValues>,
    new: Option<AuditValues>,
) -> Result<()> {
    insert_entries(
        tx,
        ctx,
        &[NewEntry {
            event: event.to_owned(),
            resource: "user".to_owned(),
            record_id: user_id.to_string(),
            old,
            new,
        }],
    )
    .await
}

/// The user themself may; anyone else needs `update_user`.
fn authorize_self(ctx: &Context, user_id: i64) -> Result<()> {
    if ctx.actor().user_id() == Some(user_id) {
        Ok(())
    } else {
        ctx.authorize(&permission_name(Ability::Update, "user"))
    }
}

fn throttled_error(field: &str, t: Throttled) -> Error {
    Error::invalid(
        field,
        "throttled",
        format!("too many attempts; try again in {} seconds", t.seconds()),
    )
}

async fn hash_blocking(password: &str) -> Result<String> {
    let pw = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(|e| Error::Backend {
            backend: "argon2",
            source: Box::new(e),
        })?
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn later(d: Duration) -> DateTime<Utc> {
    Utc::now()
        .checked_add_signed(chrono(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn validate_name(name: &str, errors: &mut FieldErrors) {
    if name.is_empty() {
        errors.add("name", "required", "is required");
    } else if name.chars().count() > 255 {
        errors.add("name", "too_long", "must be at most 255 characters");
    }
}

impl Auth {
    /// Authentication over `db` with `config` (the framework migrations
    /// must have run). The platform builds one; see
    /// [`crate::platform::PlatformBuilder::auth_config`].
    pub fn new(db: Db, access: Access, crypto: Arc<Crypto>, config: AuthConfig) -> Self {
        Self::with_session_store(db, access, crypto, config, None)
    }

    /// Like [`Auth::new`], with sessions in `store` instead of the
    /// database when it is given (see
    /// [`crate::platform::PlatformBuilder::session_store`]).
    pub fn with_session_store(
        db: Db,
        access: Access,
        crypto: Arc<Crypto>,
        config: AuthConfig,
        store: Option<Arc<dyn SessionStore>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                access,
                crypto,
                throttle: Throttle::new(config.throttle),
                events: security_events::Recorder::new(),
                config,
                session_store: store,
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// Sessions.
    pub fn sessions(&self) -> Sessions {
        Sessions {
            inner: self.inner.clone(),
        }
    }

    /// Two-factor authentication.
    pub fn two_factor(&self) -> TwoFactor {
        TwoFactor {
            inner: self.inner.clone(),
        }
    }

    /// The limiters (shared by every clone of this service).
    pub fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    // ---- sign-in ----------------------------------------------------------

    /// Checks an e-mail and password, throttled per lower-cased e-mail and
    /// client address ([`Context::ip`]) and per address. Unknown e-mails,
    /// wrong passwords and disabled accounts all give
    /// [`LoginOutcome::Failed`], in the same time. Signs nothing in: see
    /// [`Sessions::login`].
    ///
    /// A failure is recorded in the audit trail as [`LOGIN_FAILED`], a
    /// throttled attempt as [`LOCKED_OUT`] (see [`USER_SECURITY_EVENTS`]
    /// and the limits on how many are written); known and unknown
    /// addresses alike, so the time taken tells nothing.
    pub async fn attempt_login(
        &self,
        ctx: &Context,
        email: &str,
        password: &str,
    ) -> Result<LoginOutcome> {
        if let Err(t) = self.inner.throttle.login(email, ctx.ip()).await {
            tracing::warn!(ip = ?ctx.ip(), "sign-in throttled");
            let mut v = AuditValues::new();
            v.insert("step".into(), "sign_in".into());
            v.insert("retry_after".into(), t.seconds().into());
            self.record_for_email(ctx, LOCKED_OUT, email, v).await;
            return Ok(LoginOutcome::Throttled {
                retry_after: t.retry_after,
            });
        }
        match self.inner.access.check_credentials(email, password).await? {
            None => {
                tracing::info!(ip = ?ctx.ip(), "failed sign-in");
                self.record_for_email(ctx, LOGIN_FAILED, email, AuditValues::new())
                    .await;
                Ok(LoginOutcome::Failed)
            }
            Some(u) if u.two_factor_confirmed_at.is_some() => {
                Ok(LoginOutcome::TwoFactorRequired(u))
            }
            Some(u) => Ok(LoginOutcome::Success(u)),
        }
    }

    async fn password_matches(&self, user_id: i64, password: &str) -> Result<bool> {
        let db = &self.inner.db;
        let mut q = db.sql();
        q.push("SELECT password_hash FROM platform_users WHERE id = ")
            .bind_i64(user_id);
        let hash = db
            .fetch_optional(q, &[FieldType::Text])
            .await?
            .and_then(|r| r.into_iter().next())
            .and_then(|v| v.as_str().map(str::to_owned));
        let Some(hash) = hash else {
            return Ok(false);
        };
        let pw = password.to_owned();
        Ok(tokio::task::spawn_blocking(move || {
            pw.chars().count() <= MAX_PASSWORD_LEN && verify_password(&pw, &hash)
        })
        .await
        .unwrap_or(false))
    }

    /// Checks the signed-in user's password again before a sensitive action
    /// and records the time in the session
    /// ([`Session::password_recently_confirmed`]). Throttled per user; an
    /// anonymous session is [`Error::Unauthenticated`].
    ///
    /// A confirmation raises the session's privileges, so it rotates the
    /// session: the answer is `Some(token)`, the new token for the cookie
    /// (the old one stops working), or `None` for a wrong password.
    pub async fn confirm_password(
        &self,
        session: &mut Session,
        password: &str,
    ) -> Result<Option<String>> {
        let user_id = session.user_id().ok_or(Error::Unauthenticated)?;
        self.inner
            .throttle
            .password_confirmation(user_id)
            .await
            .map_err(|t| throttled_error("password", t))?;
        if !self.password_matches(user_id, password).await? {
            return Ok(None);
        }
        Ok(Some(
            self.sessions().mark_password_confirmed(session).await?,
        ))
    }

    // ---- disabling accounts -------------------------------------------------

    /// Disables an account, or enables it again. A disabled account cannot
    /// sign in, its sessions end at once and its API tokens stop working
    /// (they are refused while the account is disabled). Needs
    /// `update_user`; nobody disables their own account
    /// ([`Error::Conflict`]). Audited as `disabled` / `enabled`.
    pub async fn set_disabled(&self, ctx: &Context, user_id: i64, disabled: bool) -> Result<()> {
        let (this, ctx) = (self.clone(), ctx.clone());
        detached(async move { this.set_disabled_inner(&ctx, user_id, disabled).await }).await
    }

    async fn set_disabled_inner(&self, ctx: &Context, user_id: i64, disabled: bool) -> Result<()> {
        ctx.authorize(&permission_name(Ability::Update, "user"))?;
        if disabled && ctx.actor().user_id() == Some(user_id) {
            return Err(Error::Conflict {
                field: "disabled".into(),
                message: "you cannot disable your own account".into(),
            });
        }
        let now = Utc::now();
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let mut q = tx.sql();
            q.push("UPDATE platform_users SET disabled_at = ");
            if disabled {
                q.bind(Value::DateTime(now), FieldType::DateTime);
            } else {
                q.push("NULL");
            }
            q.push(", updated_at = ")
                .bind(Value::DateTime(now), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(user_id);
            if tx.execute(q).await? == 0 {
                return Err(Error::NotFound {
                    resource: "user",
                    id: user_id.to_string(),
                });
            }
            let mut v = AuditValues::new();
            v.insert("disabled".into(), disabled.into());
            if disabled {
                let ended = self
                    .sessions()
                    .end_user_sessions(&mut tx, user_id, None)
                    .await?;
                v.insert("sessions_revoked".into(), ended.into());
            }
            // Cached tokens and grants of every process are dropped.
            self.inner.access.bump_db_version(&mut tx).await?;
            let event = if disabled { "disabled" } else { "enabled" };
            audit_user(&mut tx, ctx, event, user_id, None, Some(v)).await
        }
        .await;
        tx.finish(result).await?;
        self.inner.access.invalidate_local();
        Ok(())
    }

    // ---- password reset ---------------------------------------------------

    /// Issues a password reset token for the account of `email`, valid for
    /// [`AuthConfig::password_reset_ttl`] and single-use; earlier unused
    /// tokens of the account stop working. `None`, silently, for unknown
    /// e-mails and disabled accounts: answer the same either way ("if the
    /// address is known, a link is on its way"). Throttled per e-mail and
    /// address (validation error `throttled` on `email`). Audited as
    /// `password_reset_requested`.
    pub async fn request_password_reset(
        &self,
        ctx: &Context,
        email: &str,
    ) -> Result<Option<ResetToken>> {
        let (this, ctx, email) = (self.clone(), ctx.clone(), email.to_owned());
        detached(async move { this.request_password_reset_inner(&ctx, &email).await }).await
    }

    async fn request_password_reset_inner(
        &self,
        ctx: &Context,
        email: &str,
    ) -> Result<Option<ResetToken>> {
        self.inner
            .throttle
            .password_reset(email, ctx.ip())
            .await
            .map_err(|t| throttled_error("email", t))?;
        let Some(user) = self.inner.access.find_user_by_email(email).await? else {
            return Ok(None);
        };
        if user.disabled_at.is_some() {
            return Ok(None);
        }
        let token = random_token(32);
        let now = Utc::now();
        let expires_at = crate::db::truncate_micros(later(self.inner.config.password_reset_ttl));
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let mut d = tx.sql();
            d.push("DELETE FROM platform_password_resets WHERE (user_id = ")
                .bind_i64(user.id)
                .push(" AND used_at IS NULL) OR expires_at <= ")
                .bind(Value::DateTime(now), FieldType::DateTime);
            tx.execute(d).await?;
            let mut q = tx.sql();
            q.push("INSERT INTO platform_password_resets (token_hash, user_id, created_at, expires_at) VALUES (")
                .bind_str(sha256_hex(token.as_bytes()))
                .push(", ")
                .bind_i64(user.id)
                .push(", ")
                .bind(Value::DateTime(now), FieldType::DateTime)
                .push(", ")
                .bind(Value::DateTime(expires_at), FieldType::DateTime)
                .push(")");
            tx.execute(q).await?;
            audit_user(&mut tx, ctx, "password_reset_requested", user.id, None, None).await
        }
        .await;
        tx.finish(result).await?;
        Ok(Some(ResetToken {
            user,
            token,
            expires_at,
        }))
    }

    /// Sets a new password with a reset token. A forged, expired or used
    /// token is one validation error on `token` ([`RESET_INVALID_MESSAGE`]);
    /// a weak password is one on `password` (and leaves the token usable).
    /// On success the token and every other one of the account are used up,
    /// the password is re-hashed with argon2id, every session of the user
    /// ends, and `password_reset` is audited.
    pub async fn reset_password(
        &self,
        ctx: &Context,
        token: &str,
        new_password: &str,
    ) -> Result<User> {
        let (this, ctx) = (self.clone(), ctx.clone());
        let (token, new_password) = (token.to_owned(), new_password.to_owned());
        detached(async move { this.reset_password_inner(&ctx, &token, &new_password).await }).await
    }

    async fn reset_password_inner(
        &self,
        ctx: &Context,
        token: &str,
        new_password: &str,
    ) -> Result<User> {
        let mut errors = FieldErrors::default();
        validate_password(new_password, &mut errors);
        errors.into_result()?;
        let invalid = || Error::invalid("token", "invalid", RESET_INVALID_MESSAGE);
        if token.is_empty() || token.len() > 200 {
            return Err(invalid());
        }
        let hash = hash_blocking(new_password).await?;
        let token_hash = sha256_hex(token.as_bytes());
        let now = Utc::now();
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let mut claim = tx.sql();
            claim
                .push("UPDATE platform_password_resets SET used_at = ")
                .bind(Value::DateTime(now), FieldType::DateTime)
                .push(" WHERE token_hash = ")
                .bind_str(token_hash.clone())
                .push(" AND used_at IS NULL AND expires_at > ")
                .bind(Value::DateTime(now), FieldType::DateTime);
            if tx.execute(claim).await? != 1 {
                return Err(invalid());
            }
            let mut q = tx.sql();
            q.push("SELECT r.user_id FROM platform_password_resets r JOIN platform_users u ON u.id = r.user_id WHERE u.disabled_at IS NULL AND r.token_hash = ")
                .bind_str(token_hash);
            let user_id = tx.fetch_i64(q).await?.ok_or_else(invalid)?;
            let mut u = tx.sql();
            u.push("UPDATE platform_users SET password_hash = ")
                .bind_str(hash)
                .push(", password_change_required = ")
                .bind(Value::Bool(false), FieldType::Bool)
                .push(", updated_at = ")
                .bind(Value::DateTime(now), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(user_id);
            tx.execute(u).await?;
            let mut others = tx.sql();
            others
                .push("UPDATE platform_password_resets SET used_at = ")
                .bind(Value::DateTime(now), FieldType::DateTime)
                .push(" WHERE user_id = ")
                .bind_i64(user_id)
                .push(" AND used_at IS NULL");
            tx.execute(others).await?;
            let ended = self.sessions().end_user_sessions(&mut tx, user_id, None).await?;
            let mut v = AuditValues::new();
            v.insert("password".into(), REDACTED.into());
            v.insert("sessions_revoked".into(), ended.into());
            audit_user(&mut tx, ctx, "password_reset", user_id, None, Some(v)).await?;
            Ok(user_id)
        }
        .await;
        let user_id = tx.finish(result).await?;
        self.inner
            .access
            .user(user_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                resource: "user",
                id: user_id.to_string(),
            })
    }

    // ---- e-mail verification ----------------------------------------------

    /// The signature of a verification link for `user_id` and `email`
    /// (compared lower-cased) that works until `expires` (Unix seconds).
    pub fn verification_signature(&self, user_id: i64, email: &str, expires: i64) -> String {
        self.inner
            .crypto
            .sign(verification_payload(user_id, email, expires).as_bytes())
    }

    /// A signed verification link for the user's current address, valid
    /// for [`AuthConfig::email_verification_ttl`].
    pub fn email_verification(&self, user: &User) -> EmailVerification {
        let expires = later(self.inner.config.email_verification_ttl).timestamp();
        EmailVerification {
            user_id: user.id,
            email: user.email.clone(),
            expires,
            signature: self.verification_signature(user.id, &user.email, expires),
        }
    }

    /// Marks the user's e-mail address verified from a signed link. A
    /// forged or expired signature, or an address that is no longer the
    /// user's, is one validation error on `signature`
    /// ([`VERIFY_INVALID_MESSAGE`]). Verifying twice is fine. Audited as
    /// `email_verified`.
    pub async fn verify_email(
        &self,
        ctx: &Context,
        user_id: i64,
        email: &str,
        expires: i64,
        signature: &str,
    ) -> Result<()> {
        let (this, ctx) = (self.clone(), ctx.clone());
        let (email, signature) = (email.to_owned(), signature.to_owned());
        detached(async move {
            this.verify_email_inner(&ctx, user_id, &email, expires, &signature)
                .await
        })
        .await
    }

    async fn verify_email_inner(
        &self,
        ctx: &Context,
        user_id: i64,
        email: &str,
        expires: i64,
        signature: &str,
    ) -> Result<()> {
        let invalid = || Error::invalid("signature", "invalid", VERIFY_INVALID_MESSAGE);
        let signed = self.inner.crypto.verify(
            verification_payload(user_id, email, expires).as_bytes(),
            signature,
        );
        if !signed || expires <= Utc::now().timestamp() {
            return Err(invalid());
        }
        let user = self
            .inner
            .access
            .user(user_id)
            .await?
            .filter(|u| u.email == email.trim().to_lowercase())
            .ok_or_else(invalid)?;
        if user.email_verified_at.is_some() {
            return Ok(());
        }
        let actor = acting_as(ctx, &user);
        let now = Utc::now();
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let mut q = tx.sql();
            q.push("UPDATE platform_users SET email_verified_at = ")
                .bind(Value::DateTime(now), FieldType::DateTime)
                .push(", updated_at = ")
                .bind(Value::DateTime(now), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(user_id)
                .push(" AND email = ")
                .bind_str(user.email.clone())
                .push(" AND email_verified_at IS NULL");
            if tx.execute(q).await? == 1 {
                let mut v = AuditValues::new();
                v.insert("email".into(), user.email.clone().into());
                audit_user(&mut tx, &actor, "email_verified", user_id, None, Some(v)).await?;
            }
            Ok(())
        }
        .await;
        tx.finish(result).await
    }

    // ---- profile and password ---------------------------------------------

    /// Changes the user's name and e-mail address. Changing the address
    /// clears `email_verified_at`. The user themself or someone with
    /// `update_user` may. Validation errors are per field (`name`,
    /// `email`: `invalid`, `unique`...). Audited as `profile_updated` with
    /// the changed fields.
    pub async fn update_profile(
        &self,
        ctx: &Context,
        user_id: i64,
        input: ProfileUpdate,
    ) -> Result<User> {
        let (this, ctx) = (self.clone(), ctx.clone());
        detached(async move { this.update_profile_inner(&ctx, user_id, input).await }).await
    }

    async fn update_profile_inner(
        &self,
        ctx: &Context,
        user_id: i64,
        input: ProfileUpdate,
    ) -> Result<User> {
        authorize_self(ctx, user_id)?;
        let access = &self.inner.access;
        let user = access.user(user_id).await?.ok_or_else(|| Error::NotFound {
            resource: "user",
            id: user_id.to_string(),
        })?;
        let name = input.name.trim().to_owned();
        let email = normalize_email(&input.email);
        let mut errors = FieldErrors::default();
        validate_name(&name, &mut errors);
        validate_email(&email, &mut errors);
        if email != user.email
            && access
                .find_user_by_email(&email)
                .await?
                .is_some_and(|o| o.id != user_id)
        {
            errors.add("email", "unique", "has already been taken");
        }
        errors.into_result()?;
        let email_changed = email != user.email;
        if !email_changed && name == user.name {
            return Ok(user);
        }
        let now = Utc::now();
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let mut q = tx.sql();
            q.push("UPDATE platform_users SET name = ")
                .bind_str(name.clone())
                .push(", email = ")
                .bind_str(email.clone());
            if email_changed {
                q.push(", email_verified_at = NULL");
            }
            q.push(", updated_at = ")
                .bind(Value::DateTime(now), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(user_id);
            tx.execute(q).await.map_err(|e| match e {
                Error::Conflict { .. } => {
                    Error::invalid("email", "unique", "has already been taken")
                }
                e => e,
            })?;
            let (mut old, mut new) = (AuditValues::new(), AuditValues::new());
            if name != user.name {
                old.insert("name".into(), user.name.clone().into());
                new.insert("name".into(), name.clone().into());
            }
            if email_changed {
                old.insert("email".into(), user.email.clone().into());
                new.insert("email".into(), email.clone().into());
                old.insert(
                    "email_verified_at".into(),
                    user.email_verified_at.map(|t| t.to_rfc3339()).into(),
                );
                new.insert("email_verified_at".into(), serde_json::Value::Null);
            }
            audit_user(
                &mut tx,
                ctx,
                "profile_updated",
                user_id,
                Some(old),
                Some(new),
            )
            .await
        }
        .await;
        tx.finish(result).await?;
        access.user(user_id).await?.ok_or_else(|| Error::NotFound {
            resource: "user",
            id: user_id.to_string(),
        })
    }

    /// Changes the user's password after checking the current one
    /// (throttled per user), and ends every other session of the user:
    /// all but the one of `keep_token` (the caller's own). Errors are per
    /// field: `current_password` (`invalid`, `throttled`) and `password`.
    /// The user themself or someone with `update_user` may; the current
    /// password is required either way. Audited as `password_changed`.
    ///
    /// The kept session is rotated in the same transaction: the answer is
    /// its new token for the cookie (`None` without `keep_token`, or when
    /// that session is not one of the user's).
    pub async fn change_password(
        &self,
        ctx: &Context,
        user_id: i64,
        input: PasswordChange,
        keep_token: Option<&str>,
    ) -> Result<Option<String>> {
        let (this, ctx) = (self.clone(), ctx.clone());
        let keep_token = keep_token.map(str::to_owned);
        detached(async move {
            this.change_password_inner(&ctx, user_id, input, keep_token.as_deref())
                .await
        })
        .await
    }

    async fn change_password_inner(
        &self,
        ctx: &Context,
        user_id: i64,
        input: PasswordChange,
        keep_token: Option<&str>,
    ) -> Result<Option<String>> {
        authorize_self(ctx, user_id)?;
        self.inner
            .throttle
            .password_confirmation(user_id)
            .await
            .map_err(|t| throttled_error("current_password", t))?;
        let mut errors = FieldErrors::default();
        if !self
            .password_matches(user_id, &input.current_password)
            .await?
        {
            errors.add("current_password", "invalid", "is incorrect");
        }
        validate_password(&input.password, &mut errors);
        if !errors.has("current_password")
            && !errors.has("password")
            && input.password == input.current_password
        {
            errors.add(
                "password",
                "unchanged",
                "must differ from the current password",
            );
        }
        errors.into_result()?;
        let hash = hash_blocking(&input.password).await?;
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            set_password_hash(&mut tx, user_id, hash, false).await?;
            let keep = keep_token.map(session::token_hash);
            let ended = self
                .sessions()
                .end_user_sessions(&mut tx, user_id, keep.clone())
                .await?;
            let mut rotated = None;
            if let Some(old) = keep {
                let token = random_token(32);
                let new_id = session::token_hash(&token);
                if self
                    .sessions()
                    .move_user_session(&mut tx, &old, &new_id, user_id)
                    .await?
                {
                    rotated = Some(token);
                }
            }
            let mut v = AuditValues::new();
            v.insert("password".into(), REDACTED.into());
            v.insert("sessions_revoked".into(), ended.into());
            audit_user(&mut tx, ctx, "password_changed", user_id, None, Some(v)).await?;
            Ok(rotated)
        }
        .await;
        tx.finish(result).await
    }

    /// Sets `user_id`'s password on their behalf (the console's
    /// `user:password`): the new hash, whether the user must choose a new
    /// password at the next panel sign-in (`require_change`, for a
    /// generated password), the end of every session of the account, and
    /// the audit entry `password_changed`, all in one transaction. Needs
    /// `update_user`. Returns how many sessions ended.
    pub async fn set_user_password(
        &self,
        ctx: &Context,
        user_id: i64,
        password: &str,
        require_change: bool,
    ) -> Result<u64> {
        let (this, ctx, password) = (self.clone(), ctx.clone(), password.to_owned());
        detached(async move {
            this.set_user_password_inner(&ctx, user_id, &password, require_change)
                .await
        })
        .await
    }

    async fn set_user_password_inner(
        &self,
        ctx: &Context,
        user_id: i64,
        password: &str,
        require_change: bool,
    ) -> Result<u64> {
        ctx.authorize(&permission_name(Ability::Update, "user"))?;
        let mut errors = FieldErrors::default();
        validate_password(password, &mut errors);
        errors.into_result()?;
        let hash = hash_blocking(password).await?;
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            if set_password_hash(&mut tx, user_id, hash, require_change).await? != 1 {
                return Err(Error::NotFound {
                    resource: "user",
                    id: user_id.to_string(),
                });
            }
            let ended = self
                .sessions()
                .end_user_sessions(&mut tx, user_id, None)
                .await?;
            let mut v = AuditValues::new();
            v.insert("password".into(), REDACTED.into());
            v.insert("password_change_required".into(), require_change.into());
            v.insert("sessions_revoked".into(), ended.into());
            audit_user(&mut tx, ctx, "password_changed", user_id, None, Some(v)).await?;
            Ok(ended)
        }
        .await;
        tx.finish(result).await
    }

    /// Creates an account from a public sign-up form, when
    /// [`AuthConfig::registration`] is on ([`Error::Unsupported`]
    /// otherwise). Throttled per address. Validation as
    /// [`Access::create_user`]; audited as `created` by the system, with
    /// the client's address.
    pub async fn register(&self, ctx: &Context, input: NewUser) -> Result<User> {
        if !self.inner.config.registration {
            return Err(Error::Unsupported("registration is turned off".into()));
        }
        self.inner
            .throttle
            .address(ctx.ip())
            .await
            .map_err(|t| throttled_error("email", t))?;
        let mut system = Context::system().with_tag("registration");
        if let Some(ip) = ctx.ip() {
            system = system.with_ip(ip);
        }
        if let Some(ua) = ctx.user_agent() {
            system = system.with_user_agent(ua);
        }
        self.inner.access.create_user(&system, input).await
    }

    /// Deletes expired sessions and expired or used password reset tokens;
    /// returns how many rows went.
    pub async fn prune_expired(&self) -> Result<u64> {
        let sessions = self.sessions().prune_expired().await?;
        let db = &self.inner.db;
        let mut q = db.sql();
        q.push("DELETE FROM platform_password_resets WHERE used_at IS NOT NULL OR expires_at <= ")
            .bind(Value::DateTime(Utc::now()), FieldType::DateTime);
        Ok(sessions + db.execute(q).await?)
    }
}

fn verification_payload(user_id: i64, email: &str, expires: i64) -> String {
    format!(
        "platform/verify-email\n{user_id}\n{}\n{expires}",
        email.trim().to_lowercase()
    )
}

/// Stores a new password hash for `user_id` in `tx`, with whether it must be
/// changed at the next sign-in; returns the rows changed.
async fn set_password_hash(
    tx: &mut crate::db::Tx,
    user_id: i64,
    hash: String,
    require_change: bool,
) -> Result<u64> {
    let mut q = tx.sql();
    q.push("UPDATE platform_users SET password_hash = ")
        .bind_str(hash)
        .push(", password_change_required = ")
        .bind(Value::Bool(require_change), FieldType::Bool)
        .push(", updated_at = ")
        .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
        .push(" WHERE id = ")
        .bind_i64(user_id);
    tx.execute(q).await
}
