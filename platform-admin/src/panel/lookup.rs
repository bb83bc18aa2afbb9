//! `GET /{resource}/lookup?q=`: the small JSON endpoint behind relation
//! pickers: `{"data": [{"id": "7", "title": "Acme Ltd"}]}`, at most 20,
//! through the resource's own records (its permissions and policy apply).

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use platform_core::permission::Ability;
use platform_core::query::{ListQuery, MAX_SEARCH_LEN};
use platform_core::value::Value;
use serde::Serialize;

use super::error::PanelError;
use super::fields::Viewer;
use super::render::Panel;

/// Results per lookup.
const LOOKUP_SIZE: u32 = 20;

#[derive(Debug, Serialize)]
struct Item {
    id: String,
    title: String,
}

#[derive(Debug, Serialize)]
struct Body {
    data: Vec<Item>,
}

/// JSON with `<`, `>` and `&` escaped (`\u003c`...), so no browser ever
/// reads markup into it; never cached.
fn json_response<T: Serialize>(body: &T) -> Response {
    let text = serde_json::to_string(body)
        .unwrap_or_else(|_| "{\"data\":[]}".to_owned())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let mut res = text.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// `GET /{resource}/lookup?q=`: searches the resource's search fields
/// (or matches an id); without `q`, the first records by id.
pub(crate) async fn json(p: Panel, Path(resource): Path<String>) -> Result<Response, PanelError> {
    let records = p.records(&resource)?;
    p.authorize(&records, Ability::ViewAny)?;
    let meta = records.meta();
    let q: String = p
        .query_pairs()?
        .into_iter()
        .rev()
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.trim().chars().take(MAX_SEARCH_LEN).collect())
        .unwrap_or_default();
    let q = q.replace('\0', "");
    let mut query = ListQuery::new().page_size(LOOKUP_SIZE);
    if !q.is_empty() {
        let pk = meta.primary_key();
        if !meta.search_fields().is_empty() {
            query = query.search(q);
        } else {
            match Value::parse(pk.ty(), &q) {
                Ok(v) if !v.is_null() => query = query.filter_eq(pk.name(), v.display()),
                _ => return Ok(json_response(&Body { data: Vec::new() })),
            }
        }
    }
    let page = records.list(&query).await?;
    let viewer = Viewer::of(&p);
    let data = page
        .items
        .iter()
        .map(|r| Item {
            id: r.id().display(),
            title: viewer.title(r),
        })
        .collect();
    Ok(json_response(&Body { data }))
}
