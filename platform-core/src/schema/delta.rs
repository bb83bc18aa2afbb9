//! What changed between two states of a table, and the migration that makes
//! the change on each back end, keeping the rows.
//!
//! PostgreSQL and MySQL/MariaDB change a table in place (`ALTER TABLE`).
//! SQLite's `ALTER TABLE` can add a column and little else, so any other
//! change rebuilds the table: rename the old one away, create the new one,
//! copy the rows (renamed, converted, defaulted), keep the `AUTOINCREMENT`
//! high-water mark, drop the old one; in one transaction with foreign keys
//! off and checked before commit (the migration runner does that for a
//! script marked [`SQLITE_FOREIGN_KEYS_OFF`]).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use super::state::{
    ColumnState, TableState, column_type, create_index, create_search, create_table, drop_search,
    index_name, mysql_fk_name, mysql_fulltext, q, references, type_name,
};
use crate::db::dialect::search_table;
use crate::db::{Backend, SQLITE_FOREIGN_KEYS_OFF};
use crate::value::FieldType;

/// What `make:migration` was told beyond the two states.
#[derive(Debug, Clone, Default)]
pub struct DeltaOptions {
    /// Columns renamed, as `(old name, new name)`.
    pub renames: Vec<(String, String)>,
    /// A value for the existing rows of a column that is new and required,
    /// or that becomes required, by column name (parsed by its type).
    pub defaults: BTreeMap<String, String>,
}

/// One change of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new column.
    AddColumn(String),
    /// A column that is gone (its data with it).
    DropColumn(String),
    /// A column with a new name (the data kept).
    RenameColumn {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A column whose type, length, nullability or foreign key changed.
    AlterColumn {
        /// The column (its new name).
        column: String,
        /// What changed, in words (`type text -> i64`, `now required`, ...).
        what: Vec<String>,
    },
    /// A new unique or plain index on a column.
    AddIndex(String),
    /// An index that is gone.
    DropIndex(String),
    /// The searched columns changed.
    Search {
        /// Before (empty: no search index).
        from: Vec<String>,
        /// After.
        to: Vec<String>,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AddColumn(c) => write!(f, "add column `{c}`"),
            Self::DropColumn(c) => write!(f, "drop column `{c}` (and its data)"),
            Self::RenameColumn { from, to } => write!(f, "rename column `{from}` to `{to}`"),
            Self::AlterColumn { column, what } => {
                write!(f, "change column `{column}`: {}", what.join(", "))
            }
            Self::AddIndex(i) => write!(f, "add index `{i}`"),
            Self::DropIndex(i) => write!(f, "drop index `{i}`"),
            Self::Search { from, to } if to.is_empty() => {
                write!(f, "drop the search index over {}", from.join(", "))
            }
            Self::Search { to, .. } => write!(f, "search over {}", to.join(", ")),
        }
    }
}

/// Why no migration could be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The primary key changed.
    #[error(
        "the primary key of `{table}` changed (`{from}` -> `{to}`); make:migration does not change primary keys: write that migration by hand"
    )]
    PrimaryKey {
        /// The table.
        table: String,
        /// The old key column and type.
        from: String,
        /// The new one.
        to: String,
    },
    /// A rename names a column that is not there.
    #[error("--rename {from}={to}: {reason}")]
    Rename {
        /// The old name given.
        from: String,
        /// The new name given.
        to: String,
        /// What is wrong.
        reason: String,
    },
    /// Existing rows need a value for a required column.
    #[error(
        "column `{table}.{column}` ({ty}) is {why} and existing rows need a value: pass `--default {column}=VALUE`, or make the field an `Option`"
    )]
    NeedsDefault {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Its type.
        ty: &'static str,
        /// `new and required` or `now required`.
        why: &'static str,
    },
    /// A `--default` value does not fit its column.
    #[error("--default {column}={value}: {reason}")]
    BadDefault {
        /// The column.
        column: String,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// A value for existing rows, typed so each back end can spell it.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Date(NaiveDate),
    Time(DateTime<Utc>),
}

impl Literal {
    /// The value existing rows get when none is given: zero, empty, false;
    /// the time of writing for the timestamps the platform manages.
    fn zero(c: &ColumnState) -> Option<Self> {
        if c.ty == FieldType::DateTime && matches!(c.name.as_str(), "created_at" | "updated_at") {
            return Some(Self::now());
        }
        match c.ty {
            FieldType::Bool => Some(Self::Bool(false)),
            FieldType::I32 | FieldType::I64 => Some(Self::Int(0)),
            FieldType::F64 => Some(Self::Float(0.0)),
            FieldType::String | FieldType::Text => Some(Self::Text(String::new())),
            FieldType::Json => Some(Self::Text("null".to_owned())),
            FieldType::Date | FieldType::DateTime | FieldType::Uuid => None,
        }
    }

    fn now() -> Self {
        Self::Time(chrono::SubsecRound::trunc_subsecs(Utc::now(), 0))
    }

    fn parse(c: &ColumnState, text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t == "now" {
            match c.ty {
                FieldType::DateTime => return Ok(Self::now()),
                FieldType::Date => return Ok(Self::Date(Utc::now().date_naive())),
                _ => {}
            }
        }
        match c.ty {
            FieldType::Bool => match t.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Self::Bool(true)),
                "false" | "0" | "no" => Ok(Self::Bool(false)),
                _ => Err("must be true or false".into()),
            },
            FieldType::I32 => t
                .parse::<i32>()
                .map(|v| Self::Int(v.into()))
                .map_err(|_| "must be a 32-bit integer".into()),
            FieldType::I64 => t
                .parse::<i64>()
                .map(Self::Int)
                .map_err(|_| "must be an integer".into()),
            FieldType::F64 => match t.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Self::Float(v)),
                _ => Err("must be a finite number".into()),
            },
            FieldType::String | FieldType::Text => {
                let max = c.max_len.unwrap_or(u32::MAX) as usize;
                if text.chars().count() > max {
                    Err(format!("longer than the column's {max} characters"))
                } else {
                    Ok(Self::Text(text.to_owned()))
                }
            }
            FieldType::Date => NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(Self::Date)
                .map_err(|_| "must be a date like 2024-12-31, or now".into()),
            FieldType::DateTime => DateTime::parse_from_rfc3339(t)
                .map(|v| Self::Time(v.with_timezone(&Utc)))
                .map_err(|_| "must be an RFC 3339 time like 2024-12-31T09:00:00Z, or now".into()),
            FieldType::Uuid => uuid::Uuid::parse_str(t)
                .map(|u| Self::Text(u.hyphenated().to_string()))
                .map_err(|_| "must be a UUID".into()),
            FieldType::Json => serde_json::from_str::<serde_json::Value>(t)
                .map(|v| Self::Text(v.to_string()))
                .map_err(|e| format!("must be JSON ({e})")),
        }
    }

    /// The value as an SQL literal on `backend`.
    fn sql(&self, backend: Backend) -> String {
        let text = |s: &str| {
            let mut out = s.replace('\'', "''");
            if backend == Backend::MySql {
                // MySQL reads backslashes in literals as escapes.
                out = out.replace('\\', "\\\\");
            }
            format!("'{out}'")
        };
        match self {
            Self::Bool(b) => crate::db::dialect::bool_literal(backend, *b).into(),
            Self::Int(v) => v.to_string(),
            Self::Float(v) => format!("{v:?}"),
            Self::Text(s) => text(s),
            Self::Date(d) => text(&d.format("%Y-%m-%d").to_string()),
            Self::Time(t) => match backend {
                Backend::Sqlite => text(&crate::db::sqlite_time(*t)),
                Backend::Postgres => text(&t.to_rfc3339_opts(SecondsFormat::Micros, true)),
                Backend::MySql => text(&t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
            },
        }
    }
}

/// The change from one state of a table to the next.
#[derive(Debug, Clone)]
pub struct Delta {
    old: TableState,
    new: TableState,
    /// For each new column (by index), the old column it comes from.
    source: Vec<Option<String>>,
    dropped: Vec<String>,
    /// Values for rows of columns that are new and required or become required.
    fill: BTreeMap<String, Literal>,
    search_changed: bool,
    changes: Vec<Change>,
}

/// Types a rename may also change between (strings, integers).
fn family(ty: FieldType) -> u8 {
    match ty {
        FieldType::String | FieldType::Text => 0,
        FieldType::I32 | FieldType::I64 => 1,
        other => 2 + other as u8,
    }
}

/// Pairs `(gone, new)` of a column that is gone and a new column of the
/// same type: perhaps a rename, which only the user can tell.
pub fn rename_candidates(old: &TableState, new: &TableState) -> Vec<(String, String)> {
    let gone = old
        .columns
        .iter()
        .filter(|o| !o.primary_key && new.column(&o.name).is_none());
    let mut out = Vec::new();
    for o in gone {
        for n in new.columns.iter().filter(|n| {
            !n.primary_key && old.column(&n.name).is_none() && family(n.ty) == family(o.ty)
        }) {
            out.push((o.name.clone(), n.name.clone()));
        }
    }
    out
}

impl Delta {
    /// Compares `old` with `new`.
    pub fn compute(
        old: &TableState,
        new: &TableState,
        options: &DeltaOptions,
    ) -> Result<Self, DeltaError> {
        let (opk, npk) = (old.primary_key(), new.primary_key());
        if opk.name != npk.name || opk.ty != npk.ty {
            return Err(DeltaError::PrimaryKey {
                table: new.table.clone(),
                from: format!("{} {}", opk.name, type_name(opk.ty)),
                to: format!("{} {}", npk.name, type_name(npk.ty)),
            });
        }
        for (from, to) in &options.renames {
            let bad = |reason: String| DeltaError::Rename {
                from: from.clone(),
                to: to.clone(),
                reason,
            };
            if old.column(from).is_none() {
                return Err(bad(format!(
                    "`{from}` is not a column of `{}` in the last migration",
                    old.table
                )));
            }
            if new.column(to).is_none() {
                return Err(bad(format!("`{to}` is not a field of the resource")));
            }
            if new.column(from).is_some() {
                return Err(bad(format!("`{from}` is still a field of the resource")));
            }
            if old.column(to).is_some() {
                return Err(bad(format!(
                    "`{to}` is already a column of `{}`",
                    old.table
                )));
            }
            if from == &opk.name {
                return Err(bad("the primary key cannot be renamed here".into()));
            }
        }
        let renamed_to = |n: &str| {
            options
                .renames
                .iter()
                .find(|(_, to)| to == n)
                .map(|(from, _)| from.clone())
        };
        let renamed_away = |o: &str| options.renames.iter().any(|(from, _)| from == o);
        let source: Vec<Option<String>> = new
            .columns
            .iter()
            .map(|n| {
                renamed_to(&n.name).or_else(|| {
                    (old.column(&n.name).is_some() && !renamed_away(&n.name))
                        .then(|| n.name.clone())
                })
            })
            .collect();
        let dropped: Vec<String> = old
            .columns
            .iter()
            .filter(|o| !source.iter().flatten().any(|s| s == &o.name))
            .map(|o| o.name.clone())
            .collect();

        let mut changes = Vec::new();
        let mut fill = BTreeMap::new();
        for (from, to) in &options.renames {
            changes.push(Change::RenameColumn {
                from: from.clone(),
                to: to.clone(),
            });
        }
        for d in &dropped {
            changes.push(Change::DropColumn(d.clone()));
        }
        let mut need_fill = |n: &ColumnState, why: &'static str| -> Result<(), DeltaError> {
            let literal = match options.defaults.get(&n.name) {
                Some(text) => Literal::parse(n, text).map_err(|reason| DeltaError::BadDefault {
                    column: n.name.clone(),
                    value: text.clone(),
                    reason,
                })?,
                None => match Literal::zero(n).filter(|_| n.references.is_none()) {
                    Some(zero) => zero,
                    None => {
                        return Err(DeltaError::NeedsDefault {
                            table: new.table.clone(),
                            column: n.name.clone(),
                            ty: type_name(n.ty),
                            why,
                        });
                    }
                },
            };
            fill.insert(n.name.clone(), literal);
            Ok(())
        };
        for (n, src) in new.columns.iter().zip(&source) {
            let Some(src) = src else {
                changes.push(Change::AddColumn(n.name.clone()));
                if !n.nullable {
                    need_fill(n, "new and required")?;
                }
                continue;
            };
            let o = old.column(src).expect("source columns exist");
            let mut what = Vec::new();
            if o.ty != n.ty || o.max_len != n.max_len {
                let spell = |c: &ColumnState| match c.max_len {
                    Some(len) => format!("{}({len})", type_name(c.ty)),
                    None => type_name(c.ty).to_owned(),
                };
                what.push(format!("type {} -> {}", spell(o), spell(n)));
            }
            if o.nullable && !n.nullable {
                what.push("now required".to_owned());
                need_fill(n, "now required")?;
            } else if !o.nullable && n.nullable {
                what.push("now optional".to_owned());
            }
            if o.references != n.references {
                what.push(match &n.references {
                    Some(r) => format!("refers to `{}.{}`", r.table, r.column),
                    None => "no foreign key".to_owned(),
                });
            }
            if !what.is_empty() {
                changes.push(Change::AlterColumn {
                    column: n.name.clone(),
                    what,
                });
            }
        }
        let mut delta = Self {
            old: old.clone(),
            new: new.clone(),
            source,
            dropped,
            fill,
            search_changed: false,
            changes,
        };
        for (o, n) in delta.index_moves() {
            if let Some(o) = o {
                delta.changes.push(Change::DropIndex(o));
            }
            if let Some(n) = n {
                delta.changes.push(Change::AddIndex(n));
            }
        }
        let old_search: Vec<String> = old
            .search
            .iter()
            .map(|c| {
                options
                    .renames
                    .iter()
                    .find(|(from, _)| from == c)
                    .map_or_else(|| c.clone(), |(_, to)| to.clone())
            })
            .collect();
        let touched = |c: &str| {
            delta.changes.iter().any(|ch| match ch {
                Change::RenameColumn { to, .. } => to == c,
                Change::AlterColumn { column, .. } => column == c,
                _ => false,
            })
        };
        delta.search_changed =
            old_search != new.search || new.search.iter().any(|c| touched(c.as_str()));
        if delta.search_changed {
            delta.changes.push(Change::Search {
                from: old.search.clone(),
                to: new.search.clone(),
            });
        }
        Ok(delta)
    }

    /// The changes, in the order they are made.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The state after the change.
    pub fn new_state(&self) -> &TableState {
        &self.new
    }

    /// The old column of each new column (None: new).
    fn pairs(&self) -> impl Iterator<Item = (Option<&ColumnState>, &ColumnState)> {
        self.new
            .columns
            .iter()
            .zip(&self.source)
            .map(|(n, s)| (s.as_deref().and_then(|s| self.old.column(s)), n))
    }

    /// Indexes that go away and come: `(old name, new name)`; both set and
    /// of one kind means a renamed column's index (renamed in place where
    /// the back end can).
    fn index_moves(&self) -> Vec<(Option<String>, Option<String>)> {
        let mut out = Vec::new();
        for (o, n) in self.pairs() {
            let oi = o.and_then(|o| index_name(&self.old, o));
            let ni = index_name(&self.new, n);
            if oi != ni {
                out.push((oi, ni));
            }
        }
        for d in &self.dropped {
            if let Some(oi) = self.old.column(d).and_then(|o| index_name(&self.old, o)) {
                out.push((Some(oi), None));
            }
        }
        out
    }

    /// Whether SQLite must rebuild the table (anything but added columns
    /// and index changes).
    pub fn sqlite_rebuilds(&self) -> bool {
        self.changes.iter().any(|c| match c {
            Change::RenameColumn { .. } | Change::DropColumn(_) | Change::AlterColumn { .. } => {
                true
            }
            Change::AddColumn(name) => self
                .new
                .column(name)
                .is_some_and(|n| n.references.is_some() && !n.nullable),
            Change::AddIndex(_) | Change::DropIndex(_) | Change::Search { .. } => false,
        })
    }

    /// The migration's SQL for `backend` (starting with
    /// [`SQLITE_FOREIGN_KEYS_OFF`] when SQLite rebuilds the table).
    pub fn sql(&self, backend: Backend) -> String {
        if backend == Backend::Sqlite && self.sqlite_rebuilds() {
            self.sqlite_rebuild()
        } else {
            self.in_place(backend)
        }
    }

    fn lit(&self, column: &str, backend: Backend) -> String {
        self.fill
            .get(column)
            .map_or_else(|| "NULL".to_owned(), |l| l.sql(backend))
    }

    fn in_place(&self, b: Backend) -> String {
        let t = &self.new.table;
        let qt = q(b, t);
        let mut out = String::new();
        if self.search_changed {
            out.push_str(&drop_search(b, &self.old));
        }
        // MySQL: foreign keys go before their columns or indexes change.
        if b == Backend::MySql {
            for (o, n) in self.pairs() {
                if let Some(o) = o
                    && o.references.is_some()
                    && (o.references != n.references || o.name != n.name)
                {
                    out.push_str(&format!(
                        "ALTER TABLE {qt} DROP FOREIGN KEY {};\n",
                        q(b, &mysql_fk_name(t, &o.name))
                    ));
                }
            }
            for d in &self.dropped {
                if self.old.column(d).is_some_and(|o| o.references.is_some()) {
                    out.push_str(&format!(
                        "ALTER TABLE {qt} DROP FOREIGN KEY {};\n",
                        q(b, &mysql_fk_name(t, d))
                    ));
                }
            }
        }
        let moves = self.index_moves();
        let mut created: Vec<String> = Vec::new();
        for (oi, ni) in &moves {
            let Some(oi) = oi else { continue };
            let same_kind = ni
                .as_ref()
                .is_some_and(|ni| ni.ends_with("_unique") == oi.ends_with("_unique"));
            match (ni, b) {
                (Some(ni), Backend::Postgres) if same_kind => {
                    out.push_str(&format!(
                        "ALTER INDEX {} RENAME TO {};\n",
                        q(b, oi),
                        q(b, ni)
                    ));
                    created.push(ni.clone());
                }
                (Some(ni), Backend::MySql) if same_kind => {
                    out.push_str(&format!(
                        "ALTER TABLE {qt} RENAME INDEX {} TO {};\n",
                        q(b, oi),
                        q(b, ni)
                    ));
                    created.push(ni.clone());
                }
                (_, Backend::MySql) => {
                    out.push_str(&format!("DROP INDEX {} ON {qt};\n", q(b, oi)));
                }
                _ => out.push_str(&format!("DROP INDEX IF EXISTS {};\n", q(b, oi))),
            }
        }
        for (o, n) in self.pairs() {
            if let Some(o) = o
                && o.name != n.name
            {
                out.push_str(&format!(
                    "ALTER TABLE {qt} RENAME COLUMN {} TO {};\n",
                    q(b, &o.name),
                    q(b, &n.name)
                ));
            }
        }
        for d in &self.dropped {
            out.push_str(&format!("ALTER TABLE {qt} DROP COLUMN {};\n", q(b, d)));
        }
        for (o, n) in self.pairs() {
            let c = q(b, &n.name);
            let ty = column_type(b, n);
            let Some(o) = o else {
                // A new column.
                let fill = self.fill.get(&n.name).map(|l| l.sql(b));
                match b {
                    Backend::Postgres => {
                        let mut def = format!("ALTER TABLE {qt} ADD COLUMN {c} {ty}");
                        if let Some(fill) = &fill {
                            def.push_str(&format!(" NOT NULL DEFAULT {fill}"));
                        } else {
                            def.push_str(if n.nullable { " NULL" } else { " NOT NULL" });
                        }
                        if let Some(r) = &n.references {
                            def.push(' ');
                            def.push_str(&references(b, r));
                        }
                        out.push_str(&def);
                        out.push_str(";\n");
                        if fill.is_some() {
                            out.push_str(&format!(
                                "ALTER TABLE {qt} ALTER COLUMN {c} DROP DEFAULT;\n"
                            ));
                        }
                    }
                    Backend::MySql => {
                        // Added NULL, filled, then required: MySQL cannot give
                        // every column type a DEFAULT.
                        out.push_str(&format!("ALTER TABLE {qt} ADD COLUMN {c} {ty} NULL;\n"));
                        if let Some(fill) = &fill {
                            out.push_str(&format!("UPDATE {qt} SET {c} = {fill};\n"));
                            out.push_str(&format!(
                                "ALTER TABLE {qt} MODIFY COLUMN {c} {ty} NOT NULL;\n"
                            ));
                        }
                    }
                    Backend::Sqlite => {
                        let mut def = format!("ALTER TABLE {qt} ADD COLUMN {c} {ty}");
                        if let Some(fill) = &fill {
                            def.push_str(&format!(" NOT NULL DEFAULT {fill}"));
                        } else {
                            def.push_str(" NULL");
                        }
                        if let Some(r) = &n.references {
                            def.push(' ');
                            def.push_str(&references(b, r));
                        }
                        out.push_str(&def);
                        out.push_str(";\n");
                    }
                }
                continue;
            };
            let retyped = o.ty != n.ty || o.max_len != n.max_len;
            let required = o.nullable && !n.nullable;
            if required {
                out.push_str(&format!(
                    "UPDATE {qt} SET {c} = {} WHERE {c} IS NULL;\n",
                    self.lit(&n.name, b)
                ));
            }
            match b {
                Backend::Postgres => {
                    if retyped {
                        out.push_str(&format!(
                            "ALTER TABLE {qt} ALTER COLUMN {c} TYPE {ty} USING {c}::{ty};\n"
                        ));
                    }
                    if required {
                        out.push_str(&format!(
                            "ALTER TABLE {qt} ALTER COLUMN {c} SET NOT NULL;\n"
                        ));
                    } else if !o.nullable && n.nullable {
                        out.push_str(&format!(
                            "ALTER TABLE {qt} ALTER COLUMN {c} DROP NOT NULL;\n"
                        ));
                    }
                    if o.references != n.references {
                        if o.references.is_some() {
                            // The constraint's name is whatever created it:
                            // found by column.
                            out.push_str(&format!(
                                "DO $$ DECLARE r record; BEGIN FOR r IN SELECT c.conname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) WHERE c.conrelid = '{qt}'::regclass AND c.contype = 'f' AND a.attname = '{}' LOOP EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', '{t}', r.conname); END LOOP; END $$;\n",
                                n.name
                            ));
                        }
                        if let Some(r) = &n.references {
                            out.push_str(&format!(
                                "ALTER TABLE {qt} ADD CONSTRAINT {} FOREIGN KEY ({c}) {};\n",
                                q(b, &format!("{t}_{}_fkey", n.name)),
                                references(b, r)
                            ));
                        }
                    }
                }
                Backend::MySql => {
                    if retyped || o.nullable != n.nullable {
                        out.push_str(&format!(
                            "ALTER TABLE {qt} MODIFY COLUMN {c} {ty} {};\n",
                            if n.nullable { "NULL" } else { "NOT NULL" }
                        ));
                    }
                }
                Backend::Sqlite => {}
            }
        }
        if b == Backend::MySql {
            for (o, n) in self.pairs() {
                let Some(r) = &n.references else { continue };
                let keep = o.is_some_and(|o| o.references == n.references && o.name == n.name);
                if !keep {
                    out.push_str(&format!(
                        "ALTER TABLE {qt} ADD CONSTRAINT {} FOREIGN KEY ({}) {};\n",
                        q(b, &mysql_fk_name(t, &n.name)),
                        q(b, &n.name),
                        references(b, r)
                    ));
                }
            }
        }
        for (_, ni) in &moves {
            let Some(ni) = ni else { continue };
            if created.contains(ni) {
                continue;
            }
            if let Some(n) = self
                .new
                .columns
                .iter()
                .find(|n| index_name(&self.new, n).as_ref() == Some(ni))
            {
                out.push_str(&create_index(b, &self.new, n));
            }
        }
        if self.search_changed && self.new.has_search_index(b) {
            match b {
                Backend::MySql => out.push_str(&format!(
                    "ALTER TABLE {qt} ADD {};\n",
                    mysql_fulltext(&self.new)
                )),
                Backend::Postgres => out.push_str(&create_search(b, &self.new)),
                Backend::Sqlite => {
                    out.push_str(&create_search(b, &self.new));
                    let st = q(b, &search_table(t));
                    out.push_str(&format!("INSERT INTO {st} ({st}) VALUES ('rebuild');\n"));
                }
            }
        }
        out
    }

    fn sqlite_rebuild(&self) -> String {
        let b = Backend::Sqlite;
        let t = &self.new.table;
        let qt = q(b, t);
        let old_name = format!("{t}__platform_old");
        let qold = q(b, &old_name);
        let mut out = format!(
            "{SQLITE_FOREIGN_KEYS_OFF}\n-- SQLite cannot alter these columns in place: the table is rebuilt and its rows copied.\n"
        );
        out.push_str(&drop_search(b, &self.old));
        for o in &self.old.columns {
            if let Some(oi) = index_name(&self.old, o) {
                out.push_str(&format!("DROP INDEX IF EXISTS {};\n", q(b, &oi)));
            }
        }
        out.push_str(&format!("ALTER TABLE {qt} RENAME TO {qold};\n"));
        out.push_str(&create_table(&self.new, b));
        let mut cols = Vec::new();
        let mut exprs = Vec::new();
        for (o, n) in self.pairs() {
            cols.push(q(b, &n.name));
            exprs.push(match o {
                None => self.lit(&n.name, b),
                Some(o) => {
                    let mut e = q(b, &o.name);
                    if o.ty != n.ty {
                        match n.ty {
                            FieldType::I32 | FieldType::I64 | FieldType::Bool => {
                                e = format!("CAST({e} AS INTEGER)");
                            }
                            FieldType::F64 => e = format!("CAST({e} AS REAL)"),
                            _ => {}
                        }
                    }
                    if o.nullable && !n.nullable {
                        e = format!("COALESCE({e}, {})", self.lit(&n.name, b));
                    }
                    e
                }
            });
        }
        out.push_str(&format!(
            "INSERT INTO {qt} ({}) SELECT {} FROM {qold};\n",
            cols.join(", "),
            exprs.join(", ")
        ));
        if self.new.has_integer_key() {
            // Keep the old table's high-water mark, so no deleted id is
            // handed out again.
            out.push_str(&format!(
                "DELETE FROM sqlite_sequence WHERE name = '{t}';\nUPDATE sqlite_sequence SET name = '{t}' WHERE name = '{old_name}';\n"
            ));
        }
        out.push_str(&format!("DROP TABLE {qold};\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: FieldType, nullable: bool) -> ColumnState {
        ColumnState {
            name: name.into(),
            ty,
            max_len: (ty == FieldType::String).then_some(255),
            nullable,
            primary_key: false,
            unique: false,
            indexed: false,
            references: None,
        }
    }

    fn table(columns: Vec<ColumnState>) -> TableState {
        let mut id = col("id", FieldType::I64, false);
        id.primary_key = true;
        let mut all = vec![id];
        all.extend(columns);
        TableState {
            table: "t".into(),
            columns: all,
            search: Vec::new(),
        }
    }

    #[test]
    fn refuses_what_it_cannot_do_safely() {
        let old = table(vec![col("a", FieldType::String, false)]);
        let mut uuid_key = old.clone();
        uuid_key.columns[0].ty = FieldType::Uuid;
        let err = Delta::compute(&old, &uuid_key, &DeltaOptions::default()).unwrap_err();
        assert!(matches!(err, DeltaError::PrimaryKey { .. }), "{err}");

        let dated = table(vec![
            col("a", FieldType::String, false),
            col("due", FieldType::Date, false),
        ]);
        let err = Delta::compute(&old, &dated, &DeltaOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `t.due` (date) is new and required and existing rows need a value: pass `--default due=VALUE`, or make the field an `Option`"
        );
        let bad = DeltaOptions {
            defaults: [("due".to_owned(), "31/12/2024".to_owned())].into(),
            ..DeltaOptions::default()
        };
        let err = Delta::compute(&old, &dated, &bad).unwrap_err().to_string();
        assert!(
            err.starts_with("--default due=31/12/2024: must be a date"),
            "{err}"
        );

        let renamed = table(vec![col("b", FieldType::String, false)]);
        for (from, to, expect) in [
            ("x", "b", "`x` is not a column"),
            ("a", "y", "`y` is not a field"),
            ("id", "b", "`id` is still a field"),
        ] {
            let options = DeltaOptions {
                renames: vec![(from.into(), to.into())],
                ..DeltaOptions::default()
            };
            let err = Delta::compute(&old, &renamed, &options)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{err}");
        }
        assert_eq!(
            rename_candidates(&old, &renamed),
            [("a".to_owned(), "b".to_owned())]
        );
    }

    #[test]
    fn values_for_existing_rows_are_quoted_for_each_dialect() {
        let c = col("a", FieldType::String, false);
        let v = Literal::parse(&c, r"it's a \ path").unwrap();
        assert_eq!(v.sql(Backend::Postgres), r"'it''s a \ path'");
        assert_eq!(v.sql(Backend::Sqlite), r"'it''s a \ path'");
        assert_eq!(v.sql(Backend::MySql), r"'it''s a \\ path'");
        let long = "x".repeat(256);
        assert!(Literal::parse(&c, &long).is_err());
        let flag = col("f", FieldType::Bool, false);
        let yes = Literal::parse(&flag, "true").unwrap();
        assert_eq!(
            [Backend::Sqlite, Backend::Postgres, Backend::MySql].map(|b| yes.sql(b)),
            ["1", "TRUE", "1"]
        );
        let n = col("n", FieldType::I32, false);
        assert!(Literal::parse(&n, "3000000000").is_err());
        assert!(Literal::parse(&n, "1; DROP TABLE t").is_err());
        let j = col("j", FieldType::Json, false);
        assert_eq!(
            Literal::parse(&j, r#"{"a": "b'c"}"#)
                .unwrap()
                .sql(Backend::Postgres),
            r#"'{"a":"b''c"}'"#
        );
    }

    #[test]
    fn an_added_nullable_column_is_altered_in_place_even_on_sqlite() {
        let old = table(vec![col("a", FieldType::String, false)]);
        let new = table(vec![
            col("a", FieldType::String, false),
            col("b", FieldType::Text, true),
            col("c", FieldType::I32, false),
        ]);
        let delta = Delta::compute(&old, &new, &DeltaOptions::default()).unwrap();
        assert!(!delta.sqlite_rebuilds());
        let sql = delta.sql(Backend::Sqlite);
        assert_eq!(
            sql,
            "ALTER TABLE \"t\" ADD COLUMN \"b\" TEXT NULL;\nALTER TABLE \"t\" ADD COLUMN \"c\" INTEGER NOT NULL DEFAULT 0;\n"
        );
        assert!(
            Delta::compute(&new, &new, &DeltaOptions::default())
                .unwrap()
                .is_empty()
        );
    }
}
