//! Where the three SQL dialects differ, in one place.
//!
//! Code that writes SQL for the platform's tables (the record repository,
//! users and roles, audit, notifications, and whatever is added next: jobs,
//! an outbox, webhooks) asks this module for the fragments that are not the
//! same on SQLite, PostgreSQL and MySQL/MariaDB, instead of matching on
//! [`Backend`] itself. Most functions append to a [`Sql`] and read the back
//! end from it, so a caller names no back end at all.
//!
//! | What | SQLite | PostgreSQL | MySQL/MariaDB | Here |
//! |------|--------|------------|---------------|------|
//! | Placeholders | `?` | `$1`, `$2`, … | `?` | [`write_placeholder`] |
//! | Identifier quotes | `"a"` | `"a"` | `` `a` `` | [`Backend::quote_char`] |
//! | Id of an inserted row | `RETURNING id` | `RETURNING id` | `LAST_INSERT_ID()` (no clause) | [`inserted_ids`], [`push_returning`] |
//! | Insert, skipping duplicates | `INSERT OR IGNORE INTO` | `INSERT INTO … ON CONFLICT DO NOTHING` | `INSERT IGNORE INTO` | [`push_insert_ignore_into`] + [`push_ignore_conflicts`] |
//! | Upsert | `ON CONFLICT (k) DO UPDATE SET c = excluded.c` | same as SQLite | `ON DUPLICATE KEY UPDATE c = VALUES(c)` | [`push_upsert`] |
//! | Row locks | none (a write transaction locks the database: `BEGIN IMMEDIATE`) | `FOR UPDATE` | `FOR UPDATE` | [`locks_rows`], [`push_for_update`] |
//! | Chunks of one import written by concurrent transactions | no (one writer) | yes | no (`INSERT … SELECT` next-key locks deadlock) | [`writes_chunks_concurrently`] |
//! | 64-bit integer cast | `CAST(x AS BIGINT)` | `CAST(x AS BIGINT)` | `CAST(x AS SIGNED)` | [`int64_cast_type`] |
//! | Table size estimate | `MAX(id) - MIN(id) + 1` (integer keys) | `pg_class.reltuples` | `information_schema.TABLES.TABLE_ROWS` | [`table_row_estimate`] |
//! | Filtered count estimate | none | `EXPLAIN (FORMAT JSON)` planner rows | none | [`explains_row_estimates`], [`push_explain`], [`explained_rows`] |
//! | Keyset ("rows after") condition | row values `(s, id) > (?, ?)` | row values | expanded `s >= ? AND (s > ? OR id > ?)` (MySQL does not use an index for row values) | `push_keyset_after` (crate-internal) |
//! | Walking a table in key order (batch reads) | planner's choice | planner's choice | `FORCE INDEX (PRIMARY)` | `push_key_order_scan` (crate-internal) |
//! | Search | FTS5 trigram table `<t>_search`, `MATCH` | `pg_trgm` GIN index on [`pg_search_expression`], `ILIKE` | FULLTEXT `MATCH … AGAINST` in boolean mode, then `LIKE` | [`search_table`], [`pg_search_expression`], `push_search` (crate-internal) |
//! | Search words probed one by one | no | yes (trigram index) | no | [`probes_search_words`] |
//! | Boolean literals (DDL defaults) | `1` / `0` | `TRUE` / `FALSE` | `1` / `0` | [`bool_literal`] |
//! | One insert feeding another in the same statement | no | `WITH a AS (INSERT … RETURNING id) INSERT …` | no | [`chains_inserts`] |
//! | Many rows in one statement of fixed text (JSON rows) | `json_each(?)` | `jsonb_to_recordset($1::jsonb)` | `JSON_TABLE(?, …)` | [`update_from_json`], [`insert_from_json`], [`json_time`] |
//!
//! Not differences, so not here: `LIMIT n OFFSET m` (written the same on
//! all three), the current time (always bound from Rust, truncated to
//! microseconds, never `CURRENT_TIMESTAMP`), and booleans in statements
//! (bound parameters). The DDL that `make:migration` writes (column types,
//! keys, indexes, triggers) lives with the schema code
//! (`crate::schema`), which calls this module where it writes the same
//! fragments as the read and write paths (the search expression and table,
//! boolean literals).

use std::fmt::Write as _;

use super::{Backend, Row, Sql, like_escape};
use crate::resource::{FieldMeta, ResourceMeta};
use crate::value::{FieldType, Value};

// ---- placeholders ----------------------------------------------------------

/// Writes the placeholder of the `index`-th bound parameter (1-based) to
/// `out`: `$index` on PostgreSQL, `?` elsewhere.
pub fn write_placeholder(out: &mut String, backend: Backend, index: usize) {
    match backend {
        Backend::Postgres => {
            let _ = write!(out, "${index}");
        }
        Backend::Sqlite | Backend::MySql => out.push('?'),
    }
}

/// The type name that casts to a 64-bit integer: `BIGINT`, or `SIGNED` on
/// MySQL/MariaDB (whose `CAST` knows no `BIGINT`).
pub const fn int64_cast_type(backend: Backend) -> &'static str {
    match backend {
        Backend::MySql => "SIGNED",
        Backend::Sqlite | Backend::Postgres => "BIGINT",
    }
}

/// The literal for a boolean (as written in DDL defaults): `TRUE`/`FALSE`
/// on PostgreSQL, `1`/`0` on SQLite and MySQL/MariaDB.
pub const fn bool_literal(backend: Backend, value: bool) -> &'static str {
    match (backend, value) {
        (Backend::Postgres, true) => "TRUE",
        (Backend::Postgres, false) => "FALSE",
        (_, true) => "1",
        (_, false) => "0",
    }
}

// ---- inserts ---------------------------------------------------------------

/// How a back end hands back the id it generated for an inserted row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertedIds {
    /// The `INSERT` ends with `RETURNING <key>` and answers rows (SQLite,
    /// PostgreSQL); a multi-row insert answers one id per row.
    Returning,
    /// The statement answers nothing; the driver reports the first
    /// generated id (`LAST_INSERT_ID()`, MySQL/MariaDB). InnoDB gives the
    /// rows of one multi-row `INSERT` consecutive ids (auto-increment lock
    /// mode 0 or 1, and simple inserts in mode 2).
    LastInsertId,
}

/// How `backend` reports generated ids.
pub const fn inserted_ids(backend: Backend) -> InsertedIds {
    match backend {
        Backend::MySql => InsertedIds::LastInsertId,
        Backend::Sqlite | Backend::Postgres => InsertedIds::Returning,
    }
}

/// Appends ` RETURNING <column>` where the back end returns generated ids
/// that way (see [`inserted_ids`]); nothing on MySQL/MariaDB. An insert
/// ended by this runs through [`Tx::insert_returning_id`](super::Tx::insert_returning_id)
/// on every back end.
pub fn push_returning(q: &mut Sql, column: &str) {
    if inserted_ids(q.backend()) == InsertedIds::Returning {
        q.push(" RETURNING ").ident(column);
    }
}

/// Whether an `INSERT ... RETURNING` can feed another insert in the same
/// statement (`WITH a AS (INSERT ... RETURNING id) INSERT INTO b SELECT id
/// FROM a`): PostgreSQL only. Elsewhere the second insert is a statement of
/// its own in the same transaction.
pub const fn chains_inserts(backend: Backend) -> bool {
    matches!(backend, Backend::Postgres)
}

/// Starts an insert that skips rows conflicting with a unique key:
/// `INSERT OR IGNORE INTO ` (SQLite), `INSERT IGNORE INTO `
/// (MySQL/MariaDB), `INSERT INTO ` (PostgreSQL, whose statement must then
/// end with [`push_ignore_conflicts`]). The table name follows.
pub fn push_insert_ignore_into(q: &mut Sql) {
    q.push(match q.backend() {
        Backend::Sqlite => "INSERT OR IGNORE INTO ",
        Backend::Postgres => "INSERT INTO ",
        Backend::MySql => "INSERT IGNORE INTO ",
    });
}

/// Ends an insert begun with [`push_insert_ignore_into`]: on PostgreSQL
/// ` ON CONFLICT DO NOTHING`, or ` ON CONFLICT (<target>) DO NOTHING` when
/// `target` names the key's columns (then only that key's conflicts are
/// skipped); nothing elsewhere.
pub fn push_ignore_conflicts(q: &mut Sql, target: &[&str]) {
    if q.backend() != Backend::Postgres {
        return;
    }
    q.push(" ON CONFLICT ");
    if !target.is_empty() {
        q.push("(");
        q.join(target, ", ", |q, c| {
            q.ident(c);
        });
        q.push(") ");
    }
    q.push("DO NOTHING");
}

/// Ends an `INSERT ... VALUES (...)` so that a row whose `key` (the columns
/// of a unique key) already exists is updated instead: its `update`
/// columns take the inserted values. ` ON CONFLICT (<key>) DO UPDATE SET
/// c = excluded.c, ...` on SQLite and PostgreSQL, ` ON DUPLICATE KEY
/// UPDATE c = VALUES(c), ...` on MySQL/MariaDB (which finds the key
/// itself).
pub fn push_upsert(q: &mut Sql, key: &[&str], update: &[&str]) {
    match q.backend() {
        Backend::MySql => {
            q.push(" ON DUPLICATE KEY UPDATE ");
            q.join(update, ", ", |q, c| {
                q.ident(c).push(" = VALUES(").ident(c).push(")");
            });
        }
        Backend::Sqlite | Backend::Postgres => {
            q.push(" ON CONFLICT (");
            q.join(key, ", ", |q, c| {
                q.ident(c);
            });
            q.push(") DO UPDATE SET ");
            q.join(update, ", ", |q, c| {
                q.ident(c).push(" = excluded.").ident(c);
            });
        }
    }
}

// ---- locks -----------------------------------------------------------------

/// Whether `SELECT ... FOR UPDATE` locks rows: PostgreSQL and
/// MySQL/MariaDB. SQLite has no row locks; a platform write transaction
/// holds the database's write lock from its start (`BEGIN IMMEDIATE`).
pub const fn locks_rows(backend: Backend) -> bool {
    !matches!(backend, Backend::Sqlite)
}

/// Whether the chunks of one bulk write (an import) may be written by
/// concurrent transactions: PostgreSQL only. On SQLite the second
/// transaction waits for the first's write lock (polling with the busy
/// timeout's back-off), so it only adds waits. On MySQL/MariaDB an
/// `INSERT … SELECT` (the audit queue's) takes next-key locks on the rows
/// it reads under `REPEATABLE READ`, and two chunks' audit writes
/// deadlocked at once when tried (error 1213).
pub const fn writes_chunks_concurrently(backend: Backend) -> bool {
    matches!(backend, Backend::Postgres)
}

/// Appends ` FOR UPDATE` where the back end locks rows (see
/// [`locks_rows`]).
pub fn push_for_update(q: &mut Sql) {
    if locks_rows(q.backend()) {
        q.push(" FOR UPDATE");
    }
}

// ---- many rows, each to its own values ------------------------------------

/// The SQL type of a column read from JSON rows by [`update_from_json`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonColumn {
    /// A 64-bit integer.
    Int,
    /// Text.
    Text,
    /// A double-precision number.
    Float,
    /// A point in time, given in the JSON as [`json_time`] writes it.
    DateTime,
}

impl JsonColumn {
    fn sql(self, backend: Backend) -> &'static str {
        match (self, backend) {
            (Self::Int, _) => "BIGINT",
            (Self::Text, Backend::MySql) => "LONGTEXT",
            (Self::Text, _) => "TEXT",
            (Self::Float, _) => "DOUBLE PRECISION",
            (Self::DateTime, Backend::Postgres) => "TIMESTAMPTZ",
            (Self::DateTime, Backend::MySql) => "DATETIME(6)",
            // SQLite keeps the text as written (its stored form).
            (Self::DateTime, Backend::Sqlite) => "TEXT",
        }
    }
}

/// A time as a JSON row of [`insert_from_json`] carries it for a
/// [`JsonColumn::DateTime`] column of `backend`: the text each back end
/// reads back as the same instant, with microseconds (as
/// [`Sql::bind`](super::Sql::bind) stores times).
pub fn json_time(backend: Backend, t: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    let t = super::truncate_micros(t);
    serde_json::Value::String(match backend {
        // DATETIME(6) holds UTC without a zone, as bound values do.
        Backend::MySql => t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        Backend::Postgres | Backend::Sqlite => super::codec::sqlite_time(t),
    })
}

/// An `UPDATE` of `table` giving every row its own values, with one bound
/// parameter: `rows`, a JSON array of objects holding the integer `key` and
/// each of `columns` by name (`[{"id": 7, "seq": 3, "hash": "ab.."}]`).
/// Rows whose key is not in the table are skipped.
///
/// The statement's text depends only on the table and the column names, not
/// on how many rows are updated, so it is prepared once and reused; the
/// alternative (`SET c = CASE id WHEN ? THEN ? ...`) is a new statement for
/// every row count, with a cost that grows with the square of the rows.
/// `table`, `key` and the column names are the platform's own identifiers
/// (never user text); they are quoted.
pub fn update_from_json(
    backend: Backend,
    table: &str,
    key: &str,
    columns: &[(&str, JsonColumn)],
    rows: String,
) -> Sql {
    let mut q = Sql::new(backend);
    let mut all = vec![(key, JsonColumn::Int)];
    all.extend_from_slice(columns);
    let set = |q: &mut Sql, qualify: bool| {
        q.join(columns, ", ", |q, (c, _)| {
            if qualify {
                q.qualified("t", c);
            } else {
                q.ident(c);
            }
            q.push(" = ").qualified("v", c);
        });
    };
    if backend == Backend::MySql {
        q.push("UPDATE ").ident(table).push(" AS t JOIN ");
        push_json_rows(&mut q, &all, rows);
        q.push(" ON ")
            .qualified("t", key)
            .push(" = ")
            .qualified("v", key)
            .push(" SET ");
        set(&mut q, true);
    } else {
        q.push("UPDATE ").ident(table).push(" AS t SET ");
        set(&mut q, false);
        q.push(" FROM ");
        push_json_rows(&mut q, &all, rows);
        q.push(" WHERE ")
            .qualified("t", key)
            .push(" = ")
            .qualified("v", key);
    }
    q
}

/// An `INSERT` into `table` of many rows with one bound parameter: `rows`,
/// a JSON array of objects holding each of `columns` by name (`null` or a
/// missing member is SQL `NULL`). Like [`update_from_json`], its text does
/// not depend on the number of rows, so it is prepared once.
pub fn insert_from_json(
    backend: Backend,
    table: &str,
    columns: &[(&str, JsonColumn)],
    rows: String,
) -> Sql {
    let mut q = Sql::new(backend);
    q.push("INSERT INTO ").ident(table).push(" (");
    q.join(columns, ", ", |q, (c, _)| {
        q.ident(c);
    });
    q.push(") SELECT ");
    q.join(columns, ", ", |q, (c, _)| {
        q.qualified("v", c);
    });
    q.push(" FROM ");
    push_json_rows(&mut q, columns, rows);
    q
}

/// Appends a row source named `v` with `columns`, read from the JSON array
/// of objects `rows` (one bound parameter).
fn push_json_rows(q: &mut Sql, columns: &[(&str, JsonColumn)], rows: String) {
    let backend = q.backend();
    match backend {
        Backend::Postgres => {
            q.push("jsonb_to_recordset(")
                .bind_str(rows)
                .push("::jsonb) AS v(");
            q.join(columns, ", ", |q, (c, ty)| {
                q.ident(c).push(" ").push(ty.sql(backend));
            });
            q.push(")");
        }
        Backend::MySql => {
            q.push("JSON_TABLE(")
                .bind_str(rows)
                .push(", '$[*]' COLUMNS (");
            q.join(columns, ", ", |q, (c, ty)| {
                q.ident(c).push(" ").push(ty.sql(backend)).push(" PATH ");
                json_path(q, c);
            });
            q.push(")) AS v");
        }
        Backend::Sqlite => {
            q.push("(SELECT ");
            q.join(columns, ", ", |q, (c, _)| {
                q.push("json_extract(value, ");
                json_path(q, c);
                q.push(") AS ").ident(c);
            });
            q.push(" FROM json_each(").bind_str(rows).push(")) AS v");
        }
    }
}

/// Appends the JSON path literal `'$.name'` of a member (a plain
/// identifier: lower-case letters, digits and `_`).
fn json_path(q: &mut Sql, name: &str) {
    q.push("'$.").raw_ident(name).push("'");
}

// ---- count estimates ---------------------------------------------------------

/// A statement answering an estimate of the rows of the whole `table` (one
/// integer), or `None` where the back end has none. PostgreSQL reads the
/// planner's `pg_class.reltuples`, MySQL/MariaDB
/// `information_schema.TABLES.TABLE_ROWS`, SQLite the span of an integer
/// key (`integer_key`: the key column when the key is an integer; without
/// it SQLite has no estimate).
pub fn table_row_estimate(backend: Backend, table: &str, integer_key: Option<&str>) -> Option<Sql> {
    let mut e = Sql::new(backend);
    match backend {
        Backend::Postgres => {
            e.push("SELECT CAST(reltuples AS BIGINT) FROM pg_class WHERE oid = to_regclass(")
                .bind_str(table)
                .push(")");
        }
        Backend::MySql => {
            e.push("SELECT CAST(TABLE_ROWS AS SIGNED) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ")
                .bind_str(table);
        }
        Backend::Sqlite => {
            let pk = integer_key?;
            e.push("SELECT MAX(").ident(pk).push(") - MIN(");
            e.ident(pk).push(") + 1 FROM ").ident(table);
        }
    }
    Some(e)
}

/// Whether the back end estimates the rows of a filtered query from its
/// plan ([`push_explain`], [`explained_rows`]): PostgreSQL only.
pub const fn explains_row_estimates(backend: Backend) -> bool {
    matches!(backend, Backend::Postgres)
}

/// Starts a statement whose plan answers a row estimate:
/// `EXPLAIN (FORMAT JSON) ` (PostgreSQL; see [`explains_row_estimates`]).
/// The `SELECT` to estimate follows; the answer is one JSON column, read
/// with [`explained_rows`].
pub fn push_explain(q: &mut Sql) {
    q.push("EXPLAIN (FORMAT JSON) ");
}

/// The planner's row estimate in the answer of a statement begun with
/// [`push_explain`] (its one column read as [`FieldType::Json`]).
pub fn explained_rows(row: Option<Row>) -> Option<i64> {
    row.and_then(|r| match r.into_iter().next() {
        Some(Value::Json(j)) => j
            .pointer("/0/Plan/Plan Rows")
            .and_then(serde_json::Value::as_f64)
            .map(|f| f as i64),
        _ => None,
    })
}

// ---- keyset pagination -------------------------------------------------------

/// Appends, after the table's name in `FROM`, what makes a batch read
/// (rows after a key, in key order) walk the primary key: nothing on
/// SQLite and PostgreSQL, `FORCE INDEX (PRIMARY)` on MySQL/MariaDB.
///
/// MariaDB 10.11 reads `deleted_at IS NULL AND id > ? ORDER BY id LIMIT n`
/// through the single-column `deleted_at` index as a `ref` on `NULL` with
/// `id > ?` checked entry by entry (index condition pushdown): each batch
/// walks every entry before the cursor, so an export of 1,000,000 rows took
/// 13.0 s (200,000 rows: 1.0 s), and a filter on another indexed column
/// (`status = ?`) does the same. Walking the primary key from the cursor,
/// a whole export reads each row once, whatever the filters. Not for
/// searches: `MATCH ... AGAINST` needs the FULLTEXT index.
pub(crate) fn push_key_order_scan(q: &mut Sql) {
    if q.backend() == Backend::MySql {
        q.push(" FORCE INDEX (PRIMARY)");
    }
}

/// Appends ` AND <(sort, pk) comes after (v, id)>` for a sort column that is
/// not nullable and not the key: a row-value comparison on SQLite and
/// PostgreSQL, the expanded form on MySQL/MariaDB (which does not use an
/// index for row values). `ascending` is the sort direction.
pub(crate) fn push_keyset_after(
    q: &mut Sql,
    table: &str,
    s: &FieldMeta,
    v: &Value,
    pk: &FieldMeta,
    id: &Value,
    ascending: bool,
) {
    let gt = if ascending { " > " } else { " < " };
    match q.backend() {
        Backend::Postgres | Backend::Sqlite => {
            q.push(" AND (")
                .qualified(table, s.column_name())
                .push(", ");
            q.qualified(table, pk.column_name())
                .push(")")
                .push(gt)
                .push("(");
            q.bind_field(v.clone(), s)
                .push(", ")
                .bind_field(id.clone(), pk)
                .push(")");
        }
        Backend::MySql => {
            let ge = if ascending { " >= " } else { " <= " };
            q.push(" AND ")
                .qualified(table, s.column_name())
                .push(ge)
                .bind_field(v.clone(), s);
            q.push(" AND (")
                .qualified(table, s.column_name())
                .push(gt)
                .bind_field(v.clone(), s);
            q.push(" OR ")
                .qualified(table, pk.column_name())
                .push(gt)
                .bind_field(id.clone(), pk)
                .push(")");
        }
    }
}

// ---- search ------------------------------------------------------------------

/// Whether a search of several words asks the index word by word, so that
/// leaving out the common words pays (PostgreSQL's trigram index; see
/// `Plan::search_words`). Elsewhere the words are not probed.
pub const fn probes_search_words(backend: Backend) -> bool {
    matches!(backend, Backend::Postgres)
}

/// The searched condition, per back end, served by the index the
/// generated migration creates: FTS5 trigram on SQLite, `pg_trgm` GIN with
/// `ILIKE` on PostgreSQL, FULLTEXT on MySQL/MariaDB (word prefixes, checked
/// exactly with `LIKE`).
///
/// `visible` are the search fields the actor may see. When they are fewer
/// than the resource's, the index is still asked (it covers every search
/// field, so it finds a superset of the rows) and the term is then checked
/// on the visible fields alone: SQLite restricts the match to those
/// columns (an FTS5 column filter), PostgreSQL and MySQL add a `LIKE` over
/// them. A field the actor may not see never decides whether a row matches.
pub(crate) fn push_search(
    q: &mut Sql,
    backend: Backend,
    meta: &ResourceMeta,
    visible: &[&'static FieldMeta],
    text: &str,
    index_words: Option<&[String]>,
) {
    let table = meta.table();
    let trimmed = text.trim();
    let pattern = format!("%{}%", like_escape(trimmed));
    let all_visible = visible.len() == meta.search_fields().len();
    let like_visible = |q: &mut Sql, op: &'static str| {
        q.push("(");
        q.join(visible, " OR ", |q, f| {
            q.qualified(table, f.column_name())
                .push(op)
                .bind(Value::Text(pattern.clone()), FieldType::Text)
                .push(" ESCAPE '!'");
        });
        q.push(")");
    };
    match backend {
        Backend::Postgres => {
            // The expression of the trigram index the migration creates.
            let cols = search_columns(meta);
            match index_words {
                Some(words) if !words.is_empty() => {
                    // The index for the uncommon words, then the whole term
                    // on an expression the index does not cover (`|| ''`),
                    // checked on the rows found.
                    for w in words {
                        q.push(" AND ");
                        push_pg_contains(q, table, &cols, w);
                    }
                    if all_visible {
                        q.push(" AND ((");
                        push_pg_search_expression(q, Some(table), &cols);
                        q.push(") || '') ILIKE ")
                            .bind(Value::Text(pattern.clone()), FieldType::Text)
                            .push(" ESCAPE '!'");
                    }
                }
                _ => {
                    q.push(" AND ");
                    push_pg_contains(q, table, &cols, trimmed);
                }
            }
            if !all_visible {
                q.push(" AND ");
                like_visible(q, " ILIKE ");
            }
        }
        Backend::Sqlite => {
            q.push(" AND ");
            if trimmed.chars().count() >= 3 {
                // The trigram index answers substring queries of 3+ characters.
                let pk = meta.primary_key();
                let phrase = format!("\"{}\"", trimmed.replace('"', "\"\""));
                let term = if all_visible {
                    phrase
                } else {
                    // Column names come from validated metadata
                    // (identifiers), so they are FTS5 barewords.
                    let cols: Vec<&str> = visible.iter().map(|f| f.column_name()).collect();
                    format!("{{{}}} : {phrase}", cols.join(" "))
                };
                q.qualified(table, pk.column_name())
                    .push(" IN (SELECT rowid FROM ");
                q.ident(&search_table(table)).push(" WHERE ");
                q.ident(&search_table(table)).push(" MATCH ");
                q.bind(Value::Text(term), FieldType::Text).push(")");
            } else {
                like_visible(q, " LIKE ");
            }
        }
        Backend::MySql => {
            // InnoDB leaves stopwords out of its index, so a required
            // stopword (`com` of `example.com`) would match nothing: those
            // are left to the exact `LIKE` below.
            let words: Vec<String> = text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| {
                    w.chars().count() >= 3 && !INNODB_STOPWORDS.contains(&w.to_lowercase().as_str())
                })
                .map(|w| format!("+{w}*"))
                .collect();
            q.push(" AND ");
            if !words.is_empty() {
                // MATCH must name the FULLTEXT index's columns: all of them.
                q.push("MATCH (");
                q.join(meta.search_fields(), ", ", |q, f| {
                    let col = meta.field(f).map_or(*f, FieldMeta::column_name);
                    q.qualified(table, col);
                });
                q.push(") AGAINST (")
                    .bind(Value::Text(words.join(" ")), FieldType::Text)
                    .push(" IN BOOLEAN MODE) AND ");
            }
            like_visible(q, " LIKE ");
        }
    }
}

/// InnoDB's default full-text stopwords of three letters or more
/// (`INFORMATION_SCHEMA.INNODB_FT_DEFAULT_STOPWORD`, the same in MariaDB).
const INNODB_STOPWORDS: [&str; 18] = [
    "about", "are", "com", "for", "from", "how", "that", "the", "this", "was", "what", "when",
    "where", "who", "will", "with", "und", "www",
];

/// The column names of `meta`'s search fields.
pub(crate) fn search_columns(meta: &ResourceMeta) -> Vec<&str> {
    meta.search_fields()
        .iter()
        .map(|f| meta.field(f).map_or(*f, FieldMeta::column_name))
        .collect()
}

/// The PostgreSQL expression the searched fields are indexed as (the
/// index's DDL): the fields joined by a control character, so a match never
/// spans two fields. Written by the same code as the searches' expression,
/// so the two cannot drift apart (PostgreSQL uses the index only when they
/// are identical). Identifiers come from validated metadata.
pub fn pg_search_expression(cols: &[&str]) -> String {
    let mut q = Sql::new(Backend::Postgres);
    push_pg_search_expression(&mut q, None, cols);
    q.text().to_owned()
}

/// `(<search expression>) ILIKE '%text%'`: the condition the trigram index
/// answers.
pub(crate) fn push_pg_contains(q: &mut Sql, table: &str, cols: &[&str], text: &str) {
    q.push("(");
    push_pg_search_expression(q, Some(table), cols);
    q.push(") ILIKE ")
        .bind(
            Value::Text(format!("%{}%", like_escape(text))),
            FieldType::Text,
        )
        .push(" ESCAPE '!'");
}

/// The searched columns joined as one expression; `table` qualifies them
/// (searches) or not (the index's DDL).
fn push_pg_search_expression(q: &mut Sql, table: Option<&str>, cols: &[&str]) {
    let col = |q: &mut Sql, c: &str| {
        match table {
            Some(t) => q.qualified(t, c),
            None => q.ident(c),
        };
    };
    if let [one] = cols {
        col(q, one);
        return;
    }
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            q.push(" || chr(1) || ");
        }
        q.push("COALESCE(");
        col(q, c);
        q.push(", '')");
    }
}

/// The name of a resource's SQLite full-text index table (`<table>_search`).
pub fn search_table(table: &str) -> String {
    format!("{table}_search")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_and_the_searches_spell_the_expression_alike() {
        for cols in [&["number"][..], &["number", "notes", "status"]] {
            let mut q = Sql::new(Backend::Postgres);
            push_pg_search_expression(&mut q, Some("invoices"), cols);
            assert_eq!(
                q.text().replace("\"invoices\".", ""),
                pg_search_expression(cols)
            );
        }
        assert_eq!(
            pg_search_expression(&["a", "b"]),
            "COALESCE(\"a\", '') || chr(1) || COALESCE(\"b\", '')"
        );
    }

    fn text(backend: Backend, f: impl FnOnce(&mut Sql)) -> String {
        let mut q = Sql::new(backend);
        f(&mut q);
        q.text().to_owned()
    }

    #[test]
    fn insert_ignore_per_backend() {
        let write = |q: &mut Sql| {
            push_insert_ignore_into(q);
            q.push("t (a) VALUES (1)");
            push_ignore_conflicts(q, &[]);
        };
        assert_eq!(
            text(Backend::Sqlite, write),
            "INSERT OR IGNORE INTO t (a) VALUES (1)"
        );
        assert_eq!(
            text(Backend::Postgres, write),
            "INSERT INTO t (a) VALUES (1) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            text(Backend::MySql, write),
            "INSERT IGNORE INTO t (a) VALUES (1)"
        );
        assert_eq!(
            text(Backend::Postgres, |q| push_ignore_conflicts(q, &["id"])),
            " ON CONFLICT (\"id\") DO NOTHING"
        );
    }

    #[test]
    fn only_mysql_is_told_to_walk_the_primary_key() {
        assert_eq!(text(Backend::Sqlite, push_key_order_scan), "");
        assert_eq!(text(Backend::Postgres, push_key_order_scan), "");
        assert_eq!(
            text(Backend::MySql, push_key_order_scan),
            " FORCE INDEX (PRIMARY)"
        );
    }

    #[test]
    fn upsert_per_backend() {
        let write = |q: &mut Sql| push_upsert(q, &["user_id", "name"], &["value", "updated_at"]);
        assert_eq!(
            text(Backend::Sqlite, write),
            " ON CONFLICT (\"user_id\", \"name\") DO UPDATE SET \"value\" = excluded.\"value\", \"updated_at\" = excluded.\"updated_at\""
        );
        assert_eq!(
            text(Backend::MySql, write),
            " ON DUPLICATE KEY UPDATE `value` = VALUES(`value`), `updated_at` = VALUES(`updated_at`)"
        );
    }

    #[test]
    fn returning_locks_and_literals() {
        assert_eq!(
            text(Backend::Postgres, |q| push_returning(q, "id")),
            " RETURNING \"id\""
        );
        assert_eq!(text(Backend::MySql, |q| push_returning(q, "id")), "");
        assert_eq!(text(Backend::Sqlite, push_for_update), "");
        assert_eq!(text(Backend::MySql, push_for_update), " FOR UPDATE");
        assert_eq!(bool_literal(Backend::Postgres, true), "TRUE");
        assert_eq!(bool_literal(Backend::MySql, false), "0");
        assert_eq!(int64_cast_type(Backend::MySql), "SIGNED");
        assert!(table_row_estimate(Backend::Sqlite, "t", None).is_none());
        assert_eq!(
            table_row_estimate(Backend::Sqlite, "t", Some("id"))
                .unwrap()
                .text(),
            "SELECT MAX(\"id\") - MIN(\"id\") + 1 FROM \"t\""
        );
    }
}
