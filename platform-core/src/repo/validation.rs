//! Checks and transforms of written values: validation, references,
//! visibility of the fields written, encryption, unique-conflict reports.

use crate::error::{Error, FieldErrors, Result};
use crate::validate::is_email;
use crate::value::{FieldType, Value};
use crate::visibility::{FieldAccess, Visibility};

use super::{Changes, HIDDEN_FIELD_MESSAGE, Records, encryption_context};

impl Records {
    /// Checks values for `fields` (the ones being written), adding every
    /// problem to `errors`. A field that already has an error (its value
    /// could not be read, say) is not checked again.
    pub(super) fn validate(
        &self,
        values: &[Value],
        fields: &[usize],
        creating: bool,
        errors: &mut FieldErrors,
    ) {
        let meta = self.meta();
        for &i in fields {
            let f = &meta.field_list()[i];
            let v = &values[i];
            let name = f.name();
            if errors.has(name) {
                continue;
            }
            if v.is_null() {
                if !(f.is_nullable() || creating && f.is_primary_key()) {
                    errors.add(name, "required", "is required");
                }
                continue;
            }
            if !v.fits(f.ty()) {
                errors.add(name, "type", format!("must be {}", f.ty().expectation()));
                continue;
            }
            match v {
                Value::Text(s) => {
                    if s.trim().is_empty() && !f.is_nullable() && !f.allows_empty() {
                        errors.add(name, "required", "is required");
                        continue;
                    }
                    if f.is_email() && !(s.is_empty() && f.is_nullable()) && !is_email(s) {
                        errors.add(name, "email", "must be an e-mail address");
                    }
                    if let Some(max) = f.max_len()
                        && s.chars().count() > max as usize
                    {
                        errors.add(
                            name,
                            "too_long",
                            format!("must be at most {max} characters"),
                        );
                    }
                    if !f.choice_list().is_empty() && !f.choice_list().contains(&s.as_str()) {
                        errors.add(
                            name,
                            "choice",
                            format!("must be one of: {}", f.choice_list().join(", ")),
                        );
                    }
                    if s.contains('\0') {
                        errors.add(name, "invalid", "must not contain NUL characters");
                    }
                }
                Value::Int(n) if f.ty() == FieldType::I32 && i32::try_from(*n).is_err() => {
                    errors.add(name, "type", "is out of range");
                }
                Value::Float(x) if !x.is_finite() => {
                    errors.add(name, "type", "must be a finite number");
                }
                _ => {}
            }
        }
    }

    /// The `unique` and `belongs_to` checks of `fields` that have no error
    /// yet (a value that failed its own check is not looked up): a unique
    /// value another record holds (other than `own_id`), a referenced
    /// record that does not exist. Run when a write already fails, so its
    /// one answer names every field; a write that passes relies on the
    /// database's constraints instead ([`Records::explain_conflict`]).
    pub(super) async fn check_references(
        &self,
        values: &[Value],
        fields: &[usize],
        own_id: Option<&Value>,
        errors: &mut FieldErrors,
    ) {
        let meta = self.meta();
        let db = self.platform.db();
        for &i in fields {
            let f = &meta.field_list()[i];
            let v = &values[i];
            if v.is_null() || errors.has(f.name()) || !v.fits(f.ty()) {
                continue;
            }
            if f.is_unique() && !f.is_encrypted() {
                let mut q = db.sql();
                q.push("SELECT COUNT(*) FROM ")
                    .ident(meta.table())
                    .push(" WHERE ");
                q.ident(f.column_name())
                    .push(" = ")
                    .bind_field(v.clone(), f);
                if let Some(id) = own_id {
                    let pk = meta.primary_key();
                    q.push(" AND ")
                        .ident(pk.column_name())
                        .push(" <> ")
                        .bind_field(id.clone(), pk);
                }
                if db.fetch_i64(q).await.ok().flatten().unwrap_or(0) > 0 {
                    errors.add(f.name(), "unique", "has already been taken");
                }
            }
            if let Some(target) = f.belongs_to_meta() {
                let tpk = target.primary_key();
                if !v.fits(tpk.ty()) {
                    continue;
                }
                let mut q = db.sql();
                q.push("SELECT COUNT(*) FROM ")
                    .ident(target.table())
                    .push(" WHERE ");
                q.ident(tpk.column_name())
                    .push(" = ")
                    .bind_field(v.clone(), tpk);
                if db.fetch_i64(q).await.ok().flatten().unwrap_or(1) == 0 {
                    errors.add(
                        f.name(),
                        "exists",
                        format!("refers to a {} that does not exist", target.label_text()),
                    );
                }
            }
        }
    }

    /// What the actor may see: everything for trusted writes (host code
    /// through the platform, restores), else by its permissions.
    fn visibility(&self, trusted: bool) -> Visibility {
        if trusted {
            Visibility::all()
        } else {
            Visibility::of(&self.ctx)
        }
    }

    /// Applies `changes` to `values`, returning the indexes written and,
    /// among them, those of fields the actor may not see (see
    /// [`Visibility`]): an update keeps such a field only if the value sent
    /// is exactly what the actor was shown, which then means "unchanged"
    /// ([`Records::drop_shown_values`]). On create, such a field may only
    /// be sent as `null` (what a new record shows). The third list holds
    /// the problems found, starting with the fields `changes` could not
    /// read; the caller adds its own checks before answering them.
    pub(super) fn apply(
        &self,
        values: &mut [Value],
        changes: Changes,
        trusted: bool,
        creating: bool,
    ) -> (Vec<usize>, Vec<usize>, FieldErrors) {
        let meta = self.meta();
        let vis = self.visibility(trusted);
        let mut errors = changes.errors;
        let mut written = Vec::new();
        let mut masked = Vec::new();
        for (name, v) in changes.values {
            let Some(i) = meta.field_index(&name) else {
                errors.add(name, "unknown_field", "is not a field of this resource");
                continue;
            };
            let f = &meta.field_list()[i];
            if f.is_primary_key()
                || f.is_managed()
                || (!trusted && (f.is_read_only() || f.is_hidden()))
            {
                errors.add(name, "read_only", "cannot be written");
                continue;
            }
            if vis.access(f, creating) == FieldAccess::Masked {
                if creating {
                    if !v.is_null() {
                        errors.add(name, "forbidden", HIDDEN_FIELD_MESSAGE);
                    }
                    continue;
                }
                masked.push(i);
            }
            values[i] = v;
            written.push(i);
        }
        (written, masked, errors)
    }

    /// Drops from `written` the fields the actor may not see that were sent
    /// back exactly as shown (unchanged); any other value sent for such a
    /// field refuses the whole write, naming the field. `old` are the
    /// stored (decrypted) values, `sent` the values written.
    pub(super) fn drop_shown_values(
        &self,
        written: &mut Vec<usize>,
        masked: &[usize],
        old: &[Value],
        sent: &[Value],
    ) -> Result<()> {
        let meta = self.meta();
        let vis = Visibility::of(&self.ctx);
        let mut errors = FieldErrors::default();
        for &i in masked {
            let f = &meta.field_list()[i];
            if vis.is_shown_value(f, &old[i], &sent[i]) {
                written.retain(|&w| w != i);
            } else {
                errors.add(f.name(), "forbidden", HIDDEN_FIELD_MESSAGE);
            }
        }
        errors.into_result()
    }

    /// Encrypts the encrypted values (the transform step).
    pub(super) fn encrypt(&self, values: &mut [Value]) {
        let meta = self.meta();
        for (f, v) in meta.field_list().iter().zip(values.iter_mut()) {
            if f.is_encrypted()
                && let Value::Text(pt) = v
            {
                *v = Value::Text(
                    self.platform
                        .crypto()
                        .encrypt(pt, &encryption_context(meta, f)),
                );
            }
        }
    }

    /// Turns a constraint violation into a validation error naming the
    /// field, by asking the database which unique value is taken or which
    /// referenced record is missing.
    pub(super) async fn explain_conflict(
        &self,
        err: Error,
        values: &[Value],
        own_id: Option<&Value>,
    ) -> Error {
        if !matches!(err, Error::Conflict { .. }) {
            return err;
        }
        let mut errors = FieldErrors::default();
        self.check_references(values, &self.all_fields(), own_id, &mut errors)
            .await;
        if errors.is_empty() {
            err
        } else {
            Error::Validation(errors)
        }
    }
}
