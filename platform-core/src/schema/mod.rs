//! Host tables: the migrations written from a resource's metadata
//! (`make:migration`: the first one creates the table, later ones change it
//! as the resource changed), and the start-up check that the live schema
//! still matches the metadata (schema drift).

mod delta;
mod state;

pub use delta::{Change, Delta, DeltaError, DeltaOptions, rename_candidates};
pub use state::{ColumnState, Reference, SchemaFile, TableState, create_table};

use crate::db::{Backend, Db, Sql};
use crate::error::{Error, Result};
use crate::resource::{FieldMeta, Registry, ResourceMeta};
use crate::value::FieldType;

/// The SQL of a migration for each back end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationSql {
    /// For SQLite.
    pub sqlite: String,
    /// For PostgreSQL.
    pub postgres: String,
    /// For MySQL/MariaDB.
    pub mysql: String,
}

/// `CREATE TABLE` plus indexes for `meta` on `backend`: unique indexes for
/// `unique` fields, `(field, id)` indexes for sortable and filter fields,
/// foreign keys for `belongs_to`, and the search index (FTS5 trigram on
/// SQLite, `pg_trgm` GIN on PostgreSQL, FULLTEXT on MySQL/MariaDB).
pub fn create_table_sql(meta: &ResourceMeta, backend: Backend) -> String {
    state::create_table(&TableState::of(meta), backend)
}

/// The first migration of a resource, for every back end.
pub fn make_migration(meta: &ResourceMeta) -> MigrationSql {
    let header = |b: Backend| {
        format!(
            "-- Create the `{}` table of resource `{}` ({}).\n-- Written by `make:migration`; edit freely before it is applied.\n",
            meta.table(),
            meta.name(),
            b.name()
        )
    };
    MigrationSql {
        sqlite: header(Backend::Sqlite) + &create_table_sql(meta, Backend::Sqlite),
        postgres: header(Backend::Postgres) + &create_table_sql(meta, Backend::Postgres),
        mysql: header(Backend::MySql) + &create_table_sql(meta, Backend::MySql),
    }
}

/// The migration that makes `delta`'s change, for every back end: a
/// header listing the changes, then the SQL.
pub fn alter_migration(delta: &Delta) -> MigrationSql {
    let table = &delta.new_state().table;
    let script = |b: Backend| {
        let body = delta.sql(b);
        let mut header = format!(
            "-- Change the `{table}` table ({}).\n-- Written by `make:migration`; edit freely before it is applied.\n",
            b.name()
        );
        for c in delta.changes() {
            header.push_str(&format!("--   {c}\n"));
        }
        // The runner reads the foreign-keys marker on the first line.
        match body.strip_prefix(crate::db::SQLITE_FOREIGN_KEYS_OFF) {
            Some(rest) => format!(
                "{}\n{header}{}",
                crate::db::SQLITE_FOREIGN_KEYS_OFF,
                rest.trim_start_matches('\n')
            ),
            None => header + &body,
        }
    };
    MigrationSql {
        sqlite: script(Backend::Sqlite),
        postgres: script(Backend::Postgres),
        mysql: script(Backend::MySql),
    }
}

/// What the migrations under a directory recorded (`schema.json` files):
/// each table's latest state, and the tables a migration creates without
/// a recorded state (written by hand, or before states were recorded).
#[derive(Debug, Clone, Default)]
pub struct RecordedStates {
    /// Table -> (the migration's directory name, the state it left).
    pub tables: std::collections::BTreeMap<String, (String, TableState)>,
    /// Tables a `<version>_create_<table>` migration creates that have no
    /// recorded state.
    pub unrecorded: Vec<String>,
    /// The next free version number.
    pub next_version: u32,
}

impl RecordedStates {
    /// Reads the migrations under `dir` (missing: none).
    pub fn read(dir: &std::path::Path) -> Result<Self> {
        let mut out = Self {
            next_version: 1,
            ..Self::default()
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(Error::Configuration(format!(
                    "cannot read {}: {e}",
                    dir.display()
                )));
            }
        };
        let mut dirs: Vec<(u32, String)> = Vec::new();
        for e in entries {
            let e =
                e.map_err(|e| Error::Configuration(format!("cannot read {}: {e}", dir.display())))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !e.path().is_dir() {
                continue;
            }
            if let Some((v, _)) = name.split_once('_')
                && let Ok(v) = v.parse::<u32>()
            {
                dirs.push((v, name));
            }
        }
        dirs.sort();
        let mut created = Vec::new();
        for (v, name) in &dirs {
            out.next_version = out.next_version.max(v + 1);
            if let Some(table) = name.split_once("_create_").map(|(_, t)| t.to_owned()) {
                created.push(table);
            }
            let path = dir.join(name).join(SchemaFile::NAME);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::Configuration(format!(
                        "cannot read {}: {e}",
                        path.display()
                    )));
                }
            };
            let file: SchemaFile = serde_json::from_str(&text).map_err(|e| {
                Error::Configuration(format!("{} is not a schema state: {e}", path.display()))
            })?;
            for (table, state) in file.tables {
                out.tables.insert(table, (name.clone(), state));
            }
        }
        out.unrecorded = created
            .into_iter()
            .filter(|t| !out.tables.contains_key(t))
            .collect();
        Ok(out)
    }

    /// The latest recorded state of `table`.
    pub fn state(&self, table: &str) -> Option<&TableState> {
        self.tables.get(table).map(|(_, s)| s)
    }
}

#[derive(Debug)]
struct LiveColumn {
    name: String,
    ty: String,
    nullable: bool,
    max_len: Option<i64>,
}

async fn live_columns(db: &Db, table: &str) -> Result<Vec<LiveColumn>> {
    let backend = db.backend();
    let mut s = Sql::new(backend);
    let types = [
        FieldType::Text,
        FieldType::Text,
        FieldType::Bool,
        FieldType::I64,
    ];
    match backend {
        Backend::Sqlite => {
            s.push("SELECT name, type, \"notnull\" = 0 OR pk = 1, NULL FROM pragma_table_info(")
                .bind_str(table)
                .push(")");
        }
        Backend::Postgres => {
            s.push("SELECT column_name::text, data_type::text, is_nullable = 'YES', CAST(character_maximum_length AS BIGINT) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ")
                .bind_str(table);
        }
        Backend::MySql => {
            s.push("SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), IS_NULLABLE = 'YES', CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ")
                .bind_str(table);
        }
    }
    let rows = db.fetch_all(s, &types).await?;
    Ok(rows
        .into_iter()
        .map(|r| LiveColumn {
            name: r[0].as_str().unwrap_or_default().to_owned(),
            ty: r[1].as_str().unwrap_or_default().to_lowercase(),
            nullable: matches!(r[2], crate::value::Value::Bool(true)) || r[2].as_i64() == Some(1),
            max_len: r[3].as_i64(),
        })
        .collect())
}

/// Whether a live column type can hold `f`.
fn compatible(backend: Backend, f: &FieldMeta, live: &str) -> bool {
    let ty = if f.is_encrypted() {
        FieldType::Text
    } else {
        f.ty()
    };
    let has = |words: &[&str]| words.iter().any(|w| live.contains(w));
    match backend {
        Backend::Sqlite => match ty {
            FieldType::Bool | FieldType::I32 | FieldType::I64 => has(&["int", "bool"]),
            FieldType::F64 => has(&["real", "floa", "doub", "num", "dec"]),
            FieldType::String | FieldType::Text | FieldType::Uuid | FieldType::Json => {
                has(&["char", "text", "clob", "json"]) || live.is_empty()
            }
            FieldType::Date | FieldType::DateTime => has(&["text", "date", "time", "char"]),
        },
        Backend::Postgres => match ty {
            FieldType::Bool => live == "boolean",
            FieldType::I32 => live == "integer",
            FieldType::I64 => live == "bigint",
            FieldType::F64 => live == "double precision",
            FieldType::String | FieldType::Text => has(&["char", "text"]),
            FieldType::Date => live == "date",
            FieldType::DateTime => live == "timestamp with time zone",
            FieldType::Uuid => live == "uuid",
            FieldType::Json => live == "jsonb" || live == "json",
        },
        Backend::MySql => match ty {
            FieldType::Bool => live.starts_with("tinyint") || live.starts_with("bool"),
            FieldType::I32 => {
                live.starts_with("int")
                    || live.starts_with("mediumint")
                    || live.starts_with("smallint")
            }
            FieldType::I64 => live.starts_with("bigint"),
            FieldType::F64 => live.starts_with("double") || live.starts_with("float"),
            FieldType::String | FieldType::Text => has(&["char", "text"]),
            FieldType::Date => live == "date",
            FieldType::DateTime => live.starts_with("datetime") || live.starts_with("timestamp"),
            FieldType::Uuid => has(&["char"]),
            FieldType::Json => has(&["json", "text"]),
        },
    }
}

/// Compares every resource's metadata with the live schema. Returns one
/// line per problem, naming resource and field; empty when in step.
pub async fn drift(db: &Db, registry: &Registry) -> Result<Vec<String>> {
    let backend = db.backend();
    let mut problems = Vec::new();
    for entry in registry.entries() {
        let meta = entry.meta();
        let cols = live_columns(db, meta.table()).await?;
        if cols.is_empty() {
            problems.push(format!(
                "resource `{}`: table `{}` does not exist (write it with `make:migration {}`, then `migrate`)",
                meta.name(),
                meta.table(),
                meta.name()
            ));
            continue;
        }
        // Batch reads (exports) walk the primary key by name on MySQL and
        // MariaDB (`dialect::push_key_order_scan`).
        if backend == Backend::MySql
            && !live_indexes(db, meta.table())
                .await?
                .iter()
                .any(|i| i == "PRIMARY")
        {
            problems.push(format!(
                "resource `{}`: table `{}` has no primary key (MySQL/MariaDB: add `PRIMARY KEY ({})`)",
                meta.name(),
                meta.table(),
                meta.primary_key().column_name()
            ));
        }
        for f in meta.field_list() {
            let Some(c) = cols
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(f.column_name()))
            else {
                problems.push(format!(
                    "resource `{}`, field `{}`: column `{}.{}` is missing",
                    meta.name(),
                    f.name(),
                    meta.table(),
                    f.column_name()
                ));
                continue;
            };
            if !compatible(backend, f, &c.ty) {
                problems.push(format!(
                    "resource `{}`, field `{}`: column `{}.{}` has type `{}`, which cannot hold a {}{}",
                    meta.name(),
                    f.name(),
                    meta.table(),
                    f.column_name(),
                    c.ty,
                    f.ty().name(),
                    if f.is_encrypted() { " (encrypted: needs a text column)" } else { "" }
                ));
            }
            if !f.is_primary_key() && c.nullable != f.is_nullable() {
                problems.push(format!(
                    "resource `{}`, field `{}`: column `{}.{}` is {} but the field is {}",
                    meta.name(),
                    f.name(),
                    meta.table(),
                    f.column_name(),
                    if c.nullable { "nullable" } else { "NOT NULL" },
                    if f.is_nullable() {
                        "an Option"
                    } else {
                        "required"
                    }
                ));
            }
            if let (Some(live), Some(max)) = (c.max_len, f.max_len())
                && !f.is_encrypted()
                && live < i64::from(max)
            {
                problems.push(format!(
                    "resource `{}`, field `{}`: column `{}.{}` holds {} characters but the field allows {}",
                    meta.name(),
                    f.name(),
                    meta.table(),
                    f.column_name(),
                    live,
                    max
                ));
            }
        }
    }
    Ok(problems)
}

/// [`drift`] as an error: `Error::Configuration` listing every problem.
pub async fn check(db: &Db, registry: &Registry) -> Result<()> {
    let problems = drift(db, registry).await?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Configuration(format!(
            "the database schema does not match the resources:\n  {}",
            problems.join("\n  ")
        )))
    }
}

/// The names of the indexes of `table` in the live database.
async fn live_indexes(db: &Db, table: &str) -> Result<Vec<String>> {
    let mut s = Sql::new(db.backend());
    match db.backend() {
        Backend::Sqlite => {
            s.push("SELECT name FROM pragma_index_list(")
                .bind_str(table)
                .push(")");
        }
        Backend::Postgres => {
            s.push("SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ")
                .bind_str(table);
        }
        Backend::MySql => {
            s.push("SELECT DISTINCT CAST(INDEX_NAME AS CHAR) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ")
                .bind_str(table);
        }
    }
    Ok(db
        .fetch_all(s, &[FieldType::Text])
        .await?
        .into_iter()
        .filter_map(|r| r[0].as_str().map(str::to_owned))
        .collect())
}

/// The searched columns of `table` in the live database, in order, from
/// its search index (`columns`: the table's columns).
async fn live_search(db: &Db, table: &str, columns: &[String]) -> Result<Vec<String>> {
    let b = db.backend();
    let mut s = Sql::new(b);
    match b {
        Backend::Sqlite => {
            s.push("SELECT name FROM pragma_table_info(")
                .bind_str(crate::db::dialect::search_table(table))
                .push(") ORDER BY cid");
        }
        Backend::Postgres => {
            s.push("SELECT pg_get_indexdef(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname = ")
                .bind_str(format!("{table}_search_trgm"));
        }
        Backend::MySql => {
            s.push("SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ")
                .bind_str(table)
                .push(" AND INDEX_NAME = ")
                .bind_str(format!("{table}_search_ft"))
                .push(" ORDER BY SEQ_IN_INDEX");
        }
    }
    let rows: Vec<String> = db
        .fetch_all(s, &[FieldType::Text])
        .await?
        .into_iter()
        .filter_map(|r| r[0].as_str().map(str::to_owned))
        .collect();
    if b != Backend::Postgres {
        return Ok(rows);
    }
    // PostgreSQL: the columns named in the index's expression, in order.
    let Some(def) = rows.first() else {
        return Ok(Vec::new());
    };
    let expr = def.split_once("USING gin").map_or(def.as_str(), |(_, e)| e);
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found: Vec<(usize, String)> = columns
        .iter()
        .filter_map(|col| {
            expr.match_indices(col.as_str())
                .find(|(i, _)| {
                    let before = expr[..*i].chars().next_back();
                    let after = expr[i + col.len()..].chars().next();
                    !before.is_some_and(is_word) && !after.is_some_and(is_word)
                })
                .map(|(i, _)| (i, col.clone()))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, c)| c).collect())
}

/// A live column type as the state's type and length (best guess).
fn live_type(backend: Backend, live: &LiveColumn) -> (FieldType, Option<u32>) {
    let t = live.ty.as_str();
    let len = live
        .max_len
        .and_then(|l| u32::try_from(l).ok())
        .or_else(|| {
            t.split_once('(')
                .and_then(|(_, r)| r.trim_end_matches(')').parse().ok())
        });
    let ty = if t.starts_with("tinyint(1)") || t.starts_with("bool") {
        FieldType::Bool
    } else if t.starts_with("bigint") || backend == Backend::Sqlite && t.contains("int") {
        FieldType::I64
    } else if t.contains("int") {
        FieldType::I32
    } else if t.contains("real") || t.contains("doub") || t.contains("float") {
        FieldType::F64
    } else if t.contains("char(36)") || t == "uuid" {
        FieldType::Uuid
    } else if t.contains("char") {
        FieldType::String
    } else if t.starts_with("timestamp") || t.starts_with("datetime") {
        FieldType::DateTime
    } else if t == "date" {
        FieldType::Date
    } else if t.contains("json") {
        FieldType::Json
    } else {
        FieldType::Text
    };
    (ty, if ty == FieldType::String { len } else { None })
}

/// The table of `meta` as the live database has it, for migrations that
/// record no state (written by hand, or before states were recorded);
/// `None` when the table does not exist. Types the model can hold keep the
/// model's type (SQLite's text columns hold dates, JSON and UUIDs alike);
/// foreign keys are taken from the model for columns both have.
pub async fn live_state(db: &Db, meta: &ResourceMeta) -> Result<Option<TableState>> {
    let backend = db.backend();
    let table = meta.table();
    let cols = live_columns(db, table).await?;
    if cols.is_empty() {
        return Ok(None);
    }
    let model = TableState::of(meta);
    let indexes = live_indexes(db, table).await?;
    let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
    let search = live_search(db, table, &names).await?;
    let columns = cols
        .iter()
        .map(|live| {
            let field = meta
                .field_list()
                .iter()
                .find(|f| f.column_name().eq_ignore_ascii_case(&live.name));
            let modelled = model.column(&live.name);
            let (ty, max_len) = match (field, modelled) {
                (Some(f), Some(m)) if compatible(backend, f, &live.ty) => {
                    let (_, len) = live_type(backend, live);
                    (
                        m.ty,
                        if m.ty == FieldType::String {
                            len.or(m.max_len)
                        } else {
                            None
                        },
                    )
                }
                _ => live_type(backend, live),
            };
            let primary_key = modelled.is_some_and(|m| m.primary_key);
            ColumnState {
                name: live.name.clone(),
                ty,
                max_len,
                nullable: !primary_key && live.nullable,
                primary_key,
                unique: indexes.contains(&format!("{table}_{}_unique", live.name)),
                indexed: indexes.contains(&format!("{table}_{}_idx", live.name)),
                references: modelled.and_then(|m| m.references.clone()),
            }
        })
        .collect();
    Ok(Some(TableState {
        table: table.to_owned(),
        columns,
        search,
    }))
}
