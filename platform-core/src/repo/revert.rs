//! Rolling an import back: every record it touched restored to its state
//! before the import, in one transaction, audited.

use std::collections::HashMap;

use crate::audit::NewEntry;
use crate::db::{Tx, dialect};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::permission::Ability;
use crate::query::{column_types, push_columns};
use crate::value::Value;

use super::import::{TouchAction, Touched};
use super::{BULK_CHUNK, Records};

/// A touched record to put back (what [`TouchLog`](super::TouchLog) was
/// given).
pub type Revert = Touched;

/// Where [`Records::revert_import_from`] reads the records to put back:
/// chunks, the newest first, each in the order the import touched its
/// records. Reading them a chunk at a time keeps a rollback's memory
/// independent of the batch's size.
#[async_trait::async_trait]
pub trait RevertSource: Send + 'static {
    /// The next chunk (older than every chunk given before), or `None`
    /// when there is none left.
    async fn next_chunk(&mut self) -> Result<Option<Vec<Revert>>>;
}

/// The records of one `Vec`, as one chunk.
struct InMemory(Option<Vec<Revert>>);

#[async_trait::async_trait]
impl RevertSource for InMemory {
    async fn next_chunk(&mut self) -> Result<Option<Vec<Revert>>> {
        Ok(self.0.take())
    }
}

/// What [`Records::revert_import`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevertReport {
    /// Records the import created, now removed.
    pub deleted: u64,
    /// Records the import updated, now back to their earlier values.
    pub reverted: u64,
    /// Records already gone (removed since the import), skipped.
    pub missing: u64,
    /// Records changed since the import and put back anyway (`force`).
    pub overwritten: u64,
}

impl Records {
    /// Puts back every record in `items`: a record the import created is
    /// removed for good, a record it updated gets back the values it had
    /// before (`updated_at` included). Runs in one transaction: all or nothing. A record changed
    /// after the import (its values are no longer those the import wrote,
    /// `updated_at` included) refuses the whole rollback with
    /// [`Error::Conflict`] naming it, unless `force`. Each record gets an
    /// audit entry tagged `bulk` and `tags` (`rollback:<batch id>`).
    ///
    /// Needs `update_` (for updated records) and, for created ones,
    /// `force_delete_` on soft-deleting resources, else `delete_`.
    pub async fn revert_import(
        &self,
        items: Vec<Revert>,
        force: bool,
        tags: Vec<String>,
    ) -> Result<RevertReport> {
        self.revert_import_from(InMemory(Some(items)), force, tags)
            .await
    }

    /// [`Records::revert_import`] reading the records from `source` a
    /// chunk at a time (newest first), in the same one transaction: what
    /// a rollback of a large batch holds in memory is one chunk, not the
    /// batch. The permissions are checked as the chunks show which are
    /// needed; a refusal rolls everything back.
    pub async fn revert_import_from(
        &self,
        source: impl RevertSource,
        force: bool,
        tags: Vec<String>,
    ) -> Result<RevertReport> {
        self.detached(|r| async move { r.revert_inner(source, force, tags).await })
            .await
    }

    /// Checks the permissions `items` need (once each).
    fn authorize_revert(&self, items: &[Revert], checked: &mut (bool, bool)) -> Result<()> {
        if !checked.0 && items.iter().any(|t| t.action == TouchAction::Updated) {
            self.authorize(Ability::Update)?;
            checked.0 = true;
        }
        if !checked.1 && items.iter().any(|t| t.action == TouchAction::Created) {
            self.authorize(if self.meta().is_soft_delete() {
                Ability::ForceDelete
            } else {
                Ability::Delete
            })?;
            checked.1 = true;
        }
        Ok(())
    }

    async fn revert_inner(
        &self,
        mut source: impl RevertSource,
        force: bool,
        tags: Vec<String>,
    ) -> Result<RevertReport> {
        let meta = self.meta();
        let pk = meta.primary_key();
        let pk_i = meta.primary_key_index();
        let db = self.platform.db();
        let mut report = RevertReport::default();
        let mut ctx = self.ctx.clone().with_tag("bulk");
        for t in tags {
            ctx = ctx.with_tag(t);
        }
        let mut tx = db.begin().await?;
        let mut deleted_ids = Vec::new();
        let mut updated_ids = Vec::new();
        let mut checked = (false, false);
        let result: Result<()> = async {
            let mut changed_since = Vec::new();
            // Newest first: a record updated twice gets its first state.
            while let Some(items) = source.next_chunk().await? {
            self.authorize_revert(&items, &mut checked)?;
            for chunk in items.rchunks(BULK_CHUNK) {
                let ids: Vec<Value> = chunk
                    .iter()
                    .filter_map(|t| Value::parse(pk.ty(), &t.record_id).ok())
                    .collect();
                let mut current = self.locked_rows(&mut tx, &ids).await?;
                let mut entries: Vec<NewEntry> = Vec::new();
                let mut remove = Vec::new();
                for t in chunk.iter().rev() {
                    let Some(row) = current.get(&t.record_id).cloned() else {
                        report.missing += 1;
                        if t.action == TouchAction::Updated && !force {
                            changed_since.push(t.record_id.clone());
                        }
                        continue;
                    };
                    if !self.in_scope(&row)? {
                        return Err(self.outside_policy());
                    }
                    if !unchanged_since(meta, &row, &t.written) {
                        if !force {
                            changed_since.push(t.record_id.clone());
                            continue;
                        }
                        report.overwritten += 1;
                    }
                    let id = row[pk_i].clone();
                    let old = self.decrypt_row(row.clone())?.into_values();
                    match t.action {
                        TouchAction::Created => {
                            if self.records_changes() {
                                let o = self.audit_values(&old, &self.all_fields());
                                entries.push(self.audit_entry(
                                    EventKind::ForceDeleted,
                                    &id,
                                    Some(o),
                                    None,
                                ));
                            }
                            current.remove(&t.record_id);
                            remove.push(id.clone());
                            deleted_ids.push(id);
                            report.deleted += 1;
                        }
                        TouchAction::Updated => {
                            let mut stored = row.clone();
                            let mut set = Vec::new();
                            if let Some(prev) = t.previous.as_ref().and_then(|p| p.as_object()) {
                                for (name, j) in prev {
                                    let Some(i) = meta.field_index(name) else {
                                        continue;
                                    };
                                    let f = &meta.field_list()[i];
                                    if f.is_primary_key() {
                                        continue;
                                    }
                                    // `updated_at` too: the record is as
                                    // it was before the import (the audit
                                    // trail tells of the rollback).
                                    stored[i] = Value::from_json(crate::db::storage_type(f), j)
                                        .map_err(|e| {
                                            Error::invalid(name.clone(), "type", e.to_string())
                                        })?;
                                    set.push(i);
                                }
                            }
                            if set.is_empty() {
                                continue;
                            }
                            self.write_update(&mut tx, &id, &stored, &set).await?;
                            // An earlier entry of the same record in this
                            // chunk compares with what was just written.
                            current.insert(t.record_id.clone(), stored.clone());
                            if self.records_changes() {
                                let plain = self.decrypt_row(stored)?.into_values();
                                let audited: Vec<usize> = set
                                    .iter()
                                    .copied()
                                    .filter(|&i| old[i] != plain[i])
                                    .collect();
                                let o = self.audit_values(&old, &audited);
                                let n = self.audit_values(&plain, &audited);
                                if !n.is_empty() {
                                    entries.push(self.audit_entry(
                                        EventKind::Updated,
                                        &id,
                                        Some(o),
                                        Some(n),
                                    ));
                                }
                            }
                            updated_ids.push(id);
                            report.reverted += 1;
                        }
                    }
                }
                if !changed_since.is_empty() {
                    continue;
                }
                if !remove.is_empty() {
                    let mut q = tx.sql();
                    q.push("DELETE FROM ")
                        .ident(meta.table())
                        .push(" WHERE ")
                        .ident(pk.column_name())
                        ;
                    q.in_list(&remove, |q, id| {
                        q.bind_field(id.clone(), pk);
                    });
                    tx.execute(q).await?;
                }
                self.record_changes(&mut tx, &ctx, &entries).await?;
            }
            }
            if !changed_since.is_empty() {
                let shown: Vec<&str> = changed_since.iter().take(10).map(String::as_str).collect();
                return Err(Error::Conflict {
                    field: "batch".to_owned(),
                    message: format!(
                        "{} {} changed or removed after the import ({}{}); nothing was rolled back (force the rollback to overwrite those changes)",
                        changed_since.len(),
                        if changed_since.len() == 1 { "record was" } else { "records were" },
                        shown.join(", "),
                        if changed_since.len() > shown.len() { ", ..." } else { "" },
                    ),
                });
            }
            Ok(())
        }
        .await;
        match tx.finish(result).await {
            Ok(()) => {}
            Err(Error::Conflict { field, message }) if field != "batch" => {
                let _ = field;
                return Err(Error::Conflict {
                    field: meta.name().to_owned(),
                    message: format!(
                        "some {} the import created are now referenced by other records; nothing was rolled back ({message})",
                        meta.plural_label()
                    ),
                });
            }
            Err(e) => return Err(e),
        }
        if !deleted_ids.is_empty() {
            self.after_commit(EventKind::ForceDeleted, deleted_ids, true)
                .await;
        }
        if !updated_ids.is_empty() {
            self.after_commit(EventKind::Updated, updated_ids, true)
                .await;
        }
        Ok(report)
    }

    /// The stored rows with `ids` (soft-deleted too), locked, by id text.
    async fn locked_rows(&self, tx: &mut Tx, ids: &[Value]) -> Result<HashMap<String, Vec<Value>>> {
        let meta = self.meta();
        let pk = meta.primary_key();
        let pk_i = meta.primary_key_index();
        let mut out = HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(out);
        }
        let mut q = tx.sql();
        q.push("SELECT ");
        push_columns(&mut q, meta);
        q.push(" FROM ").ident(meta.table()).push(" WHERE ");
        q.qualified(meta.table(), pk.column_name());
        q.in_list(ids, |q, id| {
            q.bind_field(id.clone(), pk);
        });
        dialect::push_for_update(&mut q);
        for row in tx.fetch_all(q, &column_types(meta)).await? {
            out.insert(row[pk_i].display(), row);
        }
        Ok(out)
    }
}

/// Whether the stored `row` still holds every value of `written`.
fn unchanged_since(
    meta: &crate::resource::ResourceMeta,
    row: &[Value],
    written: &serde_json::Value,
) -> bool {
    let Some(w) = written.as_object() else {
        return true;
    };
    w.iter().all(|(name, j)| {
        meta.field_index(name)
            .is_none_or(|i| same_json(&row[i].to_json(), j))
    })
}

/// JSON equality that reads numbers as numbers (`1.0` and `1` agree).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}
