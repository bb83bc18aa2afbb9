//! # platform-webhooks
//!
//! Outgoing and incoming webhooks for Platform (Spatie's Webhook Server
//! and Webhook Client), as a capability.
//!
//! ```no_run
//! use platform_jobs::Jobs;
//! use platform_webhooks::{IncomingSource, NewSubscription, Scheme, Webhooks};
//!
//! # async fn run() -> platform_core::Result<()> {
//! let platform = platform_core::Platform::builder()
//!     .with(Jobs::new())
//!     .with(
//!         Webhooks::new()
//!             .max_attempts(5)
//!             .disable_after(5)
//!             .source(IncomingSource::new("stripe", "whsec_...", Scheme::Stripe).handler(
//!                 |call: platform_webhooks::IncomingCall| async move {
//!                     println!("stripe sent {}", call.event_id);
//!                     Ok(())
//!                 },
//!             )),
//!     )
//!     .build()
//!     .await?;
//! let webhooks = platform.get::<Webhooks>().expect("added above");
//! webhooks
//!     .subscribe(NewSubscription::new("https://example.com/hooks", ["invoices.*", "order.shipped"]))
//!     .await?;
//! // A host-defined event, to every subscription that wants it.
//! webhooks
//!     .dispatch("order.shipped", serde_json::json!({ "order": 42 }))
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! **Outgoing.** Resource events come from the outbox (after commit, with
//! the audit's redaction: encrypted values are `[redacted]`, fields left
//! out of the audit are absent) as `{plural}.{event}` (`invoices.created`);
//! host events from [`Webhooks::dispatch`]. Each (event, subscription) is
//! one *call*, delivered by a job ([`platform_jobs`]) with a timeout,
//! exponential backoff and a maximum of attempts; each attempt is logged
//! (status, latency, response excerpt, error). The body is
//! `{"id", "type", "timestamp", "data"}`, signed in
//! `Platform-Signature: t=<unix>,v1=<hex>` (HMAC-SHA256 of
//! `"{t}.{body}"`, see [`signature`]) with the event id in
//! `Platform-Webhook-Id`. After [`Webhooks::disable_after`] calls in a row
//! fail finally, the subscription is disabled and its owner notified
//! (through `platform-notify` when it is added, else a warning in the
//! log). Any call can be replayed ([`Webhooks::replay`], the panel, the
//! `webhooks:replay` command). URLs are checked by
//! [`HttpPolicy`] after DNS
//! resolution and on every redirect: loopback, private, link-local and
//! metadata addresses are refused unless allowed
//! ([`Webhooks::allow_network`], `PLATFORM_WEBHOOKS_ALLOW_NETWORKS`).
//!
//! **Incoming.** `POST /webhooks/in/{source}` verifies the source's
//! signature ([`Scheme`]: the platform's, Stripe's, GitHub's) and
//! timestamp, stores the call, answers 200 and processes it in a job with
//! the source's handler; a second call with the same event id answers 200
//! and is not processed again.
//!
//! | contributes | what |
//! |---|---|
//! | permissions | `view_webhooks`, `manage_webhooks` |
//! | panel pages | `webhooks` (subscriptions), `webhook-calls` (log, replay), `webhooks-incoming` (re-run) |
//! | API | `GET/POST /api/webhooks/subscriptions`, `PATCH/DELETE /api/webhooks/subscriptions/{id}`, `GET /api/webhooks/calls`, `GET /api/webhooks/calls/{id}`, `POST /api/webhooks/calls/{id}/replay` |
//! | commands | `webhooks:list`, `webhooks:replay ID`, `webhooks:calls`, `webhooks:rerun ID`, `webhooks:prune` |
//! | routes | `POST /webhooks/in/{source}` |
//! | task | pruning incoming calls and calls older than the retention |

mod api;
mod commands;
mod deliver;
mod incoming;
mod panel;
mod service;
pub mod signature;
mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use platform_adapters::http::HttpPolicy;
use platform_admin::capability::SetupExt;
use platform_core::Platform;
use platform_core::capability::{Capability, Setup, TaskKind};
use platform_core::error::{Error, Result};

pub use incoming::{Handler, HandlerFuture, IncomingSource};
pub use service::{NewSubscription, SubscriptionUpdate};
pub use signature::{Scheme, SignatureError};
pub use store::{Attempt, Call, IncomingCall, MIGRATIONS, Subscription, pattern_matches};

/// The environment variable listing networks outgoing calls may reach
/// although they are loopback, private or link-local
/// (`127.0.0.0/8,10.1.0.0/16`), read once when the platform is built.
pub const ALLOW_NETWORKS_ENV: &str = "PLATFORM_WEBHOOKS_ALLOW_NETWORKS";

/// The permission to see subscriptions, calls and incoming calls.
pub const VIEW: &str = "view_webhooks";
/// The permission to change subscriptions and replay calls.
pub const MANAGE: &str = "manage_webhooks";

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) policy: HttpPolicy,
    pub(crate) networks: Vec<String>,
    pub(crate) use_env: bool,
    pub(crate) timeout: Duration,
    pub(crate) max_redirects: usize,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Duration,
    pub(crate) disable_after: i64,
    pub(crate) queue: String,
    pub(crate) sources: BTreeMap<String, IncomingSource>,
    pub(crate) max_body: usize,
    pub(crate) retention: Duration,
    pub(crate) resource_events: bool,
}

/// The webhooks capability, and the service it adds
/// (`platform.get::<Webhooks>()`). See the [crate docs](crate).
///
/// Needs the jobs capability (`platform_jobs::Jobs`) in the same builder.
#[derive(Clone)]
pub struct Webhooks {
    pub(crate) config: Arc<Config>,
    pub(crate) state: Option<Arc<service::State>>,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhooks")
            .field("policy", &self.config.policy)
            .field("timeout", &self.config.timeout)
            .field("max_attempts", &self.config.max_attempts)
            .field("disable_after", &self.config.disable_after)
            .field("sources", &self.config.sources.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for Webhooks {
    fn default() -> Self {
        Self::new()
    }
}

impl Webhooks {
    /// The defaults: public addresses only, 10 s per attempt, 3 redirects,
    /// 5 attempts with backoff from 10 s, disabled after 5 calls in a row
    /// fail, on the `default` queue; incoming bodies up to 256 KiB; calls
    /// kept 30 days.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                policy: HttpPolicy::new(),
                networks: Vec::new(),
                use_env: true,
                timeout: Duration::from_secs(10),
                max_redirects: 3,
                max_attempts: 5,
                backoff: Duration::from_secs(10),
                disable_after: 5,
                queue: "default".into(),
                sources: BTreeMap::new(),
                max_body: 256 * 1024,
                retention: Duration::from_secs(30 * 86_400),
                resource_events: true,
            }),
            state: None,
        }
    }

    fn cfg(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Replaces the address policy of outgoing calls.
    #[must_use]
    pub fn policy(mut self, policy: HttpPolicy) -> Self {
        self.cfg().policy = policy;
        self
    }
    /// Lets outgoing calls reach `network` (`127.0.0.0/8`, `10.1.0.0/16`)
    /// although it is loopback, private or link-local. A malformed network
    /// fails the build.
    #[must_use]
    pub fn allow_network(mut self, network: impl Into<String>) -> Self {
        self.cfg().networks.push(network.into());
        self
    }
    /// Lets outgoing calls reach loopback addresses (tests, a relay on the
    /// same host).
    #[must_use]
    pub fn allow_loopback(mut self) -> Self {
        let p = self.cfg().policy.clone();
        self.cfg().policy = p.allow_loopback();
        self
    }
    /// Ignores `PLATFORM_WEBHOOKS_ALLOW_NETWORKS`.
    #[must_use]
    pub fn ignore_env(mut self) -> Self {
        self.cfg().use_env = false;
        self
    }
    /// How long one attempt may take in all (connecting, redirects,
    /// reading the answer). Default 10 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.cfg().timeout = timeout;
        self
    }
    /// How many redirects an attempt follows (each checked). Default 3.
    #[must_use]
    pub fn max_redirects(mut self, n: usize) -> Self {
        self.cfg().max_redirects = n;
        self
    }
    /// Attempts per call (at least 1). Default 5.
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.cfg().max_attempts = n.max(1);
        self
    }
    /// The first retry's delay; each further retry doubles it. Default
    /// 10 s.
    #[must_use]
    pub fn backoff(mut self, first: Duration) -> Self {
        self.cfg().backoff = first;
        self
    }
    /// Disables a subscription after `n` calls in a row fail finally (0:
    /// never). Default 5.
    #[must_use]
    pub fn disable_after(mut self, n: u32) -> Self {
        self.cfg().disable_after = i64::from(n);
        self
    }
    /// The queue deliveries and incoming calls run on. Default `default`.
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.cfg().queue = queue.into();
        self
    }
    /// Accepts incoming calls from `source` at `POST /webhooks/in/{name}`.
    #[must_use]
    pub fn source(mut self, source: IncomingSource) -> Self {
        self.cfg().sources.insert(source.name.clone(), source);
        self
    }
    /// The largest incoming body, in bytes (a larger one is answered 413).
    /// Default 256 KiB.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.cfg().max_body = bytes;
        self
    }
    /// How long calls, their attempts and incoming calls are kept.
    /// Default 30 days.
    #[must_use]
    pub fn retention(mut self, d: Duration) -> Self {
        self.cfg().retention = d;
        self
    }
    /// Whether resource events from the outbox become webhook events.
    /// Default on.
    #[must_use]
    pub fn resource_events(mut self, on: bool) -> Self {
        self.cfg().resource_events = on;
        self
    }

    /// The resolved policy: the configured one plus the allowed networks
    /// (from the builder and, unless ignored, the environment).
    fn resolved_policy(&self) -> Result<HttpPolicy> {
        let mut policy = self.config.policy.clone();
        let mut networks = self.config.networks.clone();
        if self.config.use_env
            && let Ok(v) = std::env::var(ALLOW_NETWORKS_ENV)
        {
            networks.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        }
        for n in networks {
            let net: ipnet::IpNet = n.parse().map_err(|e| {
                Error::Configuration(format!("webhooks: `{n}` is not a network (CIDR): {e}"))
            })?;
            policy = policy.allow_network(net);
        }
        Ok(policy)
    }

    pub(crate) fn state(&self) -> Result<&Arc<service::State>> {
        self.state.as_ref().ok_or_else(|| {
            Error::Configuration(
                "this Webhooks is the capability's builder: use `platform.get::<Webhooks>()`"
                    .into(),
            )
        })
    }
}

/// The service of `platform`, or a configuration error naming what to add.
pub(crate) fn webhooks_of(platform: &Platform) -> Result<Arc<Webhooks>> {
    platform.get::<Webhooks>().ok_or_else(|| {
        Error::Configuration(
            "the webhooks capability is not added: add `platform_webhooks::Webhooks` to the \
             builder of every process that runs jobs"
                .into(),
        )
    })
}

impl Capability for Webhooks {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn setup(&self, setup: &mut Setup) {
        setup.migrations(MIGRATIONS);
        setup.permission(VIEW, "See webhook subscriptions and calls");
        setup.permission(MANAGE, "Change webhook subscriptions and replay calls");
        let this = self.clone();
        setup.service(move |p: Platform| {
            let this = this.clone();
            async move {
                let policy = this.resolved_policy()?;
                for source in this.config.sources.values() {
                    source.check()?;
                }
                let state = service::State::new(&p, policy, &this.config);
                Ok(Webhooks {
                    config: this.config.clone(),
                    state: Some(Arc::new(state)),
                })
            }
        });
        setup.on_start(|p: Platform| async move {
            let w = webhooks_of(&p)?;
            let jobs = p.get::<platform_jobs::Jobs>().ok_or_else(|| {
                Error::Configuration(
                    "webhooks are delivered by the jobs capability, which is not added: add \
                     `.with(platform_jobs::Jobs::new())` to the builder"
                        .into(),
                )
            })?;
            let state = w.state()?;
            let _ = state.jobs.set(jobs);
            if w.config.resource_events {
                service::subscribe_outbox(&p, w.clone());
            }
            Ok(())
        });
        setup.task(
            "webhooks:prune",
            TaskKind::Worker,
            |p, mut stop| async move {
                loop {
                    if let Ok(w) = webhooks_of(&p)
                        && let Err(e) = w.prune().await
                    {
                        tracing::warn!(error = %e, "pruning webhook calls failed");
                    }
                    if stop.wait_for(Duration::from_secs(3600)).await {
                        return;
                    }
                }
            },
        );
        setup.routes(incoming::routes(self.config.max_body));
        panel::contribute(setup);
        api::contribute(setup);
        for c in commands::commands() {
            setup.command(c);
        }
    }
}
