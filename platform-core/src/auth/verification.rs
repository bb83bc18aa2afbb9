//! E-mail verification: signed links and checking them.

use chrono::Utc;

use super::{Auth, VERIFY_INVALID_MESSAGE, acting_as, audit_user, later};
use crate::access::User;
use crate::audit::AuditValues;
use crate::context::Context;
use crate::db::detached;
use crate::error::{Error, Result};
use crate::value::{FieldType, Value};

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

impl Auth {
    /// The signature of a verification link for `user_id` and `email`
    /// (compared lower-cased) that works until `expires` (Unix seconds).
    pub fn verification_signature(&self, user_id: i64, email: &str, expires: i64) -> String {
        self.inner
            .crypto
            .sign(verification_payload(user_id, email, expires).as_bytes())
    }

    /// A signed verification link for the user's current address, valid
    /// for [`AuthConfig::email_verification_ttl`](super::AuthConfig::email_verification_ttl).
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
}

fn verification_payload(user_id: i64, email: &str, expires: i64) -> String {
    format!(
        "platform/verify-email\n{user_id}\n{}\n{expires}",
        email.trim().to_lowercase()
    )
}
