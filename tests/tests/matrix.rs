//! The permission matrix (`platform_admin::matrix`): every API and panel
//! route of every resource of the test domain, requested as every role and
//! anonymously, answers as the declared permissions say, on every
//! configured database; the matrix does fail when a layer or a host route
//! lets someone through that it should not; and `permissions:matrix` runs
//! it from the command line on a scratch database.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use platform_admin::matrix::{
    Actual, Expected, PermissionMatrix, ROLE_PREFIX, Surface, assert_permission_matrix,
};
use platform_admin::panel::PanelAuth;
use platform_core::Platform;
use platform_core::context::{Actor, Context, Grants, Principal};
use platform_core::permission::{Ability, permission_name};
use platform_core::resource::Registry;
use platform_tests::domain::{Task, registry};
use platform_tests::{TestDb, all_backends, test_key};

/// The roles of a fresh test database: `super_admin`, one per generated
/// permission, no role and anonymous.
fn expected_roles(registry: &Registry) -> usize {
    1 + registry.permission_names().len() + 2
}

#[tokio::test]
async fn every_route_answers_as_the_declared_permissions_say_on_every_backend() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let platform = db.platform(registry()).await;
        let report = PermissionMatrix::new(&platform)
            .run()
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        println!("{backend}:\n{report}");
        assert!(report.is_ok(), "{backend}:\n{}", report.mismatch_table());
        let roles = expected_roles(&registry());
        assert_eq!(report.roles.len(), roles, "{:?}", report.roles);
        assert_eq!(report.resources(), 4);
        assert_eq!(report.routes(), 120, "{backend}");
        // Every resource is exercised on both routers, by every role.
        for resource in ["customers", "invoices", "tasks", "notes"] {
            for surface in [Surface::Api, Surface::Panel] {
                let seen: HashSet<&str> = report
                    .rows
                    .iter()
                    .filter(|r| r.resource == resource && r.surface == surface)
                    .map(|r| r.role.as_str())
                    .collect();
                assert_eq!(seen.len(), roles, "{backend}: {resource} on {surface}");
            }
        }
        // Each generated permission opens exactly its own routes: the role
        // holding only `delete_invoice` deletes invoices, nothing else.
        let only_delete = format!(
            "{ROLE_PREFIX}{}",
            permission_name(Ability::Delete, "invoice")
        );
        let allowed: Vec<&str> = report
            .rows
            .iter()
            .filter(|r| r.role == only_delete && r.actual == Actual::Allowed)
            .map(|r| r.route.as_str())
            .collect();
        assert_eq!(
            allowed,
            vec![
                "DELETE /api/invoices/{id}",
                "POST /admin/invoices/{id}/delete"
            ],
            "{backend}"
        );
        // The owner policy of notes is exercised: another user's note is a
        // 404 for whoever may view notes, on both routers, and listings
        // leave it out.
        let only_view_note = format!("{ROLE_PREFIX}{}", permission_name(Ability::View, "note"));
        let hidden: Vec<&str> = report
            .rows
            .iter()
            .filter(|r| r.role == only_view_note && r.expected == Expected::Hidden)
            .map(|r| r.route.as_str())
            .collect();
        assert_eq!(
            hidden,
            vec![
                "GET /api/notes/{id} [other's record]",
                "GET /api/audits?resource=notes&record={id} [other's record]",
                "GET /admin/notes/{id} [other's record]"
            ],
            "{backend}"
        );
        assert!(report.rows.iter().any(|r| r.resource == "notes"
            && r.route == "GET /admin/search?q= (notes) [other's record]"
            && r.role == format!("{ROLE_PREFIX}view_any_note")
            && r.expected == Expected::Denied));
        // Anonymous visitors get nothing.
        assert!(
            report
                .rows
                .iter()
                .filter(|r| r.role == "(anonymous)")
                .all(|r| r.actual == Actual::Denied)
        );
        platform.shutdown().await;
    }
}

/// The bug under test: a host's compatibility shim answers `GET
/// /api/invoices/{id}` itself and reads the invoice through the console's
/// context, so the caller's permissions are never checked.
async fn legacy_invoice_shim(
    State(platform): State<Platform>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET
        && let Some(id) = path.strip_prefix("/api/invoices/")
        && !id.contains('/')
    {
        let Some(records) = platform.records("invoices", &Context::console()) else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        if let Ok(id) = records.parse_id(id)
            && let Ok(rec) = records.find(id).await
        {
            let body = serde_json::json!({ "data": rec.to_json(records.context()) });
            return axum::Json(body).into_response();
        }
        return StatusCode::NOT_FOUND.into_response();
    }
    next.run(req).await
}

#[tokio::test]
async fn an_api_route_that_skips_the_callers_permissions_is_reported() {
    let db = TestDb::sqlite();
    let platform = db.platform(registry()).await;
    let app = Router::new()
        .nest("/api", platform_admin::api_router())
        .nest("/admin", platform_admin::panel_router())
        .layer(axum::middleware::from_fn_with_state(
            platform.clone(),
            legacy_invoice_shim,
        ));
    let report = PermissionMatrix::new(&platform)
        .router(app)
        .run()
        .await
        .unwrap();
    let mismatches = report.mismatches();
    println!("{}", report.mismatch_table());
    // Everyone but `super_admin` and the `view_invoice` role reads invoices
    // they may not see; nothing else is wrong.
    assert_eq!(
        mismatches.len(),
        expected_roles(&registry()) - 2,
        "{}",
        report.mismatch_table()
    );
    for m in &mismatches {
        assert_eq!(m.route, "GET /api/invoices/{id}");
        assert_eq!(
            (m.expected, m.actual, m.status),
            (Expected::Denied, Actual::Allowed, 200)
        );
    }
    let roles: HashSet<&str> = mismatches.iter().map(|m| m.role.as_str()).collect();
    for r in ["(anonymous)", "(no role)", "matrix_only_view_any_invoice"] {
        assert!(roles.contains(r), "{r}");
    }
    assert!(!roles.contains("super_admin"));
    assert!(!roles.contains("matrix_only_view_invoice"));
    let table = report.to_string();
    assert!(
        table.contains("MISMATCHES") && table.contains("MISMATCH (41 of 43)"),
        "{table}"
    );
    platform.shutdown().await;
}

/// The bug under test: "support staff may look at everything", a host
/// layer in front of the panel that gives users with the `support` role a
/// super admin's grants on every `GET`.
async fn support_sees_everything(mut req: Request, next: Next) -> Response {
    if req.method() == Method::GET
        && let Some(auth) = req.extensions().get::<PanelAuth>().cloned()
        && let Actor::User(p) = auth.ctx.actor()
        && p.grants.roles().iter().any(|r| r == "support")
    {
        let elevated = Principal {
            grants: Arc::new(Grants::all()),
            ..(**p).clone()
        };
        let ctx = Context::new(Actor::User(Arc::new(elevated)));
        req.extensions_mut().insert(auth.with_context(ctx));
    }
    next.run(req).await
}

async fn support_role(platform: &Platform) {
    let console = Context::console();
    let access = platform.access();
    access.create_role(&console, "support").await.unwrap();
    access
        .set_role_permissions(
            &console,
            "support",
            &["view_any_task".to_owned(), "view_task".to_owned()],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_panel_layer_that_lets_a_role_through_is_reported() {
    let db = TestDb::sqlite();
    let platform = db.platform(registry()).await;
    // A role of the host's: the matrix finds it in the database.
    support_role(&platform).await;
    let app = Router::new()
        .nest("/api", platform_admin::api_router())
        .nest(
            "/admin",
            platform_admin::panel_router()
                .layer(axum::middleware::from_fn(support_sees_everything)),
        );
    let report = PermissionMatrix::new(&platform)
        .router(app)
        .run()
        .await
        .unwrap();
    println!("{}", report.mismatch_table());
    assert!(report.roles.iter().any(|r| r == "support"));
    let mismatches = report.mismatches();
    assert!(!mismatches.is_empty());
    for m in &mismatches {
        assert_eq!(m.role, "support", "{}", report.mismatch_table());
        assert_eq!(m.surface, Surface::Panel);
        assert!(m.route.starts_with("GET "), "{}", m.route);
        assert_eq!(m.actual, Actual::Allowed);
    }
    let routes: HashSet<(&str, &str)> = mismatches
        .iter()
        .map(|m| (m.resource, m.route.as_str()))
        .collect();
    for expected in [
        ("invoices", "GET /admin/invoices"),
        ("invoices", "GET /admin/invoices/{id}/edit"),
        ("customers", "GET /admin/search?q= (customers)"),
        ("notes", "GET /admin/notes/{id} [other's record]"),
        ("tasks", "GET /admin/tasks/{id}/delete"),
    ] {
        assert!(routes.contains(&expected), "{expected:?} not reported");
    }
    // What the role does hold is not a mismatch.
    assert!(
        report
            .rows
            .iter()
            .any(|r| r.role == "support" && r.route == "GET /admin/tasks/{id}" && r.is_ok())
    );
    platform.shutdown().await;
}

fn tasks_only() -> Registry {
    Registry::builder().register::<Task>().build().unwrap()
}

#[tokio::test]
async fn the_assertion_passes_and_panics_with_the_table_of_mismatches() {
    let db = TestDb::sqlite();
    let platform = db.platform(tasks_only()).await;
    assert_permission_matrix(&platform).await;
    // A second run on the same database reuses the matrix's roles.
    support_role(&platform).await;
    let app = Router::new()
        .nest("/api", platform_admin::api_router())
        .nest(
            "/admin",
            platform_admin::panel_router()
                .layer(axum::middleware::from_fn(support_sees_everything)),
        );
    let failed =
        std::panic::AssertUnwindSafe(PermissionMatrix::new(&platform).router(app).assert())
            .catch_unwind()
            .await
            .expect_err("the buggy layer must fail the assertion");
    let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("MISMATCHES"), "{message}");
    assert!(
        message.contains("GET /admin/tasks/{id}/edit") && message.contains("support"),
        "{message}"
    );
    let roles = platform.access().roles().await.unwrap();
    assert_eq!(
        roles.iter().filter(|r| r.starts_with(ROLE_PREFIX)).count(),
        10,
        "{roles:?}"
    );
    platform.shutdown().await;
}

const EXE: &str = env!("CARGO_BIN_EXE_cli_app");

#[test]
fn the_command_passes_for_the_test_app_without_touching_its_database() {
    let db = TestDb::sqlite();
    let o = Command::new(EXE)
        .arg("permissions:matrix")
        .env("PLATFORM_DATABASE_URL", &db.url)
        .env("PLATFORM_APP_KEY", test_key().to_config_string())
        .env("RUST_BACKTRACE", "0")
        .env_remove("PLATFORM_ENV")
        .env_remove("PLATFORM_ADMIN_ALLOW")
        .output()
        .expect("run cli_app");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("4 resources, 120 routes, 43 roles") && stdout.contains(" 0 mismatches"),
        "{stdout}"
    );
    assert!(stdout.contains("GET /admin/invoices/{id}/edit"), "{stdout}");
    // The application's database was never opened.
    let file = db
        .url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap();
    assert!(!std::path::Path::new(file).exists(), "{file} was created");
}

/// The command exits non-zero on a mismatch: a host route hook (what
/// `serve` would serve) lets holders of `view_any_task` see everything.
#[tokio::test]
async fn the_command_fails_on_a_mismatch() {
    async fn task_viewers_see_everything(mut req: Request, next: Next) -> Response {
        if req.method() == Method::GET
            && let Some(auth) = req.extensions().get::<PanelAuth>().cloned()
            && let Actor::User(p) = auth.ctx.actor()
            && p.grants.has("view_any_task")
            && !p.grants.is_super_admin()
        {
            let elevated = Principal {
                grants: Arc::new(Grants::all()),
                ..(**p).clone()
            };
            let ctx = Context::new(Actor::User(Arc::new(elevated)));
            req.extensions_mut().insert(auth.with_context(ctx));
        }
        next.run(req).await
    }
    let builder = Platform::builder()
        .registry(tasks_only())
        .migrations(platform_core::embed_migrations!("migrations"));
    let err = platform_admin::cli::Cli::new(builder)
        .routes(|r| r.layer(axum::middleware::from_fn(task_viewers_see_everything)))
        .run_from(["cli_app", "permissions:matrix"])
        .await
        .expect_err("a mismatch must fail the command");
    assert!(
        err.to_string()
            .contains("requests differ from the declared permissions"),
        "{err}"
    );
}

// ---- capabilities: panel pages, their actions, declared API routes --------

/// A host capability whose API declares a route as needing `view_jobs` but
/// whose handler forgets to check it (the matrix must catch that), next to
/// a public route and one for any signed-in caller, and a page without a
/// permission of its own whose action needs `retry_jobs`.
struct Leaky;

impl platform_core::capability::Capability for Leaky {
    fn name(&self) -> &'static str {
        "leaky"
    }
    fn setup(&self, setup: &mut platform_core::capability::Setup) {
        use axum::routing::get;
        use platform_admin::capability::{ApiRoutes, SetupExt};
        use platform_admin::panel::page::{
            ActionFuture, PageAction, PageContext, PageFuture, PanelPage,
        };

        async fn unguarded() -> &'static str {
            "figures"
        }
        async fn version() -> &'static str {
            "1"
        }
        async fn whoami(api: platform_admin::api::ApiContext) -> Response {
            match api.context().actor().user_id() {
                Some(id) => id.to_string().into_response(),
                None => StatusCode::UNAUTHORIZED.into_response(),
            }
        }
        fn data(_cx: &PageContext) -> PageFuture<'_> {
            Box::pin(async { Ok(serde_json::json!({})) })
        }
        fn poke(_cx: &PageContext) -> ActionFuture<'_> {
            Box::pin(async { Ok("Poked.".to_owned()) })
        }
        setup
            .api(
                ApiRoutes::new(
                    Router::new()
                        .route("/leaky/figures", get(unguarded))
                        .route("/leaky/version", get(version))
                        .route("/leaky/whoami", get(whoami)),
                )
                .get("/leaky/figures")
                .requires("view_jobs")
                .get("/leaky/version")
                .public()
                .get("/leaky/whoami"),
            )
            .panel_page(
                PanelPage::new("leaky", "Leaky", "<p>leaky</p>", data)
                    .action(PageAction::new("poke", poke).permission("retry_jobs")),
            );
    }
}

fn jobs_platform(db: &TestDb) -> platform_core::platform::PlatformBuilder {
    let mut jobs = platform_jobs::Jobs::new().ignore_env();
    if db.backend == platform_core::db::Backend::MySql {
        // MariaDB has no queue back end: a separate SQLite file.
        let file = std::env::temp_dir().join(format!(
            "matrix-jobs-{}-{}.db",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        jobs = jobs.queue_url(format!("sqlite://{}?mode=rwc", file.display()));
    }
    Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(tasks_only())
        .background_tasks(false)
        .max_connections(8)
        .with(jobs)
}

/// The roles allowed on `route` of `resource`.
fn allowed_on<'a>(report: &'a platform_admin::matrix::MatrixReport, route: &str) -> Vec<&'a str> {
    report
        .rows
        .iter()
        .filter(|r| r.route == route && r.actual == Actual::Allowed)
        .map(|r| r.role.as_str())
        .collect()
}

#[tokio::test]
async fn capability_pages_actions_and_api_routes_are_in_the_matrix_on_every_backend() {
    use platform_admin::matrix::RowKind;
    for db in all_backends().await {
        let backend = db.backend.name();
        db.create_tables(&tasks_only()).await;
        let platform = jobs_platform(&db).build().await.unwrap();
        let report = PermissionMatrix::new(&platform)
            .run()
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        println!("{backend}:\n{report}");
        assert!(report.is_ok(), "{backend}:\n{}", report.mismatch_table());
        // The jobs page, its item route, three actions with and without an
        // item, GET /api/jobs/stats: derived from the declarations.
        assert_eq!(report.capability_routes(), 9, "{backend}");
        let page_routes: HashSet<&str> = report
            .rows
            .iter()
            .filter(|r| r.kind == RowKind::Page)
            .map(|r| r.route.as_str())
            .collect();
        for route in [
            "GET /admin/jobs",
            "GET /admin/jobs/{item}",
            "POST /admin/jobs/actions/retry/{item}",
            "POST /admin/jobs/actions/retry-all",
            "POST /admin/jobs/actions/forget/{item}",
        ] {
            assert!(
                page_routes.contains(route),
                "{backend}: {route} in {page_routes:?}"
            );
        }
        // Each capability permission is tested alone: `view_jobs` opens the
        // page and the JSON, not the actions; `retry_jobs` alone opens
        // nothing (the actions need the page's permission too).
        let view = format!("{ROLE_PREFIX}view_jobs");
        let retry = format!("{ROLE_PREFIX}retry_jobs");
        for route in ["GET /admin/jobs", "GET /api/jobs/stats"] {
            let allowed = allowed_on(&report, route);
            assert!(
                allowed.contains(&view.as_str()),
                "{backend}: {route} {allowed:?}"
            );
            assert!(
                allowed.contains(&"super_admin"),
                "{backend}: {route} {allowed:?}"
            );
            assert!(
                !allowed.contains(&retry.as_str()),
                "{backend}: {route} {allowed:?}"
            );
            assert!(
                !allowed.contains(&"(no role)"),
                "{backend}: {route} {allowed:?}"
            );
            assert!(
                !allowed.contains(&"(anonymous)"),
                "{backend}: {route} {allowed:?}"
            );
        }
        assert_eq!(
            allowed_on(&report, "POST /admin/jobs/actions/retry-all"),
            vec!["super_admin"],
            "{backend}"
        );
        let stats = report
            .rows
            .iter()
            .find(|r| r.route == "GET /api/jobs/stats")
            .unwrap();
        assert_eq!(stats.requires, "view_jobs");
        assert_eq!(stats.kind, RowKind::ApiRoute);
        platform.shutdown().await;
    }
}

#[tokio::test]
async fn an_unguarded_capability_route_is_reported_and_public_or_signed_in_routes_are_derived() {
    let db = TestDb::sqlite();
    db.create_tables(&tasks_only()).await;
    let platform = jobs_platform(&db).with(Leaky).build().await.unwrap();
    let report = PermissionMatrix::new(&platform).run().await.unwrap();
    let bad: HashSet<&str> = report
        .mismatches()
        .iter()
        .map(|r| r.route.as_str())
        .collect();
    assert_eq!(
        bad,
        HashSet::from(["GET /api/leaky/figures"]),
        "{}",
        report.mismatch_table()
    );
    // Every signed-in role without view_jobs got the figures: mismatches.
    let leaked: Vec<&str> = report
        .mismatches()
        .iter()
        .map(|r| r.role.as_str())
        .collect();
    assert!(leaked.contains(&"(no role)"), "{leaked:?}");
    assert!(!leaked.contains(&"super_admin"), "{leaked:?}");
    // A public route is allowed for anonymous callers; a route for any
    // signed-in caller for every role but anonymous.
    assert!(allowed_on(&report, "GET /api/leaky/version").contains(&"(anonymous)"));
    let whoami = allowed_on(&report, "GET /api/leaky/whoami");
    assert_eq!(whoami.len(), report.roles.len() - 1, "{whoami:?}");
    assert!(!whoami.contains(&"(anonymous)"));
    // A page without a permission: every signed-in user; its action needs
    // retry_jobs alone.
    let page = allowed_on(&report, "GET /admin/leaky");
    assert_eq!(page.len(), report.roles.len() - 1, "{page:?}");
    let mut poke = allowed_on(&report, "POST /admin/leaky/actions/poke");
    poke.sort_unstable();
    let retry = format!("{ROLE_PREFIX}retry_jobs");
    assert_eq!(poke, vec![retry.as_str(), "super_admin"], "{poke:?}");
    platform.shutdown().await;
}
