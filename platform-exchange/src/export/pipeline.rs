//! The pipeline every entry point shares: a query over a resource's
//! records, read in keyset batches, turned into rows of [`Cell`]s, written
//! as CSV (streamed) or XLSX (constant memory, to a file).

use std::path::Path;

use bytes::Bytes;
use futures::Stream;
use platform_core::error::{Error, FieldErrors, Result};
use platform_core::permission::Ability;
use platform_core::query::{ListQuery, Paging};
use platform_core::repo::{Page, Record, Records};
use platform_core::visibility::Visibility;

use super::Format;
use super::columns::{self, Cell, Column};

/// One export in progress: who reads what, which columns, where the next
/// batch starts.
#[derive(Debug)]
pub struct Export {
    records: Records,
    query: ListQuery,
    columns: Vec<Column>,
    visibility: Visibility,
    batch: u32,
    /// `None` once the last batch was read.
    after: Option<Option<String>>,
    /// The read of the next batch, started as soon as the cursor of the
    /// one before it was known, so that the database (or the task
    /// decoding its rows) works while the caller writes the batch it got.
    next: Option<Prefetch>,
    rows: u64,
}

/// A batch being read in its own task; dropping it stops the read.
#[derive(Debug)]
struct Prefetch(tokio::task::JoinHandle<Result<Page<Record>>>);

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Export {
    /// An export of the records `query` matches (its search, filters, sort
    /// and trash setting; its paging is ignored), with `columns` (field
    /// names) or every column the actor may export.
    ///
    /// Refused unless the resource is exportable and the actor holds
    /// `export_<resource>` (and, when reading, `view_any_<resource>`).
    pub fn new(records: Records, query: ListQuery, columns: Option<&[String]>) -> Result<Self> {
        Self::check(&records)?;
        let meta = records.meta();
        let visibility = Visibility::of(records.context());
        let columns = columns::select(meta, visibility, columns).map_err(Error::Validation)?;
        let mut query = query;
        query.count = false;
        query.paging = Paging::Cursor {
            size: platform_core::query::MAX_PAGE_SIZE,
            after: None,
        };
        Ok(Self {
            records,
            query,
            columns,
            visibility,
            batch: super::DEFAULT_BATCH,
            after: Some(None),
            next: None,
            rows: 0,
        })
    }

    /// `Ok` when the actor of `records` may export them: the resource is
    /// exportable (else `Unsupported`) and the actor holds
    /// `export_<resource>` (else `PermissionDenied`, or `Unauthenticated`
    /// for nobody).
    pub fn check(records: &Records) -> Result<()> {
        let meta = records.meta();
        if !meta.exportable() {
            return Err(Error::Unsupported(format!(
                "{} cannot be exported",
                meta.plural()
            )));
        }
        records
            .context()
            .authorize(records.entry().permission(Ability::Export))
    }

    /// Reads `n` rows per batch (1 to [`MAX_BATCH_SIZE`](platform_core::query::MAX_BATCH_SIZE)).
    #[must_use]
    pub fn batch_size(mut self, n: u32) -> Self {
        self.batch = n;
        self
    }

    /// The columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The records read.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// The rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The headings row.
    pub fn headings(&self) -> Vec<&'static str> {
        self.columns.iter().map(Column::heading).collect()
    }

    /// The next batch of records, `None` after the last.
    ///
    /// Two batches at most are held: the one returned and the one read
    /// meanwhile in another task.
    pub async fn next_page(&mut self) -> Result<Option<Page<Record>>> {
        let page = match self.next.as_mut() {
            Some(prefetch) => {
                let joined = (&mut prefetch.0).await;
                self.next = None;
                joined.map_err(|e| backend("export", format!("a batch read stopped: {e}")))??
            }
            None => {
                let Some(after) = self.after.take() else {
                    return Ok(None);
                };
                self.records
                    .batch(&self.batch_query(after), self.batch)
                    .await?
            }
        };
        self.after = match (&page.next_cursor, page.has_more) {
            (Some(c), true) => Some(Some(c.clone())),
            _ => None,
        };
        if let Some(after) = self.after.take() {
            let records = self.records.clone();
            let q = self.batch_query(after);
            let size = self.batch;
            self.next = Some(Prefetch(tokio::spawn(async move {
                records.batch(&q, size).await
            })));
        }
        self.rows += page.items.len() as u64;
        Ok(Some(page))
    }

    /// The query of the batch after `after`.
    fn batch_query(&self, after: Option<String>) -> ListQuery {
        let q = self.query.clone();
        match after {
            Some(cursor) => q.after(cursor),
            None => q,
        }
    }

    /// The cells of one record.
    pub fn cells(&self, record: &Record) -> Vec<Cell> {
        let values = record.values();
        self.columns
            .iter()
            .map(|c| columns::cell(self.visibility, c, &values[c.index]))
            .collect()
    }

    /// The CSV bytes of one page (no headings).
    fn csv_page(&self, page: &Page<Record>) -> Result<Bytes> {
        let mut w = csv_writer(Vec::with_capacity(page.items.len() * 96));
        // Straight from the values to the writer (no cells, no strings
        // per cell); the same text as `cells` then `Cell::text`.
        let mut scratch = String::with_capacity(64);
        for r in &page.items {
            let values = r.values();
            for c in &self.columns {
                let text = columns::csv_text(self.visibility, c, &values[c.index], &mut scratch);
                w.write_field(text.as_bytes()).map_err(csv_error)?;
            }
            w.write_record(None::<&[u8]>).map_err(csv_error)?;
        }
        w.into_inner()
            .map(Bytes::from)
            .map_err(|e| backend("export", e.to_string()))
    }

    /// The whole export as a stream of CSV chunks (headings, then one
    /// chunk per batch), memory bounded by one batch. The first batch is
    /// read here, so that a bad query or a missing permission is an error
    /// before anything is sent.
    pub async fn csv_stream(
        mut self,
    ) -> Result<impl Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send + 'static>
    {
        let mut head = csv_writer(Vec::new());
        head.write_record(self.headings()).map_err(csv_error)?;
        let head = head
            .into_inner()
            .map_err(|e| csv_error(e.into_error().into()))?;
        let first = self.next_page().await?;
        let first = match first {
            Some(p) => self.csv_page(&p)?,
            None => Bytes::new(),
        };
        let mut chunk = head;
        chunk.extend_from_slice(&first);
        let state = (self, Some(Bytes::from(chunk)));
        Ok(futures::stream::unfold(
            state,
            |(mut st, pending)| async move {
                if let Some(bytes) = pending {
                    return Some((Ok(bytes), (st, None)));
                }
                match st.next_page().await {
                    Ok(Some(page)) => {
                        let out = st.csv_page(&page).map_err(std::io::Error::other);
                        Some((out, (st, None)))
                    }
                    Ok(None) => None,
                    Err(e) => {
                        tracing::error!(error = %e, "export stopped");
                        st.after = None;
                        st.next = None;
                        Some((Err(std::io::Error::other("export failed")), (st, None)))
                    }
                }
            },
        ))
    }

    /// Writes the whole export to `out` in `format`; returns the rows
    /// written. XLSX is written in constant memory (rows go to temporary
    /// files as they come, then are zipped into `out`).
    pub async fn write_file(self, format: Format, out: &Path) -> Result<u64> {
        match format {
            Format::Csv => self.write_csv(out).await,
            Format::Xlsx => super::xlsx::write(self, out).await,
        }
    }

    async fn write_csv(mut self, out: &Path) -> Result<u64> {
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::create(out).await.map_err(io_error)?;
        let mut head = csv_writer(Vec::new());
        head.write_record(self.headings()).map_err(csv_error)?;
        let head = head
            .into_inner()
            .map_err(|e| csv_error(e.into_error().into()))?;
        file.write_all(&head).await.map_err(io_error)?;
        while let Some(page) = self.next_page().await? {
            file.write_all(&self.csv_page(&page)?)
                .await
                .map_err(io_error)?;
        }
        file.flush().await.map_err(io_error)?;
        Ok(self.rows)
    }
}

fn csv_writer(buf: Vec<u8>) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(buf)
}

fn csv_error(e: csv::Error) -> Error {
    backend("csv", e.to_string())
}

/// A failure of the export's own machinery (a file, a writer).
pub(crate) fn backend(what: &'static str, message: String) -> Error {
    Error::Backend {
        backend: what,
        source: message.into(),
    }
}

pub(crate) fn io_error(e: std::io::Error) -> Error {
    backend("export file", e.to_string())
}

/// Reads the API's list parameters (`search`, `sort`, `filter[..]`,
/// `trashed`) plus `format` and `columns` (comma-separated field names).
pub fn parse_params<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> std::result::Result<(ListQuery, Format, Option<Vec<String>>), FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut format = Format::Csv;
    let mut columns = None;
    let mut rest = Vec::new();
    for (k, v) in params {
        match k {
            "format" => match Format::parse(v) {
                Some(f) => format = f,
                None => errors.add("format", "invalid", "must be `csv` or `xlsx`"),
            },
            "columns" => {
                let names: Vec<String> = v
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                if names.len() > 200 {
                    errors.add("columns", "invalid", "names at most 200 columns");
                } else {
                    columns = Some(names);
                }
            }
            "page[size]" | "page[after]" | "page[number]" | "count" | "include" => {
                errors.add(k, "unknown_parameter", "does not apply to exports");
            }
            _ => rest.push((k, v)),
        }
    }
    let query = match ListQuery::from_params(rest) {
        Ok(q) => Some(q),
        Err(e) => {
            for f in e.iter() {
                errors.add(f.field.clone(), f.code, f.message.clone());
            }
            None
        }
    };
    match query {
        Some(q) if errors.is_empty() => Ok((q, format, columns)),
        _ => Err(errors),
    }
}
