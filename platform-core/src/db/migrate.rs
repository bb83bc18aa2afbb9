//! Migrations: ordered SQL scripts per back end, applied once and recorded.
//!
//! Written here rather than with `sqlx::migrate!` because several sets share
//! one database (the framework's, the host's, and the job queue's own sqlx
//! migrations, which use `_sqlx_migrations`): each set is recorded under its
//! own name in `platform_migrations`, and a concurrent start-up of several
//! processes is serialised with a database lock.

use sha2::{Digest, Sha256};

use super::{Backend, Db};
use crate::error::{Error, Result};
use crate::value::{FieldType, Value};

/// One migration, with its SQL for each back end.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Orders migrations within a set; never reuse one.
    pub version: i64,
    /// A short description.
    pub name: &'static str,
    /// SQL for SQLite.
    pub sqlite: &'static str,
    /// SQL for PostgreSQL.
    pub postgres: &'static str,
    /// SQL for MySQL/MariaDB.
    pub mysql: &'static str,
}

impl Migration {
    /// The script for `backend`.
    pub fn sql(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
            Backend::MySql => self.mysql,
        }
    }
}

/// A named, ordered list of migrations.
#[derive(Debug, Clone, Copy)]
pub struct MigrationSet {
    /// The set's name (`platform` for the framework's tables).
    pub name: &'static str,
    /// The migrations, in version order.
    pub migrations: &'static [Migration],
    /// The back ends this set has scripts for (`embed_migrations!(dir,
    /// dialects = [sqlite])`); empty: all three. Running it on another back
    /// end is refused with a message that says so.
    pub backends: &'static [Backend],
}

const BOOKKEEPING: Migration = Migration {
    version: 0,
    name: "bookkeeping",
    sqlite: "CREATE TABLE IF NOT EXISTS platform_migrations (
        set_name VARCHAR(64) NOT NULL, version BIGINT NOT NULL, name VARCHAR(255) NOT NULL,
        checksum VARCHAR(64) NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (set_name, version))",
    postgres: "CREATE TABLE IF NOT EXISTS platform_migrations (
        set_name VARCHAR(64) NOT NULL, version BIGINT NOT NULL, name VARCHAR(255) NOT NULL,
        checksum VARCHAR(64) NOT NULL, applied_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (set_name, version))",
    mysql: "CREATE TABLE IF NOT EXISTS platform_migrations (
        set_name VARCHAR(64) NOT NULL, version BIGINT NOT NULL, name VARCHAR(255) NOT NULL,
        checksum VARCHAR(64) NOT NULL, applied_at DATETIME(6) NOT NULL, PRIMARY KEY (set_name, version))
        ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
};

fn checksum(sql: &str) -> String {
    hex(&Sha256::digest(sql.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl MigrationSet {
    /// Applies every migration of this set not yet applied, in order, and
    /// returns how many ran. Refuses to run when an applied migration's SQL
    /// has changed since, or when the database knows a newer version than
    /// this binary.
    pub async fn run(&self, db: &Db) -> Result<usize> {
        let backend = db.backend();
        self.check_backend(backend)?;
        db.execute_script(BOOKKEEPING.sql(backend)).await?;
        let lock = MigrationLock::acquire(db).await?;
        let result = self.run_locked(db).await;
        lock.release().await;
        result
    }

    async fn run_locked(&self, db: &Db) -> Result<usize> {
        let backend = db.backend();
        let mut applied_sql = db.sql();
        applied_sql
            .push("SELECT version, checksum FROM platform_migrations WHERE set_name = ")
            .bind_str(self.name)
            .push(" ORDER BY version");
        let applied = db
            .fetch_all(applied_sql, &[FieldType::I64, FieldType::Text])
            .await?;
        let mut count = 0;
        for row in &applied {
            let (Some(v), Some(sum)) = (row[0].as_i64(), row[1].as_str()) else {
                continue;
            };
            match self.migrations.iter().find(|m| m.version == v) {
                None => {
                    return Err(Error::Configuration(format!(
                        "the database has migration {v} of `{}`, which this program does not know: is it older than the database?",
                        self.name
                    )));
                }
                Some(m) if checksum(m.sql(backend)) != sum => {
                    return Err(Error::Configuration(format!(
                        "migration {v} `{}` of `{}` changed after it was applied; write a new migration instead",
                        m.name, self.name
                    )));
                }
                Some(_) => {}
            }
        }
        let mut todo: Vec<&Migration> = self
            .migrations
            .iter()
            .filter(|m| !applied.iter().any(|r| r[0].as_i64() == Some(m.version)))
            .collect();
        todo.sort_by_key(|m| m.version);
        for m in todo {
            let sql = m.sql(backend);
            let failed = |e: Error| {
                Error::Configuration(format!(
                    "migration {} `{}` of `{}` failed: {e}",
                    m.version, m.name, self.name
                ))
            };
            let mut rec = db.sql();
            rec.push("INSERT INTO platform_migrations (set_name, version, name, checksum, applied_at) VALUES (")
                .bind_str(self.name)
                .push(", ")
                .bind_i64(m.version)
                .push(", ")
                .bind_str(m.name)
                .push(", ")
                .bind_str(checksum(sql))
                .push(", ")
                .bind(Value::DateTime(chrono::Utc::now()), FieldType::DateTime)
                .push(")");
            if let Some(pool) = db.as_sqlite() {
                run_sqlite(pool, sql, rec).await.map_err(failed)?;
            } else {
                db.execute_script(sql).await.map_err(failed)?;
                db.execute(rec).await?;
            }
            count += 1;
            tracing::info!(
                set = self.name,
                version = m.version,
                name = m.name,
                "migrated"
            );
        }
        Ok(count)
    }

    /// Whether this set has scripts for `backend`.
    pub fn supports(&self, backend: Backend) -> bool {
        self.backends.is_empty() || self.backends.contains(&backend)
    }

    fn check_backend(&self, backend: Backend) -> Result<()> {
        if self.supports(backend) {
            return Ok(());
        }
        let label = |b: Backend| match b {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::MySql => "MySQL/MariaDB",
        };
        let names: Vec<&str> = self.backends.iter().map(|b| label(*b)).collect();
        Err(Error::Configuration(format!(
            "the migrations of `{}` are written for {} only, and this database is {}: add its scripts ({}) and its name to `embed_migrations!(.., dialects = [..])`",
            self.name,
            names.join(" and "),
            label(backend),
            match backend {
                Backend::Sqlite => "sqlite.sql",
                Backend::Postgres => "postgres.sql",
                Backend::MySql => "mysql.sql",
            }
        )))
    }

    /// The versions of this set not applied yet, changing nothing (not even
    /// creating the bookkeeping table): for `migrate --check`.
    pub async fn pending_quietly(&self, db: &Db) -> Result<Vec<i64>> {
        self.check_backend(db.backend())?;
        let mut exists = db.sql();
        match db.backend() {
            Backend::Sqlite => exists.push(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'platform_migrations'",
            ),
            Backend::Postgres => exists.push(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'platform_migrations'",
            ),
            Backend::MySql => exists.push(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'platform_migrations'",
            ),
        };
        let rows = db.fetch_all(exists, &[FieldType::I64]).await?;
        if rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0) == 0 {
            return Ok(self.migrations.iter().map(|m| m.version).collect());
        }
        self.pending(db).await
    }

    /// The versions of this set that are not applied yet.
    pub async fn pending(&self, db: &Db) -> Result<Vec<i64>> {
        db.execute_script(BOOKKEEPING.sql(db.backend())).await?;
        let mut q = db.sql();
        q.push("SELECT version FROM platform_migrations WHERE set_name = ")
            .bind_str(self.name);
        let applied: Vec<i64> = db
            .fetch_all(q, &[FieldType::I64])
            .await?
            .into_iter()
            .filter_map(|r| r[0].as_i64())
            .collect();
        Ok(self
            .migrations
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }
}

/// The first line that marks an SQLite script to run with foreign keys off
/// (a table rebuild: create, copy, drop, rename).
pub const SQLITE_FOREIGN_KEYS_OFF: &str = "-- platform: foreign_keys=off";

/// Runs an SQLite migration and records it (`record`) in one transaction on
/// one connection: all of it or none of it. A script whose first line is
/// [`SQLITE_FOREIGN_KEYS_OFF`] runs with foreign keys off (SQLite's
/// procedure for rebuilding a table others refer to), and the foreign keys
/// are checked before it commits. It also runs with `legacy_alter_table`
/// on, so renaming the rebuilt table into place neither rewrites nor
/// re-validates the rest of the schema (a host's trigger that is broken
/// elsewhere would otherwise fail the rename).
async fn run_sqlite(pool: &sqlx::SqlitePool, script: &str, record: super::Sql) -> Result<()> {
    let fk_off = script.trim_start().starts_with(SQLITE_FOREIGN_KEYS_OFF);
    let mut conn = pool.acquire().await?;
    if fk_off {
        // Only takes effect outside a transaction.
        sqlx::raw_sql("PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON")
            .execute(&mut *conn)
            .await?;
    }
    let result: Result<()> = async {
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(script.to_owned()))
            .execute(&mut *conn)
            .await?;
        if fk_off {
            let broken = sqlx::raw_sql("PRAGMA foreign_key_check")
                .fetch_all(&mut *conn)
                .await?;
            if !broken.is_empty() {
                return Err(Error::Configuration(format!(
                    "{} rows would break a foreign key",
                    broken.len()
                )));
            }
        }
        super::execute_on_sqlite(&mut conn, record).await?;
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    }
    if fk_off
        && sqlx::raw_sql("PRAGMA foreign_keys = ON; PRAGMA legacy_alter_table = OFF")
            .execute(&mut *conn)
            .await
            .is_err()
    {
        // Never hand a connection without foreign keys back to the pool.
        conn.detach();
    }
    result
}

/// A database-wide lock held while migrating, so two processes starting at
/// once do not both apply a migration. Dropped without `release` (a
/// cancelled future), the connection is closed, which frees the lock.
struct MigrationLock {
    conn: Option<LockConn>,
}

enum LockConn {
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
    MySql(sqlx::pool::PoolConnection<sqlx::MySql>),
}

const LOCK_KEY: i64 = 0x706c_6174_666f_726d; // "platform"

impl MigrationLock {
    async fn acquire(db: &Db) -> Result<Self> {
        let conn = if let Some(pool) = db.as_postgres() {
            let mut c = pool.acquire().await?;
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(LOCK_KEY)
                .execute(&mut *c)
                .await?;
            Some(LockConn::Postgres(c))
        } else if let Some(pool) = db.as_mysql() {
            let mut c = pool.acquire().await?;
            sqlx::query("SELECT GET_LOCK('platform_migrations', 120)")
                .execute(&mut *c)
                .await?;
            Some(LockConn::MySql(c))
        } else {
            // SQLite: every migration script takes the write lock itself.
            None
        };
        Ok(Self { conn })
    }

    async fn release(mut self) {
        let released = match self.conn.as_mut() {
            None => true,
            Some(LockConn::Postgres(c)) => sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LOCK_KEY)
                .execute(&mut **c)
                .await
                .is_ok(),
            Some(LockConn::MySql(c)) => sqlx::query("SELECT RELEASE_LOCK('platform_migrations')")
                .execute(&mut **c)
                .await
                .is_ok(),
        };
        if released {
            self.conn = None;
        }
    }
}

impl Drop for MigrationLock {
    fn drop(&mut self) {
        match self.conn.take() {
            None => {}
            Some(LockConn::Postgres(c)) => drop(c.detach()),
            Some(LockConn::MySql(c)) => drop(c.detach()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: MigrationSet = MigrationSet {
        name: "test",
        migrations: &[Migration {
            version: 1,
            name: "create t",
            sqlite: "CREATE TABLE t (id INTEGER PRIMARY KEY)",
            postgres: "CREATE TABLE t (id BIGSERIAL PRIMARY KEY)",
            mysql: "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY)",
        }],
        backends: &[],
    };

    #[tokio::test]
    async fn applies_once_and_detects_edits() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        assert_eq!(SET.run(&db).await.unwrap(), 1);
        assert_eq!(SET.run(&db).await.unwrap(), 0);
        assert!(SET.pending(&db).await.unwrap().is_empty());
        const EDITED: MigrationSet = MigrationSet {
            name: "test",
            migrations: &[Migration {
                version: 1,
                name: "create t",
                sqlite: "CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT)",
                postgres: "",
                mysql: "",
            }],
            backends: &[],
        };
        let edited = EDITED;
        let err = edited.run(&db).await.unwrap_err().to_string();
        assert!(err.contains("changed after it was applied"), "{err}");
        let older = MigrationSet {
            name: "test",
            migrations: &[],
            backends: &[],
        };
        let err = older.run(&db).await.unwrap_err().to_string();
        assert!(err.contains("does not know"), "{err}");
    }
}
