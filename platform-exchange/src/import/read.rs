//! Readers: CSV and XLSX files as a heading row and rows of text cells,
//! read in a blocking thread and handed over in chunks, with the checks a
//! hostile file needs (encoding, size, zip bombs, sheet dimensions).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use calamine::{Data, Reader, Xlsx};

use super::ImportError;

/// A file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma- (or semicolon-, or tab-) separated values, UTF-8.
    Csv,
    /// An Office Open XML workbook (its first sheet).
    Xlsx,
}

impl Format {
    /// The media type of a file in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
    /// `csv` or `xlsx`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
        }
    }

    /// The format of a file named `name` (its extension) with content type
    /// `content_type`, checked against its first bytes `head`: a file that
    /// is not what its name says is refused.
    pub fn detect(
        name: Option<&str>,
        content_type: Option<&str>,
        head: &[u8],
    ) -> Result<Self, ImportError> {
        let zip = head.starts_with(b"PK\x03\x04");
        let ext = name
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, e)| e.to_ascii_lowercase());
        let ct = content_type.map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        let said_xlsx = ext.as_deref() == Some("xlsx")
            || ct.as_deref().is_some_and(|c| c.contains("spreadsheetml"));
        let said_csv = matches!(ext.as_deref(), Some("csv" | "txt" | "tsv"))
            || ct.as_deref().is_some_and(|c| {
                matches!(
                    c,
                    "text/csv" | "text/plain" | "application/csv" | "text/tab-separated-values"
                )
            });
        match (said_xlsx, said_csv, zip) {
            (true, _, true) | (false, false, true) => Ok(Self::Xlsx),
            (true, _, false) => Err(ImportError::Format(
                "the file is named or sent as XLSX but is not one (an XLSX file is a zip archive)"
                    .to_owned(),
            )),
            (false, true, true) => Err(ImportError::Format(
                "the file is named or sent as CSV but is a zip archive (an XLSX file? send it as .xlsx)"
                    .to_owned(),
            )),
            (false, _, false) => Ok(Self::Csv),
        }
    }
}

/// Limits on what a file may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest file accepted, in bytes.
    pub max_bytes: u64,
    /// The most an XLSX archive may unpack to, in bytes (a zip bomb
    /// unpacks to far more than it weighs).
    pub max_unpacked: u64,
    /// The most data rows.
    pub max_rows: u64,
    /// The most columns.
    pub max_columns: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024 * 1024,
            max_unpacked: 512 * 1024 * 1024,
            max_rows: 2_000_000,
            max_columns: 512,
        }
    }
}

/// One data row: its number in the file (the heading row is row 1 of a
/// CSV file; an XLSX row keeps its sheet row number) and its cells.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    /// The row number, as a spreadsheet shows it.
    pub line: u64,
    /// The cells, as text (XLSX numbers, dates and booleans written out).
    pub cells: Vec<String>,
    /// Cells that held an error value in the sheet (`#DIV/0!`), by index.
    pub errors: Vec<usize>,
}

/// A sequence of rows read from a file.
pub type Rows = Box<dyn Iterator<Item = Result<RawRow, ImportError>> + Send>;

/// An opened file: its heading row and the rows after it.
pub struct Opened {
    /// The heading row.
    pub headings: Vec<String>,
    /// The rows.
    pub rows: Rows,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("headings", &self.headings)
            .finish_non_exhaustive()
    }
}

/// Opens `path` as `format` within `limits`. Blocking: call it from a
/// blocking thread.
pub fn open(path: &Path, format: Format, limits: Limits) -> Result<Opened, ImportError> {
    let size = std::fs::metadata(path).map_err(ImportError::io)?.len();
    if size > limits.max_bytes {
        return Err(ImportError::TooLarge(format!(
            "the file is {} MiB, more than the {} MiB allowed",
            size.div_ceil(1024 * 1024),
            limits.max_bytes / (1024 * 1024)
        )));
    }
    match format {
        Format::Csv => open_csv(path, limits),
        Format::Xlsx => open_xlsx(path, limits),
    }
}

// ---- CSV --------------------------------------------------------------------

fn open_csv(path: &Path, limits: Limits) -> Result<Opened, ImportError> {
    let mut file = File::open(path).map_err(ImportError::io)?;
    let mut head = [0u8; 4];
    let n = read_up_to(&mut file, &mut head)?;
    let head = &head[..n];
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Err(ImportError::Encoding(
            "the file is UTF-16 text; save it as UTF-8 (CSV UTF-8 in Excel)".to_owned(),
        ));
    }
    let bom = head.starts_with(&[0xEF, 0xBB, 0xBF]);
    check_utf8(&mut file)?;
    file.seek(SeekFrom::Start(if bom { 3 } else { 0 }))
        .map_err(ImportError::io)?;
    let mut first = String::new();
    {
        let mut probe = BufReader::new(&mut file);
        std::io::BufRead::read_line(&mut probe, &mut first).map_err(ImportError::io)?;
    }
    let delimiter = sniff_delimiter(&first);
    // The csv crate ends a CRLF record at its `\r` and counts the `\n` with
    // the next record, whose position is then a line short (Excel writes
    // CRLF): the rows after the heading get that line back.
    let crlf = u64::from(first.ends_with("\r\n"));
    file.seek(SeekFrom::Start(if bom { 3 } else { 0 }))
        .map_err(ImportError::io)?;
    let reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(false)
        .from_reader(BufReader::with_capacity(256 * 1024, file));
    let mut records = reader.into_records_owned();
    let headings: Vec<String> = match records.next() {
        None => return Err(ImportError::Empty),
        Some(r) => r
            .map_err(|e| csv_error(&e))?
            .iter()
            .map(|s| s.trim().to_owned())
            .collect(),
    };
    check_headings(&headings, limits)?;
    let mut line = 1u64;
    let mut count = 0u64;
    let rows = std::iter::from_fn(move || {
        loop {
            let rec = records.next()?;
            line += 1;
            let rec = match rec {
                Ok(r) => r,
                Err(e) => return Some(Err(csv_error(&e))),
            };
            if rec.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            count += 1;
            if count > limits.max_rows {
                return Some(Err(ImportError::TooLarge(format!(
                    "the file has more than {} rows",
                    limits.max_rows
                ))));
            }
            let line_no = rec.position().map_or(line, |p| p.line() + crlf);
            return Some(Ok(RawRow {
                line: line_no,
                cells: rec.iter().map(str::to_owned).collect(),
                errors: Vec::new(),
            }));
        }
    });
    Ok(Opened {
        headings,
        rows: Box::new(rows),
    })
}

/// `csv::Reader::into_records` on an owned reader.
trait IntoRecordsOwned {
    fn into_records_owned(self) -> csv::StringRecordsIntoIter<BufReader<File>>;
}
impl IntoRecordsOwned for csv::Reader<BufReader<File>> {
    fn into_records_owned(self) -> csv::StringRecordsIntoIter<BufReader<File>> {
        self.into_records()
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> Result<usize, ImportError> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]).map_err(ImportError::io)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads the whole file once, refusing it (before anything is written)
/// when it is not UTF-8, with the line of the first bad byte.
fn check_utf8(file: &mut File) -> Result<(), ImportError> {
    file.seek(SeekFrom::Start(0)).map_err(ImportError::io)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut carry = 0usize;
    let mut line = 1u64;
    loop {
        let n = file.read(&mut buf[carry..]).map_err(ImportError::io)?;
        let end = carry + n;
        if n == 0 {
            if carry > 0 {
                return Err(not_utf8(line));
            }
            return Ok(());
        }
        match std::str::from_utf8(&buf[..end]) {
            Ok(s) => {
                line += s.bytes().filter(|&b| b == b'\n').count() as u64;
                carry = 0;
            }
            Err(e) if e.error_len().is_none() => {
                let good = e.valid_up_to();
                line += buf[..good].iter().filter(|&&b| b == b'\n').count() as u64;
                buf.copy_within(good..end, 0);
                carry = end - good;
            }
            Err(e) => {
                let good = e.valid_up_to();
                line += buf[..good].iter().filter(|&&b| b == b'\n').count() as u64;
                return Err(not_utf8(line));
            }
        }
    }
}

fn not_utf8(line: u64) -> ImportError {
    ImportError::Encoding(format!(
        "the file is not UTF-8 text (line {line} holds a byte that is not; Latin-1 or Windows-1252?): save it as UTF-8 (CSV UTF-8 in Excel)"
    ))
}

fn csv_error(e: &csv::Error) -> ImportError {
    match e.kind() {
        csv::ErrorKind::Utf8 { pos, .. } => not_utf8(pos.as_ref().map_or(0, csv::Position::line)),
        _ => ImportError::Format(format!("the CSV file cannot be read: {e}")),
    }
}

/// The delimiter of a heading line: the most frequent of `,`, `;` and tab
/// outside quotes (`,` on a tie).
fn sniff_delimiter(line: &str) -> u8 {
    let (mut comma, mut semi, mut tab, mut quoted) = (0, 0, 0, false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => comma += 1,
            ';' if !quoted => semi += 1,
            '\t' if !quoted => tab += 1,
            _ => {}
        }
    }
    if semi > comma && semi >= tab {
        b';'
    } else if tab > comma && tab > semi {
        b'\t'
    } else {
        b','
    }
}

fn check_headings(headings: &[String], limits: Limits) -> Result<(), ImportError> {
    if headings.iter().all(String::is_empty) {
        return Err(ImportError::Empty);
    }
    if headings.len() > limits.max_columns {
        return Err(ImportError::TooLarge(format!(
            "the file has {} columns, more than the {} allowed",
            headings.len(),
            limits.max_columns
        )));
    }
    Ok(())
}

// ---- XLSX -------------------------------------------------------------------

/// Unpacks every member of the archive once, counting, and refuses it when
/// the total passes `max_unpacked` (the sizes an archive declares can lie,
/// so they are not trusted) or when it is not a zip archive.
fn check_archive(path: &Path, limits: Limits) -> Result<(), ImportError> {
    let file = File::open(path).map_err(ImportError::io)?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
        ImportError::Format(format!("the file is not a readable XLSX archive: {e}"))
    })?;
    if zip.len() > 10_000 {
        return Err(ImportError::TooLarge(format!(
            "the XLSX archive has {} members",
            zip.len()
        )));
    }
    let mut total = 0u64;
    let mut sink = std::io::sink();
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| {
            ImportError::Format(format!("the file is not a readable XLSX archive: {e}"))
        })?;
        let left = limits.max_unpacked.saturating_sub(total);
        let n = std::io::copy(&mut entry.take(left + 1), &mut sink).map_err(|e| {
            ImportError::Format(format!("the file is not a readable XLSX archive: {e}"))
        })?;
        total += n;
        if total > limits.max_unpacked {
            return Err(ImportError::TooLarge(format!(
                "the XLSX file unpacks to more than {} MiB (a zip bomb?)",
                limits.max_unpacked / (1024 * 1024)
            )));
        }
    }
    Ok(())
}

fn xlsx_error(e: impl std::fmt::Display) -> ImportError {
    ImportError::Format(format!("the XLSX file cannot be read: {e}"))
}

fn open_xlsx(path: &Path, limits: Limits) -> Result<Opened, ImportError> {
    check_archive(path, limits)?;
    let file = File::open(path).map_err(ImportError::io)?;
    let mut book: Xlsx<BufReader<File>> = Xlsx::new(BufReader::new(file)).map_err(xlsx_error)?;
    let Some(sheet) = book.sheet_names().first().cloned() else {
        return Err(ImportError::Empty);
    };
    // The cell reader borrows the workbook: read rows on this thread and
    // hand them over through a bounded channel.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<RawRow, ImportError>>(1024);
    let (htx, hrx) = std::sync::mpsc::sync_channel::<Result<Vec<String>, ImportError>>(1);
    std::thread::Builder::new()
        .name("import-xlsx".into())
        .spawn(move || xlsx_rows(&mut book, &sheet, limits, &htx, &tx))
        .map_err(ImportError::io)?;
    let headings = hrx.recv().map_err(|_| ImportError::Empty)??;
    check_headings(&headings, limits)?;
    Ok(Opened {
        headings,
        rows: Box::new(rx.into_iter()),
    })
}

type RowSender = std::sync::mpsc::SyncSender<Result<RawRow, ImportError>>;

fn xlsx_rows(
    book: &mut Xlsx<BufReader<File>>,
    sheet: &str,
    limits: Limits,
    headings: &std::sync::mpsc::SyncSender<Result<Vec<String>, ImportError>>,
    rows: &RowSender,
) {
    let mut reader = match book.worksheet_cells_reader(sheet) {
        Ok(r) => r,
        Err(e) => {
            let _ = headings.send(Err(xlsx_error(e)));
            return;
        }
    };
    let mut current: Option<RawRow> = None;
    let mut heading_sent = false;
    let mut count = 0u64;
    let emit = |row: RawRow, heading_sent: &mut bool, count: &mut u64| -> bool {
        if !*heading_sent {
            *heading_sent = true;
            let cells = row.cells.iter().map(|c| c.trim().to_owned()).collect();
            return headings.send(Ok(cells)).is_ok();
        }
        if row.cells.iter().all(|c| c.trim().is_empty()) && row.errors.is_empty() {
            return true;
        }
        *count += 1;
        if *count > limits.max_rows {
            let _ = rows.send(Err(ImportError::TooLarge(format!(
                "the file has more than {} rows",
                limits.max_rows
            ))));
            return false;
        }
        rows.send(Ok(row)).is_ok()
    };
    loop {
        let cell = match reader.next_cell() {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                let err = xlsx_error(e);
                if heading_sent {
                    let _ = rows.send(Err(err));
                } else {
                    let _ = headings.send(Err(err));
                }
                return;
            }
        };
        let (r, c) = cell.get_position();
        let c = c as usize;
        if c >= limits.max_columns {
            let err = ImportError::TooLarge(format!(
                "the sheet has a cell in column {}, past the {} columns allowed",
                c + 1,
                limits.max_columns
            ));
            if heading_sent {
                let _ = rows.send(Err(err));
            } else {
                let _ = headings.send(Err(err));
            }
            return;
        }
        let line = u64::from(r) + 1;
        if current.as_ref().is_some_and(|row| row.line != line) {
            let row = current.take().unwrap_or_else(|| unreachable!());
            if !emit(row, &mut heading_sent, &mut count) {
                return;
            }
        }
        let row = current.get_or_insert_with(|| RawRow {
            line,
            cells: Vec::new(),
            errors: Vec::new(),
        });
        if row.cells.len() <= c {
            row.cells.resize(c + 1, String::new());
        }
        let value: Data = cell.get_value().clone().into();
        if matches!(value, Data::Error(_)) {
            row.errors.push(c);
        }
        row.cells[c] = cell_text(&value);
    }
    match current {
        Some(row) => {
            emit(row, &mut heading_sent, &mut count);
        }
        None if !heading_sent => {
            let _ = headings.send(Err(ImportError::Empty));
        }
        None => {}
    }
}

/// A cell as text: integers without a fraction, dates as ISO 8601.
fn cell_text(v: &Data) -> String {
    match v {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(n) => n.to_string(),
        Data::Float(x) => {
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{x:.0}")
            } else {
                x.to_string()
            }
        }
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => match d.as_datetime() {
            Some(t) if t.time() == chrono::NaiveTime::MIN => t.date().to_string(),
            Some(t) => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
            None => d.as_f64().to_string(),
        },
        Data::Error(e) => format!("#{e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_sniffed_and_checked() {
        assert_eq!(
            Format::detect(Some("a.csv"), None, b"a,b\n").unwrap(),
            Format::Csv
        );
        assert_eq!(
            Format::detect(None, None, b"PK\x03\x04..").unwrap(),
            Format::Xlsx
        );
        assert!(Format::detect(Some("a.xlsx"), None, b"a,b\n").is_err());
        assert!(Format::detect(Some("a.csv"), None, b"PK\x03\x04").is_err());
    }

    #[test]
    fn rows_are_numbered_by_their_line_with_lf_and_crlf() {
        for (name, text) in [
            ("lf", "a,b\n1,2\n\"x\ny\",3\n4,5\n"),
            ("crlf", "a,b\r\n1,2\r\n\"x\r\ny\",3\r\n4,5\r\n"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("rows.csv");
            std::fs::write(&path, text).unwrap();
            let opened = open(&path, Format::Csv, Limits::default()).unwrap();
            let lines: Vec<u64> = opened.rows.map(|r| r.unwrap().line).collect();
            // The quoted cell spans lines 3 and 4.
            assert_eq!(lines, [2, 3, 5], "{name}");
        }
    }

    #[test]
    fn delimiters() {
        assert_eq!(sniff_delimiter("a;b;c\n"), b';');
        assert_eq!(sniff_delimiter("a,b;c,d\n"), b',');
        assert_eq!(sniff_delimiter("a\tb\n"), b'\t');
        assert_eq!(sniff_delimiter("\"a;b\",c\n"), b',');
    }
}
