//! Panel pages that capabilities add (the queue dashboard, say): a
//! template rendered inside the panel's layout with the JSON its data
//! function returns, a navigation entry, and `POST` actions that change
//! something and come back with a message.
//!
//! A capability contributes them through its
//! [`Setup`](platform_core::capability::Setup):
//!
//! ```
//! use platform_admin::panel::page::{ActionFuture, PageAction, PageContext, PageFuture, PanelPage};
//!
//! fn data(_cx: &PageContext) -> PageFuture<'_> {
//!     Box::pin(async { Ok(serde_json::json!({ "waiting": 3 })) })
//! }
//! fn clear(_cx: &PageContext) -> ActionFuture<'_> {
//!     Box::pin(async { Ok("Cleared.".to_owned()) })
//! }
//!
//! # fn setup(setup: &mut platform_core::capability::Setup) {
//! setup.contribute(
//!     PanelPage::new("queue", "Queue", "<p>{{ data.waiting }} waiting</p>", data)
//!         .permission("view_queue")
//!         .nav_group("System")
//!         .action(PageAction::new("clear", clear).permission("manage_queue")),
//! );
//! # }
//! ```
//!
//! The page is served at `{base}/{slug}` (and `{base}/{slug}/{item}`, one
//! segment that the data function reads from [`PageContext::rest`]); an
//! action at `POST {base}/{slug}/actions/{name}` (with one more segment
//! when it acts on one item: `.../actions/retry/42`). Both answer 403 without
//! their permission; actions carry the CSRF token like every panel form.
//! A host template `pages/<slug>.html` overrides the page's source.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, Path};
use axum::response::Response;
use axum::routing::{get, post};
use minijinja::value::Serde;
use platform_core::Platform;
use serde::Serialize;

use super::auth::PanelAuth;
use super::error::PanelError;
use super::flash::Flash;
use super::form::FormData;
use super::render::Panel;

/// The routes of `pages` (before the resource routes: a static slug wins
/// over `/{resource}`).
/// A `303 See Other` to `location` that shows `message` as an error on
/// the page it lands on (a flash, as a refused [`PageAction`] shows), for
/// the panel routes a capability adds beside its pages (an upload, say):
/// a person who sent a file too large lands back on the page with the
/// reason, not on a bare status. `base` is the panel's path, the flash
/// cookie's scope.
pub fn redirect_with_error(base: &str, location: &str, message: &str) -> Response {
    let mut res = super::render::redirect(location);
    if let Ok(v) = super::flash::set_cookie(base, &Flash::error(message)) {
        res.headers_mut().append(axum::http::header::SET_COOKIE, v);
    }
    res
}

pub(crate) fn routes<S>(mut router: Router<S>, pages: &[Arc<PanelPage>]) -> Router<S>
where
    Platform: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    for page in pages {
        let slug = page.slug;
        let (a, b, c, d) = (page.clone(), page.clone(), page.clone(), page.clone());
        router = router
            .route(
                &format!("/{slug}"),
                get(move |p: Panel| show(a.clone(), p, None)),
            )
            .route(
                &format!("/{slug}/{{item}}"),
                get(move |p: Panel, item: Path<String>| show(b.clone(), p, Some(item))),
            )
            .route(
                &format!("/{slug}/actions/{{name}}"),
                post(move |p: Panel, Path(name): Path<String>, form: FormData| {
                    act(c.clone(), p, name, String::new(), form.0)
                }),
            )
            .route(
                &format!("/{slug}/actions/{{name}}/{{item}}"),
                post(
                    move |p: Panel, Path((name, item)): Path<(String, String)>, form: FormData| {
                        act(d.clone(), p, name, item, form.0)
                    },
                ),
            );
    }
    router
}

/// A page's data, or the message of an action.
pub type PageFuture<'a> =
    Pin<Box<dyn Future<Output = platform_core::Result<serde_json::Value>> + Send + 'a>>;
/// An action's outcome: the message shown on the page it returns to.
pub type ActionFuture<'a> =
    Pin<Box<dyn Future<Output = platform_core::Result<String>> + Send + 'a>>;

/// Produces a page's data.
pub type PageDataFn = for<'a> fn(&'a PageContext) -> PageFuture<'a>;
/// Runs an action.
pub type ActionFn = for<'a> fn(&'a PageContext) -> ActionFuture<'a>;

/// What a page's data function or an action gets.
#[derive(Debug, Clone)]
pub struct PageContext {
    /// The platform.
    pub platform: Platform,
    /// The signed-in user (use `auth.ctx` for every call made for them).
    pub auth: PanelAuth,
    /// Where the panel is mounted (`/admin`), for links.
    pub base: String,
    /// The segment after the page's slug (`42` of `/admin/jobs/42`), or
    /// after the action's name (`.../actions/retry/42`); empty when there
    /// is none.
    pub rest: String,
    /// The query string's pairs (a page) or the form's fields (an action).
    pub params: Vec<(String, String)>,
}

impl PageContext {
    /// The first value of `name` in [`PageContext::params`].
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A `POST` action of a page.
#[derive(Clone, Copy)]
pub struct PageAction {
    name: &'static str,
    permission: Option<&'static str>,
    run: ActionFn,
}

impl fmt::Debug for PageAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageAction")
            .field("name", &self.name)
            .field("permission", &self.permission)
            .finish_non_exhaustive()
    }
}

impl PageAction {
    /// An action called `name` (a path segment) running `run`.
    pub const fn new(name: &'static str, run: ActionFn) -> Self {
        Self {
            name,
            permission: None,
            run,
        }
    }
    /// Allowed only to users holding `permission` (on top of the page's).
    pub const fn permission(mut self, permission: &'static str) -> Self {
        self.permission = Some(permission);
        self
    }
    /// Its name (the path segment after `actions/`).
    pub const fn name(&self) -> &'static str {
        self.name
    }
    /// The permission it needs on top of the page's, if any.
    pub const fn required_permission(&self) -> Option<&'static str> {
        self.permission
    }
}

/// A panel page a capability adds.
#[derive(Clone)]
pub struct PanelPage {
    slug: &'static str,
    title: &'static str,
    template: &'static str,
    data: PageDataFn,
    permission: Option<&'static str>,
    nav_group: Option<&'static str>,
    nav: bool,
    actions: Vec<PageAction>,
}

impl fmt::Debug for PanelPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanelPage")
            .field("slug", &self.slug)
            .field("title", &self.title)
            .field("permission", &self.permission)
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

impl PanelPage {
    /// A page at `{base}/{slug}` titled `title`, rendering `template`
    /// (minijinja source: it sees `data`, `page` and `layout`) with the
    /// JSON `data` returns.
    pub fn new(
        slug: &'static str,
        title: &'static str,
        template: &'static str,
        data: PageDataFn,
    ) -> Self {
        Self {
            slug,
            title,
            template,
            data,
            permission: None,
            nav_group: None,
            nav: true,
            actions: Vec::new(),
        }
    }
    /// Shown (and in the navigation) only to users holding `permission`.
    pub fn permission(mut self, permission: &'static str) -> Self {
        self.permission = Some(permission);
        self
    }
    /// The navigation group it is listed under (default: none).
    pub fn nav_group(mut self, group: &'static str) -> Self {
        self.nav_group = Some(group);
        self
    }
    /// Leaves it out of the navigation (reached by links only).
    pub fn hidden(mut self) -> Self {
        self.nav = false;
        self
    }
    /// Adds a `POST` action.
    pub fn action(mut self, action: PageAction) -> Self {
        self.actions.push(action);
        self
    }
    /// The slug.
    pub fn slug(&self) -> &'static str {
        self.slug
    }
    /// The title.
    pub fn title(&self) -> &'static str {
        self.title
    }
    /// The permission needed to see it.
    pub fn required_permission(&self) -> Option<&'static str> {
        self.permission
    }
    /// Its `POST` actions, in the order they were added.
    pub fn actions(&self) -> &[PageAction] {
        &self.actions
    }
    /// The permissions a user needs to run `action`: the page's and the
    /// action's own; `None` when the page has no such action.
    pub fn action_permissions(&self, action: &str) -> Option<Vec<&'static str>> {
        let a = self.actions.iter().find(|a| a.name == action)?;
        Some(self.permission.into_iter().chain(a.permission).collect())
    }
    /// Whether it is listed in the navigation.
    pub fn in_navigation(&self) -> bool {
        self.nav
    }
    /// The template's name: `pages/<slug>.html`.
    pub fn template_name(&self) -> String {
        format!("pages/{}.html", self.slug)
    }
    pub(crate) fn template_source(&self) -> &'static str {
        self.template
    }
    pub(crate) fn nav_entry(&self) -> Option<(Option<&'static str>, &'static str)> {
        self.nav.then_some((self.nav_group, self.title))
    }
}

#[derive(Serialize)]
struct PageView<'a> {
    slug: &'a str,
    title: &'a str,
    href: String,
    rest: &'a str,
}

/// The page for a request to `{base}/{slug}[/{item}]`.
pub(crate) async fn show(
    page: Arc<PanelPage>,
    p: Panel,
    rest: Option<Path<String>>,
) -> Result<Response, PanelError> {
    if let Some(perm) = page.permission {
        p.require(perm)?;
    }
    let cx = PageContext {
        platform: p.platform.clone(),
        auth: p.auth.clone(),
        base: p.base().to_owned(),
        rest: rest.map(|Path(r)| r).unwrap_or_default(),
        params: p.query_pairs()?,
    };
    let data = (page.data)(&cx).await.map_err(PanelError::from)?;
    let view = PageView {
        slug: page.slug,
        title: page.title,
        href: format!("{}/{}", p.base(), page.slug),
        rest: &cx.rest,
    };
    let body = {
        let ctx = minijinja::context! {
            data => minijinja::Value::from(Serde(&data)),
            page => minijinja::Value::from(Serde(&view)),
            base => p.base(),
            csrf => p.auth.csrf_token.clone(),
        };
        p.shared
            .render(&page.template_name(), ctx)
            .map_err(|e| {
                tracing::error!(page = page.slug, error = %e, detail = %e.display_debug_info(), "panel page template failed");
                PanelError::Internal(format!("the page `{}` failed", page.slug))
            })?
    };
    p.render(
        "page.html",
        page.title,
        &serde_json::json!({ "html": body }),
    )
    .await
}

/// `POST {base}/{slug}/actions/{name}[/{rest}]`.
pub(crate) async fn act(
    page: Arc<PanelPage>,
    p: Panel,
    name: String,
    rest: String,
    form: Vec<(String, String)>,
) -> Result<Response, PanelError> {
    if let Some(perm) = page.permission {
        p.require(perm)?;
    }
    let action = page
        .actions
        .iter()
        .find(|a| a.name == name)
        .ok_or(PanelError::NotFound)?;
    if let Some(perm) = action.permission {
        p.require(perm)?;
    }
    let cx = PageContext {
        platform: p.platform.clone(),
        auth: p.auth.clone(),
        base: p.base().to_owned(),
        rest,
        params: form,
    };
    let back = p.safe_back(cx.param("_back"), format!("{}/{}", p.base(), page.slug));
    let flash = match (action.run)(&cx).await {
        Ok(message) => Flash::success(message),
        Err(
            e @ (platform_core::Error::PermissionDenied { .. }
            | platform_core::Error::Unauthenticated),
        ) => {
            return Err(e.into());
        }
        Err(e) => Flash::error(e.to_string()),
    };
    Ok(p.redirect_with(&back, flash))
}
