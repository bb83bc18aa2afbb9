//! Passwords: reset links, changes by the user and setting one on their
//! behalf.

use std::fmt;

use chrono::{DateTime, Utc};

use super::session;
use super::{
    Auth, RESET_INVALID_MESSAGE, audit_user, authorize_self, hash_blocking, later, throttled_error,
};
use crate::access::{User, validate_password};
use crate::audit::{AuditValues, REDACTED};
use crate::context::Context;
use crate::crypto::{random_token, sha256_hex};
use crate::db::detached;
use crate::error::{Error, FieldErrors, Result};
use crate::permission::{Ability, permission_name};
use crate::value::{FieldType, Value};

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
impl Auth {
    /// Issues a password reset token for the account of `email`, valid for
    /// [`AuthConfig::password_reset_ttl`](super::AuthConfig::password_reset_ttl) and single-use; earlier unused
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
