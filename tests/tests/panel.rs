//! The admin panel (`platform_admin::panel_router`) on every configured
//! database, driven through `tower::ServiceExt::oneshot`: every page
//! renders, permissions hide and refuse, lists search/sort/filter/page,
//! forms validate and save, the activity log restores versions, bulk
//! actions act on ids and on queries, output is escaped, and errors are
//! pages.
//!
//! A small test layer stands in for the session layer: it inserts the
//! [`PanelAuth`] of the user named by the `x-test-user` header.

use platform_tests::panel::enc;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use platform_admin::PanelConfig;
use platform_admin::panel::bulk::{BulkFuture, BulkInput};
use platform_admin::panel::widget::{WidgetContext, WidgetFuture};
use platform_admin::panel::{BulkAction, PanelAuth, Widget};
use platform_core::Platform;
use platform_core::context::Context;
use platform_core::notification::Notice;
use platform_core::query::ListQuery;
use platform_core::repo::Changes;
use platform_core::value::Value;
use platform_tests::domain::{Customer, Invoice, Note, customer, invoice, registry};
use platform_tests::{TestDb, all_backends, users};
use tower::ServiceExt;

const CSRF: &str = "test-csrf-token";

/// An answer of the panel.
#[derive(Debug)]
struct Res {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Res {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
    /// The `name=value` of every `Set-Cookie`.
    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().to_owned())
            .collect()
    }
    /// The `href` of the first link with `rel`.
    fn rel(&self, rel: &str) -> Option<String> {
        let needle = format!("rel=\"{rel}\"");
        let at = self.body.find(&needle)?;
        let start = self.body[..at].rfind("href=\"")? + 6;
        let end = start + self.body[start..].find('"')?;
        Some(unescape(&self.body[start..end]))
    }
}

/// Undoes the HTML escaping of an attribute value.
fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

type AuthCache = Arc<Mutex<HashMap<i64, PanelAuth>>>;

/// Stands in for the session layer: the user of `x-test-user` (the last
/// known auth when the database is gone, so the panel meets the outage).
async fn test_auth(platform: Platform, cache: AuthCache, mut req: Request, next: Next) -> Response {
    let user = req
        .headers()
        .get("x-test-user")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let auth = match user {
        None => None,
        Some(id) => match PanelAuth::for_user(&platform, id, CSRF).await {
            Ok(auth) => {
                if let Some(a) = &auth {
                    cache.lock().unwrap().insert(id, a.clone());
                }
                auth
            }
            Err(_) => cache.lock().unwrap().get(&id).cloned(),
        },
    };
    if let Some(auth) = auth {
        let ctx = auth
            .ctx
            .clone()
            .with_url(req.uri().to_string())
            .with_request_id("test-request");
        req.extensions_mut().insert(auth.with_context(ctx));
    }
    next.run(req).await
}

struct App {
    router: Router,
    platform: Platform,
    admin: i64,
    backend: &'static str,
}

impl App {
    async fn new(db: &TestDb) -> Self {
        let platform = db.platform(registry()).await;
        Self::with_platform(platform, db.backend.name()).await
    }

    async fn with_platform(platform: Platform, backend: &'static str) -> Self {
        Self::with_config(platform, backend, PanelConfig::new()).await
    }

    async fn with_config(platform: Platform, backend: &'static str, config: PanelConfig) -> Self {
        let p = platform.clone();
        let cache = AuthCache::default();
        let router = Router::new()
            .nest("/admin", platform_admin::panel_router_with(config))
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| test_auth(p.clone(), cache.clone(), req, next),
            ))
            .with_state(platform.clone());
        let mut app = Self {
            router,
            platform,
            admin: 0,
            backend,
        };
        app.admin = app.user("admin@example.com", Some("super_admin")).await;
        app
    }

    async fn user(&self, email: &str, role: Option<&str>) -> i64 {
        let id = users::user(&self.platform, email).await;
        if let Some(role) = role {
            users::assign(&self.platform, id, role).await;
        }
        id
    }

    async fn role(&self, name: &str, permissions: &[&str]) {
        users::role(&self.platform, name, permissions).await;
    }

    async fn send(&self, req: Request<Body>) -> Res {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Res {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, user: i64, uri: &str) -> Res {
        self.get_with(user, uri, &[]).await
    }

    async fn get_with(&self, user: i64, uri: &str, headers: &[(&str, &str)]) -> Res {
        let mut b = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header("x-test-user", user.to_string());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, user: i64, uri: &str, fields: &[(&str, &str)]) -> Res {
        let mut all = vec![("_csrf", CSRF)];
        all.extend_from_slice(fields);
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("x-test-user", user.to_string())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form_body(&all)))
            .unwrap();
        self.send(req).await
    }

    async fn customer(&self, name: &str, email: &str) -> Customer {
        self.platform
            .repo::<Customer>(&Context::console())
            .create(&customer(name, email, "DE"))
            .await
            .unwrap()
    }

    async fn invoices(&self, customer_id: i64, n: u32) -> Vec<Invoice> {
        let repo = self.platform.repo::<Invoice>(&Context::console());
        let mut out = Vec::new();
        for i in 1..=n {
            let status = ["draft", "sent", "paid", "void"][(i % 4) as usize];
            out.push(
                repo.create(&invoice(customer_id, i, status, i64::from(i) * 1000))
                    .await
                    .unwrap(),
            );
        }
        out
    }

    fn expect(&self, res: &Res, status: StatusCode, what: &str) {
        assert_eq!(
            res.status,
            status,
            "{}: {what}: {}",
            self.backend,
            &res.body[..res.body.len().min(3000)]
        );
    }
}

/// Table rows of a list page (by the row checkboxes' values).
fn row_ids(body: &str) -> Vec<String> {
    body.match_indices("name=\"ids\" value=\"")
        .map(|(i, m)| {
            let rest = &body[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn every_page_renders_for_a_super_admin() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        let c = app.customer("Acme Ltd", "billing@acme.example").await;
        let inv = app.invoices(c.id, 3).await;
        let i = inv[0].id;
        let pages = [
            "/admin",
            "/admin/customers",
            "/admin/invoices",
            "/admin/invoices?trashed=with&sort=-amount_cents",
            "/admin/invoices/new",
            &format!("/admin/invoices/{i}"),
            &format!("/admin/invoices/{i}/edit"),
            &format!("/admin/invoices/{i}/delete"),
            &format!("/admin/customers/{}", c.id),
            "/admin/tasks",
            "/admin/tasks/new",
            "/admin/notes",
            "/admin/search?q=INV",
            "/admin/search",
            "/admin/access/users",
            "/admin/access/users/new",
            &format!("/admin/access/users/{a}"),
            "/admin/access/roles",
            "/admin/access/roles/super_admin",
            "/admin/access/tokens",
            "/admin/notifications",
        ];
        for page in pages {
            let res = app.get(a, page).await;
            app.expect(&res, StatusCode::OK, page);
            assert!(
                res.headers[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html"),
                "{page}"
            );
            assert!(
                res.body.contains(CSRF),
                "{page}: the CSRF token is on every page"
            );
            assert!(!res.body.contains(" style="), "{page}: no inline styles");
            assert!(!res.body.contains("<script>"), "{page}: no inline scripts");
        }
        // The layout: navigation grouped as declared, the bell, the search box.
        let home = app.get(a, "/admin").await;
        assert!(home.body.contains(">Billing</h2>"), "{}", app.backend);
        assert!(home.body.contains("href=\"/admin/invoices\""));
        assert!(home.body.contains("data-bell-count>0<"));
        assert!(home.body.contains("action=\"/admin/search\""));
        // The dashboard's widgets: counts and recent activity.
        assert!(home.body.contains("widget-counts"));
        assert!(
            home.body
                .contains("<span class=\"n\">3</span><span class=\"label\">Invoices</span>")
        );
        assert!(home.body.contains("widget-activity"));
        assert!(home.body.contains(&format!("href=\"/admin/invoices/{i}\"")));
        // Global search finds the invoices.
        let s = app.get(a, "/admin/search?q=INV-000002").await;
        assert!(s.body.contains("INV-000002"), "{}", app.backend);
        // The relation picker's endpoint.
        let l = app.get(a, "/admin/customers/lookup?q=Acme").await;
        app.expect(&l, StatusCode::OK, "lookup");
        let json: serde_json::Value = serde_json::from_str(&l.body).unwrap();
        assert_eq!(json["data"][0]["title"], "Acme Ltd");
        assert_eq!(json["data"][0]["id"], c.id.to_string());
        // The invoice list shows the customer's title, fetched in one query.
        let list = app.get(a, "/admin/invoices").await;
        assert!(list.body.contains(&format!(
            "<a href=\"/admin/customers/{}\">Acme Ltd</a>",
            c.id
        )));
        // Money is shown as an amount.
        assert!(list.body.contains("10.00"), "{}", app.backend);
        // Static assets are public and cached.
        for asset in ["/admin/static/panel.css", "/admin/static/panel.js"] {
            let res = app
                .send(Request::get(asset).body(Body::empty()).unwrap())
                .await;
            assert_eq!(res.status, StatusCode::OK, "{asset}");
            assert!(
                res.headers[header::CACHE_CONTROL]
                    .to_str()
                    .unwrap()
                    .contains("max-age")
            );
        }
    }
}

#[tokio::test]
async fn without_a_session_pages_redirect_to_the_login() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let req = Request::get("/admin/invoices?search=a%20b")
        .body(Body::empty())
        .unwrap();
    let res = app.send(req).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(
        res.location(),
        "/admin/login?next=%2Fadmin%2Finvoices%3Fsearch%3Da%2520b"
    );
    let req = Request::post("/admin/invoices")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn missing_permissions_hide_buttons_and_are_refused() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        app.role(
            "clerk",
            &[
                "view_any_invoice",
                "view_invoice",
                "update_invoice",
                "view_any_customer",
            ],
        )
        .await;
        let clerk = app.user("clerk@example.com", Some("clerk")).await;
        let c = app.customer("Acme", "a@acme.example").await;
        let i = app.invoices(c.id, 2).await[0].id;

        let list = app.get(clerk, "/admin/invoices").await;
        app.expect(&list, StatusCode::OK, "list");
        assert!(
            !list.body.contains("/delete\""),
            "{}: no delete link",
            app.backend
        );
        assert!(!list.body.contains("value=\"delete\""), "no bulk delete");
        assert!(!list.body.contains("New Invoice"), "no create button");
        assert!(list.body.contains(&format!("/admin/invoices/{i}/edit")));
        let view = app.get(clerk, &format!("/admin/invoices/{i}")).await;
        app.expect(&view, StatusCode::OK, "view");
        assert!(!view.body.contains("/delete\""));
        // Navigation shows only what the user may list.
        assert!(!list.body.contains("href=\"/admin/tasks\""));
        assert!(!list.body.contains("/admin/access/users"));

        // Refused server-side all the same.
        let res = app
            .post(clerk, &format!("/admin/invoices/{i}/delete"), &[])
            .await;
        app.expect(&res, StatusCode::FORBIDDEN, "delete");
        assert!(
            res.body.contains("delete_invoice"),
            "the 403 page names the permission"
        );
        assert!(res.body.contains("<html"), "an HTML page");
        let res = app.get(clerk, &format!("/admin/invoices/{i}/delete")).await;
        app.expect(&res, StatusCode::FORBIDDEN, "confirm page");
        let res = app
            .post(
                clerk,
                "/admin/invoices/bulk",
                &[
                    ("action", "delete"),
                    ("ids", &i.to_string()),
                    ("confirmed", "1"),
                ],
            )
            .await;
        app.expect(&res, StatusCode::FORBIDDEN, "bulk delete");
        let res = app.post(clerk, "/admin/invoices", &[("number", "X")]).await;
        app.expect(&res, StatusCode::FORBIDDEN, "create");
        let res = app.get(clerk, "/admin/tasks").await;
        app.expect(&res, StatusCode::FORBIDDEN, "tasks");
        let res = app.get(clerk, "/admin/access/roles").await;
        app.expect(&res, StatusCode::FORBIDDEN, "roles");
        let found = app
            .platform
            .repo::<Invoice>(&Context::console())
            .find(i)
            .await;
        assert!(found.is_ok(), "{}: nothing was deleted", app.backend);
        // PII is masked without view_pii.
        let customers = app.get(clerk, "/admin/customers").await;
        assert!(
            customers.body.contains("a***@acme.example"),
            "{}",
            app.backend
        );
        assert!(!customers.body.contains("a@acme.example"));
    }
}

#[tokio::test]
async fn lists_search_sort_filter_and_page() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        let c = app.customer("Acme", "a@acme.example").await;
        app.invoices(c.id, 30).await;

        let res = app.get(a, "/admin/invoices?search=INV-000012").await;
        app.expect(&res, StatusCode::OK, "search");
        assert!(res.body.contains("INV-000012"));
        assert!(!res.body.contains("INV-000013"), "{}", app.backend);
        assert!(
            res.body.contains("value=\"INV-000012\""),
            "the search box keeps the text"
        );

        let res = app
            .get(a, "/admin/invoices?sort=-amount_cents&page%5Bsize%5D=5")
            .await;
        app.expect(&res, StatusCode::OK, "sort");
        let first = res.body.find("INV-000030").expect("largest first");
        let second = res.body.find("INV-000029").expect("then the next");
        assert!(first < second);
        assert!(res.body.contains("aria-sort=\"descending\""));

        let res = app.get(a, "/admin/invoices?filter%5Bstatus%5D=paid").await;
        let ids = row_ids(&res.body);
        assert_eq!(
            ids.len(),
            8,
            "{}: 30 invoices, every fourth is paid",
            app.backend
        );
        // Money filters take amounts.
        let res = app
            .get(a, "/admin/invoices?filter%5Bamount_cents%5D%5Bgte%5D=250.00&filter%5Bamount_cents%5D%5Blte%5D=260")
            .await;
        app.expect(&res, StatusCode::OK, "range");
        assert_eq!(row_ids(&res.body).len(), 2, "{}", app.backend);
        // The count is shown.
        let res = app.get(a, "/admin/invoices?page%5Bsize%5D=10").await;
        assert!(res.body.contains("1–10 of 30"), "{}", app.backend);

        // Keyset pages: follow "next" to the end, then "previous" back.
        let mut seen = Vec::new();
        let mut pages = Vec::new();
        let mut url = "/admin/invoices?page%5Bsize%5D=10&sort=number".to_owned();
        loop {
            let res = app.get(a, &url).await;
            app.expect(&res, StatusCode::OK, &url);
            seen.extend(row_ids(&res.body));
            pages.push(res.body.clone());
            match res.rel("next") {
                Some(next) => url = next,
                None => break,
            }
        }
        assert_eq!(seen.len(), 30, "{}", app.backend);
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 30);
        let last = app.get(a, &url).await;
        let prev = app
            .get(a, &last.rel("prev").expect("a previous link"))
            .await;
        assert_eq!(row_ids(&prev.body), row_ids(&pages[1]), "{}", app.backend);
        let first = app
            .get(a, &prev.rel("prev").expect("back to the first"))
            .await;
        assert_eq!(row_ids(&first.body), row_ids(&pages[0]));

        // Unknown sort and filter fields: the list shows why.
        let res = app.get(a, "/admin/invoices?sort=iban").await;
        app.expect(&res, StatusCode::OK, "bad sort");
        assert!(res.body.contains("cannot sort by"), "{}", app.backend);
        let res = app.get(a, "/admin/invoices?filter%5Bnope%5D=1").await;
        app.expect(&res, StatusCode::OK, "bad filter");
        assert!(res.body.contains("cannot filter by `nope`"));
        let res = app.get(a, "/admin/invoices?bogus=2").await;
        app.expect(&res, StatusCode::OK, "unknown parameter");
        assert!(
            res.body
                .contains("<code>bogus</code> is not a known parameter")
        );
        let res = app.get(a, "/admin/invoices?page%5Bafter%5D=garbage").await;
        assert!(res.body.contains("not a valid cursor"));

        // The partial refresh renders only the table region.
        let res = app
            .get_with(
                a,
                "/admin/invoices?filter%5Bstatus%5D=void",
                &[("x-panel-fragment", "list")],
            )
            .await;
        app.expect(&res, StatusCode::OK, "fragment");
        assert!(!res.body.contains("<html"));
        assert!(res.body.contains("data-list-table"));
    }
}

#[tokio::test]
async fn forms_validate_then_create_and_edit() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        let c = app.customer("Acme", "a@acme.example").await;
        let cid = c.id.to_string();

        let bad = [
            ("customer_id", cid.as_str()),
            ("number", ""),
            ("status", "lost"),
            ("amount_cents", "12.345"),
            ("issued_on", "2024-02-01"),
            ("notes", "kept <b>input</b>"),
        ];
        let res = app.post(a, "/admin/invoices", &bad).await;
        app.expect(&res, StatusCode::UNPROCESSABLE_ENTITY, "invalid create");
        assert!(
            res.body
                .contains("must be an amount with at most two decimals")
        );
        // Every field error at once: the unreadable amount with the core's
        // checks of the other fields.
        assert!(
            res.body.contains("must be one of: draft, sent, paid, void")
                && res.body.contains("is required"),
            "{}: {}",
            app.backend,
            res.body
        );
        assert!(
            res.body.contains("value=\"12.345\""),
            "the user's input is kept"
        );
        assert!(
            res.body.contains("kept &lt;b&gt;input&lt;/b&gt;"),
            "{}",
            res.body
        );
        let res = app
            .post(
                a,
                "/admin/invoices",
                &[
                    ("customer_id", cid.as_str()),
                    ("number", ""),
                    ("status", "lost"),
                    ("amount_cents", "12.34"),
                    ("issued_on", "2024-02-01"),
                ],
            )
            .await;
        app.expect(&res, StatusCode::UNPROCESSABLE_ENTITY, "core validation");
        assert!(res.body.contains("is required"), "{}", app.backend);
        assert!(res.body.contains("must be one of"));

        let good = [
            ("customer_id", cid.as_str()),
            ("number", "INV-777777"),
            ("status", "sent"),
            ("amount_cents", "1,234.56"),
            ("issued_on", "2024-02-01"),
            ("notes", ""),
            ("iban", "DE00 1234"),
        ];
        let res = app.post(a, "/admin/invoices", &good).await;
        app.expect(&res, StatusCode::SEE_OTHER, "create");
        let location = res.location().to_owned();
        assert!(location.starts_with("/admin/invoices/"));
        let flash = res
            .cookies()
            .into_iter()
            .find(|c| c.starts_with("platform_flash="))
            .unwrap();
        let id: i64 = location.rsplit('/').next().unwrap().parse().unwrap();
        let repo = app.platform.repo::<Invoice>(&Context::console());
        let saved = repo.find(id).await.unwrap();
        assert_eq!(saved.amount_cents, 123_456);
        assert_eq!(saved.iban.as_deref(), Some("DE00 1234"));
        assert_eq!(saved.notes, None);
        let view = app.get_with(a, &location, &[("cookie", &flash)]).await;
        assert!(
            view.body.contains("Created Invoice INV-777777."),
            "{}",
            app.backend
        );
        assert!(view.body.contains("1,234.56"));

        // A duplicate number is a field message.
        let res = app.post(a, "/admin/invoices", &good).await;
        app.expect(&res, StatusCode::UNPROCESSABLE_ENTITY, "duplicate");
        assert!(
            res.body.contains("has already been taken"),
            "{}",
            app.backend
        );

        // Edit.
        let edit = app.get(a, &format!("/admin/invoices/{id}/edit")).await;
        assert!(edit.body.contains("value=\"1234.56\""));
        assert!(edit.body.contains("Acme"), "the relation shows its title");
        let res = app
            .post(
                a,
                &format!("/admin/invoices/{id}"),
                &[("status", "paid"), ("amount_cents", "99")],
            )
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "update");
        let saved = repo.find(id).await.unwrap();
        assert_eq!((saved.status.as_str(), saved.amount_cents), ("paid", 9900));
        let res = app
            .post(
                a,
                &format!("/admin/invoices/{id}"),
                &[("issued_on", "not a date")],
            )
            .await;
        app.expect(&res, StatusCode::UNPROCESSABLE_ENTITY, "bad edit");
        assert!(res.body.contains("must be a date"));

        // Booleans and nullable dates.
        let res = app
            .post(
                a,
                "/admin/tasks",
                &[
                    ("title", "Ship"),
                    ("due_on", ""),
                    ("done", "false"),
                    ("done", "true"),
                ],
            )
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "task");
    }
}

#[tokio::test]
async fn encrypted_and_personal_fields_need_their_permissions() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        app.role(
            "editor",
            &[
                "view_any_invoice",
                "view_invoice",
                "update_invoice",
                "view_customer",
                "view_any_customer",
                "update_customer",
            ],
        )
        .await;
        let editor = app.user("editor@example.com", Some("editor")).await;
        let c = app.customer("Acme", "secret@acme.example").await;
        let i = app.invoices(c.id, 1).await[0].id;
        let edit = app.get(editor, &format!("/admin/invoices/{i}/edit")).await;
        app.expect(&edit, StatusCode::OK, "edit");
        assert!(
            !edit.body.contains("name=\"iban\""),
            "{}: not editable",
            app.backend
        );
        assert!(edit.body.contains("••••••"));
        assert!(!edit.body.contains("DE89"));
        let admin_edit = app
            .get(app.admin, &format!("/admin/invoices/{i}/edit"))
            .await;
        assert!(admin_edit.body.contains("name=\"iban\""));
        assert!(admin_edit.body.contains("DE89"));
        // Posting the field anyway changes nothing.
        let res = app
            .post(
                editor,
                &format!("/admin/invoices/{i}"),
                &[("iban", "XX"), ("status", "void")],
            )
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "update");
        let saved = app
            .platform
            .repo::<Invoice>(&Context::console())
            .find(i)
            .await
            .unwrap();
        assert_eq!(saved.status, "void");
        assert!(saved.iban.unwrap().starts_with("DE89"));
        let cust = app
            .get(editor, &format!("/admin/customers/{}/edit", c.id))
            .await;
        assert!(cust.body.contains("s***@acme.example"));
        assert!(!cust.body.contains("secret@acme.example"));
        let view = app.get(editor, &format!("/admin/customers/{}", c.id)).await;
        assert!(
            !view.body.contains("secret@acme.example"),
            "{}",
            app.backend
        );
        // Searching never looks into the e-mail the editor may not see: not
        // the list, not the global search, not the relation picker's lookup.
        for (uri, what) in [
            ("/admin/customers?search=secret", "list"),
            ("/admin/search?q=secret", "global search"),
            ("/admin/customers/lookup?q=secret", "lookup"),
        ] {
            let mine = app.get(editor, uri).await;
            app.expect(&mine, StatusCode::OK, what);
            assert!(
                !mine.body.contains("Acme"),
                "{}: the {what} matched the hidden e-mail",
                app.backend
            );
            let admins = app.get(app.admin, uri).await;
            assert!(admins.body.contains("Acme"), "{}: {what}", app.backend);
        }
        let by_name = app.get(editor, "/admin/customers/lookup?q=acm").await;
        assert!(by_name.body.contains("Acme"), "{}", app.backend);
    }
}

#[tokio::test]
async fn the_view_page_shows_the_audit_trail_and_restores_versions() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        let c = app.customer("Acme", "a@acme.example").await;
        let i = app.invoices(c.id, 1).await[0].id;
        for status in ["paid", "void"] {
            let res = app
                .post(a, &format!("/admin/invoices/{i}"), &[("status", status)])
                .await;
            app.expect(&res, StatusCode::SEE_OTHER, "update");
        }
        let view = app.get(a, &format!("/admin/invoices/{i}")).await;
        app.expect(&view, StatusCode::OK, "view");
        assert!(view.body.contains("event-created"), "{}", app.backend);
        assert!(view.body.contains("event-updated"));
        assert!(
            view.body
                .contains("<td class=\"old\">paid</td><td class=\"new\">void</td>")
        );
        assert!(view.body.contains("admin@example.com"), "the actor");
        // The entry of the first update (status "paid").
        let entries = app
            .platform
            .audit()
            .for_record("invoice", &i.to_string(), 10)
            .await
            .unwrap();
        let paid = entries
            .iter()
            .find(|e| {
                e.event == "updated" && e.new_values.as_deref().unwrap_or("").contains("paid")
            })
            .unwrap();
        assert!(
            view.body
                .contains(&format!("/versions/{}/restore", paid.id))
        );
        assert_eq!(paid.request_id.as_deref(), Some("test-request"));
        let res = app
            .post(
                a,
                &format!("/admin/invoices/{i}/versions/{}/restore", paid.id),
                &[],
            )
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "restore version");
        let saved = app
            .platform
            .repo::<Invoice>(&Context::console())
            .find(i)
            .await
            .unwrap();
        assert_eq!(saved.status, "paid", "{}", app.backend);
        // Personal data in the trail is masked without view_pii.
        app.role(
            "viewer",
            &["view_customer", "view_any_customer", "update_customer"],
        )
        .await;
        let viewer = app.user("viewer@example.com", Some("viewer")).await;
        let res = app
            .post(
                a,
                &format!("/admin/customers/{}", c.id),
                &[("email", "new@acme.example")],
            )
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "customer");
        let view = app.get(viewer, &format!("/admin/customers/{}", c.id)).await;
        assert!(!view.body.contains("new@acme.example"), "{}", app.backend);
        assert!(!view.body.contains("a@acme.example"));
        assert!(view.body.contains("[hidden]"));
    }
}

#[tokio::test]
async fn bulk_delete_by_ids_and_by_query() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        let c = app.customer("Acme", "a@acme.example").await;
        let inv = app.invoices(c.id, 12).await;
        let repo = app.platform.repo::<Invoice>(&Context::console());

        // By ids: first a confirmation page, then the deletion.
        let ids: Vec<String> = inv[..3].iter().map(|i| i.id.to_string()).collect();
        let mut fields = vec![
            ("action", "delete"),
            ("scope", "selected"),
            ("back", "/admin/invoices"),
        ];
        for id in &ids {
            fields.push(("ids", id));
        }
        let res = app.post(a, "/admin/invoices/bulk", &fields).await;
        app.expect(&res, StatusCode::OK, "confirm");
        assert!(
            res.body.contains("Delete 3 selected Invoices?"),
            "{}",
            app.backend
        );
        assert!(res.body.contains("name=\"confirmed\" value=\"1\""));
        fields.push(("confirmed", "1"));
        let res = app.post(a, "/admin/invoices/bulk", &fields).await;
        app.expect(&res, StatusCode::SEE_OTHER, "bulk delete");
        assert_eq!(res.location(), "/admin/invoices");
        for i in &inv[..3] {
            assert!(repo.find(i.id).await.is_err(), "{}", app.backend);
        }

        // Every record matching the list's query: the query is posted, not ids.
        let drafts = inv[3..].iter().filter(|i| i.status == "draft").count();
        assert!(drafts > 0);
        let list = app.get(a, "/admin/invoices?filter%5Bstatus%5D=draft").await;
        assert!(list.body.contains("Apply to all"), "{}", app.backend);
        assert!(
            list.body
                .contains("name=\"query\" value=\"filter%5Bstatus%5D=draft")
        );
        let res = app
            .post(
                a,
                "/admin/invoices/bulk",
                &[
                    ("action", "delete"),
                    ("scope", "all"),
                    ("query", "filter%5Bstatus%5D=draft&page%5Bsize%5D=10"),
                    ("confirmed", "1"),
                ],
            )
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "delete all matching");
        let left = repo
            .records()
            .count(&ListQuery::new().filter_eq("status", "draft"))
            .await
            .unwrap();
        assert_eq!(left.value(), 0, "{}", app.backend);
        let others = repo.records().count(&ListQuery::new()).await.unwrap();
        assert_eq!(others.value() as usize, 12 - 3 - drafts);
        // One audit entry per deleted row, tagged bulk.
        let entries = app
            .platform
            .audit()
            .recent(Some("invoice"), None, 100)
            .await
            .unwrap();
        let deleted: Vec<_> = entries.iter().filter(|e| e.event == "deleted").collect();
        assert_eq!(deleted.len(), 3 + drafts, "{}", app.backend);
        assert!(
            deleted
                .iter()
                .all(|e| e.tag_list().contains(&"bulk".to_owned()))
        );

        // Restore selected, from the deleted ones.
        let mut fields = vec![("action", "restore"), ("scope", "selected")];
        for id in &ids {
            fields.push(("ids", id));
        }
        let res = app.post(a, "/admin/invoices/bulk", &fields).await;
        app.expect(&res, StatusCode::SEE_OTHER, "bulk restore");
        assert!(repo.find(inv[0].id).await.is_ok());
        // Restored rows are tagged bulk as well.
        let entries = app
            .platform
            .audit()
            .recent(Some("invoice"), None, 100)
            .await
            .unwrap();
        let restored: Vec<_> = entries.iter().filter(|e| e.event == "restored").collect();
        assert_eq!(restored.len(), ids.len(), "{}", app.backend);
        assert!(
            restored
                .iter()
                .all(|e| e.tag_list().contains(&"bulk".to_owned()))
        );
        // No selection: a message, nothing done.
        let res = app
            .post(
                a,
                "/admin/invoices/bulk",
                &[("action", "delete"), ("scope", "selected")],
            )
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "nothing selected");
    }
}

#[tokio::test]
async fn soft_deleted_records_restore_and_force_delete() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        let c = app.customer("Acme", "a@acme.example").await;
        let i = app.invoices(c.id, 2).await[0].id;
        let repo = app.platform.repo::<Invoice>(&Context::console());

        let res = app
            .post(a, &format!("/admin/invoices/{i}/delete"), &[])
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "delete");
        assert!(repo.find(i).await.is_err());
        let list = app.get(a, "/admin/invoices").await;
        assert!(
            !row_ids(&list.body).contains(&i.to_string()),
            "{}",
            app.backend
        );
        let only = app.get(a, "/admin/invoices?trashed=only").await;
        assert_eq!(row_ids(&only.body), vec![i.to_string()]);
        assert!(only.body.contains(&format!("/admin/invoices/{i}/restore")));
        let view = app.get(a, &format!("/admin/invoices/{i}")).await;
        app.expect(&view, StatusCode::OK, "view deleted");
        assert!(view.body.contains("Deleted"));
        assert!(
            view.body
                .contains(&format!("/admin/invoices/{i}/force-delete"))
        );

        let res = app
            .post(a, &format!("/admin/invoices/{i}/restore"), &[])
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "restore");
        assert!(repo.find(i).await.is_ok(), "{}", app.backend);

        let confirm = app
            .get(a, &format!("/admin/invoices/{i}/force-delete"))
            .await;
        app.expect(&confirm, StatusCode::OK, "confirm");
        let res = app
            .post(a, &format!("/admin/invoices/{i}/force-delete"), &[])
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "force delete");
        let gone = repo.records().find_with_trashed(Value::Int(i)).await;
        assert!(gone.is_err(), "{}", app.backend);
        let res = app.get(a, &format!("/admin/invoices/{i}")).await;
        app.expect(&res, StatusCode::NOT_FOUND, "gone");
    }
}

#[tokio::test]
async fn html_is_escaped_everywhere() {
    const XSS: &str = "<script>alert(1)</script>";
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        let c = app.customer(XSS, "x@acme.example").await;
        let mut inv = invoice(c.id, 1, "draft", 100);
        inv.notes = Some(XSS.to_owned());
        let inv = app
            .platform
            .repo::<Invoice>(&Context::console())
            .create(&inv)
            .await
            .unwrap();
        let pages = [
            "/admin/customers".to_owned(),
            format!("/admin/customers/{}", c.id),
            format!("/admin/customers/{}/edit", c.id),
            format!("/admin/invoices/{}", inv.id),
            format!("/admin/invoices/{}/edit", inv.id),
            "/admin/invoices".to_owned(),
            format!("/admin/search?q={}", enc(XSS)),
            format!("/admin/invoices?search={}", enc(XSS)),
            format!("/admin/invoices?filter%5Bstatus%5D={}", enc(XSS)),
            format!(
                "/admin/customers?search={}&sort={}",
                enc("\"><img src=x onerror=alert(1)>"),
                enc(XSS)
            ),
            "/admin".to_owned(),
        ];
        for page in &pages {
            let res = app.get(a, page).await;
            assert!(
                res.status.is_success(),
                "{}: {page}: {}",
                app.backend,
                res.status
            );
            assert!(
                !res.body.contains(XSS),
                "{}: {page} is not escaped",
                app.backend
            );
            assert!(!res.body.contains("<img src=x"), "{page}");
        }
        let list = app.get(a, "/admin/customers").await;
        assert!(list.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        let search = app
            .get(a, &format!("/admin/invoices?search={}", enc(XSS)))
            .await;
        assert!(search.body.contains("value=\"&lt;script&gt;"));
        let lookup = app.get(a, "/admin/customers/lookup").await;
        assert!(
            !lookup.body.contains("<script>"),
            "JSON escapes too: {}",
            lookup.body
        );
    }
}

#[tokio::test]
async fn big_forms_and_bad_requests_are_refused() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let big = "x".repeat(2 * 1024 * 1024);
    let res = app
        .post(app.admin, "/admin/invoices", &[("notes", &big)])
        .await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.body.contains("larger than this panel accepts"));
    let req = Request::post("/admin/invoices")
        .header("x-test-user", app.admin.to_string())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(
        app.send(req).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let res = app.get(app.admin, "/admin/invoices?search=%ff").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let res = app.get(app.admin, "/admin/invoices/1/nope").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let req = Request::delete("/admin/invoices/1")
        .header("x-test-user", app.admin.to_string())
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn errors_are_pages() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        for path in [
            "/admin/nope",
            "/admin/invoices/999999",
            "/admin/invoices/abc",
            "/admin/nope/1/edit",
        ] {
            let res = app.get(a, path).await;
            app.expect(&res, StatusCode::NOT_FOUND, path);
            assert!(res.body.contains("<h1>Not found</h1>"), "{path}");
            assert!(res.body.contains("test-request") || res.body.contains("Request id"));
        }
        // The database goes away: 503 pages, no details.
        app.platform.db().close().await;
        let res = app.get(a, "/admin/customers").await;
        assert_eq!(
            res.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            app.backend
        );
        assert!(res.body.contains("Temporarily unavailable"));
        assert_eq!(res.headers[header::RETRY_AFTER], "5");
        assert!(
            !res.body.to_lowercase().contains("pool"),
            "no details: {}",
            res.body
        );
    }
}

#[tokio::test]
async fn policy_hidden_records_are_404() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        app.role(
            "writer",
            &[
                "view_any_note",
                "view_note",
                "create_note",
                "update_note",
                "delete_note",
            ],
        )
        .await;
        let ann = app.user("ann@example.com", Some("writer")).await;
        let bob = app.user("bob@example.com", Some("writer")).await;
        let res = app
            .post(ann, "/admin/notes", &[("body", "ann's secret")])
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "create note");
        let id: i64 = res.location().rsplit('/').next().unwrap().parse().unwrap();
        let note = app
            .platform
            .repo::<Note>(&Context::console())
            .find(id)
            .await
            .unwrap();
        assert_eq!(note.owner_id, ann, "the policy fills the owner");
        let bob_s = bob.to_string();
        let res = app
            .post(
                ann,
                "/admin/notes",
                &[("body", "forged"), ("owner_id", &bob_s)],
            )
            .await;
        app.expect(&res, StatusCode::FORBIDDEN, "a note for someone else");
        assert!(
            res.body.contains("This change is not allowed"),
            "{}",
            app.backend
        );
        assert!(res.body.contains("value=\"forged\""), "the input is kept");
        let mine = app.get(ann, &format!("/admin/notes/{id}")).await;
        app.expect(&mine, StatusCode::OK, "own note");
        for path in [
            format!("/admin/notes/{id}"),
            format!("/admin/notes/{id}/edit"),
            format!("/admin/notes/{id}/delete"),
        ] {
            let res = app.get(bob, &path).await;
            app.expect(&res, StatusCode::NOT_FOUND, &path);
        }
        let res = app
            .post(bob, &format!("/admin/notes/{id}/delete"), &[])
            .await;
        app.expect(&res, StatusCode::NOT_FOUND, "delete");
        let res = app
            .post(bob, &format!("/admin/notes/{id}"), &[("body", "mine now")])
            .await;
        app.expect(&res, StatusCode::NOT_FOUND, "update");
        let list = app.get(bob, "/admin/notes").await;
        assert!(!list.body.contains("ann&#x27;s secret"), "{}", app.backend);
        let search = app.get(bob, "/admin/search?q=secret").await;
        assert!(!search.body.contains("ann&#x27;s secret"));
        let home = app.get(bob, "/admin").await;
        assert!(
            !home.body.contains(&format!("/admin/notes/{id}")),
            "no activity leak"
        );
    }
}

#[tokio::test]
async fn the_role_editor_saves_a_grid() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        app.role("clerk", &["view_any_invoice"]).await;
        let page = app.get(a, "/admin/access/roles/clerk").await;
        app.expect(&page, StatusCode::OK, "editor");
        assert!(page.body.contains(
            "value=\"view_any_invoice\" data-col=\"0\" aria-label=\"view_any_invoice\" checked"
        ));
        assert!(page.body.contains("value=\"force_delete_customer\""));
        assert!(page.body.contains("value=\"update_role\""));
        assert!(page.body.contains("value=\"view_pii\""));
        let res = app
            .post(
                a,
                "/admin/access/roles/clerk",
                &[
                    ("p", "view_invoice"),
                    ("p", "export_invoice"),
                    ("p", "view_pii"),
                    ("p", "view_invoice"),
                ],
            )
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "save");
        let perms = app
            .platform
            .access()
            .role_permissions("clerk")
            .await
            .unwrap();
        assert_eq!(
            perms,
            vec!["export_invoice", "view_invoice", "view_pii"],
            "{}",
            app.backend
        );
        let res = app
            .post(a, "/admin/access/roles/clerk", &[("p", "no_such_thing")])
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "unknown permission");
        assert_eq!(
            app.platform
                .access()
                .role_permissions("clerk")
                .await
                .unwrap()
                .len(),
            3
        );
        // Roles: create and delete.
        let res = app
            .post(a, "/admin/access/roles", &[("name", "auditor")])
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "create role");
        assert_eq!(res.location(), "/admin/access/roles/auditor");
        let res = app.post(a, "/admin/access/roles/auditor/delete", &[]).await;
        app.expect(&res, StatusCode::SEE_OTHER, "delete role");
        assert!(
            !app.platform
                .access()
                .roles()
                .await
                .unwrap()
                .contains(&"auditor".to_owned())
        );
        // Users: create, then give a role and a direct permission.
        let res = app
            .post(
                a,
                "/admin/access/users",
                &[
                    ("name", "Cat"),
                    ("email", "cat@example.com"),
                    ("password", "short"),
                ],
            )
            .await;
        app.expect(&res, StatusCode::UNPROCESSABLE_ENTITY, "weak password");
        assert!(res.body.contains("value=\"cat@example.com\""));
        let res = app
            .post(
                a,
                "/admin/access/users",
                &[
                    ("name", "Cat"),
                    ("email", "cat@example.com"),
                    ("password", "long enough password"),
                ],
            )
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "create user");
        let uid: i64 = res.location().rsplit('/').next().unwrap().parse().unwrap();
        let res = app
            .post(
                a,
                &format!("/admin/access/users/{uid}"),
                &[("roles", "clerk"), ("permissions", "view_any_task")],
            )
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "user roles");
        let grants = app.platform.access().grants(uid).await.unwrap();
        assert_eq!(grants.roles(), ["clerk".to_owned()]);
        assert!(grants.has("view_any_task") && grants.has("export_invoice"));
        let page = app.get(a, &format!("/admin/access/users/{uid}")).await;
        assert!(page.body.contains("(via role)"), "{}", app.backend);
        let res = app
            .post(a, &format!("/admin/access/users/{uid}"), &[])
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "remove all");
        let grants = app.platform.access().grants(uid).await.unwrap();
        assert!(grants.roles().is_empty() && !grants.has("view_any_task"));
    }
}

mod wide {
    //! A registry of 100 resources, built by hand from the const builders.
    use platform_core::Resource;
    use platform_core::resource::{FieldMeta, FromValuesError, Registry, ResourceMeta};
    use platform_core::value::Value;

    macro_rules! names {
        ($($n:literal)*) => {
            pub(crate) const NAMES: [&str; 100] = [$(concat!("res_", $n)),*];
            pub(crate) const PLURALS: [&str; 100] = [$(concat!("res_", $n, "s")),*];
            pub(crate) const TABLES: [&str; 100] = [$(concat!("wide_", $n)),*];
            pub(crate) fn registry() -> Registry {
                Registry::builder()$(.register::<R<$n>>())*.build().unwrap()
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

#[tokio::test]
async fn the_role_editor_is_fast_with_100_resources() {
    let db = TestDb::sqlite();
    let platform = db.platform(wide::registry()).await;
    let app = App::with_platform(platform, "sqlite").await;
    let half: Vec<String> = app
        .platform
        .access()
        .permissions()
        .await
        .unwrap()
        .into_iter()
        .step_by(2)
        .collect();
    let refs: Vec<&str> = half.iter().map(String::as_str).collect();
    app.role("half", &refs).await;
    let mut best = Duration::MAX;
    let mut body = String::new();
    for _ in 0..5 {
        let t = Instant::now();
        let res = app.get(app.admin, "/admin/access/roles/half").await;
        best = best.min(t.elapsed());
        assert_eq!(res.status, StatusCode::OK);
        body = res.body;
    }
    let boxes = body.matches("name=\"p\"").count();
    assert_eq!(
        boxes,
        100 * 10 + 2 * 10 + platform_core::permission::GLOBAL_PERMISSIONS.len(),
        "every resource × ability, users, roles, globals"
    );
    let checked = body
        .split("<input")
        .filter(|i| i.contains("name=\"p\"") && i.contains(" checked>"))
        .count();
    assert_eq!(checked, half.len(), "the role's permissions are ticked");
    println!("role editor over 100 resources: {best:?}");
    assert!(
        best < Duration::from_millis(50),
        "the role editor took {best:?}"
    );
    // Saving the grid back is one request.
    let all: Vec<(&str, &str)> = refs.iter().map(|p| ("p", *p)).collect();
    let res = app.post(app.admin, "/admin/access/roles/half", &all).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.platform
            .access()
            .role_permissions("half")
            .await
            .unwrap()
            .len(),
        half.len()
    );
}

#[tokio::test]
async fn the_tokens_page_shows_a_new_token_once() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        let res = app
            .post(
                a,
                "/admin/access/tokens",
                &[
                    ("name", "ci"),
                    ("abilities", "view_any_invoice\nview_invoice"),
                    ("expires_in", "30"),
                ],
            )
            .await;
        app.expect(&res, StatusCode::CREATED, "create token");
        let start = res.body.find("data-copy>").expect("the plain token") + "data-copy>".len();
        let token: String = res.body[start..]
            .chars()
            .take_while(|c| *c != '<')
            .collect();
        assert!(token.starts_with("plt_") && token.len() > 20, "{token}");
        assert_eq!(res.headers[header::CACHE_CONTROL], "no-store");
        let actor = app
            .platform
            .access()
            .authenticate_token(&token)
            .await
            .unwrap();
        assert_eq!(actor.user_id(), Some(a));
        let again = app.get(a, "/admin/access/tokens").await;
        assert!(again.body.contains(">ci<"), "{}", app.backend);
        assert!(!again.body.contains(&token), "shown once");
        assert!(!again.body.contains("plt_"));
        let tokens = app.platform.access().tokens(a).await.unwrap();
        assert_eq!(
            tokens[0].abilities,
            vec!["view_any_invoice", "view_invoice"]
        );
        let res = app
            .post(
                a,
                &format!("/admin/access/tokens/{}/revoke", tokens[0].id),
                &[("back", "/admin/access/tokens")],
            )
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "revoke");
        assert!(
            app.platform
                .access()
                .authenticate_token(&token)
                .await
                .is_err()
        );
        // Someone else's tokens need update_user.
        app.role("nobody", &[]).await;
        let u = app.user("u@example.com", Some("nobody")).await;
        let res = app.get(u, &format!("/admin/access/users/{a}/tokens")).await;
        app.expect(&res, StatusCode::FORBIDDEN, "others' tokens");
        let res = app
            .post(
                u,
                &format!("/admin/access/tokens/{}/revoke", tokens[0].id),
                &[],
            )
            .await;
        app.expect(&res, StatusCode::FORBIDDEN, "others' revoke");
        let mine = app.get(u, "/admin/access/tokens").await;
        app.expect(&mine, StatusCode::OK, "own tokens");
        let res = app.get(a, &format!("/admin/access/users/{u}/tokens")).await;
        app.expect(&res, StatusCode::OK, "admin sees others' tokens");
    }
}

#[tokio::test]
async fn exports_stream_csv_without_secrets_or_formulas() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        let c = app.customer("=HYPERLINK(\"evil\")", "a@acme.example").await;
        app.customer("Plain, Ltd", "b@acme.example").await;
        let res = app
            .post(
                a,
                "/admin/customers/bulk",
                &[("action", "export"), ("scope", "all"), ("query", "")],
            )
            .await;
        app.expect(&res, StatusCode::OK, "export");
        assert!(
            res.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let lines: Vec<&str> = res.body.lines().collect();
        assert_eq!(lines[0], "id,name,email,country,created_at");
        assert_eq!(lines.len(), 3, "{}: {}", app.backend, res.body);
        assert!(
            lines[1].contains("\"'=HYPERLINK(\"\"evil\"\")\""),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains("\"Plain, Ltd\""));
        let inv = app.invoices(c.id, 2).await;
        let id = inv[0].id.to_string();
        let res = app
            .post(
                a,
                "/admin/invoices/bulk",
                &[("action", "export"), ("scope", "selected"), ("ids", &id)],
            )
            .await;
        app.expect(&res, StatusCode::OK, "export selected");
        assert_eq!(res.body.lines().count(), 2);
        assert!(
            !res.body.contains("iban") && !res.body.contains("DE89"),
            "never the plaintext"
        );
        // An invalid query is a message, not a truncated file.
        let res = app
            .post(
                a,
                "/admin/customers/bulk",
                &[
                    ("action", "export"),
                    ("scope", "all"),
                    ("query", "sort=email"),
                ],
            )
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "bad export query");
        // Export needs export_.
        app.role("lister", &["view_any_customer"]).await;
        let u = app.user("l@example.com", Some("lister")).await;
        let res = app
            .post(
                u,
                "/admin/customers/bulk",
                &[("action", "export"), ("scope", "all"), ("query", "")],
            )
            .await;
        app.expect(&res, StatusCode::FORBIDDEN, "no export permission");
    }
}

#[tokio::test]
async fn column_choices_are_remembered_per_user() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let a = app.admin;
    let res = app
        .post(
            a,
            "/admin/customers/columns",
            &[
                ("cols", "name"),
                ("cols", "email"),
                ("cols", "bogus"),
                ("back", "/admin/customers"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/admin/customers");
    let saved = app
        .platform
        .notifications()
        .get_preference(a, "panel.columns.customers")
        .await
        .unwrap();
    assert_eq!(saved, Some(serde_json::json!(["name", "email"])));
    app.customer("Acme", "a@acme.example").await;
    let list = app.get(a, "/admin/customers").await;
    assert!(
        list.body
            .contains("<th data-col=\"country\" class=\"is-hidden\">")
    );
    assert!(list.body.contains("<th data-col=\"name\">"));
    // Another user keeps the defaults.
    let other = app.user("o@example.com", Some("super_admin")).await;
    let list = app.get(other, "/admin/customers").await;
    assert!(list.body.contains("<th data-col=\"country\">"));
    // The script saves in the background: 204.
    let req = Request::post("/admin/customers/columns")
        .header("x-test-user", a.to_string())
        .header("x-requested-with", "fetch")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("_csrf={CSRF}&cols=country")))
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::NO_CONTENT);
    // A `back` elsewhere is not followed.
    let res = app
        .post(
            a,
            "/admin/customers/columns",
            &[("cols", "name"), ("back", "https://evil.example/")],
        )
        .await;
    assert_eq!(res.location(), "/admin/customers");
}

#[tokio::test]
async fn the_bell_counts_unread_notifications() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        let notices = app.platform.notifications();
        notices
            .send(
                a,
                Notice::new("Export ready", "<b>42</b> rows").with_url("javascript:alert(1)"),
            )
            .await
            .unwrap();
        notices
            .send(
                a,
                Notice::new("Invoice paid", "").with_url("/admin/invoices"),
            )
            .await
            .unwrap();
        let home = app.get(a, "/admin").await;
        assert!(home.body.contains("data-bell-count>2<"), "{}", app.backend);
        let page = app.get(a, "/admin/notifications").await;
        app.expect(&page, StatusCode::OK, "notifications");
        assert!(page.body.contains("&lt;b&gt;42&lt;/b&gt; rows"));
        assert!(
            !page.body.contains("javascript:"),
            "unsafe links are dropped"
        );
        assert!(
            page.body
                .contains("<a href=\"/admin/invoices\">Invoice paid</a>")
        );
        let res = app.post(a, "/admin/notifications/read-all", &[]).await;
        app.expect(&res, StatusCode::SEE_OTHER, "read all");
        let home = app.get(a, "/admin").await;
        assert!(home.body.contains("data-bell-count>0<"));
    }
}

fn revenue(_cx: &WidgetContext) -> WidgetFuture<'_> {
    Box::pin(async { Ok(serde_json::json!({ "total": "<b>12,345.00</b>" })) })
}

fn mark_paid(input: &BulkInput) -> BulkFuture<'_> {
    Box::pin(async move {
        let n = input
            .records
            .update_where(&input.query(), Changes::new().set("status", "paid"))
            .await?;
        Ok(format!("{n} marked as paid."))
    })
}

#[tokio::test]
async fn hosts_add_widgets_bulk_actions_and_templates() {
    let db = TestDb::sqlite();
    let dir = std::env::temp_dir().join(format!("panel-templates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("dashboard.html"),
        "{% extends \"default/dashboard.html\" %}{% block content %}<p id=\"custom\">Hello {{ layout.user.name }}</p>{{ super() }}{% endblock %}",
    )
    .unwrap();
    let config = PanelConfig::new()
        .title("Acme Back Office")
        .templates_dir(&dir)
        .widget(
            Widget::new(
                "revenue",
                "Revenue",
                "<p class=\"stat\">{{ data.total }}</p>",
                revenue,
            )
            .sort(-30),
        )
        .bulk_action(
            BulkAction::new("mark_paid", "Mark as paid", mark_paid).for_resource("invoices"),
        );
    let platform = db.platform(registry()).await;
    let app = App::with_config(platform, "sqlite", config).await;
    let a = app.admin;
    let home = app.get(a, "/admin").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(
        home.body
            .contains("<p id=\"custom\">Hello admin@example.com</p>")
    );
    assert!(home.body.contains("Acme Back Office"));
    assert!(
        home.body
            .contains("<p class=\"stat\">&lt;b&gt;12,345.00&lt;/b&gt;</p>")
    );
    let revenue_at = home.body.find("widget-revenue").unwrap();
    assert!(
        revenue_at < home.body.find("widget-counts").unwrap(),
        "sorted first"
    );

    let c = app.customer("Acme", "a@acme.example").await;
    let inv = app.invoices(c.id, 4).await;
    let list = app.get(a, "/admin/invoices").await;
    assert!(list.body.contains("value=\"custom:mark_paid\""));
    let customers = app.get(a, "/admin/customers").await;
    assert!(!customers.body.contains("mark_paid"), "only on invoices");
    let ids: Vec<String> = inv[..2].iter().map(|i| i.id.to_string()).collect();
    let res = app
        .post(
            a,
            "/admin/invoices/bulk",
            &[
                ("action", "custom:mark_paid"),
                ("ids", &ids[0]),
                ("ids", &ids[1]),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "a confirmation first");
    let res = app
        .post(
            a,
            "/admin/invoices/bulk",
            &[
                ("action", "custom:mark_paid"),
                ("ids", &ids[0]),
                ("ids", &ids[1]),
                ("confirmed", "1"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let repo = app.platform.repo::<Invoice>(&Context::console());
    for i in &inv[..2] {
        assert_eq!(repo.find(i.id).await.unwrap().status, "paid");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn activity_shows_event_labels_not_raw_names() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let a = app.admin;
        let b = app.backend;
        // Security events on the admin's own account.
        let console = Context::console();
        let tf = app.platform.auth().two_factor();
        let setup = tf.begin_setup(&console, a).await.unwrap();
        let code = platform_core::auth::current_code(&setup.secret_base32).unwrap();
        let codes = tf.confirm_setup(&console, a, &code).await.unwrap();
        assert!(
            tf.use_recovery_code(&console, a, &codes.codes()[0])
                .await
                .unwrap()
        );
        // A record created and updated.
        let c = app.customer("Acme", "a@acme.example").await;
        let i = app.invoices(c.id, 1).await[0].id;
        let res = app
            .post(a, &format!("/admin/invoices/{i}"), &[("status", "void")])
            .await;
        app.expect(&res, StatusCode::SEE_OTHER, "update");

        let dashboard = app.get(a, "/admin").await;
        app.expect(&dashboard, StatusCode::OK, "dashboard");
        for label in [
            ">Recovery code used<",
            ">Two-factor enabled<",
            ">Created<",
            ">Updated<",
        ] {
            assert!(
                dashboard.body.contains(label),
                "{b}: {label} missing from the dashboard"
            );
        }
        for raw in [">recovery_code_used<", ">two_factor_enabled<", ">created<"] {
            assert!(!dashboard.body.contains(raw), "{b}: raw {raw} shown");
        }
        let view = app.get(a, &format!("/admin/invoices/{i}")).await;
        app.expect(&view, StatusCode::OK, "view");
        assert!(view.body.contains(">Created<"), "{b}: the activity log");
        assert!(view.body.contains(">Updated<"), "{b}");
        assert!(!view.body.contains(">updated<"), "{b}");
    }
}
