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
        let cy = customers.create(new("Cy", "cy@example.com")).await.unwrap();
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

#[allow(dead_code)]
fn no_store(res: &Res) -> bool {
    res.headers
        .get(header::CACHE_CONTROL)
        .is_some_and(|v| v.to_str().unwrap_or_default().contains("no-store"))
}
