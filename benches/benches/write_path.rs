//! Create through the full write path (authorize + validate + encrypt +
//! transaction with audit + cache invalidation + events) against a
//! hand-written sqlx insert of the row plus its audit row in one transaction.
//!
//! `cargo bench -p platform-benches --bench write_path` (PostgreSQL too when
//! `PLATFORM_BENCH_POSTGRES_URL` or `PLATFORM_TEST_POSTGRES_URL` is set).
//!
//! Both sides run each create in a task on the runtime's workers, as an
//! axum handler does: called from criterion's `block_on` thread instead,
//! the platform's hand-off of the write to a task of its own costs a
//! cross-thread wake-up the hand-written code does not pay (SQLite on
//! tmpfs: 1.88x that way, 1.43x this way).

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{NaiveDate, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use platform_benches::{bench_url, seeded_platform};
use platform_core::context::Context;
use platform_core::db::Backend;
use platform_tests::domain::{Invoice, invoice};

static N: AtomicU64 = AtomicU64::new(0);

fn next_number(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The hand-written baseline: the same row and an audit row, one transaction.
async fn raw_create_sqlite(pool: &sqlx::SqlitePool, customer: i64) {
    let now = Utc::now();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO invoices (customer_id, number, status, amount_cents, issued_on, notes, iban, created_at, updated_at, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) RETURNING id",
    )
    .bind(customer)
    .bind(next_number("RAW"))
    .bind("draft")
    .bind(1250_i64)
    .bind(NaiveDate::from_ymd_opt(2024, 5, 1).unwrap())
    .bind("note")
    .bind("DE89 3704 0044 0532 0001 00")
    .bind(now)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO platform_audits (event, resource, record_id, old_values, new_values, actor_type, created_at) VALUES ('created', 'invoice', ?, NULL, ?, 'system', ?)")
        .bind(id.to_string())
        .bind(r#"{"status":"draft","amount_cents":1250}"#)
        .bind(now)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn raw_create_pg(pool: &sqlx::PgPool, customer: i64) {
    let now = Utc::now();
    let mut tx = pool.begin().await.unwrap();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO invoices (customer_id, number, status, amount_cents, issued_on, notes, iban, created_at, updated_at, deleted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL) RETURNING id",
    )
    .bind(customer)
    .bind(next_number("RAW"))
    .bind("draft")
    .bind(1250_i64)
    .bind(NaiveDate::from_ymd_opt(2024, 5, 1).unwrap())
    .bind("note")
    .bind("DE89 3704 0044 0532 0001 00")
    .bind(now)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO platform_audits (event, resource, record_id, old_values, new_values, actor_type, created_at) VALUES ('created', 'invoice', $1, NULL, $2, 'system', $3)")
        .bind(id.to_string())
        .bind(r#"{"status":"draft","amount_cents":1250}"#)
        .bind(now)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(url) = rt.block_on(bench_url(backend, "write")) else {
            eprintln!("skipping {}: no server configured", backend.name());
            continue;
        };
        let p = rt.block_on(seeded_platform(&url, 1_000));
        let mut g = c.benchmark_group(format!("create/{}", backend.name()));
        // Each create runs in a task on the runtime's workers, as an axum
        // handler's does, on both sides.
        g.bench_function("platform write path", |b| {
            b.to_async(&rt).iter(|| {
                let p = p.clone();
                async move {
                    tokio::spawn(async move {
                        let mut inv = invoice(1, 0, "draft", 1250);
                        inv.number = next_number("PLT");
                        p.repo::<Invoice>(&Context::system())
                            .create(&inv)
                            .await
                            .unwrap();
                    })
                    .await
                    .unwrap();
                }
            });
        });
        match backend {
            Backend::Sqlite => {
                let pool = p.db().as_sqlite().unwrap().clone();
                g.bench_function("hand-written sqlx", |b| {
                    b.to_async(&rt).iter(|| {
                        let pool = pool.clone();
                        async move {
                            tokio::spawn(async move { raw_create_sqlite(&pool, 1).await })
                                .await
                                .unwrap();
                        }
                    });
                });
            }
            _ => {
                let pool = p.db().as_postgres().unwrap().clone();
                g.bench_function("hand-written sqlx", |b| {
                    b.to_async(&rt).iter(|| {
                        let pool = pool.clone();
                        async move {
                            tokio::spawn(async move { raw_create_pg(&pool, 1).await })
                                .await
                                .unwrap();
                        }
                    });
                });
            }
        }
        g.finish();
        // Keep the benchmark database small between runs.
        rt.block_on(async {
            p.db()
                .execute_script(
                    "DELETE FROM invoices WHERE number LIKE 'RAW-%' OR number LIKE 'PLT-%'",
                )
                .await
                .unwrap();
            p.db()
                .execute_script("DELETE FROM platform_audits; DELETE FROM platform_audit_pending; DELETE FROM platform_audit_seals; DELETE FROM platform_audit_chain")
                .await
                .unwrap();
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);
