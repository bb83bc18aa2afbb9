//! List queries: typed search, sort, filters and pagination, checked
//! against the resource's metadata before any SQL is written.
//!
//! The public query ([`ListQuery`], read from request parameters) is here;
//! its validated form and the SQL it writes are in `plan`, the keyset
//! cursor in `cursor`, and what differs per database in
//! [`crate::db::dialect`].

use crate::error::FieldErrors;

mod cursor;
mod plan;

pub(crate) use cursor::encode_cursor;
pub(crate) use plan::{Plan, column_types, push_columns};

/// Rows per page when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 25;
/// The largest page.
pub const MAX_PAGE_SIZE: u32 = 100;
/// The most rows one [`Records::batch`](crate::repo::Records::batch) reads
/// (exports and jobs walk a whole list in batches of this size or less).
pub const MAX_BATCH_SIZE: u32 = 10_000;
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
