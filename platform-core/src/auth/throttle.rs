//! Rate limits on every credential check.
//!
//! Each limiter is keyed (an account and address, an address, a user id).
//! In each process it is a GCRA limiter (`governor`); when the platform
//! runs on several nodes (a shared backplane, see [`Throttle::share`]), the
//! attempts are also counted in the shared cache store, in fixed windows of
//! the limit's period, so that the quota holds across nodes: attempts made
//! on two nodes count together. Every attempt counts, successful or not,
//! so the quotas are set well above what a person typing needs.

use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::cache::CacheStore;

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

/// The limiters ([`crate::auth::Auth::throttle`]).
pub struct Throttle {
    config: ThrottleConfig,
    shared: OnceLock<Arc<dyn CacheStore>>,
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
            shared: OnceLock::new(),
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

    /// Counts attempts in `store` too (a store shared by the nodes: Redis),
    /// so that each quota holds across nodes. Set once; the platform does
    /// it when its backplane is shared.
    pub fn share(&self, store: Arc<dyn CacheStore>) {
        let _ = self.shared.set(store);
    }

    /// Counts one attempt on `key` in the shared store, in a fixed window of
    /// `limit.per`. A store that fails counts nothing (the local limiter
    /// still holds, and the store logs its failure).
    async fn shared_check(&self, kind: &str, key: &str, limit: Limit) -> Result<(), Throttled> {
        let Some(store) = self.shared.get() else {
            return Ok(());
        };
        if limit.max == 0 {
            return Ok(());
        }
        let per_ms = u64::try_from(limit.per.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let now_ms = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(0);
        let window = now_ms / per_ms;
        let full = format!("throttle:{kind}:{key}:{window}");
        match store
            .increment(&full, 1, limit.per + Duration::from_secs(1))
            .await
        {
            Ok(n) if n > i64::from(limit.max) => Err(Throttled {
                retry_after: Duration::from_millis((window + 1) * per_ms - now_ms),
            }),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "the shared throttle could not count an attempt");
                Ok(())
            }
        }
    }

    /// Counts a sign-in attempt for `email` from `ip`: the per-address
    /// ceiling first, then the account-and-address limit.
    pub async fn login(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Throttled> {
        let (ip_k, account) = (ip_key(ip), account_key(email, ip));
        self.ip.check(&ip_k)?;
        self.login.check(&account)?;
        self.shared_check("ip", &ip_k, self.config.ip).await?;
        self.shared_check("login", &account, self.config.login)
            .await
    }

    /// Counts a password reset request for `email` from `ip`.
    pub async fn password_reset(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Throttled> {
        let (ip_k, account) = (ip_key(ip), account_key(email, ip));
        self.ip.check(&ip_k)?;
        self.password_reset.check(&account)?;
        self.shared_check("ip", &ip_k, self.config.ip).await?;
        self.shared_check("reset", &account, self.config.password_reset)
            .await
    }

    /// Counts an attempt from `ip` against the per-address ceiling only
    /// (registration).
    pub async fn address(&self, ip: Option<IpAddr>) -> Result<(), Throttled> {
        let ip_k = ip_key(ip);
        self.ip.check(&ip_k)?;
        self.shared_check("ip", &ip_k, self.config.ip).await
    }

    /// Counts a TOTP or recovery code attempt for `user_id`.
    pub async fn two_factor(&self, user_id: i64) -> Result<(), Throttled> {
        self.two_factor.check(&user_id)?;
        self.shared_check("2fa", &user_id.to_string(), self.config.two_factor)
            .await
    }

    /// Counts a password confirmation (or current-password check) for
    /// `user_id`.
    pub async fn password_confirmation(&self, user_id: i64) -> Result<(), Throttled> {
        self.password_confirmation.check(&user_id)?;
        self.shared_check(
            "confirm",
            &user_id.to_string(),
            self.config.password_confirmation,
        )
        .await
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

    #[tokio::test]
    async fn login_allows_five_per_account_and_address_then_throttles() {
        let t = Throttle::new(ThrottleConfig::default());
        for i in 0..5 {
            assert!(
                t.login("Ada@Example.com", ip("10.0.0.1")).await.is_ok(),
                "attempt {i}"
            );
        }
        let th = t
            .login(" ada@example.com ", ip("10.0.0.1"))
            .await
            .expect_err("the sixth attempt (same account, case and spaces aside) is throttled");
        assert!(th.retry_after > Duration::ZERO);
        assert!(th.retry_after <= Duration::from_secs(12), "{th:?}");
        assert!((1..=12).contains(&th.seconds()));
        // Another address, or another account, has its own quota.
        assert!(t.login("ada@example.com", ip("10.0.0.2")).await.is_ok());
        assert!(t.login("bob@example.com", ip("10.0.0.1")).await.is_ok());
    }

    #[tokio::test]
    async fn one_address_is_capped_across_accounts() {
        let t = Throttle::new(ThrottleConfig::default());
        for i in 0..30 {
            assert!(
                t.login(&format!("user{i}@example.com"), ip("10.0.0.9"))
                    .await
                    .is_ok(),
                "attempt {i}"
            );
        }
        assert!(t.login("fresh@example.com", ip("10.0.0.9")).await.is_err());
        assert!(
            t.password_reset("fresh@example.com", ip("10.0.0.9"))
                .await
                .is_err()
        );
        assert!(t.address(ip("10.0.0.9")).await.is_err());
        assert!(t.login("fresh@example.com", ip("10.0.0.10")).await.is_ok());
    }

    #[tokio::test]
    async fn per_user_limits() {
        let t = Throttle::new(ThrottleConfig::default());
        for _ in 0..5 {
            t.two_factor(7).await.unwrap();
            t.password_confirmation(7).await.unwrap();
        }
        assert!(t.two_factor(7).await.is_err());
        assert!(t.password_confirmation(7).await.is_err());
        assert!(t.two_factor(8).await.is_ok());
        assert!(t.tracked_keys() >= 3);
    }

    #[tokio::test]
    async fn a_shared_store_counts_the_attempts_of_every_node() {
        let store: Arc<dyn CacheStore> = Arc::new(crate::cache::MemoryStore::default());
        // Two nodes: their own limiters, one shared store.
        let a = Throttle::new(ThrottleConfig::default());
        let b = Throttle::new(ThrottleConfig::default());
        a.share(store.clone());
        b.share(store);
        for i in 0..5 {
            let node = if i % 2 == 0 { &a } else { &b };
            node.login("ada@example.com", ip("10.0.0.1")).await.unwrap();
        }
        // Each node alone has seen 2 or 3 attempts; together 5.
        let th = a
            .login("ada@example.com", ip("10.0.0.1"))
            .await
            .unwrap_err();
        assert!(th.retry_after <= Duration::from_secs(60), "{th:?}");
        assert!(b.login("ada@example.com", ip("10.0.0.1")).await.is_err());
        assert!(b.login("bob@example.com", ip("10.0.0.1")).await.is_ok());
    }

    #[tokio::test]
    async fn custom_and_disabled_limits() {
        let t = Throttle::new(ThrottleConfig {
            login: Limit {
                max: 2,
                per: Duration::from_secs(3600),
            },
            ..ThrottleConfig::off()
        });
        t.login("a@example.com", None).await.unwrap();
        t.login("a@example.com", None).await.unwrap();
        let th = t.login("a@example.com", None).await.unwrap_err();
        assert!(th.retry_after > Duration::from_secs(1700), "{th:?}");
        for _ in 0..100 {
            t.two_factor(1).await.unwrap();
            t.address(None).await.unwrap();
        }
    }

    #[tokio::test]
    async fn retry_after_elapses() {
        let t = Throttle::new(ThrottleConfig {
            two_factor: Limit {
                max: 1,
                per: Duration::from_millis(200),
            },
            ..ThrottleConfig::off()
        });
        t.two_factor(1).await.unwrap();
        let th = t.two_factor(1).await.unwrap_err();
        tokio::time::sleep(th.retry_after + Duration::from_millis(20)).await;
        assert!(
            t.two_factor(1).await.is_ok(),
            "allowed again after retry_after"
        );
    }
}
