//! A separate process that writes audited records, for the test of many
//! processes writing at once (`tests/audit_chain.rs`).
//!
//! Usage: `audit_writer <database url> <customer id> <count> <tag>`.

use platform_core::Platform;
use platform_core::context::Context;
use platform_core::repo::Changes;
use platform_tests::domain::{Invoice, invoice, registry};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, customer, count, tag] = args.as_slice() else {
        eprintln!("usage: audit_writer <url> <customer id> <count> <tag>");
        std::process::exit(2);
    };
    let customer: i64 = customer.parse().expect("customer id");
    let count: u32 = count.parse().expect("count");
    let tag: u32 = tag.parse().expect("tag");
    let p = Platform::builder()
        .ignore_env()
        .database_url(url)
        .app_key(platform_tests::test_key())
        .registry(registry())
        .max_connections(4)
        .build()
        .await
        .expect("platform");
    let ctx = Context::job(format!("writer-{tag}"));
    let repo = p.repo::<Invoice>(&ctx);
    for i in 0..count {
        let n = tag * 10_000 + i;
        let inv = repo
            .create(&invoice(customer, n, "draft", 1))
            .await
            .expect("create");
        repo.update_fields(inv.id, Changes::new().set("status", "sent"))
            .await
            .expect("update");
    }
    p.shutdown().await;
}
