//! Writes of many rows at once for an import: every row checked as a
//! form's would be (permissions, field visibility, validation, the
//! record-level policy, `unique` and `belongs_to`), the valid ones written
//! in one transaction with their audit entries, the others answered with
//! their field errors. An import key turns a row into an update of the
//! record holding that key (an upsert). What each write changed is handed
//! to a [`TouchLog`] in the same transaction, so that the batch can be
//! rolled back ([`Records::revert_import`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;

use crate::audit::NewEntry;
use crate::db::{Tx, dialect};
use crate::error::{Error, FieldErrors, Result};
use crate::event::EventKind;
use crate::permission::Ability;
use crate::query::{column_types, push_columns};
use crate::value::Value;

use super::{Changes, Records};

/// Rows looked up or checked per `IN (..)` list.
pub(super) const LOOKUP_CHUNK: usize = 500;

/// One row of an import: its position in the file (for messages) and the
/// values read from it.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// The row's number in the file (1 is the first data row after the
    /// heading row, or as the caller counts).
    pub line: u64,
    /// The values.
    pub changes: Changes,
}

/// Whether a write created or updated its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchAction {
    /// The import created the record.
    Created,
    /// The import updated the record.
    Updated,
}

impl TouchAction {
    /// `created` or `updated`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
        }
    }
    /// The action named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "created" => Some(Self::Created),
            "updated" => Some(Self::Updated),
            _ => None,
        }
    }
}

/// A record an import wrote: what it was before and what the import wrote,
/// as stored (JSON objects of field name to stored value; encrypted fields
/// hold their ciphertext, so nothing here is in clear that is not in clear
/// in the table).
#[derive(Debug, Clone, PartialEq)]
pub struct Touched {
    /// The record's id, as text.
    pub record_id: String,
    /// Created or updated.
    pub action: TouchAction,
    /// The written fields' values before the import (updates only).
    pub previous: Option<serde_json::Value>,
    /// The values the import wrote.
    pub written: serde_json::Value,
}

/// Where an import records what it touched, in the transaction of the
/// rows themselves (an import's batch table).
#[async_trait]
pub trait TouchLog: Send + Sync + 'static {
    /// Records `touched` in `tx`.
    async fn record(&self, tx: &mut Tx, touched: &[Touched]) -> Result<()>;
}

/// How [`Records::import_chunk`] writes.
#[derive(Clone, Default)]
pub struct ImportOptions {
    /// The unique field whose value finds the record a row updates; rows
    /// whose key is new (or empty) create records.
    pub key: Option<&'static str>,
    /// Check and write everything, then roll the transaction back.
    pub dry_run: bool,
    /// Tags of the audit entries (`import:<batch id>`), on top of `bulk`.
    pub tags: Vec<String>,
    /// Where the touched records go.
    pub log: Option<Arc<dyn TouchLog>>,
}

impl std::fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("key", &self.key)
            .field("dry_run", &self.dry_run)
            .field("tags", &self.tags)
            .field("log", &self.log.is_some())
            .finish()
    }
}

/// What became of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOutcome {
    /// A record was created with this id.
    Created(Value),
    /// The record with this id was updated.
    Updated(Value),
    /// The record with this id already held these values.
    Unchanged(Value),
    /// The row was not written, for these reasons.
    Failed(FieldErrors),
}

/// A row that passed its checks, ready to write.
pub(super) enum Ready {
    Create {
        n: usize,
        plain: Vec<Value>,
        stored: Vec<Value>,
    },
    Update {
        n: usize,
        id: Value,
        old_plain: Vec<Value>,
        old_stored: Vec<Value>,
        plain: Vec<Value>,
        stored: Vec<Value>,
        changed: Vec<usize>,
        set: Vec<usize>,
    },
}

impl Ready {
    pub(super) fn n(&self) -> usize {
        match self {
            Self::Create { n, .. } | Self::Update { n, .. } => *n,
        }
    }
    fn plain(&self) -> &[Value] {
        match self {
            Self::Create { plain, .. } | Self::Update { plain, .. } => plain,
        }
    }
}

impl Records {
    /// Writes one chunk of an import in one transaction and answers each
    /// row's outcome, in row order. Needs `create_` (and `update_` with an
    /// import key); the caller checks `import_`. Rows are checked as the
    /// panel's form would check them (the actor's field visibility, the
    /// record-level policy, validation, `unique` values, also among the
    /// chunk's rows, and `belongs_to` targets), so a row that fails names
    /// each field and reason and the others are written. Audit entries are
    /// tagged `bulk` and `options.tags`.
    ///
    /// A constraint the checks could not foresee (a concurrent writer took
    /// a unique value), or a deadlock with a concurrent writer, rolls the
    /// chunk back and writes its rows one by one.
    pub async fn import_chunk(
        &self,
        rows: Vec<ImportRow>,
        options: ImportOptions,
    ) -> Result<Vec<RowOutcome>> {
        if !self.meta().importable() {
            return Err(Error::Unsupported(format!(
                "{} cannot be imported",
                self.meta().plural_label()
            )));
        }
        self.authorize(Ability::Create)?;
        if options.key.is_some() {
            self.authorize(Ability::Update)?;
        }
        // Fields left out of imports (`import = false`) are refused like
        // read-only ones.
        let mut rows = rows;
        for row in &mut rows {
            let refused: Vec<String> = row
                .changes
                .values
                .keys()
                .filter(|k| {
                    self.meta()
                        .field(k)
                        .is_some_and(|f| !f.importable() && !f.is_primary_key())
                })
                .cloned()
                .collect();
            for k in refused {
                row.changes.reject(k, "read_only", "cannot be imported");
            }
        }
        if let Some(k) = options.key {
            let f = self.meta().field(k).ok_or_else(|| {
                Error::Configuration(format!(
                    "the import key `{k}` of `{}` is not a field",
                    self.meta().name()
                ))
            })?;
            if !f.is_unique() || f.is_encrypted() {
                return Err(Error::Configuration(format!(
                    "the import key `{k}` of `{}` must be a unique, unencrypted field",
                    self.meta().name()
                )));
            }
        }
        self.detached(|r| async move {
            match r.import_chunk_once(&rows, &options).await {
                Err(e)
                    if rows.len() > 1
                        && (matches!(e, Error::Conflict { .. }) || e.is_deadlock()) =>
                {
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        let one = r.import_chunk_once(&[row], &options).await;
                        let message = match one {
                            Ok(mut v) => {
                                out.push(v.remove(0));
                                continue;
                            }
                            Err(Error::Conflict { message, .. }) => message,
                            Err(e) if e.is_deadlock() => {
                                "conflicted with a concurrent write; import it again".to_owned()
                            }
                            Err(e) => return Err(e),
                        };
                        let mut e = FieldErrors::default();
                        e.add("row", "conflict", message);
                        out.push(RowOutcome::Failed(e));
                    }
                    Ok(out)
                }
                other => other,
            }
        })
        .await
    }

    async fn import_chunk_once(
        &self,
        rows: &[ImportRow],
        options: &ImportOptions,
    ) -> Result<Vec<RowOutcome>> {
        let meta = self.meta();
        let now = Value::DateTime(crate::db::truncate_micros(Utc::now()));
        let key = options.key.and_then(|k| meta.field_index(k));
        let db = self.platform.db();
        let mut tx = db.begin().await?;
        let result = async {
            let existing = match key {
                Some(k) => self.existing_by_key(&mut tx, rows, k).await?,
                None => HashMap::new(),
            };
            let mut outcomes: Vec<Option<RowOutcome>> = vec![None; rows.len()];
            let mut ready = Vec::with_capacity(rows.len());
            let mut keys_seen: HashMap<String, u64> = HashMap::new();
            for (n, row) in rows.iter().enumerate() {
                // Two rows of one chunk with one key: the file is ambiguous
                // about which one wins (rows of later chunks apply in turn).
                if let Some(k) = key
                    && let Some(v) = row.changes.values.get(meta.field_list()[k].name())
                    && !v.is_null()
                {
                    if let Some(first) = keys_seen.get(&v.display()) {
                        let mut e = FieldErrors::default();
                        e.add(
                            meta.field_list()[k].name(),
                            "unique",
                            format!("repeats the key of row {first}"),
                        );
                        outcomes[n] = Some(RowOutcome::Failed(e));
                        continue;
                    }
                    keys_seen.insert(v.display(), row.line);
                }
                let found = key
                    .and_then(|k| row.changes.values.get(meta.field_list()[k].name()))
                    .filter(|v| !v.is_null())
                    .and_then(|v| existing.get(&v.display()));
                let prepared = match found {
                    Some(old) => self.prepare_import_update(n, old, row.changes.clone()),
                    None => self
                        .prepare_create(row.changes.clone(), false, &now)
                        .await
                        .map(|(plain, stored)| Some(Ready::Create { n, plain, stored })),
                };
                match prepared {
                    Ok(Some(r)) => ready.push(r),
                    Ok(None) => {
                        let id = found.map(|o| o[meta.primary_key_index()].clone());
                        outcomes[n] = Some(RowOutcome::Unchanged(id.unwrap_or(Value::Null)));
                    }
                    Err(Error::Validation(e)) => outcomes[n] = Some(RowOutcome::Failed(e)),
                    Err(Error::PermissionDenied { .. }) => {
                        let mut e = FieldErrors::default();
                        e.add("row", "forbidden", "is outside the records you may change");
                        outcomes[n] = Some(RowOutcome::Failed(e));
                    }
                    Err(e) => return Err(e),
                }
            }
            let failed = self.check_chunk(&mut tx, &ready, rows).await?;
            let ready: Vec<Ready> = ready
                .into_iter()
                .filter_map(|r| match failed.get(&r.n()) {
                    Some(e) => {
                        outcomes[r.n()] = Some(RowOutcome::Failed(e.clone()));
                        None
                    }
                    None => Some(r),
                })
                .collect();
            let (created, updated) = self
                .write_ready(&mut tx, ready, options, &mut outcomes)
                .await?;
            let outcomes = outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| RowOutcome::Failed(FieldErrors::default())))
                .collect();
            Ok((outcomes, created, updated))
        }
        .await;
        let (outcomes, created, updated) = match result {
            Ok(r) if options.dry_run => {
                tx.rollback().await?;
                return Ok(r.0);
            }
            r => tx.finish(r).await?,
        };
        if !created.is_empty() {
            self.after_commit(EventKind::Created, created, true).await;
        }
        if !updated.is_empty() {
            self.after_commit(EventKind::Updated, updated, true).await;
        }
        Ok(outcomes)
    }

    /// The stored rows (soft-deleted too) holding the key values of
    /// `rows`, locked, by the key's display text.
    async fn existing_by_key(
        &self,
        tx: &mut Tx,
        rows: &[ImportRow],
        k: usize,
    ) -> Result<HashMap<String, Vec<Value>>> {
        let meta = self.meta();
        let f = &meta.field_list()[k];
        let mut keys: Vec<Value> = rows
            .iter()
            .filter_map(|r| r.changes.values.get(f.name()))
            .filter(|v| !v.is_null() && v.fits(f.ty()))
            .cloned()
            .collect();
        keys.sort_by_key(Value::display);
        keys.dedup();
        let mut out = HashMap::new();
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            let mut q = tx.sql();
            q.push("SELECT ");
            push_columns(&mut q, meta);
            q.push(" FROM ").ident(meta.table()).push(" WHERE ");
            q.ident(f.column_name());
            q.in_list(chunk, |q, v| {
                q.bind_field(v.clone(), f);
            });
            dialect::push_for_update(&mut q);
            for row in tx.fetch_all(q, &column_types(meta)).await? {
                out.insert(row[k].display(), row);
            }
        }
        Ok(out)
    }

    /// Checks a row that updates the stored record `stored` like
    /// [`Records::update`] would; `None` when nothing changes.
    fn prepare_import_update(
        &self,
        n: usize,
        stored: &[Value],
        changes: Changes,
    ) -> Result<Option<Ready>> {
        let meta = self.meta();
        let id = stored[meta.primary_key_index()].clone();
        if let Some(d) = meta.deleted_at()
            && meta
                .field_index(d.name())
                .is_some_and(|i| !stored[i].is_null())
        {
            return Err(Error::invalid(
                "row",
                "deleted",
                format!(
                    "its key belongs to a deleted {} (restore it first)",
                    meta.label_text()
                ),
            ));
        }
        if !self.in_scope(stored)? {
            return Err(self.outside_policy());
        }
        let (probe, errors) = self.probe_update(changes, false);
        errors.into_result()?;
        let old_plain = self.decrypt_row(stored.to_vec())?.into_values();
        let up = self.plan_update(stored, &old_plain, &probe)?;
        if up.changed.is_empty() {
            return Ok(None);
        }
        Ok(Some(Ready::Update {
            n,
            id,
            old_plain,
            old_stored: stored.to_vec(),
            plain: up.plain,
            stored: up.stored,
            changed: up.changed,
            set: up.set,
        }))
    }

    /// Inserts and updates the ready rows with their audit entries and
    /// touched records; answers the created and updated ids.
    async fn write_ready(
        &self,
        tx: &mut Tx,
        ready: Vec<Ready>,
        options: &ImportOptions,
        outcomes: &mut [Option<RowOutcome>],
    ) -> Result<(Vec<Value>, Vec<Value>)> {
        let meta = self.meta();
        let pk_i = meta.primary_key_index();
        let per_statement = (30_000 / meta.field_list().len()).clamp(1, 500);
        let mut entries: Vec<NewEntry> = Vec::new();
        let mut touched: Vec<Touched> = Vec::new();
        let (creates, updates): (Vec<Ready>, Vec<Ready>) = ready
            .into_iter()
            .partition(|r| matches!(r, Ready::Create { .. }));
        let mut created = Vec::with_capacity(creates.len());
        let audit = self.records_changes();
        for chunk in creates.chunks(per_statement) {
            let stored: Vec<Vec<Value>> = chunk
                .iter()
                .map(|r| match r {
                    Ready::Create { stored, .. } => stored.clone(),
                    Ready::Update { .. } => unreachable!("partitioned"),
                })
                .collect();
            let ids = self.insert_rows(tx, &stored).await?;
            for ((r, id), st) in chunk.iter().zip(ids).zip(&stored) {
                let mut plain = r.plain().to_vec();
                plain[pk_i] = id.clone();
                if audit {
                    let new = self.audit_values(&plain, &self.all_fields());
                    entries.push(self.audit_entry(EventKind::Created, &id, None, Some(new)));
                }
                if options.log.is_some() {
                    let fields: Vec<usize> = (0..st.len()).filter(|&i| i != pk_i).collect();
                    touched.push(Touched {
                        record_id: id.display(),
                        action: TouchAction::Created,
                        previous: None,
                        written: stored_json(meta, st, &fields),
                    });
                }
                outcomes[r.n()] = Some(RowOutcome::Created(id.clone()));
                created.push(id);
            }
        }
        let mut updated = Vec::with_capacity(updates.len());
        for r in updates {
            let Ready::Update {
                n,
                id,
                old_plain,
                old_stored,
                plain,
                stored,
                changed,
                set,
            } = r
            else {
                continue;
            };
            self.write_update(tx, &id, &stored, &set).await?;
            if audit && let Some(entry) = self.update_entry(&id, &old_plain, &plain, &changed) {
                entries.push(entry);
            }
            if options.log.is_some() {
                touched.push(Touched {
                    record_id: id.display(),
                    action: TouchAction::Updated,
                    previous: Some(stored_json(meta, &old_stored, &set)),
                    written: stored_json(meta, &stored, &set),
                });
            }
            outcomes[n] = Some(RowOutcome::Updated(id.clone()));
            updated.push(id);
        }
        if !entries.is_empty() {
            let mut ctx = self.ctx.clone().with_tag("bulk");
            for t in &options.tags {
                ctx = ctx.with_tag(t.clone());
            }
            self.record_changes(tx, &ctx, &entries).await?;
        }
        if let Some(log) = &options.log
            && !touched.is_empty()
        {
            log.record(tx, &touched).await?;
        }
        Ok((created, updated))
    }
}

/// `fields` of a stored row as a JSON object of name to value.
pub(super) fn stored_json(
    meta: &crate::resource::ResourceMeta,
    stored: &[Value],
    fields: &[usize],
) -> serde_json::Value {
    let mut m = serde_json::Map::with_capacity(fields.len());
    for &i in fields {
        m.insert(meta.field_list()[i].name().to_owned(), stored[i].to_json());
    }
    serde_json::Value::Object(m)
}
