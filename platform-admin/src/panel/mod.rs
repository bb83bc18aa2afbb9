//! The admin panel: server-rendered HTML pages for every resource, the
//! dashboard, global search and the users/roles/permissions screens (the
//! Shield UI).
//!
//! [`panel_router`] holds the routes *without* a prefix; the host nests it
//! at `/admin` (or wherever [`PanelConfig::base_path`] says):
//! `Router::new().nest("/admin", platform_admin::panel_router())`.
//!
//! | method | path (under `/admin`) | what |
//! |--------|------|------|
//! | `GET` | `/` | dashboard (widgets) |
//! | `GET` | `/search?q=` | global search across resources |
//! | `GET` | `/static/{file}` | the panel's CSS and JavaScript (public, cached) |
//! | `POST` | `/theme` | light / dark / system theme (a cookie) |
//! | `GET` | `/notifications` | the signed-in user's notifications (the bell) |
//! | `POST` | `/notifications/{id}/read`, `/notifications/read-all` | mark read |
//! | `GET` | `/{resource}` | list: search, sort, filters, keyset pages, column toggles, bulk actions |
//! | `POST` | `/{resource}` | create |
//! | `GET` | `/{resource}/new` | create form |
//! | `GET` | `/{resource}/lookup?q=` | JSON `{"data": [{"id", "title"}]}` for relation pickers |
//! | `POST` | `/{resource}/bulk` | bulk action on selected ids or on every record matching the list's query |
//! | `POST` | `/{resource}/columns` | remembers the visible columns |
//! | `GET` | `/{resource}/{id}` | view, with the activity log |
//! | `POST` | `/{resource}/{id}` | update |
//! | `GET` | `/{resource}/{id}/edit` | edit form |
//! | `GET`, `POST` | `/{resource}/{id}/delete` | confirm, delete |
//! | `GET`, `POST` | `/{resource}/{id}/force-delete` | confirm, delete for good |
//! | `POST` | `/{resource}/{id}/restore` | restore a soft-deleted record |
//! | `POST` | `/{resource}/{id}/versions/{audit}/restore` | restore the record to an audit entry's state |
//! | `GET` | `/{resource}/{id}/activity/{entry}` | one entry of the activity log, whole (the log cuts long values) |
//! | `GET`, `POST` | `/access/users`, `/access/users/new` | users, new user |
//! | `GET`, `POST` | `/access/users/{id}` | a user's roles and direct permissions |
//! | `POST` | `/access/users/{id}/status` | disable (`disabled=1`) or enable an account |
//! | `POST` | `/access/users/{id}/two-factor/reset` | turn a user's two-factor authentication off (lost device) |
//! | `GET`, `POST` | `/access/users/{id}/tokens` | another user's API tokens (`update_user`) |
//! | `GET`, `POST` | `/access/roles` | roles, new role |
//! | `GET`, `POST` | `/access/roles/{name}` | the role editor (resources × abilities grid) |
//! | `GET`, `POST` | `/access/roles/{name}/delete` | confirm, delete a role |
//! | `GET`, `POST` | `/access/tokens` | the signed-in user's API tokens |
//! | `POST` | `/access/tokens/{id}/revoke` | revoke a token |
//!
//! `{resource}` is the plural name of a resource with `meta.in_admin()`. A
//! resource named `static`, `search`, `access`, `theme`, `notifications`,
//! `login` or `logout` is shadowed by the fixed routes.
//!
//! ## Authentication
//!
//! Every page needs a [`PanelAuth`] request extension, put
//! there by the session layer in front of the panel; without it, pages
//! redirect to `{base}/login?next=<path>`. See [`auth`] for the contract.
//! Every state change is a `POST` form carrying the CSRF token as `_csrf`;
//! the session layer verifies it. No `GET` changes state.
//!
//! ## Templates and assets
//!
//! Pages are [minijinja](https://docs.rs/minijinja) templates with HTML
//! auto-escaping on for every template. The defaults are embedded in the
//! binary; a host overrides any of them by putting a file with the same
//! name in [`PanelConfig::templates_dir`] (a default stays reachable as
//! `default/<name>`, so an override can `{% extends "default/base.html" %}`).
//! The pages carry no inline script or style, so they run under a
//! `Content-Security-Policy` without `'unsafe-inline'`; everything works
//! with JavaScript off, and `panel.js` only enhances (partial list refresh,
//! confirm dialogs, theme toggle, column toggles, relation search, grid
//! select-all).
//!
//! ## Extending
//!
//! Dashboard widgets ([`widget::Widget`]) and bulk actions
//! ([`bulk::BulkAction`]) are registered like resources: collected from
//! every crate with [`register_widget!`](crate::register_widget) /
//! [`register_bulk_action!`](crate::register_bulk_action), or added
//! explicitly with [`PanelConfig::widget`] / [`PanelConfig::bulk_action`].

pub mod auth;
pub mod bulk;
pub mod export;
pub mod page;
pub mod session;
pub mod widget;

mod access;
mod assets;
mod dashboard;
mod error;
mod fields;
mod flash;
mod form;
mod format;
mod layout;
mod list;
mod lookup;
mod notifications;
mod prefs;
mod query;
mod record;
mod render;
mod search;
mod signin;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use platform_core::Platform;

use crate::layer::SetRequestIdLayer;

pub use auth::PanelAuth;
pub use bulk::BulkAction;
pub use page::PanelPage;
pub use widget::Widget;

/// The default limit of a form body: 256 KiB (a role editor over 100
/// resources posts about 30 KiB).
pub const DEFAULT_FORM_LIMIT: usize = 256 * 1024;

/// Settings of the panel.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PanelConfig {
    /// The name in the header and the page titles (default `Platform`).
    pub title: String,
    /// A directory whose templates override the embedded defaults, by name
    /// (`base.html`, `resource/list.html`, ...).
    pub templates_dir: Option<PathBuf>,
    /// Where the host mounts the panel (default `/admin`; empty for the
    /// root); every link and redirect starts with it.
    pub base_path: String,
    /// The largest form body accepted, in bytes (default
    /// [`DEFAULT_FORM_LIMIT`]); larger posts get a 413 page.
    pub body_limit: usize,
    /// Whether templates from [`PanelConfig::templates_dir`] are reloaded
    /// when they change on disk (default: in debug builds).
    pub auto_reload: bool,
    /// Widgets added explicitly (on top of the registered ones).
    pub widgets: Vec<Widget>,
    /// Bulk actions added explicitly (on top of the registered ones).
    pub bulk_actions: Vec<BulkAction>,
    /// Pages added by capabilities (or explicitly).
    pub pages: Vec<Arc<PanelPage>>,
}

impl Default for PanelConfig {
    fn default() -> Self {
        Self {
            title: "Platform".to_owned(),
            templates_dir: None,
            base_path: "/admin".to_owned(),
            body_limit: DEFAULT_FORM_LIMIT,
            auto_reload: cfg!(debug_assertions),
            widgets: Vec::new(),
            bulk_actions: Vec::new(),
            pages: Vec::new(),
        }
    }
}

impl PanelConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets [`PanelConfig::title`].
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }
    /// Sets [`PanelConfig::templates_dir`].
    pub fn templates_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.templates_dir = Some(dir.into());
        self
    }
    /// Sets [`PanelConfig::base_path`]: `/admin` (a leading `/` is added,
    /// trailing ones removed; `/` or empty for the root).
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        let p = path.into();
        let p = p.trim_matches('/');
        self.base_path = if p.is_empty() {
            String::new()
        } else {
            format!("/{p}")
        };
        self
    }
    /// Sets [`PanelConfig::body_limit`].
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
    /// Sets [`PanelConfig::auto_reload`].
    pub fn auto_reload(mut self, on: bool) -> Self {
        self.auto_reload = on;
        self
    }
    /// Adds a dashboard widget.
    pub fn widget(mut self, widget: Widget) -> Self {
        self.widgets.push(widget);
        self
    }
    /// Adds a bulk action.
    pub fn bulk_action(mut self, action: BulkAction) -> Self {
        self.bulk_actions.push(action);
        self
    }
    /// Adds a page.
    pub fn page(mut self, page: PanelPage) -> Self {
        self.pages.push(Arc::new(page));
        self
    }
    /// Adds the pages and dashboard widgets that `platform`'s capabilities
    /// contributed ([`app_router`](crate::app_router) does this).
    pub fn with_capabilities(mut self, platform: &Platform) -> Self {
        self.pages.extend(platform.contributions::<PanelPage>());
        self.widgets
            .extend(platform.contributions::<Widget>().iter().map(|w| **w));
        self
    }
}

/// The panel with the default [`PanelConfig`]. Mount it with
/// `.nest("/admin", panel_router())`; see the [module docs](self).
pub fn panel_router<S>() -> Router<S>
where
    Platform: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    panel_router_with(PanelConfig::default())
}

/// The panel with `config`. Mount it at `config.base_path`.
pub fn panel_router_with<S>(config: PanelConfig) -> Router<S>
where
    Platform: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    let limit = config.body_limit;
    let pages = config.pages.clone();
    let shared = Arc::new(render::Shared::new(config));
    page::routes(Router::new(), &pages)
        .route("/", get(dashboard::show))
        .route("/login", get(signin::login_form).post(signin::login))
        .route("/logout", post(signin::logout))
        .route(
            "/two-factor-challenge",
            get(signin::challenge_form).post(signin::challenge),
        )
        .route(
            "/two-factor/setup",
            get(signin::setup_form).post(signin::setup),
        )
        .route(
            "/forgot-password",
            get(signin::forgot_form).post(signin::forgot),
        )
        .route(
            "/reset-password/{token}",
            get(signin::reset_form).post(signin::reset),
        )
        .route("/verify-email", get(signin::verify_email))
        .route(
            "/confirm-password",
            get(signin::confirm_form).post(signin::confirm),
        )
        .route(
            "/change-password",
            get(signin::required_change_form).post(signin::required_change),
        )
        .route(
            "/register",
            get(signin::register_form).post(signin::register),
        )
        .route(
            "/profile",
            get(signin::profile).post(signin::update_profile),
        )
        .route("/profile/password", post(signin::change_password))
        .route("/profile/verification", post(signin::resend_verification))
        .route("/profile/recovery-codes", post(signin::regenerate_codes))
        .route("/static/{file}", get(assets::serve))
        .route("/search", get(search::show))
        .route("/theme", post(prefs::theme))
        .route("/notifications", get(notifications::index))
        .route("/notifications/read-all", post(notifications::read_all))
        .route("/notifications/{id}/read", post(notifications::read))
        .route(
            "/access/users",
            get(access::users::index).post(access::users::create),
        )
        .route("/access/users/new", get(access::users::new_form))
        .route(
            "/access/users/{id}",
            get(access::users::edit).post(access::users::update),
        )
        .route("/access/users/{id}/status", post(access::users::set_status))
        .route(
            "/access/users/{id}/two-factor/reset",
            post(access::users::reset_two_factor),
        )
        .route(
            "/access/users/{id}/tokens",
            get(access::tokens::index_for).post(access::tokens::create_for),
        )
        .route(
            "/access/roles",
            get(access::roles::index).post(access::roles::create),
        )
        .route(
            "/access/roles/{name}",
            get(access::roles::edit).post(access::roles::update),
        )
        .route(
            "/access/roles/{name}/delete",
            get(access::roles::confirm_delete).post(access::roles::delete),
        )
        .route(
            "/access/tokens",
            get(access::tokens::index).post(access::tokens::create),
        )
        .route("/access/tokens/{id}/revoke", post(access::tokens::revoke))
        .route("/{resource}", get(list::index).post(record::create))
        .route("/{resource}/new", get(record::new_form))
        .route("/{resource}/lookup", get(lookup::json))
        .route("/{resource}/bulk", post(bulk::run))
        .route("/{resource}/columns", post(prefs::columns))
        .route("/{resource}/{id}", get(record::show).post(record::update))
        .route("/{resource}/{id}/edit", get(record::edit_form))
        .route(
            "/{resource}/{id}/delete",
            get(record::confirm_delete).post(record::delete),
        )
        .route(
            "/{resource}/{id}/force-delete",
            get(record::confirm_force_delete).post(record::force_delete),
        )
        .route("/{resource}/{id}/restore", post(record::restore))
        .route(
            "/{resource}/{id}/versions/{audit}/restore",
            post(record::restore_version),
        )
        .route(
            "/{resource}/{id}/activity/{entry}",
            get(record::activity_entry),
        )
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            error::render_errors,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::Extension(shared))
        .layer(SetRequestIdLayer)
}

/// Registers a dashboard [`Widget`] from any crate (collected with
/// `inventory`, like resources).
///
/// ```
/// use platform_admin::panel::widget::{Widget, WidgetContext};
///
/// fn revenue(_cx: &WidgetContext) -> platform_admin::panel::widget::WidgetFuture<'_> {
///     Box::pin(async { Ok(serde_json::json!({ "total": "12,345.00" })) })
/// }
///
/// platform_admin::register_widget!(Widget::new(
///     "revenue",
///     "Revenue",
///     "<p class=\"stat\">{{ data.total }}</p>",
///     revenue,
/// ));
/// ```
#[macro_export]
macro_rules! register_widget {
    ($widget:expr $(,)?) => {
        $crate::panel::__private::inventory::submit! { $widget }
    };
}

/// Registers a [`BulkAction`] from any crate (collected with `inventory`).
///
/// ```
/// use platform_admin::panel::bulk::{BulkAction, BulkFuture, BulkInput};
/// use platform_core::repo::Changes;
///
/// fn mark_paid(input: &BulkInput) -> BulkFuture<'_> {
///     Box::pin(async move {
///         let n = input
///             .records
///             .update_where(&input.query(), Changes::new().set("status", "paid"))
///             .await?;
///         Ok(format!("{n} marked as paid."))
///     })
/// }
///
/// platform_admin::register_bulk_action!(
///     BulkAction::new("mark_paid", "Mark as paid", mark_paid).for_resource("invoices")
/// );
/// ```
#[macro_export]
macro_rules! register_bulk_action {
    ($action:expr $(,)?) => {
        $crate::panel::__private::inventory::submit! { $action }
    };
}

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
