//! Databases with where their jobs go, for the tests of job-driven
//! capabilities (jobs, notifications, webhooks): MariaDB's jobs on Redis
//! (or a SQLite file when `PLATFORM_TEST_REDIS_URL` is unset), the other
//! back ends' jobs in their own database.

use std::time::{Duration, Instant};

use platform_core::db::Backend;
use platform_jobs::{FailedJob, Jobs};

use crate::{TempDir, TestDb, all_backends, redis_url};

/// One database and where its jobs go.
#[derive(Debug)]
pub struct Case {
    /// The database.
    pub db: TestDb,
    /// The queue URL of its jobs, if not the database.
    pub queue_url: Option<String>,
    /// `sqlite`, `postgres`, `mysql+redis`...
    pub label: String,
    /// A temporary directory deleted with it.
    pub dir: Option<TempDir>,
}

/// Every configured database; MariaDB with Redis jobs (or a SQLite file).
pub async fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for db in all_backends().await {
        if db.backend == Backend::MySql {
            let (url, label, dir) = match redis_url() {
                Some(u) => (u, "mysql+redis", None),
                None => {
                    eprintln!("MariaDB's jobs go to a SQLite file");
                    let dir = TempDir::new("jobs");
                    let url = format!("sqlite://{}?mode=rwc", dir.0.join("jobs.db").display());
                    (url, "mysql+sqlite-file", Some(dir))
                }
            };
            out.push(Case {
                db,
                queue_url: Some(url),
                label: label.into(),
                dir,
            });
        } else {
            out.push(Case {
                label: db.backend.name().into(),
                db,
                queue_url: None,
                dir: None,
            });
        }
    }
    out
}

/// [`cases`], plus SQLite with its jobs on Redis when Redis is configured.
pub async fn cases_and_sqlite_on_redis() -> Vec<Case> {
    let mut out = cases().await;
    if let Some(u) = redis_url() {
        out.push(Case {
            db: TestDb::sqlite(),
            queue_url: Some(u),
            label: "sqlite+redis".into(),
            dir: None,
        });
    }
    out
}

/// Jobs polling fast in namespace `ns`, on the case's queue.
pub fn jobs(case: &Case, ns: &str) -> Jobs {
    let jobs = Jobs::new()
        .ignore_env()
        .namespace(ns)
        .heartbeat(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(20));
    match &case.queue_url {
        Some(u) => jobs.queue_url(u),
        None => jobs,
    }
}

/// Waits up to `limit` for job `id` to be listed as failed.
pub async fn failed_job(jobs: &Jobs, id: &str, limit: Duration) -> FailedJob {
    let start = Instant::now();
    loop {
        if let Some(f) = jobs
            .failed(200)
            .await
            .unwrap()
            .into_iter()
            .find(|f| f.id == id)
        {
            return f;
        }
        assert!(
            start.elapsed() < limit,
            "job {id} did not fail in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
