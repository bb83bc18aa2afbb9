//! No-op jobs per second through the PostgreSQL back end with 4 workers:
//! the platform's `Jobs` (envelope, dispatch by name, run records) next to
//! bare apalis-postgres on the same database, side by side.
//!
//! Each sample queues `N` jobs first, then times the workers draining them.
//! The platform runs first only the measured queue (`only_queues`, as
//! `queue:work --queue default` does), as bare apalis runs one worker, then
//! with the three other default queues and the scheduler idle beside it,
//! as `serve` runs them. Both fetch 16 jobs at a time (the platform's
//! default prefetch of 4 per worker; apalis's own default is 10).
//!
//! Measured 2026-12-05 on the 2-core CI machine, 2 runs (jobs/s, medians):
//! platform 5,655 and 5,728, with idle queues beside 5,305 and 5,356, bare
//! apalis 5,896 and 5,856: the platform's overhead is 1.04x and 1.02x
//! (1.11x and 1.09x with the idle queues). Before the prefetch (a fetch of
//! 10 for 4 workers) the same machine gave platform 4,143, bare apalis
//! (also 10) 4,748.
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

/// Queues `N` jobs on a fresh platform, then times its workers draining
/// them; `only`: the measured queue's workers only.
async fn platform_run(url: &str, only: bool) -> Duration {
    let ns = uuid::Uuid::new_v4().simple().to_string();
    let p = Platform::builder()
        .ignore_env()
        .database_url(url)
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
    if only {
        jobs.only_queues(vec!["default".into()]).unwrap();
    }
    p.start_workers();
    wait_for(&DONE, N).await;
    let took = t0.elapsed();
    p.shutdown().await;
    took
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

    // The measured queue only, as bare apalis runs one worker; then with
    // the three other default queues and the scheduler running idle
    // beside it, as `serve` runs them.
    for (name, only) in [
        ("platform Jobs", true),
        ("platform Jobs, idle queues beside", false),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += platform_run(&db.url, only).await;
                    }
                    total
                })
            });
        });
    }

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
                        .with_config(
                            apalis_postgres::Config::default()
                                .queue(&ns)
                                .batch_size(WORKERS * platform_jobs::DEFAULT_PREFETCH),
                        );
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
