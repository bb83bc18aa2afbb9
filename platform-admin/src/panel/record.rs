//! One record: create and edit forms generated from the field types, the
//! view page with its activity log, delete (with a confirmation step),
//! restore, force delete and restore-to-version.

use std::collections::HashMap;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use platform_core::audit::AuditFilter;
use platform_core::audit::{AuditValues, Entry};
use platform_core::error::FieldErrors;
use platform_core::permission::{Ability, VIEW_AUDIT};
use platform_core::repo::{Record, Records};
use platform_core::resource::ResourceMeta;
use platform_core::value::Value;
use serde::Serialize;

use super::error::PanelError;
use super::fields::{self, InputView, Viewer, relation_titles};
use super::flash::Flash;
use super::form::FormData;
use super::format::{self, encode_component};
use super::list::{Caps, ResourceView};
use super::render::Panel;

/// Entries of the activity log per page.
const ACTIVITY_PAGE: usize = 50;

#[derive(Debug, Serialize)]
struct FormPage {
    resource: ResourceView,
    heading: String,
    action: String,
    cancel: String,
    inputs: Vec<InputView>,
    errors: Vec<String>,
    creating: bool,
    /// Capabilities' sections under the form (HTML, escaped by them).
    sections: Vec<String>,
}

#[derive(Debug, Serialize)]
struct FieldView {
    label: &'static str,
    text: String,
    href: Option<String>,
    class: &'static str,
}

#[derive(Debug, Serialize)]
struct ChangeView {
    label: String,
    old: String,
    new: String,
}

#[derive(Debug, Serialize)]
struct EntryView {
    id: i64,
    event: String,
    actor: String,
    at: String,
    ip: String,
    tags: Vec<String>,
    changes: Vec<ChangeView>,
    restore_href: Option<String>,
    /// Set when the listing cut some values: the page of the whole entry.
    whole_href: Option<String>,
}

#[derive(Debug, Serialize)]
struct ViewPage {
    resource: ResourceView,
    can: Caps,
    id: String,
    title: String,
    href: String,
    deleted: bool,
    fields: Vec<FieldView>,
    activity: Vec<EntryView>,
    older: Option<String>,
    audited: bool,
    /// Capabilities' sections (HTML, escaped by them).
    sections: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ConfirmPage {
    heading: String,
    message: String,
    action: String,
    button: String,
    danger: bool,
    cancel: String,
    hidden: Vec<()>,
}

fn record_href(p: &Panel, meta: &ResourceMeta, id: &str) -> String {
    format!("{}/{}/{}", p.base(), meta.plural(), encode_component(id))
}

/// The titles of a record's relations (submitted text or stored values),
/// by `(field, id text)`.
async fn form_titles(
    p: &Panel,
    meta: &'static ResourceMeta,
    record: Option<&Record>,
    submitted: Option<&FormData>,
) -> HashMap<(&'static str, String), String> {
    let mut out = HashMap::new();
    for f in meta.field_list() {
        if f.belongs_to_meta().is_none() {
            continue;
        }
        let value = match submitted.and_then(|s| s.get(f.name())) {
            Some(text) => Value::parse(f.ty(), text).unwrap_or(Value::Null),
            None => record
                .and_then(|r| r.get(f.name()))
                .cloned()
                .unwrap_or(Value::Null),
        };
        if value.is_null() {
            continue;
        }
        for (k, v) in relation_titles(p, f, &[value]).await {
            out.insert((f.name(), k), v);
        }
    }
    out
}

async fn form_page(
    p: &Panel,
    records: &Records,
    record: Option<&Record>,
    submitted: Option<&FormData>,
    errors: &FieldErrors,
    banner: Vec<String>,
    status: StatusCode,
) -> Result<Response, PanelError> {
    let meta = records.meta();
    let titles = form_titles(p, meta, record, submitted).await;
    let inputs = fields::inputs(p, meta, record, submitted, errors, &titles);
    let resource = ResourceView::of(p, meta);
    let (heading, action, cancel) = match record {
        None => (
            format!("New {}", meta.label_text()),
            resource.list_href.clone(),
            resource.list_href.clone(),
        ),
        Some(r) => {
            let href = record_href(p, meta, &r.id().display());
            (
                format!("Edit {}", Viewer::of(p).title(r)),
                href.clone(),
                href,
            )
        }
    };
    // Messages for fields that have no input of their own.
    let mut banner = banner;
    for e in errors.iter() {
        if !inputs.iter().any(|i| i.name == e.field) {
            banner.push(format!("{}: {}", e.field, e.message));
        }
    }
    let sections = match record {
        Some(r) => super::section::render_all(p, meta.plural(), &r.id().display(), true).await,
        None => Vec::new(),
    };
    let page = FormPage {
        resource,
        heading: heading.clone(),
        action,
        cancel,
        inputs,
        errors: banner,
        creating: record.is_none(),
        sections,
    };
    p.render_status(status, "resource/form.html", &heading, &page)
        .await
}

/// `GET /{resource}/new`.
pub(crate) async fn new_form(
    p: Panel,
    Path(resource): Path<String>,
) -> Result<Response, PanelError> {
    let records = p.records(&resource)?;
    p.authorize(&records, Ability::Create)?;
    form_page(
        &p,
        &records,
        None,
        None,
        &FieldErrors::default(),
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

/// `POST /{resource}`: create; the form again with messages on failure.
pub(crate) async fn create(
    p: Panel,
    Path(resource): Path<String>,
    form: FormData,
) -> Result<Response, PanelError> {
    let records = p.records(&resource)?;
    p.authorize(&records, Ability::Create)?;
    let meta = records.meta();
    let changes = fields::changes(meta, Viewer::of(&p), true, &form);
    match records.create(changes).await {
        Ok(rec) => {
            let href = record_href(&p, meta, &rec.id().display());
            let msg = format!(
                "Created {} {}.",
                meta.label_text(),
                Viewer::of(&p).title(&rec)
            );
            Ok(p.redirect_with(&href, Flash::success(msg)))
        }
        Err(platform_core::Error::Validation(e)) => {
            form_page(
                &p,
                &records,
                None,
                Some(&form),
                &e,
                Vec::new(),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(platform_core::Error::Conflict { message, .. }) => {
            form_page(
                &p,
                &records,
                None,
                Some(&form),
                &FieldErrors::default(),
                vec![message],
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(platform_core::Error::PermissionDenied { ability }) => {
            form_page(
                &p,
                &records,
                None,
                Some(&form),
                &FieldErrors::default(),
                vec![denied(&ability)],
                StatusCode::FORBIDDEN,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /{resource}/{id}/edit`.
pub(crate) async fn edit_form(
    p: Panel,
    Path((resource, id)): Path<(String, String)>,
) -> Result<Response, PanelError> {
    let records = p.records(&resource)?;
    p.authorize(&records, Ability::Update)?;
    let rec = records.find(records.parse_id(&id)?).await?;
    form_page(
        &p,
        &records,
        Some(&rec),
        None,
        &FieldErrors::default(),
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

/// `POST /{resource}/{id}`: update; the form again with messages on
/// failure.
pub(crate) async fn update(
    p: Panel,
    Path((resource, id)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, PanelError> {
    let records = p.records(&resource)?;
    p.authorize(&records, Ability::Update)?;
    let meta = records.meta();
    let id = records.parse_id(&id)?;
    let changes = fields::changes(meta, Viewer::of(&p), false, &form);
    let failed = |errors: FieldErrors, banner: Vec<String>, status| {
        let (p, records, form) = (&p, &records, &form);
        let id = id.clone();
        async move {
            let rec = records.find(id).await?;
            form_page(p, records, Some(&rec), Some(form), &errors, banner, status).await
        }
    };
    match records.update(id.clone(), changes).await {
        Ok(rec) => {
            let href = record_href(&p, meta, &id.display());
            let msg = format!("Saved {}.", Viewer::of(&p).title(&rec));
            Ok(p.redirect_with(&href, Flash::success(msg)))
        }
        Err(platform_core::Error::Validation(e)) => {
            failed(e, Vec::new(), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(platform_core::Error::Conflict { message, .. }) => {
            failed(FieldErrors::default(), vec![message], StatusCode::CONFLICT).await
        }
        Err(platform_core::Error::PermissionDenied { ability }) => {
            failed(
                FieldErrors::default(),
                vec![denied(&ability)],
                StatusCode::FORBIDDEN,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// The message of a write the core refused (a policy, say).
fn denied(ability: &str) -> String {
    format!("This change is not allowed: `{ability}` is required.")
}

fn actor_text(e: &Entry) -> String {
    match (&e.actor_label, e.actor_type.as_str()) {
        (Some(l), _) => l.clone(),
        (None, "console") => "console".to_owned(),
        (None, "system") => "system".to_owned(),
        (None, t) => t.to_owned(),
    }
}

fn json_text(meta: &ResourceMeta, field: &str, v: Option<&serde_json::Value>) -> String {
    let Some(v) = v else {
        return String::new();
    };
    if let Some(f) = meta.field(field)
        && let Ok(val) = Value::from_json(f.ty(), v)
    {
        return format::display(f, &val);
    }
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The activity log of a record: the old → new value of each field per
/// entry, personal data masked without `view_pii`, hidden fields left out,
/// client addresses only with `view_audit`. `base` is the record's page.
fn activity(
    p: &Panel,
    meta: &'static ResourceMeta,
    entries: &[Entry],
    base: &str,
    restorable_here: bool,
) -> Vec<EntryView> {
    let see_audit = p.can(VIEW_AUDIT);
    entries
        .iter()
        .map(|e| {
            let (old, new): (AuditValues, AuditValues) = e.values_for(meta, p.ctx());
            let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
            keys.sort();
            keys.dedup();
            let changes = keys
                .into_iter()
                .map(|k| ChangeView {
                    label: meta
                        .field(k)
                        .map_or_else(|| k.clone(), |f| f.label_text().to_owned()),
                    old: json_text(meta, k, old.get(k.as_str())),
                    new: json_text(meta, k, new.get(k.as_str())),
                })
                .collect();
            let restorable =
                restorable_here && matches!(e.event.as_str(), "created" | "updated" | "restored");
            EntryView {
                id: e.id,
                event: e.event.clone(),
                actor: actor_text(e),
                at: format::time(&e.created_at),
                ip: e.ip.clone().filter(|_| see_audit).unwrap_or_default(),
                tags: e.tag_list(),
                changes,
                restore_href: restorable.then(|| format!("{base}/versions/{}/restore", e.id)),
                whole_href: (!e.truncated.is_empty()).then(|| format!("{base}/activity/{}", e.id)),
            }
        })
        .collect()
}

/// `GET /{resource}/{id}[?before=N]`: the record and its activity log.
pub(crate) async fn show(
    p: Panel,
    Path((resource, id)): Path<(String, String)>,
) -> Result<Response, PanelError> {
    let records = p.records(&resource)?;
    p.authorize(&records, Ability::View)?;
    let meta = records.meta();
    let rec = records.find_with_trashed(records.parse_id(&id)?).await?;
    let id_text = rec.id().display();
    let href = record_href(&p, meta, &id_text);
    let caps = Caps::of(&p, &records);
    let viewer = Viewer::of(&p);
    let deleted = meta
        .deleted_at()
        .and_then(|d| rec.get(d.name()))
        .is_some_and(|v| !v.is_null());
    let mut fields = Vec::new();
    for (i, f) in meta.field_list().iter().enumerate() {
        if f.is_hidden() {
            continue;
        }
        let v = &rec.values()[i];
        let (mut text, class) = viewer.shown(f, v);
        let mut link = None;
        if let Some(target) = f.belongs_to_meta()
            && !v.is_null()
        {
            let key = v.display();
            if let Some(t) = relation_titles(&p, f, std::slice::from_ref(v))
                .await
                .remove(&key)
            {
                text = t;
                if target.in_admin() {
                    link = Some(format!(
                        "{}/{}/{}",
                        p.base(),
                        target.plural(),
                        encode_component(&key)
                    ));
                }
            }
        }
        fields.push(FieldView {
            label: f.label_text(),
            text,
            href: link,
            class,
        });
    }
    let before = p
        .query_pairs()?
        .into_iter()
        .rev()
        .find(|(k, _)| k == "before")
        .and_then(|(_, v)| v.parse::<i64>().ok());
    let (entries, older) = if meta.is_audited() {
        // Bounded in bytes: long values are cut, each with a link to the
        // whole entry.
        let page = p
            .platform
            .audit()
            .list(
                AuditFilter {
                    resource: Some(meta.name()),
                    record_id: Some(&id_text),
                },
                before,
                ACTIVITY_PAGE,
            )
            .await?;
        let older = page.next_before.map(|b| format!("{href}?before={b}"));
        (page.entries, older)
    } else {
        (Vec::new(), None)
    };
    let activity = activity(&p, meta, &entries, &href, caps.update && !deleted);
    let title = viewer.title(&rec);
    let sections = super::section::render_all(&p, meta.plural(), &id_text, false).await;
    let page = ViewPage {
        resource: ResourceView::of(&p, meta),
        can: caps,
        id: id_text,
        title: title.clone(),
        href,
        deleted,
        fields,
        activity,
        older,
        audited: meta.is_audited(),
        sections,
    };
    p.render("resource/view.html", &title, &page).await
}

/// `GET /{resource}/{id}/activity/{entry}`: one entry of the record's
/// activity log with its whole values (the log cuts long ones).
pub(crate) async fn activity_entry(
    p: Panel,
    Path((resource, id, entry)): Path<(String, String, String)>,
) -> Result<Response, PanelError> {
    let records = p.records(&resource)?;
    p.authorize(&records, Ability::View)?;
    let meta = records.meta();
    let rec = records.find_with_trashed(records.parse_id(&id)?).await?;
    let id_text = rec.id().display();
    let n: i64 = entry.parse().map_err(|_| PanelError::NotFound)?;
    let e = p
        .platform
        .audit()
        .get(n)
        .await?
        .filter(|e| e.resource == meta.name() && e.record_id == id_text)
        .ok_or(PanelError::NotFound)?;
    let href = record_href(&p, meta, &id_text);
    let entry = activity(&p, meta, std::slice::from_ref(&e), &href, false)
        .pop()
        .ok_or(PanelError::NotFound)?;
    let title = format!("{} — entry {n}", Viewer::of(&p).title(&rec));
    let page = EntryPage {
        resource: ResourceView::of(&p, meta),
        title: title.clone(),
        href,
        entry,
    };
    p.render("resource/entry.html", &title, &page).await
}

#[derive(Debug, Serialize)]
struct EntryPage {
    resource: ResourceView,
    title: String,
    href: String,
    entry: EntryView,
}

async fn confirm_page(
    p: &Panel,
    resource: &str,
    id: &str,
    force: bool,
) -> Result<Response, PanelError> {
    let records = p.records(resource)?;
    p.authorize(
        &records,
        if force {
            Ability::ForceDelete
        } else {
            Ability::Delete
        },
    )?;
    let meta = records.meta();
    let rec = if force {
        records.find_with_trashed(records.parse_id(id)?).await?
    } else {
        records.find(records.parse_id(id)?).await?
    };
    let href = record_href(p, meta, &rec.id().display());
    let title = Viewer::of(p).title(&rec);
    let (heading, message, action, button) = if force {
        (
            format!("Delete {title} for good?"),
            "It will be removed for good; this cannot be undone.".to_owned(),
            format!("{href}/force-delete"),
            "Delete for good",
        )
    } else {
        (
            format!("Delete {title}?"),
            if meta.is_soft_delete() {
                "It can be restored later from the deleted records.".to_owned()
            } else {
                "This cannot be undone.".to_owned()
            },
            format!("{href}/delete"),
            "Delete",
        )
    };
    let page = ConfirmPage {
        heading: heading.clone(),
        message,
        action,
        button: button.to_owned(),
        danger: true,
        cancel: href,
        hidden: Vec::new(),
    };
    p.render("confirm.html", &heading, &page).await
}

/// `GET /{resource}/{id}/delete`: the confirmation page.
pub(crate) async fn confirm_delete(
    p: Panel,
    Path((resource, id)): Path<(String, String)>,
) -> Result<Response, PanelError> {
    confirm_page(&p, &resource, &id, false).await
}

/// `GET /{resource}/{id}/force-delete`: the confirmation page.
pub(crate) async fn confirm_force_delete(
    p: Panel,
    Path((resource, id)): Path<(String, String)>,
) -> Result<Response, PanelError> {
    confirm_page(&p, &resource, &id, true).await
}

async fn remove(p: &Panel, resource: &str, id: &str, force: bool) -> Result<Response, PanelError> {
    let records = p.records(resource)?;
    p.authorize(
        &records,
        if force {
            Ability::ForceDelete
        } else {
            Ability::Delete
        },
    )?;
    let meta = records.meta();
    let id = records.parse_id(id)?;
    let list = format!("{}/{}", p.base(), meta.plural());
    let result = if force {
        records.force_delete(id.clone()).await
    } else {
        records.delete(id.clone()).await
    };
    match result {
        Ok(()) => {
            let what = if force { "for good" } else { "" };
            let msg = format!("Deleted {} {} {what}", meta.label_text(), id.display());
            Ok(p.redirect_with(&list, Flash::success(format!("{}.", msg.trim_end()))))
        }
        Err(platform_core::Error::Conflict { message, .. }) => {
            let href = record_href(p, meta, &id.display());
            Ok(p.redirect_with(&href, Flash::error(message)))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /{resource}/{id}/delete`.
pub(crate) async fn delete(
    p: Panel,
    Path((resource, id)): Path<(String, String)>,
    _form: FormData,
) -> Result<Response, PanelError> {
    remove(&p, &resource, &id, false).await
}

/// `POST /{resource}/{id}/force-delete`.
pub(crate) async fn force_delete(
    p: Panel,
    Path((resource, id)): Path<(String, String)>,
    _form: FormData,
) -> Result<Response, PanelError> {
    remove(&p, &resource, &id, true).await
}

/// `POST /{resource}/{id}/restore`.
pub(crate) async fn restore(
    p: Panel,
    Path((resource, id)): Path<(String, String)>,
    _form: FormData,
) -> Result<Response, PanelError> {
    let records = p.records(&resource)?;
    if !records.meta().is_soft_delete() {
        return Err(PanelError::NotFound);
    }
    p.authorize(&records, Ability::Restore)?;
    let meta = records.meta();
    let id = records.parse_id(&id)?;
    let href = record_href(&p, meta, &id.display());
    match records.restore(id).await {
        Ok(rec) => {
            let msg = format!("Restored {}.", Viewer::of(&p).title(&rec));
            Ok(p.redirect_with(&href, Flash::success(msg)))
        }
        Err(platform_core::Error::Conflict { message, .. }) => {
            Ok(p.redirect_with(&href, Flash::error(message)))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /{resource}/{id}/versions/{audit}/restore`.
pub(crate) async fn restore_version(
    p: Panel,
    Path((resource, id, audit)): Path<(String, String, String)>,
    _form: FormData,
) -> Result<Response, PanelError> {
    let records = p.records(&resource)?;
    p.authorize(&records, Ability::Update)?;
    let meta = records.meta();
    let id = records.parse_id(&id)?;
    let audit: i64 = audit.parse().map_err(|_| PanelError::NotFound)?;
    let href = record_href(&p, meta, &id.display());
    match records.restore_version(id, audit).await {
        Ok(_) => Ok(p.redirect_with(
            &href,
            Flash::success(format!("Restored the version of entry {audit}.")),
        )),
        Err(platform_core::Error::Validation(e)) => Ok(p.redirect_with(
            &href,
            Flash::error(
                e.iter()
                    .map(|f| f.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        )),
        Err(platform_core::Error::Conflict { message, .. }) => {
            Ok(p.redirect_with(&href, Flash::error(message)))
        }
        Err(e) => Err(e.into()),
    }
}
