//! Profile changes (name and e-mail address).

use chrono::Utc;

use super::{Auth, audit_user, authorize_self, validate_name};
use crate::access::{User, normalize_email, validate_email};
use crate::audit::AuditValues;
use crate::context::Context;
use crate::db::detached;
use crate::error::{Error, FieldErrors, Result};
use crate::value::{FieldType, Value};

/// A profile change ([`Auth::update_profile`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// Display name (1 to 255 characters).
    pub name: String,
    /// E-mail address; changing it clears `email_verified_at`.
    pub email: String,
}

impl Auth {
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
}
