//! Latency figures of the event path, printed as percentiles:
//!
//! 1. commit to outbox subscriber: from the moment the write path records
//!    an event (inside the transaction, so the commit itself is included)
//!    to the subscriber's call, for creates through the full write path;
//! 2. commit to job start: from `Jobs::dispatch` (which commits the job) to
//!    the job's `handle`, on the PostgreSQL back end.
//!
//! Usage: `cargo run --release -p platform-benches --bin latency -- [sqlite|postgres] [n]`
//! (for `postgres`, `PLATFORM_TEST_POSTGRES_URL` names the server; a fresh
//! database is created and dropped).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use platform_core::Platform;
use platform_core::context::Context;
use platform_core::outbox::Event;
use platform_jobs::{Job, JobContext, JobError, Jobs, register_job};
use platform_tests::domain::{Customer, customer, registry};
use platform_tests::{TestDb, test_key};
use serde::{Deserialize, Serialize};

type Times = Arc<Mutex<Vec<f64>>>;

static STARTS: std::sync::OnceLock<Times> = std::sync::OnceLock::new();

/// Records how long after its dispatch it started.
#[derive(Serialize, Deserialize)]
struct Probe {
    dispatched_at_us: i64,
}

impl Job for Probe {
    const NAME: &'static str = "latency_probe";
    const QUEUE: &'static str = "critical";

    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        let now = Utc::now().timestamp_micros();
        if let Some(t) = STARTS.get() {
            t.lock()
                .unwrap()
                .push((now - self.dispatched_at_us) as f64 / 1000.0);
        }
        Ok(())
    }
}
register_job!(Probe);

fn percentiles(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    println!(
        "{name}: n={} p50={:.2} ms p95={:.2} ms p99={:.2} ms max={:.2} ms",
        v.len(),
        p(0.50),
        p(0.95),
        p(0.99),
        v[v.len() - 1]
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let backend = args.get(1).map_or("sqlite", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(500);
    let db = match backend {
        "postgres" => TestDb::server(platform_core::db::Backend::Postgres)
            .await
            .expect("set PLATFORM_TEST_POSTGRES_URL to a PostgreSQL server"),
        _ => TestDb::sqlite(),
    };
    db.create_tables(&registry()).await;
    let p = Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(registry())
        .max_connections(8)
        .with(
            Jobs::new()
                .ignore_env()
                .poll_interval(Duration::from_millis(10)),
        )
        .build()
        .await?;
    p.start_workers();

    // 1. Commit to subscriber.
    let seen: Times = Arc::default();
    let s = seen.clone();
    p.outbox()
        .subscribe_to::<Customer>("latency", move |e: Event| {
            let ms = (Utc::now() - e.occurred_at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            s.lock().unwrap().push(ms);
            async { Ok(()) }
        });
    let repo = p.repo::<Customer>(&Context::system());
    for i in 0..n {
        repo.create(&customer(
            &format!("L{i}"),
            &format!("l{i}@example.com"),
            "DE",
        ))
        .await?;
        if i % 10 == 0 {
            // Some breathing room, as requests arrive in practice.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    percentiles(
        &format!("commit to outbox subscriber ({backend})"),
        seen.lock().unwrap().clone(),
    );

    // 2. Commit to job start.
    let starts: Times = Arc::default();
    let _ = STARTS.set(starts.clone());
    let jobs = p.get::<Jobs>().expect("jobs");
    let m = n.min(300);
    for _ in 0..m {
        jobs.dispatch(Probe {
            dispatched_at_us: Utc::now().timestamp_micros(),
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..500 {
        if starts.lock().unwrap().len() >= m {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    percentiles(
        &format!("commit to job start ({backend})"),
        starts.lock().unwrap().clone(),
    );
    p.shutdown().await;
    Ok(())
}
