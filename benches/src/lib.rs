//! Shared set-up of the benchmarks: persistent, seeded benchmark databases,
//! so the 1,000,000-row set is written once per machine and reused.
//!
//! - SQLite: `target/platform-bench/<name>.sqlite` (override the directory
//!   with `PLATFORM_BENCH_DIR`);
//! - PostgreSQL: database `platform_bench_<name>` on the server of
//!   `PLATFORM_BENCH_POSTGRES_URL` (or `PLATFORM_TEST_POSTGRES_URL`).

use std::path::PathBuf;
use std::time::Instant;

use chrono::{Days, NaiveDate};
use platform_core::Platform;
use platform_core::context::Context;
use platform_core::db::{Backend, Db, Sql};
use platform_core::repo::Changes;
use platform_core::resource::Registry;
use platform_core::value::Value;
use platform_tests::domain::{Customer, Invoice};
use platform_tests::{test_key, with_database};

/// The demo's domain: customers and invoices.
pub fn registry() -> Registry {
    Registry::builder()
        .register::<Customer>()
        .register::<Invoice>()
        .build()
        .expect("bench registry")
}

/// Where SQLite benchmark files live.
pub fn bench_dir() -> PathBuf {
    let dir = std::env::var("PLATFORM_BENCH_DIR").map_or_else(
        |_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("platform-bench")
        },
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

/// The URL of the PostgreSQL server for benchmarks, if configured.
pub fn postgres_server() -> Option<String> {
    ["PLATFORM_BENCH_POSTGRES_URL", "PLATFORM_TEST_POSTGRES_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
}

/// The URL of the benchmark database `name` on `backend` (created if
/// missing), or `None` when PostgreSQL is not configured.
pub async fn bench_url(backend: Backend, name: &str) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!(
            "sqlite://{}?mode=rwc",
            bench_dir().join(format!("{name}.sqlite")).display()
        )),
        Backend::Postgres => {
            let server = postgres_server()?;
            let db = Db::connect(&server).await.expect("bench postgres server");
            let mut q = db.sql();
            q.push("SELECT COUNT(*) FROM pg_database WHERE datname = ")
                .bind_str(format!("platform_bench_{name}"));
            if db.fetch_i64(q).await.expect("query").unwrap_or(0) == 0 {
                db.execute_script(&format!("CREATE DATABASE platform_bench_{name}"))
                    .await
                    .expect("create bench database");
            }
            db.close().await;
            Some(with_database(&server, &format!("platform_bench_{name}")))
        }
        Backend::MySql => None,
    }
}

/// A platform over the benchmark database at `url` with the demo domain,
/// its tables created if missing and at least `invoices` invoices seeded
/// (through the write path, audited).
pub async fn seeded_platform(url: &str, invoices: u64) -> Platform {
    let db = Db::connect(url).await.expect("bench database");
    let exists = db
        .fetch_optional(
            Sql::literal(db.backend(), "SELECT 1 FROM invoices WHERE 1 = 0"),
            &[],
        )
        .await
        .is_ok();
    if !exists {
        platform_tests::TestDb::create_tables_on(&db, &registry()).await;
    }
    db.close().await;
    let p = Platform::builder()
        .ignore_env()
        .database_url(url)
        .app_key(test_key())
        .registry(registry())
        .max_connections(32)
        .build()
        .await
        .expect("bench platform");
    seed(&p, invoices).await;
    p
}

/// Deterministic generator (splitmix64), the same data on every machine.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const STATUSES: [&str; 7] = ["draft", "sent", "sent", "paid", "paid", "paid", "void"];
const NOTES: [&str; 6] = [
    "Net 30, thank you for your business",
    "Consulting, March",
    "Hardware and installation",
    "Annual support contract",
    "Rush order, ship express",
    "Paid by bank transfer",
];

async fn count(p: &Platform, sql: &'static str) -> u64 {
    let n = p
        .db()
        .fetch_i64(Sql::literal(p.db().backend(), sql))
        .await
        .expect("count")
        .unwrap_or(0);
    u64::try_from(n).unwrap_or(0)
}

/// Seeds customers (a tenth of the invoices) and invoices up to `invoices`.
pub async fn seed(p: &Platform, invoices: u64) {
    let have = count(p, "SELECT COUNT(*) FROM invoices").await;
    if have >= invoices {
        return;
    }
    let started = Instant::now();
    let ctx = Context::system();
    let customers = p.records("customers", &ctx).expect("customers");
    let inv = p.records("invoices", &ctx).expect("invoices");
    let want_customers = (invoices / 10).max(1);
    let have_customers = count(p, "SELECT COUNT(*) FROM customers").await;
    let mut rng = Rng(0x5EED ^ have_customers);
    let mut n = have_customers;
    while n < want_customers {
        let batch: Vec<Changes> = (n..(n + 2000).min(want_customers))
            .map(|i| {
                Changes::new()
                    .set("name", format!("Customer {i}"))
                    .set("email", format!("customer{i}@example.com"))
                    .set(
                        "country",
                        ["DE", "FR", "GB", "US", "KR"][rng.below(5) as usize],
                    )
            })
            .collect();
        n += batch.len() as u64;
        customers.create_many(batch).await.expect("seed customers");
    }
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
    let mut rng = Rng(0xB111 ^ have);
    let mut n = have;
    while n < invoices {
        let batch: Vec<Changes> = (n..(n + 2000).min(invoices))
            .map(|i| {
                let mut c = Changes::new()
                    .set("customer_id", (1 + rng.below(want_customers)) as i64)
                    .set("number", format!("INV-{:06}", i + 1))
                    .set("status", STATUSES[rng.below(7) as usize])
                    .set("amount_cents", (1_000 + rng.below(499_000)) as i64)
                    .set("issued_on", Value::Date(start + Days::new(rng.below(730))));
                if rng.below(3) > 0 {
                    c = c.set("notes", NOTES[rng.below(6) as usize]);
                }
                if rng.below(2) == 0 {
                    c = c.set(
                        "iban",
                        format!("DE89 3704 0044 0532 {:04} 00", rng.below(10_000)),
                    );
                }
                c
            })
            .collect();
        n += batch.len() as u64;
        inv.create_many(batch).await.expect("seed invoices");
        if n % 100_000 == 0 {
            eprintln!(
                "seeded {n} invoices ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!("sealing the audit trail ...");
    p.audit().seal().await.expect("seal");
    let analyze = match p.db().backend() {
        Backend::Postgres => "VACUUM ANALYZE",
        _ => "ANALYZE",
    };
    p.db().execute_script(analyze).await.expect("analyze");
    eprintln!(
        "seeded to {invoices} invoices in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
