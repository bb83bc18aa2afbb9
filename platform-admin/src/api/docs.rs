//! `GET /docs`: the API reference a person reads, [Swagger UI] over this
//! API's own `openapi.json`, served from the binary (nothing is fetched
//! from another origin, so it works offline and behind a strict firewall).
//!
//! Public, like `openapi.json`: both describe the routes, never data; what a
//! caller may do is decided per request by its token.
//!
//! Why a vendored bundle rather than a crate: `utoipa-swagger-ui` builds
//! here only with its `vendored` feature and then brings `utoipa`, a
//! `rust-embed` stack and a zip of every Swagger UI file into the build,
//! for a document this crate already writes by hand; `utoipa-scalar`,
//! `-redoc` and `-rapidoc` only write an HTML page that loads the viewer
//! from a CDN (blank offline). The two files Swagger UI needs
//! (`swagger-ui-bundle.js` and `swagger-ui.css` from the npm package
//! `swagger-ui-dist`, 1.9 MB together, unchanged; see
//! `static/swagger-ui/README.md`) are included with `include_bytes!`: no
//! dependency, no build step, no build time. Swagger UI was chosen over
//! the smaller RapiDoc (0.9 MB) and Redoc because it is the only one of the
//! three that runs under the panel's Content-Security-Policy as it is
//! (scripts and styles from this origin only, no inline style): RapiDoc
//! applies inline styles and loads Google fonts, Redoc 3's standalone
//! bundle needs a module script and inline styles. The page itself has no
//! inline script: `init.js` starts Swagger UI.
//!
//! [Swagger UI]: https://swagger.io/tools/swagger-ui/

use std::sync::Arc;

use axum::Extension;
use axum::extract::{OriginalUri, Path, RawQuery};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiConfig;
use crate::error::Error;

/// The version of `swagger-ui-dist` vendored in `static/swagger-ui`.
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

/// The Content-Security-Policy of the reference page: the panel's rules
/// (scripts, styles, fonts and requests to this origin only, images also
/// from `data:`), with no form posts and no framing.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

const BUNDLE: &[u8] = include_bytes!("../../static/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../../static/swagger-ui/swagger-ui.css");
const INIT: &str = include_str!("../../static/swagger-ui/init.js");

/// FNV-1a of `bytes`, for the version of `init.js` in its URL.
const fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}
const INIT_VERSION: u64 = fnv(INIT.as_bytes());

/// `s` with `& < > " '` escaped, for text and quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /docs`: the page.
pub(super) async fn page(
    OriginalUri(uri): OriginalUri,
    config: Option<Extension<Arc<ApiConfig>>>,
) -> Response {
    // Where the API is mounted (`/api`), so the links work under any prefix.
    let prefix = escape(uri.path().strip_suffix("/docs").unwrap_or_default());
    let title = escape(
        config
            .as_ref()
            .map_or("Platform API", |Extension(c)| c.title.as_str()),
    );
    let v = SWAGGER_UI_VERSION;
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: reference</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{prefix}/docs/swagger-ui.css?v={v}">
</head>
<body>
<noscript><p>This reference needs JavaScript. The OpenAPI document it shows is <a href="{prefix}/openapi.json">{prefix}/openapi.json</a>.</p></noscript>
<div id="swagger-ui" data-url="{prefix}/openapi.json"></div>
<script src="{prefix}/docs/swagger-ui-bundle.js?v={v}"></script>
<script src="{prefix}/docs/init.js?v={INIT_VERSION:016x}"></script>
</body>
</html>
"#
    );
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DOCS_CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        html,
    )
        .into_response()
}

/// `GET /docs/{file}`: Swagger UI's script and stylesheet, and `init.js`.
/// The page links them with a version (`?v=`), so those URLs are cached for
/// a year; an unversioned one for five minutes.
pub(super) async fn asset(Path(file): Path<String>, RawQuery(query): RawQuery) -> Response {
    let (body, content_type): (&'static [u8], &'static str) = match file.as_str() {
        "swagger-ui-bundle.js" => (BUNDLE, "text/javascript; charset=utf-8"),
        "swagger-ui.css" => (CSS, "text/css; charset=utf-8"),
        "init.js" => (INIT.as_bytes(), "text/javascript; charset=utf-8"),
        _ => return Error::RouteNotFound.into_response(),
    };
    let cache = if query.is_some_and(|q| q.starts_with("v=")) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_versions() {
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;"
        );
        assert_ne!(INIT_VERSION, fnv(b""));
        assert!(BUNDLE.len() > 100_000 && CSS.len() > 10_000);
    }
}
