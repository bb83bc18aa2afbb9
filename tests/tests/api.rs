//! The JSON API (`platform_admin::api_router`) on every configured
//! database, driven through `tower::ServiceExt::oneshot` without a port:
//! lists, writes, validation, authentication, permissions, the audit
//! endpoint, error bodies and the OpenAPI document.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use platform_core::Error;
use platform_core::context::Context;
use platform_core::db::Sql;
use platform_core::value::{FieldType, Value};
use platform_tests::api::{App, Res};
use platform_tests::domain::{Invoice, Note, invoice};
use platform_tests::{TestDb, all_backends};
use serde_json::json;
use tower::ServiceExt;

fn ids(res: &Res) -> Vec<i64> {
    res.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn create_show_update_delete_restore() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let b = app.backend;

        let res = app
            .json(
                Method::POST,
                "/api/customers",
                &json!({ "name": "Ada Lovelace", "email": "ada@example.com", "country": "GB" }),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{b}: {:?}", res.body);
        let cid = res.body["data"]["id"].as_i64().unwrap();
        assert_eq!(
            res.headers[header::LOCATION],
            format!("/api/customers/{cid}"),
            "{b}"
        );
        assert_eq!(
            res.body["data"]["email"], "ada@example.com",
            "{b}: super admin sees pii"
        );
        assert!(res.body["data"]["created_at"].is_string());

        let res = app
            .json(
                Method::POST,
                "/api/invoices",
                &json!({
                    "customer_id": cid, "number": "INV-1", "status": "draft",
                    "amount_cents": 1250, "issued_on": "2024-03-01",
                    "iban": "DE89 3704 0044 0532 0130 00", "notes": null
                }),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{b}: {:?}", res.body);
        let id = res.body["data"]["id"].as_i64().unwrap();
        let location = res.headers[header::LOCATION].to_str().unwrap().to_owned();
        assert_eq!(location, format!("/api/invoices/{id}"));
        assert_eq!(res.body["data"]["iban"], "DE89 3704 0044 0532 0130 00");
        assert_eq!(res.body["data"]["deleted_at"], serde_json::Value::Null);

        let res = app.get(&location).await;
        assert_eq!(res.status, StatusCode::OK, "{b}");
        assert_eq!(res.body["data"]["number"], "INV-1");
        assert_eq!(res.body["data"]["issued_on"], "2024-03-01");

        // PATCH and PUT both write only what is sent.
        let res = app
            .json(Method::PATCH, &location, &json!({ "status": "sent" }))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{b}: {:?}", res.body);
        assert_eq!(res.body["data"]["status"], "sent");
        assert_eq!(res.body["data"]["number"], "INV-1");
        let res = app
            .json(
                Method::PUT,
                &location,
                &json!({ "amount_cents": 99, "notes": "hi" }),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{b}: {:?}", res.body);
        assert_eq!(res.body["data"]["status"], "sent");
        assert_eq!(res.body["data"]["amount_cents"], 99);
        assert_eq!(app.get(&location).await.body["data"]["notes"], "hi");

        // Soft delete, restore, force delete.
        let res = app.delete(&location).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{b}: {:?}", res.body);
        assert_eq!(res.body, serde_json::Value::Null);
        let res = app.get(&location).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{b}");
        assert_eq!(res.code(), "not_found");
        let trashed = app.get("/api/invoices?trashed=only").await;
        assert_eq!(ids(&trashed), [id], "{b}");
        assert_eq!(ids(&app.get("/api/invoices").await), Vec::<i64>::new());
        let res = app
            .send(
                App::request(
                    Method::POST,
                    &format!("{location}/restore"),
                    Some(&app.admin),
                )
                .body(Body::empty())
                .unwrap(),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{b}: {:?}", res.body);
        assert_eq!(res.body["data"]["deleted_at"], serde_json::Value::Null);
        assert_eq!(app.get(&location).await.status, StatusCode::OK);
        // Restoring a record that is not deleted conflicts with its state.
        let res = app
            .send(
                App::request(
                    Method::POST,
                    &format!("{location}/restore"),
                    Some(&app.admin),
                )
                .body(Body::empty())
                .unwrap(),
            )
            .await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{b}: {:?}", res.body);
        assert_eq!(res.code(), "conflict");
        let res = app.delete(&format!("{location}?force=true")).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{b}: {:?}", res.body);
        assert_eq!(
            app.get("/api/invoices?trashed=with").await.body["data"],
            json!([])
        );
        let res = app
            .send(
                App::request(
                    Method::POST,
                    &format!("{location}/restore"),
                    Some(&app.admin),
                )
                .body(Body::empty())
                .unwrap(),
            )
            .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{b}");

        // Tasks do not soft-delete: no restore route, deletes are for good.
        let res = app
            .json(
                Method::POST,
                "/api/tasks",
                &json!({ "title": "t", "due_on": null, "done": false }),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{b}: {:?}", res.body);
        let task = res.body["data"]["id"].as_i64().unwrap();
        let res = app
            .send(
                App::request(
                    Method::POST,
                    &format!("/api/tasks/{task}/restore"),
                    Some(&app.admin),
                )
                .body(Body::empty())
                .unwrap(),
            )
            .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{b}");
        assert_eq!(
            app.delete(&format!("/api/tasks/{task}")).await.status,
            StatusCode::NO_CONTENT
        );

        // A customer still referenced cannot be deleted: 409, nothing lost.
        app.platform
            .repo::<Invoice>(&Context::system())
            .create(&invoice(cid, 2, "draft", 1))
            .await
            .unwrap();
        let res = app.delete(&format!("/api/customers/{cid}")).await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{b}: {:?}", res.body);
        assert_eq!(res.code(), "conflict");
        assert_eq!(
            app.get(&format!("/api/customers/{cid}")).await.status,
            StatusCode::OK
        );
        app.finish().await;
    }
}

#[tokio::test]
async fn lists_search_sort_filter_and_page() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let b = app.backend;
        let cid = app.customer("Ada", "ada@example.com").await;
        let repo = app.platform.repo::<Invoice>(&Context::system());
        let statuses = ["draft", "sent", "paid", "void"];
        for n in 1..=30_u32 {
            let mut inv = invoice(cid, n, statuses[(n % 4) as usize], i64::from(n % 7) * 100);
            if n == 17 {
                inv.notes = Some("Rush order for Zürich".into());
            }
            repo.create(&inv).await.unwrap();
        }

        // Keyset pages, following `links.next`, visit every row once in order.
        let first = app
            .get("/api/invoices?sort=-amount_cents&page%5Bsize%5D=7&count=true")
            .await;
        assert_eq!(first.status, StatusCode::OK, "{b}: {:?}", first.body);
        assert_eq!(
            first.body["meta"]["total"],
            json!({ "kind": "exact", "value": 30 })
        );
        assert_eq!(first.body["meta"]["has_more"], true);
        let mut seen: Vec<(i64, i64)> = Vec::new();
        let mut page = first;
        let mut pages = 0;
        loop {
            pages += 1;
            for r in page.body["data"].as_array().unwrap() {
                seen.push((
                    r["amount_cents"].as_i64().unwrap(),
                    r["id"].as_i64().unwrap(),
                ));
            }
            let Some(next) = page.body["links"]["next"].as_str().map(str::to_owned) else {
                assert_eq!(page.body["meta"]["has_more"], false);
                assert_eq!(page.body["meta"]["next_cursor"], serde_json::Value::Null);
                break;
            };
            assert!(next.starts_with("/api/invoices?"), "{next}");
            assert!(next.contains("page%5Bafter%5D="), "{next}");
            page = app.get(&next).await;
            assert_eq!(page.status, StatusCode::OK, "{b}: {next}: {:?}", page.body);
        }
        assert_eq!(pages, 5, "{b}");
        assert_eq!(seen.len(), 30, "{b}");
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        assert_eq!(seen, sorted, "{b}");

        // Offset pages.
        let p3 = app.get("/api/invoices?page[size]=10&page[number]=2").await;
        assert_eq!(p3.status, StatusCode::OK, "{b}: {:?}", p3.body);
        assert_eq!(p3.body["data"][0]["number"], "INV-000011");
        let next = p3.body["links"]["next"].as_str().unwrap();
        assert!(next.contains("page%5Bnumber%5D=3"), "{next}");
        let p3 = app.get(next).await;
        assert_eq!(p3.body["data"][0]["number"], "INV-000021");
        assert_eq!(p3.body["links"]["next"], serde_json::Value::Null);

        // Filters.
        let paid = app
            .get("/api/invoices?filter[status]=paid&page[size]=100")
            .await;
        assert_eq!(paid.body["data"].as_array().unwrap().len(), 8, "{b}");
        let some = app
            .get("/api/invoices?filter[status][in]=paid,void&filter[amount_cents][gte]=500&page[size]=100")
            .await;
        assert_eq!(some.status, StatusCode::OK, "{b}: {:?}", some.body);
        for r in some.body["data"].as_array().unwrap() {
            assert!(r["amount_cents"].as_i64().unwrap() >= 500);
            assert!(r["status"] == "paid" || r["status"] == "void");
        }
        assert!(!some.body["data"].as_array().unwrap().is_empty());

        // Search, including text that looks like SQL or LIKE patterns.
        let found = app.get("/api/invoices?search=INV-000012").await;
        assert_eq!(found.body["data"].as_array().unwrap().len(), 1, "{b}");
        let found = app.get("/api/invoices?search=rush").await;
        assert_eq!(found.body["data"][0]["number"], "INV-000017", "{b}");
        for hostile in [
            "%27%20OR%201%3D1%20--",
            "%25",
            "_",
            "%22)%3B%20DROP%20TABLE%20invoices%3B%20--",
            "1%27%3B%20DELETE%20FROM%20invoices%3B",
        ] {
            let r = app.get(&format!("/api/invoices?search={hostile}")).await;
            assert_eq!(r.status, StatusCode::OK, "{b}: {hostile}: {:?}", r.body);
            assert_eq!(r.body["data"], json!([]), "{b}: {hostile}");
        }
        assert_eq!(
            app.get("/api/invoices?count=true").await.body["meta"]["total"]["value"],
            30,
            "{b}: still 30 invoices"
        );

        // Unknown or unsafe parameters are field errors, never SQL.
        for (query, field) in [
            ("sort=iban", "sort"),
            ("sort=id%3B%20DROP%20TABLE%20x", "sort"),
            ("filter[notes]=x", "filter[notes]"),
            ("filter[status]=bogus", "filter[status]"),
            ("filter[amount_cents]=12abc", "filter[amount_cents]"),
            ("filter[amount_cents][like]=1", "filter[amount_cents][like]"),
            ("page[size]=1000", "page[size]"),
            ("page[after]=garbage", "page[after]"),
            ("count=maybe", "count"),
            ("search=a%00b", "search"),
            ("filter[status]=paid%00", "filter[status]"),
            ("bogus=1", "bogus"),
        ] {
            let r = app.get(&format!("/api/invoices?{query}")).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{b}: {query}: {:?}",
                r.body
            );
            assert_eq!(r.code(), "validation_failed");
            assert!(
                r.body["error"]["fields"][field].is_array(),
                "{b}: {query}: {:?}",
                r.body
            );
        }
        assert_eq!(
            app.get("/api/tasks?trashed=with")
                .await
                .field_code("trashed"),
            "invalid",
            "{b}: tasks do not soft-delete"
        );
        app.finish().await;
    }
}

#[tokio::test]
async fn bad_input_gets_field_errors() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let b = app.backend;
        let cid = app.customer("Ada", "ada@example.com").await;
        let good = || {
            json!({
                "customer_id": cid, "number": "INV-1", "status": "draft",
                "amount_cents": 5, "issued_on": "2024-03-01"
            })
        };
        let with = |k: &str, v: serde_json::Value| {
            let mut g = good();
            g[k] = v;
            g
        };
        for (body, field, code) in [
            (with("nope", json!(1)), "nope", "unknown_field"),
            (with("id", json!(5)), "id", "read_only"),
            (
                with("created_at", json!("2024-01-01T00:00:00Z")),
                "created_at",
                "read_only",
            ),
            (with("amount_cents", json!("12")), "amount_cents", "type"),
            (with("issued_on", json!("2024-02-30")), "issued_on", "type"),
            (with("number", json!("X".repeat(21))), "number", "too_long"),
            (with("status", json!("bogus")), "status", "choice"),
            (with("notes", json!("a\u{0}b")), "notes", "invalid"),
            (with("customer_id", json!(999_999)), "customer_id", "exists"),
            (json!({ "number": "INV-9" }), "status", "required"),
        ] {
            let r = app.json(Method::POST, "/api/invoices", &body).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{b}: {body}: {:?}",
                r.body
            );
            assert_eq!(r.code(), "validation_failed");
            assert_eq!(r.field_code(field), code, "{b}: {body}: {:?}", r.body);
            assert!(
                r.body["error"]["fields"][field][0]["message"].is_string(),
                "{b}"
            );
        }
        // Several problems at once, each with its field.
        let r = app
            .json(
                Method::POST,
                "/api/invoices",
                &json!({ "amount_cents": "x", "issued_on": 3, "nope": 1 }),
            )
            .await;
        let fields = r.body["error"]["fields"].as_object().unwrap();
        assert!(
            fields.contains_key("amount_cents")
                && fields.contains_key("issued_on")
                && fields.contains_key("nope"),
            "{b}: {fields:?}"
        );

        // A taken unique value.
        assert_eq!(
            app.json(Method::POST, "/api/invoices", &good())
                .await
                .status,
            StatusCode::CREATED
        );
        let r = app.json(Method::POST, "/api/invoices", &good()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{b}: {:?}",
            r.body
        );
        assert_eq!(r.field_code("number"), "unique", "{b}: {:?}", r.body);
        let r = app
            .json(
                Method::POST,
                "/api/customers",
                &json!({ "name": "B", "email": "ada@example.com", "country": "FR" }),
            )
            .await;
        assert_eq!(r.field_code("email"), "unique", "{b}: {:?}", r.body);

        // Updates are checked the same way.
        let id = app.get("/api/invoices").await.body["data"][0]["id"]
            .as_i64()
            .unwrap();
        let r = app
            .json(
                Method::PATCH,
                &format!("/api/invoices/{id}"),
                &json!({ "status": "nope", "number": null }),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(r.field_code("status"), "choice");
        assert_eq!(r.field_code("number"), "required");

        // Bodies that are not a JSON object.
        let raw = |ct: Option<&'static str>, body: &'static str| {
            let mut r = App::request(Method::POST, "/api/invoices", Some(&app.admin));
            if let Some(ct) = ct {
                r = r.header(header::CONTENT_TYPE, ct);
            }
            r.body(Body::from(body)).unwrap()
        };
        let r = app
            .send(raw(Some("application/json"), "{\"number\": "))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{b}: {:?}", r.body);
        assert_eq!(r.code(), "malformed_json");
        let r = app.send(raw(Some("text/plain"), "{}")).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{b}");
        assert_eq!(r.code(), "unsupported_media_type");
        let r = app.send(raw(None, "{}")).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{b}");
        let r = app.send(raw(Some("application/json"), "[1, 2]")).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(r.field_code("body"), "type");
        let big = format!("{{\"notes\": \"{}\"}}", "x".repeat(1024 * 1024 + 1));
        let r = app
            .send(
                App::request(Method::POST, "/api/invoices", Some(&app.admin))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(big))
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
        assert_eq!(r.code(), "payload_too_large");

        // Nothing invalid was written.
        let n = app
            .platform
            .db()
            .fetch_i64(Sql::literal(
                app.platform.db().backend(),
                "SELECT COUNT(*) FROM invoices",
            ))
            .await
            .unwrap();
        assert_eq!(n, Some(1), "{b}");
        app.finish().await;
    }
}

/// The field names of a validation error body, sorted.
fn error_fields(r: &Res) -> Vec<String> {
    let mut v: Vec<String> = r.body["error"]["fields"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The codes of one field in a validation error body.
fn codes(r: &Res, field: &str) -> Vec<String> {
    r.body["error"]["fields"][field]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["code"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn every_field_error_in_one_answer() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let b = app.backend;
        let cid = app.customer("Ada", "ada@example.com").await;
        let res = app
            .json(
                Method::POST,
                "/api/invoices",
                &json!({
                    "customer_id": cid, "number": "INV-1", "status": "draft",
                    "amount_cents": 5, "issued_on": "2024-03-01"
                }),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{b}: {:?}", res.body);
        let other = app
            .json(
                Method::POST,
                "/api/invoices",
                &json!({
                    "customer_id": cid, "number": "INV-2", "status": "draft",
                    "amount_cents": 5, "issued_on": "2024-03-01"
                }),
            )
            .await;
        let other_id = other.body["data"]["id"].as_i64().unwrap();
        let count = || async {
            let db = app.platform.db();
            let n = |sql: &'static str| db.fetch_i64(Sql::literal(db.backend(), sql));
            (
                n("SELECT COUNT(*) FROM invoices").await.unwrap(),
                n("SELECT COUNT(*) FROM platform_audits").await.unwrap(),
            )
        };
        let before = count().await;

        // A wrong type (amount_cents), a bad choice (status), a taken unique
        // value (number) and a missing referenced record (customer_id):
        // one 422 naming all four.
        let bad = json!({
            "customer_id": 999_999, "number": "INV-1", "status": "bogus",
            "amount_cents": "12", "issued_on": "2024-03-01"
        });
        let expected = ["amount_cents", "customer_id", "number", "status"];
        let r = app.json(Method::POST, "/api/invoices", &bad).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{b}: {:?}",
            r.body
        );
        assert_eq!(r.code(), "validation_failed");
        assert_eq!(error_fields(&r), expected, "{b}: {:?}", r.body);
        assert_eq!(codes(&r, "amount_cents"), ["type"], "{b}");
        assert_eq!(codes(&r, "status"), ["choice"], "{b}");
        assert_eq!(codes(&r, "number"), ["unique"], "{b}");
        assert_eq!(codes(&r, "customer_id"), ["exists"], "{b}");

        // The same on update, by PATCH and by PUT (the record's own number
        // is not "taken"; another record's is).
        for method in [Method::PATCH, Method::PUT] {
            let r = app
                .json(method.clone(), &format!("/api/invoices/{other_id}"), &bad)
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{b} {method}");
            assert_eq!(error_fields(&r), expected, "{b} {method}: {:?}", r.body);
            assert_eq!(codes(&r, "number"), ["unique"], "{b} {method}");
            assert_eq!(codes(&r, "customer_id"), ["exists"], "{b} {method}");
            let own = app
                .json(
                    method.clone(),
                    &format!("/api/invoices/{other_id}"),
                    &json!({ "number": "INV-2", "status": "bogus" }),
                )
                .await;
            assert_eq!(
                error_fields(&own),
                ["status"],
                "{b} {method}: {:?}",
                own.body
            );
        }
        // Unknown and read-only fields join the same answer.
        let r = app
            .json(
                Method::POST,
                "/api/invoices",
                &json!({ "customer_id": 999_999, "number": "INV-1", "status": "draft",
                          "amount_cents": 1, "issued_on": "2024-03-01", "nope": 1, "id": 3 }),
            )
            .await;
        assert_eq!(
            error_fields(&r),
            ["customer_id", "id", "nope", "number"],
            "{b}: {:?}",
            r.body
        );
        // Nothing was written, not even an audit entry.
        assert_eq!(count().await, before, "{b}");
        app.finish().await;
    }
}

#[tokio::test]
async fn no_unique_or_exists_check_for_a_field_that_failed_its_own() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let b = app.backend;
        // A stored value the write path would refuse (written around it).
        let pdb = app.platform.db();
        pdb.execute(Sql::literal(
            pdb.backend(),
            "INSERT INTO customers (name, email, country, created_at) VALUES ('Old', 'not an e-mail', 'GB', '2024-01-01 00:00:00')",
        ))
        .await
        .unwrap();
        let r = app
            .json(
                Method::POST,
                "/api/customers",
                &json!({ "name": "X", "email": "not an e-mail", "country": "GBR" }),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{b}: {:?}",
            r.body
        );
        assert_eq!(error_fields(&r), ["country", "email"], "{b}: {:?}", r.body);
        assert_eq!(
            codes(&r, "email"),
            ["email"],
            "{b}: no `unique` after `email`"
        );
        assert_eq!(codes(&r, "country"), ["too_long"], "{b}");
        // A referenced id of the wrong type is a type error only, and an
        // existing one with another error elsewhere is not reported.
        let r = app
            .json(
                Method::POST,
                "/api/invoices",
                &json!({ "customer_id": "999999", "number": "INV-1", "status": "x",
                          "amount_cents": 1, "issued_on": "2024-03-01" }),
            )
            .await;
        assert_eq!(
            error_fields(&r),
            ["customer_id", "status"],
            "{b}: {:?}",
            r.body
        );
        assert_eq!(codes(&r, "customer_id"), ["type"], "{b}");
        app.finish().await;
    }
}

#[tokio::test]
async fn include_embeds_related_records_in_one_read_per_relation() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let b = app.backend;
        let c1 = app.customer("Ada", "ada@example.com").await;
        let c2 = app.customer("Bob", "bob@example.com").await;
        let repo = app.platform.repo::<Invoice>(&Context::system());
        for (n, c) in [(1, c1), (2, c1), (3, c2), (4, c2), (5, c1)] {
            repo.create(&invoice(c, n, "draft", 10)).await.unwrap();
        }
        // The statements a request runs: the least of three tries, since
        // a token's "last used" stamp is written now and then (on a task
        // of its own, so it may land in any request's window).
        let cost = |uri: String| {
            let app = &app;
            async move {
                let mut least = u64::MAX;
                let mut res = None;
                for _ in 0..3 {
                    let before = app.platform.db().statements_run();
                    let r = app.get(&uri).await;
                    least = least.min(app.platform.db().statements_run() - before);
                    res = Some(r);
                }
                (least, res.unwrap())
            }
        };
        app.get("/api/invoices").await; // warm up (token, caches)

        // Lists: every record gets its customer, for one read more.
        let (plain_cost, plain) = cost("/api/invoices?page[size]=4".into()).await;
        let (with_cost, res) = cost("/api/invoices?page[size]=4&include=customer".into()).await;
        assert_eq!(res.status, StatusCode::OK, "{b}: {:?}", res.body);
        assert_eq!(
            with_cost,
            plain_cost + 1,
            "{b}: one read for the relation, not one per row"
        );
        let data = res.body["data"].as_array().unwrap();
        assert_eq!(data.len(), 4, "{b}");
        for r in data {
            let emb = &r["_embedded"]["customer"];
            assert_eq!(emb["id"], r["customer_id"], "{b}: {r}");
            let name = if r["customer_id"] == c1 { "Ada" } else { "Bob" };
            assert_eq!(emb["name"], name, "{b}");
        }
        assert!(plain.body["data"][0].get("_embedded").is_none(), "{b}");
        // The next page costs the same.
        let next = res.body["links"]["next"].as_str().unwrap().to_owned();
        assert!(next.contains("include=customer"), "{b}: {next}");
        let (next_cost, res) = cost(next.clone()).await;
        assert_eq!(next_cost, plain_cost + 1, "{b}");
        assert_eq!(
            res.body["data"][0]["_embedded"]["customer"]["id"], c1,
            "{b}"
        );
        // Show: one read more than without.
        let id = data[2]["id"].as_i64().unwrap();
        let (show_plain, _) = cost(format!("/api/invoices/{id}")).await;
        let (show_with, _) = cost(format!("/api/invoices/{id}?include=customer")).await;
        assert_eq!(show_with, show_plain + 1, "{b}");

        // Show.
        let id = data[2]["id"].as_i64().unwrap();
        let res = app
            .get(&format!("/api/invoices/{id}?include=customer"))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{b}: {:?}", res.body);
        assert_eq!(
            res.body["data"]["_embedded"]["customer"]["name"], "Bob",
            "{b}"
        );

        // Repeats are included once.
        let res = app
            .get("/api/invoices?include=customer,customer&include=customer")
            .await;
        assert_eq!(res.status, StatusCode::OK, "{b}: {:?}", res.body);
        assert_eq!(
            res.body["data"][0]["_embedded"].as_object().unwrap().len(),
            1,
            "{b}"
        );

        // Unknown, nested and oversized names: 422 naming them.
        for (uri, needle) in [
            ("/api/invoices?include=nope", "`nope`"),
            ("/api/invoices?include=customer,nope", "allowed: customer"),
            ("/api/invoices?include=customer.customer", "nested"),
            (&format!("/api/invoices/{id}?include=owner"), "`owner`"),
            (
                "/api/customers?include=invoices",
                "customers have no relations",
            ),
            ("/api/invoices?include=customer_id", "`customer_id`"),
            ("/api/invoices?include=", "an empty name"),
            ("/api/invoices?include=customer,", "an empty name"),
            ("/api/invoices?include=%20customer", "` customer`"),
        ] {
            let res = app.get(uri).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {uri}");
            assert_eq!(res.field_code("include"), "unknown_relation", "{b}: {uri}");
            let msg = res.body["error"]["fields"]["include"][0]["message"]
                .as_str()
                .unwrap();
            assert!(msg.contains(needle), "{b}: {uri}: {msg}");
        }
        let long = format!("/api/invoices?include={}", "a,".repeat(5000));
        let res = app.get(&long).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(res.field_code("include"), "too_long", "{b}");
        let many: Vec<String> = (0..100).map(|i| format!("x{i}")).collect();
        let res = app
            .get(&format!("/api/invoices?include={}", many.join(",")))
            .await;
        let msg = res.body["error"]["fields"]["include"][0]["message"]
            .as_str()
            .unwrap();
        assert!(msg.contains("and 95 more") && msg.len() < 300, "{b}: {msg}");
        app.finish().await;
    }
}

#[tokio::test]
async fn included_records_follow_the_readers_permissions() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let b = app.backend;
        let c1 = app.customer("Ada", "ada@example.com").await;
        let inv = app
            .platform
            .repo::<Invoice>(&Context::system())
            .create(&invoice(c1, 1, "draft", 10))
            .await
            .unwrap();
        app.role(
            "clerk",
            &[
                "view_any_invoice",
                "view_invoice",
                "view_any_customer",
                "view_customer",
            ],
        )
        .await;
        app.role("invoices_only", &["view_any_invoice", "view_invoice"])
            .await;
        let (_, clerk) = app.user("clerk@example.com", Some("clerk"), &[]).await;
        let (_, narrow) = app
            .user("narrow@example.com", Some("invoices_only"), &[])
            .await;

        // Masked like any read: pii masked inside the included record, the
        // encrypted iban withheld (named in `_hidden`, not `null`).
        let res = app
            .get_as("/api/invoices?include=customer", Some(&clerk))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{b}: {:?}", res.body);
        let rec = &res.body["data"][0];
        assert!(rec.get("iban").is_none(), "{b}: {rec}");
        assert_eq!(rec["_hidden"], json!(["iban"]), "{b}");
        assert_eq!(
            rec["_embedded"]["customer"]["email"], "a***@example.com",
            "{b}"
        );
        assert_eq!(rec["_embedded"]["customer"]["name"], "Ada", "{b}");
        let res = app
            .get_as(
                &format!("/api/invoices/{}?include=customer", inv.id),
                Some(&clerk),
            )
            .await;
        assert_eq!(res.body["data"]["_hidden"], json!(["iban"]), "{b}");
        assert_eq!(
            res.body["data"]["_embedded"]["customer"]["email"], "a***@example.com",
            "{b}"
        );
        // The administrator sees everything, and no `_hidden`.
        let res = app
            .get(&format!("/api/invoices/{}?include=customer", inv.id))
            .await;
        assert_eq!(res.body["data"]["iban"], inv.iban.clone().unwrap(), "{b}");
        assert!(res.body["data"].get("_hidden").is_none(), "{b}");
        assert_eq!(
            res.body["data"]["_embedded"]["customer"]["email"], "ada@example.com",
            "{b}"
        );

        // Without permission on customers: 403 naming it, on list and show;
        // the same request without include answers.
        for uri in [
            "/api/invoices?include=customer".to_owned(),
            format!("/api/invoices/{}?include=customer", inv.id),
        ] {
            let res = app.get_as(&uri, Some(&narrow)).await;
            assert_eq!(
                res.status,
                StatusCode::FORBIDDEN,
                "{b}: {uri}: {:?}",
                res.body
            );
            assert_eq!(res.code(), "permission_denied", "{b}");
            assert!(
                res.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("customer"),
                "{b}: {:?}",
                res.body
            );
            let plain = uri.split('?').next().unwrap();
            assert_eq!(
                app.get_as(plain, Some(&narrow)).await.status,
                StatusCode::OK,
                "{b}"
            );
        }
        app.finish().await;
    }
}

/// A comment on a note (notes have a record-level policy: owners only).
#[derive(platform_core::Resource, Debug, Clone, PartialEq)]
#[resource(table = "comments")]
pub struct Comment {
    /// Id.
    #[resource(primary_key)]
    pub id: i64,
    /// The note, maybe.
    #[resource(belongs_to = Note)]
    pub note_id: Option<i64>,
    /// Text.
    pub body: String,
}

#[tokio::test]
async fn included_records_outside_the_policy_are_left_out() {
    for db in all_backends().await {
        let registry = platform_core::resource::Registry::builder()
            .register::<platform_tests::domain::Customer>()
            .register::<Invoice>()
            .register::<Note>()
            .register::<Comment>()
            .build()
            .unwrap();
        let app = App::with_registry(&db, registry).await;
        let b = app.backend;
        app.role(
            "reader",
            &[
                "view_any_note",
                "view_note",
                "view_any_comment",
                "view_comment",
            ],
        )
        .await;
        let (ann, ann_token) = app.user("ann@example.com", Some("reader"), &[]).await;
        let (ben, _) = app.user("ben@example.com", Some("reader"), &[]).await;
        let sys = Context::system();
        let notes = app.platform.repo::<Note>(&sys);
        let mine = notes
            .create(&Note {
                id: 0,
                owner_id: ann,
                body: "mine".into(),
            })
            .await
            .unwrap();
        let theirs = notes
            .create(&Note {
                id: 0,
                owner_id: ben,
                body: "theirs".into(),
            })
            .await
            .unwrap();
        let comments = app.platform.repo::<Comment>(&sys);
        for (note, body) in [(Some(mine.id), "a"), (Some(theirs.id), "b"), (None, "c")] {
            comments
                .create(&Comment {
                    id: 0,
                    note_id: note,
                    body: body.into(),
                })
                .await
                .unwrap();
        }
        let res = app
            .get_as("/api/comments?include=note&sort=id", Some(&ann_token))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{b}: {:?}", res.body);
        let data = res.body["data"].as_array().unwrap();
        assert_eq!(data[0]["_embedded"]["note"]["body"], "mine", "{b}");
        assert_eq!(
            data[1]["_embedded"],
            json!({}),
            "{b}: another owner's note is left out, not null"
        );
        assert_eq!(data[2]["_embedded"], json!({ "note": null }), "{b}");
        app.finish().await;
    }
}

#[tokio::test]
async fn openapi_documents_include_and_withheld_fields() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let doc = app.get("/api/openapi.json").await.body;
    let list = &doc["paths"]["/invoices"]["get"]["parameters"];
    let include = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "include")
        .expect("include on list");
    assert_eq!(include["schema"]["items"]["enum"], json!(["customer"]));
    let show = &doc["paths"]["/invoices/{id}"]["get"]["parameters"];
    assert_eq!(show[0]["name"], "include", "{show}");
    let customers = &doc["paths"]["/customers"]["get"]["parameters"];
    assert!(
        !customers
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "include"),
        "customers have no relations"
    );
    let invoice = &doc["components"]["schemas"]["Invoice"];
    assert_eq!(
        invoice["properties"]["_hidden"]["items"]["enum"],
        json!(["iban"])
    );
    assert_eq!(
        invoice["properties"]["_embedded"]["properties"]["customer"]["allOf"][0]["$ref"],
        "#/components/schemas/Customer"
    );
    let required = invoice["required"].as_array().unwrap();
    assert!(!required.contains(&json!("iban")), "{required:?}");
    assert!(required.contains(&json!("number")), "{required:?}");
    app.finish().await;
}

#[tokio::test]
async fn tokens_and_permissions() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let b = app.backend;
        let cid = app.customer("Ada", "ada@example.com").await;

        // No credentials: 401 with a challenge.
        let r = app.get_as("/api/invoices", None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{b}");
        assert_eq!(r.code(), "unauthenticated");
        assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
        let r = app
            .json_as(Method::POST, "/api/invoices", None, &json!({ "bogus": 1 }))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{b}: no validation hints for strangers"
        );
        let r = app
            .send(
                App::request(Method::POST, "/api/invoices", None)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("{not json"))
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{b}");

        // Malformed, unknown, expired and revoked tokens: one answer.
        let (uid, expiring) = app.user("exp@example.com", Some("super_admin"), &[]).await;
        let (rid, revoked) = app.user("rev@example.com", Some("super_admin"), &[]).await;
        let mut q = app.platform.db().sql();
        q.push("UPDATE platform_api_tokens SET expires_at = ")
            .bind(
                Value::DateTime(chrono::Utc::now() - chrono::Duration::hours(1)),
                FieldType::DateTime,
            )
            .push(" WHERE user_id = ")
            .bind_i64(uid);
        app.platform.db().execute(q).await.unwrap();
        assert_eq!(
            app.get_as("/api/invoices", Some(&revoked)).await.status,
            StatusCode::OK
        );
        let token_id = app
            .platform
            .access()
            .tokens(rid)
            .await
            .unwrap()
            .first()
            .unwrap()
            .id;
        app.platform
            .access()
            .revoke_token(&Context::console(), token_id)
            .await
            .unwrap();
        let mut bodies = Vec::new();
        for auth in [
            "Bearer plt_unknown".to_owned(),
            "Bearer not-even-a-token".to_owned(),
            "Basic YWRtaW46c2VjcmV0".to_owned(),
            "Bearer".to_owned(),
            format!("Bearer {expiring}"),
            format!("Bearer {revoked}"),
        ] {
            let r = app
                .send(
                    Request::get("/api/invoices")
                        .header(header::AUTHORIZATION, &auth)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{b}: {auth}");
            assert_eq!(
                r.headers[header::WWW_AUTHENTICATE],
                "Bearer error=\"invalid_token\""
            );
            bodies.push(r.body);
        }
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{b}: {bodies:?}");
        assert_eq!(bodies[0]["error"]["code"], "invalid_token");

        // A token limited to some abilities.
        let (_, scoped) = app
            .user(
                "scoped@example.com",
                Some("super_admin"),
                &["view_any_invoice"],
            )
            .await;
        assert_eq!(
            app.get_as("/api/invoices", Some(&scoped)).await.status,
            StatusCode::OK
        );
        let r = app
            .json_as(
                Method::POST,
                "/api/invoices",
                Some(&scoped),
                &json!({ "number": "INV-1" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{b}: {:?}", r.body);
        assert_eq!(r.code(), "permission_denied");
        assert_eq!(
            app.get_as("/api/customers", Some(&scoped)).await.status,
            StatusCode::FORBIDDEN
        );

        // A user whose roles lack the permission.
        app.role(
            "viewer",
            &[
                "view_any_invoice",
                "view_invoice",
                "view_any_customer",
                "view_customer",
            ],
        )
        .await;
        let (_, viewer) = app.user("viewer@example.com", Some("viewer"), &[]).await;
        let inv = app
            .platform
            .repo::<Invoice>(&Context::system())
            .create(&invoice(cid, 1, "draft", 10))
            .await
            .unwrap();
        let r = app
            .get_as(&format!("/api/invoices/{}", inv.id), Some(&viewer))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{b}");
        assert_eq!(
            r.body["data"]["iban"],
            serde_json::Value::Null,
            "{b}: encrypted hidden"
        );
        let r = app.get_as("/api/customers", Some(&viewer)).await;
        assert_eq!(
            r.body["data"][0]["email"], "a***@example.com",
            "{b}: pii masked"
        );
        for (method, uri) in [
            (Method::PATCH, format!("/api/invoices/{}", inv.id)),
            (Method::POST, "/api/invoices".to_owned()),
        ] {
            let r = app
                .json_as(
                    method.clone(),
                    &uri,
                    Some(&viewer),
                    &json!({ "status": "paid" }),
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{b}: {method} {uri}");
        }
        let r = app
            .send(
                App::request(
                    Method::DELETE,
                    &format!("/api/invoices/{}", inv.id),
                    Some(&viewer),
                )
                .body(Body::empty())
                .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{b}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("delete_invoice")
        );
        assert_eq!(
            app.get_as("/api/tasks", Some(&viewer)).await.status,
            StatusCode::FORBIDDEN
        );
        // Force deleting needs its own permission.
        app.role("deleter", &["delete_invoice"]).await;
        let (_, deleter) = app.user("deleter@example.com", Some("deleter"), &[]).await;
        let r = app
            .send(
                App::request(
                    Method::DELETE,
                    &format!("/api/invoices/{}?force=true", inv.id),
                    Some(&deleter),
                )
                .body(Body::empty())
                .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{b}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("force_delete_invoice")
        );
        // A write-only caller writes but reads nothing back: its key alone.
        app.role(
            "writer",
            &["create_invoice", "update_invoice", "restore_invoice"],
        )
        .await;
        let (_, writer) = app.user("writer@example.com", Some("writer"), &[]).await;
        let r = app
            .json_as(
                Method::POST,
                "/api/invoices",
                Some(&writer),
                &json!({
                    "customer_id": cid, "number": "INV-W1", "status": "draft",
                    "amount_cents": 700, "issued_on": "2024-03-01",
                    "iban": null, "notes": "written blind"
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{b}: {:?}", r.body);
        let wid = r.body["data"]["id"].as_i64().unwrap();
        assert_eq!(r.body["data"], json!({ "id": wid }), "{b}: key alone");
        assert_eq!(
            r.headers[header::LOCATION],
            format!("/api/invoices/{wid}"),
            "{b}"
        );
        let r = app
            .json_as(
                Method::PATCH,
                &format!("/api/invoices/{wid}"),
                Some(&writer),
                &json!({ "status": "sent" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{b}: {:?}", r.body);
        assert_eq!(r.body["data"], json!({ "id": wid }), "{b}: key alone");
        let r = app
            .get_as(&format!("/api/invoices/{wid}"), Some(&writer))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{b}");
        // The same write by a viewer-writer answers the record.
        let r = app
            .get_as(&format!("/api/invoices/{wid}"), Some(&viewer))
            .await;
        assert_eq!(r.body["data"]["status"], "sent", "{b}: the write landed");
        assert_eq!(r.body["data"]["notes"], "written blind", "{b}");
        app.finish().await;
    }
}

#[tokio::test]
async fn audit_entries_of_records_and_resources() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let b = app.backend;
        let peer = SocketAddr::from(([192, 0, 2, 7], 5555));
        let mut req = App::request(Method::POST, "/api/customers", Some(&app.admin))
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", "req-abc.1")
            .header("x-forwarded-for", "203.0.113.9")
            .header(header::USER_AGENT, "api-test/1")
            .body(Body::from(
                json!({ "name": "Ada", "email": "ada@example.com", "country": "GB" }).to_string(),
            ))
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::CREATED, "{b}: {:?}", r.body);
        assert_eq!(r.headers["x-request-id"], "req-abc.1");
        let cid = r.body["data"]["id"].as_i64().unwrap();
        let r = app
            .json(
                Method::PATCH,
                &format!("/api/customers/{cid}"),
                &json!({ "email": "ada@lovelace.org", "name": "Ada L" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{b}: {:?}", r.body);

        let uri = format!("/api/audits?resource=customers&record={cid}");
        let r = app.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK, "{b}: {:?}", r.body);
        let entries = r.body["data"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{b}");
        let (updated, created) = (&entries[0], &entries[1]);
        assert_eq!(updated["event"], "updated");
        assert_eq!(
            updated["old_values"]["email"], "ada@example.com",
            "{b}: admin sees pii"
        );
        assert_eq!(updated["new_values"]["email"], "ada@lovelace.org");
        assert_eq!(created["event"], "created");
        assert_eq!(created["resource"], "customers");
        assert_eq!(created["record_id"], cid.to_string());
        assert_eq!(created["old_values"], json!({}));
        assert_eq!(created["actor"]["type"], "token");
        assert!(created["actor"]["id"].is_i64());
        assert_eq!(created["request_id"], "req-abc.1");
        assert_eq!(
            created["ip"], "192.0.2.7",
            "{b}: X-Forwarded-For is not trusted by default"
        );
        assert_eq!(created["user_agent"], "api-test/1");
        assert_eq!(created["url"], "/api/customers");
        assert!(created["created_at"].is_string());
        assert_eq!(updated["url"], format!("/api/customers/{cid}"));
        let generated = updated["request_id"].as_str().unwrap();
        assert_eq!(generated.len(), 36, "{b}: a UUID v7 when none is sent");

        // Personal data is masked for a viewer without `view_pii`.
        app.role("viewer", &["view_customer", "view_any_customer"])
            .await;
        let (_, viewer) = app.user("viewer@example.com", Some("viewer"), &[]).await;
        let r = app.get_as(&uri, Some(&viewer)).await;
        assert_eq!(r.status, StatusCode::OK, "{b}: {:?}", r.body);
        let e = &r.body["data"][0];
        assert_eq!(e["old_values"]["email"], "[hidden]", "{b}");
        assert_eq!(e["new_values"]["email"], "[hidden]", "{b}");
        assert_eq!(e["new_values"]["name"], "Ada L", "{b}: other fields shown");
        app.role("pii", &["view_customer", "view_pii"]).await;
        let (_, pii) = app.user("pii@example.com", Some("pii"), &[]).await;
        let r = app.get_as(&uri, Some(&pii)).await;
        assert_eq!(
            r.body["data"][0]["new_values"]["email"], "ada@lovelace.org",
            "{b}"
        );
        // Without `record`, `view_any_customer` is needed.
        let r = app
            .get_as("/api/audits?resource=customers", Some(&pii))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{b}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("view_any_customer")
        );
        let r = app
            .get_as("/api/audits?resource=invoices", Some(&viewer))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{b}");

        // Encrypted values are stored redacted.
        let inv = app
            .json(
                Method::POST,
                "/api/invoices",
                &json!({ "customer_id": cid, "number": "INV-1", "status": "draft", "amount_cents": 1, "issued_on": "2024-01-01", "iban": "DE00 1234" }),
            )
            .await;
        let iid = inv.body["data"]["id"].as_i64().unwrap();
        let r = app
            .get(&format!("/api/audits?resource=invoices&record={iid}"))
            .await;
        assert_eq!(
            r.body["data"][0]["new_values"]["iban"], "[encrypted]",
            "{b}"
        );

        // Recent entries of a resource, paged with `before`.
        for n in 0..3 {
            app.json(
                Method::PATCH,
                &format!("/api/customers/{cid}"),
                &json!({ "name": format!("Ada {n}") }),
            )
            .await;
        }
        let r = app.get("/api/audits?resource=customers&limit=2").await;
        assert_eq!(r.status, StatusCode::OK, "{b}: {:?}", r.body);
        assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
        assert_eq!(r.body["meta"]["has_more"], true);
        let mut all: Vec<i64> = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        let mut next = r.body["links"]["next"].as_str().map(str::to_owned);
        while let Some(n) = next {
            assert!(n.contains("before="), "{n}");
            let r = app.get(&n).await;
            all.extend(
                r.body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["id"].as_i64().unwrap()),
            );
            next = r.body["links"]["next"].as_str().map(str::to_owned);
        }
        assert_eq!(all.len(), 5, "{b}: created + 4 updates");
        assert!(
            all.windows(2).all(|w| w[0] > w[1]),
            "{b}: newest first: {all:?}"
        );
        let r = app
            .get(&format!(
                "/api/audits?resource=customers&record={cid}&limit=2&before={}",
                all[1]
            ))
            .await;
        assert_eq!(r.body["data"][0]["id"], all[2], "{b}");

        // `page[size]`, as on the lists (and `limit`, its older name).
        for q in [
            "page[size]=3",
            "page%5Bsize%5D=3",
            "limit=3",
            "page[size]=3&limit=3",
        ] {
            let r = app
                .get(&format!("/api/audits?resource=customers&{q}"))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{b}: {q}: {:?}", r.body);
            assert_eq!(r.body["data"].as_array().unwrap().len(), 3, "{b}: {q}");
            assert_eq!(r.body["meta"]["has_more"], true, "{b}: {q}");
            let next = r.body["links"]["next"].as_str().unwrap();
            let r = app.get(next).await;
            assert_eq!(
                r.body["data"].as_array().unwrap().len(),
                2,
                "{b}: {q}: the next page keeps the size: {next}"
            );
        }

        // Bad parameters.
        assert_eq!(
            app.get_as(&uri, None).await.status,
            StatusCode::UNAUTHORIZED
        );
        for (q, field) in [
            ("", "resource"),
            ("resource=nope", "resource"),
            ("resource=customers&limit=0", "limit"),
            ("resource=customers&page[size]=0", "page[size]"),
            ("resource=customers&page[size]=101", "page[size]"),
            ("resource=customers&page[size]=x", "page[size]"),
            ("resource=customers&page[size]=2&limit=3", "page[size]"),
            ("resource=customers&before=x", "before"),
            ("resource=customers&x=1", "x"),
            ("resource=customers&record=1%00", "record"),
        ] {
            let r = app.get(&format!("/api/audits?{q}")).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {q}");
            assert!(
                r.body["error"]["fields"][field].is_array(),
                "{b}: {q}: {:?}",
                r.body
            );
        }
        app.finish().await;
    }
}

#[tokio::test]
async fn routes_errors_request_ids_and_openapi() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;

    // 404s and 405s are JSON too.
    for uri in [
        "/api/nope",
        "/api/nope/1",
        "/api/a/b/c/d",
        "/api/invoices/abc",
        "/api/invoices/999",
    ] {
        let r = app.get(uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.code(), "not_found", "{uri}");
        assert!(r.headers.contains_key("x-request-id"), "{uri}");
    }
    let r = app.delete("/api/invoices").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");
    assert!(r.headers[header::ALLOW].to_str().unwrap().contains("GET"));
    let r = app
        .send(
            Request::builder()
                .method("TRACE")
                .uri("/api/invoices/1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // The API does not serve names other than plural resource names.
    assert_eq!(app.get("/api/invoice").await.status, StatusCode::NOT_FOUND);

    // Request ids: a safe one is kept, anything else replaced.
    let with_id = |id: &'static str| {
        App::request(Method::GET, "/api/invoices", Some(&app.admin))
            .header("x-request-id", id)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        app.send(with_id("abc-123")).await.headers["x-request-id"],
        "abc-123"
    );
    let r = app.send(with_id("<script>alert(1)</script>")).await;
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_ne!(id, "<script>alert(1)</script>");
    assert_eq!(app.send(with_id("abc-123")).await.status, StatusCode::OK);

    // The OpenAPI document: public, valid JSON, every resource.
    let r = app.get_as("/api/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    let doc = r.body;
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc["servers"][0]["url"], "/api");
    for path in [
        "/customers",
        "/customers/{id}",
        "/invoices",
        "/invoices/{id}",
        "/invoices/{id}/restore",
        "/tasks",
        "/tasks/{id}",
        "/audits",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    assert!(doc["paths"]["/tasks/{id}/restore"].is_null());
    let schemas = &doc["components"]["schemas"];
    for s in [
        "Customer",
        "Invoice",
        "Task",
        "InvoiceCreate",
        "InvoiceUpdate",
        "ApiError",
    ] {
        assert!(schemas[s].is_object(), "{s}");
    }
    let create = &schemas["InvoiceCreate"];
    assert_eq!(create["additionalProperties"], false);
    let required: Vec<&str> = create["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        [
            "customer_id",
            "number",
            "status",
            "amount_cents",
            "issued_on"
        ]
    );
    assert!(
        create["properties"]["id"].is_null(),
        "the primary key is not writable"
    );
    assert_eq!(
        schemas["InvoiceUpdate"]["required"],
        serde_json::Value::Null
    );
    assert_eq!(schemas["Invoice"]["properties"]["id"]["readOnly"], true);
    assert_eq!(schemas["Invoice"]["properties"]["number"]["maxLength"], 20);
    assert_eq!(
        schemas["Invoice"]["properties"]["status"]["enum"],
        json!(["draft", "sent", "paid", "void"])
    );
    assert_eq!(
        schemas["Invoice"]["properties"]["issued_on"]["format"],
        "date"
    );
    assert_eq!(schemas["Invoice"]["properties"]["notes"]["nullable"], true);
    let params: Vec<&str> = doc["paths"]["/invoices"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "search",
        "sort",
        "filter[status]",
        "filter[status][in]",
        "filter[amount_cents][gte]",
        "page[size]",
        "page[after]",
        "page[number]",
        "trashed",
        "count",
    ] {
        assert!(params.contains(&p), "{p}: {params:?}");
    }
    assert!(!params.contains(&"filter[iban]"));
    let sort = &doc["paths"]["/invoices"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sort")
        .unwrap()["schema"]["enum"];
    assert!(sort.as_array().unwrap().contains(&json!("-amount_cents")));
    for status in ["401", "403", "404", "409", "422", "503"] {
        assert!(
            doc["paths"]["/invoices/{id}"]["patch"]["responses"][status].is_object(),
            "{status}"
        );
    }
    // Served from the cache the second time, identically.
    assert_eq!(app.get_as("/api/openapi.json", None).await.body, doc);
    // Nested elsewhere, the document names that mount point.
    let other = Router::new()
        .nest("/v2", platform_admin::api_router())
        .with_state(app.platform.clone());
    let res = other
        .oneshot(
            Request::get("/v2/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let doc2: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc2["servers"][0]["url"], "/v2");
}

#[tokio::test]
async fn core_errors_pass_through_as_json() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    // The repo answers NotFound for ids of the wrong type; the API says 404.
    assert!(matches!(
        app.platform
            .records("invoices", &Context::system())
            .unwrap()
            .find(Value::Text("x".into()))
            .await,
        Err(Error::NotFound { .. })
    ));
    let r = app.get("/api/invoices/99999999999999999999999").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A back-end failure is a 500 whose detail stays in the log.
    app.platform
        .db()
        .execute_script("DROP TABLE tasks")
        .await
        .unwrap();
    let r = app.get("/api/tasks").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "internal_error");
    assert_eq!(r.body["error"]["message"], "Internal server error.");
    assert!(!r.body.to_string().contains("tasks"), "{:?}", r.body);

    // An unreachable database is a 503 with a hint when to retry.
    app.platform.db().close().await;
    let r = app.get("/api/invoices").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.code(), "unavailable");
    assert_eq!(r.headers[header::RETRY_AFTER], "5");
}

/// Serves the API over the test domain on SQLite for schemathesis:
/// `PLATFORM_API_SERVE=127.0.0.1:PORT PLATFORM_API_TOKEN_FILE=/tmp/t cargo
/// test -p platform-tests --test api -- --ignored serve_for_schemathesis`.
/// Writes a super administrator's token to the token file and serves until
/// killed.
#[tokio::test]
#[ignore = "a server for schemathesis, run by hand"]
async fn serve_for_schemathesis() {
    let Ok(addr) = std::env::var("PLATFORM_API_SERVE") else {
        return;
    };
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let cid = app.customer("Ada", "ada@example.com").await;
    let repo = app.platform.repo::<Invoice>(&Context::system());
    for n in 1..=30 {
        repo.create(&invoice(cid, n, "draft", 100)).await.unwrap();
    }
    if let Ok(path) = std::env::var("PLATFORM_API_TOKEN_FILE") {
        std::fs::write(path, &app.admin).unwrap();
    }
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    eprintln!("serving the API on http://{addr}/api");
    axum::serve(
        listener,
        app.router
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .unwrap();
}
