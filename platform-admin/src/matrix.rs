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
//!    with a [`PanelAuth`] request extension and the form's CSRF token;
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
//! The capabilities' panel pages ([`PanelPage`])
//! and declared API routes ([`ApiRoutes`])
//! are requested too, as every role; each permission a capability declares
//! gets a `matrix_only_` role of its own. What they require is read from
//! their declarations:
//!
//! | route | requires |
//! |-------|----------|
//! | `GET /admin/{slug}`, `GET /admin/{slug}/{item}` | the page's permission (a signed-in user when it has none) |
//! | `POST /admin/{slug}/actions/{name}`, `.../{name}/{item}` | the page's permission and the action's |
//! | a declared API route | its [`RouteAccess`] |
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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{NaiveDate, Utc};
use futures::StreamExt;
use platform_core::access::NewUser;
use platform_core::context::Context;
use platform_core::permission::{Ability, VIEW_AUDIT};
use platform_core::policy::Scope;
use platform_core::repo::{Changes, Records};
use platform_core::resource::{FieldMeta, ResourceEntry, ResourceMeta};
use platform_core::value::{FieldType, Value};
use platform_core::{Error, Platform, Result};
use tower::ServiceExt;

use crate::capability::{ApiRoute, ApiRoutes, RouteAccess};
use crate::panel::{PanelAuth, PanelPage};

/// The prefix of the roles the matrix creates, one per generated
/// permission (`matrix_only_view_invoice`).
pub const ROLE_PREFIX: &str = "matrix_only_";

/// The CSRF token of the matrix's panel requests.
const CSRF: &str = "permission-matrix-csrf";

/// The largest body read back (listings).
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Requests sent at the same time by default (one role each).
const DEFAULT_CONCURRENCY: usize = 4;

/// Which router a route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    /// The JSON API.
    Api,
    /// The admin panel.
    Panel,
}

impl fmt::Display for Surface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Api => "api",
            Self::Panel => "panel",
        })
    }
}

/// What the declared permissions say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The permissions are held and the policy admits the record.
    Allowed,
    /// A permission is missing (or the policy's scope refuses the request
    /// as a whole): `401`, `403` or a redirect to sign in.
    Denied,
    /// The permissions are held but the policy hides the record: `404`.
    Hidden,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Hidden => "hidden (404)",
        })
    }
}

/// What the routers answered, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actual {
    /// `2xx`, or a redirect anywhere but to sign in (or the action took
    /// place whatever the answer said).
    Allowed,
    /// `401`, `403` or a redirect to sign in; for a listing, an answer
    /// without the sample record.
    Denied,
    /// `404`.
    NotFound,
    /// Any other answer (`400`, `409`, `422`, `5xx`, ...).
    Failed,
}

impl fmt::Display for Actual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::NotFound => "not found",
            Self::Failed => "failed",
        })
    }
}

/// What a row's route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// A resource's API or panel route.
    Resource,
    /// A capability's panel page or one of its actions
    /// ([`PanelPage`]).
    Page,
    /// A declared route of a capability's
    /// [`ApiRoutes`].
    ApiRoute,
}

/// One request of the matrix: a route of a resource, requested as a role.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MatrixRow {
    /// What the route belongs to.
    pub kind: RowKind,
    /// The resource's plural name; for a capability's panel page its slug,
    /// for a capability's API route its path's first segment.
    pub resource: &'static str,
    /// The router.
    pub surface: Surface,
    /// The route, as a template (`GET /api/invoices/{id}`); routes on a
    /// record outside the role's policy scope end in `[other's record]`.
    pub route: String,
    /// The role the request was made as, `(no role)` or `(anonymous)`.
    pub role: String,
    /// The permissions the route requires (`view_any_invoice + export_invoice`).
    pub requires: String,
    /// What the declared permissions say.
    pub expected: Expected,
    /// What the routers did.
    pub actual: Actual,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Why the outcome is not what the status alone says, if it is not.
    pub note: Option<String>,
    order: (usize, usize, usize),
}

impl MatrixRow {
    /// Whether the answer is the one the declared permissions call for.
    pub fn is_ok(&self) -> bool {
        matches!(
            (self.expected, self.actual),
            (Expected::Allowed, Actual::Allowed)
                | (Expected::Denied, Actual::Denied)
                | (Expected::Hidden, Actual::NotFound)
        )
    }
}

/// The outcome of a [`PermissionMatrix`] run: one row per request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MatrixReport {
    /// Every request, by resource, route and role.
    pub rows: Vec<MatrixRow>,
    /// The roles requests were made as, in column order (the last two are
    /// `(no role)` and `(anonymous)`).
    pub roles: Vec<String>,
    /// How long the run took (setup included).
    pub elapsed: Duration,
}

impl MatrixReport {
    /// The requests whose answer differs from the declared permissions.
    pub fn mismatches(&self) -> Vec<&MatrixRow> {
        self.rows.iter().filter(|r| !r.is_ok()).collect()
    }

    /// Whether every answer matches the declared permissions.
    pub fn is_ok(&self) -> bool {
        self.rows.iter().all(MatrixRow::is_ok)
    }

    /// The number of resources exercised.
    pub fn resources(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.kind == RowKind::Resource)
            .map(|r| r.resource)
            .collect::<HashSet<_>>()
            .len()
    }

    /// The number of distinct routes (per resource) exercised.
    pub fn routes(&self) -> usize {
        self.rows
            .iter()
            .map(|r| (r.resource, r.route.as_str()))
            .collect::<HashSet<_>>()
            .len()
    }

    /// The number of distinct routes of capabilities (panel pages, their
    /// actions, declared API routes) exercised.
    pub fn capability_routes(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.kind != RowKind::Resource)
            .map(|r| (r.resource, r.route.as_str()))
            .collect::<HashSet<_>>()
            .len()
    }

    /// One line: resources, routes, roles, requests, mismatches and time.
    pub fn summary(&self) -> String {
        let capability = match self.capability_routes() {
            0 => String::new(),
            n => format!(" ({n} of capabilities)"),
        };
        format!(
            "permission matrix: {} resources, {} routes{capability}, {} roles (with anonymous), {} requests, {} mismatches, {:.1} s",
            self.resources(),
            self.routes(),
            self.roles.len(),
            self.rows.len(),
            self.mismatches().len(),
            self.elapsed.as_secs_f64()
        )
    }

    /// The summary and a table of the mismatches (empty table when there is
    /// none).
    pub fn mismatch_table(&self) -> String {
        let mut out = self.summary();
        out.push('\n');
        let mismatches = self.mismatches();
        if mismatches.is_empty() {
            return out;
        }
        let mut table = vec![[
            "RESOURCE".to_owned(),
            "ROUTE".to_owned(),
            "ROLE".to_owned(),
            "REQUIRES".to_owned(),
            "EXPECTED".to_owned(),
            "ACTUAL".to_owned(),
            "STATUS".to_owned(),
            "NOTE".to_owned(),
        ]];
        for r in mismatches {
            table.push([
                r.resource.to_owned(),
                r.route.clone(),
                r.role.clone(),
                r.requires.clone(),
                r.expected.to_string(),
                r.actual.to_string(),
                r.status.to_string(),
                r.note.clone().unwrap_or_default(),
            ]);
        }
        out.push_str("\nMISMATCHES\n");
        write_table(&mut out, &table);
        out
    }
}

/// Pads the columns of `rows` and appends them to `out`, one line each.
fn write_table<const N: usize>(out: &mut String, rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// The roles that were allowed, shortened after a few.
fn allowed_for(rows: &[&MatrixRow]) -> String {
    let names: Vec<&str> = rows
        .iter()
        .filter(|r| r.actual == Actual::Allowed)
        .map(|r| r.role.as_str())
        .collect();
    match names.len() {
        0 => "-".to_owned(),
        n if n <= 3 => names.join(", "),
        n => format!("{} and {} more", names[..3].join(", "), n - 3),
    }
}

/// The summary, one line per route (who was allowed, whether every role
/// got the right answer), then the mismatches.
impl fmt::Display for MatrixReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut groups: Vec<(&str, &str, Vec<&MatrixRow>)> = Vec::new();
        for r in &self.rows {
            match groups.last_mut() {
                Some((res, route, rows)) if *res == r.resource && *route == r.route => rows.push(r),
                _ => groups.push((r.resource, r.route.as_str(), vec![r])),
            }
        }
        let mut table = vec![[
            "RESOURCE".to_owned(),
            "ROUTE".to_owned(),
            "REQUIRES".to_owned(),
            "ALLOWED FOR".to_owned(),
            "RESULT".to_owned(),
        ]];
        for (resource, route, rows) in &groups {
            let bad = rows.iter().filter(|r| !r.is_ok()).count();
            table.push([
                (*resource).to_owned(),
                (*route).to_owned(),
                rows.first().map(|r| r.requires.clone()).unwrap_or_default(),
                allowed_for(rows),
                if bad == 0 {
                    format!("ok ({})", rows.len())
                } else {
                    format!("MISMATCH ({bad} of {})", rows.len())
                },
            ]);
        }
        let mut out = String::new();
        write_table(&mut out, &table);
        out.push('\n');
        out.push_str(&self.mismatch_table());
        f.write_str(&out)
    }
}

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
        let mut router = crate::api_router();
        for extra in platform.contributions::<ApiRoutes>() {
            router = router.merge(extra.router().clone());
        }
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

// ---- one run ---------------------------------------------------------------

/// Unique values for samples: a run id and a counter.
#[derive(Debug)]
struct Gen {
    run: String,
    next: AtomicU64,
}

impl Gen {
    fn new() -> Self {
        let mut b = [0u8; 4];
        platform_core::crypto::random_bytes(&mut b);
        let run: String = b
            .iter()
            .map(|x| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[usize::from(*x) % 36]))
            .collect();
        Self {
            run,
            next: AtomicU64::new(1),
        }
    }
    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
    /// The searchable text of sample `n`: letters and digits only, and no
    /// sample's token contains another's.
    fn token(&self, n: u64) -> String {
        format!("mx{}n{n}x", self.run)
    }
}

fn base36(mut n: u64) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn sample_error(meta: &ResourceMeta, what: impl fmt::Display) -> Error {
    Error::Configuration(format!(
        "the permission matrix cannot make a sample `{}` from its metadata: {what}",
        meta.name()
    ))
}

/// Someone the requests are made as.
#[derive(Debug, Clone)]
struct Subject {
    label: String,
    token: Option<String>,
    auth: Option<PanelAuth>,
    panel_ctx: Context,
    api_ctx: Context,
}

impl Subject {
    fn ctx(&self, surface: Surface) -> &Context {
        match surface {
            Surface::Api => &self.api_ctx,
            Surface::Panel => &self.panel_ctx,
        }
    }
}

/// A record the requests act on.
#[derive(Debug, Clone)]
struct Sample {
    id: Value,
    /// Its values in field order (plain text).
    values: Vec<Value>,
    /// The policy conditions it was created under (its owner).
    conds: Vec<(&'static str, Value)>,
    /// Its searchable token, when a search field holds it whole.
    token: Option<String>,
    /// Its `created` audit entry.
    audit: Option<i64>,
}

#[derive(Debug)]
struct Run {
    platform: Platform,
    router: Router,
    api: Option<String>,
    panel: Option<String>,
    seq: Gen,
    /// A parent record per table, for `belongs_to` fields.
    fixtures: HashMap<&'static str, Value>,
}

fn scope_of(meta: &ResourceMeta, ctx: &Context) -> Scope {
    meta.policy_fn().map_or(Scope::All, |p| p(ctx))
}

fn conds_of(scope: Scope) -> Vec<(&'static str, Value)> {
    match scope {
        Scope::Where(c) => c,
        _ => Vec::new(),
    }
}

fn admits(meta: &ResourceMeta, scope: &Scope, values: &[Value]) -> bool {
    scope.admits(|f| meta.field_index(f).and_then(|i| values.get(i)))
}

impl Run {
    fn console(&self, meta: &ResourceMeta) -> Result<Records> {
        self.platform
            .records(meta.plural(), &Context::console())
            .ok_or_else(|| sample_error(meta, "it is not registered"))
    }

    /// A value for `f` from its metadata; `n` makes it unique.
    fn value_for(
        &self,
        meta: &ResourceMeta,
        f: &FieldMeta,
        n: u64,
        fixtures: &HashMap<&'static str, Value>,
    ) -> Result<Value> {
        if let Some(target) = f.belongs_to_meta() {
            return match fixtures.get(target.table()) {
                Some(id) => Ok(id.clone()),
                None if f.is_nullable() => Ok(Value::Null),
                None => Err(sample_error(
                    meta,
                    format!(
                        "field `{}` needs a `{}` that cannot be created first",
                        f.name(),
                        target.name()
                    ),
                )),
            };
        }
        let choices = f.choice_list();
        if !choices.is_empty() {
            let i = if f.is_unique() {
                usize::try_from(n).unwrap_or(0) % choices.len()
            } else {
                0
            };
            return Ok(Value::Text(choices[i].to_owned()));
        }
        let int = i64::try_from(n).unwrap_or(i64::MAX / 2);
        Ok(match f.ty() {
            FieldType::Bool => Value::Bool(true),
            FieldType::I32 => Value::Int(1_000 + int % 1_000_000),
            FieldType::I64 => Value::Int(1_000_000 + int),
            FieldType::F64 => Value::Float(1.5 + int as f64),
            FieldType::String | FieldType::Text => {
                let token = self.seq.token(n);
                let text = if f.is_email() {
                    format!("{}@matrix.example", token.to_lowercase())
                } else if f.ty() == FieldType::Text {
                    format!("{token} permission matrix sample")
                } else {
                    token
                };
                let max = f.max_len().map_or(usize::MAX, |m| m as usize);
                if text.chars().count() <= max {
                    Value::Text(text)
                } else if f.is_unique() {
                    let short = base36(n);
                    if short.len() > max {
                        return Err(sample_error(
                            meta,
                            format!("unique field `{}` is too short for unique values", f.name()),
                        ));
                    }
                    Value::Text(short)
                } else {
                    Value::Text(text.chars().take(max).collect())
                }
            }
            FieldType::Date => Value::Date(
                NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default()
                    + chrono::Days::new(n % 365),
            ),
            FieldType::DateTime => Value::DateTime(
                chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default(),
            ),
            FieldType::Uuid => Value::Uuid(uuid::Uuid::new_v4()),
            FieldType::Json => Value::Json(serde_json::json!({ "matrix": n })),
            other => {
                return Err(sample_error(
                    meta,
                    format!(
                        "field `{}` has a type ({}) it cannot fill",
                        f.name(),
                        other.name()
                    ),
                ));
            }
        })
    }

    /// The writable values of a new record of `meta`, with `conds` (the
    /// policy's fields) applied; returns the sample number too.
    fn values(
        &self,
        meta: &ResourceMeta,
        conds: &[(&'static str, Value)],
        fixtures: &HashMap<&'static str, Value>,
    ) -> Result<(u64, Vec<(&'static FieldMeta, Value)>)> {
        let n = self.seq.next();
        let mut out = Vec::new();
        for f in meta.field_list() {
            if f.is_primary_key() || f.is_managed() {
                continue;
            }
            if let Some((_, v)) = conds.iter().find(|(name, _)| *name == f.name()) {
                out.push((f, v.clone()));
                continue;
            }
            if f.is_hidden() || f.is_read_only() {
                if f.is_nullable() {
                    continue;
                }
                return Err(sample_error(
                    meta,
                    format!(
                        "field `{}` is required but cannot be written (hidden or read-only)",
                        f.name()
                    ),
                ));
            }
            if f.belongs_to_meta()
                .is_some_and(|t| t.table() == meta.table())
            {
                if f.is_nullable() {
                    continue;
                }
                return Err(sample_error(
                    meta,
                    format!("field `{}` requires a record of its own kind", f.name()),
                ));
            }
            out.push((f, self.value_for(meta, f, n, fixtures)?));
        }
        Ok((n, out))
    }

    /// Creates a record of `meta` as the console.
    async fn create_sample(
        &self,
        meta: &'static ResourceMeta,
        conds: &[(&'static str, Value)],
    ) -> Result<Sample> {
        self.create_sample_with(meta, conds, &self.fixtures).await
    }

    /// Creates a record of `meta` as the console, its parents from
    /// `fixtures`.
    async fn create_sample_with(
        &self,
        meta: &'static ResourceMeta,
        conds: &[(&'static str, Value)],
        fixtures: &HashMap<&'static str, Value>,
    ) -> Result<Sample> {
        let (n, values) = self.values(meta, conds, fixtures)?;
        let mut changes = Changes::new();
        for (f, v) in values {
            changes.insert(f.name(), v);
        }
        let rec = match self.console(meta)?.create(changes).await {
            Ok(r) => r,
            Err(
                e @ (Error::Validation(_)
                | Error::Conflict { .. }
                | Error::PermissionDenied { .. }
                | Error::Unsupported(_)),
            ) => return Err(sample_error(meta, e)),
            Err(e) => return Err(e),
        };
        let token = self.seq.token(n);
        // Searched for only where every role may search: a field some
        // roles may not see (personal data) is never searched for them.
        let everyone = platform_core::visibility::Visibility::new(false, false);
        let searchable = meta.search_fields().iter().any(|s| {
            meta.field(s).is_some_and(|f| everyone.sees(f))
                && rec
                    .get(s)
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.contains(&token))
        });
        let audit = if meta.is_audited() {
            self.platform
                .audit()
                .for_record(meta.name(), &rec.id().display(), 1)
                .await?
                .first()
                .map(|e| e.id)
        } else {
            None
        };
        Ok(Sample {
            id: rec.id().clone(),
            values: rec.values().to_vec(),
            conds: conds.to_vec(),
            token: searchable.then_some(token),
            audit,
        })
    }

    /// One parent record per table that a `belongs_to` field refers to,
    /// parents of parents first.
    async fn create_fixtures(
        &self,
        entries: &[(usize, &ResourceEntry)],
    ) -> Result<HashMap<&'static str, Value>> {
        let mut wanted: Vec<&'static ResourceMeta> = Vec::new();
        for (_, e) in entries {
            for f in e.meta().field_list() {
                if let Some(t) = f.belongs_to_meta()
                    && t.table() != e.meta().table()
                    && !wanted.iter().any(|w| w.table() == t.table())
                {
                    wanted.push(t);
                }
            }
        }
        // Parents of parents are wanted too.
        let mut i = 0;
        while i < wanted.len() {
            let m = wanted[i];
            for f in m.field_list() {
                if let Some(t) = f.belongs_to_meta()
                    && t.table() != m.table()
                    && !wanted.iter().any(|w| w.table() == t.table())
                {
                    wanted.push(t);
                }
            }
            i += 1;
        }
        let mut done: HashMap<&'static str, Value> = HashMap::new();
        while done.len() < wanted.len() {
            let before = done.len();
            for m in &wanted {
                if done.contains_key(m.table()) {
                    continue;
                }
                let ready = m.field_list().iter().all(|f| {
                    f.belongs_to_meta().is_none_or(|t| {
                        t.table() == m.table() || done.contains_key(t.table()) || f.is_nullable()
                    })
                });
                if ready {
                    let s = self.create_sample_with(m, &[], &done).await?;
                    done.insert(m.table(), s.id);
                }
            }
            if done.len() == before {
                let left: Vec<&str> = wanted
                    .iter()
                    .filter(|m| !done.contains_key(m.table()))
                    .map(|m| m.name())
                    .collect();
                return Err(Error::Configuration(format!(
                    "the permission matrix cannot order the parents {} (required belongs_to in a cycle)",
                    left.join(", ")
                )));
            }
        }
        Ok(done)
    }

    /// The roles and users requests are made as: one user per role in the
    /// database, one role and user per generated permission, a user with no
    /// role, and anonymous.
    async fn subjects(&self, entries: &[(usize, &ResourceEntry)]) -> Result<Vec<Subject>> {
        let access = self.platform.access();
        let console = Context::console();
        let existing = access.roles().await?;
        let mut roles: Vec<String> = existing
            .iter()
            .filter(|r| !r.starts_with(ROLE_PREFIX))
            .cloned()
            .collect();
        let mut perms: Vec<String> = entries
            .iter()
            .flat_map(|(_, e)| e.permissions().all().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        // The permissions capabilities declared, each alone too, when a
        // capability page or API route is exercised.
        if self.has_capability_targets() {
            perms.extend(
                self.platform
                    .capability_permissions()
                    .iter()
                    .map(|d| d.name.clone()),
            );
        }
        for perm in perms {
            let role = format!("{ROLE_PREFIX}{perm}");
            if roles.contains(&role) {
                continue;
            }
            if !existing.contains(&role) {
                access.create_role(&console, &role).await?;
            }
            access
                .set_role_permissions(&console, &role, std::slice::from_ref(&perm))
                .await?;
            roles.push(role);
        }
        let mut out = Vec::with_capacity(roles.len() + 2);
        for (i, role) in roles.iter().enumerate() {
            out.push(self.user(i, role, Some(role)).await?);
        }
        out.push(self.user(roles.len(), "(no role)", None).await?);
        out.push(Subject {
            label: "(anonymous)".to_owned(),
            token: None,
            auth: None,
            panel_ctx: Context::default(),
            api_ctx: Context::default(),
        });
        Ok(out)
    }

    async fn user(&self, i: usize, label: &str, role: Option<&str>) -> Result<Subject> {
        let access = self.platform.access();
        let console = Context::console();
        let user = access
            .create_user(
                &console,
                NewUser {
                    email: format!("matrix-{}-{i}@matrix.invalid", self.seq.run),
                    name: format!("matrix {label}"),
                    password: platform_core::crypto::random_token(18),
                },
            )
            .await?;
        if let Some(role) = role {
            access.assign_role(&console, user.id, role).await?;
        }
        let token = access
            .create_token(
                &console,
                user.id,
                "permission matrix",
                &[],
                Some(Utc::now() + chrono::Duration::days(1)),
            )
            .await?
            .plain_text;
        let auth = PanelAuth::for_user(&self.platform, user.id, CSRF)
            .await?
            .ok_or_else(|| Error::Configuration("a matrix user is disabled".into()))?;
        let api_actor = access.authenticate_token(&token).await?;
        Ok(Subject {
            label: label.to_owned(),
            token: Some(token),
            panel_ctx: auth.ctx.clone(),
            api_ctx: Context::new(api_actor),
            auth: Some(auth),
        })
    }

    /// Every route of one resource, as one subject.
    async fn resource(
        &self,
        si: usize,
        subject: &Subject,
        ri: usize,
        entry: &ResourceEntry,
    ) -> Result<Vec<MatrixRow>> {
        let meta = entry.meta();
        let mut rows = Vec::new();
        let own_conds = conds_of(scope_of(meta, &subject.panel_ctx));
        let mut own = self.create_sample(meta, &own_conds).await?;
        for (k, step) in Step::ALL.iter().enumerate() {
            if let Some(row) = self.step(subject, entry, &mut own, *step, false).await? {
                rows.push(MatrixRow {
                    order: (ri, k, si),
                    ..row
                });
            }
        }
        let restricted = [Surface::Api, Surface::Panel]
            .iter()
            .any(|s| scope_of(meta, subject.ctx(*s)) != Scope::All);
        if meta.policy_fn().is_some() && subject.auth.is_some() && restricted {
            let mut other = self.create_sample(meta, &[]).await?;
            for (k, step) in Step::ALL.iter().enumerate() {
                if !step.on_other_record() {
                    continue;
                }
                if let Some(row) = self.step(subject, entry, &mut other, *step, true).await? {
                    rows.push(MatrixRow {
                        order: (ri, Step::ALL.len() + k, si),
                        ..row
                    });
                }
            }
        }
        Ok(rows)
    }

    /// Whether any capability page or declared API route is mounted.
    fn has_capability_targets(&self) -> bool {
        !self.capability_targets().is_empty()
    }

    /// The capabilities' panel pages (each page, its item route, each
    /// action with and without an item) and declared API routes, as far as
    /// their router is mounted.
    fn capability_targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        if let Some(panel) = &self.panel {
            for page in self.platform.contributions::<PanelPage>() {
                let slug = page.slug();
                let needs: Vec<&'static str> = page.required_permission().into_iter().collect();
                let href = format!("{panel}/{slug}");
                out.push(Target::page(
                    slug,
                    Method::GET,
                    format!("GET {href}"),
                    href.clone(),
                    &needs,
                ));
                out.push(Target::page(
                    slug,
                    Method::GET,
                    format!("GET {href}/{{item}}"),
                    format!("{href}/matrix"),
                    &needs,
                ));
                for action in page.actions() {
                    let needs = page.action_permissions(action.name()).unwrap_or_default();
                    let at = format!("{href}/actions/{}", action.name());
                    out.push(Target::page(
                        slug,
                        Method::POST,
                        format!("POST {at}"),
                        at.clone(),
                        &needs,
                    ));
                    out.push(Target::page(
                        slug,
                        Method::POST,
                        format!("POST {at}/{{item}}"),
                        format!("{at}/matrix"),
                        &needs,
                    ));
                }
            }
        }
        if let Some(api) = &self.api {
            for routes in self.platform.contributions::<ApiRoutes>() {
                for route in routes.declared() {
                    out.push(Target::api(api, route));
                }
            }
        }
        out
    }

    /// One capability route as one subject.
    async fn capability(
        &self,
        si: usize,
        subject: &Subject,
        first: usize,
        k: usize,
        target: &Target,
    ) -> Result<MatrixRow> {
        let surface = target.surface;
        let ctx = subject.ctx(surface);
        let signed_in = subject.auth.is_some();
        let expected = match target.access {
            RouteAccess::Public => Expected::Allowed,
            RouteAccess::Authenticated if signed_in => Expected::Allowed,
            RouteAccess::Permission(_) if signed_in && target.needs.iter().all(|p| ctx.can(p)) => {
                Expected::Allowed
            }
            _ => Expected::Denied,
        };
        let probe = Probe {
            method: target.method.clone(),
            label: target.label.clone(),
            path: target.path.clone(),
            body: match (surface, &target.method) {
                (Surface::Panel, &Method::POST) => ReqBody::Form(Vec::new()),
                (Surface::Api, m) if *m != Method::GET && *m != Method::DELETE => {
                    ReqBody::Json(serde_json::json!({}))
                }
                _ => ReqBody::Empty,
            },
            needle: None,
            update: None,
        };
        let (status, location, _) = self.send(subject, surface, &probe).await?;
        let mut actual = self.classify(surface, status, location.as_deref());
        let mut note = None;
        // The matrix sends no input: an answer that refuses the input (or
        // finds no item of that id) got past the permission check.
        if actual != Actual::Allowed
            && actual != Actual::Denied
            && (status == StatusCode::NOT_FOUND && target.has_params
                || matches!(
                    status,
                    StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
                ))
        {
            note = Some(format!("reached the handler ({})", status.as_u16()));
            actual = Actual::Allowed;
        }
        Ok(MatrixRow {
            kind: target.kind,
            resource: target.owner,
            surface,
            route: target.label.clone(),
            role: subject.label.clone(),
            requires: target.requires(),
            expected,
            actual,
            status: status.as_u16(),
            note,
            order: (first + k, 0, si),
        })
    }

    /// Whether the sample is there (and not soft-deleted).
    async fn is_live(&self, meta: &ResourceMeta, sample: &Sample) -> Result<bool> {
        Ok(self.state(meta, sample).await? == State::Live)
    }

    /// Where the sample is. The record with its id must also have its
    /// values: SQLite hands the id of a deleted row to the next insert,
    /// which may be another role's record.
    async fn state(&self, meta: &ResourceMeta, sample: &Sample) -> Result<State> {
        let rec = match self
            .console(meta)?
            .find_with_trashed(sample.id.clone())
            .await
        {
            Ok(rec) => rec,
            Err(Error::NotFound { .. }) => return Ok(State::Gone),
            Err(e) => return Err(e),
        };
        if !same_record(meta, rec.values(), &sample.values) {
            return Ok(State::Gone);
        }
        let deleted = meta
            .deleted_at()
            .and_then(|d| rec.get(d.name()))
            .is_some_and(|v| !v.is_null());
        Ok(if deleted { State::Deleted } else { State::Live })
    }

    /// Brings the sample back (restores it, or makes a new one) when a
    /// request deleted it.
    async fn ensure_live(&self, meta: &'static ResourceMeta, sample: &mut Sample) -> Result<()> {
        match self.state(meta, sample).await? {
            State::Live => Ok(()),
            State::Deleted => {
                let rec = self.console(meta)?.restore(sample.id.clone()).await?;
                sample.values = rec.values().to_vec();
                Ok(())
            }
            State::Gone => {
                *sample = self.create_sample(meta, &sample.conds.clone()).await?;
                Ok(())
            }
        }
    }

    /// One request: prepare the sample, send, classify, compare.
    async fn step(
        &self,
        subject: &Subject,
        entry: &ResourceEntry,
        sample: &mut Sample,
        step: Step,
        other: bool,
    ) -> Result<Option<MatrixRow>> {
        let meta = entry.meta();
        if !self.available(step, meta, sample) {
            return Ok(None);
        }
        self.ensure_live(meta, sample).await?;
        if step.effect() == Effect::Restore {
            self.console(meta)?.delete(sample.id.clone()).await?;
        }
        let surface = step.surface();
        let ctx = subject.ctx(surface);
        let Some(probe) = self.probe(step, meta, sample, ctx)? else {
            return Ok(None);
        };
        let rule = if probe.needle.is_none() && step.rule() == Rule::Listed {
            if other {
                // Without the sample's text there is nothing to look for.
                return Ok(None);
            }
            Rule::Permission
        } else {
            step.rule()
        };
        let expected = expect(entry, step.requires(), rule, ctx, &sample.values);
        let (status, location, body) = self.send(subject, surface, &probe).await?;
        let mut actual = self.classify(surface, status, location.as_deref());
        let mut note = None;
        if let Some(needle) = &probe.needle
            && actual == Actual::Allowed
            && !body.contains(needle.as_str())
        {
            actual = Actual::Denied;
            note = Some("answered without the record".to_owned());
        }
        // A denial must not have done anything.
        match step.effect() {
            Effect::Destroy => {
                if actual != Actual::Allowed && !self.is_live(meta, sample).await? {
                    note = Some(format!(
                        "deleted the record although it answered {}",
                        status.as_u16()
                    ));
                    actual = Actual::Allowed;
                }
            }
            Effect::Restore => {
                if actual != Actual::Allowed && self.is_live(meta, sample).await? {
                    note = Some(format!(
                        "restored the record although it answered {}",
                        status.as_u16()
                    ));
                    actual = Actual::Allowed;
                }
            }
            Effect::Update => {
                if let Ok(rec) = self.console(meta)?.find(sample.id.clone()).await {
                    if let Some((field, new)) = &probe.update
                        && actual != Actual::Allowed
                        && rec.get(field) == Some(new)
                    {
                        note = Some(format!(
                            "changed the record although it answered {}",
                            status.as_u16()
                        ));
                        actual = Actual::Allowed;
                    }
                    sample.values = rec.values().to_vec();
                }
            }
            Effect::None => {}
        }
        let mut requires: Vec<&str> = step
            .requires()
            .iter()
            .map(|a| entry.permission(*a))
            .collect();
        if meta.policy_fn().is_some() && rule != Rule::Permission {
            requires.push(if rule == Rule::Everything {
                "policy (all records)"
            } else {
                "policy"
            });
        }
        if rule == Rule::Everything {
            requires.push(VIEW_AUDIT);
        }
        Ok(Some(MatrixRow {
            kind: RowKind::Resource,
            resource: meta.plural(),
            surface,
            route: if other {
                format!("{} [other's record]", probe.label)
            } else {
                probe.label
            },
            role: subject.label.clone(),
            requires: requires.join(" + "),
            expected,
            actual,
            status: status.as_u16(),
            note,
            order: (0, 0, 0),
        }))
    }

    fn available(&self, step: Step, meta: &ResourceMeta, sample: &Sample) -> bool {
        let mounted = match step.surface() {
            Surface::Api => self.api.is_some() && meta.in_api(),
            Surface::Panel => self.panel.is_some() && meta.in_admin(),
        };
        mounted
            && match step {
                Step::ApiRestore
                | Step::PanelRestore
                | Step::PanelBulkRestore
                | Step::PanelBulkForceDelete => meta.is_soft_delete(),
                Step::PanelRestoreVersion => meta.is_audited() && sample.audit.is_some(),
                Step::PanelSearch => sample.token.is_some(),
                _ => true,
            }
    }

    /// The field an update changes, with its new value: a plain field
    /// (no relation, choice, secret, personal data or policy field), text
    /// first.
    fn update_for(
        &self,
        meta: &ResourceMeta,
        ctx: &Context,
    ) -> Result<Option<(&'static FieldMeta, Value)>> {
        let conds = conds_of(scope_of(meta, ctx));
        let eligible = |f: &&'static FieldMeta| {
            !(f.is_primary_key()
                || f.is_managed()
                || f.is_hidden()
                || f.is_read_only()
                || f.is_encrypted()
                || f.is_pii()
                || f.belongs_to_meta().is_some()
                || !f.choice_list().is_empty()
                || conds.iter().any(|(n, _)| *n == f.name()))
        };
        let fields: Vec<&'static FieldMeta> = meta.field_list().iter().filter(eligible).collect();
        let pick = fields
            .iter()
            .find(|f| f.ty().is_string())
            .or_else(|| {
                fields.iter().find(|f| {
                    matches!(
                        f.ty(),
                        FieldType::I32 | FieldType::I64 | FieldType::F64 | FieldType::Date
                    )
                })
            })
            .copied();
        match pick {
            None => Ok(None),
            Some(f) => {
                let n = self.seq.next();
                Ok(Some((f, self.value_for(meta, f, n, &self.fixtures)?)))
            }
        }
    }

    /// The request of `step` on `sample`.
    fn probe(
        &self,
        step: Step,
        meta: &'static ResourceMeta,
        sample: &Sample,
        ctx: &Context,
    ) -> Result<Option<Probe>> {
        let api = self.api.as_deref().unwrap_or_default();
        let adm = self.panel.as_deref().unwrap_or_default();
        let r = meta.plural();
        let id = enc(&sample.id.display());
        let list = format!("{adm}/{r}");
        let record = format!("{adm}/{r}/{id}");
        let api_record = format!("{api}/{r}/{id}");
        let form = |pairs: &[(&str, String)]| {
            ReqBody::Form(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
            )
        };
        let bulk = |action: &str| {
            form(&[
                ("action", action.to_owned()),
                ("scope", "selected".to_owned()),
                ("ids", sample.id.display()),
                ("back", list.clone()),
                ("confirmed", "1".to_owned()),
            ])
        };
        let p = |method: Method, label: String, path: String, body: ReqBody| Probe {
            method,
            label,
            path,
            body,
            needle: None,
            update: None,
        };
        let probe = match step {
            Step::ApiList => match &sample.token {
                Some(t) => Probe {
                    needle: Some(format!(
                        "\"{}\":{}",
                        meta.primary_key().name(),
                        sample.id.to_json()
                    )),
                    ..p(
                        Method::GET,
                        format!("GET {api}/{r}?search="),
                        format!("{api}/{r}?search={t}"),
                        ReqBody::Empty,
                    )
                },
                None => p(
                    Method::GET,
                    format!("GET {api}/{r}"),
                    format!("{api}/{r}"),
                    ReqBody::Empty,
                ),
            },
            Step::ApiShow => p(
                Method::GET,
                format!("GET {api}/{r}/{{id}}"),
                api_record,
                ReqBody::Empty,
            ),
            Step::ApiAudits => p(
                Method::GET,
                format!("GET {api}/audits?resource={r}"),
                format!("{api}/audits?resource={r}"),
                ReqBody::Empty,
            ),
            Step::ApiRecordAudits => p(
                Method::GET,
                format!("GET {api}/audits?resource={r}&record={{id}}"),
                format!("{api}/audits?resource={r}&record={id}"),
                ReqBody::Empty,
            ),
            Step::ApiPatch | Step::ApiPut => {
                let method = if step == Step::ApiPatch {
                    Method::PATCH
                } else {
                    Method::PUT
                };
                let update = self.update_for(meta, ctx)?;
                let mut body = serde_json::Map::new();
                if let Some((f, v)) = &update {
                    body.insert(f.name().to_owned(), v.to_json());
                }
                Probe {
                    update: update.map(|(f, v)| (f.name(), v)),
                    ..p(
                        method.clone(),
                        format!("{method} {api}/{r}/{{id}}"),
                        api_record,
                        ReqBody::Json(serde_json::Value::Object(body)),
                    )
                }
            }
            Step::ApiCreate => {
                let (_, values) =
                    self.values(meta, &conds_of(scope_of(meta, ctx)), &self.fixtures)?;
                // What a client of this role can send: not the fields it
                // may not see (the panel's form leaves them out too).
                let vis = platform_core::visibility::Visibility::of(ctx);
                let body: serde_json::Map<String, serde_json::Value> = values
                    .iter()
                    .filter(|(f, _)| {
                        vis.access(f, true) != platform_core::visibility::FieldAccess::Masked
                    })
                    .map(|(f, v)| (f.name().to_owned(), v.to_json()))
                    .collect();
                p(
                    Method::POST,
                    format!("POST {api}/{r}"),
                    format!("{api}/{r}"),
                    ReqBody::Json(serde_json::Value::Object(body)),
                )
            }
            Step::ApiRestore => p(
                Method::POST,
                format!("POST {api}/{r}/{{id}}/restore"),
                format!("{api_record}/restore"),
                ReqBody::Empty,
            ),
            Step::ApiDelete => p(
                Method::DELETE,
                format!("DELETE {api}/{r}/{{id}}"),
                api_record,
                ReqBody::Empty,
            ),
            Step::ApiForceDelete => p(
                Method::DELETE,
                format!("DELETE {api}/{r}/{{id}}?force=true"),
                format!("{api_record}?force=true"),
                ReqBody::Empty,
            ),
            Step::PanelList => p(
                Method::GET,
                format!("GET {list}"),
                list.clone(),
                ReqBody::Empty,
            ),
            Step::PanelNew => p(
                Method::GET,
                format!("GET {list}/new"),
                format!("{list}/new"),
                ReqBody::Empty,
            ),
            Step::PanelLookup => {
                let q = if meta.search_fields().is_empty() {
                    Some(sample.id.display())
                } else {
                    sample.token.clone()
                };
                Probe {
                    needle: q
                        .as_ref()
                        .map(|_| format!("\"id\":\"{}\"", sample.id.display())),
                    ..p(
                        Method::GET,
                        format!("GET {list}/lookup?q="),
                        format!("{list}/lookup?q={}", enc(q.as_deref().unwrap_or_default())),
                        ReqBody::Empty,
                    )
                }
            }
            Step::PanelSearch => {
                let Some(t) = &sample.token else {
                    return Ok(None);
                };
                Probe {
                    needle: Some(format!("href=\"{record}\"")),
                    ..p(
                        Method::GET,
                        format!("GET {adm}/search?q= ({r})"),
                        format!("{adm}/search?q={t}"),
                        ReqBody::Empty,
                    )
                }
            }
            Step::PanelColumns => {
                let col = meta
                    .field_list()
                    .iter()
                    .find(|f| !f.is_hidden())
                    .map_or("", |f| f.name());
                p(
                    Method::POST,
                    format!("POST {list}/columns"),
                    format!("{list}/columns"),
                    form(&[("cols", col.to_owned()), ("back", list.clone())]),
                )
            }
            Step::PanelShow => p(
                Method::GET,
                format!("GET {list}/{{id}}"),
                record,
                ReqBody::Empty,
            ),
            Step::PanelEdit => p(
                Method::GET,
                format!("GET {list}/{{id}}/edit"),
                format!("{record}/edit"),
                ReqBody::Empty,
            ),
            Step::PanelConfirmDelete => p(
                Method::GET,
                format!("GET {list}/{{id}}/delete"),
                format!("{record}/delete"),
                ReqBody::Empty,
            ),
            Step::PanelConfirmForceDelete => p(
                Method::GET,
                format!("GET {list}/{{id}}/force-delete"),
                format!("{record}/force-delete"),
                ReqBody::Empty,
            ),
            Step::PanelExport => p(
                Method::POST,
                format!("POST {list}/bulk action=export"),
                format!("{list}/bulk"),
                bulk("export"),
            ),
            Step::PanelUpdate => {
                let update = self.update_for(meta, ctx)?;
                let pairs: Vec<(&str, String)> = update
                    .iter()
                    .map(|(f, v)| (f.name(), form_text(f, v)))
                    .collect();
                Probe {
                    update: update.map(|(f, v)| (f.name(), v)),
                    ..p(
                        Method::POST,
                        format!("POST {list}/{{id}}"),
                        record,
                        form(&pairs),
                    )
                }
            }
            Step::PanelRestoreVersion => {
                let Some(audit) = sample.audit else {
                    return Ok(None);
                };
                p(
                    Method::POST,
                    format!("POST {list}/{{id}}/versions/{{audit}}/restore"),
                    format!("{record}/versions/{audit}/restore"),
                    form(&[]),
                )
            }
            Step::PanelCreate => {
                let (_, values) =
                    self.values(meta, &conds_of(scope_of(meta, ctx)), &self.fixtures)?;
                let pairs: Vec<(&str, String)> = values
                    .iter()
                    .map(|(f, v)| (f.name(), form_text(f, v)))
                    .collect();
                p(
                    Method::POST,
                    format!("POST {list}"),
                    list.clone(),
                    form(&pairs),
                )
            }
            Step::PanelRestore => p(
                Method::POST,
                format!("POST {list}/{{id}}/restore"),
                format!("{record}/restore"),
                form(&[]),
            ),
            Step::PanelBulkRestore => p(
                Method::POST,
                format!("POST {list}/bulk action=restore"),
                format!("{list}/bulk"),
                bulk("restore"),
            ),
            Step::PanelDelete => p(
                Method::POST,
                format!("POST {list}/{{id}}/delete"),
                format!("{record}/delete"),
                form(&[]),
            ),
            Step::PanelForceDelete => p(
                Method::POST,
                format!("POST {list}/{{id}}/force-delete"),
                format!("{record}/force-delete"),
                form(&[]),
            ),
            Step::PanelBulkDelete => p(
                Method::POST,
                format!("POST {list}/bulk action=delete"),
                format!("{list}/bulk"),
                bulk("delete"),
            ),
            Step::PanelBulkForceDelete => p(
                Method::POST,
                format!("POST {list}/bulk action=force_delete"),
                format!("{list}/bulk"),
                bulk("force_delete"),
            ),
        };
        Ok(Some(probe))
    }

    /// Sends `probe` as `subject`; the status, `Location` and (for
    /// listings) the body.
    async fn send(
        &self,
        subject: &Subject,
        surface: Surface,
        probe: &Probe,
    ) -> Result<(StatusCode, Option<String>, String)> {
        let mut b = Request::builder()
            .method(probe.method.clone())
            .uri(&probe.path)
            .header(header::USER_AGENT, "platform-permission-matrix");
        let body = match &probe.body {
            ReqBody::Empty => Body::empty(),
            ReqBody::Json(j) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from(j.to_string())
            }
            ReqBody::Form(pairs) => {
                b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                let mut text = format!("_csrf={}", enc(CSRF));
                for (k, v) in pairs {
                    text.push('&');
                    text.push_str(&enc(k));
                    text.push('=');
                    text.push_str(&enc(v));
                }
                Body::from(text)
            }
        };
        if surface == Surface::Api
            && let Some(t) = &subject.token
        {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let mut req = b.body(body).map_err(|e| {
            Error::Configuration(format!(
                "the permission matrix built an invalid request {}: {e}",
                probe.path
            ))
        })?;
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 0))));
        if surface == Surface::Panel
            && let Some(auth) = &subject.auth
        {
            req.extensions_mut().insert(auth.clone());
        }
        let res = match self.router.clone().oneshot(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        };
        let status = res.status();
        let location = res
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = if probe.needle.is_some() && status.is_success() {
            let bytes = axum::body::to_bytes(res.into_body(), BODY_LIMIT)
                .await
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            String::new()
        };
        Ok((status, location, body))
    }

    fn classify(&self, surface: Surface, status: StatusCode, location: Option<&str>) -> Actual {
        if status.is_success() {
            return Actual::Allowed;
        }
        if status.is_redirection() {
            let base = self.panel.as_deref().unwrap_or_default();
            let to_sign_in = surface == Surface::Panel
                && location.is_some_and(|l| {
                    let path = l.split('?').next().unwrap_or_default();
                    [
                        "/login",
                        "/two-factor/setup",
                        "/two-factor-challenge",
                        "/confirm-password",
                    ]
                    .iter()
                    .any(|p| path == format!("{base}{p}"))
                });
            return if to_sign_in {
                Actual::Denied
            } else {
                Actual::Allowed
            };
        }
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Actual::Denied,
            StatusCode::NOT_FOUND => Actual::NotFound,
            _ => Actual::Failed,
        }
    }
}

/// What the declared permissions say about `requires` under `rule`, for
/// `ctx` on a record with `values`.
fn expect(
    entry: &ResourceEntry,
    requires: &[Ability],
    rule: Rule,
    ctx: &Context,
    values: &[Value],
) -> Expected {
    if !requires.iter().all(|a| ctx.can(entry.permission(*a))) {
        return Expected::Denied;
    }
    let meta = entry.meta();
    let scope = scope_of(meta, ctx);
    match rule {
        Rule::Permission => Expected::Allowed,
        Rule::Record if admits(meta, &scope, values) => Expected::Allowed,
        Rule::Record => Expected::Hidden,
        Rule::Listed if admits(meta, &scope, values) => Expected::Allowed,
        Rule::Create if scope != Scope::None => Expected::Allowed,
        Rule::Everything if scope == Scope::All && ctx.can(VIEW_AUDIT) => Expected::Allowed,
        Rule::Listed | Rule::Create | Rule::Everything => Expected::Denied,
    }
}

/// A capability's route the matrix requests.
#[derive(Debug, Clone)]
struct Target {
    kind: RowKind,
    /// The page's slug, or the API path's first segment.
    owner: &'static str,
    surface: Surface,
    method: Method,
    label: String,
    path: String,
    /// Permission routes: every permission in `needs`.
    access: RouteAccess,
    needs: Vec<&'static str>,
    /// Whether the path had `{param}` segments (filled with `0`).
    has_params: bool,
}

impl Target {
    fn page(
        slug: &'static str,
        method: Method,
        label: String,
        path: String,
        needs: &[&'static str],
    ) -> Self {
        // Only the routes with an `{item}` may answer 404 for it: a page or
        // an action that is not found at all is a mismatch.
        let has_params = path.ends_with("/matrix");
        Self {
            kind: RowKind::Page,
            owner: slug,
            surface: Surface::Panel,
            method,
            label,
            path,
            // A page without a permission is for every signed-in user.
            access: needs
                .first()
                .map_or(RouteAccess::Authenticated, |p| RouteAccess::Permission(p)),
            needs: needs.to_vec(),
            has_params,
        }
    }

    fn api(base: &str, route: &ApiRoute) -> Self {
        let template = route.path();
        let owner = template
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("api");
        let mut has_params = false;
        let path: Vec<String> = template
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') && seg.ends_with('}') {
                    has_params = true;
                    "0".to_owned()
                } else {
                    seg.to_owned()
                }
            })
            .collect();
        let needs = match route.access() {
            RouteAccess::Permission(p) => vec![p],
            _ => Vec::new(),
        };
        Self {
            kind: RowKind::ApiRoute,
            owner,
            surface: Surface::Api,
            method: route.method().clone(),
            label: format!("{} {base}{template}", route.method()),
            path: format!("{base}{}", path.join("/")),
            access: route.access(),
            needs,
            has_params,
        }
    }

    fn requires(&self) -> String {
        match self.access {
            RouteAccess::Permission(_) => self.needs.join(" + "),
            other => other.to_string(),
        }
    }
}

/// A form value as the panel's inputs send it.
fn form_text(f: &FieldMeta, v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) if f.is_money() => {
            let sign = if *n < 0 { "-" } else { "" };
            let a = n.unsigned_abs();
            format!("{sign}{}.{:02}", a / 100, a % 100)
        }
        Value::Json(j) => j.to_string(),
        other => other.display(),
    }
}

/// Percent-encodes a query or form component.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug)]
enum ReqBody {
    Empty,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

/// One request to send.
#[derive(Debug)]
struct Probe {
    method: Method,
    /// The route as a template.
    label: String,
    path: String,
    body: ReqBody,
    /// For listings: the text that shows the sample is listed.
    needle: Option<String>,
    /// For updates: the field written and its new value.
    update: Option<(&'static str, Value)>,
}

/// How the policy enters the expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// The permissions alone.
    Permission,
    /// The record must be in the policy's scope (else 404).
    Record,
    /// A listing: the record is listed when in scope.
    Listed,
    /// A create: the scope must not be empty.
    Create,
    /// The scope must be every record.
    Everything,
}

/// Where a sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    /// Soft-deleted.
    Deleted,
    /// Deleted for good (or its id now belongs to another record).
    Gone,
}

/// Whether two rows are the same record: equal on the fields that round
/// trip exactly (text, integers, dates, UUIDs, booleans), managed
/// timestamps left out.
fn same_record(meta: &ResourceMeta, a: &[Value], b: &[Value]) -> bool {
    meta.field_list()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            !f.is_managed()
                && matches!(
                    f.ty(),
                    FieldType::String
                        | FieldType::Text
                        | FieldType::I32
                        | FieldType::I64
                        | FieldType::Uuid
                        | FieldType::Date
                        | FieldType::Bool
                )
        })
        .all(|(i, _)| a.get(i) == b.get(i))
}

/// What a request does to the sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    None,
    /// Changes its values (read back afterwards).
    Update,
    /// Restores it (it is soft-deleted first).
    Restore,
    /// Deletes it.
    Destroy,
}

/// Every route, in the order they run: reads, updates, creates, restores,
/// deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    ApiList,
    ApiShow,
    ApiAudits,
    ApiRecordAudits,
    PanelList,
    PanelNew,
    PanelLookup,
    PanelSearch,
    PanelColumns,
    PanelShow,
    PanelEdit,
    PanelConfirmDelete,
    PanelConfirmForceDelete,
    PanelExport,
    ApiPatch,
    ApiPut,
    PanelUpdate,
    PanelRestoreVersion,
    ApiCreate,
    PanelCreate,
    ApiRestore,
    PanelRestore,
    PanelBulkRestore,
    ApiDelete,
    ApiForceDelete,
    PanelDelete,
    PanelForceDelete,
    PanelBulkDelete,
    PanelBulkForceDelete,
}

impl Step {
    const ALL: [Step; 29] = [
        Self::ApiList,
        Self::ApiShow,
        Self::ApiAudits,
        Self::ApiRecordAudits,
        Self::PanelList,
        Self::PanelNew,
        Self::PanelLookup,
        Self::PanelSearch,
        Self::PanelColumns,
        Self::PanelShow,
        Self::PanelEdit,
        Self::PanelConfirmDelete,
        Self::PanelConfirmForceDelete,
        Self::PanelExport,
        Self::ApiPatch,
        Self::ApiPut,
        Self::PanelUpdate,
        Self::PanelRestoreVersion,
        Self::ApiCreate,
        Self::PanelCreate,
        Self::ApiRestore,
        Self::PanelRestore,
        Self::PanelBulkRestore,
        Self::ApiDelete,
        Self::ApiForceDelete,
        Self::PanelDelete,
        Self::PanelForceDelete,
        Self::PanelBulkDelete,
        Self::PanelBulkForceDelete,
    ];

    fn surface(self) -> Surface {
        match self {
            Self::ApiList
            | Self::ApiShow
            | Self::ApiAudits
            | Self::ApiRecordAudits
            | Self::ApiPatch
            | Self::ApiPut
            | Self::ApiCreate
            | Self::ApiRestore
            | Self::ApiDelete
            | Self::ApiForceDelete => Surface::Api,
            _ => Surface::Panel,
        }
    }

    /// The abilities the route requires, all of them.
    fn requires(self) -> &'static [Ability] {
        use Ability::{
            Create, Delete, DeleteAny, Export, ForceDelete, Restore, Update, View, ViewAny,
        };
        match self {
            Self::ApiList
            | Self::ApiAudits
            | Self::PanelList
            | Self::PanelLookup
            | Self::PanelSearch
            | Self::PanelColumns => &[ViewAny],
            Self::ApiShow | Self::ApiRecordAudits | Self::PanelShow => &[View],
            Self::ApiPatch | Self::ApiPut | Self::PanelUpdate | Self::PanelRestoreVersion => {
                &[Update]
            }
            Self::PanelEdit => &[Update, View],
            Self::ApiCreate | Self::PanelNew | Self::PanelCreate => &[Create],
            Self::ApiRestore | Self::PanelRestore => &[Restore],
            Self::ApiDelete | Self::PanelDelete => &[Delete],
            Self::PanelConfirmDelete => &[Delete, View],
            Self::ApiForceDelete | Self::PanelForceDelete => &[ForceDelete],
            Self::PanelConfirmForceDelete => &[ForceDelete, View],
            Self::PanelExport => &[ViewAny, Export],
            Self::PanelBulkRestore => &[ViewAny, Restore],
            Self::PanelBulkDelete => &[ViewAny, DeleteAny],
            Self::PanelBulkForceDelete => &[ViewAny, ForceDelete],
        }
    }

    fn rule(self) -> Rule {
        match self {
            Self::ApiList | Self::PanelLookup | Self::PanelSearch => Rule::Listed,
            Self::ApiAudits => Rule::Everything,
            Self::ApiCreate | Self::PanelCreate => Rule::Create,
            Self::PanelList
            | Self::PanelNew
            | Self::PanelColumns
            | Self::PanelExport
            | Self::PanelBulkRestore
            | Self::PanelBulkDelete
            | Self::PanelBulkForceDelete => Rule::Permission,
            _ => Rule::Record,
        }
    }

    fn effect(self) -> Effect {
        match self {
            Self::ApiPatch | Self::ApiPut | Self::PanelUpdate | Self::PanelRestoreVersion => {
                Effect::Update
            }
            Self::ApiRestore | Self::PanelRestore | Self::PanelBulkRestore => Effect::Restore,
            Self::ApiDelete
            | Self::ApiForceDelete
            | Self::PanelDelete
            | Self::PanelForceDelete
            | Self::PanelBulkDelete
            | Self::PanelBulkForceDelete => Effect::Destroy,
            _ => Effect::None,
        }
    }

    /// Whether the route is also requested on a record outside the role's
    /// policy scope.
    fn on_other_record(self) -> bool {
        matches!(self.rule(), Rule::Record | Rule::Listed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_contain_each_other() {
        let g = Gen::new();
        let (a, b) = (g.token(1), g.token(12));
        assert!(!b.contains(&a) && !a.contains(&b));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn encodings() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 + 35), "10z");
        assert_eq!(enc("a b/é"), "a%20b%2F%C3%A9");
        let money = FieldMeta::of::<i64>("amount").money();
        assert_eq!(form_text(&money, &Value::Int(-1205)), "-12.05");
        assert_eq!(form_text(&money, &Value::Int(7)), "0.07");
    }

    #[test]
    fn outcomes_match_expectations() {
        let row = |expected, actual| MatrixRow {
            kind: RowKind::Resource,
            resource: "invoices",
            surface: Surface::Api,
            route: "GET /api/invoices".into(),
            role: "x".into(),
            requires: String::new(),
            expected,
            actual,
            status: 200,
            note: None,
            order: (0, 0, 0),
        };
        assert!(row(Expected::Allowed, Actual::Allowed).is_ok());
        assert!(row(Expected::Denied, Actual::Denied).is_ok());
        assert!(row(Expected::Hidden, Actual::NotFound).is_ok());
        assert!(!row(Expected::Denied, Actual::Allowed).is_ok());
        assert!(!row(Expected::Allowed, Actual::NotFound).is_ok());
        assert!(!row(Expected::Hidden, Actual::Allowed).is_ok());
        assert!(!row(Expected::Allowed, Actual::Failed).is_ok());
    }
}
