//! `make:migration`: the migration a resource needs, written from its
//! metadata and the state the last migration recorded (see the book's
//! Migrations chapter).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use platform_core::db::Backend;
use platform_core::resource::Registry;

/// The resources' names, each after the resources it refers to (so that
/// `make:migration --all` creates a table after the tables it refers to).
pub(super) fn parents_first(registry: &Registry) -> Vec<String> {
    let mut done: Vec<&str> = Vec::new();
    let entries: Vec<_> = registry.entries().map(|e| e.meta()).collect();
    while done.len() < entries.len() {
        let before = done.len();
        for m in &entries {
            if done.contains(&m.name()) {
                continue;
            }
            let ready = m.field_list().iter().all(|f| {
                f.belongs_to_meta()
                    .is_none_or(|t| t.name() == m.name() || done.contains(&t.name()))
            });
            if ready {
                done.push(m.name());
            }
        }
        if done.len() == before {
            // A cycle: the rest in registry order.
            for m in &entries {
                if !done.contains(&m.name()) {
                    done.push(m.name());
                }
            }
        }
    }
    done.into_iter().map(str::to_owned).collect()
}

/// Splits `KEY=VALUE` arguments of `flag`.
pub(super) fn pairs(flag: &str, args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(anyhow!("{flag} {a}: expected KEY=VALUE")),
        })
        .collect()
}

/// How `make:migration` proceeds where the resource alone does not tell.
#[derive(Debug, Clone, Default)]
pub struct MakeMigration {
    /// Renamed fields (or columns), `(old, new)`.
    pub renames: Vec<(String, String)>,
    /// Values for existing rows of new or newly required fields.
    pub defaults: std::collections::BTreeMap<String, String>,
    /// Fields that are gone were removed, not renamed.
    pub no_rename: bool,
    /// Ask on the terminal whether a gone field was renamed.
    pub ask: bool,
    /// The dialects to write scripts for (empty: all three).
    pub dialects: Vec<Backend>,
    /// Tables whose migrations record no state, as the database has them
    /// (read by the command before it compares).
    pub baseline: std::collections::BTreeMap<String, platform_core::schema::TableState>,
}

/// What `make:migration` did for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made {
    /// The table's migrations match the resource (the table's name).
    UpToDate(String),
    /// Wrote the migration creating the table.
    Created(PathBuf),
    /// Wrote a migration changing the table, with the changes.
    Altered(PathBuf, Vec<String>),
}

/// Writes `<dir>/<NNNN>_create_<table>/{sqlite,postgres,mysql}.sql` for the
/// resource named `name`; returns the directory written. Refuses when the
/// table already has a migration (see [`make_migration_with`] for the
/// migrations that change a table).
pub fn make_migration(registry: &Registry, name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    match make_migration_with(registry, name, dir, &MakeMigration::default())? {
        Made::Created(path) | Made::Altered(path, _) => Ok(path),
        Made::UpToDate(table) => bail!("`{table}` already has a migration and is up to date"),
    }
}

/// `make:migration`: writes the migration the resource named `name` needs
/// (with its recorded state, `schema.json`): the first one creates the
/// table; a later one changes it from the state the last migration
/// recorded to the resource as it is now.
pub fn make_migration_with(
    registry: &Registry,
    name: &str,
    dir: &Path,
    options: &MakeMigration,
) -> anyhow::Result<Made> {
    use platform_core::schema::{
        Delta, DeltaOptions, RecordedStates, TableState, alter_migration, rename_candidates,
    };
    let entry = registry
        .by_name(name)
        .or_else(|| registry.by_plural(name))
        .ok_or_else(|| {
            let known: Vec<&str> = registry.entries().map(|e| e.meta().name()).collect();
            anyhow!("no resource `{name}`; resources: {}", known.join(", "))
        })?;
    let meta = entry.meta();
    let table = meta.table();
    let recorded = RecordedStates::read(dir)?;
    let now = TableState::of(meta);
    let Some(before) = recorded
        .state(table)
        .or_else(|| options.baseline.get(table))
    else {
        if recorded.unrecorded.iter().any(|t| t == table) {
            bail!(
                "a migration in {} creates `{table}` but records no state (`schema.json`) and the database has no such table: \
                 run `migrate` first, so that make:migration can read the table as it is",
                dir.display(),
            );
        }
        let sql = platform_core::schema::make_migration(meta);
        let path = write_migration(
            dir,
            recorded.next_version,
            &format!("create_{table}"),
            &sql,
            &now,
            &options.dialects,
        )?;
        return Ok(Made::Created(path));
    };
    // Field names given on the command line, as column names.
    let column = |n: &str| {
        meta.field(n)
            .map_or_else(|| n.to_owned(), |f| f.column_name().to_owned())
    };
    let mut renames: Vec<(String, String)> = options
        .renames
        .iter()
        .map(|(from, to)| (from.clone(), column(to)))
        .collect();
    let candidates: Vec<(String, String)> = rename_candidates(before, &now)
        .into_iter()
        .filter(|(from, to)| !renames.iter().any(|(f, t)| f == from || t == to))
        .collect();
    if !candidates.is_empty() && !options.no_rename {
        if !options.ask {
            let list: Vec<String> = candidates
                .iter()
                .map(|(f, t)| format!("`{f}` -> `{t}`"))
                .collect();
            bail!(
                "`{table}`: a column is gone and a new one of the same type appeared ({}); \
                 if it was renamed say `--rename OLD=NEW` (the data is kept), otherwise `--no-rename` (the old column and its data are dropped)",
                list.join(", ")
            );
        }
        for (from, to) in candidates {
            if renames.iter().any(|(f, t)| *f == from || *t == to) {
                continue;
            }
            eprint!("Was `{table}.{from}` renamed to `{table}.{to}`? [y/N] ");
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            if matches!(answer.trim(), "y" | "Y" | "yes") {
                renames.push((from, to));
            }
        }
    }
    let defaults = options
        .defaults
        .iter()
        .map(|(k, v)| (column(k), v.clone()))
        .collect();
    let delta = Delta::compute(before, &now, &DeltaOptions { renames, defaults })?;
    if delta.is_empty() {
        return Ok(Made::UpToDate(table.to_owned()));
    }
    let sql = alter_migration(&delta);
    let path = write_migration(
        dir,
        recorded.next_version,
        &format!("alter_{table}"),
        &sql,
        &now,
        &options.dialects,
    )?;
    Ok(Made::Altered(
        path,
        delta.changes().iter().map(ToString::to_string).collect(),
    ))
}

/// Writes one migration directory, all or nothing: the scripts and the
/// state go into a hidden directory that is renamed into place, so a
/// failed write leaves no half migration for `migrate` to apply.
fn write_migration(
    dir: &Path,
    version: u32,
    name: &str,
    sql: &platform_core::schema::MigrationSql,
    state: &platform_core::schema::TableState,
    dialects: &[Backend],
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = format!("{version:04}_{name}");
    let target = dir.join(&name);
    let staging = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let wanted = |b: Backend| dialects.is_empty() || dialects.contains(&b);
    let written = (|| {
        std::fs::create_dir(&staging)?;
        for (b, file, text) in [
            (Backend::Sqlite, "sqlite.sql", &sql.sqlite),
            (Backend::Postgres, "postgres.sql", &sql.postgres),
            (Backend::MySql, "mysql.sql", &sql.mysql),
        ] {
            if wanted(b) {
                std::fs::write(staging.join(file), text)?;
            }
        }
        std::fs::write(
            staging.join(platform_core::schema::SchemaFile::NAME),
            platform_core::schema::SchemaFile::of([state.clone()]).to_json(),
        )?;
        std::fs::rename(&staging, &target)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e).with_context(|| format!("cannot write {}", target.display()));
    }
    Ok(target)
}
