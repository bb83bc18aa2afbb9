//! The raw baseline: plain axum + sqlx, no framework code, serving the same
//! invoice list and create-with-audit-row endpoints as the platform's API,
//! so every HTTP figure can be given as a ratio to it.
//!
//! `baseline <database url> <listen address>` (SQLite or PostgreSQL, over a
//! database with the demo's `invoices` and `platform_audits` tables).
//!
//! - `GET /api/invoices?search=&filter[status]=&sort=-amount_cents&page[size]=25`
//! - `POST /api/invoices` with a JSON invoice: one transaction inserting the
//!   row and its audit row.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
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

async fn list(
    State(pool): State<Pool>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let limit: i64 = params
        .get("page[size]")
        .and_then(|s| s.parse().ok())
        .unwrap_or(25)
        .clamp(1, 100);
    let status = params.get("filter[status]").cloned();
    let search = params.get("search").cloned();
    let desc = params.get("sort").map(String::as_str) == Some("-amount_cents");
    let err = |e: sqlx::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let rows: Vec<Invoice> = match &pool {
        Pool::Sqlite(p) => {
            let mut sql = format!("SELECT {COLUMNS} FROM invoices WHERE deleted_at IS NULL");
            if status.is_some() {
                sql.push_str(" AND status = ?");
            }
            if search.is_some() {
                sql.push_str(
                    " AND id IN (SELECT rowid FROM invoices_search WHERE invoices_search MATCH ?)",
                );
            }
            sql.push_str(if desc {
                " ORDER BY amount_cents DESC, id DESC LIMIT ?"
            } else {
                " ORDER BY id LIMIT ?"
            });
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            if let Some(s) = &status {
                q = q.bind(s.clone());
            }
            if let Some(s) = &search {
                q = q.bind(format!("\"{}\"", s.replace('"', "\"\"")));
            }
            decode_sqlite(q.bind(limit + 1).fetch_all(p).await.map_err(err)?).map_err(err)?
        }
        Pool::Postgres(p) => {
            let mut sql = format!("SELECT {COLUMNS} FROM invoices WHERE deleted_at IS NULL");
            let mut n = 0;
            if status.is_some() {
                n += 1;
                sql.push_str(&format!(" AND status = ${n}"));
            }
            if search.is_some() {
                n += 1;
                sql.push_str(&format!(
                    " AND (COALESCE(number, '') || chr(1) || COALESCE(notes, '')) ILIKE ${n} ESCAPE '!'"
                ));
            }
            n += 1;
            sql.push_str(&if desc {
                format!(" ORDER BY amount_cents DESC, id DESC LIMIT ${n}")
            } else {
                format!(" ORDER BY id LIMIT ${n}")
            });
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            if let Some(s) = &status {
                q = q.bind(s.clone());
            }
            if let Some(s) = &search {
                q = q.bind(format!("%{s}%"));
            }
            decode_pg(q.bind(limit + 1).fetch_all(p).await.map_err(err)?).map_err(err)?
        }
    };
    let has_more = rows.len() as i64 > limit;
    let rows: Vec<&Invoice> = rows.iter().take(limit as usize).collect();
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
            sqlx::query("INSERT INTO platform_audits (event, resource, record_id, new_values, actor_type, created_at) VALUES ('created', 'invoice', ?, ?, 'user', ?)")
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
            sqlx::query("INSERT INTO platform_audits (event, resource, record_id, new_values, actor_type, created_at) VALUES ('created', 'invoice', $1, $2, 'user', $3)")
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
    let app = Router::new()
        .route("/api/invoices", get(list).post(create))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("baseline serving http://{addr}/api/invoices");
    axum::serve(listener, app).await?;
    Ok(())
}
