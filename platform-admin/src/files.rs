//! The route that serves signed, expiring file URLs
//! ([`Disks::temporary_url`]), mounted by [`app_router`](crate::app_router)
//! at the prefix [`FileStorage`](platform_core::storage::FileStorage)
//! contributes (`/files`): `GET /files/{disk}/{path}?expires=..&signature=..`.
//!
//! The signature (HMAC-SHA256 with a key derived from the application key)
//! covers the disk, the path, the expiry and the download name, and is
//! compared in constant time before anything is read. An altered or
//! expired link gets 403, a missing file 404, an unreachable disk 503; none
//! carries any file content. A good one streams the file with its
//! `Content-Type`, `Content-Length`, `Content-Disposition`,
//! `X-Content-Type-Options: nosniff` and a sandboxing
//! `Content-Security-Policy` (an uploaded HTML or SVG file cannot run
//! scripts on the site's origin).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform_core::Platform;
use platform_core::storage::{Disks, Refusal, StorageError, content_type_for};

/// The query of a signed URL.
#[derive(Debug, serde::Deserialize)]
struct Signed {
    expires: Option<String>,
    signature: Option<String>,
    download: Option<String>,
}

/// The signed-file route, to nest at the prefix
/// [`SignedFileRoute`](platform_core::storage::SignedFileRoute) names.
/// Answers 404 when the platform has no [`Disks`].
pub fn router() -> axum::Router<Platform> {
    axum::Router::new().route("/{disk}/{*path}", axum::routing::get(serve))
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    let mut res = (status, message).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

async fn serve(
    State(platform): State<Platform>,
    Path((disk, path)): Path<(String, String)>,
    Query(q): Query<Signed>,
) -> Response {
    let Some(disks) = platform.get::<Disks>() else {
        return refuse(StatusCode::NOT_FOUND, "not found");
    };
    let (Some(expires), Some(signature)) = (q.expires.as_deref(), q.signature.as_deref()) else {
        return refuse(StatusCode::FORBIDDEN, "this link is not signed");
    };
    let file = match disks.verify(
        &disk,
        &path,
        expires,
        q.download.as_deref(),
        signature,
        platform_core::chrono::Utc::now(),
    ) {
        Ok(file) => file,
        Err(Refusal::Expired) => return refuse(StatusCode::FORBIDDEN, "this link has expired"),
        Err(Refusal::NotFound) => return refuse(StatusCode::NOT_FOUND, "not found"),
        Err(_) => return refuse(StatusCode::FORBIDDEN, "this link is not valid"),
    };
    let object = match file.disk.get(&file.path).await {
        Ok(o) => o,
        Err(StorageError::NotFound { .. }) => return refuse(StatusCode::NOT_FOUND, "not found"),
        Err(e @ StorageError::Unavailable { .. }) => {
            tracing::warn!(disk, error = %e, "signed file: the disk is unavailable");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the file store is unavailable",
            );
        }
        Err(e) => {
            tracing::error!(disk, error = %e, "signed file: reading failed");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "the file cannot be read");
        }
    };
    let content_type = content_type_for(&file.path, object.meta.content_type.as_deref());
    let mut res = Response::new(Body::from_stream(object.body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(object.meta.size));
    if let Ok(v) = HeaderValue::from_str(&file.disposition.header_value()) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    res
}
