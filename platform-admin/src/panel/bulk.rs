//! Bulk actions on a list: delete, restore, force delete, export as CSV,
//! and host-defined actions.
//!
//! A bulk action applies either to the rows ticked on the page (their ids
//! are posted, at most one page) or to **every record matching the list's
//! search and filters**: then the list's query string is posted, never a
//! list of ids, and the action runs on the query server-side (`delete_where`
//! for deletes; exports stream page by page). Every row changed is audited
//! by the core, tagged `bulk`.
//!
//! Host actions are [`BulkAction`]s: a name, a label, the permission needed
//! and an async function of a [`BulkInput`] returning the message to show.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform_core::error::FieldErrors;
use platform_core::permission::Ability;
use platform_core::query::{FilterOp, ListQuery, MAX_PAGE_SIZE, Paging, Trashed};
use platform_core::repo::{Page, Record, Records};
use platform_core::resource::FieldMeta;
use platform_core::value::Value;
use serde::Serialize;

use super::error::PanelError;
use super::fields::Viewer;
use super::flash::Flash;
use super::form::FormData;
use super::format::{self, csv_safe, push_csv_field};
use super::list::Caps;
use super::query::parse_query_string;
use super::render::Panel;

/// What a host bulk action returns: the message to show, or an error
/// (validation and conflict messages are shown; a missing permission is a
/// 403 page).
pub type BulkFuture<'a> = Pin<Box<dyn Future<Output = platform_core::Result<String>> + Send + 'a>>;

/// A host bulk action's function.
pub type BulkFn = for<'a> fn(&'a BulkInput) -> BulkFuture<'a>;

/// The records a bulk action applies to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Selection {
    /// The rows ticked on the page.
    Ids(Vec<Value>),
    /// Every record matching this query's search and filters.
    Query(ListQuery),
}

/// What a bulk action gets: the resource's records (acted on by the
/// signed-in user) and the selection.
#[derive(Debug, Clone)]
pub struct BulkInput {
    /// The records, with the user's context.
    pub records: Records,
    /// Which records.
    pub selection: Selection,
}

impl BulkInput {
    /// The selection as a query (ids become a primary-key `in` filter), for
    /// `update_where`, `delete_where` or `list`.
    pub fn query(&self) -> ListQuery {
        selection_query(&self.records, &self.selection)
    }
}

fn selection_query(records: &Records, selection: &Selection) -> ListQuery {
    match selection {
        Selection::Query(q) => q.clone(),
        Selection::Ids(ids) => ListQuery::new()
            .filter(
                records.meta().primary_key().name(),
                FilterOp::In(ids.iter().map(Value::display).collect()),
            )
            .trashed(Trashed::With),
    }
}

/// A host-defined bulk action.
#[derive(Clone, Copy)]
pub struct BulkAction {
    name: &'static str,
    label: &'static str,
    resource: Option<&'static str>,
    ability: Ability,
    permission: Option<&'static str>,
    confirm: bool,
    run: BulkFn,
}

impl fmt::Debug for BulkAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkAction")
            .field("name", &self.name)
            .field("resource", &self.resource)
            .field("ability", &self.ability)
            .field("permission", &self.permission)
            .finish_non_exhaustive()
    }
}

impl BulkAction {
    /// An action called `name` (an identifier) shown as `label`, on every
    /// resource, needing the resource's `update_` permission and a
    /// confirmation.
    pub const fn new(name: &'static str, label: &'static str, run: BulkFn) -> Self {
        Self {
            name,
            label,
            resource: None,
            ability: Ability::Update,
            permission: None,
            confirm: true,
            run,
        }
    }
    /// Only on the resource with this plural or singular name.
    pub const fn for_resource(mut self, name: &'static str) -> Self {
        self.resource = Some(name);
        self
    }
    /// Needs the resource's permission for `ability` (default: update).
    pub const fn ability(mut self, ability: Ability) -> Self {
        self.ability = ability;
        self
    }
    /// Needs `permission` as well.
    pub const fn permission(mut self, permission: &'static str) -> Self {
        self.permission = Some(permission);
        self
    }
    /// Whether to ask for confirmation first (default: yes).
    pub const fn confirm(mut self, confirm: bool) -> Self {
        self.confirm = confirm;
        self
    }
    /// The name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
    /// The label.
    pub const fn label(&self) -> &'static str {
        self.label
    }
    fn applies_to(&self, records: &Records) -> bool {
        let m = records.meta();
        self.resource
            .is_none_or(|r| r == m.plural() || r == m.name())
    }
    fn allowed(&self, p: &Panel, records: &Records) -> bool {
        p.can_on(records, self.ability) && self.permission.is_none_or(|perm| p.can(perm))
    }
}

inventory::collect!(BulkAction);

/// The registered actions and `extra`; a later one replaces an earlier one
/// of the same name.
pub(crate) fn collect(extra: &[BulkAction]) -> Vec<BulkAction> {
    let mut out: Vec<BulkAction> = Vec::new();
    for a in inventory::iter::<BulkAction>
        .into_iter()
        .copied()
        .chain(extra.iter().copied())
    {
        match out
            .iter()
            .position(|o| o.name == a.name && o.resource == a.resource)
        {
            Some(i) => out[i] = a,
            None => out.push(a),
        }
    }
    out
}

/// An action in the bulk menu.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OptionView {
    pub(crate) value: String,
    pub(crate) label: String,
    pub(crate) confirm: bool,
    pub(crate) danger: bool,
}

/// The bulk actions the user may run on this list.
pub(crate) fn options(
    p: &Panel,
    records: &Records,
    caps: &Caps,
    trashed: Trashed,
) -> Vec<OptionView> {
    let soft = records.meta().is_soft_delete();
    let mut out = Vec::new();
    let mut add = |value: &str, label: &str, confirm: bool, danger: bool| {
        out.push(OptionView {
            value: value.to_owned(),
            label: label.to_owned(),
            confirm,
            danger,
        });
    };
    if caps.delete_any && trashed != Trashed::Only {
        add("delete", "Delete", true, true);
    }
    if soft && caps.restore && trashed != Trashed::Without {
        add("restore", "Restore", false, false);
    }
    if soft && caps.force_delete {
        add("force_delete", "Delete for good", true, true);
    }
    if caps.export && records.meta().exportable() {
        let exporter = !p
            .platform
            .contributions::<super::export::PanelExport>()
            .is_empty();
        add(
            "export",
            if exporter { "Export" } else { "Export as CSV" },
            false,
            false,
        );
    }
    for a in &p.shared.bulk_actions {
        if a.applies_to(records) && a.allowed(p, records) {
            add(&format!("custom:{}", a.name), a.label, a.confirm, false);
        }
    }
    out
}

enum Kind<'a> {
    Delete,
    Restore,
    ForceDelete,
    Export,
    Custom(&'a BulkAction),
}

#[derive(Debug, Serialize)]
struct Hidden {
    name: String,
    value: String,
}

#[derive(Debug, Serialize)]
struct ConfirmPage {
    heading: String,
    message: String,
    action: String,
    button: String,
    danger: bool,
    cancel: String,
    hidden: Vec<Hidden>,
}

/// `POST /{resource}/bulk`: `action`, `scope` (`selected` or `all`), `ids`
/// (repeated, the ticked rows), `query` (the list's query string, for
/// `all`), `back`, and `confirmed=1` once confirmed.
pub(crate) async fn run(
    p: Panel,
    Path(resource): Path<String>,
    form: FormData,
) -> Result<Response, PanelError> {
    let records = p.records(&resource)?;
    p.authorize(&records, Ability::ViewAny)?;
    let meta = records.meta();
    let list = format!("{}/{}", p.base(), meta.plural());
    let back = p.safe_back(form.get("back"), list.clone());
    let action = form.get("action").unwrap_or_default();
    let kind = match action {
        "delete" => Kind::Delete,
        "restore" if meta.is_soft_delete() => Kind::Restore,
        "force_delete" if meta.is_soft_delete() => Kind::ForceDelete,
        "export" => Kind::Export,
        other => match other.strip_prefix("custom:").and_then(|n| {
            p.shared
                .bulk_actions
                .iter()
                .find(|a| a.name == n && a.applies_to(&records))
        }) {
            Some(a) => Kind::Custom(a),
            None => {
                return Ok(p.redirect_with(&back, Flash::error("Choose a bulk action.")));
            }
        },
    };
    // Refuse what the user may not do, before reading anything else.
    match kind {
        Kind::Delete => p.authorize(&records, Ability::DeleteAny)?,
        Kind::Restore => p.authorize(&records, Ability::Restore)?,
        Kind::ForceDelete => p.authorize(&records, Ability::ForceDelete)?,
        Kind::Export => p.authorize(&records, Ability::Export)?,
        Kind::Custom(a) => {
            p.authorize(&records, a.ability)?;
            if let Some(perm) = a.permission {
                p.require(perm)?;
            }
        }
    }
    let selection = if form.get("scope") == Some("all") {
        match parse_query_string(meta, form.get("query").unwrap_or_default()) {
            Ok(q) => Selection::Query(q),
            Err(e) => return Ok(p.redirect_with(&back, Flash::error(errors_text(&e)))),
        }
    } else {
        let mut ids = Vec::new();
        for raw in form.all("ids") {
            if ids.len() >= MAX_PAGE_SIZE as usize {
                return Err(PanelError::BadRequest(format!(
                    "select at most {MAX_PAGE_SIZE} rows, or apply the action to all matching records"
                )));
            }
            ids.push(records.parse_id(raw)?);
        }
        if ids.is_empty() {
            return Ok(p.redirect_with(&back, Flash::error("Select at least one row.")));
        }
        Selection::Ids(ids)
    };
    let needs_confirm = match kind {
        Kind::Delete | Kind::ForceDelete => true,
        Kind::Custom(a) => a.confirm,
        Kind::Restore | Kind::Export => false,
    };
    if needs_confirm && form.get("confirmed") != Some("1") {
        return confirm(&p, &records, &kind, &selection, &form, &back).await;
    }
    let label = |n: u64| {
        if n == 1 {
            meta.label_text()
        } else {
            meta.plural_label()
        }
    };
    let result: platform_core::Result<String> = match kind {
        Kind::Delete => {
            let q = selection_query(&records, &selection).trashed(Trashed::Without);
            records
                .delete_where(&q)
                .await
                .map(|n| format!("Deleted {n} {}.", label(n)))
        }
        // One audited set operation each, in core (the API's too).
        Kind::Restore => records
            .restore_where(&selection_query(&records, &selection))
            .await
            .map(|n| format!("Restored {n} {}.", label(n))),
        Kind::ForceDelete => records
            .force_delete_where(&selection_query(&records, &selection))
            .await
            .map(|n| format!("Deleted {n} {} for good.", label(n))),
        Kind::Export => {
            let hook = p
                .platform
                .contributions::<super::export::PanelExport>()
                .first()
                .map(|h| **h);
            match hook {
                Some(hook) => {
                    let query = selection_query(&records, &selection);
                    let format = form.get("format").unwrap_or("csv").to_owned();
                    let columns: Vec<String> =
                        form.all("export_columns").map(str::to_owned).collect();
                    let columns = (!columns.is_empty()).then_some(columns);
                    match (hook.run)(&p.platform, records, query, &format, columns).await {
                        Ok(super::export::PanelExportOutcome::File(res)) => return Ok(res),
                        Ok(super::export::PanelExportOutcome::Queued(message)) => Ok(message),
                        Err(e) => Err(e),
                    }
                }
                None => match export(&p, records, &selection).await {
                    Ok(res) => return Ok(res),
                    Err(e) => Err(e),
                },
            }
        }
        Kind::Custom(a) => {
            let input = BulkInput {
                records: records.clone(),
                selection,
            };
            (a.run)(&input).await
        }
    };
    match result {
        Ok(message) => Ok(p.redirect_with(&back, Flash::success(message))),
        Err(platform_core::Error::Validation(e)) => {
            Ok(p.redirect_with(&back, Flash::error(errors_text(&e))))
        }
        Err(platform_core::Error::Conflict { message, .. }) => {
            Ok(p.redirect_with(&back, Flash::error(message)))
        }
        Err(e) => Err(e.into()),
    }
}

fn errors_text(e: &FieldErrors) -> String {
    e.iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn confirm(
    p: &Panel,
    records: &Records,
    kind: &Kind<'_>,
    selection: &Selection,
    form: &FormData,
    back: &str,
) -> Result<Response, PanelError> {
    let meta = records.meta();
    let n = match selection {
        Selection::Ids(ids) => platform_core::money::group_thousands(ids.len() as u64),
        Selection::Query(q) => {
            let q = match kind {
                Kind::Delete => q.clone().trashed(Trashed::Without),
                _ => q.clone(),
            };
            format::count(records.count(&q).await?)
        }
    };
    let (verb, danger) = match kind {
        Kind::Delete => ("Delete", true),
        Kind::ForceDelete => ("Delete for good", true),
        Kind::Custom(a) => (a.label, false),
        Kind::Restore => ("Restore", false),
        Kind::Export => ("Export", false),
    };
    let what = if matches!(selection, Selection::Query(_)) {
        format!("all {n} matching {}", meta.plural_label())
    } else {
        format!("{n} selected {}", meta.plural_label())
    };
    let page = ConfirmPage {
        heading: format!("{verb} {what}?"),
        message: match kind {
            Kind::ForceDelete => "They will be removed for good; this cannot be undone.".into(),
            Kind::Delete if meta.is_soft_delete() => {
                "They can be restored later from the deleted records.".into()
            }
            Kind::Delete => "This cannot be undone.".into(),
            _ => "Please confirm.".into(),
        },
        action: format!("{}/{}/bulk", p.base(), meta.plural()),
        button: verb.to_owned(),
        danger,
        cancel: back.to_owned(),
        hidden: form
            .0
            .iter()
            .filter(|(k, _)| k != "_csrf" && k != "confirmed")
            .map(|(k, v)| Hidden {
                name: k.clone(),
                value: v.clone(),
            })
            .collect(),
    };
    p.render("confirm.html", &page.heading, &page).await
}

/// The exported columns: every field but hidden and encrypted ones
/// (plaintext of encrypted fields never leaves through an export).
fn export_fields(records: &Records) -> Vec<(usize, &'static FieldMeta)> {
    records
        .meta()
        .field_list()
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.is_hidden() && !f.is_encrypted())
        .collect()
}

struct ExportState {
    records: Records,
    query: ListQuery,
    fields: Vec<(usize, &'static FieldMeta)>,
    viewer: Viewer,
    /// The first page, read before the response starts.
    first: Option<Page<Record>>,
    /// `None` when done; `Some(cursor)` for the next page.
    next: Option<Option<String>>,
    header: bool,
}

fn csv_cell(viewer: Viewer, f: &FieldMeta, v: &Value) -> String {
    if f.is_pii() && !viewer.pii && !v.is_null() {
        return viewer.shown(f, v).0;
    }
    match v {
        Value::Null => String::new(),
        Value::Json(j) => j.to_string(),
        other => other.display(),
    }
}

impl ExportState {
    fn header_line(&self) -> String {
        let mut line = String::new();
        for (j, (_, f)) in self.fields.iter().enumerate() {
            if j > 0 {
                line.push(',');
            }
            push_csv_field(&mut line, f.name());
        }
        line.push_str("\r\n");
        line
    }

    /// The CSV lines of `page`; remembers where the next page starts.
    fn lines(&mut self, page: Page<Record>) -> String {
        let mut out = String::with_capacity(page.items.len() * 64);
        for r in &page.items {
            for (j, (i, f)) in self.fields.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                let text = csv_cell(self.viewer, f, &r.values()[*i]);
                push_csv_field(&mut out, &csv_safe(&text));
            }
            out.push_str("\r\n");
        }
        self.next = if page.has_more {
            page.next_cursor.map(Some)
        } else {
            None
        };
        out
    }
}

fn export_page_query(query: &ListQuery, after: Option<String>) -> ListQuery {
    let mut q = query.clone();
    q.paging = Paging::Cursor {
        size: MAX_PAGE_SIZE,
        after,
    };
    q
}

/// Streams the selection as CSV, a page at a time (memory does not grow
/// with the number of rows). The first page is read before answering, so
/// an invalid query is an error, not a truncated file. Cells a spreadsheet
/// would run as formulas are prefixed with `'`; personal data is masked
/// without `view_pii`; encrypted fields are never exported.
async fn export(
    p: &Panel,
    records: Records,
    selection: &Selection,
) -> platform_core::Result<Response> {
    let meta = records.meta();
    let mut query = selection_query(&records, selection);
    query.count = false;
    let first = records.list(&export_page_query(&query, None)).await?;
    let state = ExportState {
        fields: export_fields(&records),
        records,
        query,
        viewer: Viewer::of(p),
        first: Some(first),
        next: None,
        header: false,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        if !st.header {
            st.header = true;
            return Some((
                Ok::<Bytes, std::io::Error>(Bytes::from(st.header_line())),
                st,
            ));
        }
        if let Some(page) = st.first.take() {
            let out = st.lines(page);
            return Some((Ok(Bytes::from(out)), st));
        }
        let after = st.next.take()?;
        match st.records.list(&export_page_query(&st.query, after)).await {
            Ok(page) => {
                let out = st.lines(page);
                Some((Ok(Bytes::from(out)), st))
            }
            Err(e) => {
                tracing::error!(error = %e, "export stopped");
                Some((Err(std::io::Error::other("export failed")), st))
            }
        }
    });
    let mut res = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let name = format!(
        "attachment; filename=\"{}-{}.csv\"",
        meta.plural(),
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    );
    if let Ok(v) = HeaderValue::try_from(name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
