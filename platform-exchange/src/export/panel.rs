//! The panel's export: its bulk action "Export" (of the ticked rows or of
//! every row matching the list) goes through the same pipeline as the API.

use platform_admin::panel::export::{PanelExport, PanelExportFuture, PanelExportOutcome};
use platform_core::Platform;
use platform_core::query::{Direction, FilterOp, ListQuery, Trashed};
use platform_core::repo::Records;
use platform_core::visibility::Visibility;

use super::Format;
use super::columns;
use super::http::{ExportAnswer, export_response};

/// The contribution.
pub(super) const PANEL_EXPORT: PanelExport = PanelExport {
    run,
    formats: &[("csv", "CSV"), ("xlsx", "Excel (XLSX)")],
};

fn run<'a>(
    platform: &'a Platform,
    records: Records,
    query: ListQuery,
    format: &'a str,
    columns: Option<Vec<String>>,
) -> PanelExportFuture<'a> {
    Box::pin(async move {
        let format = Format::parse(format).unwrap_or(Format::Csv);
        // The list's visible columns, less those this user may not export
        // (a column shown as withheld, say): the panel never fails on them.
        let allowed = columns::select(records.meta(), Visibility::of(records.context()), None)
            .unwrap_or_default();
        let columns = columns
            .map(|cols| {
                cols.into_iter()
                    .filter(|c| allowed.iter().any(|a| a.field.name() == c))
                    .collect::<Vec<_>>()
            })
            .filter(|c| !c.is_empty());
        match export_response(platform, &records, query, format, columns).await? {
            ExportAnswer::File(res) => Ok(PanelExportOutcome::File(res)),
            ExportAnswer::Queued { rows, .. } => Ok(PanelExportOutcome::Queued(format!(
                "The export of about {rows} rows runs in the background; a notification will bring its download link."
            ))),
        }
    })
}

/// `query` as the API's list parameters, for a job to read it again;
/// `None` for a filter this version cannot write out.
pub(crate) fn query_params(query: &ListQuery) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Some(s) = &query.search {
        out.push(("search".to_owned(), s.clone()));
    }
    if let Some((field, dir)) = &query.sort {
        let sign = if *dir == Direction::Desc { "-" } else { "" };
        out.push(("sort".to_owned(), format!("{sign}{field}")));
    }
    for (field, op) in &query.filters {
        let (op, value) = match op {
            FilterOp::Eq(v) => ("eq", v.clone()),
            FilterOp::In(vs) => ("in", vs.join(",")),
            FilterOp::Gt(v) => ("gt", v.clone()),
            FilterOp::Gte(v) => ("gte", v.clone()),
            FilterOp::Lt(v) => ("lt", v.clone()),
            FilterOp::Lte(v) => ("lte", v.clone()),
            FilterOp::Null(b) => ("null", b.to_string()),
            _ => return None,
        };
        out.push((format!("filter[{field}][{op}]"), value));
    }
    match query.trashed {
        Trashed::Without => {}
        Trashed::With => out.push(("trashed".to_owned(), "with".to_owned())),
        Trashed::Only => out.push(("trashed".to_owned(), "only".to_owned())),
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_survives_its_parameters() {
        let q = ListQuery::new()
            .search("ada")
            .sort("number", Direction::Desc)
            .filter_eq("status", "paid")
            .filter("id", FilterOp::In(vec!["1".into(), "2".into()]))
            .filter("total", FilterOp::Gte("10".into()))
            .filter("note", FilterOp::Null(true))
            .trashed(Trashed::With);
        let params = query_params(&q).unwrap();
        let back = super::super::parse_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .unwrap()
            .0;
        assert_eq!(back.search, q.search);
        assert_eq!(back.sort, q.sort);
        assert_eq!(back.filters, q.filters);
        assert_eq!(back.trashed, q.trashed);
    }
}
