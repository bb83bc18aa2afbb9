//! The database layer: one handle over SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! [`Db`] holds one of the three concrete sqlx pools and dispatches to it.
//! Statements are built with [`Sql`] from resource metadata and bound
//! parameters, and rows come back as lists of [`Value`]s decoded by the
//! column types the caller expects. sqlx's `Any` driver is not used: it has
//! no dates, UUIDs or JSON and emits `?` placeholders on PostgreSQL.
//!
//! Connecting is in `connect`, transactions in `tx`, binding and decoding
//! values in `codec`, the meaning of sqlx's errors in `failure`, and what
//! differs between the three dialects in [`dialect`].

mod codec;
mod connect;
pub mod dialect;
pub(crate) mod failure;
mod ids;
mod migrate;
mod sql;
mod tx;

use codec::{bind_mysql, bind_pg, bind_sqlite, decode_mysql, decode_pg, decode_sqlite};
pub(crate) use codec::{sqlite_time, truncate_micros};
pub(crate) use failure::map_sqlx_error;

pub(crate) use migrate::hex;
pub use migrate::{Migration, MigrationSet, SQLITE_FOREIGN_KEYS_OFF};
pub use sql::Sql;
pub(crate) use sql::{like_escape, storage_type};
pub use tx::Tx;

use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::MySqlPool;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::value::{FieldType, Value};

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite (the embedded default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Backend {
    /// The character that quotes identifiers.
    pub const fn quote_char(self) -> char {
        match self {
            Self::MySql => '`',
            Self::Sqlite | Self::Postgres => '"',
        }
    }
    /// A short name (`sqlite`, `postgres`, `mysql`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
        }
    }
    /// The back end a URL selects.
    pub fn from_url(url: &str) -> Result<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "mysql" | "mariadb" => Ok(Self::MySql),
            _ => Err(Error::Configuration(format!(
                "database URL must start with sqlite:, postgres: or mysql: (got `{scheme}:`)"
            ))),
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Maximum connections in the pool (SQLite in-memory databases always use one).
    pub max_connections: u32,
    /// How long to wait for a connection before reporting the database unavailable.
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// A connection pool to one of the supported databases.
#[derive(Debug, Clone)]
pub struct Db {
    pool: Pool,
    backend: Backend,
    /// The key audit entries written in this database's transactions are
    /// authenticated with (see [`crate::audit::insert_entries`]).
    audit_key: Option<Arc<Crypto>>,
    /// Where the outbox events recorded in this database's transactions go
    /// after their commit (see [`crate::outbox`]).
    outbox: Option<crate::outbox::Outbox>,
    /// Statements run through the pool (not inside transactions).
    statements: Arc<std::sync::atomic::AtomicU64>,
    /// Keys drawn ahead from sequences ([`Db::next_id`]).
    ids: Arc<ids::IdBlocks>,
}

/// One decoded row: values in the order of the selected columns.
pub type Row = Vec<Value>;

impl Db {
    /// This pool, with `crypto` as the key that authenticates the audit
    /// entries written in its transactions (the platform sets it).
    pub fn with_audit_key(mut self, crypto: Arc<Crypto>) -> Self {
        self.audit_key = Some(crypto);
        self
    }

    /// The key audit entries written in this database are authenticated
    /// with, once the platform has set it.
    pub(crate) fn audit_key(&self) -> Option<&Arc<Crypto>> {
        self.audit_key.as_ref()
    }

    /// This database, with `outbox` receiving the events its transactions
    /// record once they commit.
    pub(crate) fn with_outbox(mut self, outbox: crate::outbox::Outbox) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// The back end.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A new statement builder for this database.
    pub fn sql(&self) -> Sql {
        Sql::new(self.backend)
    }

    /// The SQLite pool, when this is SQLite.
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(p) => Some(p),
            _ => None,
        }
    }
    /// The PostgreSQL pool, when this is PostgreSQL.
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            _ => None,
        }
    }
    /// The MySQL pool, when this is MySQL.
    pub fn as_mysql(&self) -> Option<&MySqlPool> {
        match &self.pool {
            Pool::MySql(p) => Some(p),
            _ => None,
        }
    }

    /// How many statements this pool (and its clones) has run outside
    /// transactions, through [`Db::execute`] and the `fetch_*` methods:
    /// the reads of the read path. Tests use it to check that a page costs
    /// a bounded number of statements (no query per row).
    pub fn statements_run(&self) -> u64 {
        self.statements.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_statement(&self) {
        self.statements
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs a statement, returning the rows affected.
    pub async fn execute(&self, sql: Sql) -> Result<u64> {
        self.count_statement();
        dispatch!(&self.pool, p => p.exec_sql(sql).await)
    }

    /// Runs a query and decodes every row with `types`.
    pub async fn fetch_all(&self, sql: Sql, types: &[FieldType]) -> Result<Vec<Row>> {
        self.count_statement();
        dispatch!(&self.pool, p => p.fetch_sql(sql, types).await)
    }

    /// Runs a query and decodes the first row, if any.
    pub async fn fetch_optional(&self, sql: Sql, types: &[FieldType]) -> Result<Option<Row>> {
        Ok(self.fetch_all(sql, types).await?.into_iter().next())
    }

    /// Runs a query returning one integer (a count, say).
    pub async fn fetch_i64(&self, sql: Sql) -> Result<Option<i64>> {
        Ok(self
            .fetch_optional(sql, &[FieldType::I64])
            .await?
            .and_then(|r| r.into_iter().next())
            .and_then(|v| v.as_i64()))
    }

    /// Runs several statements of literal SQL (a migration) in one go.
    pub async fn execute_script(&self, script: &str) -> Result<()> {
        match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(script.to_owned()))
                    .execute(p)
                    .await?;
            }
            Pool::Postgres(p) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(script.to_owned()))
                    .execute(p)
                    .await?;
            }
            Pool::MySql(p) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(script.to_owned()))
                    .execute(p)
                    .await?;
            }
        }
        Ok(())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        let mut sql = self.sql();
        sql.push("SELECT CAST(1 AS ")
            .push(dialect::int64_cast_type(self.backend))
            .push(")");
        self.fetch_i64(sql).await.map(|_| ())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
            Pool::MySql(p) => p.close().await,
        }
    }
}

/// Runs `work` to completion on a task of its own and waits for its result.
///
/// Every write entry point of the platform (the [`crate::repo::Records`] and
/// [`crate::repo::Repo`] writes; user, role, token, session, password and
/// two-factor changes; notifications) goes through this, so that a write
/// does not depend on the future of the request that asked for it.
///
/// Why: when a client disconnects, axum drops the handler's future at
/// whatever `.await` it is parked on. Inside a transaction that is a rollback
/// (see [`Tx`]), but the write still ends at a point nobody chose: a
/// transaction whose `COMMIT` was sent commits while the work after it (cache
/// flush, grant-cache invalidation, the sealer's wake-up, model events) never
/// runs, and sqlx then queues a `ROLLBACK` for it (PostgreSQL: "there is no
/// transaction in progress"); a driver that is not cancel-safe at some
/// `.await` (sqlx 0.9.0's `Pool::begin` on PostgreSQL, sqlx issue 4393) even
/// hands the next borrower a connection still inside a transaction. A
/// spawned task is not cancelled with the request: the write commits or
/// rolls back whole, runs its after-commit work, and leaves its connection
/// clean; only the answer is lost.
///
/// The task keeps the caller's tracing span (request id in the logs). A
/// panic in `work` becomes an [`Error::Backend`] (`backend: "task"`) for the
/// caller, after a `tracing` error with the panic message. Outside a Tokio
/// runtime `work` simply runs in place.
pub async fn detached<T, F>(work: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    use tracing::Instrument as _;
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return work.await;
    };
    match runtime
        .spawn(work.instrument(tracing::Span::current()))
        .await
    {
        Ok(result) => result,
        Err(e) => {
            let what = if e.is_panic() {
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                tracing::error!(panic = %message, "a write panicked");
                format!("the write panicked: {message}")
            } else {
                // Only a runtime shutting down cancels the task.
                "the write was cancelled: the runtime is shutting down".to_owned()
            };
            Err(Error::Backend {
                backend: "task",
                source: what.into(),
            })
        }
    }
}

macro_rules! dispatch {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
            Pool::MySql($p) => $body,
        }
    };
}
use dispatch;

// ---- per-back-end execution -------------------------------------------------

trait Exec: Sized {
    async fn exec_sql(self, sql: Sql) -> Result<u64>;
    async fn fetch_sql(self, sql: Sql, types: &[FieldType]) -> Result<Vec<Row>>;
}

macro_rules! impl_exec {
    ($db:ty, $bind:ident, $decode:ident, $($target:ty),+) => {$(
        impl<'c> Exec for $target {
            async fn exec_sql(self, sql: Sql) -> Result<u64> {
                let q = sqlx::query(sqlx::AssertSqlSafe(sql.text().to_owned()))
                    .persistent(sql.persistent);
                let q = $bind(q, sql.args);
                Ok(q.execute(self).await?.rows_affected())
            }
            async fn fetch_sql(self, sql: Sql, types: &[FieldType]) -> Result<Vec<Row>> {
                let q = sqlx::query(sqlx::AssertSqlSafe(sql.text().to_owned()))
                    .persistent(sql.persistent);
                let q = $bind(q, sql.args);
                let rows = q.fetch_all(self).await?;
                rows.iter().map(|r| $decode(r, types)).collect()
            }
        }
    )+};
}

impl_exec!(
    sqlx::Sqlite,
    bind_sqlite,
    decode_sqlite,
    &'c SqlitePool,
    &'c mut sqlx::SqliteConnection
);
impl_exec!(
    sqlx::Postgres,
    bind_pg,
    decode_pg,
    &'c PgPool,
    &'c mut sqlx::PgConnection
);
impl_exec!(
    sqlx::MySql,
    bind_mysql,
    decode_mysql,
    &'c MySqlPool,
    &'c mut sqlx::MySqlConnection
);

/// Runs a statement on one SQLite connection (the migration runner's).
pub(crate) async fn execute_on_sqlite(conn: &mut sqlx::SqliteConnection, sql: Sql) -> Result<u64> {
    conn.exec_sql(sql).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    #[test]
    fn urls() {
        assert_eq!(
            Backend::from_url("sqlite::memory:").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgresql://x").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::from_url("oracle://x").is_err());
    }

    #[tokio::test]
    async fn detached_work_outlives_its_caller() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let work = detached(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = tx.send("done");
            Ok(())
        });
        // Polled once (the task starts), then dropped like a request whose
        // client went away.
        tokio::select! {
            biased;
            _ = work => panic!("the work cannot be done yet"),
            () = std::future::ready(()) => {}
        }
        let done = tokio::time::timeout(Duration::from_secs(5), rx).await;
        assert_eq!(done.unwrap().unwrap(), "done");
    }

    #[tokio::test]
    async fn a_panicking_detached_work_is_an_error() {
        let r: Result<()> = detached(async { panic!("boom") }).await;
        match r {
            Err(Error::Backend { backend, source }) => {
                assert_eq!(backend, "task");
                assert!(source.to_string().contains("boom"), "{source}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(detached(async { Ok(7) }).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn sqlite_round_trip() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.execute_script("CREATE TABLE t (a BIGINT, b TEXT, c TEXT, d TEXT, e BOOLEAN)")
            .await
            .unwrap();
        let now = Utc::now();
        let mut s = db.sql();
        s.push("INSERT INTO t VALUES (")
            .bind_i64(7)
            .push(", ")
            .bind(Value::Null, FieldType::Text)
            .push(", ")
            .bind(Value::DateTime(now), FieldType::DateTime)
            .push(", ")
            .bind(Value::Uuid(Uuid::nil()), FieldType::Uuid)
            .push(", ")
            .bind(Value::Bool(true), FieldType::Bool)
            .push(")");
        assert_eq!(db.execute(s).await.unwrap(), 1);
        let rows = db
            .fetch_all(
                Sql::literal(Backend::Sqlite, "SELECT a, b, c, d, e FROM t"),
                &[
                    FieldType::I64,
                    FieldType::Text,
                    FieldType::DateTime,
                    FieldType::Uuid,
                    FieldType::Bool,
                ],
            )
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![vec![
                Value::Int(7),
                Value::Null,
                Value::DateTime(truncate_micros(now)),
                Value::Uuid(Uuid::nil()),
                Value::Bool(true)
            ]]
        );
    }
}
