//! The panel's stylesheet and script, served from the binary at
//! `/static/{file}`. Links carry a content hash (`?v=`), so a versioned URL
//! is cached for a year; an unversioned one for five minutes.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::PanelError;
use super::render::Shared;

const CSS: &str = include_str!("../../static/panel.css");
const JS: &str = include_str!("../../static/panel.js");

/// The content hashes of the assets.
#[derive(Debug, Clone)]
pub(crate) struct Assets {
    css: String,
    js: String,
}

/// FNV-1a, 64 bits, as 16 hex digits: enough to tell versions apart.
fn hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Assets {
    pub(crate) fn new() -> Self {
        Self {
            css: hash(CSS),
            js: hash(JS),
        }
    }
    /// The versioned URL of the stylesheet.
    pub(crate) fn css_url(&self, base: &str) -> String {
        format!("{base}/static/panel.css?v={}", self.css)
    }
    /// The versioned URL of the script.
    pub(crate) fn js_url(&self, base: &str) -> String {
        format!("{base}/static/panel.js?v={}", self.js)
    }
}

/// `GET /static/{file}`: public (no sign-in needed).
pub(crate) async fn serve(
    Extension(shared): Extension<Arc<Shared>>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, PanelError> {
    let (body, content_type, version) = match file.as_str() {
        "panel.css" => (CSS, "text/css; charset=utf-8", &shared.assets.css),
        "panel.js" => (JS, "text/javascript; charset=utf-8", &shared.assets.js),
        _ => return Err(PanelError::NotFound),
    };
    let etag = format!("\"{version}\"");
    let cache = if query.as_deref() == Some(&format!("v={version}")) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    let mut res = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, body).into_response()
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::try_from(etag) {
        h.insert(header::ETAG, v);
    }
    Ok(res)
}
