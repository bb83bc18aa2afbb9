//! [`SecurityHeadersLayer`]: the response headers every panel page carries.
//!
//! - `Content-Security-Policy`: scripts and styles from this origin only
//!   (no inline script or style), images from this origin and `data:`,
//!   no framing (`frame-ancestors 'none'`), forms post to this origin only;
//! - `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
//!   `Referrer-Policy: same-origin`, `Permissions-Policy` denying camera,
//!   microphone and geolocation, `Cross-Origin-Opener-Policy: same-origin`;
//! - in production ([`SecurityHeadersLayer::for_platform`]),
//!   `Strict-Transport-Security: max-age=31536000` ([`HSTS`]): browsers
//!   that saw it once reach the site over HTTPS only, for a year.
//!
//! A header the handler set itself is left alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use platform_core::Platform;
use platform_core::platform::Environment;
use tower::{Layer, Service};

/// The panel's Content-Security-Policy.
pub const PANEL_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The API's Content-Security-Policy (JSON is never a document).
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The `Strict-Transport-Security` value sent in production: one year, for
/// this host only (no `includeSubDomains`, which would bind every
/// subdomain, nor `preload`, which is a decision for the site's owner).
pub const HSTS: &str = "max-age=31536000";

/// Sets the security headers on every response.
#[derive(Debug, Clone)]
pub struct SecurityHeadersLayer {
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
}

impl SecurityHeadersLayer {
    /// The headers with `csp` as the Content-Security-Policy.
    pub fn new(csp: &'static str) -> Self {
        let h = |n: &'static str, v: &'static str| {
            (HeaderName::from_static(n), HeaderValue::from_static(v))
        };
        Self {
            headers: Arc::new(vec![
                h("content-security-policy", csp),
                h("x-content-type-options", "nosniff"),
                h("x-frame-options", "DENY"),
                h("referrer-policy", "same-origin"),
                h(
                    "permissions-policy",
                    "camera=(), microphone=(), geolocation=(), payment=()",
                ),
                h("cross-origin-opener-policy", "same-origin"),
            ]),
        }
    }
    /// The panel's headers.
    pub fn panel() -> Self {
        Self::new(PANEL_CSP)
    }
    /// The API's headers.
    pub fn api() -> Self {
        Self::new(API_CSP)
    }
    /// Adds `Strict-Transport-Security` ([`HSTS`]) when `on`.
    #[must_use]
    pub fn with_hsts(mut self, on: bool) -> Self {
        if on {
            Arc::make_mut(&mut self.headers).push((
                HeaderName::from_static("strict-transport-security"),
                HeaderValue::from_static(HSTS),
            ));
        }
        self
    }
    /// The headers with `csp` for `platform`: with
    /// `Strict-Transport-Security` in production
    /// (`PLATFORM_ENV=production`, [`Environment::Production`]).
    pub fn for_platform(platform: &Platform, csp: &'static str) -> Self {
        Self::new(csp).with_hsts(platform.environment() == Environment::Production)
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders {
            inner,
            headers: self.headers.clone(),
        }
    }
}

/// The service of [`SecurityHeadersLayer`].
#[derive(Debug, Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
}

impl<S> Service<Request> for SecurityHeaders<S>
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

    fn call(&mut self, req: Request) -> Self::Future {
        let headers = self.headers.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            for (name, value) in headers.iter() {
                if !res.headers().contains_key(name) {
                    res.headers_mut().insert(name.clone(), value.clone());
                }
            }
            Ok(res)
        })
    }
}
