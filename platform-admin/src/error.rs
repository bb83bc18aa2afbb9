//! The one error type of `platform-admin` and its HTTP mapping.
//!
//! Every failure answers with one status, one stable machine code and one
//! human message, as a JSON body:
//!
//! ```json
//! {"error": {"code": "validation_failed",
//!            "message": "The given data was invalid.",
//!            "fields": {"number": [{"code": "unique", "message": "has already been taken"}]}}}
//! ```
//!
//! | case | status | `code` |
//! |------|--------|--------|
//! | malformed query string | 400 | `malformed_query` |
//! | body is not JSON | 400 | `malformed_json` |
//! | operation not supported here (core `Unsupported`) | 400 | `unsupported` |
//! | no credentials (core `Unauthenticated`) | 401 | `unauthenticated` |
//! | malformed, unknown, expired or revoked token | 401 | `invalid_token` |
//! | permission missing (core `PermissionDenied`) | 403 | `permission_denied` |
//! | no such record, resource or route | 404 | `not_found` |
//! | method not allowed on the route | 405 | `method_not_allowed` |
//! | write conflicts with other data (core `Conflict`) | 409 | `conflict` |
//! | body over the limit (1 MiB by default) | 413 | `payload_too_large` |
//! | body without a JSON content type | 415 | `unsupported_media_type` |
//! | invalid fields or parameters (core `Validation`) | 422 | `validation_failed` |
//! | configuration or back-end failure | 500 | `internal_error` |
//! | a back end is unavailable (core `Unavailable`) | 503 | `unavailable` |
//!
//! 401 answers carry `WWW-Authenticate: Bearer` (with `error="invalid_token"`
//! for a bad token); 503 answers carry `Retry-After: 5`. The detail of a 500
//! is logged at error level and never sent to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform_core::error::FieldErrors;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the API answers with an error status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the core, mapped by meaning (see the module table).
    #[error(transparent)]
    Core(#[from] platform_core::Error),
    /// The bearer token is malformed, unknown, expired or revoked (which one
    /// is never said).
    #[error("the bearer token is invalid")]
    InvalidToken,
    /// No route matches the request's path.
    #[error("no route matches this path")]
    RouteNotFound,
    /// The API serves no resource with this name.
    #[error("unknown resource `{0}`")]
    UnknownResource(String),
    /// The route exists, but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The query string cannot be read.
    #[error("malformed query string: {0}")]
    MalformedQuery(String),
    /// The body is not valid JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The body does not declare a JSON content type.
    #[error("the body must be JSON (`Content-Type: application/json`)")]
    UnsupportedMediaType,
    /// The body is larger than the limit.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl Error {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        use platform_core::Error as C;
        match self {
            Self::Core(e) => match e {
                C::NotFound { .. } => StatusCode::NOT_FOUND,
                C::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
                C::PermissionDenied { .. } => StatusCode::FORBIDDEN,
                C::Unauthenticated => StatusCode::UNAUTHORIZED,
                C::Conflict { .. } => StatusCode::CONFLICT,
                C::Unsupported(_) => StatusCode::BAD_REQUEST,
                C::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::RouteNotFound | Self::UnknownResource(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::MalformedQuery(_) | Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The stable machine code of this error (the `code` of the body).
    pub fn code(&self) -> &'static str {
        use platform_core::Error as C;
        match self {
            Self::Core(e) => match e {
                C::NotFound { .. }
                | C::Validation(_)
                | C::PermissionDenied { .. }
                | C::Unauthenticated
                | C::Conflict { .. }
                | C::Unsupported(_)
                | C::Unavailable { .. } => e.code(),
                _ => "internal_error",
            },
            Self::InvalidToken => "invalid_token",
            Self::RouteNotFound | Self::UnknownResource(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::MalformedQuery(_) => "malformed_query",
            Self::MalformedJson(_) => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
        }
    }

    /// The human message sent to the client. Never the detail of an
    /// internal error.
    pub fn message(&self) -> String {
        use platform_core::Error as C;
        match self {
            Self::Core(e) => match e {
                C::NotFound { .. } | C::PermissionDenied { .. } | C::Unsupported(_) => {
                    capitalize(&e.to_string())
                }
                C::Validation(_) => "The given data was invalid.".to_owned(),
                C::Unauthenticated => {
                    "Authentication required: send `Authorization: Bearer <token>`.".to_owned()
                }
                C::Conflict { message, .. } => capitalize(message),
                C::Unavailable { .. } => {
                    "The service is temporarily unavailable; retry later.".to_owned()
                }
                _ => "Internal server error.".to_owned(),
            },
            Self::RouteNotFound => "No route matches this path.".to_owned(),
            Self::UnknownResource(name) => {
                format!("There is no resource `{}`.", truncate(name, 64))
            }
            Self::MethodNotAllowed => "This method is not allowed on this path.".to_owned(),
            other => capitalize(&other.to_string()),
        }
    }

    /// The field messages of a validation error.
    pub fn field_errors(&self) -> Option<&FieldErrors> {
        match self {
            Self::Core(platform_core::Error::Validation(f)) => Some(f),
            _ => None,
        }
    }

    fn log(&self) {
        use platform_core::Error as C;
        match self {
            Self::Core(e @ C::Unavailable { .. }) => {
                tracing::warn!(error = %e, "a back end is unavailable");
            }
            Self::Core(e) if self.status() == StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %e, detail = ?e, "API request failed");
            }
            _ => {}
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The JSON body of an error.
fn body(err: &Error) -> serde_json::Value {
    let mut inner = serde_json::Map::with_capacity(3);
    inner.insert("code".into(), err.code().into());
    inner.insert("message".into(), err.message().into());
    if let Some(fields) = err.field_errors() {
        let mut map = serde_json::Map::new();
        for f in fields.iter() {
            let entry = map
                .entry(f.field.clone())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let serde_json::Value::Array(list) = entry {
                list.push(serde_json::json!({ "code": f.code, "message": f.message }));
            }
        }
        inner.insert("fields".into(), serde_json::Value::Object(map));
    }
    serde_json::json!({ "error": inner })
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let mut res = (status, Json(body(&self))).into_response();
        let headers = res.headers_mut();
        match &self {
            Self::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            Self::Core(platform_core::Error::Unauthenticated) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Core(platform_core::Error::Unavailable { .. }) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_map_by_meaning() {
        let e = Error::from(platform_core::Error::invalid(
            "number", "unique", "is taken",
        ));
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body(&e)["error"]["fields"]["number"][0]["code"],
            serde_json::json!("unique")
        );
        let e = Error::from(platform_core::Error::Backend {
            backend: "database",
            source: "password=secret in the DSN".into(),
        });
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.code(), "internal_error");
        assert!(!e.message().contains("secret"));
        let e = Error::from(platform_core::Error::Unavailable {
            backend: "database",
            source: "pool timed out".into(),
        });
        let res = e.into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        let res = Error::from(platform_core::Error::Unauthenticated).into_response();
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
