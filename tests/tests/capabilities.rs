//! The capability seam on every configured database: one capability
//! contributes tables, a permission, a service, background tasks (stopped
//! gracefully), a health check, a panel page with an action, API routes,
//! root routes and a command; a platform without it has none of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use platform_admin::PanelConfig;
use platform_admin::capability::{Command, SetupExt};
use platform_admin::panel::page::{ActionFuture, PageAction, PageContext, PageFuture, PanelPage};
use platform_core::Platform;
use platform_core::capability::{Capability, HealthCheck, HealthResult, Setup, TaskKind};
use platform_core::db::{Db, Migration, MigrationSet, Sql};
use platform_core::resource::Registry;
use platform_core::value::FieldType;
use platform_tests::{TestDb, all_backends, test_key, users};
use tower::ServiceExt;

const CSRF: &str = "test-csrf-token";

const PROBE_MIGRATIONS: MigrationSet = MigrationSet {
    name: "probe",
    migrations: &[Migration {
        version: 1,
        name: "probe items",
        sqlite: "CREATE TABLE probe_items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL);",
        postgres: "CREATE TABLE probe_items (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL);",
        mysql: "CREATE TABLE probe_items (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL);",
    }],
    backends: &[],
};

/// What the probe's tasks and checks report to the test.
#[derive(Debug, Default)]
struct Probe {
    ticks: AtomicUsize,
    graceful_stops: AtomicUsize,
    worker_runs: AtomicUsize,
    unhealthy: AtomicBool,
    command_runs: AtomicUsize,
}

/// The capability under test.
struct ProbeCapability(Arc<Probe>);

/// Its service.
struct ProbeService {
    db: Db,
}

impl ProbeService {
    async fn count(&self) -> platform_core::Result<i64> {
        let q = Sql::literal(self.db.backend(), "SELECT COUNT(*) FROM probe_items");
        let rows = self.db.fetch_all(q, &[FieldType::I64]).await?;
        Ok(rows[0][0].as_i64().unwrap_or(0))
    }
    async fn add(&self, name: &str) -> platform_core::Result<()> {
        let mut q = self.db.sql();
        q.push("INSERT INTO probe_items (name) VALUES (")
            .bind_str(name)
            .push(")");
        self.db.execute(q).await?;
        Ok(())
    }
}

struct ProbeHealth(Arc<Probe>);

#[async_trait]
impl HealthCheck for ProbeHealth {
    fn name(&self) -> &str {
        "probe"
    }
    async fn check(&self, _platform: &Platform) -> HealthResult {
        if self.0.unhealthy.load(Ordering::SeqCst) {
            Err("the probe is down".into())
        } else {
            Ok(())
        }
    }
}

fn page_data(cx: &PageContext) -> PageFuture<'_> {
    Box::pin(async move {
        let svc = cx.platform.get::<ProbeService>().expect("the service");
        Ok(serde_json::json!({ "count": svc.count().await?, "item": cx.rest }))
    })
}

fn add_action(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        let name = cx.param("name").unwrap_or("unnamed");
        cx.platform
            .get::<ProbeService>()
            .expect("the service")
            .add(name)
            .await?;
        Ok(format!("Added {name}."))
    })
}

async fn api_count(State(p): State<Platform>) -> axum::Json<serde_json::Value> {
    let n = p.get::<ProbeService>().unwrap().count().await.unwrap();
    axum::Json(serde_json::json!({ "count": n }))
}

impl Capability for ProbeCapability {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn setup(&self, setup: &mut Setup) {
        let probe = self.0.clone();
        let (ticks, worker, health, command) = (probe.clone(), probe.clone(), probe.clone(), probe);
        setup
            .migrations(PROBE_MIGRATIONS)
            .permission("view_probe", "See the probe")
            .service(|p: Platform| {
                let db = p.db().clone();
                async move { Ok(ProbeService { db }) }
            })
            .task("probe ticker", TaskKind::Service, move |_p, mut stop| {
                let probe = ticks.clone();
                async move {
                    loop {
                        probe.ticks.fetch_add(1, Ordering::SeqCst);
                        if stop.wait_for(Duration::from_millis(5)).await {
                            probe.graceful_stops.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            })
            .task("probe worker", TaskKind::Worker, move |_p, mut stop| {
                let probe = worker.clone();
                async move {
                    probe.worker_runs.fetch_add(1, Ordering::SeqCst);
                    stop.stopped().await;
                }
            })
            .health_check(ProbeHealth(health))
            .panel_page(
                PanelPage::new(
                    "probe",
                    "Probe",
                    "<p id=\"count\">{{ data.count }} items{% if data.item %} ({{ data.item }}){% endif %}</p>",
                    page_data,
                )
                .permission("view_probe")
                .nav_group("System")
                .action(PageAction::new("add", add_action)),
            )
            .api_routes(Router::new().route("/probe", axum::routing::get(api_count)))
            .routes(Router::new().route(
                "/probe-root",
                axum::routing::get(|| async { "probe root" }),
            ))
            .command(Command::new(
                clap::Command::new("probe:count").about("Counts the probe's items"),
                move |builder, _args| {
                    let probe = command.clone();
                    async move {
                        let p = builder.background_tasks(false).build().await?;
                        let n = p.get::<ProbeService>().unwrap().count().await?;
                        probe.command_runs.fetch_add(1 + n as usize, Ordering::SeqCst);
                        p.shutdown().await;
                        Ok(())
                    }
                },
            ));
    }
}

fn builder(db: &TestDb) -> platform_core::platform::PlatformBuilder {
    Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(Registry::default())
        .max_connections(4)
}

use platform_tests::panel::send;

fn get(uri: &str, user: Option<i64>) -> Request<Body> {
    let mut b = Request::builder().method(Method::GET).uri(uri);
    if let Some(u) = user {
        b = b.header("x-test-user", u.to_string());
    }
    b.body(Body::empty()).unwrap()
}

async fn user(p: &Platform, email: &str, permissions: &[&str]) -> i64 {
    let id = users::user(p, email).await;
    if !permissions.is_empty() {
        let role = format!("role_{id}");
        users::role(p, &role, permissions).await;
        users::assign(p, id, &role).await;
    }
    id
}

#[tokio::test]
async fn a_capability_contributes_through_one_seam() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let probe = Arc::new(Probe::default());
        let p = builder(&db)
            .with(ProbeCapability(probe.clone()))
            .shutdown_grace(Duration::from_secs(5))
            .build()
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e}"));

        // Tables, permission, service.
        assert!(p.has_capability("probe"), "{backend}");
        let svc = p.get::<ProbeService>().expect("the service");
        assert_eq!(svc.count().await.unwrap(), 0, "{backend}");
        assert!(
            p.access()
                .permissions()
                .await
                .unwrap()
                .contains(&"view_probe".to_owned()),
            "{backend}"
        );
        assert_eq!(p.capability_permissions()[0].label, "See the probe");

        // The service task runs; the worker only once workers are started.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(probe.ticks.load(Ordering::SeqCst) > 0, "{backend}");
        assert_eq!(probe.worker_runs.load(Ordering::SeqCst), 0, "{backend}");
        assert_eq!(p.start_workers(), 1, "{backend}");
        assert_eq!(p.start_workers(), 0, "{backend}: started twice");

        // The panel: a page in the navigation of those who may see it, its
        // action, 403 for the others.
        let viewer = user(&p, "viewer@example.com", &["view_probe"]).await;
        let other = user(&p, "other@example.com", &["view_any_user"]).await;
        let panel = platform_tests::panel::signed_in_by_header(
            Router::new().nest(
                "/admin",
                platform_admin::panel_router_with(PanelConfig::new().with_capabilities(&p)),
            ),
            &p,
            CSRF,
        );
        let (status, body) = send(&panel, get("/admin", Some(viewer))).await;
        assert_eq!(status, StatusCode::OK, "{backend}: {body}");
        assert!(body.contains("href=\"/admin/probe\""), "{backend}: nav");
        let (_, body) = send(&panel, get("/admin", Some(other))).await;
        assert!(!body.contains("/admin/probe"), "{backend}: nav for others");
        let (status, body) = send(&panel, get("/admin/probe", Some(viewer))).await;
        assert_eq!(status, StatusCode::OK, "{backend}: {body}");
        assert!(
            body.contains("<p id=\"count\">0 items</p>"),
            "{backend}: {body}"
        );
        let (status, body) = send(&panel, get("/admin/probe/x%3Cb%3E", Some(viewer))).await;
        assert_eq!(status, StatusCode::OK, "{backend}");
        assert!(
            body.contains("(x&lt;b&gt;)"),
            "{backend}: escaped item: {body}"
        );
        let (status, _) = send(&panel, get("/admin/probe", Some(other))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend}");
        let post = |user: i64, csrf: &str| {
            Request::builder()
                .method(Method::POST)
                .uri("/admin/probe/actions/add")
                .header("x-test-user", user.to_string())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("_csrf={csrf}&name=first")))
                .unwrap()
        };
        let (status, _) = send(&panel, post(viewer, "wrong")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend}: CSRF");
        let (status, _) = send(&panel, post(other, CSRF)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend}: permission");
        assert_eq!(svc.count().await.unwrap(), 0, "{backend}");
        let res = panel.clone().oneshot(post(viewer, CSRF)).await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{backend}");
        assert_eq!(res.headers()[header::LOCATION], "/admin/probe");
        assert_eq!(svc.count().await.unwrap(), 1, "{backend}");

        // The whole app: API and root routes with the API's layers, health.
        let app = platform_admin::app_router(&p)
            .unwrap()
            .with_state(p.clone());
        let res = app.clone().oneshot(get("/api/probe", None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{backend}");
        assert!(
            res.headers().contains_key("content-security-policy"),
            "{backend}: the API's layers"
        );
        let (_, body) = send(&app, get("/api/probe", None)).await;
        assert_eq!(body, r#"{"count":1}"#);
        let (status, body) = send(&app, get("/probe-root", None)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "probe root"));
        let (status, body) = send(&app, get("/health", None)).await;
        assert_eq!(status, StatusCode::OK, "{backend}: {body}");
        assert!(body.contains("\"name\":\"probe\""), "{backend}: {body}");
        probe.unhealthy.store(true, Ordering::SeqCst);
        let (status, body) = send(&app, get("/health", None)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{backend}: {body}");
        assert!(body.contains("the probe is down"), "{backend}: {body}");

        // Shutdown stops the tasks through their signal, not by abort.
        p.shutdown().await;
        assert_eq!(probe.graceful_stops.load(Ordering::SeqCst), 1, "{backend}");
        let ticks = probe.ticks.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(probe.ticks.load(Ordering::SeqCst), ticks, "{backend}");

        // The command line knows the capability's command.
        platform_admin::cli::Cli::new(builder(&db).with(ProbeCapability(probe.clone())))
            .run_from(["app", "probe:count"])
            .await
            .unwrap();
        assert_eq!(probe.command_runs.load(Ordering::SeqCst), 2, "{backend}");
    }
}

#[tokio::test]
async fn a_capability_not_added_costs_nothing() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let p = builder(&db).build().await.unwrap();
        assert!(p.get::<ProbeService>().is_none());
        assert!(p.capability_names().is_empty());
        let q = Sql::literal(db.backend, "SELECT COUNT(*) FROM probe_items");
        assert!(
            p.db().fetch_all(q, &[FieldType::I64]).await.is_err(),
            "{backend}: no table"
        );
        assert!(
            !p.access()
                .permissions()
                .await
                .unwrap()
                .contains(&"view_probe".to_owned())
        );
        let app = platform_admin::app_router(&p)
            .unwrap()
            .with_state(p.clone());
        let (status, _) = send(&app, get("/api/probe", None)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{backend}");
        let (status, body) = send(&app, get("/health", None)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!body.contains("probe"), "{body}");
        assert_eq!(p.start_workers(), 0);
        p.shutdown().await;
    }
}

#[tokio::test]
async fn a_capability_added_twice_is_refused() {
    let db = TestDb::sqlite();
    let probe = Arc::new(Probe::default());
    let err = builder(&db)
        .with(ProbeCapability(probe.clone()))
        .with(ProbeCapability(probe))
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`probe` was added twice"), "{err}");
}
