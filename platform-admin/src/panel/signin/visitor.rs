//! The request of a public page ([`Visitor`]) and the request's path
//! ([`RequestPath`]).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::Serde;
use platform_core::Platform;
use platform_core::auth::Session;
use platform_core::context::{Actor, Context};
use serde::Serialize;

use crate::panel::auth::{PanelAuth, is_relative_path, original_path_and_query};
use crate::panel::error::PanelError;
use crate::panel::flash::{self, Flash};
use crate::panel::layout;
use crate::panel::render::{Shared, cookies, fill_context, redirect};
use crate::panel::session::{self, Resolved};

use super::session_cookie;

/// A request to a public page (sign-in, reset, ...): the platform, the
/// panel's templates and the session of the cookie, if any.
pub(crate) struct Visitor {
    pub(super) platform: Platform,
    pub(super) shared: Arc<Shared>,
    pub(super) token: Option<String>,
    pub(super) session: Option<Session>,
    /// An anonymous context with the request's address, user agent, URL
    /// and request id (throttling and the audit trail use them).
    pub(super) ctx: Context,
    pub(super) theme: &'static str,
    pub(super) flash: Option<Flash>,
    /// A new session cookie to send (a session started by this request).
    pub(super) set_cookie: Option<HeaderValue>,
}

impl<S> FromRequestParts<S> for Visitor
where
    Platform: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let platform = Platform::from_ref(state);
        let Some(shared) = parts.extensions.get::<Arc<Shared>>().cloned() else {
            return Err(PanelError::Internal("the panel's state is missing".into()).into_response());
        };
        let Resolved { token, session } = session::resolve(parts, &platform)
            .await
            .map_err(|e| PanelError::Core(e).into_response())?;
        let jar = cookies(&parts.headers);
        let cookie = |name: &str| {
            jar.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let theme = layout::theme(cookie(crate::panel::prefs::THEME_COOKIE));
        let flash = flash::read(&jar);
        Ok(Self {
            ctx: fill_context(Context::new(Actor::Anonymous), parts),
            platform,
            shared,
            token,
            session,
            theme,
            flash,
            set_cookie: None,
        })
    }
}

impl Visitor {
    pub(super) fn base(&self) -> &str {
        &self.shared.config.base_path
    }

    pub(super) fn home(&self) -> String {
        layout::home(self.base())
    }

    /// The session, started (and its cookie queued) when there is none:
    /// forms need one for their CSRF token.
    pub(super) async fn ensure_session(&mut self) -> Result<&mut Session, PanelError> {
        if self.session.is_none() {
            let (token, s) = self
                .platform
                .auth()
                .sessions()
                .start(self.ctx.ip(), self.ctx.user_agent())
                .await?;
            self.set_cookie = Some(self.cookie_for(&token));
            self.token = Some(token);
            self.session = Some(s);
        }
        Ok(self.session.as_mut().expect("just set"))
    }

    pub(super) fn cookie_for(&self, token: &str) -> HeaderValue {
        session_cookie(&self.platform, self.base(), token)
    }

    /// The page the visitor asked for before signing in (taken from the
    /// session, which is saved without it).
    pub(super) async fn take_intended(&mut self) -> Result<Option<String>, PanelError> {
        let intended = self.session.as_mut().and_then(Session::take_intended);
        if intended.is_some()
            && let Some(s) = &self.session
        {
            self.platform.auth().sessions().save(s).await?;
        }
        Ok(intended)
    }

    /// The session a form was posted with (the CSRF check guarantees one).
    pub(super) fn posted_session(&mut self) -> Result<&mut Session, PanelError> {
        self.session.as_mut().ok_or(PanelError::Csrf)
    }

    /// Whether the session is signed in with every factor.
    pub(super) fn fully_signed_in(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.is_authenticated() && s.two_factor_passed())
    }

    /// The context of the session's user (for calls that act as them).
    pub(super) async fn user_ctx(&self, user_id: i64) -> Result<Option<Context>, PanelError> {
        let Some(auth) = PanelAuth::for_user(&self.platform, user_id, "").await? else {
            return Ok(None);
        };
        let mut ctx = auth.ctx;
        if let Some(ip) = self.ctx.ip() {
            ctx = ctx.with_ip(ip);
        }
        if let Some(ua) = self.ctx.user_agent() {
            ctx = ctx.with_user_agent(ua);
        }
        if let Some(url) = self.ctx.url() {
            ctx = ctx.with_url(url);
        }
        if let Some(id) = self.ctx.request_id() {
            ctx = ctx.with_request_id(id);
        }
        Ok(Some(ctx))
    }

    /// Renders a public page.
    pub(super) fn render<T: Serialize>(
        &self,
        status: StatusCode,
        name: &str,
        title: &str,
        data: &T,
    ) -> Result<Response, PanelError> {
        let mut layout = layout::minimal(&self.shared, None, title);
        layout.csrf = self
            .session
            .as_ref()
            .map(|s| s.csrf_token().to_owned())
            .unwrap_or_default();
        layout.theme = self.theme;
        layout.flash = self.flash.clone();
        let ctx = minijinja::context! {
            layout => minijinja::Value::from(Serde(&layout)),
            ..minijinja::Value::from(Serde(data))
        };
        let html = self.shared.render(name, ctx).map_err(|e| {
            tracing::error!(template = name, error = %e, detail = %e.display_debug_info(), "panel template failed");
            PanelError::Internal(format!("template `{name}` failed"))
        })?;
        let mut res = (status, Html(html)).into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.flash.is_some()
            && let Ok(v) = flash::clear_cookie(self.base())
        {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        Ok(self.finish(res))
    }

    /// Adds the queued session cookie to `res`.
    pub(super) fn finish(&self, mut res: Response) -> Response {
        if let Some(c) = &self.set_cookie {
            session::append_cookie(&mut res, c.clone());
        }
        res
    }

    pub(super) fn redirect(&self, location: &str) -> Response {
        self.finish(redirect(location))
    }

    pub(super) fn redirect_with(&self, location: &str, message: Flash) -> Response {
        let mut res = self.redirect(location);
        if let Ok(v) = flash::set_cookie(self.base(), &message) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        res
    }

    /// `next` when it is a page of this panel (never another origin, never
    /// a sign-in page), else `None`.
    pub(super) fn safe_next(&self, next: Option<&str>) -> Option<String> {
        let next = next?.trim();
        let base = self.base();
        let inside = next == layout::home(base)
            || next.starts_with(&format!("{base}/"))
            || (base.is_empty() && next.starts_with('/'));
        let rest = next.strip_prefix(base).unwrap_or(next);
        let auth_page = [
            "/login",
            "/logout",
            "/two-factor",
            "/forgot-password",
            "/reset-password",
            "/register",
            "/confirm-password",
            "/change-password",
            "/static/",
        ]
        .iter()
        .any(|p| rest.starts_with(p));
        (is_relative_path(next) && inside && !auth_page && next.len() <= 2048)
            .then(|| next.to_owned())
    }

    pub(super) fn throttled(
        &self,
        status_page: &str,
        data: serde_json::Value,
        secs: u64,
    ) -> Response {
        let mut data = data;
        data["error"] = format!("Too many attempts. Try again in {secs} seconds.").into();
        match self.render(
            StatusCode::TOO_MANY_REQUESTS,
            status_page,
            "Too many attempts",
            &data,
        ) {
            Ok(mut res) => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                res
            }
            Err(e) => e.into_response(),
        }
    }
}

/// The request's path and query (as the client sent them).
pub(crate) struct RequestPath(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for RequestPath {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(original_path_and_query(parts)))
    }
}
