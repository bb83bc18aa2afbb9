//! `audit:verify` over the audit trail of the 1,000,000-invoice benchmark
//! database (1,000,000+ entries): the whole chain, every hash.
//!
//! `cargo bench -p platform-benches --bench audit_verify`

use criterion::{Criterion, criterion_group, criterion_main};
use platform_benches::{bench_url, seeded_platform};
use platform_core::db::{Backend, Sql};

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
        let entries = rt
            .block_on(p.db().fetch_i64(Sql::literal(
                p.db().backend(),
                "SELECT COUNT(*) FROM platform_audits",
            )))
            .unwrap()
            .unwrap_or(0);
        let mut g = c.benchmark_group(format!("audit verify/{}", backend.name()));
        g.sample_size(10);
        g.bench_function(format!("{entries} entries"), |b| {
            b.to_async(&rt).iter(|| async {
                let r = p.audit().verify().await.unwrap();
                assert!(r.is_ok(), "{r:?}");
                assert!(r.checked >= entries as u64 - 10);
            });
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
