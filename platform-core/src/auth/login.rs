//! Signing in: checking credentials (throttled, audited) and disabling
//! accounts so they cannot.

use std::time::Duration;

use chrono::Utc;

use super::Session;
use super::security_events::{LOCKED_OUT, LOGIN_FAILED};
use super::{Auth, audit_user, throttled_error};
use crate::access::{MAX_PASSWORD_LEN, User, verify_password};
use crate::audit::AuditValues;
use crate::context::Context;
use crate::db::detached;
use crate::error::{Error, Result};
use crate::permission::{Ability, permission_name};
use crate::value::{FieldType, Value};

/// The result of [`Auth::attempt_login`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The password is right and the account has no second factor: sign the
    /// session in ([`Sessions::login`](super::Sessions::login)).
    Success(User),
    /// The password is right and the account has two-factor
    /// authentication: remember the user ([`Session::set_pending_login`])
    /// and ask for a code before [`Sessions::login`](super::Sessions::login).
    TwoFactorRequired(User),
    /// Unknown e-mail, wrong password or disabled account: one answer for
    /// all, shown as [`LOGIN_FAILED_MESSAGE`](super::LOGIN_FAILED_MESSAGE).
    Failed,
    /// Too many attempts; nothing was checked.
    Throttled {
        /// When to try again.
        retry_after: Duration,
    },
}

impl Auth {
    /// Checks an e-mail and password, throttled per lower-cased e-mail and
    /// client address ([`Context::ip`]) and per address. Unknown e-mails,
    /// wrong passwords and disabled accounts all give
    /// [`LoginOutcome::Failed`], in the same time. Signs nothing in: see
    /// [`Sessions::login`](super::Sessions::login).
    ///
    /// A failure is recorded in the audit trail as [`LOGIN_FAILED`], a
    /// throttled attempt as [`LOCKED_OUT`] (see [`USER_SECURITY_EVENTS`](super::USER_SECURITY_EVENTS)
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

    pub(super) async fn password_matches(&self, user_id: i64, password: &str) -> Result<bool> {
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
}
