//! The validated form of a [`ListQuery`](super::ListQuery): every name
//! resolved against the resource's metadata, every value read by its
//! field's type, and the SQL it writes (conditions, keyset, order).

use crate::db::dialect::{self, push_pg_contains, push_search, search_columns};
use crate::db::{Backend, Sql, storage_type};
use crate::error::FieldErrors;
use crate::resource::{FieldMeta, ResourceMeta};
use crate::value::{FieldType, Value};
use crate::visibility::Visibility;

use super::cursor::decode_cursor;
use super::{
    Direction, FilterOp, ListQuery, MAX_PAGE_NUMBER, MAX_PAGE_SIZE, MAX_SEARCH_LEN, Paging, Trashed,
};

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
                    q.qualified(table, f.column_name());
                    q.in_list(vs, |q, v| {
                        q.bind_field(v.clone(), f);
                    });
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

    /// Sorted by the primary key alone.
    fn sorts_by_key(&self) -> bool {
        std::ptr::eq(self.sort.field, self.meta.primary_key())
    }

    /// Sorted by the primary key and not searching: a batch read of this
    /// plan may walk the primary key (see `dialect::push_key_order_scan`).
    pub(crate) fn walks_key_order(&self) -> bool {
        self.sorts_by_key() && self.search.is_none()
    }

    fn push_keyset(&self, q: &mut Sql, v: &Value, id: &Value) {
        let table = self.meta.table();
        let pk = self.meta.primary_key();
        let s = self.sort.field;
        let (gt, _) = match self.sort.direction {
            Direction::Asc => (" > ", " < "),
            Direction::Desc => (" < ", " > "),
        };
        if self.sorts_by_key() {
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
        if !self.sorts_by_key() {
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
