//! XLSX in rust_xlsxwriter's constant-memory mode: each row goes to a
//! temporary file as it is written, and the workbook is zipped into the
//! output at the end, so memory does not grow with the row count. The
//! writer runs on a blocking thread, which reads the batches itself.

use std::path::Path;

use chrono::{Datelike, Timelike};
use platform_core::error::Result;
use rust_xlsxwriter::{ColNum, ExcelDateTime, Format, RowNum, Workbook, XlsxError};

use super::columns::Cell;
use super::pipeline::{Export, backend};

/// Data rows per worksheet: Excel's 1,048,576 rows, less the headings.
/// A longer export continues on another worksheet.
pub const ROWS_PER_SHEET: u32 = 1_048_575;

fn xlsx_error(e: XlsxError) -> platform_core::Error {
    backend("xlsx", e.to_string())
}

/// Writes `export` to `out`; returns the rows written.
pub(crate) async fn write(mut export: Export, out: &Path) -> Result<u64> {
    let out = out.to_owned();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || -> Result<u64> {
        let mut wb = Workbook::new();
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            wb.set_tempdir(dir).map_err(xlsx_error)?;
        }
        let date = Format::new().set_num_format("yyyy-mm-dd");
        let time = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
        let bold = Format::new().set_bold();
        let headings = export.headings();
        let mut sheet = 0usize;
        let mut row: u32 = 0;
        new_sheet(&mut wb, &headings, &bold)?;
        while let Some(page) = handle.block_on(export.next_page())? {
            for record in &page.items {
                if row == ROWS_PER_SHEET {
                    new_sheet(&mut wb, &headings, &bold)?;
                    sheet += 1;
                    row = 0;
                }
                row += 1;
                let ws = wb.worksheet_from_index(sheet).map_err(xlsx_error)?;
                for (col, cell) in export.cells(record).into_iter().enumerate() {
                    let col = ColNum::try_from(col).unwrap_or(ColNum::MAX);
                    write_cell(ws, row, col, cell, &date, &time).map_err(xlsx_error)?;
                }
            }
        }
        let file = std::fs::File::create(&out).map_err(super::pipeline::io_error)?;
        wb.save_to_writer(std::io::BufWriter::new(file))
            .map_err(xlsx_error)?;
        Ok(export.rows())
    })
    .await
    .map_err(|e| backend("xlsx", e.to_string()))?
}

/// Adds a constant-memory worksheet whose first row is `headings` in
/// `bold`.
pub(crate) fn new_sheet(wb: &mut Workbook, headings: &[&str], bold: &Format) -> Result<()> {
    let ws = wb
        .add_worksheet_with_constant_memory()
        .map_err(xlsx_error)?;
    for (col, h) in headings.iter().enumerate() {
        let col = ColNum::try_from(col).unwrap_or(ColNum::MAX);
        ws.write_string_with_format(0, col, *h, bold)
            .map_err(xlsx_error)?;
    }
    Ok(())
}

fn write_cell(
    ws: &mut rust_xlsxwriter::Worksheet,
    row: RowNum,
    col: ColNum,
    cell: Cell,
    date: &Format,
    time: &Format,
) -> std::result::Result<(), XlsxError> {
    match cell {
        Cell::Empty => {}
        Cell::Text(s) => {
            ws.write_string(row, col, s)?;
        }
        #[allow(clippy::cast_precision_loss)]
        Cell::Int(n) => {
            ws.write_number(row, col, n as f64)?;
        }
        Cell::Float(n) => {
            ws.write_number(row, col, n)?;
        }
        Cell::Bool(b) => {
            ws.write_boolean(row, col, b)?;
        }
        Cell::Date(d) => match excel_date(d) {
            Some(dt) => {
                ws.write_datetime_with_format(row, col, &dt, date)?;
            }
            None => {
                ws.write_string(row, col, d.format("%Y-%m-%d").to_string())?;
            }
        },
        Cell::DateTime(t) => {
            let dt = excel_date(t.date_naive()).and_then(|d| {
                d.and_hms(
                    u16::try_from(t.hour()).ok()?,
                    u8::try_from(t.minute()).ok()?,
                    f64::from(t.second()),
                )
                .ok()
            });
            match dt {
                Some(dt) => {
                    ws.write_datetime_with_format(row, col, &dt, time)?;
                }
                None => {
                    ws.write_string(
                        row,
                        col,
                        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// The date as Excel holds it (years 1900 to 9999), else `None` (written
/// as text).
fn excel_date(d: chrono::NaiveDate) -> Option<ExcelDateTime> {
    let year = u16::try_from(d.year()).ok()?;
    ExcelDateTime::from_ymd(
        year,
        u8::try_from(d.month()).ok()?,
        u8::try_from(d.day()).ok()?,
    )
    .ok()
}
