//! The template environment and the [`Panel`] extractor every page handler
//! takes: the platform, the signed-in user and a way to render.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, TemplateSource};
use platform_core::Platform;
use platform_core::permission::Ability;
use platform_core::repo::Records;
use serde::Serialize;

use super::PanelConfig;
use super::assets::Assets;
use super::auth::{PanelAuth, original_path_and_query};
use super::bulk::BulkAction;
use super::error::PanelError;
use super::flash::{self, Flash};
use super::layout;
use super::widget::Widget;

/// The embedded default templates, by name.
pub(crate) const DEFAULT_TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("confirm.html", include_str!("../../templates/confirm.html")),
    (
        "dashboard.html",
        include_str!("../../templates/dashboard.html"),
    ),
    ("search.html", include_str!("../../templates/search.html")),
    ("page.html", include_str!("../../templates/page.html")),
    (
        "notifications.html",
        include_str!("../../templates/notifications.html"),
    ),
    (
        "widgets/counts.html",
        include_str!("../../templates/widgets/counts.html"),
    ),
    (
        "widgets/activity.html",
        include_str!("../../templates/widgets/activity.html"),
    ),
    (
        "resource/list.html",
        include_str!("../../templates/resource/list.html"),
    ),
    (
        "resource/table.html",
        include_str!("../../templates/resource/table.html"),
    ),
    (
        "resource/form.html",
        include_str!("../../templates/resource/form.html"),
    ),
    (
        "resource/view.html",
        include_str!("../../templates/resource/view.html"),
    ),
    (
        "resource/entry.html",
        include_str!("../../templates/resource/entry.html"),
    ),
    (
        "access/users.html",
        include_str!("../../templates/access/users.html"),
    ),
    (
        "access/user_new.html",
        include_str!("../../templates/access/user_new.html"),
    ),
    (
        "access/user_edit.html",
        include_str!("../../templates/access/user_edit.html"),
    ),
    (
        "access/roles.html",
        include_str!("../../templates/access/roles.html"),
    ),
    (
        "access/role_edit.html",
        include_str!("../../templates/access/role_edit.html"),
    ),
    (
        "access/tokens.html",
        include_str!("../../templates/access/tokens.html"),
    ),
    (
        "auth/login.html",
        include_str!("../../templates/auth/login.html"),
    ),
    (
        "auth/two_factor_challenge.html",
        include_str!("../../templates/auth/two_factor_challenge.html"),
    ),
    (
        "auth/two_factor_setup.html",
        include_str!("../../templates/auth/two_factor_setup.html"),
    ),
    (
        "auth/recovery_codes.html",
        include_str!("../../templates/auth/recovery_codes.html"),
    ),
    (
        "auth/forgot_password.html",
        include_str!("../../templates/auth/forgot_password.html"),
    ),
    (
        "auth/reset_password.html",
        include_str!("../../templates/auth/reset_password.html"),
    ),
    (
        "auth/verify_email.html",
        include_str!("../../templates/auth/verify_email.html"),
    ),
    (
        "auth/confirm_password.html",
        include_str!("../../templates/auth/confirm_password.html"),
    ),
    (
        "auth/change_password.html",
        include_str!("../../templates/auth/change_password.html"),
    ),
    (
        "auth/register.html",
        include_str!("../../templates/auth/register.html"),
    ),
    (
        "auth/profile.html",
        include_str!("../../templates/auth/profile.html"),
    ),
];

/// What every request of one panel shares: its settings, templates,
/// widgets, bulk actions and assets.
pub(crate) struct Shared {
    pub(crate) config: PanelConfig,
    pub(crate) env: Environment<'static>,
    pub(crate) widgets: Vec<Widget>,
    pub(crate) bulk_actions: Vec<BulkAction>,
    pub(crate) assets: Assets,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(config: PanelConfig) -> Self {
        let widgets = super::widget::collect(&config.widgets);
        let bulk_actions = super::bulk::collect(&config.bulk_actions);
        let mut embedded: HashMap<String, &'static str> = DEFAULT_TEMPLATES
            .iter()
            .map(|(n, s)| ((*n).to_owned(), *s))
            .collect();
        for w in &widgets {
            if !w.template_source().is_empty() {
                embedded.insert(w.template_name(), w.template_source());
            }
        }
        for page in &config.pages {
            embedded.insert(page.template_name(), page.template_source());
        }
        let mut env = Environment::new();
        // Every template is HTML, whatever its name: escape by default.
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_formatter(html_formatter);
        env.add_filter("event_label", |e: &str| super::widget::event_label(e));
        env.set_auto_reload(config.auto_reload);
        let dir_loader = config.templates_dir.clone().map(minijinja::path_loader);
        env.set_loader(move |name| {
            if let Some(rest) = name.strip_prefix("default/") {
                return Ok(embedded
                    .get(rest)
                    .map(|s| TemplateSource::new(s.to_string())));
            }
            if let Some(load) = &dir_loader
                && let Some(src) = load(name)?
            {
                return Ok(Some(src));
            }
            Ok(embedded
                .get(name)
                .map(|s| TemplateSource::new(s.to_string())))
        });
        Self {
            config,
            env,
            widgets,
            bulk_actions,
            assets: Assets::new(),
        }
    }

    /// Renders template `name` with `ctx`.
    pub(crate) fn render(
        &self,
        name: &str,
        ctx: minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

/// Writes `s` with `& < > " '` escaped: enough for text and quoted
/// attributes (minijinja's default also escapes `/`, which only bloats
/// every URL).
pub(crate) fn escape_html(out: &mut impl std::fmt::Write, s: &str) -> std::fmt::Result {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            _ => continue,
        };
        out.write_str(&s[start..i])?;
        out.write_str(rep)?;
        start = i + 1;
    }
    out.write_str(&s[start..])
}

/// The output formatter: HTML-escapes strings (see [`escape_html`]), and
/// leaves everything else to minijinja's escaping formatter.
fn html_formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    if matches!(state.auto_escape(), AutoEscape::Html)
        && !value.is_safe()
        && let Some(s) = value.as_str()
    {
        return escape_html(out, s).map_err(|_| {
            minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "could not write")
        });
    }
    minijinja::escape_formatter(out, state, value)
}

/// The cookies of a request, by name.
pub(crate) fn cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            Some((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

/// Fills what the session layer left out of the context: the URL, the
/// request id, the user agent and the client address (the socket's).
pub(crate) fn fill_context(
    mut ctx: platform_core::Context,
    parts: &Parts,
) -> platform_core::Context {
    if ctx.url().is_none() {
        ctx = ctx.with_url(original_path_and_query(parts));
    }
    if ctx.request_id().is_none()
        && let Some(id) = parts.extensions.get::<crate::layer::RequestId>()
    {
        ctx = ctx.with_request_id(id.as_str());
    }
    if ctx.user_agent().is_none()
        && let Some(ua) = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
    {
        ctx = ctx.with_user_agent(ua);
    }
    if ctx.ip().is_none()
        && let Some(addr) = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        ctx = ctx.with_ip(addr.0.ip());
    }
    ctx
}

/// One page request: the platform, who is signed in, and the request's
/// path, query and cookies.
#[derive(Debug)]
pub(crate) struct Panel {
    pub(crate) platform: Platform,
    pub(crate) auth: PanelAuth,
    pub(crate) shared: Arc<Shared>,
    /// The path as the client sent it (with the mount prefix).
    pub(crate) path: String,
    /// The raw query string, if any.
    pub(crate) query: Option<String>,
    pub(crate) cookies: Vec<(String, String)>,
    /// Whether only a fragment of the page is wanted (`X-Panel-Fragment`).
    pub(crate) fragment: Option<String>,
    pub(crate) flash: Option<Flash>,
    /// The session of the request's cookie (absent when a layer put the
    /// [`PanelAuth`] there).
    pub(crate) session: Option<super::session::Resolved>,
}

impl<S> FromRequestParts<S> for Panel
where
    Platform: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let mut auth = PanelAuth::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        auth.ctx = fill_context(auth.ctx, parts);
        let Some(shared) = parts.extensions.get::<Arc<Shared>>().cloned() else {
            return Err(PanelError::Internal("the panel's state is missing".into()).into_response());
        };
        let pq = original_path_and_query(parts);
        let (path, query) = match pq.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (pq, None),
        };
        let cookies = cookies(&parts.headers);
        let flash = flash::read(&cookies);
        let fragment = parts
            .headers
            .get("x-panel-fragment")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Self {
            platform: Platform::from_ref(state),
            auth,
            shared,
            path,
            query,
            cookies,
            fragment,
            flash,
            session: parts.extensions.get::<super::session::Resolved>().cloned(),
        })
    }
}

impl Panel {
    /// Where the panel is mounted (`/admin`).
    pub(crate) fn base(&self) -> &str {
        &self.shared.config.base_path
    }

    /// The acting context.
    pub(crate) fn ctx(&self) -> &platform_core::Context {
        &self.auth.ctx
    }

    /// Whether the user holds `permission`.
    pub(crate) fn can(&self, permission: &str) -> bool {
        self.auth.ctx.can(permission)
    }

    /// A cookie's value.
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query string as decoded pairs (a malformed query is a 400).
    pub(crate) fn query_pairs(&self) -> Result<Vec<(String, String)>, PanelError> {
        match &self.query {
            None => Ok(Vec::new()),
            Some(q) => super::form::parse_urlencoded(q.as_bytes())
                .ok_or_else(|| PanelError::BadRequest("the query string is malformed".into())),
        }
    }

    /// The records of the panel resource with this plural name; 404 for
    /// any other name.
    pub(crate) fn records(&self, plural: &str) -> Result<Records, PanelError> {
        match self.platform.records(plural, &self.auth.ctx) {
            Some(r) if r.meta().in_admin() && r.meta().plural() == plural => Ok(r),
            _ => Err(PanelError::NotFound),
        }
    }

    /// Whether the user holds `ability` on `records`' resource.
    pub(crate) fn can_on(&self, records: &Records, ability: Ability) -> bool {
        self.can(records.entry().permission(ability))
    }

    /// 403 unless the user holds `ability` on `records`' resource.
    pub(crate) fn authorize(&self, records: &Records, ability: Ability) -> Result<(), PanelError> {
        self.auth
            .ctx
            .authorize(records.entry().permission(ability))
            .map_err(PanelError::from)
    }

    /// 403 unless the user holds `permission`.
    pub(crate) fn require(&self, permission: &str) -> Result<(), PanelError> {
        self.auth
            .ctx
            .authorize(permission)
            .map_err(PanelError::from)
    }

    /// The page `name` with `data` (and the layout), status 200.
    pub(crate) async fn render<T: Serialize>(
        &self,
        name: &str,
        title: &str,
        data: &T,
    ) -> Result<Response, PanelError> {
        self.render_status(StatusCode::OK, name, title, data).await
    }

    /// The page `name` with `data` (and the layout) and `status`.
    pub(crate) async fn render_status<T: Serialize>(
        &self,
        status: StatusCode,
        name: &str,
        title: &str,
        data: &T,
    ) -> Result<Response, PanelError> {
        let layout = layout::build(self, title).await;
        let ctx = minijinja::context! {
            layout => minijinja::Value::from(Serde(&layout)),
            ..minijinja::Value::from(Serde(data))
        };
        let html = self.shared.render(name, ctx).map_err(|e| {
            tracing::error!(template = name, error = %e, detail = %e.display_debug_info(), "panel template failed");
            PanelError::Internal(format!("template `{name}` failed"))
        })?;
        let mut res = (status, Html(html)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::VARY, HeaderValue::from_static("x-panel-fragment"));
        if self.flash.is_some()
            && let Ok(v) = flash::clear_cookie(self.base())
        {
            h.append(header::SET_COOKIE, v);
        }
        Ok(res)
    }

    /// A `303 See Other` to `location`.
    pub(crate) fn redirect(&self, location: &str) -> Response {
        redirect(location)
    }

    /// A `303 See Other` to `location` with a flash message for the next
    /// page.
    pub(crate) fn redirect_with(&self, location: &str, flash: Flash) -> Response {
        let mut res = redirect(location);
        if let Ok(v) = flash::set_cookie(self.base(), &flash) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        res
    }

    /// `back` when it is a path inside the panel, else `fallback`.
    pub(crate) fn safe_back(&self, back: Option<&str>, fallback: String) -> String {
        match back {
            Some(b)
                if super::auth::is_relative_path(b)
                    && (b == self.base()
                        || b.starts_with(&format!("{}/", self.base()))
                        || b.starts_with(&format!("{}?", self.base()))) =>
            {
                b.to_owned()
            }
            _ => fallback,
        }
    }
}

/// A `303 See Other` to `location`.
pub(crate) fn redirect(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::try_from(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_template_compiles() {
        let shared = Shared::new(PanelConfig::default());
        for (name, _) in DEFAULT_TEMPLATES {
            shared
                .env
                .get_template(name)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            shared
                .env
                .get_template(&format!("default/{name}"))
                .unwrap_or_else(|e| panic!("default/{name}: {e:#}"));
        }
    }

    #[test]
    fn escaping_keeps_slashes() {
        let mut out = String::new();
        escape_html(&mut out, "<a href=\"/x?a=1&b='2'\">").unwrap();
        assert_eq!(out, "&lt;a href=&quot;/x?a=1&amp;b=&#x27;2&#x27;&quot;&gt;");
        let shared = Shared::new(PanelConfig::default());
        let html = shared
            .env
            .render_str("{{ v }}", minijinja::context! { v => "</script><b>" })
            .unwrap();
        assert_eq!(html, "&lt;/script&gt;&lt;b&gt;");
    }

    #[test]
    fn cookies_are_read() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; b=\"2\""));
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(
            cookies(&h),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "2".to_owned()),
                ("c".to_owned(), "3".to_owned())
            ]
        );
    }
}
