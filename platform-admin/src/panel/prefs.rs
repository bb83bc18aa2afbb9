//! Per-user display preferences: the visible columns of each list are kept
//! per user by the preferences service (`platform.notifications()`,
//! preference `panel.columns.<resource>`); the theme is a per-browser
//! cookie (read before any page renders, so dark pages never flash light).

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform_core::permission::Ability;
use platform_core::resource::ResourceMeta;

use super::error::PanelError;
use super::flash::cookie_path;
use super::form::FormData;
use super::render::Panel;

/// The theme cookie: `dark`, `light` (absent: follow the system).
pub(crate) const THEME_COOKIE: &str = "platform_theme";

fn columns_preference(meta: &ResourceMeta) -> String {
    format!("panel.columns.{}", meta.plural())
}

/// The columns the user chose to see in `meta`'s list, if they chose (a
/// preference that cannot be read counts as no choice).
pub(crate) async fn visible_columns(p: &Panel, meta: &ResourceMeta) -> Option<Vec<String>> {
    let value = match p
        .platform
        .notifications()
        .get_preference(p.auth.user.id, &columns_preference(meta))
        .await
    {
        Ok(v) => v?,
        Err(e) => {
            tracing::debug!(error = %e, "column preference could not be read");
            return None;
        }
    };
    Some(
        value
            .as_array()?
            .iter()
            .filter_map(serde_json::Value::as_str)
            .filter(|c| meta.field(c).is_some_and(|f| !f.is_hidden()))
            .map(str::to_owned)
            .collect(),
    )
}

fn wants_no_content(headers: &HeaderMap) -> bool {
    headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes() == b"fetch")
}

/// `POST /{resource}/columns`: `cols` (repeated) are the visible columns;
/// `back` is where to return. A `fetch()` (`X-Requested-With: fetch`) gets
/// `204`.
pub(crate) async fn columns(
    p: Panel,
    Path(resource): Path<String>,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, PanelError> {
    let records = p.records(&resource)?;
    p.authorize(&records, Ability::ViewAny)?;
    let meta = records.meta();
    let cols: Vec<&str> = form
        .all("cols")
        .filter(|c| meta.field(c).is_some_and(|f| !f.is_hidden()))
        .collect();
    p.platform
        .notifications()
        .set_preference(
            p.auth.user.id,
            &columns_preference(meta),
            &serde_json::json!(cols),
        )
        .await?;
    Ok(if wants_no_content(&headers) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let fallback = format!("{}/{}", p.base(), meta.plural());
        p.redirect(&p.safe_back(form.get("back"), fallback))
    })
}

/// `POST /theme`: `theme` is `dark`, `light` or `system`.
pub(crate) async fn theme(
    p: Panel,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, PanelError> {
    let value = match form.get("theme") {
        Some("dark") => "dark",
        Some("light") => "light",
        _ => "",
    };
    let max_age = if value.is_empty() { 0 } else { 31_536_000 };
    let cookie = HeaderValue::try_from(format!(
        "{THEME_COOKIE}={value}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Lax",
        cookie_path(p.base())
    ))
    .map_err(|_| PanelError::BadRequest("invalid theme".into()))?;
    let mut res = if wants_no_content(&headers) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        p.redirect(&p.safe_back(form.get("back"), super::layout::home(p.base())))
    };
    res.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(res)
}
