//! The role editor (`GET /admin/access/roles/{name}`) over a registry of
//! 100 resources: the full request through the panel router (routing,
//! extractors, the two permission queries, the grid, the layout with its
//! bell count, template rendering), driven with `tower::ServiceExt::oneshot`
//! on an SQLite platform. The figure: under 50 ms.
//!
//! `cargo bench -p platform-benches --bench role_editor`.
//!
//! The signed-in user is given to the panel as a [`PanelAuth`] request
//! extension, as the session layer would leave it (the cookie path would
//! add one session `SELECT`); a second case builds the `PanelAuth` per
//! request with [`PanelAuth::for_user`], as that layer does.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use platform_admin::panel::PanelAuth;
use platform_core::Resource;
use platform_core::access::NewUser;
use platform_core::context::Context;
use platform_core::permission::SUPER_ADMIN;
use platform_core::resource::{FieldMeta, FromValuesError, Registry, ResourceMeta};
use platform_core::value::Value;
use platform_tests::TestDb;
use tower::ServiceExt;

/// A registry of 100 resources, built with the public const builders.
mod wide {
    use super::{FieldMeta, FromValuesError, Registry, Resource, ResourceMeta, Value};

    macro_rules! names {
        ($($n:literal)*) => {
            pub(crate) const NAMES: [&str; 100] = [$(concat!("res_", $n)),*];
            pub(crate) const PLURALS: [&str; 100] = [$(concat!("res_", $n, "s")),*];
            pub(crate) const TABLES: [&str; 100] = [$(concat!("wide_", $n)),*];
            pub(crate) fn registry() -> Registry {
                Registry::builder()$(.register::<R<$n>>())*.build().expect("100 resources")
            }
        };
    }
    names!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29
        30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59
        60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89
        90 91 92 93 94 95 96 97 98 99);

    const FIELDS: &[FieldMeta] = &[
        FieldMeta::of::<i64>("id").primary_key(),
        FieldMeta::of::<String>("name").sortable(),
    ];

    pub(crate) struct R<const N: usize>;

    impl<const N: usize> Resource for R<N> {
        const META: ResourceMeta =
            ResourceMeta::new(NAMES[N], PLURALS[N], TABLES[N]).fields(FIELDS);
        fn to_values(&self) -> Vec<Value> {
            Vec::new()
        }
        fn from_values(_: Vec<Value>) -> Result<Self, FromValuesError> {
            Ok(R)
        }
    }
}

const ROLE_PAGE: &str = "/admin/access/roles/half";

fn request(auth: Option<PanelAuth>) -> Request<Body> {
    let mut req = Request::builder()
        .uri(ROLE_PAGE)
        .body(Body::empty())
        .expect("request");
    if let Some(a) = auth {
        req.extensions_mut().insert(a);
    }
    req
}

async fn get(router: &Router, auth: PanelAuth) -> usize {
    let res = router
        .clone()
        .oneshot(request(Some(auth)))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    body.len()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let db = TestDb::sqlite();
    let registry = wide::registry();
    let (platform, admin) = rt.block_on(async {
        let platform = db.platform(registry.clone()).await;
        let access = platform.access();
        access
            .sync_permissions(&registry)
            .await
            .expect("sync permissions");
        let console = Context::console();
        let user = access
            .create_user(
                &console,
                NewUser {
                    email: "admin@example.com".into(),
                    name: "Admin".into(),
                    password: "correct horse battery staple".into(),
                },
            )
            .await
            .expect("admin");
        access
            .assign_role(&console, user.id, SUPER_ADMIN)
            .await
            .expect("super_admin");
        // A role holding every other permission: half the grid ticked.
        let half: Vec<String> = access
            .permissions()
            .await
            .expect("permissions")
            .into_iter()
            .step_by(2)
            .collect();
        access.create_role(&console, "half").await.expect("role");
        access
            .set_role_permissions(&console, "half", &half)
            .await
            .expect("role permissions");
        (platform, user.id)
    });
    let auth = rt
        .block_on(PanelAuth::for_user(&platform, admin, "bench-csrf"))
        .expect("auth")
        .expect("enabled admin");
    let router: Router = Router::new()
        .nest("/admin", platform_admin::panel_router())
        .with_state(platform.clone());

    // Check the page once: 200, the full grid.
    let html = rt.block_on(async {
        let res = router
            .clone()
            .oneshot(request(Some(auth.clone())))
            .await
            .expect("infallible");
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "the role editor must answer 200"
        );
        let body = res.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    });
    let boxes = html.matches("name=\"p\"").count();
    assert!(
        boxes >= 100 * 10,
        "the grid must hold every resource × ability ({boxes} boxes)"
    );
    eprintln!(
        "role editor page: {} resources, {boxes} checkboxes, {} bytes of HTML",
        platform.registry().len(),
        html.len()
    );

    let mut g = c.benchmark_group("role editor, 100 resources (sqlite)");
    g.bench_function("GET /admin/access/roles/{name} (PanelAuth injected)", |b| {
        b.to_async(&rt).iter(|| get(&router, auth.clone()));
    });
    g.bench_function(
        "GET /admin/access/roles/{name} (+ PanelAuth::for_user per request)",
        |b| {
            b.to_async(&rt).iter(|| async {
                let a = PanelAuth::for_user(&platform, admin, "bench-csrf")
                    .await
                    .expect("auth")
                    .expect("enabled admin");
                get(&router, a).await
            });
        },
    );
    g.finish();
    rt.block_on(platform.shutdown());
    drop(db);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .measurement_time(std::time::Duration::from_secs(10));
    targets = bench
}
criterion_main!(benches);
