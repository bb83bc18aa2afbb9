//! Error pages: every failure becomes one status and one plain message on
//! an HTML page (404, 403, 503, ...), never a stack trace. Handlers return
//! [`PanelError`]; its response carries an [`ErrorInfo`] extension that
//! [`render_errors`] turns into the `error.html` page.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::Serde;
use serde::Serialize;

use super::auth::PanelAuth;
use super::layout;
use super::render::Shared;
use crate::layer::RequestId;

/// Why a page cannot be shown.
#[derive(Debug)]
pub(crate) enum PanelError {
    /// An error of the core, mapped by meaning.
    Core(platform_core::Error),
    /// No such page, resource or record.
    NotFound,
    /// The route exists, not for this method.
    MethodNotAllowed,
    /// The request cannot be read.
    BadRequest(String),
    /// The form body is larger than the limit.
    PayloadTooLarge,
    /// The body is not a form.
    UnsupportedMediaType,
    /// The form's CSRF token is missing or is not this session's.
    Csrf,
    /// A failure of the panel itself (a template, say); logged, never shown.
    Internal(String),
}

impl From<platform_core::Error> for PanelError {
    fn from(e: platform_core::Error) -> Self {
        Self::Core(e)
    }
}

/// What the error page shows, as a response extension.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ErrorInfo {
    pub(crate) status: u16,
    pub(crate) title: &'static str,
    pub(crate) message: String,
}

impl PanelError {
    fn status(&self) -> StatusCode {
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
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn info(&self) -> ErrorInfo {
        use platform_core::Error as C;
        let status = self.status();
        let (title, message) = match self {
            Self::Core(C::NotFound { .. }) | Self::NotFound => (
                "Not found",
                "The page or record you asked for does not exist, or you may not see it."
                    .to_owned(),
            ),
            Self::Core(C::PermissionDenied { ability }) => (
                "Forbidden",
                format!("You do not have the permission `{ability}` this needs."),
            ),
            Self::Core(C::Unauthenticated) => {
                ("Sign in required", "Please sign in again.".to_owned())
            }
            Self::Core(C::Validation(f)) => ("Invalid input", f.to_string()),
            Self::Core(C::Conflict { message, .. }) => ("Conflict", message.clone()),
            Self::Core(C::Unsupported(m)) => ("Not supported", m.clone()),
            Self::Core(C::Unavailable { .. }) => (
                "Temporarily unavailable",
                "The database cannot be reached right now. Please try again in a moment."
                    .to_owned(),
            ),
            Self::MethodNotAllowed => (
                "Method not allowed",
                "This page does not accept that kind of request.".to_owned(),
            ),
            Self::BadRequest(m) => ("Bad request", m.clone()),
            Self::PayloadTooLarge => (
                "Too large",
                "The form you sent is larger than this panel accepts.".to_owned(),
            ),
            Self::UnsupportedMediaType => (
                "Unsupported form",
                "Forms must be sent as application/x-www-form-urlencoded.".to_owned(),
            ),
            Self::Csrf => (
                "Page expired",
                "This form expired or was not sent from this panel. Go back, reload the page and try again."
                    .to_owned(),
            ),
            Self::Core(_) | Self::Internal(_) => (
                "Something went wrong",
                "The page could not be shown. The error was logged; quote the request id when reporting it."
                    .to_owned(),
            ),
        };
        ErrorInfo {
            status: status.as_u16(),
            title,
            message,
        }
    }

    fn log(&self) {
        match self {
            Self::Core(e @ platform_core::Error::Unavailable { .. }) => {
                tracing::warn!(error = %e, "a back end is unavailable");
            }
            Self::Core(e) if self.status() == StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %e, detail = ?e, "panel request failed");
            }
            Self::Internal(m) => tracing::error!(error = %m, "panel request failed"),
            _ => {}
        }
    }
}

impl IntoResponse for PanelError {
    fn into_response(self) -> Response {
        self.log();
        let info = self.info();
        let status = self.status();
        // A plain fallback body; `render_errors` replaces it with the page.
        let mut res = (status, format!("{}: {}", info.title, info.message)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        res.extensions_mut().insert(info);
        res
    }
}

/// The router's fallback: a 404 page.
pub(crate) async fn not_found() -> PanelError {
    PanelError::NotFound
}

/// The router's fallback for a wrong method: a 405 page.
pub(crate) async fn method_not_allowed() -> PanelError {
    PanelError::MethodNotAllowed
}

/// Renders the error page of every response carrying an [`ErrorInfo`].
pub(crate) async fn render_errors(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let auth = req.extensions().get::<PanelAuth>().cloned();
    let theme = layout::theme(
        super::render::cookies(req.headers())
            .iter()
            .rev()
            .find(|(k, _)| k == super::prefs::THEME_COOKIE)
            .map(|(_, v)| v.as_str()),
    );
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.as_str().to_owned());
    let mut res = next.run(req).await;
    let Some(info) = res.extensions_mut().remove::<ErrorInfo>() else {
        return res;
    };
    let mut layout = layout::minimal(&shared, auth.as_ref(), info.title);
    layout.theme = theme;
    let ctx = minijinja::context! {
        layout => minijinja::Value::from(Serde(&layout)),
        error => minijinja::Value::from(Serde(&info)),
        request_id => request_id,
    };
    let html = match shared.render("error.html", ctx) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(error = %e, "the error page failed to render");
            return res;
        }
    };
    let status = res.status();
    let retry = res.headers().get(header::RETRY_AFTER).cloned();
    let mut page = (status, Html(html)).into_response();
    let h = page.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(r) = retry {
        h.insert(header::RETRY_AFTER, r);
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_are_never_shown() {
        let e = PanelError::from(platform_core::Error::Backend {
            backend: "database",
            source: "password=secret".into(),
        });
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.info().message.contains("secret"));
        let e = PanelError::from(platform_core::Error::Unavailable {
            backend: "database",
            source: "timeout".into(),
        });
        let res = e.into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
    }
}
