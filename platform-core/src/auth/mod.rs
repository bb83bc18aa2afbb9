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

mod login;
mod password;
mod profile;
mod verification;

pub use login::LoginOutcome;
pub use password::{PasswordChange, ResetToken};
pub use profile::ProfileUpdate;
pub use verification::EmailVerification;

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

use crate::access::{Access, NewUser, User, hash_password};
use crate::audit::{AuditValues, NewEntry, insert_entries};
use crate::context::{Actor, Context, Grants, Principal};
use crate::crypto::Crypto;
use crate::db::{Db, Tx};
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
