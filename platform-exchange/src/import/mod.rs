//! Import: CSV and XLSX rows validated through the write path, in batches
//! that can be rolled back.
//!
//! Every import is a batch (`platform_import_batches`): its resource,
//! actor, status, counts and timing, the uploaded file and the failed-rows
//! file. The rows are read in a blocking thread and handed over in chunks
//! ([`ImportConfig::chunk_size`]); each chunk is coerced (dates, numbers,
//! money, booleans, choices, relations by id or by a unique label) and
//! written through [`Records::import_chunk`](platform_core::repo::Records::import_chunk)
//! in one transaction: the same checks as a form (permissions including
//! `import_<resource>`, field visibility, policies, validation, `unique`,
//! `belongs_to`), audit entries tagged `import:<batch id>`, and every
//! touched record logged (`platform_import_chunks`, one row per chunk) with its previous values,
//! so that [`Imports::rollback`] can put the whole batch back.
//!
//! Entry points: [`Imports`] (a service: `platform.get::<Imports>()`), the
//! API (`POST /api/<plural>/import`, `GET /api/imports/{id}`,
//! `GET /api/imports/{id}/failed`, `POST /api/imports/{id}/rollback`), the
//! commands `import <resource> FILE` and `import:rollback ID`, and the
//! panel page `imports`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use platform_admin::capability::SetupExt;
use platform_core::capability::Setup;
use platform_core::context::Context;
use platform_core::repo::RevertReport;
use platform_core::storage::{MemoryStorage, Storage, StorageExt};
use platform_core::{Error, Platform};

mod api;
pub mod batch;
mod cli;
pub mod coerce;
mod job;
pub mod mapping;
mod panel;
mod preview;
pub mod read;
pub mod run;

pub use batch::{Batch, Counts, Status};

/// The error of a batch whose run was cut off (its process stopped).
pub const INTERRUPTED: &str = "interrupted: the process importing it stopped mid-run; \
    the rows of its committed chunks stay (roll the batch back to remove them)";
pub use coerce::DateOrder;
pub use preview::Preview;
pub use read::{Format, Limits};
pub use run::{RowFailure, RunReport};

/// How imports run (set through [`Exchange`](crate::Exchange)'s builder
/// methods).
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// Rows per chunk (one transaction each). Default 1,000.
    pub chunk_size: usize,
    /// Limits on the files accepted.
    pub limits: Limits,
    /// How ambiguous dates (`03/04/2024`) are read.
    pub date_order: DateOrder,
    /// Above this many rows (estimated from the file), an import from the
    /// API or the panel runs as a job when the jobs capability is added.
    /// Default 10,000.
    pub job_threshold: u64,
    /// The storage disk for uploaded and failed-rows files (default: the
    /// default disk of `FileStorage`, or memory without it).
    pub disk: Option<String>,
    /// Where files are unpacked while they are read.
    pub temp_dir: PathBuf,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            chunk_size: 1000,
            limits: Limits::default(),
            date_order: DateOrder::default(),
            job_threshold: 10_000,
            disk: None,
            temp_dir: std::env::temp_dir().join("platform-imports"),
        }
    }
}

/// Why a file cannot be imported at all (a row's problems are
/// [`RowFailure`]s instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file is not what it claims, or cannot be parsed.
    #[error("{0}")]
    Format(String),
    /// The text is not UTF-8.
    #[error("{0}")]
    Encoding(String),
    /// Too big: bytes, unpacked size, rows or columns.
    #[error("{0}")]
    TooLarge(String),
    /// No heading row.
    #[error("the file is empty: it has no heading row")]
    Empty,
    /// The column mapping cannot be used.
    #[error("{0}")]
    Mapping(String),
    /// Reading or writing a file failed.
    #[error("cannot read the file: {0}")]
    Io(String),
}

impl ImportError {
    pub(crate) fn io(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
    /// A stable code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Format(_) => "format",
            Self::Encoding(_) => "encoding",
            Self::TooLarge(_) => "too_large",
            Self::Empty => "empty",
            Self::Mapping(_) => "mapping",
            Self::Io(_) => "io",
        }
    }
}

impl From<ImportError> for Error {
    fn from(e: ImportError) -> Self {
        Error::invalid("file", e.code(), e.to_string())
    }
}

/// One import to run.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    /// The resource (plural or singular name).
    pub resource: String,
    /// The file's name as uploaded (its extension helps detect the format).
    pub file_name: Option<String>,
    /// The content type it was sent with.
    pub content_type: Option<String>,
    /// Manual mapping: column heading to field name (or to nothing).
    pub mapping: Vec<(String, String)>,
    /// Check everything, write nothing.
    pub dry_run: bool,
    /// The upsert key (a unique field); default: the resource's declared
    /// import key, if any.
    pub key: Option<String>,
}

/// Where a submitted import stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Submitted {
    /// The batch id.
    pub batch_id: i64,
    /// Whether it runs as a job (else it has run).
    pub queued: bool,
    /// The run's report, when it has run.
    pub report: Option<RunReport>,
}

/// The import service (`platform.get::<Imports>()`).
#[derive(Debug, Clone)]
pub struct Imports {
    config: ImportConfig,
    memory: Arc<MemoryStorage>,
}

impl Imports {
    /// The service with `config`.
    pub fn new(config: ImportConfig) -> Self {
        Self {
            config,
            memory: Arc::new(MemoryStorage::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ImportConfig {
        &self.config
    }

    /// Where uploaded and failed-rows files go.
    fn storage(&self, platform: &Platform) -> Result<Arc<dyn Storage>, Error> {
        match platform.get::<platform_core::storage::Disks>() {
            Some(d) => Ok(match &self.config.disk {
                Some(name) => d.disk(name)?,
                None => d.default_disk(),
            }),
            None => Ok(self.memory.clone()),
        }
    }

    fn key_for(
        meta: &'static platform_core::resource::ResourceMeta,
        key: Option<&str>,
    ) -> Result<Option<&'static str>, Error> {
        let Some(k) = key.filter(|k| !k.is_empty()) else {
            return Ok(declared_key(meta));
        };
        match meta.field(k) {
            Some(f) if f.is_unique() && !f.is_encrypted() => Ok(Some(f.name())),
            _ => Err(Error::invalid(
                "key",
                "invalid",
                format!("`{k}` is not a unique field of {}", meta.plural_label()),
            )),
        }
    }

    /// Imports the local file `path` now, as `ctx`: records a batch, runs
    /// it and answers its report. `progress` is called after each chunk.
    pub async fn import_file(
        &self,
        platform: &Platform,
        ctx: &Context,
        request: &ImportRequest,
        path: &Path,
        progress: &(dyn Fn(Counts) + Send + Sync),
    ) -> Result<RunReport, Error> {
        let records = run::records_for(platform, ctx, &request.resource)?;
        let format = sniff(path, request)?;
        let key = Self::key_for(records.meta(), request.key.as_deref())?;
        self.preflight(records.meta(), path, format, &request.mapping)
            .await?;
        let id = self
            .record_batch(platform, ctx, &records, request, format, key, None, None)
            .await?;
        let input = run::RunInput {
            batch_id: id,
            path: path.to_owned(),
            format,
            overrides: request.mapping.clone(),
            dry_run: request.dry_run,
            key,
        };
        let (report, failed) = run::run(platform, &records, &self.config, &input, progress).await;
        self.keep_failed(platform, id, failed).await?;
        Ok(report)
    }

    /// Opens the file and maps its headings, so that a file that cannot
    /// be imported at all (encoding, size, zip bomb, format, mapping) is
    /// refused before a batch is recorded.
    async fn preflight(
        &self,
        meta: &'static platform_core::resource::ResourceMeta,
        path: &Path,
        format: Format,
        overrides: &[(String, String)],
    ) -> Result<(), Error> {
        let (path, limits, overrides) = (path.to_owned(), self.config.limits, overrides.to_vec());
        tokio::task::spawn_blocking(move || {
            let opened = read::open(&path, format, limits)?;
            mapping::map_headings(meta, &opened.headings, &overrides)?;
            Ok::<(), ImportError>(())
        })
        .await
        .map_err(|e| Error::from(ImportError::Io(e.to_string())))??;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_batch(
        &self,
        platform: &Platform,
        ctx: &Context,
        records: &platform_core::repo::Records,
        request: &ImportRequest,
        format: Format,
        key: Option<&'static str>,
        status: Option<Status>,
        file_path: Option<String>,
    ) -> Result<i64, Error> {
        batch::insert(
            platform.db(),
            batch::NewBatch {
                resource: records.meta().name().to_owned(),
                actor_type: ctx.actor().kind(),
                actor_id: ctx.actor().user_id(),
                actor_label: ctx.actor().label(),
                status: status.unwrap_or(Status::Running),
                dry_run: request.dry_run,
                import_key: key.map(str::to_owned),
                file_name: request.file_name.clone(),
                file_path,
                format: format.name(),
                mapping: serde_json::to_value(&request.mapping).unwrap_or_default(),
                total_rows: None,
            },
        )
        .await
    }

    /// Moves a failed-rows file to storage and records where.
    async fn keep_failed(
        &self,
        platform: &Platform,
        id: i64,
        failed: Option<PathBuf>,
    ) -> Result<(), Error> {
        let Some(local) = failed else { return Ok(()) };
        let bytes = tokio::fs::read(&local)
            .await
            .map_err(|e| Error::from(ImportError::io(e)))?;
        let _ = tokio::fs::remove_file(&local).await;
        let ext = if local.extension().is_some_and(|e| e == "xlsx") {
            "xlsx"
        } else {
            "csv"
        };
        let path = format!("imports/{id}/failed.{ext}");
        self.storage(platform)?
            .put_bytes(path.as_str(), bytes)
            .await?;
        let mut q = platform.db().sql();
        q.push("UPDATE platform_import_batches SET failed_path = ")
            .bind_str(path)
            .push(" WHERE id = ")
            .bind_i64(id);
        platform.db().execute(q).await?;
        Ok(())
    }

    /// Takes an uploaded file (already on local disk at `path`): stores it,
    /// records a batch, and runs it now, or as a job when it is large and
    /// the jobs capability is added.
    pub async fn submit(
        &self,
        platform: &Platform,
        ctx: &Context,
        request: &ImportRequest,
        path: &Path,
    ) -> Result<Submitted, Error> {
        let records = run::records_for(platform, ctx, &request.resource)?;
        let format = sniff(path, request)?;
        let key = Self::key_for(records.meta(), request.key.as_deref())?;
        let estimate = estimate_rows(path, format)?;
        let jobs = platform.get::<platform_jobs::Jobs>();
        let queue = jobs.is_some() && estimate > self.config.job_threshold;
        if !queue {
            let report = self
                .import_file(platform, ctx, request, path, &|_| {})
                .await?;
            return Ok(Submitted {
                batch_id: report.batch_id,
                queued: false,
                report: Some(report),
            });
        }
        self.preflight(records.meta(), path, format, &request.mapping)
            .await?;
        let id = self
            .record_batch(
                platform,
                ctx,
                &records,
                request,
                format,
                key,
                Some(Status::Queued),
                None,
            )
            .await?;
        let stored = format!("imports/{id}/upload.{}", format.name());
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| Error::from(ImportError::io(e)))?;
        self.storage(platform)?
            .put_bytes(stored.as_str(), bytes)
            .await?;
        let mut q = platform.db().sql();
        q.push("UPDATE platform_import_batches SET file_path = ")
            .bind_str(stored.clone())
            .push(", total_rows = ")
            .bind_i64(i64::try_from(estimate).unwrap_or(i64::MAX))
            .push(" WHERE id = ")
            .bind_i64(id);
        platform.db().execute(q).await?;
        if let Some(jobs) = jobs {
            jobs.dispatch_with(
                job::ImportJob {
                    batch_id: id,
                    resource: records.meta().name().to_owned(),
                    format,
                    mapping: request.mapping.clone(),
                    dry_run: request.dry_run,
                    key: key.map(str::to_owned),
                },
                platform_jobs::Options::new().on_behalf_of(ctx),
            )
            .await?;
        }
        Ok(Submitted {
            batch_id: id,
            queued: true,
            report: None,
        })
    }

    /// Runs a queued batch (the job's work).
    pub(crate) async fn run_queued(
        &self,
        platform: &Platform,
        ctx: &Context,
        job: &job::ImportJob,
    ) -> Result<Option<RunReport>, Error> {
        let records = run::records_for(platform, ctx, &job.resource)?;
        let b = batch::get(platform.db(), job.batch_id)
            .await?
            .ok_or_else(|| not_found(job.batch_id))?;
        match b.status {
            Status::Queued => {}
            // A run started and never finished: the process running it
            // stopped (killed, crashed) and the queue handed the job to
            // another worker. Running it again would import the committed
            // chunks twice, so the batch fails instead; each chunk is one
            // transaction, so no row is half-written, and a rollback
            // removes what the committed chunks wrote.
            Status::Running => {
                batch::finish(
                    platform.db(),
                    job.batch_id,
                    Status::Failed,
                    Some(INTERRUPTED.to_owned()),
                    None,
                )
                .await?;
                tracing::warn!(
                    batch = job.batch_id,
                    "import batch interrupted mid-run; marked failed"
                );
                return Ok(None);
            }
            // Finished already (a second delivery of the job): nothing to do.
            _ => return Ok(None),
        }
        let stored = b.file_path.clone().ok_or_else(|| not_found(job.batch_id))?;
        let bytes = self.storage(platform)?.get_bytes(stored.as_str()).await?;
        let local = self.temp_path(&format!("job-{}", job.batch_id))?;
        tokio::fs::write(&local, &bytes)
            .await
            .map_err(|e| Error::from(ImportError::io(e)))?;
        let key = Self::key_for(records.meta(), job.key.as_deref())?;
        let input = run::RunInput {
            batch_id: job.batch_id,
            path: local.clone(),
            format: job.format,
            overrides: job.mapping.clone(),
            dry_run: job.dry_run,
            key,
        };
        let (report, failed) = run::run(platform, &records, &self.config, &input, &|_| {}).await;
        let _ = tokio::fs::remove_file(&local).await;
        self.keep_failed(platform, job.batch_id, failed).await?;
        Ok(Some(report))
    }

    /// A fresh local path for a file being read.
    pub fn temp_path(&self, hint: &str) -> Result<PathBuf, Error> {
        std::fs::create_dir_all(&self.config.temp_dir)
            .map_err(|e| Error::from(ImportError::io(e)))?;
        let safe: String = hint
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(40)
            .collect();
        Ok(self
            .config
            .temp_dir
            .join(format!("{safe}-{}", platform_core::crypto::random_token(8))))
    }

    /// The batch with this id, if `ctx` may import its resource.
    pub async fn batch(&self, platform: &Platform, ctx: &Context, id: i64) -> Result<Batch, Error> {
        let b = batch::get(platform.db(), id)
            .await?
            .ok_or_else(|| not_found(id))?;
        run::records_for(platform, ctx, &b.resource).map_err(|e| match e {
            Error::PermissionDenied { .. } => not_found(id),
            e => e,
        })?;
        Ok(b)
    }

    /// The newest batches of the resources `ctx` may import.
    pub async fn batches(
        &self,
        platform: &Platform,
        ctx: &Context,
        limit: i64,
    ) -> Result<Vec<Batch>, Error> {
        Ok(batch::list(platform.db(), None, limit)
            .await?
            .into_iter()
            .filter(|b| run::records_for(platform, ctx, &b.resource).is_ok())
            .collect())
    }

    /// The failed-rows file of batch `id` (the file's columns plus
    /// `error`, in the format of the imported file: CSV or XLSX) with its
    /// format, or `None` when no row failed.
    pub async fn failed_rows(
        &self,
        platform: &Platform,
        ctx: &Context,
        id: i64,
    ) -> Result<Option<(bytes::Bytes, Format)>, Error> {
        let b = self.batch(platform, ctx, id).await?;
        let Some(path) = b.failed_path else {
            return Ok(None);
        };
        let format = if path.ends_with(".xlsx") {
            Format::Xlsx
        } else {
            Format::Csv
        };
        Ok(Some((
            self.storage(platform)?.get_bytes(&path).await?,
            format,
        )))
    }

    /// Rolls batch `id` back: records it created are removed, records it
    /// updated get their earlier values, in one transaction through the
    /// write path, audited with the tag `rollback:<id>`. Refused when a
    /// record changed after the import, unless `force`.
    pub async fn rollback(
        &self,
        platform: &Platform,
        ctx: &Context,
        id: i64,
        force: bool,
    ) -> Result<RevertReport, Error> {
        let b = self.batch(platform, ctx, id).await?;
        match b.status {
            Status::RolledBack => {
                return Err(Error::Conflict {
                    field: "batch".to_owned(),
                    message: format!("import {id} is already rolled back"),
                });
            }
            // A run killed midway leaves its batch `running`: its committed
            // chunks are whole (one transaction each), so forcing rolls them
            // back.
            Status::Queued | Status::Running if !force => {
                return Err(Error::Conflict {
                    field: "batch".to_owned(),
                    message: format!(
                        "import {id} is still running (if its process was stopped, force the rollback)"
                    ),
                });
            }
            Status::Queued | Status::Running => {}
            Status::DryRun => {
                return Err(Error::Conflict {
                    field: "batch".to_owned(),
                    message: format!("import {id} was a dry run: it wrote nothing"),
                });
            }
            Status::Done | Status::Failed => {}
        }
        let records = run::records_for(platform, ctx, &b.resource)?;
        let touched = batch::TouchedReader::new(platform.db().clone(), id);
        let report = records
            .revert_import_from(touched, force, vec![format!("rollback:{id}")])
            .await?;
        batch::rolled_back(
            platform.db(),
            id,
            &serde_json::json!({
                "deleted": report.deleted,
                "reverted": report.reverted,
                "missing": report.missing,
                "overwritten": report.overwritten,
                "forced": force,
            }),
        )
        .await?;
        Ok(report)
    }
}

/// The import key the resource declares (`#[resource(import(key = ..))]`).
fn declared_key(meta: &'static platform_core::resource::ResourceMeta) -> Option<&'static str> {
    meta.import_key()
}

/// The download of batch `id`'s failed-rows file (`import-<id>-failed.csv`
/// or `.xlsx`), for the API and the panel.
pub(crate) fn failed_download(
    id: i64,
    bytes: bytes::Bytes,
    format: Format,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                format.content_type().to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"import-{id}-failed.{}\"",
                    format.name()
                ),
            ),
        ],
        axum::body::Body::from(bytes),
    )
        .into_response()
}

fn not_found(id: i64) -> Error {
    Error::NotFound {
        resource: "import",
        id: id.to_string(),
    }
}

/// The file's format, from its name, content type and first bytes.
fn sniff(path: &Path, request: &ImportRequest) -> Result<Format, Error> {
    use std::io::Read;
    let mut head = [0u8; 8];
    let mut f = std::fs::File::open(path).map_err(|e| Error::from(ImportError::io(e)))?;
    let n = f
        .read(&mut head)
        .map_err(|e| Error::from(ImportError::io(e)))?;
    let name = request
        .file_name
        .clone()
        .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()));
    Ok(Format::detect(
        name.as_deref(),
        request.content_type.as_deref(),
        &head[..n],
    )?)
}

/// Rows in the file, estimated: CSV lines, or an XLSX file's size over 40.
fn estimate_rows(path: &Path, format: Format) -> Result<u64, Error> {
    use std::io::Read;
    let size = std::fs::metadata(path)
        .map_err(|e| Error::from(ImportError::io(e)))?
        .len();
    if format == Format::Xlsx {
        return Ok(size / 40);
    }
    let mut f = std::fs::File::open(path).map_err(|e| Error::from(ImportError::io(e)))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut lines = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::from(ImportError::io(e)))?;
        if n == 0 {
            return Ok(lines.saturating_sub(1));
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

pub(crate) fn setup(config: &ImportConfig, setup: &mut Setup) {
    setup.migrations(batch::MIGRATIONS);
    let service = Imports::new(config.clone());
    setup.service(move |_platform| {
        let s = service.clone();
        async move { Ok(s) }
    });
    setup.api(api::routes());
    setup.api_doc(api::api_doc());
    for c in cli::commands() {
        setup.command(c);
    }
    panel::pages(setup);
}
