//! The one write path (and the read path) of every resource.
//!
//! Every writer (the API, the panel, imports, jobs, host code, the command
//! line) goes through [`Records`] (dynamic, by resource name) or its typed
//! wrapper [`Repo<R>`]:
//!
//! `authorize -> validate -> transform (encrypt) -> transaction { rows +
//! audit entries } -> after commit { cache invalidation, events, sealing }`.
//!
//! Nothing after the commit runs for a transaction that rolled back.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::audit::{AuditValues, NewEntry, REDACTED, insert_entries};
use crate::context::Context;
use crate::db::dialect::{self, InsertedIds};
use crate::db::{Backend, Sql, Tx};
use crate::error::{Error, FieldErrors, Result};
use crate::event::{EventKind, ModelEvent};
use crate::permission::{Ability, VIEW_ENCRYPTED};
use crate::platform::Platform;
use crate::policy::Scope;
use crate::query::{Count, ListQuery, Paging, Plan, column_types, encode_cursor, push_columns};
use crate::resource::{FieldMeta, Resource, ResourceEntry, ResourceMeta};
use crate::validate::is_email;
use crate::value::{FieldType, Value};
use crate::visibility::{FieldAccess, Visibility};

/// Counting stops here; above it, counts are estimated.
pub const COUNT_THRESHOLD: u64 = 10_000;
/// How long a counted total is reused for the same filters, search and
/// scope. Every write through the write path drops a resource's cached
/// totals at once (in every process sharing the cache store), so this only
/// bounds how stale a total can be after writes made around the platform
/// (raw SQL, another process with its own in-memory cache).
pub const COUNT_CACHE_TTL: Duration = Duration::from_secs(10);
/// How long the answer "is this word in more than [`COUNT_THRESHOLD`]
/// rows" is kept for a PostgreSQL search (see `read_plan`).
pub const WORD_PROBE_TTL: Duration = Duration::from_secs(3600);
/// Why a write naming a field the actor may not see is refused.
const HIDDEN_FIELD_MESSAGE: &str =
    "holds data you may not see, so you cannot change it (send it back as shown, or leave it out)";
/// Rows a bulk operation handles per statement.
const BULK_CHUNK: usize = 500;
/// How long a cached `find` lives (it is also invalidated on every write).
const FIND_TTL: Duration = Duration::from_secs(300);

/// The cache tag of a table's counted totals.
fn count_tag(table: &str) -> String {
    format!("count:{table}")
}

/// The key of a record's JSON that names the fields the reader may not
/// see (see [`Record::to_json`]).
pub const HIDDEN_KEY: &str = "_hidden";

/// A record of a resource as dynamic values in field order (decrypted).
#[derive(Debug, Clone)]
pub struct Record {
    meta: &'static ResourceMeta,
    values: Vec<Value>,
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.meta, other.meta) && self.values == other.values
    }
}

impl Record {
    /// A record from values in field order.
    pub fn new(meta: &'static ResourceMeta, values: Vec<Value>) -> Self {
        Self { meta, values }
    }
    /// The metadata.
    pub fn meta(&self) -> &'static ResourceMeta {
        self.meta
    }
    /// The values, in field order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
    /// Takes the values.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
    /// The value of `field`.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.meta
            .field_index(field)
            .and_then(|i| self.values.get(i))
    }
    /// The primary key.
    pub fn id(&self) -> &Value {
        &self.values[self.meta.primary_key_index()]
    }
    /// The record's title (its title field, as text).
    pub fn title(&self) -> String {
        let f = self.meta.title_field();
        self.get(f.name()).map(Value::display).unwrap_or_default()
    }

    /// This record as a JSON object for a viewer who may or may not see
    /// personal and encrypted data (see [`Visibility`]): hidden fields are
    /// left out, `pii` fields masked without `view_pii`. An `encrypted`
    /// field the viewer may not see (no `view_encrypted`) is left out too
    /// and named in the record's `_hidden` list (never `null`, which would
    /// read as "empty"); `_hidden` is present only when it names a field.
    /// Field names never start with `_` (the registry refuses them), so
    /// these keys cannot clash with a field.
    pub fn to_json(&self, ctx: &Context) -> serde_json::Value {
        let vis = Visibility::of(ctx);
        let mut map = serde_json::Map::with_capacity(self.values.len() + 1);
        let mut withheld = Vec::new();
        for (f, v) in self.meta.field_list().iter().zip(&self.values) {
            if f.is_hidden() {
                continue;
            }
            if f.is_encrypted() && !vis.sees_encrypted() {
                withheld.push(serde_json::Value::String(f.name().to_owned()));
                continue;
            }
            map.insert(f.name().to_owned(), vis.shown(f, v));
        }
        if !withheld.is_empty() {
            map.insert(HIDDEN_KEY.to_owned(), serde_json::Value::Array(withheld));
        }
        serde_json::Value::Object(map)
    }
}

pub use crate::visibility::mask_pii;

/// Field values to write, by field name, and the fields whose value could
/// not be read (a string sent for an integer, say).
///
/// The write path reports the fields that could not be read together with
/// every other problem it finds (unknown and read-only fields, required
/// values, lengths, choices, e-mail addresses, and then the `unique` and
/// `belongs_to` checks of the fields that passed their own), so a client
/// learns every field error of a body in one answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    values: BTreeMap<String, Value>,
    errors: FieldErrors,
}

impl Changes {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `field` to `value`.
    pub fn set(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.values.insert(field.into(), value.into());
        self
    }
    /// Sets `field` to `value` in place.
    pub fn insert(&mut self, field: impl Into<String>, value: Value) {
        self.values.insert(field.into(), value);
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// The changes.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// Records that the value sent for `field` could not be read: the
    /// write that takes these changes fails with this message among all
    /// the others it finds (and `field` is not checked further).
    pub fn reject(
        &mut self,
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) {
        let field = field.into();
        self.values.remove(&field);
        self.errors.add(field, code, message);
    }
    /// The fields whose value could not be read (see [`Changes::reject`]).
    pub fn errors(&self) -> &FieldErrors {
        &self.errors
    }

    /// Reads a JSON object for `meta` like [`Changes::from_json`], but keeps
    /// the fields that cannot be taken (unknown, read-only, of the wrong
    /// type) as errors inside the changes (see [`Changes::reject`]), so the
    /// write path answers them in one [`Error::Validation`] with its own
    /// checks. Only a body that is not an object fails here.
    pub fn read_json(meta: &ResourceMeta, json: &serde_json::Value) -> Result<Self> {
        let Some(obj) = json.as_object() else {
            return Err(Error::invalid("body", "type", "must be a JSON object"));
        };
        let mut out = Self::new();
        for (k, v) in obj {
            let Some(f) = meta.field(k).filter(|f| !f.is_hidden()) else {
                out.reject(
                    k.clone(),
                    "unknown_field",
                    "is not a field of this resource",
                );
                continue;
            };
            if f.is_read_only() || f.is_managed() {
                out.reject(k.clone(), "read_only", "cannot be written");
                continue;
            }
            match Value::from_json(f.ty(), v) {
                Ok(val) => out.insert(k.clone(), val),
                Err(e) => out.reject(k.clone(), "type", e.to_string()),
            }
        }
        Ok(out)
    }

    /// Reads a JSON object for `meta`: every key must be a writable field and
    /// every value must have the field's type. All problems of the body are
    /// reported (but not those the write path would find; for one answer
    /// with both, use [`Changes::read_json`]).
    pub fn from_json(meta: &ResourceMeta, json: &serde_json::Value) -> Result<Self> {
        let out = Self::read_json(meta, json)?;
        out.errors.clone().into_result()?;
        Ok(out)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// The cursor of the next page (keyset paging), if there is one.
    pub next_cursor: Option<String>,
    /// Whether there are more rows after this page.
    pub has_more: bool,
    /// The total, when asked for.
    pub total: Option<Count>,
}

impl<T> Page<T> {
    fn map<U>(self, f: impl FnMut(T) -> Result<U>) -> Result<Page<U>> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_>>()?,
            next_cursor: self.next_cursor,
            has_more: self.has_more,
            total: self.total,
        })
    }
}

/// The records of one resource, acted on by one [`Context`].
#[derive(Debug, Clone)]
pub struct Records {
    platform: Platform,
    entry: Arc<ResourceEntry>,
    ctx: Context,
}

/// Typed access to the records of `R`: the same path as [`Records`], with
/// structs in and out.
#[derive(Debug, Clone)]
pub struct Repo<R> {
    records: Records,
    _r: PhantomData<fn() -> R>,
}

fn meta_errors_to(e: crate::resource::FromValuesError) -> Error {
    Error::Backend {
        backend: "resource",
        source: Box::new(e),
    }
}

impl<R: Resource> Repo<R> {
    pub(crate) fn new(records: Records) -> Self {
        Self {
            records,
            _r: PhantomData,
        }
    }
    /// The dynamic records underneath.
    pub fn records(&self) -> &Records {
        &self.records
    }
    fn typed(r: Record) -> Result<R> {
        R::from_values(r.values).map_err(meta_errors_to)
    }
    /// The record with this id.
    pub async fn find(&self, id: impl Into<Value>) -> Result<R> {
        Self::typed(self.records.find_inner(id.into(), true).await?)
    }
    /// A page of records.
    pub async fn list(&self, query: &ListQuery) -> Result<Page<R>> {
        self.records.list_inner(query, true).await?.map(Self::typed)
    }
    /// Creates a record from `value` (its primary key and managed
    /// timestamps are ignored) and returns it as stored.
    pub async fn create(&self, value: &R) -> Result<R> {
        let meta = R::meta();
        let mut changes = Changes::new();
        for (f, v) in meta.field_list().iter().zip(value.to_values()) {
            if !f.is_primary_key() && !f.is_managed() {
                changes.insert(f.name(), v);
            }
        }
        let created = self
            .records
            .detached(|r| async move { r.create_inner(changes, true).await })
            .await?;
        Self::typed(created)
    }
    /// Creates many records in one transaction (all or none) and returns
    /// their ids.
    pub async fn create_many(&self, values: &[R]) -> Result<Vec<Value>> {
        let meta = R::meta();
        let rows = values
            .iter()
            .map(|v| {
                let mut changes = Changes::new();
                for (f, x) in meta.field_list().iter().zip(v.to_values()) {
                    if !f.is_primary_key() && !f.is_managed() {
                        changes.insert(f.name(), x);
                    }
                }
                changes
            })
            .collect();
        self.records
            .detached(|r| async move { r.create_many_inner(rows, true).await })
            .await
    }
    /// Saves `value` over the stored record with the same id, writing only
    /// the fields that changed.
    pub async fn update(&self, value: &R) -> Result<R> {
        let meta = R::meta();
        let values = value.to_values();
        let id = values[meta.primary_key_index()].clone();
        let mut changes = Changes::new();
        for (f, v) in meta.field_list().iter().zip(values) {
            if !f.is_primary_key() && !f.is_managed() {
                changes.insert(f.name(), v);
            }
        }
        let updated = self
            .records
            .detached(|r| async move { r.update_inner(id, changes, true).await })
            .await?;
        Self::typed(updated)
    }
    /// Updates some fields of the record with this id.
    pub async fn update_fields(&self, id: impl Into<Value>, changes: Changes) -> Result<R> {
        Self::typed(self.records.update(id.into(), changes).await?)
    }
    /// Deletes (soft, if the resource soft-deletes).
    pub async fn delete(&self, id: impl Into<Value>) -> Result<()> {
        self.records.delete(id.into()).await
    }
    /// Restores a soft-deleted record.
    pub async fn restore(&self, id: impl Into<Value>) -> Result<R> {
        Self::typed(self.records.restore(id.into()).await?)
    }
    /// Deletes for good.
    pub async fn force_delete(&self, id: impl Into<Value>) -> Result<()> {
        self.records.force_delete(id.into()).await
    }
    /// Updates every record matching `query`'s filters and search.
    pub async fn update_where(&self, query: &ListQuery, changes: Changes) -> Result<u64> {
        self.records.update_where(query, changes).await
    }
    /// Deletes every record matching `query`'s filters and search.
    pub async fn delete_where(&self, query: &ListQuery) -> Result<u64> {
        self.records.delete_where(query).await
    }
}

impl Records {
    pub(crate) fn new(platform: Platform, entry: Arc<ResourceEntry>, ctx: Context) -> Self {
        Self {
            platform,
            entry,
            ctx,
        }
    }

    /// The resource's metadata.
    pub fn meta(&self) -> &'static ResourceMeta {
        self.entry.meta()
    }
    /// The registry entry.
    pub fn entry(&self) -> &Arc<ResourceEntry> {
        &self.entry
    }
    /// The acting context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Runs a write on a task of its own, so that dropping the caller's
    /// future (a client that disconnects) neither cuts the transaction
    /// short nor skips its after-commit work: see [`crate::db::detached`].
    async fn detached<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: FnOnce(Records) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        crate::db::detached(work(self.clone())).await
    }

    fn authorize(&self, ability: Ability) -> Result<()> {
        self.ctx.authorize(self.entry.permission(ability))
    }

    /// The record-level policy's conditions for this actor, resolved
    /// against the metadata (`None`: no record is visible).
    fn scope(&self) -> Result<Option<Vec<(&'static FieldMeta, Value)>>> {
        let meta = self.meta();
        let Some(policy) = meta.policy_fn() else {
            return Ok(Some(Vec::new()));
        };
        match policy(&self.ctx) {
            Scope::All => Ok(Some(Vec::new())),
            Scope::None => Ok(None),
            Scope::Where(conds) => conds
                .into_iter()
                .map(|(name, v)| {
                    meta.field(name).map(|f| (f, v)).ok_or_else(|| {
                        Error::Configuration(format!(
                            "the policy of `{}` names `{name}`, which is not a field",
                            meta.name()
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
        }
    }

    /// Whether the record-level policy lets this actor reach every record.
    pub fn reaches_everything(&self) -> Result<bool> {
        Ok(self.scope()?.is_some_and(|c| c.is_empty()))
    }

    /// Whether a record (values in field order) is inside the policy's scope.
    fn in_scope(&self, values: &[Value]) -> Result<bool> {
        let meta = self.meta();
        Ok(match self.scope()? {
            None => false,
            Some(conds) => conds.iter().all(|(f, v)| {
                meta.field_index(f.name())
                    .is_some_and(|i| values.get(i) == Some(v))
            }),
        })
    }

    /// A validated query plan restricted to the policy's scope.
    fn plan(&self, query: &ListQuery) -> Result<Plan> {
        let mut plan =
            Plan::new(self.meta(), query, Visibility::of(&self.ctx)).map_err(Error::Validation)?;
        plan.restrict(self.scope()?);
        Ok(plan)
    }

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

    fn outside_policy(&self) -> Error {
        Error::PermissionDenied {
            ability: format!("the policy of {}", self.meta().plural()),
        }
    }

    fn cache_tag(&self) -> String {
        format!("resource:{}", self.meta().table())
    }

    /// Reads a primary key value from text (a URL segment).
    pub fn parse_id(&self, text: &str) -> Result<Value> {
        let pk = self.meta().primary_key();
        match Value::parse(pk.ty(), text) {
            Ok(v) if !v.is_null() => Ok(v),
            _ => Err(Error::NotFound {
                resource: self.meta().name(),
                id: text.chars().take(64).collect(),
            }),
        }
    }

    fn not_found(&self, id: &Value) -> Error {
        Error::NotFound {
            resource: self.meta().name(),
            id: id.display(),
        }
    }

    fn check_id(&self, id: &Value) -> Result<()> {
        if id.fits(self.meta().primary_key().ty()) && !id.is_null() {
            Ok(())
        } else {
            Err(self.not_found(id))
        }
    }

    // ---- reading --------------------------------------------------------

    fn select_by_id(&self, backend: Backend, id: &Value, lock: bool) -> Sql {
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
    fn decrypt_row(&self, mut values: Vec<Value>) -> Result<Record> {
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

    async fn fetch_stored(&self, id: &Value) -> Result<Option<Vec<Value>>> {
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

    pub(crate) async fn list_inner(&self, query: &ListQuery, full: bool) -> Result<Page<Record>> {
        self.authorize(Ability::ViewAny)?;
        let meta = self.meta();
        let plan = self.read_plan(query).await?;
        let db = self.platform.db();
        let backend = db.backend();
        let mut q = Sql::new(backend);
        q.push("SELECT ");
        push_columns(&mut q, meta);
        q.push(" FROM ").ident(meta.table());
        plan.push_where(&mut q, backend, true);
        plan.push_order(&mut q);
        q.push(" LIMIT ").int(i64::from(plan.size) + 1);
        if let Some(off) = plan.offset {
            q.push(" OFFSET ")
                .int(i64::try_from(off).unwrap_or(i64::MAX));
        }
        let mut rows = db.fetch_all(q, &column_types(meta)).await?;
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
            Some(self.count_plan(&plan).await?)
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
        self.count_plan(&plan).await
    }

    /// The bounded count of `plan`, reused for [`COUNT_CACHE_TTL`] (keyed
    /// by the statement and its values, which hold the filters, search and
    /// the actor's scope) and dropped by any write to the resource.
    async fn count_plan(&self, plan: &Plan) -> Result<Count> {
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
        self.platform
            .cache()
            .tags(&[&tag])
            .remember(&key, COUNT_CACHE_TTL, || self.count_uncached(plan, q))
            .await
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

    // ---- validation -----------------------------------------------------

    /// Checks values for `fields` (the ones being written), adding every
    /// problem to `errors`. A field that already has an error (its value
    /// could not be read, say) is not checked again.
    fn validate(
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
    async fn check_references(
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
    fn apply(
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
    fn drop_shown_values(
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
    fn encrypt(&self, values: &mut [Value]) {
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
    async fn explain_conflict(
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

    // ---- audit helpers --------------------------------------------------

    fn audit_values(&self, values: &[Value], fields: &[usize]) -> AuditValues {
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

    fn all_fields(&self) -> Vec<usize> {
        (0..self.meta().field_list().len()).collect()
    }

    fn audit_entry(
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

    async fn after_commit(&self, kind: EventKind, ids: Vec<Value>, bulk: bool) {
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
    async fn prepare_create(
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

    /// `INSERT` of `rows` (stored values), returning the new ids in row order.
    async fn insert_rows(&self, tx: &mut Tx, rows: &[Vec<Value>]) -> Result<Vec<Value>> {
        let meta = self.meta();
        let pk_i = meta.primary_key_index();
        let pk = meta.primary_key();
        let backend = tx.backend();
        let generated = self.has_generated_id();
        let cols: Vec<usize> = (0..meta.field_list().len())
            .filter(|&i| !(generated && i == pk_i))
            .collect();
        let mut q = Sql::new(backend);
        q.push("INSERT INTO ").ident(meta.table()).push(" (");
        q.join(&cols, ", ", |q, &i| {
            q.ident(meta.field_list()[i].column_name());
        });
        q.push(") VALUES ");
        q.join(rows, ", ", |q, row| {
            q.push("(");
            q.join(&cols, ", ", |q, &i| {
                q.bind_field(row[i].clone(), &meta.field_list()[i]);
            });
            q.push(")");
        });
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
        let mut tx = db.begin().await?;
        let result: Result<Value> = async {
            let id = self
                .insert_rows(&mut tx, std::slice::from_ref(&stored))
                .await?
                .remove(0);
            if meta.is_audited() {
                let mut audited = plain.clone();
                audited[pk_i] = id.clone();
                let new = self.audit_values(&audited, &self.all_fields());
                insert_entries(
                    &mut tx,
                    &self.ctx,
                    &[self.audit_entry(EventKind::Created, &id, None, Some(new))],
                )
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
                if meta.is_audited() {
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
                    insert_entries(&mut tx, &self.ctx, &entries).await?;
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
        let mut probe = vec![Value::Null; meta.field_list().len()];
        let (mut written, masked, mut errors) = self.apply(&mut probe, changes, trusted, false);
        let checked: Vec<usize> = written
            .iter()
            .copied()
            .filter(|i| !masked.contains(i))
            .collect();
        self.validate(&probe, &checked, false, &mut errors);
        if !errors.is_empty() {
            self.check_references(&probe, &checked, Some(&id), &mut errors)
                .await;
            return Err(Error::Validation(errors));
        }
        let db = self.platform.db();
        let mut tx = db.begin().await?;
        let result: Result<(Vec<Value>, Vec<usize>)> = async {
            let current = self.locked_row(&mut tx, &id).await?;
            let old = self.decrypt_row(current)?.into_values();
            self.drop_shown_values(&mut written, &masked, &old, &probe)?;
            let mut plain = old.clone();
            for &i in &written {
                plain[i] = probe[i].clone();
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
                return Ok((plain, changed));
            }
            let mut stored = plain.clone();
            self.encrypt(&mut stored);
            let mut set = changed.clone();
            if let Some(u) = meta
                .field_index("updated_at")
                .filter(|&i| meta.field_list()[i].is_managed())
            {
                stored[u] = Value::DateTime(crate::db::truncate_micros(Utc::now()));
                plain[u] = stored[u].clone();
                set.push(u);
            }
            self.write_update(&mut tx, &id, &stored, &set).await?;
            if meta.is_audited() {
                let o = self.audit_values(&old, &changed);
                let n = self.audit_values(&plain, &changed);
                if !n.is_empty() {
                    insert_entries(
                        &mut tx,
                        &self.ctx,
                        &[self.audit_entry(EventKind::Updated, &id, Some(o), Some(n))],
                    )
                    .await?;
                }
            }
            Ok((plain, set))
        }
        .await;
        let (plain, set) = match tx.finish(result).await {
            Ok(r) => r,
            Err(e) => {
                let mut values = probe;
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

    async fn write_update(
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
    async fn locked_row_any(&self, tx: &mut Tx, id: &Value) -> Result<Vec<Value>> {
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
            if meta.is_audited() {
                let kind = if force {
                    EventKind::ForceDeleted
                } else {
                    EventKind::Deleted
                };
                let o = self.audit_values(&old, &self.all_fields());
                insert_entries(
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
            if meta.is_audited() {
                let mut o = AuditValues::new();
                o.insert(d.name().to_owned(), old_deleted.to_json());
                let mut n = AuditValues::new();
                n.insert(d.name().to_owned(), serde_json::Value::Null);
                insert_entries(
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
                    if meta.is_audited() {
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
                insert_entries(&mut tx, &tagged, &entries).await?;
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

    async fn bulk_delete(&self, query: &ListQuery) -> Result<u64> {
        let meta = self.meta();
        let plan = self.plan(&bulk_query(query))?;
        let db = self.platform.db();
        let backend = db.backend();
        let pk = meta.primary_key();
        let pk_i = meta.primary_key_index();
        let soft = meta.deleted_at();
        let now = Value::DateTime(crate::db::truncate_micros(Utc::now()));
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
                if let Some(d) = soft {
                    q.push("UPDATE ")
                        .ident(meta.table())
                        .push(" SET ")
                        .ident(d.column_name());
                    q.push(" = ").bind(now.clone(), FieldType::DateTime);
                } else {
                    q.push("DELETE FROM ").ident(meta.table());
                }
                q.push(" WHERE ").ident(pk.column_name()).push(" IN (");
                q.join(&chunk_ids, ", ", |q, id| {
                    q.bind_field(id.clone(), pk);
                });
                q.push(")");
                tx.execute(q).await?;
                if meta.is_audited() {
                    let mut entries = Vec::with_capacity(n);
                    for row in rows {
                        let id = row[pk_i].clone();
                        let old = self.decrypt_row(row)?.into_values();
                        let o = self.audit_values(&old, &self.all_fields());
                        entries.push(self.audit_entry(EventKind::Deleted, &id, Some(o), None));
                    }
                    insert_entries(&mut tx, &self.ctx.clone().with_tag("bulk"), &entries).await?;
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
                    message: format!(
                        "some {} are still referenced by other records; nothing was deleted",
                        meta.plural_label()
                    ),
                },
                e => e,
            });
        }
        tx.commit().await?;
        let n = ids.len() as u64;
        if n > 0 {
            self.after_commit(EventKind::Deleted, ids, true).await;
        }
        Ok(n)
    }
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

/// The associated data an encrypted value is bound to.
fn encryption_context(meta: &ResourceMeta, f: &FieldMeta) -> String {
    format!("{}.{}", meta.table(), f.column_name())
}
