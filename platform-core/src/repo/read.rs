//! Reading records: by id, by page, and counts.

use crate::db::dialect;
use crate::db::{Backend, Sql};
use crate::error::Result;
use crate::permission::{Ability, VIEW_ENCRYPTED};
use crate::query::{
    Count, ListQuery, MAX_BATCH_SIZE, MAX_PAGE_SIZE, Paging, Plan, column_types, encode_cursor,
    push_columns,
};
use crate::value::{FieldType, Value};

use super::{
    COUNT_CACHE_TTL, COUNT_THRESHOLD, FIND_TTL, Page, Record, Records, WORD_PROBE_TTL, count_tag,
    encryption_context,
};

impl Records {
    /// A plan for reading pages and counts: on PostgreSQL, a search of
    /// several words asks the trigram index only for the words that are
    /// not common (see [`Plan::search_words`]). Whether a word is common
    /// (in more than [`COUNT_THRESHOLD`] rows) is probed once and kept for
    /// [`WORD_PROBE_TTL`]; the rows found are the same either way.
    async fn read_plan(&self, query: &ListQuery) -> Result<Plan> {
        let mut plan = self.plan(query)?;
        let db = self.platform.db();
        if !dialect::probes_search_words(db.backend()) {
            return Ok(plan);
        }
        let words = plan.search_words();
        if words.len() < 2 {
            return Ok(plan);
        }
        let table = self.meta().table();
        let mut uncommon = Vec::new();
        for w in &words {
            let key = format!(
                "search-word:{table}:{}",
                crate::crypto::sha256_hex(w.as_bytes())
            );
            let common = self
                .platform
                .cache()
                .remember(&key, WORD_PROBE_TTL, || async {
                    let mut q = db.sql();
                    q.push("SELECT COUNT(*) FROM (");
                    plan.push_word_probe(&mut q, w);
                    q.push(" LIMIT ")
                        .int(i64::try_from(COUNT_THRESHOLD).unwrap_or(i64::MAX) + 1)
                        .push(") AS c");
                    let n = db.fetch_i64(q).await?.unwrap_or(0);
                    Ok(u64::try_from(n).unwrap_or(0) > COUNT_THRESHOLD)
                })
                .await?;
            if !common {
                uncommon.push(w.clone());
            }
        }
        if !uncommon.is_empty() && uncommon.len() < words.len() {
            plan.index_words = Some(uncommon);
        }
        Ok(plan)
    }

    pub(super) fn select_by_id(&self, backend: Backend, id: &Value, lock: bool) -> Sql {
        let meta = self.meta();
        let pk = meta.primary_key();
        let mut q = Sql::new(backend);
        q.push("SELECT ");
        push_columns(&mut q, meta);
        q.push(" FROM ").ident(meta.table()).push(" WHERE ");
        q.qualified(meta.table(), pk.column_name())
            .push(" = ")
            .bind_field(id.clone(), pk);
        if lock {
            dialect::push_for_update(&mut q);
        }
        q
    }

    /// Decrypts the encrypted fields of a stored row.
    pub(super) fn decrypt_row(&self, mut values: Vec<Value>) -> Result<Record> {
        let meta = self.meta();
        for (f, v) in meta.field_list().iter().zip(values.iter_mut()) {
            if f.is_encrypted()
                && let Value::Text(ct) = v
            {
                let pt = self
                    .platform
                    .crypto()
                    .decrypt(ct, &encryption_context(meta, f))?;
                *v = Value::Text(pt);
            }
        }
        Ok(Record::new(meta, values))
    }

    pub(super) async fn fetch_stored(&self, id: &Value) -> Result<Option<Vec<Value>>> {
        let meta = self.meta();
        let db = self.platform.db();
        let types = column_types(meta);
        if meta.is_cached() {
            let tag = self.cache_tag();
            let key = format!("find:{}", id.display());
            let cache = self.platform.cache().tags(&[tag.as_str()]);
            if let Some(v) = cache.get::<Vec<Value>>(&key).await {
                return Ok(Some(v));
            }
            let row = db
                .fetch_optional(self.select_by_id(db.backend(), id, false), &types)
                .await?;
            if let Some(r) = &row {
                cache.put(&key, r, FIND_TTL).await;
            }
            return Ok(row);
        }
        db.fetch_optional(self.select_by_id(db.backend(), id, false), &types)
            .await
    }

    /// Encrypted values as the actor may see them: decrypted with
    /// `view_encrypted` (or when `full`, for typed host code), else `Null`
    /// (and then not decrypted at all).
    fn visible_row(&self, mut values: Vec<Value>, full: bool) -> Result<Record> {
        if full || self.ctx.can(VIEW_ENCRYPTED) {
            return self.decrypt_row(values);
        }
        for (f, v) in self.meta().field_list().iter().zip(values.iter_mut()) {
            if f.is_encrypted() {
                *v = Value::Null;
            }
        }
        Ok(Record::new(self.meta(), values))
    }

    /// The record with this id. Soft-deleted records are not found.
    /// Encrypted fields are `Null` unless the actor has `view_encrypted`.
    pub async fn find(&self, id: Value) -> Result<Record> {
        self.find_inner(id, false).await
    }

    pub(crate) async fn find_inner(&self, id: Value, full: bool) -> Result<Record> {
        self.authorize(Ability::View)?;
        self.check_id(&id)?;
        let row = self
            .fetch_stored(&id)
            .await?
            .filter(|r| self.in_scope(r).unwrap_or(false))
            .ok_or_else(|| self.not_found(&id))?;
        let rec = self.visible_row(row, full)?;
        if let Some(d) = self.meta().deleted_at()
            && !rec.get(d.name()).is_some_and(Value::is_null)
        {
            return Err(self.not_found(&id));
        }
        Ok(rec)
    }

    /// The record with this id, soft-deleted or not.
    pub async fn find_with_trashed(&self, id: Value) -> Result<Record> {
        self.authorize(Ability::View)?;
        self.check_id(&id)?;
        let row = self
            .fetch_stored(&id)
            .await?
            .filter(|r| self.in_scope(r).unwrap_or(false))
            .ok_or_else(|| self.not_found(&id))?;
        self.visible_row(row, false)
    }

    /// A page of records matching `query`. Encrypted fields are `Null`
    /// unless the actor has `view_encrypted`.
    pub async fn list(&self, query: &ListQuery) -> Result<Page<Record>> {
        self.list_inner(query, false).await
    }

    /// Up to `size` records (at most [`MAX_BATCH_SIZE`]) matching `query`
    /// after its cursor, for code that walks a whole list (exports, jobs):
    /// the same search, filters, sort, scope and field visibility as
    /// [`Records::list`], in larger pages. `query` must use keyset paging
    /// (its page size is ignored); follow `next_cursor` with
    /// [`ListQuery::after`]. Never counts.
    pub async fn batch(&self, query: &ListQuery, size: u32) -> Result<Page<Record>> {
        let Paging::Cursor { after, .. } = &query.paging else {
            let mut errors = crate::error::FieldErrors::default();
            errors.add(
                "page[number]",
                "invalid",
                "a batch follows cursors, not page numbers",
            );
            return Err(crate::Error::Validation(errors));
        };
        let mut q = query.clone();
        q.paging = Paging::Cursor {
            size: MAX_PAGE_SIZE,
            after: after.clone(),
        };
        q.count = false;
        self.list_sized(&q, false, Some(size.clamp(1, MAX_BATCH_SIZE)))
            .await
    }

    pub(crate) async fn list_inner(&self, query: &ListQuery, full: bool) -> Result<Page<Record>> {
        self.list_sized(query, full, None).await
    }

    async fn list_sized(
        &self,
        query: &ListQuery,
        full: bool,
        size: Option<u32>,
    ) -> Result<Page<Record>> {
        self.authorize(Ability::ViewAny)?;
        let meta = self.meta();
        let mut plan = self.read_plan(query).await?;
        if let Some(size) = size {
            plan.size = size;
        }
        let db = self.platform.db();
        let backend = db.backend();
        let mut q = Sql::new(backend);
        q.push("SELECT ");
        push_columns(&mut q, meta);
        q.push(" FROM ").ident(meta.table());
        if size.is_some() && plan.walks_key_order() {
            dialect::push_key_order_scan(&mut q);
        }
        plan.push_where(&mut q, backend, true);
        plan.push_order(&mut q);
        q.push(" LIMIT ").int(i64::from(plan.size) + 1);
        if let Some(off) = plan.offset {
            q.push(" OFFSET ")
                .int(i64::try_from(off).unwrap_or(i64::MAX));
        }
        let mut rows = db.fetch_all(q, &column_types(meta)).await?;
        // Rows known to exist from this read: the skipped ones, this page
        // and the one past it (a lower bound for the total).
        let seen = plan.offset.unwrap_or(0).saturating_add(rows.len() as u64);
        let has_more = rows.len() > plan.size as usize;
        rows.truncate(plan.size as usize);
        let next_cursor = match (&query.paging, has_more, rows.last()) {
            (Paging::Cursor { .. }, true, Some(last)) => Some(encode_cursor(
                &plan.sort,
                &last[plan.sort.index],
                &last[meta.primary_key_index()],
            )),
            _ => None,
        };
        let first_page = plan.after.is_none() && plan.offset.unwrap_or(0) == 0;
        let total = if !query.count {
            None
        } else if first_page && !has_more {
            Some(Count::Exact(rows.len() as u64))
        } else {
            Some(self.count_plan(&plan, seen).await?)
        };
        let items = rows
            .into_iter()
            .map(|r| self.visible_row(r, full))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page {
            items,
            next_cursor,
            has_more,
            total,
        })
    }

    /// Counts the records matching `query`: exactly up to
    /// [`COUNT_THRESHOLD`], estimated from statistics above it.
    pub async fn count(&self, query: &ListQuery) -> Result<Count> {
        self.authorize(Ability::ViewAny)?;
        let plan = self.read_plan(query).await?;
        self.count_plan(&plan, 0).await
    }

    /// The bounded count of `plan`, reused for [`COUNT_CACHE_TTL`] (keyed
    /// by the statement and its values, which hold the filters, search and
    /// the actor's scope) and dropped by any write to the resource.
    ///
    /// `seen` is how many matching rows the caller has just read (0 when
    /// unknown). A total below it cannot be right and is neither reused nor
    /// kept: a cached one is counted again, and a fresh one is answered as
    /// "at least `seen`". Seen on MariaDB: while InnoDB moves a big write
    /// from its full-text cache into the index (in the background, shortly
    /// after the commit), `MATCH` finds some or none of the rows for a few
    /// milliseconds, so a count taken then (0 after a 12,000-row insert)
    /// must not stand for [`COUNT_CACHE_TTL`]. Also a count taken before
    /// rows were written around the platform.
    async fn count_plan(&self, plan: &Plan, seen: u64) -> Result<Count> {
        let meta = self.meta();
        let backend = self.platform.db().backend();
        let mut q = Sql::new(backend);
        q.push("SELECT COUNT(*) FROM (SELECT 1 FROM ")
            .ident(meta.table());
        plan.push_where(&mut q, backend, false);
        q.push(" LIMIT ")
            .int(i64::try_from(COUNT_THRESHOLD).unwrap_or(i64::MAX) + 1);
        q.push(") AS c");
        let key = format!("count:{}", q.fingerprint());
        let tag = count_tag(meta.table());
        let cache = self.platform.cache().tags(&[&tag]);
        if let Some(c) = cache.get::<Count>(&key).await
            && c.value() >= seen
        {
            return Ok(c);
        }
        let c = self.count_uncached(plan, q).await?;
        if c.value() < seen {
            return Ok(Count::AtLeast(seen));
        }
        cache.put(&key, &c, COUNT_CACHE_TTL).await;
        Ok(c)
    }

    async fn count_uncached(&self, plan: &Plan, q: Sql) -> Result<Count> {
        let meta = self.meta();
        let db = self.platform.db();
        let backend = db.backend();
        let n = u64::try_from(db.fetch_i64(q).await?.unwrap_or(0)).unwrap_or(0);
        if n <= COUNT_THRESHOLD {
            return Ok(Count::Exact(n));
        }
        let pk = meta.primary_key();
        let integer_key =
            matches!(pk.ty(), FieldType::I64 | FieldType::I32).then(|| pk.column_name());
        let whole_table = !plan.is_filtered() && meta.deleted_at().is_none();
        let estimate = match whole_table
            .then(|| dialect::table_row_estimate(backend, meta.table(), integer_key))
            .flatten()
        {
            Some(e) => db.fetch_i64(e).await?,
            None if !whole_table && dialect::explains_row_estimates(backend) => {
                let mut e = Sql::new(backend);
                dialect::push_explain(&mut e);
                e.push("SELECT 1 FROM ").ident(meta.table());
                plan.push_where(&mut e, backend, false);
                dialect::explained_rows(db.fetch_optional(e, &[FieldType::Json]).await?)
            }
            None => None,
        };
        Ok(match estimate {
            Some(e) if u64::try_from(e).unwrap_or(0) > COUNT_THRESHOLD => {
                Count::Estimated(u64::try_from(e).unwrap_or(0))
            }
            _ => Count::AtLeast(COUNT_THRESHOLD + 1),
        })
    }
}
