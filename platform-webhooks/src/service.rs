//! The service: subscriptions, host events, fan-out into calls, replay,
//! the call log and pruning.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use platform_adapters::http::{HttpClient, HttpPolicy};
use platform_core::Platform;
use platform_core::crypto::Crypto;
use platform_core::db::{Db, dialect};
use platform_core::error::{Error, Result};
use platform_core::outbox::Event;
use platform_jobs::{Jobs, Options};

use crate::deliver::DeliverWebhook;
use crate::store::{self, Attempt, Call, Subscription, now_ms};
use crate::{Config, Webhooks};

/// The encryption context of subscription secrets.
pub(crate) const SECRET_CONTEXT: &str = "platform-webhooks:secret";

pub(crate) struct State {
    pub(crate) db: Db,
    pub(crate) crypto: Arc<Crypto>,
    pub(crate) client: HttpClient,
    pub(crate) jobs: OnceLock<Arc<Jobs>>,
    /// Singular resource name -> plural (for event types) and the fields
    /// that are personal data or encrypted (never sent).
    pub(crate) resources: BTreeMap<String, (String, Vec<String>)>,
}

impl State {
    pub(crate) fn new(p: &Platform, policy: HttpPolicy, config: &Config) -> Self {
        let resources = p
            .registry()
            .entries()
            .map(|e| {
                let m = e.meta();
                let hidden = m
                    .field_list()
                    .iter()
                    .filter(|f| f.is_pii() || f.is_encrypted())
                    .map(|f| f.name().to_owned())
                    .collect();
                (m.name().to_owned(), (m.plural().to_owned(), hidden))
            })
            .collect();
        Self {
            db: p.db().clone(),
            crypto: p.crypto().clone(),
            client: HttpClient::new(policy)
                .timeout(config.timeout)
                .max_redirects(config.max_redirects),
            jobs: OnceLock::new(),
            resources,
        }
    }
}

/// A subscription to create ([`Webhooks::subscribe`]).
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// The endpoint (`http` or `https`).
    pub url: String,
    /// The events it wants (see [`Subscription::wants`]).
    pub events: Vec<String>,
    /// The signing secret; `None` generates one (`whsec_` and 32
    /// random characters), returned once by [`Webhooks::subscribe`].
    pub secret: Option<String>,
    /// A note for people.
    pub description: String,
    /// The user it belongs to.
    pub owner_id: Option<i64>,
}

impl NewSubscription {
    /// A subscription of `url` to `events`, with a generated secret.
    pub fn new<S: Into<String>>(
        url: impl Into<String>,
        events: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            url: url.into(),
            events: events.into_iter().map(Into::into).collect(),
            secret: None,
            description: String::new(),
            owner_id: None,
        }
    }
    /// Signs with `secret` (at least 16 characters).
    #[must_use]
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }
    /// Belongs to the user `id`.
    #[must_use]
    pub fn owner(mut self, id: i64) -> Self {
        self.owner_id = Some(id);
        self
    }
    /// A note for people.
    #[must_use]
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }
}

/// Changes to a subscription ([`Webhooks::update`]); `None` leaves a
/// field as it is.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SubscriptionUpdate {
    /// A new endpoint.
    pub url: Option<String>,
    /// New events.
    pub events: Option<Vec<String>>,
    /// A new note.
    pub description: Option<String>,
    /// On or off; turning it on resets the failure count.
    pub active: Option<bool>,
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::invalid(field, "invalid", message.into())
}

pub(crate) fn check_url(url: &str) -> Result<()> {
    if url.len() > 2048 {
        return Err(invalid("url", "a URL is at most 2048 characters"));
    }
    platform_adapters::http::validate_url(url).map_err(|e| invalid("url", e.to_string()))
}

pub(crate) fn check_events(events: &[String]) -> Result<()> {
    if events.is_empty() || events.len() > 100 {
        return Err(invalid("events", "give 1 to 100 events"));
    }
    for e in events {
        let body = e.strip_suffix(".*").unwrap_or(e);
        let ok = e == "*"
            || (!body.is_empty()
                && body.len() <= 150
                && body
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
                && !body.starts_with('.')
                && !body.ends_with('.'));
        if !ok {
            return Err(invalid(
                "events",
                format!(
                    "`{}` is not an event name: letters, digits, `_`, `-` and `.`, or `*`, or `prefix.*`",
                    e.chars().take(60).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

/// `…` and the last four characters of `secret`.
fn hint(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// The body of an event: `{id, type, timestamp, data}`.
pub(crate) fn body(
    id: &str,
    event_type: &str,
    at: chrono::DateTime<chrono::Utc>,
    data: &serde_json::Value,
) -> String {
    serde_json::json!({
        "id": id,
        "type": event_type,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

impl Webhooks {
    /// Creates a subscription; returns it and its secret (shown this once:
    /// it is stored encrypted and never shown back in full).
    pub async fn subscribe(&self, new: NewSubscription) -> Result<(Subscription, String)> {
        let st = self.state()?;
        check_url(&new.url)?;
        let mut events = new.events.clone();
        events.sort();
        events.dedup();
        check_events(&events)?;
        let secret = match new.secret {
            Some(s) if s.len() >= 16 && s.len() <= 200 => s,
            Some(_) => return Err(invalid("secret", "a secret is 16 to 200 characters")),
            None => format!("whsec_{}", platform_core::crypto::random_token(32)),
        };
        if new.description.len() > 1000 {
            return Err(invalid("description", "at most 1000 characters"));
        }
        let now = now_ms();
        let mut tx = st.db.begin().await?;
        let mut q = tx.sql();
        q.push("INSERT INTO platform_webhook_subscriptions (url, secret, secret_hint, events, description, active, owner_id, failures, created_at, updated_at) VALUES (")
            .bind_str(new.url.clone())
            .push(", ")
            .bind_str(st.crypto.encrypt(&secret, SECRET_CONTEXT))
            .push(", ")
            .bind_str(hint(&secret))
            .push(", ")
            .bind_str(serde_json::to_string(&events).unwrap_or_default())
            .push(", ")
            .bind_str(new.description.clone())
            .push(", 1, ");
        match new.owner_id {
            Some(o) => q.bind_i64(o),
            None => q.push("NULL"),
        };
        q.push(", 0, ")
            .bind_i64(now)
            .push(", ")
            .bind_i64(now)
            .push(")");
        dialect::push_returning(&mut q, "id");
        let id = tx.insert_returning_id(q).await?;
        tx.commit().await?;
        let sub = self.subscription(id).await?.ok_or(Error::NotFound {
            resource: "webhook subscription",
            id: id.to_string(),
        })?;
        Ok((sub, secret))
    }

    /// The subscription `id`.
    pub async fn subscription(&self, id: i64) -> Result<Option<Subscription>> {
        Ok(self.subscription_with_secret(id).await?.map(|(s, _)| s))
    }

    pub(crate) async fn subscription_with_secret(
        &self,
        id: i64,
    ) -> Result<Option<(Subscription, String)>> {
        let st = self.state()?;
        let mut q = st.db.sql();
        q.push("SELECT ")
            .push(store::SUB_COLUMNS)
            .push(" FROM platform_webhook_subscriptions WHERE id = ")
            .bind_i64(id);
        let row = st.db.fetch_optional(q, store::SUB_TYPES).await?;
        Ok(row.as_ref().map(store::subscription_of))
    }

    /// Every subscription, newest first.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        self.subscriptions_where(false).await
    }

    async fn subscriptions_where(&self, active_only: bool) -> Result<Vec<Subscription>> {
        let st = self.state()?;
        let mut q = st.db.sql();
        q.push("SELECT ")
            .push(store::SUB_COLUMNS)
            .push(" FROM platform_webhook_subscriptions");
        if active_only {
            q.push(" WHERE active = 1");
        }
        q.push(" ORDER BY id DESC");
        let rows = st.db.fetch_all(q, store::SUB_TYPES).await?;
        Ok(rows.iter().map(|r| store::subscription_of(r).0).collect())
    }

    /// Changes the subscription `id`.
    pub async fn update(&self, id: i64, change: SubscriptionUpdate) -> Result<Subscription> {
        let st = self.state()?;
        let not_found = || Error::NotFound {
            resource: "webhook subscription",
            id: id.to_string(),
        };
        self.subscription(id).await?.ok_or_else(not_found)?;
        let mut q = st.db.sql();
        q.push("UPDATE platform_webhook_subscriptions SET updated_at = ")
            .bind_i64(now_ms());
        if let Some(url) = &change.url {
            check_url(url)?;
            q.push(", url = ").bind_str(url.clone());
        }
        if let Some(events) = &change.events {
            let mut events = events.clone();
            events.sort();
            events.dedup();
            check_events(&events)?;
            q.push(", events = ")
                .bind_str(serde_json::to_string(&events).unwrap_or_default());
        }
        if let Some(d) = &change.description {
            if d.len() > 1000 {
                return Err(invalid("description", "at most 1000 characters"));
            }
            q.push(", description = ").bind_str(d.clone());
        }
        match change.active {
            Some(true) => {
                q.push(", active = 1, failures = 0, disabled_reason = NULL");
            }
            Some(false) => {
                q.push(", active = 0");
            }
            None => {}
        }
        q.push(" WHERE id = ").bind_i64(id);
        st.db.execute(q).await?;
        self.subscription(id).await?.ok_or_else(not_found)
    }

    /// Stops calls to the subscription `id` (kept, with its log).
    pub async fn deactivate(&self, id: i64) -> Result<Subscription> {
        self.update(
            id,
            SubscriptionUpdate {
                active: Some(false),
                ..SubscriptionUpdate::default()
            },
        )
        .await
    }

    /// Deletes the subscription `id` (its calls stay in the log); whether
    /// it existed.
    pub async fn delete(&self, id: i64) -> Result<bool> {
        let st = self.state()?;
        let mut q = st.db.sql();
        q.push("DELETE FROM platform_webhook_subscriptions WHERE id = ")
            .bind_i64(id);
        Ok(st.db.execute(q).await? > 0)
    }

    /// Sends the host-defined event `event_type` (`order.shipped`) with
    /// `data` to every active subscription that wants it; returns the
    /// number of calls queued. `data` is sent as given: leave personal
    /// data out.
    pub async fn dispatch(&self, event_type: &str, data: serde_json::Value) -> Result<usize> {
        check_events(&[event_type.to_owned()])?;
        if event_type.contains('*') {
            return Err(invalid("type", "an event's type has no `*`"));
        }
        let id = uuid::Uuid::now_v7().to_string();
        self.fan_out(&id, event_type, chrono::Utc::now(), &data)
            .await
    }

    /// One call per active subscription wanting `event_type`, each
    /// delivered by a job. Idempotent per (event id, subscription).
    pub(crate) async fn fan_out(
        &self,
        event_id: &str,
        event_type: &str,
        at: chrono::DateTime<chrono::Utc>,
        data: &serde_json::Value,
    ) -> Result<usize> {
        let st = self.state()?;
        let subs: Vec<Subscription> = self
            .subscriptions_where(true)
            .await?
            .into_iter()
            .filter(|s| s.wants(event_type))
            .collect();
        if subs.is_empty() {
            return Ok(0);
        }
        let payload = body(event_id, event_type, at, data);
        let mut queued = 0;
        for s in subs {
            let now = now_ms();
            let call = Call {
                id: uuid::Uuid::now_v7().to_string(),
                subscription_id: s.id,
                event_id: event_id.to_owned(),
                event_type: event_type.to_owned(),
                payload: payload.clone(),
                status: "pending".into(),
                attempts: 0,
                last_status: None,
                created_at: now,
                updated_at: now,
            };
            if store::insert_call(&st.db, &call).await? {
                self.enqueue(&call.id, false).await?;
                queued += 1;
            }
        }
        Ok(queued)
    }

    async fn enqueue(&self, call_id: &str, manual: bool) -> Result<()> {
        let st = self.state()?;
        let jobs = st.jobs.get().ok_or_else(|| {
            Error::Configuration("webhooks: the jobs service is not installed yet".into())
        })?;
        jobs.dispatch_with(
            DeliverWebhook {
                call_id: call_id.to_owned(),
                manual,
                max_attempts: self.config.max_attempts,
            },
            Options::new()
                .queue(self.config.queue.clone())
                .max_attempts(self.config.max_attempts)
                .backoff(self.config.backoff),
        )
        .await?;
        Ok(())
    }

    /// Queues the call `id` again, whatever its status (a delivered one is
    /// sent again; a finally failed one gets a fresh round of attempts),
    /// even to a disabled subscription.
    pub async fn replay(&self, id: &str) -> Result<()> {
        let st = self.state()?;
        let mut q = st.db.sql();
        q.push("UPDATE platform_webhook_calls SET status = 'pending', updated_at = ")
            .bind_i64(now_ms())
            .push(" WHERE id = ")
            .bind_str(id);
        if st.db.execute(q).await? == 0 {
            return Err(Error::NotFound {
                resource: "webhook call",
                id: id.chars().take(64).collect(),
            });
        }
        self.enqueue(id, true).await
    }

    /// The latest `limit` calls (of one subscription, or all), newest first.
    pub async fn calls(&self, subscription: Option<i64>, limit: i64) -> Result<Vec<Call>> {
        let st = self.state()?;
        let mut q = st.db.sql();
        q.push("SELECT ")
            .push(store::CALL_COLUMNS)
            .push(" FROM platform_webhook_calls");
        if let Some(s) = subscription {
            q.push(" WHERE subscription_id = ").bind_i64(s);
        }
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .int(limit.clamp(1, 1000));
        let rows = st.db.fetch_all(q, store::CALL_TYPES).await?;
        Ok(rows.iter().map(store::call_of).collect())
    }

    /// The call `id` and its attempts.
    pub async fn call(&self, id: &str) -> Result<Option<(Call, Vec<Attempt>)>> {
        let st = self.state()?;
        let mut q = st.db.sql();
        q.push("SELECT ")
            .push(store::CALL_COLUMNS)
            .push(" FROM platform_webhook_calls WHERE id = ")
            .bind_str(id);
        let Some(row) = st.db.fetch_optional(q, store::CALL_TYPES).await? else {
            return Ok(None);
        };
        let call = store::call_of(&row);
        let attempts = store::attempts_of(&st.db, &call.id).await?;
        Ok(Some((call, attempts)))
    }

    /// Deletes calls, attempts and incoming calls older than the
    /// retention; returns how many rows went.
    pub async fn prune(&self) -> Result<u64> {
        self.prune_older_than(self.config.retention).await
    }

    /// Deletes calls, attempts and incoming calls older than `age`.
    pub async fn prune_older_than(&self, age: Duration) -> Result<u64> {
        let st = self.state()?;
        let cutoff = now_ms() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX / 2);
        let mut n = 0;
        for (table, column) in [
            ("platform_webhook_attempts", "created_at"),
            ("platform_webhook_calls", "created_at"),
            ("platform_webhook_incoming", "received_at"),
        ] {
            let mut q = st.db.sql();
            q.push("DELETE FROM ")
                .ident(table)
                .push(" WHERE ")
                .ident(column)
                .push(" < ")
                .bind_i64(cutoff);
            n += st.db.execute(q).await?;
        }
        Ok(n)
    }
}

/// The outbox's events become `{plural}.{event}` webhook events.
pub(crate) fn subscribe_outbox(p: &Platform, w: Arc<Webhooks>) {
    p.outbox().subscribe("webhooks", move |e: Event| {
        let w = w.clone();
        async move {
            let st = w.state()?;
            let (plural, hidden) = st
                .resources
                .get(&e.resource)
                .cloned()
                .unwrap_or_else(|| (e.resource.clone(), Vec::new()));
            let event_type = format!("{plural}.{}", e.event);
            // The changes carry the audit's redaction (encrypted values are
            // `[redacted]`, unaudited fields absent); personal data is
            // redacted too, and the actor's label (an e-mail address) is
            // left out.
            let mut changes = e.changes.clone();
            for name in &hidden {
                if let Some(c) = changes.get_mut(name) {
                    for v in [&mut c.old, &mut c.new] {
                        if !v.is_null() {
                            *v = serde_json::Value::String("[redacted]".into());
                        }
                    }
                }
            }
            let data = serde_json::json!({
                "resource": plural,
                "record_id": e.record_id,
                "event": e.event,
                "changes": changes,
                "actor": { "kind": e.actor.kind, "user_id": e.actor.user_id },
                "tags": e.tags,
            });
            w.fan_out(&e.id, &event_type, e.occurred_at, &data).await?;
            Ok(())
        }
    });
}
