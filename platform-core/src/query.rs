//! List queries: typed search, sort, filters and pagination, checked
//! against the resource's metadata before any SQL is written.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::db::dialect::{self, push_pg_contains, push_search, search_columns};
use crate::db::{Backend, Sql, storage_type};
use crate::error::FieldErrors;
use crate::resource::{FieldMeta, ResourceMeta};
use crate::value::{FieldType, Value};
use crate::visibility::Visibility;

/// Rows per page when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 25;
/// The largest page.
pub const MAX_PAGE_SIZE: u32 = 100;
/// The highest page number of offset paging (deeper pages: use the
/// keyset cursor, `page[after]`).
pub const MAX_PAGE_NUMBER: u32 = 1_000_000;
/// The longest search text accepted.
pub const MAX_SEARCH_LEN: usize = 200;
/// The most values an `in` filter takes.
pub const MAX_IN_VALUES: usize = 100;

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Ascending.
    #[default]
    Asc,
    /// Descending.
    Desc,
}

/// A filter operation; values are text, read by the field's type when the
/// query runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterOp {
    /// Equal to.
    Eq(String),
    /// One of.
    In(Vec<String>),
    /// Greater than.
    Gt(String),
    /// Greater than or equal to.
    Gte(String),
    /// Less than.
    Lt(String),
    /// Less than or equal to.
    Lte(String),
    /// Is null (`true`) or is not null (`false`).
    Null(bool),
}

/// Which soft-deleted records a list includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trashed {
    /// Only records that are not deleted.
    #[default]
    Without,
    /// Both.
    With,
    /// Only deleted records.
    Only,
}

/// How a list pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// Keyset pagination (the default): the page after a cursor.
    Cursor {
        /// Rows per page.
        size: u32,
        /// The cursor of the previous page's last row.
        after: Option<String>,
    },
    /// Offset pagination: page `number` (from 1).
    Offset {
        /// Rows per page.
        size: u32,
        /// Page number, from 1.
        number: u32,
    },
}

impl Default for Paging {
    fn default() -> Self {
        Self::Cursor {
            size: DEFAULT_PAGE_SIZE,
            after: None,
        }
    }
}

impl Paging {
    /// Rows per page.
    pub fn size(&self) -> u32 {
        match self {
            Self::Cursor { size, .. } | Self::Offset { size, .. } => *size,
        }
    }
}

/// A list query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Free text looked for in the resource's `search` fields.
    pub search: Option<String>,
    /// Sort field and direction (default: the primary key, ascending).
    pub sort: Option<(String, Direction)>,
    /// Filters, all of which must hold.
    pub filters: Vec<(String, FilterOp)>,
    /// Paging.
    pub paging: Paging,
    /// Soft-deleted records.
    pub trashed: Trashed,
    /// Whether to count the matching rows.
    pub count: bool,
}

impl ListQuery {
    /// The first page, 25 rows, sorted by primary key.
    pub fn new() -> Self {
        Self::default()
    }
    /// Searches for `text`.
    pub fn search(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }
    /// Sorts by `field`.
    pub fn sort(mut self, field: impl Into<String>, direction: Direction) -> Self {
        self.sort = Some((field.into(), direction));
        self
    }
    /// Adds a filter.
    pub fn filter(mut self, field: impl Into<String>, op: FilterOp) -> Self {
        self.filters.push((field.into(), op));
        self
    }
    /// Adds an equality filter.
    pub fn filter_eq(self, field: impl Into<String>, value: impl Into<String>) -> Self {
        self.filter(field, FilterOp::Eq(value.into()))
    }
    /// Sets the page size (keyset paging).
    pub fn page_size(mut self, size: u32) -> Self {
        self.paging = match self.paging {
            Paging::Cursor { after, .. } => Paging::Cursor { size, after },
            Paging::Offset { number, .. } => Paging::Offset { size, number },
        };
        self
    }
    /// The page after `cursor`.
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.paging = Paging::Cursor {
            size: self.paging.size(),
            after: Some(cursor.into()),
        };
        self
    }
    /// Page `number` (offset paging).
    pub fn page(mut self, number: u32) -> Self {
        self.paging = Paging::Offset {
            size: self.paging.size(),
            number,
        };
        self
    }
    /// Includes or restricts to soft-deleted records.
    pub fn trashed(mut self, trashed: Trashed) -> Self {
        self.trashed = trashed;
        self
    }
    /// Counts matching rows too.
    pub fn with_count(mut self) -> Self {
        self.count = true;
        self
    }

    /// Reads the API's query parameters: `search`, `sort` (`field` or
    /// `-field`), `filter[field]=v`, `filter[field][in]=a,b`,
    /// `filter[field][gte]=v` (also `gt`, `lt`, `lte`, `eq`),
    /// `filter[field][null]=true`, `page[size]`, `page[after]`,
    /// `page[number]`, `trashed=with|only`, `count=true`. Unknown
    /// parameters are errors.
    pub fn from_params<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, FieldErrors> {
        let mut q = Self::new();
        let mut errors = FieldErrors::default();
        let mut size = None;
        let mut after = None;
        let mut number = None;
        for (k, v) in params {
            match k {
                "search" => {
                    if v.chars().count() > MAX_SEARCH_LEN {
                        errors.add(
                            "search",
                            "too_long",
                            format!("must be at most {MAX_SEARCH_LEN} characters"),
                        );
                    } else if !v.trim().is_empty() {
                        q.search = Some(v.to_owned());
                    }
                }
                "sort" => {
                    let (field, dir) = match v.strip_prefix('-') {
                        Some(f) => (f, Direction::Desc),
                        None => (v, Direction::Asc),
                    };
                    q.sort = Some((field.to_owned(), dir));
                }
                "page[size]" => match v.parse::<u32>() {
                    Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => size = Some(n),
                    _ => errors.add(
                        "page[size]",
                        "invalid",
                        format!("must be a number from 1 to {MAX_PAGE_SIZE}"),
                    ),
                },
                "page[after]" => after = Some(v.to_owned()),
                "page[number]" => match v.parse::<u32>() {
                    Ok(n) if (1..=MAX_PAGE_NUMBER).contains(&n) => number = Some(n),
                    _ => errors.add(
                        "page[number]",
                        "invalid",
                        format!(
                            "must be a number from 1 to {MAX_PAGE_NUMBER} (for deeper pages, follow `page[after]` cursors)"
                        ),
                    ),
                },
                "trashed" => match v {
                    "with" => q.trashed = Trashed::With,
                    "only" => q.trashed = Trashed::Only,
                    "without" => q.trashed = Trashed::Without,
                    _ => errors.add("trashed", "invalid", "must be `with`, `only` or `without`"),
                },
                "count" => match v {
                    "true" | "1" => q.count = true,
                    "false" | "0" => q.count = false,
                    _ => errors.add("count", "invalid", "must be true or false"),
                },
                _ if k.starts_with("filter[") => match parse_filter_key(k) {
                    Some((field, op)) => {
                        let op = match op {
                            None | Some("eq") => Some(FilterOp::Eq(v.to_owned())),
                            Some("in") => {
                                let vals: Vec<String> =
                                    v.split(',').map(|s| s.trim().to_owned()).collect();
                                if vals.len() > MAX_IN_VALUES {
                                    errors.add(
                                        k,
                                        "invalid",
                                        format!("takes at most {MAX_IN_VALUES} values"),
                                    );
                                    None
                                } else {
                                    Some(FilterOp::In(vals))
                                }
                            }
                            Some("gt") => Some(FilterOp::Gt(v.to_owned())),
                            Some("gte") => Some(FilterOp::Gte(v.to_owned())),
                            Some("lt") => Some(FilterOp::Lt(v.to_owned())),
                            Some("lte") => Some(FilterOp::Lte(v.to_owned())),
                            Some("null") => match v {
                                "true" | "1" => Some(FilterOp::Null(true)),
                                "false" | "0" => Some(FilterOp::Null(false)),
                                _ => {
                                    errors.add(k, "invalid", "must be true or false");
                                    None
                                }
                            },
                            Some(other) => {
                                errors.add(
                                    k,
                                    "invalid",
                                    format!("unknown filter operator `{other}` (eq, in, gt, gte, lt, lte, null)"),
                                );
                                None
                            }
                        };
                        if let Some(op) = op {
                            q.filters.push((field.to_owned(), op));
                        }
                    }
                    None => errors.add(k, "invalid", "is not a valid filter parameter"),
                },
                _ => errors.add(k, "unknown_parameter", "is not a known parameter"),
            }
        }
        if after.is_some() && number.is_some() {
            errors.add("page", "invalid", "use either page[after] or page[number]");
        }
        let size = size.unwrap_or(DEFAULT_PAGE_SIZE);
        q.paging = match number {
            Some(number) => Paging::Offset { size, number },
            None => Paging::Cursor { size, after },
        };
        errors.into_result().map_err(|e| match e {
            crate::Error::Validation(f) => f,
            _ => FieldErrors::default(),
        })?;
        Ok(q)
    }
}

/// `filter[field]` or `filter[field][op]`.
fn parse_filter_key(k: &str) -> Option<(&str, Option<&str>)> {
    let rest = k.strip_prefix("filter[")?;
    let (field, rest) = rest.split_once(']')?;
    if field.is_empty() {
        return None;
    }
    if rest.is_empty() {
        return Some((field, None));
    }
    let op = rest.strip_prefix('[')?.strip_suffix(']')?;
    Some((field, Some(op)))
}

/// A row count that stays cheap on big tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Count {
    /// Counted exactly.
    Exact(u64),
    /// Estimated from the database's statistics.
    Estimated(u64),
    /// At least this many (counting stopped there).
    AtLeast(u64),
}

impl Count {
    /// The number.
    pub fn value(self) -> u64 {
        match self {
            Self::Exact(n) | Self::Estimated(n) | Self::AtLeast(n) => n,
        }
    }
    /// Whether the number is exact.
    pub fn is_exact(self) -> bool {
        matches!(self, Self::Exact(_))
    }
}

/// A validated sort.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SortPlan {
    pub(crate) field: &'static FieldMeta,
    pub(crate) index: usize,
    pub(crate) direction: Direction,
}

/// A validated query: every name resolved against the metadata and every
/// value read by its field's type.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    meta: &'static ResourceMeta,
    search: Option<String>,
    filters: Vec<(&'static FieldMeta, Cond)>,
    pub(crate) sort: SortPlan,
    pub(crate) after: Option<(Value, Value)>,
    pub(crate) offset: Option<u64>,
    pub(crate) size: u32,
    trashed: Trashed,
    /// The searched fields the actor may see (all of them, or the index
    /// finds candidates on all and the visible ones are checked).
    search_fields: Vec<&'static FieldMeta>,
    /// The policy's conditions (`None`: nothing is visible).
    scope: Option<Vec<(&'static FieldMeta, Value)>>,
    /// PostgreSQL: the words of the search the trigram index is asked
    /// for, when some of its words are too common to be worth it (see
    /// [`Plan::search_words`]); the whole term is then checked row by row.
    pub(crate) index_words: Option<Vec<String>>,
}

/// Words of a search term looked up on their own (PostgreSQL), at most.
const MAX_SEARCH_WORDS: usize = 4;

#[derive(Debug, Clone)]
enum Cond {
    Eq(Value),
    In(Vec<Value>),
    Cmp(&'static str, Value),
    Null(bool),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CursorBody {
    s: String,
    d: u8,
    v: serde_json::Value,
    id: serde_json::Value,
}

/// Encodes the cursor after a row.
pub(crate) fn encode_cursor(plan: &SortPlan, sort_value: &Value, pk: &Value) -> String {
    let body = CursorBody {
        s: plan.field.name().to_owned(),
        d: u8::from(plan.direction == Direction::Desc),
        v: sort_value.to_json(),
        id: pk.to_json(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default())
}

fn read_value(field: &FieldMeta, text: &str, key: &str, errors: &mut FieldErrors) -> Option<Value> {
    if text.contains('\0') {
        errors.add(key, "invalid", "must not contain NUL characters");
        return None;
    }
    match Value::parse(field.ty(), text) {
        Ok(v) => {
            if !field.choice_list().is_empty()
                && let Value::Text(s) = &v
                && !field.choice_list().contains(&s.as_str())
            {
                errors.add(
                    key,
                    "choice",
                    format!("must be one of: {}", field.choice_list().join(", ")),
                );
                return None;
            }
            Some(v)
        }
        Err(e) => {
            errors.add(key, "type", e.to_string());
            None
        }
    }
}

impl Plan {
    /// Checks `q` against `meta` for an actor who sees `vis`. Sort fields
    /// must be `sortable` (or the primary key); filter fields must be
    /// `filter` fields (or the primary key); both must be visible to the
    /// actor, and the search looks only in the visible search fields;
    /// values must read as the field's type.
    pub(crate) fn new(
        meta: &'static ResourceMeta,
        q: &ListQuery,
        vis: Visibility,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let pk_index = meta.primary_key_index();
        let pk = meta.primary_key();
        let mut sort = SortPlan {
            field: pk,
            index: pk_index,
            direction: Direction::Asc,
        };
        if let Some((name, dir)) = &q.sort {
            match meta.field_index(name) {
                Some(i) if vis.can_sort(&meta.field_list()[i]) => {
                    sort = SortPlan {
                        field: &meta.field_list()[i],
                        index: i,
                        direction: *dir,
                    };
                }
                _ => {
                    let allowed: Vec<&str> = meta
                        .field_list()
                        .iter()
                        .filter(|f| vis.can_sort(f))
                        .map(FieldMeta::name)
                        .collect();
                    errors.add(
                        "sort",
                        "invalid",
                        format!(
                            "cannot sort by `{name}`; sortable fields: {}",
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        let mut filters = Vec::new();
        for (name, op) in &q.filters {
            let key = format!("filter[{name}]");
            let filterable = |f: &FieldMeta| vis.can_filter(f) && !f.is_encrypted();
            let Some(field) = meta.field(name).filter(|f| filterable(f)) else {
                let allowed: Vec<&str> = meta
                    .field_list()
                    .iter()
                    .filter(|f| filterable(f))
                    .map(FieldMeta::name)
                    .collect();
                errors.add(
                    key,
                    "invalid",
                    format!(
                        "cannot filter by `{name}`; filterable fields: {}",
                        allowed.join(", ")
                    ),
                );
                continue;
            };
            let cond = match op {
                FilterOp::Eq(v) => read_value(field, v, &key, &mut errors).map(Cond::Eq),
                FilterOp::In(vs) => {
                    let vals: Vec<Value> = vs
                        .iter()
                        .filter_map(|v| read_value(field, v, &key, &mut errors))
                        .collect();
                    (vals.len() == vs.len() && !vals.is_empty()).then_some(Cond::In(vals))
                }
                FilterOp::Gt(v) | FilterOp::Gte(v) | FilterOp::Lt(v) | FilterOp::Lte(v) => {
                    if field.ty().is_ordered() {
                        let sym = match op {
                            FilterOp::Gt(_) => " > ",
                            FilterOp::Gte(_) => " >= ",
                            FilterOp::Lt(_) => " < ",
                            _ => " <= ",
                        };
                        read_value(field, v, &key, &mut errors).map(|v| Cond::Cmp(sym, v))
                    } else {
                        errors.add(
                            key.clone(),
                            "invalid",
                            "ranges apply to numbers, dates and times only",
                        );
                        None
                    }
                }
                FilterOp::Null(b) => {
                    if field.is_nullable() {
                        Some(Cond::Null(*b))
                    } else {
                        errors.add(key.clone(), "invalid", "this field is never null");
                        None
                    }
                }
            };
            if let Some(c) = cond {
                filters.push((field, c));
            }
        }
        if q.trashed != Trashed::Without && !meta.is_soft_delete() {
            errors.add("trashed", "invalid", "this resource does not soft-delete");
        }
        let search_fields = vis.search_fields(meta);
        if let Some(s) = &q.search {
            if meta.search_fields().is_empty() {
                errors.add("search", "invalid", "this resource has no search fields");
            } else if search_fields.is_empty() {
                errors.add(
                    "search",
                    "invalid",
                    "this resource's search fields hold data you may not see",
                );
            } else if s.contains('\0') {
                errors.add("search", "invalid", "must not contain NUL characters");
            } else if s.chars().count() > MAX_SEARCH_LEN {
                errors.add(
                    "search",
                    "too_long",
                    format!("must be at most {MAX_SEARCH_LEN} characters"),
                );
            }
        }
        let size = q.paging.size();
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            errors.add(
                "page[size]",
                "invalid",
                format!("must be a number from 1 to {MAX_PAGE_SIZE}"),
            );
        }
        let (after, offset) = match &q.paging {
            Paging::Offset { number, size } => {
                if *number == 0 || *number > MAX_PAGE_NUMBER {
                    errors.add(
                        "page[number]",
                        "invalid",
                        format!("must be a number from 1 to {MAX_PAGE_NUMBER}"),
                    );
                }
                (
                    None,
                    Some(u64::from(number.saturating_sub(1)) * u64::from(*size)),
                )
            }
            Paging::Cursor { after: None, .. } => (None, None),
            Paging::Cursor { after: Some(c), .. } => {
                (decode_cursor(meta, &sort, c, &mut errors), None)
            }
        };
        errors.into_result().map_err(|e| match e {
            crate::Error::Validation(f) => f,
            _ => FieldErrors::default(),
        })?;
        Ok(Self {
            meta,
            search: q.search.clone().filter(|s| !s.trim().is_empty()),
            filters,
            sort,
            after,
            offset,
            size,
            trashed: q.trashed,
            search_fields,
            scope: Some(Vec::new()),
            index_words: None,
        })
    }

    /// The search term's words as `pg_trgm` splits it (runs of letters
    /// and digits), those of 3 characters or more, at most
    /// [`MAX_SEARCH_WORDS`], without repeats; empty without a search.
    ///
    /// Why: the trigram index answers `ILIKE '%INV-0004%'` by reading the
    /// posting list of every trigram of the term, and a word found in most
    /// rows (`inv` in every invoice number) makes that a scan of the whole
    /// index (9 ms of the 14.5 ms on a million rows). Asking the index for
    /// the uncommon words alone and checking the whole term on the few rows
    /// it returns gives the same rows (1.3 ms there).
    pub(crate) fn search_words(&self) -> Vec<String> {
        let Some(text) = &self.search else {
            return Vec::new();
        };
        let mut words: Vec<String> = Vec::new();
        for w in text.split(|c: char| !c.is_alphanumeric()) {
            let w = w.to_lowercase();
            if w.chars().count() >= 3 && !words.contains(&w) {
                words.push(w);
            }
            if words.len() == MAX_SEARCH_WORDS {
                break;
            }
        }
        words
    }

    /// `SELECT 1` of the rows whose searched fields contain `word`
    /// (PostgreSQL), for probing how common a word is.
    pub(crate) fn push_word_probe(&self, q: &mut Sql, word: &str) {
        let meta = self.meta;
        let table = meta.table();
        q.push("SELECT 1 FROM ").ident(table).push(" WHERE ");
        push_pg_contains(q, table, &search_columns(meta), word);
    }

    /// Restricts the plan to a policy's scope (conditions resolved against
    /// the metadata by the caller; `None` hides everything).
    pub(crate) fn restrict(&mut self, scope: Option<Vec<(&'static FieldMeta, Value)>>) {
        self.scope = scope;
    }

    /// Appends ` WHERE ...` (always present: starts with a true condition).
    pub(crate) fn push_where(&self, q: &mut Sql, backend: Backend, with_cursor: bool) {
        let meta = self.meta;
        let table = meta.table();
        q.push(" WHERE 1 = 1");
        match &self.scope {
            None => {
                q.push(" AND 1 = 0");
            }
            Some(conds) => {
                for (f, v) in conds {
                    q.push(" AND ")
                        .qualified(table, f.column_name())
                        .push(" = ")
                        .bind_field(v.clone(), f);
                }
            }
        }
        if let Some(d) = meta.deleted_at() {
            match self.trashed {
                Trashed::Without => {
                    q.push(" AND ")
                        .qualified(table, d.column_name())
                        .push(" IS NULL");
                }
                Trashed::Only => {
                    q.push(" AND ")
                        .qualified(table, d.column_name())
                        .push(" IS NOT NULL");
                }
                Trashed::With => {}
            }
        }
        for (f, cond) in &self.filters {
            q.push(" AND ");
            match cond {
                Cond::Eq(v) => {
                    q.qualified(table, f.column_name())
                        .push(" = ")
                        .bind_field(v.clone(), f);
                }
                Cond::In(vs) => {
                    q.qualified(table, f.column_name()).push(" IN (");
                    q.join(vs, ", ", |q, v| {
                        q.bind_field(v.clone(), f);
                    });
                    q.push(")");
                }
                Cond::Cmp(sym, v) => {
                    q.qualified(table, f.column_name())
                        .push(sym)
                        .bind_field(v.clone(), f);
                }
                Cond::Null(true) => {
                    q.qualified(table, f.column_name()).push(" IS NULL");
                }
                Cond::Null(false) => {
                    q.qualified(table, f.column_name()).push(" IS NOT NULL");
                }
            }
        }
        if let Some(s) = &self.search {
            push_search(
                q,
                backend,
                meta,
                &self.search_fields,
                s,
                self.index_words.as_deref(),
            );
        }
        if with_cursor && let Some((v, id)) = &self.after {
            self.push_keyset(q, v, id);
        }
    }

    fn push_keyset(&self, q: &mut Sql, v: &Value, id: &Value) {
        let table = self.meta.table();
        let pk = self.meta.primary_key();
        let s = self.sort.field;
        let (gt, _) = match self.sort.direction {
            Direction::Asc => (" > ", " < "),
            Direction::Desc => (" < ", " > "),
        };
        if std::ptr::eq(s, pk) {
            q.push(" AND ")
                .qualified(table, pk.column_name())
                .push(gt)
                .bind_field(id.clone(), pk);
            return;
        }
        if s.is_nullable() {
            // NULLs sort last in both directions.
            if v.is_null() {
                q.push(" AND (")
                    .qualified(table, s.column_name())
                    .push(" IS NULL AND ");
                q.qualified(table, pk.column_name())
                    .push(gt)
                    .bind_field(id.clone(), pk)
                    .push(")");
            } else {
                q.push(" AND (")
                    .qualified(table, s.column_name())
                    .push(" IS NULL OR ");
                q.qualified(table, s.column_name())
                    .push(gt)
                    .bind_field(v.clone(), s)
                    .push(" OR (");
                q.qualified(table, s.column_name())
                    .push(" = ")
                    .bind_field(v.clone(), s)
                    .push(" AND ");
                q.qualified(table, pk.column_name())
                    .push(gt)
                    .bind_field(id.clone(), pk)
                    .push("))");
            }
            return;
        }
        dialect::push_keyset_after(
            q,
            table,
            s,
            v,
            pk,
            id,
            self.sort.direction == Direction::Asc,
        );
    }

    /// Appends ` ORDER BY ...`.
    pub(crate) fn push_order(&self, q: &mut Sql) {
        let table = self.meta.table();
        let pk = self.meta.primary_key();
        let dir = match self.sort.direction {
            Direction::Asc => " ASC",
            Direction::Desc => " DESC",
        };
        q.push(" ORDER BY ");
        let s = self.sort.field;
        if !std::ptr::eq(s, pk) {
            if s.is_nullable() {
                q.push("(")
                    .qualified(table, s.column_name())
                    .push(" IS NULL) ASC, ");
            }
            q.qualified(table, s.column_name()).push(dir).push(", ");
        }
        q.qualified(table, pk.column_name()).push(dir);
    }

    /// Whether the query has conditions beyond soft deletion.
    pub(crate) fn is_filtered(&self) -> bool {
        !self.filters.is_empty() || self.search.is_some()
    }
}

fn decode_cursor(
    meta: &ResourceMeta,
    sort: &SortPlan,
    cursor: &str,
    errors: &mut FieldErrors,
) -> Option<(Value, Value)> {
    let bad = |errors: &mut FieldErrors, why: &str| {
        errors.add("page[after]", "invalid", why.to_owned());
        None
    };
    if cursor.len() > 1024 {
        return bad(errors, "is not a valid cursor");
    }
    let Some(body) = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| serde_json::from_slice::<CursorBody>(&b).ok())
    else {
        return bad(errors, "is not a valid cursor");
    };
    let dir = if body.d == 1 {
        Direction::Desc
    } else {
        Direction::Asc
    };
    if body.s != sort.field.name() || dir != sort.direction {
        return bad(errors, "was made for another sort order");
    }
    let pk = meta.primary_key();
    let Ok(id) = Value::from_json(pk.ty(), &body.id) else {
        return bad(errors, "is not a valid cursor");
    };
    if id.is_null() {
        return bad(errors, "is not a valid cursor");
    }
    let Ok(v) = Value::from_json(sort.field.ty(), &body.v) else {
        return bad(errors, "is not a valid cursor");
    };
    Some((v, id))
}

/// The columns to select for `meta`, in field order.
pub(crate) fn push_columns(q: &mut Sql, meta: &ResourceMeta) {
    let table = meta.table();
    q.join(meta.field_list(), ", ", |q, f| {
        q.qualified(table, f.column_name());
    });
}

/// The storage types of `meta`'s fields, in order.
pub(crate) fn column_types(meta: &ResourceMeta) -> Vec<FieldType> {
    meta.field_list().iter().map(storage_type).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let q = ListQuery::from_params([
            ("search", "INV-1"),
            ("sort", "-amount_cents"),
            ("filter[status]", "paid"),
            ("filter[amount_cents][gte]", "100"),
            ("filter[status][in]", "paid,sent"),
            ("page[size]", "10"),
        ])
        .unwrap();
        assert_eq!(q.search.as_deref(), Some("INV-1"));
        assert_eq!(q.sort, Some(("amount_cents".into(), Direction::Desc)));
        assert_eq!(q.filters.len(), 3);
        assert_eq!(
            q.paging,
            Paging::Cursor {
                size: 10,
                after: None
            }
        );
        let err = ListQuery::from_params([
            ("page[size]", "1000"),
            ("bogus", "1"),
            ("filter[x][like]", "a"),
        ])
        .unwrap_err();
        assert!(err.has("page[size]"));
        assert!(err.has("bogus"));
        assert!(err.has("filter[x][like]"));
        assert!(ListQuery::from_params([("page[after]", "x"), ("page[number]", "2")]).is_err());
        assert!(ListQuery::from_params([("filter[]", "x")]).is_err());
        let long = "x".repeat(500);
        assert!(ListQuery::from_params([("search", long.as_str())]).is_err());
        let deep = ListQuery::from_params([("page[number]", "10000000")]).unwrap_err();
        let msg = &deep.iter().next().unwrap().message;
        assert!(msg.contains("1 to 1000000"), "{msg}");
    }
}
