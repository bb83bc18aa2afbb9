//! A list of 25 invoices out of 1,000,000 with search + filter + sort,
//! through the platform and as the hand-written sqlx query; and counts.
//!
//! `cargo bench -p platform-benches --bench list`. The first run seeds
//! 1,000,000 invoices (through the write path, audited) into a persistent
//! benchmark database; set `PLATFORM_BENCH_ROWS` to change the size.

use chrono::{DateTime, NaiveDate, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use platform_benches::{bench_url, seeded_platform};
use platform_core::context::Context;
use platform_core::db::Backend;
use platform_core::query::{Direction, ListQuery};

#[allow(dead_code)] // the fields are decoded, as a real handler would
struct RawInvoice {
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

macro_rules! raw_invoice {
    ($r:expr) => {{
        use sqlx::Row;
        let r = $r;
        RawInvoice {
            id: r.try_get(0).unwrap(),
            customer_id: r.try_get(1).unwrap(),
            number: r.try_get(2).unwrap(),
            status: r.try_get(3).unwrap(),
            amount_cents: r.try_get(4).unwrap(),
            issued_on: r.try_get(5).unwrap(),
            notes: r.try_get(6).unwrap(),
            iban: r.try_get(7).unwrap(),
            created_at: r.try_get(8).unwrap(),
            updated_at: r.try_get(9).unwrap(),
            deleted_at: r.try_get(10).unwrap(),
        }
    }};
}

const SEARCH: &str = "INV-0004";

fn query() -> ListQuery {
    ListQuery::new()
        .search(SEARCH)
        .filter_eq("status", "paid")
        .sort("amount_cents", Direction::Desc)
        .page_size(25)
}

fn bench(c: &mut Criterion) {
    let rows: u64 = std::env::var("PLATFORM_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(url) = rt.block_on(bench_url(backend, "list1m")) else {
            eprintln!("skipping {}: no server configured", backend.name());
            continue;
        };
        let p = rt.block_on(seeded_platform(&url, rows));
        let ctx = Context::system();
        let records = p.records("invoices", &ctx).unwrap();
        let n = rt.block_on(records.list(&query())).unwrap().items.len();
        assert_eq!(n, 25, "the benchmark query must fill a page");
        let mut g = c.benchmark_group(format!("list 25 of {rows}/{}", backend.name()));
        g.bench_function("platform list (search + filter + sort)", |b| {
            b.to_async(&rt)
                .iter(|| async { records.list(&query()).await.unwrap() });
        });
        match backend {
            Backend::Sqlite => {
                let pool = p.db().as_sqlite().unwrap().clone();
                g.bench_function("hand-written sqlx", |b| {
                    b.to_async(&rt).iter(|| async {
                        let rows = sqlx::query(
                            r#"SELECT id, customer_id, number, status, amount_cents, issued_on, notes, iban, created_at, updated_at, deleted_at FROM invoices WHERE deleted_at IS NULL AND status = ? AND id IN (SELECT rowid FROM invoices_search WHERE invoices_search MATCH ?) ORDER BY amount_cents DESC, id DESC LIMIT 26"#,
                        )
                        .bind("paid")
                        .bind(format!("\"{SEARCH}\""))
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                        let v: Vec<RawInvoice> = rows.iter().map(|r| raw_invoice!(r)).collect();
                        assert_eq!(v.len(), 26);
                    });
                });
            }
            _ => {
                let pool = p.db().as_postgres().unwrap().clone();
                g.bench_function("hand-written sqlx", |b| {
                    b.to_async(&rt).iter(|| async {
                        let rows = sqlx::query(
                            r#"SELECT id, customer_id, number, status, amount_cents, issued_on, notes, iban, created_at, updated_at, deleted_at FROM invoices WHERE deleted_at IS NULL AND status = $1 AND (COALESCE(number, '') || chr(1) || COALESCE(notes, '')) ILIKE $2 ESCAPE '!' ORDER BY amount_cents DESC, id DESC LIMIT 26"#,
                        )
                        .bind("paid")
                        .bind(format!("%{SEARCH}%"))
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                        let v: Vec<RawInvoice> = rows.iter().map(|r| raw_invoice!(r)).collect();
                        assert_eq!(v.len(), 26);
                    });
                });
            }
        }
        g.bench_function("count, unfiltered", |b| {
            b.to_async(&rt)
                .iter(|| async { records.count(&ListQuery::new()).await.unwrap() });
        });
        g.bench_function("count, filtered (status = paid)", |b| {
            b.to_async(&rt).iter(|| async {
                records
                    .count(&ListQuery::new().filter_eq("status", "paid"))
                    .await
                    .unwrap()
            });
        });
        g.bench_function("count, searched + filtered", |b| {
            b.to_async(&rt)
                .iter(|| async { records.count(&query()).await.unwrap() });
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
