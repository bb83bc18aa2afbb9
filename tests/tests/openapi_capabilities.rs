//! The capabilities' API routes in the OpenAPI document
//! (`platform_core::capability::ApiDoc`): listed exactly when the
//! capability is added, every declared route described and nothing else,
//! a well-formed OpenAPI 3.0.3 document (every `$ref` resolves, path
//! parameters match the templates, operation ids are unique); and the
//! export and import routes in the permission matrix for every resource,
//! on every configured database.

mod media_common;

use std::collections::{BTreeSet, HashSet};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use platform_admin::api::openapi::{document, document_with};
use platform_admin::capability::ApiRoutes;
use platform_admin::matrix::{Actual, PermissionMatrix, ROLE_PREFIX, Surface};
use platform_core::Platform;
use platform_core::capability::ApiDoc;
use platform_core::context::Context;
use platform_core::platform::PlatformBuilder;
use platform_core::resource::Registry;
use platform_core::storage::{FileStorage, MemoryStorage};
use platform_exchange::Exchange;
use platform_tests::domain::{Customer, Invoice, Note, Task};
use platform_tests::{TestDb, all_backends, test_key};
use serde_json::Value;
use tower::ServiceExt;

fn registry() -> Registry {
    Registry::builder()
        .register::<Customer>()
        .register::<Invoice>()
        .register::<Task>()
        .register::<Note>()
        .register::<media_common::Product>()
        .build()
        .expect("registry")
}

fn bare() -> PlatformBuilder {
    Platform::builder()
        .ignore_env()
        .database_url("sqlite::memory:")
        .app_key(test_key())
        .registry(registry())
        .background_tasks(false)
}

/// Every capability that serves API routes.
fn full() -> PlatformBuilder {
    bare()
        .with(
            platform_jobs::Jobs::new()
                .ignore_env()
                .queue_url("sqlite::memory:"),
        )
        .with(platform_notify::Notifications::new())
        .with(Exchange::default())
        .with(platform_webhooks::Webhooks::new().ignore_env())
        .with(
            FileStorage::new()
                .disk("public", MemoryStorage::new())
                .ignore_env(),
        )
        .with(media_common::media())
}

fn doc_of(builder: &PlatformBuilder) -> Value {
    document_with(
        &registry(),
        &builder.contributions::<ApiDoc>(),
        "/api",
        "Test",
    )
}

/// `(METHOD, path)` of every operation of `doc`.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method != "parameters" {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// `(METHOD, path)` of every route the capabilities declare, for the
/// resources of `registry` the API serves.
fn declared(builder: &PlatformBuilder, registry: &Registry) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for routes in builder.contributions::<ApiRoutes>() {
        for r in routes.declared() {
            out.insert((r.method().to_string(), r.path().to_owned()));
        }
        for r in routes.resource_routes() {
            for e in registry.entries() {
                if e.meta().in_api() && r.applies_to(e.meta()) {
                    out.insert((r.method().to_string(), r.path_for(e.meta().plural())));
                }
            }
        }
    }
    out
}

/// Where a JSON pointer `#/a/b` leads in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Checks what an OpenAPI 3.0.3 document must hold and a reader relies
/// on; returns the problems found.
fn problems(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if doc["openapi"] != "3.0.3" {
        out.push("openapi is not 3.0.3".to_owned());
    }
    for key in ["title", "version"] {
        if !doc["info"][key].is_string() {
            out.push(format!("info.{key} is missing"));
        }
    }
    // Every reference resolves.
    fn refs(v: &Value, at: &str, doc: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref")
                    && resolve(doc, r).is_none()
                {
                    out.push(format!("{at}: $ref {r} does not resolve"));
                }
                for (k, v) in m {
                    refs(v, &format!("{at}/{k}"), doc, out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    refs(v, &format!("{at}/{i}"), doc, out);
                }
            }
            _ => {}
        }
    }
    refs(doc, "#", doc, &mut out);
    let tags: HashSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut ids = HashSet::new();
    let deref = |v: &Value| -> Value {
        match v["$ref"].as_str() {
            Some(r) => resolve(doc, r).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with('/') {
            out.push(format!("{path}: does not start with /"));
        }
        let template: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        let shared: Vec<Value> = item["parameters"].as_array().cloned().unwrap_or_default();
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let at = format!("{} {path}", method.to_uppercase());
            if ![
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                out.push(format!("{at}: not an HTTP method"));
                continue;
            }
            match op["operationId"].as_str() {
                Some(id) if !ids.insert(id.to_owned()) => {
                    out.push(format!("{at}: operationId {id} is used twice"));
                }
                Some(_) => {}
                None => out.push(format!("{at}: no operationId")),
            }
            for t in op["tags"].as_array().into_iter().flatten() {
                if !tags.contains(t.as_str().unwrap_or_default()) {
                    out.push(format!("{at}: tag {t} is not declared"));
                }
            }
            let params: Vec<Value> = shared
                .iter()
                .chain(op["parameters"].as_array().into_iter().flatten())
                .map(&deref)
                .collect();
            let mut seen = HashSet::new();
            let mut in_path = BTreeSet::new();
            for p in &params {
                let (Some(name), Some(place)) = (p["name"].as_str(), p["in"].as_str()) else {
                    out.push(format!("{at}: a parameter without name or in: {p}"));
                    continue;
                };
                if !["query", "path", "header", "cookie"].contains(&place) {
                    out.push(format!("{at}: parameter {name} in {place}"));
                }
                if !p["schema"].is_object() && !p["content"].is_object() {
                    out.push(format!("{at}: parameter {name} has no schema"));
                }
                if !seen.insert((name.to_owned(), place.to_owned())) && !shared.contains(p) {
                    out.push(format!("{at}: parameter {name} twice"));
                }
                if place == "path" {
                    if p["required"] != true {
                        out.push(format!("{at}: path parameter {name} is not required"));
                    }
                    in_path.insert(name.to_owned());
                }
            }
            if in_path != template {
                out.push(format!(
                    "{at}: path parameters {in_path:?}, template {template:?}"
                ));
            }
            let responses = op["responses"].as_object();
            match responses {
                Some(r) if !r.is_empty() => {
                    for (status, response) in r {
                        let valid = status == "default"
                            || (status.len() == 3 && status.chars().all(|c| c.is_ascii_digit()));
                        if !valid {
                            out.push(format!("{at}: response key {status}"));
                        }
                        if !deref(response)["description"].is_string() {
                            out.push(format!("{at}: response {status} has no description"));
                        }
                    }
                }
                _ => out.push(format!("{at}: no responses")),
            }
            if let Some(body) = op.get("requestBody")
                && body["content"].as_object().is_none_or(|c| c.is_empty())
            {
                out.push(format!("{at}: a request body without content"));
            }
        }
    }
    out
}

#[test]
fn the_document_lists_the_capability_routes_only_when_the_capability_is_added() {
    let registry = registry();
    // No capability: the resources' routes alone, as `document` makes them.
    let plain = doc_of(&bare());
    assert_eq!(plain, document(&registry, "/api", "Test"));
    assert!(problems(&plain).is_empty(), "{:#?}", problems(&plain));
    let base = operations(&plain);
    for path in [
        "/invoices/export",
        "/invoices/import",
        "/imports",
        "/jobs/stats",
        "/media/reorder",
        "/webhooks/subscriptions",
    ] {
        assert!(plain["paths"][path].is_null(), "{path}");
    }

    // Every capability: valid, and what it adds is exactly the routes the
    // capabilities declare (every declared route described, nothing
    // described that is not served).
    let builder = full();
    let doc = doc_of(&builder);
    let found = problems(&doc);
    assert!(found.is_empty(), "{found:#?}");
    let added: BTreeSet<(String, String)> = operations(&doc).difference(&base).cloned().collect();
    assert_eq!(added, declared(&builder, &registry));
    for (method, path) in [
        ("GET", "/customers/export"),
        ("GET", "/invoices/export"),
        ("GET", "/products/export"),
        ("POST", "/invoices/import"),
        ("POST", "/invoices/import/preview"),
        ("GET", "/imports"),
        ("GET", "/imports/{id}"),
        ("GET", "/imports/{id}/failed"),
        ("POST", "/imports/{id}/rollback"),
        ("POST", "/products/{id}/media/{collection}"),
        ("GET", "/products/{id}/media"),
        ("DELETE", "/media/{id}"),
        ("POST", "/media/reorder"),
        ("GET", "/jobs/stats"),
        ("GET", "/webhooks/subscriptions"),
        ("POST", "/webhooks/subscriptions"),
        ("PATCH", "/webhooks/subscriptions/{id}"),
        ("DELETE", "/webhooks/subscriptions/{id}"),
        ("GET", "/webhooks/calls"),
        ("GET", "/webhooks/calls/{id}"),
        ("POST", "/webhooks/calls/{id}/replay"),
        ("GET", "/webhooks/incoming"),
        ("POST", "/webhooks/incoming/{id}/rerun"),
    ] {
        assert!(
            added.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} in {added:#?}"
        );
    }
    // The resource routes are kept as they were.
    assert_eq!(doc["paths"]["/invoices"], plain["paths"]["/invoices"]);

    // The export takes the list's filters and sort, not its paging.
    let export = &doc["paths"]["/invoices/export"]["get"];
    let names: Vec<&str> = export["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "format",
        "columns",
        "search",
        "sort",
        "filter[status]",
        "trashed",
    ] {
        assert!(names.contains(&p), "{p}: {names:?}");
    }
    for p in [
        "page[size]",
        "page[after]",
        "page[number]",
        "count",
        "include",
    ] {
        assert!(!names.contains(&p), "{p}: {names:?}");
    }
    assert!(export["responses"]["200"]["content"]["text/csv"].is_object());
    assert_eq!(
        export["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ExportQueued"
    );
    for status in ["401", "403", "422"] {
        assert!(export["responses"][status].is_object(), "{status}");
    }
    // Uploads are multipart, with the error answers of a body.
    let import = &doc["paths"]["/invoices/import"]["post"];
    assert!(import["requestBody"]["content"]["multipart/form-data"].is_object());
    for status in ["200", "202", "403", "413", "415", "422"] {
        assert!(import["responses"][status].is_object(), "{status}");
    }
    let upload = &doc["paths"]["/products/{id}/media/{collection}"];
    assert_eq!(
        upload["parameters"][1]["schema"]["enum"],
        serde_json::json!(["images", "manual"])
    );
    assert!(upload["post"]["responses"]["413"].is_object());
    // A resource the media library does not hold has no media routes.
    assert!(doc["paths"]["/invoices/{id}/media"].is_null());
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for t in ["imports", "media", "jobs", "webhooks"] {
        assert!(tags.contains(&t), "{t}: {tags:?}");
    }

    // One capability: its routes alone.
    let exchange = bare().with(Exchange::default());
    let doc = doc_of(&exchange);
    assert!(problems(&doc).is_empty(), "{:#?}", problems(&doc));
    assert!(doc["paths"]["/invoices/export"].is_object());
    assert!(doc["paths"]["/imports"].is_object());
    for path in ["/jobs/stats", "/media/reorder", "/webhooks/subscriptions"] {
        assert!(doc["paths"][path].is_null(), "{path}");
    }
    let added: BTreeSet<(String, String)> = operations(&doc).difference(&base).cloned().collect();
    assert_eq!(added, declared(&exchange, &registry));
}

async fn served_doc(platform: &Platform) -> Value {
    let app = platform_admin::app_router(platform)
        .unwrap()
        .with_state(platform.clone());
    let res = app
        .oneshot(
            Request::get("/api/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn the_served_document_follows_each_platforms_capabilities() {
    // Two platforms over one registry in one process: the document built
    // (and kept) for one is never served for the other.
    let db = TestDb::sqlite();
    db.create_tables(&registry()).await;
    let with = bare()
        .database_url(&db.url)
        .with(Exchange::default())
        .build()
        .await
        .unwrap();
    let without = bare().database_url(&db.url).build().await.unwrap();
    for _ in 0..2 {
        let doc = served_doc(&with).await;
        assert!(doc["paths"]["/invoices/export"]["get"].is_object());
        assert!(doc["paths"]["/imports/{id}"]["get"].is_object());
        let doc = served_doc(&without).await;
        assert!(doc["paths"]["/invoices/export"].is_null());
        assert!(doc["paths"]["/imports/{id}"].is_null());
    }
    with.shutdown().await;
    without.shutdown().await;
}

#[tokio::test]
async fn export_and_import_routes_are_in_the_permission_matrix_on_every_backend() {
    let registry = platform_tests::domain::registry();
    for db in all_backends().await {
        let backend = db.backend.name();
        db.create_tables(&registry).await;
        let platform = Platform::builder()
            .ignore_env()
            .database_url(&db.url)
            .app_key(test_key())
            .registry(registry.clone())
            .background_tasks(false)
            .max_connections(8)
            .with(Exchange::default())
            .build()
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        // A role with both permissions an export needs, for invoices.
        let console = Context::console();
        let access = platform.access();
        access
            .create_role(&console, "invoice_exporter")
            .await
            .unwrap();
        access
            .set_role_permissions(
                &console,
                "invoice_exporter",
                &["view_any_invoice".to_owned(), "export_invoice".to_owned()],
            )
            .await
            .unwrap();
        let report = PermissionMatrix::new(&platform)
            .without(Surface::Panel)
            .run()
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert!(report.is_ok(), "{backend}:\n{}", report.mismatch_table());
        for plural in ["customers", "invoices", "tasks", "notes"] {
            let single = plural.trim_end_matches('s');
            let view_any = format!("{ROLE_PREFIX}view_any_{single}");
            let export = format!("{ROLE_PREFIX}export_{single}");
            let import = format!("{ROLE_PREFIX}import_{single}");
            // The export reads the list: it needs both permissions, and
            // neither alone opens it.
            let mut exporters = vec!["super_admin"];
            if plural == "invoices" {
                exporters.insert(0, "invoice_exporter");
            }
            for (route, requires, allowed) in [
                (
                    format!("GET /api/{plural}/export"),
                    format!("view_any_{single} + export_{single}"),
                    exporters.clone(),
                ),
                (
                    format!("POST /api/{plural}/import"),
                    format!("import_{single}"),
                    vec![import.as_str(), "super_admin"],
                ),
                (
                    format!("POST /api/{plural}/import/preview"),
                    format!("import_{single}"),
                    vec![import.as_str(), "super_admin"],
                ),
            ] {
                let rows: Vec<_> = report.rows.iter().filter(|r| r.route == route).collect();
                assert_eq!(
                    rows.len(),
                    report.roles.len(),
                    "{backend}: {route}, one row per role"
                );
                assert!(
                    rows.iter().all(|r| r.requires == requires),
                    "{backend}: {route}"
                );
                let mut got: Vec<&str> = rows
                    .iter()
                    .filter(|r| r.actual == Actual::Allowed)
                    .map(|r| r.role.as_str())
                    .collect();
                got.sort_unstable();
                assert_eq!(got, allowed, "{backend}: {route}");
                // Every other role, signed in or not, is refused.
                assert!(
                    rows.iter()
                        .filter(|r| !allowed.contains(&r.role.as_str()))
                        .all(|r| r.actual == Actual::Denied && matches!(r.status, 401 | 403)),
                    "{backend}: {route}"
                );
            }
            for role in [&view_any, &export] {
                assert!(
                    report
                        .rows
                        .iter()
                        .any(|r| r.route == format!("GET /api/{plural}/export")
                            && &r.role == role
                            && r.status == 403),
                    "{backend}: {role} alone exports {plural}"
                );
            }
        }
        platform.shutdown().await;
    }
}
