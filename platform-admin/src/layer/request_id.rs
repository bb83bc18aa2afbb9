//! Request ids: taken from an incoming `x-request-id` header when it is safe
//! (1 to 64 characters of `A-Z a-z 0-9 - _ . :`), otherwise a new UUID v7;
//! stored as a [`RequestId`] request extension (the API's context puts it in
//! the audit trail) and echoed as `x-request-id` on the response, whatever
//! the response is.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};

/// The header carrying the request id.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The id of the current request, as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id from a client's header, if it is 1 to 64 safe characters.
    pub fn from_header(value: &HeaderValue) -> Option<Self> {
        let b = value.as_bytes();
        let safe = !b.is_empty()
            && b.len() <= MAX_REQUEST_ID_LEN
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'));
        safe.then(|| Self(value.clone()))
    }

    /// A new id (a UUID v7, so ids sort by time).
    pub fn generate() -> Self {
        let mut buf = uuid::Uuid::encode_buffer();
        let s = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
        Self(HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// Adds [`SetRequestId`] to a service: every request gets a [`RequestId`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SetRequestIdLayer;

impl SetRequestIdLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for SetRequestIdLayer {
    type Service = SetRequestId<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SetRequestId { inner }
    }
}

/// Sets the [`RequestId`] extension and echoes it as `x-request-id`.
#[derive(Debug, Clone)]
pub struct SetRequestId<S> {
    inner: S,
}

impl<S> SetRequestId<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for SetRequestId<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = req
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(RequestId::from_header)
            .unwrap_or_else(RequestId::generate);
        let value = id.0.clone();
        req.extensions_mut().insert(id);
        future::ResponseFuture {
            inner: Box::pin(self.inner.call(req)),
            id: Some(value),
        }
    }
}

/// The response future of [`SetRequestId`].
pub mod future {
    use super::*;

    /// Echoes the request id on the inner service's response.
    pub struct ResponseFuture<F> {
        pub(super) inner: Pin<Box<F>>,
        pub(super) id: Option<HeaderValue>,
    }

    impl<F> std::fmt::Debug for ResponseFuture<F> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ResponseFuture")
                .field("id", &self.id)
                .finish_non_exhaustive()
        }
    }

    impl<F, RB, E> Future for ResponseFuture<F>
    where
        F: Future<Output = Result<Response<RB>, E>>,
    {
        type Output = F::Output;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let mut res = std::task::ready!(self.inner.as_mut().poll(cx))?;
            if let Some(id) = self.id.take() {
                res.headers_mut().insert(X_REQUEST_ID.clone(), id);
            }
            Poll::Ready(Ok(res))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_ids_are_taken() {
        let ok = HeaderValue::from_static("req-1.a_b:c");
        assert_eq!(RequestId::from_header(&ok).unwrap().as_str(), "req-1.a_b:c");
        for bad in ["", "a b", "a/b", "<script>", &"x".repeat(65)] {
            let v = HeaderValue::from_str(bad).unwrap();
            assert!(RequestId::from_header(&v).is_none(), "{bad:?}");
        }
        assert_eq!(RequestId::generate().as_str().len(), 36);
    }
}
