//! Writes of one record (create, update, delete, restore), with their
//! audit entries and after-commit work.

use chrono::Utc;

use crate::audit::{AuditValues, NewEntry, REDACTED, insert_entries};
use crate::db::dialect::{self, InsertedIds};
use crate::db::{Sql, Tx};
use crate::error::{Error, FieldErrors, Result};
use crate::event::{EventKind, ModelEvent};
use crate::permission::Ability;
use crate::query::column_types;
use crate::value::{FieldType, Value};
use crate::visibility::Visibility;

use super::{Changes, Record, Records, count_tag};

/// Update changes laid on a blank row and checked, before the stored record
/// is read ([`Records::probe_update`]).
pub(super) struct UpdateProbe {
    /// The sent values at their field indices; `Null` elsewhere.
    pub(super) values: Vec<Value>,
    /// The fields the changes write.
    pub(super) written: Vec<usize>,
    /// The written fields the caller sees masked.
    pub(super) masked: Vec<usize>,
}

impl UpdateProbe {
    /// The written fields that are validated: all but the masked ones.
    pub(super) fn checked(&self) -> Vec<usize> {
        self.written
            .iter()
            .copied()
            .filter(|i| !self.masked.contains(i))
            .collect()
    }
}

/// An update laid over the stored record ([`Records::plan_update`]).
pub(super) struct PlannedUpdate {
    /// The record after the update, decrypted.
    pub(super) plain: Vec<Value>,
    /// The fields whose value changes; empty when nothing changes (then
    /// `stored` and `set` are empty too).
    pub(super) changed: Vec<usize>,
    /// The row to store; only the `set` columns are written.
    pub(super) stored: Vec<Value>,
    /// The columns to set: `changed` and a managed `updated_at`.
    pub(super) set: Vec<usize>,
}

impl Records {
    pub(super) fn audit_values(&self, values: &[Value], fields: &[usize]) -> AuditValues {
        let meta = self.meta();
        let mut m = AuditValues::new();
        for &i in fields {
            let f = &meta.field_list()[i];
            if !f.is_audited() {
                continue;
            }
            let v = if f.is_encrypted() && !values[i].is_null() {
                serde_json::Value::String(REDACTED.to_owned())
            } else {
                values[i].to_json()
            };
            m.insert(f.name().to_owned(), v);
        }
        m
    }

    pub(super) fn all_fields(&self) -> Vec<usize> {
        (0..self.meta().field_list().len()).collect()
    }

    pub(super) fn audit_entry(
        &self,
        event: EventKind,
        id: &Value,
        old: Option<AuditValues>,
        new: Option<AuditValues>,
    ) -> NewEntry {
        NewEntry {
            event: event.name().to_owned(),
            resource: self.meta().name().to_owned(),
            record_id: id.display(),
            old,
            new,
        }
    }

    /// The audit entry of a record created with `plain` values under `id`.
    fn created_entry(&self, plain: &[Value], id: &Value) -> NewEntry {
        let mut audited = plain.to_vec();
        audited[self.meta().primary_key_index()] = id.clone();
        let new = self.audit_values(&audited, &self.all_fields());
        self.audit_entry(EventKind::Created, id, None, Some(new))
    }

    /// Whether this resource's changes are recorded: in the audit trail
    /// (an audited resource) or the outbox (something subscribes).
    pub(super) fn records_changes(&self) -> bool {
        self.meta().is_audited() || self.platform.outbox().has_subscribers(self.meta().name())
    }

    /// Records `entries` in `tx`: the audit trail when the resource is
    /// audited, the outbox when something subscribes to it.
    pub(super) async fn record_changes(
        &self,
        tx: &mut Tx,
        ctx: &crate::context::Context,
        entries: &[NewEntry],
    ) -> Result<()> {
        if self.meta().is_audited() {
            insert_entries(tx, ctx, entries).await?;
        }
        self.platform.outbox().record(tx, ctx, entries).await
    }

    pub(super) async fn after_commit(&self, kind: EventKind, ids: Vec<Value>, bulk: bool) {
        let meta = self.meta();
        self.platform
            .cache()
            .flush_tag(&count_tag(meta.table()))
            .await;
        if meta.is_cached() {
            self.platform.cache().flush_tag(&self.cache_tag()).await;
        }
        if meta.is_audited() {
            self.platform.audit().notify();
        }
        let event = ModelEvent {
            kind,
            resource: meta.name(),
            table: meta.table(),
            ids,
            bulk,
            actor: self.ctx.actor().kind(),
            user_id: self.ctx.actor().user_id(),
            request_id: self.ctx.request_id().map(str::to_owned),
        };
        self.platform.events().emit(&event).await;
    }

    // ---- writing --------------------------------------------------------

    /// Creates a record from `changes` (every required field must be set).
    pub async fn create(&self, changes: Changes) -> Result<Record> {
        self.detached(|r| async move { r.create_inner(changes, false).await })
            .await
    }

    /// Applies `changes` to an empty record, fills the managed timestamps,
    /// validates, and returns the plain and the stored (encrypted) values.
    /// A record that fails gets every field error at once, with the
    /// `unique` and `belongs_to` checks of the fields that passed their
    /// own.
    pub(super) async fn prepare_create(
        &self,
        changes: Changes,
        trusted: bool,
        now: &Value,
    ) -> Result<(Vec<Value>, Vec<Value>)> {
        let meta = self.meta();
        let mut values = vec![Value::Null; meta.field_list().len()];
        let (mut written, _, mut errors) = self.apply(&mut values, changes, trusted, true);
        // The policy's fields default to the actor's scope (the owner of a
        // new record is whoever creates it), and must end inside it.
        let Some(scope) = self.scope()? else {
            return Err(self.outside_policy());
        };
        for (f, v) in &scope {
            if let Some(i) = meta.field_index(f.name())
                && values[i].is_null()
            {
                values[i] = v.clone();
            }
        }
        // Every field is written on create, so required ones are checked.
        for (i, f) in meta.field_list().iter().enumerate() {
            if f.is_managed() && f.name() != "deleted_at" {
                values[i] = now.clone();
            }
            if !written.contains(&i) && !f.is_primary_key() && !f.is_managed() {
                written.push(i);
            }
        }
        self.validate(&values, &written, true, &mut errors);
        if !errors.is_empty() {
            self.check_references(&values, &written, None, &mut errors)
                .await;
            return Err(Error::Validation(errors));
        }
        if !self.in_scope(&values)? {
            return Err(self.outside_policy());
        }
        let pk_i = meta.primary_key_index();
        if meta.primary_key().ty() == FieldType::Uuid {
            values[pk_i] = Value::Uuid(uuid::Uuid::now_v7());
        }
        let plain = values.clone();
        self.encrypt(&mut values);
        Ok((plain, values))
    }

    fn has_generated_id(&self) -> bool {
        matches!(
            self.meta().primary_key().ty(),
            FieldType::I64 | FieldType::I32
        )
    }

    /// Appends `INSERT INTO <table> (<cols>) VALUES …` of `rows` (stored
    /// values; `cols` are field indices).
    fn push_insert(&self, q: &mut Sql, cols: &[usize], rows: &[Vec<Value>]) {
        let meta = self.meta();
        q.push("INSERT INTO ").ident(meta.table()).push(" (");
        q.join(cols, ", ", |q, &i| {
            q.ident(meta.field_list()[i].column_name());
        });
        q.push(") VALUES ");
        q.join(rows, ", ", |q, row| {
            q.push("(");
            q.join(cols, ", ", |q, &i| {
                q.bind_field(row[i].clone(), &meta.field_list()[i]);
            });
            q.push(")");
        });
    }

    /// `INSERT` of `rows` (stored values), returning the new ids in row order.
    pub(super) async fn insert_rows(&self, tx: &mut Tx, rows: &[Vec<Value>]) -> Result<Vec<Value>> {
        let meta = self.meta();
        let pk_i = meta.primary_key_index();
        let pk = meta.primary_key();
        let backend = tx.backend();
        let generated = self.has_generated_id();
        let cols: Vec<usize> = (0..meta.field_list().len())
            .filter(|&i| !(generated && i == pk_i))
            .collect();
        let mut q = Sql::new(backend);
        self.push_insert(&mut q, &cols, rows);
        if !generated {
            tx.execute(q).await?;
            return Ok(rows.iter().map(|r| r[pk_i].clone()).collect());
        }
        if dialect::inserted_ids(backend) == InsertedIds::LastInsertId {
            // InnoDB gives the rows of one multi-row INSERT consecutive ids
            // from LAST_INSERT_ID() (auto-increment lock mode 0 or 1, and
            // simple inserts in mode 2).
            let first = tx.insert_returning_id(q).await?;
            return Ok((0..rows.len() as i64)
                .map(|k| Value::Int(first + k))
                .collect());
        }
        dialect::push_returning(&mut q, pk.column_name());
        if rows.len() == 1 {
            return Ok(vec![Value::Int(tx.insert_returning_id(q).await?)]);
        }
        // Identity values rise in VALUES order within one statement.
        let mut ids: Vec<i64> = tx
            .fetch_all(q, &[FieldType::I64])
            .await?
            .into_iter()
            .filter_map(|r| r.first().and_then(Value::as_i64))
            .collect();
        ids.sort_unstable();
        Ok(ids.into_iter().map(Value::Int).collect())
    }

    pub(crate) async fn create_inner(&self, changes: Changes, trusted: bool) -> Result<Record> {
        self.authorize(Ability::Create)?;
        let meta = self.meta();
        let now = Value::DateTime(crate::db::truncate_micros(Utc::now()));
        let (mut plain, stored) = self.prepare_create(changes, trusted, &now).await?;
        let pk_i = meta.primary_key_index();
        let db = self.platform.db();
        if self.has_generated_id()
            && let Ok(Some(id)) = db
                .next_id(meta.table(), meta.primary_key().column_name())
                .await
        {
            match self.create_in_one_statement(id, &plain, &stored).await {
                Ok(()) => {
                    plain[pk_i] = Value::Int(id);
                    self.after_commit(EventKind::Created, vec![Value::Int(id)], false)
                        .await;
                    return Ok(Record::new(meta, plain));
                }
                // The drawn id was taken meanwhile (a row written with an
                // explicit id, a restored backup): the rest of the block is
                // dropped, and this create takes the sequence's next id in
                // the usual way.
                Err(Error::Conflict { field, .. }) if field == format!("{}_pkey", meta.table()) => {
                    db.forget_ids(meta.table());
                }
                Err(e) => return Err(self.explain_conflict(e, &stored, None).await),
            }
        }
        let mut tx = db.begin().await?;
        let result: Result<Value> = async {
            let id = self
                .insert_rows(&mut tx, std::slice::from_ref(&stored))
                .await?
                .remove(0);
            if self.records_changes() {
                self.record_changes(&mut tx, &self.ctx, &[self.created_entry(&plain, &id)])
                    .await?;
            }
            Ok(id)
        }
        .await;
        let result = tx.finish(result).await;
        let id = match result {
            Ok(id) => id,
            Err(e) => return Err(self.explain_conflict(e, &stored, None).await),
        };
        plain[pk_i] = id.clone();
        self.after_commit(EventKind::Created, vec![id], false).await;
        Ok(Record::new(meta, plain))
    }

    /// Writes a new record under an id drawn ahead from its sequence
    /// ([`crate::db::Db::next_id`], PostgreSQL), with its audit entry and
    /// outbox events, in one statement that commits on its own: one round
    /// trip where a transaction takes four (`BEGIN`, the row, the entry,
    /// `COMMIT`). A failure of any part fails the whole statement, and
    /// nothing is written.
    async fn create_in_one_statement(
        &self,
        id: i64,
        plain: &[Value],
        stored: &[Value],
    ) -> Result<()> {
        let meta = self.meta();
        let pk_i = meta.primary_key_index();
        let db = self.platform.db();
        let mut row = stored.to_vec();
        row[pk_i] = Value::Int(id);
        let mut q = db.sql();
        q.push("WITH new_row AS (");
        self.push_insert(&mut q, &self.all_fields(), std::slice::from_ref(&row));
        q.push(")");
        let mut events = Vec::new();
        if self.records_changes() {
            let entries = [self.created_entry(plain, &Value::Int(id))];
            if meta.is_audited() {
                crate::audit::push_chained_insert(&mut q, db.audit_key(), &self.ctx, &entries)?;
            }
            let outbox = self.platform.outbox();
            events = outbox.events_for(&self.ctx, &entries);
            outbox.push_chained_insert(&mut q, &events);
        }
        q.push(" SELECT 1");
        db.execute(q).await?;
        self.platform.outbox().committed(events);
        Ok(())
    }

    /// Creates many records in one transaction: all of them or none.
    /// Validation errors name the row (`rows[3].number`). Each record gets
    /// its own audit entry; listeners get one `Created` event with every id.
    pub async fn create_many(&self, rows: Vec<Changes>) -> Result<Vec<Value>> {
        self.detached(|r| async move { r.create_many_inner(rows, false).await })
            .await
    }

    pub(crate) async fn create_many_inner(
        &self,
        rows: Vec<Changes>,
        trusted: bool,
    ) -> Result<Vec<Value>> {
        self.authorize(Ability::Create)?;
        let meta = self.meta();
        let now = Value::DateTime(crate::db::truncate_micros(Utc::now()));
        let mut errors = FieldErrors::default();
        let mut prepared = Vec::with_capacity(rows.len());
        for (n, changes) in rows.into_iter().enumerate() {
            match self.prepare_create(changes, trusted, &now).await {
                Ok(p) => prepared.push(p),
                Err(Error::Validation(e)) => {
                    for fe in e.iter() {
                        errors.add(
                            format!("rows[{n}].{}", fe.field),
                            fe.code,
                            fe.message.clone(),
                        );
                    }
                }
                Err(e) => return Err(e),
            }
        }
        errors.into_result()?;
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        let pk_i = meta.primary_key_index();
        let per_statement = (30_000 / meta.field_list().len()).clamp(1, 500);
        let db = self.platform.db();
        let mut tx = db.begin().await?;
        let result: Result<Vec<Value>> = async {
            let mut ids = Vec::with_capacity(prepared.len());
            for chunk in prepared.chunks(per_statement) {
                let stored: Vec<Vec<Value>> = chunk.iter().map(|(_, s)| s.clone()).collect();
                let chunk_ids = self.insert_rows(&mut tx, &stored).await?;
                if self.records_changes() {
                    let entries: Vec<NewEntry> = chunk
                        .iter()
                        .zip(&chunk_ids)
                        .map(|((plain, _), id)| {
                            let mut audited = plain.clone();
                            audited[pk_i] = id.clone();
                            let new = self.audit_values(&audited, &self.all_fields());
                            self.audit_entry(EventKind::Created, id, None, Some(new))
                        })
                        .collect();
                    self.record_changes(&mut tx, &self.ctx, &entries).await?;
                }
                ids.extend(chunk_ids);
            }
            Ok(ids)
        }
        .await;
        let result = tx.finish(result).await;
        match result {
            Ok(ids) => {
                self.after_commit(EventKind::Created, ids.clone(), true)
                    .await;
                Ok(ids)
            }
            Err(Error::Conflict { .. }) => Err(Error::invalid(
                "rows",
                "conflict",
                "a row repeats a unique value or refers to a record that does not exist; nothing was written",
            )),
            Err(e) => Err(e),
        }
    }

    /// Updates the fields in `changes` of the record with this id; only the
    /// fields whose value changes are written and audited.
    pub async fn update(&self, id: Value, changes: Changes) -> Result<Record> {
        self.detached(|r| async move { r.update_inner(id, changes, false).await })
            .await
    }

    pub(crate) async fn update_inner(
        &self,
        id: Value,
        changes: Changes,
        trusted: bool,
    ) -> Result<Record> {
        self.authorize(Ability::Update)?;
        self.check_id(&id)?;
        let meta = self.meta();
        // Validate before taking any lock: only the written fields are checked.
        let (probe, mut errors) = self.probe_update(changes, trusted);
        if !errors.is_empty() {
            self.check_references(&probe.values, &probe.checked(), Some(&id), &mut errors)
                .await;
            return Err(Error::Validation(errors));
        }
        let db = self.platform.db();
        let mut tx = db.begin().await?;
        let result: Result<(Vec<Value>, Vec<usize>)> = async {
            let current = self.locked_row(&mut tx, &id).await?;
            let old = self.decrypt_row(current.clone())?.into_values();
            let up = self.plan_update(&current, &old, &probe)?;
            if up.changed.is_empty() {
                return Ok((up.plain, up.set));
            }
            self.write_update(&mut tx, &id, &up.stored, &up.set).await?;
            if self.records_changes()
                && let Some(entry) = self.update_entry(&id, &old, &up.plain, &up.changed)
            {
                self.record_changes(&mut tx, &self.ctx, &[entry]).await?;
            }
            Ok((up.plain, up.set))
        }
        .await;
        let (plain, set) = match tx.finish(result).await {
            Ok(r) => r,
            Err(e) => {
                let mut values = probe.values;
                values[meta.primary_key_index()] = id.clone();
                return Err(self.explain_conflict(e, &values, Some(&id)).await);
            }
        };
        if set.is_empty() {
            return Ok(Record::new(meta, plain));
        }
        self.after_commit(EventKind::Updated, vec![id], false).await;
        Ok(Record::new(meta, plain))
    }

    /// Applies `changes` to a blank row and validates the fields they write
    /// (all but the masked ones), as an update does before it reads the
    /// stored record.
    pub(super) fn probe_update(
        &self,
        changes: Changes,
        trusted: bool,
    ) -> (UpdateProbe, FieldErrors) {
        let mut values = vec![Value::Null; self.meta().field_list().len()];
        let (written, masked, mut errors) = self.apply(&mut values, changes, trusted, false);
        let probe = UpdateProbe {
            values,
            written,
            masked,
        };
        self.validate(&probe.values, &probe.checked(), false, &mut errors);
        (probe, errors)
    }

    /// Lays a checked probe over the stored record (`stored` as in the
    /// database, `old` decrypted): the fields that change, the new values
    /// (encrypted for storage) and the columns to set, with a managed
    /// `updated_at` stamped. Fails when the result leaves the caller's
    /// scope or a masked value was sent back changed.
    pub(super) fn plan_update(
        &self,
        stored: &[Value],
        old: &[Value],
        probe: &UpdateProbe,
    ) -> Result<PlannedUpdate> {
        let meta = self.meta();
        let mut written = probe.written.clone();
        self.drop_shown_values(&mut written, &probe.masked, old, &probe.values)?;
        let mut plain = old.to_vec();
        for &i in &written {
            plain[i] = probe.values[i].clone();
        }
        if !self.in_scope(&plain)? {
            return Err(self.outside_policy());
        }
        let changed: Vec<usize> = written
            .iter()
            .copied()
            .filter(|&i| plain[i] != old[i])
            .collect();
        if changed.is_empty() {
            return Ok(PlannedUpdate {
                plain,
                changed,
                stored: Vec::new(),
                set: Vec::new(),
            });
        }
        let mut new_stored = stored.to_vec();
        let mut enc = plain.clone();
        self.encrypt(&mut enc);
        for &i in &changed {
            new_stored[i] = enc[i].clone();
        }
        let mut set = changed.clone();
        if let Some(u) = meta
            .field_index("updated_at")
            .filter(|&i| meta.field_list()[i].is_managed())
        {
            new_stored[u] = Value::DateTime(crate::db::truncate_micros(Utc::now()));
            plain[u] = new_stored[u].clone();
            set.push(u);
        }
        Ok(PlannedUpdate {
            plain,
            changed,
            stored: new_stored,
            set,
        })
    }

    /// The audit entry of an update of `changed` from `old` to `new`, or
    /// `None` when none of them is audited.
    pub(super) fn update_entry(
        &self,
        id: &Value,
        old: &[Value],
        new: &[Value],
        changed: &[usize],
    ) -> Option<NewEntry> {
        let o = self.audit_values(old, changed);
        let n = self.audit_values(new, changed);
        (!n.is_empty()).then(|| self.audit_entry(EventKind::Updated, id, Some(o), Some(n)))
    }

    pub(super) async fn write_update(
        &self,
        tx: &mut Tx,
        id: &Value,
        stored: &[Value],
        set: &[usize],
    ) -> Result<()> {
        let meta = self.meta();
        let pk = meta.primary_key();
        let mut q = tx.sql();
        q.push("UPDATE ").ident(meta.table()).push(" SET ");
        q.join(set, ", ", |q, &i| {
            let f = &meta.field_list()[i];
            q.ident(f.column_name())
                .push(" = ")
                .bind_field(stored[i].clone(), f);
        });
        q.push(" WHERE ")
            .ident(pk.column_name())
            .push(" = ")
            .bind_field(id.clone(), pk);
        tx.execute(q).await?;
        Ok(())
    }

    /// The stored row, locked for the transaction; soft-deleted rows count as
    /// missing.
    async fn locked_row(&self, tx: &mut Tx, id: &Value) -> Result<Vec<Value>> {
        let meta = self.meta();
        let row = self.locked_row_any(tx, id).await?;
        if let Some(d) = meta.deleted_at() {
            let i = meta.field_index(d.name()).unwrap_or(0);
            if !row[i].is_null() {
                return Err(self.not_found(id));
            }
        }
        Ok(row)
    }

    /// The stored row, locked, soft-deleted or not.
    pub(super) async fn locked_row_any(&self, tx: &mut Tx, id: &Value) -> Result<Vec<Value>> {
        let q = self.select_by_id(tx.backend(), id, true);
        let row = tx
            .fetch_optional(q, &column_types(self.meta()))
            .await?
            .ok_or_else(|| self.not_found(id))?;
        // Records outside the policy do not exist for this actor.
        if self.in_scope(&row)? {
            Ok(row)
        } else {
            Err(self.not_found(id))
        }
    }

    /// Deletes the record: sets `deleted_at` on soft-deleting resources,
    /// removes the row otherwise.
    pub async fn delete(&self, id: Value) -> Result<()> {
        self.authorize(Ability::Delete)?;
        self.detached(|r| async move { r.remove(id, false).await })
            .await
    }

    /// Removes the record for good (soft-deleted or not).
    pub async fn force_delete(&self, id: Value) -> Result<()> {
        self.authorize(Ability::ForceDelete)?;
        self.detached(|r| async move { r.remove(id, true).await })
            .await
    }

    async fn remove(&self, id: Value, force: bool) -> Result<()> {
        self.check_id(&id)?;
        let meta = self.meta();
        let db = self.platform.db();
        let soft = meta.deleted_at().filter(|_| !force);
        let mut tx = db.begin().await?;
        let result: Result<()> = async {
            let row = if force {
                self.locked_row_any(&mut tx, &id).await?
            } else {
                self.locked_row(&mut tx, &id).await?
            };
            let old = self.decrypt_row(row)?.into_values();
            let pk = meta.primary_key();
            let mut q = tx.sql();
            if let Some(d) = soft {
                q.push("UPDATE ")
                    .ident(meta.table())
                    .push(" SET ")
                    .ident(d.column_name());
                q.push(" = ")
                    .bind(Value::DateTime(Utc::now()), FieldType::DateTime);
            } else {
                q.push("DELETE FROM ").ident(meta.table());
            }
            q.push(" WHERE ")
                .ident(pk.column_name())
                .push(" = ")
                .bind_field(id.clone(), pk);
            tx.execute(q).await?;
            if self.records_changes() {
                let kind = if force {
                    EventKind::ForceDeleted
                } else {
                    EventKind::Deleted
                };
                let o = self.audit_values(&old, &self.all_fields());
                self.record_changes(
                    &mut tx,
                    &self.ctx,
                    &[self.audit_entry(kind, &id, Some(o), None)],
                )
                .await?;
            }
            Ok(())
        }
        .await;
        let result = tx.finish(result).await;
        match result {
            Err(Error::Conflict { .. }) => Err(Error::Conflict {
                field: meta.name().to_owned(),
                message: format!(
                    "this {} is still referenced by other records",
                    meta.label_text()
                ),
            }),
            Err(e) => Err(e),
            Ok(()) => {
                let kind = if force {
                    EventKind::ForceDeleted
                } else {
                    EventKind::Deleted
                };
                self.after_commit(kind, vec![id], false).await;
                Ok(())
            }
        }
    }

    /// Restores a soft-deleted record.
    pub async fn restore(&self, id: Value) -> Result<Record> {
        self.detached(|r| async move { r.restore_inner(id).await })
            .await
    }

    async fn restore_inner(&self, id: Value) -> Result<Record> {
        self.authorize(Ability::Restore)?;
        self.check_id(&id)?;
        let meta = self.meta();
        let Some(d) = meta.deleted_at() else {
            return Err(Error::Unsupported(format!(
                "{} records are not soft-deleted",
                meta.label_text()
            )));
        };
        let di = meta.field_index(d.name()).unwrap_or(0);
        let db = self.platform.db();
        let mut tx = db.begin().await?;
        let result: Result<Vec<Value>> = async {
            let row = self.locked_row_any(&mut tx, &id).await?;
            if row[di].is_null() {
                return Err(Error::Conflict {
                    field: d.name().to_owned(),
                    message: format!("this {} is not deleted", meta.label_text()),
                });
            }
            let mut rec = self.decrypt_row(row)?.into_values();
            let old_deleted = rec[di].clone();
            let pk = meta.primary_key();
            let mut q = tx.sql();
            q.push("UPDATE ")
                .ident(meta.table())
                .push(" SET ")
                .ident(d.column_name());
            q.push(" = NULL WHERE ")
                .ident(pk.column_name())
                .push(" = ")
                .bind_field(id.clone(), pk);
            tx.execute(q).await?;
            rec[di] = Value::Null;
            if self.records_changes() {
                let mut o = AuditValues::new();
                o.insert(d.name().to_owned(), old_deleted.to_json());
                let mut n = AuditValues::new();
                n.insert(d.name().to_owned(), serde_json::Value::Null);
                self.record_changes(
                    &mut tx,
                    &self.ctx,
                    &[self.audit_entry(EventKind::Restored, &id, Some(o), Some(n))],
                )
                .await?;
            }
            Ok(rec)
        }
        .await;
        let rec = tx.finish(result).await?;
        self.after_commit(EventKind::Restored, vec![id], false)
            .await;
        Ok(Record::new(meta, rec))
    }

    /// Restores the record to its state as of audit entry `audit_id`: the
    /// audited, non-encrypted fields get the values they had right after
    /// that entry. Written (and audited) as an ordinary update tagged
    /// `restored_from:<id>`.
    pub async fn restore_version(&self, id: Value, audit_id: i64) -> Result<Record> {
        self.detached(|r| async move { r.restore_version_inner(id, audit_id).await })
            .await
    }

    async fn restore_version_inner(&self, id: Value, audit_id: i64) -> Result<Record> {
        self.authorize(Ability::Update)?;
        self.check_id(&id)?;
        let meta = self.meta();
        // A record outside the policy has no history for this actor.
        self.fetch_stored(&id)
            .await?
            .filter(|r| self.in_scope(r).unwrap_or(false))
            .ok_or_else(|| self.not_found(&id))?;
        let history = self
            .platform
            .audit()
            .history_until(meta.name(), &id.display(), audit_id)
            .await?;
        if history.last().map(|e| e.id) != Some(audit_id) {
            let earlier = self
                .platform
                .audit()
                .get(audit_id)
                .await?
                .is_some_and(|e| e.resource == meta.name() && e.record_id == id.display());
            let why = if earlier {
                format!(
                    "audit entry {audit_id} is from before this {} was created (it belongs to an earlier record that had the same id)",
                    meta.label_text()
                )
            } else {
                format!(
                    "audit entry {audit_id} does not belong to this {}",
                    meta.label_text()
                )
            };
            return Err(Error::invalid("audit", "invalid", why));
        }
        let mut state = AuditValues::new();
        for e in &history {
            state.extend(e.new_values_map());
        }
        // Fields the actor may not see stay as they are: a restore writes
        // only what the actor could have written by hand.
        let vis = Visibility::of(&self.ctx);
        let mut changes = Changes::new();
        for (name, j) in state {
            let Some(f) = meta.field(&name) else { continue };
            if f.is_primary_key()
                || f.is_managed()
                || f.is_encrypted()
                || !f.is_audited()
                || !vis.sees(f)
            {
                continue;
            }
            if let Ok(v) = Value::from_json(f.ty(), &j) {
                changes.insert(name, v);
            }
        }
        let records = Records::new(
            self.platform.clone(),
            self.entry.clone(),
            self.ctx
                .clone()
                .with_tag(format!("restored_from:{audit_id}")),
        );
        records.update_inner(id, changes, true).await
    }
}
