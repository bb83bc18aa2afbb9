//! The export figure: `export <database url> [rows] [csv|xlsx|both]` seeds
//! `rows` invoices (default 1,000,000) straight into the table (multi-row
//! INSERTs, not through the write path), then exports them all as the
//! console (every column the console may export, the encrypted `iban`
//! decrypted) to a file in the temporary directory, and prints rows per
//! second and the peak resident memory of the export (the peak is reset
//! after seeding through `/proc/self/clear_refs`).
//!
//! ```text
//! cargo run --profile bench -p platform-benches --bin export -- "sqlite:///tmp/exp.db?mode=rwc" 1000000 all
//! ```
//!
//! `cells` instead of `csv` times the CSV written the way the pipeline
//! wrote it before its direct writer (each record turned into
//! [`Cell`](platform_exchange::export::Cell)s, each cell into a `String`,
//! then the CSV writer), for a before/after figure from one build.
//!
//! Measured 2026-12-04 on the quiet 2-core CI machine, 1,000,000 rows,
//! CSV: PostgreSQL 538,944 rows/s (peak RSS 23.7 MiB), SQLite 240,851
//! rows/s (41.6 MiB), MariaDB 60,538 rows/s (19.3 MiB); XLSX on PostgreSQL
//! 126,947 rows/s (26.9 MiB). Before the statistics were refreshed after
//! seeding, PostgreSQL read every batch with a bitmap scan and a sort
//! (28,133 rows/s); before the next batch was read while one is written,
//! 332,458; before dates were written without chrono's formatter,
//! 462,240. Measured again 2026-12-05 on another 2-core CI machine: CSV
//! on PostgreSQL 603,391-603,541 rows/s at 1,000,000 rows (peak RSS 23.0
//! MiB) and 629,178 at 100,000 (22.6 MiB: the same peak); XLSX 155,486-
//! 157,183 rows/s (25.3-26.3 MiB). MariaDB (10.11), same machine, after
//! batch reads walk the primary key (`FORCE INDEX`; before, each batch
//! walked the `deleted_at` index from its start: 76,689 rows/s at
//! 1,000,000 rows, 194,191 at 200,000): CSV 239,103 rows/s at 1,000,000
//! (peak RSS 19.0 MiB) and 284,263 at 100,000; XLSX 105,709 and 109,929.
//!
//! The database must be empty (a fresh SQLite file, or a new PostgreSQL or
//! MySQL database): the test domain's tables are created in it.

use std::time::Instant;

use platform_core::Platform;
use platform_core::context::Context;
use platform_core::db::Db;
use platform_core::query::ListQuery;
use platform_core::resource::Resource;
use platform_core::value::Value;
use platform_exchange::Exchange;
use platform_exchange::export::{Export, Format};
use platform_tests::domain::{Customer, Invoice, customer, registry};
use platform_tests::{TestDb, test_key};

/// `VmHWM` or `VmRSS` of this process, in MiB.
fn memory_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Inserts `rows` invoices of `customer_id` in multi-row INSERTs.
async fn seed(db: &Db, customer_id: i64, rows: u64) -> anyhow::Result<()> {
    let meta = Invoice::meta();
    let fields: Vec<_> = meta
        .field_list()
        .iter()
        .filter(|f| !f.is_primary_key())
        .collect();
    let now = Value::DateTime(
        chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap_or_default(),
    );
    let per = 1_000u64;
    let mut n = 0u64;
    while n < rows {
        let end = (n + per).min(rows);
        let mut q = db.sql();
        q.push("INSERT INTO ").ident(meta.table()).push(" (");
        q.join(&fields, ", ", |q, f| {
            q.ident(f.column_name());
        });
        q.push(") VALUES ");
        let range: Vec<u64> = (n..end).collect();
        q.join(&range, ", ", |q, &i| {
            q.push("(");
            q.join(&fields, ", ", |q, f| {
                let v = match f.name() {
                    "customer_id" => Value::Int(customer_id),
                    "number" => Value::Text(format!("INV-{i:08}")),
                    "status" => {
                        Value::Text(["draft", "sent", "paid", "void"][(i % 4) as usize].into())
                    }
                    "amount_cents" => Value::Int(i64::try_from(i % 100_000).unwrap_or(0)),
                    "issued_on" => Value::Date(
                        chrono::NaiveDate::from_ymd_opt(
                            2024,
                            (i % 12) as u32 + 1,
                            (i % 28) as u32 + 1,
                        )
                        .unwrap_or_default(),
                    ),
                    "notes" if i % 3 == 0 => Value::Null,
                    "notes" => Value::Text(format!("note {i}, with a comma")),
                    "created_at" | "updated_at" => now.clone(),
                    _ => Value::Null,
                };
                q.bind_field(v, f);
            });
            q.push(")");
        });
        db.execute(q).await?;
        n = end;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: export <database url> [rows] [csv|xlsx|both]"))?;
    let rows: u64 = args.next().map_or(Ok(1_000_000), |r| r.parse())?;
    let which = args.next().unwrap_or_else(|| "csv".to_owned());
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
    let started = Instant::now();
    seed(platform.db(), c.id, rows).await?;
    // Fresh statistics, as autovacuum (PostgreSQL) or InnoDB's automatic
    // recalculation would have them a minute after a bulk load: without
    // them PostgreSQL's planner guesses a few hundred rows and reads every
    // batch through a bitmap scan and a sort (100 ms per batch at 1M rows
    // instead of under 1 ms).
    let db = platform.db();
    let mut q = db.sql();
    match db.backend() {
        platform_core::db::Backend::MySql => q.push("ANALYZE TABLE invoices"),
        _ => q.push("ANALYZE"),
    };
    db.execute(q).await?;
    eprintln!("seeded {rows} invoices in {:.1?}", started.elapsed());
    if which == "cells" || which == "all" {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = memory_mib("VmRSS:");
        let out =
            std::env::temp_dir().join(format!("export-bench-{}.cells.csv", std::process::id()));
        let records = platform
            .records("invoices", &console)
            .ok_or_else(|| anyhow::anyhow!("no invoices"))?;
        let mut export = Export::new(records, ListQuery::new(), None)?;
        let started = Instant::now();
        let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
        let mut head = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        head.write_record(export.headings())?;
        std::io::Write::write_all(
            &mut file,
            &head
                .into_inner()
                .map_err(|e| anyhow::anyhow!(e.to_string()))?,
        )?;
        while let Some(page) = export.next_page().await? {
            let mut w = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::with_capacity(page.items.len() * 64));
            for r in &page.items {
                let cells = export.cells(r);
                w.write_record(cells.iter().map(|c| c.text().into_owned()))?;
            }
            std::io::Write::write_all(
                &mut file,
                &w.into_inner().map_err(|e| anyhow::anyhow!(e.to_string()))?,
            )?;
        }
        std::io::Write::flush(&mut file)?;
        let took = started.elapsed();
        let written = export.rows();
        let _ = std::fs::remove_file(&out);
        anyhow::ensure!(written == rows, "exported {written} of {rows}");
        println!(
            "backend={} format=csv-cells rows={rows} export={:.2}s rows_per_s={:.0} rss_before={before:.1}MiB peak_rss={:.1}MiB",
            platform.db().backend().name(),
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64(),
            memory_mib("VmHWM:"),
        );
    }
    let formats: &[Format] = match which.as_str() {
        "xlsx" => &[Format::Xlsx],
        "both" | "all" => &[Format::Csv, Format::Xlsx],
        "cells" => &[],
        _ => &[Format::Csv],
    };
    for &format in formats {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = memory_mib("VmRSS:");
        let out = std::env::temp_dir().join(format!(
            "export-bench-{}.{}",
            std::process::id(),
            if format == Format::Csv { "csv" } else { "xlsx" }
        ));
        let records = platform
            .records("invoices", &console)
            .ok_or_else(|| anyhow::anyhow!("no invoices"))?;
        let export = Export::new(records, ListQuery::new(), None)?;
        let started = Instant::now();
        let written = export.write_file(format, &out).await?;
        let took = started.elapsed();
        let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        let _ = std::fs::remove_file(&out);
        anyhow::ensure!(written == rows, "exported {written} of {rows}");
        println!(
            "backend={} format={} rows={rows} export={:.2}s rows_per_s={:.0} file={:.1}MiB rss_before={before:.1}MiB peak_rss={:.1}MiB",
            platform.db().backend().name(),
            if format == Format::Csv { "csv" } else { "xlsx" },
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64(),
            size as f64 / 1_048_576.0,
            memory_mib("VmHWM:"),
        );
    }
    platform.shutdown().await;
    Ok(())
}
