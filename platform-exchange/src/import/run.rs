//! The run of one batch: rows read in a blocking thread, handed over in
//! chunks, coerced, written through the write path
//! ([`Records::import_chunk`]), failures written to the failed-rows file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use platform_core::context::Context;
use platform_core::db::{Db, dialect};
use platform_core::permission::{Ability, permission_name};
use platform_core::repo::{Changes, ImportOptions, ImportRow, Records, RowOutcome};
use platform_core::resource::{FieldMeta, ResourceMeta};
use platform_core::value::Value;
use platform_core::{Error, Platform};
use serde::Serialize;

use super::batch::{self, BatchLog, Counts, Status};
use super::coerce::{DateOrder, coerce};
use super::mapping::{Mapping, map_headings};
use super::read::{self, Format, RawRow};
use super::{ImportConfig, ImportError};
use crate::export::xlsx;

/// The failures kept in a run's report (the failed-rows file has all).
pub const REPORTED_FAILURES: usize = 100;

/// Chunks checked and written at once by an import without a key, where
/// the database allows it ([`dialect::writes_chunks_concurrently`]).
const CHUNKS_IN_FLIGHT: usize = 2;

/// One reason a row was not written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowFailure {
    /// The row's number in the file.
    pub row: u64,
    /// The column (its heading) or, when no column feeds it, the field.
    pub column: String,
    /// The field, if the reason concerns one.
    pub field: Option<String>,
    /// A stable code (`required`, `type`, `unique`, `exists`, `ragged`...).
    pub code: String,
    /// Why.
    pub reason: String,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The batch's id.
    pub batch_id: i64,
    /// Where it stands.
    pub status: Status,
    /// The counts.
    pub counts: Counts,
    /// The first [`REPORTED_FAILURES`] failures.
    pub failures: Vec<RowFailure>,
    /// Headings no field matched (ignored).
    pub ignored_columns: Vec<String>,
    /// Required fields no column feeds.
    pub missing_required: Vec<&'static str>,
    /// The mapping used.
    pub mapping: serde_json::Value,
    /// Why the run stopped, if it failed.
    pub error: Option<String>,
}

/// The resource's records for `ctx`, once `import_` is checked.
pub(crate) fn records_for(
    platform: &Platform,
    ctx: &Context,
    resource: &str,
) -> Result<Records, Error> {
    let records = platform
        .records(resource, ctx)
        .ok_or_else(|| Error::NotFound {
            resource: "resource",
            id: resource.chars().take(64).collect(),
        })?;
    if !records.meta().importable() {
        return Err(Error::Unsupported(format!(
            "{} cannot be imported",
            records.meta().plural_label()
        )));
    }
    ctx.authorize(&permission_name(Ability::Import, records.meta().name()))?;
    Ok(records)
}

/// What one run needs.
#[derive(Debug, Clone)]
pub(crate) struct RunInput {
    pub(crate) batch_id: i64,
    pub(crate) path: PathBuf,
    pub(crate) format: Format,
    pub(crate) overrides: Vec<(String, String)>,
    pub(crate) dry_run: bool,
    pub(crate) key: Option<&'static str>,
}

/// Runs a recorded batch over the local file `input.path`; records the
/// outcome in the batch (failed on an error, with the rows of committed
/// chunks left for a rollback), and writes the failed-rows file next to
/// the input (`<input>.failed.csv`, returned when there is one).
pub(crate) async fn run(
    platform: &Platform,
    records: &Records,
    config: &ImportConfig,
    input: &RunInput,
    progress: &(dyn Fn(Counts) + Send + Sync),
) -> (RunReport, Option<PathBuf>) {
    let db = platform.db().clone();
    let id = input.batch_id;
    let _ = batch::set_status(&db, id, Status::Running).await;
    let mut report = RunReport {
        batch_id: id,
        status: Status::Running,
        counts: Counts::default(),
        failures: Vec::new(),
        ignored_columns: Vec::new(),
        missing_required: Vec::new(),
        mapping: serde_json::Value::Null,
        error: None,
    };
    let mut failed_file = None;
    let result = run_inner(
        &db,
        records,
        config,
        input,
        &mut report,
        &mut failed_file,
        progress,
    )
    .await;
    let _ = batch::set_counts(&db, id, report.counts, None).await;
    let failed_path = match failed_file.map(FailedWriter::finish) {
        Some(Ok(path)) => Some(path),
        Some(Err(e)) => {
            tracing::warn!(batch = id, error = %e, "the failed-rows file could not be written");
            None
        }
        None => None,
    };
    report.status = match &result {
        Ok(()) if input.dry_run => Status::DryRun,
        Ok(()) => Status::Done,
        Err(_) => Status::Failed,
    };
    report.error = result.err().map(|e| e.to_string());
    let _ = batch::finish(&db, id, report.status, report.error.clone(), None).await;
    (report, failed_path)
}

/// The failed-rows file being written: CSV for a CSV import, XLSX for an
/// XLSX one (so that it opens, is fixed and is imported again like the
/// original).
enum FailedWriter {
    Csv(PathBuf, Box<csv::Writer<std::fs::File>>),
    Xlsx {
        path: PathBuf,
        book: Box<rust_xlsxwriter::Workbook>,
        /// The heading row: the file's headings plus `error`.
        head: Vec<String>,
        sheet: usize,
        row: u32,
    },
}

impl FailedWriter {
    /// A new file next to `input`, with the heading row plus `error`.
    fn create(input: &Path, format: Format, headings: &[String]) -> Result<Self, Error> {
        let path = failed_path(input, format);
        let mut head = headings.to_vec();
        head.push("error".to_owned());
        match format {
            Format::Csv => {
                let mut w = csv::Writer::from_path(&path).map_err(csv_error)?;
                w.write_record(&head).map_err(csv_error)?;
                Ok(Self::Csv(path, Box::new(w)))
            }
            Format::Xlsx => {
                let mut book = Box::new(rust_xlsxwriter::Workbook::new());
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    book.set_tempdir(dir).map_err(xlsx_error)?;
                }
                new_sheet(&mut book, &head)?;
                Ok(Self::Xlsx {
                    path,
                    book,
                    head,
                    sheet: 0,
                    row: 0,
                })
            }
        }
    }

    /// Appends one row of cells (a full worksheet continues on the next).
    fn row(&mut self, cells: &[String]) -> Result<(), Error> {
        let (book, head, sheet, row) = match self {
            Self::Csv(_, w) => return w.write_record(cells).map_err(csv_error),
            Self::Xlsx {
                book,
                head,
                sheet,
                row,
                ..
            } => (book, head, sheet, row),
        };
        if *row == xlsx::ROWS_PER_SHEET {
            new_sheet(book, head)?;
            *sheet += 1;
            *row = 0;
        }
        *row += 1;
        let ws = book.worksheet_from_index(*sheet).map_err(xlsx_error)?;
        for (c, text) in cells.iter().take(head.len()).enumerate() {
            if !text.is_empty() {
                ws.write_string(*row, col(c), text).map_err(xlsx_error)?;
            }
        }
        Ok(())
    }

    /// Writes the file out; answers its path.
    fn finish(self) -> Result<PathBuf, Error> {
        match self {
            Self::Csv(path, mut w) => {
                w.flush().map_err(|e| Error::from(ImportError::io(e)))?;
                Ok(path)
            }
            Self::Xlsx { path, mut book, .. } => {
                book.save(&path).map_err(xlsx_error)?;
                Ok(path)
            }
        }
    }
}

/// A worksheet headed by `head` in bold (the export's writer).
fn new_sheet(book: &mut rust_xlsxwriter::Workbook, head: &[String]) -> Result<(), Error> {
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    xlsx::new_sheet(book, &head, &rust_xlsxwriter::Format::new().set_bold())
}

fn col(c: usize) -> rust_xlsxwriter::ColNum {
    rust_xlsxwriter::ColNum::try_from(c).unwrap_or(rust_xlsxwriter::ColNum::MAX)
}

fn csv_error(e: csv::Error) -> Error {
    Error::from(ImportError::Io(e.to_string()))
}

fn xlsx_error(e: rust_xlsxwriter::XlsxError) -> Error {
    Error::from(ImportError::Io(e.to_string()))
}

async fn run_inner(
    db: &Db,
    records: &Records,
    config: &ImportConfig,
    input: &RunInput,
    report: &mut RunReport,
    failed_file: &mut Option<FailedWriter>,
    progress: &(dyn Fn(Counts) + Send + Sync),
) -> Result<(), Error> {
    let meta = records.meta();
    let (path, format, limits) = (input.path.clone(), input.format, config.limits);
    let chunk_size = config.chunk_size.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<RawRow>, ImportError>>(2);
    let (htx, hrx) = tokio::sync::oneshot::channel::<Result<Vec<String>, ImportError>>();
    tokio::task::spawn_blocking(move || {
        let opened = match read::open(&path, format, limits) {
            Ok(o) => o,
            Err(e) => {
                let _ = htx.send(Err(e));
                return;
            }
        };
        if htx.send(Ok(opened.headings)).is_err() {
            return;
        }
        let mut chunk = Vec::with_capacity(chunk_size);
        for row in opened.rows {
            match row {
                Ok(r) => {
                    chunk.push(r);
                    if chunk.len() >= chunk_size
                        && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(chunk));
        }
    });
    let headings = hrx
        .await
        .map_err(|_| Error::from(ImportError::Io("the reader stopped".to_owned())))??;
    let mapping = map_headings(meta, &headings, &input.overrides)?;
    report.ignored_columns = mapping.ignored();
    report.missing_required = mapping.missing_required(meta);
    report.mapping = mapping.to_json();
    let column_of: HashMap<&str, &str> = mapping
        .fields
        .iter()
        .zip(&mapping.headings)
        .filter_map(|(f, h)| f.map(|f| (f, h.as_str())))
        .collect();
    let options = ImportOptions {
        key: input.key,
        dry_run: input.dry_run,
        tags: vec![format!("import:{}", input.batch_id)],
        log: (!input.dry_run).then(|| {
            Arc::new(BatchLog {
                batch_id: input.batch_id,
            }) as Arc<dyn platform_core::repo::TouchLog>
        }),
    };
    // Without an import key every row creates its record, so the order in
    // which chunks commit changes nothing: where the database allows it
    // (PostgreSQL), the next chunk is checked and written while this one
    // commits. A value two chunks in flight both hold is still refused
    // once: the insert that comes second meets the unique index (or a
    // deadlock), and its chunk is written again row by row, where the check
    // names the taken value; which of the two rows is refused then depends
    // on timing. With a key, later rows must win, so chunks go in turn.
    let in_flight = if input.key.is_none() && dialect::writes_chunks_concurrently(db.backend()) {
        CHUNKS_IN_FLIGHT
    } else {
        1
    };
    let (mapping, options) = (&mapping, &options);
    let mut written = std::pin::pin!(
        futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        })
        .map(|chunk| async move {
            let chunk = chunk?;
            let (rows, lines, early) =
                to_rows(db, meta, mapping, &chunk, config.date_order, input.format).await?;
            let outcomes = records.import_chunk(rows, options.clone()).await?;
            Ok::<_, Error>((chunk, lines, early, outcomes))
        })
        .buffered(in_flight)
    );
    while let Some(done) = written.next().await {
        let (chunk, lines, mut early, outcomes) = done?;
        let mut failures: Vec<(usize, Vec<RowFailure>)> = Vec::new();
        for (k, o) in outcomes.into_iter().enumerate() {
            let n = lines[k];
            match o {
                RowOutcome::Created(_) => report.counts.created += 1,
                RowOutcome::Updated(_) => report.counts.updated += 1,
                RowOutcome::Unchanged(_) => report.counts.unchanged += 1,
                RowOutcome::Failed(errors) => {
                    let list = errors
                        .iter()
                        .map(|e| RowFailure {
                            row: chunk[n].line,
                            column: column_of
                                .get(e.field.as_str())
                                .map_or_else(|| e.field.clone(), |h| (*h).to_owned()),
                            field: meta.field(&e.field).map(|f| f.name().to_owned()),
                            code: e.code.to_owned(),
                            reason: e.message.clone(),
                        })
                        .collect();
                    failures.push((n, list));
                }
            }
        }
        failures.append(&mut early);
        failures.sort_by_key(|(n, _)| *n);
        for (n, list) in failures {
            report.counts.failed += 1;
            write_failed(
                failed_file,
                &input.path,
                input.format,
                &headings,
                &chunk[n],
                &list,
            )?;
            for f in list {
                if report.failures.len() < REPORTED_FAILURES {
                    report.failures.push(f);
                }
            }
        }
        report.counts.processed += chunk.len() as u64;
        let _ = batch::set_counts(db, input.batch_id, report.counts, None).await;
        progress(report.counts);
    }
    Ok(())
}

/// The chunk's rows as changes (with the line index of each), and the
/// rows that failed before the write path (ragged rows).
async fn to_rows(
    db: &Db,
    meta: &'static ResourceMeta,
    mapping: &Mapping,
    chunk: &[RawRow],
    order: DateOrder,
    format: Format,
) -> Result<(Vec<ImportRow>, Vec<usize>, Vec<(usize, Vec<RowFailure>)>), Error> {
    let width = mapping.headings.len();
    let mut rows = Vec::with_capacity(chunk.len());
    let mut lines = Vec::with_capacity(chunk.len());
    let mut early = Vec::new();
    // Relation labels to look up: (field, label) -> rows.
    let mut labels: HashMap<(&'static str, String), Vec<usize>> = HashMap::new();
    for (n, raw) in chunk.iter().enumerate() {
        let extra_filled = raw.cells.iter().skip(width).any(|c| !c.trim().is_empty());
        // A CSV row keeps every cell up to its last column; an XLSX row
        // ends at its last filled cell, so only CSV rows can be short.
        if extra_filled || (format == Format::Csv && raw.cells.len() < width) {
            early.push((
                n,
                vec![RowFailure {
                    row: raw.line,
                    column: String::new(),
                    field: None,
                    code: "ragged".to_owned(),
                    reason: format!(
                        "has {} cells where the heading row has {width}",
                        raw.cells.len()
                    ),
                }],
            ));
            continue;
        }
        let mut changes = Changes::new();
        for (c, field) in mapping.fields.iter().enumerate() {
            let Some(name) = field else { continue };
            let Some(f) = meta.field(name) else { continue };
            let text = raw.cells.get(c).map_or("", String::as_str);
            if raw.errors.contains(&c) {
                changes.reject(*name, "type", format!("holds a spreadsheet error ({text})"));
                continue;
            }
            let coerced = coerce(f, text, order);
            // A relation given by a label (not a key): looked up below.
            if f.belongs_to_meta().is_some()
                && !text.trim().is_empty()
                && (coerced.is_err()
                    || f.belongs_to_meta()
                        .is_some_and(|t| Value::parse(t.primary_key().ty(), text.trim()).is_err()))
            {
                labels
                    .entry((*name, text.trim().to_owned()))
                    .or_default()
                    .push(rows.len());
                continue;
            }
            match coerced {
                Ok(v) => changes.insert(*name, v),
                Err(reason) => changes.reject(*name, "type", reason),
            }
        }
        rows.push(ImportRow {
            line: raw.line,
            changes,
        });
        lines.push(n);
    }
    if !labels.is_empty() {
        resolve_labels(db, meta, &mut rows, labels).await?;
    }
    Ok((rows, lines, early))
}

/// Replaces relation labels by ids: the target record whose title field
/// (or another unique field) equals the label, when exactly one does.
async fn resolve_labels(
    db: &Db,
    meta: &'static ResourceMeta,
    rows: &mut [ImportRow],
    labels: HashMap<(&'static str, String), Vec<usize>>,
) -> Result<(), Error> {
    let mut by_field: HashMap<&'static str, Vec<String>> = HashMap::new();
    for (f, l) in labels.keys() {
        by_field.entry(f).or_default().push(l.clone());
    }
    for (field, wanted) in by_field {
        let Some(target) = meta.field(field).and_then(FieldMeta::belongs_to_meta) else {
            continue;
        };
        let tpk = target.primary_key();
        let candidates: Vec<&FieldMeta> = std::iter::once(target.title_field())
            .chain(target.field_list().iter().filter(|f| f.is_unique()))
            .filter(|f| f.ty().is_string() && !f.is_encrypted() && !f.is_primary_key())
            .collect();
        let mut found: HashMap<String, Vec<Value>> = HashMap::new();
        for cf in candidates {
            let missing: Vec<&String> = wanted.iter().filter(|l| !found.contains_key(*l)).collect();
            for part in missing.chunks(500) {
                let mut q = db.sql();
                q.push("SELECT ")
                    .ident(tpk.column_name())
                    .push(", ")
                    .ident(cf.column_name())
                    .push(" FROM ")
                    .ident(target.table())
                    .push(" WHERE ")
                    .ident(cf.column_name());
                q.in_list(part, |q, l| {
                    q.bind_str((*l).clone());
                });
                for r in db
                    .fetch_all(q, &[tpk.ty(), platform_core::value::FieldType::Text])
                    .await?
                {
                    if let Some(label) = r[1].as_str() {
                        found
                            .entry(label.to_owned())
                            .or_default()
                            .push(r[0].clone());
                    }
                }
            }
        }
        for label in wanted {
            let idx = &labels[&(field, label.clone())];
            for &i in idx {
                let changes = &mut rows[i].changes;
                match found.get(&label).map(Vec::as_slice) {
                    Some([id]) => changes.insert(field, id.clone()),
                    Some(many) => changes.reject(
                        field,
                        "ambiguous",
                        format!(
                            "{} {} match `{label}`: use the id",
                            many.len(),
                            target.plural_label()
                        ),
                    ),
                    None => changes.reject(
                        field,
                        "exists",
                        format!("no {} matches `{label}`", target.label_text()),
                    ),
                }
            }
        }
    }
    Ok(())
}

/// Appends a failed row to the failed-rows file (created with the heading
/// row plus `error` on the first failure): its cells as read, and the
/// reasons. CSV cells a spreadsheet would run are neutralised; XLSX cells
/// are written as text, which a spreadsheet never runs.
fn write_failed(
    file: &mut Option<FailedWriter>,
    input: &Path,
    format: Format,
    headings: &[String],
    raw: &RawRow,
    failures: &[RowFailure],
) -> Result<(), Error> {
    if file.is_none() {
        *file = Some(FailedWriter::create(input, format, headings)?);
    }
    let Some(w) = file.as_mut() else {
        return Ok(());
    };
    let reasons: Vec<String> = failures
        .iter()
        .map(|f| {
            if f.column.is_empty() {
                format!("row {}: {}", f.row, f.reason)
            } else {
                format!("{}: {}", f.column, f.reason)
            }
        })
        .collect();
    let mut cells: Vec<String> = raw
        .cells
        .iter()
        .take(headings.len())
        .map(|c| match format {
            Format::Csv => neutralise(c),
            Format::Xlsx => c.clone(),
        })
        .collect();
    cells.resize(headings.len(), String::new());
    cells.push(reasons.join("; "));
    w.row(&cells)
}

/// Where the failed rows of `input` are written: `<input>.failed.csv`, or
/// `.failed.xlsx` for an XLSX import.
pub(crate) fn failed_path(input: &Path, format: Format) -> PathBuf {
    let mut p = input.as_os_str().to_owned();
    p.push(".failed.");
    p.push(format.name());
    PathBuf::from(p)
}

/// A cell a spreadsheet would run as a formula, prefixed with `'` so that
/// opening the failed-rows file runs nothing (CWE-1236). Negative numbers
/// stay as they are.
pub(crate) fn neutralise(c: &str) -> String {
    let risky = c.starts_with(['=', '+', '@', '\t', '\r'])
        || (c.starts_with('-') && !c[1..].trim().parse::<f64>().is_ok_and(f64::is_finite));
    if risky { format!("'{c}") } else { c.to_owned() }
}
