//! The permission matrix: every API and panel route of every resource,
//! requested as every role (and anonymously) through the real routers, and
//! compared with what the declared permissions say, so that a new resource
//! can never ship unguarded.
//!
//! In a host's own tests, on a migrated platform:
//!
//! ```no_run
//! # async fn check(platform: platform_core::Platform) {
//! platform_admin::matrix::assert_permission_matrix(&platform).await;
//! # }
//! ```
//!
//! or, from the command line, `permissions:matrix` (on a scratch SQLite
//! database, never the application's).
//!
//! ## What it does
//!
//! From the registry alone, [`PermissionMatrix::run`]:
//!
//! 1. creates a sample record of every resource from its metadata (values
//!    generated per field type, choices, lengths and unique fields; the
//!    parents of `belongs_to` fields first; encrypted fields filled);
//! 2. creates one user per role found in the database, one role
//!    (`matrix_only_<permission>`) and user per generated permission, so that
//!    each permission is tested alone, and a user with no role; anonymous
//!    visitors are the last column;
//! 3. sends every route below through the routers in-process (tower
//!    `oneshot`), as each of them: the API with a bearer token, the panel
//!    with a [`PanelAuth`](crate::panel::PanelAuth) request extension and the form's CSRF token;
//! 4. classifies each answer and compares it with the declared permissions
//!    (the roles' grants in the database and the resource's record-level
//!    policy), and returns a [`MatrixReport`].
//!
//! It writes to the database it runs on (roles, users, tokens, records):
//! run it on a test or scratch database.
//!
//! ## The routes and what they require
//!
//! `{r}` is a resource's plural name, `{id}` its sample record. "+ policy"
//! means the resource's record-level policy must also admit the record.
//!
//! | route | requires |
//! |-------|----------|
//! | `GET /api/{r}` (`?search=` the sample's text when the resource has search fields: the sample must be listed) | `view_any_` (+ policy) |
//! | `POST /api/{r}` | `create_`, and a policy scope that is not empty |
//! | `GET /api/{r}/{id}` | `view_` + policy |
//! | `PATCH /api/{r}/{id}`, `PUT /api/{r}/{id}` | `update_` + policy |
//! | `DELETE /api/{r}/{id}` | `delete_` + policy |
//! | `DELETE /api/{r}/{id}?force=true` | `force_delete_` + policy |
//! | `POST /api/{r}/{id}/restore` (soft delete) | `restore_` + policy |
//! | `GET /api/audits?resource={r}` | `view_any_` and `view_audit`, and a policy that reaches every record |
//! | `GET /api/audits?resource={r}&record={id}` | `view_` + policy |
//! | `GET /admin/{r}` | `view_any_` |
//! | `GET /admin/{r}/new` | `create_` |
//! | `POST /admin/{r}` | `create_`, and a policy scope that is not empty |
//! | `GET /admin/{r}/lookup?q=` (the sample must be listed) | `view_any_` + policy |
//! | `GET /admin/search?q=` (search fields only; the sample must be listed) | `view_any_` + policy |
//! | `POST /admin/{r}/columns` | `view_any_` |
//! | `GET /admin/{r}/{id}` | `view_` + policy |
//! | `GET /admin/{r}/{id}/edit` | `update_` and `view_` (the form shows the record) + policy |
//! | `POST /admin/{r}/{id}` | `update_` + policy |
//! | `POST /admin/{r}/{id}/versions/{audit}/restore` (audited) | `update_` + policy |
//! | `GET /admin/{r}/{id}/delete` | `delete_` and `view_` (the page shows the record) + policy |
//! | `POST /admin/{r}/{id}/delete` | `delete_` + policy |
//! | `GET /admin/{r}/{id}/force-delete` | `force_delete_` and `view_` + policy |
//! | `POST /admin/{r}/{id}/force-delete` | `force_delete_` + policy |
//! | `POST /admin/{r}/{id}/restore` (soft delete) | `restore_` + policy |
//! | `POST /admin/{r}/bulk` `export` | `view_any_` and `export_` |
//! | `POST /admin/{r}/bulk` `delete` | `view_any_` and `delete_any_` |
//! | `POST /admin/{r}/bulk` `restore` (soft delete) | `view_any_` and `restore_` |
//! | `POST /admin/{r}/bulk` `force_delete` (soft delete) | `view_any_` and `force_delete_` |
//!
//! Where a resource has a policy that does not let a user reach every
//! record, its record routes are also requested on *another's record* (one
//! outside the user's scope): with the permission held, they must answer
//! `404`, on the API and the panel alike, and listings must leave it out.
//! `import_` has no route and is not exercised; neither are host-defined
//! bulk actions.
//!
//! ## Capabilities
//!
//! The capabilities' panel pages ([`PanelPage`](crate::panel::PanelPage))
//! and declared API routes ([`ApiRoutes`](crate::capability::ApiRoutes))
//! are requested too, as every role; each permission a capability declares
//! gets a `matrix_only_` role of its own. What they require is read from
//! their declarations:
//!
//! | route | requires |
//! |-------|----------|
//! | `GET /admin/{slug}`, `GET /admin/{slug}/{item}` | the page's permission (a signed-in user when it has none) |
//! | `POST /admin/{slug}/actions/{name}`, `.../{name}/{item}` | the page's permission and the action's |
//! | a declared API route | its [`RouteAccess`](crate::capability::RouteAccess) |
//!
//! No input is sent to them (`{item}` and `{param}` segments are filled
//! with a value that names nothing): an answer refusing the input (`400`,
//! `422`, or `404` on a route with a parameter) got past the permission
//! check and counts as allowed. Actions run for real.
//!
//! ## Outcomes
//!
//! | answer | outcome |
//! |--------|---------|
//! | `2xx`, or a redirect anywhere but to sign in | [`Actual::Allowed`] |
//! | `401`, `403`, a redirect to `{panel}/login` (or a 2FA / password step) | [`Actual::Denied`] |
//! | `404` | [`Actual::NotFound`]: right only where the policy hides the record |
//! | anything else (`400`, `409`, `422`, `5xx`) | [`Actual::Failed`]: the matrix only sends valid requests, so always a mismatch |
//!
//! A listing that answers `2xx` without the sample counts as denied (for
//! that record). After every write the record is read back: a request
//! answered with a denial that nevertheless changed, deleted or restored the
//! record counts as allowed.

mod capabilities;
mod fixtures;
mod plan;
mod probe;
mod report;
mod resource;

pub use report::{Actual, Expected, MatrixReport, MatrixRow, RowKind, Surface};

use std::collections::HashMap;
use std::time::Instant;

use axum::Router;
use futures::StreamExt;
use platform_core::resource::ResourceEntry;
use platform_core::{Platform, Result};

use fixtures::{Gen, Run};

/// The prefix of the roles the matrix creates, one per generated
/// permission (`matrix_only_view_invoice`).
pub const ROLE_PREFIX: &str = "matrix_only_";

/// The CSRF token of the matrix's panel requests.
const CSRF: &str = "permission-matrix-csrf";

/// The largest body read back (listings).
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Requests sent at the same time by default (one role each).
const DEFAULT_CONCURRENCY: usize = 4;

/// Runs the matrix on a platform: see the [module docs](self).
///
/// ```no_run
/// use platform_admin::matrix::PermissionMatrix;
///
/// # async fn check(platform: platform_core::Platform) -> platform_core::Result<()> {
/// let report = PermissionMatrix::new(&platform).run().await?;
/// println!("{report}");
/// assert!(report.is_ok(), "{}", report.mismatch_table());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PermissionMatrix {
    platform: Platform,
    router: Option<Router<Platform>>,
    api: Option<String>,
    panel: Option<String>,
    concurrency: usize,
}

/// The API at `api` and the panel at `panel` (empty: the root), with the
/// capabilities' API routes and panel pages.
fn default_router(platform: &Platform, api: Option<&str>, panel: Option<&str>) -> Router<Platform> {
    let mut app = Router::new();
    if let Some(api) = api {
        let router = crate::api_router_for(platform, crate::ApiConfig::default());
        app = if api.is_empty() {
            app.merge(router)
        } else {
            app.nest(api, router)
        };
    }
    if let Some(panel) = panel {
        let router = crate::panel_router_with(
            crate::PanelConfig::new()
                .base_path(panel)
                .with_capabilities(platform),
        );
        app = if panel.is_empty() {
            app.merge(router)
        } else {
            app.nest(panel, router)
        };
    }
    app
}

fn base_path(path: &str) -> String {
    let p = path.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("/{p}")
    }
}

impl PermissionMatrix {
    /// The matrix of `platform` (migrated, permissions synced) over
    /// [`api_router`](crate::api_router) at `/api` and
    /// [`panel_router`](crate::panel_router) at `/admin`.
    pub fn new(platform: &Platform) -> Self {
        Self {
            platform: platform.clone(),
            router: None,
            api: Some("/api".to_owned()),
            panel: Some("/admin".to_owned()),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// Checks `app` instead of the plain routers: the application as it is
    /// served (its own routes and layers included), with the API at
    /// [`PermissionMatrix::api_base`] and the panel at
    /// [`PermissionMatrix::panel_base`].
    pub fn router(mut self, app: Router<Platform>) -> Self {
        self.router = Some(app);
        self
    }

    /// Where the API is mounted (default `/api`).
    pub fn api_base(mut self, path: &str) -> Self {
        self.api = Some(base_path(path));
        self
    }

    /// Where the panel is mounted (default `/admin`); it must match the
    /// panel's [`PanelConfig::base_path`](crate::PanelConfig::base_path).
    pub fn panel_base(mut self, path: &str) -> Self {
        self.panel = Some(base_path(path));
        self
    }

    /// Leaves one router out (an application that does not serve it).
    pub fn without(mut self, surface: Surface) -> Self {
        match surface {
            Surface::Api => self.api = None,
            Surface::Panel => self.panel = None,
        }
        self
    }

    /// How many roles are exercised at the same time (default 4).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Runs the matrix and panics unless every answer matches the declared
    /// permissions, for tests.
    ///
    /// # Panics
    ///
    /// On any mismatch (the message is the table of mismatches), or when the
    /// matrix cannot be set up.
    pub async fn assert(self) {
        let report = match self.run().await {
            Ok(r) => r,
            Err(e) => panic!("the permission matrix could not run: {e}"),
        };
        assert!(report.is_ok(), "{}", report.mismatch_table());
    }

    /// Creates the samples, roles and users, sends every request and
    /// returns the report. Fails only when the matrix cannot be set up (a
    /// resource whose sample cannot be made from its metadata, a database
    /// error); mismatches are in the report.
    pub async fn run(self) -> Result<MatrixReport> {
        let started = Instant::now();
        let router = match self.router {
            Some(app) => app,
            None => default_router(&self.platform, self.api.as_deref(), self.panel.as_deref()),
        }
        .with_state(self.platform.clone());
        let entries: Vec<(usize, &ResourceEntry)> = self
            .platform
            .registry()
            .entries()
            .map(|e| &**e)
            .filter(|e| {
                let m = e.meta();
                (self.api.is_some() && m.in_api()) || (self.panel.is_some() && m.in_admin())
            })
            .enumerate()
            .collect();
        let mut run = Run {
            platform: self.platform.clone(),
            router,
            api: self.api,
            panel: self.panel,
            seq: Gen::new(),
            fixtures: HashMap::new(),
        };
        run.fixtures = run.create_fixtures(&entries).await?;
        let subjects = run.subjects(&entries).await?;
        let roles = subjects.iter().map(|s| s.label.clone()).collect();
        let run = &run;
        let entries = &entries;
        let targets = &run.capability_targets();
        let results: Vec<Result<Vec<MatrixRow>>> =
            futures::stream::iter(subjects.iter().enumerate())
                .map(|(i, s)| async move {
                    let mut rows = Vec::new();
                    for (ri, entry) in entries {
                        rows.extend(run.resource(i, s, *ri, entry).await?);
                    }
                    for (k, target) in targets.iter().enumerate() {
                        rows.push(run.capability(i, s, entries.len(), k, target).await?);
                    }
                    Ok(rows)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        let mut rows = Vec::new();
        for r in results {
            rows.extend(r?);
        }
        rows.sort_by_key(|r| r.order);
        Ok(MatrixReport {
            rows,
            roles,
            elapsed: started.elapsed(),
        })
    }
}

/// Runs the [`PermissionMatrix`] of `platform` (migrated, permissions
/// synced) over the plain API and panel routers, for a host's own tests;
/// [`PermissionMatrix::assert`] checks the application's own router.
///
/// # Panics
///
/// When an answer differs from the declared permissions (the message is
/// the table of mismatches), or when the matrix cannot be set up.
pub async fn assert_permission_matrix(platform: &Platform) {
    PermissionMatrix::new(platform).assert().await;
}
