//! # platform-admin
//!
//! The axum routers of Platform. Each is a plain [`axum::Router`] generic
//! over the host's state (anything from which a
//! [`Platform`](platform_core::Platform) can be taken with
//! [`FromRef`](axum::extract::FromRef)); none of them is a server.
//!
//! | router | mount it at | what it serves |
//! |--------|-------------|----------------|
//! | [`api_router`] | `.nest("/api", …)` | the JSON API of every resource, the audit trail, `openapi.json` |
//! | [`panel_router`] | `.nest("/admin", …)` | the admin panel (HTML): dashboard, resource pages, users, roles, tokens |
//!
//! ```no_run
//! use axum::Router;
//! use platform_core::Platform;
//!
//! # async fn run() -> anyhow::Result<()> {
//! let platform = Platform::builder().build().await?;
//! let app: Router = Router::new()
//!     .nest("/api", platform_admin::api_router())
//!     .with_state(platform);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(
//!     listener,
//!     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
//! )
//! .await?;
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod error;
pub mod layer;
pub mod panel;

pub use api::{ApiConfig, api_router, api_router_with};
pub use error::{Error, Result};
pub use panel::{PanelConfig, panel_router, panel_router_with};

pub mod cli;
pub mod health;

pub use health::health_router;

/// Every router of the platform mounted where the demo's contract puts them
/// (`/api`, `/admin`, `/health`), for a `Platform` state. `Cli::serve`
/// serves this. The panel needs the session layer in front of it (until
/// then its pages redirect to `/admin/login`).
pub fn app_router() -> axum::Router<platform_core::Platform> {
    axum::Router::new()
        .nest("/api", api_router())
        .nest("/admin", panel_router())
        .route(
            "/admin/",
            axum::routing::get(|| async { axum::response::Redirect::permanent("/admin") }),
        )
        .merge(health_router())
        .route(
            "/",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({
                    "api": "/api",
                    "openapi": "/api/openapi.json",
                    "health": "/health",
                }))
            }),
        )
}
