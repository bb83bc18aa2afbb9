//! No-op jobs per second through the PostgreSQL back end with 4 workers:
//! the platform's `Jobs` (envelope, dispatch by name, run records) next to
//! bare apalis-postgres on the same database, side by side.
//!
//! Each sample queues `N` jobs first, then times the workers draining them.
//! The platform runs only the measured queue (`only_queues`, as
//! `queue:work --queue default` does), as bare apalis runs one worker.
//!
//! Measured 2026-12-04 on the quiet 2-core CI machine: platform 442.67 and
//! 424.90 ms per 2,000 jobs (4,518 and 4,707 jobs/s), bare apalis 403.09
//! and 388.69 ms (4,962 and 5,145 jobs/s): 1.10x and 1.09x. With the three
//! other default queues (`critical`, `low`, `scheduled`) and the scheduler
//! running idle beside it, the platform took 478.66 ms against 371.07 ms
//! (1.29x): idle queues cost throughput, to look into.
//! Needs `PLATFORM_TEST_POSTGRES_URL` (skipped without it):
//!
//! `cargo bench -p platform-benches --bench jobs`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::{BackendExt, Data, TaskBuilder, TaskSink, WorkerBuilder, WorkerBuilderExt};
use apalis_postgres::PostgresStorage;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use platform_core::platform::Platform;
use platform_core::resource::Registry;
use platform_jobs::{Job, JobContext, JobError, Jobs};
use serde::{Deserialize, Serialize};

const N: usize = 2_000;
const WORKERS: usize = 4;

static DONE: AtomicUsize = AtomicUsize::new(0);

/// Does nothing.
#[derive(Serialize, Deserialize)]
struct Noop {
    n: usize,
}
impl Job for Noop {
    const NAME: &'static str = "bench_noop";
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        DONE.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
platform_jobs::register_job!(Noop);

async fn bare_noop(
    _job: Noop,
    done: Data<Arc<AtomicUsize>>,
) -> Result<(), apalis::prelude::BoxDynError> {
    done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn wait_for(counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn bench(c: &mut Criterion) {
    let Ok(url) = std::env::var("PLATFORM_TEST_POSTGRES_URL") else {
        eprintln!("skipping the jobs bench: PLATFORM_TEST_POSTGRES_URL is not set");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt
        .block_on(platform_tests::TestDb::server(
            platform_core::db::Backend::Postgres,
        ))
        .expect("a PostgreSQL server");
    let _ = url;
    let mut g = c.benchmark_group("no-op jobs, PostgreSQL, 4 workers");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));

    g.bench_function("platform Jobs", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let ns = uuid::Uuid::new_v4().simple().to_string();
                    let p = Platform::builder()
                        .ignore_env()
                        .database_url(&db.url)
                        .app_key(platform_tests::test_key())
                        .registry(Registry::default())
                        .background_tasks(false)
                        .max_connections(16)
                        .with(
                            Jobs::new()
                                .ignore_env()
                                .namespace(&ns)
                                .queue("default", WORKERS),
                        )
                        .build()
                        .await
                        .unwrap();
                    let jobs = p.get::<Jobs>().unwrap();
                    for n in 0..N {
                        jobs.dispatch(Noop { n }).await.unwrap();
                    }
                    DONE.store(0, Ordering::Relaxed);
                    let t0 = Instant::now();
                    // The measured queue only, as bare apalis.
                    jobs.only_queues(vec!["default".into()]).unwrap();
                    p.start_workers();
                    wait_for(&DONE, N).await;
                    total += t0.elapsed();
                    p.shutdown().await;
                }
                total
            })
        });
    });

    let pool = rt.block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        PostgresStorage::setup(&pool).await.unwrap();
        pool
    });
    g.bench_function("bare apalis-postgres", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let ns = uuid::Uuid::new_v4().simple().to_string();
                    let mut storage: PostgresStorage<Noop> = PostgresStorage::new(&pool)
                        .with_config(apalis_postgres::Config::default().queue(&ns));
                    for n in 0..N {
                        storage
                            .push_task(TaskBuilder::new(Noop { n }).max_attempts(1).build())
                            .await
                            .unwrap();
                    }
                    let done = Arc::new(AtomicUsize::new(0));
                    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                    let t0 = Instant::now();
                    let worker = WorkerBuilder::new(format!("bench-{ns}"))
                        .backend(storage.poll_with_interval(Duration::from_millis(100)))
                        .data(done.clone())
                        .concurrency(WORKERS)
                        .build(bare_noop);
                    let handle = tokio::spawn(worker.run_until(async move {
                        let _ = rx.await;
                        Ok::<(), std::io::Error>(())
                    }));
                    wait_for(&done, N).await;
                    total += t0.elapsed();
                    let _ = tx.send(());
                    let _ = handle.await;
                }
                total
            })
        });
    });
    g.finish();
    drop(pool);
    drop(db);
}

criterion_group!(benches, bench);
criterion_main!(benches);
