//! The JSON API: every resource served by the registry (`meta.in_api()`),
//! its audit trail and the OpenAPI document.
//!
//! [`api_router`] holds the routes *without* a prefix; the host nests it:
//! `Router::new().nest("/api", platform_admin::api_router())`. The paths
//! below are as the host sees them after that.
//!
//! | method | path | what |
//! |--------|------|------|
//! | `GET` | `/api/{resource}` | list (search, sort, filters, keyset or offset pages, `include` related records: see [`include`](mod@include)) |
//! | `POST` | `/api/{resource}` | create; `201` with `Location` |
//! | `GET` | `/api/{resource}/{id}` | show (`include` related records) |
//! | `PATCH`, `PUT` | `/api/{resource}/{id}` | update the fields sent (both are partial) |
//! | `DELETE` | `/api/{resource}/{id}` | delete (soft where the resource soft-deletes); `?force=true` deletes for good; `204` |
//! | `POST` | `/api/{resource}/{id}/restore` | restore a soft-deleted record |
//! | `GET` | `/api/audits?resource=R[&record=ID][&before=N][&page[size]=N]` | audit entries of a record or a resource, newest first (values cut to 1,000 characters, pages bounded in bytes) |
//! | `GET` | `/api/audits/{id}` | one audit entry, whole |
//! | `GET` | `/api/openapi.json` | the OpenAPI 3.0.3 document (public) |
//! | `GET` | `/api/docs` | the same document as a readable reference, Swagger UI served from the binary (public; see [`docs`]) |
//!
//! `{resource}` is the plural snake-case name (`invoices`). A resource named
//! `audits`, `docs` or `openapi.json` would be shadowed by the fixed routes.
//!
//! Authentication is `Authorization: Bearer <token>` (an API token from
//! [`Access::create_token`](platform_core::access::Access::create_token));
//! without the header the request is anonymous, and anything that needs a
//! permission answers `401`. Every response carries `x-request-id`. Errors
//! are JSON; see [`crate::error`].
//!
//! ## List responses
//!
//! ```json
//! {"data": [{"id": 1, "...": "..."}],
//!  "meta": {"has_more": true, "next_cursor": "eyJz...", "total": {"kind": "exact", "value": 60}},
//!  "links": {"next": "/api/invoices?page%5Bsize%5D=25&page%5Bafter%5D=eyJz..."}}
//! ```
//!
//! Every response is `Cache-Control: no-store` (records carry personal and
//! decrypted data), unless a route sets its own.
//!
//! `total` is present only with `count=true`. `links.next` is a path plus
//! query string (relative to the host), or `null` on the last page.

mod audit;
mod context;
pub mod docs;
mod extract;
pub mod include;
mod link;
pub mod openapi;
mod resource;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use platform_core::Platform;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::Error;
use crate::layer::SetRequestIdLayer;

pub use context::ApiContext;
pub use extract::JsonBody;

/// The default limit of a request body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Settings of the JSON API.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiConfig {
    /// Whether to take the client address from `X-Forwarded-For` (the
    /// right-most address, the one the nearest proxy added). Off by default:
    /// turn it on only behind a proxy that sets the header, or clients can
    /// forge the address written to the audit trail.
    pub trust_forwarded: bool,
    /// The largest request body accepted, in bytes (default 1 MiB).
    pub body_limit: usize,
    /// The `info.title` of the OpenAPI document.
    pub title: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            trust_forwarded: false,
            body_limit: DEFAULT_BODY_LIMIT,
            title: "Platform API".to_owned(),
        }
    }
}

impl ApiConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets [`ApiConfig::trust_forwarded`].
    pub fn trust_forwarded(mut self, on: bool) -> Self {
        self.trust_forwarded = on;
        self
    }
    /// Sets [`ApiConfig::body_limit`].
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
    /// Sets [`ApiConfig::title`].
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }
}

/// The JSON API with the default [`ApiConfig`]. Mount it with
/// `.nest("/api", api_router())`; see the [module docs](self) for the
/// routes.
pub fn api_router<S>() -> Router<S>
where
    Platform: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    api_router_with(ApiConfig::default())
}

/// The JSON API with `config`. Mount it with `.nest("/api", …)`.
pub fn api_router_with<S>(config: ApiConfig) -> Router<S>
where
    Platform: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    with_layers(routes(), config)
}

/// The JSON API with `config` and the API routes `platform`'s
/// capabilities contribute ([`ApiRoutes`](crate::capability::ApiRoutes)),
/// every route behind the same layers (request id, `Cache-Control:
/// no-store`, the body limit, the configuration). Mount it with
/// `.nest("/api", …)`; [`app_router`](crate::app_router) does.
pub fn api_router_for(platform: &Platform, config: ApiConfig) -> Router<Platform> {
    let mut router = routes();
    for extra in platform.contributions::<crate::capability::ApiRoutes>() {
        router = router.merge(extra.router().clone());
    }
    with_layers(router, config)
}

/// The API's own routes, without layers.
fn routes<S>() -> Router<S>
where
    Platform: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/openapi.json", get(openapi::serve))
        .route("/docs", get(docs::page))
        .route("/docs/{file}", get(docs::asset))
        .route("/audits", get(audit::index))
        .route("/audits/{id}", get(audit::show))
        .route("/{resource}", get(resource::index).post(resource::create))
        .route(
            "/{resource}/{id}",
            get(resource::show)
                .patch(resource::update)
                .put(resource::update)
                .delete(resource::destroy),
        )
        .route("/{resource}/{id}/restore", post(resource::restore))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// `router` behind the API's layers.
fn with_layers<S>(router: Router<S>, config: ApiConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let limit = config.body_limit;
    router
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::Extension(Arc::new(config)))
        // Records carry personal and decrypted data: no cache may keep them
        // (a route that sets its own policy keeps it).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetRequestIdLayer)
}

async fn route_not_found() -> Error {
    Error::RouteNotFound
}

async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}
