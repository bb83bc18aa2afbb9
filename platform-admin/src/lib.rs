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
pub mod files;
pub mod layer;
pub mod matrix;
pub mod panel;

pub use api::{ApiConfig, api_router, api_router_for, api_router_with};
pub use error::{Error, Result};
pub use panel::{PanelConfig, panel_router, panel_router_with};

pub mod capability;
pub mod cli;
pub mod health;

pub use health::health_router;

/// The web framework the routers are built on, for the host's own routes and
/// layers (`platform_admin::axum::Router`, `axum::routing::get`, …): no
/// dependency line of your own needed, and always the version the routers
/// were built with.
pub use axum;

/// The command-line parser the commands are built with, for a capability's
/// own [`capability::Command`]s (`platform_admin::clap::Command`).
pub use clap;

/// Every router of the platform mounted where the demo's contract puts them
/// (`/api`, `/admin`, `/health`), for a `Platform` state, with the layers a
/// deployment needs: security headers (a strict CSP on the panel, HSTS in
/// production), the access log of panel and API requests, and the panel's
/// IP allowlist.
/// `Cli::serve` serves this.
///
/// Configuration (environment):
/// - `PLATFORM_ADMIN_ALLOW`: a comma-separated CIDR list (`10.0.0.0/8,
///   192.168.1.7`); when set, the panel answers 403 to every other client.
/// - `PLATFORM_TRUST_FORWARDED=1`: take the client address from
///   `X-Forwarded-For` (only behind a proxy that sets it).
///
/// Fails with [`Error::Core`] (a configuration error) on a malformed
/// allowlist: a typo must not open the panel to everyone.
pub fn app_router(
    platform: &platform_core::Platform,
) -> Result<axum::Router<platform_core::Platform>> {
    use crate::layer::{AccessLogLayer, IpAllowlistLayer, SecurityHeadersLayer, parse_networks};
    let config = platform.config();
    let nets = parse_networks(&config.admin_allow)
        .map_err(|e| platform_core::Error::Configuration(format!("PLATFORM_ADMIN_ALLOW: {e}")))?;
    let trust_forwarded = config.trust_forwarded;
    let mut admin = panel_router_with(PanelConfig::default().with_capabilities(platform));
    for extra in platform.contributions::<capability::PanelRoutes>() {
        admin = admin.merge(extra.router().clone());
    }
    let admin = admin
        .layer(AccessLogLayer::new(platform.clone(), "panel"))
        .layer(SecurityHeadersLayer::for_platform(
            platform,
            crate::layer::security_headers::PANEL_CSP,
        ))
        .layer(IpAllowlistLayer::new(nets, trust_forwarded));
    // The capabilities' API routes get the API's layers too.
    let api = api_router_for(platform, ApiConfig::default())
        .layer(AccessLogLayer::new(platform.clone(), "api"))
        .layer(SecurityHeadersLayer::for_platform(
            platform,
            crate::layer::security_headers::API_CSP,
        ));
    let mut root = axum::Router::new();
    for extra in platform.contributions::<capability::Routes>() {
        root = root.merge(extra.router().clone());
    }
    for files in platform.contributions::<platform_core::storage::SignedFileRoute>() {
        root = root.nest(&files.prefix, files::router());
    }
    Ok(root
        .nest("/api", api)
        .nest("/admin", admin)
        .route(
            "/admin/",
            axum::routing::get(|| async { axum::response::Redirect::permanent("/admin") }),
        )
        .merge(health_router())
        .route(
            "/",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({
                    "docs": "/api/docs",
                    "openapi": "/api/openapi.json",
                    "health": "/health",
                    "admin": "/admin",
                }))
            }),
        ))
}
