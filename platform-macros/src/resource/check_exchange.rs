//! Rules of the import/export switches: the upsert key names a unique,
//! importable field; a field the platform never writes or shows is not
//! switched on explicitly.

use super::ast::Container;
use crate::ctxt::Ctxt;

/// Checks `import(key = ..)` and the fields' `export = true` / `import = true`.
pub(crate) fn check(cx: &Ctxt, cont: &Container<'_>) {
    for field in cont.stored_fields() {
        let attrs = &field.attrs;
        if let (Some(true), Some(key)) = (attrs.import.get(), attrs.import.key()) {
            let why = if attrs.primary_key.is_set() {
                Some("the primary key")
            } else if attrs.read_only.is_set() {
                Some("`read_only`")
            } else if attrs.hidden.is_set() {
                Some("`hidden`")
            } else {
                None
            };
            if let Some(why) = why {
                cx.error_spanned_by(
                    key,
                    format!("`import = true` on a field that is {why}: imports never write it"),
                );
            }
        }
        if let (Some(true), Some(key), true) = (
            attrs.export.get(),
            attrs.export.key(),
            attrs.hidden.is_set(),
        ) {
            cx.error_spanned_by(
                key,
                "`export = true` on a `hidden` field: exports never carry it",
            );
        }
    }
    let Some(import) = cont.attrs.import.get() else {
        return;
    };
    let Some(ident) = import.key.get() else {
        return;
    };
    let name = syn::ext::IdentExt::unraw(ident).to_string();
    let problem = match cont.field(&name) {
        None => format!(
            "`import(key)` names `{name}`, which is not a field of `{}`",
            cont.ident
        ),
        Some(f) if !f.is_stored() => {
            format!("`import(key)` names `{name}`, which is `#[resource(skip)]` and not stored")
        }
        Some(f) if f.attrs.import.get() == Some(&false) => {
            format!("`import(key)` field `{name}` is `import = false`: imports must read it")
        }
        Some(f) if f.attrs.primary_key.is_set() => format!(
            "`import(key)` field `{name}` is the primary key, which imports never write: upsert by a `unique` field"
        ),
        Some(f) if f.attrs.read_only.is_set() || f.attrs.hidden.is_set() => format!(
            "`import(key)` field `{name}` is `read_only` or `hidden`: imports must write it"
        ),
        Some(f) if !f.attrs.unique.is_set() => format!(
            "`import(key)` field `{name}` must be `#[resource(unique)]`: imports upsert by it"
        ),
        Some(_) => return,
    };
    cx.error_spanned_by(ident, problem);
}
