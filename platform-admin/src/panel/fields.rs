//! Fields on pages: what a viewer may see of a value (personal data masked
//! without `view_pii`, encrypted values hidden without `view_encrypted`),
//! the form inputs generated from field types, reading a posted form back
//! into [`Changes`], and relation titles fetched in one query per relation.

use std::collections::HashMap;

use platform_core::error::FieldErrors;
use platform_core::permission::{Ability, VIEW_ENCRYPTED, VIEW_PII};
use platform_core::query::{FilterOp, ListQuery, MAX_PAGE_SIZE};
use platform_core::repo::{Changes, Record, mask_pii};
use platform_core::resource::{FieldMeta, ResourceMeta};
use platform_core::value::{FieldType, Value};
use platform_core::visibility::Visibility;
use serde::Serialize;

use super::form::FormData;
use super::format::{self, SECRET_MASK};
use super::render::Panel;

/// What the viewer may see.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Viewer {
    pub(crate) pii: bool,
    pub(crate) secret: bool,
}

impl Viewer {
    pub(crate) fn of(p: &Panel) -> Self {
        Self {
            pii: p.can(VIEW_PII),
            secret: p.can(VIEW_ENCRYPTED),
        }
    }

    /// The core's rules for what this viewer sees.
    pub(crate) fn visibility(self) -> Visibility {
        Visibility::new(self.pii, self.secret)
    }

    /// A value as this viewer may see it, with a CSS class (`num`, `bool`,
    /// `masked`, `null` or none).
    pub(crate) fn shown(self, f: &FieldMeta, v: &Value) -> (String, &'static str) {
        if f.is_encrypted() && !self.secret {
            return (SECRET_MASK.to_owned(), "masked");
        }
        if v.is_null() {
            return (String::new(), "null");
        }
        if f.is_pii() && !self.pii {
            let masked = match mask_pii(v) {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            return (masked, "masked");
        }
        let class = match f.ty() {
            FieldType::Bool => "bool",
            FieldType::I32 | FieldType::I64 | FieldType::F64 if f.belongs_to_meta().is_none() => {
                "num"
            }
            _ => "",
        };
        (format::display(f, v), class)
    }

    /// A record's title as this viewer may see it.
    pub(crate) fn title(self, r: &Record) -> String {
        let meta = r.meta();
        let f = meta.title_field();
        let v = r.get(f.name()).unwrap_or(&Value::Null);
        let (text, _) = self.shown(f, v);
        if text.is_empty() || f.is_encrypted() && !self.secret {
            format!("{} {}", meta.label_text(), r.id().display())
        } else {
            text
        }
    }
}

/// How a field appears on a form: the core's rule for every writer
/// ([`Visibility::access`]): `Edit` an input, `ReadOnly` shown, `Masked`
/// shown masked, `Omit` not on the form.
pub(crate) use platform_core::visibility::FieldAccess as Access;

/// How `f` appears on a create (`creating`) or edit form for `viewer`.
pub(crate) fn access(f: &FieldMeta, viewer: Viewer, creating: bool) -> Access {
    viewer.visibility().access(f, creating)
}

/// One option of a select.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OptionView {
    pub(crate) value: String,
    pub(crate) label: String,
    pub(crate) selected: bool,
}

/// One form field, as the template draws it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InputView {
    pub(crate) name: &'static str,
    pub(crate) label: &'static str,
    /// `text`, `textarea`, `number`, `money`, `date`, `datetime`, `select`,
    /// `relation`, `checkbox`, `json`, `readonly` or `masked`.
    pub(crate) kind: &'static str,
    pub(crate) value: String,
    pub(crate) checked: bool,
    pub(crate) required: bool,
    pub(crate) options: Vec<OptionView>,
    pub(crate) max_length: Option<u32>,
    pub(crate) step: &'static str,
    pub(crate) errors: Vec<String>,
    pub(crate) lookup: String,
    pub(crate) relation_title: String,
    pub(crate) relation_href: String,
    pub(crate) help: &'static str,
}

fn input_kind(f: &FieldMeta) -> (&'static str, &'static str) {
    if f.belongs_to_meta().is_some() {
        return ("relation", "");
    }
    if !f.choice_list().is_empty() {
        return ("select", "");
    }
    match f.ty() {
        FieldType::Bool => ("checkbox", ""),
        FieldType::I32 | FieldType::I64 if f.is_money() => ("money", "0.01"),
        FieldType::I32 | FieldType::I64 => ("number", "1"),
        FieldType::F64 => ("number", "any"),
        FieldType::Text => ("textarea", ""),
        FieldType::Json => ("json", ""),
        FieldType::Date => ("date", ""),
        FieldType::DateTime => ("datetime", "1"),
        _ => ("text", ""),
    }
}

/// The inputs of a create (no `record`) or edit form. `submitted` is the
/// user's input to keep after a failed save; `errors` are shown per field.
pub(crate) fn inputs(
    p: &Panel,
    meta: &'static ResourceMeta,
    record: Option<&Record>,
    submitted: Option<&FormData>,
    errors: &FieldErrors,
    titles: &HashMap<(&'static str, String), String>,
) -> Vec<InputView> {
    let viewer = Viewer::of(p);
    let creating = record.is_none();
    let mut out = Vec::new();
    for f in meta.field_list() {
        let acc = access(f, viewer, creating);
        if acc == Access::Omit {
            continue;
        }
        let stored = record.and_then(|r| r.get(f.name())).unwrap_or(&Value::Null);
        let (mut kind, step) = input_kind(f);
        let (value, checked) = match acc {
            Access::Masked => {
                kind = "masked";
                let text = if f.is_encrypted() {
                    SECRET_MASK.to_owned()
                } else {
                    viewer.shown(f, stored).0
                };
                (text, false)
            }
            Access::ReadOnly => {
                kind = "readonly";
                (viewer.shown(f, stored).0, false)
            }
            _ => match submitted.and_then(|s| s.get(f.name())) {
                Some(text) => (
                    text.to_owned(),
                    kind == "checkbox" && matches!(text, "true" | "1" | "on"),
                ),
                None => (
                    format::input_value(f, stored),
                    matches!(stored, Value::Bool(true)),
                ),
            },
        };
        let options = if kind == "select" {
            let mut opts: Vec<OptionView> = Vec::with_capacity(f.choice_list().len() + 1);
            if f.is_nullable() || value.is_empty() {
                opts.push(OptionView {
                    value: String::new(),
                    label: "—".to_owned(),
                    selected: value.is_empty(),
                });
            }
            opts.extend(f.choice_list().iter().map(|c| OptionView {
                value: (*c).to_owned(),
                label: (*c).to_owned(),
                selected: *c == value,
            }));
            opts
        } else {
            Vec::new()
        };
        let (lookup, relation_title, relation_href) = match f.belongs_to_meta() {
            Some(t) if kind == "relation" => {
                let title = titles
                    .get(&(f.name(), value.clone()))
                    .cloned()
                    .unwrap_or_default();
                let href = if t.in_admin() && !value.is_empty() && !title.is_empty() {
                    format!(
                        "{}/{}/{}",
                        p.base(),
                        t.plural(),
                        format::encode_component(&value)
                    )
                } else {
                    String::new()
                };
                let lookup = if t.in_admin() {
                    format!("{}/{}/lookup", p.base(), t.plural())
                } else {
                    String::new()
                };
                (lookup, title, href)
            }
            _ => (String::new(), String::new(), String::new()),
        };
        let help = match kind {
            "datetime" => "UTC",
            "money" => "amount",
            "json" => "JSON",
            _ => "",
        };
        out.push(InputView {
            name: f.name(),
            label: f.label_text(),
            kind,
            value,
            checked,
            required: !f.is_nullable() && f.ty() != FieldType::Bool && acc == Access::Edit,
            options,
            max_length: f.max_len().filter(|_| f.ty().is_string()),
            step,
            errors: errors
                .for_field(f.name())
                .map(|e| e.message.clone())
                .collect(),
            lookup,
            relation_title,
            relation_href,
            help,
        });
    }
    out
}

/// Reads a posted form into changes: only fields the viewer may edit, and
/// only those present in the form; unparsable values are kept as field
/// errors in the changes ([`Changes::reject`]), which the write path
/// answers together with its own checks.
pub(crate) fn changes(
    meta: &'static ResourceMeta,
    viewer: Viewer,
    creating: bool,
    form: &FormData,
) -> Changes {
    let mut changes = Changes::new();
    for f in meta.field_list() {
        if access(f, viewer, creating) != Access::Edit {
            continue;
        }
        let Some(text) = form.get(f.name()) else {
            continue;
        };
        match format::parse_input(f, text) {
            Ok(v) => changes.insert(f.name(), v),
            Err(msg) => changes.reject(f.name(), "type", msg),
        }
    }
    changes
}

/// The titles of the records `field` (a `belongs_to`) refers to, by id
/// text: one query for all `ids`, through the target's own records (so its
/// permissions and policy apply). Empty when the viewer may not list the
/// target.
pub(crate) async fn relation_titles(
    p: &Panel,
    field: &FieldMeta,
    ids: &[Value],
) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(target) = field.belongs_to_meta() else {
        return out;
    };
    let Some(records) = p.platform.records(target.plural(), p.ctx()) else {
        return out;
    };
    if !p.can_on(&records, Ability::ViewAny) {
        return out;
    }
    let mut wanted: Vec<String> = ids
        .iter()
        .filter(|v| !v.is_null())
        .map(Value::display)
        .collect();
    wanted.sort();
    wanted.dedup();
    wanted.truncate(MAX_PAGE_SIZE as usize);
    if wanted.is_empty() {
        return out;
    }
    let n = u32::try_from(wanted.len()).unwrap_or(MAX_PAGE_SIZE);
    let query = ListQuery::new()
        .filter(target.primary_key().name(), FilterOp::In(wanted))
        .page_size(n);
    match records.list(&query).await {
        Ok(page) => {
            let viewer = Viewer::of(p);
            for r in &page.items {
                out.insert(r.id().display(), viewer.title(r));
            }
        }
        Err(e) => tracing::debug!(error = %e, "relation titles could not be read"),
    }
    out
}
