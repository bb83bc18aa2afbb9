//! Rules across keys and fields, checked once the attributes are parsed.
//! Every violation is recorded at the token that causes it.

use std::collections::HashMap;

use quote::ToTokens;
use syn::LitStr;

use super::ast::{self, Container, Field};
use super::attr::{Attr, FILTER, SORTABLE, UNIQUE};
use super::naming::is_identifier;
use crate::ctxt::Ctxt;

/// Checks the whole container.
pub(crate) fn check(cx: &Ctxt, cont: &Container<'_>) {
    check_names(cx, cont);
    check_primary_key(cx, cont);
    check_title(cx, cont);
    check_columns(cx, cont);
    for field in &cont.fields {
        check_field(cx, field);
    }
    check_search(cx, cont);
    check_soft_delete(cx, cont);
    super::check_exchange::check(cx, cont);
}

const IDENTIFIER_RULE: &str = "a lower-case identifier (`[a-z_][a-z0-9_]*`, at most 63 characters)";

/// Checks an explicit `key = "..."` at its literal; returns whether it (or
/// the absence of it) is fine.
fn explicit_identifier(cx: &Ctxt, what: &str, attr: &Attr<LitStr>) -> Option<bool> {
    let lit = attr.get()?;
    let ok = is_identifier(&lit.value());
    if !ok {
        cx.error_spanned_by(
            lit,
            format!(
                "resource {what} `{}` must be {IDENTIFIER_RULE}",
                lit.value()
            ),
        );
    }
    Some(ok)
}

fn check_names(cx: &Ctxt, cont: &Container<'_>) {
    let attrs = &cont.attrs;
    let name_ok = explicit_identifier(cx, "name", &attrs.name).unwrap_or_else(|| {
        let name = cont.name();
        let ok = is_identifier(&name);
        if !ok {
            cx.error_spanned_by(
                cont.ident,
                format!(
                    "the resource name `{name}` derived from `{}` must be {IDENTIFIER_RULE}; set `#[resource(name = \"...\")]`",
                    cont.ident
                ),
            );
        }
        ok
    });
    let plural_ok = explicit_identifier(cx, "plural", &attrs.plural).unwrap_or_else(|| {
        let plural = cont.plural();
        let ok = is_identifier(&plural);
        if !ok && name_ok {
            cx.error_spanned_by(
                cont.ident,
                format!(
                    "the plural `{plural}` derived from `{}` must be {IDENTIFIER_RULE}; set `#[resource(plural = \"...\")]`",
                    cont.ident
                ),
            );
        }
        ok
    });
    let table_ok = explicit_identifier(cx, "table", &attrs.table).unwrap_or(plural_ok);
    let table = cont.table();
    if table_ok && table.starts_with("platform_") {
        const RESERVED: &str =
            "uses the prefix `platform_`, which is reserved for the framework's tables";
        match attrs.table.get() {
            Some(lit) => cx.error_spanned_by(lit, format!("resource table `{table}` {RESERVED}")),
            None => cx.error_spanned_by(
                cont.ident,
                format!(
                    "the table `{table}` derived from `{}` {RESERVED}; set `#[resource(table = \"...\")]`",
                    cont.ident
                ),
            ),
        }
    }
}

fn check_primary_key(cx: &Ctxt, cont: &Container<'_>) {
    let mut first: Option<&Field<'_>> = None;
    for field in cont.stored_fields() {
        let Some(key) = field.attrs.primary_key.key() else {
            continue;
        };
        if let Some(first) = first {
            cx.error_spanned_by(
                key,
                format!(
                    "a resource has exactly one primary key: `{}` already is `#[resource(primary_key)]`",
                    first.name()
                ),
            );
        } else {
            first = Some(field);
        }
        if ast::option_inner(field.ty()).is_some() {
            cx.error_spanned_by(
                key,
                "`#[resource(primary_key)]` cannot be an `Option`: a primary key is never null",
            );
        }
    }
    if first.is_none() {
        cx.error_spanned_by(
            cont.ident,
            format!(
                "resource `{}` has no primary key: mark one field `#[resource(primary_key)]`",
                cont.ident
            ),
        );
    }
}

fn check_title(cx: &Ctxt, cont: &Container<'_>) {
    let mut first: Option<&Field<'_>> = None;
    for field in cont.stored_fields() {
        let Some(key) = field.attrs.title.key() else {
            continue;
        };
        match first {
            Some(first) => cx.error_spanned_by(
                key,
                format!(
                    "only one field can be `#[resource(title)]`: `{}` already is",
                    first.name()
                ),
            ),
            None => first = Some(field),
        }
    }
}

fn check_columns(cx: &Ctxt, cont: &Container<'_>) {
    let mut seen: HashMap<String, String> = HashMap::new();
    for field in cont.stored_fields() {
        let column = field.column();
        let at: &dyn ToTokens = match field.attrs.column.get() {
            Some(lit) => lit,
            None => field.ident,
        };
        if !is_identifier(&column) {
            if field.attrs.column.is_set() {
                cx.error_spanned_by(
                    at,
                    format!("resource column `{column}` must be {IDENTIFIER_RULE}"),
                );
            } else {
                cx.error_spanned_by(
                    at,
                    format!(
                        "the column `{column}` of field `{}` must be {IDENTIFIER_RULE}; rename the field or set `#[resource(column = \"...\")]`",
                        field.name()
                    ),
                );
            }
            continue;
        }
        if let Some(other) = seen.get(&column) {
            cx.error_spanned_by(
                at,
                format!("column `{column}` is already used by field `{other}`"),
            );
        } else {
            seen.insert(column, field.name());
        }
    }
}

/// The types a field may have, as the `FieldValue` bound's note lists them.
const FIELD_TYPES: &str = "bool, i32, i64, f64, String, chrono::NaiveDate, chrono::DateTime<Utc>, uuid::Uuid, serde_json::Value, or an Option of one";

const NEEDS_STRING: &str = "requires a `String` or `Option<String>` field";

fn check_field(cx: &Ctxt, field: &Field<'_>) {
    let attrs = &field.attrs;
    if attrs.skip.is_set() {
        // A skipped field is not stored: every other key is meaningless.
        for (key, path) in attrs.keys_except_skip() {
            cx.error_spanned_by(
                path,
                format!(
                    "`#[resource(skip)]` cannot be combined with `{key}`: the field is not stored"
                ),
            );
        }
        return;
    }
    if let Some(hint) = ast::unsupported_type_hint(field.ty()) {
        cx.error_spanned_by(
            field.ty(),
            format!(
                "`{}` cannot be a resource field: {hint} (resource fields are {FIELD_TYPES})",
                ast::type_text(field.ty())
            ),
        );
    }
    let string_like = ast::is_string_like(field.ty());
    if let Some(key) = attrs.encrypted.key() {
        if !string_like {
            cx.error_spanned_by(key, format!("`#[resource(encrypted)]` {NEEDS_STRING}"));
        }
        for (name, attr) in [
            (SORTABLE, &attrs.sortable),
            (FILTER, &attrs.filter),
            (UNIQUE, &attrs.unique),
        ] {
            if let Some(other) = attr.key() {
                cx.error_spanned_by(
                    other,
                    format!("`#[resource(encrypted)]` cannot be combined with `{name}`: encrypted values cannot be sorted, filtered, searched or unique"),
                );
            }
        }
    }
    if !string_like {
        if let Some(key) = attrs.text.key() {
            cx.error_spanned_by(key, format!("`#[resource(text)]` {NEEDS_STRING}"));
        }
        if let Some(key) = attrs.max_length.key() {
            cx.error_spanned_by(key, format!("`#[resource(max_length)]` {NEEDS_STRING}"));
        }
        if let Some(key) = attrs.choices.key() {
            cx.error_spanned_by(key, format!("`#[resource(choices)]` {NEEDS_STRING}"));
        }
        if let Some(key) = attrs.email.key() {
            cx.error_spanned_by(key, format!("`#[resource(email)]` {NEEDS_STRING}"));
        }
        if let Some(key) = attrs.allow_empty.key() {
            cx.error_spanned_by(key, format!("`#[resource(allow_empty)]` {NEEDS_STRING}"));
        }
    }
    if let (Some(key), true) = (attrs.choices.key(), attrs.belongs_to.is_set()) {
        cx.error_spanned_by(
            key,
            "`#[resource(choices)]` cannot be combined with `belongs_to`: the values of a `belongs_to` field are the target's primary keys",
        );
    }
}

fn check_search(cx: &Ctxt, cont: &Container<'_>) {
    let Some(search) = cont.attrs.search.get() else {
        return;
    };
    let mut seen: Vec<String> = Vec::new();
    for ident in search {
        let name = syn::ext::IdentExt::unraw(ident).to_string();
        if seen.contains(&name) {
            cx.error_spanned_by(ident, format!("duplicate `search` field `{name}`"));
            continue;
        }
        seen.push(name.clone());
        match cont.field(&name) {
            None => cx.error_spanned_by(
                ident,
                format!("`search` names `{name}`, which is not a field of `{}`", cont.ident),
            ),
            Some(f) if !f.is_stored() => cx.error_spanned_by(
                ident,
                format!("`search` names `{name}`, which is `#[resource(skip)]` and not stored"),
            ),
            Some(f) if !ast::is_string_like(f.ty()) => cx.error_spanned_by(
                ident,
                format!("`search` field `{name}` must be a `String` or `Option<String>`"),
            ),
            Some(f) if f.attrs.encrypted.is_set() => cx.error_spanned_by(
                ident,
                format!("`search` field `{name}` is `encrypted`: encrypted values cannot be sorted, filtered, searched or unique"),
            ),
            Some(_) => {}
        }
    }
}

fn check_soft_delete(cx: &Ctxt, cont: &Container<'_>) {
    let Some(key) = cont.attrs.soft_delete.key() else {
        return;
    };
    match cont.field("deleted_at").filter(|f| f.is_stored()) {
        None => cx.error_spanned_by(
            key,
            "`#[resource(soft_delete)]` requires a field `deleted_at: Option<DateTime<Utc>>`",
        ),
        Some(f) if !ast::is_optional_date_time(f.ty()) => cx.error_spanned_by(
            f.ty(),
            "`#[resource(soft_delete)]` requires `deleted_at` to be an `Option<DateTime<Utc>>`",
        ),
        Some(_) => {}
    }
}
