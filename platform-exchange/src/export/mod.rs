//! Export: CSV and XLSX of a resource's rows, streamed.
//!
//! Every entry point goes through one pipeline ([`Export`]): the API's
//! `GET /api/<plural>/export`, the `export <resource>` command and the
//! panel's export of a list (and of its selected rows). It reads the
//! records in keyset batches with the list's search, filters and sort,
//! shows each field as the actor may see it (core's
//! [`Visibility`](platform_core::visibility::Visibility): `pii` masked
//! without `view_pii`, `encrypted` left out without `view_encrypted`),
//! neutralises cells a spreadsheet would run as formulas, and writes CSV
//! (a streamed body) or XLSX (constant memory, to a temporary file that
//! is then streamed). Memory does not grow with the row count.
//!
//! An export of more rows than [`ExportConfig::threshold`] runs as a job
//! when the platform has the jobs capability and storage disks: the file
//! is written to a disk and the user gets a notification with a signed
//! link that expires.

use std::time::Duration;

use platform_admin::capability::{ApiRoutes, SetupExt};
use platform_core::capability::Setup;
use platform_core::permission::Ability;

pub mod columns;
mod command;
mod http;
mod job;
mod panel;
mod pipeline;
pub(crate) mod xlsx;

pub use columns::{Cell, Column, neutralise};
pub use http::{ExportAnswer, export_response};
pub use job::{ExportJob, ExportReady};
pub use pipeline::{Export, parse_params};
pub use xlsx::ROWS_PER_SHEET;

/// Rows read per batch unless configured.
pub const DEFAULT_BATCH: u32 = 2_000;

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values, UTF-8, CRLF line ends, a headings row.
    Csv,
    /// An Excel workbook (Office Open XML), typed cells.
    Xlsx,
}

impl Format {
    /// `csv` or `xlsx` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("csv") {
            Some(Self::Csv)
        } else if s.eq_ignore_ascii_case("xlsx") {
            Some(Self::Xlsx)
        } else {
            None
        }
    }
    /// The file extension (`csv`).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
        }
    }
    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// How exports run (set through [`Exchange`](crate::Exchange)'s builder methods).
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// Exports of more rows than this run as a job (when the platform has
    /// jobs and storage); smaller ones are answered directly. Default
    /// 10,000.
    pub threshold: u64,
    /// Rows read per batch. Default [`DEFAULT_BATCH`].
    pub batch: u32,
    /// The storage disk a queued export is written to (default: the
    /// default disk).
    pub disk: Option<String>,
    /// How long the download link of a queued export works. Default 24 h.
    pub link_ttl: Duration,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            threshold: 10_000,
            batch: DEFAULT_BATCH,
            disk: None,
            link_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

pub(crate) fn setup(config: &ExportConfig, setup: &mut Setup) {
    let cfg = config.clone();
    setup.service(move |_platform| {
        let cfg = cfg.clone();
        async move { Ok(cfg) }
    });
    // Declared for every exportable resource: the permission matrix
    // expects `view_any_<resource>` (the export reads the list) and
    // `export_<resource>`.
    setup.api(ApiRoutes::new(http::router()).each_resource(
        axum::http::Method::GET,
        "/{resource}/export",
        &[Ability::ViewAny, Ability::Export],
        |meta| meta.exportable(),
    ));
    setup.api_doc(http::api_doc());
    setup.command(command::command());
    setup.contribute(panel::PANEL_EXPORT);
}
