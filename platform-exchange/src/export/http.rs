//! `GET /api/<plural>/export` and the response every web entry point
//! answers with: a streamed CSV, a streamed XLSX file, or "queued" when the
//! export is large enough to run as a job.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use platform_admin::api::ApiContext;
use platform_core::Platform;
use platform_core::capability::ApiDoc;
use platform_core::error::Result;
use platform_core::query::ListQuery;
use platform_core::repo::Records;
use serde_json::json;

use super::{Export, ExportConfig, ExportJob, Format, parse_params};

pub(super) fn router() -> Router<Platform> {
    Router::new().route("/{resource}/export", get(api_export))
}

/// `GET /api/{resource}/export?format=csv|xlsx&columns=a,b&<list params>`.
async fn api_export(
    api: ApiContext,
    Path(resource): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> std::result::Result<Response, platform_admin::Error> {
    let records = api.records(&resource)?;
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if pairs
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(
            platform_core::Error::invalid("query", "invalid", "must not contain NUL").into(),
        );
    }
    // The permission first, so that a caller without it learns nothing
    // from validation messages.
    Export::check(&records)?;
    let (query, format, columns) =
        parse_params(pairs.iter().copied()).map_err(platform_core::Error::Validation)?;
    let answer = export_response(api.platform(), &records, query, format, columns).await?;
    Ok(answer.into_response())
}

/// What an export request is answered with.
#[derive(Debug)]
pub enum ExportAnswer {
    /// The file, streamed.
    File(Response),
    /// Queued as a job (more rows than the threshold): its id and the
    /// estimated row count.
    Queued {
        /// The job's id.
        job_id: String,
        /// The rows counted (estimated above the count threshold).
        rows: u64,
    },
}

impl IntoResponse for ExportAnswer {
    fn into_response(self) -> Response {
        match self {
            Self::File(r) => r,
            Self::Queued { job_id, rows } => (
                StatusCode::ACCEPTED,
                axum::Json(serde_json::json!({
                    "data": {
                        "status": "queued",
                        "job_id": job_id,
                        "rows": rows,
                        "message": "The export runs in the background; you will be notified with a download link.",
                    }
                })),
            )
                .into_response(),
        }
    }
}

/// Exports `query` of `records` in `format`: queued as an
/// [`ExportJob`] when it counts more rows than the threshold and the
/// platform has jobs and disks, else streamed.
pub async fn export_response(
    platform: &Platform,
    records: &Records,
    query: ListQuery,
    format: Format,
    columns: Option<Vec<String>>,
) -> Result<ExportAnswer> {
    let config = platform
        .get::<ExportConfig>()
        .map(|c| (*c).clone())
        .unwrap_or_default();
    let export =
        Export::new(records.clone(), query.clone(), columns.as_deref())?.batch_size(config.batch);
    if let Some(queued) = ExportJob::maybe_queue(
        platform,
        records,
        &query,
        format,
        columns.as_deref(),
        &config,
    )
    .await?
    {
        return Ok(queued);
    }
    let meta = records.meta();
    let filename = format!(
        "{}-{}.{}",
        meta.plural(),
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        format.extension()
    );
    let body = match format {
        Format::Csv => Body::from_stream(export.csv_stream().await?),
        Format::Xlsx => {
            let temp = tempfile::Builder::new()
                .prefix("platform-export-")
                .suffix(".xlsx")
                .tempfile()
                .map_err(super::pipeline::io_error)?
                .into_temp_path();
            export.write_file(Format::Xlsx, &temp).await?;
            let file = tokio::fs::File::open(&temp)
                .await
                .map_err(super::pipeline::io_error)?;
            // The temporary file is removed when the stream (holding its
            // path) is dropped: after the last byte, or when the client
            // goes away.
            let stream = platform_core::storage::reader_stream(file).map(move |chunk| {
                let _keep = &temp;
                chunk.map_err(std::io::Error::other)
            });
            Body::from_stream(stream)
        }
    };
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::try_from(format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(ExportAnswer::File(res))
}

/// The list parameters that do not apply to exports (refused with `422`).
const NOT_FOR_EXPORTS: [&str; 5] = [
    "page[size]",
    "page[after]",
    "page[number]",
    "count",
    "include",
];

/// The OpenAPI description of `GET /{plural}/export`, for every exportable
/// resource.
pub(super) fn api_doc() -> ApiDoc {
    ApiDoc::new()
        .schema(
            "ExportQueued",
            json!({
                "type": "object",
                "required": ["data"],
                "properties": { "data": {
                    "type": "object",
                    "required": ["status", "job_id", "rows", "message"],
                    "properties": {
                        "status": { "type": "string", "enum": ["queued"] },
                        "job_id": { "type": "string", "description": "The export job's id." },
                        "rows": { "type": "integer", "format": "int64", "minimum": 0, "description": "The rows counted (estimated above the count threshold)." },
                        "message": { "type": "string" },
                    },
                } },
            }),
        )
        .each_resource(|r| {
            let meta = r.meta;
            if !meta.exportable() {
                return Vec::new();
            }
            let (single, plural) = (meta.name(), meta.plural());
            let columns: Vec<&str> = meta
                .field_list()
                .iter()
                .filter(|f| f.exportable())
                .map(|f| f.name())
                .collect();
            let mut parameters = vec![
                json!({
                    "name": "format",
                    "in": "query",
                    "required": false,
                    "description": "The file format.",
                    "schema": { "type": "string", "enum": ["csv", "xlsx"], "default": "csv" },
                }),
                json!({
                    "name": "columns",
                    "in": "query",
                    "required": false,
                    "description": format!(
                        "The columns, in order (comma-separated, at most 200); default: every exportable field ({}).",
                        columns.join(", ")
                    ),
                    "style": "form",
                    "explode": false,
                    "schema": {
                        "type": "array",
                        "items": { "type": "string", "enum": columns },
                        "minItems": 1,
                        "maxItems": 200,
                    },
                }),
            ];
            parameters.extend(
                r.list_parameters
                    .iter()
                    .filter(|p| {
                        p["name"]
                            .as_str()
                            .is_none_or(|n| !NOT_FOR_EXPORTS.contains(&n))
                    })
                    .cloned(),
            );
            let file = json!({ "type": "string", "format": "binary" });
            let mut streamed = ApiDoc::empty_response(&format!(
                "The {} matching the list's parameters, streamed as a file (`Content-Disposition: attachment`).",
                meta.plural_label()
            ));
            streamed["headers"]["Content-Disposition"] = json!({
                "description": "`attachment; filename=\"<plural>-<UTC time>.<csv|xlsx>\"`.",
                "required": true,
                "schema": { "type": "string" },
            });
            streamed["content"] = json!({
                "text/csv": { "schema": file },
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": { "schema": file },
            });
            vec![(
                format!("/{plural}/export"),
                json!({ "get": {
                    "operationId": format!("export_{plural}"),
                    "summary": format!("Export {}", meta.plural_label()),
                    "description": format!(
                        "CSV (UTF-8, a headings row) or XLSX of the records the list would show, every page. Above the export threshold (10,000 rows by default) and with jobs and a disk, the export runs as a job instead and the answer is `202` (a notification with a download link follows). Needs `view_any_{single}` and `export_{single}`."
                    ),
                    "tags": [plural],
                    "parameters": parameters,
                    "responses": ApiDoc::responses(
                        [
                            ("200", streamed),
                            ("202", ApiDoc::json_response("Queued as a job.", ApiDoc::schema_ref("ExportQueued"))),
                        ],
                        [400, 401, 403, 404, 422],
                    ),
                } }),
            )]
        })
}
