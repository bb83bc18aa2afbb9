//! The import API: `POST /api/<plural>/import` (multipart with a `file`
//! part, or the file as the raw body with its content type), the batches
//! (`GET /api/imports`, `GET /api/imports/{id}`), the failed-rows file
//! (`GET /api/imports/{id}/failed`) and the rollback
//! (`POST /api/imports/{id}/rollback?force=1`).

use std::path::{Path as FsPath, PathBuf};

use axum::Json;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use platform_admin::api::ApiContext;
use platform_admin::capability::ApiRoutes;
use platform_admin::error::Error;
use platform_core::Platform;
use platform_core::capability::ApiDoc;
use platform_core::permission::Ability;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::mapping::parse_overrides;
use super::{ImportError, ImportRequest, Imports};

pub(crate) fn routes() -> ApiRoutes {
    ApiRoutes::new(
        axum::Router::new()
            .route(
                "/{resource}/import",
                post(import).layer(DefaultBodyLimit::disable()),
            )
            .route(
                "/{resource}/import/preview",
                post(preview).layer(DefaultBodyLimit::disable()),
            )
            .route("/imports", get(index))
            .route("/imports/{id}", get(show))
            .route("/imports/{id}/failed", get(failed))
            .route("/imports/{id}/rollback", post(rollback)),
    )
    .each_resource(
        Method::POST,
        "/{resource}/import",
        &[Ability::Import],
        |meta| meta.importable(),
    )
    .each_resource(
        Method::POST,
        "/{resource}/import/preview",
        &[Ability::Import],
        |meta| meta.importable(),
    )
    .get("/imports")
    .get("/imports/{id}")
    .get("/imports/{id}/failed")
    .post("/imports/{id}/rollback")
}

/// Refuses an anonymous caller (`401`): batches are only ever shown to
/// someone who may import their resource.
fn signed_in(api: &ApiContext) -> Result<(), Error> {
    if matches!(
        api.context().actor(),
        platform_core::context::Actor::Anonymous
    ) {
        return Err(Error::Core(platform_core::Error::Unauthenticated));
    }
    Ok(())
}

fn service(platform: &Platform) -> Result<std::sync::Arc<Imports>, Error> {
    platform.get::<Imports>().ok_or_else(|| {
        Error::Core(platform_core::Error::Configuration(
            "the exchange capability is not added".to_owned(),
        ))
    })
}

/// Removes a temporary file when dropped.
struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The yes/no parameter `name` (`1`, `true`, `yes`, `on` or empty; `0`,
/// `false`, `no`, `off`); absent is no, anything else is refused.
fn flag(params: &[(String, String)], name: &str) -> Result<bool, Error> {
    let mut out = false;
    for (_, v) in params.iter().filter(|(k, _)| k == name) {
        out = match v.as_str() {
            "1" | "true" | "yes" | "on" | "" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                return Err(Error::Core(platform_core::Error::invalid(
                    name,
                    "invalid",
                    "must be `true` or `false`",
                )));
            }
        };
    }
    Ok(out)
}

/// An upload read into a temporary file, with its import request.
struct Upload {
    file: TempFile,
    request: ImportRequest,
}

async fn upload(
    api: &ApiContext,
    resource: String,
    params: Vec<(String, String)>,
    request: Request,
) -> Result<Upload, Error> {
    let platform = api.platform().clone();
    let imports = service(&platform)?;
    // Check the permission before reading a byte of the body.
    super::run::records_for(&platform, api.context(), &resource)?;
    if let Some((k, _)) = params
        .iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(Error::Core(platform_core::Error::invalid(
            k.replace('\0', ""),
            "invalid",
            "must not contain NUL",
        )));
    }
    let limit = imports.config().limits.max_bytes;
    let tmp = TempFile(imports.temp_path("upload")?);
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut params = params;
    let mut file_name = None;
    let mut sent_type = content_type.clone();
    if content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("multipart/form-data"))
    {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|e| invalid(ImportError::Format(e.body_text())))?;
        let mut got = false;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| invalid(ImportError::Format(e.body_text())))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" {
                file_name = field.file_name().map(safe_name);
                sent_type = field.content_type().map(str::to_owned);
                let stream = field.map(|c| c.map_err(|e| std::io::Error::other(e.body_text())));
                write_limited(stream, &tmp.0, limit).await?;
                got = true;
            } else {
                let value = field
                    .text()
                    .await
                    .map_err(|e| invalid(ImportError::Format(e.body_text())))?;
                params.push((name, value));
            }
        }
        if !got {
            return Err(invalid(ImportError::Format(
                "the form has no `file` part".to_owned(),
            )));
        }
    } else {
        let stream = request
            .into_body()
            .into_data_stream()
            .map(|c| c.map_err(std::io::Error::other));
        write_limited(stream, &tmp.0, limit).await?;
    }
    if let Some((_, n)) = params.iter().find(|(k, _)| k == "file_name") {
        file_name = Some(safe_name(n));
    }
    let mapping = parse_overrides(
        params
            .iter()
            .filter(|(k, _)| k == "map")
            .map(|(_, v)| v.as_str()),
    )
    .map_err(invalid)?;
    Ok(Upload {
        file: tmp,
        request: ImportRequest {
            resource,
            file_name,
            content_type: sent_type,
            mapping,
            dry_run: flag(&params, "dry_run")?,
            key: params
                .iter()
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.clone()),
        },
    })
}

async fn import(
    api: ApiContext,
    Path(resource): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    request: Request,
) -> Result<Response, Error> {
    let up = upload(&api, resource, params, request).await?;
    let platform = api.platform().clone();
    let submitted = service(&platform)?
        .submit(&platform, api.context(), &up.request, &up.file.0)
        .await?;
    let status = if submitted.queued {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(serde_json::json!({ "data": submitted }))).into_response())
}

/// `POST /{resource}/import/preview`: the mapping and the first rows as
/// they would be read (`rows`, default 10, at most 100); writes nothing.
async fn preview(
    api: ApiContext,
    Path(resource): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    request: Request,
) -> Result<Response, Error> {
    // The permission is checked (in `upload`) before the parameters.
    let check = params.clone();
    let up = upload(&api, resource, params, request).await?;
    let rows = match check.iter().find(|(k, _)| k == "rows") {
        None => 10,
        Some((_, v)) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= 100)
            .ok_or_else(|| {
                Error::Core(platform_core::Error::invalid(
                    "rows",
                    "invalid",
                    "must be an integer from 0 to 100",
                ))
            })?,
    };
    let platform = api.platform().clone();
    let p = service(&platform)?
        .preview(&platform, api.context(), &up.request, &up.file.0, rows)
        .await?;
    Ok(Json(serde_json::json!({ "data": p })).into_response())
}

/// The last path segment of an uploaded name, without control characters
/// (a name is only shown and used for its extension, never as a path).
fn safe_name(n: &str) -> String {
    n.rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

fn invalid(e: ImportError) -> Error {
    Error::Core(e.into())
}

/// Streams `body` into `path`, refusing it past `limit` bytes.
async fn write_limited<S, B>(mut body: S, path: &FsPath, limit: u64) -> Result<(), Error>
where
    S: futures::Stream<Item = Result<B, std::io::Error>> + Unpin,
    B: AsRef<[u8]>,
{
    let io = |e: std::io::Error| invalid(ImportError::io(e));
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(io)?;
        written += chunk.as_ref().len() as u64;
        if written > limit {
            return Err(Error::PayloadTooLarge {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            });
        }
        file.write_all(chunk.as_ref()).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    if written == 0 {
        return Err(invalid(ImportError::Empty));
    }
    Ok(())
}

async fn index(api: ApiContext) -> Result<Response, Error> {
    signed_in(&api)?;
    let platform = api.platform().clone();
    let batches = service(&platform)?
        .batches(&platform, api.context(), 50)
        .await?;
    Ok(Json(serde_json::json!({ "data": batches })).into_response())
}

fn parse_id(id: &str) -> Result<i64, Error> {
    id.parse().map_err(|_| {
        Error::Core(platform_core::Error::NotFound {
            resource: "import",
            id: id.chars().take(64).collect(),
        })
    })
}

async fn show(api: ApiContext, Path(id): Path<String>) -> Result<Response, Error> {
    signed_in(&api)?;
    let platform = api.platform().clone();
    let b = service(&platform)?
        .batch(&platform, api.context(), parse_id(&id)?)
        .await?;
    Ok(Json(serde_json::json!({ "data": b })).into_response())
}

async fn failed(api: ApiContext, Path(id): Path<String>) -> Result<Response, Error> {
    signed_in(&api)?;
    let platform = api.platform().clone();
    let id = parse_id(&id)?;
    let Some((bytes, format)) = service(&platform)?
        .failed_rows(&platform, api.context(), id)
        .await?
    else {
        return Err(Error::Core(platform_core::Error::NotFound {
            resource: "failed rows",
            id: id.to_string(),
        }));
    };
    Ok(super::failed_download(id, bytes, format))
}

async fn rollback(
    api: ApiContext,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, Error> {
    signed_in(&api)?;
    let platform = api.platform().clone();
    let force = flag(&params, "force")?;
    let report = service(&platform)?
        .rollback(&platform, api.context(), parse_id(&id)?, force)
        .await?;
    Ok(Json(serde_json::json!({ "data": {
        "deleted": report.deleted,
        "reverted": report.reverted,
        "missing": report.missing,
        "overwritten": report.overwritten,
    }}))
    .into_response())
}

/// The OpenAPI description of the import routes: upload and preview for
/// every importable resource, and the batches.
pub(crate) fn api_doc() -> ApiDoc {
    let counts = json!({
        "type": "object",
        "required": ["processed", "created", "updated", "unchanged", "failed"],
        "properties": {
            "processed": { "type": "integer", "format": "int64", "minimum": 0, "description": "Rows read so far." },
            "created": { "type": "integer", "format": "int64", "minimum": 0 },
            "updated": { "type": "integer", "format": "int64", "minimum": 0 },
            "unchanged": { "type": "integer", "format": "int64", "minimum": 0, "description": "Rows whose record already held their values." },
            "failed": { "type": "integer", "format": "int64", "minimum": 0, "description": "Rows not written." },
        },
    });
    let status = json!({
        "type": "string",
        "enum": ["queued", "running", "done", "failed", "dry_run", "rolled_back"],
    });
    let nullable_string = json!({ "type": "string", "nullable": true });
    let nullable_ms = json!({ "type": "integer", "format": "int64", "nullable": true, "description": "Milliseconds since the epoch." });
    let id_param = json!([{
        "name": "id",
        "in": "path",
        "required": true,
        "description": "The batch's id.",
        "schema": { "type": "integer", "format": "int64", "minimum": 1 },
    }]);
    let data = |schema: Value| json!({ "type": "object", "required": ["data"], "properties": { "data": schema } });
    ApiDoc::new()
        .tag("imports", "Import batches: what each upload wrote, its failed rows, its rollback")
        .schema("ImportCounts", counts)
        .schema(
            "ImportBatch",
            json!({
                "type": "object",
                "required": ["id", "resource", "actor_type", "actor_id", "actor_label", "status", "dry_run", "import_key", "file_name", "file_path", "format", "mapping", "total_rows", "counts", "error", "failed_path", "created_at", "started_at", "finished_at", "rolled_back_at", "rollback_report"],
                "properties": {
                    "id": { "type": "integer", "format": "int64" },
                    "resource": { "type": "string", "description": "The resource's singular name." },
                    "actor_type": { "type": "string", "description": "`user`, `token`, `job`, `console`..." },
                    "actor_id": { "type": "integer", "format": "int64", "nullable": true },
                    "actor_label": nullable_string,
                    "status": status,
                    "dry_run": { "type": "boolean" },
                    "import_key": nullable_string,
                    "file_name": nullable_string,
                    "file_path": nullable_string,
                    "format": { "type": "string", "enum": ["csv", "xlsx"] },
                    "mapping": { "nullable": true, "description": "The column mapping: `[{heading, field}]`." },
                    "total_rows": { "type": "integer", "format": "int64", "minimum": 0, "nullable": true },
                    "counts": ApiDoc::schema_ref("ImportCounts"),
                    "error": nullable_string,
                    "failed_path": nullable_string,
                    "created_at": { "type": "integer", "format": "int64", "description": "Milliseconds since the epoch." },
                    "started_at": nullable_ms,
                    "finished_at": nullable_ms,
                    "rolled_back_at": nullable_ms,
                    "rollback_report": { "nullable": true, "description": "What the rollback did (`ImportRollback`'s `data`)." },
                },
            }),
        )
        .schema(
            "ImportSubmitted",
            data(json!({
                "type": "object",
                "required": ["batch_id", "queued", "report"],
                "properties": {
                    "batch_id": { "type": "integer", "format": "int64", "description": "The batch (`GET /imports/{id}`)." },
                    "queued": { "type": "boolean", "description": "Whether it runs as a job (`202`); else it has run (`200`)." },
                    "report": {
                        "type": "object",
                        "nullable": true,
                        "description": "The run's report, when it has run.",
                        "required": ["batch_id", "status", "counts", "failures", "ignored_columns", "missing_required", "mapping", "error"],
                        "properties": {
                            "batch_id": { "type": "integer", "format": "int64" },
                            "status": status,
                            "counts": ApiDoc::schema_ref("ImportCounts"),
                            "failures": {
                                "type": "array",
                                "description": "The first failures (all of them are in `GET /imports/{id}/failed`).",
                                "items": {
                                    "type": "object",
                                    "required": ["row", "column", "field", "code", "reason"],
                                    "properties": {
                                        "row": { "type": "integer", "format": "int64", "minimum": 0 },
                                        "column": { "type": "string" },
                                        "field": nullable_string,
                                        "code": { "type": "string", "description": "`required`, `type`, `unique`, `exists`, `ragged`..." },
                                        "reason": { "type": "string" },
                                    },
                                },
                            },
                            "ignored_columns": { "type": "array", "items": { "type": "string" } },
                            "missing_required": { "type": "array", "items": { "type": "string" } },
                            "mapping": { "description": "The mapping used: `[{heading, field}]`." },
                            "error": nullable_string,
                        },
                    },
                },
            })),
        )
        .schema(
            "ImportPreview",
            data(json!({
                "type": "object",
                "required": ["format", "mapping", "ignored_columns", "missing_required", "fields", "rows"],
                "properties": {
                    "format": { "type": "string", "enum": ["csv", "xlsx"] },
                    "mapping": { "description": "`[{heading, field}]`, one per column." },
                    "ignored_columns": { "type": "array", "items": { "type": "string" } },
                    "missing_required": { "type": "array", "items": { "type": "string" } },
                    "fields": { "type": "array", "items": { "type": "object" }, "description": "The importable fields (`{name, label}`)." },
                    "rows": { "type": "array", "items": { "type": "object" }, "description": "The first rows: `{row, cells: [{text, read}]}`." },
                },
            })),
        )
        .schema(
            "ImportBatchList",
            data(json!({ "type": "array", "items": ApiDoc::schema_ref("ImportBatch") })),
        )
        .schema("ImportBatchDocument", data(ApiDoc::schema_ref("ImportBatch")))
        .schema(
            "ImportRollback",
            data(json!({
                "type": "object",
                "required": ["deleted", "reverted", "missing", "overwritten"],
                "properties": {
                    "deleted": { "type": "integer", "format": "int64", "minimum": 0, "description": "Records the import created, now removed." },
                    "reverted": { "type": "integer", "format": "int64", "minimum": 0, "description": "Records it updated, back to their earlier values." },
                    "missing": { "type": "integer", "format": "int64", "minimum": 0, "description": "Records already gone, skipped." },
                    "overwritten": { "type": "integer", "format": "int64", "minimum": 0, "description": "Records changed since and put back anyway (`force`)." },
                },
            })),
        )
        .get(
            "/imports",
            json!({
                "operationId": "list_imports",
                "summary": "The newest import batches",
                "description": "The 50 newest batches of the resources the caller may import (`import_<resource>`).",
                "tags": ["imports"],
                "responses": ApiDoc::responses(
                    [("200", ApiDoc::json_response("Batches, newest first.", ApiDoc::schema_ref("ImportBatchList")))],
                    [401],
                ),
            }),
        )
        .path_parameters("/imports/{id}", id_param.clone())
        .get(
            "/imports/{id}",
            json!({
                "operationId": "show_import",
                "summary": "An import batch",
                "description": "Needs `import_<resource>` of its resource (else `404`).",
                "tags": ["imports"],
                "responses": ApiDoc::responses(
                    [("200", ApiDoc::json_response("The batch.", ApiDoc::schema_ref("ImportBatchDocument")))],
                    [401, 404],
                ),
            }),
        )
        .path_parameters("/imports/{id}/failed", id_param.clone())
        .get(
            "/imports/{id}/failed",
            json!({
                "operationId": "import_failed_rows",
                "summary": "The rows an import did not write",
                "description": "A CSV or XLSX file (the imported file's format): its columns plus `error`. `404` when no row failed. Needs `import_<resource>`.",
                "tags": ["imports"],
                "responses": ApiDoc::responses(
                    [("200", {
                        let mut r = ApiDoc::empty_response("The failed rows.");
                        r["content"] = json!({
                            "text/csv": { "schema": { "type": "string" } },
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": { "schema": { "type": "string", "format": "binary" } },
                        });
                        r
                    })],
                    [401, 404],
                ),
            }),
        )
        .path_parameters("/imports/{id}/rollback", id_param)
        .post(
            "/imports/{id}/rollback",
            json!({
                "operationId": "rollback_import",
                "summary": "Roll an import back",
                "description": "Records it created are removed, records it updated get their earlier values, in one transaction, audited with the tag `rollback:<id>`. `409` when a record changed since (unless `force`), the batch is a dry run, already rolled back or still running. Needs `import_<resource>`.",
                "tags": ["imports"],
                "parameters": [{
                    "name": "force",
                    "in": "query",
                    "required": false,
                    "description": "Put back records changed since the import (and roll back a batch left running).",
                    "schema": { "type": "boolean", "default": false },
                }],
                "responses": ApiDoc::responses(
                    [("200", ApiDoc::json_response("What the rollback did.", ApiDoc::schema_ref("ImportRollback")))],
                    [401, 404, 409, 422],
                ),
            }),
        )
        .each_resource(|r| {
            let meta = r.meta;
            if !meta.importable() {
                return Vec::new();
            }
            let (single, plural) = (meta.name(), meta.plural());
            let params = |with_rows: bool| {
                let q = |name: &str, description: &str, schema: Value| {
                    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
                };
                let mut p = vec![
                    q("map", "A manual mapping, `heading=field` (`heading=` ignores the column); repeat it for several.", json!({ "type": "string", "pattern": "^[^\\u0000]*$" })),
                    q("dry_run", "Check every row, write nothing.", json!({ "type": "boolean", "default": false })),
                    q("key", "The upsert key: a unique field (rows whose key exists update that record).", json!({ "type": "string", "pattern": "^[^\\u0000]*$" })),
                    q("file_name", "The file's name (its extension tells the format when the content type does not).", json!({ "type": "string", "pattern": "^[^\\u0000]*$" })),
                ];
                if with_rows {
                    p.push(q("rows", "How many rows to read.", json!({ "type": "integer", "minimum": 0, "maximum": 100, "default": 10 })));
                }
                p
            };
            let file = json!({ "type": "string", "format": "binary" });
            let body = json!({
                "required": true,
                "description": "The file: as the multipart part `file` (other parts are read as the query's parameters), or as the whole body with its content type. At most 256 MiB by default.",
                "content": {
                    "multipart/form-data": { "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": file,
                            "map": { "type": "string" },
                            "dry_run": { "type": "string" },
                            "key": { "type": "string" },
                            "file_name": { "type": "string" },
                        },
                    } },
                    "text/csv": { "schema": file },
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": { "schema": file },
                    "application/octet-stream": { "schema": file },
                },
            });
            let errors = [400, 401, 403, 404, 413, 415, 422];
            vec![
                (
                    format!("/{plural}/import"),
                    json!({ "post": {
                        "operationId": format!("import_{plural}"),
                        "summary": format!("Import {}", meta.plural_label()),
                        "description": format!("Reads a CSV or XLSX file and writes a record per row through the write path (validated, audited), or queues it as a job when it is large (`202`). Every upload is a batch (`GET /imports/{{id}}`). A file the platform cannot read is refused with `422` (`error.fields.file`). Needs `import_{single}`."),
                        "tags": [plural],
                        "parameters": params(false),
                        "requestBody": body,
                        "responses": ApiDoc::responses(
                            [
                                ("200", ApiDoc::json_response("The import ran.", ApiDoc::schema_ref("ImportSubmitted"))),
                                ("202", ApiDoc::json_response("The import runs as a job.", ApiDoc::schema_ref("ImportSubmitted"))),
                            ],
                            errors,
                        ),
                    } }),
                ),
                (
                    format!("/{plural}/import/preview"),
                    json!({ "post": {
                        "operationId": format!("preview_import_{plural}"),
                        "summary": format!("Preview an import of {}", meta.plural_label()),
                        "description": format!("The mapping and the first rows as an import would read them; writes nothing. Needs `import_{single}`."),
                        "tags": [plural],
                        "parameters": params(true),
                        "requestBody": body,
                        "responses": ApiDoc::responses(
                            [("200", ApiDoc::json_response("What an import would read.", ApiDoc::schema_ref("ImportPreview")))],
                            errors,
                        ),
                    } }),
                ),
            ]
        })
}
