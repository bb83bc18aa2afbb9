//! The seam through which an export capability (`platform-exchange`) takes
//! over the panel's export of a list: the bulk action "Export" (of the
//! ticked rows, or of every row matching the list's search, filters and
//! sort) hands its query, the chosen format and the list's visible columns
//! to the contributed [`PanelExport`]. Without one, the panel writes CSV
//! itself.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use axum::response::Response;
use platform_core::Platform;
use platform_core::query::ListQuery;
use platform_core::repo::Records;

/// What a [`PanelExport`] answers: the file, or a message when the export
/// was queued (shown as a flash message on the list).
#[derive(Debug)]
pub enum PanelExportOutcome {
    /// The file, as a response to send.
    File(Response),
    /// Queued; tell the user this.
    Queued(String),
}

/// A [`PanelExport`]'s future.
pub type PanelExportFuture<'a> =
    Pin<Box<dyn Future<Output = platform_core::Result<PanelExportOutcome>> + Send + 'a>>;

/// An export pipeline for the panel, contributed with
/// [`Setup::contribute`](platform_core::capability::Setup::contribute).
#[derive(Clone, Copy)]
pub struct PanelExport {
    /// Exports `query` of `records` (acted on by the signed-in user) in
    /// `format` (`csv`, `xlsx`) with these columns (`None`: all the user
    /// may export).
    pub run: for<'a> fn(
        &'a Platform,
        Records,
        ListQuery,
        &'a str,
        Option<Vec<String>>,
    ) -> PanelExportFuture<'a>,
    /// The formats offered, as (value, label).
    pub formats: &'static [(&'static str, &'static str)],
}

impl fmt::Debug for PanelExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanelExport")
            .field("formats", &self.formats)
            .finish_non_exhaustive()
    }
}
