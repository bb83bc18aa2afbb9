//! Users, roles, permissions and API tokens.
//!
//! Passwords are hashed with argon2id. API tokens are shown once and stored
//! as SHA-256 hashes. Permission lookups are cached per user and
//! invalidated on every grant change: at once in this process, and within
//! one poll interval in every other process (each grant change bumps a
//! counter in `platform_meta` that every process polls), so a revoked
//! permission never lingers for hours the way a TTL cache lets it.
//! Every grant change is written to the audit trail in the same transaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::audit::{AuditValues, NewEntry, insert_entries};
use crate::context::{Actor, Context, Grants, Principal, TokenScope};
use crate::crypto::{random_token, sha256_hex};
use crate::db::{Db, Tx, detached, dialect};
use crate::error::{Error, FieldErrors, Result};
use crate::permission::{
    Ability, GLOBAL_PERMISSIONS, ResourcePermissions, SUPER_ADMIN, permission_name,
};
use crate::resource::Registry;
use crate::value::{FieldType, Value};

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
        }
    }

    // ---- cache coherence ----------------------------------------------

    pub(crate) fn invalidate_local(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) async fn bump_db_version(&self, tx: &mut Tx) -> Result<()> {
        tx.execute(crate::db::Sql::literal(
            tx.backend(),
            "UPDATE platform_meta SET value = value + 1 WHERE name = 'access_version'",
        ))
        .await?;
        Ok(())
    }

    /// Reads the shared grant counter and drops cached grants if another
    /// process changed any. The platform calls this every second.
    pub async fn poll_changes(&self) -> Result<()> {
        let v = self
            .db
            .fetch_i64(crate::db::Sql::literal(
                self.db.backend(),
                "SELECT value FROM platform_meta WHERE name = 'access_version'",
            ))
            .await?
            .unwrap_or(0);
        let v = u64::try_from(v).unwrap_or(0);
        if self.seen_db_version.swap(v, Ordering::SeqCst) != v {
            self.invalidate_local();
        }
        Ok(())
    }

    /// Polls [`Access::poll_changes`] every `interval` until stopped.
    pub async fn run_poller(self, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            if let Err(e) = self.poll_changes().await {
                tracing::debug!(error = %e, "access poll failed");
            }
        }
    }

    /// Commits (or, on error, rolls back) a grant change and drops the
    /// cached grants of this process.
    async fn commit_change(&self, tx: Tx, result: Result<()>) -> Result<()> {
        tx.finish(result).await?;
        self.invalidate_local();
        Ok(())
    }

    // ---- users ----------------------------------------------------------

    /// Creates a user. Needs `create_user`.
    pub async fn create_user(&self, ctx: &Context, input: NewUser) -> Result<User> {
        self.create_user_with_roles(ctx, input, &[]).await
    }

    /// Creates a user and gives it `roles`, all in one transaction: when
    /// anything fails (an unknown role, a taken e-mail), nothing is written.
    /// Needs `create_user`, and `update_user` when `roles` is not empty;
    /// only a super admin (or the console) gives `super_admin`.
    pub async fn create_user_with_roles(
        &self,
        ctx: &Context,
        input: NewUser,
        roles: &[String],
    ) -> Result<User> {
        let options = NewUserOptions {
            roles: roles.to_vec(),
            password_change_required: false,
        };
        self.create_user_with(ctx, input, options).await
    }

    /// As [`Access::create_user_with_roles`], with the roles and the
    /// forced password change of `options`, all in one transaction.
    pub async fn create_user_with(
        &self,
        ctx: &Context,
        input: NewUser,
        options: NewUserOptions,
    ) -> Result<User> {
        let (this, ctx) = (self.clone(), ctx.clone());
        detached(async move {
            this.create_user_with_roles_inner(
                &ctx,
                input,
                &options.roles,
                options.password_change_required,
            )
            .await
        })
        .await
    }

    async fn create_user_with_roles_inner(
        &self,
        ctx: &Context,
        input: NewUser,
        roles: &[String],
        change_required: bool,
    ) -> Result<User> {
        ctx.authorize(&permission_name(Ability::Create, "user"))?;
        let mut roles: Vec<String> = roles.iter().map(|r| r.trim().to_owned()).collect();
        roles.sort();
        roles.dedup();
        if !roles.is_empty() {
            ctx.authorize(&permission_name(Ability::Update, "user"))?;
        }
        if roles.iter().any(|r| r == SUPER_ADMIN) && !actor_is_super(ctx) {
            return Err(Error::PermissionDenied {
                ability: SUPER_ADMIN.to_owned(),
            });
        }
        let email = normalize_email(&input.email);
        let name = input.name.trim().to_owned();
        let mut errors = FieldErrors::default();
        validate_email(&email, &mut errors);
        validate_password(&input.password, &mut errors);
        if name.is_empty() {
            errors.add("name", "required", "is required");
        } else if name.chars().count() > 255 {
            errors.add("name", "too_long", "must be at most 255 characters");
        }
        if self.find_user_by_email(&email).await?.is_some() {
            errors.add("email", "unique", "has already been taken");
        }
        if !roles.is_empty() {
            let known = self.roles().await?;
            for r in roles.iter().filter(|r| !known.contains(r)) {
                errors.add("roles", "invalid", format!("`{r}` is not a role"));
            }
        }
        errors.into_result()?;
        let hash = hash_password(&input.password)?;
        let now = Value::DateTime(Utc::now());
        let mut tx = self.db.begin().await?;
        let result: Result<i64> = async {
            let mut q = tx.sql();
            q.push("INSERT INTO platform_users (email, name, password_hash, password_change_required, created_at, updated_at) VALUES (")
                .bind_str(email.clone())
                .push(", ")
                .bind_str(name.clone())
                .push(", ")
                .bind_str(hash)
                .push(", ")
                .bind(Value::Bool(change_required), FieldType::Bool)
                .push(", ")
                .bind(now.clone(), FieldType::DateTime)
                .push(", ")
                .bind(now, FieldType::DateTime)
                .push(")");
            dialect::push_returning(&mut q, "id");
            let id = tx.insert_returning_id(q).await.map_err(|e| match e {
                Error::Conflict { .. } => {
                    Error::invalid("email", "unique", "has already been taken")
                }
                e => e,
            })?;
            let mut new = AuditValues::new();
            new.insert("email".into(), email.into());
            new.insert("name".into(), name.into());
            if change_required {
                new.insert("password_change_required".into(), true.into());
            }
            audit(&mut tx, ctx, "created", "user", id, None, Some(new)).await?;
            for role in &roles {
                // Read again inside the transaction: a role deleted since
                // the check above fails the whole creation.
                let rid = role_id(&mut tx, role).await.map_err(|_| {
                    Error::invalid("roles", "invalid", format!("`{role}` is not a role"))
                })?;
                let mut m = tx.sql();
                m.push("INSERT INTO platform_user_roles (user_id, role_id) VALUES (")
                    .bind_i64(id)
                    .push(", ")
                    .bind_i64(rid)
                    .push(")");
                tx.execute(m).await?;
                let mut v = AuditValues::new();
                v.insert("role".into(), role.as_str().into());
                audit(&mut tx, ctx, "role_assigned", "user", id, None, Some(v)).await?;
            }
            if !roles.is_empty() {
                self.bump_db_version(&mut tx).await?;
            }
            Ok(id)
        }
        .await;
        let id = tx.finish(result).await?;
        if !roles.is_empty() {
            self.invalidate_local();
        }
        self.user(id).await?.ok_or_else(|| Error::NotFound {
            resource: "user",
            id: id.to_string(),
        })
    }

    /// A user by id.
    pub async fn user(&self, id: i64) -> Result<Option<User>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(USER_COLUMNS)
            .push(" FROM platform_users WHERE id = ")
            .bind_i64(id);
        Ok(self
            .db
            .fetch_optional(q, &USER_TYPES)
            .await?
            .map(|r| user_from_row(&r)))
    }

    /// A user by e-mail address (case-insensitive).
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(USER_COLUMNS)
            .push(" FROM platform_users WHERE email = ")
            .bind_str(normalize_email(email));
        Ok(self
            .db
            .fetch_optional(q, &USER_TYPES)
            .await?
            .map(|r| user_from_row(&r)))
    }

    /// Every user, by id.
    pub async fn users(&self) -> Result<Vec<User>> {
        let mut q = self.db.sql();
        q.push("SELECT ")
            .push(USER_COLUMNS)
            .push(" FROM platform_users ORDER BY id");
        Ok(self
            .db
            .fetch_all(q, &USER_TYPES)
            .await?
            .iter()
            .map(|r| user_from_row(r))
            .collect())
    }

    /// The user with this e-mail and password, if both match and the account
    /// is enabled. Takes as long for an unknown e-mail as for a wrong
    /// password.
    pub async fn check_credentials(&self, email: &str, password: &str) -> Result<Option<User>> {
        let mut q = self.db.sql();
        q.push("SELECT id, password_hash, disabled_at FROM platform_users WHERE email = ")
            .bind_str(normalize_email(email));
        let row = self
            .db
            .fetch_optional(q, &[FieldType::I64, FieldType::Text, FieldType::DateTime])
            .await?;
        let pw = password.to_owned();
        let (hash, id, disabled) = match &row {
            Some(r) => (text(&r[1]), r[0].as_i64(), !r[2].is_null()),
            None => (DUMMY_HASH.clone(), None, false),
        };
        let ok = tokio::task::spawn_blocking(move || {
            pw.chars().count() <= MAX_PASSWORD_LEN && verify_password(&pw, &hash)
        })
        .await
        .unwrap_or(false);
        match (ok, id, disabled) {
            (true, Some(id), false) => self.user(id).await,
            _ => Ok(None),
        }
    }

    /// Sets a user's password. Needs `update_user`, or to be that user (whose
    /// own choice also clears [`User::password_change_required`]).
    pub async fn set_password(&self, ctx: &Context, user_id: i64, password: &str) -> Result<()> {
        let (this, ctx, password) = (self.clone(), ctx.clone(), password.to_owned());
        detached(async move { this.set_password_inner(&ctx, user_id, &password).await }).await
    }

    async fn set_password_inner(&self, ctx: &Context, user_id: i64, password: &str) -> Result<()> {
        if ctx.actor().user_id() != Some(user_id) {
            ctx.authorize(&permission_name(Ability::Update, "user"))?;
        }
        let mut errors = FieldErrors::default();
        validate_password(password, &mut errors);
        errors.into_result()?;
        let hash = hash_password(password)?;
        let own = ctx.actor().user_id() == Some(user_id);
        let mut tx = self.db.begin().await?;
        let result: Result<()> = async {
            let mut q = tx.sql();
            q.push("UPDATE platform_users SET password_hash = ")
                .bind_str(hash);
            if own {
                q.push(", password_change_required = ")
                    .bind(Value::Bool(false), FieldType::Bool);
            }
            q.push(", updated_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(user_id);
            if tx.execute(q).await? == 0 {
                return Err(Error::NotFound {
                    resource: "user",
                    id: user_id.to_string(),
                });
            }
            let mut v = AuditValues::new();
            v.insert("password".into(), crate::audit::REDACTED.into());
            audit(
                &mut tx,
                ctx,
                "password_changed",
                "user",
                user_id,
                None,
                Some(v),
            )
            .await?;
            Ok(())
        }
        .await;
        self.commit_change(tx, result).await
    }

    // ---- roles and permissions -------------------------------------------

    /// Creates the permission rows for every resource in `registry`, the
    /// framework's own (users, roles) and the global ones, and the
    /// `super_admin` role. Returns how many permissions were new.
    pub async fn sync_permissions(&self, registry: &Registry) -> Result<usize> {
        let mut names: Vec<String> = registry.permission_names();
        for r in ACCESS_RESOURCES {
            names.extend(
                ResourcePermissions::for_resource(r)
                    .all()
                    .map(str::to_owned),
            );
        }
        names.extend(GLOBAL_PERMISSIONS.iter().map(|s| (*s).to_owned()));
        let existing: std::collections::HashSet<String> =
            self.permissions().await?.into_iter().collect();
        let missing: Vec<&String> = names.iter().filter(|n| !existing.contains(*n)).collect();
        let mut tx = self.db.begin().await?;
        let result: Result<()> = async {
            let now = Value::DateTime(Utc::now());
            for chunk in missing.chunks(200) {
                let mut q = tx.sql();
                dialect::push_insert_ignore_into(&mut q);
                q.push("platform_permissions (name, created_at) VALUES ");
                q.join(chunk, ", ", |q, n| {
                    q.push("(")
                        .bind_str(n.as_str())
                        .push(", ")
                        .bind(now.clone(), FieldType::DateTime)
                        .push(")");
                });
                dialect::push_ignore_conflicts(&mut q, &[]);
                tx.execute(q).await?;
            }
            let mut r = tx.sql();
            dialect::push_insert_ignore_into(&mut r);
            r.push("platform_roles (name, created_at) VALUES (")
                .bind_str(SUPER_ADMIN)
                .push(", ")
                .bind(now, FieldType::DateTime)
                .push(")");
            dialect::push_ignore_conflicts(&mut r, &[]);
            tx.execute(r).await?;
            self.bump_db_version(&mut tx).await
        }
        .await;
        self.commit_change(tx, result).await?;
        Ok(missing.len())
    }

    /// Every permission name, sorted.
    pub async fn permissions(&self) -> Result<Vec<String>> {
        let q = crate::db::Sql::literal(
            self.db.backend(),
            "SELECT name FROM platform_permissions ORDER BY name",
        );
        Ok(self
            .db
            .fetch_all(q, &[FieldType::Text])
            .await?
            .iter()
            .map(|r| text(&r[0]))
            .collect())
    }

    /// Every role name, sorted.
    pub async fn roles(&self) -> Result<Vec<String>> {
        let q = crate::db::Sql::literal(
            self.db.backend(),
            "SELECT name FROM platform_roles ORDER BY name",
        );
        Ok(self
            .db
            .fetch_all(q, &[FieldType::Text])
            .await?
            .iter()
            .map(|r| text(&r[0]))
            .collect())
    }

    /// Creates a role. Needs `create_role`.
    pub async fn create_role(&self, ctx: &Context, name: &str) -> Result<i64> {
        self.create_role_with_permissions(ctx, name, &[]).await
    }

    /// Creates a role with `permissions` (every name must exist), in one
    /// transaction: when a name is unknown or taken, nothing is written.
    /// Needs `create_role`, and `update_role` when `permissions` is not
    /// empty.
    pub async fn create_role_with_permissions(
        &self,
        ctx: &Context,
        name: &str,
        permissions: &[String],
    ) -> Result<i64> {
        let (this, ctx, name, permissions) = (
            self.clone(),
            ctx.clone(),
            name.to_owned(),
            permissions.to_vec(),
        );
        detached(async move {
            this.create_role_with_permissions_inner(&ctx, &name, &permissions)
                .await
        })
        .await
    }

    async fn create_role_with_permissions_inner(
        &self,
        ctx: &Context,
        name: &str,
        permissions: &[String],
    ) -> Result<i64> {
        ctx.authorize(&permission_name(Ability::Create, "role"))?;
        if !permissions.is_empty() {
            ctx.authorize(&permission_name(Ability::Update, "role"))?;
        }
        let name = name.trim();
        if name.is_empty() || name.len() > 191 {
            return Err(Error::invalid(
                "name",
                "invalid",
                "must be 1 to 191 characters",
            ));
        }
        let mut permissions = permissions.to_vec();
        permissions.sort();
        permissions.dedup();
        let mut tx = self.db.begin().await?;
        let result: Result<i64> = async {
            let pids = permission_ids(&mut tx, &permissions).await?;
            let mut q = tx.sql();
            q.push("INSERT INTO platform_roles (name, created_at) VALUES (")
                .bind_str(name)
                .push(", ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(")");
            dialect::push_returning(&mut q, "id");
            let id = tx.insert_returning_id(q).await.map_err(|e| match e {
                Error::Conflict { .. } => {
                    Error::invalid("name", "unique", "has already been taken")
                }
                e => e,
            })?;
            for chunk in pids.chunks(200) {
                let mut q = tx.sql();
                q.push("INSERT INTO platform_role_permissions (role_id, permission_id) VALUES ");
                q.join(chunk, ", ", |q, pid| {
                    q.push("(").bind_i64(id).push(", ").bind_i64(*pid).push(")");
                });
                tx.execute(q).await?;
            }
            let mut v = AuditValues::new();
            v.insert("name".into(), name.into());
            if !permissions.is_empty() {
                v.insert("permissions".into(), serde_json::json!(permissions));
            }
            audit(&mut tx, ctx, "created", "role", id, None, Some(v)).await?;
            Ok(id)
        }
        .await;
        let id = tx.finish(result).await?;
        self.invalidate_local();
        Ok(id)
    }

    /// Deletes a role (and its grants). Needs `delete_role`. The
    /// `super_admin` role cannot be deleted.
    pub async fn delete_role(&self, ctx: &Context, name: &str) -> Result<()> {
        let (this, ctx, name) = (self.clone(), ctx.clone(), name.to_owned());
        detached(async move { this.delete_role_inner(&ctx, &name).await }).await
    }

    async fn delete_role_inner(&self, ctx: &Context, name: &str) -> Result<()> {
        ctx.authorize(&permission_name(Ability::Delete, "role"))?;
        if name == SUPER_ADMIN {
            return Err(Error::invalid(
                "name",
                "invalid",
                "the super_admin role cannot be deleted",
            ));
        }
        let mut tx = self.db.begin().await?;
        let result: Result<()> = async {
            let role_id = role_id(&mut tx, name).await?;
            let mut q = tx.sql();
            q.push("DELETE FROM platform_roles WHERE id = ")
                .bind_i64(role_id);
            tx.execute(q).await?;
            let mut v = AuditValues::new();
            v.insert("name".into(), name.into());
            audit(&mut tx, ctx, "deleted", "role", role_id, Some(v), None).await?;
            self.bump_db_version(&mut tx).await?;
            Ok(())
        }
        .await;
        self.commit_change(tx, result).await
    }

    /// The permissions of a role.
    pub async fn role_permissions(&self, role: &str) -> Result<Vec<String>> {
        let mut q = self.db.sql();
        q.push("SELECT p.name FROM platform_permissions p JOIN platform_role_permissions rp ON rp.permission_id = p.id JOIN platform_roles r ON r.id = rp.role_id WHERE r.name = ")
            .bind_str(role)
            .push(" ORDER BY p.name");
        Ok(self
            .db
            .fetch_all(q, &[FieldType::Text])
            .await?
            .iter()
            .map(|r| text(&r[0]))
            .collect())
    }

    /// Replaces a role's permissions with `permissions` (every name must
    /// exist). Needs `update_role`.
    pub async fn set_role_permissions(
        &self,
        ctx: &Context,
        role: &str,
        permissions: &[String],
    ) -> Result<()> {
        let (this, ctx) = (self.clone(), ctx.clone());
        let (role, permissions) = (role.to_owned(), permissions.to_vec());
        detached(async move {
            this.set_role_permissions_inner(&ctx, &role, &permissions)
                .await
        })
        .await
    }

    async fn set_role_permissions_inner(
        &self,
        ctx: &Context,
        role: &str,
        permissions: &[String],
    ) -> Result<()> {
        ctx.authorize(&permission_name(Ability::Update, "role"))?;
        let before = self.role_permissions(role).await?;
        let mut tx = self.db.begin().await?;
        let result: Result<()> = async {
            let rid = role_id(&mut tx, role).await?;
            let ids = permission_ids(&mut tx, permissions).await?;
            let mut del = tx.sql();
            del.push("DELETE FROM platform_role_permissions WHERE role_id = ")
                .bind_i64(rid);
            tx.execute(del).await?;
            for chunk in ids.chunks(200) {
                let mut q = tx.sql();
                q.push("INSERT INTO platform_role_permissions (role_id, permission_id) VALUES ");
                q.join(chunk, ", ", |q, pid| {
                    q.push("(")
                        .bind_i64(rid)
                        .push(", ")
                        .bind_i64(*pid)
                        .push(")");
                });
                tx.execute(q).await?;
            }
            let mut old = AuditValues::new();
            old.insert("permissions".into(), serde_json::json!(before));
            let mut new = AuditValues::new();
            let mut sorted = permissions.to_vec();
            sorted.sort();
            sorted.dedup();
            new.insert("permissions".into(), serde_json::json!(sorted));
            audit(&mut tx, ctx, "updated", "role", rid, Some(old), Some(new)).await?;
            self.bump_db_version(&mut tx).await?;
            Ok(())
        }
        .await;
        self.commit_change(tx, result).await
    }

    /// Grants one permission to a role. Needs `update_role`.
    pub async fn grant_role_permission(
        &self,
        ctx: &Context,
        role: &str,
        permission: &str,
    ) -> Result<()> {
        let mut perms = self.role_permissions(role).await?;
        if !perms.iter().any(|p| p == permission) {
            perms.push(permission.to_owned());
        }
        self.set_role_permissions(ctx, role, &perms).await
    }

    /// Revokes one permission from a role. Needs `update_role`.
    pub async fn revoke_role_permission(
        &self,
        ctx: &Context,
        role: &str,
        permission: &str,
    ) -> Result<()> {
        let perms: Vec<String> = self
            .role_permissions(role)
            .await?
            .into_iter()
            .filter(|p| p != permission)
            .collect();
        self.set_role_permissions(ctx, role, &perms).await
    }

    /// Gives a user a role. Needs `update_user`.
    pub async fn assign_role(&self, ctx: &Context, user_id: i64, role: &str) -> Result<()> {
        self.change_membership(ctx, user_id, "role", role, true)
            .await
    }

    /// Takes a role from a user. Needs `update_user`.
    pub async fn remove_role(&self, ctx: &Context, user_id: i64, role: &str) -> Result<()> {
        self.change_membership(ctx, user_id, "role", role, false)
            .await
    }

    /// Grants a permission to a user directly. Needs `update_user`.
    pub async fn grant_user_permission(
        &self,
        ctx: &Context,
        user_id: i64,
        permission: &str,
    ) -> Result<()> {
        self.change_membership(ctx, user_id, "permission", permission, true)
            .await
    }

    /// Revokes a directly granted permission. Needs `update_user`.
    pub async fn revoke_user_permission(
        &self,
        ctx: &Context,
        user_id: i64,
        permission: &str,
    ) -> Result<()> {
        self.change_membership(ctx, user_id, "permission", permission, false)
            .await
    }

    async fn change_membership(
        &self,
        ctx: &Context,
        user_id: i64,
        kind: &'static str,
        name: &str,
        add: bool,
    ) -> Result<()> {
        let (this, ctx, name) = (self.clone(), ctx.clone(), name.to_owned());
        detached(async move {
            this.change_membership_inner(&ctx, user_id, kind, &name, add)
                .await
        })
        .await
    }

    async fn change_membership_inner(
        &self,
        ctx: &Context,
        user_id: i64,
        kind: &'static str,
        name: &str,
        add: bool,
    ) -> Result<()> {
        ctx.authorize(&permission_name(Ability::Update, "user"))?;
        if kind == "role" && name == SUPER_ADMIN && !actor_is_super(ctx) {
            // Only a super admin makes (or unmakes) another one.
            return Err(Error::PermissionDenied {
                ability: SUPER_ADMIN.to_owned(),
            });
        }
        let mut tx = self.db.begin().await?;
        let result: Result<()> = async {
            let target = if kind == "role" {
                role_id(&mut tx, name).await?
            } else {
                permission_ids(&mut tx, &[name.to_owned()]).await?[0]
            };
            let (table, col) = if kind == "role" {
                ("platform_user_roles", "role_id")
            } else {
                ("platform_user_permissions", "permission_id")
            };
            let mut q = tx.sql();
            if add {
                dialect::push_insert_ignore_into(&mut q);
                q.ident(table)
                    .push(" (user_id, ")
                    .ident(col)
                    .push(") VALUES (")
                    .bind_i64(user_id)
                    .push(", ")
                    .bind_i64(target)
                    .push(")");
                dialect::push_ignore_conflicts(&mut q, &[]);
            } else {
                q.push("DELETE FROM ")
                    .ident(table)
                    .push(" WHERE user_id = ")
                    .bind_i64(user_id)
                    .push(" AND ")
                    .ident(col)
                    .push(" = ")
                    .bind_i64(target);
            }
            let changed = tx.execute(q).await.map_err(|e| match e {
                Error::Conflict { .. } => Error::NotFound {
                    resource: "user",
                    id: user_id.to_string(),
                },
                e => e,
            })?;
            if changed > 0 {
                let mut v = AuditValues::new();
                v.insert(kind.into(), name.into());
                let event = match (kind, add) {
                    ("role", true) => "role_assigned",
                    ("role", false) => "role_removed",
                    (_, true) => "permission_granted",
                    (_, false) => "permission_revoked",
                };
                let (old, new) = if add {
                    (None, Some(v))
                } else {
                    (Some(v), None)
                };
                audit(&mut tx, ctx, event, "user", user_id, old, new).await?;
                self.bump_db_version(&mut tx).await?;
            }
            Ok(())
        }
        .await;
        self.commit_change(tx, result).await
    }

    /// A user's grants, from the cache when it is current.
    pub async fn grants(&self, user_id: i64) -> Result<Arc<Grants>> {
        let v = self.version.load(Ordering::Acquire);
        if let Some(c) = self.grants.get(&user_id)
            && c.version == v
        {
            return Ok(c.grants.clone());
        }
        let grants = Arc::new(self.load_grants(user_id).await?);
        self.grants.insert(
            user_id,
            Arc::new(CachedGrants {
                version: v,
                grants: grants.clone(),
            }),
        );
        Ok(grants)
    }

    /// The cached grants of a user, without touching the database (`None`
    /// when not cached or stale). This is the hot path of every request.
    pub fn cached_grants(&self, user_id: i64) -> Option<Arc<Grants>> {
        let v = self.version.load(Ordering::Acquire);
        self.grants
            .get(&user_id)
            .filter(|c| c.version == v)
            .map(|c| c.grants.clone())
    }

    async fn load_grants(&self, user_id: i64) -> Result<Grants> {
        let mut r = self.db.sql();
        r.push("SELECT r.name FROM platform_roles r JOIN platform_user_roles ur ON ur.role_id = r.id WHERE ur.user_id = ")
            .bind_i64(user_id);
        let roles: Vec<String> = self
            .db
            .fetch_all(r, &[FieldType::Text])
            .await?
            .iter()
            .map(|r| text(&r[0]))
            .collect();
        let mut p = self.db.sql();
        p.push("SELECT p.name FROM platform_permissions p JOIN platform_role_permissions rp ON rp.permission_id = p.id JOIN platform_user_roles ur ON ur.role_id = rp.role_id WHERE ur.user_id = ")
            .bind_i64(user_id)
            .push(" UNION SELECT p.name FROM platform_permissions p JOIN platform_user_permissions up ON up.permission_id = p.id WHERE up.user_id = ")
            .bind_i64(user_id);
        let perms = self
            .db
            .fetch_all(p, &[FieldType::Text])
            .await?
            .iter()
            .map(|r| text(&r[0]))
            .collect::<Vec<_>>();
        Ok(Grants::new(roles, perms))
    }

    /// The principal (user plus grants) of a user id, if the account exists
    /// and is enabled.
    pub async fn principal(&self, user_id: i64) -> Result<Option<Principal>> {
        match self.user(user_id).await? {
            Some(u) => self.principal_of(&u).await,
            None => Ok(None),
        }
    }

    /// The principal of a user already read ([`Access::principal`] without
    /// reading the user again); `None` when the account is disabled.
    pub async fn principal_of(&self, user: &User) -> Result<Option<Principal>> {
        if user.disabled_at.is_some() {
            return Ok(None);
        }
        Ok(Some(Principal {
            user_id: user.id,
            email: user.email.clone(),
            grants: self.grants(user.id).await?,
        }))
    }

    // ---- API tokens -----------------------------------------------------

    /// Creates a token for `user_id`. A user may create their own tokens;
    /// creating one for someone else needs `update_user`. Abilities must be
    /// `*` (all of the owner's permissions, whatever they are when the
    /// token is used) or existing permission names that the owner holds
    /// now: a token never names an ability its owner lacks (a validation
    /// error on `abilities`, code `not_held`, naming them).
    pub async fn create_token(
        &self,
        ctx: &Context,
        user_id: i64,
        name: &str,
        abilities: &[String],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<NewToken> {
        let (this, ctx) = (self.clone(), ctx.clone());
        let (name, abilities) = (name.to_owned(), abilities.to_vec());
        detached(async move {
            this.create_token_inner(&ctx, user_id, &name, &abilities, expires_at)
                .await
        })
        .await
    }

    async fn create_token_inner(
        &self,
        ctx: &Context,
        user_id: i64,
        name: &str,
        abilities: &[String],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<NewToken> {
        if ctx.actor().user_id() != Some(user_id) {
            ctx.authorize(&permission_name(Ability::Update, "user"))?;
        }
        let mut errors = FieldErrors::default();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 255 {
            errors.add("name", "invalid", "must be 1 to 255 characters");
        }
        if expires_at.is_some_and(|t| t <= Utc::now()) {
            errors.add("expires_at", "invalid", "must be in the future");
        }
        let known: std::collections::HashSet<String> =
            self.permissions().await?.into_iter().collect();
        let abilities: Vec<String> = if abilities.is_empty() {
            vec!["*".into()]
        } else {
            abilities.iter().map(|a| a.trim().to_owned()).collect()
        };
        for a in &abilities {
            if a != "*" && !known.contains(a) {
                errors.add("abilities", "invalid", format!("`{a}` is not a permission"));
            }
        }
        if self.user(user_id).await?.is_none() {
            return Err(Error::NotFound {
                resource: "user",
                id: user_id.to_string(),
            });
        }
        let owner = self.load_grants(user_id).await?;
        let mut lacking: Vec<&str> = abilities
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "*" && known.contains(*a) && !owner.has(a))
            .collect();
        lacking.sort_unstable();
        lacking.dedup();
        if !lacking.is_empty() {
            errors.add(
                "abilities",
                "not_held",
                format!(
                    "the token's owner does not have {}: a token cannot do more than its owner",
                    lacking
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        errors.into_result()?;
        let plain = format!("{TOKEN_PREFIX}{}", random_token(30));
        let hash = sha256_hex(plain.as_bytes());
        let now = Utc::now();
        let mut tx = self.db.begin().await?;
        let mut q = tx.sql();
        q.push("INSERT INTO platform_api_tokens (user_id, name, token_hash, abilities, expires_at, created_at) VALUES (")
            .bind_i64(user_id)
            .push(", ")
            .bind_str(name)
            .push(", ")
            .bind_str(hash)
            .push(", ")
            .bind_str(serde_json::to_string(&abilities).unwrap_or_default())
            .push(", ")
            .bind(expires_at.map_or(Value::Null, Value::DateTime), FieldType::DateTime)
            .push(", ")
            .bind(Value::DateTime(now), FieldType::DateTime)
            .push(")");
        dialect::push_returning(&mut q, "id");
        let id = tx.insert_returning_id(q).await?;
        let mut v = AuditValues::new();
        v.insert(
            "token".into(),
            serde_json::json!({ "id": id, "name": name, "abilities": abilities }),
        );
        audit(
            &mut tx,
            ctx,
            "token_created",
            "user",
            user_id,
            None,
            Some(v),
        )
        .await?;
        tx.commit().await?;
        Ok(NewToken {
            info: TokenInfo {
                id,
                user_id,
                name: name.to_owned(),
                abilities,
                expires_at,
                last_used_at: None,
                revoked_at: None,
                created_at: crate::db::truncate_micros(now),
            },
            plain_text: plain,
        })
    }

    /// A user's tokens, newest first.
    pub async fn tokens(&self, user_id: i64) -> Result<Vec<TokenInfo>> {
        let mut q = self.db.sql();
        q.push(TOKEN_SELECT)
            .push(" WHERE t.user_id = ")
            .bind_i64(user_id)
            .push(" ORDER BY t.id DESC");
        Ok(self
            .db
            .fetch_all(q, &TOKEN_TYPES)
            .await?
            .iter()
            .map(|r| token_from_row(r).info)
            .collect())
    }

    /// Revokes a token. Its owner may; anyone else needs `update_user`.
    pub async fn revoke_token(&self, ctx: &Context, token_id: i64) -> Result<()> {
        let (this, ctx) = (self.clone(), ctx.clone());
        detached(async move { this.revoke_token_inner(&ctx, token_id).await }).await
    }

    async fn revoke_token_inner(&self, ctx: &Context, token_id: i64) -> Result<()> {
        let mut q = self.db.sql();
        q.push(TOKEN_SELECT)
            .push(" WHERE t.id = ")
            .bind_i64(token_id);
        let row = self
            .db
            .fetch_optional(q, &TOKEN_TYPES)
            .await?
            .map(|r| token_from_row(&r))
            .ok_or_else(|| Error::NotFound {
                resource: "token",
                id: token_id.to_string(),
            })?;
        if ctx.actor().user_id() != Some(row.info.user_id) {
            ctx.authorize(&permission_name(Ability::Update, "user"))?;
        }
        let mut tx = self.db.begin().await?;
        let result: Result<()> = async {
            let mut u = tx.sql();
            u.push("UPDATE platform_api_tokens SET revoked_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(token_id)
                .push(" AND revoked_at IS NULL");
            tx.execute(u).await?;
            let mut v = AuditValues::new();
            v.insert(
                "token".into(),
                serde_json::json!({ "id": token_id, "name": row.info.name }),
            );
            audit(
                &mut tx,
                ctx,
                "token_revoked",
                "user",
                row.info.user_id,
                Some(v),
                None,
            )
            .await?;
            self.bump_db_version(&mut tx).await?;
            Ok(())
        }
        .await;
        self.commit_change(tx, result).await
    }

    /// The actor a bearer token stands for. Unknown, malformed, expired and
    /// revoked tokens, and tokens of disabled users, are all
    /// [`Error::Unauthenticated`], with no hint which.
    pub async fn authenticate_token(&self, plain: &str) -> Result<Actor> {
        if !plain.starts_with(TOKEN_PREFIX) || plain.len() > 200 {
            return Err(Error::Unauthenticated);
        }
        let hash = sha256_hex(plain.as_bytes());
        let v = self.version.load(Ordering::Acquire);
        let cached = self
            .tokens
            .get(&hash)
            .filter(|c| c.version == v && c.fetched.elapsed() < Duration::from_secs(60));
        let row = match cached {
            Some(c) => c.row.clone(),
            None => {
                let mut q = self.db.sql();
                q.push(TOKEN_SELECT)
                    .push(" WHERE t.token_hash = ")
                    .bind_str(hash.clone());
                let row = self
                    .db
                    .fetch_optional(q, &TOKEN_TYPES)
                    .await?
                    .map(|r| token_from_row(&r));
                self.tokens.insert(
                    hash,
                    Arc::new(CachedToken {
                        version: v,
                        fetched: Instant::now(),
                        row: row.clone(),
                    }),
                );
                row
            }
        };
        let Some(row) = row else {
            return Err(Error::Unauthenticated);
        };
        let now = Utc::now();
        if row.disabled
            || row.info.revoked_at.is_some()
            || row.info.expires_at.is_some_and(|e| e <= now)
        {
            return Err(Error::Unauthenticated);
        }
        self.touch_token(row.info.id);
        let grants = self.grants(row.info.user_id).await?;
        Ok(Actor::Token(
            Arc::new(Principal {
                user_id: row.info.user_id,
                email: row.email,
                grants,
            }),
            Arc::new(TokenScope {
                token_id: row.info.id,
                abilities: row.info.abilities,
            }),
        ))
    }

    /// Records a token's use, at most once a minute per token and process,
    /// off the request's path.
    fn touch_token(&self, id: i64) {
        {
            let Ok(mut map) = self.last_used.lock() else {
                return;
            };
            if map.get(&id).is_some_and(|t| t.elapsed() < LAST_USED_EVERY) {
                return;
            }
            map.insert(id, Instant::now());
        }
        let db = self.db.clone();
        tokio::spawn(async move {
            let mut q = db.sql();
            q.push("UPDATE platform_api_tokens SET last_used_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(id);
            if let Err(e) = db.execute(q).await {
                tracing::debug!(error = %e, "could not record token use");
            }
        });
    }
}

const TOKEN_SELECT: &str = "SELECT t.id, t.user_id, t.name, t.abilities, t.expires_at, t.last_used_at, t.revoked_at, t.created_at, u.email, u.disabled_at FROM platform_api_tokens t JOIN platform_users u ON u.id = t.user_id";
const TOKEN_TYPES: [FieldType; 10] = [
    FieldType::I64,
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::DateTime,
    FieldType::DateTime,
    FieldType::DateTime,
    FieldType::DateTime,
    FieldType::Text,
    FieldType::DateTime,
];

fn token_from_row(r: &[Value]) -> TokenRow {
    TokenRow {
        info: TokenInfo {
            id: r[0].as_i64().unwrap_or_default(),
            user_id: r[1].as_i64().unwrap_or_default(),
            name: text(&r[2]),
            abilities: serde_json::from_str(r[3].as_str().unwrap_or("[]")).unwrap_or_default(),
            expires_at: time(&r[4]),
            last_used_at: time(&r[5]),
            revoked_at: time(&r[6]),
            created_at: time(&r[7]).unwrap_or_default(),
        },
        email: text(&r[8]),
        disabled: !r[9].is_null(),
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

async fn role_id(tx: &mut Tx, name: &str) -> Result<i64> {
    let mut q = tx.sql();
    q.push("SELECT id FROM platform_roles WHERE name = ")
        .bind_str(name);
    tx.fetch_i64(q).await?.ok_or_else(|| Error::NotFound {
        resource: "role",
        id: name.to_owned(),
    })
}

async fn permission_ids(tx: &mut Tx, names: &[String]) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(names.len());
    let mut unknown = FieldErrors::default();
    let mut wanted: Vec<&String> = names.iter().collect();
    wanted.sort();
    wanted.dedup();
    for chunk in wanted.chunks(500) {
        let mut q = tx.sql();
        q.push("SELECT id, name FROM platform_permissions WHERE name IN (");
        q.join(chunk, ", ", |q, n| {
            q.bind_str(n.as_str());
        });
        q.push(")");
        let rows = tx.fetch_all(q, &[FieldType::I64, FieldType::Text]).await?;
        for n in chunk {
            match rows.iter().find(|r| r[1].as_str() == Some(n.as_str())) {
                Some(r) => ids.push(r[0].as_i64().unwrap_or_default()),
                None => unknown.add(
                    "permissions",
                    "invalid",
                    format!("`{n}` is not a permission"),
                ),
            }
        }
    }
    unknown.into_result()?;
    Ok(ids)
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
