//! Writes by query, in chunks inside one transaction: `update_where`,
//! `delete_where`, `restore_where` and `force_delete_where`.

use chrono::Utc;

use crate::audit::AuditValues;
use crate::db::dialect;
use crate::db::{Backend, Sql, Tx};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::permission::Ability;
use crate::query::{ListQuery, Paging, Plan, Trashed, column_types, push_columns};
use crate::resource::FieldMeta;
use crate::value::{FieldType, Value};

use super::{BULK_CHUNK, Changes, HIDDEN_FIELD_MESSAGE, Records};

impl Records {
    /// Updates every record matching `query`'s filters and search (paging is
    /// ignored), auditing each row's changes. Needs `update_` and
    /// `view_any_`. Returns the number of records changed.
    pub async fn update_where(&self, query: &ListQuery, changes: Changes) -> Result<u64> {
        let query = query.clone();
        self.detached(|r| async move { r.update_where_inner(&query, changes).await })
            .await
    }

    async fn update_where_inner(&self, query: &ListQuery, changes: Changes) -> Result<u64> {
        self.authorize(Ability::Update)?;
        self.authorize(Ability::ViewAny)?;
        let meta = self.meta();
        let mut probe = vec![Value::Null; meta.field_list().len()];
        let (written, masked, mut errors) = self.apply(&mut probe, changes, false, false);
        // No one value was shown for every matching record.
        for &i in &masked {
            errors.add(
                meta.field_list()[i].name(),
                "forbidden",
                HIDDEN_FIELD_MESSAGE,
            );
        }
        self.validate(&probe, &written, false, &mut errors);
        errors.into_result()?;
        if written.is_empty() {
            return Ok(0);
        }
        let mut stored_probe = probe.clone();
        self.encrypt(&mut stored_probe);
        self.bulk(query, |old| {
            let changed: Vec<usize> = written
                .iter()
                .copied()
                .filter(|&i| probe[i] != old[i])
                .collect();
            (!changed.is_empty()).then(|| (changed, probe.clone(), stored_probe.clone()))
        })
        .await
    }

    /// Deletes every record matching `query`'s filters and search (soft on
    /// soft-deleting resources), auditing each. Needs `delete_any_` and
    /// `view_any_`. Returns the number deleted.
    pub async fn delete_where(&self, query: &ListQuery) -> Result<u64> {
        self.authorize(Ability::DeleteAny)?;
        self.authorize(Ability::ViewAny)?;
        let query = query.clone();
        self.detached(|r| async move { r.bulk_delete(&query).await })
            .await
    }

    /// Shared loop of the bulk operations: walks the matching rows by
    /// primary key in chunks inside one transaction.
    async fn bulk<F>(&self, query: &ListQuery, mut change: F) -> Result<u64>
    where
        F: FnMut(&[Value]) -> Option<(Vec<usize>, Vec<Value>, Vec<Value>)>,
    {
        let meta = self.meta();
        let plan = self.plan(&bulk_query(query))?;
        let db = self.platform.db();
        let backend = db.backend();
        let pk_i = meta.primary_key_index();
        let unique_field = meta
            .field_list()
            .iter()
            .find(|f| f.is_unique())
            .map(FieldMeta::name);
        let mut tx = db.begin().await?;
        let mut last: Option<Value> = None;
        let mut ids = Vec::new();
        let mut updated_at = None;
        if let Some(u) = meta
            .field_index("updated_at")
            .filter(|&i| meta.field_list()[i].is_managed())
        {
            updated_at = Some((u, Value::DateTime(crate::db::truncate_micros(Utc::now()))));
        }
        let result: Result<()> = async {
            loop {
                let rows = self
                    .bulk_chunk(&mut tx, &plan, backend, last.as_ref())
                    .await?;
                let n = rows.len();
                let mut entries = Vec::new();
                for row in rows {
                    let id = row[pk_i].clone();
                    last = Some(id.clone());
                    let old = self.decrypt_row(row)?.into_values();
                    let Some((changed, plain_new, stored_new)) = change(&old) else {
                        continue;
                    };
                    let mut plain = old.clone();
                    let mut stored = old.clone();
                    let mut set = changed.clone();
                    for &i in &changed {
                        plain[i] = plain_new[i].clone();
                        stored[i] = stored_new[i].clone();
                    }
                    if let Some((u, t)) = &updated_at {
                        stored[*u] = t.clone();
                        set.push(*u);
                    }
                    self.write_update(&mut tx, &id, &stored, &set).await?;
                    if self.records_changes() {
                        let o = self.audit_values(&old, &changed);
                        let nv = self.audit_values(&plain, &changed);
                        if !nv.is_empty() {
                            entries.push(self.audit_entry(
                                EventKind::Updated,
                                &id,
                                Some(o),
                                Some(nv),
                            ));
                        }
                    }
                    ids.push(id);
                }
                let mut tagged = self.ctx.clone();
                if !entries.is_empty() {
                    tagged = tagged.with_tag("bulk");
                }
                self.record_changes(&mut tx, &tagged, &entries).await?;
                if n < BULK_CHUNK {
                    return Ok(());
                }
            }
        }
        .await;
        if let Err(e) = result {
            let _ = tx.rollback().await;
            return Err(match e {
                Error::Conflict { .. } => Error::invalid(
                    unique_field.unwrap_or("changes"),
                    "unique",
                    "the change would give several records the same unique value",
                ),
                e => e,
            });
        }
        tx.commit().await?;
        let n = ids.len() as u64;
        if n > 0 {
            self.after_commit(EventKind::Updated, ids, true).await;
        }
        Ok(n)
    }

    async fn bulk_chunk(
        &self,
        tx: &mut Tx,
        plan: &Plan,
        backend: Backend,
        after: Option<&Value>,
    ) -> Result<Vec<Vec<Value>>> {
        let meta = self.meta();
        let pk = meta.primary_key();
        let mut q = Sql::new(backend);
        q.push("SELECT ");
        push_columns(&mut q, meta);
        q.push(" FROM ").ident(meta.table());
        plan.push_where(&mut q, backend, false);
        if let Some(a) = after {
            q.push(" AND ")
                .qualified(meta.table(), pk.column_name())
                .push(" > ")
                .bind_field(a.clone(), pk);
        }
        q.push(" ORDER BY ")
            .qualified(meta.table(), pk.column_name())
            .push(" ASC LIMIT ")
            .int(BULK_CHUNK as i64);
        dialect::push_for_update(&mut q);
        tx.fetch_all(q, &column_types(meta)).await
    }

    /// Restores every soft-deleted record matching `query`'s filters and
    /// search (paging and the trashed switch are ignored: only deleted
    /// records are restored), in one transaction, auditing each row as
    /// `restored` tagged `bulk`. Needs `restore_` and `view_any_`. Returns
    /// the number restored.
    pub async fn restore_where(&self, query: &ListQuery) -> Result<u64> {
        self.authorize(Ability::Restore)?;
        self.authorize(Ability::ViewAny)?;
        let meta = self.meta();
        if meta.deleted_at().is_none() {
            return Err(Error::Unsupported(format!(
                "{} records are not soft-deleted",
                meta.label_text()
            )));
        }
        let query = query.clone().trashed(Trashed::Only);
        self.detached(|r| async move { r.set_operation(&query, SetOp::Restore).await })
            .await
    }

    /// Removes for good every record matching `query`'s filters, search
    /// and trashed switch (paging is ignored), in one transaction: all or
    /// nothing, so a record still referenced elsewhere leaves every one in
    /// place ([`Error::Conflict`]). Each row is audited as `force_deleted`
    /// tagged `bulk`. Needs `force_delete_` and `view_any_`. Returns the
    /// number removed.
    pub async fn force_delete_where(&self, query: &ListQuery) -> Result<u64> {
        self.authorize(Ability::ForceDelete)?;
        self.authorize(Ability::ViewAny)?;
        let query = query.clone();
        self.detached(|r| async move { r.set_operation(&query, SetOp::ForceDelete).await })
            .await
    }

    async fn bulk_delete(&self, query: &ListQuery) -> Result<u64> {
        self.set_operation(query, SetOp::Delete).await
    }

    /// Deletes, removes for good or restores the matching rows, walking
    /// them by primary key in chunks inside one transaction; one audit
    /// entry per row, tagged `bulk`.
    async fn set_operation(&self, query: &ListQuery, op: SetOp) -> Result<u64> {
        let meta = self.meta();
        let plan = self.plan(&bulk_query(query))?;
        let db = self.platform.db();
        let backend = db.backend();
        let pk = meta.primary_key();
        let pk_i = meta.primary_key_index();
        let soft = meta.deleted_at();
        let now = Value::DateTime(crate::db::truncate_micros(Utc::now()));
        let kind = match op {
            SetOp::Delete => EventKind::Deleted,
            SetOp::ForceDelete => EventKind::ForceDeleted,
            SetOp::Restore => EventKind::Restored,
        };
        let mut tx = db.begin().await?;
        let mut ids = Vec::new();
        let mut last: Option<Value> = None;
        let result: Result<()> = async {
            loop {
                // Walk by primary key: soft-deleted rows stay in the table.
                let rows = self
                    .bulk_chunk(&mut tx, &plan, backend, last.as_ref())
                    .await?;
                let n = rows.len();
                if n == 0 {
                    return Ok(());
                }
                let chunk_ids: Vec<Value> = rows.iter().map(|r| r[pk_i].clone()).collect();
                let mut q = tx.sql();
                match (op, soft) {
                    (SetOp::Delete, Some(d)) => {
                        q.push("UPDATE ")
                            .ident(meta.table())
                            .push(" SET ")
                            .ident(d.column_name());
                        q.push(" = ").bind(now.clone(), FieldType::DateTime);
                    }
                    (SetOp::Restore, Some(d)) => {
                        q.push("UPDATE ")
                            .ident(meta.table())
                            .push(" SET ")
                            .ident(d.column_name())
                            .push(" = NULL");
                    }
                    _ => {
                        q.push("DELETE FROM ").ident(meta.table());
                    }
                }
                q.push(" WHERE ").ident(pk.column_name());
                q.in_list(&chunk_ids, |q, id| {
                    q.bind_field(id.clone(), pk);
                });
                tx.execute(q).await?;
                if self.records_changes() {
                    let mut entries = Vec::with_capacity(n);
                    for row in rows {
                        let id = row[pk_i].clone();
                        let old = self.decrypt_row(row)?.into_values();
                        let entry = match (op, soft) {
                            (SetOp::Restore, Some(d)) => {
                                let di = meta.field_index(d.name()).unwrap_or(0);
                                let mut o = AuditValues::new();
                                o.insert(d.name().to_owned(), old[di].to_json());
                                let mut nv = AuditValues::new();
                                nv.insert(d.name().to_owned(), serde_json::Value::Null);
                                self.audit_entry(kind, &id, Some(o), Some(nv))
                            }
                            _ => {
                                let o = self.audit_values(&old, &self.all_fields());
                                self.audit_entry(kind, &id, Some(o), None)
                            }
                        };
                        entries.push(entry);
                    }
                    self.record_changes(&mut tx, &self.ctx.clone().with_tag("bulk"), &entries)
                        .await?;
                }
                last = chunk_ids.last().cloned();
                ids.extend(chunk_ids);
                if n < BULK_CHUNK {
                    return Ok(());
                }
            }
        }
        .await;
        if let Err(e) = result {
            let _ = tx.rollback().await;
            return Err(match e {
                Error::Conflict { .. } => Error::Conflict {
                    field: meta.name().to_owned(),
                    message: match op {
                        SetOp::Restore => format!(
                            "restoring them would give several {} the same unique value; nothing was restored",
                            meta.plural_label()
                        ),
                        _ => format!(
                            "some {} are still referenced by other records; nothing was deleted",
                            meta.plural_label()
                        ),
                    },
                },
                e => e,
            });
        }
        tx.commit().await?;
        let n = ids.len() as u64;
        if n > 0 {
            self.after_commit(kind, ids, true).await;
        }
        Ok(n)
    }
}

/// What [`Records::set_operation`] does to each matching row.
#[derive(Debug, Clone, Copy)]
enum SetOp {
    /// Soft-delete (or delete, on resources without `deleted_at`).
    Delete,
    /// Remove for good.
    ForceDelete,
    /// Clear `deleted_at`.
    Restore,
}

/// The filters and search of `q`, without paging or sorting.
fn bulk_query(q: &ListQuery) -> ListQuery {
    ListQuery {
        search: q.search.clone(),
        sort: None,
        filters: q.filters.clone(),
        paging: Paging::default(),
        trashed: q.trashed,
        count: false,
    }
}
