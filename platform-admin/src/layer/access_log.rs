//! [`AccessLogLayer`]: writes every request of a router to the platform's
//! access log (who, what, status, duration), without slowing it down.
//!
//! The layer puts an [`AccessActor`] slot into the request's extensions;
//! whatever authenticates the request (the API's bearer token extractor, the
//! panel's session layer) fills it in, and the layer reads it when the
//! response head is ready.

use std::collections::HashSet;
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

/// The path and query of a request as the log keeps it: secrets and
/// personal data replaced by `***` (see
/// [`platform_core::access_log::mask_path`]): the reset token in
/// `/reset-password/...`; the values of `search`, `q`, paging cursors and
/// of every parameter whose name holds `token`, `password`, `secret`,
/// `code`, `signature`, `key`, `email`...; and filters on fields that are
/// `pii`, encrypted or hidden in any resource of `sensitive_fields`.
pub fn sanitize(path_and_query: &str, sensitive_fields: &HashSet<String>) -> String {
    platform_core::access_log::mask_path(path_and_query, sensitive_fields)
}

/// Logs the requests of the wrapped service as `surface` (`api`, `panel`).
#[derive(Debug, Clone)]
pub struct AccessLogLayer {
    platform: Platform,
    surface: &'static str,
    sensitive: Arc<HashSet<String>>,
}

impl AccessLogLayer {
    /// A layer writing to `platform`'s access log. Filters on the
    /// registry's `pii`, encrypted and hidden fields are masked.
    pub fn new(platform: Platform, surface: &'static str) -> Self {
        let sensitive = Arc::new(platform_core::access_log::sensitive_fields(
            platform.registry(),
        ));
        Self {
            platform,
            surface,
            sensitive,
        }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLogService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AccessLogService {
            inner,
            platform: self.platform.clone(),
            surface: self.surface,
            sensitive: self.sensitive.clone(),
        }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Debug, Clone)]
pub struct AccessLogService<S> {
    inner: S,
    platform: Platform,
    surface: &'static str,
    sensitive: Arc<HashSet<String>>,
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
        let path = sanitize(
            uri.path_and_query().map_or(uri.path(), |p| p.as_str()),
            &self.sensitive,
        );
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
        let none = HashSet::new();
        assert_eq!(
            sanitize("/admin/reset-password/abc123?x=1", &none),
            "/admin/reset-password/***?x=1"
        );
        assert_eq!(
            sanitize(
                "/admin/verify-email?id=3&signature=deadbeef&expires=9",
                &none
            ),
            "/admin/verify-email?id=3&signature=***&expires=9"
        );
        assert_eq!(
            sanitize("/api/invoices?search=x&filter[status]=paid", &none),
            "/api/invoices?search=***&filter[status]=paid"
        );
    }
}
