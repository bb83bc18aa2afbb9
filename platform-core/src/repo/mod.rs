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
//!
//! The parts: [`Records`]' reads (`read`), the checks and transforms of
//! written values (`validation`), single-record writes with their audit
//! entries and after-commit work (`write`), and writes by query (`bulk`).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::context::Context;
use crate::error::{Error, FieldErrors, Result};
use crate::permission::Ability;
use crate::platform::Platform;
use crate::policy::Scope;
use crate::query::{Count, ListQuery, Plan};
use crate::resource::{FieldMeta, Resource, ResourceEntry, ResourceMeta};
use crate::value::Value;
use crate::visibility::Visibility;

mod bulk;
mod import;
mod import_check;
mod read;
mod revert;
mod validation;
mod write;

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
pub use import::{ImportOptions, ImportRow, RowOutcome, TouchAction, TouchLog, Touched};
pub use revert::{Revert, RevertReport, RevertSource};

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
    /// Restores every soft-deleted record matching `query`'s filters and
    /// search, as one audited set operation ([`Records::restore_where`]).
    pub async fn restore_where(&self, query: &ListQuery) -> Result<u64> {
        self.records.restore_where(query).await
    }
    /// Deletes for good every record matching `query`, all or nothing
    /// ([`Records::force_delete_where`]).
    pub async fn force_delete_where(&self, query: &ListQuery) -> Result<u64> {
        self.records.force_delete_where(query).await
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
}

/// The associated data an encrypted value is bound to.
fn encryption_context(meta: &ResourceMeta, f: &FieldMeta) -> String {
    format!("{}.{}", meta.table(), f.column_name())
}
