//! Users, roles, permissions and API tokens.
//!
//! Passwords are hashed with argon2id. API tokens are shown once and stored
//! as SHA-256 hashes. Permission lookups are cached per user and
//! invalidated on every grant change: at once in this process, and within
//! one poll interval in every other process (each grant change bumps a
//! counter in `platform_meta` that every process polls), so a revoked
//! permission never lingers for hours the way a TTL cache lets it.
//! Every grant change is written to the audit trail in the same transaction.
//!
//! The parts of [`Access`]: users and passwords (`users`), roles and
//! permissions (`roles`), grant lookups with their cache and its
//! cross-process invalidation (`grants`), API tokens (`tokens`).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::audit::{AuditValues, NewEntry, insert_entries};
use crate::context::{Actor, Context, Grants};
use crate::db::{Db, Tx};
use crate::error::{Error, FieldErrors, Result};
use crate::value::{FieldType, Value};

mod grants;
mod roles;
mod tokens;
mod users;

/// The prefix of every API token, so secret scanners can find leaked ones.
pub const TOKEN_PREFIX: &str = "plt_";

/// How often `last_used_at` of one token is written at most.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// The framework's own "resources" whose permissions guard user and role
/// management.
pub const ACCESS_RESOURCES: [&str; 2] = ["user", "role"];

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    /// Id.
    pub id: i64,
    /// E-mail address (unique, lower-cased).
    pub email: String,
    /// Display name.
    pub name: String,
    /// When two-factor authentication was confirmed.
    pub two_factor_confirmed_at: Option<DateTime<Utc>>,
    /// When the e-mail address was verified.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// When the account was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Whether the password was generated for the user (by the console or
    /// the demo), so that the panel asks for a new one at sign-in before
    /// anything else. Cleared when the user chooses a password.
    pub password_change_required: bool,
}

/// An API token's stored facts (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    /// Id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// A name chosen by the owner.
    pub name: String,
    /// Abilities (`*` for all of the owner's permissions).
    pub abilities: Vec<String>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use (written at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A token just created: the plain text is available only now.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The stored facts.
    pub info: TokenInfo,
    /// The token to give to the client. Not stored anywhere.
    pub plain_text: String,
}

/// Input for a new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// E-mail address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Password (at least 8 characters).
    pub password: String,
}

/// What else [`Access::create_user_with`] does with a new user.
#[derive(Debug, Clone, Default)]
pub struct NewUserOptions {
    /// Roles to give, in the same transaction.
    pub roles: Vec<String>,
    /// The password was generated (not chosen by the user): the panel asks
    /// for a new one at the first sign-in ([`User::password_change_required`]).
    pub password_change_required: bool,
}

/// Minimum password length.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Maximum password length (argon2 input is bounded to keep hashing cheap
/// to refuse).
pub const MAX_PASSWORD_LEN: usize = 256;

/// Hashes a password with argon2id.
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::{Argon2, PasswordHasher};
    let h = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| Error::Backend {
            backend: "argon2",
            source: e.to_string().into(),
        })?;
    Ok(h.to_string())
}

/// Checks a password against an argon2 hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::{Argon2, PasswordHash, PasswordVerifier};
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash of a random password, checked when the e-mail is unknown so a
/// failed login takes as long whether or not the account exists.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("not a real password at all").unwrap_or_default());

#[derive(Debug, Clone)]
struct TokenRow {
    info: TokenInfo,
    email: String,
    disabled: bool,
}

#[derive(Debug)]
struct CachedGrants {
    version: u64,
    grants: Arc<Grants>,
}

#[derive(Debug)]
struct CachedToken {
    version: u64,
    fetched: Instant,
    row: Option<TokenRow>,
}

/// Users, roles, permissions and tokens of one database.
#[derive(Debug, Clone)]
pub struct Access {
    db: Db,
    version: Arc<AtomicU64>,
    seen_db_version: Arc<AtomicU64>,
    grants: moka::sync::Cache<i64, Arc<CachedGrants>>,
    tokens: moka::sync::Cache<String, Arc<CachedToken>>,
    last_used: Arc<Mutex<HashMap<i64, Instant>>>,
    /// Where permission changes are announced to other nodes, when shared.
    backplane: Arc<std::sync::OnceLock<Arc<dyn crate::backplane::Backplane>>>,
}

const USER_COLUMNS: &str = "id, email, name, two_factor_confirmed_at, email_verified_at, disabled_at, created_at, password_change_required";
const USER_TYPES: [FieldType; 8] = [
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::DateTime,
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
fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// A user from the values of [`USER_COLUMNS`], in that order.
pub(crate) fn user_from_row(r: &[Value]) -> User {
    User {
        id: r[0].as_i64().unwrap_or_default(),
        email: text(&r[1]),
        name: text(&r[2]),
        two_factor_confirmed_at: time(&r[3]),
        email_verified_at: time(&r[4]),
        disabled_at: time(&r[5]),
        created_at: time(&r[6]).unwrap_or_default(),
        password_change_required: r.get(7).is_some_and(truthy),
    }
}

/// A boolean column's value (SQLite and MySQL may answer an integer).
pub(crate) fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true)) || v.as_i64().is_some_and(|n| n != 0)
}

/// A user's e-mail address as stored and looked up: trimmed and
/// lower-cased, so that `Ada@Example.com` and `ada@example.com` are one
/// account (the table's unique index on the lower-cased address holds it on
/// every back end).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks a (normalised) user e-mail address with
/// [`crate::validate::is_email`], the one definition every writer uses.
pub(crate) fn validate_email(email: &str, errors: &mut FieldErrors) {
    if email.is_empty() {
        errors.add("email", "required", "is required");
    } else if !crate::validate::is_email(email) {
        errors.add(
            "email",
            "invalid",
            "must be a valid e-mail address (like name@example.com)",
        );
    }
}

pub(crate) fn validate_password(password: &str, errors: &mut FieldErrors) {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        errors.add(
            "password",
            "too_short",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        );
    } else if n > MAX_PASSWORD_LEN {
        errors.add(
            "password",
            "too_long",
            format!("must be at most {MAX_PASSWORD_LEN} characters"),
        );
    }
}

impl Access {
    /// Access control over `db` (the framework migrations must have run).
    pub fn new(db: Db) -> Self {
        Self {
            db,
            version: Arc::new(AtomicU64::new(1)),
            seen_db_version: Arc::new(AtomicU64::new(0)),
            grants: moka::sync::Cache::builder().max_capacity(100_000).build(),
            tokens: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            last_used: Arc::new(Mutex::new(HashMap::new())),
            backplane: Arc::default(),
        }
    }
}

/// Whether the actor may give (or take) `super_admin`: the console, the
/// system, or a super admin.
fn actor_is_super(ctx: &Context) -> bool {
    match ctx.actor() {
        Actor::Console | Actor::System => true,
        Actor::User(p) | Actor::Token(p, _) => p.grants.is_super_admin(),
        _ => false,
    }
}

async fn audit(
    tx: &mut Tx,
    ctx: &Context,
    event: &str,
    resource: &str,
    id: i64,
    old: Option<AuditValues>,
    new: Option<AuditValues>,
) -> Result<()> {
    insert_entries(
        tx,
        ctx,
        &[NewEntry {
            event: event.to_owned(),
            resource: resource.to_owned(),
            record_id: id.to_string(),
            old,
            new,
        }],
    )
    .await
}
