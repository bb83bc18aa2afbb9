//! In-memory rate limits on every credential check (GCRA, via `governor`).
//!
//! Each limiter is keyed (an account and address, an address, a user id)
//! and lives in this process only: several processes behind a load
//! balancer each allow the quota. Every attempt counts, successful or not
//! (a limiter cannot be reset for one key), so the quotas are set well
//! above what a person typing needs.

use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A quota: at most `max` attempts per `per`, refilled evenly (5 per
/// minute refills one attempt every 12 seconds). `max == 0` turns the
/// limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Attempts allowed in a burst, and per `per`.
    pub max: u32,
    /// The window the attempts are spread over.
    pub per: Duration,
}

impl Limit {
    /// `max` attempts per minute.
    pub const fn per_minute(max: u32) -> Self {
        Self {
            max,
            per: Duration::from_secs(60),
        }
    }
    /// No limit.
    pub const fn off() -> Self {
        Self {
            max: 0,
            per: Duration::from_secs(60),
        }
    }
    fn quota(self) -> Option<Quota> {
        let max = NonZeroU32::new(self.max)?;
        let period = (self.per / self.max).max(Duration::from_nanos(1));
        Quota::with_period(period).map(|q| q.allow_burst(max))
    }
}

/// The quotas of every credential check. The defaults follow Fortify's
/// login limiter (5 per minute per account and address) and add a
/// per-address ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Sign-in attempts per lower-cased e-mail and client address
    /// (default 5 per minute).
    pub login: Limit,
    /// Credential checks of any kind (sign-in, password reset requests,
    /// registration) per client address (default 30 per minute).
    pub ip: Limit,
    /// TOTP and recovery codes per user (default 5 per minute).
    pub two_factor: Limit,
    /// Password reset requests per lower-cased e-mail and client address
    /// (default 5 per minute).
    pub password_reset: Limit,
    /// Password confirmations and password changes per user (default 5 per
    /// minute).
    pub password_confirmation: Limit,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            login: Limit::per_minute(5),
            ip: Limit::per_minute(30),
            two_factor: Limit::per_minute(5),
            password_reset: Limit::per_minute(5),
            password_confirmation: Limit::per_minute(5),
        }
    }
}

impl ThrottleConfig {
    /// Every limit off (tests that hammer one account on purpose).
    pub fn off() -> Self {
        Self {
            login: Limit::off(),
            ip: Limit::off(),
            two_factor: Limit::off(),
            password_reset: Limit::off(),
            password_confirmation: Limit::off(),
        }
    }
}

/// What a throttled check answers: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// How long until the next attempt is allowed.
    pub retry_after: Duration,
}

impl Throttled {
    /// The wait in whole seconds, rounded up (at least 1), for a
    /// `Retry-After` header or a message.
    pub fn seconds(&self) -> u64 {
        let s = self.retry_after.as_secs();
        if self.retry_after.subsec_nanos() > 0 || s == 0 {
            s + 1
        } else {
            s
        }
    }
}

/// One keyed limiter.
struct Keyed<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(limit: Limit) -> Self {
        Self {
            limiter: limit.quota().map(RateLimiter::keyed),
            checks: AtomicU64::new(0),
        }
    }

    fn check(&self, key: &K) -> Result<(), Throttled> {
        let Some(l) = &self.limiter else {
            return Ok(());
        };
        // Forget keys that are back to a full quota now and then, so the
        // map does not grow with every address ever seen.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            l.retain_recent();
            l.shrink_to_fit();
        }
        l.check_key(key).map_err(|not_until| Throttled {
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })
    }

    fn len(&self) -> usize {
        self.limiter.as_ref().map_or(0, RateLimiter::len)
    }
}

/// The limiters of one process ([`crate::auth::Auth::throttle`]).
pub struct Throttle {
    config: ThrottleConfig,
    login: Keyed<String>,
    ip: Keyed<String>,
    two_factor: Keyed<i64>,
    password_reset: Keyed<String>,
    password_confirmation: Keyed<i64>,
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("config", &self.config)
            .field("tracked_keys", &self.tracked_keys())
            .finish()
    }
}

fn ip_key(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), |i| i.to_string())
}

fn account_key(email: &str, ip: Option<IpAddr>) -> String {
    format!("{}|{}", email.trim().to_lowercase(), ip_key(ip))
}

impl Throttle {
    /// Limiters with these quotas.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            login: Keyed::new(config.login),
            ip: Keyed::new(config.ip),
            two_factor: Keyed::new(config.two_factor),
            password_reset: Keyed::new(config.password_reset),
            password_confirmation: Keyed::new(config.password_confirmation),
        }
    }

    /// The quotas.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Counts a sign-in attempt for `email` from `ip`: the per-address
    /// ceiling first, then the account-and-address limit.
    pub fn login(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Throttled> {
        self.ip.check(&ip_key(ip))?;
        self.login.check(&account_key(email, ip))
    }

    /// Counts a password reset request for `email` from `ip`.
    pub fn password_reset(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Throttled> {
        self.ip.check(&ip_key(ip))?;
        self.password_reset.check(&account_key(email, ip))
    }

    /// Counts an attempt from `ip` against the per-address ceiling only
    /// (registration).
    pub fn address(&self, ip: Option<IpAddr>) -> Result<(), Throttled> {
        self.ip.check(&ip_key(ip))
    }

    /// Counts a TOTP or recovery code attempt for `user_id`.
    pub fn two_factor(&self, user_id: i64) -> Result<(), Throttled> {
        self.two_factor.check(&user_id)
    }

    /// Counts a password confirmation (or current-password check) for
    /// `user_id`.
    pub fn password_confirmation(&self, user_id: i64) -> Result<(), Throttled> {
        self.password_confirmation.check(&user_id)
    }

    /// How many keys the limiters hold (for metrics and tests).
    pub fn tracked_keys(&self) -> usize {
        self.login.len()
            + self.ip.len()
            + self.two_factor.len()
            + self.password_reset.len()
            + self.password_confirmation.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn login_allows_five_per_account_and_address_then_throttles() {
        let t = Throttle::new(ThrottleConfig::default());
        for i in 0..5 {
            assert!(
                t.login("Ada@Example.com", ip("10.0.0.1")).is_ok(),
                "attempt {i}"
            );
        }
        let th = t
            .login(" ada@example.com ", ip("10.0.0.1"))
            .expect_err("the sixth attempt (same account, case and spaces aside) is throttled");
        assert!(th.retry_after > Duration::ZERO);
        assert!(th.retry_after <= Duration::from_secs(12), "{th:?}");
        assert!((1..=12).contains(&th.seconds()));
        // Another address, or another account, has its own quota.
        assert!(t.login("ada@example.com", ip("10.0.0.2")).is_ok());
        assert!(t.login("bob@example.com", ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn one_address_is_capped_across_accounts() {
        let t = Throttle::new(ThrottleConfig::default());
        for i in 0..30 {
            assert!(
                t.login(&format!("user{i}@example.com"), ip("10.0.0.9"))
                    .is_ok(),
                "attempt {i}"
            );
        }
        assert!(t.login("fresh@example.com", ip("10.0.0.9")).is_err());
        assert!(
            t.password_reset("fresh@example.com", ip("10.0.0.9"))
                .is_err()
        );
        assert!(t.address(ip("10.0.0.9")).is_err());
        assert!(t.login("fresh@example.com", ip("10.0.0.10")).is_ok());
    }

    #[test]
    fn per_user_limits() {
        let t = Throttle::new(ThrottleConfig::default());
        for _ in 0..5 {
            t.two_factor(7).unwrap();
            t.password_confirmation(7).unwrap();
        }
        assert!(t.two_factor(7).is_err());
        assert!(t.password_confirmation(7).is_err());
        assert!(t.two_factor(8).is_ok());
        assert!(t.tracked_keys() >= 3);
    }

    #[test]
    fn custom_and_disabled_limits() {
        let t = Throttle::new(ThrottleConfig {
            login: Limit {
                max: 2,
                per: Duration::from_secs(3600),
            },
            ..ThrottleConfig::off()
        });
        t.login("a@example.com", None).unwrap();
        t.login("a@example.com", None).unwrap();
        let th = t.login("a@example.com", None).unwrap_err();
        assert!(th.retry_after > Duration::from_secs(1700), "{th:?}");
        for _ in 0..100 {
            t.two_factor(1).unwrap();
            t.address(None).unwrap();
        }
    }

    #[test]
    fn retry_after_elapses() {
        let t = Throttle::new(ThrottleConfig {
            two_factor: Limit {
                max: 1,
                per: Duration::from_millis(200),
            },
            ..ThrottleConfig::off()
        });
        t.two_factor(1).unwrap();
        let th = t.two_factor(1).unwrap_err();
        std::thread::sleep(th.retry_after + Duration::from_millis(20));
        assert!(t.two_factor(1).is_ok(), "allowed again after retry_after");
    }
}
