//! `GET /{resource}`: the list page.
//!
//! One query for the page (keyset), one bounded count (exact up to the
//! core's threshold, estimated above it), one query per `belongs_to`
//! column for the titles of the page's rows; permissions are checked once
//! per page, never per row. With `X-Panel-Fragment: list` only the table
//! region is rendered (the script's partial refresh).

use std::collections::HashMap;

use axum::extract::Path;
use axum::response::Response;
use platform_core::error::FieldErrors;
use platform_core::permission::Ability;
use platform_core::query::{Direction, Trashed};
use platform_core::repo::{Page, Record, Records};
use platform_core::resource::{FieldMeta, ResourceMeta};
use platform_core::value::{FieldType, Value};
use serde::Serialize;

use super::bulk;
use super::error::PanelError;
use super::fields::OptionView;
use super::fields::{Viewer, relation_titles};
use super::format::{self, encode_component, query_string, with_query};
use super::prefs;
use super::query::{self, ListParams, MAX_TRAIL};
use super::render::Panel;

/// Page sizes offered.
const PAGE_SIZES: [u32; 4] = [10, 25, 50, 100];
/// The longest text shown in a table cell.
const CELL_MAX: usize = 120;

#[derive(Debug, Serialize)]
pub(crate) struct ResourceView {
    pub(crate) name: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) label: &'static str,
    pub(crate) plural_label: &'static str,
    pub(crate) list_href: String,
    pub(crate) new_href: String,
    pub(crate) soft_delete: bool,
}

impl ResourceView {
    pub(crate) fn of(p: &Panel, meta: &'static ResourceMeta) -> Self {
        let list_href = format!("{}/{}", p.base(), meta.plural());
        Self {
            name: meta.name(),
            plural: meta.plural(),
            label: meta.label_text(),
            plural_label: meta.plural_label(),
            new_href: format!("{list_href}/new"),
            list_href,
            soft_delete: meta.is_soft_delete(),
        }
    }
}

/// What the user may do on this resource, checked once per page.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Caps {
    pub(crate) create: bool,
    pub(crate) view: bool,
    pub(crate) update: bool,
    pub(crate) delete: bool,
    pub(crate) delete_any: bool,
    pub(crate) restore: bool,
    pub(crate) force_delete: bool,
    pub(crate) export: bool,
}

impl Caps {
    pub(crate) fn of(p: &Panel, records: &Records) -> Self {
        let can = |a| p.can_on(records, a);
        Self {
            create: can(Ability::Create),
            view: can(Ability::View),
            update: can(Ability::Update),
            delete: can(Ability::Delete),
            delete_any: can(Ability::DeleteAny),
            restore: can(Ability::Restore),
            force_delete: can(Ability::ForceDelete),
            export: can(Ability::Export),
        }
    }
}

#[derive(Debug, Serialize)]
struct ColumnView {
    name: &'static str,
    label: &'static str,
    sort_href: Option<String>,
    sorted: &'static str,
    visible: bool,
    class: String,
}

#[derive(Debug, Serialize)]
struct CellView {
    text: String,
    href: Option<String>,
    class: String,
    col: &'static str,
}

#[derive(Debug, Serialize)]
struct RowView {
    id: String,
    href: Option<String>,
    edit_href: Option<String>,
    delete_href: Option<String>,
    restore_href: Option<String>,
    force_delete_href: Option<String>,
    deleted: bool,
    cells: Vec<CellView>,
}

#[derive(Debug, Serialize)]
struct FilterView {
    key: String,
    label: &'static str,
    kind: &'static str,
    value: String,
    options: Vec<OptionView>,
    min_key: String,
    max_key: String,
    min: String,
    max: String,
    input: &'static str,
    step: &'static str,
    lookup: String,
    title: String,
}

#[derive(Debug, Serialize, Default)]
struct Pager {
    first: Option<String>,
    prev: Option<String>,
    next: Option<String>,
    page_no: u32,
    from: u64,
    to: u64,
}

#[derive(Debug, Serialize)]
struct MessageView {
    field: String,
    message: String,
}

#[derive(Debug, Serialize)]
struct ListPage {
    resource: ResourceView,
    can: Caps,
    columns: Vec<ColumnView>,
    rows: Vec<RowView>,
    filters: Vec<FilterView>,
    search: String,
    searchable: bool,
    trashed: &'static str,
    sort: String,
    page_size: u32,
    page_sizes: Vec<OptionView>,
    total: Option<String>,
    total_exact: bool,
    pager: Pager,
    errors: Vec<MessageView>,
    bulk: Vec<bulk::OptionView>,
    /// The formats of the export pipeline, when one is contributed.
    export_formats: &'static [(&'static str, &'static str)],
    query: String,
    back: String,
    reset_href: String,
    filtered: bool,
}

/// Whether a column shows by default (long text, JSON, secrets and the
/// managed timestamps start hidden).
fn shown_by_default(f: &FieldMeta) -> bool {
    !(matches!(f.ty(), FieldType::Text | FieldType::Json) || f.is_encrypted() || f.is_managed())
}

fn trashed_name(t: Trashed) -> &'static str {
    match t {
        Trashed::Without => "without",
        Trashed::With => "with",
        Trashed::Only => "only",
    }
}

/// `GET /{resource}`.
pub(crate) async fn index(p: Panel, Path(resource): Path<String>) -> Result<Response, PanelError> {
    let records = p.records(&resource)?;
    p.authorize(&records, Ability::ViewAny)?;
    let meta = records.meta();
    let params = query::parse(meta, p.query_pairs()?);
    let (page, errors) = match &params.query {
        Ok(q) => match records.list(q).await {
            Ok(page) => (Some(page), FieldErrors::default()),
            Err(platform_core::Error::Validation(e)) => (None, e),
            Err(e) => return Err(e.into()),
        },
        Err(e) => (None, e.clone()),
    };
    let titles = match &page {
        Some(pg) => relation_column_titles(&p, meta, &pg.items).await,
        None => HashMap::new(),
    };
    let filters = filter_views(&p, meta, &params).await;
    let chosen = prefs::visible_columns(&p, meta).await;
    let view = build(
        &p,
        &records,
        &params,
        page.as_ref(),
        &errors,
        &titles,
        filters,
        chosen,
    );
    let template = if p.fragment.as_deref() == Some("list") {
        "resource/table.html"
    } else {
        "resource/list.html"
    };
    p.render(template, meta.plural_label(), &view).await
}

/// The titles of every `belongs_to` column's targets on this page: one
/// query per relation.
async fn relation_column_titles(
    p: &Panel,
    meta: &'static ResourceMeta,
    rows: &[Record],
) -> HashMap<usize, HashMap<String, String>> {
    let mut out = HashMap::new();
    for (i, f) in meta.field_list().iter().enumerate() {
        if f.belongs_to_meta().is_none() || f.is_hidden() {
            continue;
        }
        let ids: Vec<Value> = rows.iter().map(|r| r.values()[i].clone()).collect();
        out.insert(i, relation_titles(p, f, &ids).await);
    }
    out
}

async fn filter_views(
    p: &Panel,
    meta: &'static ResourceMeta,
    params: &ListParams,
) -> Vec<FilterView> {
    let vis = Viewer::of(p).visibility();
    let mut out = Vec::new();
    for f in meta.field_list() {
        // The filter form offers the declared filters the viewer may see.
        if !f.is_filter() || !vis.can_filter(f) {
            continue;
        }
        let key = format!("filter[{}]", f.name());
        let value = params.value(&key).to_owned();
        let mut v = FilterView {
            min_key: format!("{key}[gte]"),
            max_key: format!("{key}[lte]"),
            min: String::new(),
            max: String::new(),
            label: f.label_text(),
            kind: "text",
            value,
            options: Vec::new(),
            input: "text",
            step: "",
            lookup: String::new(),
            title: String::new(),
            key,
        };
        v.min = params.value(&v.min_key).to_owned();
        v.max = params.value(&v.max_key).to_owned();
        if let Some(target) = f.belongs_to_meta() {
            v.kind = "relation";
            if target.in_admin() {
                v.lookup = format!("{}/{}/lookup", p.base(), target.plural());
            }
            if let Ok(id) = Value::parse(f.ty(), &v.value)
                && !id.is_null()
            {
                v.title = relation_titles(p, f, &[id])
                    .await
                    .remove(v.value.as_str())
                    .unwrap_or_default();
            }
        } else if !f.choice_list().is_empty() {
            v.kind = "select";
            v.options = f
                .choice_list()
                .iter()
                .map(|c| OptionView {
                    value: (*c).to_owned(),
                    label: (*c).to_owned(),
                    selected: *c == v.value,
                })
                .collect();
        } else if f.ty() == FieldType::Bool {
            v.kind = "bool";
        } else if f.ty().is_ordered() {
            v.kind = "range";
            (v.input, v.step) = match f.ty() {
                FieldType::Date => ("date", ""),
                FieldType::DateTime => ("datetime-local", "1"),
                FieldType::F64 => ("number", "any"),
                _ if f.is_money() => ("number", "0.01"),
                _ => ("number", "1"),
            };
        }
        out.push(v);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn build(
    p: &Panel,
    records: &Records,
    params: &ListParams,
    page: Option<&Page<Record>>,
    errors: &FieldErrors,
    titles: &HashMap<usize, HashMap<String, String>>,
    filters: Vec<FilterView>,
    chosen: Option<Vec<String>>,
) -> ListPage {
    let meta = records.meta();
    let caps = Caps::of(p, records);
    let viewer = Viewer::of(p);
    let resource = ResourceView::of(p, meta);
    let list = resource.list_href.clone();
    let query = params.query.as_ref().ok();
    let trashed = query.map_or(Trashed::Without, |q| q.trashed);
    let sort = query.and_then(|q| q.sort.clone());
    let size = query.map_or(platform_core::query::DEFAULT_PAGE_SIZE, |q| q.paging.size());
    let paging = ["page[after]", "page[trail]", "page[n]"];

    // Columns: every field the panel shows, in order; visibility from the
    // user's preference or the defaults.
    let mut columns = Vec::new();
    let mut col_fields: Vec<(usize, &'static FieldMeta, bool)> = Vec::new();
    for (i, f) in meta.field_list().iter().enumerate() {
        if f.is_hidden() {
            continue;
        }
        let visible = chosen
            .as_ref()
            .map_or_else(|| shown_by_default(f), |c| c.iter().any(|n| n == f.name()));
        let sortable = viewer.visibility().can_sort(f) && !f.is_encrypted();
        let sorted = match &sort {
            Some((n, Direction::Asc)) if n == f.name() => "asc",
            Some((n, Direction::Desc)) if n == f.name() => "desc",
            _ => "",
        };
        let sort_href = sortable.then(|| {
            let value = if sorted == "asc" {
                format!("-{}", f.name())
            } else {
                f.name().to_owned()
            };
            let mut drop = paging.to_vec();
            drop.push("sort");
            let set = [("sort", value.as_str())];
            with_query(&list, &query_string(params.pairs_with(&drop, &set)))
        });
        let numeric = matches!(f.ty(), FieldType::I32 | FieldType::I64 | FieldType::F64)
            && f.belongs_to_meta().is_none();
        let mut class = String::new();
        if numeric {
            class.push_str("num");
        }
        if !visible {
            class.push_str(" is-hidden");
        }
        columns.push(ColumnView {
            name: f.name(),
            label: f.label_text(),
            sort_href,
            sorted,
            visible,
            class: class.trim().to_owned(),
        });
        col_fields.push((i, f, visible));
    }

    // Rows.
    let title_field = meta.title_field().name();
    let deleted_i = meta.deleted_at().and_then(|d| meta.field_index(d.name()));
    let empty = HashMap::new();
    let rows: Vec<RowView> = page
        .map(|pg| pg.items.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let id = r.id().display();
            let id_enc = encode_component(&id);
            let href = format!("{list}/{id_enc}");
            let deleted = deleted_i.is_some_and(|i| !r.values()[i].is_null());
            let cells = col_fields
                .iter()
                .map(|&(i, f, visible)| {
                    let v = &r.values()[i];
                    let (mut text, cls) = viewer.shown(f, v);
                    let mut link = None;
                    if let Some(target) = f.belongs_to_meta()
                        && !v.is_null()
                    {
                        let key = v.display();
                        if let Some(t) = titles.get(&i).unwrap_or(&empty).get(&key) {
                            text.clone_from(t);
                            if target.in_admin() {
                                link = Some(format!(
                                    "{}/{}/{}",
                                    p.base(),
                                    target.plural(),
                                    encode_component(&key)
                                ));
                            }
                        }
                    } else if caps.view && (f.is_primary_key() || f.name() == title_field) {
                        link = Some(href.clone());
                    }
                    if matches!(f.ty(), FieldType::Text | FieldType::Json) {
                        text = format::truncate(&text, CELL_MAX);
                    }
                    let mut class = cls.to_owned();
                    if !visible {
                        class.push_str(" is-hidden");
                    }
                    CellView {
                        text,
                        href: link,
                        class: class.trim().to_owned(),
                        col: f.name(),
                    }
                })
                .collect();
            RowView {
                edit_href: (caps.update && !deleted).then(|| format!("{href}/edit")),
                delete_href: (caps.delete && !deleted).then(|| format!("{href}/delete")),
                restore_href: (deleted && caps.restore).then(|| format!("{href}/restore")),
                force_delete_href: (meta.is_soft_delete() && caps.force_delete)
                    .then(|| format!("{href}/force-delete")),
                href: caps.view.then_some(href),
                deleted,
                id,
                cells,
            }
        })
        .collect();

    // Paging: keyset links; "previous" walks back the trail of cursors.
    let mut pager = Pager {
        page_no: params.page_no,
        ..Pager::default()
    };
    if let Some(pg) = page {
        let from = u64::from(params.page_no.saturating_sub(1)) * u64::from(size);
        pager.from = if pg.items.is_empty() { 0 } else { from + 1 };
        pager.to = from + pg.items.len() as u64;
        let first = with_query(&list, &query_string(params.pairs_with(&paging, &[])));
        if params.after.is_some() {
            pager.prev = Some(match params.trail.split_last() {
                Some((prev, rest)) => {
                    let trail = rest.join(".");
                    let n = params.page_no.saturating_sub(1).max(1).to_string();
                    let set = [
                        ("page[after]", prev.as_str()),
                        ("page[trail]", trail.as_str()),
                        ("page[n]", n.as_str()),
                    ];
                    with_query(&list, &query_string(params.pairs_with(&paging, &set)))
                }
                None => first.clone(),
            });
            pager.first = Some(first);
        }
        if pg.has_more
            && let Some(next) = &pg.next_cursor
        {
            let mut trail: Vec<&str> = params.trail.iter().map(String::as_str).collect();
            if let Some(a) = &params.after {
                trail.push(a);
            }
            if trail.len() > MAX_TRAIL {
                trail.drain(..trail.len() - MAX_TRAIL);
            }
            let trail = trail.join(".");
            let n = (params.page_no + 1).to_string();
            let mut set = vec![("page[after]", next.as_str()), ("page[n]", n.as_str())];
            if !trail.is_empty() {
                set.push(("page[trail]", trail.as_str()));
            }
            pager.next = Some(with_query(
                &list,
                &query_string(params.pairs_with(&paging, &set)),
            ));
        }
    }

    let total = page.and_then(|pg| pg.total);
    let base_query = query_string(params.pairs_with(&paging, &[]));
    let back = with_query(&list, &base_query);
    let bulk = bulk::options(p, records, &caps, trashed);
    let export_formats = p
        .platform
        .contributions::<super::export::PanelExport>()
        .first()
        .map_or(&[][..], |e| e.formats);
    let filtered = params
        .base
        .iter()
        .any(|(k, _)| k.starts_with("filter[") || k == "search" || k == "trashed");
    ListPage {
        export_formats,
        can: caps,
        columns,
        rows,
        filters,
        search: params.value("search").to_owned(),
        searchable: !Viewer::of(p).visibility().search_fields(meta).is_empty(),
        trashed: trashed_name(trashed),
        sort: params.value("sort").to_owned(),
        page_size: size,
        page_sizes: PAGE_SIZES
            .iter()
            .map(|n| OptionView {
                value: n.to_string(),
                label: n.to_string(),
                selected: *n == size,
            })
            .collect(),
        total: total.map(format::count),
        total_exact: total.is_some_and(|t| t.is_exact()),
        pager,
        errors: errors
            .iter()
            .map(|e| MessageView {
                field: e.field.clone(),
                message: e.message.clone(),
            })
            .collect(),
        bulk,
        query: base_query,
        back,
        reset_href: list,
        filtered,
        resource,
    }
}
