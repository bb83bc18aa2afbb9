//! The import batches and the records each touched: two tables, on every
//! back end, written through `platform_core::db` (dialect differences in
//! `db::dialect` only).

use async_trait::async_trait;
use platform_core::db::dialect;
use platform_core::db::{Db, Migration, MigrationSet, Tx};
use platform_core::error::Result;
use platform_core::repo::{RevertSource, TouchAction, TouchLog, Touched};
use platform_core::value::{FieldType, Value};
use serde::Serialize;

/// The tables of imports.
pub const MIGRATIONS: MigrationSet = MigrationSet {
    name: "exchange_import",
    migrations: &[Migration {
        version: 1,
        name: "import batches and the records they touched",
        sqlite: "
CREATE TABLE platform_import_batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    resource TEXT NOT NULL, actor_type TEXT NOT NULL, actor_id BIGINT, actor_label TEXT,
    status TEXT NOT NULL, dry_run BIGINT NOT NULL, import_key TEXT, file_name TEXT,
    file_path TEXT, format TEXT NOT NULL, mapping TEXT, total_rows BIGINT, processed BIGINT NOT NULL,
    created BIGINT NOT NULL, updated BIGINT NOT NULL, unchanged BIGINT NOT NULL, failed BIGINT NOT NULL,
    error TEXT, failed_path TEXT, created_at BIGINT NOT NULL, started_at BIGINT, finished_at BIGINT,
    rolled_back_at BIGINT, rollback_report TEXT);
CREATE INDEX platform_import_batches_resource ON platform_import_batches (resource, id);
CREATE TABLE platform_import_rows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id BIGINT NOT NULL, record_id TEXT NOT NULL, action TEXT NOT NULL,
    previous TEXT, written TEXT NOT NULL);
CREATE INDEX platform_import_rows_batch ON platform_import_rows (batch_id, id);",
        postgres: "
CREATE TABLE platform_import_batches (
    id BIGSERIAL PRIMARY KEY,
    resource VARCHAR(191) NOT NULL, actor_type VARCHAR(32) NOT NULL, actor_id BIGINT,
    actor_label VARCHAR(255), status VARCHAR(16) NOT NULL, dry_run BIGINT NOT NULL,
    import_key VARCHAR(191), file_name VARCHAR(255), file_path VARCHAR(1024), format VARCHAR(8) NOT NULL,
    mapping TEXT, total_rows BIGINT, processed BIGINT NOT NULL, created BIGINT NOT NULL,
    updated BIGINT NOT NULL, unchanged BIGINT NOT NULL, failed BIGINT NOT NULL, error TEXT,
    failed_path VARCHAR(1024), created_at BIGINT NOT NULL, started_at BIGINT, finished_at BIGINT,
    rolled_back_at BIGINT, rollback_report TEXT);
CREATE INDEX platform_import_batches_resource ON platform_import_batches (resource, id);
CREATE TABLE platform_import_rows (
    id BIGSERIAL PRIMARY KEY,
    batch_id BIGINT NOT NULL, record_id VARCHAR(191) NOT NULL, action VARCHAR(16) NOT NULL,
    previous TEXT, written TEXT NOT NULL);
CREATE INDEX platform_import_rows_batch ON platform_import_rows (batch_id, id);",
        mysql: "
CREATE TABLE platform_import_batches (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    resource VARCHAR(191) NOT NULL, actor_type VARCHAR(32) NOT NULL, actor_id BIGINT,
    actor_label VARCHAR(255), status VARCHAR(16) NOT NULL, dry_run BIGINT NOT NULL,
    import_key VARCHAR(191), file_name VARCHAR(255), file_path VARCHAR(1024), format VARCHAR(8) NOT NULL,
    mapping MEDIUMTEXT, total_rows BIGINT, processed BIGINT NOT NULL, created BIGINT NOT NULL,
    updated BIGINT NOT NULL, unchanged BIGINT NOT NULL, failed BIGINT NOT NULL, error TEXT,
    failed_path VARCHAR(1024), created_at BIGINT NOT NULL, started_at BIGINT, finished_at BIGINT,
    rolled_back_at BIGINT, rollback_report TEXT,
    INDEX platform_import_batches_resource (resource, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE platform_import_rows (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    batch_id BIGINT NOT NULL, record_id VARCHAR(191) NOT NULL, action VARCHAR(16) NOT NULL,
    previous MEDIUMTEXT, written MEDIUMTEXT NOT NULL,
    INDEX platform_import_rows_batch (batch_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;",
    },
    Migration {
        version: 2,
        name: "the records an import touched, one row per chunk",
        sqlite: "
CREATE TABLE platform_import_chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id BIGINT NOT NULL, touched TEXT NOT NULL);
CREATE INDEX platform_import_chunks_batch ON platform_import_chunks (batch_id, id);",
        postgres: "
CREATE TABLE platform_import_chunks (
    id BIGSERIAL PRIMARY KEY,
    batch_id BIGINT NOT NULL, touched TEXT NOT NULL);
CREATE INDEX platform_import_chunks_batch ON platform_import_chunks (batch_id, id);",
        mysql: "
CREATE TABLE platform_import_chunks (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    batch_id BIGINT NOT NULL, touched LONGTEXT NOT NULL,
    INDEX platform_import_chunks_batch (batch_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;",
    }],
    backends: &[],
};

/// Where a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its job.
    Queued,
    /// Rows are being written.
    Running,
    /// Every row was read (some may have failed).
    Done,
    /// The run stopped on an error (the rows of committed chunks stay, and
    /// the batch can be rolled back).
    Failed,
    /// A dry run: nothing was written.
    DryRun,
    /// Rolled back.
    RolledBack,
}

impl Status {
    /// Its stored name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::DryRun => "dry_run",
            Self::RolledBack => "rolled_back",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "dry_run" => Self::DryRun,
            "rolled_back" => Self::RolledBack,
            _ => Self::Failed,
        }
    }
}

/// The counts of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Rows read so far.
    pub processed: u64,
    /// Records created.
    pub created: u64,
    /// Records updated.
    pub updated: u64,
    /// Rows whose record already held their values.
    pub unchanged: u64,
    /// Rows not written.
    pub failed: u64,
}

/// An import batch as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Batch {
    /// Its id.
    pub id: i64,
    /// The resource's singular name.
    pub resource: String,
    /// `user`, `token`, `job`, `console`...
    pub actor_type: String,
    /// The acting user, if any.
    pub actor_id: Option<i64>,
    /// The actor's label (e-mail).
    pub actor_label: Option<String>,
    /// Where it stands.
    pub status: Status,
    /// Whether it is a dry run.
    pub dry_run: bool,
    /// The upsert key, if any.
    pub import_key: Option<String>,
    /// The uploaded file's name.
    pub file_name: Option<String>,
    /// Where the uploaded file is kept (a storage path).
    pub file_path: Option<String>,
    /// `csv` or `xlsx`.
    pub format: String,
    /// The column mapping (JSON).
    pub mapping: Option<serde_json::Value>,
    /// Rows in the file, when known.
    pub total_rows: Option<u64>,
    /// The counts.
    pub counts: Counts,
    /// Why the run stopped, if it failed.
    pub error: Option<String>,
    /// Where the failed-rows file is kept (a storage path).
    pub failed_path: Option<String>,
    /// Created (ms since the epoch).
    pub created_at: i64,
    /// Started (ms).
    pub started_at: Option<i64>,
    /// Finished (ms).
    pub finished_at: Option<i64>,
    /// Rolled back (ms).
    pub rolled_back_at: Option<i64>,
    /// What the rollback did (JSON).
    pub rollback_report: Option<serde_json::Value>,
}

/// A batch to record.
#[derive(Debug, Clone)]
pub(crate) struct NewBatch {
    pub(crate) resource: String,
    pub(crate) actor_type: &'static str,
    pub(crate) actor_id: Option<i64>,
    pub(crate) actor_label: Option<String>,
    pub(crate) status: Status,
    pub(crate) dry_run: bool,
    pub(crate) import_key: Option<String>,
    pub(crate) file_name: Option<String>,
    pub(crate) file_path: Option<String>,
    pub(crate) format: &'static str,
    pub(crate) mapping: serde_json::Value,
    pub(crate) total_rows: Option<u64>,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const COLUMNS: &str = "id, resource, actor_type, actor_id, actor_label, status, dry_run, import_key, file_name, file_path, format, mapping, total_rows, processed, created, updated, unchanged, failed, error, failed_path, created_at, started_at, finished_at, rolled_back_at, rollback_report";

const TYPES: [FieldType; 25] = [
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::Text,
    FieldType::I64,
    FieldType::I64,
    FieldType::I64,
    FieldType::I64,
    FieldType::I64,
    FieldType::I64,
    FieldType::Text,
    FieldType::Text,
    FieldType::I64,
    FieldType::I64,
    FieldType::I64,
    FieldType::I64,
    FieldType::Text,
];

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}
fn count(v: &Value) -> u64 {
    v.as_i64().and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn batch_from(r: &[Value]) -> Batch {
    let json = |v: &Value| v.as_str().and_then(|s| serde_json::from_str(s).ok());
    Batch {
        id: r[0].as_i64().unwrap_or(0),
        resource: text(&r[1]).unwrap_or_default(),
        actor_type: text(&r[2]).unwrap_or_default(),
        actor_id: r[3].as_i64(),
        actor_label: text(&r[4]),
        status: Status::parse(r[5].as_str().unwrap_or("")),
        dry_run: r[6].as_i64() == Some(1),
        import_key: text(&r[7]),
        file_name: text(&r[8]),
        file_path: text(&r[9]),
        format: text(&r[10]).unwrap_or_default(),
        mapping: json(&r[11]),
        total_rows: r[12].as_i64().and_then(|n| u64::try_from(n).ok()),
        counts: Counts {
            processed: count(&r[13]),
            created: count(&r[14]),
            updated: count(&r[15]),
            unchanged: count(&r[16]),
            failed: count(&r[17]),
        },
        error: text(&r[18]),
        failed_path: text(&r[19]),
        created_at: r[20].as_i64().unwrap_or(0),
        started_at: r[21].as_i64(),
        finished_at: r[22].as_i64(),
        rolled_back_at: r[23].as_i64(),
        rollback_report: json(&r[24]),
    }
}

fn opt_text(q: &mut platform_core::db::Sql, v: Option<String>) {
    match v {
        Some(s) => {
            q.bind_str(s);
        }
        None => {
            q.push("NULL");
        }
    }
}

/// Records a new batch; answers its id.
pub(crate) async fn insert(db: &Db, b: NewBatch) -> Result<i64> {
    let mut tx = db.begin().await?;
    let mut q = tx.sql();
    q.push("INSERT INTO platform_import_batches (resource, actor_type, actor_id, actor_label, status, dry_run, import_key, file_name, file_path, format, mapping, total_rows, processed, created, updated, unchanged, failed, created_at) VALUES (");
    q.bind_str(b.resource)
        .push(", ")
        .bind_str(b.actor_type)
        .push(", ");
    match b.actor_id {
        Some(id) => q.bind_i64(id),
        None => q.push("NULL"),
    };
    q.push(", ");
    opt_text(&mut q, b.actor_label);
    q.push(", ")
        .bind_str(b.status.name())
        .push(", ")
        .bind_i64(i64::from(b.dry_run))
        .push(", ");
    opt_text(&mut q, b.import_key);
    q.push(", ");
    opt_text(&mut q, b.file_name);
    q.push(", ");
    opt_text(&mut q, b.file_path);
    q.push(", ")
        .bind_str(b.format)
        .push(", ")
        .bind_str(b.mapping.to_string())
        .push(", ");
    match b.total_rows {
        Some(n) => q.bind_i64(int(n)),
        None => q.push("NULL"),
    };
    q.push(", 0, 0, 0, 0, 0, ").bind_i64(now_ms()).push(")");
    dialect::push_returning(&mut q, "id");
    let id = tx.insert_returning_id(q).await?;
    tx.commit().await?;
    Ok(id)
}

/// The batch with this id.
pub(crate) async fn get(db: &Db, id: i64) -> Result<Option<Batch>> {
    let mut q = db.sql();
    q.push("SELECT ")
        .push(COLUMNS)
        .push(" FROM platform_import_batches WHERE id = ")
        .bind_i64(id);
    Ok(db.fetch_optional(q, &TYPES).await?.map(|r| batch_from(&r)))
}

/// The newest batches (of `resource`, when given), newest first.
pub(crate) async fn list(db: &Db, resource: Option<&str>, limit: i64) -> Result<Vec<Batch>> {
    let mut q = db.sql();
    q.push("SELECT ")
        .push(COLUMNS)
        .push(" FROM platform_import_batches");
    if let Some(r) = resource {
        q.push(" WHERE resource = ").bind_str(r);
    }
    q.push(" ORDER BY id DESC LIMIT ").int(limit.clamp(1, 500));
    Ok(db
        .fetch_all(q, &TYPES)
        .await?
        .iter()
        .map(|r| batch_from(r))
        .collect())
}

/// Sets the status (and the start time when it starts running).
pub(crate) async fn set_status(db: &Db, id: i64, status: Status) -> Result<()> {
    let mut q = db.sql();
    q.push("UPDATE platform_import_batches SET status = ")
        .bind_str(status.name());
    if status == Status::Running {
        q.push(", started_at = ").bind_i64(now_ms());
    }
    q.push(" WHERE id = ").bind_i64(id);
    db.execute(q).await?;
    Ok(())
}

/// Stores the counts so far (progress).
pub(crate) async fn set_counts(db: &Db, id: i64, c: Counts, total: Option<u64>) -> Result<()> {
    let mut q = db.sql();
    q.push("UPDATE platform_import_batches SET processed = ")
        .bind_i64(int(c.processed))
        .push(", created = ")
        .bind_i64(int(c.created))
        .push(", updated = ")
        .bind_i64(int(c.updated))
        .push(", unchanged = ")
        .bind_i64(int(c.unchanged))
        .push(", failed = ")
        .bind_i64(int(c.failed));
    if let Some(t) = total {
        q.push(", total_rows = ").bind_i64(int(t));
    }
    q.push(" WHERE id = ").bind_i64(id);
    db.execute(q).await?;
    Ok(())
}

/// Ends a run.
pub(crate) async fn finish(
    db: &Db,
    id: i64,
    status: Status,
    error: Option<String>,
    failed_path: Option<String>,
) -> Result<()> {
    let mut q = db.sql();
    q.push("UPDATE platform_import_batches SET status = ")
        .bind_str(status.name())
        .push(", finished_at = ")
        .bind_i64(now_ms())
        .push(", error = ");
    opt_text(&mut q, error);
    q.push(", failed_path = ");
    opt_text(&mut q, failed_path);
    q.push(" WHERE id = ").bind_i64(id);
    db.execute(q).await?;
    Ok(())
}

/// Marks a batch rolled back, with what the rollback did.
pub(crate) async fn rolled_back(db: &Db, id: i64, report: &serde_json::Value) -> Result<()> {
    let mut q = db.sql();
    q.push("UPDATE platform_import_batches SET status = ")
        .bind_str(Status::RolledBack.name())
        .push(", rolled_back_at = ")
        .bind_i64(now_ms())
        .push(", rollback_report = ")
        .bind_str(report.to_string())
        .push(" WHERE id = ")
        .bind_i64(id);
    db.execute(q).await?;
    Ok(())
}

/// The records batch `id` touched, newest first, a chunk at a time (what
/// a rollback reads): the rows of `platform_import_chunks`, then those of
/// `platform_import_rows` (where batches recorded before the chunk table
/// keep them, one row per record), in pages of [`ROWS_PAGE`].
pub(crate) struct TouchedReader {
    db: Db,
    batch: i64,
    /// Reading chunks (`true`) or the earlier per-record rows.
    chunks: bool,
    /// The lowest row id read so far.
    before: Option<i64>,
    done: bool,
}

/// Per-record rows read per page.
const ROWS_PAGE: i64 = 5000;

impl TouchedReader {
    pub(crate) fn new(db: Db, batch: i64) -> Self {
        Self {
            db,
            batch,
            chunks: true,
            before: None,
            done: false,
        }
    }

    async fn next_chunk_row(&mut self) -> Result<Option<Vec<Touched>>> {
        let mut q = self.db.sql();
        q.push("SELECT id, touched FROM platform_import_chunks WHERE batch_id = ")
            .bind_i64(self.batch);
        if let Some(b) = self.before {
            q.push(" AND id < ").bind_i64(b);
        }
        q.push(" ORDER BY id DESC LIMIT 1");
        let Some(r) = self
            .db
            .fetch_optional(q, &[FieldType::I64, FieldType::Text])
            .await?
        else {
            return Ok(None);
        };
        self.before = r[0].as_i64();
        let chunk: Vec<StoredTouch> =
            serde_json::from_str(r[1].as_str().unwrap_or("[]")).map_err(|e| {
                platform_core::Error::Backend {
                    backend: "the import log",
                    source: e.into(),
                }
            })?;
        Ok(Some(
            chunk
                .into_iter()
                .map(|t| Touched {
                    record_id: t.id,
                    action: TouchAction::parse(&t.action).unwrap_or(TouchAction::Updated),
                    previous: t.previous,
                    written: t.written,
                })
                .collect(),
        ))
    }

    async fn next_rows_page(&mut self) -> Result<Option<Vec<Touched>>> {
        let mut q = self.db.sql();
        q.push("SELECT id, record_id, action, previous, written FROM platform_import_rows WHERE batch_id = ")
            .bind_i64(self.batch);
        if let Some(b) = self.before {
            q.push(" AND id < ").bind_i64(b);
        }
        q.push(" ORDER BY id DESC LIMIT ").bind_i64(ROWS_PAGE);
        let rows = self
            .db
            .fetch_all(
                q,
                &[
                    FieldType::I64,
                    FieldType::Text,
                    FieldType::Text,
                    FieldType::Text,
                    FieldType::Text,
                ],
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let json = |v: &Value| v.as_str().and_then(|s| serde_json::from_str(s).ok());
        let mut out: Vec<Touched> = rows
            .into_iter()
            .map(|r| {
                self.before = r[0].as_i64();
                Touched {
                    record_id: text(&r[1]).unwrap_or_default(),
                    action: TouchAction::parse(r[2].as_str().unwrap_or(""))
                        .unwrap_or(TouchAction::Updated),
                    previous: json(&r[3]),
                    written: json(&r[4]).unwrap_or(serde_json::Value::Null),
                }
            })
            .collect();
        // Within a chunk, the order the import touched them.
        out.reverse();
        Ok(Some(out))
    }
}

#[async_trait]
impl RevertSource for TouchedReader {
    async fn next_chunk(&mut self) -> Result<Option<Vec<Touched>>> {
        while !self.done {
            let next = if self.chunks {
                self.next_chunk_row().await?
            } else {
                self.next_rows_page().await?
            };
            match next {
                Some(chunk) if !chunk.is_empty() => return Ok(Some(chunk)),
                Some(_) => {}
                None if self.chunks => {
                    self.chunks = false;
                    self.before = None;
                }
                None => self.done = true,
            }
        }
        Ok(None)
    }
}

/// A touched record as stored in a chunk of `platform_import_chunks`.
#[derive(Serialize, serde::Deserialize)]
struct StoredTouch {
    id: String,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<serde_json::Value>,
    written: serde_json::Value,
}

/// [`StoredTouch`] borrowed from a [`Touched`], to write.
#[derive(Serialize)]
struct TouchRef<'a> {
    id: &'a str,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<&'a serde_json::Value>,
    written: &'a serde_json::Value,
}

/// The [`TouchLog`] of one batch: its rows of `platform_import_rows`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLog {
    pub(crate) batch_id: i64,
}

#[async_trait]
impl TouchLog for BatchLog {
    /// One row per call (a chunk of the import): the touched records as
    /// one JSON array. A row per record cost as much as the records'
    /// own insert.
    async fn record(&self, tx: &mut Tx, touched: &[Touched]) -> Result<()> {
        if touched.is_empty() {
            return Ok(());
        }
        let refs: Vec<TouchRef<'_>> = touched
            .iter()
            .map(|t| TouchRef {
                id: &t.record_id,
                action: t.action.name(),
                previous: t.previous.as_ref(),
                written: &t.written,
            })
            .collect();
        let json = serde_json::to_string(&refs).map_err(|e| platform_core::Error::Backend {
            backend: "the import log",
            source: e.into(),
        })?;
        let mut q = tx.sql();
        q.push("INSERT INTO platform_import_chunks (batch_id, touched) VALUES (")
            .bind_i64(self.batch_id)
            .push(", ")
            .bind_str(json)
            .push(")");
        tx.execute(q).await?;
        Ok(())
    }
}
