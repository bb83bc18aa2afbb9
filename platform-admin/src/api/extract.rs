//! Extractors whose rejections are our JSON errors, never axum's plain text.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

use super::ApiConfig;
use crate::error::Error;

/// A JSON request body: `Content-Type: application/json` (or
/// `application/*+json`) required (else 415), at most the configured limit
/// (else 413), valid JSON (else 400). Any JSON value is accepted here; the
/// handler decides what shape it needs (422 otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonBody(pub serde_json::Value);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .get(..12)
            .is_some_and(|p| p.eq_ignore_ascii_case("application/"))
            && essence
                .get(essence.len().saturating_sub(5)..)
                .is_some_and(|s| s.eq_ignore_ascii_case("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Error::UnsupportedMediaType);
        }
        let limit = req
            .extensions()
            .get::<Arc<ApiConfig>>()
            .map_or(super::DEFAULT_BODY_LIMIT, |c| c.body_limit);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge { limit }
            } else {
                Error::MalformedJson("the body could not be read".to_owned())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Error::MalformedJson(e.to_string()))
    }
}

/// The query string as decoded `(name, value)` pairs, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    /// The pairs as string slices.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    /// The last value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A validation error for every parameter whose value contains a NUL
    /// character (no database takes one as text).
    pub(crate) fn reject_nul(&self, errors: &mut platform_core::error::FieldErrors) {
        for (k, v) in &self.0 {
            if k.contains('\0') || v.contains('\0') {
                errors.add(k.clone(), "invalid", "must not contain NUL characters");
            }
        }
    }
    /// A validation error for every parameter not in `known`.
    pub(crate) fn reject_unknown(
        &self,
        known: &[&str],
        errors: &mut platform_core::error::FieldErrors,
    ) {
        for (k, _) in &self.0 {
            if !known.contains(&k.as_str()) {
                errors.add(k.clone(), "unknown_parameter", "is not a known parameter");
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_none_or(str::is_empty) {
            return Ok(Self::default());
        }
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|q| Self(q.0))
            .map_err(|e| Error::MalformedQuery(e.body_text()))
    }
}

/// `/{resource}`.
#[derive(Debug)]
pub(crate) struct ResourcePath(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for ResourcePath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|_| Error::RouteNotFound)
    }
}

/// `/{resource}/{id}`.
#[derive(Debug)]
pub(crate) struct RecordPath(pub(crate) String, pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for RecordPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0.0, p.0.1))
            .map_err(|_| Error::RouteNotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn json_content_types() {
        let h = |v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            m
        };
        assert!(is_json(&h("application/json")));
        assert!(is_json(&h("Application/JSON; charset=utf-8")));
        assert!(is_json(&h("application/merge-patch+json")));
        assert!(!is_json(&h("text/plain")));
        assert!(!is_json(&h("application/jsonx")));
        assert!(!is_json(&h("+json")));
        assert!(!is_json(&HeaderMap::new()));
    }
}
