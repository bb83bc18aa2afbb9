//! The Platform demo: customers and invoices with an audited JSON API.
//!
//! `cargo run -p demo` migrates an SQLite file `.platform/platform.db`,
//! seeds the demo data on first start, creates `admin@example.com` (printing
//! its generated password in a box, unless `PLATFORM_ADMIN_PASSWORD` is set)
//! and serves on `127.0.0.1:8080`. The same binary is the command line:
//! `cargo run -p demo -- --help`.
//!
//! Jobs run in `serve` (or `queue:work`); the queue dashboard is at
//! `/admin/jobs`. Setting an invoice's status to `sent` queues the job
//! `invoice_sent`, which puts a notice in the bell of the user who did it.

mod domain;
mod jobs;
mod seed;

// ANCHOR: main
use platform_core::prelude::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut builder =
        Platform::builder().migrations(platform_core::embed_migrations!("migrations"));
    // Jobs on the main database (SQLite, PostgreSQL) or PLATFORM_QUEUE_URL;
    // workers run in `serve` and `queue:work`. Then the demo's own
    // capability: a notice when an invoice is sent.
    let database_url = builder.resolved_database_url();
    builder = builder
        .with(jobs::capability(&database_url))
        .with(jobs::InvoiceNotices)
        // CSV and XLSX exports: `GET /api/invoices/export?format=xlsx`,
        // `cargo run -p demo -- export invoices --output invoices.xlsx`.
        .with(platform_exchange::Exchange::default());
    // Mail (password resets, verification links) goes out by SMTP when
    // PLATFORM_MAIL_URL is set (`smtp://user:pass@host:587`, `smtps://...`);
    // without it, mails are only logged.
    if let Ok(url) = std::env::var("PLATFORM_MAIL_URL") {
        let from = std::env::var("PLATFORM_MAIL_FROM")
            .unwrap_or_else(|_| "Platform <noreply@localhost>".to_owned());
        let smtp = platform_adapters::mail::SmtpMailer::from_url(&url, &from)?;
        builder = builder.mailer(std::sync::Arc::new(smtp));
    }
    // Several nodes: PLATFORM_REDIS_URL puts the cache on Redis (L1 in
    // process, L2 on Redis) and carries cache and permission changes
    // between the nodes over Redis pub/sub.
    if let Ok(url) = std::env::var("PLATFORM_REDIS_URL") {
        let redis = platform_adapters::redis::RedisScaleOut::connect(&url).await?;
        builder = redis.apply(builder);
    }
    platform_admin::cli::Cli::new(builder)
        .on_serve(|platform| async move {
            seed::seed_domain(&platform).await?;
            // Last before serving: its box is the last thing printed
            // before the address.
            seed::ensure_admin(&platform).await
        })
        .run()
        .await
}
// ANCHOR_END: main
