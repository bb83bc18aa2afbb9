//! The import API: `POST /api/<plural>/import` (multipart with a `file`
//! part, or the file as the raw body with its content type), the batches
//! (`GET /api/imports`, `GET /api/imports/{id}`), the failed-rows file
//! (`GET /api/imports/{id}/failed`) and the rollback
//! (`POST /api/imports/{id}/rollback?force=1`).

use std::path::{Path as FsPath, PathBuf};

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use platform_admin::api::ApiContext;
use platform_admin::capability::ApiRoutes;
use platform_admin::error::Error;
use platform_core::Platform;
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
    .post("/{resource}/import")
    .post("/{resource}/import/preview")
    .get("/imports")
    .get("/imports/{id}")
    .get("/imports/{id}/failed")
    .post("/imports/{id}/rollback")
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

fn flag(params: &[(String, String)], name: &str) -> bool {
    params
        .iter()
        .any(|(k, v)| k == name && matches!(v.as_str(), "1" | "true" | "yes" | "on" | ""))
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
            dry_run: flag(&params, "dry_run"),
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
    let rows = params
        .iter()
        .find(|(k, _)| k == "rows")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(10)
        .min(100);
    let up = upload(&api, resource, params, request).await?;
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
    let platform = api.platform().clone();
    let b = service(&platform)?
        .batch(&platform, api.context(), parse_id(&id)?)
        .await?;
    Ok(Json(serde_json::json!({ "data": b })).into_response())
}

async fn failed(api: ApiContext, Path(id): Path<String>) -> Result<Response, Error> {
    let platform = api.platform().clone();
    let id = parse_id(&id)?;
    let Some(bytes) = service(&platform)?
        .failed_rows(&platform, api.context(), id)
        .await?
    else {
        return Err(Error::Core(platform_core::Error::NotFound {
            resource: "failed rows",
            id: id.to_string(),
        }));
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"import-{id}-failed.csv\""),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

async fn rollback(
    api: ApiContext,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, Error> {
    let platform = api.platform().clone();
    let report = service(&platform)?
        .rollback(
            &platform,
            api.context(),
            parse_id(&id)?,
            flag(&params, "force"),
        )
        .await?;
    Ok(Json(serde_json::json!({ "data": {
        "deleted": report.deleted,
        "reverted": report.reverted,
        "missing": report.missing,
        "overwritten": report.overwritten,
    }}))
    .into_response())
}
