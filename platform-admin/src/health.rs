//! Health endpoints for load balancers and orchestrators:
//! `/health` (every check, 200 or 503), `/health/live` (the process runs),
//! `/health/ready` (the database answers).

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use platform_core::Platform;
use serde_json::json;

/// How long one check may take.
const LIMIT: Duration = Duration::from_secs(3);

/// The health routes, at `/health`, `/health/live` and `/health/ready`.
pub fn health_router<S>() -> Router<S>
where
    Platform: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/health", get(health::<S>))
        .route("/health/ready", get(health::<S>))
        .route("/health/live", get(live))
}

async fn live() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn health<S>(State(state): State<S>) -> Response
where
    Platform: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    let platform = Platform::from_ref(&state);
    let started = Instant::now();
    let db = tokio::time::timeout(LIMIT, platform.db().ping()).await;
    let (mut ok, detail) = match db {
        Ok(Ok(())) => (true, None),
        Ok(Err(e)) => (false, Some(e.code().to_owned())),
        Err(_) => (false, Some("timeout".to_owned())),
    };
    let mut checks = vec![json!({
        "name": "database",
        "status": if ok { "ok" } else { "fail" },
        "error": detail,
        "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
    })];
    // The capabilities' checks, at the same time.
    let extra = futures::future::join_all(platform.health_checks().iter().map(|c| {
        let platform = platform.clone();
        async move {
            let started = Instant::now();
            let result = match tokio::time::timeout(LIMIT, c.check(&platform)).await {
                Ok(r) => r,
                Err(_) => Err("timeout".to_owned()),
            };
            (c.name().to_owned(), result, started.elapsed())
        }
    }))
    .await;
    for (name, result, took) in extra {
        ok &= result.is_ok();
        checks.push(json!({
            "name": name,
            "status": if result.is_ok() { "ok" } else { "fail" },
            "error": result.err(),
            "duration_ms": took.as_secs_f64() * 1000.0,
        }));
    }
    let body = json!({
        "status": if ok { "ok" } else { "fail" },
        "checks": checks,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
