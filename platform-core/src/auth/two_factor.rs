//! TOTP two-factor authentication (RFC 6238: SHA-1, 6 digits, 30 s steps,
//! one step of drift either way) with single-use recovery codes.
//!
//! The secret is stored encrypted with the application key; recovery codes
//! are stored as SHA-256 hashes (they carry 119 bits of entropy each, so a
//! plain hash is enough) and shown once. A code is accepted once: the step
//! it belongs to is stored (`two_factor_last_step`) and codes of that step
//! or earlier are refused, so a code seen over a shoulder cannot be
//! replayed.

use std::fmt;
use std::sync::Arc;

use chrono::Utc;
use totp_rs::{Algorithm, Secret, Totp};

use super::security_events::{LOCKED_OUT, RECOVERY_CODE_FAILED, TWO_FACTOR_FAILED};
use super::{Auth, Inner, audit_user, authorize_self, throttled_error, user_ctx};
use crate::audit::AuditValues;
use crate::context::Context;
use crate::crypto::{constant_time_eq, random_bytes, sha256_hex};
use crate::db::detached;
use crate::error::{Error, Result};
use crate::value::{FieldType, Value};

/// The encryption context of the stored secret (table and column).
const SECRET_CONTEXT: &str = "platform_users.two_factor_secret";
/// How many recovery codes are issued.
pub const RECOVERY_CODES: usize = 8;
const DIGITS: usize = 6;
const STEP: u64 = 30;

/// What a user needs to add the account to an authenticator app. Shown
/// once; its `Debug` form hides the secret.
#[derive(Clone)]
pub struct TwoFactorSetup {
    /// The secret in base32, for typing into the app.
    pub secret_base32: String,
    /// The `otpauth://totp/...` URI the QR code holds.
    pub otpauth_uri: String,
    /// The QR code as an inline SVG document (starts with `<svg`).
    pub qr_svg: String,
}

impl fmt::Debug for TwoFactorSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoFactorSetup").finish_non_exhaustive()
    }
}

/// Freshly issued recovery codes, shown once (only their hashes are
/// stored). Each is `xxxxxxxxxx-xxxxxxxxxx` (letters and digits) and works
/// once. Its `Debug` form hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCodes(Vec<String>);

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryCodes({} codes)", self.0.len())
    }
}

impl RecoveryCodes {
    /// The codes.
    pub fn codes(&self) -> &[String] {
        &self.0
    }
    /// The codes, owned.
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// Two-factor authentication of users ([`crate::auth::Auth::two_factor`]).
#[derive(Clone)]
pub struct TwoFactor {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for TwoFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoFactor")
            .field("issuer", &self.inner.config.app_name)
            .finish()
    }
}

struct State {
    email: String,
    secret: Option<String>,
    confirmed: bool,
    codes: Option<String>,
    last_step: Option<i64>,
}

fn alphanumeric(n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        random_bytes(&mut buf);
        for b in buf {
            // 248 = 4 * 62: reject the top bytes so every character is
            // equally likely.
            if b < 248 && out.len() < n {
                out.push(char::from(CHARS[usize::from(b) % 62]));
            }
        }
    }
    out
}

fn new_codes() -> (RecoveryCodes, String) {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| format!("{}-{}", alphanumeric(10), alphanumeric(10)))
        .collect();
    let hashes: Vec<String> = codes.iter().map(|c| sha256_hex(c.as_bytes())).collect();
    (
        RecoveryCodes(codes),
        serde_json::to_string(&hashes).unwrap_or_else(|_| "[]".into()),
    )
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<Totp> {
    let clean = |s: &str| s.replace(':', "_");
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP)
        .with_secret(secret.to_vec())
        .with_issuer(Some(clean(issuer)))
        .with_account_name(clean(account))
        .build()
        .map_err(|e| Error::Backend {
            backend: "totp",
            source: e.to_string().into(),
        })
}

fn now_secs() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

/// The code as typed, without spaces, if it is six digits.
fn normalize_code(code: &str) -> Option<String> {
    let c: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (c.len() == DIGITS && c.bytes().all(|b| b.is_ascii_digit())).then_some(c)
}

fn qr_svg(data: &str) -> Result<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).map_err(|e| Error::Backend {
        backend: "qrcode",
        source: e.to_string().into(),
    })?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // Drop the XML prolog so the SVG can be inlined in HTML.
    Ok(match svg.find("<svg") {
        Some(i) => svg[i..].to_owned(),
        None => svg,
    })
}

impl TwoFactor {
    async fn state(&self, user_id: i64) -> Result<State> {
        let db = &self.inner.db;
        let mut q = db.sql();
        q.push("SELECT email, two_factor_secret, two_factor_confirmed_at, two_factor_recovery_codes, two_factor_last_step FROM platform_users WHERE id = ")
            .bind_i64(user_id);
        let r = db
            .fetch_optional(
                q,
                &[
                    FieldType::Text,
                    FieldType::Text,
                    FieldType::DateTime,
                    FieldType::Text,
                    FieldType::I64,
                ],
            )
            .await?
            .ok_or_else(|| Error::NotFound {
                resource: "user",
                id: user_id.to_string(),
            })?;
        Ok(State {
            email: r[0].as_str().unwrap_or_default().to_owned(),
            secret: r[1].as_str().map(str::to_owned),
            confirmed: !r[2].is_null(),
            codes: r[3].as_str().map(str::to_owned),
            last_step: r[4].as_i64(),
        })
    }

    fn secret_bytes(&self, stored: &str) -> Result<Vec<u8>> {
        let b32 = self.inner.crypto.decrypt(stored, SECRET_CONTEXT)?;
        Secret::try_from_base32(&b32)
            .map(|s| s.as_bytes().to_vec())
            .map_err(|_| Error::Backend {
                backend: "totp",
                source: "the stored two-factor secret is not base32".into(),
            })
    }

    /// The step `code` matches within the drift window, if any.
    fn matching_step(&self, state: &State, code: &str) -> Result<Option<i64>> {
        let (Some(stored), Some(code)) = (&state.secret, normalize_code(code)) else {
            return Ok(None);
        };
        let secret = self.secret_bytes(stored)?;
        let t = totp(&secret, &self.inner.config.app_name, &state.email)?;
        Ok(t.check(&code, now_secs())
            .and_then(|step| i64::try_from(step).ok()))
    }

    /// Whether the user has confirmed two-factor authentication.
    pub async fn is_enabled(&self, user_id: i64) -> Result<bool> {
        Ok(self.state(user_id).await?.confirmed)
    }

    /// How many unused recovery codes the user has.
    pub async fn recovery_codes_left(&self, user_id: i64) -> Result<usize> {
        let s = self.state(user_id).await?;
        Ok(s.codes
            .as_deref()
            .and_then(|c| serde_json::from_str::<Vec<String>>(c).ok())
            .map_or(0, |v| v.len()))
    }

    /// Starts enabling two-factor authentication: a new secret is stored
    /// (encrypted, unconfirmed) and returned with its `otpauth://` URI and
    /// QR code. Nothing changes at sign-in until
    /// [`TwoFactor::confirm_setup`]. The user themself (or someone with
    /// `update_user`) may call it; fails with [`Error::Conflict`] when
    /// two-factor authentication is already on (disable it first). Audited
    /// as `two_factor_setup_started`.
    pub async fn begin_setup(&self, ctx: &Context, user_id: i64) -> Result<TwoFactorSetup> {
        let (this, ctx) = (self.clone(), ctx.clone());
        detached(async move { this.begin_setup_inner(&ctx, user_id).await }).await
    }

    async fn begin_setup_inner(&self, ctx: &Context, user_id: i64) -> Result<TwoFactorSetup> {
        authorize_self(ctx, user_id)?;
        let state = self.state(user_id).await?;
        if state.confirmed {
            return Err(Error::Conflict {
                field: "two_factor".into(),
                message: "two-factor authentication is already enabled; disable it first".into(),
            });
        }
        let secret = Secret::generate();
        let secret_base32 = secret.to_base32();
        let t = totp(secret.as_bytes(), &self.inner.config.app_name, &state.email)?;
        let otpauth_uri = t.to_url().map_err(|e| Error::Backend {
            backend: "totp",
            source: e.to_string().into(),
        })?;
        let qr = qr_svg(&otpauth_uri)?;
        let stored = self.inner.crypto.encrypt(&secret_base32, SECRET_CONTEXT);
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let mut q = tx.sql();
            q.push("UPDATE platform_users SET two_factor_secret = ")
                .bind_str(stored)
                .push(", two_factor_confirmed_at = NULL, two_factor_recovery_codes = NULL, two_factor_last_step = NULL, updated_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(user_id)
                .push(" AND two_factor_confirmed_at IS NULL");
            if tx.execute(q).await? == 0 {
                return Err(Error::Conflict {
                    field: "two_factor".into(),
                    message: "two-factor authentication was enabled meanwhile".into(),
                });
            }
            audit_user(&mut tx, ctx, "two_factor_setup_started", user_id, None, None).await
        }
        .await;
        tx.finish(result).await?;
        Ok(TwoFactorSetup {
            secret_base32,
            otpauth_uri,
            qr_svg: qr,
        })
    }

    /// The setup started by [`TwoFactor::begin_setup`] and not confirmed
    /// yet, shown again (after a wrong code, or a reload of the set-up
    /// page) so the secret in the user's app keeps working; `None` when no
    /// setup is pending or two-factor authentication is on. The user
    /// themself (or someone with `update_user`) may call it.
    pub async fn pending_setup(
        &self,
        ctx: &Context,
        user_id: i64,
    ) -> Result<Option<TwoFactorSetup>> {
        authorize_self(ctx, user_id)?;
        let state = self.state(user_id).await?;
        let (false, Some(stored)) = (state.confirmed, state.secret.as_deref()) else {
            return Ok(None);
        };
        let secret = self.secret_bytes(stored)?;
        let t = totp(&secret, &self.inner.config.app_name, &state.email)?;
        let otpauth_uri = t.to_url().map_err(|e| Error::Backend {
            backend: "totp",
            source: e.to_string().into(),
        })?;
        Ok(Some(TwoFactorSetup {
            secret_base32: self.inner.crypto.decrypt(stored, SECRET_CONTEXT)?,
            qr_svg: qr_svg(&otpauth_uri)?,
            otpauth_uri,
        }))
    }

    /// Finishes enabling two-factor authentication with a code from the
    /// app, and returns the recovery codes (shown once). A wrong code is a
    /// validation error on `code`; without a pending setup, or when already
    /// enabled, [`Error::Conflict`]. Throttled like every code check.
    /// Audited as `two_factor_enabled`.
    pub async fn confirm_setup(
        &self,
        ctx: &Context,
        user_id: i64,
        code: &str,
    ) -> Result<RecoveryCodes> {
        let (this, ctx, code) = (self.clone(), ctx.clone(), code.to_owned());
        detached(async move { this.confirm_setup_inner(&ctx, user_id, &code).await }).await
    }

    async fn confirm_setup_inner(
        &self,
        ctx: &Context,
        user_id: i64,
        code: &str,
    ) -> Result<RecoveryCodes> {
        authorize_self(ctx, user_id)?;
        self.inner
            .throttle
            .two_factor(user_id)
            .await
            .map_err(|t| throttled_error("code", t))?;
        let state = self.state(user_id).await?;
        if state.confirmed || state.secret.is_none() {
            return Err(Error::Conflict {
                field: "two_factor".into(),
                message: if state.confirmed {
                    "two-factor authentication is already enabled".into()
                } else {
                    "no two-factor setup is pending; start one first".into()
                },
            });
        }
        let Some(step) = self.matching_step(&state, code)? else {
            return Err(invalid_code());
        };
        let (codes, hashes) = new_codes();
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let mut q = tx.sql();
            q.push("UPDATE platform_users SET two_factor_confirmed_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(", two_factor_recovery_codes = ")
                .bind_str(hashes)
                .push(", two_factor_last_step = ")
                .bind_i64(step)
                .push(", updated_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(user_id)
                .push(" AND two_factor_confirmed_at IS NULL AND two_factor_secret = ")
                .bind_str(state.secret.clone().unwrap_or_default());
            if tx.execute(q).await? == 0 {
                return Err(Error::Conflict {
                    field: "two_factor".into(),
                    message: "the two-factor setup changed meanwhile; start again".into(),
                });
            }
            let mut v = AuditValues::new();
            v.insert("two_factor".into(), "enabled".into());
            v.insert("recovery_codes".into(), RECOVERY_CODES.into());
            audit_user(&mut tx, ctx, "two_factor_enabled", user_id, None, Some(v)).await
        }
        .await;
        tx.finish(result).await?;
        Ok(codes)
    }

    /// Records a security event of the two-factor step.
    async fn record(&self, ctx: &Context, event: &'static str, user_id: i64, reason: &str) {
        let mut v = AuditValues::new();
        v.insert("reason".into(), reason.into());
        Auth {
            inner: self.inner.clone(),
        }
        .record_security_event(ctx, event, user_id, v)
        .await;
    }

    /// Counts a code attempt against the user's limit; over it, records
    /// [`LOCKED_OUT`] and answers a `throttled` error on `field`.
    async fn throttle(&self, ctx: &Context, user_id: i64, field: &str) -> Result<()> {
        if let Err(t) = self.inner.throttle.two_factor(user_id).await {
            let mut v = AuditValues::new();
            v.insert("step".into(), "two_factor".into());
            v.insert("retry_after".into(), t.seconds().into());
            Auth {
                inner: self.inner.clone(),
            }
            .record_security_event(ctx, LOCKED_OUT, user_id, v)
            .await;
            return Err(throttled_error(field, t));
        }
        Ok(())
    }

    /// Whether `code` is a current TOTP code of the user's confirmed
    /// secret that was not used before. A code of the step last accepted,
    /// or an earlier one, is refused (replay). Throttled per user
    /// ([`crate::auth::ThrottleConfig::two_factor`]): over the limit it is
    /// a validation error on `code` with code `throttled`. A wrong or
    /// replayed code is recorded as
    /// [`TWO_FACTOR_FAILED`](crate::auth::TWO_FACTOR_FAILED), a throttled
    /// attempt as [`LOCKED_OUT`](crate::auth::LOCKED_OUT).
    pub async fn verify_code(&self, ctx: &Context, user_id: i64, code: &str) -> Result<bool> {
        self.throttle(ctx, user_id, "code").await?;
        let state = self.state(user_id).await?;
        if !state.confirmed {
            return Ok(false);
        }
        let Some(step) = self.matching_step(&state, code)? else {
            tracing::info!(user_id, ip = ?ctx.ip(), "wrong two-factor code");
            self.record(ctx, TWO_FACTOR_FAILED, user_id, "wrong_code")
                .await;
            return Ok(false);
        };
        if state.last_step.is_some_and(|last| step <= last) {
            tracing::warn!(user_id, ip = ?ctx.ip(), "two-factor code replayed");
            self.record(ctx, TWO_FACTOR_FAILED, user_id, "replayed_code")
                .await;
            return Ok(false);
        }
        // Compare-and-set, so two requests racing with the same code cannot
        // both win.
        let db = &self.inner.db;
        let mut q = db.sql();
        q.push("UPDATE platform_users SET two_factor_last_step = ")
            .bind_i64(step)
            .push(" WHERE id = ")
            .bind_i64(user_id)
            .push(" AND two_factor_confirmed_at IS NOT NULL AND (two_factor_last_step IS NULL OR two_factor_last_step < ")
            .bind_i64(step)
            .push(")");
        if db.execute(q).await? == 1 {
            return Ok(true);
        }
        // A concurrent request used the same step first.
        self.record(ctx, TWO_FACTOR_FAILED, user_id, "replayed_code")
            .await;
        Ok(false)
    }

    /// Whether `code` is one of the user's unused recovery codes; a match is
    /// used up. Compared in constant time against every stored hash.
    /// Throttled with the TOTP codes. Audited as `recovery_code_used`; a
    /// wrong code as
    /// [`RECOVERY_CODE_FAILED`](crate::auth::RECOVERY_CODE_FAILED).
    pub async fn use_recovery_code(&self, ctx: &Context, user_id: i64, code: &str) -> Result<bool> {
        let (this, ctx, code) = (self.clone(), ctx.clone(), code.to_owned());
        detached(async move { this.use_recovery_code_inner(&ctx, user_id, &code).await }).await
    }

    async fn use_recovery_code_inner(
        &self,
        ctx: &Context,
        user_id: i64,
        code: &str,
    ) -> Result<bool> {
        self.throttle(ctx, user_id, "recovery_code").await?;
        let state = self.state(user_id).await?;
        let Some(stored) = state.codes.filter(|_| state.confirmed) else {
            return Ok(false);
        };
        let hashes: Vec<String> = serde_json::from_str(&stored).unwrap_or_default();
        let given = sha256_hex(code.trim().as_bytes());
        let mut found = None;
        for (i, h) in hashes.iter().enumerate() {
            if constant_time_eq(h.as_bytes(), given.as_bytes()) {
                found = Some(i);
            }
        }
        let Some(i) = found else {
            tracing::info!(user_id, ip = ?ctx.ip(), "wrong recovery code");
            self.record(ctx, RECOVERY_CODE_FAILED, user_id, "wrong_code")
                .await;
            return Ok(false);
        };
        let mut left = hashes;
        left.remove(i);
        let remaining = left.len();
        let actor = user_ctx(&self.inner.access, ctx, user_id).await?;
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let mut q = tx.sql();
            q.push("UPDATE platform_users SET two_factor_recovery_codes = ")
                .bind_str(serde_json::to_string(&left).unwrap_or_else(|_| "[]".into()))
                .push(" WHERE id = ")
                .bind_i64(user_id)
                .push(" AND two_factor_recovery_codes = ")
                .bind_str(stored.clone());
            if tx.execute(q).await? == 0 {
                // Used by a concurrent request.
                return Ok(false);
            }
            let mut v = AuditValues::new();
            v.insert("recovery_codes_left".into(), remaining.into());
            audit_user(
                &mut tx,
                &actor,
                "recovery_code_used",
                user_id,
                None,
                Some(v),
            )
            .await?;
            Ok(true)
        }
        .await;
        tx.finish(result).await
    }

    /// Replaces the user's recovery codes with fresh ones (shown once).
    /// Needs two-factor authentication on ([`Error::Conflict`] otherwise).
    /// Audited as `recovery_codes_regenerated`.
    pub async fn regenerate_recovery_codes(
        &self,
        ctx: &Context,
        user_id: i64,
    ) -> Result<RecoveryCodes> {
        let (this, ctx) = (self.clone(), ctx.clone());
        detached(async move { this.regenerate_recovery_codes_inner(&ctx, user_id).await }).await
    }

    async fn regenerate_recovery_codes_inner(
        &self,
        ctx: &Context,
        user_id: i64,
    ) -> Result<RecoveryCodes> {
        authorize_self(ctx, user_id)?;
        let (codes, hashes) = new_codes();
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let mut q = tx.sql();
            q.push("UPDATE platform_users SET two_factor_recovery_codes = ")
                .bind_str(hashes)
                .push(", updated_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(user_id)
                .push(" AND two_factor_confirmed_at IS NOT NULL");
            if tx.execute(q).await? == 0 {
                return Err(Error::Conflict {
                    field: "two_factor".into(),
                    message: "two-factor authentication is not enabled".into(),
                });
            }
            let mut v = AuditValues::new();
            v.insert("recovery_codes".into(), RECOVERY_CODES.into());
            audit_user(
                &mut tx,
                ctx,
                "recovery_codes_regenerated",
                user_id,
                None,
                Some(v),
            )
            .await
        }
        .await;
        tx.finish(result).await?;
        Ok(codes)
    }

    /// Turns two-factor authentication off (or abandons a pending setup):
    /// the secret, the recovery codes and the replay marker are erased. The
    /// user themself or someone with `update_user` may (an administrator
    /// helping a user who lost their phone). Audited as
    /// `two_factor_disabled` when anything was on.
    pub async fn disable(&self, ctx: &Context, user_id: i64) -> Result<()> {
        let (this, ctx) = (self.clone(), ctx.clone());
        detached(async move { this.disable_inner(&ctx, user_id).await }).await
    }

    async fn disable_inner(&self, ctx: &Context, user_id: i64) -> Result<()> {
        authorize_self(ctx, user_id)?;
        let state = self.state(user_id).await?;
        if state.secret.is_none() && !state.confirmed && state.codes.is_none() {
            return Ok(());
        }
        let mut tx = self.inner.db.begin().await?;
        let result = async {
            let mut q = tx.sql();
            q.push("UPDATE platform_users SET two_factor_secret = NULL, two_factor_confirmed_at = NULL, two_factor_recovery_codes = NULL, two_factor_last_step = NULL, updated_at = ")
                .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
                .push(" WHERE id = ")
                .bind_i64(user_id);
            tx.execute(q).await?;
            let mut old = AuditValues::new();
            old.insert(
                "two_factor".into(),
                if state.confirmed { "enabled" } else { "pending" }.into(),
            );
            let mut new = AuditValues::new();
            new.insert("two_factor".into(), "disabled".into());
            audit_user(
                &mut tx,
                ctx,
                "two_factor_disabled",
                user_id,
                Some(old),
                Some(new),
            )
            .await
        }
        .await;
        tx.finish(result).await
    }
}

fn invalid_code() -> Error {
    Error::invalid(
        "code",
        "invalid",
        "the two-factor authentication code is invalid",
    )
}

/// The current code of a base32 secret, for tests and tools (an
/// authenticator app does the same).
pub fn current_code(secret_base32: &str) -> Result<String> {
    code_at(secret_base32, now_secs())
}

/// The code of a base32 secret at `unix_time` (seconds).
pub fn code_at(secret_base32: &str, unix_time: u64) -> Result<String> {
    let secret = Secret::try_from_base32(secret_base32)
        .map_err(|_| Error::invalid("secret", "invalid", "must be a base32 two-factor secret"))?;
    Ok(totp(secret.as_bytes(), "x", "x")?
        .generate(unix_time)
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_well_formed_and_distinct() {
        let (codes, hashes) = new_codes();
        assert_eq!(codes.codes().len(), RECOVERY_CODES);
        for c in codes.codes() {
            assert_eq!(c.len(), 21);
            assert_eq!(c.as_bytes()[10], b'-');
            assert!(c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'));
        }
        let mut d = codes.codes().to_vec();
        d.dedup();
        assert_eq!(d.len(), RECOVERY_CODES);
        for c in codes.codes() {
            assert!(!hashes.contains(c.as_str()), "codes are stored hashed");
            assert!(hashes.contains(&sha256_hex(c.as_bytes())));
        }
        assert!(!format!("{codes:?}").contains(&codes.codes()[0]));
    }

    #[test]
    fn rfc6238_sha1_vector() {
        // RFC 6238 appendix B: secret "12345678901234567890", T = 59 s.
        let secret = Secret::from(b"12345678901234567890".to_vec()).to_base32();
        assert_eq!(code_at(&secret, 59).unwrap(), "287082");
        assert_eq!(code_at(&secret, 1_111_111_109).unwrap(), "081804");
    }

    #[test]
    fn code_normalization() {
        assert_eq!(normalize_code(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(normalize_code("12345"), None);
        assert_eq!(normalize_code("12345a"), None);
    }

    #[test]
    fn qr_is_inline_svg() {
        let svg = qr_svg("otpauth://totp/Platform:a%40example.com?secret=ABC").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
