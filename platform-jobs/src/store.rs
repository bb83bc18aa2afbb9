//! The platform's own job tables, on the main database whatever the queue
//! back end: finished runs (dashboard figures), failed jobs (retry,
//! forget) and unique keys.

use platform_core::db::{Db, Migration, MigrationSet, dialect};
use platform_core::error::Result;
use platform_core::value::{FieldType, Value};

use crate::job::Envelope;

/// The tables of the jobs capability.
pub const MIGRATIONS: MigrationSet = MigrationSet {
    name: "jobs",
    migrations: &[Migration {
        version: 1,
        name: "job runs, failed jobs, unique keys",
        sqlite: "
CREATE TABLE platform_job_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL, queue TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    attempt BIGINT NOT NULL, wait_ms BIGINT NOT NULL, run_ms BIGINT NOT NULL,
    finished_at BIGINT NOT NULL, error TEXT, payload TEXT NOT NULL);
CREATE INDEX platform_job_runs_queue_finished ON platform_job_runs (queue, finished_at);
CREATE INDEX platform_job_runs_finished ON platform_job_runs (finished_at);
CREATE TABLE platform_failed_jobs (
    id TEXT PRIMARY KEY, queue TEXT NOT NULL, kind TEXT NOT NULL, envelope TEXT NOT NULL,
    error TEXT NOT NULL, attempts BIGINT NOT NULL, failed_at BIGINT NOT NULL);
CREATE INDEX platform_failed_jobs_failed ON platform_failed_jobs (failed_at);
CREATE TABLE platform_job_unique (
    unique_key TEXT PRIMARY KEY, job_id TEXT NOT NULL, expires_at BIGINT NOT NULL);",
        postgres: "
CREATE TABLE platform_job_runs (
    id BIGSERIAL PRIMARY KEY,
    job_id VARCHAR(64) NOT NULL, queue VARCHAR(64) NOT NULL, kind VARCHAR(191) NOT NULL,
    status VARCHAR(16) NOT NULL, attempt BIGINT NOT NULL, wait_ms BIGINT NOT NULL,
    run_ms BIGINT NOT NULL, finished_at BIGINT NOT NULL, error TEXT, payload TEXT NOT NULL);
CREATE INDEX platform_job_runs_queue_finished ON platform_job_runs (queue, finished_at);
CREATE INDEX platform_job_runs_finished ON platform_job_runs (finished_at);
CREATE TABLE platform_failed_jobs (
    id VARCHAR(64) PRIMARY KEY, queue VARCHAR(64) NOT NULL, kind VARCHAR(191) NOT NULL,
    envelope TEXT NOT NULL, error TEXT NOT NULL, attempts BIGINT NOT NULL,
    failed_at BIGINT NOT NULL);
CREATE INDEX platform_failed_jobs_failed ON platform_failed_jobs (failed_at);
CREATE TABLE platform_job_unique (
    unique_key VARCHAR(191) PRIMARY KEY, job_id VARCHAR(64) NOT NULL, expires_at BIGINT NOT NULL);",
        mysql: "
CREATE TABLE platform_job_runs (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    job_id VARCHAR(64) NOT NULL, queue VARCHAR(64) NOT NULL, kind VARCHAR(191) NOT NULL,
    status VARCHAR(16) NOT NULL, attempt BIGINT NOT NULL, wait_ms BIGINT NOT NULL,
    run_ms BIGINT NOT NULL, finished_at BIGINT NOT NULL, error TEXT, payload MEDIUMTEXT NOT NULL,
    INDEX platform_job_runs_queue_finished (queue, finished_at),
    INDEX platform_job_runs_finished (finished_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE platform_failed_jobs (
    id VARCHAR(64) PRIMARY KEY, queue VARCHAR(64) NOT NULL, kind VARCHAR(191) NOT NULL,
    envelope MEDIUMTEXT NOT NULL, error TEXT NOT NULL, attempts BIGINT NOT NULL,
    failed_at BIGINT NOT NULL, INDEX platform_failed_jobs_failed (failed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE platform_job_unique (
    unique_key VARCHAR(191) PRIMARY KEY, job_id VARCHAR(64) NOT NULL, expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;",
    }],
    backends: &[],
};

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One finished run.
#[derive(Debug, Clone)]
pub(crate) struct RunRecord {
    pub(crate) job_id: String,
    pub(crate) queue: String,
    pub(crate) kind: String,
    /// `done`, `retrying` or `failed`.
    pub(crate) status: &'static str,
    pub(crate) attempt: u32,
    pub(crate) wait_ms: i64,
    pub(crate) run_ms: i64,
    pub(crate) finished_at: i64,
    pub(crate) error: Option<String>,
    pub(crate) payload: String,
}

/// Writes `runs`, up to 500 in one statement (of fixed text: the rows go
/// as one JSON parameter, see [`dialect::insert_from_json`]).
pub(crate) async fn insert_runs(db: &Db, runs: &[RunRecord]) -> Result<()> {
    use platform_core::db::dialect::JsonColumn::{Int, Text};
    for chunk in runs.chunks(500) {
        let rows: Vec<serde_json::Value> = chunk
            .iter()
            .map(|r| {
                serde_json::json!({
                    "job_id": r.job_id, "queue": r.queue, "kind": r.kind, "status": r.status,
                    "attempt": r.attempt, "wait_ms": r.wait_ms, "run_ms": r.run_ms,
                    "finished_at": r.finished_at, "error": r.error, "payload": r.payload,
                })
            })
            .collect();
        let q = dialect::insert_from_json(
            db.backend(),
            "platform_job_runs",
            &[
                ("job_id", Text),
                ("queue", Text),
                ("kind", Text),
                ("status", Text),
                ("attempt", Int),
                ("wait_ms", Int),
                ("run_ms", Int),
                ("finished_at", Int),
                ("error", Text),
                ("payload", Text),
            ],
            serde_json::Value::Array(rows).to_string(),
        );
        db.execute(q).await?;
    }
    Ok(())
}

/// Deletes runs that finished before `before` (ms).
pub(crate) async fn trim_runs(db: &Db, before: i64) -> Result<u64> {
    let mut q = db.sql();
    q.push("DELETE FROM platform_job_runs WHERE finished_at < ")
        .bind_i64(before);
    db.execute(q).await
}

/// Records a failed job (replacing an earlier failure of the same id).
pub(crate) async fn insert_failed(db: &Db, env: &Envelope, error: &str) -> Result<()> {
    let json = serde_json::to_string(env).unwrap_or_default();
    let mut tx = db.begin().await?;
    let mut d = tx.sql();
    d.push("DELETE FROM platform_failed_jobs WHERE id = ")
        .bind_str(env.id.clone());
    tx.execute(d).await?;
    let mut q = tx.sql();
    q.push("INSERT INTO platform_failed_jobs (id, queue, kind, envelope, error, attempts, failed_at) VALUES (")
        .bind_str(env.id.clone())
        .push(", ")
        .bind_str(env.queue.clone())
        .push(", ")
        .bind_str(env.kind.clone())
        .push(", ")
        .bind_str(json)
        .push(", ")
        .bind_str(error)
        .push(", ")
        .bind_i64(i64::from(env.attempt))
        .push(", ")
        .bind_i64(now_ms())
        .push(")");
    tx.execute(q).await?;
    tx.commit().await
}

/// A failed job as the dashboard and `queue:failed` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailedJob {
    /// The job's id.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// Its name ([`Job::NAME`](crate::Job::NAME)).
    pub kind: String,
    /// Why it failed (the last attempt's error).
    pub error: String,
    /// How many times it ran.
    pub attempts: i64,
    /// When it failed (milliseconds since the epoch).
    pub failed_at: i64,
    /// The stored envelope (payload unmasked: mask before showing it).
    #[serde(skip)]
    pub envelope: Option<Envelope>,
}

const FAILED_COLUMNS: &[FieldType] = &[
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::I64,
    FieldType::I64,
];

fn failed_of(row: Vec<Value>) -> FailedJob {
    let s = |i: usize| {
        row.get(i)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let n = |i: usize| row.get(i).and_then(Value::as_i64).unwrap_or_default();
    FailedJob {
        id: s(0),
        queue: s(1),
        kind: s(2),
        envelope: serde_json::from_str(&s(3)).ok(),
        error: s(4),
        attempts: n(5),
        failed_at: n(6),
    }
}

/// Failed jobs, newest first.
pub(crate) async fn failed(db: &Db, limit: i64) -> Result<Vec<FailedJob>> {
    let mut q = db.sql();
    q.push("SELECT id, queue, kind, envelope, error, attempts, failed_at FROM platform_failed_jobs ORDER BY failed_at DESC, id DESC LIMIT ")
        .int(limit);
    let rows = db.fetch_all(q, FAILED_COLUMNS).await?;
    Ok(rows.into_iter().map(failed_of).collect())
}

/// One failed job.
pub(crate) async fn failed_one(db: &Db, id: &str) -> Result<Option<FailedJob>> {
    let mut q = db.sql();
    q.push("SELECT id, queue, kind, envelope, error, attempts, failed_at FROM platform_failed_jobs WHERE id = ")
        .bind_str(id);
    let rows = db.fetch_all(q, FAILED_COLUMNS).await?;
    Ok(rows.into_iter().next().map(failed_of))
}

/// Deletes a failed job; whether it existed.
pub(crate) async fn forget(db: &Db, id: &str) -> Result<bool> {
    let mut q = db.sql();
    q.push("DELETE FROM platform_failed_jobs WHERE id = ")
        .bind_str(id);
    Ok(db.execute(q).await? > 0)
}

/// Failed jobs per queue.
pub(crate) async fn failed_counts(db: &Db) -> Result<Vec<(String, i64)>> {
    let q = platform_core::db::Sql::literal(
        db.backend(),
        "SELECT queue, COUNT(*) FROM platform_failed_jobs GROUP BY queue",
    );
    let rows = db.fetch_all(q, &[FieldType::Text, FieldType::I64]).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_owned(),
                r[1].as_i64().unwrap_or_default(),
            )
        })
        .collect())
}

/// Takes `key` for `job_id` until `expires_at` (ms); false when another
/// job holds it.
pub(crate) async fn take_unique(db: &Db, key: &str, job_id: &str, expires_at: i64) -> Result<bool> {
    let mut d = db.sql();
    d.push("DELETE FROM platform_job_unique WHERE unique_key = ")
        .bind_str(key)
        .push(" AND expires_at < ")
        .bind_i64(now_ms());
    db.execute(d).await?;
    let mut q = db.sql();
    dialect::push_insert_ignore_into(&mut q);
    q.push("platform_job_unique (unique_key, job_id, expires_at) VALUES (")
        .bind_str(key)
        .push(", ")
        .bind_str(job_id)
        .push(", ")
        .bind_i64(expires_at)
        .push(")");
    dialect::push_ignore_conflicts(&mut q, &[]);
    Ok(db.execute(q).await? == 1)
}

/// Releases `key` if `job_id` holds it.
pub(crate) async fn release_unique(db: &Db, key: &str, job_id: &str) -> Result<()> {
    let mut q = db.sql();
    q.push("DELETE FROM platform_job_unique WHERE unique_key = ")
        .bind_str(key)
        .push(" AND job_id = ")
        .bind_str(job_id);
    db.execute(q).await?;
    Ok(())
}

/// A finished run as the dashboard reads it.
#[derive(Debug, Clone)]
pub(crate) struct RunRow {
    pub(crate) job_id: String,
    pub(crate) queue: String,
    pub(crate) kind: String,
    pub(crate) status: String,
    pub(crate) attempt: i64,
    pub(crate) wait_ms: i64,
    pub(crate) run_ms: i64,
    pub(crate) finished_at: i64,
    pub(crate) error: Option<String>,
    pub(crate) payload: String,
}

/// Runs that finished at or after `since` (ms), newest first, at most `limit`.
pub(crate) async fn runs_since(db: &Db, since: i64, limit: i64) -> Result<Vec<RunRow>> {
    let mut q = db.sql();
    q.push("SELECT job_id, queue, kind, status, attempt, wait_ms, run_ms, finished_at, error, payload FROM platform_job_runs WHERE finished_at >= ")
        .bind_i64(since)
        .push(" ORDER BY finished_at DESC, id DESC LIMIT ")
        .int(limit);
    let rows = db
        .fetch_all(
            q,
            &[
                FieldType::Text,
                FieldType::Text,
                FieldType::Text,
                FieldType::Text,
                FieldType::I64,
                FieldType::I64,
                FieldType::I64,
                FieldType::I64,
                FieldType::Text,
                FieldType::Text,
            ],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let s = |i: usize| {
                r.get(i)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let n = |i: usize| r.get(i).and_then(Value::as_i64).unwrap_or_default();
            RunRow {
                job_id: s(0),
                queue: s(1),
                kind: s(2),
                status: s(3),
                attempt: n(4),
                wait_ms: n(5),
                run_ms: n(6),
                finished_at: n(7),
                error: r.get(8).and_then(Value::as_str).map(str::to_owned),
                payload: s(9),
            }
        })
        .collect())
}
