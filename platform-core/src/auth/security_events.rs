//! Security events: failed sign-ins, lock-outs, wrong two-factor and
//! recovery codes, written to the audit trail of the `user` resource (the
//! same trail as `login`, `logout`, `password_changed`...), so that they
//! are kept, sealed and shown with the account's other events.
//!
//! Each entry carries the request's client address, user agent, URL and
//! request id, and the tag `security`. Its actor is the account the attempt
//! was made against (its label is the account's e-mail address); the event
//! name says that the attempt failed. Nothing secret is ever stored: no
//! password, no code, not even the e-mail address typed for an account that
//! does not exist (see [`UNKNOWN_ACCOUNT`]).
//!
//! ## Bounded
//! A failed attempt costs an attacker one request, and a throttled one
//! costs nothing, so recording every one would let anyone fill the audit
//! table. The recorder admits, per minute, at most
//! [`PER_ADDRESS`] events of one kind per account and client address
//! (one [`LOCKED_OUT`]), [`PER_ACCOUNT`] per account over all addresses,
//! [`PER_CLIENT`] per client address over all accounts, and [`GLOBAL`] in
//! all. The events left out are counted and the count is written
//! (`suppressed`) on the next event of that kind and account that is
//! recorded. The limits are per process, like the throttle's.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Auth, acting_as};
use crate::access::User;
use crate::audit::{AuditValues, NewEntry, insert_entries};
use crate::context::Context;

/// A sign-in with a wrong password, for a disabled account, or for an
/// address that has no account.
pub const LOGIN_FAILED: &str = "login_failed";
/// A credential check refused unchecked because of too many attempts
/// (the sign-in, the two-factor step).
pub const LOCKED_OUT: &str = "locked_out";
/// A wrong (or replayed) code at the two-factor step.
pub const TWO_FACTOR_FAILED: &str = "two_factor_failed";
/// A wrong recovery code at the two-factor step.
pub const RECOVERY_CODE_FAILED: &str = "recovery_code_failed";

/// The record id of events against an address that has no account.
///
/// The address typed is not stored: it is text an attacker chooses (of any
/// length and content), often a real person's mistyped address, and
/// sometimes a password typed into the wrong field. Neither is it used to
/// decide what is recorded in a way an answer could reveal: known and
/// unknown addresses are recorded (and limited) alike, and the answer to
/// the sign-in is the same. Instead the entry carries `email_digest`: the
/// first 16 hex digits of an HMAC of the lower-cased address with the
/// application key, so that repeated attempts at one address can be told
/// apart from a spray over many, and an administrator who suspects an
/// address can compute its digest ([`Auth::email_digest`]).
pub const UNKNOWN_ACCOUNT: &str = "unknown";

/// The tag every security event carries in the audit trail.
pub const SECURITY_TAG: &str = "security";

/// Events of one kind, account and client address recorded per minute at
/// most ([`LOCKED_OUT`]: one).
pub const PER_ADDRESS: u32 = 5;
/// Events of one kind and account recorded per minute at most, over all
/// client addresses.
pub const PER_ACCOUNT: u32 = 20;
/// Events of one kind from one client address recorded per minute at
/// most, over all accounts.
pub const PER_CLIENT: u32 = 30;
/// Security events recorded per minute at most, in all.
pub const GLOBAL: u32 = 120;

/// The events of the `user` audit trail that concern the account's
/// security, shown on the user's page in the panel.
pub const USER_SECURITY_EVENTS: &[&str] = &[
    "login",
    "logout",
    LOGIN_FAILED,
    LOCKED_OUT,
    TWO_FACTOR_FAILED,
    RECOVERY_CODE_FAILED,
    "recovery_code_used",
    "recovery_codes_regenerated",
    "two_factor_enabled",
    "two_factor_disabled",
    "two_factor_setup_started",
    "password_changed",
    "password_reset",
    "password_reset_requested",
    "sessions_revoked",
    "disabled",
    "enabled",
    "token_created",
    "token_revoked",
    "email_verified",
    "profile_updated",
];

/// A human label for an event of the `user` audit trail (`None` for events
/// it does not know).
pub fn event_label(event: &str) -> Option<&'static str> {
    Some(match event {
        "login" => "Signed in",
        "logout" => "Signed out",
        LOGIN_FAILED => "Failed sign-in",
        LOCKED_OUT => "Locked out (too many attempts)",
        TWO_FACTOR_FAILED => "Wrong two-factor code",
        RECOVERY_CODE_FAILED => "Wrong recovery code",
        "recovery_code_used" => "Signed in with a recovery code",
        "recovery_codes_regenerated" => "New recovery codes",
        "two_factor_enabled" => "Two-factor authentication turned on",
        "two_factor_disabled" => "Two-factor authentication turned off",
        "two_factor_setup_started" => "Two-factor set-up started",
        "password_changed" => "Password changed",
        "password_reset" => "Password reset",
        "password_reset_requested" => "Password reset requested",
        "sessions_revoked" => "Sessions ended",
        "disabled" => "Account disabled",
        "enabled" => "Account enabled",
        "token_created" => "API token created",
        "token_revoked" => "API token revoked",
        "email_verified" => "E-mail address verified",
        "profile_updated" => "Profile changed",
        "created" => "Account created",
        "role_assigned" => "Role given",
        "role_removed" => "Role taken away",
        "permission_granted" => "Permission granted",
        "permission_revoked" => "Permission revoked",
        _ => return None,
    })
}

/// A human label for the `reason` value of a failed attempt.
pub fn reason_label(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "wrong_password" => "wrong password",
        "account_disabled" => "the account is disabled",
        "unknown_account" => "no such account",
        "wrong_code" => "wrong code",
        "replayed_code" => "a code already used",
        "sign_in" => "at the sign-in",
        "two_factor" => "at the two-factor step",
        _ => return None,
    })
}

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Window {
    start: Instant,
    count: u32,
    suppressed: u64,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            start: now,
            count: 0,
            suppressed: 0,
        }
    }
    fn roll(&mut self, now: Instant, window: Duration) {
        if now.saturating_duration_since(self.start) >= window {
            self.start = now;
            self.count = 0;
        }
    }
}

fn lock(m: &Mutex<Window>) -> MutexGuard<'_, Window> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Decides which security events are written (see the module's
/// documentation). The subjects are accounts: a user id, or `email:` and
/// the digest of the address a sign-in named (the same for an address
/// with an account and one without).
pub(crate) struct Recorder {
    window: Duration,
    per_address: u32,
    per_account: u32,
    per_client: u32,
    global_max: u32,
    keys: moka::sync::Cache<String, Arc<Mutex<Window>>>,
    global: Mutex<Window>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("tracked_keys", &self.keys.entry_count())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Self::with_limits(WINDOW, [PER_ADDRESS, PER_ACCOUNT, PER_CLIENT, GLOBAL])
    }

    /// Limits per window: per account and address, per account, per
    /// address, in all.
    fn with_limits(
        window: Duration,
        [per_address, per_account, per_client, global]: [u32; 4],
    ) -> Self {
        Self {
            window,
            per_address,
            per_account,
            per_client,
            global_max: global,
            keys: moka::sync::Cache::builder()
                .max_capacity(50_000)
                .time_to_idle(window * 10)
                .build(),
            global: Mutex::new(Window::new(Instant::now())),
        }
    }

    /// Whether an event of kind `event` (an event name, or a name and a
    /// step: `locked_out:two_factor`) against `subject` from `ip` is
    /// written: `Some(n)` with the number of such events left out since
    /// the last one written, or `None` (left out, and counted).
    pub(crate) fn admit(&self, event: &str, subject: &str, ip: Option<IpAddr>) -> Option<u64> {
        let now = Instant::now();
        let ip = ip.map_or_else(|| "-".to_owned(), |i| i.to_string());
        let fresh = || Arc::new(Mutex::new(Window::new(now)));
        // `|` never occurs in an address or an account id.
        let address = self.keys.get_with(format!("{event}|{subject}|{ip}"), fresh);
        let account = self.keys.get_with(format!("{event}|{subject}"), fresh);
        let client = self.keys.get_with(format!("{event}||{ip}"), fresh);
        let per_address = if event.starts_with(LOCKED_OUT) {
            1
        } else {
            self.per_address
        };
        let mut a = lock(&address);
        let mut b = lock(&account);
        let mut c = lock(&client);
        let mut g = lock(&self.global);
        a.roll(now, self.window);
        b.roll(now, self.window);
        c.roll(now, self.window);
        g.roll(now, self.window);
        if a.count < per_address
            && b.count < self.per_account
            && c.count < self.per_client
            && g.count < self.global_max
        {
            a.count += 1;
            b.count += 1;
            c.count += 1;
            g.count += 1;
            Some(std::mem::take(&mut b.suppressed))
        } else {
            b.suppressed += 1;
            if g.count >= self.global_max && g.suppressed == 0 {
                tracing::warn!(
                    "more than {} security events a minute; the rest are counted, not recorded",
                    self.global_max
                );
            }
            g.suppressed = g.suppressed.saturating_add(1);
            None
        }
    }
}

impl Auth {
    /// The digest stored for an e-mail address that has no account
    /// (see [`UNKNOWN_ACCOUNT`]): 16 hex digits of an HMAC of the trimmed,
    /// lower-cased address with the application key.
    pub fn email_digest(&self, email: &str) -> String {
        let normal: String = email.trim().to_lowercase().chars().take(320).collect();
        let mut mac = self
            .inner
            .crypto
            .sign(format!("platform/security-event-email\n{normal}").as_bytes());
        mac.truncate(16);
        mac
    }

    /// Whether an event is written (see [`Recorder::admit`]); a lock-out
    /// at the sign-in and one at the two-factor step are two kinds.
    fn admit(
        &self,
        ctx: &Context,
        event: &str,
        values: &AuditValues,
        subject: &str,
    ) -> Option<u64> {
        let kind = match values.get("step").and_then(|s| s.as_str()) {
            Some(step) => format!("{event}:{step}"),
            None => event.to_owned(),
        };
        let admitted = self.inner.events.admit(&kind, subject, ctx.ip());
        if admitted.is_none() {
            tracing::debug!(event, "security event counted, not recorded");
        }
        admitted
    }

    /// Writes a security event about the account of `email` (which may not
    /// exist).
    ///
    /// The limits are applied first, keyed by the address's digest, and
    /// the account is looked up only for an event that is written: a
    /// throttled flood costs no query, and what is written (and how long
    /// it takes) never depends on whether an account exists.
    pub(super) async fn record_for_email(
        &self,
        ctx: &Context,
        event: &'static str,
        email: &str,
        values: AuditValues,
    ) {
        let digest = self.email_digest(email);
        let Some(suppressed) = self.admit(ctx, event, &values, &format!("email:{digest}")) else {
            return;
        };
        let user = match self.inner.access.find_user_by_email(email).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, event, "could not look up the account of a security event");
                None
            }
        };
        let mut values = values;
        match &user {
            Some(u) if event == LOGIN_FAILED => {
                let reason = if u.disabled_at.is_some() {
                    "account_disabled"
                } else {
                    "wrong_password"
                };
                values.insert("reason".into(), reason.into());
            }
            Some(_) => {}
            None => {
                if event == LOGIN_FAILED {
                    values.insert("reason".into(), "unknown_account".into());
                }
                values.insert("email_digest".into(), digest.into());
            }
        }
        self.write_event(ctx, event, user.as_ref(), values, suppressed)
            .await;
    }

    /// Records a security event (one of [`LOGIN_FAILED`], [`LOCKED_OUT`],
    /// [`TWO_FACTOR_FAILED`], [`RECOVERY_CODE_FAILED`], or an event of your
    /// own sign-in) against account `user_id`, with the client address,
    /// user agent, URL and request id of `ctx`, within the limits described
    /// in the module's documentation. `values` must hold nothing secret; a
    /// `step` value makes a kind of its own for the limits. Never fails: an
    /// event that cannot be written is logged.
    pub async fn record_security_event(
        &self,
        ctx: &Context,
        event: &'static str,
        user_id: i64,
        values: AuditValues,
    ) {
        let Some(suppressed) = self.admit(ctx, event, &values, &user_id.to_string()) else {
            return;
        };
        let user = match self.inner.access.user(user_id).await {
            Ok(Some(u)) => u,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, event, "could not look up the account of a security event");
                return;
            }
        };
        self.write_event(ctx, event, Some(&user), values, suppressed)
            .await;
    }

    /// Writes one admitted event, in its own transaction.
    async fn write_event(
        &self,
        ctx: &Context,
        event: &'static str,
        user: Option<&User>,
        mut values: AuditValues,
        suppressed: u64,
    ) {
        if suppressed > 0 {
            values.insert("suppressed".into(), suppressed.into());
        }
        let actor = match user {
            Some(u) => acting_as(ctx, u),
            None => ctx.clone(),
        }
        .with_tag(SECURITY_TAG);
        let entry = NewEntry {
            event: event.to_owned(),
            resource: "user".to_owned(),
            record_id: user.map_or_else(|| UNKNOWN_ACCOUNT.to_owned(), |u| u.id.to_string()),
            old: None,
            new: (!values.is_empty()).then_some(values),
        };
        let written = async {
            let mut tx = self.inner.db.begin().await?;
            let result = insert_entries(&mut tx, &actor, &[entry]).await;
            tx.finish(result).await
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, event, "could not record a security event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn per_address_then_per_account_then_global() {
        let r = Recorder::with_limits(Duration::from_secs(3600), [2, 3, 100, 5]);
        assert_eq!(r.admit(LOGIN_FAILED, "1", ip("10.0.0.1")), Some(0));
        assert_eq!(r.admit(LOGIN_FAILED, "1", ip("10.0.0.1")), Some(0));
        assert_eq!(r.admit(LOGIN_FAILED, "1", ip("10.0.0.1")), None);
        // Another address: its own quota, within the account's.
        assert_eq!(r.admit(LOGIN_FAILED, "1", ip("10.0.0.2")), Some(1));
        assert_eq!(r.admit(LOGIN_FAILED, "1", ip("10.0.0.3")), None);
        // Another kind of event and another account have their own.
        assert_eq!(r.admit(LOCKED_OUT, "1", ip("10.0.0.1")), Some(0));
        assert_eq!(
            r.admit(LOCKED_OUT, "1", ip("10.0.0.1")),
            None,
            "one lock-out"
        );
        assert_eq!(r.admit(LOGIN_FAILED, "2", ip("10.0.0.1")), Some(0));
        // Five written in all: the rest is counted only.
        assert_eq!(r.admit(LOGIN_FAILED, "3", ip("10.0.0.9")), None);
        assert_eq!(r.admit(TWO_FACTOR_FAILED, "4", None), None);
    }

    #[test]
    fn the_count_left_out_comes_with_the_next_event() {
        let r = Recorder::with_limits(Duration::from_millis(100), [1, 10, 100, 100]);
        assert_eq!(r.admit(LOCKED_OUT, "7", ip("10.0.0.1")), Some(0));
        for _ in 0..50 {
            assert_eq!(r.admit(LOCKED_OUT, "7", ip("10.0.0.1")), None);
        }
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(r.admit(LOCKED_OUT, "7", ip("10.0.0.1")), Some(50));
        assert_eq!(r.admit(LOCKED_OUT, "7", ip("10.0.0.2")), Some(0));
    }

    #[test]
    fn one_address_is_capped_over_accounts() {
        let r = Recorder::with_limits(Duration::from_secs(3600), [5, 20, 3, 100]);
        for account in ["1", "2", "3"] {
            assert!(r.admit(LOGIN_FAILED, account, ip("10.0.0.1")).is_some());
        }
        assert_eq!(r.admit(LOGIN_FAILED, "4", ip("10.0.0.1")), None);
        assert!(r.admit(LOGIN_FAILED, "4", ip("10.0.0.2")).is_some());
    }

    #[test]
    fn labels() {
        for e in USER_SECURITY_EVENTS {
            assert!(event_label(e).is_some(), "{e}");
        }
        assert_eq!(event_label("login_failed"), Some("Failed sign-in"));
        assert_eq!(event_label("whatever"), None);
    }
}
