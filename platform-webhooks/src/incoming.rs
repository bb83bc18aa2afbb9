//! Incoming webhooks: `POST /webhooks/in/{source}` verifies, stores, and
//! queues; a job runs the source's handler.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use platform_core::Platform;
use platform_core::error::{Error, Result};
use platform_jobs::{Job, JobContext, JobError, Options, job};
use serde::{Deserialize, Serialize};

use crate::signature::{ID_HEADER, Scheme, verify};
use crate::store::{self, IncomingCall, now_ms};
use crate::{Webhooks, webhooks_of};

/// What a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Processes a verified incoming call (in a job: an error is retried with
/// backoff, then the call is marked failed and can be re-run). Closures
/// `Fn(IncomingCall) -> impl Future<Output = Result<()>>` are handlers.
pub trait Handler: Send + Sync + 'static {
    /// Handles `call`. It may run more than once for one call (a re-run, a
    /// worker that died): make it idempotent.
    fn handle(&self, call: IncomingCall) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(IncomingCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    fn handle(&self, call: IncomingCall) -> HandlerFuture {
        Box::pin(self(call))
    }
}

/// A sender of incoming calls: its name (the path segment), secret,
/// signature scheme, timestamp tolerance and handler.
#[derive(Clone)]
pub struct IncomingSource {
    pub(crate) name: String,
    pub(crate) secret: String,
    pub(crate) scheme: Scheme,
    pub(crate) tolerance: Duration,
    pub(crate) handler: Option<Arc<dyn Handler>>,
}

impl fmt::Debug for IncomingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingSource")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("scheme", &self.scheme)
            .field("tolerance", &self.tolerance)
            .field("handler", &self.handler.is_some())
            .finish()
    }
}

impl IncomingSource {
    /// Calls from `name` (`stripe`; letters, digits, `-` and `_`), signed
    /// with `secret` under `scheme`; timestamps tolerated 5 minutes either
    /// way; no handler (calls are stored and marked processed).
    pub fn new(name: impl Into<String>, secret: impl Into<String>, scheme: Scheme) -> Self {
        Self {
            name: name.into(),
            secret: secret.into(),
            scheme,
            tolerance: Duration::from_secs(300),
            handler: None,
        }
    }
    /// How far a signed timestamp may be from now.
    #[must_use]
    pub fn tolerance(mut self, d: Duration) -> Self {
        self.tolerance = d;
        self
    }
    /// Processes calls with `handler`.
    #[must_use]
    pub fn handler(mut self, handler: impl Handler) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
    pub(crate) fn check(&self) -> Result<()> {
        let ok_name = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok_name {
            return Err(Error::Configuration(format!(
                "webhooks: the source name `{}` must be 1 to 64 letters, digits, `-` or `_`",
                self.name
            )));
        }
        if self.secret.len() < 8 {
            return Err(Error::Configuration(format!(
                "webhooks: the secret of source `{}` is too short",
                self.name
            )));
        }
        Ok(())
    }
}

pub(crate) fn routes(max_body: usize) -> axum::Router<Platform> {
    axum::Router::new().route(
        "/webhooks/in/{source}",
        axum::routing::post(
            move |state: State<Platform>, path: Path<String>, headers: HeaderMap, body: Body| {
                receive(state, path, headers, body, max_body)
            },
        ),
    )
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    answer(status, serde_json::json!({ "error": message }))
}

/// The headers kept with a call (no signature: it would let a reader of
/// the table replay nothing, but it is noise).
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "x-github-event",
    "x-github-delivery",
    "platform-webhook-id",
    "platform-webhook-attempt",
];

async fn receive(
    State(platform): State<Platform>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
    max_body: usize,
) -> Response {
    let Ok(w) = webhooks_of(&platform) else {
        return refuse(StatusCode::NOT_FOUND, "not found");
    };
    let Some(src) = w.config.sources.get(&source) else {
        return refuse(StatusCode::NOT_FOUND, "unknown webhook source");
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large");
    }
    let Ok(body) = axum::body::to_bytes(body, max_body).await else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large");
    };
    let header = headers
        .get(src.scheme.header())
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let tolerance = i64::try_from(src.tolerance.as_secs()).unwrap_or(i64::MAX);
    if let Err(e) = verify(
        src.scheme,
        &src.secret,
        header,
        &body,
        chrono::Utc::now().timestamp(),
        tolerance,
    ) {
        tracing::info!(source = %src.name, reason = %e, "incoming webhook refused");
        return refuse(StatusCode::UNAUTHORIZED, &e.to_string());
    }
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return refuse(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    let event_id = match src.scheme {
        Scheme::Platform => header_text(&headers, ID_HEADER),
        Scheme::GitHub => header_text(&headers, "X-GitHub-Delivery"),
        Scheme::Stripe => serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned)),
    };
    let Some(event_id) = event_id
        .filter(|e| !e.is_empty() && e.len() <= 191 && e.bytes().all(|b| b.is_ascii_graphic()))
    else {
        return refuse(StatusCode::BAD_REQUEST, "the call has no usable event id");
    };
    let kept: serde_json::Map<String, serde_json::Value> = KEPT_HEADERS
        .iter()
        .filter_map(|h| header_text(&headers, h).map(|v| ((*h).to_owned(), v.into())))
        .collect();
    let call = IncomingCall {
        id: uuid::Uuid::now_v7().to_string(),
        source: src.name.clone(),
        event_id,
        headers: serde_json::Value::Object(kept).to_string(),
        payload: text,
        status: "pending".into(),
        attempts: 0,
        error: None,
        received_at: now_ms(),
        processed_at: None,
    };
    match w.accept(&call).await {
        Ok(true) => answer(
            StatusCode::OK,
            serde_json::json!({ "status": "accepted", "id": call.id }),
        ),
        Ok(false) => answer(StatusCode::OK, serde_json::json!({ "status": "duplicate" })),
        Err(e) => {
            tracing::error!(source = %src.name, error = %e, "an incoming webhook could not be stored or queued");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "try again later")
        }
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(300).collect())
}

/// Runs the handler of one stored incoming call.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ProcessIncoming {
    pub(crate) id: String,
}

// The name incoming calls are processed under: never change it.
#[job(
    name = "platform_webhook_incoming",
    timeout = "300s",
    max_attempts = 3,
    backoff = "10s"
)]
impl Job for ProcessIncoming {
    async fn handle(self, cx: &JobContext) -> Result<(), JobError> {
        let w = webhooks_of(cx.platform())?;
        w.process(&self.id).await
    }
}

impl Webhooks {
    /// Stores `call` and queues it, unless its event id was seen.
    async fn accept(&self, call: &IncomingCall) -> Result<bool> {
        let st = self.state()?;
        if !store::insert_incoming(&st.db, call).await? {
            return Ok(false);
        }
        if let Err(e) = self.enqueue_incoming(&call.id).await {
            // Not queued: forget it so that the sender's retry is taken.
            let mut q = st.db.sql();
            q.push("DELETE FROM platform_webhook_incoming WHERE id = ")
                .bind_str(call.id.clone());
            let _ = st.db.execute(q).await;
            return Err(e);
        }
        Ok(true)
    }

    async fn enqueue_incoming(&self, id: &str) -> Result<()> {
        let st = self.state()?;
        let jobs = st.jobs.get().ok_or_else(|| {
            Error::Configuration("webhooks: the jobs service is not installed yet".into())
        })?;
        jobs.dispatch_with(
            ProcessIncoming { id: id.to_owned() },
            Options::new()
                .queue(self.config.queue.clone())
                .max_attempts(self.config.max_attempts)
                .backoff(self.config.backoff),
        )
        .await?;
        Ok(())
    }

    async fn process(&self, id: &str) -> Result<(), JobError> {
        let st = self.state()?;
        let Some(call) = self.incoming_call(id).await? else {
            return Err(JobError::fatal(format!(
                "incoming webhook call {id} is gone"
            )));
        };
        if call.status == "processed" {
            return Ok(());
        }
        let handler = self
            .config
            .sources
            .get(&call.source)
            .and_then(|s| s.handler.clone());
        let result = match handler {
            Some(h) => h.handle(call.clone()).await,
            None => Ok(()),
        };
        let mut q = st.db.sql();
        q.push("UPDATE platform_webhook_incoming SET attempts = attempts + 1, status = ");
        match &result {
            Ok(()) => {
                q.bind_str("processed")
                    .push(", error = NULL, processed_at = ")
                    .bind_i64(now_ms());
            }
            Err(e) => {
                q.bind_str("failed")
                    .push(", error = ")
                    .bind_str(e.to_string().chars().take(1000).collect::<String>());
            }
        }
        q.push(" WHERE id = ").bind_str(id);
        st.db.execute(q).await?;
        result.map_err(JobError::from)
    }

    /// Queues the stored incoming call `id` to be processed again (a
    /// processed one too).
    pub async fn rerun(&self, id: &str) -> Result<()> {
        let st = self.state()?;
        let mut q = st.db.sql();
        q.push("UPDATE platform_webhook_incoming SET status = 'pending' WHERE id = ")
            .bind_str(id);
        if st.db.execute(q).await? == 0 {
            return Err(Error::NotFound {
                resource: "incoming webhook call",
                id: id.chars().take(64).collect(),
            });
        }
        self.enqueue_incoming(id).await
    }

    /// The stored incoming call `id`.
    pub async fn incoming_call(&self, id: &str) -> Result<Option<IncomingCall>> {
        let st = self.state()?;
        let mut q = st.db.sql();
        q.push("SELECT ")
            .push(store::IN_COLUMNS)
            .push(" FROM platform_webhook_incoming WHERE id = ")
            .bind_str(id);
        Ok(st
            .db
            .fetch_optional(q, store::IN_TYPES)
            .await?
            .as_ref()
            .map(store::incoming_of))
    }

    /// The latest `limit` incoming calls (of one source, or all), newest
    /// first.
    pub async fn incoming_calls(
        &self,
        source: Option<&str>,
        limit: i64,
    ) -> Result<Vec<IncomingCall>> {
        let st = self.state()?;
        let mut q = st.db.sql();
        q.push("SELECT ")
            .push(store::IN_COLUMNS)
            .push(" FROM platform_webhook_incoming");
        if let Some(s) = source {
            q.push(" WHERE source = ").bind_str(s);
        }
        q.push(" ORDER BY received_at DESC, id DESC LIMIT ")
            .int(limit.clamp(1, 1000));
        let rows = st.db.fetch_all(q, store::IN_TYPES).await?;
        Ok(rows.iter().map(store::incoming_of).collect())
    }

    /// The configured sources' names.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.config.sources.keys().map(String::as_str)
    }
}
