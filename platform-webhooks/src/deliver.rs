//! Delivery: the job that makes one attempt of a call, logs it, and on a
//! final failure counts it against the subscription (disabling it and
//! notifying its owner after too many in a row).

use std::time::Instant;

use axum::http::Method;
use platform_adapters::http::HttpRequest;
use platform_core::error::{Error, Result};
use platform_core::notification::Notice;
use platform_jobs::{Job, JobContext, JobError, job};
use platform_notify::{Notification, Notifier, Recipient};
use serde::{Deserialize, Serialize};

use crate::signature::{ID_HEADER, SIGNATURE_HEADER, sign};
use crate::store::{Subscription, now_ms};
use crate::{Webhooks, webhooks_of};

/// Delivers one call (one attempt per run).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DeliverWebhook {
    pub(crate) call_id: String,
    /// Replayed by hand: delivered even to an inactive subscription.
    #[serde(default)]
    pub(crate) manual: bool,
    /// The runs it gets (to know the last one).
    pub(crate) max_attempts: u32,
}

// The name deliveries are stored under: never change it.
#[job(name = "platform_webhook_delivery", timeout = "300s", max_attempts = 5)]
impl Job for DeliverWebhook {
    async fn handle(self, cx: &JobContext) -> Result<(), JobError> {
        let w = webhooks_of(cx.platform())?;
        let last = cx.attempt() >= self.max_attempts;
        w.deliver(cx.platform(), &self.call_id, self.manual, last)
            .await
    }
}

/// Tells a subscription's owner that it was disabled.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WebhookDisabled {
    pub(crate) subscription_id: i64,
    pub(crate) origin: String,
    pub(crate) failures: i64,
}

impl Notification for WebhookDisabled {
    const NAME: &'static str = "platform_webhook_disabled";
    fn channels(&self, _to: &Recipient) -> Vec<&str> {
        vec!["database"]
    }
    fn to_database(&self, _to: &Recipient) -> Option<Notice> {
        Some(Notice::new(
            "Webhook disabled",
            format!(
                "Webhook subscription {} to {} was disabled after {} failed calls in a row.",
                self.subscription_id, self.origin, self.failures
            ),
        ))
    }
}
platform_notify::register_notification!(WebhookDisabled);

/// `scheme://host[:port]` of `url`, for messages (a path or query may hold
/// a secret).
pub(crate) fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

enum Outcome {
    Delivered,
    Failed { message: String, retry: bool },
}

impl Webhooks {
    async fn set_call(&self, id: &str, status: &str, last_status: Option<u16>) -> Result<()> {
        let st = self.state()?;
        st.db
            .execute(call_sql(&st.db, id, status, last_status))
            .await?;
        Ok(())
    }

    /// Logs an attempt (`attempt`, from [`attempt_sql`]) and sets its
    /// call's status in one transaction: one commit per delivery.
    async fn finish_attempt(
        &self,
        attempt: platform_core::db::Sql,
        id: &str,
        status: &str,
        last_status: Option<u16>,
    ) -> Result<()> {
        let st = self.state()?;
        let mut tx = st.db.begin().await?;
        tx.execute(attempt).await?;
        tx.execute(call_sql(&st.db, id, status, last_status))
            .await?;
        tx.commit().await
    }

    /// One attempt of the call `call_id`; `last` when no retry follows a
    /// failure.
    pub(crate) async fn deliver(
        &self,
        platform: &platform_core::Platform,
        call_id: &str,
        manual: bool,
        last: bool,
    ) -> Result<(), JobError> {
        let st = self.state()?;
        // The call and its subscription in one round trip.
        let Some((call, sub)) = crate::store::call_for_delivery(&st.db, call_id).await? else {
            return Err(JobError::fatal(format!("webhook call {call_id} is gone")));
        };
        if call.status == "delivered" && !manual {
            return Ok(());
        }
        let Some((sub, secret)) = sub else {
            self.set_call(call_id, "failed", None).await?;
            return Err(JobError::fatal(format!(
                "webhook call {call_id}: its subscription {} is gone",
                call.subscription_id
            )));
        };
        if !sub.active && !manual {
            self.set_call(call_id, "cancelled", None).await?;
            tracing::info!(
                call = call_id,
                subscription = sub.id,
                "webhook subscription inactive: call cancelled"
            );
            return Ok(());
        }
        let secret = st
            .crypto
            .decrypt(&secret, crate::service::SECRET_CONTEXT)
            .map_err(|_| {
                JobError::fatal("the subscription's secret does not decrypt with the app key")
            })?;
        let ts = chrono::Utc::now().timestamp();
        let attempt = call.attempts + 1;
        let request = HttpRequest::new(Method::POST, sub.url.clone())
            .header_str("content-type", "application/json")
            .header_str(
                SIGNATURE_HEADER,
                &sign(&secret, ts, call.payload.as_bytes()),
            )
            .header_str(ID_HEADER, &call.event_id)
            .header_str("Platform-Webhook-Attempt", &attempt.to_string())
            .body(call.payload.clone());
        let started = Instant::now();
        let result = st.client.send(request).await;
        let latency = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (outcome, status, attempt) = match result {
            Ok(r) => {
                let excerpt = r.excerpt();
                let outcome = if (200..300).contains(&r.status) {
                    Outcome::Delivered
                } else {
                    Outcome::Failed {
                        message: format!("{} answered {}", origin(&sub.url), r.status),
                        // Every non-2xx answer is retried: a receiver that
                        // refuses (400, 410) may be fixed meanwhile.
                        retry: true,
                    }
                };
                let error = match &outcome {
                    Outcome::Delivered => None,
                    Outcome::Failed { message, .. } => Some(message.as_str()),
                };
                let attempt = attempt_sql(
                    &st.db,
                    call_id,
                    attempt,
                    Some(r.status),
                    latency,
                    Some(excerpt),
                    error,
                );
                (outcome, Some(r.status), attempt)
            }
            Err(e) => {
                // A refused address or a malformed URL: retrying cannot help.
                let retry = !matches!(e, Error::Configuration(_));
                let message = e.to_string();
                let attempt = attempt_sql(
                    &st.db,
                    call_id,
                    attempt,
                    None,
                    latency,
                    None,
                    Some(&message),
                );
                (Outcome::Failed { message, retry }, None, attempt)
            }
        };
        match outcome {
            Outcome::Delivered => {
                self.finish_attempt(attempt, call_id, "delivered", status)
                    .await?;
                // A delivery ends a run of failures. The count was read
                // with the call: most deliveries have nothing to reset and
                // skip the write.
                if sub.failures != 0 {
                    let mut q = st.db.sql();
                    q.push("UPDATE platform_webhook_subscriptions SET failures = 0 WHERE id = ")
                        .bind_i64(sub.id)
                        .push(" AND failures <> 0");
                    st.db.execute(q).await?;
                }
                Ok(())
            }
            Outcome::Failed { message, retry } if retry && !last => {
                self.finish_attempt(attempt, call_id, "retrying", status)
                    .await?;
                Err(JobError::new(message))
            }
            Outcome::Failed { message, .. } => {
                self.finish_attempt(attempt, call_id, "failed", status)
                    .await?;
                self.final_failure(platform, &sub).await?;
                Err(JobError::fatal(message))
            }
        }
    }

    /// Counts a final failure against `sub`; disables it at the limit and
    /// tells its owner.
    async fn final_failure(
        &self,
        platform: &platform_core::Platform,
        sub: &Subscription,
    ) -> Result<()> {
        let st = self.state()?;
        let mut q = st.db.sql();
        q.push("UPDATE platform_webhook_subscriptions SET failures = failures + 1 WHERE id = ")
            .bind_i64(sub.id);
        st.db.execute(q).await?;
        let limit = self.config.disable_after;
        if limit == 0 {
            return Ok(());
        }
        let mut q = st.db.sql();
        let reason = format!("disabled after {limit} failed calls in a row");
        q.push("UPDATE platform_webhook_subscriptions SET active = 0, disabled_reason = ")
            .bind_str(reason)
            .push(", updated_at = ")
            .bind_i64(now_ms())
            .push(" WHERE id = ")
            .bind_i64(sub.id)
            .push(" AND active = 1 AND failures >= ")
            .bind_i64(limit);
        // Only the run that flips it notifies.
        if st.db.execute(q).await? == 0 {
            return Ok(());
        }
        let origin = origin(&sub.url);
        tracing::warn!(subscription = sub.id, to = %origin, failures = limit, "webhook subscription disabled");
        let note = WebhookDisabled {
            subscription_id: sub.id,
            origin,
            failures: limit,
        };
        match (sub.owner_id, platform.get::<Notifier>()) {
            (Some(owner), Some(n)) => {
                if let Err(e) = n.notify(owner, &note).await {
                    tracing::warn!(subscription = sub.id, owner, error = %e, "could not notify the webhook's owner");
                }
            }
            (owner, _) => tracing::warn!(
                subscription = sub.id,
                ?owner,
                "webhook subscription disabled; its owner is not notified (no owner, or the notifications capability is not added)"
            ),
        }
        Ok(())
    }
}

/// The statement that sets call `id`'s status after an attempt.
fn call_sql(
    db: &platform_core::db::Db,
    id: &str,
    status: &str,
    last_status: Option<u16>,
) -> platform_core::db::Sql {
    let mut q = db.sql();
    q.push("UPDATE platform_webhook_calls SET status = ")
        .bind_str(status)
        .push(", attempts = attempts + 1, updated_at = ")
        .bind_i64(now_ms())
        .push(", last_status = ");
    match last_status {
        Some(s) => q.bind_i64(i64::from(s)),
        None => q.push("NULL"),
    };
    q.push(" WHERE id = ").bind_str(id);
    q
}

/// The statement that logs one attempt of call `call_id`.
fn attempt_sql(
    db: &platform_core::db::Db,
    call_id: &str,
    attempt: i64,
    status: Option<u16>,
    latency_ms: i64,
    response: Option<String>,
    error: Option<&str>,
) -> platform_core::db::Sql {
    let mut q = db.sql();
    q.push("INSERT INTO platform_webhook_attempts (call_id, attempt, status_code, latency_ms, response, error, created_at) VALUES (")
        .bind_str(call_id)
        .push(", ")
        .bind_i64(attempt)
        .push(", ");
    match status {
        Some(s) => q.bind_i64(i64::from(s)),
        None => q.push("NULL"),
    };
    q.push(", ").bind_i64(latency_ms).push(", ");
    match response {
        Some(r) => q.bind_str(r),
        None => q.push("NULL"),
    };
    q.push(", ");
    match error {
        Some(e) => q.bind_str(e.chars().take(1000).collect::<String>()),
        None => q.push("NULL"),
    };
    q.push(", ").bind_i64(now_ms()).push(")");
    q
}
