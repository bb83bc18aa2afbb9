//! [`AccessLogLayer`]: writes every request of a router to the platform's
//! access log (who, what, status, duration), without slowing it down.
//!
//! The layer puts an [`AccessActor`] slot into the request's extensions;
//! whatever authenticates the request (the API's bearer token extractor, the
//! panel's session layer) fills it in, and the layer reads it when the
//! response head is ready.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::response::Response;
use platform_core::Platform;
use platform_core::access_log::AccessEntry;
use tower::{Layer, Service};

use super::RequestId;

/// Who made a request, filled in by whatever authenticated it.
#[derive(Debug, Clone, Default)]
pub struct AccessActor(Arc<Mutex<(Option<i64>, Option<i64>)>>);

impl AccessActor {
    /// Records the user (and API token) behind the request.
    pub fn set(&self, user_id: Option<i64>, token_id: Option<i64>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = (user_id, token_id);
        }
    }
    fn get(&self) -> (Option<i64>, Option<i64>) {
        self.0.lock().map(|s| *s).unwrap_or_default()
    }
}

/// Query parameters whose values never reach the log.
const SECRET_PARAMS: [&str; 5] = ["token", "signature", "password", "code", "_csrf"];
/// Path segments after which the next segment is a secret.
const SECRET_SEGMENTS: [&str; 1] = ["reset-password"];

/// The path and query of `uri` with secrets replaced by `***`.
pub fn sanitize(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut out = String::with_capacity(path_and_query.len());
    let mut hide_next = false;
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if hide_next && !seg.is_empty() {
            out.push_str("***");
        } else {
            out.push_str(seg);
        }
        hide_next = SECRET_SEGMENTS.contains(&seg);
    }
    if let Some(q) = query {
        out.push('?');
        for (i, pair) in q.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.contains(&k) => {
                    out.push_str(k);
                    out.push_str("=***");
                }
                _ => out.push_str(pair),
            }
        }
    }
    out
}

/// Logs the requests of the wrapped service as `surface` (`api`, `panel`).
#[derive(Debug, Clone)]
pub struct AccessLogLayer {
    platform: Platform,
    surface: &'static str,
}

impl AccessLogLayer {
    /// A layer writing to `platform`'s access log.
    pub fn new(platform: Platform, surface: &'static str) -> Self {
        Self { platform, surface }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLogService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AccessLogService {
            inner,
            platform: self.platform.clone(),
            surface: self.surface,
        }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Debug, Clone)]
pub struct AccessLogService<S> {
    inner: S,
    platform: Platform,
    surface: &'static str,
}

impl<S> Service<Request> for AccessLogService<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let log = self.platform.access_log().clone();
        if !log.is_enabled() {
            return Box::pin(self.inner.call(req));
        }
        let started = Instant::now();
        let at = chrono::Utc::now();
        let actor = AccessActor::default();
        req.extensions_mut().insert(actor.clone());
        let method = req.method().as_str().to_owned();
        // The path as the client sent it (a nested router sees it without
        // its prefix).
        let uri = req
            .extensions()
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| req.uri().clone(), |o| o.0.clone());
        let path = sanitize(uri.path_and_query().map_or(uri.path(), |p| p.as_str()));
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.as_str().to_owned());
        let surface = self.surface;
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            let (user_id, token_id) = actor.get();
            let request_id = request_id.or_else(|| {
                res.headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            });
            log.record(AccessEntry {
                at,
                surface,
                method,
                path,
                status: res.status().as_u16(),
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                user_id,
                token_id,
                ip,
                user_agent,
                request_id,
            });
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed() {
        assert_eq!(
            sanitize("/admin/reset-password/abc123?x=1"),
            "/admin/reset-password/***?x=1"
        );
        assert_eq!(
            sanitize("/admin/verify-email?id=3&signature=deadbeef&expires=9"),
            "/admin/verify-email?id=3&signature=***&expires=9"
        );
        assert_eq!(sanitize("/api/invoices?search=x"), "/api/invoices?search=x");
    }
}
