//! A table as the migrations left it: the state `make:migration` records
//! beside each migration it writes (`schema.json`), and the `CREATE TABLE`
//! written from it.
//!
//! The state holds what the platform derives from a resource and what a
//! migration must change when the resource changes: columns (type, length,
//! nullability, foreign key), which columns have a unique or a plain index,
//! and which are searched.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::db::Backend;
use crate::db::dialect::search_table;
use crate::resource::ResourceMeta;
use crate::value::FieldType;

/// One table's schema, as derived from a resource or recorded by a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    /// The table's name.
    pub table: String,
    /// The columns, in declaration order.
    pub columns: Vec<ColumnState>,
    /// The searched columns (the search index), in order; empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
}

/// One column of a [`TableState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnState {
    /// The column's name.
    pub name: String,
    /// What it stores (an encrypted field stores text).
    #[serde(rename = "type", with = "field_type")]
    pub ty: FieldType,
    /// The maximum length of a short string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<u32>,
    /// Whether it may be NULL.
    #[serde(default)]
    pub nullable: bool,
    /// Whether it is the primary key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub primary_key: bool,
    /// Whether it has a unique index.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// Whether it has a plain `(column, key)` index (sortable, filter,
    /// foreign key, soft-delete column).
    #[serde(default, skip_serializing_if = "is_false")]
    pub indexed: bool,
    /// The table and column it refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Reference>,
}

/// A foreign key's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The referenced table.
    pub table: String,
    /// The referenced column.
    pub column: String,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_false(b: &bool) -> bool {
    !*b
}

/// `FieldType` by a stable lower-case name in `schema.json`.
mod field_type {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::value::FieldType;

    const NAMES: [(FieldType, &str); 10] = [
        (FieldType::Bool, "bool"),
        (FieldType::I32, "i32"),
        (FieldType::I64, "i64"),
        (FieldType::F64, "f64"),
        (FieldType::String, "string"),
        (FieldType::Text, "text"),
        (FieldType::Date, "date"),
        (FieldType::DateTime, "datetime"),
        (FieldType::Uuid, "uuid"),
        (FieldType::Json, "json"),
    ];

    pub(super) fn name(ty: FieldType) -> &'static str {
        NAMES
            .iter()
            .find(|(t, _)| *t == ty)
            .map_or("text", |(_, n)| n)
    }

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
    pub(super) fn serialize<S: Serializer>(ty: &FieldType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name(*ty))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FieldType, D::Error> {
        let text = String::deserialize(d)?;
        NAMES
            .iter()
            .find(|(_, n)| *n == text)
            .map(|(t, _)| *t)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown column type `{text}`; known: {}",
                    NAMES.map(|(_, n)| n).join(", ")
                ))
            })
    }
}

impl TableState {
    /// The table `meta` needs.
    pub fn of(meta: &ResourceMeta) -> Self {
        let columns = meta
            .field_list()
            .iter()
            .map(|f| {
                let ty = if f.is_encrypted() {
                    FieldType::Text
                } else {
                    f.ty()
                };
                let pk = f.is_primary_key();
                ColumnState {
                    name: f.column_name().to_owned(),
                    ty,
                    max_len: if ty == FieldType::String {
                        Some(f.max_len().unwrap_or(255))
                    } else {
                        None
                    },
                    nullable: !pk && f.is_nullable(),
                    primary_key: pk,
                    unique: !pk && f.is_unique(),
                    indexed: !pk
                        && !f.is_unique()
                        && (f.is_sortable()
                            || f.is_filter()
                            || f.belongs_to_meta().is_some()
                            || f.is_managed() && f.name() == "deleted_at"),
                    references: f.belongs_to_meta().map(|target| Reference {
                        table: target.table().to_owned(),
                        column: target.primary_key().column_name().to_owned(),
                    }),
                }
            })
            .collect();
        let search = meta
            .search_fields()
            .iter()
            .filter_map(|s| meta.field(s))
            .map(|f| f.column_name().to_owned())
            .collect();
        Self {
            table: meta.table().to_owned(),
            columns,
            search,
        }
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnState> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The primary key column (the first column when none is marked).
    pub fn primary_key(&self) -> &ColumnState {
        self.columns
            .iter()
            .find(|c| c.primary_key)
            .or(self.columns.first())
            .expect("a table state has columns")
    }

    /// Whether the primary key is an integer the database assigns.
    pub fn has_integer_key(&self) -> bool {
        matches!(self.primary_key().ty, FieldType::I64 | FieldType::I32)
    }

    /// Whether `backend` keeps a search index for this table (SQLite's
    /// FTS5 needs an integer key).
    pub(crate) fn has_search_index(&self, backend: Backend) -> bool {
        !self.search.is_empty()
            && match backend {
                Backend::Sqlite => self.has_integer_key(),
                Backend::Postgres | Backend::MySql => true,
            }
    }
}

/// The recorded states of a migration directory (`schema.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaFile {
    /// The format's version (1).
    pub version: u32,
    /// The tables this migration created or changed, as it left them.
    pub tables: BTreeMap<String, TableState>,
}

impl SchemaFile {
    /// The file's name in a migration directory.
    pub const NAME: &'static str = "schema.json";

    /// A file recording `states`.
    pub fn of(states: impl IntoIterator<Item = TableState>) -> Self {
        Self {
            version: 1,
            tables: states.into_iter().map(|s| (s.table.clone(), s)).collect(),
        }
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut out = serde_json::to_string_pretty(self).unwrap_or_default();
        out.push('\n');
        out
    }
}

pub(crate) fn q(backend: Backend, ident: &str) -> String {
    let c = backend.quote_char();
    format!("{c}{ident}{c}")
}

/// The column type of `c` on `backend`.
pub(crate) fn column_type(backend: Backend, c: &ColumnState) -> String {
    let varchar = |n: u32| {
        if backend == Backend::MySql && n > 16_000 {
            "LONGTEXT".to_owned()
        } else {
            format!("VARCHAR({n})")
        }
    };
    match (backend, c.ty) {
        (_, FieldType::Bool) => "BOOLEAN".into(),
        (Backend::MySql, FieldType::I32) => "INT".into(),
        (_, FieldType::I32) => "INTEGER".into(),
        (_, FieldType::I64) => "BIGINT".into(),
        (Backend::Sqlite, FieldType::F64) => "REAL".into(),
        (Backend::Postgres, FieldType::F64) => "DOUBLE PRECISION".into(),
        (Backend::MySql, FieldType::F64) => "DOUBLE".into(),
        (_, FieldType::String) => varchar(c.max_len.unwrap_or(255)),
        (Backend::MySql, FieldType::Text) => "LONGTEXT".into(),
        (_, FieldType::Text) => "TEXT".into(),
        (Backend::Sqlite, FieldType::Date | FieldType::DateTime) => "TEXT".into(),
        (_, FieldType::Date) => "DATE".into(),
        (Backend::Postgres, FieldType::DateTime) => "TIMESTAMPTZ".into(),
        (Backend::MySql, FieldType::DateTime) => "DATETIME(6)".into(),
        (Backend::Postgres, FieldType::Uuid) => "UUID".into(),
        (Backend::Sqlite, FieldType::Uuid) => "TEXT".into(),
        (Backend::MySql, FieldType::Uuid) => "CHAR(36)".into(),
        (Backend::Postgres, FieldType::Json) => "JSONB".into(),
        (Backend::MySql, FieldType::Json) => "LONGTEXT".into(),
        (_, FieldType::Json) => "TEXT".into(),
    }
}

/// The name of the MySQL foreign key constraint of column `column`.
pub(crate) fn mysql_fk_name(table: &str, column: &str) -> String {
    format!("{table}_{column}_fk")
}

/// `REFERENCES "t" ("id")`.
pub(crate) fn references(backend: Backend, r: &Reference) -> String {
    format!(
        "REFERENCES {} ({})",
        q(backend, &r.table),
        q(backend, &r.column)
    )
}

/// The column definition inside `CREATE TABLE` (without MySQL's separate
/// foreign key constraint).
fn column_definition(backend: Backend, state: &TableState, c: &ColumnState) -> String {
    let name = q(backend, &c.name);
    let integer_key = c.primary_key && state.has_integer_key();
    let mut def = if integer_key {
        match backend {
            Backend::Sqlite => format!("{name} INTEGER PRIMARY KEY AUTOINCREMENT"),
            Backend::Postgres => format!(
                "{name} {} GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                column_type(backend, c)
            ),
            Backend::MySql => format!(
                "{name} {} NOT NULL AUTO_INCREMENT PRIMARY KEY",
                column_type(backend, c)
            ),
        }
    } else if c.primary_key {
        format!("{name} {} NOT NULL PRIMARY KEY", column_type(backend, c))
    } else {
        format!(
            "{name} {}{}",
            column_type(backend, c),
            if c.nullable { " NULL" } else { " NOT NULL" }
        )
    };
    if let Some(r) = &c.references
        && backend != Backend::MySql
    {
        def.push(' ');
        def.push_str(&references(backend, r));
    }
    def
}

/// The name of the index `c` has, if any.
pub(crate) fn index_name(state: &TableState, c: &ColumnState) -> Option<String> {
    if c.primary_key {
        None
    } else if c.unique {
        Some(format!("{}_{}_unique", state.table, c.name))
    } else if c.indexed {
        Some(format!("{}_{}_idx", state.table, c.name))
    } else {
        None
    }
}

/// `CREATE [UNIQUE] INDEX ...;\n` for `c`, or nothing.
pub(crate) fn create_index(backend: Backend, state: &TableState, c: &ColumnState) -> String {
    let Some(name) = index_name(state, c) else {
        return String::new();
    };
    let qt = q(backend, &state.table);
    let col = q(backend, &c.name);
    if c.unique {
        format!(
            "CREATE UNIQUE INDEX {} ON {qt} ({col});\n",
            q(backend, &name)
        )
    } else {
        let cols = if backend == Backend::MySql {
            col
        } else {
            format!("{col}, {}", q(backend, &state.primary_key().name))
        };
        format!("CREATE INDEX {} ON {qt} ({cols});\n", q(backend, &name))
    }
}

/// The search index of `state` on PostgreSQL or SQLite (MySQL's FULLTEXT key
/// is part of `CREATE TABLE`, see [`mysql_fulltext`]).
pub(crate) fn create_search(backend: Backend, state: &TableState) -> String {
    if !state.has_search_index(backend) {
        return String::new();
    }
    let t = &state.table;
    let qt = q(backend, t);
    let pkc = q(backend, &state.primary_key().name);
    let mut out = String::new();
    match backend {
        Backend::Postgres => {
            out.push_str("CREATE EXTENSION IF NOT EXISTS pg_trgm;\n");
            // One index over all searched fields: one index scan per
            // search instead of one per field (half the time at 1M rows).
            // New rows go to GIN's pending list and are merged into the
            // index in bulk, but the list is kept small (256 kB, against a
            // default of 4 MB) because every search scans it. Measured on
            // 1M rows: 100,000 inserts take 0.66-5.8 s instead of 3.4-12.4 s
            // with the list off (`fastupdate = off`), and a search right
            // after a burst of inserts takes 0.8 ms instead of 0.75 ms; with
            // the default 4 MB list it was 10x slower.
            let cols: Vec<&str> = state.search.iter().map(String::as_str).collect();
            out.push_str(&format!(
                "CREATE INDEX {} ON {qt} USING gin (({}) gin_trgm_ops) WITH (fastupdate = on, gin_pending_list_limit = 256);\n",
                q(backend, &format!("{t}_search_trgm")),
                crate::db::dialect::pg_search_expression(&cols)
            ));
        }
        Backend::Sqlite => {
            let st = q(backend, &search_table(t));
            let names: Vec<String> = state.search.iter().map(|c| q(backend, c)).collect();
            let news: Vec<String> = names.iter().map(|c| format!("new.{c}")).collect();
            let olds: Vec<String> = names.iter().map(|c| format!("old.{c}")).collect();
            let cols = names.join(", ");
            out.push_str(&format!(
                "CREATE VIRTUAL TABLE {st} USING fts5({cols}, content='{t}', content_rowid='{}', tokenize='trigram');\n",
                state.primary_key().name
            ));
            out.push_str(&format!(
                "CREATE TRIGGER {} AFTER INSERT ON {qt} BEGIN INSERT INTO {st} (rowid, {cols}) VALUES (new.{pkc}, {}); END;\n",
                q(backend, &format!("{t}_search_ai")),
                news.join(", ")
            ));
            out.push_str(&format!(
                "CREATE TRIGGER {} AFTER DELETE ON {qt} BEGIN INSERT INTO {st} ({st}, rowid, {cols}) VALUES ('delete', old.{pkc}, {}); END;\n",
                q(backend, &format!("{t}_search_ad")),
                olds.join(", ")
            ));
            out.push_str(&format!(
                "CREATE TRIGGER {} AFTER UPDATE OF {cols} ON {qt} BEGIN INSERT INTO {st} ({st}, rowid, {cols}) VALUES ('delete', old.{pkc}, {}); INSERT INTO {st} (rowid, {cols}) VALUES (new.{pkc}, {}); END;\n",
                q(backend, &format!("{t}_search_au")),
                olds.join(", "),
                news.join(", ")
            ));
        }
        Backend::MySql => {}
    }
    out
}

/// Drops the search index of `state` (which must have one on `backend`).
pub(crate) fn drop_search(backend: Backend, state: &TableState) -> String {
    if !state.has_search_index(backend) {
        return String::new();
    }
    let t = &state.table;
    match backend {
        Backend::Postgres => format!(
            "DROP INDEX IF EXISTS {};\n",
            q(backend, &format!("{t}_search_trgm"))
        ),
        Backend::Sqlite => {
            let mut out = String::new();
            for suffix in ["ai", "ad", "au"] {
                out.push_str(&format!(
                    "DROP TRIGGER IF EXISTS {};\n",
                    q(backend, &format!("{t}_search_{suffix}"))
                ));
            }
            out.push_str(&format!(
                "DROP TABLE IF EXISTS {};\n",
                q(backend, &search_table(t))
            ));
            out
        }
        Backend::MySql => format!(
            "ALTER TABLE {} DROP INDEX {};\n",
            q(backend, t),
            q(backend, &format!("{t}_search_ft"))
        ),
    }
}

/// MySQL's `FULLTEXT KEY "t_search_ft" (...)` clause.
pub(crate) fn mysql_fulltext(state: &TableState) -> String {
    let b = Backend::MySql;
    let cols: Vec<String> = state.search.iter().map(|c| q(b, c)).collect();
    format!(
        "FULLTEXT KEY {} ({})",
        q(b, &format!("{}_search_ft", state.table)),
        cols.join(", ")
    )
}

/// `CREATE TABLE` plus indexes and the search index for `state`.
pub fn create_table(state: &TableState, backend: Backend) -> String {
    let t = &state.table;
    let qt = q(backend, t);
    let mut cols: Vec<String> = state
        .columns
        .iter()
        .map(|c| column_definition(backend, state, c))
        .collect();
    if backend == Backend::MySql {
        for c in &state.columns {
            if let Some(r) = &c.references {
                cols.push(format!(
                    "CONSTRAINT {} FOREIGN KEY ({}) {}",
                    q(backend, &mysql_fk_name(t, &c.name)),
                    q(backend, &c.name),
                    references(backend, r)
                ));
            }
        }
        if state.has_search_index(backend) {
            cols.push(mysql_fulltext(state));
        }
    }
    let mut out = format!("CREATE TABLE {qt} (\n    {}\n)", cols.join(",\n    "));
    if backend == Backend::MySql {
        out.push_str(" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci");
    }
    out.push_str(";\n");
    for c in &state.columns {
        out.push_str(&create_index(backend, state, c));
    }
    out.push_str(&create_search(backend, state));
    out
}

/// The name of `ty` in `schema.json`.
pub(crate) fn type_name(ty: FieldType) -> &'static str {
    field_type::name(ty)
}
