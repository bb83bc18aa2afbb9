//! The checks of an import chunk that need the database: `unique` values
//! (stored, and repeated among the chunk's rows) and `belongs_to` targets,
//! one query per field and [`LOOKUP_CHUNK`] values.

use std::collections::{HashMap, HashSet};

use crate::db::Tx;
use crate::error::{FieldErrors, Result};
use crate::resource::FieldMeta;
use crate::value::Value;

use super::Records;
use super::import::{ImportRow, LOOKUP_CHUNK, Ready};

impl Records {
    /// The `unique` and `belongs_to` checks of the ready rows, a query per
    /// field and [`LOOKUP_CHUNK`] values: the failures by row index.
    pub(super) async fn check_chunk(
        &self,
        tx: &mut Tx,
        ready: &[Ready],
        rows: &[ImportRow],
    ) -> Result<HashMap<usize, FieldErrors>> {
        let meta = self.meta();
        let mut failed: HashMap<usize, FieldErrors> = HashMap::new();
        for (i, f) in meta.field_list().iter().enumerate() {
            let unique = f.is_unique() && !f.is_encrypted() && !f.is_primary_key();
            let target = f.belongs_to_meta();
            if !unique && target.is_none() {
                continue;
            }
            // The rows writing this field, with the record they update.
            let writes: Vec<(usize, &Value, Option<&Value>)> = ready
                .iter()
                .filter_map(|r| match r {
                    Ready::Create { n, plain, .. } => Some((*n, &plain[i], None)),
                    Ready::Update {
                        n,
                        plain,
                        changed,
                        id,
                        ..
                    } => changed.contains(&i).then_some((*n, &plain[i], Some(id))),
                })
                .filter(|(_, v, _)| !v.is_null())
                .collect();
            if writes.is_empty() {
                continue;
            }
            if unique {
                let mut seen: HashMap<String, usize> = HashMap::new();
                for (n, v, _) in &writes {
                    if let Some(first) = seen.get(&v.display()) {
                        failed.entry(*n).or_default().add(
                            f.name(),
                            "unique",
                            format!("repeats the value of row {}", rows[*first].line),
                        );
                    } else {
                        seen.insert(v.display(), *n);
                    }
                }
                let taken = self.taken_values(tx, f, writes.iter().map(|w| w.1)).await?;
                for (n, v, own) in &writes {
                    if let Some(holder) = taken.get(&v.display())
                        && own.is_none_or(|id| id.display() != *holder)
                    {
                        failed.entry(*n).or_default().add(
                            f.name(),
                            "unique",
                            "has already been taken",
                        );
                    }
                }
            }
            if let Some(target) = target {
                let tpk = target.primary_key();
                let values: Vec<Value> = writes
                    .iter()
                    .map(|w| w.1.clone())
                    .filter(|v| v.fits(tpk.ty()))
                    .collect();
                let mut found = HashSet::new();
                let mut distinct = values.clone();
                distinct.sort_by_key(Value::display);
                distinct.dedup();
                for chunk in distinct.chunks(LOOKUP_CHUNK) {
                    let mut q = tx.sql();
                    q.push("SELECT ")
                        .ident(tpk.column_name())
                        .push(" FROM ")
                        .ident(target.table())
                        .push(" WHERE ")
                        .ident(tpk.column_name());
                    q.in_list(chunk, |q, v| {
                        q.bind_field(v.clone(), tpk);
                    });
                    for row in tx.fetch_all(q, &[crate::db::storage_type(tpk)]).await? {
                        found.insert(row[0].display());
                    }
                }
                for (n, v, _) in &writes {
                    if !found.contains(&v.display()) {
                        failed.entry(*n).or_default().add(
                            f.name(),
                            "exists",
                            format!("refers to a {} that does not exist", target.label_text()),
                        );
                    }
                }
            }
        }
        Ok(failed)
    }

    /// Which of `values` of the unique field `f` (index `i`) are stored,
    /// and in which record (by display text).
    async fn taken_values<'v>(
        &self,
        tx: &mut Tx,
        f: &FieldMeta,
        values: impl Iterator<Item = &'v Value>,
    ) -> Result<HashMap<String, String>> {
        let meta = self.meta();
        let pk = meta.primary_key();
        let mut distinct: Vec<Value> = values.filter(|v| v.fits(f.ty())).cloned().collect();
        distinct.sort_by_key(Value::display);
        distinct.dedup();
        let mut out = HashMap::new();
        for chunk in distinct.chunks(LOOKUP_CHUNK) {
            let mut q = tx.sql();
            q.push("SELECT ")
                .ident(pk.column_name())
                .push(", ")
                .ident(f.column_name())
                .push(" FROM ")
                .ident(meta.table())
                .push(" WHERE ")
                .ident(f.column_name());
            q.in_list(chunk, |q, v| {
                q.bind_field(v.clone(), f);
            });
            let types = [crate::db::storage_type(pk), crate::db::storage_type(f)];
            for row in tx.fetch_all(q, &types).await? {
                out.insert(row[1].display(), row[0].display());
            }
        }
        Ok(out)
    }
}
