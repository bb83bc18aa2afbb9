//! The panel's import pages: `imports` (an upload form, the batches with
//! status, progress and counts, a rollback action and the failed-rows
//! download) and `import-preview/{upload}` (the automatic mapping with a
//! select per column, the first rows as they would be read, a dry run and
//! the run).
//!
//! The upload itself is `POST {base}/imports/upload` (multipart, outside
//! the panel's URL-encoded forms), signed in by the panel session and
//! checked against its CSRF token; the file waits on the storage disk under
//! a random name bound to the user until it is run. It and the failed-rows
//! download (`GET {base}/imports/{id}/failed.csv`, or `.xlsx` after an
//! XLSX import) are panel routes: under
//! the panel's base path, where its session cookie (scoped to that path)
//! reaches them.

use axum::extract::{Multipart, Path};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use platform_admin::capability::SetupExt;
use platform_admin::panel::PanelAuth;
use platform_admin::panel::page::{ActionFuture, PageAction, PageContext, PageFuture, PanelPage};
use platform_core::capability::Setup;
use platform_core::permission::{Ability, permission_name};
use platform_core::storage::StorageExt;
use platform_core::{Error, Platform};

use super::mapping::parse_overrides;
use super::{ImportRequest, Imports};

const LIST: &str = r#"
<section id="imports">
{% if data.resources %}
<form id="import-upload" method="post" enctype="multipart/form-data" action="{{ base }}/imports/upload">
  <input type="hidden" name="_csrf" value="{{ csrf }}">
  <input type="hidden" name="_base" value="{{ base }}">
  <label>Resource <select name="resource">{% for r in data.resources %}<option value="{{ r.plural }}">{{ r.label }}</option>{% endfor %}</select></label>
  <label>File (CSV or XLSX) <input type="file" name="file" accept=".csv,.xlsx,text/csv" required></label>
  <button type="submit">Upload and preview</button>
</form>
{% endif %}
{% if data.batches %}
<table class="table">
  <thead><tr><th>#</th><th>Resource</th><th>File</th><th>By</th><th>Status</th><th>Progress</th><th>Created</th><th>Updated</th><th>Failed</th><th></th></tr></thead>
  <tbody>
  {% for b in data.batches %}
  <tr id="import-{{ b.id }}">
    <td>{{ b.id }}</td><td>{{ b.resource_label or b.resource }}</td><td>{{ b.file_name or "" }}</td>
    <td>{{ b.actor_label or b.actor_type }}</td>
    <td class="status">{{ b.status }}</td>
    <td>{{ b.counts.processed }}{% if b.total_rows %} / {{ b.total_rows }}{% endif %}</td>
    <td>{{ b.counts.created }}</td><td>{{ b.counts.updated }}</td>
    <td>{{ b.counts.failed }}{% if b.failed_path %} <a href="{{ base }}/imports/{{ b.id }}/failed.{% if b.failed_path is endingwith(".xlsx") %}xlsx{% else %}csv{% endif %}">failed rows</a>{% endif %}</td>
    <td>
    {% if b.status == "done" or b.status == "failed" %}
      <form method="post" action="{{ page.href }}/actions/rollback/{{ b.id }}">
        <input type="hidden" name="_csrf" value="{{ csrf }}">
        <label><input type="checkbox" name="force" value="1"> even if changed since</label>
        <button type="submit">Roll back</button>
      </form>
    {% endif %}
    </td>
  </tr>
  {% if b.error %}<tr><td></td><td colspan="9" class="error">{{ b.error }}</td></tr>{% endif %}
  {% endfor %}
  </tbody>
</table>
{% else %}
<p>No imports yet.</p>
{% endif %}
</section>
"#;

const PREVIEW: &str = r#"
<section id="import-preview">
{% if data.error %}
<div class="flash flash-error" role="alert"><p>{{ data.file_name or "The file" }} cannot be imported: {{ data.error }}.</p></div>
<p><a href="{{ base }}/imports">Upload another file</a></p>
{% else %}
<p>{{ data.file_name }} into {{ data.resource_label or data.resource }} ({{ data.preview.format }}).</p>
{% if data.preview.missing_required %}<p class="warning">No column feeds: {{ data.preview.missing_required | join(", ") }}.</p>{% endif %}
<form method="get" action="{{ page.href }}/{{ page.rest }}">
  <table class="table" id="import-mapping"><thead><tr><th>Column</th><th>Field</th></tr></thead><tbody>
  {% for m in data.preview.mapping %}
  <tr><td>{{ m.heading }}</td><td><select name="map">
    <option value="{{ m.heading }}=">(ignore)</option>
    {% for f in data.preview.fields %}<option value="{{ m.heading }}={{ f.name }}"{% if f.name == m.field %} selected{% endif %}>{{ f.label }}</option>{% endfor %}
  </select></td></tr>
  {% endfor %}
  </tbody></table>
  <label>Update the records whose <select name="key">
    <option value=""{% if not data.key %} selected{% endif %}>{% if data.declared_key %}(default: {{ data.declared_key }}){% else %}(none: every row is a new record){% endif %}</option>
    {% for k in data.keys %}<option value="{{ k.name }}"{% if k.name == data.key %} selected{% endif %}>{{ k.label }}</option>{% endfor %}
  </select> matches the row's</label>
  <button type="submit">Update the preview</button>
</form>
<table class="table" id="import-rows"><thead><tr><th>Row</th>{% for m in data.preview.mapping %}<th>{{ m.heading }}</th>{% endfor %}</tr></thead><tbody>
{% for r in data.preview.rows %}<tr><td>{{ r.row }}</td>{% for c in r.cells %}<td{% if c.read and c.read.error %} class="error" title="{{ c.read.error }}"{% endif %}>{{ c.text }}{% if c.read and c.read.error %} ({{ c.read.error }}){% endif %}</td>{% endfor %}</tr>{% endfor %}
</tbody></table>
{% for action in ["dry_run", "run"] %}
<form method="post" action="{{ page.href }}/actions/{{ action }}/{{ page.rest }}">
  <input type="hidden" name="_csrf" value="{{ csrf }}">
  {% for m in data.preview.mapping %}<input type="hidden" name="map" value="{{ m.heading }}={{ m.field or "" }}">{% endfor %}
  <input type="hidden" name="key" value="{{ data.key or "" }}">
  <input type="hidden" name="_back" value="{% if action == "run" %}{{ base }}/imports{% else %}{{ page.href }}/{{ page.rest }}?{% for m in data.preview.mapping %}map={{ (m.heading ~ "=" ~ (m.field or "")) | urlencode }}&amp;{% endfor %}key={{ (data.key or "") | urlencode }}{% endif %}">
  <button type="submit">{% if action == "run" %}Import{% else %}Dry run{% endif %}</button>
</form>
{% endfor %}
{% endif %}
</section>
"#;

fn service(platform: &Platform) -> Result<std::sync::Arc<Imports>, Error> {
    platform
        .get::<Imports>()
        .ok_or_else(|| Error::Configuration("the exchange capability is not added".to_owned()))
}

fn list_data(cx: &PageContext) -> PageFuture<'_> {
    Box::pin(async move {
        let imports = service(&cx.platform)?;
        let batches = imports.batches(&cx.platform, &cx.auth.ctx, 100).await?;
        // Each batch with its resource's label ("Invoices"), not the
        // internal name it is recorded under.
        let batches: Vec<serde_json::Value> = batches
            .into_iter()
            .map(|b| {
                let label = cx
                    .platform
                    .records(&b.resource, &cx.auth.ctx)
                    .map(|r| r.meta().plural_label());
                let mut v = serde_json::to_value(&b).unwrap_or_default();
                if let (Some(label), Some(o)) = (label, v.as_object_mut()) {
                    o.insert("resource_label".to_owned(), label.into());
                }
                v
            })
            .collect();
        let resources: Vec<serde_json::Value> = cx
            .platform
            .registry()
            .entries()
            .map(|e| e.meta())
            .filter(|m| {
                m.importable() && cx.auth.ctx.can(&permission_name(Ability::Import, m.name()))
            })
            .map(|m| serde_json::json!({ "plural": m.plural(), "label": m.plural_label() }))
            .collect();
        Ok(serde_json::json!({ "batches": batches, "resources": resources }))
    })
}

/// An upload waiting for its run: who sent it, for which resource.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    user_id: i64,
    resource: String,
    file_name: Option<String>,
    content_type: Option<String>,
}

fn upload_paths(token: &str) -> Result<(String, String), Error> {
    if token.is_empty() || !token.chars().all(|c| c.is_ascii_alphanumeric()) || token.len() > 64 {
        return Err(Error::NotFound {
            resource: "upload",
            id: token.chars().take(64).collect(),
        });
    }
    Ok((
        format!("imports/uploads/{token}.file"),
        format!("imports/uploads/{token}.json"),
    ))
}

/// The pending upload `token` of this user, copied to a local file.
async fn pending(cx: &PageContext) -> Result<(Pending, std::path::PathBuf), Error> {
    let imports = service(&cx.platform)?;
    let (file, meta) = upload_paths(&cx.rest)?;
    let storage = imports.storage(&cx.platform)?;
    let not_found = || Error::NotFound {
        resource: "upload",
        id: cx.rest.clone(),
    };
    let info: Pending = storage
        .get_bytes(&meta)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(not_found)?;
    if info.user_id != cx.auth.user.id {
        return Err(not_found());
    }
    let bytes = storage.get_bytes(&file).await?;
    let local = imports.temp_path("panel")?;
    tokio::fs::write(&local, &bytes)
        .await
        .map_err(|e| Error::from(super::ImportError::io(e)))?;
    Ok((info, local))
}

fn request(cx: &PageContext, info: &Pending, dry_run: bool) -> Result<ImportRequest, Error> {
    let mapping = parse_overrides(
        cx.params
            .iter()
            .filter(|(k, _)| k == "map")
            .map(|(_, v)| v.as_str()),
    )?;
    Ok(ImportRequest {
        resource: info.resource.clone(),
        file_name: info.file_name.clone(),
        content_type: info.content_type.clone(),
        mapping,
        dry_run,
        key: chosen_key(cx),
    })
}

/// The field chosen to find existing records by (`key`), if any.
fn chosen_key(cx: &PageContext) -> Option<String> {
    cx.param("key")
        .filter(|k| !k.is_empty())
        .map(|k| k.chars().take(64).collect())
}

fn preview_data(cx: &PageContext) -> PageFuture<'_> {
    Box::pin(async move {
        let (info, local) = pending(cx).await?;
        let req = request(cx, &info, true)?;
        let p = service(&cx.platform)?
            .preview(&cx.platform, &cx.auth.ctx, &req, &local, 10)
            .await;
        let _ = tokio::fs::remove_file(&local).await;
        let p = match p {
            Ok(p) => p,
            // The file itself cannot be read (empty, not CSV or XLSX, not
            // UTF-8, too large): said on the page, with no run offered.
            Err(Error::Validation(errors)) if errors.has("file") => {
                let message = errors
                    .for_field("file")
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Ok(serde_json::json!({
                    "resource": info.resource,
                    "file_name": info.file_name,
                    "error": message.trim_end_matches('.'),
                }));
            }
            Err(e) => return Err(e),
        };
        // The fields an import may find existing records by: the unique
        // ones (an encrypted value cannot be looked up).
        let (keys, declared) = cx
            .platform
            .records(&info.resource, &cx.auth.ctx)
            .map(|r| {
                let meta = r.meta();
                let keys = meta
                    .field_list()
                    .iter()
                    .filter(|f| f.is_unique() && !f.is_encrypted())
                    .map(|f| serde_json::json!({ "name": f.name(), "label": f.label_text() }))
                    .collect::<Vec<_>>();
                (keys, meta.import_key())
            })
            .unwrap_or_default();
        let label = cx
            .platform
            .records(&info.resource, &cx.auth.ctx)
            .map(|r| r.meta().plural_label());
        Ok(serde_json::json!({
            "resource": info.resource,
            "resource_label": label,
            "file_name": info.file_name,
            "preview": p,
            "keys": keys,
            "key": chosen_key(cx),
            "declared_key": declared,
        }))
    })
}

fn run_action(cx: &PageContext, dry_run: bool) -> ActionFuture<'_> {
    Box::pin(async move {
        let (info, local) = pending(cx).await?;
        let req = request(cx, &info, dry_run)?;
        let imports = service(&cx.platform)?;
        let s = imports
            .submit(&cx.platform, &cx.auth.ctx, &req, &local)
            .await;
        let _ = tokio::fs::remove_file(&local).await;
        let s = s?;
        if !dry_run && let Ok((file, meta)) = upload_paths(&cx.rest) {
            let storage = imports.storage(&cx.platform)?;
            let _ = storage.delete_file(&file).await;
            let _ = storage.delete_file(&meta).await;
        }
        Ok(match s.report {
            None => format!("Import {} runs in the background.", s.batch_id),
            Some(r) => format!(
                "{} {}: {} created, {} updated, {} unchanged, {} failed{}.",
                if dry_run { "Dry run" } else { "Import" },
                s.batch_id,
                r.counts.created,
                r.counts.updated,
                r.counts.unchanged,
                r.counts.failed,
                r.failures
                    .first()
                    .map(|f| format!(" (row {} {}: {})", f.row, f.column, f.reason))
                    .unwrap_or_default()
            ),
        })
    })
}

fn dry_run(cx: &PageContext) -> ActionFuture<'_> {
    run_action(cx, true)
}

fn run(cx: &PageContext) -> ActionFuture<'_> {
    run_action(cx, false)
}

fn rollback(cx: &PageContext) -> ActionFuture<'_> {
    Box::pin(async move {
        let id: i64 = cx.rest.parse().map_err(|_| Error::NotFound {
            resource: "import",
            id: cx.rest.chars().take(64).collect(),
        })?;
        let force = cx.param("force").is_some_and(|v| v == "1");
        let r = service(&cx.platform)?
            .rollback(&cx.platform, &cx.auth.ctx, id, force)
            .await?;
        Ok(format!(
            "Import {id} rolled back: {} removed, {} restored.",
            r.deleted, r.reverted
        ))
    })
}

/// Equal in constant time (for the CSRF token).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, message.to_owned()).into_response()
}

/// The imports page with `message` shown as an error: what a person who
/// sent a file that cannot be kept sees.
fn back_with(base: &str, message: &str) -> Response {
    platform_admin::panel::page::redirect_with_error(base, &format!("{base}/imports"), message)
}

/// A path the panel can live under (the form's `_base`, which goes into a
/// `Location` and a cookie's `Path`): `/` and plain segments only, and no
/// trailing `/` (`/` + `/imports` would be `//imports`, another host).
fn is_panel_path(v: &str) -> bool {
    v.starts_with('/')
        && !v.starts_with("//")
        && !v.ends_with('/')
        && v.len() <= 100
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
        && !v.split('/').any(|s| s == ".." || s == ".")
}

/// `n` bytes for people (`256 KiB`, `50 MiB`).
fn human_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// `POST {base}/imports/upload`: keeps the file and sends the user to its
/// preview. A file too large, cut short, missing or not stored sends the
/// user back to the imports page with the reason.
async fn upload(
    axum::extract::State(platform): axum::extract::State<Platform>,
    auth: PanelAuth,
    mut form: Multipart,
) -> Response {
    let Ok(imports) = service(&platform) else {
        return refuse(StatusCode::NOT_FOUND, "imports are not enabled");
    };
    let limit = imports.config().limits.max_bytes;
    let (mut csrf, mut resource, mut base) = (String::new(), String::new(), "/admin".to_owned());
    let mut file: Option<(Vec<u8>, Option<String>, Option<String>)> = None;
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let fname = field.file_name().map(|n| {
                n.rsplit(['/', '\\'])
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect::<String>()
            });
            let ctype = field.content_type().map(str::to_owned);
            let mut bytes = Vec::new();
            let mut stream = field;
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else {
                    return back_with(&base, "The upload was cut short: send the file again.");
                };
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > limit {
                    return back_with(
                        &base,
                        &format!(
                            "The file is too large: at most {} are accepted.",
                            human_bytes(limit)
                        ),
                    );
                }
            }
            file = Some((bytes, fname, ctype));
        } else {
            let v = field.text().await.unwrap_or_default();
            match name.as_str() {
                "_csrf" => csrf = v,
                "resource" => resource = v,
                "_base" if is_panel_path(&v) => base = v,
                _ => {}
            }
        }
    }
    if !same(&csrf, &auth.csrf_token) {
        return refuse(StatusCode::FORBIDDEN, "the form expired: reload the page");
    }
    let Some(records) = platform.records(&resource, &auth.ctx) else {
        return refuse(StatusCode::NOT_FOUND, "no such resource");
    };
    if !auth
        .ctx
        .can(&permission_name(Ability::Import, records.meta().name()))
    {
        return refuse(StatusCode::FORBIDDEN, "you may not import these records");
    }
    // No file chosen: nothing to keep. An empty file goes on to its
    // preview, which says so on the page.
    let Some((bytes, file_name, content_type)) =
        file.filter(|f| !f.0.is_empty() || f.1.as_deref().is_some_and(|n| !n.is_empty()))
    else {
        return back_with(&base, "Choose a file to import.");
    };
    let token = platform_core::crypto::random_token(16)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>();
    let Ok((fpath, mpath)) = upload_paths(&token) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "no upload name");
    };
    let info = Pending {
        user_id: auth.user.id,
        resource: records.meta().plural().to_owned(),
        file_name,
        content_type,
    };
    let stored = async {
        let storage = imports.storage(&platform)?;
        storage.put_bytes(&fpath, bytes).await?;
        storage
            .put_bytes(&mpath, serde_json::to_vec(&info).unwrap_or_default())
            .await?;
        Ok::<(), Error>(())
    }
    .await;
    if stored.is_err() {
        return back_with(
            &base,
            "The file could not be stored: try again in a moment.",
        );
    }
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/import-preview/{token}")) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// `GET {base}/imports/{id}/failed.csv` (or `.xlsx`, as the file was)
/// for a signed-in panel user.
async fn failed(
    axum::extract::State(platform): axum::extract::State<Platform>,
    auth: PanelAuth,
    Path(id): Path<i64>,
) -> Response {
    let Ok(imports) = service(&platform) else {
        return refuse(StatusCode::NOT_FOUND, "imports are not enabled");
    };
    match imports.failed_rows(&platform, &auth.ctx, id).await {
        Ok(Some((bytes, format))) => super::failed_download(id, bytes, format),
        _ => refuse(StatusCode::NOT_FOUND, "no failed rows"),
    }
}

pub(crate) fn pages(setup: &mut Setup) {
    setup.panel_page(
        PanelPage::new("imports", "Imports", LIST, list_data)
            .nav_group("System")
            .action(PageAction::new("rollback", rollback)),
    );
    setup.panel_page(
        PanelPage::new("import-preview", "Import preview", PREVIEW, preview_data)
            .hidden()
            .action(PageAction::new("dry_run", dry_run))
            .action(PageAction::new("run", run)),
    );
    setup.panel_routes(
        axum::Router::new()
            .route(
                "/imports/upload",
                post(upload).layer(axum::extract::DefaultBodyLimit::disable()),
            )
            .route("/imports/{id}/failed.csv", get(failed))
            .route("/imports/{id}/failed.xlsx", get(failed)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_paths() {
        for ok in ["/admin", "/back-office/panel", "/a.b_c"] {
            assert!(is_panel_path(ok), "{ok}");
        }
        for bad in [
            "",
            "admin",
            "/",
            "//evil.example",
            "/admin/",
            "/a/../b",
            "/a/./b",
            "/admin; Domain=x",
            "/admin\r\nX: y",
            "/adm in",
        ] {
            assert!(!is_panel_path(bad), "{bad}");
        }
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_bytes(256 * 1024), "256 KiB");
        assert_eq!(human_bytes(50 << 20), "50 MiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }
}
