//! The raw baseline: plain axum + sqlx, no framework code, serving the same
//! invoice list and create-with-audit-row endpoints as the platform's API,
//! so every HTTP figure can be given as a ratio to it.
//!
//! `baseline <database url> <listen address>` (SQLite or PostgreSQL, over a
//! database with the demo's `invoices` and `platform_audits` tables).
//!
//! - `GET /api/invoices?search=&filter[status]=&sort=-amount_cents&page[size]=25`
//! - `POST /api/invoices` with a JSON invoice: one transaction inserting the
//!   row and its audit row. The audit rows go to `baseline_audits`, a copy
//!   of `platform_audits` (same columns and indexes) created on start: rows
//!   written into the platform's own table would be rejected by its audit
//!   sealer (they carry no MAC) and would make the platform pay for the
//!   baseline's writes.
//! - `GET /admin/invoices?search=&filter[status]=&sort=-amount_cents&page[size]=25`
//!   (`Cookie: platform_session=<token>`): the admin panel's invoice list
//!   page as a plain application would serve it: one indexed `SELECT` of the
//!   session by its hashed token (signed in, two-factor passed, not
//!   expired; else `303` to the sign-in page), the page query, a count
//!   bounded at 10,001 rows (only when there is more than one page), one
//!   `IN` query for the customers' names, and a minijinja template with the
//!   panel's markup (`benches/templates/baseline_list.html`: the layout,
//!   the filter form, the same table and pager). No framework code.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{FromRef, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// The server's state: the pool and the page templates.
#[derive(Clone)]
struct App {
    pool: Pool,
    templates: Arc<minijinja::Environment<'static>>,
}

impl FromRef<App> for Pool {
    fn from_ref(app: &App) -> Self {
        app.pool.clone()
    }
}

#[derive(Serialize)]
struct Invoice {
    id: i64,
    customer_id: i64,
    number: String,
    status: String,
    amount_cents: i64,
    issued_on: NaiveDate,
    notes: Option<String>,
    iban: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct NewInvoice {
    customer_id: i64,
    number: String,
    status: String,
    amount_cents: i64,
    issued_on: NaiveDate,
    notes: Option<String>,
}

/// Decodes one row by hand, as a handler without sqlx's macros does.
macro_rules! invoice_from_row {
    ($row:expr) => {{
        use sqlx::Row;
        let r = $row;
        Invoice {
            id: r.try_get(0)?,
            customer_id: r.try_get(1)?,
            number: r.try_get(2)?,
            status: r.try_get(3)?,
            amount_cents: r.try_get(4)?,
            issued_on: r.try_get(5)?,
            notes: r.try_get(6)?,
            iban: r.try_get(7)?,
            created_at: r.try_get(8)?,
            updated_at: r.try_get(9)?,
            deleted_at: r.try_get(10)?,
        }
    }};
}

fn decode_sqlite(rows: Vec<sqlx::sqlite::SqliteRow>) -> Result<Vec<Invoice>, sqlx::Error> {
    rows.iter().map(|r| Ok(invoice_from_row!(r))).collect()
}

fn decode_pg(rows: Vec<sqlx::postgres::PgRow>) -> Result<Vec<Invoice>, sqlx::Error> {
    rows.iter().map(|r| Ok(invoice_from_row!(r))).collect()
}

const COLUMNS: &str = "id, customer_id, number, status, amount_cents, issued_on, notes, iban, created_at, updated_at, deleted_at";

/// The columns a list may be sorted by.
const SORTABLE: [&str; 4] = ["id", "number", "amount_cents", "issued_on"];

/// What a list asks for: `search`, `filter[status]`, `sort`, a page.
struct ListArgs {
    status: Option<String>,
    search: Option<String>,
    /// A column of [`SORTABLE`] and whether descending.
    sort: (&'static str, bool),
    limit: i64,
    offset: i64,
}

impl ListArgs {
    fn from_params(params: &HashMap<String, String>) -> Self {
        let limit: i64 = params
            .get("page[size]")
            .and_then(|s| s.parse().ok())
            .unwrap_or(25)
            .clamp(1, 100);
        let page: i64 = params
            .get("page[n]")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1)
            .clamp(1, 1_000_000);
        let nonempty = |k: &str| params.get(k).filter(|v| !v.trim().is_empty()).cloned();
        let sort = params.get("sort").map_or(("id", false), |s| {
            let (name, desc) = s
                .strip_prefix('-')
                .map_or((s.as_str(), false), |n| (n, true));
            SORTABLE
                .iter()
                .find(|c| **c == name)
                .map_or(("id", false), |c| (*c, desc))
        });
        Self {
            status: nonempty("filter[status]"),
            search: nonempty("search"),
            sort,
            limit,
            offset: (page - 1) * limit,
        }
    }

    /// ` WHERE ...` with `?` (SQLite) or `$n` (PostgreSQL) placeholders, and
    /// the values to bind, in order.
    fn where_clause(&self, pg: bool) -> (String, Vec<String>) {
        let mut sql = String::from(" WHERE deleted_at IS NULL");
        let mut binds = Vec::new();
        let next = |binds: &Vec<String>| {
            if pg {
                format!("${}", binds.len() + 1)
            } else {
                "?".to_owned()
            }
        };
        if let Some(s) = &self.status {
            let _ = write!(sql, " AND status = {}", next(&binds));
            binds.push(s.clone());
        }
        if let Some(s) = &self.search {
            if pg {
                let _ = write!(
                    sql,
                    " AND (COALESCE(number, '') || chr(1) || COALESCE(notes, '')) ILIKE {} ESCAPE '!'",
                    next(&binds)
                );
                let escaped = s.replace('!', "!!").replace('%', "!%").replace('_', "!_");
                binds.push(format!("%{escaped}%"));
            } else {
                let _ = write!(
                    sql,
                    " AND id IN (SELECT rowid FROM invoices_search WHERE invoices_search MATCH {})",
                    next(&binds)
                );
                binds.push(format!("\"{}\"", s.replace('"', "\"\"")));
            }
        }
        (sql, binds)
    }

    fn order_by(&self) -> String {
        let (col, desc) = self.sort;
        let dir = if desc { "DESC" } else { "ASC" };
        if col == "id" {
            format!(" ORDER BY id {dir}")
        } else {
            format!(" ORDER BY {col} {dir}, id {dir}")
        }
    }
}

/// The page's rows, one more than asked for (to know whether there are more).
async fn fetch_page(pool: &Pool, args: &ListArgs) -> Result<Vec<Invoice>, sqlx::Error> {
    let pg = matches!(pool, Pool::Postgres(_));
    let (filter, binds) = args.where_clause(pg);
    let (l, o) = if pg {
        (
            format!("${}", binds.len() + 1),
            format!("${}", binds.len() + 2),
        )
    } else {
        ("?".to_owned(), "?".to_owned())
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM invoices{filter}{} LIMIT {l} OFFSET {o}",
        args.order_by()
    );
    match pool {
        Pool::Sqlite(p) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in binds {
                q = q.bind(b);
            }
            decode_sqlite(
                q.bind(args.limit + 1)
                    .bind(args.offset)
                    .fetch_all(p)
                    .await?,
            )
        }
        Pool::Postgres(p) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in binds {
                q = q.bind(b);
            }
            decode_pg(
                q.bind(args.limit + 1)
                    .bind(args.offset)
                    .fetch_all(p)
                    .await?,
            )
        }
    }
}

/// Counting stops here, like the platform's lists ("10,000+" above it).
const COUNT_LIMIT: i64 = 10_000;

/// The number of matching rows, counted up to [`COUNT_LIMIT`] + 1.
async fn count_bounded(pool: &Pool, args: &ListArgs) -> Result<i64, sqlx::Error> {
    let pg = matches!(pool, Pool::Postgres(_));
    let (filter, binds) = args.where_clause(pg);
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM invoices{filter} LIMIT {}) AS c",
        COUNT_LIMIT + 1
    );
    match pool {
        Pool::Sqlite(p) => {
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
            for b in binds {
                q = q.bind(b);
            }
            q.fetch_one(p).await
        }
        Pool::Postgres(p) => {
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
            for b in binds {
                q = q.bind(b);
            }
            q.fetch_one(p).await
        }
    }
}

async fn list(
    State(pool): State<Pool>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let args = ListArgs::from_params(&params);
    let err = |e: sqlx::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let rows = fetch_page(&pool, &args).await.map_err(err)?;
    let has_more = rows.len() as i64 > args.limit;
    let rows: Vec<&Invoice> = rows.iter().take(args.limit as usize).collect();
    Ok(Json(
        serde_json::json!({ "data": rows, "meta": { "has_more": has_more } }),
    ))
}

async fn create(
    State(pool): State<Pool>,
    Json(inv): Json<NewInvoice>,
) -> Result<(StatusCode, Json<serde_json::Value>), (StatusCode, String)> {
    let err = |e: sqlx::Error| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
    let now = Utc::now();
    let audit = serde_json::json!({
        "customer_id": inv.customer_id, "number": inv.number, "status": inv.status,
        "amount_cents": inv.amount_cents, "issued_on": inv.issued_on, "notes": inv.notes,
    })
    .to_string();
    let id: i64 = match &pool {
        Pool::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
            let id: i64 = sqlx::query_scalar("INSERT INTO invoices (customer_id, number, status, amount_cents, issued_on, notes, iban, created_at, updated_at, deleted_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL) RETURNING id")
                .bind(inv.customer_id).bind(&inv.number).bind(&inv.status).bind(inv.amount_cents)
                .bind(inv.issued_on).bind(&inv.notes).bind(now).bind(now)
                .fetch_one(&mut *tx).await.map_err(err)?;
            sqlx::query("INSERT INTO baseline_audits (event, resource, record_id, new_values, actor_type, created_at) VALUES ('created', 'invoice', ?, ?, 'user', ?)")
                .bind(id.to_string()).bind(&audit).bind(now)
                .execute(&mut *tx).await.map_err(err)?;
            tx.commit().await.map_err(err)?;
            id
        }
        Pool::Postgres(p) => {
            let mut tx = p.begin().await.map_err(err)?;
            let id: i64 = sqlx::query_scalar("INSERT INTO invoices (customer_id, number, status, amount_cents, issued_on, notes, iban, created_at, updated_at, deleted_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, NULL) RETURNING id")
                .bind(inv.customer_id).bind(&inv.number).bind(&inv.status).bind(inv.amount_cents)
                .bind(inv.issued_on).bind(&inv.notes).bind(now).bind(now)
                .fetch_one(&mut *tx).await.map_err(err)?;
            sqlx::query("INSERT INTO baseline_audits (event, resource, record_id, new_values, actor_type, created_at) VALUES ('created', 'invoice', $1, $2, 'user', $3)")
                .bind(id.to_string()).bind(&audit).bind(now)
                .execute(&mut *tx).await.map_err(err)?;
            tx.commit().await.map_err(err)?;
            id
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "data": { "id": id } })),
    ))
}

// ---- the HTML list page ----------------------------------------------------

/// The signed-in user of a session.
struct SignedIn {
    name: String,
    email: String,
    csrf: String,
}

/// The session of the `platform_session` cookie: one indexed `SELECT` by the
/// token's SHA-256 (signed in, second factor passed, user enabled, not
/// expired).
async fn session(pool: &Pool, headers: &HeaderMap) -> Result<Option<SignedIn>, sqlx::Error> {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "platform_session")
        .map(|(_, v)| v.trim().to_owned());
    let Some(token) = token.filter(|t| t.len() == 43) else {
        return Ok(None);
    };
    let hash = Sha256::digest(token.as_bytes());
    let mut id = String::with_capacity(64);
    for b in hash {
        let _ = write!(id, "{b:02x}");
    }
    const SQL: &str = "SELECT u.name, u.email, s.csrf_token, s.expires_at FROM platform_sessions s JOIN platform_users u ON u.id = s.user_id WHERE s.id = ";
    const TAIL: &str = " AND s.two_factor_passed AND u.disabled_at IS NULL";
    let row: Option<(String, String, String, DateTime<Utc>)> = match pool {
        Pool::Sqlite(p) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SQL}?{TAIL}")))
                .bind(id)
                .fetch_optional(p)
                .await?
        }
        Pool::Postgres(p) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SQL}$1{TAIL}")))
                .bind(id)
                .fetch_optional(p)
                .await?
        }
    };
    Ok(row
        .filter(|r| r.3 > Utc::now())
        .map(|(name, email, csrf, _)| SignedIn { name, email, csrf }))
}

/// The customers' names of a page, by id: one `IN` query.
async fn customer_names(
    pool: &Pool,
    rows: &[Invoice],
) -> Result<HashMap<i64, String>, sqlx::Error> {
    let mut ids: Vec<i64> = rows.iter().map(|r| r.customer_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let pg = matches!(pool, Pool::Postgres(_));
    let mut sql = String::from("SELECT id, name FROM customers WHERE id IN (");
    for i in 0..ids.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        if pg {
            let _ = write!(sql, "${}", i + 1);
        } else {
            sql.push('?');
        }
    }
    sql.push(')');
    let found: Vec<(i64, String)> = match pool {
        Pool::Sqlite(p) => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for id in &ids {
                q = q.bind(id);
            }
            q.fetch_all(p).await?
        }
        Pool::Postgres(p) => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for id in &ids {
                q = q.bind(id);
            }
            q.fetch_all(p).await?
        }
    };
    Ok(found.into_iter().collect())
}

/// Percent-encodes all but RFC 3986 unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `/admin/invoices?<pairs>`.
fn list_href(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("/admin/invoices");
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&enc(k));
        out.push('=');
        out.push_str(&enc(v));
    }
    out
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", thousands(abs / 100), abs % 100)
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[derive(Serialize)]
struct Column {
    name: &'static str,
    label: &'static str,
    sort_href: Option<String>,
    sorted: &'static str,
    visible: bool,
    class: &'static str,
}

#[derive(Serialize)]
struct Row {
    id: i64,
    customer_id: i64,
    customer: String,
    number: String,
    status: String,
    amount: String,
    issued_on: String,
    notes: String,
    iban: String,
    created_at: String,
    updated_at: String,
    deleted_at: String,
}

#[derive(Serialize)]
struct Choice {
    value: &'static str,
    selected: bool,
}

#[derive(Serialize)]
struct ListPage<'a> {
    csrf: &'a str,
    user_name: &'a str,
    user_email: &'a str,
    path: &'static str,
    search: &'a str,
    sort: &'a str,
    statuses: Vec<Choice>,
    page_sizes: Vec<(i64, bool)>,
    columns: Vec<Column>,
    rows: Vec<Row>,
    total: Option<String>,
    from: i64,
    to: i64,
    next: Option<String>,
    prev: Option<String>,
    query: String,
    back: String,
    filtered: bool,
}

/// The columns of the invoice table: label, whether sortable, shown by
/// default, CSS class.
const TABLE: [(&str, &str, bool, bool, &str); 11] = [
    ("id", "Id", true, true, "num"),
    ("customer_id", "Customer id", false, true, ""),
    ("number", "Number", true, true, ""),
    ("status", "Status", false, true, ""),
    ("amount_cents", "Amount cents", true, true, "num"),
    ("issued_on", "Issued on", true, true, ""),
    ("notes", "Notes", false, false, ""),
    ("iban", "Iban", false, false, ""),
    ("created_at", "Created at", false, false, ""),
    ("updated_at", "Updated at", false, false, ""),
    ("deleted_at", "Deleted at", false, false, ""),
];

/// `GET /admin/invoices`: the panel's invoice list page.
async fn list_page(
    State(app): State<App>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let err = |e: sqlx::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    let user = match session(&app.pool, &headers).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            res.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/admin/login"));
            return res;
        }
        Err(e) => return err(e),
    };
    let map: HashMap<String, String> = params.iter().cloned().collect();
    let args = ListArgs::from_params(&map);
    let mut rows = match fetch_page(&app.pool, &args).await {
        Ok(r) => r,
        Err(e) => return err(e),
    };
    let has_more = rows.len() as i64 > args.limit;
    rows.truncate(args.limit as usize);
    let total = if args.offset == 0 && !has_more {
        Some(rows.len() as i64)
    } else {
        match count_bounded(&app.pool, &args).await {
            Ok(n) => Some(n),
            Err(e) => return err(e),
        }
    };
    let names = match customer_names(&app.pool, &rows).await {
        Ok(n) => n,
        Err(e) => return err(e),
    };

    // The query without paging, for links.
    let base: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, v)| {
            !matches!(k.as_str(), "page[after]" | "page[trail]" | "page[n]") && !v.trim().is_empty()
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let value = |k: &str| map.get(k).map_or("", String::as_str);
    let (sort_col, sort_desc) = args.sort;
    let columns = TABLE
        .iter()
        .map(|&(name, label, sortable, visible, class)| {
            let sorted = match (map.contains_key("sort") && name == sort_col, sort_desc) {
                (true, false) => "asc",
                (true, true) => "desc",
                _ => "",
            };
            let sort_href = sortable.then(|| {
                let v = if sorted == "asc" {
                    format!("-{name}")
                } else {
                    name.to_owned()
                };
                let mut pairs: Vec<(&str, &str)> =
                    base.iter().copied().filter(|(k, _)| *k != "sort").collect();
                pairs.push(("sort", &v));
                list_href(&pairs)
            });
            Column {
                name,
                label,
                sort_href,
                sorted,
                visible,
                class: match (class, visible) {
                    ("num", true) => "num",
                    ("num", false) => "num is-hidden",
                    (_, false) => "is-hidden",
                    _ => "",
                },
            }
        })
        .collect();
    let n = rows.len() as i64;
    let page_no = args.offset / args.limit + 1;
    let with_page = |p: i64| {
        let p = p.to_string();
        let mut pairs = base.clone();
        pairs.push(("page[n]", &p));
        list_href(&pairs)
    };
    let query = list_href(&base)
        .split_once('?')
        .map(|(_, q)| q.to_owned())
        .unwrap_or_default();
    let view_rows = rows
        .into_iter()
        .map(|r| {
            let mut notes = r.notes.unwrap_or_default();
            if notes.chars().count() > 120 {
                notes = notes.chars().take(120).collect::<String>() + "…";
            }
            Row {
                customer: names
                    .get(&r.customer_id)
                    .cloned()
                    .unwrap_or_else(|| format!("Customer {}", r.customer_id)),
                id: r.id,
                customer_id: r.customer_id,
                number: r.number,
                amount: money(r.amount_cents),
                issued_on: r.issued_on.to_string(),
                notes,
                iban: r.iban.unwrap_or_default(),
                created_at: time(&r.created_at),
                updated_at: time(&r.updated_at),
                deleted_at: r.deleted_at.as_ref().map(time).unwrap_or_default(),
                status: r.status,
            }
        })
        .collect();
    let page = ListPage {
        csrf: &user.csrf,
        user_name: &user.name,
        user_email: &user.email,
        path: "/admin/invoices",
        search: value("search"),
        sort: value("sort"),
        statuses: ["draft", "sent", "paid", "void"]
            .iter()
            .map(|s| Choice {
                value: s,
                selected: value("filter[status]") == *s,
            })
            .collect(),
        page_sizes: [10, 25, 50, 100]
            .iter()
            .map(|s| (*s, *s == args.limit))
            .collect(),
        columns,
        rows: view_rows,
        total: total.map(|t| {
            if t > COUNT_LIMIT {
                format!("{}+", thousands(COUNT_LIMIT as u64 + 1))
            } else {
                thousands(t as u64)
            }
        }),
        from: if n == 0 { 0 } else { args.offset + 1 },
        to: args.offset + n,
        next: has_more.then(|| with_page(page_no + 1)),
        prev: (page_no > 1).then(|| with_page(page_no - 1)),
        back: list_href(&base),
        query,
        filtered: map.contains_key("search") || map.keys().any(|k| k.starts_with("filter[")),
    };
    let html = app
        .templates
        .get_template("list.html")
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&page))));
    match html {
        Ok(h) => {
            let mut res = Html(h).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Writes `& < > " '` escaped (minijinja's default also escapes `/`).
fn escape_html(out: &mut minijinja::Output, s: &str) -> std::fmt::Result {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            _ => continue,
        };
        out.write_str(&s[start..i])?;
        out.write_str(rep)?;
        start = i + 1;
    }
    out.write_str(&s[start..])
}

fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_formatter(|out, state, value| {
        if !value.is_safe()
            && let Some(s) = value.as_str()
        {
            return escape_html(out, s).map_err(|_| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "could not write")
            });
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.add_template(
        "list.html",
        include_str!("../../templates/baseline_list.html"),
    )
    .expect("the baseline template compiles");
    env
}

/// Creates `baseline_audits` as a copy of `platform_audits` (columns,
/// defaults and indexes) when it does not exist yet.
async fn create_audit_table(pool: &Pool) -> anyhow::Result<()> {
    match pool {
        Pool::Postgres(p) => {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS baseline_audits (LIKE platform_audits INCLUDING ALL)",
            )
            .execute(p)
            .await?;
        }
        Pool::Sqlite(p) => {
            let exists: Option<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'baseline_audits'",
            )
            .fetch_optional(p)
            .await?;
            if exists.is_none() {
                // The table's and its indexes' own DDL, renamed.
                let ddl: Vec<String> = sqlx::query_scalar(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = 'platform_audits' AND sql IS NOT NULL ORDER BY type = 'index'",
                )
                .fetch_all(p)
                .await?;
                for stmt in ddl {
                    let stmt = stmt.replace("platform_audits", "baseline_audits");
                    sqlx::query(sqlx::AssertSqlSafe(stmt)).execute(p).await?;
                }
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(addr)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: baseline <database url> <listen address>");
    };
    let pool = if url.starts_with("sqlite:") {
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
        let opts = opts
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5))
            .foreign_keys(true);
        Pool::Sqlite(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(16)
                .connect_with(opts)
                .await?,
        )
    } else {
        Pool::Postgres(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(16)
                .connect(url)
                .await?,
        )
    };
    create_audit_table(&pool).await?;
    let app = Router::new()
        .route("/api/invoices", get(list).post(create))
        .route("/admin/invoices", get(list_page))
        .with_state(App {
            pool,
            templates: Arc::new(templates()),
        });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("baseline serving http://{addr}/api/invoices and /admin/invoices");
    axum::serve(listener, app).await?;
    Ok(())
}
