//! Regression tests of the outside security review (issue 8) that concern
//! the spine: what an actor may search, filter, sort and write of fields it
//! may not see; ids reused by a database; the audit trail's bounds and
//! permissions; field validation.

use axum::http::{Method, StatusCode, header};
use platform_core::Resource;
use platform_core::context::Context;
use platform_core::db::{Backend, Sql};
use platform_core::error::Error;
use platform_core::query::ListQuery;
use platform_core::repo::Changes;
use platform_core::resource::Registry;
use platform_core::value::Value;
use platform_tests::all_backends;
use platform_tests::api::{App, Res};
use platform_tests::domain::{Customer, Invoice, Note, Task, invoice};
use serde_json::json;

/// A resource whose search, filter and sort fields include personal data.
#[derive(Resource, Debug, Clone, PartialEq)]
#[resource(table = "contacts", search(name, email))]
pub struct Contact {
    /// Id.
    #[resource(primary_key, sortable)]
    pub id: i64,
    /// Name.
    #[resource(sortable, max_length = 120)]
    pub name: String,
    /// E-mail (personal data), sortable and filterable for those who may see it.
    #[resource(pii, sortable, filter)]
    pub email: String,
}

fn registry() -> Registry {
    Registry::builder()
        .register::<Customer>()
        .register::<Invoice>()
        .register::<Task>()
        .register::<Note>()
        .register::<Contact>()
        .build()
        .expect("registry")
}

fn rows(res: &Res) -> usize {
    res.body["data"].as_array().map_or(usize::MAX, Vec::len)
}

#[tokio::test]
async fn a_search_filter_or_sort_never_looks_at_a_field_the_actor_may_not_see() {
    for db in all_backends().await {
        let app = App::with_registry(&db, registry()).await;
        let b = app.backend;
        let repo = app.platform.repo::<Contact>(&Context::system());
        for (name, email) in [
            ("Dora", "dora@example.com"),
            ("Zed", "zed@secret.org"),
            ("Amy", "amy@example.com"),
        ] {
            repo.create(&Contact {
                id: 0,
                name: name.into(),
                email: email.into(),
            })
            .await
            .unwrap();
        }
        app.role("clerk", &["view_any_contact", "view_contact"])
            .await;
        let (_, clerk) = app.user("clerk@example.com", Some("clerk"), &[]).await;
        let admin = app.admin.clone();
        // (search, rows for the administrator, rows for the clerk without view_pii)
        for (q, admin_rows, clerk_rows) in [
            ("secret", 1, 0),
            ("zed", 1, 1),
            ("dora@", 1, 0),
            ("dora@example", 1, 0),
            ("example.com", 2, 0),
            ("@s", 1, 0),
            ("or", 2, 1),
            ("Amy", 1, 1),
        ] {
            let uri = format!("/api/contacts?search={}&count=true", q.replace('@', "%40"));
            let res = app.get_as(&uri, Some(&admin)).await;
            assert_eq!(res.status, StatusCode::OK, "{b}: {q}: {:?}", res.body);
            assert_eq!(rows(&res), admin_rows, "{b}: admin searching {q:?}");
            let res = app.get_as(&uri, Some(&clerk)).await;
            assert_eq!(res.status, StatusCode::OK, "{b}: {q}: {:?}", res.body);
            assert_eq!(
                rows(&res),
                clerk_rows,
                "{b}: the clerk's search for {q:?} looked into the e-mail"
            );
            assert_eq!(
                res.body["meta"]["total"]["value"],
                json!(clerk_rows),
                "{b}: {q}: {:?}",
                res.body
            );
        }
        // Filters and sorts on the hidden field are refused, naming it.
        let res = app
            .get_as("/api/contacts?filter[email]=zed%40secret.org", Some(&clerk))
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(
            res.field_code("filter[email]"),
            "invalid",
            "{b}: {:?}",
            res.body
        );
        let res = app
            .get_as("/api/contacts?filter[email]=zed%40secret.org", Some(&admin))
            .await;
        assert_eq!(rows(&res), 1, "{b}");
        for sort in ["email", "-email"] {
            let res = app
                .get_as(&format!("/api/contacts?sort={sort}"), Some(&clerk))
                .await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
            assert_eq!(res.field_code("sort"), "invalid", "{b}");
            let res = app
                .get_as(&format!("/api/contacts?sort={sort}"), Some(&admin))
                .await;
            assert_eq!(res.status, StatusCode::OK, "{b}");
        }
        // The same rule holds below the API (the panel's lists, global
        // search and relation lookups call this): counts too.
        let ctx = clerk_context(&app, "clerk@example.com").await;
        let records = app.platform.records("contacts", &ctx).unwrap();
        let n = records
            .count(&ListQuery::new().search("secret.org"))
            .await
            .unwrap();
        assert_eq!(n.value(), 0, "{b}");
        app.finish().await;
    }
}

#[tokio::test]
async fn fields_the_actor_may_not_see_are_read_only_to_it() {
    for db in all_backends().await {
        let app = App::with_registry(&db, registry()).await;
        let b = app.backend;
        let cid = app.customer("Dora", "dora@example.com").await;
        app.role(
            "clerk",
            &[
                "view_any_customer",
                "view_customer",
                "update_customer",
                "create_customer",
                "view_any_invoice",
                "view_invoice",
                "update_invoice",
                "create_invoice",
            ],
        )
        .await;
        let (_, clerk) = app.user("clerk@example.com", Some("clerk"), &[]).await;
        let uri = format!("/api/customers/{cid}");
        let shown = app.get_as(&uri, Some(&clerk)).await;
        assert_eq!(shown.body["data"]["email"], "d***@example.com", "{b}");
        let stored_email = || async {
            app.get(&uri).await.body["data"]["email"]
                .as_str()
                .unwrap()
                .to_owned()
        };

        // Sending back what was shown, with another change, is "unchanged".
        let res = app
            .json_as(
                Method::PUT,
                &uri,
                Some(&clerk),
                &json!({ "name": "Dora M.", "email": "d***@example.com", "country": "GB" }),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{b}: {:?}", res.body);
        assert_eq!(
            stored_email().await,
            "dora@example.com",
            "{b}: the mask was stored"
        );
        assert_eq!(app.get(&uri).await.body["data"]["name"], "Dora M.", "{b}");

        // Any other value is refused, naming the field, and nothing is written;
        // even the true value (no oracle).
        for email in ["new@example.com", "dora@example.com", ""] {
            let res = app
                .json_as(
                    Method::PATCH,
                    &uri,
                    Some(&clerk),
                    &json!({ "name": "Changed", "email": email }),
                )
                .await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {email}");
            assert_eq!(res.field_code("email"), "forbidden", "{b}: {:?}", res.body);
            assert_eq!(app.get(&uri).await.body["data"]["name"], "Dora M.", "{b}");
        }
        let res = app
            .json_as(Method::PATCH, &uri, Some(&clerk), &json!({ "email": null }))
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(stored_email().await, "dora@example.com", "{b}");

        // Encrypted fields: shown as null, so null is "unchanged".
        let iid = app
            .platform
            .repo::<Invoice>(&Context::system())
            .create(&invoice(cid, 1, "draft", 100))
            .await
            .unwrap()
            .id;
        let iuri = format!("/api/invoices/{iid}");
        let iban = app.get(&iuri).await.body["data"]["iban"].clone();
        assert!(iban.is_string(), "{b}");
        assert!(app.get_as(&iuri, Some(&clerk)).await.body["data"]["iban"].is_null());
        let res = app
            .json_as(
                Method::PATCH,
                &iuri,
                Some(&clerk),
                &json!({ "iban": null, "status": "sent" }),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{b}: {:?}", res.body);
        assert_eq!(
            app.get(&iuri).await.body["data"]["iban"],
            iban,
            "{b}: IBAN wiped"
        );
        assert_eq!(app.get(&iuri).await.body["data"]["status"], "sent", "{b}");
        let res = app
            .json_as(
                Method::PATCH,
                &iuri,
                Some(&clerk),
                &json!({ "iban": "XX00" }),
            )
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(res.field_code("iban"), "forbidden", "{b}");

        // Creating: personal data may be given (the actor supplies it), an
        // encrypted value may not.
        let res = app
            .json_as(
                Method::POST,
                "/api/customers",
                Some(&clerk),
                &json!({ "name": "Eve", "email": "eve@example.com", "country": "FR" }),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{b}: {:?}", res.body);
        let body = json!({
            "customer_id": cid, "number": "INV-9", "status": "draft",
            "amount_cents": 1, "issued_on": "2024-03-01", "iban": "DE00"
        });
        let res = app
            .json_as(Method::POST, "/api/invoices", Some(&clerk), &body)
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(res.field_code("iban"), "forbidden", "{b}");
        let mut body = body;
        body["iban"] = json!(null);
        let res = app
            .json_as(Method::POST, "/api/invoices", Some(&clerk), &body)
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{b}: {:?}", res.body);

        // Bulk updates and restores follow the same rule (core, as the panel
        // and imports use it).
        let ctx = clerk_context(&app, "clerk@example.com").await;
        let customers = app.platform.records("customers", &ctx).unwrap();
        let err = customers
            .update_where(
                &ListQuery::new(),
                Changes::new().set("email", "x@example.com"),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation(f) if f.has("email")),
            "{b}: {err}"
        );
        let admin_ctx = Context::system();
        let all = app.platform.records("customers", &admin_ctx).unwrap();
        all.update(
            Value::Int(cid),
            Changes::new().set("email", "dora.new@example.com"),
        )
        .await
        .unwrap();
        let first = app
            .platform
            .audit()
            .for_record("customer", &cid.to_string(), 10)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.event == "created")
            .unwrap();
        let restored = customers
            .restore_version(Value::Int(cid), first.id)
            .await
            .unwrap();
        assert_eq!(
            restored.get("name"),
            Some(&Value::Text("Dora".into())),
            "{b}"
        );
        assert_eq!(
            stored_email().await,
            "dora.new@example.com",
            "{b}: a restore wrote a field the actor may not see"
        );
        app.finish().await;
    }
}

async fn clerk_context(app: &App, email: &str) -> Context {
    let access = app.platform.access();
    let user = access.find_user_by_email(email).await.unwrap().unwrap();
    let principal = access.principal(user.id).await.unwrap().unwrap();
    Context::new(platform_core::Actor::User(std::sync::Arc::new(principal)))
}

#[tokio::test]
async fn a_reused_id_does_not_inherit_the_deleted_records_history() {
    for db in all_backends().await {
        let app = App::with_registry(&db, registry()).await;
        let b = app.backend;
        let sys = Context::system();
        let customers = app.platform.records("customers", &sys).unwrap();
        let new = |name: &str, email: &str| {
            Changes::new()
                .set("name", name)
                .set("email", email)
                .set("country", "GB")
        };
        let ann = customers
            .create(new("Ann", "ann@example.com"))
            .await
            .unwrap();
        let aid = ann.id().as_i64().unwrap();
        customers
            .update(Value::Int(aid), Changes::new().set("name", "Ann Old"))
            .await
            .unwrap();
        let ann_update = app
            .platform
            .audit()
            .for_record("customer", &aid.to_string(), 1)
            .await
            .unwrap()[0]
            .id;
        customers.delete(Value::Int(aid)).await.unwrap();
        let bob = customers
            .create(new("Bob", "bob@example.com"))
            .await
            .unwrap();
        let bid = bob.id().as_i64().unwrap();
        assert_ne!(bid, aid, "{b}: a deleted id was given to a new record");
        customers.delete(Value::Int(bid)).await.unwrap();

        // Reuse forced on every database (a sequence reset, a restored dump).
        let reset = match app.platform.db().backend() {
            Backend::Sqlite => format!(
                "UPDATE sqlite_sequence SET seq = {} WHERE name = 'customers'",
                aid - 1
            ),
            Backend::Postgres => {
                format!("ALTER TABLE customers ALTER COLUMN id RESTART WITH {aid}")
            }
            Backend::MySql => format!("ALTER TABLE customers AUTO_INCREMENT = {aid}"),
        };
        app.platform.db().execute_script(&reset).await.unwrap();
        // On PostgreSQL a running process keeps the ids it drew from the
        // sequence before the reset (the book's write path chapter); one
        // started after it, as after a restore, draws from the reset
        // sequence.
        let started_after = match app.platform.db().backend() {
            Backend::Postgres => Some(db.another_platform(registry()).await),
            _ => None,
        };
        let cy = match &started_after {
            Some(p) => p.records("customers", &sys).unwrap(),
            None => app.platform.records("customers", &sys).unwrap(),
        }
        .create(new("Cy", "cy@example.com"))
        .await
        .unwrap();
        assert_eq!(
            cy.id().as_i64(),
            Some(aid),
            "{b}: the reset did not reuse the id"
        );

        // Cy's history is Cy's alone, through the API and the core.
        let res = app
            .get(&format!("/api/audits?resource=customers&record={aid}"))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{b}: {:?}", res.body);
        let entries = res.body["data"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{b}: {entries:?}");
        assert_eq!(entries[0]["event"], "created", "{b}");
        assert_eq!(entries[0]["new_values"]["name"], "Cy", "{b}");

        // Restoring Cy to Ann's version is refused, and says why.
        let err = customers
            .restore_version(Value::Int(aid), ann_update)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("before this")
                || matches!(&err, Error::Validation(f) if f.iter().any(|e| e.message.contains("earlier record"))),
            "{b}: {err:?}"
        );
        let name = customers.find(Value::Int(aid)).await.unwrap();
        assert_eq!(name.get("name"), Some(&Value::Text("Cy".into())), "{b}");
        if let Some(p) = started_after {
            p.shutdown().await;
        }
        app.finish().await;
    }
}

/// A query that counts rows, for checks below the API.
#[allow(dead_code)]
async fn count(app: &App, sql: &'static str) -> i64 {
    app.platform
        .db()
        .fetch_i64(Sql::literal(app.platform.db().backend(), sql))
        .await
        .unwrap()
        .unwrap_or(0)
}

fn no_store(res: &Res) -> bool {
    res.headers
        .get(header::CACHE_CONTROL)
        .is_some_and(|v| v.to_str().unwrap_or_default().contains("no-store"))
}

#[tokio::test]
async fn audit_pages_are_bounded_in_bytes() {
    for db in all_backends().await {
        let app = App::with_registry(&db, registry()).await;
        let b = app.backend;
        let cid = app.customer("Dora", "dora@example.com").await;
        let sys = Context::system();
        let invoices = app.platform.records("invoices", &sys).unwrap();
        let id = app
            .platform
            .repo::<Invoice>(&sys)
            .create(&invoice(cid, 1, "draft", 100))
            .await
            .unwrap()
            .id;
        // Twenty updates of 1 MB notes: 40 MB of values in the trail.
        let big = "x".repeat(1_000_000);
        for i in 0..20 {
            invoices
                .update(
                    Value::Int(id),
                    Changes::new().set("notes", format!("{i:02}{big}")),
                )
                .await
                .unwrap();
        }
        let uri = format!("/api/audits?resource=invoices&record={id}&limit=100");
        let res = app
            .send(
                App::request(Method::GET, &uri, Some(&app.admin))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{b}");
        let bytes = serde_json::to_vec(&res.body).unwrap().len();
        assert!(bytes < 300_000, "{b}: {bytes} bytes in one page");
        let entries = res.body["data"].as_array().unwrap();
        assert_eq!(entries.len(), 21, "{b}");
        let newest = &entries[0];
        assert_eq!(newest["truncated"], json!(["notes"]), "{b}");
        let shown = newest["new_values"]["notes"].as_str().unwrap();
        assert_eq!(shown.chars().count(), 1001, "{b}");
        assert!(shown.starts_with("19xxx") && shown.ends_with('…'), "{b}");
        // The whole entry is one link away, under the same rules.
        let href = newest["href"].as_str().unwrap();
        let whole = app.get(href).await;
        assert_eq!(whole.status, StatusCode::OK, "{b}: {:?}", whole.body);
        assert_eq!(
            whole.body["data"]["new_values"]["notes"]
                .as_str()
                .unwrap()
                .len(),
            1_000_002,
            "{b}"
        );
        assert_eq!(whole.body["data"]["truncated"], json!([]), "{b}");
        app.role("reader", &["view_any_invoice"]).await;
        let (_, reader) = app.user("reader@example.com", Some("reader"), &[]).await;
        assert_eq!(
            app.get_as(href, Some(&reader)).await.status,
            StatusCode::FORBIDDEN,
            "{b}: an entry needs view_ of its record"
        );
        assert_eq!(
            app.get("/api/audits/999999").await.status,
            StatusCode::NOT_FOUND,
            "{b}"
        );

        // Many entries of middling size: pages stop at the byte budget and
        // the next pages hold the rest, exactly once each.
        let mid = "y".repeat(1_500);
        for i in 0..150 {
            invoices
                .update(
                    Value::Int(id),
                    Changes::new().set("notes", format!("{i}{mid}")),
                )
                .await
                .unwrap();
        }
        let log = app.platform.audit();
        let filter = platform_core::audit::AuditFilter {
            resource: Some("invoice"),
            record_id: Some(&id.to_string()),
        };
        let mut before = None;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = log.list(filter, before, 1000).await.unwrap();
            pages += 1;
            let size: usize = page
                .entries
                .iter()
                .map(|e| {
                    e.old_values.as_deref().map_or(0, str::len)
                        + e.new_values.as_deref().map_or(0, str::len)
                })
                .sum();
            assert!(
                size <= platform_core::audit::PAGE_BYTE_BUDGET,
                "{b}: {size}"
            );
            seen.extend(page.entries.iter().map(|e| e.id));
            if !page.has_more {
                break;
            }
            before = page.next_before;
        }
        assert!(pages > 1, "{b}: one page held everything");
        let n = seen.len();
        seen.dedup();
        assert_eq!(seen.len(), n, "{b}: an entry on two pages");
        assert_eq!(n, 171, "{b}");
        app.finish().await;
    }
}

#[tokio::test]
async fn the_resource_wide_trail_and_client_addresses_need_view_audit() {
    for db in all_backends().await {
        let app = App::with_registry(&db, registry()).await;
        let b = app.backend;
        let cid = app.customer("Dora", "dora@example.com").await;
        let ctx = Context::system().with_ip("203.0.113.7".parse().unwrap());
        let id = app
            .platform
            .repo::<Invoice>(&ctx)
            .create(&invoice(cid, 1, "draft", 100))
            .await
            .unwrap()
            .id;
        app.platform
            .records("invoices", &ctx)
            .unwrap()
            .force_delete(Value::Int(id))
            .await
            .unwrap();
        app.role("lister", &["view_any_invoice"]).await;
        app.role("viewer", &["view_any_invoice", "view_invoice"])
            .await;
        app.role(
            "auditor",
            &["view_any_invoice", "view_invoice", "view_audit"],
        )
        .await;
        let (_, lister) = app.user("lister@example.com", Some("lister"), &[]).await;
        let (_, viewer) = app.user("viewer@example.com", Some("viewer"), &[]).await;
        let (_, auditor) = app.user("auditor@example.com", Some("auditor"), &[]).await;
        let all = "/api/audits?resource=invoices";
        let one = format!("/api/audits?resource=invoices&record={id}");
        // view_any_ alone no longer reads every record's history.
        for t in [&lister, &viewer] {
            let res = app.get_as(all, Some(t)).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{b}: {:?}", res.body);
        }
        assert_eq!(
            app.get_as(&one, Some(&lister)).await.status,
            StatusCode::FORBIDDEN,
            "{b}"
        );
        // A record's own history without view_audit: no address, no agent.
        let res = app.get_as(&one, Some(&viewer)).await;
        assert_eq!(res.status, StatusCode::OK, "{b}");
        let e = &res.body["data"][0];
        assert_eq!(e["event"], "force_deleted", "{b}");
        assert!(e["ip"].is_null(), "{b}: {e}");
        // With view_audit: the whole trail, with addresses.
        let res = app.get_as(all, Some(&auditor)).await;
        assert_eq!(res.status, StatusCode::OK, "{b}");
        assert_eq!(res.body["data"][0]["ip"], "203.0.113.7", "{b}");
        assert!(no_store(&res), "{b}: audit values must not be cached");
        app.finish().await;
    }
}

/// A database made by the previous release (framework migrations 1 to 3,
/// with users, a token, a role and a sealed audit chain) upgrades through
/// migration 4: SQLite's tables are rebuilt with AUTOINCREMENT keys and
/// nothing is lost, the old chain still verifies, and new entries carry
/// MACs and continue it.
#[tokio::test]
async fn the_hardening_migration_upgrades_an_existing_database() {
    use platform_core::audit::{Entry, GENESIS};
    use platform_core::crypto::Crypto;
    use platform_core::db::{Db, MigrationSet};
    use platform_core::platform::FRAMEWORK_MIGRATIONS;

    for tdb in all_backends().await {
        let b = tdb.backend.name();
        let db = Db::connect(&tdb.url).await.unwrap();
        let old = MigrationSet {
            name: FRAMEWORK_MIGRATIONS.name,
            migrations: &FRAMEWORK_MIGRATIONS.migrations[..3],
            backends: &[],
        };
        assert_eq!(old.run(&db).await.unwrap(), 3, "{b}");
        let now = match db.backend() {
            Backend::Sqlite => "'2026-01-01T00:00:00.000000Z'",
            _ => "'2026-01-01 00:00:00'",
        };
        for sql in [
            format!(
                "INSERT INTO platform_users (id, email, name, password_hash, created_at, updated_at) VALUES (4, 'a@example.com', 'A', 'x', {now}, {now})"
            ),
            format!(
                "INSERT INTO platform_users (id, email, name, password_hash, created_at, updated_at) VALUES (5, 'b@example.com', 'B', 'x', {now}, {now})"
            ),
            format!("INSERT INTO platform_roles (id, name, created_at) VALUES (1, 'clerk', {now})"),
            "INSERT INTO platform_user_roles (user_id, role_id) VALUES (4, 1)".to_owned(),
            format!(
                "INSERT INTO platform_api_tokens (id, user_id, name, token_hash, abilities, created_at) VALUES (1, 4, 't', '{}', '[\"*\"]', {now})",
                "a".repeat(64)
            ),
        ] {
            db.execute_script(&sql)
                .await
                .unwrap_or_else(|e| panic!("{b}: {sql}: {e}"));
        }
        // Two sealed entries and a head, as the previous release wrote them
        // (no MAC; the head signed without a key id).
        let crypto = Crypto::new(&platform_tests::test_key(), &[]);
        let mut prev = GENESIS.to_owned();
        for seq in 1..=2_i64 {
            let e = Entry {
                id: seq,
                seq: Some(seq),
                event: "created".into(),
                resource: "user".into(),
                record_id: (seq + 3).to_string(),
                old_values: None,
                new_values: Some(r#"{"name":"A"}"#.into()),
                actor_type: "console".into(),
                actor_id: None,
                actor_label: None,
                ip: None,
                user_agent: None,
                url: None,
                request_id: None,
                tags: None,
                created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
                prev_hash: None,
                hash: None,
                mac: None,
                truncated: Vec::new(),
            };
            let hash = e.compute_hash(seq, &prev);
            let sql = format!(
                "INSERT INTO platform_audits (id, seq, event, resource, record_id, new_values, actor_type, created_at, prev_hash, hash) VALUES ({seq}, {seq}, 'created', 'user', '{}', '{{\"name\":\"A\"}}', 'console', {now}, '{prev}', '{hash}')",
                seq + 3
            );
            db.execute_script(&sql).await.unwrap();
            prev = hash;
        }
        let sig = crypto.sign(format!("audit-head:2:{prev}").as_bytes());
        db.execute_script(&format!(
            "INSERT INTO platform_audit_chain (id, seq, head_hash, signature, updated_at) VALUES (1, 2, '{prev}', '{sig}', {now})"
        ))
        .await
        .unwrap();
        if db.backend() == Backend::Postgres {
            // Explicit ids do not move PostgreSQL's identity sequences.
            for (t, n) in [
                ("platform_users", 5),
                ("platform_roles", 1),
                ("platform_api_tokens", 1),
                ("platform_audits", 2),
            ] {
                db.execute_script(&format!(
                    "SELECT setval(pg_get_serial_sequence('{t}', 'id'), {n})"
                ))
                .await
                .unwrap();
            }
        }
        db.close().await;

        // The new release starts on it.
        let p = platform_core::Platform::builder()
            .ignore_env()
            .database_url(&tdb.url)
            .app_key(platform_tests::test_key())
            .registry(Registry::builder().build().unwrap())
            .background_tasks(false)
            .build()
            .await
            .unwrap_or_else(|e| panic!("{b}: {e}"));
        let r = p.audit().verify().await.unwrap();
        assert!(r.is_ok(), "{b}: {r:?}");
        assert!(r.checked >= 2, "{b}: {r:?}");
        let access = p.access();
        let a = access.user(4).await.unwrap().expect("user kept");
        assert_eq!(a.email, "a@example.com", "{b}");
        assert_eq!(access.tokens(4).await.unwrap().len(), 1, "{b}: token kept");
        assert_eq!(
            access.grants(4).await.unwrap().roles(),
            &["clerk".to_owned()],
            "{b}: role kept"
        );
        // New writes carry MACs and continue the chain.
        let console = Context::console();
        p.db()
            .execute_script("DELETE FROM platform_users WHERE id = 5")
            .await
            .unwrap();
        let c = access
            .create_user(
                &console,
                platform_core::access::NewUser {
                    email: "c@example.com".into(),
                    name: "C".into(),
                    password: "correct horse battery staple".into(),
                },
            )
            .await
            .unwrap();
        assert!(c.id > 5, "{b}: the deleted user's id {} was reused", c.id);
        p.audit().seal().await.unwrap();
        let r = p.audit().verify().await.unwrap();
        assert!(r.is_ok(), "{b}: {r:?}");
        assert!(r.checked >= 3, "{b}: {r:?}");
        if p.db().backend() == Backend::Sqlite {
            let n = p
                .db()
                .fetch_i64(Sql::literal(
                    Backend::Sqlite,
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'platform_%' AND name <> 'platform_outbox' AND sql LIKE '%AUTOINCREMENT%'",
                ))
                .await
                .unwrap()
                .unwrap_or(0);
            assert_eq!(n, 8, "{b}: tables rebuilt with AUTOINCREMENT");
            let broken = p
                .db()
                .fetch_i64(Sql::literal(
                    Backend::Sqlite,
                    "SELECT COUNT(*) FROM pragma_foreign_key_check",
                ))
                .await
                .unwrap()
                .unwrap_or(0);
            assert_eq!(broken, 0, "{b}");
        }
        p.shutdown().await;
    }
}

#[tokio::test]
async fn e_mail_fields_and_required_strings_are_validated() {
    let db = platform_tests::TestDb::sqlite();
    let app = App::with_registry(&db, registry()).await;
    for (body, field, code) in [
        (
            json!({ "name": "Eve", "email": "not an email", "country": "FR" }),
            "email",
            "email",
        ),
        (
            json!({ "name": "Eve", "email": "a\"><svg/onload=alert(1)>@x.com", "country": "FR" }),
            "email",
            "email",
        ),
        (
            json!({ "name": "", "email": "eve@example.com", "country": "FR" }),
            "name",
            "required",
        ),
        (
            json!({ "name": "   ", "email": "eve@example.com", "country": "FR" }),
            "name",
            "required",
        ),
    ] {
        let res = app.json(Method::POST, "/api/customers", &body).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(res.field_code(field), code, "{body}: {:?}", res.body);
    }
    // Both at once, and nothing written.
    let res = app
        .json(
            Method::POST,
            "/api/customers",
            &json!({ "name": "", "email": "nope", "country": "FR" }),
        )
        .await;
    assert_eq!(res.field_code("name"), "required");
    assert_eq!(res.field_code("email"), "email");
    assert_eq!(rows(&app.get("/api/customers").await), 0);
    let ok = app
        .json(
            Method::POST,
            "/api/customers",
            &json!({ "name": "Eve", "email": "eve+tag@example.co.uk", "country": "FR" }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
    // An update is checked the same way.
    let id = ok.body["data"]["id"].as_i64().unwrap();
    let res = app
        .json(
            Method::PATCH,
            &format!("/api/customers/{id}"),
            &json!({ "email": "eve at example.com" }),
        )
        .await;
    assert_eq!(res.field_code("email"), "email");
    // Paging past the limit names the limit.
    let res = app.get("/api/customers?page[number]=10000000").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let msg = res.body["error"]["fields"]["page[number]"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains("1 to 1000000"), "{msg}");
    app.finish().await;
}
