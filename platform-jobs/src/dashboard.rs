//! The queue dashboard (Horizon on every back end): figures per queue,
//! recent and failed jobs with masked payloads, and the actions retry one,
//! retry all failed and forget. A panel page (`jobs`), a dashboard widget
//! and `GET /api/jobs/stats` show the same [`Stats`].

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::routing::get;
use platform_admin::api::ApiContext;
use platform_admin::capability::{ApiRoutes, SetupExt};
use platform_admin::panel::page::{ActionFuture, PageAction, PageContext, PageFuture, PanelPage};
use platform_admin::panel::widget::{Widget, WidgetContext, WidgetFuture};
use platform_core::Platform;
use platform_core::capability::{ApiDoc, Setup};
use platform_core::error::{Error, Result};
use serde::Serialize;

use crate::Jobs;
use crate::store::{self, now_ms};

/// The figures of one queue.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Its worker count per process.
    pub workers: usize,
    /// Jobs waiting (due or delayed).
    pub pending: i64,
    /// Jobs a worker has taken.
    pub running: i64,
    /// Failed jobs (in the failed list).
    pub failed: i64,
    /// Runs that succeeded in the retention window.
    pub done: i64,
    /// Runs finished in the last minute.
    pub per_minute: i64,
    /// Runs finished in the last hour.
    pub per_hour: i64,
    /// Wait time (ms) percentiles p50, p95, p99 over the last hour.
    pub wait_ms: [i64; 3],
    /// Run time (ms) percentiles p50, p95, p99 over the last hour.
    pub runtime_ms: [i64; 3],
}

/// A run or a failed job, payload masked.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// The job id.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// Its name.
    pub kind: String,
    /// `done`, `retrying` or `failed`.
    pub status: String,
    /// The attempt (runs) number.
    pub attempts: i64,
    /// The error, if it failed.
    pub error: Option<String>,
    /// The payload with secrets and personal data masked.
    pub payload: serde_json::Value,
    /// When (ms since the epoch).
    pub at: i64,
    /// The same as RFC 3339.
    pub at_text: String,
}

/// Everything the dashboard shows.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// The back end (`sqlite`, `postgres`, `redis`, `sqlite-file`).
    pub backend: &'static str,
    /// Per queue.
    pub queues: Vec<QueueStats>,
    /// Totals over the queues (percentiles over all runs).
    pub total: QueueStats,
    /// The latest runs.
    pub recent: Vec<JobView>,
    /// The latest failed jobs.
    pub failed: Vec<JobView>,
}

/// Keys whose values are masked in payloads shown on the dashboard.
const SENSITIVE: [&str; 10] = [
    "email", "password", "token", "secret", "iban", "phone", "api_key", "apikey", "credit", "card",
];

/// `payload` with the values of keys that look like personal data or
/// secrets (email, password, token, secret, iban, phone, ...) replaced by
/// `"***"`, at any depth.
pub fn mask_payload(payload: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match payload {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    if SENSITIVE.iter().any(|s| lower.contains(s)) && !v.is_null() {
                        (k.clone(), Value::String("***".into()))
                    } else {
                        (k.clone(), mask_payload(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask_payload).collect()),
        other => other.clone(),
    }
}

fn percentiles(mut v: Vec<i64>) -> [i64; 3] {
    if v.is_empty() {
        return [0; 3];
    }
    v.sort_unstable();
    let at = |p: f64| {
        let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    };
    [at(0.50), at(0.95), at(0.99)]
}

fn time_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl Jobs {
    /// The dashboard's figures, now.
    pub async fn stats(&self) -> Result<Stats> {
        let state = self.state()?;
        let now = now_ms();
        let window = i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX);
        // Percentiles and throughput from the last hour's runs (bounded).
        let hour = store::runs_since(&state.db, now - 3_600_000, 20_000).await?;
        let failed_counts: BTreeMap<String, i64> =
            store::failed_counts(&state.db).await?.into_iter().collect();
        let mut done_counts: BTreeMap<String, i64> = BTreeMap::new();
        {
            let mut q = state.db.sql();
            q.push("SELECT queue, COUNT(*) FROM platform_job_runs WHERE status = 'done' AND finished_at >= ")
                .bind_i64(now.saturating_sub(window))
                .push(" GROUP BY queue");
            use platform_core::value::FieldType;
            for r in state
                .db
                .fetch_all(q, &[FieldType::Text, FieldType::I64])
                .await?
            {
                done_counts.insert(
                    r[0].as_str().unwrap_or_default().to_owned(),
                    r[1].as_i64().unwrap_or_default(),
                );
            }
        }
        let mut queues = Vec::new();
        for (queue, workers) in &self.config.queues {
            let (pending, running) = state
                .transport
                .counts(&self.config.namespace, queue)
                .await?;
            let runs: Vec<_> = hour.iter().filter(|r| &r.queue == queue).collect();
            queues.push(QueueStats {
                queue: queue.clone(),
                workers: *workers,
                pending,
                running,
                failed: failed_counts.get(queue).copied().unwrap_or_default(),
                done: done_counts.get(queue).copied().unwrap_or_default(),
                per_minute: runs
                    .iter()
                    .filter(|r| r.finished_at >= now - 60_000)
                    .count() as i64,
                per_hour: runs.len() as i64,
                wait_ms: percentiles(runs.iter().map(|r| r.wait_ms).collect()),
                runtime_ms: percentiles(runs.iter().map(|r| r.run_ms).collect()),
            });
        }
        let total = QueueStats {
            queue: "all".into(),
            workers: queues.iter().map(|q| q.workers).sum(),
            pending: queues.iter().map(|q| q.pending).sum(),
            running: queues.iter().map(|q| q.running).sum(),
            failed: failed_counts.values().sum(),
            done: queues.iter().map(|q| q.done).sum(),
            per_minute: queues.iter().map(|q| q.per_minute).sum(),
            per_hour: queues.iter().map(|q| q.per_hour).sum(),
            wait_ms: percentiles(hour.iter().map(|r| r.wait_ms).collect()),
            runtime_ms: percentiles(hour.iter().map(|r| r.run_ms).collect()),
        };
        let recent = hour
            .iter()
            .take(25)
            .map(|r| JobView {
                id: r.job_id.clone(),
                queue: r.queue.clone(),
                kind: r.kind.clone(),
                status: r.status.clone(),
                attempts: r.attempt,
                error: r.error.clone(),
                payload: mask_payload(
                    &serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null),
                ),
                at: r.finished_at,
                at_text: time_text(r.finished_at),
            })
            .collect();
        let failed = store::failed(&state.db, 50)
            .await?
            .into_iter()
            .map(|f| JobView {
                payload: f
                    .envelope
                    .as_ref()
                    .map(|e| mask_payload(&e.payload))
                    .unwrap_or(serde_json::Value::Null),
                id: f.id,
                queue: f.queue,
                kind: f.kind,
                status: "failed".into(),
                attempts: f.attempts,
                error: Some(f.error),
                at: f.failed_at,
                at_text: time_text(f.failed_at),
            })
            .collect();
        Ok(Stats {
            backend: state.transport.kind().name(),
            queues,
            total,
            recent,
            failed,
        })
    }
}

fn jobs_of(platform: &Platform) -> Result<std::sync::Arc<Jobs>> {
    platform
        .get::<Jobs>()
        .ok_or_else(|| Error::Configuration("the jobs capability is not added".into()))
}

fn page_data(cx: &PageContext) -> PageFuture<'_> {
    Box::pin(async move {
        let stats = jobs_of(&cx.platform)?.stats().await?;
        Ok(serde_json::to_value(stats).unwrap_or_default())
    })
}

fn widget_data(cx: &WidgetContext) -> WidgetFuture<'_> {
    Box::pin(async move {
        let stats = jobs_of(&cx.platform)?.stats().await?;
        Ok(serde_json::json!({ "total": stats.total, "backend": stats.backend, "base": cx.base }))
    })
}

fn retry_action(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        let jobs = jobs_of(&cx.platform)?;
        if jobs.retry(&cx.rest).await? {
            Ok(format!("Job {} queued again.", cx.rest))
        } else {
            Err(Error::NotFound {
                resource: "failed job",
                id: cx.rest.clone(),
            })
        }
    })
}

fn retry_all_action(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        let n = jobs_of(&cx.platform)?.retry_all().await?;
        Ok(format!("{n} failed jobs queued again."))
    })
}

fn forget_action(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        if jobs_of(&cx.platform)?.forget(&cx.rest).await? {
            Ok(format!("Job {} forgotten.", cx.rest))
        } else {
            Err(Error::NotFound {
                resource: "failed job",
                id: cx.rest.clone(),
            })
        }
    })
}

async fn api_stats(api: ApiContext) -> std::result::Result<Json<Stats>, platform_admin::Error> {
    api.context().authorize("view_jobs")?;
    let stats = jobs_of(api.platform())?.stats().await?;
    Ok(Json(stats))
}

/// The OpenAPI description of `GET /jobs/stats`.
fn api_doc() -> ApiDoc {
    let int = serde_json::json!({ "type": "integer", "format": "int64", "minimum": 0 });
    let percentiles = serde_json::json!({
        "type": "array",
        "description": "p50, p95, p99 (ms) over the last hour.",
        "items": { "type": "integer", "format": "int64" },
        "minItems": 3,
        "maxItems": 3,
    });
    let job = serde_json::json!({
        "type": "object",
        "required": ["id", "queue", "kind", "status", "attempts", "error", "payload", "at", "at_text"],
        "properties": {
            "id": { "type": "string" },
            "queue": { "type": "string" },
            "kind": { "type": "string", "description": "The job's name." },
            "status": { "type": "string", "description": "`done`, `retrying` or `failed`." },
            "attempts": { "type": "integer", "format": "int64" },
            "error": { "type": "string", "nullable": true },
            "payload": { "description": "The payload, personal data and secrets masked (`***`)." },
            "at": { "type": "integer", "format": "int64", "description": "Milliseconds since the epoch." },
            "at_text": { "type": "string", "format": "date-time" },
        },
    });
    ApiDoc::new()
        .tag("jobs", "The job queues")
        .schema(
            "JobQueueStats",
            serde_json::json!({
                "type": "object",
                "required": ["queue", "workers", "pending", "running", "failed", "done", "per_minute", "per_hour", "wait_ms", "runtime_ms"],
                "properties": {
                    "queue": { "type": "string", "description": "The queue (`all` in `total`)." },
                    "workers": { "type": "integer", "minimum": 0, "description": "Workers per process." },
                    "pending": int,
                    "running": int,
                    "failed": int,
                    "done": { "type": "integer", "format": "int64", "minimum": 0, "description": "Runs that succeeded in the retention window." },
                    "per_minute": int,
                    "per_hour": int,
                    "wait_ms": percentiles,
                    "runtime_ms": percentiles,
                },
            }),
        )
        .schema(
            "JobStats",
            serde_json::json!({
                "type": "object",
                "required": ["backend", "queues", "total", "recent", "failed"],
                "properties": {
                    "backend": { "type": "string", "description": "`sqlite`, `postgres`, `redis`, `sqlite-file`..." },
                    "queues": { "type": "array", "items": ApiDoc::schema_ref("JobQueueStats") },
                    "total": ApiDoc::schema_ref("JobQueueStats"),
                    "recent": { "type": "array", "items": job, "description": "The latest runs." },
                    "failed": { "type": "array", "items": job, "description": "The latest failed jobs." },
                },
            }),
        )
        .get(
            "/jobs/stats",
            serde_json::json!({
                "operationId": "job_stats",
                "summary": "The queues' figures",
                "description": "What the panel's Jobs page shows: per queue and in all, backlog, throughput and latency percentiles, the latest runs and failures. Needs `view_jobs`.",
                "tags": ["jobs"],
                "responses": ApiDoc::responses(
                    [("200", ApiDoc::json_response("The figures.", ApiDoc::schema_ref("JobStats")))],
                    [401, 403],
                ),
            }),
        )
}

const PAGE: &str = include_str!("../templates/jobs.html");
const WIDGET: &str = include_str!("../templates/widget.html");

pub(crate) fn contribute(setup: &mut Setup) {
    setup
        .panel_page(
            PanelPage::new("jobs", "Jobs", PAGE, page_data)
                .permission("view_jobs")
                .nav_group("System")
                .action(PageAction::new("retry", retry_action).permission("retry_jobs"))
                .action(PageAction::new("retry-all", retry_all_action).permission("retry_jobs"))
                .action(PageAction::new("forget", forget_action).permission("retry_jobs")),
        )
        .widget(
            Widget::new("jobs", "Jobs", WIDGET, widget_data)
                .permission("view_jobs")
                .sort(10),
        )
        .api(
            ApiRoutes::new(Router::new().route("/jobs/stats", get(api_stats)))
                .get("/jobs/stats")
                .requires("view_jobs"),
        )
        .api_doc(api_doc());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_masked_at_any_depth() {
        let p = serde_json::json!({
            "customer_id": 7,
            "Email": "a@example.com",
            "nested": { "api_token": "t", "iban": null, "items": [{ "password": "x", "n": 1 }] },
            "phone_number": "+1",
        });
        assert_eq!(
            mask_payload(&p),
            serde_json::json!({
                "customer_id": 7,
                "Email": "***",
                "nested": { "api_token": "***", "iban": null, "items": [{ "password": "***", "n": 1 }] },
                "phone_number": "***",
            })
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentiles(vec![]), [0, 0, 0]);
        assert_eq!(percentiles((1..=100).collect()), [50, 95, 99]);
        assert_eq!(percentiles(vec![5]), [5, 5, 5]);
    }
}
