//! The contract between the session layer and the panel: [`PanelAuth`].
//!
//! The panel does not read cookies, sessions or tokens itself. A layer in
//! front of it (the session layer: cookie session, 2FA step, CSRF check,
//! security headers) authenticates the request and inserts a [`PanelAuth`]
//! request extension:
//!
//! ```
//! use axum::Router;
//! use platform_admin::panel::auth::PanelAuth;
//! use platform_core::Platform;
//!
//! async fn sign_in(
//!     platform: Platform,
//!     mut req: axum::extract::Request,
//!     next: axum::middleware::Next,
//! ) -> axum::response::Response {
//!     // ... find the session's user id, verify the CSRF token of POSTs ...
//!     # let user_id = 1;
//!     if let Ok(Some(auth)) = PanelAuth::for_user(&platform, user_id, "csrf-token").await {
//!         req.extensions_mut().insert(auth);
//!     }
//!     next.run(req).await
//! }
//! ```
//!
//! What the panel relies on:
//!
//! - `user` is the signed-in, enabled account;
//! - `ctx` has the actor `Actor::User(principal)` of that user (its grants
//!   decide every permission check) and, ideally, the client address, user
//!   agent, URL and request id, which go into the audit trail;
//! - `csrf_token` is the token the layer checks on every `POST`: the panel
//!   puts it in every form as `<input type="hidden" name="_csrf">` and in
//!   `<meta name="csrf-token">` (its JavaScript sends it as the `_csrf`
//!   form field too).
//!
//! Without the extension, every page redirects (`303`) to
//! `{base}/login?next=<path>`, where `<path>` is the request's path and
//! query (always a relative path, never another origin).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform_core::access::User;
use platform_core::context::{Actor, Context};
use platform_core::{Platform, Result};

use super::format::encode_component;
use super::render::Shared;
use super::session::{self, ExpectedCsrf};
use platform_core::auth::Session;

/// Who is signed in to the panel; a request extension set by the session
/// layer. See the [module docs](self) for the contract.
#[derive(Clone, Debug)]
pub struct PanelAuth {
    /// The signed-in user.
    pub user: User,
    /// The acting context: `Actor::User(principal)` plus client address,
    /// user agent, URL and request id.
    pub ctx: Context,
    /// The CSRF token every form carries as `_csrf`.
    pub csrf_token: String,
}

impl PanelAuth {
    /// The auth of an enabled user (`None` for an unknown or disabled
    /// account), with a context holding only the actor; add the request's
    /// details with [`PanelAuth::with_context`].
    pub async fn for_user(
        platform: &Platform,
        user_id: i64,
        csrf_token: impl Into<String>,
    ) -> Result<Option<Self>> {
        let Some(user) = platform.access().user(user_id).await? else {
            return Ok(None);
        };
        Self::of_user(platform, user, csrf_token).await
    }

    /// As [`PanelAuth::for_user`], for a user already read (the session's,
    /// say).
    pub async fn of_user(
        platform: &Platform,
        user: User,
        csrf_token: impl Into<String>,
    ) -> Result<Option<Self>> {
        let Some(principal) = platform.access().principal_of(&user).await? else {
            return Ok(None);
        };
        Ok(Some(Self {
            user,
            ctx: Context::new(Actor::User(Arc::new(principal))),
            csrf_token: csrf_token.into(),
        }))
    }

    /// Replaces the context (keep its actor: build it from `self.ctx`).
    pub fn with_context(mut self, ctx: Context) -> Self {
        self.ctx = ctx;
        self
    }

    /// Whether the user holds `permission`.
    pub fn can(&self, permission: &str) -> bool {
        self.ctx.can(permission)
    }
}

/// The answer to a request without [`PanelAuth`]: a redirect to the sign-in
/// page with the requested path in `next`.
#[derive(Debug, Clone)]
pub struct LoginRedirect {
    location: String,
}

impl LoginRedirect {
    /// A redirect to `{base}/login?next=<next>`; `next` is kept only when it
    /// is a relative path (starts with one `/`).
    pub fn new(base: &str, next: &str) -> Self {
        let mut location = format!("{base}/login");
        if is_relative_path(next) {
            location.push_str("?next=");
            location.push_str(&encode_component(next));
        }
        Self { location }
    }
    /// Where it redirects.
    pub fn location(&self) -> &str {
        &self.location
    }
}

/// Whether `s` is a path on this origin: `/...`, not `//...` or `/\...`.
pub(crate) fn is_relative_path(s: &str) -> bool {
    s.starts_with('/')
        && !s.starts_with("//")
        && !s.starts_with("/\\")
        && !s.chars().any(char::is_control)
}

impl IntoResponse for LoginRedirect {
    fn into_response(self) -> Response {
        let mut res = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::try_from(self.location) {
            res.headers_mut().insert(header::LOCATION, v);
        }
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// The path and query the client asked for (before nesting stripped the
/// prefix).
pub(crate) fn original_path_and_query(parts: &Parts) -> String {
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0);
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned())
}

impl<S> FromRequestParts<S> for PanelAuth
where
    Platform: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    /// The signed-in user of the request: a [`PanelAuth`] extension a layer
    /// put there, or the user of the session cookie. Without one, a redirect
    /// to the sign-in page; a user who has not set up two-factor
    /// authentication yet is sent to set it up first, and one whose
    /// password was generated to choose their own; sensitive actions
    /// (the `access/` pages' forms) need a recent password confirmation.
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let base = parts
            .extensions
            .get::<Arc<Shared>>()
            .map_or_else(|| "/admin".to_owned(), |s| s.config.base_path.clone());
        if let Some(auth) = parts.extensions.get::<PanelAuth>().cloned() {
            if parts.extensions.get::<ExpectedCsrf>().is_none() {
                parts
                    .extensions
                    .insert(ExpectedCsrf(auth.csrf_token.clone()));
            }
            return Ok(auth);
        }
        let platform = Platform::from_ref(state);
        let resolved = session::resolve(parts, &platform)
            .await
            .map_err(|e| super::error::PanelError::Core(e).into_response())?;
        let next = original_path_and_query(parts);
        let Some(s) = resolved.session.filter(Session::is_authenticated) else {
            return Err(LoginRedirect::new(&base, &next).into_response());
        };
        let user_id = s.user_id().unwrap_or_default();
        // A generated password is replaced before anything else.
        if s.user().is_some_and(|u| u.password_change_required) {
            return Err(super::render::redirect(&format!("{base}/change-password")));
        }
        if !s.two_factor_passed() {
            // Two-factor authentication is mandatory for the panel.
            return Err(super::render::redirect(&format!("{base}/two-factor/setup")));
        }
        let found = match s.user() {
            Some(u) => PanelAuth::of_user(&platform, u.clone(), s.csrf_token()).await,
            None => PanelAuth::for_user(&platform, user_id, s.csrf_token()).await,
        };
        let auth = match found {
            Ok(Some(a)) => a,
            Ok(None) => return Err(LoginRedirect::new(&base, &next).into_response()),
            Err(e) => return Err(super::error::PanelError::Core(e).into_response()),
        };
        // The access pages (users, roles, tokens) need the password again
        // when it was not confirmed lately (Fortify's `password.confirm`).
        if next.starts_with(&format!("{base}/access/")) && !s.password_recently_confirmed() {
            let back = if parts.method == axum::http::Method::GET {
                next.clone()
            } else {
                // A form post cannot be replayed: go back to its page.
                parts
                    .headers
                    .get(header::REFERER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|r| {
                        r.find(&format!("{base}/access/"))
                            .map(|i| r[i..].to_owned())
                    })
                    .filter(|p| is_relative_path(p))
                    .unwrap_or_else(|| format!("{base}/access/tokens"))
            };
            return Err(super::render::redirect(&format!(
                "{base}/confirm-password?next={}",
                encode_component(&back)
            )));
        }
        if let Some(actor) = parts.extensions.get::<crate::layer::AccessActor>() {
            actor.set(Some(user_id), None);
        }
        parts.extensions.insert(auth.clone());
        Ok(auth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_relative_path_only() {
        assert_eq!(
            LoginRedirect::new("/admin", "/admin/invoices?search=a b").location(),
            "/admin/login?next=%2Fadmin%2Finvoices%3Fsearch%3Da%20b"
        );
        for bad in ["//evil.example/x", "https://evil.example", "/\\evil", ""] {
            assert_eq!(LoginRedirect::new("/admin", bad).location(), "/admin/login");
        }
    }
}
