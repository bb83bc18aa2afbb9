//! A cached permission check: the hot path of every request.
//!
//! `cargo bench -p platform-benches --bench permission`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use platform_core::context::Context;
use platform_core::platform::Platform;
use platform_core::resource::Registry;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (p, uid) = rt.block_on(async {
        let p = Platform::builder()
            .ignore_env()
            .database_url("sqlite::memory:")
            .app_key(platform_tests::test_key())
            .registry(Registry::default())
            .background_tasks(false)
            .build()
            .await
            .unwrap();
        let ctx = Context::console();
        let u = p
            .access()
            .create_user(
                &ctx,
                platform_core::access::NewUser {
                    email: "bench@example.com".into(),
                    name: "Bench".into(),
                    password: "benchmark password".into(),
                },
            )
            .await
            .unwrap();
        p.access().create_role(&ctx, "clerk").await.unwrap();
        let perms: Vec<String> = p.access().permissions().await.unwrap();
        p.access()
            .set_role_permissions(&ctx, "clerk", &perms[..10])
            .await
            .unwrap();
        p.access().assign_role(&ctx, u.id, "clerk").await.unwrap();
        p.access().grants(u.id).await.unwrap();
        (p, u.id)
    });
    let granted = p.access().cached_grants(uid).unwrap();
    let name = granted.permissions().next().unwrap().to_owned();
    c.bench_function("permission check (cached grants of a user)", |b| {
        b.iter(|| {
            let g = p.access().cached_grants(black_box(uid)).unwrap();
            black_box(g.has(black_box(&name)))
        });
    });
    c.bench_function("permission check (grants in hand)", |b| {
        b.iter(|| black_box(granted.has(black_box("delete_any_invoice"))));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
