//! What an import would read, without writing: the mapping and the first
//! rows as each field reads them.

use std::path::Path;

use platform_core::context::Context;
use platform_core::{Error, Platform};

use super::{Format, ImportError, ImportRequest, Imports, coerce, mapping, read, run, sniff};

/// What [`Imports::preview`] answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Preview {
    /// The file's format.
    pub format: Format,
    /// `[{heading, field}]`, one per column.
    pub mapping: serde_json::Value,
    /// Headings no field matched.
    pub ignored_columns: Vec<String>,
    /// Required fields no column feeds.
    pub missing_required: Vec<&'static str>,
    /// The importable fields (`{name, label}`), for a manual mapping.
    pub fields: Vec<serde_json::Value>,
    /// The first rows: `{row, cells: [{text, read: {value} | {error} | {label}}]}`.
    pub rows: Vec<serde_json::Value>,
}

impl Imports {
    /// What an import of `path` would read: the headings, the mapping
    /// (automatic, then `request.mapping`), the headings ignored, the
    /// required fields no column feeds, and the first `rows` rows as read
    /// for each field (value or reason). Writes nothing.
    pub async fn preview(
        &self,
        platform: &Platform,
        ctx: &Context,
        request: &ImportRequest,
        path: &Path,
        rows: usize,
    ) -> Result<Preview, Error> {
        let records = run::records_for(platform, ctx, &request.resource)?;
        let meta = records.meta();
        let format = sniff(path, request)?;
        let (path, limits, overrides, order) = (
            path.to_owned(),
            self.config.limits,
            request.mapping.clone(),
            self.config.date_order,
        );
        tokio::task::spawn_blocking(move || {
            let opened = read::open(&path, format, limits)?;
            let mapping = mapping::map_headings(meta, &opened.headings, &overrides)?;
            let mut sample = Vec::new();
            for raw in opened.rows.take(rows) {
                let raw = raw?;
                let cells = mapping
                    .fields
                    .iter()
                    .enumerate()
                    .map(|(c, f)| {
                        let text = raw.cells.get(c).cloned().unwrap_or_default();
                        let read = f.and_then(|f| meta.field(f)).map(|f| {
                            match coerce::coerce(f, &text, order) {
                                Ok(v) => serde_json::json!({ "value": v.to_json() }),
                                Err(e) if f.belongs_to_meta().is_some() => {
                                    let _ = e;
                                    serde_json::json!({ "label": text.trim() })
                                }
                                Err(e) => serde_json::json!({ "error": e }),
                            }
                        });
                        serde_json::json!({ "text": text, "read": read })
                    })
                    .collect::<Vec<_>>();
                sample.push(serde_json::json!({ "row": raw.line, "cells": cells }));
            }
            Ok::<Preview, ImportError>(Preview {
                format,
                ignored_columns: mapping.ignored(),
                missing_required: mapping.missing_required(meta),
                mapping: mapping.to_json(),
                fields: meta
                    .field_list()
                    .iter()
                    .filter(|f| mapping::importable(f))
                    .map(|f| serde_json::json!({ "name": f.name(), "label": f.label_text() }))
                    .collect(),
                rows: sample,
            })
        })
        .await
        .map_err(|e| Error::from(ImportError::Io(e.to_string())))?
        .map_err(Error::from)
    }
}
