//! The import figure: `import <database url> [rows]` writes a CSV file of
//! `rows` invoices (default 100,000), imports it through the platform
//! (validation, the write path, batched audit entries, the touch log) as
//! the console, rolls the batch back, and prints rows per second, the
//! rollback's time and the process's peak resident memory.
//!
//! ```text
//! cargo run --release -p platform-benches --bin import -- "sqlite:///tmp/imp.db?mode=rwc" 100000
//! ```
//!
//! The database must be empty (a fresh SQLite file, or a new PostgreSQL or
//! MySQL database): the test domain's tables are created in it.
//!
//! Measured 2026-12-05 on a 2-core machine, 100,000 rows: SQLite
//! 25,361-25,969 rows/s, PostgreSQL 20,554-21,051 (two chunks written at
//! once), MariaDB 16,753-17,274; peak RSS 29-44 MiB for the import and
//! 33-47 MiB with the rollback (which takes 2.9-5.5 s). Before the lookups
//! were planned for their values (`Sql::in_list`), a PostgreSQL import into
//! an empty table sometimes kept a plan made for the empty table and took
//! 28-40 s instead of 5. What PostgreSQL alone needs for the rows an import
//! writes, measured with `INSERT ... SELECT FROM generate_series` on the
//! same tables: 0.66 s for 100,000 invoices (their trigram index
//! included) and 1.15 s for their 100,000 audit entries.

use std::io::Write;
use std::time::Instant;

use platform_core::Platform;
use platform_core::context::Context;
use platform_core::db::Db;
use platform_exchange::Exchange;
use platform_exchange::import::{ImportRequest, Imports};
use platform_tests::domain::{Customer, customer, registry};
use platform_tests::{TestDb, test_key};

/// The peak resident set size (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: import <database url> [rows]"))?;
    let rows: u64 = args.next().map_or(Ok(100_000), |r| r.parse())?;
    let db = Db::connect(&url).await?;
    TestDb::create_tables_on(&db, &registry()).await;
    db.close().await;
    let platform = Platform::builder()
        .ignore_env()
        .database_url(&url)
        .app_key(test_key())
        .registry(registry())
        .background_tasks(false)
        .with(Exchange::default())
        .build()
        .await?;
    let console = Context::console();
    let c = platform
        .repo::<Customer>(&console)
        .create(&customer("Acme", "acme@example.com", "DE"))
        .await?;
    let path = std::env::temp_dir().join(format!("import-bench-{}.csv", std::process::id()));
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        writeln!(f, "number,customer_id,status,amount,issued_on,notes")?;
        for n in 0..rows {
            writeln!(
                f,
                "INV-{n:07},{},{},{}.{:02},2024-{:02}-{:02},note {n}",
                c.id,
                ["draft", "sent", "paid", "void"][(n % 4) as usize],
                n % 10_000,
                n % 100,
                n % 12 + 1,
                n % 28 + 1
            )?;
        }
    }
    let imports = platform
        .get::<Imports>()
        .ok_or_else(|| anyhow::anyhow!("no import service"))?;
    let request = ImportRequest {
        resource: "invoices".into(),
        mapping: vec![("amount".into(), "amount_cents".into())],
        ..ImportRequest::default()
    };
    let started = Instant::now();
    let report = imports
        .import_file(&platform, &console, &request, &path, &|_| {})
        .await?;
    let took = started.elapsed();
    let _ = std::fs::remove_file(&path);
    anyhow::ensure!(
        report.counts.created == rows,
        "imported {} of {rows}: {:?}",
        report.counts.created,
        report.failures.first()
    );
    let rss_import = peak_rss_mib();
    let started = Instant::now();
    let r = imports
        .rollback(&platform, &console, report.batch_id, false)
        .await?;
    let rollback = started.elapsed();
    println!(
        "backend={} rows={rows} import={:.2}s rows_per_s={:.0} peak_rss_after_import={rss_import:.1}MiB rollback={:.2}s (removed {}) peak_rss={:.1}MiB",
        platform.db().backend().name(),
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64(),
        rollback.as_secs_f64(),
        r.deleted,
        peak_rss_mib()
    );
    platform.shutdown().await;
    Ok(())
}
