//! What an actor may see of a resource's fields, and therefore what it may
//! search, filter, sort and write: one rule for every reader and writer
//! (the API, the panel, imports, jobs, the command line).
//!
//! A field is *visible* to an actor when it is not `hidden`, and, when it
//! is `pii`, the actor has `view_pii`, and, when it is `encrypted`, the
//! actor has `view_encrypted`. Then:
//!
//! - reading shows a visible field as it is, a `pii` field masked
//!   (`a***@example.com`), an `encrypted` field not at all but named as
//!   withheld (the API's `_hidden` list, see
//!   [`Record::to_json`](crate::repo::Record::to_json); the panel's
//!   marker), a hidden field not at all;
//! - a search, filter or sort never looks at a field that is not visible
//!   (else the answers would recover the value one character at a time);
//! - a field that is not visible is read-only: a write that names it is
//!   refused, naming the field, except that sending back exactly the value
//!   the actor was shown (the mask; `null` for a withheld encrypted field)
//!   means "unchanged". On create,
//!   a `pii` field may be written by whoever may create the record (the
//!   actor supplies the value, so nothing is disclosed).
//!
//! Trusted actors (jobs, the console, the system) see everything.

use crate::context::Context;
use crate::permission::{VIEW_ENCRYPTED, VIEW_PII};
use crate::resource::{FieldMeta, ResourceMeta};
use crate::value::Value;

/// What one actor may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visibility {
    pii: bool,
    secret: bool,
}

/// How a field may be written by an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldAccess {
    /// Written freely.
    Edit,
    /// Shown but never written by clients (primary key, managed
    /// timestamps, `read_only` fields).
    ReadOnly,
    /// Shown masked (or as `null`); writing it is refused unless the value
    /// sent is exactly what was shown.
    Masked,
    /// Not shown and not written (hidden fields; on create, fields the
    /// platform fills).
    Omit,
}

impl Visibility {
    /// What the actor of `ctx` may see.
    pub fn of(ctx: &Context) -> Self {
        Self {
            pii: ctx.can(VIEW_PII),
            secret: ctx.can(VIEW_ENCRYPTED),
        }
    }

    /// Everything but hidden fields (trusted code).
    pub const fn all() -> Self {
        Self {
            pii: true,
            secret: true,
        }
    }

    /// Built from the two permissions directly.
    pub const fn new(view_pii: bool, view_encrypted: bool) -> Self {
        Self {
            pii: view_pii,
            secret: view_encrypted,
        }
    }

    /// Whether personal data is shown unmasked.
    pub const fn sees_pii(self) -> bool {
        self.pii
    }

    /// Whether encrypted fields are shown in clear.
    pub const fn sees_encrypted(self) -> bool {
        self.secret
    }

    /// Whether `f` is shown as it is (not hidden, not masked, not nulled).
    pub const fn sees(self, f: &FieldMeta) -> bool {
        !f.is_hidden() && (!f.is_pii() || self.pii) && (!f.is_encrypted() || self.secret)
    }

    /// The searched fields of `meta` this actor may search in.
    pub fn search_fields(self, meta: &'static ResourceMeta) -> Vec<&'static FieldMeta> {
        meta.search_fields()
            .iter()
            .filter_map(|n| meta.field(n))
            .filter(|f| self.sees(f))
            .collect()
    }

    /// Whether lists may be filtered by `f` for this actor.
    pub const fn can_filter(self, f: &FieldMeta) -> bool {
        (f.is_filter() || f.is_primary_key()) && self.sees(f)
    }

    /// Whether lists may be sorted by `f` for this actor.
    pub const fn can_sort(self, f: &FieldMeta) -> bool {
        (f.is_sortable() || f.is_primary_key()) && self.sees(f)
    }

    /// How `f` may be written when creating (`creating`) or updating.
    pub fn access(self, f: &FieldMeta, creating: bool) -> FieldAccess {
        if f.is_hidden() {
            return FieldAccess::Omit;
        }
        if f.is_primary_key() || f.is_managed() || f.is_read_only() {
            return if creating {
                FieldAccess::Omit
            } else {
                FieldAccess::ReadOnly
            };
        }
        if f.is_encrypted() && !self.secret {
            return FieldAccess::Masked;
        }
        if f.is_pii() && !self.pii && !creating {
            return FieldAccess::Masked;
        }
        FieldAccess::Edit
    }

    /// `v` (the stored, decrypted value of `f`) as this actor is shown it:
    /// `null` for encrypted fields without `view_encrypted` (readers leave
    /// such a field out and name it as withheld, see
    /// [`Record::to_json`](crate::repo::Record::to_json); `null` is what a
    /// write may send back to mean "unchanged"), masked for `pii` fields
    /// without `view_pii`. Hidden fields are the caller's to leave out.
    pub fn shown(self, f: &FieldMeta, v: &Value) -> serde_json::Value {
        if f.is_encrypted() && !self.secret {
            serde_json::Value::Null
        } else if f.is_pii() && !self.pii {
            mask_pii(v)
        } else {
            v.to_json()
        }
    }

    /// Whether `sent` is exactly what this actor was shown of `stored`
    /// (the mask, or `null`): a masked field sent back unchanged.
    pub fn is_shown_value(self, f: &FieldMeta, stored: &Value, sent: &Value) -> bool {
        self.shown(f, stored) == sent.to_json()
    }
}

/// Masks personal data: `ada@example.com` -> `a***@example.com`,
/// `Lovelace` -> `L***`; `null` stays `null`, other values become
/// [`MASKED`](crate::audit::MASKED).
pub fn mask_pii(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Text(s) => {
            let first: String = s.chars().take(1).collect();
            let masked = match s.split_once('@') {
                Some((_, domain)) => format!("{first}***@{domain}"),
                None => format!("{first}***"),
            };
            serde_json::Value::String(masked)
        }
        _ => serde_json::Value::String(crate::audit::MASKED.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::FieldMeta;

    #[test]
    fn rules() {
        let email = FieldMeta::of::<String>("email").pii();
        let iban = FieldMeta::of::<Option<String>>("iban").encrypted();
        let hash = FieldMeta::of::<String>("hash").hidden();
        let name = FieldMeta::of::<String>("name").sortable().filter();
        let none = Visibility::new(false, false);
        assert!(none.sees(&name) && !none.sees(&email) && !none.sees(&iban));
        assert!(!Visibility::all().sees(&hash));
        assert!(none.can_sort(&name) && none.can_filter(&name));
        assert_eq!(none.access(&email, true), FieldAccess::Edit);
        assert_eq!(none.access(&email, false), FieldAccess::Masked);
        assert_eq!(none.access(&iban, true), FieldAccess::Masked);
        assert_eq!(Visibility::all().access(&iban, false), FieldAccess::Edit);
        let stored = Value::Text("dora@example.com".into());
        assert_eq!(
            none.shown(&email, &stored),
            serde_json::json!("d***@example.com")
        );
        assert!(none.is_shown_value(&email, &stored, &Value::Text("d***@example.com".into())));
        assert!(!none.is_shown_value(&email, &stored, &stored));
        assert!(none.is_shown_value(&iban, &Value::Text("DE89".into()), &Value::Null));
        assert!(!none.is_shown_value(&iban, &Value::Text("DE89".into()), &Value::Text("x".into())));
    }
}
